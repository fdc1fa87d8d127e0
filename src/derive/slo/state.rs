//! A partition's SLO state as a changelog value: what its next owner needs to go on as if the
//! partition had never moved — the non-empty buckets of every SLO's rings, the bad events
//! waiting for their cause, and the orphan error logs.
//!
//! Operations and causes travel by name, not by the process-local ids of the label tables, and
//! an SLO by its name: a state written before an SLO was renamed or removed restores the SLOs it
//! still names and drops the rest. Buckets are written sparsely (a ring is mostly zeros) as
//! JSON, which the changelog's producer compresses.
//!
//! `positions` is not the engine's to fill: the pipeline writes there, per source partition,
//! the offset up to which the state holds what that source gave (`pipeline::slo_state`).

use super::pending::{Fallback, LogCause, Orphans, Pending, PendingEvent};
use super::series::{Rings, ALL_BAD, BAD, TOTAL};
use super::SloEngine;
use crate::model::{SpanId, TraceId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The format's version; a state of another version is not restored.
const VERSION: u32 = 1;

/// Why a changelog value could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not JSON of this shape.
    #[error("undecodable SLO state: {0}")]
    Decode(#[from] serde_json::Error),
    /// Written by another version of the format.
    #[error("SLO state of version {found}, this build reads version {VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
}

/// One source partition's offset in a [`PartitionState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// What the state holds from this source: everything below this offset.
    pub offset: i64,
}

/// Per input partition whose spans are re-keyed into the join partition, the newest piece the
/// state counted (the pipeline's to fill, like `positions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyedMark {
    /// The input topic.
    pub topic: String,
    /// The input partition.
    pub partition: i32,
    /// The input record's offset.
    pub offset: i64,
    /// Which piece of that record.
    pub piece: u32,
}

