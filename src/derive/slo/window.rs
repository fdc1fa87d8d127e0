//! Time-bucketed counters in event time, whose memory is fixed by their span and resolution,
//! never by traffic.
//!
//! A [`Grid`] is a ring of `slots` buckets of `res` nanoseconds each. Every slot carries the
//! index of the bucket it holds (its *tag*, `floor(t / res)`), and any number of counter
//! *columns* share those tags (the SLI's total and bad counts; one column per (operation,
//! cause) pair for attribution). Recording an event at time `t`:
//! - its slot holds bucket `b`: add;
//! - its slot holds an older bucket: every column of that slot is zeroed, the slot takes `b`;
//! - its slot holds a newer bucket: the event is older than the ring reaches and is dropped
//!   (`record` says so; the caller counts it).
//!
//! A window of `n` buckets *as of* time `w` is the buckets `(b(w) - n, b(w)]`: it covers between
//! `(n - 1)·res` and `n·res` of event time, the bucket holding `w` partly. A slot whose tag is not
//! the bucket asked for contributes nothing, so reading never needs the ring to be "advanced":
//! events may arrive in any order, and a window is exact as long as no event newer than its
//! oldest bucket + `slots` has been recorded. The ring is sized longer than the longest window
//! it serves; the difference is how far the newest event may run ahead of the watermark before
//! the window's oldest buckets are overwritten (the slack, below).

use std::time::Duration;

/// The SRE workbook's alerting windows (and Sloth's): `5m 30m 1h 2h 6h 1d 3d`. The SLO period
/// (`30d` by default) is handled apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// 5 minutes.
    M5,
    /// 30 minutes.
    M30,
    /// 1 hour.
    H1,
    /// 2 hours.
    H2,
    /// 6 hours.
    H6,
    /// 1 day.
    D1,
    /// 3 days.
    D3,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 7] = [
        Window::M5,
        Window::M30,
        Window::H1,
        Window::H2,
        Window::H6,
        Window::D1,
        Window::D3,
    ];

    /// As Sloth writes it in `sloth_window` and metric names (`ratio_rate5m`).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::M5 => "5m",
            Window::M30 => "30m",
            Window::H1 => "1h",
            Window::H2 => "2h",
            Window::H6 => "6h",
            Window::D1 => "1d",
            Window::D3 => "3d",
        }
    }

    /// Its length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Window::M5 => 300,
            Window::M30 => 1800,
            Window::H1 => 3600,
            Window::H2 => 7200,
            Window::H6 => 21_600,
            Window::D1 => 86_400,
            Window::D3 => 259_200,
        })
    }

    /// Whether the fine grids serve it (windows up to an hour).
    pub(crate) fn is_short(self) -> bool {
        self <= Window::H1
    }
}

/// Resolution and length of a ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) res: Duration,
    pub(crate) slots: usize,
}

/// SLI counts for the windows up to 1h: 10 s buckets, 80 min of ring (1h + 20 min slack). A 5m
/// window is 30 buckets, so it is never short by more than 10 s (3 %).
pub(crate) const SLI_FINE: Shape = Shape {
    res: Duration::from_secs(10),
    slots: 480,
};
/// SLI counts for 2h … 3d: 5 min buckets, 75 h of ring (3d + 3h slack). A 2h window is 24
/// buckets (≤ 4 % short), 6h 72 (≤ 1.4 %).
pub(crate) const SLI_COARSE: Shape = Shape {
    res: Duration::from_secs(300),
    slots: 900,
};
/// Slack of the period ring (1 h buckets, `period` + 12 h).
pub(crate) const PERIOD_SLACK_HOURS: usize = 12;
/// Attribution for windows up to 1h: 30 s buckets, 80 min of ring. Coarser than the SLI's (a
/// 5m window is 10 buckets, at most 30 s short), as this ring has a column per (operation,
/// cause) pair.
pub(crate) const ATTR_FINE: Shape = Shape {
    res: Duration::from_secs(30),
    slots: 160,
};
/// Attribution for 2h … 3d: 1 h buckets, 78 h of ring.
pub(crate) const ATTR_COARSE: Shape = Shape {
    res: Duration::from_secs(3600),
    slots: 78,
};

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A ring of time buckets with columns of counts sharing the buckets' tags (module docs).
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    res: i64,
    /// The bucket each slot holds; `i64::MIN` for none yet.
    tags: Box<[i64]>,
    /// Counter columns, a slab: `None` is a free column id.
    cols: Vec<Option<Box<[u64]>>>,
    free: Vec<usize>,
}

