//! Observers: what watches the pipeline's events without being on the delivery path — the
//! derived signals (RED metrics, SLO burn rates) and the progress counters of embedders (the
//! demo's live line, tests' summaries).

use super::Progress;
use crate::derive::red::RedMetrics;
use crate::derive::servicegraph::ServiceGraph;
use crate::derive::slo::{AttributionEvent, SloEngine};
use crate::model::{JoinOutcome, JoinedLog, SpanSummary};
use crate::sinks::kafka::OutRecord;
use crate::sinks::Outbox;
use crate::sources::ack::Ack;
use crate::telemetry::metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a worker holds, as of a tick.
pub struct TickState {
    /// Open traces in its join.
    pub open_traces: usize,
    /// Input partitions it owns.
    pub partitions: usize,
}

/// Where a record's spans came from.
#[derive(Debug, Clone, Copy)]
pub struct SpansFrom {
    /// The join partition (the partition number of the record).
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// An earlier owner of the partition consumed the record and counted its spans (its
    /// commit's seen mark is past it): a replay the derived signals must not count again.
    /// A restored state of the partition overrides it (its position is the truth).
    pub counted_before: bool,
}

/// Watches the pipeline's events. Every method defaults to doing nothing.
pub trait Observer: Send {
    /// A record was consumed.
    fn on_record(&mut self) {}
    /// Spans decoded from one record (after timestamp clamping), before the join takes them;
    /// not called for a re-keyed copy of a record counted already (the join takes its spans).
    fn on_spans(&mut self, _spans: &[SpanSummary], _from: SpansFrom) {}
    /// A log left the join; `json` is its enriched document.
    fn on_log(&mut self, _joined: &JoinedLog, _json: &[u8]) {}
    /// A record was dead-lettered as undecodable.
    fn on_dead_letter(&mut self) {}
    /// A sink's delivery of `entries` entries settled.
    fn on_delivered(&mut self, _sink: &'static str, _entries: usize) {}
    /// The join's watermark moved (the logs before it have left the join).
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Outbox) {}
    /// Every tick (200 ms).
    fn on_tick(&mut self, _now: Instant, _state: &TickState) {}
}

/// RED metrics from the spans.
pub(super) struct RedObserver(pub(super) RedMetrics);

impl Observer for RedObserver {
    fn on_spans(&mut self, spans: &[SpanSummary], from: SpansFrom) {
        let o = self
            .0
            .observe_record(spans, from.partition, from.offset, from.counted_before);
        metrics().red_observed(o.duplicates, o.overflowed, o.replayed);
    }
    /// An error log joined to its trace: the trace is preferred as the exemplar of its error
    /// series.
    fn on_log(&mut self, joined: &JoinedLog, _json: &[u8]) {
        let log = &joined.log;
        let matched = matches!(
            joined.outcome,
            JoinOutcome::MatchedSpan | JoinOutcome::MatchedTrace
        );
        if let (true, Some(trace), Some(severity)) = (matched, log.trace_id, &log.severity) {
            if is_error_severity(severity) {
                self.0.note_error_log(trace);
            }
        }
    }
    fn on_tick(&mut self, now: Instant, _state: &TickState) {
        self.0.expire_idle(now);
        metrics().red_series(self.0.series());
    }
}

/// ERROR, FATAL, CRITICAL, ALERT, EMERGENCY, PANIC (any case, a trailing number ignored):
/// the severities of a log that says something went wrong.
fn is_error_severity(severity: &str) -> bool {
    let s = severity
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_digit());
    [
        "error",
        "err",
        "fatal",
        "critical",
        "crit",
        "alert",
        "emergency",
        "emerg",
        "panic",
    ]
    .iter()
    .any(|e| s.eq_ignore_ascii_case(e))
}

/// Service graph edges from the spans (one pairing store per worker).
pub(super) struct ServiceGraphObserver {
    pub(super) graph: ServiceGraph,
    pub(super) worker: usize,
    /// Edges and expired halves as last reported.
    pub(super) reported: (u64, u64),
}

impl Observer for ServiceGraphObserver {
    fn on_spans(&mut self, spans: &[SpanSummary], from: SpansFrom) {
        if from.counted_before {
            return;
        }
        self.graph.observe(spans);
    }
    fn on_tick(&mut self, now: Instant, _state: &TickState) {
        self.graph.expire(now);
        let s = self.graph.stats();
        let (edges, expired) = self.reported;
        metrics().service_graph(self.worker, s.waiting, s.edges - edges, s.expired - expired);
        self.reported = (s.edges, s.expired);
    }
}

/// The SLO engine of a process, shared by its workers so that its series do not multiply with
/// them. Its windows move with the slowest worker's watermark: a bad event's cause is known only
/// once every worker's join has let its trace's logs go.
pub(super) struct SharedSlo {
    engine: Mutex<SloEngine>,
    /// Per worker: its join's watermark; `i64::MIN` before the first, `i64::MAX` while it owns
    /// no partition (it holds nobody back).
    watermarks: Mutex<Vec<i64>>,
    topic: Option<Arc<str>>,
}

