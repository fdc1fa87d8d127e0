//! Sources: Kafka in, and which offsets may be committed.
//!
//! - `kafka`: the consumer (one group over the spans and logs topics, `range` assignment so the
//!   same partition numbers of co-partitioned topics stay together), its rebalance hooks, and the
//!   table of input topics with their roles.
//! - `connect`: the start-up check that the cluster accepts our credentials and certificates.
//! - `ack`: acknowledgement tokens; per partition, the lowest offset still needed downstream.
//! - `partitioner`: the partitioners producers use, to check co-partitioning per record.
//! - `repartition`: re-keying records by trace id for topics that are not co-partitioned.

pub mod ack;
pub mod connect;
pub mod kafka;
pub mod partitioner;
pub mod repartition;

/// A partition of an input topic: `(topic index in the [`kafka::TopicTable`], partition)`.
pub type PartitionKey = (u16, i32);
