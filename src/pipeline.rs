//! One worker: Kafka in → decode → join → enriched logs and dead letters out, with offsets
//! committed only behind what every sink has acknowledged.
//!
//! A single task owns the consumer loop, the decoders, the join and the offset tracker, so the
//! hot path takes no locks across awaits and needs no channels between stages; deliveries are
//! futures polled by the same loop. Scaling is by partitions: more instances in the same
//! consumer group, each a worker over its share (see `sources::kafka`).
//!
//! The loop, per record: hold the offset → decode (failures dead-lettered) → feed the join →
//! encode and send what it emits → release the processing hold. Per tick (200 ms): move the
//! watermark, ship what it releases, update gauges, commit what may be committed. When more
//! than `limits.max_in_flight` deliveries are pending, the assigned partitions are paused until
//! half have drained (backpressure) — the consumer keeps polling, so it keeps its group
//! membership.

use crate::config::{Config, SpanFormat};
use crate::decode::logline::{InputLogFormat, LogDecoder};
use crate::decode::otlp::SpanDecoder;
use crate::decode::rules::{ExtractRules, RulesError};
use crate::decode::DecodeError;
use crate::derive::red::{RedError, RedMetrics};
use crate::join::{Join, JoinOutput, JoinSettings, WatermarkTracker};
use crate::model::{JoinOutcome, LogEvent, Origin, SpanSummary, TimestampSource};
use crate::sinks::enriched;
use crate::sinks::kafka::{dead_letter_headers, KafkaSink, OutRecord};
use crate::sinks::loki::{BatchOutcome, LokiBatch, LokiClient, LokiSink};
use crate::sources::kafka::{
    subscribe, AssignmentChange, BrokerTrouble, SourceConsumer, TopicTable,
};
use crate::sources::offsets::OffsetTracker;
use crate::telemetry::{metrics, server::Health};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the pipeline could not start or had to stop.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The extraction rules are invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The SLO definitions could not be loaded.
    #[error("slo: {0}")]
    Slo(#[from] crate::derive::slo::SloError),
    /// The Loki sink could not be built.
    #[error("loki sink: {0}")]
    Loki(#[from] crate::sinks::loki::LokiError),
    /// The RED metrics config is invalid.
    #[error(transparent)]
    Red(#[from] RedError),
    /// The metrics endpoint could not bind.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// Live counters for progress displays and summaries (the demo's, and tests').
#[derive(Debug, Default)]
pub struct Progress {
    /// Records consumed.
    pub records: AtomicU64,
    /// Spans decoded.
    pub spans: AtomicU64,
    /// Logs out by outcome (`JoinOutcome` order).
    pub logs: [AtomicU64; 4],
    /// Records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Enriched logs acknowledged by the Kafka sink.
    pub delivered: AtomicU64,
    /// Open traces in the join.
    pub open_traces: AtomicU64,
}

impl Progress {
    /// Logs out, all outcomes.
    pub fn logs_total(&self) -> u64 {
        self.logs.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Options for embedding the pipeline (demo, tests).
#[derive(Default)]
pub struct Hooks {
    /// Live counters.
    pub progress: Arc<Progress>,
    /// Receives the first few enriched lines of each outcome.
    pub samples: Option<mpsc::Sender<(JoinOutcome, String)>>,
}

/// What a pending output resolves to.
enum Completion {
    /// These records' holds can be released (a chain of sends that ended).
    Release(Vec<Origin>),
    /// A Kafka acknowledgement of one record (or of nothing to release).
    Acked(Option<Origin>),
    /// A Loki batch finished.
    Loki(BatchOutcome),
}

type Pending = Pin<Box<dyn Future<Output = Completion> + Send>>;

const TICK: Duration = Duration::from_millis(200);
const SAMPLES_PER_OUTCOME: u64 = 3;

struct Worker {
    config: Config,
    topics: TopicTable,
    log_formats: Vec<InputLogFormat>,
    consumer: Arc<SourceConsumer>,
    offsets: Arc<Mutex<OffsetTracker>>,
    sink: KafkaSink,
    output_topic: Arc<str>,
    dead_letter_topic: Arc<str>,
    span_decoder: SpanDecoder,
    log_decoder: LogDecoder,
    join: Join,
    /// RED metrics from the spans (`metrics.red`), when enabled.
    red: Option<RedMetrics>,
    watermark: WatermarkTracker,
    inflight: FuturesUnordered<Pending>,
    /// The Loki sink and its client, when `outputs.loki` is configured.
    loki: Option<(LokiSink, LokiClient)>,
    /// Entries in Loki batches being sent (counted for backpressure with Kafka's records).
    loki_in_flight: usize,
    /// Holds each log takes: one per sink it goes to.
    holds_per_log: u32,
    /// SLO burn rates and attribution, when `rules.slo` is set.
    slo: Option<crate::derive::slo::SloEngine>,
    attribution_topic: Option<Arc<str>>,
    attribution_events: Vec<crate::derive::slo::AttributionEvent>,
    paused: bool,
    health: Health,
    hooks: Hooks,
    samples_sent: [u64; 4],
    // Reused buffers: the hot path allocates per record only what it keeps.
    spans_buf: Vec<SpanSummary>,
    logs_buf: Vec<LogEvent>,
    out: JoinOutput,
    last_commit: Instant,
    /// Partition counts of the input topics by index, refreshed in the background.
    partition_counts: tokio::sync::watch::Receiver<Vec<i32>>,
    /// Topics already warned about for keys on the wrong partition.
    mismatch_warned: Vec<bool>,
    /// `tracejoin_records_consumed_total` per input topic, resolved once.
    consumed: Vec<prometheus::IntCounter>,
    trouble: BrokerTrouble,
}

/// Runs one worker until `shutdown` is cancelled; then drains, commits and leaves the group.
pub async fn run(
    config: Config,
    health: Health,
    hooks: Hooks,
    shutdown: CancellationToken,
) -> Result<(), PipelineError> {
    let rules = match &config.rules.extract {
        Some(path) => ExtractRules::load(path)?,
        None => ExtractRules::builtin(),
    };
    let rules = Arc::new(rules.compile()?);
    let topics = TopicTable::from_config(&config);
    let offsets = Arc::new(Mutex::new(OffsetTracker::new()));
    let trouble = BrokerTrouble::default();
    let (consumer, mut changes) =
        subscribe(&config, topics.clone(), offsets.clone(), trouble.clone())?;
    let sink = KafkaSink::new(&config)?;
    let loki = match &config.outputs.loki {
        Some(cfg) => {
            let sink = LokiSink::new(cfg.clone())?;
            let client = sink.client();
            tracing::info!(url = client.url(), "loki sink on");
            Some((sink, client))
        }
        None => None,
    };
    let mut slo_attributes = Vec::new();
    let slo = match &config.rules.slo {
        Some(path) => {
            let cfg = crate::derive::slo::SloConfig::load(path)?;
            slo_attributes = cfg.span_attributes();
            let engine = crate::derive::slo::SloEngine::new(&cfg, config.join.max_wait)?;
            health.add_registry(engine.registry());
            Some(engine)
        }
        None => None,
    };
    let holds_per_log = u32::from(config.outputs.kafka.enabled) + u32::from(loki.is_some());
    let partition_counts =
        watch_partition_counts(consumer.clone(), topics.clone(), shutdown.clone());
    let j = &config.join;
    let red = if config.metrics.red.enabled {
        let red = RedMetrics::new(&config.metrics.red)?;
        health.add_registry(red.registry());
        Some(red)
    } else {
        None
    };
    // The decoder keeps the span attributes the join uses, those the RED dimensions use, and
    // those the SLO predicates read.
    let mut keep = j.span_attributes.clone();
    let wanted = config
        .metrics
        .red
        .dimensions
        .iter()
        .map(|d| d.name.clone())
        .chain(slo_attributes);
    for name in wanted {
        if !keep.contains(&name) {
            keep.push(name);
        }
    }
    let mut w = Worker {
        log_formats: config.inputs.logs.iter().map(|l| l.format).collect(),
        consumer,
        offsets,
        sink,
        output_topic: config.outputs.kafka.topic.as_str().into(),
        dead_letter_topic: config.outputs.dead_letter.topic.as_str().into(),
        span_decoder: SpanDecoder::new(&keep, 100_000),
        log_decoder: LogDecoder::new(rules, 100_000),
        join: Join::new(JoinSettings {
            max_wait: j.max_wait,
            span_retention: j.span_retention,
            max_traces: j.max_traces,
            max_state_bytes: j.max_state_bytes.as_usize(),
        }),
        red,
        watermark: WatermarkTracker::new(j.allowed_lateness, j.idle_timeout),
        inflight: FuturesUnordered::new(),
        loki,
        loki_in_flight: 0,
        holds_per_log,
        slo,
        attribution_topic: config.outputs.attribution_topic.as_deref().map(Arc::from),
        attribution_events: Vec::new(),
        paused: false,
        health,
        hooks,
        samples_sent: [0; 4],
        spans_buf: Vec::new(),
        logs_buf: Vec::new(),
        out: JoinOutput::default(),
        last_commit: Instant::now(),
        partition_counts,
        mismatch_warned: vec![false; topics.0.len()],
        trouble,
        consumed: topics
            .0
            .iter()
            .map(|t| metrics().records_consumed_handle(t))
            .collect(),
        topics,
        config,
    };
    let consumer = w.consumer.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(change) = changes.recv() => w.on_assignment(change),
            Some(done) = w.inflight.next(), if !w.inflight.is_empty() => w.on_delivered(done),
            _ = tick.tick() => w.on_tick(),
            msg = consumer.recv() => match msg {
                Ok(m) => w.on_record(&m),
                Err(e) => {
                    w.trouble.record();
                    tracing::warn!(error = %e, "consumer error");
                }
            },
        }
    }
    w.shutdown().await;
    Ok(())
}

/// Keeps the input topics' partition counts current (for the co-partitioning check) without
/// blocking the loop: metadata requests run on the blocking pool once a minute.
fn watch_partition_counts(
    consumer: Arc<SourceConsumer>,
    topics: TopicTable,
    shutdown: CancellationToken,
) -> tokio::sync::watch::Receiver<Vec<i32>> {
    let (tx, rx) = tokio::sync::watch::channel(vec![0; topics.0.len()]);
    tokio::spawn(async move {
        loop {
            let (c, t) = (consumer.clone(), topics.clone());
            let counts = tokio::task::spawn_blocking(move || {
                t.0.iter()
                    .map(|name| {
                        c.fetch_metadata(Some(name), Duration::from_secs(10))
                            .ok()
                            .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
                            .unwrap_or(0)
                    })
                    .collect::<Vec<i32>>()
            })
            .await;
            if let Ok(counts) = counts {
                let _ = tx.send(counts);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    });
    rx
}

fn wall_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl Worker {
    fn on_assignment(&mut self, change: AssignmentChange) {
        let now = Instant::now();
        match change {
            AssignmentChange::Assigned(keys) => {
                for k in keys {
                    self.watermark.assign(k, now);
                }
                self.health.set_ready(true);
            }
            AssignmentChange::Revoked(keys) => {
                for k in keys {
                    self.watermark.revoke(k);
                }
                let any_left = self.watermark.partitions().next().is_some();
                self.health.set_ready(any_left);
            }
        }
    }

    fn on_delivered(&mut self, done: Completion) {
        let release = |offsets: &mut OffsetTracker, o: Origin| {
            offsets.release((o.topic, o.partition), o.offset)
        };
        match done {
            Completion::Acked(origin) => {
                if let Some(o) = origin {
                    release(&mut self.offsets.lock().expect("not poisoned"), o);
                }
            }
            Completion::Release(origins) => {
                let mut offsets = self.offsets.lock().expect("not poisoned");
                for o in origins {
                    release(&mut offsets, o);
                }
            }
            Completion::Loki(outcome) => {
                metrics().loki_batch(&outcome);
                self.loki_in_flight = self.loki_in_flight.saturating_sub(outcome.origins().len());
                match outcome {
                    BatchOutcome::Delivered { origins, .. } => {
                        let mut offsets = self.offsets.lock().expect("not poisoned");
                        for o in origins {
                            release(&mut offsets, o);
                        }
                    }
                    BatchOutcome::Rejected {
                        origins,
                        status,
                        reason,
                        payload,
                        cause,
                        ..
                    } => {
                        tracing::warn!(status, %reason, entries = origins.len(), "loki refused a batch: dead-lettered");
                        let headers = dead_letter_headers(
                            &format!("loki_{}", cause.as_str()),
                            &reason,
                            "loki",
                            -1,
                            -1,
                        );
                        self.dead_letter_then_release(payload, headers, origins);
                    }
                }
            }
        }
        self.update_backpressure();
    }

    /// Sends a dead letter for records of the Loki path; their holds are released once Kafka
    /// has it.
    fn dead_letter_then_release(
        &mut self,
        payload: Vec<u8>,
        headers: rdkafka::message::OwnedHeaders,
        origins: Vec<Origin>,
    ) {
        metrics().dead_lettered("loki", "loki_refused");
        let record = OutRecord {
            topic: self.dead_letter_topic.clone(),
            key: None,
            payload,
            headers: Some(headers),
            origin: None,
            event_time_nanos: None,
        };
        let delivery = self.sink.send(record);
        self.inflight.push(Box::pin(
            delivery.map(move |_| Completion::Release(origins)),
        ));
    }

    fn send_loki(&mut self, batch: LokiBatch) {
        let Some((_, client)) = &self.loki else {
            return;
        };
        let client = client.clone();
        self.loki_in_flight += batch.entries();
        self.inflight.push(Box::pin(async move {
            Completion::Loki(client.send(batch).await)
        }));
    }

    fn on_record(&mut self, m: &BorrowedMessage<'_>) {
        let Some(topic) = self.topics.index(m.topic()) else {
            return;
        };
        let key = (topic, m.partition());
        let origin = Origin {
            topic,
            partition: m.partition(),
            offset: m.offset(),
        };
        let now = Instant::now();
        let now_nanos = wall_nanos();
        let progress = self.hooks.progress.clone();
        progress.records.fetch_add(1, Ordering::Relaxed);
        {
            let mut offsets = self.offsets.lock().expect("not poisoned");
            offsets.seen(key, origin.offset);
            offsets.hold(key, origin.offset, 1);
        }
        self.consumed[topic as usize].inc();
        self.check_partition(m, topic);
        let kafka_nanos = m
            .timestamp()
            .to_millis()
            .map_or(now_nanos, |ms| ms.saturating_mul(1_000_000));
        let max_future =
            now_nanos.saturating_add(self.config.join.max_future_skew.as_nanos() as i64);
        let payload = m.payload().unwrap_or_default();
        let result = if payload.len() > self.config.limits.max_record_bytes.as_usize() {
            Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: self.config.limits.max_record_bytes.as_usize(),
            })
        } else if payload.is_empty() {
            Err(DecodeError::Empty)
        } else if topic == 0 {
            self.on_spans(payload, origin, now, max_future)
        } else {
            self.on_logs(payload, origin, kafka_nanos, now, max_future)
        };
        if let Err(e) = result {
            self.dead_letter(m, origin, &e);
        }
        self.ship();
        self.offsets
            .lock()
            .expect("not poisoned")
            .release(key, origin.offset);
    }

    /// Counts a keyed record whose key hashes to another partition under the configured
    /// partitioner: its topic is not co-partitioned with the others.
    fn check_partition(&mut self, m: &BorrowedMessage<'_>, topic: u16) {
        let Some(key) = m.key() else { return };
        let count = self
            .partition_counts
            .borrow()
            .get(topic as usize)
            .copied()
            .unwrap_or(0);
        let Some(expected) = self.config.inputs.partitioner.partition(key, count) else {
            return;
        };
        if expected != m.partition() {
            let name = self.topics.name(topic);
            metrics().partition_key_mismatch(name);
            if !std::mem::replace(&mut self.mismatch_warned[topic as usize], true) {
                tracing::warn!(
                    topic = name,
                    partition = m.partition(),
                    expected,
                    partitioner = ?self.config.inputs.partitioner,
                    "a keyed record is not on the partition its key hashes to: the input topics are not \
                     co-partitioned by trace id, so logs and spans of one trace can reach different workers; \
                     re-key the producers with one partitioner, or repartition into topics keyed by trace id"
                );
            }
        }
    }

    fn on_spans(
        &mut self,
        payload: &[u8],
        origin: Origin,
        now: Instant,
        max_future: i64,
    ) -> Result<(), DecodeError> {
        let as_json = match self.config.inputs.spans.format {
            SpanFormat::OtlpJson => true,
            SpanFormat::OtlpProto => false,
            SpanFormat::Auto => payload.first() == Some(&b'{'),
        };
        let stats = if as_json {
            self.span_decoder
                .decode_json(payload, &mut self.spans_buf)?
        } else {
            self.span_decoder
                .decode_proto(Bytes::copy_from_slice(payload), &mut self.spans_buf)?
        };
        let mut clamped = 0;
        let mut latest = i64::MIN;
        for s in &mut self.spans_buf {
            if s.end_unix_nanos > max_future {
                let shift = s.end_unix_nanos - (max_future);
                s.end_unix_nanos -= shift;
                s.start_unix_nanos = s.start_unix_nanos.saturating_sub(shift);
                clamped += 1;
            }
            latest = latest.max(s.end_unix_nanos);
        }
        if clamped > 0 {
            metrics().timestamp_adjusted("clamped_future", clamped);
        }
        if let Some(red) = &mut self.red {
            let o = red.observe(&self.spans_buf);
            metrics().red_observed(o.duplicates, o.overflowed);
        }
        if let Some(slo) = &mut self.slo {
            slo.observe_spans(&self.spans_buf);
        }
        let decoded = self.spans_buf.len() as u64;
        self.hooks
            .progress
            .spans
            .fetch_add(decoded, Ordering::Relaxed);
        if latest > i64::MIN {
            self.watermark
                .observe((origin.topic, origin.partition), latest, now);
        }
        let holds = self
            .join
            .on_spans(self.spans_buf.drain(..), origin, &mut self.out);
        self.offsets.lock().expect("not poisoned").hold(
            (origin.topic, origin.partition),
            origin.offset,
            holds,
        );
        metrics().spans(
            decoded,
            stats.invalid_ids as u64,
            std::mem::take(&mut self.out.duplicate_spans),
        );
        Ok(())
    }

    fn on_logs(
        &mut self,
        payload: &[u8],
        origin: Origin,
        kafka_nanos: i64,
        now: Instant,
        max_future: i64,
    ) -> Result<(), DecodeError> {
        let format = self.log_formats[origin.topic as usize - 1];
        self.log_decoder.decode(
            Bytes::copy_from_slice(payload),
            format,
            origin,
            kafka_nanos,
            &mut self.logs_buf,
        )?;
        let n = self.logs_buf.len() as u32 * self.holds_per_log;
        self.offsets.lock().expect("not poisoned").hold(
            (origin.topic, origin.partition),
            origin.offset,
            n,
        );
        let (mut from_kafka, mut clamped) = (0, 0);
        let mut latest = i64::MIN;
        for mut log in self.logs_buf.drain(..) {
            if log.timestamp_unix_nanos > max_future {
                log.timestamp_unix_nanos = kafka_nanos.min(max_future);
                log.timestamp_source = TimestampSource::ClampedFuture;
                clamped += 1;
            } else if log.timestamp_source == TimestampSource::Kafka {
                from_kafka += 1;
            }
            latest = latest.max(log.timestamp_unix_nanos);
            self.join.on_log(log, &mut self.out);
        }
        if latest > i64::MIN {
            self.watermark
                .observe((origin.topic, origin.partition), latest, now);
        }
        if from_kafka > 0 {
            metrics().timestamp_adjusted("kafka", from_kafka);
        }
        if clamped > 0 {
            metrics().timestamp_adjusted("clamped_future", clamped);
        }
        Ok(())
    }

    fn dead_letter(&mut self, m: &BorrowedMessage<'_>, origin: Origin, e: &DecodeError) {
        let topic = self.topics.name(origin.topic).to_string();
        metrics().dead_lettered(&topic, e.code());
        self.hooks
            .progress
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%topic, partition = origin.partition, offset = origin.offset, error = %e, "dead-lettered");
        self.offsets.lock().expect("not poisoned").hold(
            (origin.topic, origin.partition),
            origin.offset,
            1,
        );
        let record = OutRecord {
            topic: self.dead_letter_topic.clone(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: Some(dead_letter_headers(
                e.code(),
                &e.to_string(),
                &topic,
                origin.partition,
                origin.offset,
            )),
            origin: Some(origin),
            event_time_nanos: None,
        };
        self.inflight
            .push(Box::pin(self.sink.send(record).map(Completion::Acked)));
    }

    /// Sends what the join emitted and releases the span records it let go.
    fn ship(&mut self) {
        if !self.out.released_spans.is_empty() {
            let mut offsets = self.offsets.lock().expect("not poisoned");
            for o in self.out.released_spans.drain(..) {
                offsets.release((o.topic, o.partition), o.offset);
            }
        }
        if self.out.evicted_traces > 0 {
            metrics().join_evicted(std::mem::take(&mut self.out.evicted_traces));
        }
        if self.out.emitted.is_empty() {
            return;
        }
        let mut counts = std::collections::HashMap::new();
        // Taken out (and put back, keeping its capacity) so the loop may borrow `self`.
        let mut emitted = std::mem::take(&mut self.out.emitted);
        for joined in emitted.drain(..) {
            *counts
                .entry((joined.outcome, joined.reason))
                .or_insert(0u64) += 1;
            let mut payload = Vec::with_capacity(512 + joined.log.body.len());
            enriched::encode(
                &joined,
                self.topics.name(joined.log.origin.topic),
                &mut payload,
            );
            if let Some(slo) = &mut self.slo {
                slo.observe_log(&joined);
            }
            let idx = joined.outcome as usize;
            self.hooks.progress.logs[idx].fetch_add(1, Ordering::Relaxed);
            if let Some(tx) = &self.hooks.samples {
                if self.samples_sent[idx] < SAMPLES_PER_OUTCOME {
                    self.samples_sent[idx] += 1;
                    let _ = tx.try_send((
                        joined.outcome,
                        String::from_utf8_lossy(&payload).into_owned(),
                    ));
                }
            }
            if let Some((loki, _)) = &mut self.loki {
                match loki.add(&joined) {
                    Ok(Some(batch)) => self.send_loki(batch),
                    Ok(None) => {}
                    Err(oversized) => {
                        let headers = dead_letter_headers(
                            "loki_line_too_large",
                            &oversized.to_string(),
                            self.topics.name(oversized.origin.topic),
                            oversized.origin.partition,
                            oversized.origin.offset,
                        );
                        self.dead_letter_then_release(
                            oversized.payload,
                            headers,
                            vec![oversized.origin],
                        );
                    }
                }
            }
            if !self.config.outputs.kafka.enabled {
                self.hooks
                    .progress
                    .delivered
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let record = OutRecord {
                topic: self.output_topic.clone(),
                key: joined.log.trace_id.map(|t| t.to_hex().as_bytes().to_vec()),
                payload,
                headers: None,
                origin: Some(joined.log.origin),
                event_time_nanos: Some(joined.log.timestamp_unix_nanos),
            };
            let progress = self.hooks.progress.clone();
            let delivery = self.sink.send(record);
            self.inflight.push(Box::pin(async move {
                let origin = delivery.await;
                progress.delivered.fetch_add(1, Ordering::Relaxed);
                Completion::Acked(origin)
            }));
        }
        self.out.emitted = emitted;
        for ((outcome, reason), n) in counts {
            metrics().logs_emitted(outcome, reason, n);
        }
        self.update_backpressure();
    }

    /// Moves the SLO windows to the join's watermark (the logs before it have left the join, so
    /// bad events' causes are known) and sends the attribution events of threshold crossings.
    fn advance_slo(&mut self) {
        let Some(slo) = &mut self.slo else { return };
        slo.advance(self.join.watermark(), &mut self.attribution_events);
        for event in self.attribution_events.drain(..) {
            tracing::info!(event = %String::from_utf8_lossy(&event.to_json()), "slo burn-rate threshold crossed");
            let Some(topic) = &self.attribution_topic else {
                continue;
            };
            let record = OutRecord {
                topic: topic.clone(),
                key: Some(event.key().into_bytes()),
                payload: event.to_json(),
                headers: None,
                origin: None,
                event_time_nanos: None,
            };
            self.inflight
                .push(Box::pin(self.sink.send(record).map(Completion::Acked)));
        }
    }

    fn update_backpressure(&mut self) {
        let cap = self.config.limits.max_in_flight;
        let n = self.inflight.len() + self.loki_in_flight;
        let want_pause = if self.paused { n > cap / 2 } else { n >= cap };
        if want_pause != self.paused {
            if let Ok(assignment) = self.consumer.assignment() {
                let r = if want_pause {
                    self.consumer.pause(&assignment)
                } else {
                    self.consumer.resume(&assignment)
                };
                match r {
                    Ok(()) => {
                        self.paused = want_pause;
                        tracing::info!(in_flight = n, paused = want_pause, "backpressure");
                    }
                    Err(e) => tracing::warn!(error = %e, "pause/resume failed"),
                }
            }
        }
        metrics().in_flight(n, self.paused);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(red) = &mut self.red {
            red.expire_idle(now);
            metrics().red_series(red.series());
        }
        if let Some(batch) = self.loki.as_mut().and_then(|(l, _)| l.take_due(now, false)) {
            self.send_loki(batch);
        }
        if let Some(w) = self.watermark.watermark(now, self.trouble.last()) {
            self.join.advance_watermark(w, &mut self.out);
            self.ship();
            metrics()
                .watermark_lag((wall_nanos().saturating_sub(self.join.watermark())) as f64 / 1e9);
            self.advance_slo();
        }
        metrics().join_state(
            self.join.traces(),
            self.join.bytes(),
            self.join.waiting_logs(),
        );
        self.hooks
            .progress
            .open_traces
            .store(self.join.traces() as u64, Ordering::Relaxed);
        self.update_backpressure();
        if now.duration_since(self.last_commit) >= self.config.kafka.commit_interval {
            self.last_commit = now;
            self.commit(CommitMode::Async);
        }
    }

    fn commit(&mut self, mode: CommitMode) {
        let mut offsets = self.offsets.lock().expect("not poisoned");
        let due = offsets.due();
        if due.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &due {
            let _ = tpl.add_partition_offset(
                self.topics.name(*topic),
                *partition,
                Offset::Offset(*offset),
            );
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => {
                metrics().commit(true);
                for ((topic, partition), offset) in due {
                    offsets.committed((topic, partition), offset);
                    metrics().committed_offset(self.topics.name(topic), partition, offset);
                }
            }
            Err(e) => {
                metrics().commit(false);
                tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
            }
        }
    }

    async fn shutdown(mut self) {
        tracing::info!(
            in_flight = self.inflight.len(),
            waiting_logs = self.join.waiting_logs(),
            "shutting down"
        );
        if self.config.shutdown.emit_waiting_logs {
            self.join.drain(&mut self.out);
            self.ship();
        }
        if let Some(batch) = self
            .loki
            .as_mut()
            .and_then(|(l, _)| l.take_due(Instant::now(), true))
        {
            self.send_loki(batch);
        }
        let deadline = tokio::time::sleep(self.config.shutdown.timeout);
        tokio::pin!(deadline);
        while !self.inflight.is_empty() {
            tokio::select! {
                Some(done) = self.inflight.next() => self.on_delivered(done),
                _ = &mut deadline => {
                    tracing::warn!(in_flight = self.inflight.len(), "shutdown timeout: the rest is replayed on restart");
                    break;
                }
            }
        }
        self.commit(CommitMode::Sync);
        self.consumer.unsubscribe();
        self.health.set_ready(false);
    }
}
