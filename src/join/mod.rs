//! The join: logs meet the spans of their trace in event-time windows.
//!
//! Semantics (the property test in `tests.rs` checks them against a naive nested-loop join):
//! - A log with trace id `T` and time `l` may match the spans of `T` whose end time lies in
//!   `[l - span_retention, l + max_wait]`. Among them, the span with the log's span id gives
//!   `matched_span`; otherwise any gives `matched_trace` (context of the root span, else the
//!   earliest); none gives `unmatched`. A log without a trace id leaves at once as `no_trace_id`.
//! - A log leaves as soon as its own span is there (`span_present`, `span_arrived`), or when the
//!   watermark `W` passes `l + max_wait` (`window_closed`). A trace's spans are dropped when `W`
//!   passes their latest end time plus `span_retention`. Both comparisons are strict, so a record
//!   with event time `e` that arrives while `W <= e` (not late) sees exactly the naive result:
//!   the outcome does not depend on arrival order within the allowed lateness.
//! - A log that arrives after `W` passed `l + max_wait` leaves at once (`late`), decided on what
//!   is still in the state.
//! - The state is an LRU of traces bounded in entries and bytes. Eviction emits the waiting logs
//!   of the least recently used trace with reason `evicted`: a log is never dropped.
//! - Spans delivered twice (at-least-once input) are kept once per trace (by span id).
//!
//! 64-bit trace ids (Datadog's decimal `dd.trace_id`, 16 hex digits of B3 or Jaeger; the
//! decoder flags them, [`TraceIdWidth::Bits64`]) meet 128-bit traces on their low 64 bits:
//! - Such a log's candidates are the traces whose id ends in its 64 bits and that have a span
//!   in its window (a trace whose high half is zero counts too). One candidate: the log is
//!   decided as a log of that trace would be, and its `trace_id` is rewritten to the trace's full
//!   id. Two or more: `unmatched`, reason `ambiguous_id` — never guessed. None: `unmatched`.
//! - A second candidate may arrive until the watermark passes `l + max_wait`, so a 64-bit log
//!   does not leave when its span arrives: it waits for its window to close (or is late,
//!   evicted, drained), and its result, like every other, does not depend on arrival order.
//!   It waits in the entry of its zero-padded id, like a log of that trace.
//! - An index, low 64 bits → the traces held that have spans and the count of 64-bit logs
//!   waiting on those bits, is updated when a trace gets its first span and when it leaves,
//!   and read only for 64-bit logs and when a trace's spans expire: full-id logs never touch it.
//! - While 64-bit logs wait on its low bits, a trace whose spans expired is kept (they may be
//!   theirs) until those logs have left. When such a trace is evicted, the waiting 64-bit logs
//!   whose window holds one of its spans are decided first, with it, and leave `evicted` too.
//!
//! The join is synchronous and owns no I/O: the pipeline feeds it and ships what it emits. Each
//! trace keeps the acknowledgement token of every span record it holds spans from (each waiting
//! log carries its own), so a record's offset stays uncommitted exactly as long as the state
//! needs it: when a trace leaves, its tokens are dropped.
//!
//! Why one file over 600 lines: the state (the trace LRU, the expiry index, the low-64 index)
//! and the decisions made on it keep one invariant — every log leaves exactly once, with the
//! naive join's result — and read best where each index is updated beside the others.

mod watermark;

pub use watermark::{OriginProgress, PartitionClock, WatermarkTracker};

use crate::model::{
    EmitReason, JoinOutcome, JoinedLog, LogEvent, SpanSummary, TraceContext, TraceId, TraceIdWidth,
};
use crate::sources::ack::Ack;
use lru::LruCache;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The join's windows and bounds.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    /// How long past its own time a log waits for its span.
    pub max_wait: Duration,
    /// How long past its end a span is kept for late logs.
    pub span_retention: Duration,
    /// At most this many open traces.
    pub max_traces: usize,
    /// At most about this many bytes of state.
    pub max_state_bytes: usize,
}

