//! Bad input never panics and never stalls (issue 6), at the decoders.
//!
//! `tests/corpus/bad/` holds one record per file, `<case>.<format>`; `EXPECTED.tsv` beside them
//! says what each must decode to (its header documents the columns). This test decodes every file
//! with the decoder its extension names and checks the expectation, then runs every file through
//! every decoder (and what decodes through a join) to check that none panics, reporting the file
//! that did. Records too large and records without a value are the pipeline's to dead-letter
//! before decoding; here only the decoders' side of that is checked (a large record decodes).
//!
//! The property tests feed random bytes, token soup and mutated valid OTLP into every decoder.
//! The fuzz targets under `fuzz/` do the same for longer (`scripts/fuzz.sh`).

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracejoin::decode::logline::{InputLogFormat, LogDecoder};
use tracejoin::decode::otlp::SpanDecoder;
use tracejoin::decode::rules::{CompiledRules, ExtractRules};
use tracejoin::join::{Join, JoinOutput, JoinSettings};
use tracejoin::model::{LogEvent, Origin, SpanSummary, TimestampSource};

/// The Kafka record time handed to the log decoder (`timestamp=kafka` in EXPECTED.tsv).
const KAFKA_TS: i64 = 1_700_000_000_000_000_000;
const ORIGIN: Origin = Origin {
    topic: 1,
    partition: 0,
    offset: 0,
};

/// A decoder, as named by a corpus file's extension.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    SpansProto,
    SpansJson,
    Log(InputLogFormat),
}

const ALL_FORMATS: [Format; 8] = [
    Format::SpansProto,
    Format::SpansJson,
    Format::Log(InputLogFormat::Auto),
    Format::Log(InputLogFormat::OtlpProto),
    Format::Log(InputLogFormat::OtlpJson),
    Format::Log(InputLogFormat::Json),
    Format::Log(InputLogFormat::Logfmt),
    Format::Log(InputLogFormat::Text),
];

impl Format {
    fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "spans_proto" => Format::SpansProto,
            "spans_json" => Format::SpansJson,
            "auto" => Format::Log(InputLogFormat::Auto),
            "otlp_proto" => Format::Log(InputLogFormat::OtlpProto),
            "otlp_json" => Format::Log(InputLogFormat::OtlpJson),
            "json" => Format::Log(InputLogFormat::Json),
            "logfmt" => Format::Log(InputLogFormat::Logfmt),
            "text" => Format::Log(InputLogFormat::Text),
            _ => return None,
        })
    }
}

#[derive(Debug)]
enum Decoded {
    Spans {
        spans: Vec<SpanSummary>,
        invalid_ids: u32,
    },
    Logs(Vec<LogEvent>),
}

fn rules() -> Arc<CompiledRules> {
    static RULES: OnceLock<Arc<CompiledRules>> = OnceLock::new();
    RULES
        .get_or_init(|| Arc::new(ExtractRules::builtin().compile().expect("built-in rules")))
        .clone()
}

/// Decodes `bytes` as `format` with fresh decoders; the error is its `DecodeError::code()`.
fn decode(format: Format, bytes: &[u8]) -> Result<Decoded, &'static str> {
    match format {
        Format::SpansProto | Format::SpansJson => {
            let mut decoder = SpanDecoder::new(&["http.route".to_string()], 100);
            let mut spans = Vec::new();
            let stats = if format == Format::SpansProto {
                decoder.decode_proto(bytes, &mut spans)
            } else {
                decoder.decode_json(bytes, &mut spans)
            }
            .map_err(|e| e.code())?;
            Ok(Decoded::Spans {
                spans,
                invalid_ids: stats.invalid_ids,
            })
        }
        Format::Log(f) => {
            let mut events = Vec::new();
            LogDecoder::new(rules(), 100)
                .decode(
                    Bytes::copy_from_slice(bytes),
                    f,
                    ORIGIN,
                    KAFKA_TS,
                    &mut events,
                )
                .map_err(|e| e.code())?;
            Ok(Decoded::Logs(events))
        }
    }
}

