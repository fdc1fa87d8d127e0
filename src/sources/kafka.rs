//! The Kafka consumer: one group over the spans topic and every logs topic.
//!
//! Assignment is `range`: with co-partitioned topics (same partition count), Kafka's range
//! assignor gives a member the same partition numbers of every topic, which is what lets a
//! worker join partition *p* of the logs with partition *p* of the spans (Kafka Streams relies on
//! the same property). Offsets are never auto-committed: the pipeline commits what its
//! `AckLedger` allows. On revocation, the context commits what the ledger last published as
//! committable for the partitions leaving, synchronously, before librdkafka hands them over; the
//! pipeline is told of every assignment change through a channel.

use super::ack::CommittableOffsets;
use super::PartitionKey;
use crate::config::Config;
use crate::decode::logline::InputLogFormat;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the pipeline learns of a rebalance.
#[derive(Debug)]
pub enum AssignmentChange {
    /// These partitions are now ours.
    Assigned(Vec<PartitionKey>),
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
    topics: TopicTable,
    committable: CommittableOffsets,
    changes: mpsc::UnboundedSender<AssignmentChange>,
    trouble: BrokerTrouble,
}

impl ClientContext for SourceContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): consumer lag per partition.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            if self.topics.index(topic).is_none() {
                continue;
            }
            for (partition, p) in &t.partitions {
                // -1: the internal unassigned partition; lag -1: not being consumed here.
                if *partition >= 0 && p.consumer_lag >= 0 && p.fetch_state == "active" {
                    crate::telemetry::metrics().consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.trouble.record();
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let keys = self.topics.keys(tpl);
            let mut commit = TopicPartitionList::new();
            for key in &keys {
                if let Some(o) = self.committable.get(*key) {
                    let _ = commit.add_partition_offset(
                        self.topics.name(key.0),
                        key.1,
                        Offset::Offset(o),
                    );
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
            let _ = self.changes.send(AssignmentChange::Revoked(keys));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let keys = self.topics.keys(tpl);
                tracing::info!(partitions = ?keys.iter().map(|k| format!("{}/{}", self.topics.name(k.0), k.1)).collect::<Vec<_>>(), "partitions assigned");
                let _ = self.changes.send(AssignmentChange::Assigned(keys));
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The consumer type the pipeline uses.
pub type SourceConsumer = StreamConsumer<SourceContext>;

/// librdkafka settings shared by consumer and producers: bootstrap and passthrough properties.
pub fn base_client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    for (k, v) in &config.kafka.properties {
        c.set(k, v);
    }
    c
}

/// Creates worker `worker`'s consumer and subscribes it to every input topic.
pub fn subscribe(
    config: &Config,
    worker: usize,
    topics: TopicTable,
    committable: CommittableOffsets,
    trouble: BrokerTrouble,
) -> KafkaResult<(
    Arc<SourceConsumer>,
    mpsc::UnboundedReceiver<AssignmentChange>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut c = base_client_config(config);
    // Each worker is its own member of the group; its client id says which (broker logs, ACLs
    // and quotas see `<client.id>-w<n>`).
    let client_id = format!(
        "{}-w{worker}",
        config
            .kafka
            .properties
            .get("client.id")
            .map_or("tracejoin", String::as_str)
    );
    c.set("client.id", &client_id);
    c.set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", config.kafka.auto_offset_reset.as_str())
        .set("partition.assignment.strategy", "range")
        .set_if_absent("session.timeout.ms", "10000")
        // Reconnect attempts (and so trouble reports) at least every second during an outage.
        .set_if_absent("reconnect.backoff.max.ms", "1000")
        // Consumer lag per partition comes from librdkafka's statistics.
        .set_if_absent("statistics.interval.ms", "5000")
        .set_if_absent("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MiB per partition by default; the join has its own
        // bound, and memory should be the sum of stated bounds (README, Memory).
        .set_if_absent("queued.max.messages.kbytes", "16384");
    let names: Vec<String> = topics.names().map(str::to_string).collect();
    let consumer: SourceConsumer = c.create_with_context(SourceContext {
        topics,
        committable,
        changes: tx,
        trouble,
    })?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    Ok((Arc::new(consumer), rx))
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
