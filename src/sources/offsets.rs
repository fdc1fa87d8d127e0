//! Which offset of each partition may be committed.
//!
//! The committed offset of a partition is the lowest offset a record there is still needed for:
//! a log not yet acknowledged by every sink, a span record whose spans the join still holds, a
//! dead letter not yet acknowledged. Each such need is a *hold* on the record's offset; the
//! committable offset is the lowest held offset, or one past the highest offset seen when
//! nothing is held. After a crash the consumer resumes there and replays: duplicates, never
//! loss.

use std::collections::{BTreeMap, HashMap};

/// Key: `(topic index, partition)`.
pub type PartitionKey = (u16, i32);

#[derive(Debug, Default)]
struct PartitionOffsets {
    held: BTreeMap<i64, u32>,
    next: i64,
    committed: i64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, PartitionOffsets>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record at `offset` was consumed.
    pub fn seen(&mut self, key: PartitionKey, offset: i64) {
        let p = self.partitions.entry(key).or_default();
        p.next = p.next.max(offset + 1);
    }

    /// `n` more holds on `offset`.
    pub fn hold(&mut self, key: PartitionKey, offset: i64, n: u32) {
        if n == 0 {
            return;
        }
        *self
            .partitions
            .entry(key)
            .or_default()
            .held
            .entry(offset)
            .or_default() += n;
    }

    /// Releases one hold on `offset`. A release for a partition no longer owned is ignored.
    pub fn release(&mut self, key: PartitionKey, offset: i64) {
        let Some(p) = self.partitions.get_mut(&key) else {
            return;
        };
        if let Some(n) = p.held.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                p.held.remove(&offset);
            }
        }
    }

    /// The offset that may be committed for a partition.
    pub fn committable(&self, key: PartitionKey) -> Option<i64> {
        let p = self.partitions.get(&key)?;
        let offset = p.held.keys().next().copied().unwrap_or(p.next);
        (offset > 0).then_some(offset)
    }

    /// Partitions whose committable offset moved past what was last committed, with it.
    pub fn due(&self) -> Vec<(PartitionKey, i64)> {
        self.partitions
            .iter()
            .filter_map(|(k, p)| {
                let c = self.committable(*k)?;
                (c > p.committed).then_some((*k, c))
            })
            .collect()
    }

    /// Records a successful commit.
    pub fn committed(&mut self, key: PartitionKey, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&key) {
            p.committed = p.committed.max(offset);
        }
    }

    /// Forgets a partition (revoked): its holds no longer matter to this worker.
    pub fn forget(&mut self, key: PartitionKey) {
        self.partitions.remove(&key);
    }

    /// Total holds outstanding.
    pub fn holds(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.held.values().map(|n| *n as usize).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PartitionKey = (1, 0);

    #[test]
    fn lowest_hold_wins_then_next_offset() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.committable(P), None);
        for o in 0..5 {
            t.seen(P, o);
        }
        t.hold(P, 1, 2);
        t.hold(P, 3, 1);
        assert_eq!(t.committable(P), Some(1));
        t.release(P, 1);
        assert_eq!(t.committable(P), Some(1), "one hold of two left");
        t.release(P, 1);
        assert_eq!(t.committable(P), Some(3));
        t.release(P, 3);
        assert_eq!(t.committable(P), Some(5));
        assert_eq!(t.due(), vec![(P, 5)]);
        t.committed(P, 5);
        assert!(t.due().is_empty());
        assert_eq!(t.holds(), 0);
    }

    #[test]
    fn releases_for_forgotten_partitions_are_ignored() {
        let mut t = OffsetTracker::new();
        t.seen(P, 0);
        t.hold(P, 0, 1);
        t.forget(P);
        t.release(P, 0);
        assert_eq!(t.committable(P), None);
    }
}
