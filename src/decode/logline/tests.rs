//! The line decoder's tests: every format and shape of the shipped rules, the sources `check`
//! shows, and the property tests that no rule yields a wrong id.
//!
//! Why one file over 600 lines: the tests share the id fixtures and the decoding helpers.

use super::*;
use crate::decode::rules::ExtractRules;

const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S: &str = "00f067aa0ba902b7";
const ORIGIN: Origin = Origin {
    topic: 1,
    partition: 0,
    offset: 7,
};
const KAFKA_TS: i64 = 42;

fn decoder() -> LogDecoder {
    static RULES: std::sync::LazyLock<Arc<CompiledRules>> =
        std::sync::LazyLock::new(|| Arc::new(ExtractRules::builtin().compile().unwrap()));
    LogDecoder::new(RULES.clone(), 1000)
}

fn one(line: &str, format: InputLogFormat) -> LogEvent {
    let mut out = Vec::new();
    decoder()
        .decode(
            Bytes::copy_from_slice(line.as_bytes()),
            format,
            ORIGIN,
            KAFKA_TS,
            &mut out,
        )
        .unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    out.pop().unwrap()
}

#[test]
fn json_line_with_otel_fields() {
    let line = format!(
        r#"{{"timestamp":"2023-11-14T22:13:20.123Z","level":"ERROR","message":"db timeout","trace_id":"{T}","span_id":"{S}","service":"checkout"}}"#
    );
    let ev = one(&line, InputLogFormat::Auto);
    assert_eq!(ev.format, LogFormat::Json);
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);
    assert_eq!(&*ev.body, "db timeout");
    assert_eq!(ev.severity.as_deref(), Some("ERROR"));
    assert_eq!(ev.service.as_deref(), Some("checkout"));
    assert_eq!(ev.timestamp_unix_nanos, 1_700_000_000_123_000_000);
    assert_eq!(ev.timestamp_source, TimestampSource::Record);
    match ev.fields {
        LogFields::RawJson(raw) => assert_eq!(raw.get(), line),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_nested_paths_datadog_numbers_and_traceparent() {
    let ev = one(
        &format!(r#"{{"msg":"x","trace":{{"id":"{T}"}}}}"#),
        InputLogFormat::Json,
    );
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    let ev = one(
        r#"{"msg":"x","dd.trace_id":1234567890123456789,"dd.span_id":"42"}"#,
        InputLogFormat::Json,
    );
    assert_eq!(
        ev.trace_id.unwrap().to_string(),
        format!("{:032x}", 1234567890123456789u64)
    );
    assert_eq!(ev.span_id.unwrap().to_string(), format!("{:016x}", 42));
    let ev = one(
        &format!(r#"{{"msg":"x","traceparent":"00-{T}-{S}-01"}}"#),
        InputLogFormat::Json,
    );
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);
}

#[test]
fn json_without_ids_falls_back_to_message_regex_and_kafka_time() {
    let ev = one(
        &format!(r#"{{"message":"failed trace_id={T} retrying"}}"#),
        InputLogFormat::Json,
    );
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.timestamp_unix_nanos, KAFKA_TS);
    assert_eq!(ev.timestamp_source, TimestampSource::Kafka);
    let ev = one(
        r#"{"message":"no ids","trace_id":"00000000000000000000000000000000"}"#,
        InputLogFormat::Json,
    );
    assert!(ev.trace_id.is_none());
}

#[test]
fn escaped_keys_and_values() {
    let ev = one(
        &format!(r#"{{"mes\u0073age":"a \"quoted\" word","trace_id":"{T}"}}"#),
        InputLogFormat::Json,
    );
    assert_eq!(&*ev.body, "a \"quoted\" word");
}

#[test]
fn logfmt_line() {
    let ev = one(
        &format!(
            r#"ts=2023-11-14T22:13:20.123Z level=warn msg="slow \"query\"" trace_id={T} span_id={S} service=payments"#
        ),
        InputLogFormat::Auto,
    );
    assert_eq!(ev.format, LogFormat::Logfmt);
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);
    assert_eq!(&*ev.body, "slow \"query\"");
    assert_eq!(ev.severity.as_deref(), Some("warn"));
    assert_eq!(ev.service.as_deref(), Some("payments"));
    assert_eq!(ev.timestamp_unix_nanos, 1_700_000_000_123_000_000);
}

#[test]
fn text_lines() {
    let line = format!("2023-11-14 22:13:20,123 ERROR payment declined trace_id={T} span_id={S}");
    let ev = one(&line, InputLogFormat::Auto);
    assert_eq!(ev.format, LogFormat::Text);
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);
    assert_eq!(ev.severity.as_deref(), Some("ERROR"));
    assert_eq!(&*ev.body, line);
    assert_eq!(ev.timestamp_unix_nanos, 1_700_000_000_123_000_000);

    let ev = one(
        &format!("GET /cart 500 traceparent: 00-{T}-{S}-01"),
        InputLogFormat::Text,
    );
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);

    let ev = one("{not json at all", InputLogFormat::Auto);
    assert_eq!(ev.format, LogFormat::Text);
    assert!(ev.trace_id.is_none());
}

