//! Service graph metrics: which service calls which, how often, how slowly, how many fail —
//! named and labelled like the OpenTelemetry Collector's `servicegraph` connector (itself
//! Grafana Tempo's service graph processor), so Grafana's service map and existing dashboards
//! read them as they are.
//!
//! Semantics, as the connector's source has them (`connector/servicegraphconnector`,
//! `connector.go` and `internal/store`, contrib main of 2026; the connector is not served by
//! the Go module proxy here, so it is not cross-run):
//! - An **edge** is one request: a client span and the server span whose parent it is, paired
//!   by (trace id, client span id = server's parent span id); a producer span and its consumer
//!   span the same way (`connection_type="messaging_system"`). A client span with a database
//!   name attribute (`database_name_attributes`, `db.name`) is a whole edge at once: the server
//!   is the database (`connection_type="database"`).
//! - Half an edge waits in a **store** for its other half, up to `store.ttl` (wall clock), at
//!   most `store.max_items` halves per worker; a half that finds no room is **dropped**
//!   (`traces_service_graph_dropped_spans_total`). A half that expires is **unpaired**
//!   (`traces_service_graph_unpaired_spans_total`) and becomes a **virtual node** edge
//!   (`connection_type="virtual_node"`) when it can: a client span whose server never came gets
//!   the server named by its first peer attribute (`virtual_node_peer_attributes`:
//!   `peer.service`, `db.name`, `db.system`; else `unknown`), a root server span gets the client
//!   `user`. A server span whose parent is no client span of this stream stays unpaired.
//! - A completed edge counts in `traces_service_graph_request_total`, in `…_failed_total` when
//!   either span has status error, and observes the server span's duration in
//!   `…_request_server_seconds` and the client span's in `…_request_client_seconds` (explicit
//!   buckets, the connector's defaults). Labels: `client`, `server`, `connection_type`, `failed`,
//!   and per configured dimension `client_<dim>` / `server_<dim>` from the span attributes of that
//!   side (sanitised for Prometheus as the Collector's Prometheus exporter does).
//!
//! Where tracejoin differs, and why: dimensions and peer attributes are read from span
//! attributes only (the decoder keeps no resource attributes but `service.name`); the series key
//! includes the dimensions (the connector's key omits them, so two edges that differ only in a
//! dimension share a series and its labels flip); series idle for `series_idle_timeout` are
//! dropped (the connector's 15-minute cache loop). Replayed spans that an earlier owner counted
//! are not paired again (`SpansFrom::counted_before`).
//!
//! Each worker has its own store (a trace's spans reach one worker: co-partitioned or re-keyed
//! by trace id); the series table is the process's, behind one mutex taken once per completed
//! batch of edges and per scrape.

use crate::model::{AttrValue, SpanId, SpanKind, SpanSummary, StatusCode, TraceId};
use crate::telemetry::proto::{counter, histogram, pair};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::Registry;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use thiserror::Error;

#[cfg(test)]
mod tests;

const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
const REQUEST_FAILED: &str = "traces_service_graph_request_failed_total";
const SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
const CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";
const UNPAIRED: &str = "traces_service_graph_unpaired_spans_total";
const DROPPED: &str = "traces_service_graph_dropped_spans_total";

/// The connector's default latency bounds, in seconds.
pub const DEFAULT_BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// Where half an edge waits for the other half.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How long (wall clock) a half waits.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Halves waiting, per worker; a new half beyond it is dropped.
    pub max_items: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        // The connector's ttl; its max_items (1000) is sized for one Collector's batches, this
        // for a worker draining a backlog of many services.
        StoreConfig {
            ttl: Duration::from_secs(2),
            max_items: 100_000,
        }
    }
}

