//! The SLO state's changelog: each join partition's SLO windows, waiting bad events and orphan
//! logs, written to a compacted topic (`<group_id>.slo-state`) and restored by the partition's
//! next owner before it processes the partition — Kafka Streams' state store with its
//! changelog, for the one state of tracejoin that outlives a join window.
//!
//! Consistency with the offsets, without transactions:
//! - A partition's state is written with its *positions*: per source partition of the join
//!   partition, the offset below which the state holds what that source gave. For the spans
//!   source that is one past the highest offset consumed (its spans are counted when consumed);
//!   for a logs source, the offset below which every log has left the join (a log offers its
//!   cause to the SLO engine when it leaves).
//! - The source partitions of a changelogged join partition are *gated* in the ack ledger: an
//!   offset is committed only once a state covering it is durable (the broker acknowledged the
//!   write). So whatever a restart replays from the committed offset, the restored state holds
//!   everything below its positions, and nothing at or above them.
//! - The next owner restores the newest state of the partition, counts the replayed spans only
//!   from the spans position on (`SloEngine::observe_record`), and re-offers replayed logs
//!   (offering a log twice changes nothing).
//!
//! So after a crash, a graceful restart or a rebalance, the windows of a partition are what an
//! uninterrupted run would hold. What is not kept: the alert conditions' state (a crossing may be
//! reported again after a restart) and the process's `tracejoin_slo_events_total` (a counter,
//! which Prometheus takes across restarts).

use super::observe::SharedSlo;
use crate::config::Config;
use crate::derive::red::RedMetrics;
use crate::derive::slo::{PartitionState, Position, RekeyedMark};
use crate::model::Origin;
use crate::sources::ack::AckLedger;
use crate::sources::kafka::{base_client_config, TopicRole, TopicTable};
use crate::sources::PartitionKey;
use crate::telemetry::metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest state value (many operations × causes make large attribution rings).
const MAX_STATE_BYTES: usize = 16 << 20;
/// How long a restore may read before the partition goes on without its state.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// The changelog topic's name for a group.
pub(super) fn topic_name(config: &Config) -> String {
    format!("{}.slo-state", config.kafka.group_id)
}

/// Creates the changelog topic (compacted; one partition per join partition) if it is not
/// there, and returns its partition count (an existing topic keeps its own).
pub(super) async fn create_topic(config: &Config, partitions: i32) -> Result<i32, KafkaError> {
    let name = topic_name(config);
    let admin: AdminClient<DefaultClientContext> = base_client_config(config)?.create()?;
    let max_bytes = MAX_STATE_BYTES.to_string();
    let topic = NewTopic::new(&name, partitions.max(1), TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max_bytes)
        // Compaction works on closed segments: roll often, so a restore reads few old states.
        .set("segment.ms", "600000")
        .set("min.cleanable.dirty.ratio", "0.1");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = %t, partitions, "created the SLO state changelog"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => {
                tracing::error!(topic = %t, error = %e, "cannot create the SLO state changelog");
                return Err(KafkaError::AdminOp(e));
            }
        }
    }
    let consumer: BaseConsumer = base_client_config(config)?.create()?;
    let existing = consumer
        .fetch_metadata(Some(&name), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
        .filter(|n| *n > 0);
    Ok(existing.unwrap_or(partitions.max(1)))
}

/// Per input partition (topic index, partition), the newest re-keyed piece counted:
/// (input offset, piece).
type NewestPieces = HashMap<(u16, i32), (i64, u32)>;

/// A write on its way: the positions it makes committable once the broker has it.
struct InFlight {
    positions: Vec<(PartitionKey, i64)>,
    bytes: usize,
    delivery: DeliveryFuture,
}

