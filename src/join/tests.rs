use super::*;
use crate::model::{LogFields, LogFormat, Origin, SpanId, SpanKind, StatusCode, TimestampSource};
use crate::sources::ack::AckLedger;
use proptest::prelude::*;
use std::collections::HashMap;

const S: i64 = 1_000_000_000;

fn settings() -> JoinSettings {
    JoinSettings {
        max_wait: Duration::from_secs(10),
        span_retention: Duration::from_secs(30),
        max_traces: 10_000,
        max_state_bytes: usize::MAX,
    }
}

fn tid(n: u8) -> TraceId {
    TraceId([n.max(1); 16])
}

fn span(trace: u8, id: u8, parent: Option<u8>, start: i64, end: i64) -> SpanSummary {
    SpanSummary {
        trace_id: tid(trace),
        span_id: SpanId([id.max(1); 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        service: format!("svc{id}").into(),
        name: format!("op{id}").into(),
        kind: SpanKind::Server,
        status: if id == 13 {
            StatusCode::Error
        } else {
            StatusCode::Ok
        },
        status_message: None,
        start_unix_nanos: start,
        end_unix_nanos: end,
        exception_type: None,
        attributes: vec![],
    }
}

fn log(n: i64, trace: Option<u8>, span: Option<u8>, ts: i64) -> LogEvent {
    LogEvent {
        timestamp_unix_nanos: ts,
        timestamp_source: TimestampSource::Record,
        trace_id: trace.map(tid),
        trace_id_width: Default::default(),
        span_id: span.map(|s| SpanId([s.max(1); 8])),
        severity: None,
        body: format!("log {n}").into(),
        service: None,
        fields: LogFields::None,
        format: LogFormat::Json,
        origin: Origin {
            topic: 1,
            partition: 0,
            offset: n,
        },
        ack: crate::sources::ack::Ack::detached(),
    }
}

#[test]
fn log_after_its_span_leaves_at_once() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [span(1, 2, Some(1), 0, 5 * S), span(1, 1, None, 0, 6 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log(0, Some(1), Some(2), 5 * S), &mut out);
    assert_eq!(out.emitted.len(), 1);
    let e = &out.emitted[0];
    assert_eq!(
        (e.outcome, e.reason),
        (JoinOutcome::MatchedSpan, EmitReason::SpanPresent)
    );
    assert_eq!(&*e.span.as_ref().unwrap().name, "op2");
    let t = e.trace.as_ref().unwrap();
    assert_eq!(t.root_operation.as_deref(), Some("op1"));
    assert_eq!(t.span_count, 2);
}

#[test]
fn log_before_its_span_waits_for_it() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_log(log(0, Some(1), Some(2), 5 * S), &mut out);
    assert!(out.emitted.is_empty());
    assert_eq!(j.waiting_logs(), 1);
    j.on_spans([span(1, 2, None, 0, 6 * S)], &Ack::detached(), &mut out);
    assert_eq!(out.emitted.len(), 1);
    assert_eq!(out.emitted[0].reason, EmitReason::SpanArrived);
    assert_eq!(j.waiting_logs(), 0);
}

#[test]
fn window_close_gives_trace_match_or_unmatched() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_log(log(0, Some(1), Some(9), 5 * S), &mut out);
    j.on_log(log(1, Some(2), Some(9), 5 * S), &mut out);
    j.on_spans([span(1, 13, None, 0, 7 * S)], &Ack::detached(), &mut out);
    assert!(out.emitted.is_empty());
    j.advance_watermark(15 * S, &mut out);
    assert!(
        out.emitted.is_empty(),
        "deadline 15s is not yet passed (strict)"
    );
    j.advance_watermark(15 * S + 1, &mut out);
    let by_trace: HashMap<_, _> = out
        .emitted
        .iter()
        .map(|e| (e.log.trace_id.unwrap(), e))
        .collect();
    let t1 = by_trace[&tid(1)];
    assert_eq!(
        (t1.outcome, t1.reason),
        (JoinOutcome::MatchedTrace, EmitReason::WindowClosed)
    );
    assert!(t1.trace.as_ref().unwrap().error);
    assert_eq!(by_trace[&tid(2)].outcome, JoinOutcome::Unmatched);
}

#[test]
fn spans_expire_after_retention_and_release_their_records() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    let mut ledger = AckLedger::new();
    let key = (0, 3);
    let ack = ledger.take(key, 17);
    j.on_spans([span(1, 1, None, 0, 10 * S)], &ack, &mut out);
    ack.complete(&mut ledger);
    j.advance_watermark(40 * S, &mut out);
    assert_eq!(j.traces(), 1);
    ledger.drain();
    assert_eq!(
        ledger.committable(key),
        Some(17),
        "the trace holds its record"
    );
    j.advance_watermark(40 * S + 1, &mut out);
    assert_eq!(j.traces(), 0);
    ledger.drain();
    assert_eq!(
        ledger.committable(key),
        Some(18),
        "the record is released with its trace"
    );
    assert_eq!(j.bytes(), 0);
}

