//! The recent-span filter: the last `window` counted spans (trace id + span id), in a ring for
//! their order and a set for lookup. A span already in it is a redelivery (at-least-once input)
//! and is not counted again. Memory is fixed by the window: both are sized once and never grow,
//! so the hot path does not allocate.

use crate::model::{SpanId, TraceId};
use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub(crate) struct Dedup {
    window: usize,
    order: VecDeque<(TraceId, SpanId)>,
    /// Hashed as the join's LRU is (foldhash, seeded per process): SipHash of the 24-byte id
    /// was about a tenth of decode + RED.
    seen: HashSet<(TraceId, SpanId), lru::DefaultHasher>,
}

impl Dedup {
    pub(crate) fn new(window: usize) -> Self {
        Dedup {
            window,
            order: VecDeque::with_capacity(window),
            // Twice the window: removals leave tombstones, and a table at most half full is
            // cleaned in place when they run out, never reallocated.
            seen: HashSet::with_capacity_and_hasher(2 * window + 2, Default::default()),
        }
    }

    /// Forgets every span.
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.seen.clear();
    }

    /// Remembers the span; `false` if it was already remembered (a duplicate). With a window of
    /// 0 every span is new.
    pub(crate) fn first_time(&mut self, trace: TraceId, span: SpanId) -> bool {
        if self.window == 0 {
            return true;
        }
        let id = (trace, span);
        if !self.seen.insert(id) {
            return false;
        }
        if self.order.len() == self.window {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }

    /// How many spans are remembered.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}