/// Feeds decoded logs through a small join; every log must leave exactly once.
fn through_join(events: Vec<LogEvent>) -> Result<(), String> {
    let mut join = Join::new(JoinSettings {
        max_wait: Duration::from_secs(5),
        span_retention: Duration::from_secs(30),
        max_traces: 2,
        max_state_bytes: 2048,
    });
    let mut out = JoinOutput::default();
    let n = events.len();
    for ev in events {
        let ts = ev.timestamp_unix_nanos;
        join.on_log(ev, &mut out);
        join.advance_watermark(ts.saturating_sub(1), &mut out);
    }
    join.drain(&mut out);
    if out.emitted.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{n} logs in, {} out of the join",
            out.emitted.len()
        ))
    }
}

/// Runs `f`, turning a panic into its message.
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into())
    })
}

// ---- EXPECTED.tsv ----

#[derive(Debug)]
enum Outcome {
    Ok(Vec<(String, String)>),
    Error(String),
    KnownPanic,
}

struct Row {
    file: String,
    outcome: Outcome,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad")
}

/// `\u{…}` escapes, so that checks can name characters a TSV cell cannot hold.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\u{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("unterminated \\u{") + i;
        let code = u32::from_str_radix(&rest[i + 3..end], 16).expect("hex in \\u{}");
        out.push(char::from_u32(code).expect("a char"));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn expectations() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("EXPECTED.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut cols = line.split('\t');
            let file = cols.next().unwrap().to_string();
            let expect = cols
                .next()
                .unwrap_or_else(|| panic!("no expectation: {line}"));
            let mut words = expect.split(' ');
            let outcome = match words.next().unwrap() {
                "ok" => Outcome::Ok(
                    words
                        .map(|w| {
                            let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{line}"));
                            (k.to_string(), unescape(v))
                        })
                        .collect(),
                ),
                "known_panic" => Outcome::KnownPanic,
                code => Outcome::Error(code.to_string()),
            };
            Row { file, outcome }
        })
        .collect()
}

fn hex_or_none<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// Checks one `key=value`; `Err` says what was found instead.
fn check(decoded: &Decoded, key: &str, want: &str) -> Result<(), String> {
    let all = |found: Vec<String>| {
        if found.iter().all(|f| f == want) {
            Ok(())
        } else {
            Err(format!("{key}: want {want:?}, found {found:?}"))
        }
    };
    match (decoded, key) {
        (Decoded::Spans { spans, .. }, "spans") => all(vec![spans.len().to_string()]),
        (Decoded::Spans { invalid_ids, .. }, "invalid_ids") => all(vec![invalid_ids.to_string()]),
        (Decoded::Spans { spans, .. }, _) => all(spans
            .iter()
            .map(|s| match key {
                "trace_id" => s.trace_id.to_string(),
                "span_id" => s.span_id.to_string(),
                "start" => s.start_unix_nanos.to_string(),
                "end" => s.end_unix_nanos.to_string(),
                "name" => s.name.to_string(),
                _ => panic!("unknown span check {key}"),
            })
            .collect()),
        (Decoded::Logs(events), "events") => all(vec![events.len().to_string()]),
        (Decoded::Logs(events), _) => all(events
            .iter()
            .map(|e| match key {
                "trace_id" => hex_or_none(e.trace_id),
                "span_id" => hex_or_none(e.span_id),
                "format" => e.format.as_str().to_string(),
                "body_len" => e.body.len().to_string(),
                "timestamp" => match (want, e.timestamp_source) {
                    ("kafka", TimestampSource::Kafka) if e.timestamp_unix_nanos == KAFKA_TS => {
                        "kafka".into()
                    }
                    ("record", TimestampSource::Record) => "record".into(),
                    (_, TimestampSource::Record) => e.timestamp_unix_nanos.to_string(),
                    (_, source) => format!("{source:?} {}", e.timestamp_unix_nanos),
                },
                _ => panic!("unknown log check {key}"),
            })
            .collect()),
    }
}

fn check_row(row: &Row) -> Result<(), String> {
    let path = corpus_dir().join(&row.file);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read: {e}"))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = Format::from_extension(ext).ok_or_else(|| format!("unknown extension {ext:?}"))?;
    let result = no_panic(|| decode(format, &bytes));
    match (&row.outcome, result) {
        (Outcome::KnownPanic, Err(_)) => Ok(()),
        (Outcome::KnownPanic, Ok(r)) => Err(format!(
            "marked known_panic but no longer panics ({r:?}): write the expectation from its note"
        )),
        (_, Err(panic)) => Err(format!("PANIC: {panic}")),
        (Outcome::Error(code), Ok(Ok(d))) => Err(format!("want {code}, decoded {d:?}")),
        (Outcome::Error(code), Ok(Err(got))) if got == code => Ok(()),
        (Outcome::Error(code), Ok(Err(got))) => Err(format!("want {code}, got {got}")),
        (Outcome::Ok(_), Ok(Err(got))) => Err(format!("want ok, got {got}")),
        (Outcome::Ok(checks), Ok(Ok(d))) => {
            let failed: Vec<String> = checks
                .iter()
                .filter_map(|(k, v)| check(&d, k, v).err())
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("; "))
            }
        }
    }
}

