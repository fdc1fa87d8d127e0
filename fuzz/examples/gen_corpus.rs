//! Writes the fuzz seed corpus (`fuzz/corpus/<target>/seed-*`) and the binary and generated
//! records of the bad-input corpus (`tests/corpus/bad/`). Valid OTLP is encoded with the
//! generated `opentelemetry-proto` types, so the seeds are what a real exporter writes; the bad
//! records are byte-level edits of it. The output is committed; rerun after changing a case:
//!
//! ```text
//! cd fuzz && cargo run --example gen_corpus
//! ```
//!
//! The `kept-*` corpus files are not written here: they are entries a fuzzing run found, picked
//! by greedy set cover over edge coverage (ten per target), and committed as they are.
//!
//! Hand-written text cases (`*.json`, `*.logfmt`, `*.text`, …) live only in `tests/corpus/bad/`;
//! this program writes a file there only when the case needs bytes a text editor mangles
//! (protobuf, invalid UTF-8, NUL) or is too big to write by hand (deep nesting).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use std::path::{Path, PathBuf};

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const T_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S_HEX: &str = "00f067aa0ba902b7";
const NOW: u64 = 1_700_000_000_123_000_000;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv(
            "service.name",
            any_value::Value::StringValue(service.into()),
        )],
        ..Default::default()
    })
}

