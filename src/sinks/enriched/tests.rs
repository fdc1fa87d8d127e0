use super::*;
use crate::model::*;
use std::sync::Arc;

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
            ack: crate::sources::ack::Ack::detached(),
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

// The golden file (`tests/golden/enriched_matched_span.json`) is checked by `tests/golden.rs`,
// which only compares; `scripts/bless-golden.sh` rewrites it on purpose.

#[test]
fn no_trace_log_has_no_span_or_trace() {
    let mut j = joined();
    j.outcome = JoinOutcome::NoTraceId;
    j.reason = EmitReason::NoTraceId;
    j.span = None;
    j.trace = None;
    j.log.trace_id = None;
    j.log.span_id = None;
    j.log.fields = LogFields::None;
    j.log.format = LogFormat::Text;
    let mut buf = Vec::new();
    encode(&j, "raw", &mut buf);
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["join"]["outcome"], "no_trace_id");
    assert!(v.get("span").is_none() && v.get("trace").is_none() && v.get("trace_id").is_none());
    assert_eq!(v["log"], serde_json::json!({"format": "text"}));
}

#[test]
fn id_match_says_how_the_trace_id_met_the_trace() {
    let id_match = |j: &JoinedLog| {
        let mut buf = Vec::new();
        encode(j, "raw", &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        (
            v["join"].get("id_match").cloned(),
            v["trace_id"].as_str().map(str::to_string),
        )
    };
    let j = joined();
    assert_eq!(id_match(&j), (Some("full".into()), Some("4b".repeat(16))));
    // A 64-bit id the join rewrote to its trace's full id.
    let mut low = joined();
    low.log.trace_id_width = TraceIdWidth::Bits64;
    assert_eq!(id_match(&low).0, Some("low64".into()));
    // A 64-bit id equal to a trace whose high half is zero was not rewritten.
    let mut padded = joined();
    padded.log.trace_id_width = TraceIdWidth::Bits64;
    padded.log.trace_id = TraceId::from_low64(0x4b4b_4b4b_4b4b_4b4b);
    assert_eq!(id_match(&padded).0, Some("full".into()));
    let mut ambiguous = low;
    ambiguous.outcome = JoinOutcome::Unmatched;
    ambiguous.reason = EmitReason::AmbiguousId;
    ambiguous.span = None;
    ambiguous.trace = None;
    assert_eq!(id_match(&ambiguous).0, None);
}

proptest::proptest! {
    /// The hand-written timestamp equals chrono's formatting over the whole `i64` range.
    #[test]
    fn timestamps_render_as_chrono_does(nanos in proptest::num::i64::ANY) {
        let chrono = chrono::DateTime::from_timestamp_nanos(nanos)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string();
        let mut buf = [0; 30];
        proptest::prop_assert_eq!(rfc3339_nanos(nanos, &mut buf), chrono);
    }
}

#[test]
fn timestamps_at_the_edges_render_as_chrono_does() {
    for nanos in [
        0,
        -1,
        1,
        i64::MIN,
        i64::MAX,
        951_782_400_000_000_000,   // 2000-02-29
        4_107_542_399_999_999_999, // 2100-02-28T23:59:59.999999999
        -86_400_000_000_000,
        1_764_633_600_123_456_789,
    ] {
        let chrono = chrono::DateTime::from_timestamp_nanos(nanos)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string();
        assert_eq!(rfc3339_nanos(nanos, &mut [0; 30]), chrono, "{nanos}");
    }
}
