//! The worker: its parts, assembled from the config, and its loop.

use super::commit::Commits;
use super::copartition::CopartitionCheck;
use super::observe::{
    Observer, ProgressObserver, RedObserver, ServiceGraphObserver, SharedSlo, SloObserver,
    SpansFrom, TickState,
};
use super::slo_state::SloChangelog;
use super::tasks::Tasks;
use super::{PipelineError, Progress};
use crate::config::{Config, SpanFormat};
use crate::decode::logline::{InputLogFormat, LogDecoder};
use crate::decode::otlp::SpanDecoder;
use crate::decode::rules::{CompiledRules, ExtractRules};
use crate::decode::DecodeError;
use crate::derive::red::RedMetrics;
use crate::derive::servicegraph::ServiceGraph;
use crate::derive::slo::{SloConfig, SloEngine};
use crate::join::{JoinOutput, JoinSettings};
use crate::model::{JoinOutcome, LogEvent, Origin, SpanSummary, TimestampSource};
use crate::sinks::kafka::{dead_letter_headers, EnrichedKafka, KafkaSink};
use crate::sinks::loki::{LokiOutput, LokiSink};
use crate::sinks::{DeadLetter, Fanout, Outbox, Sink};
use crate::sources::ack::{Ack, AckLedger};
use crate::sources::kafka::{
    subscribe, AssignmentChange, BrokerTrouble, Rekey, RepartitionPlan, SourceConsumer, StartGate,
    TopicRole, TopicTable,
};
use crate::sources::PartitionKey;
use crate::telemetry::{metrics, server::Health, WorkerMetrics};
use bytes::Bytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod assemble;
mod marks;
mod rekey;

pub(super) use assemble::{Shared, WorkerHooks};

const TICK: Duration = Duration::from_millis(200);

/// Why a record goes to the dead-letter topic.
pub(super) struct Refused {
    code: &'static str,
    message: String,
}

impl From<DecodeError> for Refused {
    fn from(e: DecodeError) -> Self {
        Refused {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

pub(super) struct Worker {
    /// Where re-keyed records go.
    rekey: rekey::Targets,
    /// Progress of the re-keyed input partitions owned, and which feed each internal topic.
    marks: marks::Marks,
    /// Reused buffer of the records a split yields.
    parts: Vec<(crate::sources::repartition::TraceKey, Vec<u8>)>,
    index: usize,
    gauges: WorkerMetrics,
    config: Config,
    topics: TopicTable,
    consumer: Arc<SourceConsumer>,
    changes: mpsc::UnboundedReceiver<AssignmentChange>,
    /// Opens when every worker of the process has had an assignment (`StartGate`).
    gate: tokio::sync::watch::Receiver<bool>,
    trouble: BrokerTrouble,
    span_decoder: SpanDecoder,
    log_decoder: LogDecoder,
    tasks: Tasks,
    observers: Vec<Box<dyn Observer>>,
    fanout: Fanout,
    outbox: Outbox,
    commits: Commits,
    /// The SLO state's changelog, when SLOs are on and `state.changelog`.
    slo_state: Option<SloChangelog>,
    health: Health,
    copartition: CopartitionCheck,
    /// Whether the record being ingested held a trace id.
    had_trace_id: bool,
    /// Per partition, the offset below which an earlier owner consumed every record and counted
    /// its spans (its commit's seen mark); dropped once consumption passes it.
    seen_before: HashMap<PartitionKey, i64>,
    /// `tracejoin_records_consumed_total` per input topic, resolved once.
    consumed: Vec<prometheus::IntCounter>,
    // Reused buffers: the hot path allocates per record only what it keeps.
    spans_buf: Vec<SpanSummary>,
    logs_buf: Vec<LogEvent>,
    out: JoinOutput,
}

impl Worker {
    /// The loop: until `shutdown`, then drain, commit and leave the group.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let consumer = self.consumer.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(change) = self.changes.recv() => self.on_assignment(change),
                Ok(()) = self.gate.changed() => self.on_gate_open(),
                Some((sink, n)) = self.outbox.next(), if !self.outbox.is_empty() => {
                    for o in &mut self.observers {
                        o.on_delivered(sink, n);
                    }
                    self.backpressure();
                }
                _ = tick.tick() => self.on_tick(),
                msg = consumer.recv() => match msg {
                    Ok(m) => self.on_record(&m),
                    Err(e) => {
                        self.trouble.record();
                        tracing::warn!(error = %e, "consumer error");
                    }
                },
            }
            // librdkafka's queue is no tokio resource: with records waiting, `recv` is always
            // ready and the loop never gave its thread back. With as many workers as runtime
            // threads, `/metrics`, `/healthz` and `/readyz` then went unanswered for seconds
            // while a backlog drained (scripts/span-compare.sh --workers 2: 2.2 s). Spending
            // tokio's budget yields every so many records.
            tokio::task::consume_budget().await;
        }
        let timeout = self.config.shutdown.timeout;
        self.shutdown().await;
        // The last handle: dropping it closes the consumer, which waits on librdkafka and has
        // been seen to wait forever (see `SourceContext::rebalance`). Off the async threads, and
        // not waited for past `shutdown.timeout`: the offsets are committed by now.
        let close = tokio::task::spawn_blocking(move || drop(consumer));
        if tokio::time::timeout(timeout, close).await.is_err() {
            tracing::error!(
                ?timeout,
                "the consumer did not close within shutdown.timeout; leaving it behind"
            );
        }
    }