fn span(trace_id: &[u8], span_id: &[u8], parent: &[u8], name: &str, err: bool) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: NOW - 5_000_000,
        end_time_unix_nano: NOW,
        attributes: vec![
            kv(
                "http.route",
                any_value::Value::StringValue("/cart/{id}".into()),
            ),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(if err { 503 } else { 200 }),
            ),
            kv("sampled", any_value::Value::BoolValue(true)),
            kv("ratio", any_value::Value::DoubleValue(0.25)),
        ],
        events: if err {
            vec![span::Event {
                name: "exception".into(),
                attributes: vec![kv(
                    "exception.type",
                    any_value::Value::StringValue("TimeoutError".into()),
                )],
                ..Default::default()
            }]
        } else {
            vec![]
        },
        status: Some(Status {
            code: if err {
                status::StatusCode::Error
            } else {
                status::StatusCode::Ok
            } as i32,
            message: if err {
                "upstream timeout".into()
            } else {
                String::new()
            },
        }),
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![9; 8],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn traces(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn log_record(trace_id: &[u8], span_id: &[u8], time: u64, observed: u64, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: 17,
        severity_text: String::new(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        attributes: vec![kv("user.id", any_value::Value::IntValue(42))],
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        ..Default::default()
    }
}

fn logs(records: Vec<LogRecord>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("checkout"),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

// Hand encoding, for what the generated types cannot express (wrong wire types, bad UTF-8).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn tag(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | u64::from(wire), out);
}
fn ld(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    tag(field, 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}
/// Wraps span bytes into resource_spans { scope_spans { spans } }.
fn wrap_span(span: &[u8]) -> Vec<u8> {
    ld(1, &ld(2, &ld(2, span)))
}
/// Wraps log record bytes into resource_logs { scope_logs { log_records } }.
fn wrap_log(record: &[u8]) -> Vec<u8> {
    ld(1, &ld(2, &ld(2, record)))
}

/// Deterministic garbage (xorshift), so the committed file is reproducible.
fn garbage(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

struct Out {
    fuzz: PathBuf,
    bad: PathBuf,
}

impl Out {
    fn seed(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        write(
            &self.fuzz.join(target).join(format!("seed-{name}")),
            bytes.as_ref(),
        );
    }
    /// A logs seed: the selector byte picks the format (see fuzz_targets/logs.rs).
    fn log_seed(&self, name: &str, format: u8, bytes: impl AsRef<[u8]>) {
        let mut v = vec![format];
        v.extend_from_slice(bytes.as_ref());
        self.seed("logs", name, v);
    }
    fn bad(&self, file: &str, bytes: impl AsRef<[u8]>) {
        write(&self.bad.join(file), bytes.as_ref());
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

// Selector bytes of the logs target.
const AUTO: u8 = 0;
const OTLP_PROTO: u8 = 1;
const OTLP_JSON: u8 = 2;
const JSON: u8 = 3;
const LOGFMT: u8 = 4;
const TEXT: u8 = 5;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Out {
        fuzz: root.join("corpus"),
        bad: root.join("../tests/corpus/bad"),
    };

    // ---- spans ----
    let good = traces(vec![
        span(&TRACE, &SPAN, &[], "POST /cart", true),
        span(&TRACE, &[2; 8], &SPAN, "SELECT", false),
    ]);
    o.seed("spans", "proto-two-spans", &good);
    o.seed("spans", "proto-empty-request", traces(vec![]));
    o.seed(
        "spans",
        "proto-bad-ids",
        traces(vec![
            span(&[0; 16], &SPAN, &[], "zero trace", false),
            span(&TRACE[..8], &SPAN, &[], "short trace", false),
            span(&TRACE, &[0; 8], &[], "zero span", false),
            span(&TRACE, &SPAN, &[], "good", false),
        ]),
    );
    o.seed("spans", "proto-truncated", &good[..good.len() / 2]);
    o.seed(
        "spans",
        "json-two-spans",
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{T_HEX}","spanId":"{S_HEX}","name":"POST /cart","kind":2,"startTimeUnixNano":"1700000000118000000","endTimeUnixNano":"1700000000123000000","attributes":[{{"key":"http.route","value":{{"stringValue":"/cart/{{id}}"}}}},{{"key":"http.response.status_code","value":{{"intValue":"503"}}}}],"events":[{{"name":"exception","attributes":[{{"key":"exception.type","value":{{"stringValue":"TimeoutError"}}}}]}}],"status":{{"code":2,"message":"upstream timeout"}}}},{{"traceId":"{T_HEX}","spanId":"0202020202020202","parentSpanId":"{S_HEX}","name":"SELECT","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1700000000119000000,"endTimeUnixNano":1700000000122000000,"status":{{"code":"STATUS_CODE_OK"}}}}]}}]}}]}}"#
        ),
    );
    o.seed(
        "spans",
        "json-snake-case",
        format!(
            r#"{{"resource_spans":[{{"scope_spans":[{{"spans":[{{"trace_id":"{T_HEX}","span_id":"{S_HEX}","start_time_unix_nano":1,"end_time_unix_nano":2.5e9}}]}}]}}]}}"#
        ),
    );

    // ---- logs ----
    let good_logs = logs(vec![
        log_record(&TRACE, &SPAN, NOW, NOW + 1, "db timeout"),
        log_record(&TRACE, &[], 0, NOW, "observed only"),
        log_record(&[], &[], 0, 0, "no ids, no time"),
    ]);
    o.log_seed("otlp-proto", OTLP_PROTO, &good_logs);
    o.log_seed("otlp-proto-auto", AUTO, &good_logs);
    o.log_seed(
        "otlp-proto-truncated",
        AUTO,
        &good_logs[..good_logs.len() - 3],
    );
    let otlp_json = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1700000000123000000","severityNumber":17,"severityText":"ERROR","body":{{"stringValue":"db timeout"}},"traceId":"{T_HEX}","spanId":"{S_HEX}","attributes":[{{"key":"n","value":{{"doubleValue":1.5}}}}]}},{{"observedTimeUnixNano":1700000000,"body":{{"boolValue":true}}}}]}}]}}]}}"#
    );
    o.log_seed("otlp-json", OTLP_JSON, &otlp_json);
    o.log_seed("otlp-json-auto", AUTO, &otlp_json);
    let json_line = format!(
        r#"{{"timestamp":"2023-11-14T22:13:20.123Z","level":"ERROR","message":"db timeout","trace_id":"{T_HEX}","span_id":"{S_HEX}","service":"checkout","extra":{{"a":[1,2,{{"b":null}}]}}}}"#
    );
    o.log_seed("json", JSON, &json_line);
    o.log_seed("json-auto", AUTO, &json_line);
    o.log_seed(
        "json-nested-dd",
        JSON,
        r#"{"msg":"x","trace":{"id":"4bf92f3577b34da6a3ce929d0e0e4736"},"dd":{"trace_id":"1234567890123456789","span_id":42},"ts":1700000000123}"#,
    );
    o.log_seed(
        "json-id-in-message",
        AUTO,
        r#"{"msg":"call failed traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","t":"2023-11-14 22:13:20,123"}"#,
    );
    let logfmt = format!(
        r#"ts=2023-11-14T22:13:20.123Z level=warn msg="slow \"query\"\ttook 3s" trace_id={T_HEX} span_id={S_HEX} service=checkout"#
    );
    o.log_seed("logfmt", LOGFMT, &logfmt);
    o.log_seed("logfmt-auto", AUTO, &logfmt);
    o.log_seed(
        "logfmt-traceparent",
        AUTO,
        "time=1700000000.5 lvl=info traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 bare",
    );
    let text = format!(
        "2023-11-14 22:13:20,123 ERROR [checkout] payment failed trace_id={T_HEX} span_id={S_HEX}"
    );
    o.log_seed("text", TEXT, &text);
    o.log_seed("text-auto", AUTO, &text);
    o.log_seed(
        "text-xray",
        AUTO,
        "[warn] request 1-5759e988-bd862e3fe1be46a994272793 dd.trace_id=1234567890123456789",
    );
    o.log_seed(
        "traceparent-zero",
        TEXT,
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    );
    // Selector 6*k+f picks the k-th Kafka time (0, i64::MIN, i64::MAX).
    o.log_seed(
        "text-kafka-time-max",
        3 * 6 + TEXT,
        "no time here trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    o.log_seed(
        "json-kafka-time-min",
        2 * 6 + JSON,
        r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","ts":-1}"#,
    );
    o.log_seed(
        "invalid-utf8",
        AUTO,
        b"level=info msg=caf\xe9 trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    o.log_seed("whitespace", AUTO, " \t\r\n");

    // ---- rules ----
    let shipped = std::fs::read_to_string(root.join("../rules/extract.yaml")).unwrap();
    o.seed("rules", "shipped", &shipped);
    o.seed("rules", "minimal", "fields:\n  trace_id: [tid]\ntext: []\n");
    o.seed(
        "rules",
        "encodings",
        "fields:\n  trace_id: [{path: dd.trace_id, encoding: decimal}, {path: t, encoding: hex}, x.y.z]\n  span_id: [{path: s}]\ntext:\n  - name: kv\n    pattern: 'tid=(?P<trace_id>\\w+) sid=(?P<span_id>\\w+) (?P<message>.*)'\n",
    );
    o.seed(
        "rules",
        "bad-regex",
        "text:\n  - name: broken\n    pattern: '(?P<trace_id>['\n",
    );
    o.seed(
        "rules",
        "unknown-group",
        "text:\n  - name: odd\n    pattern: '(?P<user>x)'\n",
    );
    o.seed(
        "rules",
        "anchors",
        "fields: &f\n  trace_id: &t [a, b]\n  span_id: *t\ntext: []\n",
    );

    // ---- bad-input corpus: spans ----
    o.bad("truncated_half.spans_proto", &good[..good.len() / 2]);
    o.bad("truncated_last_byte.spans_proto", &good[..good.len() - 1]);
    o.bad("garbage.spans_proto", garbage(512, 0x9e37_79b9_7f4a_7c15));
    // resource_spans (field 1, a message) sent as a varint.
    o.bad("wrong_wire_type_top.spans_proto", [0x08, 0x01]);
    // span.trace_id (field 1, bytes) sent as a fixed64.
    let mut s = Vec::new();
    tag(1, 1, &mut s);
    s.extend_from_slice(&[1; 8]);
    s.extend(ld(2, &SPAN));
    o.bad("wrong_wire_type_trace_id.spans_proto", wrap_span(&s));
    // span.end_time_unix_nano (field 8, fixed64) sent as a varint.
    let mut s = ld(1, &TRACE);
    s.extend(ld(2, &SPAN));
    tag(8, 0, &mut s);
    varint(NOW, &mut s);
    o.bad("wrong_wire_type_end_time.spans_proto", wrap_span(&s));
    // A length prefix far past the end of the record.
    let mut s = Vec::new();
    tag(1, 2, &mut s);
    varint(u64::from(u32::MAX), &mut s);
    s.extend_from_slice(b"short");
    o.bad("length_past_end.spans_proto", s);
    // An 11-byte varint: longer than any u64.
    o.bad(
        "varint_overflow.spans_proto",
        [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    );
    // 10 000 nested groups in an unknown field: prost's recursion limit, not the stack.
    o.bad("nested_groups.spans_proto", [0x7b].repeat(10_000));
    // A field number tracejoin does not know, only: an empty request.
    let mut s = Vec::new();
    tag(99, 0, &mut s);
    varint(7, &mut s);
    o.bad("unknown_field_only.spans_proto", s);
    // White space is protobuf too: spaces are field 4 varints (unknown, skipped), but a tab or a
    // CR after a space is a wire-type error.
    o.bad("whitespace.spans_proto", b"    ");
    o.bad("whitespace_mixed.spans_proto", b" \t\r\n");
    o.bad(
        "ids_zero_short_long.spans_proto",
        traces(vec![
            span(&[0; 16], &SPAN, &[], "zero trace", false),
            span(&TRACE[..8], &SPAN, &[], "short trace", false),
            span(&[0x4b; 20], &SPAN, &[], "long trace", false),
            span(&TRACE, &[0; 8], &[], "zero span", false),
            span(&TRACE, &SPAN[..4], &[], "short span", false),
            span(&TRACE, &SPAN, &[0; 8], "good, zero parent", false),
        ]),
    );
    let mut far = span(&TRACE, &SPAN, &[], "far", false);
    far.start_time_unix_nano = u64::MAX - 1;
    far.end_time_unix_nano = u64::MAX;
    o.bad("time_u64_max.spans_proto", traces(vec![far]));
    let mut zero = span(&TRACE, &SPAN, &[], "epoch", false);
    zero.start_time_unix_nano = 0;
    zero.end_time_unix_nano = 0;
    o.bad("time_zero.spans_proto", traces(vec![zero]));
    let mut backwards = span(&TRACE, &SPAN, &[], "backwards", false);
    backwards.start_time_unix_nano = NOW;
    backwards.end_time_unix_nano = 1;
    o.bad("end_before_start.spans_proto", traces(vec![backwards]));
    // Invalid UTF-8 in the span name and in service.name.
    let mut s = ld(1, &TRACE);
    s.extend(ld(2, &SPAN));
    s.extend(ld(5, b"caf\xe9 \xff\xfe"));
    let svc = ld(
        1,
        &[ld(1, b"service.name"), ld(2, &ld(1, b"\xc3\x28"))].concat(),
    );
    o.bad(
        "invalid_utf8_names.spans_proto",
        ld(1, &[ld(1, &svc), ld(2, &ld(2, &s))].concat()),
    );
    let mut nul = span(&TRACE, &SPAN, &[], "a\0b", false);
    nul.attributes[0] = kv("http.route", any_value::Value::StringValue("/\0/".into()));
    o.bad("nul_bytes.spans_proto", traces(vec![nul]));
    // An attribute whose value nests arrays 10 000 deep (AnyValue.array_value, skipped unread).
    let mut any = ld(1, b"leaf");
    for _ in 0..10_000 {
        any = ld(5, &ld(1, &any));
    }
    let mut s = ld(1, &TRACE);
    s.extend(ld(2, &SPAN));
    s.extend(ld(9, &[ld(1, b"http.route"), ld(2, &any)].concat()));
    o.bad("nested_attribute_arrays.spans_proto", wrap_span(&s));
    o.bad(
        "deep_nesting_known_field.spans_json",
        format!(r#"{{"resourceSpans":{}}}"#, nested("[", "]", 10_000, "")),
    );
    o.bad(
        "deep_nesting_unknown_field.spans_json",
        format!(
            r#"{{"resourceSpans":[],"extra":{}}}"#,
            nested("[", "]", 10_000, "")
        ),
    );
    o.bad(
        "invalid_utf8.spans_json",
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"caf\xe9\"}]}]}]}",
    );
    o.bad(
        "nul_raw_in_string.spans_json",
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"a\0b\"}]}]}]}",
    );

    // ---- bad-input corpus: logs ----
    o.bad("truncated.otlp_proto", &good_logs[..good_logs.len() - 3]);
    o.bad("garbage.otlp_proto", garbage(300, 0x2545_f491_4f6c_dd1d));
    // log_record.time_unix_nano (field 1, fixed64) sent as a varint.
    let mut r = Vec::new();
    tag(1, 0, &mut r);
    varint(NOW, &mut r);
    o.bad("wrong_wire_type_time.otlp_proto", wrap_log(&r));
    o.bad(
        "ids_zero_short.otlp_proto",
        logs(vec![
            log_record(&[0; 16], &[0; 8], NOW, 0, "zero ids"),
            log_record(&TRACE[..15], &SPAN[..7], NOW, 0, "short ids"),
        ]),
    );
    o.bad(
        "no_time.otlp_proto",
        logs(vec![log_record(&TRACE, &SPAN, 0, 0, "no time at all")]),
    );
    o.bad(
        "time_u64_max.otlp_proto",
        logs(vec![log_record(&TRACE, &SPAN, u64::MAX, 0, "far future")]),
    );
    let mut r = ld(9, &TRACE);
    r.extend(ld(10, &SPAN));
    r.extend(ld(5, &ld(1, b"caf\xe9 \x00 \xff")));
    r.extend(ld(3, b"\xffERROR"));
    o.bad("invalid_utf8_body.otlp_proto", wrap_log(&r));
    // Random bytes in auto mode: neither UTF-8 nor OTLP.
    o.bad("garbage.auto", garbage(300, 0x2545_f491_4f6c_dd1d));

    o.bad("deep_nesting_arrays.json", nested("[", "]", 10_000, ""));
    o.bad("deep_nesting_arrays.auto", nested("[", "]", 10_000, ""));
    o.bad("deep_nesting_unclosed.json", "[".repeat(10_000));
    o.bad(
        "deep_nesting_inside_object.json",
        format!(
            r#"{{"msg":"deep","trace_id":"{T_HEX}","a":{}}}"#,
            nested("[", "]", 10_000, "1")
        ),
    );
    o.bad(
        "deep_nesting_objects.json",
        format!(
            r#"{{"msg":"deep","trace":{}}}"#,
            nested(r#"{"trace":"#, "}", 10_000, "1")
        ),
    );
    o.bad(
        "deep_nesting_in_field.otlp_json",
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":{}}}]}}]}}]}}"#,
            nested("[", "]", 10_000, "")
        ),
    );
    o.bad(
        "invalid_utf8.json",
        b"{\"msg\":\"caf\xe9\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}",
    );
    o.bad(
        "invalid_utf8.auto",
        b"level=info msg=caf\xe9 trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    o.bad(
        "invalid_utf8.logfmt",
        b"level=info msg=caf\xe9 trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    o.bad(
        "invalid_utf8.text",
        b"2023-11-14 22:13:20 ERROR caf\xe9 trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    o.bad("invalid_utf8_lone_continuation.text", b"\x80\x80\x80");
    o.bad("invalid_utf8_overlong_nul.text", b"a\xc0\x80b");
    o.bad("invalid_utf8_surrogate.text", b"a\xed\xa0\x80b");
    o.bad(
        "invalid_utf8.otlp_json",
        b"{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":{\"stringValue\":\"caf\xe9\"}}]}]}]}",
    );
    o.bad("nul_only.text", b"\0");
    o.bad("nul_only.auto", b"\0\0\0");
    o.bad(
        "nul_in_line.text",
        b"ERROR a\0b trace_id=4bf92f3577b34da6a3ce929d0e0e4736\0",
    );
    o.bad(
        "nul_in_line.logfmt",
        b"msg=a\0b trace_id=4bf92f3577b34da6a3ce929d0e0e4736 x=\0",
    );
    o.bad(
        "nul_raw_in_string.json",
        b"{\"msg\":\"a\0b\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}",
    );
    o.bad("empty.json", b"");
    o.bad("empty.logfmt", b"");
    o.bad("empty.text", b"");
    o.bad("empty.auto", b"");
    o.bad("empty.otlp_proto", b"");
    o.bad("empty.otlp_json", b"");
    o.bad("whitespace.json", b" \t\r\n ");
    o.bad("whitespace.logfmt", b"\n\n");
    o.bad("whitespace.text", b"   \t  \r\n");
    o.bad("whitespace.auto", b"\x0b\x0c \n");
    o.bad("whitespace.otlp_proto", b" \n");
    o.bad("nbsp_only.text", "\u{a0}\u{3000}".as_bytes());
    // 0x0a first: sniffed as protobuf, which fails; then it is a text line.
    o.bad(
        "newline_first_text.auto",
        b"\nlevel=info msg=hi trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    );
    // A text line that is also valid protobuf holding one empty log record.
    o.bad("text_that_is_protobuf.auto", b"\n\x04\x12\x02\x12\x00");
}