#[test]
fn every_bad_record_decodes_as_expected() {
    let rows = expectations();
    let mut listed: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    listed.sort_unstable();
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "EXPECTED.tsv")
        .collect();
    files.sort_unstable();
    assert_eq!(
        files, listed,
        "every corpus file has one row in EXPECTED.tsv and back"
    );

    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| check_row(row).err().map(|e| format!("{}: {e}", row.file)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad records:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn no_bad_record_panics_any_decoder_or_the_join() {
    let mut failures = Vec::new();
    for row in expectations() {
        if matches!(row.outcome, Outcome::KnownPanic) {
            continue;
        }
        let bytes = std::fs::read(corpus_dir().join(&row.file)).unwrap();
        for format in ALL_FORMATS {
            match no_panic(|| match decode(format, &bytes) {
                Ok(Decoded::Logs(events)) => through_join(events),
                _ => Ok(()),
            }) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{} as {format:?}: {e}", row.file)),
                Err(panic) => failures.push(format!("{} as {format:?}: PANIC: {panic}", row.file)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A record over any sane size limit still decodes: the limit is the pipeline's
/// (`limits.max_record_bytes`, dead-lettered as `too_large` before decoding).
#[test]
fn huge_records_decode_without_a_limit_of_their_own() {
    let n = 4 << 20;
    let text = format!(
        "ERROR {} trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
        "x".repeat(n)
    );
    let logfmt = (0..n / 8).map(|i| format!("k{i}=v ")).collect::<String>();
    let json = format!(
        r#"{{"msg":"{}","n":[{}1]}}"#,
        "y".repeat(n),
        "1,".repeat(n / 2)
    );
    for (format, bytes) in [
        (InputLogFormat::Text, text.as_bytes()),
        (InputLogFormat::Auto, text.as_bytes()),
        (InputLogFormat::Logfmt, logfmt.as_bytes()),
        (InputLogFormat::Auto, logfmt.as_bytes()),
        (InputLogFormat::Json, json.as_bytes()),
        (InputLogFormat::Auto, json.as_bytes()),
    ] {
        match decode(Format::Log(format), bytes) {
            Ok(Decoded::Logs(events)) => assert_eq!(events.len(), 1, "{format:?}"),
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

// ---- property tests ----

fn decode_everywhere(bytes: &[u8]) -> Result<(), TestCaseError> {
    for format in ALL_FORMATS {
        if let Ok(Decoded::Logs(events)) = decode(format, bytes) {
            through_join(events).map_err(TestCaseError::fail)?;
        }
    }
    Ok(())
}

/// Pieces of every input shape, so that random sequences reach past the first check.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "=",
    " ",
    "\\",
    "\\\"",
    "\n",
    "\0",
    "é",
    "✓",
    "\u{a0}",
    "trace_id",
    "span_id",
    "traceparent",
    "dd.trace_id",
    "msg",
    "level",
    "ts",
    "timestamp",
    "\"trace_id\":",
    "trace_id=",
    "traceparent=",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "0000000000000000",
    "00-",
    "-01",
    "1-5759e988-",
    "18446744073709551616",
    "1700000000.5",
    "-1",
    "1e400",
    "9223372036854775807",
    "2023-11-14T22:13:20.123Z",
    "0001-01-01 00:00:00,1",
    "ERROR",
    "[warn]",
    "null",
    "true",
    "{\"resourceLogs\":[",
    "{\"resourceSpans\":[",
    "\"scopeLogs\":[{\"logRecords\":[",
    "\"timeUnixNano\":",
    "\"traceId\":\"",
    "\"body\":{\"stringValue\":\"x\"}",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat().into_bytes())
}

fn valid_otlp() -> (Vec<u8>, Vec<u8>) {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    };
    let resource = Some(Resource {
        attributes: vec![kv("service.name", "checkout")],
        ..Default::default()
    });
    let spans = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource.clone(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0x4b; 16],
                    span_id: vec![0x0f; 8],
                    name: "GET /".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: vec![kv("http.route", "/")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource,
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 5,
                    trace_id: vec![0x4b; 16],
                    span_id: vec![0x0f; 8],
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("hello".into())),
                    }),
                    attributes: vec![kv("k", "v")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (spans.encode_to_vec(), logs.encode_to_vec())
}

/// Trace/span-id-like values: hex of every length near 16 and 32, traceparents, X-Ray ids and
/// decimal numbers near 2^64.
fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F]{0,34}",
        "[0-9a-f]{2}-[0-9a-f]{30,33}-[0-9a-f]{14,17}-[0-9a-f]{2}(-[0-9a-z]{0,3})?",
        "1-[0-9a-f]{8}-[0-9a-f]{23,25}",
        "-?[0-9]{1,22}",
    ]
}

/// Timestamp-like values: RFC 3339 with out-of-range fields, epoch numbers of every magnitude.
fn ts_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}:[0-9]{2}([.,][0-9]{0,12})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
        "-?[0-9]{1,22}(\\.[0-9]{0,25})?",
    ]
}

