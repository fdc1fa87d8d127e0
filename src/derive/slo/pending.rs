//! Bad events waiting for their trace's logs, error logs waiting for their trace's bad span,
//! and the redelivery filter.
//!
//! A bad event (span end `e`) is final once the watermark `W` passes `e + max_wait`: a log at
//! `l <= e` has left the join by then (the join emits it when `W > l + max_wait`, or at once
//! when it arrives late), so every error log of the trace logged up to the span's end has been
//! offered. Logs of the trace that leave the join *before* the bad span is observed (a child
//! span's log, emitted when the child span arrived, before its parent's record) are kept as
//! *orphans* for a while, and offered to bad spans of their trace when they come.
//!
//! Which log names the cause: the first error log written at or after the bad span's start
//! (its own, or one of its subtree's), else the trace's first error log. Ties go to the span's
//! own log. Both maps are bounded: past `max_pending` the oldest bad event is finalised at once
//! with what it has (counted); past `max_orphan_logs` the oldest orphan is dropped.

use crate::model::{SpanId, TraceId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// The longest log body kept for templating, in bytes.
const MAX_BODY: usize = 1024;
/// Orphan error logs kept per trace.
const ORPHANS_PER_TRACE: usize = 4;

/// What the span itself says about why it failed, used when no error log does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fallback {
    None,
    Exception(Arc<str>),
    Status(Box<str>),
}

/// An error log offered as the cause of a bad event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogCause {
    /// Lower is better: (logged before the span started, time, not the span's own log).
    pub(crate) rank: (bool, i64, bool),
    pub(crate) body: Box<str>,
}

/// A bad event waiting to be attributed.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) slo: u16,
    pub(crate) op: u32,
    pub(crate) span_id: SpanId,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) fallback: Fallback,
    pub(crate) log: Option<LogCause>,
}

impl PendingEvent {
    /// Offers an error log of the event's trace.
    pub(crate) fn offer(&mut self, span: Option<SpanId>, ts: i64, body: &str) {
        if body.trim().is_empty() {
            return;
        }
        let rank = (ts < self.start, ts, span != Some(self.span_id));
        if self.log.as_ref().is_some_and(|l| l.rank <= rank) {
            return;
        }
        self.log = Some(LogCause {
            rank,
            body: cut(body).into(),
        });
    }
}

fn cut(s: &str) -> &str {
    if s.len() <= MAX_BODY {
        return s;
    }
    let mut end = MAX_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bad events by deadline, findable by trace.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    by_time: BTreeMap<(i64, u64), (TraceId, PendingEvent)>,
    by_trace: HashMap<TraceId, Vec<(i64, u64)>>,
    seq: u64,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.by_time.len()
    }

    pub(crate) fn insert(&mut self, trace: TraceId, ev: PendingEvent) {
        self.seq += 1;
        let key = (ev.end, self.seq);
        self.by_trace.entry(trace).or_default().push(key);
        self.by_time.insert(key, (trace, ev));
    }

    /// Offers an error log to the pending events of its trace; `false` if there are none.
    pub(crate) fn offer(
        &mut self,
        trace: TraceId,
        span: Option<SpanId>,
        ts: i64,
        body: &str,
    ) -> bool {
        let Some(keys) = self.by_trace.get(&trace) else {
            return false;
        };
        for k in keys {
            if let Some((_, ev)) = self.by_time.get_mut(k) {
                ev.offer(span, ts, body);
            }
        }
        true
    }

    /// Every waiting event, earliest end first (a partition's changelog snapshot).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(TraceId, PendingEvent)> {
        self.by_time.values()
    }

    /// Removes and returns the event with the earliest end if `due(end)`.
    pub(crate) fn pop_if(&mut self, due: impl Fn(i64) -> bool) -> Option<(TraceId, PendingEvent)> {
        let (&key, _) = self.by_time.first_key_value()?;
        if !due(key.0) {
            return None;
        }
        let (trace, ev) = self.by_time.remove(&key)?;
        if let Some(keys) = self.by_trace.get_mut(&trace) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.by_trace.remove(&trace);
            }
        }
        Some((trace, ev))
    }
}

/// An error log whose trace had no pending bad event when it left the join.
#[derive(Debug, Clone)]
struct OrphanLog {
    span: Option<SpanId>,
    ts: i64,
    body: Box<str>,
}

/// Orphan error logs by trace, bounded in count, oldest dropped first.
#[derive(Debug)]
pub(crate) struct Orphans {
    by_trace: HashMap<TraceId, VecDeque<OrphanLog>>,
    /// Insertion order: one entry per log held.
    order: VecDeque<(TraceId, i64)>,
    cap: usize,
}

