//! The Kafka consumer: one group over the spans topic and every logs topic.
//!
//! Assignment is `range`: with co-partitioned topics (same partition count), Kafka's range
//! assignor gives a member the same partition numbers of every topic, which is what lets a
//! worker join partition *p* of the logs with partition *p* of the spans (Kafka Streams relies on
//! the same property). Offsets are never auto-committed: the pipeline commits what its
//! `AckLedger` allows. On revocation, the context commits what the ledger last published as
//! committable for the partitions leaving, synchronously, before librdkafka hands them over; the
//! pipeline is told of every assignment change through a channel.

use super::ack::{parse_seen_metadata, seen_metadata, CommittableOffsets};
use super::PartitionKey;
use crate::config::{Config, GroupProtocol, KafkaProperties};
use crate::decode::logline::InputLogFormat;
use crate::telemetry::server::Health;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The workers of one process start consuming together.
///
/// Each worker is its own group member, and they join one after the other. Without the gate, the
/// first to join is given every partition, consumes, and then hands most of them over at the
/// next rebalance when its siblings arrive: everything after its oldest held log is replayed
/// (the join holds logs for up to `join.max_wait`, and a commit never passes a held log), so a
/// process's own start-up duplicates its output. Until every worker of the process has had an
/// assignment, each pauses what it is assigned; the last one in opens the gate. The broker's
/// `group.initial.rebalance.delay.ms` (3 s by default) does the same for a new group, but not
/// for a group that already has members, and test brokers often set it to 0.
#[derive(Debug)]
pub struct StartGate {
    joined: Mutex<Vec<bool>>,
    open: watch::Sender<bool>,
}

impl StartGate {
    /// A gate for `workers` workers.
    pub fn new(workers: usize) -> Arc<StartGate> {
        Arc::new(StartGate {
            joined: Mutex::new(vec![false; workers]),
            open: watch::channel(false).0,
        })
    }

    /// Worker `worker` has had an assignment; returns whether the gate is open now.
    fn joined(&self, worker: usize) -> bool {
        let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = joined.get_mut(worker) {
            *j = true;
        }
        if joined.iter().all(|j| *j) {
            self.open.send_replace(true);
        }
        self.is_open()
    }

    /// Opens the gate whoever is missing (the start-up deadline passed); returns the workers that
    /// never had an assignment.
    pub fn force_open(&self) -> Vec<usize> {
        let joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        self.open.send_replace(true);
        joined
            .iter()
            .enumerate()
            .filter(|(_, j)| !**j)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether every worker is in (or the deadline passed).
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Notified when the gate opens.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.open.subscribe()
    }
}

/// What the pipeline learns of a rebalance.
#[derive(Debug)]
pub enum AssignmentChange {
    /// These partitions are now ours; with, for those an earlier owner committed with a seen
    /// mark, the offset below which every record was consumed (and its spans counted) before.
    Assigned {
        /// The partitions.
        keys: Vec<PartitionKey>,
        /// Seen marks of earlier owners, where their commits carry one.
        seen_before: Vec<(PartitionKey, i64)>,
    },
    /// These partitions are no longer ours (their committable offsets were committed).
    Revoked(Vec<PartitionKey>),
}

/// What an input topic carries, and what the worker does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicRole {
    /// OTLP spans (`inputs.spans`), joined.
    Spans,
    /// Logs in this format (`inputs.logs[]`), joined.
    Logs(InputLogFormat),
    /// An input topic not co-partitioned by trace id: its records are re-keyed into the
    /// internal topic of their kind, not joined here.
    Rekey(Rekey),
    /// The internal spans topic: re-keyed span records, joined.
    RekeyedSpans,
    /// The internal logs topic: re-keyed log records (format and origin in headers), joined.
    RekeyedLogs,
}

/// What a re-keyed input topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rekey {
    /// OTLP spans.
    Spans,
    /// Logs in this format.
    Logs(InputLogFormat),
}

impl TopicRole {
    /// Whether its records go to the join (and its partitions to a join task).
    pub fn joins(self) -> bool {
        !matches!(self, TopicRole::Rekey(_))
    }
}

