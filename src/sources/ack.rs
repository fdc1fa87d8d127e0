//! Acknowledgement tokens: which offset of each partition may be committed, without counting by
//! hand.
//!
//! Every consumed record gets one [`Ack`]. Whatever still needs the record keeps a clone of its
//! token: each log decoded from it (inside the join while it waits, then once per sink until that
//! sink has it), each trace of the join holding spans from it, its dead letter until Kafka has it.
//! When the last clone is dropped the record is done, and the token tells the worker's
//! [`AckLedger`] so, through a channel (tokens travel into delivery futures and may be dropped
//! anywhere). The committable offset of a partition is the lowest offset still held, else one
//! past the highest offset seen. After a crash the consumer resumes there and replays:
//! duplicates, never loss.
//!
//! Why tokens and not counts: a count of holds per offset must be taken and released in matching
//! places across the pipeline, the join, every sink and the rebalance callback; one missed release
//! stalls a partition's commits forever and no type prevents it. A token is released by being
//! dropped, so the only way to hold an offset is to keep the token, and the only way to forget to
//! release it is to leak it.
//!
//! Each assignment of a partition is an *epoch*: tokens of an earlier ownership of the partition
//! release nothing in a later one, so a revoke and re-assign cannot let a stale release free an
//! offset the new ownership still needs.
//!
//! The ledger is owned by one worker and takes no lock; what the rebalance callback needs (the
//! committable offsets of partitions being revoked, from librdkafka's thread) it publishes on
//! every drain into a [`CommittableOffsets`] snapshot. A snapshot is never ahead of the truth:
//! committable offsets only grow.
//!
//! Beside the committable offset, each partition has a *seen* mark: one past the highest offset
//! consumed. A commit carries it (as commit metadata, [`seen_metadata`]) so that the next owner
//! of the partition, which replays from the committed offset, knows which of the replayed records
//! the derived signals (RED, SLO) have counted already. Spans are held for `span_retention`, so
//! the committed offset of a spans partition lags its seen mark by about that long.

use super::PartitionKey;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// A hold on one consumed record: the record's offset cannot be committed while any clone of its
/// token is alive. Cheap to clone (one reference count).
#[derive(Clone, Default)]
pub struct Ack(Option<Arc<Hold>>);

struct Hold {
    key: PartitionKey,
    offset: i64,
    epoch: u32,
    releases: Option<Sender<Release>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Release {
    key: PartitionKey,
    offset: i64,
    epoch: u32,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(tx) = self.releases.take() {
            // The ledger is gone only after the worker stopped: nothing to commit any more.
            let _ = tx.send(Release {
                key: self.key,
                offset: self.offset,
                epoch: self.epoch,
            });
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(h) => write!(f, "Ack({}/{}@{})", h.key.0, h.key.1, h.offset),
            None => f.write_str("Ack(detached)"),
        }
    }
}

impl Ack {
    /// A token that holds nothing (tests, records that need no commit).
    pub fn detached() -> Self {
        Ack(None)
    }

    /// Whether both are tokens of the same record.
    pub fn same_record(&self, other: &Ack) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The partition number of the record it holds (`None` for a detached token).
    pub fn partition(&self) -> Option<i32> {
        self.0.as_ref().map(|h| h.key.1)
    }

    /// Gives up this clone, releasing the record at once if it was the last one (no channel
    /// round trip: the owner of the ledger calls this on the hot path).
    pub fn complete(self, ledger: &mut AckLedger) {
        let Some(arc) = self.0 else { return };
        if let Ok(mut hold) = Arc::try_unwrap(arc) {
            hold.releases = None;
            ledger.apply(Release {
                key: hold.key,
                offset: hold.offset,
                epoch: hold.epoch,
            });
        }
    }
}

/// Committable offsets per partition, as last published by the worker's ledger, for the
/// rebalance callback (which runs on librdkafka's side and cannot reach the ledger).
#[derive(Clone, Default)]
pub struct CommittableOffsets(Arc<Mutex<HashMap<PartitionKey, (i64, i64)>>>);