impl Orphans {
    pub(crate) fn new(cap: usize) -> Self {
        Orphans {
            by_trace: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn insert(&mut self, trace: TraceId, span: Option<SpanId>, ts: i64, body: &str) {
        if self.cap == 0 || body.trim().is_empty() {
            return;
        }
        let logs = self.by_trace.entry(trace).or_default();
        if logs.len() >= ORPHANS_PER_TRACE {
            return;
        }
        logs.push_back(OrphanLog {
            span,
            ts,
            body: cut(body).into(),
        });
        self.order.push_back((trace, ts));
        while self.order.len() > self.cap {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((trace, _)) = self.order.pop_front() {
            if let Some(logs) = self.by_trace.get_mut(&trace) {
                logs.pop_front();
                if logs.is_empty() {
                    self.by_trace.remove(&trace);
                }
            }
        }
    }

    /// Drops the orphans at the front logged before `before` (insertion order is close to time
    /// order; one logged out of order waits behind the newer one in front of it).
    pub(crate) fn expire(&mut self, before: i64) {
        while self.order.front().is_some_and(|(_, ts)| *ts < before) {
            self.drop_oldest();
        }
    }

    /// Every orphan log, oldest first per trace: (trace, span, time, body).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TraceId, Option<SpanId>, i64, &str)> {
        self.by_trace
            .iter()
            .flat_map(|(t, logs)| logs.iter().map(|l| (*t, l.span, l.ts, &*l.body)))
    }

    /// Offers the orphans of `trace` to a new bad event.
    pub(crate) fn offer_to(&self, trace: TraceId, ev: &mut PendingEvent) {
        if let Some(logs) = self.by_trace.get(&trace) {
            for l in logs {
                ev.offer(l.span, l.ts, &l.body);
            }
        }
    }
}

/// Redelivered spans are filtered by the same recent-span filter as the RED metrics.
pub(crate) use crate::derive::red::dedup::Dedup;

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(start: i64, end: i64, span: u8) -> PendingEvent {
        PendingEvent {
            slo: 0,
            op: 1,
            span_id: SpanId([span; 8]),
            start,
            end,
            fallback: Fallback::None,
            log: None,
        }
    }

    #[test]
    fn the_first_error_during_the_span_wins_over_earlier_and_later_ones() {
        let mut e = ev(100, 200, 1);
        e.offer(Some(SpanId([2; 8])), 150, "db failed");
        e.offer(Some(SpanId([1; 8])), 180, "request failed");
        e.offer(Some(SpanId([3; 8])), 50, "earlier unrelated");
        assert_eq!(e.log.as_ref().unwrap().body.as_ref(), "db failed");
        // Same time: the span's own log wins.
        e.offer(Some(SpanId([1; 8])), 150, "own");
        assert_eq!(e.log.as_ref().unwrap().body.as_ref(), "own");
        // Only logs from before the start: the first of them.
        let mut e = ev(100, 200, 1);
        e.offer(None, 90, "b");
        e.offer(None, 80, "a");
        assert_eq!(e.log.as_ref().unwrap().body.as_ref(), "a");
        e.offer(None, 300, "after");
        assert_eq!(e.log.as_ref().unwrap().body.as_ref(), "after");
    }

    #[test]
    fn pending_pops_by_end_and_finds_by_trace() {
        let mut p = Pending::default();
        let (t1, t2) = (TraceId([1; 16]), TraceId([2; 16]));
        p.insert(t1, ev(0, 300, 1));
        p.insert(t2, ev(0, 100, 2));
        p.insert(t1, ev(0, 200, 3));
        assert!(p.offer(t1, None, 10, "x"));
        assert!(!p.offer(TraceId([9; 16]), None, 10, "x"));
        assert!(p.pop_if(|end| end < 100).is_none());
        let (t, e) = p.pop_if(|end| end <= 100).unwrap();
        assert_eq!((t, e.end), (t2, 100));
        assert!(e.log.is_none());
        let (_, e) = p.pop_if(|_| true).unwrap();
        assert_eq!(e.end, 200);
        assert!(e.log.is_some());
        assert_eq!(p.len(), 1);
        p.pop_if(|_| true).unwrap();
        assert!(p.by_trace.is_empty() && p.len() == 0);
    }

    #[test]
    fn orphans_are_bounded_and_expire() {
        let mut o = Orphans::new(3);
        for i in 0..5u8 {
            o.insert(TraceId([i + 1; 16]), None, i64::from(i), "e");
        }
        assert_eq!(o.len(), 3);
        assert_eq!(o.by_trace.len(), 3);
        o.expire(4);
        assert_eq!(o.len(), 1);
        let mut e = ev(0, 10, 1);
        o.offer_to(TraceId([5; 16]), &mut e);
        assert!(e.log.is_some());
        let mut o = Orphans::new(100);
        for _ in 0..10 {
            o.insert(TraceId([7; 16]), None, 9, "e");
        }
        assert_eq!(o.by_trace[&TraceId([7; 16])].len(), ORPHANS_PER_TRACE);
    }

    #[test]
    fn dedup_forgets_past_its_window() {
        let mut d = Dedup::new(2);
        let t = TraceId([1; 16]);
        assert!(d.first_time(t, SpanId([1; 8])));
        assert!(!d.first_time(t, SpanId([1; 8])));
        assert!(d.first_time(t, SpanId([2; 8])));
        assert!(d.first_time(t, SpanId([3; 8])));
        // At least the last two are remembered, at most four: 1 still is, until two more came.
        assert!(!d.first_time(t, SpanId([1; 8])));
        assert!(d.first_time(t, SpanId([4; 8])));
        assert!(d.first_time(t, SpanId([1; 8])));
        assert!(Dedup::new(0).first_time(t, SpanId([1; 8])));
    }
}
