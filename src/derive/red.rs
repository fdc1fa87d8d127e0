//! RED metrics (rate, errors, duration) from spans, named and labelled like the OpenTelemetry
//! Collector's spanmetrics connector as its Prometheus exporter renders them, so dashboards built
//! on the connector keep working:
//!
//! ```text
//! traces_span_metrics_calls_total{service_name,span_kind,span_name,status_code,<dimensions>}
//! traces_span_metrics_duration_seconds_bucket{…,le}  _sum  _count
//! ```
//!
//! Edge cases, and where this deliberately differs from the connector + exporter pair:
//! - Which spans count is configured (`span_kinds`, default server and consumer); the connector
//!   counts every kind. The cross-check test lists all six kinds.
//! - Series are keyed by span, not by resource: the exporter adds `job` (`service.namespace/
//!   service.name`), `instance` (`service.instance.id`), `otel_scope_name="spanmetricsconnector"`
//!   and `otel_scope_version`/`otel_scope_schema_url` (empty), and the connector adds
//!   `collector_instance_id` (a random id per Collector process, feature gate on by default).
//!   None of these is emitted here: `job` and `instance` are the scrape target's own labels in
//!   Prometheus, and the others are constant or random. Two instances of one service therefore
//!   share a series here where the Collector keeps one per instance; `sum by` queries agree.
//! - Duration is `end - start` in seconds (`0` when the end precedes the start), computed as the
//!   connector does (`nanos as f64 / 1e9`), so a span lands in the same bucket. Buckets are
//!   upper-inclusive (`le`): a duration equal to a bound counts in that bound's bucket.
//! - Cardinality: at most `max_series` series per metric (calls and duration share their label
//!   sets, so one cap serves both). A span with a new label set beyond the cap is counted in one
//!   series whose only label is `otel_metric_overflow="true"`, as the connector does (its cap,
//!   `aggregation_cardinality_limit`, is per resource; here it is per process). The overflow
//!   series is not counted against the cap.
//! - Idle series expire one by one after `series_idle_timeout` without a span (the overflow
//!   series too), like the connector's `series_expiration`; a series that comes back starts from
//!   zero, which Prometheus treats as a counter reset.
//! - A span delivered twice (same trace id and span id) within the last `dedup_window` counted
//!   spans is counted once. The connector has no such filter; the Kafka input is at-least-once.
//! - Dimensions come from span attributes only (the decoder keeps `join.span_attributes`); the
//!   connector falls back to resource attributes. A missing attribute leaves the label off unless
//!   the dimension has a default. Values render as pdata's `AsString` does.
//! - A span whose resource has no `service.name` is counted under `unknown_service` (what the
//!   decoder reports); the connector skips such spans.
//!
//! Why not `CounterVec`/`HistogramVec`: per-series idle expiry needs each series' last update
//! time, the overflow series has a different label set, and the hot path should find a series
//! without building a `Vec<&str>` of label values. So the series live in one map behind a mutex,
//! locked once per batch by [`RedMetrics::observe`] and once per scrape by the registry's
//! collector, which renders them as metric families.

mod config;
pub(crate) mod dedup;
mod exposition;
mod labels;
mod state;
#[cfg(test)]
mod tests;

pub use config::{
    connector_default_buckets, tempo_default_buckets, Dimension, RedConfig, RedError, RedNaming,
    CONNECTOR_DEFAULT_BUCKETS_MS,
};
pub use state::{RedPartitionState, RedStateError};

use crate::model::{SpanId, SpanKind, SpanSummary, StatusCode, TraceId};
use dedup::Dedup;
use prometheus::Registry;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The identity of a series: its label values. Dimension values are encoded into one string
/// (see `labels::encode_dimension`) so that a lookup needs no allocation.
#[derive(Debug)]
struct SeriesKey {
    /// The join partition whose spans it counts, with `per_partition`; `UNPARTITIONED` without.
    partition: i32,
    service: Arc<str>,
    name: Arc<str>,
    kind: SpanKind,
    status: StatusCode,
    dims: Box<str>,
}

