//! Join tasks: one join, with its own watermark, per partition number a worker owns.
//!
//! This is Kafka Streams' task model. Topics co-partitioned by trace id put the spans and logs of
//! a trace on the same partition number of every topic, so partition *p* of every input topic is
//! one unit of work: a task. A task's event time is that of its own partitions only, so when a
//! rebalance moves partition *p* to a worker whose other tasks are far ahead in event time, the
//! records replayed from *p*'s committed offset are not judged late against an unrelated clock;
//! and when *p* leaves, its task leaves with it (the records it still held are uncommitted, so
//! the next owner replays and joins them).
//!
//! The worker's state budget (`join.max_traces`, `join.max_state_bytes`) is shared evenly among
//! its tasks.

use crate::join::{Join, JoinOutput, JoinSettings, WatermarkTracker};
use crate::sources::PartitionKey;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(super) struct Task {
    pub(super) join: Join,
    pub(super) watermark: WatermarkTracker,
}

pub(super) struct Tasks {
    tasks: BTreeMap<i32, Task>,
    settings: JoinSettings,
    lateness: Duration,
    idle_timeout: Duration,
}

impl Tasks {
    pub(super) fn new(settings: JoinSettings, lateness: Duration, idle_timeout: Duration) -> Self {
        Tasks {
            tasks: BTreeMap::new(),
            settings,
            lateness,
            idle_timeout,
        }
    }

    /// The task of partition number `partition`, created if new.
    pub(super) fn get(&mut self, partition: i32) -> &mut Task {
        if !self.tasks.contains_key(&partition) {
            self.tasks.insert(
                partition,
                Task {
                    join: Join::new(self.settings.clone()),
                    watermark: WatermarkTracker::new(self.lateness, self.idle_timeout),
                },
            );
            self.share_budget();
        }
        self.tasks.get_mut(&partition).expect("just inserted")
    }

    /// The task of partition number `partition`, if the worker owns one.
    pub(super) fn existing(&mut self, partition: i32) -> Option<&mut Task> {
        self.tasks.get_mut(&partition)
    }

    pub(super) fn assign(&mut self, key: PartitionKey, now: Instant) {
        self.get(key.1).watermark.assign(key, now);
    }

    /// A partition of an internal topic, fed by the input partitions `origins`
    /// (`join::watermark`).
    pub(super) fn assign_via_origins(
        &mut self,
        key: PartitionKey,
        origins: &[PartitionKey],
        now: Instant,
    ) {
        self.get(key.1)
            .watermark
            .assign_via_origins(key, origins, now);
    }

    /// Consumption resumes after a pause: every task's idle clocks restart (see
    /// `WatermarkTracker::resumed`).
    pub(super) fn resumed(&mut self, now: Instant) {
        for task in self.tasks.values_mut() {
            task.watermark.resumed(now);
        }
    }

    /// Stops tracking a partition; a task left with none is dropped, with its state.
    pub(super) fn revoke(&mut self, key: PartitionKey) {
        let Some(task) = self.tasks.get_mut(&key.1) else {
            return;
        };
        task.watermark.revoke(key);
        if task.watermark.partitions().next().is_none() {
            let task = self.tasks.remove(&key.1).expect("present");
            if task.join.waiting_logs() > 0 {
                tracing::info!(
                    partition = key.1,
                    waiting_logs = task.join.waiting_logs(),
                    "task revoked: its waiting logs are uncommitted and the next owner replays them"
                );
            }
            self.share_budget();
        }
    }

    fn share_budget(&mut self) {
        let n = self.tasks.len().max(1);
        let traces = (self.settings.max_traces / n).max(1);
        let bytes = (self.settings.max_state_bytes / n).max(1);
        for t in self.tasks.values_mut() {
            t.join.set_bounds(traces, bytes);
        }
    }

    /// Input partitions owned, over all tasks.
    pub(super) fn partitions(&self) -> usize {
        self.tasks
            .values()
            .map(|t| t.watermark.partitions().count())
            .sum()
    }

    /// Moves every task's watermark; returns the lowest join watermark over the tasks that have
    /// one (what the worker as a whole has certainly passed).
    pub(super) fn advance(
        &mut self,
        now: Instant,
        last_trouble: Option<Instant>,
        out: &mut JoinOutput,
    ) -> Option<i64> {
        let mut lowest: Option<i64> = None;
        let mut all_known = true;
        for task in self.tasks.values_mut() {
            if let Some(w) = task.watermark.watermark(now, last_trouble) {
                task.join.advance_watermark(w, out);
            }
            let w = task.join.watermark();
            if w > i64::MIN {
                lowest = Some(lowest.map_or(w, |l| l.min(w)));
            } else {
                // A task without a watermark yet holds the worker's back.
                all_known = false;
            }
        }
        lowest.filter(|_| all_known)
    }

    /// `(traces, bytes, waiting logs)` over all tasks.
    pub(super) fn state(&self) -> (usize, usize, usize) {
        self.tasks.values().fold((0, 0, 0), |(t, b, w), task| {
            (
                t + task.join.traces(),
                b + task.join.bytes(),
                w + task.join.waiting_logs(),
            )
        })
    }

    /// Shutdown with `emit_waiting_logs`: every task lets its waiting logs go.
    pub(super) fn drain(&mut self, out: &mut JoinOutput) {
        for task in self.tasks.values_mut() {
            task.join.drain(out);
        }
    }
}