/// One worker's side of the changelog (module docs).
pub(super) struct SloChangelog {
    /// The SLO engine, when SLOs are on.
    slo: Option<Arc<SharedSlo>>,
    /// The RED series, with `metrics.red.per_partition`.
    red: Option<RedMetrics>,
    topic: String,
    partitions: i32,
    producer: FutureProducer,
    restore_config: rdkafka::ClientConfig,
    restorer: Option<BaseConsumer>,
    interval: Duration,
    last: Instant,
    in_flight: Vec<InFlight>,
    /// Per join partition, the positions last written.
    written: HashMap<i32, Vec<(PartitionKey, i64)>>,
    /// Per join partition, per input partition whose spans are re-keyed into it, the newest
    /// piece counted: (input offset, piece). A re-keyed record at or below it is a copy made
    /// when the re-keying stage replayed its input after a crash.
    rekeyed: HashMap<i32, NewestPieces>,
    /// Per join partition restored, its spans source's position in the restored state. Until
    /// the replay passes it, a new state must not claim less: its counts hold everything below.
    restored: HashMap<i32, i64>,
}

fn is_join_source(role: Option<TopicRole>) -> bool {
    matches!(
        role,
        Some(
            TopicRole::Spans
                | TopicRole::Logs(_)
                | TopicRole::RekeyedSpans
                | TopicRole::RekeyedLogs
        )
    )
}

fn is_spans_source(role: Option<TopicRole>) -> bool {
    matches!(role, Some(TopicRole::Spans | TopicRole::RekeyedSpans))
}