/// A borrowed series identity, for looking a span's series up without building a key.
struct Probe<'a> {
    partition: i32,
    service: &'a str,
    name: &'a str,
    kind: SpanKind,
    status: StatusCode,
    dims: &'a str,
}

type Parts<'a> = (i32, &'a str, &'a str, SpanKind, StatusCode, &'a str);

/// What `SeriesKey` and `Probe` have in common; the map is looked up through it.
trait KeyView {
    fn parts(&self) -> Parts<'_>;
}

impl KeyView for SeriesKey {
    fn parts(&self) -> Parts<'_> {
        (
            self.partition,
            &self.service,
            &self.name,
            self.kind,
            self.status,
            &self.dims,
        )
    }
}

impl KeyView for Probe<'_> {
    fn parts(&self) -> Parts<'_> {
        (
            self.partition,
            self.service,
            self.name,
            self.kind,
            self.status,
            self.dims,
        )
    }
}

/// The partition of every series when RED is not counted per partition.
const UNPARTITIONED: i32 = -1;

impl<'a> Borrow<dyn KeyView + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}
impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for dyn KeyView + '_ {}

// The key hashes and compares exactly as its view does, as `Borrow` requires.
impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}
impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for SeriesKey {}

/// A span of a series, kept as its exemplar candidate.
#[derive(Debug, Clone, Copy)]
struct Sample {
    trace_id: TraceId,
    span_id: SpanId,
    seconds: f64,
    end_nanos: i64,
}

/// Exemplar candidates kept per series: the newest, and for error series a few more, so that
/// one whose trace had error logs joined can be preferred.
const SAMPLES: usize = 4;

/// One series' values: the call count and the duration histogram.
#[derive(Debug, Clone)]
struct Cell {
    calls: u64,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: Box<[u64]>,
    sum: f64,
    last_seen: Instant,
    /// The newest spans, a ring (`calls` says where it stands).
    samples: [Option<Sample>; SAMPLES],
}

impl Cell {
    fn new(bounds: usize, now: Instant) -> Self {
        Cell {
            calls: 0,
            buckets: vec![0; bounds + 1].into_boxed_slice(),
            sum: 0.0,
            last_seen: now,
            samples: [None; SAMPLES],
        }
    }
    fn observe(&mut self, bounds: &[f64], s: &SpanSummary, seconds: f64, now: Instant) {
        self.samples[(self.calls % SAMPLES as u64) as usize] = Some(Sample {
            trace_id: s.trace_id,
            span_id: s.span_id,
            seconds,
            end_nanos: s.end_unix_nanos,
        });
        self.calls += 1;
        // The first bound >= the value (Go's sort.SearchFloat64s, as the connector uses).
        self.buckets[bounds.partition_point(|b| *b < seconds)] += 1;
        self.sum += seconds;
        self.last_seen = now;
    }

    /// The exemplar: the newest span, or for an error series the newest whose trace had error
    /// logs joined, if any.
    fn exemplar(&self, prefer: impl Fn(TraceId) -> bool) -> Option<Sample> {
        let newest_first = (0..SAMPLES as u64)
            .map(|i| (self.calls + SAMPLES as u64 - 1 - i) % SAMPLES as u64)
            .filter_map(|i| self.samples[i as usize]);
        let mut first = None;
        for s in newest_first {
            if prefer(s.trace_id) {
                return Some(s);
            }
            first.get_or_insert(s);
        }
        first
    }
}

/// Traces that had error logs joined, the newest `cap`.
#[derive(Debug)]
struct ErrorTraces {
    order: std::collections::VecDeque<TraceId>,
    set: std::collections::HashSet<TraceId>,
    cap: usize,
}

