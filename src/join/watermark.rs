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

/// See the module docs. Keys are `(topic index, partition)`.
#[derive(Debug)]
pub struct WatermarkTracker {
    partitions: HashMap<(u16, i32), PartitionClock>,
    lateness: i64,
    idle_timeout: Duration,
}

impl WatermarkTracker {
    /// A tracker with no partitions.
    pub fn new(allowed_lateness: Duration, idle_timeout: Duration) -> Self {
        WatermarkTracker {
            partitions: HashMap::new(),
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

    /// Consumption of every partition resumes after a pause (start-up gate, backpressure): the
    /// silence while paused proves nothing about the stream, so each partition's idle clock
    /// restarts now. Otherwise the first partition to deliver after a long pause would find the
    /// others idle and take the watermark past their records still on the way.
    pub fn resumed(&mut self, now: Instant) {
        for c in self.partitions.values_mut() {
            c.last_arrival = c.last_arrival.max(now);
        }
    }

    /// Stops tracking a partition.
    pub fn revoke(&mut self, key: (u16, i32)) {
        self.partitions.remove(&key);
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

    /// The watermark at `now`, `None` while some active partition has no event time yet.
    /// `last_trouble` is when the consumer last failed to reach the cluster.
    pub fn watermark(&self, now: Instant, last_trouble: Option<Instant>) -> Option<i64> {
        // Right after broker trouble, silence proves nothing: a partition may be quiet only
        // because its fetches have not resumed yet, so none is taken for idle then.
        let troubled =
            last_trouble.is_some_and(|t| now.saturating_duration_since(t) < self.idle_timeout);
        let is_active = |c: &PartitionClock| {
            troubled || now.saturating_duration_since(c.last_arrival) < self.idle_timeout
        };
        let mut active = self.partitions.values().filter(|c| is_active(c)).peekable();
        if active.peek().is_some() {
            let mut low = i64::MAX;
            for c in active {
                low = low.min(c.max_event?);
            }
            return Some(low.saturating_sub(self.lateness));
        }
        // All idle: the stream is quiet; let event time flow with the wall clock, unless the
        // silence may be an outage.
        let latest = self.partitions.values().filter_map(|c| c.max_event).max()?;
        let last_arrival = self.partitions.values().map(|c| c.last_arrival).max()?;
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
}
