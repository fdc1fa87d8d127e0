//! The golden file pins the enriched record's shape (`tests/golden/enriched_matched_span.json`):
//! a change to it is a change for every consumer of the output topic, so it must be deliberate.
//!
//! This test only compares, and fails on any difference. To accept a new shape run
//! `scripts/bless-golden.sh`: it runs this test with `TRACEJOIN_BLESS=1`, which writes the file
//! and then fails saying so (a blessing never passes as a test), and runs the comparison again.

use std::path::PathBuf;
use std::sync::Arc;
use tracejoin::model::*;
use tracejoin::sinks::enriched::encode;

fn joined() -> JoinedLog {
    let span = SpanSummary {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0x11; 8]),
        parent_span_id: Some(SpanId([0x22; 8])),
        service: "payments".into(),
        name: "POST /charge".into(),
        kind: SpanKind::Server,
        status: StatusCode::Error,
        status_message: Some("card declined".into()),
        start_unix_nanos: 1_700_000_000_000_000_000,
        end_unix_nanos: 1_700_000_000_012_500_000,
        exception_type: Some("CardDeclined".into()),
        attributes: vec![("http.response.status_code".into(), AttrValue::Int(402))],
    };
    let raw = r#"{"level":"ERROR","message":"declined","trace_id":"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b","user":{"id":7}}"#;
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: 1_700_000_000_010_000_000,
            timestamp_source: TimestampSource::Record,
            trace_id: Some(TraceId([0x4b; 16])),
            trace_id_width: Default::default(),
            span_id: Some(SpanId([0x11; 8])),
            severity: Some("ERROR".into()),
            body: "declined".into(),
            service: Some("payments".into()),
            fields: LogFields::RawJson(
                serde_json::value::RawValue::from_string(raw.into()).unwrap(),
            ),
            format: LogFormat::Json,
            origin: Origin {
                topic: 1,
                partition: 2,
                offset: 17,
            },
            ack: tracejoin::sources::ack::Ack::detached(),
        },
        outcome: JoinOutcome::MatchedSpan,
        reason: EmitReason::SpanArrived,
        span: Some(Arc::new(span)),
        trace: Some(TraceContext {
            root_service: Some("frontend".into()),
            root_operation: Some("GET /checkout".into()),
            error: true,
            span_count: 4,
        }),
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/enriched_matched_span.json")
}

/// Compact JSON re-indented as `serde_json::to_string_pretty` does, keeping the encoder's key
/// order (a `Value` would sort the keys).
fn pretty(compact: &str) -> String {
    let (mut out, mut depth, mut in_str, mut escaped) = (String::new(), 0usize, false, false);
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out + "\n"
}

#[test]
fn enriched_json_matches_the_golden_file() {
    let mut buf = Vec::new();
    encode(&joined(), "app_logs", &mut buf);
    let got: serde_json::Value = serde_json::from_slice(&buf).expect("encode writes JSON");
    let pretty = pretty(std::str::from_utf8(&buf).unwrap());
    let path = golden_path();
    if std::env::var_os("TRACEJOIN_BLESS").is_some() {
        std::fs::write(&path, &pretty).expect("write the golden file");
        panic!(
            "BLESSED {}: the golden file was rewritten from the current encoder, nothing was \
             compared. Review it (git diff tests/golden) and run the test without \
             TRACEJOIN_BLESS.",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/bless-golden.sh writes it)",
            path.display()
        )
    });
    let want: serde_json::Value = serde_json::from_str(&text).expect("the golden file is JSON");
    assert!(
        got == want,
        "the enriched shape differs from {}; if the change is deliberate, run \
         scripts/bless-golden.sh and commit the file.\ngot:\n{pretty}",
        path.display()
    );
}
