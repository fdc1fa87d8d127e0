//! `inputs.repartition` and the check that decides, under `auto`, which input topics need the
//! repartition stage.
//!
//! The join needs, for every trace id, the same partition number in every input topic. That holds
//! when each topic's records are keyed by their trace id, written in one form (lowercase hex,
//! uppercase hex or the 16 raw bytes), placed by one partitioner, and the topics have one
//! partition count. The check learns this from the records themselves: per topic, it keeps the
//! set of (key form × partitioner) schemes every keyed record so far is consistent with — a
//! 9-bit mask, so a record costs a few hashes and no allocation. The configured
//! `inputs.partitioner` narrows the partitioners tried; `none` tries murmur2, CRC32 and FNV-1a.
//!
//! A topic needs the stage when one of its records is unkeyed, keyed by something other than its
//! trace id, holds several traces (the Collector's batched, unkeyed exporter), or sits on a
//! partition no candidate scheme puts it on; or when the topics disagree with each other (no
//! common scheme, differing partition counts) and the topic is not already placed as the internal
//! topics are (murmur2 over lowercase hex, the internal partition count), which is what the other
//! topics are repartitioned into.

use super::super::partitioner::Partitioner;
use crate::model::TraceId;
use serde::Deserialize;

/// `inputs.repartition`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RepartitionPolicy {
    /// Repartition the topics the check finds not co-partitioned by trace id.
    #[default]
    Auto,
    /// Repartition every input topic.
    Always,
    /// Never; records that cannot be checked are counted and warned about.
    Never,
}

/// What one record told the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Keyed by its trace id and on a partition a candidate scheme puts it.
    CoPartitioned,
    /// The record holds no trace id: it may sit anywhere and tells nothing.
    NoTrace,
    /// No key, though the record has a trace id.
    Unkeyed,
    /// Spans (or logs) of several traces in one record: no one key places them all.
    ManyTraces,
    /// The key is not the record's trace id (in any of the accepted forms).
    KeyNotTraceId,
    /// Keyed by its trace id, but no candidate partitioner puts that key on this partition.
    KeyElsewhere,
}

impl Observation {
    /// Whether this record alone shows its topic is not co-partitioned by trace id.
    pub fn is_mismatch(self) -> bool {
        !matches!(self, Observation::CoPartitioned | Observation::NoTrace)
    }

    /// A short stable name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Observation::CoPartitioned => "co_partitioned",
            Observation::NoTrace => "no_trace",
            Observation::Unkeyed => "unkeyed",
            Observation::ManyTraces => "many_traces",
            Observation::KeyNotTraceId => "key_not_trace_id",
            Observation::KeyElsewhere => "key_elsewhere",
        }
    }
}

/// Why a topic does or does not need the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Every topic is keyed by trace id under one scheme and partition count: no stage.
    CoPartitioned,
    /// No record with a trace id seen yet on any topic.
    NoEvidence,
    /// The first mismatching record of the topic (see [`Observation`]).
    Record(Observation),
    /// Each record matched some scheme, but not one scheme for all the topic's records.
    MixedSchemes,
    /// The topics are keyed by trace id but have differing partition counts.
    PartitionCountsDiffer,
    /// The topics are keyed by trace id but under different forms or partitioners.
    SchemesDiffer,
}

/// The decision for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDecision<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// Whether its records go through the repartition stage.
    pub repartition: bool,
    /// Why.
    pub reason: Reason,
    /// Records with a trace id seen on the topic.
    pub checked: u64,
    /// Of those, records that showed a mismatch.
    pub mismatched: u64,
}

/// Key forms: lowercase hex, uppercase hex, raw bytes.
const FORMS: u32 = 3;
/// Partitioners tried, in mask order.
const PARTITIONERS: [Partitioner; 3] =
    [Partitioner::Murmur2, Partitioner::Crc32, Partitioner::Fnv1a];
const ALL_SCHEMES: u16 = (1 << (FORMS as usize * PARTITIONERS.len())) - 1;
/// The internal topics' scheme: lowercase hex, murmur2.
const INTERNAL_SCHEME: u16 = 1;

#[derive(Debug)]
struct TopicState {
    name: Box<str>,
    partition_count: i32,
    checked: u64,
    mismatched: u64,
    first_mismatch: Option<Observation>,
    schemes: u16,
}

/// The co-partitioning check of the input topics. Feed it every record (or a sample) with
/// [`observe`](Self::observe); ask [`decide`](Self::decide) when enough were seen.
#[derive(Debug)]
pub struct CoPartitionCheck {
    partitioners: u16,
    topics: Vec<TopicState>,
}

impl CoPartitionCheck {
    /// A check trying `partitioner`, or every known partitioner for `Partitioner::None`.
    pub fn new(partitioner: Partitioner) -> Self {
        let partitioners = match PARTITIONERS.iter().position(|p| *p == partitioner) {
            Some(i) => 1 << i,
            None => (1 << PARTITIONERS.len()) - 1,
        };
        CoPartitionCheck {
            partitioners,
            topics: Vec::new(),
        }
    }