#[test]
fn late_log_is_decided_at_once() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans([span(1, 1, None, 0, 10 * S)], &Ack::detached(), &mut out);
    j.advance_watermark(25 * S, &mut out);
    j.on_log(log(0, Some(1), Some(5), 10 * S), &mut out);
    assert_eq!(out.emitted.len(), 1);
    assert_eq!(
        (out.emitted[0].outcome, out.emitted[0].reason),
        (JoinOutcome::MatchedTrace, EmitReason::Late)
    );
}

#[test]
fn no_trace_id_leaves_at_once() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_log(log(0, None, None, 0), &mut out);
    assert_eq!(out.emitted[0].outcome, JoinOutcome::NoTraceId);
    assert_eq!(j.traces(), 0);
}

#[test]
fn duplicate_spans_are_kept_once() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans([span(1, 1, None, 0, S)], &Ack::detached(), &mut out);
    let bytes = j.bytes();
    j.on_spans([span(1, 1, None, 0, S)], &Ack::detached(), &mut out);
    assert_eq!(out.duplicate_spans, 1);
    assert_eq!(j.bytes(), bytes);
}

#[test]
fn eviction_emits_waiting_logs_never_drops_them() {
    let mut j = Join::new(JoinSettings {
        max_traces: 3,
        ..settings()
    });
    let mut out = JoinOutput::default();
    for t in 1..=10u8 {
        j.on_log(log(t as i64, Some(t), Some(1), 0), &mut out);
    }
    assert_eq!(j.traces(), 3);
    assert_eq!(out.evicted_traces, 7);
    assert_eq!(out.emitted.len(), 7);
    assert!(out
        .emitted
        .iter()
        .all(|e| e.reason == EmitReason::Evicted && e.outcome == JoinOutcome::Unmatched));
    // least recently used first
    assert_eq!(out.emitted[0].log.origin.offset, 1);
    j.drain(&mut out);
    assert_eq!(out.emitted.len(), 10);
    assert_eq!((j.traces(), j.bytes(), j.waiting_logs()), (0, 0, 0));
}

#[test]
fn byte_bound_holds() {
    let cap = 20_000;
    let mut j = Join::new(JoinSettings {
        max_state_bytes: cap,
        ..settings()
    });
    let mut out = JoinOutput::default();
    for t in 1..=200u8 {
        j.on_spans([span(t, 1, None, 0, S)], &Ack::detached(), &mut out);
        j.on_log(log(t as i64, Some(t), Some(2), 0), &mut out);
        assert!(j.bytes() <= cap, "{} > {cap}", j.bytes());
    }
    assert!(out.evicted_traces > 0);
}

// ---- model check: the real join against a naive nested-loop join ----

#[derive(Debug, Clone)]
enum Event {
    Span {
        trace: u8,
        id: u8,
        parent: Option<u8>,
        start: i64,
        end: i64,
    },
    Log {
        n: i64,
        trace: Option<u8>,
        span: Option<u8>,
        ts: i64,
    },
}

impl Event {
    fn time(&self) -> i64 {
        match self {
            Event::Span { end, .. } => *end,
            Event::Log { ts, .. } => *ts,
        }
    }
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            1u8..6,
            1u8..8,
            proptest::option::of(1u8..8),
            0i64..120,
            0i64..20
        )
            .prop_map(|(trace, id, parent, end, dur)| {
                Event::Span {
                    trace,
                    id,
                    parent: parent.filter(|p| *p != id),
                    start: (end - dur) * S,
                    end: end * S,
                }
            }),
        (
            proptest::option::weighted(0.9, 1u8..6),
            proptest::option::of(1u8..8),
            0i64..120
        )
            .prop_map(|(trace, span, ts)| Event::Log {
                n: 0,
                trace,
                span,
                ts: ts * S
            }),
    ]
}

/// What the naive join says for one log: outcome and the span whose context it carries.
fn naive(log: &Event, spans: &[Event], st: &JoinSettings) -> (JoinOutcome, Option<SpanId>) {
    let Event::Log {
        trace: Some(t),
        span,
        ts,
        ..
    } = log
    else {
        return (JoinOutcome::NoTraceId, None);
    };
    let (wait, ret) = (
        st.max_wait.as_secs() as i64 * S,
        st.span_retention.as_secs() as i64 * S,
    );
    // A span id may be delivered twice with different times; the first delivery is kept.
    let mut seen = std::collections::HashSet::new();
    let eligible: Vec<_> = spans
        .iter()
        .filter_map(|s| match s {
            Event::Span {
                trace,
                id,
                parent,
                start,
                end,
            } if trace == t && seen.insert(*id) => Some((*id, *parent, *start, *end)),
            _ => None,
        })
        .filter(|(_, _, _, end)| *end >= ts - ret && *end <= ts + wait)
        .collect();
    if let Some((id, ..)) = eligible.iter().find(|(id, ..)| Some(*id) == *span) {
        return (JoinOutcome::MatchedSpan, Some(SpanId([*id; 8])));
    }
    match eligible
        .iter()
        .min_by_key(|(id, parent, start, _)| (parent.is_some(), *start, SpanId([*id; 8])))
    {
        Some((id, ..)) => (JoinOutcome::MatchedTrace, Some(SpanId([*id; 8]))),
        None => (JoinOutcome::Unmatched, None),
    }
}