impl ErrorTraces {
    fn insert(&mut self, t: TraceId) {
        if self.cap == 0 || !self.set.insert(t) {
            return;
        }
        self.order.push_back(t);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// The series, shared by the pipeline (writes) and the registry's collector (reads).
#[derive(Debug)]
struct Table {
    /// Hashed with foldhash (seeded per process), as the join's LRU: a span's lookup hashes its
    /// service, name and dimension strings.
    series: HashMap<SeriesKey, Cell, lru::DefaultHasher>,
    /// The overflow series, per partition (`UNPARTITIONED` without `per_partition`).
    overflow: HashMap<i32, Cell>,
    bounds: Arc<[f64]>,
    /// No series can be idle before this; `None` while there are none.
    next_expiry: Option<Instant>,
    overflowed: u64,
    duplicates: u64,
    /// The redelivery filter, shared by the process's workers: a partition that moves between
    /// them in a rebalance replays its held span records, and those were counted already.
    dedup: Dedup,
    /// Traces with error logs joined: error series prefer them as exemplars.
    error_traces: ErrorTraces,
    /// Per partition restored from the changelog: its spans below this offset are in the
    /// restored counts (`per_partition`).
    counted_below: HashMap<i32, i64>,
    /// Spans of replayed records not counted because a restored state holds them.
    restored_replays: u64,
}

impl Table {
    fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        match self.next_expiry {
            Some(t) if now >= t => {}
            _ => return 0,
        }
        let before = self.len();
        let idle = |c: &Cell| now.saturating_duration_since(c.last_seen) >= timeout;
        self.series.retain(|_, c| !idle(c));
        self.overflow.retain(|_, c| !idle(c));
        self.next_expiry = self
            .series
            .values()
            .chain(self.overflow.values())
            .map(|c| c.last_seen)
            .min()
            .and_then(|t| t.checked_add(timeout));
        before - self.len()
    }

    /// Series held, the overflow series included.
    fn len(&self) -> usize {
        self.series.len() + self.overflow.len()
    }

    /// Drops a partition's series and what was restored of it.
    fn remove_partition(&mut self, partition: i32) {
        self.series.retain(|k, _| k.partition != partition);
        self.overflow.remove(&partition);
        self.counted_below.remove(&partition);
    }
}

/// A dimension as the hot path uses it.
#[derive(Debug, Clone)]
struct DimSpec {
    key: Box<str>,
    default: Option<Box<str>>,
}

/// What one [`RedMetrics::observe`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Spans counted.
    pub counted: u64,
    /// Spans of a replayed record not counted because the partition's restored state holds
    /// them (those an earlier owner's commit marks are `tracejoin_spans_counted_before_total`).
    pub replayed: u64,
    /// Spans not counted because the same trace id + span id was counted recently.
    pub duplicates: u64,
    /// Of the counted spans, those folded into the overflow series.
    pub overflowed: u64,
}

/// RED metrics over a span stream. One per process: the pipeline calls [`observe`] for every
/// decoded span record and [`expire_idle`] on its tick; `/metrics` renders [`registry`].
///
/// [`observe`]: RedMetrics::observe
/// [`expire_idle`]: RedMetrics::expire_idle
/// [`registry`]: RedMetrics::registry
pub struct RedMetrics {
    enabled: bool,
    per_partition: bool,
    table: Arc<Mutex<Table>>,
    /// Indexed by `SpanKind as usize`.
    counted_kinds: [bool; 6],
    dimensions: Vec<DimSpec>,
    key_buf: String,
    max_series: usize,
    idle_timeout: Duration,
    registry: Registry,
    exposition: Arc<exposition::Exposition>,
}

impl std::fmt::Debug for RedMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedMetrics")
            .field("series", &self.series())
            .field("overflowed", &self.overflowed())
            .finish_non_exhaustive()
    }
}