impl SloChangelog {
    pub(super) fn new(
        config: &Config,
        slo: Option<Arc<SharedSlo>>,
        red: Option<RedMetrics>,
        partitions: i32,
        worker: usize,
    ) -> Result<Self, KafkaError> {
        let mut p = base_client_config(config)?;
        p.set("compression.type", "lz4")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.max.bytes", MAX_STATE_BYTES.to_string())
            .set("linger.ms", "20");
        let mut r = base_client_config(config)?;
        r.set(
            "group.id",
            format!("{}.slo-state-restore", config.kafka.group_id),
        )
        .set("client.id", format!("tracejoin-slo-restore-w{worker}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.message.max.bytes", MAX_STATE_BYTES.to_string())
        .set("auto.offset.reset", "earliest");
        Ok(SloChangelog {
            slo,
            red,
            topic: topic_name(config),
            partitions: partitions.max(1),
            producer: p.create()?,
            restore_config: r,
            restorer: None,
            interval: config.state.snapshot_interval,
            last: Instant::now(),
            in_flight: Vec::new(),
            written: HashMap::new(),
            rekeyed: HashMap::new(),
            restored: HashMap::new(),
        })
    }

    /// Newly assigned partitions: their sources are gated, and each join partition whose spans
    /// source came in gets its state restored before any of its records is processed.
    pub(super) fn on_assigned(
        &mut self,
        keys: &[PartitionKey],
        topics: &TopicTable,
        ledger: &mut AckLedger,
    ) {
        for k in keys {
            if is_join_source(topics.role(k.0)) {
                ledger.gate(*k);
            }
        }
        for k in keys {
            if !is_spans_source(topics.role(k.0)) {
                continue;
            }
            let partition = k.1;
            let started = Instant::now();
            match self.read(partition) {
                Ok(Some(state)) => {
                    let spans_position = state
                        .positions
                        .iter()
                        .find(|p| p.topic == topics.name(k.0) && p.partition == partition)
                        .map(|p| p.offset);
                    for p in &state.positions {
                        if let Some(t) = topics.index(&p.topic) {
                            ledger.allow((t, p.partition), p.offset);
                        }
                    }
                    if let Some(slo) = &self.slo {
                        slo.engine().restore(&state, spans_position);
                    }
                    if let Some(red) = &self.red {
                        if let Err(e) = red.restore(partition, state.red.as_ref(), spans_position) {
                            tracing::warn!(partition, error = %e, "not restoring the partition's RED series");
                        }
                    }
                    let marks = state.rekeyed.iter().filter_map(|m| {
                        let topic = topics.index(&m.topic)?;
                        Some(((topic, m.partition), (m.offset, m.piece)))
                    });
                    self.rekeyed.insert(partition, marks.collect());
                    if let Some(position) = spans_position {
                        self.restored.insert(partition, position);
                    }
                    self.written.insert(partition, Vec::new());
                    metrics().slo_state_restore("restored");
                    tracing::info!(
                        partition,
                        ?spans_position,
                        took = ?started.elapsed(),
                        "restored the partition's SLO state from the changelog"
                    );
                }
                Ok(None) => {
                    self.forget(partition);
                    metrics().slo_state_restore("empty");
                    tracing::debug!(partition, "no SLO state in the changelog for the partition");
                }
                Err(e) => {
                    // Its windows start empty; its commits stay gated until a state is written,
                    // so nothing is lost beyond what the unreadable state held.
                    self.forget(partition);
                    metrics().slo_state_restore("failed");
                    tracing::warn!(partition, error = %e, "could not restore the partition's SLO state; its windows start empty");
                }
            }
        }
    }

    /// Revoked partitions: a join partition's state leaves with its spans source.
    pub(super) fn on_revoked(&mut self, keys: &[PartitionKey], topics: &TopicTable) {
        for k in keys {
            if is_spans_source(topics.role(k.0)) {
                self.forget(k.1);
                self.written.remove(&k.1);
            }
        }
    }

    /// Whether a re-keyed spans record of join partition `partition`, cut as piece `piece`
    /// from the input record at `origin`, is a copy of one already counted (the re-keying
    /// stage replayed its input after a crash: it cuts the same pieces in the same order, and
    /// a join partition receives an input partition's pieces in that order). Remembers it
    /// otherwise.
    pub(super) fn rekeyed_replay(&mut self, partition: i32, origin: Origin, piece: u32) -> bool {
        let newest = self
            .rekeyed
            .entry(partition)
            .or_default()
            .entry((origin.topic, origin.partition))
            .or_insert((-1, 0));
        if (origin.offset, piece) <= *newest {
            tracing::debug!(partition, source_partition = origin.partition, offset = origin.offset, piece, newest = ?*newest, "re-keyed copy");
            return true;
        }

        *newest = (origin.offset, piece);
        false
    }

    /// Drops what this process holds of a join partition.
    fn forget(&mut self, partition: i32) {
        self.rekeyed.remove(&partition);
        self.restored.remove(&partition);
        if let Some(slo) = &self.slo {
            slo.engine().revoke(partition);
        }
        if let Some(red) = &self.red {
            red.revoke(partition);
        }
    }

    /// Writes the state of every join partition whose input moved, every `snapshot_interval`;
    /// and lets the ledger commit what the acknowledged writes cover.
    pub(super) fn tick(&mut self, now: Instant, ledger: &mut AckLedger, topics: &TopicTable) {
        self.settle(ledger);
        if now.duration_since(self.last) < self.interval {
            return;
        }
        self.last = now;
        self.write_all(ledger, topics);
    }

    /// At shutdown: writes every partition's state and waits (up to `timeout`) for the broker,
    /// so that the last commit covers everything consumed.
    pub(super) async fn flush(
        &mut self,
        ledger: &mut AckLedger,
        topics: &TopicTable,
        timeout: Duration,
    ) {
        ledger.drain();
        self.write_all(ledger, topics);
        let deadline = Instant::now() + timeout;
        while !self.in_flight.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.settle(ledger);
        }
    }

    fn write_all(&mut self, ledger: &AckLedger, topics: &TopicTable) {
        let mut by_partition: HashMap<i32, Vec<(PartitionKey, i64)>> = HashMap::new();
        for key in ledger.owned() {
            let role = topics.role(key.0);
            if !is_join_source(role) {
                continue;
            }
            let position = if is_spans_source(role) {
                // Until the replay passes the restored position (or before its first record),
                // the state still holds everything below that position.
                let restored = self.restored.get(&key.1).copied();
                match (ledger.seen(key), restored) {
                    (Some(seen), Some(restored)) => Some(seen.max(restored)),
                    (seen, restored) => seen.or(restored),
                }
            } else {
                ledger.done_below(key)
            };
            if let Some(offset) = position {
                by_partition.entry(key.1).or_default().push((key, offset));
            }
        }
        for (partition, mut positions) in by_partition {
            positions.sort_unstable();
            if self.written.get(&partition) == Some(&positions) {
                continue;
            }
            self.write(partition, positions, topics);
        }
    }