    /// Checks one record of `topic` at `partition` (of `partition_count`), with its Kafka key and
    /// the trace ids of its spans or log records (repeats allowed, e.g. one per span). Allocates
    /// only the first time a topic is seen.
    pub fn observe(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        record_trace_ids: &[TraceId],
        partition_count: i32,
    ) -> Observation {
        let partitioners = self.partitioners;
        let i = match self.topics.iter().position(|t| &*t.name == topic) {
            Some(i) => i,
            None => {
                self.topics.push(TopicState {
                    name: topic.into(),
                    partition_count,
                    checked: 0,
                    mismatched: 0,
                    first_mismatch: None,
                    schemes: ALL_SCHEMES,
                });
                self.topics.len() - 1
            }
        };
        let t = &mut self.topics[i];
        t.partition_count = partition_count;
        let Some(first) = record_trace_ids.first() else {
            return Observation::NoTrace;
        };
        t.checked += 1;
        let obs = if record_trace_ids.iter().any(|id| id != first) {
            Observation::ManyTraces
        } else {
            match key {
                None => Observation::Unkeyed,
                Some(key) => {
                    let forms = key_forms(key, first);
                    let placed = placements(partitioners, key, partition, partition_count);
                    let mut schemes = 0;
                    for form in 0..FORMS {
                        if forms & (1 << form) != 0 {
                            schemes |= placed << (form * PARTITIONERS.len() as u32);
                        }
                    }
                    if forms == 0 {
                        Observation::KeyNotTraceId
                    } else if schemes == 0 {
                        Observation::KeyElsewhere
                    } else {
                        t.schemes &= schemes;
                        Observation::CoPartitioned
                    }
                }
            }
        };
        if obs.is_mismatch() {
            t.mismatched += 1;
            t.first_mismatch.get_or_insert(obs);
        }
        obs
    }

    /// The decision for every topic seen, given the partition count the internal topics have.
    pub fn decide(&self, internal_partitions: i32) -> Vec<TopicDecision<'_>> {
        let own = |t: &TopicState| match t.first_mismatch {
            Some(o) => Some(Reason::Record(o)),
            None if t.schemes == 0 => Some(Reason::MixedSchemes),
            None => None,
        };
        let with_evidence = || self.topics.iter().filter(|t| t.checked > 0);
        let common = with_evidence().fold(ALL_SCHEMES, |m, t| m & t.schemes);
        let counts_equal = self
            .topics
            .windows(2)
            .all(|w| w[0].partition_count == w[1].partition_count);
        let all_fine = self.topics.iter().all(|t| own(t).is_none());
        let any_evidence = with_evidence().next().is_some();
        self.topics
            .iter()
            .map(|t| {
                let (repartition, reason) = if !any_evidence {
                    (false, Reason::NoEvidence)
                } else if all_fine && common != 0 && counts_equal {
                    (false, Reason::CoPartitioned)
                } else if let Some(r) = own(t) {
                    (true, r)
                } else if t.checked > 0
                    && t.schemes & INTERNAL_SCHEME != 0
                    && t.partition_count == internal_partitions
                {
                    // Already placed as the internal topics the others are repartitioned into.
                    (false, Reason::CoPartitioned)
                } else if !counts_equal {
                    (true, Reason::PartitionCountsDiffer)
                } else {
                    (true, Reason::SchemesDiffer)
                };
                TopicDecision {
                    topic: &t.name,
                    repartition,
                    reason,
                    checked: t.checked,
                    mismatched: t.mismatched,
                }
            })
            .collect()
    }
}

/// Which forms of `trace_id` the key is, as bits: 0 lowercase hex, 1 uppercase hex, 2 raw bytes.
/// An id of decimal digits only is both lowercase and uppercase hex.
fn key_forms(key: &[u8], trace_id: &TraceId) -> u16 {
    if key.len() == 16 {
        return if key == trace_id.0 { 1 << 2 } else { 0 };
    }
    let hex = trace_id.to_hex();
    let hex = hex.as_bytes();
    if key.len() != hex.len() {
        return 0;
    }
    let lower = key == hex;
    let upper = key
        .iter()
        .zip(hex)
        .all(|(k, h)| *k == h.to_ascii_uppercase());
    u16::from(lower) | (u16::from(upper) << 1)
}

/// Bit `i` set when `PARTITIONERS[i]` (among those allowed) puts `key` on `partition`.
fn placements(allowed: u16, key: &[u8], partition: i32, partition_count: i32) -> u16 {
    let mut bits = 0;
    for (i, p) in PARTITIONERS.iter().enumerate() {
        if allowed & (1 << i) != 0 && p.partition(key, partition_count.max(1)) == Some(partition) {
            bits |= 1 << i;
        }
    }
    bits
}
