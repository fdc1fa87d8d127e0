//! The watermark: how far event time has certainly progressed on the partitions a worker owns.
//!
//! Per owned partition (of the spans topic and of every logs topic) the tracker keeps the highest
//! event time seen and when a record last arrived. The watermark is the minimum of those highs
//! over the partitions that are not idle, minus `allowed_lateness`. A partition that received
//! nothing for `idle_timeout` stops holding the watermark back (Arroyo's `WatermarkHolder`), so
//! one quiet partition does not stall every join on the worker. When every partition is idle the
//! stream has gone quiet: the watermark then moves on with the wall clock from the last event
//! time seen, so logs still waiting leave after their `max_wait` instead of waiting for traffic —
//! but only once the consumer has been free of broker trouble for `idle_timeout`: a consumer cut
//! off from the cluster sees silence too, and the records of the outage come afterwards.
//! A newly assigned partition holds the watermark at "unknown" until it has a record or has been
//! idle for `idle_timeout`.
//!
//! # Re-keyed partitions: the clocks of their origins
//!
//! A partition of an internal (re-keyed) topic merges many input partitions, each forwarded by
//! whichever worker owns it, at its own pace. Its highest event time says nothing about an input
//! partition whose backlog is still being forwarded (after a restart one input's backlog is
//! re-keyed whole before another's), so such a partition is tracked through its **origins**: one
//! clock per input partition feeding it, advanced by the records cut from that input and by the
//! *progress marks* its owner writes after them (`pipeline::worker::marks`). An origin is idle
//! only when its owner's mark says so; silence proves nothing here (the owner may have crashed,
//! and the next owner replays what it had not committed), so a silent origin holds the
//! watermark until an owner speaks for it again (Flink's watermark propagation across a
//! shuffle).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One partition's event-time progress.
#[derive(Debug, Clone, Copy)]
pub struct PartitionClock {
    /// Highest event time seen (ns), `None` before the first record.
    pub max_event: Option<i64>,
    /// When a record last arrived (or when the partition was assigned).
    pub last_arrival: Instant,
}

/// One origin's event-time progress, as seen through a re-keyed partition.
#[derive(Debug, Clone, Copy)]
struct OriginClock {
    /// The re-keyed partition it feeds on this tracker.
    via: (u16, i32),
    /// Highest event time of its records or its owner's marks, `None` before either.
    max_event: Option<i64>,
    /// Its owner's last mark said nothing arrived for `idle_timeout`, and no record came since.
    idle: bool,
    /// When a record of it last arrived (or when it was expected).
    last_arrival: Instant,
}

/// One input partition's progress as its owner reports it in a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginProgress {
    /// `(topic index, partition)` of the input partition.
    pub origin: (u16, i32),
    /// Highest event time the owner has forwarded from it, `None` before any.
    pub max_event: Option<i64>,
    /// Nothing arrived on it for `idle_timeout` (and the owner was neither paused nor cut off).
    pub idle: bool,
}

/// See the module docs. Keys are `(topic index, partition)`.
#[derive(Debug)]
pub struct WatermarkTracker {
    partitions: HashMap<(u16, i32), PartitionClock>,
    /// Re-keyed partitions, tracked through their origins instead of their own clock.
    via_origins: std::collections::HashSet<(u16, i32)>,
    origins: HashMap<(u16, i32), OriginClock>,
    lateness: i64,
    idle_timeout: Duration,
}

impl WatermarkTracker {
    /// A tracker with no partitions.
    pub fn new(allowed_lateness: Duration, idle_timeout: Duration) -> Self {
        WatermarkTracker {
            partitions: HashMap::new(),
            via_origins: Default::default(),
            origins: HashMap::new(),
            lateness: i64::try_from(allowed_lateness.as_nanos()).unwrap_or(i64::MAX),
            idle_timeout,
        }
    }

    /// Starts tracking a partition (idempotent).
    pub fn assign(&mut self, key: (u16, i32), now: Instant) {
        self.partitions.entry(key).or_insert(PartitionClock {
            max_event: None,
            last_arrival: now,
        });
    }

