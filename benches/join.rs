//! Join stage at 10k, 100k and 1M open traces: a span arrives, then its log, which leaves at
//! once (the common path), with the state held at the given size: the bound is that size, so
//! every pair's new trace pushes the oldest out, as in a steady state where one trace leaves
//! for each that comes (the state used to grow through the run, past the size in the name). And the stage after it: the
//! enriched JSON of a log that left matched, into the reused buffer the outbox keeps.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use tracejoin::join::{Join, JoinOutput, JoinSettings};
use tracejoin::model::*;

fn span(t: u64, s: u64, ts: i64) -> SpanSummary {
    let mut tid = [0u8; 16];
    tid[..8].copy_from_slice(&t.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    tid[8..].copy_from_slice(&(t | 1).to_be_bytes());
    SpanSummary {
        trace_id: TraceId(tid),
        span_id: SpanId((s | 1).to_be_bytes()),
        parent_span_id: None,
        service: "checkout".into(),
        name: "POST /cart".into(),
        kind: SpanKind::Server,
        status: StatusCode::Ok,
        status_message: None,
        start_unix_nanos: ts - 1000,
        end_unix_nanos: ts,
        exception_type: None,
        attributes: vec![],
    }
}

fn log_for(sp: &SpanSummary, ts: i64) -> LogEvent {
    LogEvent {
        timestamp_unix_nanos: ts,
        timestamp_source: TimestampSource::Record,
        trace_id: Some(sp.trace_id),
        trace_id_width: Default::default(),
        span_id: Some(sp.span_id),
        severity: Some("INFO".into()),
        body: "checkout started for order 1234 items=3".into(),
        service: None,
        fields: LogFields::None,
        format: LogFormat::Json,
        origin: Origin {
            topic: 1,
            partition: 0,
            offset: 0,
        },
        ack: tracejoin::sources::ack::Ack::detached(),
    }
}

fn join(c: &mut Criterion) {
    let mut g = c.benchmark_group("join_span_then_log");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for open in [10_000u64, 100_000, 1_000_000] {
        let mut j = Join::new(JoinSettings {
            max_wait: Duration::from_secs(10),
            span_retention: Duration::from_secs(3600),
            max_traces: open as usize,
            max_state_bytes: usize::MAX,
        });
        let mut out = JoinOutput::default();
        let ack = tracejoin::sources::ack::Ack::detached();
        for t in 0..open {
            j.on_spans([span(t, t, 1_000)], &ack, &mut out);
        }
        let mut next = open;
        g.bench_function(format!("{open}_open_traces"), |b| {
            b.iter_batched(
                || {
                    next += 1;
                    let sp = span(next, next, 2_000);
                    let log = log_for(&sp, 2_000);
                    (sp, log)
                },
                |(sp, log)| {
                    j.on_spans([sp], &ack, &mut out);
                    j.on_log(log, &mut out);
                    out.emitted.clear();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_enriched");
    g.throughput(Throughput::Elements(1));
    let mut j = Join::new(JoinSettings {
        max_wait: Duration::from_secs(10),
        span_retention: Duration::from_secs(3600),
        max_traces: 10,
        max_state_bytes: usize::MAX,
    });
    let mut out = JoinOutput::default();
    let ack = tracejoin::sources::ack::Ack::detached();
    let mut sp = span(7, 7, 2_000);
    sp.attributes = vec![
        ("http.route".into(), AttrValue::Str("/cart/{id}".into())),
        ("http.response.status_code".into(), AttrValue::Int(200)),
    ];
    let log = log_for(&sp, 2_000);
    j.on_spans([sp], &ack, &mut out);
    j.on_log(log, &mut out);
    let joined = out.emitted.pop().expect("the log leaves matched");
    assert_eq!(joined.outcome, JoinOutcome::MatchedSpan);
    let mut buf = Vec::new();
    g.bench_function("matched_span", |b| {
        b.iter(|| {
            buf.clear();
            tracejoin::sinks::enriched::encode(&joined, "app-logs", &mut buf);
            std::hint::black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, join, encode);
criterion_main!(benches);
