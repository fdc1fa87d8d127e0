//! SLO error-budget burn rates in event time, with attribution of the bad events to operation
//! and log-derived cause: "are we burning the budget" and "what is burning it".
//!
//! The pipeline feeds one [`SloEngine`] per worker: every decoded span batch
//! ([`observe_spans`](SloEngine::observe_spans), before the join sees it), every log leaving the
//! join ([`observe_log`](SloEngine::observe_log)), and the watermark on its tick
//! ([`advance`](SloEngine::advance)), which finalises bad events and returns
//! [`AttributionEvent`]s for the attribution topic. `/metrics` renders
//! [`registry`](SloEngine::registry) (names in `exposition.rs`).
//!
//! Semantics and edge cases:
//! - **Events.** A span selected by an SLO (service, span name exact or regex, kinds) is one
//!   event, good or bad per the indicator (availability: error status or an attribute
//!   predicate; latency: duration above a threshold), at its end time. One span may be an event
//!   of several SLOs. A span redelivered (same trace and span id) within the last
//!   `dedup_window` selected spans counts once.
//! - **Windows** are in event time: counts in time buckets (`window.rs`), read as of the
//!   watermark. Memory per SLO and join partition is fixed (about 50 KB of SLI rings for a 30d
//!   period, plus about 1.9 KB per (operation, cause) pair seen in the last 3 days, capped by
//!   `max_operations` and `max_causes`), whatever the traffic. An event older than a ring reaches is not counted
//!   in that ring's windows (`SloStats::too_old` when it reaches none).
//! - **Burn rates** count a bad event at once; its **attribution** waits until the watermark
//!   passes its end + `max_wait` (the join's outcome of the trace's logs is known then,
//!   `pending.rs`), so the attribution and `tracejoin_slo_events_total{outcome="bad"}` lag the
//!   burn rate by `max_wait`. At most `max_pending` bad events wait; past it the oldest is
//!   finalised early with the cause known so far (`SloStats::forced_finalisations`).
//! - **Cause** of a bad event: the template (`template.rs`) of its trace's first error log
//!   during the span (else the trace's first), else the span's exception type, else its status
//!   message templated, else `unknown`. At most `max_causes` distinct causes per SLO (more are
//!   `other`), `max_operations` operations (more are `other`); a cause or operation not seen
//!   for 78 h (event time) is dropped with its counters, freeing its place.
//! - **Crossings** of the workbook's multiwindow burn-rate thresholds produce one attribution
//!   event each (`alerting.rs`).
//! - **Partitions.** The rings, the bad events waiting for their cause and the orphan error
//!   logs are kept per input partition (the join task's), summed when read. A partition's state
//!   leaves with it ([`revoke`](SloEngine::revoke)); [`export`](SloEngine::export) and
//!   [`restore`](SloEngine::restore) (`state.rs`) carry it to its next owner through the
//!   pipeline's changelog topic, with the offset up to which its spans were counted, so that the
//!   next owner counts the replayed spans below it once ([`observe_record`](SloEngine::observe_record)).
//!   `tracejoin_slo_events_total` is a counter of the process, so Prometheus' own windows over
//!   it ride over restarts (`rules/alerts/`).
//! - **Several instances** each see the traces of their partitions: their Sloth-named ratios are
//!   each a sample of the whole; `tracejoin_slo_window_events` sums across instances into the
//!   exact fleet-wide ratio (the recording rules in `rules/alerts/`).

mod alerting;
mod config;
mod exposition;
mod labels;
mod pending;
mod select;
mod series;
mod state;
mod template;
#[cfg(test)]
mod tests;
mod window;

pub use alerting::{AttributionEvent, CauseShare, OperationShare, PairShare};
pub use config::{
    AttributionConfig, AvailabilityIndicator, Indicator, LatencyIndicator, Selector, SloConfig,
    SloError, SloSpec,
};
pub use state::{PartitionState, Position, RekeyedMark, StateError};
pub use window::Window;

