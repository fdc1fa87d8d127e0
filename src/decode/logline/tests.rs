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
    LogDecoder::new(Arc::new(ExtractRules::builtin().compile().unwrap()), 1000)
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
