//! The join's tests: its decisions one by one, the bounds, and the property tests against a
//! naive nested-loop join.
//!
//! Why one file over 600 lines: every test shares the span and log fixtures and the naive join
//! the property tests compare with.

use super::*;
use crate::model::{
    IdMatch, LogFields, LogFormat, Origin, SpanId, SpanKind, StatusCode, TimestampSource,
};
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
    span_of(tid(trace), id, parent, start, end)
}

fn span_of(trace_id: TraceId, id: u8, parent: Option<u8>, start: i64, end: i64) -> SpanSummary {
    SpanSummary {
        trace_id,
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
    log_of(n, trace.map(tid), span, ts)
}

fn log_of(n: i64, trace_id: Option<TraceId>, span: Option<u8>, ts: i64) -> LogEvent {
    LogEvent {
        timestamp_unix_nanos: ts,
        timestamp_source: TimestampSource::Record,
        trace_id,
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

#[test]
fn evicted_traces_do_not_grow_the_expiry_index_past_its_bound() {
    let mut j = Join::new(JoinSettings {
        max_traces: 10,
        ..settings()
    });
    let mut out = JoinOutput::default();
    for t in 0..20_000u64 {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&(t + 1).to_be_bytes());
        j.on_spans(
            [span_of(TraceId(id), 1, None, 0, 5 * S)],
            &Ack::detached(),
            &mut out,
        );
    }
    assert_eq!(out.evicted_traces, 20_000 - 10);
    assert!(
        j.expiry.len() <= 2 * j.traces() + STALE_EXPIRY_SLACK + 1,
        "{} items in the expiry index for {} traces",
        j.expiry.len(),
        j.traces()
    );
    j.check_consistency().unwrap();
}

// ---- 64-bit ids ----

/// A trace id from its two halves.
fn id128(high: u64, low: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&high.to_be_bytes());
    b[8..].copy_from_slice(&low.to_be_bytes());
    TraceId(b)
}

/// A log that carried only the 64-bit id `low` (as the decoder gives it: zero-padded, flagged).
fn log64(n: i64, low: u64, span: Option<u8>, ts: i64) -> LogEvent {
    let mut l = log_of(n, TraceId::from_low64(low), span, ts);
    l.trace_id_width = TraceIdWidth::Bits64;
    l
}

const LOW: u64 = 0x5eed_0000_0000_0042;

fn one(out: &JoinOutput) -> &JoinedLog {
    assert_eq!(out.emitted.len(), 1, "{:?}", out.emitted);
    &out.emitted[0]
}

#[test]
fn low64_index_is_built_from_the_traces_held_when_the_first_64_bit_log_comes() {
    let full = id128(0xabcd, LOW);
    let other = id128(0xabcd, LOW + 1);
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [
            span_of(full, 2, None, 0, 6 * S),
            span_of(other, 3, None, 0, 6 * S),
        ],
        &Ack::detached(),
        &mut out,
    );
    assert!(j.low64.is_empty(), "no 64-bit log yet: no index");
    j.check_consistency().unwrap();
    j.on_log(log64(0, LOW, Some(2), 5 * S), &mut out);
    assert_eq!(j.low64.len(), 2);
    j.check_consistency().unwrap();
    j.advance_watermark(15 * S + 1, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.log.trace_id),
        (JoinOutcome::MatchedSpan, Some(full))
    );
    j.check_consistency().unwrap();
}

#[test]
fn low64_log_before_its_span_joins_the_full_trace_when_its_window_closes() {
    let full = id128(0xabcd, LOW);
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_log(log64(0, LOW, Some(2), 5 * S), &mut out);
    j.on_spans(
        [
            span_of(full, 2, Some(1), 0, 6 * S),
            span_of(full, 1, None, 0, 7 * S),
        ],
        &Ack::detached(),
        &mut out,
    );
    // Not on the span's arrival: a second trace of these low bits could still come.
    assert!(out.emitted.is_empty());
    j.advance_watermark(15 * S, &mut out);
    assert!(out.emitted.is_empty());
    j.advance_watermark(15 * S + 1, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.reason, e.id_match()),
        (
            JoinOutcome::MatchedSpan,
            EmitReason::WindowClosed,
            Some(IdMatch::Low64)
        )
    );
    assert_eq!(e.log.trace_id, Some(full), "rewritten to the full id");
    assert_eq!(e.span.as_ref().unwrap().span_id, SpanId([2; 8]));
    assert_eq!(e.trace.as_ref().unwrap().span_count, 2);
    j.check_consistency().unwrap();
}