use crate::model::{JoinedLog, SpanSummary, StatusCode};
use alerting::{AlertState, Crossing, ALERTS};
use labels::CAUSE_UNKNOWN;
use pending::{Dedup, Fallback, Orphans, Pending, PendingEvent};
use prometheus::Registry;
use select::{Compiled, Selection};
use series::{Meta, SloSeries};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Labels and causes not seen for this long (event time) are dropped: the longest window (3d)
/// plus the attribution ring's slack.
const LABEL_IDLE_NANOS: i64 = 78 * 3_600 * 1_000_000_000;
/// How often (event time) idle labels are looked for.
const GC_EVERY_NANOS: i64 = 3_600 * 1_000_000_000;
/// Alert conditions are evaluated at every step of this much event time the watermark crosses.
const EVAL_STEP_NANOS: i64 = 10 * 1_000_000_000;
/// How far back the first `advance` evaluates the alert conditions, at most.
const DAY_NANOS: i64 = 86_400 * 1_000_000_000;
/// At most this many evaluation points per `advance`; a longer jump is sampled.
const MAX_EVAL_POINTS: i64 = 720;
/// Crossings waiting for their attribution, at most (oldest dropped beyond).
const MAX_CROSSINGS: usize = 1024;

/// The state the exposition reads.
pub(crate) struct Shared {
    slos: Vec<SloSeries>,
    watermark: Option<i64>,
}

/// Counts about the engine itself, for the processor's telemetry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SloStats {
    /// Bad events waiting for their trace's logs.
    pub pending: usize,
    /// Error logs kept for a bad span of their trace that has not been seen yet.
    pub orphan_logs: usize,
    /// Bad events finalised before their time because `max_pending` was reached.
    pub forced_finalisations: u64,
    /// SLO events older than every ring reaches (counted in `tracejoin_slo_events_total` only).
    pub too_old: u64,
    /// Spans not counted because they were counted recently (redeliveries).
    pub duplicates: u64,
    /// Spans of replayed records not counted because a restored partition state (or an
    /// earlier owner's commit) holds them already.
    pub restored_replays: u64,
    /// Events whose operation was folded into `other` by the cap.
    pub operations_overflowed: u64,
    /// Bad events whose cause was folded into `other` by the cap.
    pub causes_overflowed: u64,
    /// Attribution events produced.
    pub attribution_events: u64,
    /// Approximate bytes held by the rings and label tables.
    pub bytes: usize,
}

/// SLO burn rates and attribution over the span and log streams (module docs).
pub struct SloEngine {
    shared: Arc<Mutex<Shared>>,
    registry: Registry,
    compiled: Vec<Compiled>,
    selection: Selection,
    selected: Vec<u16>,
    dedup: Dedup,
    /// Per partition: bad events waiting for their cause.
    pending: BTreeMap<i32, Pending>,
    /// Per partition: error logs waiting for a bad span of their trace.
    orphans: BTreeMap<i32, Orphans>,
    max_orphan_logs: usize,
    /// Per restored partition: the offset below which its spans are in the restored state.
    counted_below: HashMap<i32, i64>,
    alerts: Vec<[AlertState; 4]>,
    crossings: VecDeque<Crossing>,
    max_wait: i64,
    orphan_retention: i64,
    severities: Vec<String>,
    max_pending: usize,
    max_cause_length: usize,
    top: usize,
    watermark: Option<i64>,
    /// The earliest end of a selected span seen before the first watermark: where the first
    /// `advance` starts evaluating the alert conditions.
    earliest: Option<i64>,
    next_gc: i64,
    stats: SloStats,
}