    fn on_assignment(&mut self, change: AssignmentChange) {
        let now = Instant::now();
        match change {
            AssignmentChange::Assigned { keys, seen_before } => {
                self.seen_before.extend(seen_before);
                for &k in &keys {
                    match self.topics.role(k.0) {
                        Some(TopicRole::Rekey(_)) => self.marks.forwarded.assign(k, now),
                        Some(role @ (TopicRole::RekeyedSpans | TopicRole::RekeyedLogs)) => self
                            .tasks
                            .assign_via_origins(k, self.marks.origins(role), now),
                        Some(_) => self.tasks.assign(k, now),
                        None => {}
                    }
                    self.commits.ledger.assign(k);
                }
                if let Some(state) = &mut self.slo_state {
                    state.on_assigned(&keys, &self.topics, &mut self.commits.ledger);
                }
                let open = *self.gate.borrow();
                self.health.set_worker_ready(self.index, open);
            }
            AssignmentChange::Revoked(keys) => {
                if let Some(state) = &mut self.slo_state {
                    state.on_revoked(&keys, &self.topics);
                }
                for k in keys {
                    self.seen_before.remove(&k);
                    self.marks.forwarded.revoke(k);
                    self.tasks.revoke(k);
                    self.commits.ledger.revoke(k);
                }
                // Still a member: a revocation is the first half of a rebalance, and a member
                // left with no partition is a standby, ready all the same (`/readyz`).
            }
        }
    }

    /// Every worker of the process is in: consume what was held since the assignment.
    fn on_gate_open(&mut self) {
        if !*self.gate.borrow_and_update() {
            return;
        }
        match self.consumer.assignment() {
            Ok(assignment) => {
                if let Err(e) = self.consumer.resume(&assignment) {
                    tracing::warn!(error = %e, "could not resume the partitions held at start-up");
                }
                self.tasks.resumed(Instant::now());
                self.marks.forwarded.resumed(Instant::now());
                tracing::info!(
                    worker = self.index,
                    partitions = assignment.count(),
                    "every worker of the process is in: consuming"
                );
            }
            Err(e) => tracing::warn!(error = %e, "no assignment to resume"),
        }
        self.health.set_worker_ready(self.index, true);
    }

