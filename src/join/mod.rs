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
//! The join is synchronous and owns no I/O: the pipeline feeds it and ships what it emits. Each
//! trace keeps the acknowledgement token of every span record it holds spans from (each waiting
//! log carries its own), so a record's offset stays uncommitted exactly as long as the state
//! needs it: when a trace leaves, its tokens are dropped.

mod watermark;

pub use watermark::{PartitionClock, WatermarkTracker};

use crate::model::{
    EmitReason, JoinOutcome, JoinedLog, LogEvent, SpanSummary, TraceContext, TraceId,
};
use crate::sources::ack::Ack;
use lru::LruCache;
use std::collections::BTreeSet;
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
}

#[derive(Default)]
struct TraceEntry {
    spans: Vec<Arc<SpanSummary>>,
    waiting: Vec<WaitingLog>,
    /// Tokens of the span records holding spans of this trace (dropped with the trace).
    span_acks: Vec<Ack>,
    /// Latest span end time, for expiry.
    max_span_end: Option<i64>,
    /// This trace's key in the expiry index.
    expiry: i64,
    bytes: usize,
}

impl TraceEntry {
    /// When something next happens to this trace at or after `watermark`: a log's deadline or
    /// the spans' expiry (an expiry already passed waits for the logs still waiting).
    fn next_deadline(&self, retention: i64, watermark: i64) -> Option<i64> {
        let logs = self.waiting.iter().map(|w| w.deadline).min();
        let spans = self
            .max_span_end
            .map(|e| e.saturating_add(retention))
            .filter(|e| *e >= watermark);
        match (logs, spans) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The join operator (see the module docs).
pub struct Join {
    settings: JoinSettings,
    max_wait: i64,
    retention: i64,
    traces: LruCache<TraceId, TraceEntry>,
    expiry: BTreeSet<(i64, TraceId)>,
    bytes: usize,
    watermark: i64,
    waiting_logs: usize,
}

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
            expiry: BTreeSet::new(),
            bytes: 0,
            watermark: i64::MIN,
            waiting_logs: 0,
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
        let mut touched: Vec<TraceId> = Vec::new();
        for span in spans {
            let trace_id = span.trace_id;
            if !self.traces.contains(&trace_id) {
                self.traces.put(trace_id, TraceEntry::default());
            }
            let entry = self.traces.get_mut(&trace_id).expect("just inserted");
            if !entry.span_acks.last().is_some_and(|a| a.same_record(ack)) {
                entry.span_acks.push(ack.clone());
            }
            if entry.spans.iter().any(|s| s.span_id == span.span_id) {
                out.duplicate_spans += 1;
                continue;
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
            // Logs waiting for exactly this span leave now.
            let (retention, max_wait) = (self.retention, self.max_wait);
            let mut i = 0;
            while i < entry.waiting.len() {
                let w = &entry.waiting[i];
                if w.log.span_id == Some(span.span_id)
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
        for t in touched {
            self.reschedule(t, out);
        }
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
        if deadline < self.watermark {
            let spans = self
                .traces
                .peek(&trace_id)
                .map_or(&[][..], |e| &e.spans[..]);
            out.emitted.push(decide(
                log,
                spans,
                EmitReason::Late,
                self.retention,
                self.max_wait,
            ));
            return;
        }
        if let Some(entry) = self.traces.get_mut(&trace_id) {
            let ts = log.timestamp_unix_nanos;
            if let Some(own) = log.span_id.and_then(|sid| {
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
            self.traces.put(trace_id, TraceEntry::default());
        }
        let entry = self.traces.get_mut(&trace_id).expect("present");
        let b = log.approx_bytes();
        entry.bytes += b;
        self.bytes += b;
        self.waiting_logs += 1;
        entry.waiting.push(WaitingLog { log, deadline });
        self.reschedule(trace_id, out);
        self.enforce_bounds(out);
    }

    /// Moves the watermark forward (never back) and emits or expires what it passed.
    pub fn advance_watermark(&mut self, watermark: i64, out: &mut JoinOutput) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        while let Some(&(when, trace_id)) = self.expiry.first() {
            if when >= watermark {
                break;
            }
            self.expiry.pop_first();
            let Some(entry) = self.traces.peek_mut(&trace_id) else {
                continue;
            };
            entry.expiry = i64::MIN;
            let mut i = 0;
            while i < entry.waiting.len() {
                if entry.waiting[i].deadline < watermark {
                    let w = entry.waiting.swap_remove(i);
                    let b = w.log.approx_bytes();
                    entry.bytes -= b;
                    self.bytes -= b;
                    self.waiting_logs -= 1;
                    out.emitted.push(decide(
                        w.log,
                        &entry.spans,
                        EmitReason::WindowClosed,
                        self.retention,
                        self.max_wait,
                    ));
                } else {
                    i += 1;
                }
            }
            let spans_expired = entry
                .max_span_end
                .is_none_or(|e| e.saturating_add(self.retention) < watermark);
            if spans_expired && entry.waiting.is_empty() {
                self.remove(trace_id, out);
            } else {
                self.reschedule(trace_id, out);
            }
        }
    }

    /// Emits every waiting log and drops all state (shutdown, or partitions given up).
    pub fn drain(&mut self, out: &mut JoinOutput) {
        while let Some((trace_id, entry)) = self.traces.pop_lru() {
            self.release(trace_id, entry, EmitReason::Drained, out);
        }
        self.expiry.clear();
        self.bytes = 0;
        self.waiting_logs = 0;
    }

    fn reschedule(&mut self, trace_id: TraceId, _out: &mut JoinOutput) {
        let Some(entry) = self.traces.peek_mut(&trace_id) else {
            return;
        };
        if entry.expiry != i64::MIN {
            self.expiry.remove(&(entry.expiry, trace_id));
        }
        match entry.next_deadline(self.retention, self.watermark) {
            Some(when) => {
                entry.expiry = when;
                self.expiry.insert((when, trace_id));
            }
            None => entry.expiry = i64::MIN,
        }
    }

    fn remove(&mut self, trace_id: TraceId, out: &mut JoinOutput) {
        if let Some(entry) = self.traces.pop(&trace_id) {
            self.release(trace_id, entry, EmitReason::Drained, out);
        }
    }

    /// Emits the waiting logs of a trace leaving the state and releases its span records.
    fn release(
        &mut self,
        trace_id: TraceId,
        mut entry: TraceEntry,
        reason: EmitReason,
        out: &mut JoinOutput,
    ) {
        if entry.expiry != i64::MIN {
            self.expiry.remove(&(entry.expiry, trace_id));
        }
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        self.waiting_logs -= entry.waiting.len();
        for w in entry.waiting.drain(..) {
            out.emitted.push(decide(
                w.log,
                &entry.spans,
                reason,
                self.retention,
                self.max_wait,
            ));
        }
        entry.span_acks.clear();
    }

    fn enforce_bounds(&mut self, out: &mut JoinOutput) {
        while self.traces.len() > self.settings.max_traces
            || (self.bytes > self.settings.max_state_bytes && self.traces.len() > 1)
        {
            let Some((trace_id, entry)) = self.traces.pop_lru() else {
                break;
            };
            out.evicted_traces += 1;
            self.release(trace_id, entry, EmitReason::Evicted, out);
        }
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