impl RedMetrics {
    /// Validates `cfg` and sets up the (empty) series table and its registry.
    pub fn new(cfg: &RedConfig) -> Result<Self, RedError> {
        cfg.validate()?;
        let bounds: Arc<[f64]> = cfg.effective_buckets().into();
        let table = Arc::new(Mutex::new(Table {
            series: HashMap::default(),
            overflow: HashMap::new(),
            bounds: bounds.clone(),
            next_expiry: None,
            overflowed: 0,
            duplicates: 0,
            dedup: Dedup::new(cfg.dedup_window),
            error_traces: ErrorTraces {
                order: Default::default(),
                set: Default::default(),
                cap: 10_000,
            },
            counted_below: HashMap::new(),
            restored_replays: 0,
        }));
        let mut counted_kinds = [false; 6];
        for k in &cfg.span_kinds {
            counted_kinds[*k as usize] = true;
        }
        let dim_labels = cfg
            .dimensions
            .iter()
            .map(|d| labels::label_name(&d.name).expect("validated"))
            .collect();
        let registry = Registry::new();
        let exposition = Arc::new(exposition::Exposition::new(
            cfg.naming,
            dim_labels,
            cfg.per_partition,
            table.clone(),
        ));
        registry
            .register(Box::new(exposition::Registered(exposition.clone())))
            .map_err(|e| RedError::Invalid {
                key: "naming".into(),
                value: format!("{:?}", cfg.naming),
                reason: e.to_string(),
            })?;
        Ok(RedMetrics {
            enabled: cfg.enabled,
            per_partition: cfg.per_partition,
            table,
            counted_kinds,
            dimensions: cfg
                .dimensions
                .iter()
                .map(|d| DimSpec {
                    key: d.name.as_str().into(),
                    default: d.default.as_deref().map(Into::into),
                })
                .collect(),
            key_buf: String::with_capacity(128),
            max_series: cfg.max_series,
            idle_timeout: cfg.series_idle_timeout,
            registry,
            exposition,
        })
    }