    fn on_record(&mut self, m: &BorrowedMessage<'_>) {
        // An assignment reported during the poll that returned this record is applied first:
        // a partition's state (its restored SLO state, its commit gate) must be in place before
        // its first record.
        while let Ok(change) = self.changes.try_recv() {
            self.on_assignment(change);
        }
        let Some(topic) = self.topics.index(m.topic()) else {
            return;
        };
        let Some(role) = self.topics.role(topic) else {
            return;
        };
        let key = (topic, m.partition());
        let ack = self.commits.ledger.take(key, m.offset());
        if matches!(role, TopicRole::RekeyedSpans | TopicRole::RekeyedLogs) && marks::is_mark(m) {
            self.on_mark(m, key, Instant::now());
            ack.complete(&mut self.commits.ledger);
            return;
        }
        // Where the record came from: its own coordinates, or for a re-keyed record those of
        // the input record it was cut from (the enriched output and dead letters name those).
        let rekeyed = match role {
            TopicRole::RekeyedSpans | TopicRole::RekeyedLogs => {
                rekey::source_origin(m, &self.topics)
            }
            _ => None,
        };
        let origin = rekeyed.map_or(
            Origin {
                topic,
                partition: m.partition(),
                offset: m.offset(),
            },
            |(origin, _)| origin,
        );
        let now = Instant::now();
        let now_nanos = wall_nanos();
        for o in &mut self.observers {
            o.on_record();
        }
        self.consumed[topic as usize].inc();
        let direct = matches!(role, TopicRole::Spans | TopicRole::Logs(_));
        if direct {
            self.copartition.check(m, topic, &self.topics);
        }
        self.had_trace_id = matches!(role, TopicRole::Spans);
        let kafka_nanos = m
            .timestamp()
            .to_millis()
            .map_or(now_nanos, |ms| ms.saturating_mul(1_000_000));
        let max_future =
            now_nanos.saturating_add(self.config.join.max_future_skew.as_nanos() as i64);
        let payload = m.payload().unwrap_or_default();
        let limit = self.config.limits.max_record_bytes.as_usize();
        let result = if payload.len() > limit {
            Err(Refused::from(DecodeError::TooLarge {
                size: payload.len(),
                limit,
            }))
        } else if payload.is_empty() {
            Err(Refused::from(DecodeError::Empty))
        } else {
            match role {
                TopicRole::Spans | TopicRole::RekeyedSpans => {
                    let counted_before = self.counted_before(key, m.offset());
                    // Re-keyed again after a crash of the re-keying stage: a copy of a record
                    // whose spans the partition's state counted.
                    let copy = match (rekeyed, &mut self.slo_state) {
                        (Some((origin, Some(piece))), Some(state)) => {
                            state.rekeyed_replay(key.1, origin, piece)
                        }
                        _ => false,
                    };
                    let from = SpansFrom {
                        partition: key.1,
                        offset: m.offset(),
                        counted_before,
                    };
                    self.on_spans(payload, key, origin, &ack, now, max_future, from, copy)
                        .map_err(Refused::from)
                }
                TopicRole::Logs(_) | TopicRole::RekeyedLogs => {
                    // A re-keyed log keeps the format of the input topic it was cut from.
                    let format = match (role, self.topics.role(origin.topic)) {
                        (TopicRole::Logs(f), _) | (_, Some(TopicRole::Rekey(Rekey::Logs(f)))) => f,
                        _ => InputLogFormat::Auto,
                    };
                    self.on_logs(
                        payload,
                        format,
                        origin,
                        key,
                        &ack,
                        kafka_nanos,
                        now,
                        max_future,
                    )
                    .map_err(Refused::from)
                }
                TopicRole::Rekey(kind) => {
                    self.rekey(m, kind, origin, &ack, (kafka_nanos, max_future, now))
                }
            }
        };
        if let Err(e) = result {
            self.dead_letter(m, origin, &e, ack.clone());
        } else if direct && self.had_trace_id && m.key().is_none() {
            // Only a record with a trace id can be on the wrong worker.
            self.copartition.unkeyed(topic, &self.topics);
        }
        self.ship();
        ack.complete(&mut self.commits.ledger);
    }