    /// Starts tracking a re-keyed partition through the input partitions that feed it (see the
    /// module docs): each holds the watermark until a record or a mark of it arrives. With no
    /// origins known it is tracked as an ordinary partition.
    pub fn assign_via_origins(&mut self, key: (u16, i32), origins: &[(u16, i32)], now: Instant) {
        self.assign(key, now);
        if origins.is_empty() {
            return;
        }
        self.via_origins.insert(key);
        for &o in origins {
            self.origins.entry(o).or_insert(OriginClock {
                via: key,
                max_event: None,
                idle: false,
                last_arrival: now,
            });
        }
    }

    /// A record cut from input partition `origin` arrived through re-keyed partition `via`.
    pub fn observe_origin(
        &mut self,
        via: (u16, i32),
        origin: (u16, i32),
        event_time: i64,
        now: Instant,
    ) {
        if !self.via_origins.contains(&via) {
            return self.observe(via, event_time, now);
        }
        if let Some(c) = self.partitions.get_mut(&via) {
            c.last_arrival = now;
        }
        let c = self.origins.entry(origin).or_insert(OriginClock {
            via,
            max_event: None,
            idle: false,
            last_arrival: now,
        });
        c.max_event = Some(c.max_event.map_or(event_time, |m| m.max(event_time)));
        c.idle = false;
        c.last_arrival = now;
    }

    /// An owner's progress mark for `p.origin`, read from re-keyed partition `via`: everything it
    /// forwarded from that input before the mark is already in `via` ahead of it.
    pub fn mark(&mut self, via: (u16, i32), p: OriginProgress, now: Instant) {
        if !self.via_origins.contains(&via) {
            // A partition with no origins known learns them from the marks.
            if !self.partitions.contains_key(&via) {
                return;
            }
            self.via_origins.insert(via);
        }
        let c = self.origins.entry(p.origin).or_insert(OriginClock {
            via,
            max_event: None,
            idle: false,
            last_arrival: now,
        });
        if let Some(e) = p.max_event {
            c.max_event = Some(c.max_event.map_or(e, |m| m.max(e)));
        }
        c.idle = p.idle;
    }