impl Grid {
    pub(crate) fn new(shape: Shape) -> Self {
        assert!(shape.slots > 0 && !shape.res.is_zero());
        Grid {
            res: nanos(shape.res),
            tags: vec![i64::MIN; shape.slots].into_boxed_slice(),
            cols: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Bytes held, for the memory figures.
    pub(crate) fn bytes(&self) -> usize {
        self.tags.len() * 8
            + self
                .cols
                .iter()
                .map(|c| c.as_ref().map_or(0, |c| c.len() * 8))
                .sum::<usize>()
            + self.cols.capacity() * std::mem::size_of::<Option<Box<[u64]>>>()
    }

    /// A new column of zeros; its id.
    pub(crate) fn add_column(&mut self) -> usize {
        let col = Some(vec![0u64; self.tags.len()].into_boxed_slice());
        match self.free.pop() {
            Some(id) => {
                self.cols[id] = col;
                id
            }
            None => {
                self.cols.push(col);
                self.cols.len() - 1
            }
        }
    }

    /// Frees a column; its id may be handed out again.
    pub(crate) fn remove_column(&mut self, id: usize) {
        if let Some(c) = self.cols.get_mut(id) {
            if c.take().is_some() {
                self.free.push(id);
            }
        }
    }

    /// The bucket holding time `t`.
    pub(crate) fn bucket(&self, t: i64) -> i64 {
        t.div_euclid(self.res)
    }

    fn slot_of(&self, b: i64) -> usize {
        b.rem_euclid(self.tags.len() as i64) as usize
    }

    /// The slot for an event at `t`, claimed for its bucket (zeroing what an older bucket left
    /// there); `None` if the slot already holds a newer bucket (the event is too old).
    pub(crate) fn claim(&mut self, t: i64) -> Option<usize> {
        let b = self.bucket(t);
        let s = self.slot_of(b);
        let tag = self.tags[s];
        if tag == b {
            return Some(s);
        }
        if tag > b {
            return None;
        }
        self.tags[s] = b;
        for c in self.cols.iter_mut().flatten() {
            c[s] = 0;
        }
        Some(s)
    }

    /// Adds `n` to column `col` at a slot from [`claim`](Self::claim).
    pub(crate) fn add(&mut self, slot: usize, col: usize, n: u64) {
        if let Some(Some(c)) = self.cols.get_mut(col) {
            c[slot] = c[slot].saturating_add(n);
        }
    }

    /// Claims and adds in one step; `false` if the event was too old.
    #[cfg(test)]
    pub(crate) fn record(&mut self, t: i64, col: usize, n: u64) -> bool {
        match self.claim(t) {
            Some(s) => {
                self.add(s, col, n);
                true
            }
            None => false,
        }
    }

    /// Number of buckets that make a window of length `d` (rounded up).
    pub(crate) fn buckets_for(&self, d: Duration) -> i64 {
        let d = nanos(d);
        (d + self.res - 1) / self.res
    }

    /// The slots of the `n` buckets ending with the one holding `w` that hold what they should.
    pub(crate) fn window_slots(&self, w: i64, n: i64) -> impl Iterator<Item = usize> + '_ {
        let end = self.bucket(w);
        (end - n + 1..=end).filter_map(move |b| {
            let s = self.slot_of(b);
            (self.tags[s] == b).then_some(s)
        })
    }

    /// Column `col`'s count over the `n` buckets ending with the one holding `w`.
    pub(crate) fn sum(&self, col: usize, w: i64, n: i64) -> u64 {
        let Some(Some(c)) = self.cols.get(col) else {
            return 0;
        };
        self.window_slots(w, n).map(|s| c[s]).sum()
    }

    /// Column `col`'s value at `slot`.
    pub(crate) fn at(&self, col: usize, slot: usize) -> u64 {
        match self.cols.get(col) {
            Some(Some(c)) => c[slot],
            _ => 0,
        }
    }

    /// Column `col`'s non-zero counts, by bucket: what a changelog needs to rebuild it.
    pub(crate) fn export(&self, col: usize) -> Vec<(i64, u64)> {
        let Some(Some(c)) = self.cols.get(col) else {
            return Vec::new();
        };
        let mut out: Vec<(i64, u64)> = self
            .tags
            .iter()
            .zip(c.iter())
            .filter(|(tag, n)| **tag != i64::MIN && **n > 0)
            .map(|(tag, n)| (*tag, *n))
            .collect();
        out.sort_unstable();
        out
    }

    /// Adds `n` to column `col` in bucket `bucket` (an index from [`export`](Self::export));
    /// `false` if the ring has moved past that bucket.
    pub(crate) fn put(&mut self, bucket: i64, col: usize, n: u64) -> bool {
        match self.claim(bucket.saturating_mul(self.res)) {
            Some(s) => {
                self.add(s, col, n);
                true
            }
            None => false,
        }
    }

    /// Whether column `col` holds nothing in any bucket newer than `after` (a bucket index).
    pub(crate) fn column_empty_since(&self, col: usize, after: i64) -> bool {
        let Some(Some(c)) = self.cols.get(col) else {
            return true;
        };
        self.tags
            .iter()
            .zip(c.iter())
            .all(|(tag, n)| *tag <= after || *n == 0)
    }
}