#[test]
fn low64_log_after_its_trace_gets_the_trace_context() {
    let full = id128(7, LOW);
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [span_of(full, 1, None, 0, 6 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log64(0, LOW, Some(9), 5 * S), &mut out);
    assert!(out.emitted.is_empty());
    j.advance_watermark(16 * S, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.id_match(), e.log.trace_id),
        (JoinOutcome::MatchedTrace, Some(IdMatch::Low64), Some(full))
    );
    // The zero-padded entry it waited in and the trace both leave once expired.
    j.advance_watermark(100 * S, &mut out);
    assert_eq!((j.traces(), j.waiting_logs(), j.bytes()), (0, 0, 0));
    assert!(j.low64.is_empty());
}

#[test]
fn two_traces_with_the_same_low_bits_are_not_guessed() {
    let (a, b) = (id128(1, LOW), id128(2, LOW));
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_log(log64(0, LOW, Some(1), 5 * S), &mut out);
    j.on_log(log_of(1, Some(a), Some(1), 5 * S), &mut out);
    j.on_spans([span_of(a, 1, None, 0, 6 * S)], &Ack::detached(), &mut out);
    // The full-id log of `a` is not held up by the 64-bit one.
    assert_eq!(one(&out).log.origin.offset, 1);
    assert_eq!(one(&out).id_match(), Some(IdMatch::Full));
    out.emitted.clear();
    j.on_spans([span_of(b, 3, None, 0, 8 * S)], &Ack::detached(), &mut out);
    j.advance_watermark(16 * S, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.reason, e.id_match()),
        (JoinOutcome::Unmatched, EmitReason::AmbiguousId, None)
    );
    assert!(e.span.is_none() && e.trace.is_none());
    assert_eq!(e.log.trace_id, TraceId::from_low64(LOW), "left as written");
}

#[test]
fn only_traces_with_a_span_in_the_window_are_candidates() {
    let (a, b) = (id128(1, LOW), id128(2, LOW));
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans([span_of(a, 1, None, 0, 60 * S)], &Ack::detached(), &mut out);
    j.on_spans([span_of(b, 1, None, 0, 6 * S)], &Ack::detached(), &mut out);
    j.on_log(log64(0, LOW, None, 5 * S), &mut out);
    j.advance_watermark(16 * S, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.log.trace_id),
        (JoinOutcome::MatchedTrace, Some(b))
    );
}