#[test]
fn bad_records_are_errors_with_codes() {
    let mut d = decoder();
    let mut out = Vec::new();
    let err = |d: &mut LogDecoder, out: &mut Vec<LogEvent>, b: &[u8], f| {
        d.decode(Bytes::copy_from_slice(b), f, ORIGIN, 0, out)
            .unwrap_err()
            .code()
    };
    assert_eq!(err(&mut d, &mut out, b"", InputLogFormat::Auto), "empty");
    assert_eq!(
        err(&mut d, &mut out, b"   \n", InputLogFormat::Text),
        "empty"
    );
    assert_eq!(
        err(&mut d, &mut out, b"{\"a\":", InputLogFormat::Json),
        "invalid_json"
    );
    assert_eq!(
        err(
            &mut d,
            &mut out,
            b"\xff\xfe\x00garbage",
            InputLogFormat::Auto
        ),
        "invalid_utf8"
    );
    assert_eq!(
        err(
            &mut d,
            &mut out,
            b"\x0a\xff\xff\xff\xff\x0f\xff",
            InputLogFormat::Auto
        ),
        "invalid_protobuf"
    );
    assert_eq!(
        err(&mut d, &mut out, b"caf\xc3", InputLogFormat::Text),
        "invalid_utf8"
    );
    assert_eq!(
        err(
            &mut d,
            &mut out,
            b"\x0a\x05\x0a\x03",
            InputLogFormat::OtlpProto
        ),
        "invalid_protobuf"
    );
    assert!(out.is_empty());
}

#[test]
fn logfmt_parser_edge_cases() {
    let pairs = parse_logfmt(r#"a=1 b="two words" c= d e="esc\"aped" f="unterminated"#);
    let flat: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        flat,
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "two words".into()),
            ("c".into(), "".into()),
            ("d".into(), "".into()),
            ("e".into(), "esc\"aped".into()),
            ("f".into(), "unterminated".into()),
        ]
    );
}

#[test]
fn logfmt_escape_before_a_multibyte_character() {
    // Found by the logs fuzz target: a backslash before a multi-byte character.
    let pairs = parse_logfmt("msg=\"slow \\Þuery\" level=warn");
    assert_eq!(pairs[0].1, "slow Þuery");
    assert_eq!(pairs[1].1, "warn");
    let line = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/fuzz-logs-logfmt-escape.bin"
    ))
    .unwrap();
    let mut out = Vec::new();
    let _ = decoder().decode(
        Bytes::from(line[1..].to_vec()),
        InputLogFormat::Auto,
        ORIGIN,
        KAFKA_TS,
        &mut out,
    );
}

// ---- issue 12: the shapes of common stacks, each sample written from the stack's own docs ----

