//! One SLO's counters: the SLI rings (total and bad events by span end time), the attribution
//! rings (finalised bad events by operation and cause), the raw event counters, and the capped
//! operation and cause names. Shared with the exposition behind the engine's mutex.
//!
//! Memory per SLO is fixed by the ring shapes (see `window.rs`), plus one attribution column
//! per (operation, cause) pair seen in the last 3 days, at most
//! `(max_operations + 1) × (max_causes + 3)` pairs.

use super::labels::{LabelTable, CAUSE_NONE, CAUSE_RESERVED, OP_RESERVED};
use super::window::Shape;
use super::window::{
    Grid, Window, ATTR_COARSE, ATTR_FINE, PERIOD_SLACK_HOURS, SLI_COARSE, SLI_FINE,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const TOTAL: usize = 0;
pub(crate) const BAD: usize = 1;
/// The attribution rings' column of all finalised bad events.
pub(crate) const ALL_BAD: usize = 0;

/// What names an SLO in the exported series.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) name: Arc<str>,
    pub(crate) service: Arc<str>,
    pub(crate) sloth_id: Arc<str>,
    pub(crate) objective: f64,
    pub(crate) period: Duration,
    /// The period as Prometheus writes a duration (`30d`, `4w`).
    pub(crate) period_str: String,
    pub(crate) labels: Vec<(String, String)>,
    /// Fewer events in a window than this: no error ratio (`SloSpec::min_events`).
    pub(crate) min_events: u64,
}

impl Meta {
    /// `1 - objective`.
    pub(crate) fn budget(&self) -> f64 {
        1.0 - self.objective
    }

    /// A window's error ratio, 0 below `min_events` events (the guard against one bad event
    /// in a near-empty window reading as 100 % errors).
    pub(crate) fn error_ratio(&self, c: Counts) -> f64 {
        if c.total < self.min_events {
            0.0
        } else {
            c.ratio()
        }
    }
}

/// A duration as Prometheus' `model.Duration.String` writes it (Sloth names its period window
/// that way): years and weeks only when exact, then days, hours, minutes, seconds.
pub(crate) fn prom_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, mult, exact) in [
        ("y", 365 * 86_400_000u64, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PairCols {
    pub(crate) fine: usize,
    pub(crate) coarse: usize,
    pub(crate) last_seen: i64,
}

/// Event counts of a window: total and bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) bad: u64,
}

impl Counts {
    /// bad / total; 0 when there were no events (no events, no errors).
    pub(crate) fn ratio(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad as f64 / self.total as f64
        }
    }
}

/// The attribution of a window: all finalised bad events, and per (operation, cause) pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attribution {
    pub(crate) bad: u64,
    pub(crate) pairs: Vec<((u32, u32), u64)>,
}

/// One partition's rings: what moves with the partition (and is changelogged for it).
#[derive(Debug)]
pub(crate) struct Rings {
    pub(crate) fine: Grid,
    pub(crate) coarse: Grid,
    pub(crate) period: Grid,
    pub(crate) attr_fine: Grid,
    pub(crate) attr_coarse: Grid,
    pub(crate) pairs: HashMap<(u32, u32), PairCols>,
}

impl Rings {
    pub(crate) fn new(period: Duration) -> Self {
        let period_hours = (period.as_secs() / 3600) as usize;
        let mut attr_fine = Grid::new(ATTR_FINE);
        let mut attr_coarse = Grid::new(ATTR_COARSE);
        attr_fine.add_column();
        attr_coarse.add_column();
        Rings {
            fine: sli_grid(SLI_FINE),
            coarse: sli_grid(SLI_COARSE),
            period: sli_grid(Shape {
                res: Duration::from_secs(3600),
                slots: period_hours + PERIOD_SLACK_HOURS,
            }),
            attr_fine,
            attr_coarse,
            pairs: HashMap::new(),
        }
    }

    fn bytes(&self) -> usize {
        self.fine.bytes()
            + self.coarse.bytes()
            + self.period.bytes()
            + self.attr_fine.bytes()
            + self.attr_coarse.bytes()
            + self.pairs.capacity() * 40
    }

    /// Adds `n` finalised bad events at `t` to the pair's columns and the all-bad column.
    pub(crate) fn attribute(&mut self, t: i64, pair: (u32, u32), n: u64, now: i64) {
        let (fine, coarse) = (&mut self.attr_fine, &mut self.attr_coarse);
        let cols = self.pairs.entry(pair).or_insert_with(|| PairCols {
            fine: fine.add_column(),
            coarse: coarse.add_column(),
            last_seen: now,
        });
        cols.last_seen = cols.last_seen.max(t).max(now);
        if let Some(s) = fine.claim(t) {
            fine.add(s, ALL_BAD, n);
            fine.add(s, cols.fine, n);
        }
        if let Some(s) = coarse.claim(t) {
            coarse.add(s, ALL_BAD, n);
            coarse.add(s, cols.coarse, n);
        }
    }
}

/// One SLO: its names, its label tables and raw event counters (the process's), and per input
/// partition the rings of its windows ([`Rings`]), summed when read. Rings are per partition
/// so that a partition's windows leave with it and its next owner restores them (`state.rs`).
#[derive(Debug)]
pub(crate) struct SloSeries {
    pub(crate) meta: Meta,
    pub(crate) rings: BTreeMap<i32, Rings>,
    pub(crate) ops: LabelTable,
    pub(crate) causes: LabelTable,
    /// `tracejoin_slo_events_total`: (bad, operation, cause) → count.
    pub(crate) events: HashMap<(bool, u32, u32), u64>,
}

