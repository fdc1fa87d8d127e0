//! The co-partitioning check: a keyed record whose key hashes (under the configured partitioner)
//! to another partition than the one it is on means the input topics are not co-partitioned by
//! trace id, so logs and spans of one trace can reach different workers.

use crate::sources::kafka::{SourceConsumer, TopicTable};
use crate::sources::partitioner::Partitioner;
use crate::telemetry::metrics;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub(super) struct CopartitionCheck {
    partitioner: Partitioner,
    /// Partition counts of the input topics by index, refreshed in the background.
    partition_counts: watch::Receiver<Vec<i32>>,
    /// Topics already warned about.
    warned: Vec<bool>,
    /// Topics already warned about for unkeyed records.
    warned_unkeyed: Vec<bool>,
}

impl CopartitionCheck {
    pub(super) fn new(
        consumer: Arc<SourceConsumer>,
        topics: TopicTable,
        partitioner: Partitioner,
        shutdown: CancellationToken,
    ) -> Self {
        let warned = vec![false; topics.len()];
        CopartitionCheck {
            partitioner,
            warned_unkeyed: warned.clone(),
            partition_counts: watch_partition_counts(consumer, topics, shutdown),
            warned,
        }
    }

    /// The topic's partition count as last fetched (0 until known).
    fn partition_count(&self, topic: u16) -> i32 {
        self.partition_counts
            .borrow()
            .get(topic as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Checks one record of a topic joined without repartitioning.
    pub(super) fn check(&mut self, m: &BorrowedMessage<'_>, topic: u16, topics: &TopicTable) {
        let Some(key) = m.key() else { return };
        let count = self.partition_count(topic);
        let Some(expected) = self.partitioner.partition(key, count) else {
            return;
        };
        if expected != m.partition() {
            let name = topics.name(topic);
            metrics().partition_key_mismatch(name);
            if !std::mem::replace(&mut self.warned[topic as usize], true) {
                tracing::warn!(
                    topic = name,
                    partition = m.partition(),
                    expected,
                    partitioner = ?self.partitioner,
                    "a keyed record is not on the partition its key hashes to: the input topics are not \
                     co-partitioned by trace id, so logs and spans of one trace can reach different workers; \
                     re-key the producers with one partitioner, or repartition into topics keyed by trace id"
                );
            }
        }
    }
}

impl CopartitionCheck {
    /// An unkeyed record with a trace id on a topic joined directly: nothing says where its
    /// trace's other records are, which is as dangerous as a mismatch as soon as the topic has
    /// more than one partition.
    pub(super) fn unkeyed(&mut self, topic: u16, topics: &TopicTable) {
        let count = self.partition_count(topic);
        if count <= 1 {
            return;
        }
        let name = topics.name(topic);
        metrics().partition_key_unchecked(name);
        if !std::mem::replace(&mut self.warned_unkeyed[topic as usize], true) {
            tracing::warn!(
                topic = name,
                partitions = count,
                "an unkeyed record with a trace id on a topic joined without repartitioning: logs and \
                 spans of one trace can reach different workers and be mis-joined; set \
                 inputs.repartition: auto (or always), or key the producers by trace id"
            );
        }
    }
}

/// Keeps the input topics' partition counts current without blocking the loop: metadata
/// requests run on the blocking pool once a minute.
fn watch_partition_counts(
    consumer: Arc<SourceConsumer>,
    topics: TopicTable,
    shutdown: CancellationToken,
) -> watch::Receiver<Vec<i32>> {
    let (tx, rx) = watch::channel(vec![0; topics.len()]);
    tokio::spawn(async move {
        loop {
            let (c, t) = (consumer.clone(), topics.clone());
            let counts = tokio::task::spawn_blocking(move || {
                t.names()
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