impl std::fmt::Debug for SloEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SloEngine")
            .field("slos", &self.compiled.len())
            .field("watermark", &self.watermark)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl SloEngine {
    /// Validates `cfg` and sets up the (empty) rings and the registry. `max_wait` is the join's
    /// `join.max_wait`: how long after a span's end its logs may still be in the join.
    pub fn new(cfg: &SloConfig, max_wait: Duration) -> Result<Self, SloError> {
        cfg.validate()?;
        let a = &cfg.attribution;
        let mut compiled = Vec::with_capacity(cfg.slos.len());
        let mut slos = Vec::with_capacity(cfg.slos.len());
        for spec in &cfg.slos {
            compiled.push(Compiled::new(spec)?);
            let meta = Meta {
                name: spec.name.as_str().into(),
                service: spec.service.as_str().into(),
                sloth_id: format!("{}-{}", spec.service, spec.name).into(),
                objective: spec.objective,
                period: spec.time_window,
                period_str: series::prom_duration(spec.time_window),
                min_events: spec.min_events,
                labels: spec
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            slos.push(SloSeries::new(meta, a.max_operations, a.max_causes));
        }
        let shared = Arc::new(Mutex::new(Shared {
            slos,
            watermark: None,
        }));
        let registry = Registry::new();
        registry
            .register(Box::new(exposition::Exposition::new(shared.clone())))
            .map_err(|e| SloError::Invalid {
                origin: cfg.origin.clone(),
                slo: "slos".into(),
                key: "time_window".into(),
                value: String::new(),
                reason: e.to_string(),
            })?;
        Ok(SloEngine {
            shared,
            registry,
            alerts: vec![[AlertState::default(); 4]; compiled.len()],
            compiled,
            selection: Selection::new(),
            selected: Vec::new(),
            dedup: Dedup::new(a.dedup_window),
            pending: BTreeMap::new(),
            orphans: BTreeMap::new(),
            max_orphan_logs: a.max_orphan_logs,
            counted_below: HashMap::new(),
            crossings: VecDeque::new(),
            max_wait: nanos(max_wait),
            orphan_retention: nanos(a.orphan_log_retention),
            severities: a
                .error_severities
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
            max_pending: a.max_pending,
            max_cause_length: a.max_cause_length,
            top: a.top,
            watermark: None,
            earliest: None,
            next_gc: i64::MIN,
            stats: SloStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves counts that are still counts.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the spans of one decoded record of partition 0 (an engine outside a pipeline).
    pub fn observe_spans(&mut self, spans: &[SpanSummary]) {
        self.count_spans(0, spans);
    }

    /// Counts the spans of the record at `offset` of input partition `partition`, unless that
    /// partition's restored state already holds them (below its restored offset), or, without
    /// a restored state, unless `counted_before` (an earlier owner's commit says it counted
    /// them). Whether it counted them.
    pub fn observe_record(
        &mut self,
        partition: i32,
        offset: i64,
        counted_before: bool,
        spans: &[SpanSummary],
    ) -> bool {
        // A restored state is the partition's truth until it is revoked: an earlier owner's
        // commit may mark records past the state's position (its seen mark ran ahead of its
        // last write), and those are not in the restored windows.
        let skip = match self.counted_below.get(&partition) {
            Some(below) => offset < *below,
            None => counted_before,
        };
        if skip {
            self.stats.restored_replays += spans.len() as u64;
            return false;
        }
        self.count_spans(partition, spans);
        true
    }

    /// Locks once per call, and only if a span is selected by some SLO.
    fn count_spans(&mut self, partition: i32, spans: &[SpanSummary]) {
        if self.compiled.is_empty() || spans.is_empty() {
            return;
        }
        let now = self.watermark.unwrap_or(i64::MIN);
        let mut guard: Option<MutexGuard<'_, Shared>> = None;
        for s in spans {
            let sel = self.selection.of(&self.compiled, s);
            if sel.is_empty() {
                continue;
            }
            self.selected.clear();
            self.selected.extend_from_slice(sel);
            if !self.dedup.first_time(s.trace_id, s.span_id) {
                self.stats.duplicates += 1;
                continue;
            }
            let shared =
                guard.get_or_insert_with(|| self.shared.lock().unwrap_or_else(|e| e.into_inner()));
            let t = s.end_unix_nanos;
            if self.watermark.is_none() {
                self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
            }
            for &i in &self.selected {
                let i = usize::from(i);
                let series = &mut shared.slos[i];
                let bad = self.compiled[i].is_bad(s);
                if !series.record(partition, t, bad) {
                    self.stats.too_old += 1;
                }
                let before = series.ops.overflowed;
                let op = series.ops.id(&s.name, t.max(now));
                self.stats.operations_overflowed += series.ops.overflowed - before;
                if !bad {
                    series.count_good(op);
                    continue;
                }
                let fallback = match (&s.exception_type, &s.status_message) {
                    (Some(e), _) if !e.trim().is_empty() => Fallback::Exception(e.clone()),
                    (_, Some(m)) if s.status == StatusCode::Error && !m.trim().is_empty() => {
                        Fallback::Status(m.clone())
                    }
                    _ => Fallback::None,
                };
                let mut ev = PendingEvent {
                    slo: i as u16,
                    op,
                    span_id: s.span_id,
                    start: s.start_unix_nanos,
                    end: t,
                    fallback,
                    log: None,
                };
                if let Some(o) = self.orphans.get(&partition) {
                    o.offer_to(s.trace_id, &mut ev);
                }
                self.pending
                    .entry(partition)
                    .or_default()
                    .insert(s.trace_id, ev);
            }
        }
        drop(guard);
        let pending = self.pending.entry(partition).or_default();
        if pending.len() > self.max_pending {
            let now = self.watermark.unwrap_or(i64::MIN);
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            while pending.len() > self.max_pending {
                let Some((_, ev)) = pending.pop_if(|_| true) else {
                    break;
                };
                self.stats.forced_finalisations += 1;
                finalise(&mut shared, partition, ev, now, self.max_cause_length);
            }
        }
    }

    /// Partition `partition` left: its windows, waiting bad events and orphan logs go with it
    /// (its next owner restores them from the changelog, or counts its replay).
    pub fn revoke(&mut self, partition: i32) {
        // The redelivery filter remembers spans of the partition whose counts leave now: were
        // they replayed here (the partition reassigned to this process), they must count again.
        self.dedup.clear();
        self.pending.remove(&partition);
        self.orphans.remove(&partition);
        self.counted_below.remove(&partition);
        let mut shared = self.lock();
        for s in &mut shared.slos {
            s.rings.remove(&partition);
        }
    }

    /// Whether a severity counts as an error (`error_severities`, trailing number ignored).
    fn is_error(&self, severity: &str) -> bool {
        let s = severity
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit());
        self.severities.iter().any(|e| s.eq_ignore_ascii_case(e))
    }

    /// Offers a log leaving the join: an error log of a trace is a candidate cause of the
    /// trace's bad events. Cheap for the rest (no trace id, not an error).
    pub fn observe_log(&mut self, joined: &JoinedLog) {
        if self.compiled.is_empty() {
            return;
        }
        let log = &joined.log;
        let (Some(trace), Some(severity)) = (log.trace_id, log.severity.as_deref()) else {
            return;
        };
        if !self.is_error(severity) {
            return;
        }
        let ts = log.timestamp_unix_nanos;
        // The join task's partition: a trace's spans and logs share it.
        let partition = log.ack.partition().unwrap_or(0);
        if let Some(p) = self.pending.get_mut(&partition) {
            p.offer(trace, log.span_id, ts, &log.body);
        }
        // Kept too for a bad span of the trace that comes later (another span of the trace).
        let cap = self.max_orphan_logs;
        self.orphans
            .entry(partition)
            .or_insert_with(|| Orphans::new(cap))
            .insert(trace, log.span_id, ts, &log.body);
    }

    /// Moves to watermark `watermark` (event time, nanoseconds; a lower value than before is
    /// ignored): finalises the bad events whose logs are all out of the join, evaluates the
    /// burn-rate alert conditions, and appends an [`AttributionEvent`] to `out` for each
    /// upward crossing whose bad events are finalised. Call it after the logs the join emitted
    /// for this watermark went through [`observe_log`](Self::observe_log).
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<AttributionEvent>) {
        let prev = self.watermark;
        if prev.is_some_and(|p| watermark <= p) || self.compiled.is_empty() {
            return;
        }
        let w = watermark;
        self.watermark = Some(w);
        let shared = &mut *self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.watermark = Some(w);
        let max_wait = self.max_wait;
        for (partition, pending) in &mut self.pending {
            while let Some((_, ev)) = pending.pop_if(|end| w > end.saturating_add(max_wait)) {
                finalise(shared, *partition, ev, w, self.max_cause_length);
            }
        }
        let orphans_before = w
            .saturating_sub(max_wait)
            .saturating_sub(self.orphan_retention);
        for o in self.orphans.values_mut() {
            o.expire(orphans_before);
        }
        // The first watermark may already be far past the first events (a backlog consumed
        // before the first tick): evaluate from the earliest event (at most a day back), so a
        // crossing's event time does not depend on when the ticks came.
        let from = prev.or_else(|| {
            self.earliest.map(|e| {
                e.max(w.saturating_sub(DAY_NANOS))
                    .saturating_sub(EVAL_STEP_NANOS)
            })
        });
        for t in eval_points(from, w) {
            for (i, series) in shared.slos.iter().enumerate() {
                for (a, spec) in ALERTS.iter().enumerate() {
                    let short = series.burn_rate(spec.short, t);
                    let cond = short > spec.factor && series.burn_rate(spec.long, t) > spec.factor;
                    let rearm = nanos(spec.short.duration());
                    if self.alerts[i][a].step(cond, t, rearm) {
                        let c = series.counts(spec.short, t);
                        if self.crossings.len() >= MAX_CROSSINGS {
                            self.crossings.pop_front();
                        }
                        self.crossings.push_back(Crossing {
                            slo: i,
                            alert: a,
                            at: t,
                            burn_rate: short,
                            long_burn_rate: series.burn_rate(spec.long, t),
                            bad: c.bad,
                            total: c.total,
                        });
                    }
                }
            }
        }
        while self
            .crossings
            .front()
            .is_some_and(|c| w > c.at.saturating_add(max_wait))
        {
            if let Some(c) = self.crossings.pop_front() {
                out.push(AttributionEvent::build(&shared.slos[c.slo], &c, self.top));
                self.stats.attribution_events += 1;
            }
        }
        if w >= self.next_gc {
            for s in &mut shared.slos {
                s.expire(w.saturating_sub(LABEL_IDLE_NANOS));
            }
            self.next_gc = w.saturating_add(GC_EVERY_NANOS);
        }
    }

    /// The registry of the SLO metrics; add it to `/metrics` with `Health::add_registry`. A
    /// clone shares the same state.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// The engine's own counts.
    pub fn stats(&self) -> SloStats {
        let shared = self.lock();
        SloStats {
            pending: self.pending.values().map(Pending::len).sum(),
            orphan_logs: self.orphans.values().map(Orphans::len).sum(),
            causes_overflowed: shared.slos.iter().map(|s| s.causes.overflowed).sum(),
            bytes: shared.slos.iter().map(|s| s.bytes()).sum(),
            ..self.stats
        }
    }

    /// The watermark the metrics are as of.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// SLO `slo`'s burn rate over `window` as of the watermark (`None` for an unknown SLO or
    /// before the first watermark).
    pub fn burn_rate(&self, slo: &str, window: Window) -> Option<f64> {
        let w = self.watermark?;
        let shared = self.lock();
        let s = shared.slos.iter().find(|s| &*s.meta.name == slo)?;
        Some(s.burn_rate(window, w))
    }

    /// SLO `slo`'s finalised bad events over `window` as of the watermark, by (operation,
    /// cause), largest share first.
    pub fn attribution(&self, slo: &str, window: Window) -> Vec<PairShare> {
        let Some(w) = self.watermark else {
            return Vec::new();
        };
        let shared = self.lock();
        let Some(s) = shared.slos.iter().find(|s| &*s.meta.name == slo) else {
            return Vec::new();
        };
        let a = s.attribution(window, w);
        a.pairs
            .iter()
            .map(|((op, cause), n)| PairShare {
                operation: s.ops.name(*op).to_string(),
                cause: s.causes.name(*cause).to_string(),
                bad_events: *n,
                share: *n as f64 / a.bad as f64,
            })
            .collect()
    }
}

/// The event times at which to evaluate the alert conditions when the watermark moves from
/// `prev` to `w`: each `EVAL_STEP` boundary crossed, and `w` (module docs of `alerting`).
fn eval_points(prev: Option<i64>, w: i64) -> Vec<i64> {
    let Some(prev) = prev else {
        return vec![w];
    };
    let first = prev
        .div_euclid(EVAL_STEP_NANOS)
        .saturating_add(1)
        .saturating_mul(EVAL_STEP_NANOS);
    let span = w.saturating_sub(first);
    let mut out = Vec::new();
    if span > 0 {
        let steps = span / EVAL_STEP_NANOS + 1;
        let stride = (steps + MAX_EVAL_POINTS - 1) / MAX_EVAL_POINTS;
        let mut t = first;
        while t < w {
            out.push(t);
            t = t.saturating_add(stride * EVAL_STEP_NANOS);
        }
    }
    out.push(w);
    out
}

/// Attributes a bad event: its cause, then the counters.
fn finalise(shared: &mut Shared, partition: i32, ev: PendingEvent, now: i64, max_len: usize) {
    let text = match (&ev.log, &ev.fallback) {
        (Some(l), _) => template::template(&l.body, max_len),
        (None, Fallback::Exception(e)) => template::truncate(e.trim(), max_len),
        (None, Fallback::Status(m)) => template::template(m, max_len),
        (None, Fallback::None) => String::new(),
    };
    let Some(series) = shared.slos.get_mut(usize::from(ev.slo)) else {
        return;
    };
    let cause = if text.is_empty() {
        CAUSE_UNKNOWN
    } else {
        series.causes.id(&text, now.max(ev.end))
    };
    series.attribute(partition, ev.end, ev.op, cause, now);
}