    /// A handle for another worker of the same process: the same series (one table, one
    /// registry, so cardinality does not grow with the workers) and the same redelivery filter
    /// (a partition moved between workers replays span records already counted).
    pub fn for_another_worker(&self) -> RedMetrics {
        RedMetrics {
            enabled: self.enabled,
            per_partition: self.per_partition,
            table: self.table.clone(),
            counted_kinds: self.counted_kinds,
            dimensions: self.dimensions.clone(),
            key_buf: String::with_capacity(128),
            max_series: self.max_series,
            idle_timeout: self.idle_timeout,
            registry: self.registry.clone(),
            exposition: self.exposition.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counts that are still counts.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a batch of decoded spans (one Kafka record's worth). Takes the lock once; finding
    /// an existing series allocates nothing.
    pub fn observe(&mut self, spans: &[SpanSummary]) -> Observed {
        self.observe_at(spans, Instant::now())
    }

    /// [`observe`](Self::observe) with the time of arrival given (for tests and replays).
    pub fn observe_at(&mut self, spans: &[SpanSummary], now: Instant) -> Observed {
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let done = self.count(&mut self.lock(), &mut key_buf, spans, UNPARTITIONED, now);
        self.key_buf = key_buf;
        done
    }

    /// Counts the spans of one record of join partition `partition` at `offset`, unless they
    /// were counted before: below the offset a restored state of the partition holds
    /// ([`restore`](Self::restore)), or, with no restored state, when an earlier owner's commit
    /// says so (`counted_before`). Without `per_partition` only `counted_before` applies.
    pub fn observe_record(
        &mut self,
        spans: &[SpanSummary],
        partition: i32,
        offset: i64,
        counted_before: bool,
    ) -> Observed {
        // Taken out for the call (no allocation): the table's guard borrows `self`.
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let mut guard = self.lock();
        let table = &mut *guard;
        // A restored state is the partition's truth until it is revoked: an earlier owner's
        // commit may mark records past the state's position (its seen mark ran ahead of its
        // last write), and those are not in the restored counts.
        let (skip, restored) = match table.counted_below.get(&partition) {
            Some(below) => (offset < *below, true),
            None => (counted_before, false),
        };
        if skip {
            let replayed = if restored { spans.len() as u64 } else { 0 };
            table.restored_replays += replayed;
            drop(guard);
            self.key_buf = key_buf;
            return Observed {
                replayed,
                ..Observed::default()
            };
        }
        let partition = if self.per_partition {
            partition
        } else {
            UNPARTITIONED
        };
        let done = self.count(table, &mut key_buf, spans, partition, Instant::now());
        drop(guard);
        self.key_buf = key_buf;
        done
    }

    fn count(
        &self,
        table: &mut Table,
        key_buf: &mut String,
        spans: &[SpanSummary],
        partition: i32,
        now: Instant,
    ) -> Observed {
        let mut done = Observed::default();
        if !self.enabled || spans.is_empty() {
            return done;
        }
        let bounds = table.bounds.clone();
        for s in spans {
            if !self.counted_kinds[s.kind as usize] {
                continue;
            }
            if !table.dedup.first_time(s.trace_id, s.span_id) {
                done.duplicates += 1;
                continue;
            }
            key_buf.clear();
            for d in &self.dimensions {
                labels::encode_dimension(s.attribute(&d.key), d.default.as_deref(), key_buf);
            }
            let seconds = s.duration_nanos() as f64 / 1e9;
            let probe = Probe {
                partition,
                service: &s.service,
                name: &s.name,
                kind: s.kind,
                status: s.status,
                dims: key_buf,
            };
            done.counted += 1;
            if let Some(cell) = table.series.get_mut(&probe as &dyn KeyView) {
                cell.observe(&bounds, s, seconds, now);
                continue;
            }
            if table.series.len() < self.max_series {
                let mut cell = Cell::new(bounds.len(), now);
                cell.observe(&bounds, s, seconds, now);
                table.series.insert(
                    SeriesKey {
                        partition,
                        service: s.service.clone(),
                        name: s.name.clone(),
                        kind: s.kind,
                        status: s.status,
                        dims: key_buf.as_str().into(),
                    },
                    cell,
                );
            } else {
                table
                    .overflow
                    .entry(partition)
                    .or_insert_with(|| Cell::new(bounds.len(), now))
                    .observe(&bounds, s, seconds, now);
                done.overflowed += 1;
            }
            if table.next_expiry.is_none() && !self.idle_timeout.is_zero() {
                // `None` again if the timeout is too long to add: then nothing ever expires.
                table.next_expiry = now.checked_add(self.idle_timeout);
            }
        }
        table.overflowed += done.overflowed;
        table.duplicates += done.duplicates;
        done
    }

    /// Drops every series (the overflow series too) that has seen no span for
    /// `series_idle_timeout`; returns how many. Cheap when nothing can be due yet: call it on
    /// every tick.
    pub fn expire_idle(&mut self, now: Instant) -> usize {
        if self.idle_timeout.is_zero() {
            return 0;
        }
        let timeout = self.idle_timeout;
        self.lock().expire(now, timeout)
    }

    /// A trace had an error log joined: its spans are preferred as the exemplars of error series
    /// (a jump from an error spike lands on a trace whose logs say what went wrong).
    pub fn note_error_log(&self, trace: TraceId) {
        self.lock().error_traces.insert(trace);
    }

    /// The exemplar of every series (its calls counter and its duration histogram), for the
    /// OpenMetrics exposition.
    pub fn exemplars(&self, out: &mut crate::telemetry::openmetrics::Exemplars) {
        self.exposition.exemplars(out);
    }

    /// The registry holding both metrics; add it to `/metrics` with `Health::add_registry`. A
    /// clone shares the same series.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Series held (per metric), the overflow series included.
    pub fn series(&self) -> usize {
        self.lock().len()
    }

    /// Spans counted in the overflow series since start.
    pub fn overflowed(&self) -> u64 {
        self.lock().overflowed
    }

    /// Spans not counted as redeliveries since start.
    pub fn duplicates(&self) -> u64 {
        self.lock().duplicates
    }

    /// Span ids the redelivery filter currently remembers.
    pub fn dedup_len(&self) -> usize {
        self.lock().dedup.len()
    }
}