#[test]
fn a_trace_with_a_zero_high_half_matches_in_full_and_counts_as_a_candidate() {
    let padded = TraceId::from_low64(LOW).unwrap();
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [span_of(padded, 1, None, 0, 6 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log64(0, LOW, Some(1), 5 * S), &mut out);
    j.advance_watermark(16 * S, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.id_match(), e.log.trace_id),
        (JoinOutcome::MatchedSpan, Some(IdMatch::Full), Some(padded))
    );
    out.emitted.clear();
    // With a 128-bit trace of the same low bits beside it, the same log is ambiguous.
    j.on_spans(
        [span_of(id128(9, LOW), 1, None, 0, 26 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_spans(
        [span_of(padded, 2, None, 0, 26 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log64(1, LOW, Some(1), 25 * S), &mut out);
    j.advance_watermark(36 * S, &mut out);
    assert_eq!(one(&out).reason, EmitReason::AmbiguousId);
}

#[test]
fn a_full_id_never_matches_on_its_low_half() {
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [span_of(id128(1, LOW), 1, None, 0, 6 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log_of(0, Some(id128(2, LOW)), Some(1), 5 * S), &mut out);
    j.on_log(
        log_of(1, TraceId::from_low64(LOW), Some(1), 5 * S),
        &mut out,
    );
    j.advance_watermark(16 * S, &mut out);
    assert_eq!(out.emitted.len(), 2);
    assert!(out
        .emitted
        .iter()
        .all(|e| e.outcome == JoinOutcome::Unmatched && e.reason == EmitReason::WindowClosed));
}

#[test]
fn a_trace_expiring_before_a_waiting_low64_log_is_kept_for_it() {
    let full = id128(3, LOW);
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    // Ends 25 s before the log: in its window (retention 30 s), expired 5 s after the log's
    // time, 5 s before the log's window closes.
    j.on_spans(
        [span_of(full, 1, None, 0, 75 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log64(0, LOW, None, 100 * S), &mut out);
    j.advance_watermark(106 * S, &mut out);
    assert!(out.emitted.is_empty());
    assert_eq!(j.traces(), 2, "the expired trace is still held");
    j.check_consistency().unwrap();
    j.advance_watermark(110 * S + 1, &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.log.trace_id),
        (JoinOutcome::MatchedTrace, Some(full))
    );
    assert_eq!(j.traces(), 0, "both leave once the log has");
    j.check_consistency().unwrap();
}

#[test]
fn evicting_a_trace_decides_the_low64_logs_that_need_it() {
    let full = id128(3, LOW);
    let mut j = Join::new(JoinSettings {
        max_traces: 2,
        ..settings()
    });
    let mut out = JoinOutput::default();
    j.on_spans(
        [span_of(full, 1, None, 0, 6 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.on_log(log64(0, LOW, Some(1), 5 * S), &mut out);
    // A 64-bit log of other bits in the same entry's situation that the eviction must not move.
    j.on_log(log64(1, LOW + 1, None, 5 * S), &mut out);
    assert_eq!(out.evicted_traces, 1);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.reason, e.id_match(), e.log.trace_id),
        (
            JoinOutcome::MatchedSpan,
            EmitReason::Evicted,
            Some(IdMatch::Low64),
            Some(full)
        )
    );
    assert_eq!(j.waiting_logs(), 1);
    j.check_consistency().unwrap();
    j.drain(&mut out);
    assert_eq!(out.emitted.len(), 2);
    assert!(j.low64.is_empty());
}

#[test]
fn a_late_low64_log_is_decided_at_once_on_what_is_held() {
    let full = id128(3, LOW);
    let mut j = Join::new(settings());
    let mut out = JoinOutput::default();
    j.on_spans(
        [span_of(full, 1, None, 0, 10 * S)],
        &Ack::detached(),
        &mut out,
    );
    j.advance_watermark(25 * S, &mut out);
    j.on_log(log64(0, LOW, Some(1), 10 * S), &mut out);
    let e = one(&out);
    assert_eq!(
        (e.outcome, e.reason, e.id_match()),
        (
            JoinOutcome::MatchedSpan,
            EmitReason::Late,
            Some(IdMatch::Low64)
        )
    );
    assert_eq!(j.waiting_logs(), 0);
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
        /// It carries only the low 64 bits of its trace's id.
        wide64: bool,
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
    events(1..6, 1..6, Just(false))
}

/// Spans of traces `span_traces`, logs of `log_traces` (by index into the id table), 64-bit
/// logs as `wide64` says.
fn events(
    span_traces: std::ops::Range<u8>,
    log_traces: std::ops::Range<u8>,
    wide64: impl Strategy<Value = bool>,
) -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            span_traces,
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
            proptest::option::weighted(0.9, log_traces),
            proptest::option::of(1u8..8),
            0i64..120,
            wide64
        )
            .prop_map(|(trace, span, ts, wide64)| Event::Log {
                n: 0,
                trace,
                span,
                ts: ts * S,
                wide64,
            }),
    ]
}

/// Trace ids for the mixed streams: 1 and 2 share their low half, 4 has a zero high half and
/// shares its low half with 5, 3 and 6 are alone, 7 (logs only) matches nothing.
fn mixed_tid(n: u8) -> TraceId {
    let (high, low) = match n {
        1 => (0xa1, 0xa),
        2 => (0xa2, 0xa),
        3 => (0xa3, 0xb),
        4 => (0, 0xc),
        5 => (0xa5, 0xc),
        6 => (0xa6, 0xd),
        _ => (0xa7, 0xe),
    };
    id128(high, low)
}

/// The id a log of trace `trace` carries: the full id, or its low half zero-padded.
fn log_id(ids: fn(u8) -> TraceId, trace: u8, wide64: bool) -> TraceId {
    let full = ids(trace);
    if wide64 {
        TraceId::from_low64(full.low64()).unwrap_or(full)
    } else {
        full
    }
}

/// What the naive join says for one log: outcome, the span whose context it carries, and the
/// trace id it leaves with (`None` outcome-wise ambiguous: it then leaves with its own id).
#[derive(Debug, PartialEq)]
struct Naive {
    outcome: JoinOutcome,
    span: Option<SpanId>,
    trace_id: Option<TraceId>,
    ambiguous: bool,
}

fn naive(log: &Event, spans: &[Event], st: &JoinSettings, ids: fn(u8) -> TraceId) -> Naive {
    let Event::Log {
        trace: Some(t),
        span,
        ts,
        wide64,
        ..
    } = log
    else {
        return Naive {
            outcome: JoinOutcome::NoTraceId,
            span: None,
            trace_id: None,
            ambiguous: false,
        };
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
            } if seen.insert((*trace, *id)) => Some((*trace, *id, *parent, *start, *end)),
            _ => None,
        })
        .filter(|(.., end)| *end >= ts - ret && *end <= ts + wait)
        .collect();
    let own_id = log_id(ids, *t, *wide64);
    // The trace it joins: its own id, or the one trace in its window whose low half it carries.
    let mut candidates: Vec<u8> = eligible
        .iter()
        .map(|(trace, ..)| *trace)
        .filter(|trace| {
            if *wide64 {
                ids(*trace).low64() == own_id.low64()
            } else {
                ids(*trace) == own_id
            }
        })
        .collect();
    candidates.sort();
    candidates.dedup();
    let unmatched = |ambiguous| Naive {
        outcome: JoinOutcome::Unmatched,
        span: None,
        trace_id: Some(own_id),
        ambiguous,
    };
    let joined = match candidates[..] {
        [] => return unmatched(false),
        [one] => one,
        _ => return unmatched(true),
    };
    let of_trace: Vec<_> = eligible.iter().filter(|e| e.0 == joined).collect();
    let (outcome, id) = match of_trace.iter().find(|(_, id, ..)| Some(*id) == *span) {
        Some((_, id, ..)) => (JoinOutcome::MatchedSpan, *id),
        None => {
            let (_, id, ..) = of_trace
                .iter()
                .min_by_key(|(_, id, parent, start, _)| {
                    (parent.is_some(), *start, SpanId([*id; 8]))
                })
                .expect("a candidate has a span in the window");
            (JoinOutcome::MatchedTrace, *id)
        }
    };
    Naive {
        outcome,
        span: Some(SpanId([id; 8])),
        trace_id: Some(ids(joined)),
        ambiguous: false,
    }
}

fn feed(j: &mut Join, e: &Event, ids: fn(u8) -> TraceId, out: &mut JoinOutput) {
    match e {
        Event::Span {
            trace,
            id,
            parent,
            start,
            end,
        } => {
            j.on_spans(
                [span_of(ids(*trace), *id, *parent, *start, *end)],
                &Ack::detached(),
                out,
            );
        }
        Event::Log {
            n,
            trace,
            span,
            ts,
            wide64,
        } => {
            let mut l = log_of(*n, trace.map(|t| log_id(ids, t, *wide64)), *span, *ts);
            if *wide64 {
                l.trace_id_width = TraceIdWidth::Bits64;
            }
            j.on_log(l, out);
        }
    }
}

/// Feeds events in the given order, moving the watermark as far as it may go without making
/// any later event late (and by `wm_fraction` of that, to vary it), then drains by time.
fn run_join(
    events: &[Event],
    st: &JoinSettings,
    wm_moves: &[bool],
    ids: fn(u8) -> TraceId,
) -> Result<Vec<JoinedLog>, String> {
    let mut j = Join::new(st.clone());
    let mut out = JoinOutput::default();
    for (i, e) in events.iter().enumerate() {
        feed(&mut j, e, ids, &mut out);
        if wm_moves.get(i).copied().unwrap_or(false) {
            if let Some(low) = events[i + 1..].iter().map(Event::time).min() {
                j.advance_watermark(low, &mut out);
            }
        }
        j.check_consistency()?;
    }
    j.advance_watermark(i64::MAX, &mut out);
    j.check_consistency()?;
    j.drain(&mut out);
    Ok(out.emitted)
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

fn shuffled(mut events: Vec<Event>, seed: u64) -> Vec<Event> {
    // Arrival order: a random shuffle (Kafka gives no order across topics or partitions).
    let mut rng = seed;
    for i in (1..events.len()).rev() {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        events.swap(i, (rng >> 33) as usize % (i + 1));
    }
    events
}

/// Runs the join over `events` in arrival order and compares every log with the naive join.
fn compare_with_naive(
    events: &[Event],
    wm_moves: &[bool],
    ids: fn(u8) -> TraceId,
) -> Result<(), TestCaseError> {
    let st = settings();
    // The naive join sees spans in arrival order only to break duplicate-id ties the same way.
    let spans_in_arrival: Vec<Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Span { .. }))
        .cloned()
        .collect();
    let emitted = run_join(events, &st, wm_moves, ids).map_err(TestCaseError::fail)?;
    let logs: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Log { .. }))
        .collect();
    prop_assert_eq!(emitted.len(), logs.len(), "every log leaves exactly once");
    let mut by_n: HashMap<i64, &JoinedLog> = HashMap::new();
    for e in &emitted {
        prop_assert!(
            by_n.insert(e.log.origin.offset, e).is_none(),
            "log {} left twice",
            e.log.origin.offset
        );
    }
    for l in logs {
        let Event::Log { n, wide64, .. } = l else {
            unreachable!()
        };
        let got = by_n[n];
        let want = naive(l, &spans_in_arrival, &st, ids);
        prop_assert_eq!(got.outcome, want.outcome, "log {:?}", l);
        prop_assert_eq!(
            got.span.as_ref().map(|s| s.span_id),
            want.span,
            "log {:?}",
            l
        );
        prop_assert_eq!(got.log.trace_id, want.trace_id, "log {:?}", l);
        prop_assert!(got.reason != EmitReason::Late && got.reason != EmitReason::Evicted);
        prop_assert_eq!(
            got.reason == EmitReason::AmbiguousId,
            want.ambiguous,
            "log {:?}",
            l
        );
        if *wide64 && !want.ambiguous && got.log.trace_id.is_some() {
            prop_assert_eq!(got.reason, EmitReason::WindowClosed, "log {:?}", l);
        }
        let id_match = match (got.outcome, want.trace_id) {
            (JoinOutcome::MatchedSpan | JoinOutcome::MatchedTrace, Some(t)) => {
                Some(if *wide64 && !t.high_is_zero() {
                    IdMatch::Low64
                } else {
                    IdMatch::Full
                })
            }
            _ => None,
        };
        prop_assert_eq!(got.id_match(), id_match, "log {:?}", l);
    }
    Ok(())
}

