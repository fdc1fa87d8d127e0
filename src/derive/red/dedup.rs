//! The recent-span filter: a span (trace id + span id) counted among the last `window` counted
//! spans is a redelivery (at-least-once input) and is not counted again.
//!
//! Two generations of 64-bit fingerprints: a span goes into the current one; when it holds
//! `window` spans it becomes the previous one and the old previous is forgotten whole. So the
//! filter remembers at least the last `window` spans and at most twice as many. Why not the
//! exact window (a ring for the order and a set of ids): forgetting the oldest id was a hash
//! removal per span, a cache miss in a table of 2 × `window` 24-byte ids, and the filter was
//! 12 % of the whole process's CPU on a span backlog (`perf` on `scripts/span-compare.sh`).
//! Here a span costs one insertion and, when new, one lookup, in tables of 8-byte keys that are
//! cleared, never shrunk or grown.
//!
//! A fingerprint is the id's seeded 64-bit hash: two spans of the last 2 × `window` sharing one
//! would count once. With the default window that is about one span in 10^14, and the seed
//! differs per process, so no input can aim at it.

use crate::model::{SpanId, TraceId};
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The fingerprint is a hash already: the tables take it as is.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Generation = HashSet<u64, BuildHasherDefault<Passthrough>>;

pub(crate) struct Dedup {
    window: usize,
    current: Generation,
    previous: Generation,
    /// Seeded per process, as the join's LRU is.
    seed: lru::DefaultHasher,
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup")
            .field("window", &self.window)
            .field("remembered", &self.len())
            .finish()
    }
}

impl Dedup {
    pub(crate) fn new(window: usize) -> Self {
        let table = || Generation::with_capacity_and_hasher(window, Default::default());
        Dedup {
            window,
            current: table(),
            previous: table(),
            seed: Default::default(),
        }
    }

    /// Forgets every span.
    pub(crate) fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// Remembers the span; `false` if it was already remembered (a duplicate). With a window of
    /// 0 every span is new.
    pub(crate) fn first_time(&mut self, trace: TraceId, span: SpanId) -> bool {
        if self.window == 0 {
            return true;
        }
        let fingerprint = self.seed.hash_one((trace, span));
        if self.previous.contains(&fingerprint) || !self.current.insert(fingerprint) {
            return false;
        }
        if self.current.len() >= self.window {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        true
    }

    /// How many spans are remembered (between `window` and twice as many, once that many came).
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}