    fn write(&mut self, partition: i32, positions: Vec<(PartitionKey, i64)>, topics: &TopicTable) {
        let mut state = match &self.slo {
            Some(slo) => slo.engine().export(partition),
            None => PartitionState::new(partition),
        };
        state.red = self.red.as_ref().map(|r| r.export(partition));
        state.rekeyed = self
            .rekeyed
            .get(&partition)
            .into_iter()
            .flatten()
            .map(|((topic, p), (offset, piece))| RekeyedMark {
                topic: topics.name(*topic).to_string(),
                partition: *p,
                offset: *offset,
                piece: *piece,
            })
            .collect();
        state.positions = positions
            .iter()
            .map(|((t, p), offset)| Position {
                topic: topics.name(*t).to_string(),
                partition: *p,
                offset: *offset,
            })
            .collect();
        let payload = state.to_json();
        let key = partition.to_string();
        let record = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&payload)
            .partition(partition.rem_euclid(self.partitions));
        match self.producer.send_result(record) {
            Ok(delivery) => {
                self.in_flight.push(InFlight {
                    positions: positions.clone(),
                    bytes: payload.len(),
                    delivery,
                });
                self.written.insert(partition, positions);
            }
            Err((e, _)) => {
                metrics().slo_state_written(false, 0);
                tracing::warn!(partition, error = %e, "could not queue the partition's SLO state; retrying at the next interval");
            }
        }
    }

    /// Takes in the acknowledged writes: the ledger may commit what they cover.
    fn settle(&mut self, ledger: &mut AckLedger) {
        let mut i = 0;
        while i < self.in_flight.len() {
            let done = {
                let f = &mut self.in_flight[i].delivery;
                futures::FutureExt::now_or_never(f)
            };
            let Some(result) = done else {
                i += 1;
                continue;
            };
            let w = self.in_flight.swap_remove(i);
            match result {
                Ok(Ok(_)) => {
                    metrics().slo_state_written(true, w.bytes);
                    for (key, offset) in w.positions {
                        ledger.allow(key, offset);
                    }
                }
                Ok(Err((e, _))) => {
                    metrics().slo_state_written(false, 0);
                    // Written again at the next interval: forget what was written.
                    if let Some(((_, p), _)) = w.positions.first() {
                        self.written.remove(p);
                    }
                    tracing::warn!(error = %e, "an SLO state write failed; its offsets stay uncommitted until the next one");
                }
                Err(_) => {
                    metrics().slo_state_written(false, 0);
                    if let Some(((_, p), _)) = w.positions.first() {
                        self.written.remove(p);
                    }
                }
            }
        }
    }

    /// The newest state of `partition` in the changelog, if any.
    fn read(&mut self, partition: i32) -> Result<Option<PartitionState>, String> {
        if self.restorer.is_none() {
            self.restorer = Some(self.restore_config.create().map_err(|e| e.to_string())?);
        }
        let consumer = self.restorer.as_ref().expect("just created");
        let cp = partition.rem_euclid(self.partitions);
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, cp, Duration::from_secs(10))
            .map_err(|e| format!("watermarks of {}/{cp}: {e}", self.topic))?;
        if high <= low {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, cp, Offset::Beginning)
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let key = partition.to_string();
        let mut newest: Option<Vec<u8>> = None;
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        let mut done = false;
        while !done {
            if Instant::now() > deadline {
                return Err(format!(
                    "reading {}/{cp} took over {RESTORE_TIMEOUT:?}",
                    self.topic
                ));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => done = true,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(m)) => {
                    if m.key() == Some(key.as_bytes()) {
                        newest = m.payload().map(<[u8]>::to_vec);
                    }
                    done = m.offset() >= high - 1;
                }
            }
        }
        let _ = consumer.unassign();
        match newest {
            Some(bytes) => PartitionState::from_json(&bytes)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}
