//! Sources: Kafka in, and which offsets may be committed.
//!
//! - `kafka`: the consumer (one group over the spans and logs topics, `range` assignment so the
//!   same partition numbers of co-partitioned topics stay together), its rebalance hooks.
//! - `offsets`: per partition, the lowest offset still needed downstream.
//! - `partitioner`: the partitioners producers use, to check co-partitioning per record.

pub mod kafka;
pub mod offsets;
pub mod partitioner;
pub mod repartition;