/// `metrics.service_graph`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceGraphConfig {
    /// Compute the service graph.
    pub enabled: bool,
    /// Span attributes added as `client_<name>` / `server_<name>` labels.
    pub dimensions: Vec<String>,
    /// Histogram bounds in seconds; the connector's when absent.
    pub buckets: Option<Vec<f64>>,
    /// The pairing store.
    pub store: StoreConfig,
    /// Span attributes that name the server of a client span whose server never came, first
    /// found wins.
    pub virtual_node_peer_attributes: Vec<String>,
    /// Span attributes of a client span that make it a database call (the value names the
    /// server).
    pub database_name_attributes: Vec<String>,
    /// Series not updated for this long are dropped.
    #[serde(with = "humantime_serde")]
    pub series_idle_timeout: Duration,
    /// At most this many edge series; new ones beyond it are not created (counted as dropped
    /// spans).
    pub max_series: usize,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        ServiceGraphConfig {
            enabled: true,
            dimensions: Vec::new(),
            buckets: None,
            store: StoreConfig::default(),
            virtual_node_peer_attributes: vec![
                "peer.service".into(),
                "db.name".into(),
                "db.system".into(),
            ],
            database_name_attributes: vec!["db.name".into()],
            series_idle_timeout: Duration::from_secs(15 * 60),
            max_series: 10_000,
        }
    }
}

/// A `metrics.service_graph` value that cannot work.
#[derive(Debug, Error)]
#[error("metrics.service_graph.{key} = {value}: {reason}")]
pub struct ServiceGraphError {
    /// The key under `metrics.service_graph`.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Why not.
    pub reason: String,
}

impl ServiceGraphConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ServiceGraphError> {
        let bad = |key: &str, value: String, reason: &str| ServiceGraphError {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if let Some(b) = &self.buckets {
            if b.is_empty()
                || b.windows(2).any(|w| w[0] >= w[1])
                || b.iter().any(|x| !x.is_finite())
            {
                return Err(bad(
                    "buckets",
                    format!("{b:?}"),
                    "must be finite and strictly increasing, at least one",
                ));
            }
        }
        if self.store.ttl.is_zero() {
            return Err(bad("store.ttl", "0s".into(), "must be positive"));
        }
        if self.store.max_items == 0 {
            return Err(bad("store.max_items", "0".into(), "must be at least 1"));
        }
        for d in &self.dimensions {
            if d.trim().is_empty() {
                return Err(bad("dimensions", "\"\"".into(), "names a span attribute"));
            }
        }
        Ok(())
    }

    /// Span attributes the decoder must keep for it.
    pub fn span_attributes(&self) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        self.dimensions
            .iter()
            .chain(&self.virtual_node_peer_attributes)
            .chain(&self.database_name_attributes)
            .cloned()
            .collect()
    }
}

/// `connection_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Connection {
    Unset,
    Messaging,
    Database,
    VirtualNode,
}

impl Connection {
    fn as_str(self) -> &'static str {
        match self {
            Connection::Unset => "",
            Connection::Messaging => "messaging_system",
            Connection::Database => "database",
            Connection::VirtualNode => "virtual_node",
        }
    }
}

/// Half an edge, or a whole one.
#[derive(Debug, Clone)]
struct Edge {
    client: Option<Arc<str>>,
    server: Option<Arc<str>>,
    connection: Connection,
    client_seconds: f64,
    server_seconds: f64,
    failed: bool,
    /// Per configured dimension: the client side's value, the server side's.
    dims: Vec<[Option<Box<str>>; 2]>,
    /// The first peer attribute found on the client span: what names a virtual server.
    peer: Option<Box<str>>,
    /// Keyed by a root server span (no parent): its virtual client is `user`.
    root: bool,
    expires: Instant,
    /// The trace, the span that made the request (the client's, else the server's), and the
    /// end of the latest half: the edge's exemplar.
    trace_id: TraceId,
    span_id: SpanId,
    end_nanos: i64,
}

impl Edge {
    fn complete(&self) -> bool {
        self.client.is_some() && self.server.is_some()
    }
}

type Key = (TraceId, SpanId);

/// A seeded multiply-xor hash for the store and the series table: their keys are random ids
/// and short label strings, for which SipHash (the default) costs more than the rest of the
/// pairing; the per-process random seed keeps crafted ids from colliding on purpose.
#[derive(Clone)]
struct FastState(u64);

impl Default for FastState {
    fn default() -> Self {
        FastState(
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u64)
                | 1,
        )
    }
}

impl std::hash::BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche: hashbrown takes the top bits for its control bytes.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}