fn sli_grid(shape: Shape) -> Grid {
    let mut g = Grid::new(shape);
    let (t, b) = (g.add_column(), g.add_column());
    debug_assert_eq!((t, b), (TOTAL, BAD));
    g
}

impl SloSeries {
    pub(crate) fn new(meta: Meta, max_operations: usize, max_causes: usize) -> Self {
        SloSeries {
            rings: BTreeMap::new(),
            ops: LabelTable::new(OP_RESERVED, max_operations),
            causes: LabelTable::new(CAUSE_RESERVED, max_causes),
            events: HashMap::new(),
            meta,
        }
    }

    /// Partition `partition`'s rings, created empty if new.
    pub(crate) fn rings_mut(&mut self, partition: i32) -> &mut Rings {
        let period = self.meta.period;
        self.rings
            .entry(partition)
            .or_insert_with(|| Rings::new(period))
    }

    /// Counts an event ending at `t` in partition `partition`'s SLI rings; `false` if it was
    /// older than every ring reaches (not counted in any window).
    pub(crate) fn record(&mut self, partition: i32, t: i64, bad: bool) -> bool {
        let r = self.rings_mut(partition);
        let mut counted = false;
        for g in [&mut r.fine, &mut r.coarse, &mut r.period] {
            if let Some(s) = g.claim(t) {
                g.add(s, TOTAL, 1);
                if bad {
                    g.add(s, BAD, 1);
                }
                counted = true;
            }
        }
        counted
    }

    /// Counts a good event of operation `op` in `tracejoin_slo_events_total`.
    pub(crate) fn count_good(&mut self, op: u32) {
        *self.events.entry((false, op, CAUSE_NONE)).or_insert(0) += 1;
    }

    /// Counts a finalised bad event (span end `t`) of `op` with `cause`, in the raw counter and
    /// partition `partition`'s attribution rings. `now` is the watermark, for the pair's idle
    /// expiry.
    pub(crate) fn attribute(&mut self, partition: i32, t: i64, op: u32, cause: u32, now: i64) {
        *self.events.entry((true, op, cause)).or_insert(0) += 1;
        self.rings_mut(partition).attribute(t, (op, cause), 1, now);
    }

    /// Total and bad events in window `win` as of event time `at`, over the partitions.
    pub(crate) fn counts(&self, win: Window, at: i64) -> Counts {
        let mut c = Counts::default();
        for r in self.rings.values() {
            let g = if win.is_short() { &r.fine } else { &r.coarse };
            let n = g.buckets_for(win.duration());
            c.total += g.sum(TOTAL, at, n);
            c.bad += g.sum(BAD, at, n);
        }
        c
    }

    /// Total and bad events over the SLO period as of `at`, over the partitions.
    pub(crate) fn period_counts(&self, at: i64) -> Counts {
        let mut c = Counts::default();
        for r in self.rings.values() {
            let n = r.period.buckets_for(self.meta.period);
            c.total += r.period.sum(TOTAL, at, n);
            c.bad += r.period.sum(BAD, at, n);
        }
        c
    }

    /// Error ratio ÷ error budget in window `win` as of `at`.
    pub(crate) fn burn_rate(&self, win: Window, at: i64) -> f64 {
        self.meta.error_ratio(self.counts(win, at)) / self.meta.budget()
    }

    /// Finalised bad events in window `win` as of `at`, by (operation, cause), largest first,
    /// over the partitions.
    pub(crate) fn attribution(&self, win: Window, at: i64) -> Attribution {
        let mut out = Attribution::default();
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for r in self.rings.values() {
            let g = if win.is_short() {
                &r.attr_fine
            } else {
                &r.attr_coarse
            };
            let n = g.buckets_for(win.duration());
            let slots: Vec<usize> = g.window_slots(at, n).collect();
            let bad: u64 = slots.iter().map(|s| g.at(ALL_BAD, *s)).sum();
            if bad == 0 {
                continue;
            }
            out.bad += bad;
            for (key, cols) in &r.pairs {
                let col = if win.is_short() {
                    cols.fine
                } else {
                    cols.coarse
                };
                let n: u64 = slots.iter().map(|s| g.at(col, *s)).sum();
                if n > 0 {
                    *pairs.entry(*key).or_insert(0) += n;
                }
            }
        }
        out.pairs = pairs.into_iter().collect();
        out.pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Drops operations, causes and pairs not seen since `before` (event time), with their
    /// counters: a label that comes back starts from zero (a counter reset to Prometheus).
    pub(crate) fn expire(&mut self, before: i64) {
        for r in self.rings.values_mut() {
            let (fine, coarse) = (&mut r.attr_fine, &mut r.attr_coarse);
            let (bf, bc) = (fine.bucket(before), coarse.bucket(before));
            r.pairs.retain(|_, p| {
                let keep = p.last_seen >= before
                    || !fine.column_empty_since(p.fine, bf)
                    || !coarse.column_empty_since(p.coarse, bc);
                if !keep {
                    fine.remove_column(p.fine);
                    coarse.remove_column(p.coarse);
                }
                keep
            });
        }
        // A label of a live pair stays, whatever its own last sighting.
        for r in self.rings.values() {
            for (op, cause) in r.pairs.keys() {
                self.ops.touch(*op, before);
                self.causes.touch(*cause, before);
            }
        }
        let ops = self.ops.expire(before);
        let causes = self.causes.expire(before);
        if ops.is_empty() && causes.is_empty() {
            return;
        }
        self.events
            .retain(|(_, op, cause), _| !ops.contains(op) && !causes.contains(cause));
    }

    /// Bytes held by the rings and tables (approximate), for the memory figures.
    pub(crate) fn bytes(&self) -> usize {
        self.rings.values().map(Rings::bytes).sum::<usize>() + self.events.capacity() * 32
    }
}
