//! Log records: arbitrary bytes through `LogDecoder::decode`, then through a small join.
//!
//! The first byte picks the input format (`% 6`) and the Kafka record time (`/ 6 % 4`: a normal
//! time, zero, `i64::MIN`, `i64::MAX`); the rest is the record. Every decoded log is fed to a
//! join with tiny bounds, together with a span made from the log's own ids (before or after the
//! log, by its index), while the watermark follows the event times. Checked: nothing panics,
//! and every log leaves the join exactly once (ARCHITECTURE.md invariant 1), with every span
//! record released once the state is drained.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracejoin::decode::logline::{InputLogFormat, LogDecoder};
use tracejoin::decode::rules::{CompiledRules, ExtractRules};
use tracejoin::join::{Join, JoinOutput, JoinSettings};
use tracejoin::model::{Origin, SpanId, SpanKind, SpanSummary, StatusCode};

const FORMATS: [InputLogFormat; 6] = [
    InputLogFormat::Auto,
    InputLogFormat::OtlpProto,
    InputLogFormat::OtlpJson,
    InputLogFormat::Json,
    InputLogFormat::Logfmt,
    InputLogFormat::Text,
];
const KAFKA_TIMES: [i64; 4] = [1_700_000_000_000_000_000, 0, i64::MIN, i64::MAX];

fn rules() -> Arc<CompiledRules> {
    static RULES: OnceLock<Arc<CompiledRules>> = OnceLock::new();
    RULES
        .get_or_init(|| Arc::new(ExtractRules::builtin().compile().expect("built-in rules")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, record)) = data.split_first() else {
        return;
    };
    let format = FORMATS[selector as usize % FORMATS.len()];
    let kafka_time = KAFKA_TIMES[selector as usize / FORMATS.len() % KAFKA_TIMES.len()];
    let origin = Origin {
        topic: 1,
        partition: 0,
        offset: 0,
    };
    let mut decoder = LogDecoder::new(rules(), 4);
    let mut logs = Vec::new();
    match decoder.decode(
        Bytes::copy_from_slice(record),
        format,
        origin,
        kafka_time,
        &mut logs,
    ) {
        Ok(()) => {}
        Err(e) => {
            let _ = (e.code(), e.to_string());
            // Auto may have tried OTLP first; whatever it tried, nothing half-decoded leaks out.
            assert!(logs.is_empty(), "a failed record yielded logs");
            return;
        }
    }

    let mut join = Join::new(JoinSettings {
        max_wait: Duration::from_secs(5),
        span_retention: Duration::from_secs(30),
        max_traces: 3,
        max_state_bytes: 4096,
    });
    let mut out = JoinOutput::default();
    let (mut holds, n) = (0u32, logs.len());
    for (i, mut log) in logs.into_iter().enumerate() {
        // The offset names the log, so that "exactly once" can be checked below.
        log.origin.offset = i as i64;
        let ts = log.timestamp_unix_nanos;
        let span = log.trace_id.map(|trace_id| SpanSummary {
            trace_id,
            span_id: log.span_id.unwrap_or(SpanId([1; 8])),
            parent_span_id: None,
            service: "svc".into(),
            name: "op".into(),
            kind: SpanKind::Server,
            status: StatusCode::Unset,
            status_message: None,
            start_unix_nanos: ts.saturating_sub(1_000),
            end_unix_nanos: ts,
            exception_type: None,
            attributes: vec![],
        });
        let span_origin = Origin {
            topic: 0,
            partition: 0,
            offset: i as i64,
        };
        if i % 2 == 0 {
            if let Some(s) = span.clone() {
                holds += join.on_spans([s], span_origin, &mut out);
            }
            join.on_log(log, &mut out);
        } else {
            join.on_log(log, &mut out);
            if let Some(s) = span {
                holds += join.on_spans([s], span_origin, &mut out);
            }
        }
        join.advance_watermark(ts.saturating_sub(2_000_000_000), &mut out);
    }
    join.drain(&mut out);
    let mut seen = vec![0u32; n];
    for e in &out.emitted {
        seen[e.log.origin.offset as usize] += 1;
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "a log left the join {seen:?} times"
    );
    assert_eq!(
        out.released_spans.len(),
        holds as usize,
        "span holds not all released"
    );
    assert_eq!(
        (join.traces(), join.waiting_logs()),
        (0, 0),
        "state left after drain"
    );
});