    /// Per tracked partition: its highest event time and whether it is idle at `now` — what a
    /// re-keying owner writes in its marks.
    pub fn progress(
        &self,
        now: Instant,
        last_trouble: Option<Instant>,
    ) -> impl Iterator<Item = OriginProgress> + '_ {
        let troubled = self.troubled(now, last_trouble);
        self.partitions.iter().map(move |(k, c)| OriginProgress {
            origin: *k,
            max_event: c.max_event,
            idle: !troubled && now.saturating_duration_since(c.last_arrival) >= self.idle_timeout,
        })
    }

    fn troubled(&self, now: Instant, last_trouble: Option<Instant>) -> bool {
        last_trouble.is_some_and(|t| now.saturating_duration_since(t) < self.idle_timeout)
    }

    /// Consumption of every partition resumes after a pause (start-up gate, backpressure): the
    /// silence while paused proves nothing about the stream, so each partition's idle clock
    /// restarts now. Otherwise the first partition to deliver after a long pause would find the
    /// others idle and take the watermark past their records still on the way.
    pub fn resumed(&mut self, now: Instant) {
        for c in self.partitions.values_mut() {
            c.last_arrival = c.last_arrival.max(now);
        }
    }

    /// Stops tracking a partition (and, for a re-keyed one, its origins).
    pub fn revoke(&mut self, key: (u16, i32)) {
        self.partitions.remove(&key);
        if self.via_origins.remove(&key) {
            self.origins.retain(|_, c| c.via != key);
        }
    }

    /// Records an arrival with its event time.
    pub fn observe(&mut self, key: (u16, i32), event_time: i64, now: Instant) {
        let clock = self.partitions.entry(key).or_insert(PartitionClock {
            max_event: None,
            last_arrival: now,
        });
        clock.max_event = Some(clock.max_event.map_or(event_time, |m| m.max(event_time)));
        clock.last_arrival = now;
    }

    /// The partitions tracked, with their clocks.
    pub fn partitions(&self) -> impl Iterator<Item = (&(u16, i32), &PartitionClock)> {
        self.partitions.iter()
    }

    /// The watermark at `now`, `None` while some active partition (or origin) has no event time
    /// yet. `last_trouble` is when the consumer last failed to reach the cluster.
    pub fn watermark(&self, now: Instant, last_trouble: Option<Instant>) -> Option<i64> {
        // Right after broker trouble, silence proves nothing: a partition may be quiet only
        // because its fetches have not resumed yet, so none is taken for idle then.
        let troubled = self.troubled(now, last_trouble);
        let direct = self
            .partitions
            .iter()
            .filter(|(k, _)| !self.via_origins.contains(k))
            .map(|(_, c)| c);
        let is_active = |c: &PartitionClock| {
            troubled || now.saturating_duration_since(c.last_arrival) < self.idle_timeout
        };
        let mut any_active = false;
        let mut low = i64::MAX;
        for c in direct.clone().filter(|c| is_active(c)) {
            any_active = true;
            low = low.min(c.max_event?);
        }
        for c in self.origins.values().filter(|c| !c.idle) {
            any_active = true;
            low = low.min(c.max_event?);
        }
        if any_active {
            return Some(low.saturating_sub(self.lateness));
        }
        // All idle: the stream is quiet; let event time flow with the wall clock, unless the
        // silence may be an outage.
        let latest = direct
            .clone()
            .filter_map(|c| c.max_event)
            .chain(self.origins.values().filter_map(|c| c.max_event))
            .max()?;
        let last_arrival = direct
            .map(|c| c.last_arrival)
            .chain(self.origins.values().map(|c| c.last_arrival))
            .max()?;
        let held = latest.saturating_sub(self.lateness);
        if troubled {
            return Some(held);
        }
        let quiet = i64::try_from(now.saturating_duration_since(last_arrival).as_nanos())
            .unwrap_or(i64::MAX);
        Some(held.saturating_add(quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_longer_than_the_idle_timeout_does_not_make_partitions_idle() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.assign((0, 0), t0);
        w.assign((1, 0), t0);
        // Paused for 5 s, then resumed: the logs partition delivers first.
        let resumed = t0 + Duration::from_secs(5);
        w.resumed(resumed);
        w.observe((1, 0), 100 * S, resumed);
        assert_eq!(
            w.watermark(resumed + Duration::from_millis(100), None),
            None,
            "the spans partition has delivered nothing since the resume: it holds the watermark"
        );
        // Without the restart of its idle clock it would not have.
        let mut stale = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        stale.assign((0, 0), t0);
        stale.assign((1, 0), t0);
        stale.observe((1, 0), 100 * S, resumed);
        assert_eq!(stale.watermark(resumed, None), Some(100 * S));
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn minimum_over_active_partitions_minus_lateness() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::from_secs(2), Duration::from_secs(10));
        w.assign((0, 0), t0);
        w.assign((1, 0), t0);
        assert_eq!(
            w.watermark(t0, None),
            None,
            "a fresh partition holds the watermark"
        );
        w.observe((0, 0), 100 * S, t0);
        assert_eq!(w.watermark(t0, None), None);
        w.observe((1, 0), 50 * S, t0);
        assert_eq!(w.watermark(t0, None), Some(48 * S));
        w.observe((1, 0), 40 * S, t0);
        assert_eq!(
            w.watermark(t0, None),
            Some(48 * S),
            "an older record does not move it back"
        );
    }

    #[test]
    fn idle_partition_stops_holding_it_back_and_quiet_stream_flows() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(10));
        w.observe((0, 0), 100 * S, t0);
        w.observe((0, 1), 10 * S, t0);
        let t1 = t0 + Duration::from_secs(11);
        w.observe((0, 0), 120 * S, t1);
        assert_eq!(w.watermark(t1, None), Some(120 * S), "partition 1 is idle");
        let t2 = t1 + Duration::from_secs(15);
        assert_eq!(
            w.watermark(t2, None),
            Some(135 * S),
            "all idle: wall clock since the last arrival"
        );
        w.revoke((0, 0));
        w.revoke((0, 1));
        assert_eq!(w.watermark(t2, None), None);
    }

    #[test]
    fn broker_trouble_suspends_idleness() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(10));
        w.observe((0, 0), 100 * S, t0);
        w.observe((0, 1), 10 * S, t0);
        let t1 = t0 + Duration::from_secs(11);
        w.observe((0, 0), 120 * S, t1);
        assert_eq!(w.watermark(t1, None), Some(120 * S), "partition 1 is idle");
        assert_eq!(
            w.watermark(t1, Some(t1 - Duration::from_secs(1))),
            Some(10 * S),
            "right after broker trouble the silent partition may just not have resumed: it holds"
        );
        let t2 = t1 + Duration::from_secs(15);
        let trouble = t2 - Duration::from_secs(3);
        assert_eq!(
            w.watermark(t2, Some(trouble)),
            Some(10 * S),
            "all idle during trouble: held"
        );
        assert_eq!(
            w.watermark(t2 + Duration::from_secs(10), Some(trouble)),
            Some(145 * S),
            "trouble long past: flows"
        );
    }

    const VIA: (u16, i32) = (7, 0);
    const A: (u16, i32) = (1, 0);
    const B: (u16, i32) = (1, 1);

    fn progress(origin: (u16, i32), max_event: Option<i64>, idle: bool) -> OriginProgress {
        OriginProgress {
            origin,
            max_event,
            idle,
        }
    }

    #[test]
    fn a_rekeyed_partition_is_as_far_as_its_slowest_origin() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.assign_via_origins(VIA, &[A, B], t0);
        // After a restart input A's backlog is forwarded whole before input B's.
        w.observe_origin(VIA, A, 100 * S, t0);
        assert_eq!(
            w.watermark(t0, None),
            None,
            "origin B has said nothing yet: it holds"
        );
        w.observe_origin(VIA, B, 40 * S, t0);
        assert_eq!(w.watermark(t0, None), Some(40 * S));
        // A plain partition clock would have taken the merged stream's highest time.
        let mut merged = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        merged.observe(VIA, 100 * S, t0);
        merged.observe(VIA, 40 * S, t0);
        assert_eq!(merged.watermark(t0, None), Some(100 * S));
    }

    #[test]
    fn a_silent_origin_holds_until_its_owner_marks_it_idle() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.assign_via_origins(VIA, &[A, B], t0);
        w.observe_origin(VIA, A, 100 * S, t0);
        w.observe_origin(VIA, B, 90 * S, t0);
        // B's owner crashed: a minute of silence, while A goes on.
        let t1 = t0 + Duration::from_secs(60);
        w.observe_origin(VIA, A, 160 * S, t1);
        assert_eq!(
            w.watermark(t1, None),
            Some(90 * S),
            "silence is not idleness for an origin: its next owner replays what was not committed"
        );
        // The next owner marks progress, then idleness.
        w.mark(VIA, progress(B, Some(95 * S), false), t1);
        assert_eq!(w.watermark(t1, None), Some(95 * S));
        w.mark(VIA, progress(B, Some(95 * S), true), t1);
        assert_eq!(w.watermark(t1, None), Some(160 * S));
        // A record of B wakes it.
        w.observe_origin(VIA, B, 150 * S, t1);
        assert_eq!(w.watermark(t1, None), Some(150 * S));
        // A replayed mark from an earlier owner does not move it back.
        w.mark(VIA, progress(B, Some(10 * S), false), t1);
        assert_eq!(w.watermark(t1, None), Some(150 * S));
    }

    #[test]
    fn every_origin_idle_lets_the_stream_flow_and_revoke_forgets_them() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.assign_via_origins(VIA, &[A, B], t0);
        w.observe_origin(VIA, A, 100 * S, t0);
        w.mark(VIA, progress(A, Some(100 * S), true), t0);
        w.mark(VIA, progress(B, None, true), t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(w.watermark(t1, None), Some(105 * S));
        w.revoke(VIA);
        assert_eq!(w.watermark(t1, None), None);
        assert_eq!(w.partitions().count(), 0);
    }

    #[test]
    fn without_origins_a_rekeyed_partition_learns_them_from_marks() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.assign_via_origins(VIA, &[], t0);
        w.observe_origin(VIA, A, 100 * S, t0);
        assert_eq!(
            w.watermark(t0, None),
            Some(100 * S),
            "a plain partition clock"
        );
        w.mark(VIA, progress(B, Some(30 * S), false), t0);
        assert_eq!(w.watermark(t0, None), Some(30 * S));
    }

    #[test]
    fn an_owner_reports_idleness_only_when_not_cut_off() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(Duration::ZERO, Duration::from_secs(2));
        w.observe(A, 100 * S, t0);
        let t1 = t0 + Duration::from_secs(3);
        w.observe(B, 120 * S, t1);
        let mut p: Vec<_> = w.progress(t1, None).collect();
        p.sort_by_key(|p| p.origin);
        assert_eq!(
            p,
            vec![
                progress(A, Some(100 * S), true),
                progress(B, Some(120 * S), false)
            ]
        );
        assert!(
            w.progress(t1, Some(t1)).all(|p| !p.idle),
            "right after broker trouble nothing is idle"
        );
    }
}