/// What one call to the join produced.
#[derive(Debug, Default)]
pub struct JoinOutput {
    /// Logs leaving the join, each exactly once.
    pub emitted: Vec<JoinedLog>,
    /// Traces evicted to keep the state within bounds.
    pub evicted_traces: u64,
    /// Spans that duplicated one already held.
    pub duplicate_spans: u64,
}

struct WaitingLog {
    log: LogEvent,
    deadline: i64,
    /// The low 64 bits it waits on, for a 64-bit id (it then waits in their zero-padded id's
    /// entry and is decided against every trace of those bits).
    low64: Option<u64>,
}

#[derive(Default)]
struct TraceEntry {
    spans: Vec<Arc<SpanSummary>>,
    waiting: Vec<WaitingLog>,
    /// Tokens of the span records holding spans of this trace (dropped with the trace).
    span_acks: Vec<Ack>,
    /// Latest span end time, for expiry.
    max_span_end: Option<i64>,
    /// When this trace is next due (every entry has one).
    expiry: Option<i64>,
    /// The earliest key the expiry index holds for this trace: at most `expiry`. A later
    /// deadline is not filed until this key comes up (see `reschedule`).
    queued: Option<i64>,
    bytes: usize,
}

/// The traces held whose ids end in one 64-bit value, and the 64-bit logs waiting on it.
#[derive(Default)]
struct Low64Slot {
    /// The traces with spans: almost always one, more only when low halves collide.
    first: Option<TraceId>,
    more: Vec<TraceId>,
    /// 64-bit logs waiting (all in the entry of the zero-padded id).
    waiting: u32,
}

impl Low64Slot {
    fn traces(&self) -> impl Iterator<Item = TraceId> + '_ {
        self.first.into_iter().chain(self.more.iter().copied())
    }
    fn add(&mut self, trace_id: TraceId) {
        match self.first {
            None => self.first = Some(trace_id),
            Some(_) => self.more.push(trace_id),
        }
    }
    fn remove(&mut self, trace_id: TraceId) {
        if self.first == Some(trace_id) {
            self.first = self.more.pop();
        } else if let Some(i) = self.more.iter().position(|t| *t == trace_id) {
            self.more.swap_remove(i);
        }
    }
    fn is_empty(&self) -> bool {
        self.first.is_none() && self.waiting == 0
    }
}

/// The join operator (see the module docs).
pub struct Join {
    settings: JoinSettings,
    max_wait: i64,
    retention: i64,
    traces: LruCache<TraceId, TraceEntry>,
    /// Min-heap of (due, trace). Filed lazily: a trace whose deadline moves later keeps its
    /// earlier key and is filed again under the new one when that key comes up; an item whose
    /// trace left or was filed earlier since is skipped. So a new trace costs a push at the
    /// heap's end (deadlines mostly grow) and nothing is removed before it is due; as a B-tree
    /// with a removal and an insertion per reschedule it was 9 % of the span path
    /// (`perf`, scripts/span-compare.sh). Traces still leave in (due, trace id) order.
    expiry: BinaryHeap<Reverse<(i64, TraceId)>>,
    /// Low 64 bits → the traces held with those bits (see the module docs). Hashed as the LRU
    /// is (foldhash, seeded): SipHash cost the span path 8% in `cargo bench --bench join`.
    low64: HashMap<u64, Low64Slot, lru::DefaultHasher>,
    /// Whether `low64` is kept: only from the first 64-bit log on (built then from the traces
    /// held). Until then no trace pays for an index nothing reads: an insertion and a removal
    /// in a table as large as the state, per trace.
    low64_indexed: bool,
    bytes: usize,
    watermark: i64,
    waiting_logs: usize,
    /// 64-bit logs waiting, all low halves together: while 0, nothing reads the index.
    waiting_low64: usize,
    /// Logs leaving one entry, reused so that emitting allocates nothing.
    scratch: Vec<WaitingLog>,
    /// Traces one span record touched, reused.
    touched: Vec<TraceId>,
}