/// One series' values.
#[derive(Debug, Clone)]
struct Cell {
    labels: Vec<(String, String)>,
    total: u64,
    failed: u64,
    server: Hist,
    client: Hist,
    last_seen: Instant,
    /// The latest edge: (trace, span, server seconds, client seconds, end).
    sample: Option<(TraceId, SpanId, f64, f64, i64)>,
}

impl Cell {
    fn count(&mut self, e: &Edge, bounds: &[f64], now: Instant) {
        self.total += 1;
        self.failed += u64::from(e.failed);
        self.server.observe(bounds, e.server_seconds);
        self.client.observe(bounds, e.client_seconds);
        self.last_seen = now;
        self.sample = Some((
            e.trace_id,
            e.span_id,
            e.server_seconds,
            e.client_seconds,
            e.end_nanos,
        ));
    }
}

#[derive(Debug, Clone)]
struct Hist {
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: Box<[u64]>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn new(bounds: usize) -> Self {
        Hist {
            buckets: vec![0; bounds + 1].into_boxed_slice(),
            sum: 0.0,
            count: 0,
        }
    }
    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        // The first bound >= the value (Go's sort.SearchFloat64s, as the connector uses).
        self.buckets[bounds.partition_point(|b| *b < seconds)] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The process's series.
#[derive(Debug, Default)]
struct Table {
    series: HashMap<Box<str>, Cell, FastState>,
    /// (client, server, connection_type) → count.
    unpaired: HashMap<(Box<str>, Box<str>, Connection), u64>,
    dropped: HashMap<(Box<str>, Box<str>, Connection), u64>,
}

/// What the workers share.
#[derive(Debug)]
struct Settings {
    bounds: Arc<[f64]>,
    /// Configured dimensions and their two label names.
    dims: Vec<(Box<str>, [String; 2])>,
    peers: Vec<Box<str>>,
    databases: Vec<Box<str>>,
    ttl: Duration,
    max_items: usize,
    max_series: usize,
    idle_timeout: Duration,
}

/// Counts about the service graph itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServiceGraphStats {
    /// Halves waiting in this worker's store.
    pub waiting: usize,
    /// Edges completed (virtual ones included).
    pub edges: u64,
    /// Halves that expired without their pair.
    pub expired: u64,
}

/// One worker's service graph: its pairing store, and the process's series.
pub struct ServiceGraph {
    settings: Arc<Settings>,
    table: Arc<Mutex<Table>>,
    registry: Registry,
    store: HashMap<Key, Edge, FastState>,
    /// Keys in arrival order, with their expiry: the ttl is fixed, so this is expiry order.
    order: VecDeque<(Instant, Key)>,
    /// Completed edges waiting to be counted under one lock.
    done: Vec<Edge>,
    key_buf: String,
    stats: ServiceGraphStats,
}

impl std::fmt::Debug for ServiceGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceGraph")
            .field("waiting", &self.store.len())
            .finish_non_exhaustive()
    }
}

/// Prometheus' label name for a span attribute: what is not `[a-zA-Z0-9_]` becomes `_`.
fn label_name(prefix: &str, attribute: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + attribute.len());
    s.push_str(prefix);
    s.extend(attribute.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    s
}

fn attr<'a>(span: &'a SpanSummary, name: &str) -> Option<&'a AttrValue> {
    span.attributes
        .iter()
        .find(|(k, _)| &**k == name)
        .map(|(_, v)| v)
}

fn seconds(span: &SpanSummary) -> f64 {
    span.duration_nanos() as f64 / 1e9
}