impl SharedSlo {
    pub(super) fn new(engine: SloEngine, workers: usize, topic: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(SharedSlo {
            engine: Mutex::new(engine),
            watermarks: Mutex::new(vec![i64::MIN; workers]),
            topic,
        })
    }
    pub(super) fn engine(&self) -> std::sync::MutexGuard<'_, SloEngine> {
        // A panic while holding the lock leaves windows that are still windows.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One worker's view of the shared SLO engine; threshold crossings go to
/// `outputs.attribution_topic` when set.
pub(super) struct SloObserver {
    pub(super) shared: Arc<SharedSlo>,
    pub(super) worker: usize,
    pub(super) events: Vec<AttributionEvent>,
}

impl SloObserver {
    fn set_watermark(&self, f: impl FnOnce(i64) -> i64) -> i64 {
        let mut w = self
            .shared
            .watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w[self.worker] = f(w[self.worker]);
        w.iter().copied().min().unwrap_or(i64::MIN)
    }
}

impl Observer for SloObserver {
    fn on_spans(&mut self, spans: &[SpanSummary], from: SpansFrom) {
        self.shared.engine().observe_record(
            from.partition,
            from.offset,
            from.counted_before,
            spans,
        );
    }
    fn on_log(&mut self, joined: &JoinedLog, _json: &[u8]) {
        self.shared.engine().observe_log(joined);
    }
    fn on_tick(&mut self, _now: Instant, state: &TickState) {
        let owns = state.partitions > 0;
        self.set_watermark(|w| match (owns, w) {
            (false, _) => i64::MAX,
            (true, i64::MAX) => i64::MIN,
            (true, w) => w,
        });
    }
    /// Bad events' causes are known once their trace's logs have left the join, i.e. behind the
    /// join's watermark: the SLO windows move with the slowest worker's.
    fn on_watermark(&mut self, watermark: i64, out: &mut Outbox) {
        let slowest = self.set_watermark(|_| watermark);
        if slowest == i64::MIN || slowest == i64::MAX {
            return;
        }
        {
            let mut engine = self.shared.engine();
            engine.advance(slowest, &mut self.events);
            // Under the engine's lock: the workers mirror its counts one at a time.
            metrics().slo_stats(&engine.stats());
        }
        for event in self.events.drain(..) {
            tracing::info!(event = %String::from_utf8_lossy(&event.to_json()), "slo burn-rate threshold crossed");
            let Some(topic) = &self.shared.topic else {
                continue;
            };
            out.produce(
                "attribution",
                OutRecord {
                    topic: topic.clone(),
                    key: Some(event.key().into_bytes()),
                    payload: event.to_json(),
                    headers: None,
                    ack: Ack::detached(),
                    event_time_nanos: None,
                    partition: None,
                    timestamp_ms: None,
                },
            );
        }
    }
}

/// How many enriched lines of each outcome go to the samples channel.
const SAMPLES_PER_OUTCOME: u64 = 3;

/// The embedder's live counters and samples.
pub(super) struct ProgressObserver {
    pub(super) progress: Arc<Progress>,
    pub(super) samples: Option<mpsc::Sender<(JoinOutcome, String)>>,
    pub(super) samples_sent: [u64; 4],
    /// With no Kafka output, a log counts as delivered when it leaves the join.
    pub(super) delivered_on_emit: bool,
    pub(super) worker: usize,
    /// Open traces per worker, summed into `Progress::open_traces`.
    pub(super) open_traces: Arc<[AtomicU64]>,
}

impl Observer for ProgressObserver {
    fn on_record(&mut self) {
        self.progress.records.fetch_add(1, Ordering::Relaxed);
    }
    fn on_spans(&mut self, spans: &[SpanSummary], from: SpansFrom) {
        if from.counted_before {
            return;
        }
        self.progress
            .spans
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
    fn on_log(&mut self, joined: &JoinedLog, json: &[u8]) {
        let idx = joined.outcome as usize;
        self.progress.logs[idx].fetch_add(1, Ordering::Relaxed);
        if self.delivered_on_emit {
            self.progress.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = &self.samples {
            if self.samples_sent[idx] < SAMPLES_PER_OUTCOME {
                self.samples_sent[idx] += 1;
                let _ = tx.try_send((joined.outcome, String::from_utf8_lossy(json).into_owned()));
            }
        }
    }
    fn on_dead_letter(&mut self) {
        self.progress.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    fn on_delivered(&mut self, sink: &'static str, entries: usize) {
        if sink == "kafka" {
            self.progress
                .delivered
                .fetch_add(entries as u64, Ordering::Relaxed);
        }
    }
    fn on_tick(&mut self, _now: Instant, state: &TickState) {
        self.open_traces[self.worker].store(state.open_traces as u64, Ordering::Relaxed);
        let total = self
            .open_traces
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .sum();
        self.progress.open_traces.store(total, Ordering::Relaxed);
    }
}