impl CommittableOffsets {
    /// The last published committable offset of a partition, and its seen mark.
    pub fn get(&self, key: PartitionKey) -> Option<(i64, i64)> {
        self.0.lock().ok()?.get(&key).copied()
    }
}

const SEEN_PREFIX: &str = "tracejoin.seen=";

/// The commit metadata that says every offset below `seen` was consumed (and its spans counted).
pub fn seen_metadata(seen: i64) -> String {
    format!("{SEEN_PREFIX}{seen}")
}

/// The seen mark a commit's metadata carries, if it was written by [`seen_metadata`].
pub fn parse_seen_metadata(metadata: &str) -> Option<i64> {
    metadata.strip_prefix(SEEN_PREFIX)?.parse().ok()
}

#[derive(Debug)]
struct PartitionLedger {
    epoch: u32,
    /// Offset of `held[0]`.
    base: i64,
    /// Per offset from `base`: still held? Offsets arrive in order, so this is a window that
    /// grows at the back and shrinks at the front as the oldest records are released.
    held: VecDeque<bool>,
    /// One past the highest offset seen.
    next: i64,
    committed: i64,
    /// The seen mark last committed.
    marked: i64,
    holding: usize,
    gate: Gate,
}

/// How far a partition's commits may go whatever the ledger says: the partitions whose state
/// is changelogged commit only what a durable snapshot covers (`AckLedger::gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    Closed,
    Upto(i64),
}

impl PartitionLedger {
    fn new(epoch: u32) -> Self {
        PartitionLedger {
            epoch,
            base: 0,
            held: VecDeque::new(),
            next: 0,
            committed: 0,
            marked: 0,
            holding: 0,
            gate: Gate::Open,
        }
    }

    fn hold(&mut self, offset: i64) {
        if self.held.is_empty() {
            self.base = offset;
        }
        if offset < self.base {
            // Re-delivered below the window (a seek): widen it at the front.
            for _ in offset..self.base {
                self.held.push_front(false);
            }
            self.base = offset;
        }
        let idx = (offset - self.base) as usize;
        if idx >= self.held.len() {
            self.held.resize(idx + 1, false);
        }
        if !std::mem::replace(&mut self.held[idx], true) {
            self.holding += 1;
        }
        self.next = self.next.max(offset + 1);
    }

    fn release(&mut self, offset: i64) {
        let Some(idx) = offset.checked_sub(self.base).filter(|i| *i >= 0) else {
            return;
        };
        if let Some(h) = self.held.get_mut(idx as usize) {
            if std::mem::replace(h, false) {
                self.holding -= 1;
            }
        }
        while self.held.front() == Some(&false) {
            self.held.pop_front();
            self.base += 1;
        }
    }

    /// Every record below it is done (`None` until a record was seen), whatever the gate.
    fn done_below(&self) -> Option<i64> {
        if self.next == 0 {
            return None;
        }
        Some(if self.holding > 0 {
            self.base
        } else {
            self.next
        })
    }

    /// `None` until a record was seen. Offset 0 is a real answer while record 0 is held: its
    /// commit carries the seen mark, which is what a spans partition held from its first record
    /// needs most.
    fn committable(&self) -> Option<i64> {
        let c = self.done_below()?;
        match self.gate {
            Gate::Open => Some(c),
            Gate::Closed => None,
            Gate::Upto(limit) => Some(c.min(limit)),
        }
    }
}

/// A worker's view of its partitions' offsets (see the module docs). Not shared: one per worker.
pub struct AckLedger {
    partitions: HashMap<PartitionKey, PartitionLedger>,
    releases_tx: Sender<Release>,
    releases: Receiver<Release>,
    next_epoch: u32,
    published: CommittableOffsets,
}