impl ServiceGraph {
    /// Validates `cfg` and sets up an empty store and table.
    pub fn new(cfg: &ServiceGraphConfig) -> Result<Self, ServiceGraphError> {
        cfg.validate()?;
        let settings = Arc::new(Settings {
            bounds: cfg
                .buckets
                .clone()
                .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec())
                .into(),
            dims: cfg
                .dimensions
                .iter()
                .map(|d| {
                    (
                        d.as_str().into(),
                        [label_name("client_", d), label_name("server_", d)],
                    )
                })
                .collect(),
            peers: cfg
                .virtual_node_peer_attributes
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
            databases: cfg
                .database_name_attributes
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
            ttl: cfg.store.ttl,
            max_items: cfg.store.max_items,
            max_series: cfg.max_series,
            idle_timeout: cfg.series_idle_timeout,
        });
        let table = Arc::new(Mutex::new(Table::default()));
        let registry = Registry::new();
        registry
            .register(Box::new(Exposition {
                descs: exposition_descs(),
                settings: settings.clone(),
                table: table.clone(),
            }))
            .map_err(|e| ServiceGraphError {
                key: "dimensions".into(),
                value: format!("{:?}", cfg.dimensions),
                reason: e.to_string(),
            })?;
        Ok(ServiceGraph {
            settings,
            table,
            registry,
            store: HashMap::default(),
            order: VecDeque::new(),
            done: Vec::new(),
            key_buf: String::new(),
            stats: ServiceGraphStats::default(),
        })
    }

    /// Another worker's service graph: its own store, the same series.
    pub fn for_another_worker(&self) -> ServiceGraph {
        ServiceGraph {
            settings: self.settings.clone(),
            table: self.table.clone(),
            registry: self.registry.clone(),
            store: HashMap::default(),
            order: VecDeque::new(),
            done: Vec::new(),
            key_buf: String::new(),
            stats: ServiceGraphStats::default(),
        }
    }

    /// The registry of the service graph series; a clone shares them.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counts that are still counts.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pairs the client, server, producer and consumer spans of one record.
    pub fn observe(&mut self, spans: &[SpanSummary]) {
        self.observe_at(spans, Instant::now());
    }

    /// [`observe`](Self::observe) at a given time (tests).
    pub fn observe_at(&mut self, spans: &[SpanSummary], now: Instant) {
        for s in spans {
            let (client_side, connection) = match s.kind {
                SpanKind::Client => (true, Connection::Unset),
                SpanKind::Producer => (true, Connection::Messaging),
                SpanKind::Server => (false, Connection::Unset),
                SpanKind::Consumer => (false, Connection::Messaging),
                SpanKind::Internal | SpanKind::Unspecified => continue,
            };
            let key = if client_side {
                (s.trace_id, s.span_id)
            } else {
                (s.trace_id, s.parent_span_id.unwrap_or(SpanId([0; 8])))
            };
            if let Some(e) = self.store.get_mut(&key) {
                update(&self.settings, e, s, client_side, connection);
                if e.complete() {
                    let e = self.store.remove(&key).expect("present");
                    self.done.push(e);
                }
                continue;
            }
            let mut e = Edge {
                client: None,
                server: None,
                connection,
                client_seconds: 0.0,
                server_seconds: 0.0,
                failed: false,
                dims: vec![[None, None]; self.settings.dims.len()],
                peer: None,
                root: !client_side && s.parent_span_id.is_none(),
                expires: now + self.settings.ttl,
                trace_id: s.trace_id,
                span_id: s.span_id,
                end_nanos: s.end_unix_nanos,
            };
            update(&self.settings, &mut e, s, client_side, connection);
            if e.complete() {
                self.done.push(e);
                continue;
            }
            if self.store.len() >= self.settings.max_items {
                let mut t = self.lock();
                *t.dropped.entry(side_labels(&e, e.connection)).or_insert(0) += 1;
                continue;
            }
            self.order.push_back((e.expires, key));
            self.store.insert(key, e);
        }
        self.flush(now);
    }

    /// Expires the halves past their ttl (unpaired, virtual nodes) and idle series.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            // A half completed since is gone from the store; a key reused after completion has
            // a later expiry than this entry.
            match self.store.get(&key) {
                Some(e) if e.expires <= now => {}
                _ => continue,
            }
            let Some(mut e) = self.store.remove(&key) else {
                continue;
            };
            self.stats.expired += 1;
            {
                let mut t = self.lock();
                *t.unpaired.entry(side_labels(&e, e.connection)).or_insert(0) += 1;
            }
            e.connection = Connection::VirtualNode;
            if e.client.is_none() && e.root {
                e.client = Some(Arc::from("user"));
                self.done.push(e.clone());
            }
            if e.server.is_none() {
                e.server = Some(Arc::from(e.peer.as_deref().unwrap_or("unknown")));
                self.done.push(e);
            }
        }
        self.flush(now);
        let idle = self.settings.idle_timeout;
        let mut t = self.lock();
        t.series
            .retain(|_, c| now.saturating_duration_since(c.last_seen) < idle);
    }

    /// Counts the completed edges under one lock.
    fn flush(&mut self, now: Instant) {
        if self.done.is_empty() {
            return;
        }
        // Field by field: the lock borrows the table, the loop the buffers and the stats.
        let settings = &*self.settings;
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for e in self.done.drain(..) {
            self.stats.edges += 1;
            let (client, server) = (
                e.client.as_deref().unwrap_or_default(),
                e.server.as_deref().unwrap_or_default(),
            );
            let k = &mut self.key_buf;
            k.clear();
            for part in [client, server, e.connection.as_str(), bool_str(e.failed)] {
                k.push_str(part);
                k.push('\0');
            }
            for [c, s] in &e.dims {
                for v in [c, s] {
                    k.push_str(v.as_deref().unwrap_or("\u{1}"));
                    k.push('\0');
                }
            }
            let bounds = &settings.bounds;
            if let Some(cell) = t.series.get_mut(k.as_str()) {
                cell.count(&e, bounds, now);
                continue;
            }
            if t.series.len() >= settings.max_series {
                *t.dropped.entry(side_labels(&e, e.connection)).or_insert(0) += 1;
                continue;
            }
            let mut labels = vec![
                ("client".to_string(), client.to_string()),
                ("server".to_string(), server.to_string()),
                (
                    "connection_type".to_string(),
                    e.connection.as_str().to_string(),
                ),
                ("failed".to_string(), bool_str(e.failed).to_string()),
            ];
            for ((_, names), values) in settings.dims.iter().zip(&e.dims) {
                for (name, v) in names.iter().zip(values) {
                    if let Some(v) = v {
                        labels.push((name.clone(), v.to_string()));
                    }
                }
            }
            labels.sort();
            let mut cell = Cell {
                labels,
                total: 0,
                failed: 0,
                server: Hist::new(bounds.len()),
                client: Hist::new(bounds.len()),
                last_seen: now,
                sample: None,
            };
            cell.count(&e, bounds, now);
            t.series.insert(k.as_str().into(), cell);
        }
    }

    /// Every edge series' exemplar (its latest request), on its counters and both histograms,
    /// for the OpenMetrics exposition.
    pub fn exemplars(&self, out: &mut crate::telemetry::openmetrics::Exemplars) {
        use crate::telemetry::openmetrics::{series_key, Exemplar};
        let t = self.lock();
        for cell in t.series.values() {
            let Some((trace_id, span_id, server, client, end)) = cell.sample else {
                continue;
            };
            let labels = pairs(&cell.labels);
            let e = Exemplar {
                trace_id,
                span_id,
                value: 1.0,
                timestamp: end as f64 / 1e9,
            };
            out.insert(series_key(REQUEST_TOTAL, &labels), e);
            if cell.failed > 0 {
                out.insert(series_key(REQUEST_FAILED, &labels), e);
            }
            out.insert(
                series_key(SERVER_SECONDS, &labels),
                Exemplar { value: server, ..e },
            );
            out.insert(
                series_key(CLIENT_SECONDS, &labels),
                Exemplar { value: client, ..e },
            );
        }
    }

    /// The worker's counts.
    pub fn stats(&self) -> ServiceGraphStats {
        ServiceGraphStats {
            waiting: self.store.len(),
            ..self.stats
        }
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn side_labels(e: &Edge, c: Connection) -> (Box<str>, Box<str>, Connection) {
    (
        e.client.as_deref().unwrap_or_default().into(),
        e.server.as_deref().unwrap_or_default().into(),
        c,
    )
}

/// What one span says about its edge (the connector's `aggregateMetrics`).
fn update(
    settings: &Settings,
    e: &mut Edge,
    s: &SpanSummary,
    client_side: bool,
    connection: Connection,
) {
    e.connection = connection;
    e.failed |= s.status == StatusCode::Error;
    e.end_nanos = e.end_nanos.max(s.end_unix_nanos);
    if client_side {
        e.span_id = s.span_id;
    }
    let side = usize::from(!client_side);
    for ((name, _), values) in settings.dims.iter().zip(e.dims.iter_mut()) {
        if let Some(v) = attr(s, name) {
            values[side] = Some(v.to_label().into());
        }
    }
    if client_side {
        e.client = Some(s.service.clone());
        e.client_seconds = seconds(s);
        if let Some(v) = settings.peers.iter().find_map(|p| attr(s, p)) {
            e.peer = Some(v.to_label().into());
        }
        if let Some(db) = settings.databases.iter().find_map(|d| attr(s, d)) {
            e.connection = Connection::Database;
            e.server = Some(Arc::from(db.to_label()));
            e.server_seconds = seconds(s);
        }
    } else {
        e.server = Some(s.service.clone());
        e.server_seconds = seconds(s);
    }
}

struct Exposition {
    descs: Vec<Desc>,
    settings: Arc<Settings>,
    table: Arc<Mutex<Table>>,
}

const HELP: [(&str, &str); 6] = [
    (
        REQUEST_TOTAL,
        "Requests between two services (service graph edges).",
    ),
    (
        REQUEST_FAILED,
        "Failed requests between two services: either span had status error.",
    ),
    (
        SERVER_SECONDS,
        "Request duration between two services as seen from the server.",
    ),
    (
        CLIENT_SECONDS,
        "Request duration between two services as seen from the client.",
    ),
    (
        UNPAIRED,
        "Client or server spans whose other half did not come within store.ttl.",
    ),
    (
        DROPPED,
        "Client or server spans not paired because the store or the series table was full.",
    ),
];

fn exposition_descs() -> Vec<Desc> {
    HELP.iter()
        .map(|(name, help)| {
            Desc::new(
                name.to_string(),
                help.to_string(),
                Vec::new(),
                HashMap::new(),
            )
            .expect("static metric names")
        })
        .collect()
}

fn pairs(labels: &[(String, String)]) -> Vec<LabelPair> {
    labels.iter().map(|(k, v)| pair(k, v)).collect()
}

fn hist(labels: Vec<LabelPair>, h: &Hist, bounds: &[f64]) -> Metric {
    histogram(labels, bounds, &h.buckets, h.count, h.sum)
}

fn side_pairs(k: &(Box<str>, Box<str>, Connection)) -> Vec<LabelPair> {
    pairs(&[
        ("client".into(), k.0.to_string()),
        ("connection_type".into(), k.2.as_str().into()),
        ("server".into(), k.1.to_string()),
    ])
}

impl Collector for Exposition {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let bounds = &self.settings.bounds;
        let mut fams: Vec<(usize, MetricType, Vec<Metric>)> = vec![
            (0, MetricType::COUNTER, Vec::new()),
            (1, MetricType::COUNTER, Vec::new()),
            (2, MetricType::HISTOGRAM, Vec::new()),
            (3, MetricType::HISTOGRAM, Vec::new()),
            (4, MetricType::COUNTER, Vec::new()),
            (5, MetricType::COUNTER, Vec::new()),
        ];
        for cell in t.series.values() {
            let p = pairs(&cell.labels);
            fams[0].2.push(counter(p.clone(), cell.total));
            fams[1].2.push(counter(p.clone(), cell.failed));
            fams[2].2.push(hist(p.clone(), &cell.server, bounds));
            fams[3].2.push(hist(p, &cell.client, bounds));
        }
        for (k, n) in &t.unpaired {
            fams[4].2.push(counter(side_pairs(k), *n));
        }
        for (k, n) in &t.dropped {
            fams[5].2.push(counter(side_pairs(k), *n));
        }
        drop(t);
        fams.into_iter()
            .filter(|(_, _, m)| !m.is_empty())
            .map(|(i, kind, metrics)| {
                let mut f = MetricFamily::default();
                f.set_name(HELP[i].0.to_string());
                f.set_help(HELP[i].1.to_string());
                f.set_field_type(kind);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}