/// Trace id, span id, level and whether the time came from the record.
fn ids(line: &str) -> (Option<String>, Option<String>, Option<String>, bool) {
    let ev = one(line, InputLogFormat::Auto);
    (
        ev.trace_id.map(|t| t.to_string()),
        ev.span_id.map(|s| s.to_string()),
        ev.severity.map(|s| s.to_string()),
        ev.timestamp_source == TimestampSource::Record,
    )
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn spring_boot_3_correlation_block() {
    // Spring Boot 3.2 console pattern with logging.pattern.correlation; the block is
    // CorrelationIdFormatter's "[<traceId(32)>-<spanId(16)>] " (docs.spring.io, spring-boot API,
    // org.springframework.boot.logging.CorrelationIdFormatter).
    let line = format!("2024-05-01T12:00:00.123Z  INFO 12345 --- [myapp] [nio-8080-exec-1] [{T}-{S}] c.e.demo.DemoController : Handling home");
    assert_eq!(ids(&line), (some(T), some(S), some("INFO"), true));
    // no active span: the block is blank, fixed width
    let line = format!("2024-05-01T12:00:00.123Z  INFO 12345 --- [myapp] [           main] [{}] o.s.b.StartupInfoLogger : Started", " ".repeat(49));
    assert_eq!(ids(&line), (None, None, some("INFO"), true));
}

#[test]
fn spring_cloud_sleuth() {
    // Spring Cloud Sleuth reference, "Features": [appname,traceId,spanId,exportable]
    let line = "2016-02-02 15:30:57.902  INFO [bar,6bfd228dc00d216b,6bfd228dc00d216b,false] 23030 --- [nio-8081-exec-3] ...";
    assert_eq!(
        ids(line),
        (
            some("00000000000000006bfd228dc00d216b"),
            some("6bfd228dc00d216b"),
            some("INFO"),
            true
        )
    );
}

#[test]
fn serilog_clef() {
    // CLEF (clef-json.org; serilog-formatting-compact README): @t, @mt/@m, @l absent means
    // Information, @tr/@sp the trace and span id.
    let line = format!(
        r#"{{"@t":"2016-06-07T03:44:57.8532799Z","@mt":"Hello, {{User}}","User":"nblumhardt","@tr":"{T}","@sp":"{S}"}}"#
    );
    let ev = one(&line, InputLogFormat::Auto);
    assert_eq!(ev.trace_id.unwrap().to_string(), T);
    assert_eq!(ev.span_id.unwrap().to_string(), S);
    assert_eq!(ev.severity.as_deref(), Some("Information"));
    assert_eq!(&*ev.body, "Hello, {User}");
    assert_eq!(ev.timestamp_source, TimestampSource::Record);
    let line = format!(
        r#"{{"@t":"2016-10-12T04:46:58.0724384Z","@mt":"Tags are {{Tags}}","@l":"Warning","Tags":["test","orange"],"@tr":"{T}"}}"#
    );
    assert_eq!(ids(&line), (some(T), None, some("Warning"), true));
    // no @t: not CLEF, no default level
    assert_eq!(ids(r#"{"msg":"x"}"#).2, None);
}

#[test]
fn dotnet_json_console_formatter() {
    // learn.microsoft.com, "Console log formatting" (Json) with ActivityTrackingOptions TraceId |
    // SpanId | ParentId and IncludeScopes: the ids in a scope object.
    let line = format!(
        r#"{{"Timestamp":"2024-05-30T13:45:28.480Z","EventId":0,"LogLevel":"Information","Category":"main","Message":"Hello World!","State":{{"Message":"Hello World!","name":"World","{{OriginalFormat}}":"Hello {{name}}!"}},"Scopes":[{{"Message":"SpanId:{S}, TraceId:{T}, ParentId:0000000000000000","SpanId":"{S}","TraceId":"{T}","ParentId":"0000000000000000"}}]}}"#
    );
    assert_eq!(ids(&line), (some(T), some(S), some("Information"), true));
    // ... or at the top level
    let line = format!(
        r#"{{"EventId":0,"LogLevel":"Error","Category":"Api","Message":"failed","TraceId":"{T}","SpanId":"{S}"}}"#
    );
    assert_eq!(ids(&line), (some(T), some(S), some("Error"), false));
}

#[test]
fn google_cloud_structured_logging() {
    // cloud.google.com/trace/docs/trace-log-integration: trace = projects/PROJECT_ID/traces/TRACE_ID,
    // spanId the 16-hex span id ("74 is 000000000000004a"); older agents write it in decimal.
    let line = format!(
        r#"{{"severity":"ERROR","message":"db timeout","logging.googleapis.com/trace":"projects/my-project/traces/{T}","logging.googleapis.com/spanId":"000000000000004a"}}"#
    );
    assert_eq!(
        ids(&line),
        (some(T), some("000000000000004a"), some("ERROR"), false)
    );
    let line = format!(
        r#"{{"severity":"INFO","message":"ok","logging.googleapis.com/trace":"projects/p/traces/{T}","logging.googleapis.com/spanId":"74"}}"#
    );
    assert_eq!(ids(&line).1, some("000000000000004a"));
}

#[test]
fn aws_xray() {
    // X-Ray developer guide, "Tracing header": Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1
    let xray_t = "5759e988bd862e3fe1be46a994272793";
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let full = (some(xray_t), some("53995c3f42cd8ad8"));
    let first2 = |l: &str| {
        let (t, s, _, _) = ids(l);
        (t, s)
    };
    assert_eq!(
        first2(&format!("GET /api 200 X-Amzn-Trace-Id: {header}")),
        full
    );
    // Lambda's environment variable
    assert_eq!(
        first2(&format!("START RequestId: 8f5 _X_AMZN_TRACE_ID={header}")),
        full
    );
    assert_eq!(
        first2(&format!(r#"{{"msg":"x","_X_AMZN_TRACE_ID":"{header}"}}"#)),
        full
    );
    // an X-Ray id anywhere
    assert_eq!(
        first2("request failed, trace 1-5759e988-bd862e3fe1be46a994272793"),
        (some(xray_t), None)
    );
    // The bug of issue 12: a key=value rule took the 1 before the dash as a decimal id.
    assert_eq!(
        first2("2024-05-01T12:00:00Z XRAY TraceId: 1-5759e988-bd862e3fe1be46a994272793 SegmentId: 53995c3f42cd8ad8"),
        full
    );
}

#[test]
fn jaeger_uber_trace_id() {
    // jaegertracing.io client libraries, propagation format: {trace-id}:{span-id}:{parent-span-id}:{flags},
    // trace id 64 or 128 bits, "can be variable length, shorter values are 0-padded on the left".
    let (t, s, _, _) = ids(&format!(
        "2024-05-01 12:00:00.123 WARN slow upstream uber-trace-id: {T}:{S}:0:1"
    ));
    assert_eq!((t, s), (some(T), some(S)));
    let (t, s, _, _) = ids("GET /x uber-trace-id=deadbeef:beef:0:01");
    assert_eq!(
        (t, s),
        (
            some("000000000000000000000000deadbeef"),
            some("000000000000beef")
        )
    );
}

#[test]
fn b3_single_and_multi() {
    // openzipkin/b3-propagation README: b3: {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}
    let (t, s, _, _) =
        ids("GET /x b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
    assert_eq!(
        (t, s),
        (
            some("80f198ee56343ba864fe8b2a57d3eff7"),
            some("e457b5a2e4d86bd1")
        )
    );
    // ... and the multiple headers: X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124, X-B3-SpanId: a2fb4a1d1a96d312
    let (t, s, _, _) = ids("headers X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124 X-B3-SpanId: a2fb4a1d1a96d312 X-B3-Sampled: 1");
    assert_eq!(
        (t, s),
        (
            some("463ac35c9f6413ad48485a3953bb6124"),
            some("a2fb4a1d1a96d312")
        )
    );
    let (t, _, _, _) = ids(r#"{"msg":"x","X-B3-TraceId":"463ac35c9f6413ad"}"#);
    assert_eq!(t, some("0000000000000000463ac35c9f6413ad"));
}

#[test]
fn access_log_ending_with_a_traceparent() {
    // nginx log_format combined + "$http_traceparent" (W3C Trace Context example ids)
    let (t, s, _, _) = ids(
        r#"10.1.2.3 - - [01/May/2024:12:00:00 +0000] "GET /cart HTTP/1.1" 500 612 "-" "curl/8.5.0" "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#,
    );
    assert_eq!(
        (t, s),
        (
            some("0af7651916cd43dd8448eb211c80319c"),
            some("b7ad6b7169203331")
        )
    );
    // Envoy's default format, traceparent as the last %REQ(...)% field
    let (t, _, _, _) = ids(
        r#"[2024-05-01T12:00:00.000Z] "GET /cart HTTP/1.1" 200 - 0 612 3 2 "-" "curl/8.5.0" "6f1c" "shop" "10.0.0.7:8080" "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#,
    );
    assert_eq!(t, some("0af7651916cd43dd8448eb211c80319c"));
}

#[test]
fn datadog_text_and_status() {
    // docs.datadoghq.com, connect logs and traces: dd.trace_id=<TRACE_ID> dd.span_id=<SPAN_ID>,
    // decimal (0 when no trace is active). 16 digits here: decimal all the same.
    let (t, s, l, _) = ids("2024-05-01 12:00:00.123 ERROR [dd.service=shop dd.env=prod dd.version=1.0 dd.trace_id=1234567890123456 dd.span_id=42] payment declined");
    assert_eq!(t, Some(format!("{:032x}", 1234567890123456u64)));
    assert_eq!(s, some("000000000000002a"));
    assert_eq!(l, some("ERROR"));
    assert_eq!(ids("x dd.trace_id=0 dd.span_id=0").0, None);
    // Log Status Remapper: status names, or syslog integers 0-7; an HTTP status is no level
    assert_eq!(ids(r#"{"status":"warn","message":"x"}"#).2, some("warn"));
    assert_eq!(ids(r#"{"status":3,"message":"x"}"#).2, some("error"));
    assert_eq!(ids(r#"{"status":200,"message":"GET /"}"#).2, None);
}

/// The join matches 64-bit ids on the low half only, so each log shape must carry the width it
/// was written with.
#[test]
fn trace_id_width_follows_the_written_shape() {
    use crate::model::TraceIdWidth::{Bits128, Bits64};
    let w = |line: &str| {
        let ev = one(line, InputLogFormat::Auto);
        (ev.trace_id.map(|t| t.to_string()), ev.trace_id_width)
    };
    let low = &T[16..];
    let padded = format!("{:0>32}", low);
    let dd = u64::from_str_radix(low, 16).unwrap();
    assert_eq!(
        w(&format!(r#"{{"msg":"x","dd":{{"trace_id":"{dd}"}}}}"#)),
        (Some(padded.clone()), Bits64)
    );
    assert_eq!(
        w(&format!("x dd.trace_id={dd} dd.span_id=42")),
        (Some(padded.clone()), Bits64)
    );
    assert_eq!(
        w(&format!("level=info msg=x trace_id={low}")),
        (Some(padded.clone()), Bits64)
    );
    assert_eq!(
        w(&format!("INFO [shop,{low},{S},true] x")),
        (Some(padded.clone()), Bits64)
    );
    assert_eq!(
        w(&format!("x uber-trace-id: {low}:{S}:0:1")),
        (Some(padded.clone()), Bits64)
    );
    assert_eq!(
        w(&format!(r#"{{"msg":"x","trace_id":"{T}"}}"#)),
        (Some(T.to_string()), Bits128)
    );
    // 32 digits with a zero high half were written as 128 bits.
    assert_eq!(
        w(&format!(r#"{{"msg":"x","trace_id":"{padded}"}}"#)),
        (Some(padded.clone()), Bits128)
    );
    assert_eq!(
        w(&format!("x traceparent: 00-{T}-{S}-01")),
        (Some(T.to_string()), Bits128)
    );
    assert_eq!(w("no ids here"), (None, Bits128));
}

#[test]
fn levels_of_klog_bunyan_pino_syslog() {
    // klog/glog header: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg (no year: record time unknown)
    let (_, _, l, rec) = ids("E1125 10:15:30.123456   12345 server.go:88] failed to connect");
    assert_eq!((l, rec), (some("error"), false));
    // Bunyan README: {"name":"myapp","hostname":"banana.local","pid":40161,"level":30,"msg":"hi","time":"2013-01-04T18:46:23.851Z","v":0}
    let (_, _, l, rec) = ids(
        r#"{"name":"myapp","hostname":"banana.local","pid":40161,"level":30,"msg":"hi","time":"2013-01-04T18:46:23.851Z","v":0}"#,
    );
    assert_eq!((l, rec), (some("info"), true));
    // pino: {"level":50,"time":1531171074631,"msg":"...","pid":657,"hostname":"Davids-MBP-3.fritz.box"}
    let (_, _, l, rec) = ids(
        r#"{"level":50,"time":1531171074631,"msg":"boom","pid":657,"hostname":"Davids-MBP-3.fritz.box"}"#,
    );
    assert_eq!((l, rec), (some("error"), true));
    // RFC 5424 §6.5 example 1: <34> = facility 4, severity 2 (critical)
    let (_, _, l, rec) = ids("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8");
    assert_eq!((l, rec), (some("critical"), true));
}

#[test]
fn a_capture_that_is_not_an_id_is_counted_and_leaves_the_field_free() {
    let mut d = decoder();
    let mut out = Vec::new();
    let line = format!("TraceId: 1-5759e988-bd862e3fe1be46a994272793 span_id=12-ab trace_id={T}");
    d.decode(Bytes::from(line), InputLogFormat::Text, ORIGIN, 0, &mut out)
        .unwrap();
    assert_eq!(
        out[0].trace_id.unwrap().to_string(),
        "5759e988bd862e3fe1be46a994272793"
    );
    let prov = d.last_provenance();
    assert_eq!(
        d.rules().describe(prov.trace_id.unwrap()),
        "rule \"xray_trace_id\""
    );
    // the span_id rule took the 12 of 12-ab: a piece of a longer token, rejected
    assert!(prov.span_id.is_none());
    let rendered = crate::telemetry::metrics().render();
    assert!(
        rendered.contains("tracejoin_log_ids_rejected_total{rule=\"span_id_key_value\"}"),
        "{rendered}"
    );
}

mod no_false_ids {
    use super::*;
    use proptest::prelude::*;

    /// Filler that can sit next to an id: words, separators, and pieces of ids and keys.
    fn filler() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[g-zG-Z ,;:=\\[\\]\"'()/.]{0,12}",
            Just("trace_id=".to_string()),
            Just("TraceId: ".to_string()),
            Just("span_id=".to_string()),
            Just("Root=".to_string()),
            Just("1-".to_string()),
            Just("-".to_string()),
            Just("00-".to_string()),
            Just("-01".to_string()),
            Just(":".to_string()),
            Just("0".to_string()),
            Just("ab".to_string()),
            Just("b3: ".to_string()),
            Just("uber-trace-id: ".to_string()),
            Just("[app,".to_string()),
            Just(",".to_string()),
            Just("]".to_string()),
            Just("dd.trace_id=".to_string()),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
    }

    fn hex(n: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..16, n).prop_map(|v| {
            v.iter()
                .map(|d| char::from_digit(u32::from(*d), 16).unwrap())
                .collect::<String>()
        })
    }

    /// (line fragment, expected trace id, expected span id)
    fn embedded() -> impl Strategy<Value = (String, String, String)> {
        (
            hex(32),
            hex(16),
            1usize..=32,
            any::<u64>(),
            any::<u64>(),
            0usize..12,
        )
            .prop_filter_map("zero ids mean none", |(t, s, jlen, dt, ds, kind)| {
                if t.bytes().all(|b| b == b'0')
                    || s.bytes().all(|b| b == b'0')
                    || dt == 0
                    || ds == 0
                {
                    return None;
                }
                let t16 = &t[16..];
                let pad = |x: &str| format!("{x:0>32}");
                Some(match kind {
                    0 => (format!("trace_id={t} span_id={s}"), t.clone(), s.clone()),
                    1 => (format!("trace_id={t16}"), pad(t16), String::new()),
                    2 => (format!("traceparent: 00-{t}-{s}-01"), t.clone(), s.clone()),
                    3 => (format!("\"00-{t}-{s}-01\""), t.clone(), s.clone()),
                    4 => (
                        format!("TraceId: 1-{}-{} SegmentId: {s}", &t[..8], &t[8..]),
                        t.clone(),
                        s.clone(),
                    ),
                    5 => (
                        format!("Root=1-{}-{};Parent={s};Sampled=1", &t[..8], &t[8..]),
                        t.clone(),
                        s.clone(),
                    ),
                    6 => (format!("[{t}-{s}]"), t.clone(), s.clone()),
                    7 => (format!("[app,{t16},{s},true]"), pad(t16), s.clone()),
                    8 => {
                        let short = t[32 - jlen..].trim_start_matches('0').to_string();
                        if short.is_empty() {
                            return None;
                        }
                        (
                            format!("uber-trace-id: {short}:{s}:0:1"),
                            pad(&short),
                            s.clone(),
                        )
                    }
                    9 => (format!("b3: {t}-{s}-1"), t.clone(), s.clone()),
                    10 => (
                        format!("dd.trace_id={dt} dd.span_id={ds}"),
                        format!("{dt:032x}"),
                        format!("{ds:016x}"),
                    ),
                    _ => (
                        format!("X-B3-TraceId: {t} X-B3-SpanId: {s}"),
                        t.clone(),
                        s.clone(),
                    ),
                })
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn random_text_around_ids_yields_the_id_or_nothing(
            before in filler(), after in filler(), (id, t, s) in embedded(),
            sep_before in prop_oneof![Just(" "), Just(""), Just(", ")],
            sep_after in prop_oneof![Just(" "), Just(""), Just(";")],
        ) {
            // decimal ids run on into adjacent digits: only there a separator is required
            let decimal = id.starts_with("dd.");
            let (sb, sa) = if decimal { (" ", " ") } else { (sep_before, sep_after) };
            let line = format!("{before}{sb}{id}{sa}{after}");
            if line.trim().is_empty() { return Ok(()); }
            let mut out = Vec::new();
            decoder().decode(Bytes::from(line.clone()), InputLogFormat::Text, ORIGIN, 0, &mut out).unwrap();
            let ev = &out[0];
            if let Some(got) = ev.trace_id {
                prop_assert_eq!(got.to_string(), t, "line {:?}", line);
            }
            if let Some(got) = ev.span_id {
                prop_assert!(!s.is_empty(), "line {:?} gave span {}", line, got);
                prop_assert_eq!(got.to_string(), s, "line {:?}", line);
            }
        }
    }
}

/// Searching from where the prefilter saw a rule's leading literal finds the same match, with
/// the same groups, as the rule's regex over the whole line.
mod search_from_literal {
    use super::*;
    use proptest::prelude::*;

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[".to_string()),
            Just("]".to_string()),
            Just("-".to_string()),
            Just(":".to_string()),
            Just("=".to_string()),
            Just(" ".to_string()),
            Just("\"".to_string()),
            Just("x".to_string()),
            Just("traceparent".to_string()),
            Just("TraceParent: ".to_string()),
            Just("00-".to_string()),
            Just("Root=1-".to_string()),
            Just(";Parent=".to_string()),
            Just("uber-trace-id".to_string()),
            Just("b3".to_string()),
            Just("B3: ".to_string()),
            Just("dd.trace_id".to_string()),
            Just(" dd.span_id=".to_string()),
            Just("trace_id".to_string()),
            Just("xtrace.id=".to_string()),
            Just("otelTraceID:".to_string()),
            Just("é".to_string()),
            "[0-9a-f]{1,33}",
            "[0-9]{1,21}",
            "[0-9a-fA-F:-]{1,8}",
            "[ -~]{0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn same_match_as_the_whole_line_search(parts in proptest::collection::vec(fragment(), 0..14)) {
            let line = parts.concat();
            let rules = ExtractRules::builtin().compile().unwrap();
            let pf = rules.prefilter.as_ref().unwrap();
            let mut c = Candidates { rules: 0, first: [usize::MAX; 64] };
            pf.candidates_into(&line, &mut c);
            for (i, rule) in rules.text.iter().enumerate() {
                let Some(re) = &rule.at_literal else { continue };
                let want = rule.regex.captures(&line);
                if c.first[i] == usize::MAX {
                    prop_assert!(want.is_none(), "rule {} matches {:?} without its literal", rule.name, line);
                    continue;
                }
                let mut a = Anchored { cache: re.create_cache(), caps: re.create_captures() };
                let got = search_from_literal(re, &mut a, &line, c.first[i]);
                prop_assert_eq!(got, want.is_some(), "rule {} on {:?}", rule.name, line);
                if let Some(want) = want {
                    for g in 0..want.len() {
                        let w = want.get(g).map(|m| (m.start(), m.end()));
                        let h = a.caps.get_group(g).map(|m| (m.start, m.end));
                        prop_assert_eq!(w, h, "rule {} group {} on {:?}", rule.name, g, line);
                    }
                }
            }
        }
    }

    #[test]
    fn rules_that_start_with_a_literal() {
        let rules = ExtractRules::builtin().compile().unwrap();
        let named: Vec<&str> = rules
            .text
            .iter()
            .filter(|r| r.at_literal.is_some())
            .map(|r| r.name.as_str())
            .collect();
        for name in [
            "w3c_traceparent",
            "spring_boot_correlation",
            "jaeger",
            "b3_single",
            "trace_id_key_value",
        ] {
            assert!(named.contains(&name), "{name} not in {named:?}");
        }
        for name in [
            "xray_trace_id",
            "bare_traceparent",
            "span_id_key_value",
            "leading_time_and_level",
        ] {
            assert!(!named.contains(&name), "{name} in {named:?}");
        }
    }
}