/// Which input topics are re-keyed, and where to.
#[derive(Debug, Clone, Default)]
pub struct RepartitionPlan {
    /// Per input topic (spans first, then logs in config order): re-keyed?
    pub rekey: Vec<bool>,
    /// Partitions of the internal topics.
    pub partitions: i32,
    /// Per input topic (as `rekey`): its partition count when the plan was made (0: unknown).
    /// A join task tracks a re-keyed partition through these origins (`join::watermark`).
    pub input_partitions: Vec<i32>,
    /// `<group_id>.repartition.spans`.
    pub spans_topic: String,
    /// `<group_id>.repartition.logs`.
    pub logs_topic: String,
    /// The internal spans topic exists already (some member re-keys into it): consume it.
    pub spans_topic_exists: bool,
    /// The internal logs topic exists already: consume it.
    pub logs_topic_exists: bool,
}

impl RepartitionPlan {
    /// Whether the spans input is re-keyed.
    pub fn spans(&self) -> bool {
        self.rekey.first().copied().unwrap_or(false)
    }
    /// Whether any logs input is re-keyed.
    pub fn logs(&self) -> bool {
        self.rekey.iter().skip(1).any(|r| *r)
    }
}

/// The input topics by index (the `u16` of a [`PartitionKey`] and of `Origin::topic`): the spans
/// topic first, then the logs topics in config order.
#[derive(Debug, Clone)]
pub struct TopicTable(pub Vec<(Arc<str>, TopicRole)>);

impl TopicTable {
    /// From the config's inputs, every one joined directly.
    pub fn from_config(config: &Config) -> Self {
        Self::with_plan(config, &RepartitionPlan::default())
    }

    /// From the config's inputs and the repartition plan: re-keyed inputs, then the internal
    /// topics in use.
    pub fn with_plan(config: &Config, plan: &RepartitionPlan) -> Self {
        let rekey = |i: usize| plan.rekey.get(i).copied().unwrap_or(false);
        let mut topics = vec![(
            Arc::from(config.inputs.spans.topic.as_str()),
            if rekey(0) {
                TopicRole::Rekey(Rekey::Spans)
            } else {
                TopicRole::Spans
            },
        )];
        topics.extend(config.inputs.logs.iter().enumerate().map(|(i, l)| {
            let role = if rekey(i + 1) {
                TopicRole::Rekey(Rekey::Logs(l.format))
            } else {
                TopicRole::Logs(l.format)
            };
            (Arc::from(l.topic.as_str()), role)
        }));
        // An internal topic that exists is consumed even when this member re-keys nothing into
        // it: what other members (or an earlier run) put there must not be stranded.
        if plan.spans() || plan.spans_topic_exists {
            topics.push((plan.spans_topic.as_str().into(), TopicRole::RekeyedSpans));
        }
        if plan.logs() || plan.logs_topic_exists {
            topics.push((plan.logs_topic.as_str().into(), TopicRole::RekeyedLogs));
        }
        TopicTable(topics)
    }
    /// The index of a topic name.
    pub fn index(&self, topic: &str) -> Option<u16> {
        self.0
            .iter()
            .position(|(t, _)| &**t == topic)
            .map(|i| i as u16)
    }
    /// The name of a topic index.
    pub fn name(&self, index: u16) -> &str {
        self.0.get(index as usize).map_or("?", |(s, _)| s)
    }
    /// The role of a topic index.
    pub fn role(&self, index: u16) -> Option<TopicRole> {
        self.0.get(index as usize).map(|(_, r)| *r)
    }
    /// The topic names, by index.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| &**n)
    }
    /// Number of input topics.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there is no input topic (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `topic/partition` names, for logs.
    fn describe(&self, keys: &[PartitionKey]) -> Vec<String> {
        keys.iter()
            .map(|k| format!("{}/{}", self.name(k.0), k.1))
            .collect()
    }
    fn keys(&self, tpl: &TopicPartitionList) -> Vec<PartitionKey> {
        tpl.elements()
            .iter()
            .filter_map(|e| Some((self.index(e.topic())?, e.partition())))
            .collect()
    }
}