/// Feeds events in the given order, moving the watermark as far as it may go without making
/// any later event late (and by `wm_fraction` of that, to vary it), then drains by time.
fn run_join(events: &[Event], st: &JoinSettings, wm_moves: &[bool]) -> Vec<JoinedLog> {
    let mut j = Join::new(st.clone());
    let mut out = JoinOutput::default();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Span {
                trace,
                id,
                parent,
                start,
                end,
            } => {
                j.on_spans(
                    [span(*trace, *id, *parent, *start, *end)],
                    &Ack::detached(),
                    &mut out,
                );
            }
            Event::Log { n, trace, span, ts } => j.on_log(log(*n, *trace, *span, *ts), &mut out),
        }
        if wm_moves.get(i).copied().unwrap_or(false) {
            if let Some(low) = events[i + 1..].iter().map(Event::time).min() {
                j.advance_watermark(low, &mut out);
            }
        }
    }
    j.advance_watermark(i64::MAX, &mut out);
    j.drain(&mut out);
    out.emitted
}

/// Numbers the logs, and makes a repeated span id an exact redelivery of its first span, as
/// at-least-once input would.
fn numbered(mut events: Vec<Event>) -> (Vec<Event>, Vec<Event>) {
    let mut first: HashMap<(u8, u8), Event> = HashMap::new();
    for e in &mut events {
        if let Event::Span { trace, id, .. } = e {
            let original = first.entry((*trace, *id)).or_insert_with(|| e.clone());
            *e = original.clone();
        }
    }
    let mut n = 0;
    for e in &mut events {
        if let Event::Log { n: slot, .. } = e {
            *slot = n;
            n += 1;
        }
    }
    let spans = events
        .iter()
        .filter(|e| matches!(e, Event::Span { .. }))
        .cloned()
        .collect();
    (events, spans)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every log leaves exactly once, with the naive join's outcome and span, whatever the
    /// arrival order and watermark moves, as long as no record is late.
    #[test]
    fn join_equals_naive_join(events in proptest::collection::vec(event(), 0..60),
                              wm_moves in proptest::collection::vec(any::<bool>(), 60),
                              seed in any::<u64>()) {
        let st = settings();
        let (mut events, _) = numbered(events);
        // Arrival order: a random shuffle (Kafka gives no order across topics or partitions).
        let mut rng = seed;
        for i in (1..events.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            events.swap(i, (rng >> 33) as usize % (i + 1));
        }
        // The naive join sees spans in arrival order only to break duplicate-id ties the same way.
        let spans_in_arrival: Vec<Event> = events.iter().filter(|e| matches!(e, Event::Span { .. })).cloned().collect();
        let emitted = run_join(&events, &st, &wm_moves);
        let logs: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Log { .. })).collect();
        prop_assert_eq!(emitted.len(), logs.len(), "every log leaves exactly once");
        let mut by_n: HashMap<i64, &JoinedLog> = HashMap::new();
        for e in &emitted {
            prop_assert!(by_n.insert(e.log.origin.offset, e).is_none(), "log {} left twice", e.log.origin.offset);
        }
        for l in logs {
            let Event::Log { n, .. } = l else { unreachable!() };
            let got = by_n[n];
            let (outcome, span_id) = naive(l, &spans_in_arrival, &st);
            prop_assert_eq!(got.outcome, outcome, "log {:?}", l);
            prop_assert_eq!(got.span.as_ref().map(|s| s.span_id), span_id, "log {:?}", l);
            prop_assert!(got.reason != EmitReason::Late && got.reason != EmitReason::Evicted);
        }
    }

    /// Under tight bounds and arbitrary (late) arrivals, logs still leave exactly once and the
    /// state stays within its entry bound.
    #[test]
    fn bounded_state_never_drops_a_log(events in proptest::collection::vec(event(), 0..80),
                                       wms in proptest::collection::vec(0i64..150, 0..10),
                                       cap in 1usize..4) {
        let st = JoinSettings { max_traces: cap, ..settings() };
        let (events, _) = numbered(events);
        let mut j = Join::new(st);
        let mut out = JoinOutput::default();
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::Span { trace, id, parent, start, end } => {
                    j.on_spans([span(*trace, *id, *parent, *start, *end)], &Ack::detached(), &mut out);
                }
                Event::Log { n, trace, span, ts } => j.on_log(log(*n, *trace, *span, *ts), &mut out),
            }
            if let Some(w) = wms.get(i) { j.advance_watermark(w * S, &mut out); }
            prop_assert!(j.traces() <= cap);
        }
        j.drain(&mut out);
        let n_logs = events.iter().filter(|e| matches!(e, Event::Log { .. })).count();
        let mut seen: Vec<i64> = out.emitted.iter().map(|e| e.log.origin.offset).collect();
        seen.sort();
        prop_assert_eq!(seen, (0..n_logs as i64).collect::<Vec<_>>());
        prop_assert_eq!((j.bytes(), j.waiting_logs()), (0, 0));
    }
}
