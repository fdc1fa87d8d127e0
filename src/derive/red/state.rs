//! A partition's RED series as a changelog value (`metrics.red.per_partition`): what its next
//! owner needs to go on counting as if the partition had never moved. It travels inside the
//! partition's state in `<group_id>.slo-state` (`pipeline::slo_state`), with the same positions,
//! so the counts and the offsets they cover are written and committed together.
//!
//! Series travel by their label values; the histogram's bounds and the dimensions' label names
//! travel with them, and a state counted with other ones is not restored (its counts would land
//! in the wrong buckets or under the wrong labels): the partition's series start from zero, as
//! they did before the changelog, and the reason is logged.

use super::{Cell, RedMetrics, SeriesKey, Table};
use crate::model::{SpanKind, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One partition's RED series (module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedPartitionState {
    bounds: Vec<f64>,
    dimensions: Vec<String>,
    series: Vec<SeriesState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overflow: Option<CellState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeriesState {
    service: String,
    name: String,
    /// OTLP enum numbers.
    kind: u8,
    status: u8,
    /// The dimension values as `labels::encode_dimension` wrote them.
    dims: String,
    #[serde(flatten)]
    cell: CellState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CellState {
    calls: u64,
    sum: f64,
    /// Non-zero (bucket index, count) pairs, `+Inf` being the last index.
    buckets: Vec<(u16, u64)>,
}

impl CellState {
    fn of(cell: &Cell) -> Self {
        CellState {
            calls: cell.calls,
            sum: cell.sum,
            buckets: cell
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u16, *n))
                .collect(),
        }
    }

    fn cell(&self, bounds: usize, now: Instant) -> Cell {
        let mut cell = Cell::new(bounds, now);
        cell.calls = self.calls;
        cell.sum = self.sum;
        for (i, n) in &self.buckets {
            if let Some(b) = cell.buckets.get_mut(*i as usize) {
                *b = *n;
            }
        }
        cell
    }
}

/// Why a partition's RED state was not restored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RedStateError {
    /// Counted with other histogram bounds (`metrics.red.buckets` changed).
    #[error("the RED state was counted with other histogram buckets ({found} bounds, {configured} configured); the partition's series start from zero")]
    Buckets {
        /// Bounds in the state.
        found: usize,
        /// Bounds configured now.
        configured: usize,
    },
    /// Counted with other dimensions (`metrics.red.dimensions` changed).
    #[error("the RED state was counted with dimensions {found:?}, {configured:?} configured; the partition's series start from zero")]
    Dimensions {
        /// The state's.
        found: Vec<String>,
        /// The configured ones.
        configured: Vec<String>,
    },
}

impl RedMetrics {
    /// The series of join partition `partition`, for the changelog.
    pub fn export(&self, partition: i32) -> RedPartitionState {
        let table = self.lock();
        RedPartitionState {
            bounds: table.bounds.to_vec(),
            dimensions: self.exposition.dim_labels().to_vec(),
            series: table
                .series
                .iter()
                .filter(|(k, _)| k.partition == partition)
                .map(|(k, c)| SeriesState {
                    service: k.service.to_string(),
                    name: k.name.to_string(),
                    kind: k.kind as u8,
                    status: k.status as u8,
                    dims: k.dims.to_string(),
                    cell: CellState::of(c),
                })
                .collect(),
            overflow: table.overflow.get(&partition).map(CellState::of),
        }
    }

    /// Takes over join partition `partition`: its series become `state`'s (none if `None`), and
    /// the spans of its records below `spans_position` are not counted again
    /// ([`observe_record`](Self::observe_record)). An incompatible state is not restored.
    pub fn restore(
        &self,
        partition: i32,
        state: Option<&RedPartitionState>,
        spans_position: Option<i64>,
    ) -> Result<(), RedStateError> {
        let mut table = self.lock();
        forget(&mut table, partition);
        let Some(state) = state else {
            return Ok(());
        };
        if state.bounds.as_slice() != &*table.bounds {
            return Err(RedStateError::Buckets {
                found: state.bounds.len(),
                configured: table.bounds.len(),
            });
        }
        if state.dimensions.as_slice() != self.exposition.dim_labels() {
            return Err(RedStateError::Dimensions {
                found: state.dimensions.clone(),
                configured: self.exposition.dim_labels().to_vec(),
            });
        }
        let now = Instant::now();
        let bounds = table.bounds.len();
        // Restored series are kept even beyond `max_series`: dropping them would lose counts
        // the offsets say were counted. The cap applies to new series.
        for s in &state.series {
            table.series.insert(
                SeriesKey {
                    partition,
                    service: s.service.as_str().into(),
                    name: s.name.as_str().into(),
                    kind: SpanKind::from_otlp(s.kind.into()),
                    status: StatusCode::from_otlp(s.status.into()),
                    dims: s.dims.as_str().into(),
                },
                s.cell.cell(bounds, now),
            );
        }
        if let Some(o) = &state.overflow {
            table.overflow.insert(partition, o.cell(bounds, now));
        }
        if let Some(position) = spans_position {
            table.counted_below.insert(partition, position);
        }
        if table.next_expiry.is_none() && !self.idle_timeout.is_zero() {
            table.next_expiry = now.checked_add(self.idle_timeout);
        }
        Ok(())
    }

    /// Gives up join partition `partition`: its series leave with it (its next owner restores
    /// them).
    pub fn revoke(&self, partition: i32) {
        forget(&mut self.lock(), partition);
    }

    /// Spans of replayed records not counted because a restored state held them, since start.
    pub fn restored_replays(&self) -> u64 {
        self.lock().restored_replays
    }
}

fn forget(table: &mut Table, partition: i32) {
    table.remove_partition(partition);
    // The filter remembers spans of the partition whose counts leave now: replayed here again
    // (the partition reassigned to this process), they must count again.
    table.dedup.clear();
}