const KEYS: &[&str] = &[
    "trace_id",
    "span_id",
    "traceparent",
    "dd.trace_id",
    "dd.span_id",
    "ts",
    "timestamp",
    "msg",
    "level",
    "service",
];

/// logfmt-shaped lines: known and random keys; bare, quoted (with escapes, maybe unterminated)
/// and id- or time-like values.
fn logfmt_line() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        prop::sample::select(KEYS).prop_map(String::from),
        "[a-z_.@]{0,8}"
    ];
    let value = prop_oneof![
        "[^ \"]{0,16}",
        "\"([^\"\\\\]|\\\\.){0,16}\"?",
        id_like(),
        ts_like(),
    ];
    prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
        let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ").into_bytes()
    })
}

/// One record with id- and time-like values, in each shape a decoder reads them from.
fn fields_in_every_shape() -> impl Strategy<Value = Vec<Vec<u8>>> {
    (id_like(), id_like(), ts_like()).prop_map(|(t, s, ts)| {
        let q = |v: &str| serde_json::to_string(v).unwrap();
        vec![
            format!(r#"{{"msg":"m","trace_id":{},"span_id":{},"ts":{}}}"#, q(&t), q(&s), q(&ts)),
            format!(r#"{{"msg":"m","trace_id":{t},"span_id":{s},"ts":{ts}}}"#),
            format!(r#"{{"msg":"m","traceparent":{}}}"#, q(&t)),
            format!("msg=m trace_id={t} span_id={s} ts={ts}"),
            format!("{ts} ERROR m trace_id={t} span_id={s} traceparent={t}"),
            format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"traceId":{},"spanId":{},"timeUnixNano":{}}}]}}]}}]}}"#,
                q(&t), q(&s), q(&ts)
            ),
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":{},"spanId":{},"endTimeUnixNano":{ts}}}]}}]}}]}}"#,
                q(&t), q(&s)
            ),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    })
}

/// A valid OTLP request (spans or logs) with a few bytes overwritten and maybe truncated.
fn mutated_otlp() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(logs, edits, cut)| {
            let (spans_bytes, logs_bytes) = valid_otlp();
            let mut b = if logs { logs_bytes } else { spans_bytes };
            for (at, byte) in edits {
                let i = at.index(b.len());
                b[i] = byte;
            }
            let keep = cut.index(b.len() + 1).max(b.len() / 2);
            b.truncate(keep);
            b
        })
}

proptest! {
    // Decoding is cheap: more cases than proptest's default 256 cost well under a second.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        decode_everywhere(&bytes)?;
    }

    #[test]
    fn token_soup_never_panics(bytes in token_soup()) {
        decode_everywhere(&bytes)?;
    }

    #[test]
    fn logfmt_lines_never_panic(bytes in logfmt_line()) {
        decode_everywhere(&bytes)?;
    }

    #[test]
    fn id_and_time_values_never_panic(records in fields_in_every_shape()) {
        for bytes in records {
            decode_everywhere(&bytes)?;
        }
    }

    #[test]
    fn mutated_otlp_never_panics(bytes in mutated_otlp()) {
        decode_everywhere(&bytes)?;
    }
}
