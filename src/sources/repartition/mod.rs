//! Repartition: re-key span and log records by trace id, so that the join sees every span and log
//! of a trace on one partition number of co-partitioned topics.
//!
//! The join is right across instances only when spans and logs of a trace land on the same
//! partition number. Producers rarely arrange that: the Collector's Kafka exporter writes unkeyed
//! records, each an `ExportTraceServiceRequest` batching spans of many traces, and log shippers key
//! by nothing. This module is the I/O-free core of the stage that fixes it (issue 9): records are
//! split per trace and re-keyed into `<group_id>.repartition.spans` / `.logs`.
//!
//! - `split`: OTLP protobuf and JSON records cut into one record per trace id, copying the encoded
//!   span / log record, resource and scope (with their schema URLs and any unknown fields) as they
//!   are: nothing is decoded that does not need to be, and nothing is lost.
//! - `check`: the `inputs.repartition` policy and the per-record co-partitioning check that decides,
//!   under `auto`, which input topics need the stage.
//!
//! # Why Kafka Streams' scheme
//!
//! Kafka Streams solves the same problem with repartition topics (`RepartitionTopics`,
//! `InternalTopicManager` in `streams/.../processor/internals`), written through
//! `DefaultStreamPartitioner`, which calls the producer's `BuiltInPartitioner.partitionForKey`:
//! `toPositive(murmur2(keyBytes)) % numPartitions`, and lets the producer choose when the key is
//! null. Its `CopartitionedTopicsEnforcer` then requires co-partitioned topics to have one
//! partition count. We match it byte for byte — murmur2 over the key as produced, the key being
//! the trace id in lowercase hex (what the enriched output is keyed by), a record without a trace
//! id produced unkeyed — so that:
//! - a Java or Kafka Streams producer keyed by trace id is already co-partitioned with our internal
//!   topics and needs no extra hop (the check below sees that and leaves it alone);
//! - the key of a re-keyed record is what the existing co-partitioning check
//!   (`super::partitioner`) recomputes with `partitioner: murmur2`, so a mis-wired stage shows up
//!   in `tracejoin_partition_key_mismatch_total` instead of silently mis-joining.

mod check;
mod split;

#[cfg(test)]
mod tests;

pub use check::{CoPartitionCheck, Observation, Reason, RepartitionPolicy, TopicDecision};
pub use split::{split_logs_json, split_logs_proto, split_spans_json, split_spans_proto};

use super::partitioner::Partitioner;
use crate::model::TraceId;
use thiserror::Error;

/// The trace a split-off record belongs to: `None` for spans and logs without a valid trace id
/// (empty, all-zero, or not 16 bytes — what the decoders count as invalid). Those are kept together
/// in one record so nothing is lost; the join skips and counts them as it does today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceKey(pub Option<TraceId>);

impl TraceKey {
    /// The Kafka key to produce the record with (`None`: produce unkeyed, see [`repartition_key`]).
    pub fn kafka_key(&self) -> Option<[u8; 32]> {
        repartition_key(self.0.as_ref())
    }
}

/// The key of a re-keyed record: the trace id in lowercase hex, as the enriched output is keyed.
///
/// `None` for a record without a trace id: it is produced without a key so the producer spreads
/// such records (as Kafka Streams does for null keys) instead of piling every trace-less log of a
/// busy service onto the one partition an empty key would hash to. It cannot join anyway.
pub fn repartition_key(trace_id: Option<&TraceId>) -> Option<[u8; 32]> {
    let t = trace_id?;
    let mut key = [0u8; 32];
    key.copy_from_slice(t.to_hex().as_bytes());
    Some(key)
}

/// The internal topics' partition of a re-keyed record with key `key` (from
/// [`repartition_key`]): murmur2 of the trace id's **low 64 bits** (its last 16 hex digits).
/// A log that carries only a 64-bit trace id (Datadog's decimal ids, 16-digit B3 or Jaeger ids)
/// is keyed by its zero-padded id, whose high half differs from its trace's; placing both by the
/// low half puts it on its trace's partition, where the join can match it (`join.id_match:
/// low64`). Traces that share a low half share a partition, which is what lets the join see the
/// ambiguity and refuse to guess.
pub fn internal_partition(key: &[u8; 32], partitions: i32) -> i32 {
    partition_for(&key[16..], partitions)
}

/// The partition of `key` among `partitions` under murmur2, as Kafka's producer and Kafka Streams
/// place keyed records. A count below 1 is treated as 1 (partition 0) rather than panicking.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    Partitioner::Murmur2
        .partition(key, partitions.max(1))
        .unwrap_or(0)
}

/// What one split yielded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SplitStats {
    /// Spans (or log records) in the input record.
    pub items: u32,
    /// Distinct trace keys, the no-trace key included: the number of records appended to `out`.
    pub records: u32,
    /// Spans (or log records) without a valid trace id, all under the no-trace key.
    pub without_trace: u32,
    /// The input held one trace key only and was forwarded byte for byte, not re-encoded.
    pub passthrough: bool,
    /// The highest span end time in the input (ns), for the re-keying owner's progress marks;
    /// `None` for log records (their time comes from the decoder) and for spans without one.
    pub latest_event_nanos: Option<i64>,
}

/// Why a record could not be split. Codes match `crate::decode::DecodeError::code`, so the
/// dead-letter reason is the same whether a bad record fails here or, unsplit, in the decoder.
#[derive(Debug, Error)]
pub enum SplitError {
    /// Not valid protobuf where the split has to read (message framing down to the trace id).
    #[error("invalid OTLP protobuf at byte {offset}: {what}")]
    Protobuf {
        /// Byte offset in the record where reading failed.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// Not valid JSON, or not the OTLP/JSON shape.
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
}

impl SplitError {
    /// A short stable code, for the dead-letter reason header and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            SplitError::Protobuf { .. } => "invalid_protobuf",
            SplitError::Json(_) => "invalid_json",
        }
    }
}