/// Skipped items the expiry index may hold beyond one per live trace before it is compacted.
const STALE_EXPIRY_SLACK: usize = 1024;

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Join {
    /// An empty join.
    pub fn new(settings: JoinSettings) -> Self {
        Join {
            max_wait: nanos(settings.max_wait),
            retention: nanos(settings.span_retention),
            settings,
            traces: LruCache::unbounded(),
            expiry: BinaryHeap::new(),
            low64: HashMap::default(),
            low64_indexed: false,
            bytes: 0,
            watermark: i64::MIN,
            waiting_logs: 0,
            waiting_low64: 0,
            scratch: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Changes the state bounds (a worker shares its budget among its tasks); enforced from the
    /// next insertion on.
    pub fn set_bounds(&mut self, max_traces: usize, max_state_bytes: usize) {
        self.settings.max_traces = max_traces;
        self.settings.max_state_bytes = max_state_bytes;
    }

    /// Open traces held.
    pub fn traces(&self) -> usize {
        self.traces.len()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Logs waiting for their span.
    pub fn waiting_logs(&self) -> usize {
        self.waiting_logs
    }

    /// The current watermark (nanoseconds; `i64::MIN` before the first advance).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Adds spans decoded from one record; every trace they go to keeps a clone of the record's
    /// token until it leaves the state.
    pub fn on_spans(
        &mut self,
        spans: impl IntoIterator<Item = SpanSummary>,
        ack: &Ack,
        out: &mut JoinOutput,
    ) {
        let mut touched = std::mem::take(&mut self.touched);
        for span in spans {
            let trace_id = span.trace_id;
            let entry = self.traces.get_or_insert_mut(trace_id, TraceEntry::default);
            if !entry.span_acks.last().is_some_and(|a| a.same_record(ack)) {
                entry.span_acks.push(ack.clone());
            }
            if entry.spans.iter().any(|s| s.span_id == span.span_id) {
                out.duplicate_spans += 1;
                continue;
            }
            if entry.spans.is_empty() && self.low64_indexed {
                self.low64
                    .entry(trace_id.low64())
                    .or_default()
                    .add(trace_id);
            }
            let bytes = span.approx_bytes() + std::mem::size_of::<Arc<SpanSummary>>();
            entry.bytes += bytes;
            self.bytes += bytes;
            entry.max_span_end = Some(
                entry
                    .max_span_end
                    .map_or(span.end_unix_nanos, |e| e.max(span.end_unix_nanos)),
            );
            let span = Arc::new(span);
            // Logs waiting for exactly this span leave now (not 64-bit ones: another trace of
            // their low bits may still arrive in their window).
            let (retention, max_wait) = (self.retention, self.max_wait);
            let mut i = 0;
            while i < entry.waiting.len() {
                let w = &entry.waiting[i];
                if w.low64.is_none()
                    && w.log.span_id == Some(span.span_id)
                    && in_window(&span, w.log.timestamp_unix_nanos, retention, max_wait)
                {
                    let w = entry.waiting.swap_remove(i);
                    let b = w.log.approx_bytes();
                    entry.bytes -= b;
                    self.bytes -= b;
                    self.waiting_logs -= 1;
                    let trace = Some(trace_context(
                        &entry.spans,
                        &span,
                        w.log.timestamp_unix_nanos,
                        retention,
                        max_wait,
                    ));
                    out.emitted.push(JoinedLog {
                        log: w.log,
                        outcome: JoinOutcome::MatchedSpan,
                        reason: EmitReason::SpanArrived,
                        span: Some(span.clone()),
                        trace,
                    });
                } else {
                    i += 1;
                }
            }
            entry.spans.push(span);
            if touched.last() != Some(&trace_id) {
                touched.push(trace_id);
            }
        }
        for t in touched.drain(..) {
            self.reschedule(t);
        }
        self.touched = touched;
        self.enforce_bounds(out);
    }

    /// Adds one log; it leaves now or waits.
    pub fn on_log(&mut self, log: LogEvent, out: &mut JoinOutput) {
        let Some(trace_id) = log.trace_id else {
            out.emitted.push(JoinedLog {
                log,
                outcome: JoinOutcome::NoTraceId,
                reason: EmitReason::NoTraceId,
                span: None,
                trace: None,
            });
            return;
        };
        let deadline = log.timestamp_unix_nanos.saturating_add(self.max_wait);
        // A 64-bit id waits under its zero-padded form (whatever the decoder left in the high
        // half); an all-zero low half is no 64-bit id, so it is taken as written.
        let low64 = (log.trace_id_width == TraceIdWidth::Bits64)
            .then(|| TraceId::from_low64(trace_id.low64()))
            .flatten();
        if low64.is_some() && !self.low64_indexed {
            self.index_low64();
        }
        if deadline < self.watermark {
            let joined = match low64 {
                Some(key) => self.decide_low64(log, key.low64(), EmitReason::Late),
                None => {
                    let spans = self
                        .traces
                        .peek(&trace_id)
                        .map_or(&[][..], |e| &e.spans[..]);
                    decide(log, spans, EmitReason::Late, self.retention, self.max_wait)
                }
            };
            out.emitted.push(joined);
            return;
        }
        let key = match low64 {
            Some(key) => {
                self.low64.entry(key.low64()).or_default().waiting += 1;
                self.waiting_low64 += 1;
                key
            }
            None => trace_id,
        };
        if let Some(entry) = self.traces.get_mut(&key) {
            let ts = log.timestamp_unix_nanos;
            if let Some(own) = log.span_id.filter(|_| low64.is_none()).and_then(|sid| {
                entry
                    .spans
                    .iter()
                    .find(|s| s.span_id == sid && in_window(s, ts, self.retention, self.max_wait))
            }) {
                let span = own.clone();
                let trace = Some(trace_context(
                    &entry.spans,
                    &span,
                    ts,
                    self.retention,
                    self.max_wait,
                ));
                out.emitted.push(JoinedLog {
                    log,
                    outcome: JoinOutcome::MatchedSpan,
                    reason: EmitReason::SpanPresent,
                    span: Some(span),
                    trace,
                });
                return;
            }
        } else {
            self.traces.put(key, TraceEntry::default());
        }
        let entry = self.traces.get_mut(&key).expect("present");
        let b = log.approx_bytes();
        entry.bytes += b;
        self.bytes += b;
        self.waiting_logs += 1;
        entry.waiting.push(WaitingLog {
            log,
            deadline,
            low64: low64.map(|k| k.low64()),
        });
        self.reschedule(key);
        self.enforce_bounds(out);
    }

    /// Moves the watermark forward (never back) and emits or expires what it passed.
    pub fn advance_watermark(&mut self, watermark: i64, out: &mut JoinOutput) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        while let Some(&Reverse((when, trace_id))) = self.expiry.peek() {
            if when >= watermark {
                break;
            }
            self.expiry.pop();
            let Some(entry) = self.traces.peek_mut(&trace_id) else {
                continue;
            };
            if entry.queued != Some(when) {
                continue;
            }
            entry.queued = None;
            match entry.expiry {
                Some(due) if due == when => {
                    entry.expiry = None;
                    self.expire(trace_id, out);
                }
                Some(later) => {
                    entry.queued = Some(later);
                    self.expiry.push(Reverse((later, trace_id)));
                }
                None => {}
            }
        }
    }

    /// Emits every waiting log and drops all state (shutdown, or partitions given up).
    pub fn drain(&mut self, out: &mut JoinOutput) {
        // Every log is decided before anything is dropped: a 64-bit log may depend on any
        // trace of its low bits. Least recently used first, as eviction would.
        let ids: Vec<TraceId> = self.traces.iter().rev().map(|(t, _)| *t).collect();
        for t in ids {
            self.emit_waiting(t, EmitReason::Drained, None, out);
        }
        self.traces.clear();
        self.expiry.clear();
        self.low64.clear();
        self.bytes = 0;
        self.waiting_logs = 0;
        self.waiting_low64 = 0;
    }

    /// The trace's expiry key passed the watermark: its due logs leave, then it leaves unless
    /// something still holds it.
    fn expire(&mut self, trace_id: TraceId, out: &mut JoinOutput) {
        self.emit_waiting(
            trace_id,
            EmitReason::WindowClosed,
            Some(self.watermark),
            out,
        );
        let Some(entry) = self.traces.peek(&trace_id) else {
            return;
        };
        let spans_expired = entry
            .max_span_end
            .is_none_or(|e| e.saturating_add(self.retention) < self.watermark);
        if !(spans_expired && entry.waiting.is_empty()) {
            self.reschedule(trace_id);
            return;
        }
        if !entry.spans.is_empty() {
            let low = trace_id.low64();
            if let Some(pin) = self.pin(low) {
                // The 64-bit logs due now are decided while this trace is still held.
                if pin < self.watermark {
                    if let Some(key) = TraceId::from_low64(low).filter(|k| *k != trace_id) {
                        self.expire(key, out);
                    }
                }
                if self.pin(low).is_some() {
                    self.reschedule(trace_id);
                    return;
                }
            }
        }
        self.remove(trace_id);
    }

    /// The earliest deadline of the 64-bit logs waiting on `low`, which keeps that low half's
    /// traces held.
    fn pin(&self, low: u64) -> Option<i64> {
        if self.waiting_low64 == 0 || self.low64.get(&low).is_none_or(|s| s.waiting == 0) {
            return None;
        }
        let key = TraceId::from_low64(low)?;
        self.traces
            .peek(&key)?
            .waiting
            .iter()
            .filter(|w| w.low64.is_some())
            .map(|w| w.deadline)
            .min()
    }

    /// Emits the waiting logs of a trace (those with deadlines before `due_before`, or all),
    /// each decided on the state as it is.
    fn emit_waiting(
        &mut self,
        trace_id: TraceId,
        reason: EmitReason,
        due_before: Option<i64>,
        out: &mut JoinOutput,
    ) {
        let mut leaving = std::mem::take(&mut self.scratch);
        let Some(entry) = self.traces.peek_mut(&trace_id) else {
            self.scratch = leaving;
            return;
        };
        let mut i = 0;
        while i < entry.waiting.len() {
            if due_before.is_none_or(|d| entry.waiting[i].deadline < d) {
                let w = entry.waiting.swap_remove(i);
                let b = w.log.approx_bytes();
                entry.bytes -= b;
                self.bytes -= b;
                leaving.push(w);
            } else {
                i += 1;
            }
        }
        self.waiting_logs -= leaving.len();
        for w in leaving.drain(..) {
            let joined = self.decide_waiting(trace_id, w, reason);
            out.emitted.push(joined);
        }
        self.scratch = leaving;
    }

    /// Decides a log taken out of `trace_id`'s waiting list.
    fn decide_waiting(
        &mut self,
        trace_id: TraceId,
        w: WaitingLog,
        reason: EmitReason,
    ) -> JoinedLog {
        match w.low64 {
            Some(low) => {
                self.waiting_low64 = self.waiting_low64.saturating_sub(1);
                if let Some(slot) = self.low64.get_mut(&low) {
                    slot.waiting = slot.waiting.saturating_sub(1);
                    if slot.is_empty() {
                        self.low64.remove(&low);
                    }
                }
                // The decision reads only the traces, so the count can go first.
                self.decide_low64(w.log, low, reason)
            }
            None => {
                let spans = self
                    .traces
                    .peek(&trace_id)
                    .map_or(&[][..], |e| &e.spans[..]);
                decide(w.log, spans, reason, self.retention, self.max_wait)
            }
        }
    }

    /// Decides a 64-bit log against every trace held whose id ends in `low` (module docs).
    fn decide_low64(&self, mut log: LogEvent, low: u64, reason: EmitReason) -> JoinedLog {
        let ts = log.timestamp_unix_nanos;
        let mut found: Option<(TraceId, &TraceEntry)> = None;
        for t in self.low64.get(&low).into_iter().flat_map(Low64Slot::traces) {
            let Some(entry) = self.traces.peek(&t) else {
                continue;
            };
            if !entry
                .spans
                .iter()
                .any(|s| in_window(s, ts, self.retention, self.max_wait))
            {
                continue;
            }
            if found.is_some() {
                return JoinedLog {
                    log,
                    outcome: JoinOutcome::Unmatched,
                    reason: EmitReason::AmbiguousId,
                    span: None,
                    trace: None,
                };
            }
            found = Some((t, entry));
        }
        match found {
            Some((t, entry)) => {
                log.trace_id = Some(t);
                decide(log, &entry.spans, reason, self.retention, self.max_wait)
            }
            None => decide(log, &[], reason, self.retention, self.max_wait),
        }
    }

    /// Files the trace under its next deadline: a log's, its spans' expiry, or — spans expired —
    /// the earliest 64-bit log of its low bits; with nothing pending, due at the next advance.
    fn reschedule(&mut self, trace_id: TraceId) {
        let Some(entry) = self.traces.peek(&trace_id) else {
            return;
        };
        let logs = entry.waiting.iter().map(|w| w.deadline).min();
        let spans = entry
            .max_span_end
            .map(|e| e.saturating_add(self.retention))
            .filter(|e| *e >= self.watermark);
        let mut when = match (logs, spans) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if when.is_none() && !entry.spans.is_empty() {
            when = self.pin(trace_id.low64());
        }
        let when = when.unwrap_or(i64::MIN);
        if entry.expiry == Some(when) {
            return;
        }
        let Some(entry) = self.traces.peek_mut(&trace_id) else {
            return;
        };
        entry.expiry = Some(when);
        if entry.queued.is_none_or(|q| when < q) {
            entry.queued = Some(when);
            self.expiry.push(Reverse((when, trace_id)));
            self.bound_expiry_index();
        }
    }

    /// Drops the expiry index's items that will only be skipped (their trace left, evicted or
    /// expired, or was filed earlier since) once they outnumber the live ones: an evicted trace's
    /// item would otherwise stay until it is due, and a full state evicting a trace for every
    /// new one would grow the index by the arrival rate times `span_retention`, past every
    /// bound. Amortised: at least as many pushes as live items happen between two passes.
    fn bound_expiry_index(&mut self) {
        if self.expiry.len() <= 2 * self.traces.len() + STALE_EXPIRY_SLACK {
            return;
        }
        let traces = &self.traces;
        self.expiry
            .retain(|Reverse((when, t))| traces.peek(t).is_some_and(|e| e.queued == Some(*when)));
    }

    /// Starts keeping the low-64 index: every trace held with spans goes in.
    fn index_low64(&mut self) {
        self.low64_indexed = true;
        for (t, e) in self.traces.iter() {
            if !e.spans.is_empty() {
                self.low64.entry(t.low64()).or_default().add(*t);
            }
        }
    }

    /// Drops a trace and everything that points at it; its waiting logs must have left.
    fn remove(&mut self, trace_id: TraceId) {
        // Its items in the expiry index are skipped when they come up.
        let Some(mut entry) = self.traces.pop(&trace_id) else {
            return;
        };
        if !entry.spans.is_empty() && self.low64_indexed {
            if let std::collections::hash_map::Entry::Occupied(mut slot) =
                self.low64.entry(trace_id.low64())
            {
                slot.get_mut().remove(trace_id);
                if slot.get().is_empty() {
                    slot.remove();
                }
            }
        }
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        entry.span_acks.clear();
    }

    /// Evicts a trace: its waiting logs, and the 64-bit logs elsewhere that its spans may
    /// decide, leave `evicted`, decided while it is still held; then it goes.
    fn evict(&mut self, victim: TraceId, has_waiting: bool, out: &mut JoinOutput) {
        if has_waiting {
            self.emit_waiting(victim, EmitReason::Evicted, None, out);
        }
        let low = victim.low64();
        let waited_on = self.waiting_low64 > 0
            && self.low64.get(&low).is_some_and(|s| s.waiting > 0)
            && self
                .traces
                .peek(&victim)
                .is_some_and(|e| !e.spans.is_empty());
        if waited_on {
            if let Some(key) = TraceId::from_low64(low).filter(|k| *k != victim) {
                self.evict_dependents(key, victim, out);
                self.reschedule(key);
            }
        }
        self.remove(victim);
    }

    /// The 64-bit logs waiting in `key` whose window holds a span of `victim` leave `evicted`.
    fn evict_dependents(&mut self, key: TraceId, victim: TraceId, out: &mut JoinOutput) {
        let mut taken = std::mem::take(&mut self.scratch);
        if let Some(entry) = self.traces.peek_mut(&key) {
            let mut i = 0;
            while i < entry.waiting.len() {
                if entry.waiting[i].low64.is_some() {
                    taken.push(entry.waiting.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        // Rare (an eviction while 64-bit logs wait on the victim's low bits): a small list.
        let mut staying = Vec::new();
        for w in taken.drain(..) {
            let ts = w.log.timestamp_unix_nanos;
            let depends = self.traces.peek(&victim).is_some_and(|e| {
                e.spans
                    .iter()
                    .any(|s| in_window(s, ts, self.retention, self.max_wait))
            });
            if !depends {
                staying.push(w);
                continue;
            }
            let b = w.log.approx_bytes();
            if let Some(entry) = self.traces.peek_mut(&key) {
                entry.bytes -= b;
            }
            self.bytes -= b;
            self.waiting_logs -= 1;
            let joined = self.decide_waiting(key, w, EmitReason::Evicted);
            out.emitted.push(joined);
        }
        if let Some(entry) = self.traces.peek_mut(&key) {
            entry.waiting.append(&mut staying);
        }
        self.scratch = taken;
    }

    fn enforce_bounds(&mut self, out: &mut JoinOutput) {
        while self.traces.len() > self.settings.max_traces
            || (self.bytes > self.settings.max_state_bytes && self.traces.len() > 1)
        {
            let Some((&victim, entry)) = self.traces.peek_lru() else {
                break;
            };
            let has_waiting = !entry.waiting.is_empty();
            out.evicted_traces += 1;
            self.evict(victim, has_waiting, out);
        }
    }

    /// Checks the bookkeeping against the state itself (tests only).
    #[cfg(test)]
    fn check_consistency(&self) -> Result<(), String> {
        let mut bytes = 0;
        let mut waiting = 0;
        let mut by_low: HashMap<u64, (Vec<TraceId>, u32)> = HashMap::new();
        let filed: std::collections::HashSet<(i64, TraceId)> =
            self.expiry.iter().map(|i| i.0).collect();
        for (t, e) in self.traces.iter() {
            bytes += e.bytes;
            waiting += e.waiting.len();
            let (Some(when), Some(queued)) = (e.expiry, e.queued) else {
                return Err(format!("{t:?} is not scheduled"));
            };
            if queued > when {
                return Err(format!("{t:?} is filed after it is due"));
            }
            if !filed.contains(&(queued, *t)) {
                return Err(format!("{t:?} is missing from the expiry index"));
            }
            if !e.spans.is_empty() && self.low64_indexed {
                by_low.entry(t.low64()).or_default().0.push(*t);
            }
            for w in &e.waiting {
                if let Some(low) = w.low64 {
                    if TraceId::from_low64(low) != Some(*t) {
                        return Err(format!("a 64-bit log of {low:x} waits in {t:?}"));
                    }
                    by_low.entry(low).or_default().1 += 1;
                }
            }
        }
        if (bytes, waiting) != (self.bytes, self.waiting_logs) {
            return Err(format!(
                "bytes/waiting {:?} counted, {:?} held",
                (self.bytes, self.waiting_logs),
                (bytes, waiting)
            ));
        }
        let low_waiting: u32 = by_low.values().map(|(_, n)| n).sum();
        if low_waiting as usize != self.waiting_low64 {
            return Err(format!(
                "{} 64-bit logs counted, {low_waiting} waiting",
                self.waiting_low64
            ));
        }
        if by_low.len() != self.low64.len() {
            return Err(format!(
                "{} low-64 slots, {} expected",
                self.low64.len(),
                by_low.len()
            ));
        }
        for (low, (mut traces, n)) in by_low {
            let slot = self.low64.get(&low).ok_or(format!("no slot for {low:x}"))?;
            let mut indexed: Vec<TraceId> = slot.traces().collect();
            traces.sort();
            indexed.sort();
            if indexed != traces || slot.waiting != n {
                return Err(format!(
                    "slot {low:x}: {indexed:?}/{} indexed, {traces:?}/{n} held",
                    slot.waiting
                ));
            }
        }
        Ok(())
    }
}

fn in_window(span: &SpanSummary, log_ts: i64, retention: i64, max_wait: i64) -> bool {
    span.end_unix_nanos >= log_ts.saturating_sub(retention)
        && span.end_unix_nanos <= log_ts.saturating_add(max_wait)
}

/// The trace's representative span among those in the log's window: the root, else the earliest
/// start (ties by span id), so that the choice does not depend on arrival order.
fn representative<'a>(
    spans: impl Iterator<Item = &'a Arc<SpanSummary>>,
) -> Option<&'a Arc<SpanSummary>> {
    spans.min_by_key(|s| (s.parent_span_id.is_some(), s.start_unix_nanos, s.span_id))
}

fn trace_context(
    spans: &[Arc<SpanSummary>],
    extra: &SpanSummary,
    log_ts: i64,
    retention: i64,
    max_wait: i64,
) -> TraceContext {
    let eligible = || {
        spans
            .iter()
            .filter(|s| in_window(s, log_ts, retention, max_wait))
    };
    let root = representative(eligible()).filter(|r| r.parent_span_id.is_none());
    let extra_is_root = extra.parent_span_id.is_none();
    let counted = eligible().filter(|s| s.span_id != extra.span_id).count() as u32 + 1;
    TraceContext {
        root_service: if extra_is_root {
            Some(extra.service.clone())
        } else {
            root.map(|r| r.service.clone())
        },
        root_operation: if extra_is_root {
            Some(extra.name.clone())
        } else {
            root.map(|r| r.name.clone())
        },
        error: extra.status == crate::model::StatusCode::Error
            || eligible().any(|s| s.status == crate::model::StatusCode::Error),
        span_count: counted,
    }
}

/// Decides a log's outcome from the spans of its trace (see the module docs).
fn decide(
    log: LogEvent,
    spans: &[Arc<SpanSummary>],
    reason: EmitReason,
    retention: i64,
    max_wait: i64,
) -> JoinedLog {
    let ts = log.timestamp_unix_nanos;
    let own = log.span_id.and_then(|sid| {
        spans
            .iter()
            .find(|s| s.span_id == sid && in_window(s, ts, retention, max_wait))
    });
    let (outcome, span) = match own {
        Some(s) => (JoinOutcome::MatchedSpan, Some(s.clone())),
        None => match representative(
            spans
                .iter()
                .filter(|s| in_window(s, ts, retention, max_wait)),
        ) {
            Some(r) => (JoinOutcome::MatchedTrace, Some(r.clone())),
            None => (JoinOutcome::Unmatched, None),
        },
    };
    let trace = span
        .as_ref()
        .map(|s| trace_context(spans, s, ts, retention, max_wait));
    JoinedLog {
        log,
        outcome,
        reason,
        span,
        trace,
    }
}

#[cfg(test)]
mod tests;