impl Default for AckLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl AckLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        let (releases_tx, releases) = channel();
        AckLedger {
            partitions: HashMap::new(),
            releases_tx,
            releases,
            next_epoch: 1,
            published: CommittableOffsets::default(),
        }
    }

    /// The snapshot this ledger publishes to (for the rebalance callback).
    pub fn published(&self) -> CommittableOffsets {
        self.published.clone()
    }

    fn partition(&mut self, key: PartitionKey) -> &mut PartitionLedger {
        let next_epoch = &mut self.next_epoch;
        self.partitions.entry(key).or_insert_with(|| {
            *next_epoch += 1;
            PartitionLedger::new(*next_epoch)
        })
    }

    /// The partition is ours. Keeps what was recorded if a record of it arrived before the
    /// assignment was reported.
    pub fn assign(&mut self, key: PartitionKey) {
        self.partition(key);
    }

    /// The partition is no longer ours: its tokens still alive release nothing from now on.
    pub fn revoke(&mut self, key: PartitionKey) {
        self.partitions.remove(&key);
        if let Ok(mut p) = self.published.0.lock() {
            p.remove(&key);
        }
    }

    /// From now on the partition commits nothing beyond what [`allow`](Self::allow) allows
    /// (a state covering its records must be durable first).
    pub fn gate(&mut self, key: PartitionKey) {
        let p = self.partition(key);
        if p.gate == Gate::Open {
            p.gate = Gate::Closed;
        }
    }

    /// A gated partition may commit up to `offset` (what a durable state covers).
    pub fn allow(&mut self, key: PartitionKey, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&key) {
            p.gate = match p.gate {
                Gate::Open => Gate::Open,
                Gate::Closed => Gate::Upto(offset),
                Gate::Upto(o) => Gate::Upto(o.max(offset)),
            };
        }
    }

    /// The offset below which every record of a partition is done (its committable offset
    /// were it not gated), if a record was seen since it was assigned.
    pub fn done_below(&self, key: PartitionKey) -> Option<i64> {
        self.partitions.get(&key)?.done_below()
    }

    /// One past the highest offset consumed of a partition since it was assigned, if any.
    pub fn seen(&self, key: PartitionKey) -> Option<i64> {
        self.partitions.get(&key).map(|p| p.next).filter(|n| *n > 0)
    }

    /// Partitions owned.
    pub fn owned(&self) -> impl Iterator<Item = PartitionKey> + '_ {
        self.partitions.keys().copied()
    }

    /// A record at `offset` was consumed: its token.
    pub fn take(&mut self, key: PartitionKey, offset: i64) -> Ack {
        let tx = self.releases_tx.clone();
        let p = self.partition(key);
        p.hold(offset);
        Ack(Some(Arc::new(Hold {
            key,
            offset,
            epoch: p.epoch,
            releases: Some(tx),
        })))
    }

    fn apply(&mut self, r: Release) {
        if let Some(p) = self.partitions.get_mut(&r.key) {
            if p.epoch == r.epoch {
                p.release(r.offset);
            }
        }
    }

    /// Takes in the releases of tokens dropped since the last call and publishes the committable
    /// offsets.
    pub fn drain(&mut self) {
        while let Ok(r) = self.releases.try_recv() {
            self.apply(r);
        }
        if let Ok(mut published) = self.published.0.lock() {
            for (key, p) in &self.partitions {
                if let Some(c) = p.committable() {
                    published.insert(*key, (c, p.next));
                }
            }
        }
    }

    /// The offset that may be committed for a partition (as of the last [`drain`](Self::drain)).
    pub fn committable(&self, key: PartitionKey) -> Option<i64> {
        self.partitions.get(&key)?.committable()
    }

    /// Partitions whose committable offset or seen mark moved past what was last committed,
    /// with both: (partition, committable offset, seen mark).
    pub fn due(&self) -> Vec<(PartitionKey, i64, i64)> {
        self.partitions
            .iter()
            .filter_map(|(k, p)| {
                let c = p.committable()?;
                (c > p.committed || p.next > p.marked).then_some((*k, c, p.next))
            })
            .collect()
    }

    /// Records a successful commit of `offset` with the seen mark `seen`.
    pub fn committed(&mut self, key: PartitionKey, offset: i64, seen: i64) {
        if let Some(p) = self.partitions.get_mut(&key) {
            p.committed = p.committed.max(offset);
            p.marked = p.marked.max(seen);
        }
    }

    /// Records held, over all partitions.
    pub fn holding(&self) -> usize {
        self.partitions.values().map(|p| p.holding).sum()
    }
}

#[cfg(test)]
mod tests;