    /// Whether an earlier owner of the partition consumed this offset and counted its spans.
    fn counted_before(&mut self, key: PartitionKey, offset: i64) -> bool {
        match self.seen_before.get(&key) {
            Some(seen) if offset < *seen => true,
            Some(_) => {
                self.seen_before.remove(&key);
                false
            }
            None => false,
        }
    }

    /// `from.counted_before`: the record is a replay whose spans the derived signals have
    /// counted already (below an earlier owner's seen mark): the join takes them, the observers
    /// that count are told so.
    #[allow(clippy::too_many_arguments)]
    fn on_spans(
        &mut self,
        payload: &[u8],
        key: PartitionKey,
        origin: Origin,
        ack: &Ack,
        now: Instant,
        max_future: i64,
        from: SpansFrom,
        copy: bool,
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
                .decode_proto(payload, &mut self.spans_buf)?
        };
        let mut clamped = 0;
        let mut latest = i64::MIN;
        for s in &mut self.spans_buf {
            if s.end_unix_nanos > max_future {
                let shift = s.end_unix_nanos - max_future;
                s.end_unix_nanos -= shift;
                s.start_unix_nanos = s.start_unix_nanos.saturating_sub(shift);
                clamped += 1;
            }
            latest = latest.max(s.end_unix_nanos);
        }
        if clamped > 0 {
            metrics().timestamp_adjusted("clamped_future", clamped);
        }
        if copy {
            // A re-keyed copy of a record counted already: joined, counted by no observer.
            metrics().rekeyed_copies(self.spans_buf.len() as u64);
        } else {
            if from.counted_before {
                metrics().spans_counted_before(self.spans_buf.len() as u64);
            }
            for o in &mut self.observers {
                o.on_spans(&self.spans_buf, from);
            }
        }
        let decoded = self.spans_buf.len() as u64;
        let task = self.tasks.get(key.1);
        if latest > i64::MIN {
            let from = (origin.topic, origin.partition);
            task.watermark.observe_origin(key, from, latest, now);
        }
        task.join
            .on_spans(self.spans_buf.drain(..), ack, &mut self.out);
        metrics().spans(
            decoded,
            stats.invalid_ids as u64,
            std::mem::take(&mut self.out.duplicate_spans),
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_logs(
        &mut self,
        payload: &[u8],
        format: InputLogFormat,
        origin: Origin,
        key: PartitionKey,
        ack: &Ack,
        kafka_nanos: i64,
        now: Instant,
        max_future: i64,
    ) -> Result<(), DecodeError> {
        self.log_decoder.decode(
            Bytes::copy_from_slice(payload),
            format,
            origin,
            kafka_nanos,
            &mut self.logs_buf,
        )?;
        let (mut from_kafka, mut clamped) = (0, 0);
        let mut latest = i64::MIN;
        let task = self.tasks.get(key.1);
        for mut log in self.logs_buf.drain(..) {
            log.ack = ack.clone();
            if log.timestamp_unix_nanos > max_future {
                log.timestamp_unix_nanos = kafka_nanos.min(max_future);
                log.timestamp_source = TimestampSource::ClampedFuture;
                clamped += 1;
            } else if log.timestamp_source == TimestampSource::Kafka {
                from_kafka += 1;
            }
            latest = latest.max(log.timestamp_unix_nanos);
            self.had_trace_id |= log.trace_id.is_some();
            task.join.on_log(log, &mut self.out);
        }
        if latest > i64::MIN {
            let from = (origin.topic, origin.partition);
            task.watermark.observe_origin(key, from, latest, now);
        }
        if from_kafka > 0 {
            metrics().timestamp_adjusted("kafka", from_kafka);
        }
        if clamped > 0 {
            metrics().timestamp_adjusted("clamped_future", clamped);
        }
        Ok(())
    }

    fn dead_letter(&mut self, m: &BorrowedMessage<'_>, origin: Origin, e: &Refused, ack: Ack) {
        let topic = self.topics.name(origin.topic);
        for o in &mut self.observers {
            o.on_dead_letter();
        }
        tracing::debug!(%topic, partition = origin.partition, offset = origin.offset, error = %e.message, "dead-lettered");
        let headers =
            dead_letter_headers(e.code, &e.message, topic, origin.partition, origin.offset);
        self.outbox.dead_letter(DeadLetter {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
            source: topic.into(),
            reason: e.code,
            acks: vec![ack],
        });
    }

    /// Hands what the join emitted to the sinks and observers.
    fn ship(&mut self) {
        if self.out.evicted_traces > 0 {
            metrics().join_evicted(std::mem::take(&mut self.out.evicted_traces));
        }
        if self.out.emitted.is_empty() {
            return;
        }
        let mut counts = HashMap::new();
        for joined in self.out.emitted.drain(..) {
            *counts
                .entry((joined.outcome, joined.reason))
                .or_insert(0u64) += 1;
            let topic = self.topics.name(joined.log.origin.topic);
            let json = self.fanout.emit(&joined, topic, &mut self.outbox);
            for o in &mut self.observers {
                o.on_log(&joined, json);
            }
        }
        for ((outcome, reason), n) in counts {
            metrics().logs_emitted(outcome, reason, n);
        }
        self.backpressure();
    }

    /// Pauses or resumes consumption by what is in flight.
    fn backpressure(&mut self) {
        if self
            .commits
            .backpressure(&self.consumer, self.outbox.in_flight(), &self.gauges)
        {
            self.tasks.resumed(Instant::now());
            self.marks.forwarded.resumed(Instant::now());
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let (traces, bytes, waiting) = self.tasks.state();
        let state = TickState {
            open_traces: traces,
            partitions: self.tasks.partitions(),
        };
        for o in &mut self.observers {
            o.on_tick(now, &state);
        }
        self.fanout.tick(now, &mut self.outbox);
        let lowest = self.tasks.advance(now, self.trouble.last(), &mut self.out);
        self.ship();
        if let Some(w) = lowest {
            self.gauges
                .watermark_lag((wall_nanos().saturating_sub(w)) as f64 / 1e9);
            for o in &mut self.observers {
                o.on_watermark(w, &mut self.outbox);
            }
        }
        self.gauges.join_state(traces, bytes, waiting);
        self.backpressure();
        self.send_marks(now);
        if let Some(state) = &mut self.slo_state {
            state.tick(now, &mut self.commits.ledger, &self.topics);
        }
        self.commits.tick(now, &self.consumer, &self.topics);
    }

    async fn shutdown(mut self) {
        tracing::info!(
            in_flight = self.outbox.in_flight(),
            waiting_logs = self.tasks.state().2,
            "shutting down"
        );
        if self.config.shutdown.emit_waiting_logs {
            self.tasks.drain(&mut self.out);
            self.ship();
        }
        self.fanout.flush(&mut self.outbox);
        let deadline = tokio::time::sleep(self.config.shutdown.timeout);
        tokio::pin!(deadline);
        while !self.outbox.is_empty() {
            tokio::select! {
                _ = self.outbox.next() => {}
                _ = &mut deadline => {
                    tracing::warn!(in_flight = self.outbox.in_flight(), "shutdown timeout: the rest is replayed on restart");
                    break;
                }
            }
        }
        if let Some(state) = &mut self.slo_state {
            let left = self.config.shutdown.timeout.min(Duration::from_secs(10));
            state
                .flush(&mut self.commits.ledger, &self.topics, left)
                .await;
        }
        // Deliveries still pending hold their tokens while this commit runs: it cannot pass them.
        self.commits
            .commit(&self.consumer, &self.topics, CommitMode::Sync);
        self.consumer.unsubscribe();
        self.health.set_worker_ready(self.index, false);
    }
}

fn wall_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}