/// Under tight bounds and arbitrary (late) arrivals, logs still leave exactly once, the state
/// stays within its entry bound and its bookkeeping consistent.
fn bounded_run(
    events: Vec<Event>,
    wms: &[i64],
    cap: usize,
    ids: fn(u8) -> TraceId,
) -> Result<(), TestCaseError> {
    let st = JoinSettings {
        max_traces: cap,
        ..settings()
    };
    let (events, _) = numbered(events);
    let mut j = Join::new(st);
    let mut out = JoinOutput::default();
    for (i, e) in events.iter().enumerate() {
        feed(&mut j, e, ids, &mut out);
        if let Some(w) = wms.get(i) {
            j.advance_watermark(w * S, &mut out);
        }
        prop_assert!(j.traces() <= cap);
        j.check_consistency().map_err(TestCaseError::fail)?;
    }
    j.drain(&mut out);
    let n_logs = events
        .iter()
        .filter(|e| matches!(e, Event::Log { .. }))
        .count();
    let mut seen: Vec<i64> = out.emitted.iter().map(|e| e.log.origin.offset).collect();
    seen.sort();
    prop_assert_eq!(seen, (0..n_logs as i64).collect::<Vec<_>>());
    prop_assert_eq!((j.bytes(), j.waiting_logs(), j.traces()), (0, 0, 0));
    prop_assert!(j.low64.is_empty() && j.expiry.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every log leaves exactly once, with the naive join's outcome and span, whatever the
    /// arrival order and watermark moves, as long as no record is late.
    #[test]
    fn join_equals_naive_join(events in proptest::collection::vec(event(), 0..60),
                              wm_moves in proptest::collection::vec(any::<bool>(), 60),
                              seed in any::<u64>()) {
        let (events, _) = numbered(events);
        compare_with_naive(&shuffled(events, seed), &wm_moves, tid)?;
    }

    /// The same with 64-bit and 128-bit ids mixed, traces sharing low halves (ambiguous ids)
    /// and a trace whose high half is zero: a 64-bit log gets the result of the one trace in
    /// its window whose low half it carries, rewritten to its id, or `ambiguous_id`.
    #[test]
    fn mixed_64_and_128_bit_join_equals_naive_join(
        events in proptest::collection::vec(events(1..7, 1..8, any::<bool>()), 0..60),
        wm_moves in proptest::collection::vec(any::<bool>(), 60),
        seed in any::<u64>())
    {
        let (events, _) = numbered(events);
        compare_with_naive(&shuffled(events, seed), &wm_moves, mixed_tid)?;
    }

    /// Under tight bounds and arbitrary (late) arrivals, logs still leave exactly once and the
    /// state stays within its entry bound.
    #[test]
    fn bounded_state_never_drops_a_log(events in proptest::collection::vec(event(), 0..80),
                                       wms in proptest::collection::vec(0i64..150, 0..10),
                                       cap in 1usize..4) {
        bounded_run(events, &wms, cap, tid)?;
    }

    /// The same with mixed ids: evicting a trace that 64-bit logs wait on keeps the low-64
    /// index and the waiting counts consistent.
    #[test]
    fn bounded_mixed_state_never_drops_a_log(
        events in proptest::collection::vec(events(1..7, 1..8, any::<bool>()), 0..80),
        wms in proptest::collection::vec(0i64..150, 0..40),
        cap in 1usize..5)
    {
        bounded_run(events, &wms, cap, mixed_tid)?;
    }
}