/// One partition's SLO state (module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionState {
    version: u32,
    /// The join partition.
    pub partition: i32,
    /// Per source partition, the offset below which the state holds what it gave.
    #[serde(default)]
    pub positions: Vec<Position>,
    slos: Vec<SloRings>,
    #[serde(default)]
    pending: Vec<PendingState>,
    #[serde(default)]
    orphans: Vec<OrphanState>,
    /// The partition's RED series, with `metrics.red.per_partition` (`derive::red`'s to fill
    /// and read, like `positions` is the pipeline's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub red: Option<crate::derive::red::RedPartitionState>,
    /// The newest re-keyed piece counted, per input partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rekeyed: Vec<RekeyedMark>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SloRings {
    name: String,
    /// (bucket, total, bad) of the 10 s, 5 min and 1 h SLI rings.
    fine: Vec<(i64, u64, u64)>,
    coarse: Vec<(i64, u64, u64)>,
    period: Vec<(i64, u64, u64)>,
    pairs: Vec<PairState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PairState {
    operation: String,
    cause: String,
    last_seen: i64,
    fine: Vec<(i64, u64)>,
    coarse: Vec<(i64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingState {
    trace: u128,
    slo: String,
    operation: String,
    span: u64,
    start: i64,
    end: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exception: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<(bool, i64, bool, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrphanState {
    trace: u128,
    span: Option<u64>,
    ts: i64,
    body: String,
}

fn sli(g: &super::window::Grid) -> Vec<(i64, u64, u64)> {
    let bad = g.export(BAD);
    let mut bad = bad.iter().peekable();
    g.export(TOTAL)
        .into_iter()
        .map(|(b, total)| {
            let mut n = 0;
            while let Some((bb, v)) = bad.peek() {
                if *bb > b {
                    break;
                }
                if *bb == b {
                    n = *v;
                }
                bad.next();
            }
            (b, total, n)
        })
        .collect()
}

impl PartitionState {
    /// A state holding nothing yet (the changelog of a deployment without SLOs carries only
    /// the RED series).
    pub fn new(partition: i32) -> Self {
        PartitionState {
            version: VERSION,
            partition,
            positions: Vec::new(),
            slos: Vec::new(),
            pending: Vec::new(),
            orphans: Vec::new(),
            red: None,
            rekeyed: Vec::new(),
        }
    }

    /// The changelog value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A changelog value.
    pub fn from_json(bytes: &[u8]) -> Result<Self, StateError> {
        let s: PartitionState = serde_json::from_slice(bytes)?;
        if s.version != VERSION {
            return Err(StateError::Version { found: s.version });
        }
        Ok(s)
    }

    /// Whether it holds no SLO state (positions aside).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
            && self.orphans.is_empty()
            && self
                .slos
                .iter()
                .all(|s| s.fine.is_empty() && s.coarse.is_empty() && s.period.is_empty())
    }
}

impl SloEngine {
    /// Partition `partition`'s state, for its changelog (without positions).
    pub fn export(&self, partition: i32) -> PartitionState {
        let shared = self.lock();
        let slos = shared
            .slos
            .iter()
            .map(|s| {
                let Some(r) = s.rings.get(&partition) else {
                    return SloRings {
                        name: s.meta.name.to_string(),
                        fine: Vec::new(),
                        coarse: Vec::new(),
                        period: Vec::new(),
                        pairs: Vec::new(),
                    };
                };
                let mut pairs: Vec<PairState> = r
                    .pairs
                    .iter()
                    .map(|((op, cause), cols)| PairState {
                        operation: s.ops.name(*op).to_string(),
                        cause: s.causes.name(*cause).to_string(),
                        last_seen: cols.last_seen,
                        fine: r.attr_fine.export(cols.fine),
                        coarse: r.attr_coarse.export(cols.coarse),
                    })
                    .collect();
                pairs.sort_by(|a, b| (&a.operation, &a.cause).cmp(&(&b.operation, &b.cause)));
                SloRings {
                    name: s.meta.name.to_string(),
                    fine: sli(&r.fine),
                    coarse: sli(&r.coarse),
                    period: sli(&r.period),
                    pairs,
                }
            })
            .collect();
        let pending = self
            .pending
            .get(&partition)
            .map(|p| {
                p.iter()
                    .filter_map(|(trace, ev)| {
                        let series = shared.slos.get(usize::from(ev.slo))?;
                        let (exception, status) = match &ev.fallback {
                            Fallback::None => (None, None),
                            Fallback::Exception(e) => (Some(e.to_string()), None),
                            Fallback::Status(m) => (None, Some(m.to_string())),
                        };
                        Some(PendingState {
                            trace: u128::from_be_bytes(trace.0),
                            slo: series.meta.name.to_string(),
                            operation: series.ops.name(ev.op).to_string(),
                            span: u64::from_be_bytes(ev.span_id.0),
                            start: ev.start,
                            end: ev.end,
                            exception,
                            status,
                            log: ev
                                .log
                                .as_ref()
                                .map(|l| (l.rank.0, l.rank.1, l.rank.2, l.body.to_string())),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut orphans: Vec<OrphanState> = self
            .orphans
            .get(&partition)
            .map(|o| {
                o.iter()
                    .map(|(trace, span, ts, body)| OrphanState {
                        trace: u128::from_be_bytes(trace.0),
                        span: span.map(|s| u64::from_be_bytes(s.0)),
                        ts,
                        body: body.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        orphans.sort_by_key(|o| o.ts);
        PartitionState {
            version: VERSION,
            partition,
            positions: Vec::new(),
            slos,
            pending,
            orphans,
            red: None,
            rekeyed: Vec::new(),
        }
    }

    /// Takes partition `state.partition`'s state as its own, replacing whatever the engine held
    /// for it, and counts the spans of that partition's records again only from the offset its
    /// spans source's position says (`spans_position`; `None`: from wherever the replay starts).
    pub fn restore(&mut self, state: &PartitionState, spans_position: Option<i64>) {
        let partition = state.partition;
        self.revoke(partition);
        let now = self.watermark.unwrap_or(i64::MIN);
        let mut pending = Pending::default();
        let mut orphans = Orphans::new(self.max_orphan_logs);
        {
            let mut shared = self.lock();
            for saved in &state.slos {
                let Some(series) = shared.slos.iter_mut().find(|s| *s.meta.name == saved.name)
                else {
                    continue;
                };
                // Label ids first: the rings borrow the series mutably after.
                let pairs: Vec<((u32, u32), &PairState)> = saved
                    .pairs
                    .iter()
                    .map(|p| {
                        let at = p.last_seen.max(now);
                        let op = series.ops.id(&p.operation, at);
                        let cause = series.causes.id(&p.cause, at);
                        ((op, cause), p)
                    })
                    .collect();
                let r = series.rings_mut(partition);
                for (grid, rows) in [
                    (&mut r.fine, &saved.fine),
                    (&mut r.coarse, &saved.coarse),
                    (&mut r.period, &saved.period),
                ] {
                    for (b, total, bad) in rows {
                        grid.put(*b, TOTAL, *total);
                        grid.put(*b, BAD, *bad);
                    }
                }
                restore_pairs(r, &pairs);
            }
            for p in &state.pending {
                let Some((i, series)) = shared
                    .slos
                    .iter_mut()
                    .enumerate()
                    .find(|(_, s)| *s.meta.name == p.slo)
                else {
                    continue;
                };
                let op = series.ops.id(&p.operation, p.end.max(now));
                let fallback = match (&p.exception, &p.status) {
                    (Some(e), _) => Fallback::Exception(Arc::from(e.as_str())),
                    (None, Some(m)) => Fallback::Status(m.as_str().into()),
                    (None, None) => Fallback::None,
                };
                pending.insert(
                    TraceId(p.trace.to_be_bytes()),
                    PendingEvent {
                        slo: i as u16,
                        op,
                        span_id: SpanId(p.span.to_be_bytes()),
                        start: p.start,
                        end: p.end,
                        fallback,
                        log: p.log.as_ref().map(|(a, t, c, body)| LogCause {
                            rank: (*a, *t, *c),
                            body: body.as_str().into(),
                        }),
                    },
                );
            }
        }
        for o in &state.orphans {
            orphans.insert(
                TraceId(o.trace.to_be_bytes()),
                o.span.filter(|s| *s != 0).map(|s| SpanId(s.to_be_bytes())),
                o.ts,
                &o.body,
            );
        }
        if pending.len() > 0 {
            self.pending.insert(partition, pending);
        }
        if orphans.len() > 0 {
            self.orphans.insert(partition, orphans);
        }
        if let Some(below) = spans_position {
            self.counted_below.insert(partition, below);
        }
    }
}

/// The attribution rings of one SLO's partition from the saved pairs: the all-bad column is the
/// sum of the pairs', as `Rings::attribute` keeps it.
fn restore_pairs(r: &mut Rings, pairs: &[((u32, u32), &PairState)]) {
    for (key, saved) in pairs {
        for (b, n) in &saved.fine {
            add_attr(r, true, *key, *b, *n, saved.last_seen);
        }
        for (b, n) in &saved.coarse {
            add_attr(r, false, *key, *b, *n, saved.last_seen);
        }
    }
}

fn add_attr(r: &mut Rings, fine: bool, key: (u32, u32), bucket: i64, n: u64, last_seen: i64) {
    let (attr_fine, attr_coarse) = (&mut r.attr_fine, &mut r.attr_coarse);
    let cols = r
        .pairs
        .entry(key)
        .or_insert_with(|| super::series::PairCols {
            fine: attr_fine.add_column(),
            coarse: attr_coarse.add_column(),
            last_seen,
        });
    cols.last_seen = cols.last_seen.max(last_seen);
    let (grid, col) = if fine {
        (attr_fine, cols.fine)
    } else {
        (attr_coarse, cols.coarse)
    };
    if grid.put(bucket, col, n) {
        grid.put(bucket, ALL_BAD, n);
    }
}