/// When the consumer last had trouble reaching the cluster, shared with the pipeline.
///
/// The watermark may follow the wall clock when every partition is quiet, but not while the
/// consumer is cut off: records produced during a broker outage arrive afterwards with the event
/// times of the outage, and must not find the watermark already past them.
#[derive(Debug, Clone)]
pub struct BrokerTrouble {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for BrokerTrouble {
    fn default() -> Self {
        BrokerTrouble {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl BrokerTrouble {
    /// Records trouble now.
    pub fn record(&self) {
        let ms = self.base.elapsed().as_millis() as u64 + 1;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    /// When trouble was last recorded.
    pub fn last(&self) -> Option<Instant> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.base + Duration::from_millis(ms - 1)),
        }
    }
}

/// The consumer's context: rebalance hooks, and broker trouble for the watermark.
pub struct SourceContext {
    /// Whether the group's rebalances are incremental (`group.protocol=consumer`) or eager
    /// (classic, `range`): known from the config, never asked of librdkafka (see `rebalance`).
    incremental: bool,
    topics: TopicTable,
    committable: CommittableOffsets,
    changes: mpsc::UnboundedSender<AssignmentChange>,
    trouble: BrokerTrouble,
    gate: Arc<StartGate>,
    worker: usize,
    /// Where a refusal of the running consumer is reported (`/readyz`).
    health: Health,
    /// The last refusal's report, if any.
    last_refusal: BrokerTrouble,
}

/// How long a refused consumer must go without a refusal (and with a broker connection up) to
/// be ready again: longer than librdkafka's retry of a failed OAUTHBEARER token refresh (10 s),
/// so a refusal repeated at that pace never lets readiness flap back.
const ACCEPTED_AFTER: Duration = Duration::from_secs(15);

impl ClientContext for SourceContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): consumer lag per partition.
    fn stats(&self, stats: rdkafka::Statistics) {
        // Accepted again: no refusal for a while, and a broker connection is up.
        let quiet = self
            .last_refusal
            .last()
            .is_none_or(|t| t.elapsed() >= ACCEPTED_AFTER);
        let up = stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        if quiet && up && self.health.set_kafka_refused(self.worker, None) {
            crate::telemetry::kafka_accepted_again(self.worker);
        }
        for (topic, t) in &stats.topics {
            if self.topics.index(topic).is_none() {
                continue;
            }
            for (partition, p) in &t.partitions {
                // -1: the internal unassigned partition.
                if *partition < 0 || p.fetch_state != "active" {
                    continue;
                }
                if let Some(lag) = lag(p) {
                    crate::telemetry::metrics().consumer_lag(topic, *partition, lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.trouble.record();
        match crate::sources::connect::ConnectError::classify(error.rdkafka_error_code(), reason) {
            // The cluster refuses the running consumer (a password rotated on the brokers only,
            // a user deleted, a certificate expired): not ready until accepted again.
            Some(refusal) => {
                self.last_refusal.record();
                let first = self
                    .health
                    .set_kafka_refused(self.worker, Some(refusal.to_string()));
                crate::telemetry::kafka_refused_while_running(self.worker, &refusal, first);
            }
            None => tracing::warn!(%error, reason, "kafka client error"),
        }
    }
}

/// Records between a partition's position and its end. librdkafka's `consumer_lag` counts
/// from this consumer's *own* last commit, and is -1 until it has made one: a partition that
/// came to this member already consumed to its end (a rebalance after the backlog) is never
/// committed by it, so its lag would never be reported. Then the fetch position stands in.
fn lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    (end >= 0 && p.next_offset >= 0).then(|| (end - p.next_offset).max(0))
}

impl SourceContext {
    /// The seen marks the partitions' last commits carry (see `sources::ack`). Asked before the
    /// first record of the assignment is consumed; a failure costs only exactness (replayed spans
    /// are counted again), so it is logged, not fatal.
    fn seen_marks(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> Vec<(PartitionKey, i64)> {
        if tpl.count() == 0 {
            return Vec::new();
        }
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(committed) => committed
                .elements()
                .iter()
                .filter_map(|e| {
                    let seen = parse_seen_metadata(e.metadata())?;
                    Some(((self.topics.index(e.topic())?, e.partition()), seen))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the committed seen marks; spans replayed from these partitions are counted again");
                Vec::new()
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    /// rdkafka's default, except that the protocol comes from the config. The default asks
    /// `rd_kafka_rebalance_protocol()`, which waits on librdkafka's main thread and can wait
    /// forever when the rebalance comes while the consumer closes (librdkafka #4041,
    /// rust-rdkafka #509): seen here as a worker whose consumer never finished dropping at
    /// shutdown, hanging the process.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::bindings as rd;
        use rdkafka::types::RDKafkaRespErr as E;
        let rebalance = match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let client = consumer.client().native_ptr();
        let assign = err == E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        // SAFETY: the client and the list are live for the call; librdkafka copies the list.
        unsafe {
            match (assign, self.incremental) {
                (true, true) => destroy(rd::rd_kafka_incremental_assign(client, tpl.ptr())),
                (false, true) => destroy(rd::rd_kafka_incremental_unassign(client, tpl.ptr())),
                (true, false) => {
                    rd::rd_kafka_assign(client, tpl.ptr());
                }
                (false, false) => {
                    rd::rd_kafka_assign(client, std::ptr::null());
                }
            }
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let keys = self.topics.keys(tpl);
            let mut commit = TopicPartitionList::new();
            for key in &keys {
                if let Some((offset, seen)) = self.committable.get(*key) {
                    add_with_seen_mark(&mut commit, self.topics.name(key.0), key.1, offset, seen);
                }
            }
            if commit.count() > 0 {
                match consumer.commit(&commit, CommitMode::Sync) {
                    Ok(()) => tracing::info!(
                        partitions = commit.count(),
                        "committed offsets of revoked partitions"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "commit on revocation failed; the next owner replays from the last commit")
                    }
                }
            }
            tracing::info!(worker = self.worker, partitions = ?self.topics.describe(&keys), "partitions revoked");
            crate::telemetry::metrics().rebalanced("revoked", keys.len());
            for key in &keys {
                crate::telemetry::metrics().forget_partition(self.topics.name(key.0), key.1);
            }
            let _ = self.changes.send(AssignmentChange::Revoked(keys));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let keys = self.topics.keys(tpl);
                let open = self.gate.joined(self.worker);
                if !open && tpl.count() > 0 {
                    // Paused before the first fetch; the worker resumes when the gate opens.
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::warn!(error = %e, "could not hold partitions until the process's workers are in");
                    }
                }
                tracing::info!(worker = self.worker, partitions = ?self.topics.describe(&keys), held_until_siblings_join = !open, "partitions assigned");
                crate::telemetry::metrics().rebalanced("assigned", keys.len());
                let seen_before = self.seen_marks(consumer, tpl);
                let _ = self
                    .changes
                    .send(AssignmentChange::Assigned { keys, seen_before });
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Adds a partition's commit, with the seen mark as its metadata (see `sources::ack`).
pub fn add_with_seen_mark(
    tpl: &mut TopicPartitionList,
    topic: &str,
    partition: i32,
    offset: i64,
    seen: i64,
) {
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .is_ok()
    {
        if let Some(mut e) = tpl.find_partition(topic, partition) {
            e.set_metadata(seen_metadata(seen));
        }
    }
}

/// The consumer type the pipeline uses.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// librdkafka settings shared by consumer and producers: bootstrap and passthrough properties,
/// their secrets read now (a secret file is read again for each client).
pub fn base_client_config(config: &Config) -> KafkaResult<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    apply_properties(&mut c, &config.kafka.properties)?;
    Ok(c)
}

/// Sets `properties` on `c`, secrets read now. A secret that cannot be read is a config error
/// naming the property and the secret's source (never a value).
pub fn apply_properties(c: &mut ClientConfig, properties: &KafkaProperties) -> KafkaResult<()> {
    let resolved = properties.resolve().map_err(|e| {
        KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            e.reason,
            e.key,
            format!("({})", e.from),
        )
    })?;
    for (k, v) in resolved.iter() {
        c.set(k, v);
    }
    Ok(())
}

/// Creates worker `worker`'s consumer and subscribes it to every input topic.
pub fn subscribe(
    config: &Config,
    worker: usize,
    topics: TopicTable,
    committable: CommittableOffsets,
    trouble: BrokerTrouble,
    gate: Arc<StartGate>,
    health: Health,
) -> KafkaResult<(
    Arc<SourceConsumer>,
    mpsc::UnboundedReceiver<AssignmentChange>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut c = base_client_config(config)?;
    // Each worker is its own member of the group; its client id says which (broker logs, ACLs
    // and quotas see `<client.id>-w<n>`).
    let client_id = format!(
        "{}-w{worker}",
        config
            .kafka
            .properties
            .get("client.id")
            .unwrap_or("tracejoin")
    );
    c.set("client.id", &client_id);
    c.set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", config.kafka.auto_offset_reset.as_str());
    match config.kafka.group_protocol {
        GroupProtocol::Classic => {
            // A member learns of a rebalance at its next heartbeat: at 1 s rather than
            // librdkafka's 3 s, a process's workers are all in (start-up gate) and a moved
            // partition is consuming again that much sooner.
            c.set("partition.assignment.strategy", "range")
                .set_if_absent("session.timeout.ms", "10000")
                .set_if_absent("heartbeat.interval.ms", "1000");
        }
        // The broker assigns; its `range` assignor gives a member the same partition numbers of
        // topics with equal partition counts, as the client-side one does.
        GroupProtocol::Consumer => {
            c.set("group.protocol", "consumer")
                .set("group.remote.assignor", "range");
        }
    }
    c
        // Reconnect attempts (and so trouble reports) at least every second during an outage.
        .set_if_absent("reconnect.backoff.max.ms", "1000")
        // Consumer lag per partition comes from librdkafka's statistics.
        .set_if_absent("statistics.interval.ms", "5000")
        .set_if_absent("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MiB per partition by default; the join has its own
        // bound, and memory should be the sum of stated bounds (README, Memory).
        .set_if_absent("queued.max.messages.kbytes", "16384")
        // With the queue full, librdkafka waits this long before fetching again (1 s by
        // default): a worker that drains 16 MiB in well under a second then sat idle for the
        // rest of it, and a backlog took three times the CPU-bound wall time
        // (scripts/span-compare.sh: 9.4 s → 3.2 s at the same CPU).
        .set_if_absent("fetch.queue.backoff.ms", "10");
    let names: Vec<String> = topics.names().map(str::to_string).collect();
    let consumer: SourceConsumer = c.create_with_context(SourceContext {
        incremental: config.kafka.group_protocol == GroupProtocol::Consumer,
        topics,
        committable,
        changes: tx,
        trouble,
        gate,
        worker,
        health,
        last_refusal: BrokerTrouble::default(),
    })?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    Ok((Arc::new(consumer), rx))
}

/// Frees the error an incremental (un)assign may return (it is reported by the rebalance that
/// follows, if it matters).
unsafe fn destroy(error: *mut rdkafka::bindings::rd_kafka_error_t) {
    if !error.is_null() {
        tracing::warn!("incremental assignment change refused by librdkafka");
        rdkafka::bindings::rd_kafka_error_destroy(error);
    }
}

trait SetIfAbsent {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self;
}

impl SetIfAbsent for ClientConfig {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self {
        if self.get(key).is_none() {
            self.set(key, value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::StartGate;

    #[test]
    fn the_gate_opens_when_the_last_worker_has_an_assignment() {
        let gate = StartGate::new(3);
        let mut watch = gate.watch();
        assert!(!gate.joined(0));
        // A worker joining again (the rebalance its sibling's arrival causes) is still one worker.
        assert!(!gate.joined(0));
        assert!(!gate.joined(2));
        assert!(!watch.has_changed().unwrap());
        assert!(gate.joined(1));
        assert!(watch.has_changed().unwrap());
        assert!(*watch.borrow_and_update());
        assert!(gate.force_open().is_empty());
    }

    #[test]
    fn the_deadline_opens_the_gate_and_names_who_never_joined() {
        let gate = StartGate::new(3);
        gate.joined(1);
        assert_eq!(gate.force_open(), vec![0, 2]);
        assert!(gate.is_open());
        assert!(gate.joined(0));
    }

    #[test]
    fn one_worker_opens_its_own_gate() {
        assert!(StartGate::new(1).joined(0));
    }
}
