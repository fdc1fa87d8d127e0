//! Offset commits and backpressure: the two ways the worker talks back to the consumer.
//!
//! Commits: what the [`AckLedger`] says may be committed, every `kafka.commit_interval`
//! (asynchronously) and at shutdown (synchronously). Backpressure: when more than
//! `limits.max_in_flight` entries are in flight, every assigned partition is paused until half
//! have drained — the consumer keeps polling, so it keeps its group membership.

use crate::sources::ack::AckLedger;
use crate::sources::kafka::{add_with_seen_mark, SourceConsumer, TopicTable};
use crate::telemetry::{metrics, WorkerMetrics};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::TopicPartitionList;
use std::time::{Duration, Instant};

pub(super) struct Commits {
    pub(super) ledger: AckLedger,
    interval: Duration,
    last: Instant,
    max_in_flight: usize,
    paused: bool,
}

impl Commits {
    pub(super) fn new(ledger: AckLedger, interval: Duration, max_in_flight: usize) -> Self {
        Commits {
            ledger,
            interval,
            last: Instant::now(),
            max_in_flight,
            paused: false,
        }
    }

    /// Commits if the interval has passed.
    pub(super) fn tick(&mut self, now: Instant, consumer: &SourceConsumer, topics: &TopicTable) {
        self.ledger.drain();
        if now.duration_since(self.last) >= self.interval {
            self.last = now;
            self.commit(consumer, topics, CommitMode::Async);
        }
    }

    /// Commits what may be committed.
    pub(super) fn commit(
        &mut self,
        consumer: &SourceConsumer,
        topics: &TopicTable,
        mode: CommitMode,
    ) {
        self.ledger.drain();
        let due = self.ledger.due();
        if due.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset, seen) in &due {
            add_with_seen_mark(&mut tpl, topics.name(*topic), *partition, *offset, *seen);
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                metrics().commit(true);
                for ((topic, partition), offset, seen) in due {
                    self.ledger.committed((topic, partition), offset, seen);
                    metrics().committed_offset(topics.name(topic), partition, offset);
                }
            }
            Err(e) => {
                metrics().commit(false);
                tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
            }
        }
    }

    /// Pauses or resumes consumption for `in_flight` entries in flight; true when it has just
    /// resumed.
    /// Whether backpressure holds every partition paused.
    pub(super) fn paused(&self) -> bool {
        self.paused
    }

    pub(super) fn backpressure(
        &mut self,
        consumer: &SourceConsumer,
        in_flight: usize,
        gauges: &WorkerMetrics,
    ) -> bool {
        let mut resumed = false;
        let cap = self.max_in_flight;
        let want_pause = if self.paused {
            in_flight > cap / 2
        } else {
            in_flight >= cap
        };
        if want_pause != self.paused {
            if let Ok(assignment) = consumer.assignment() {
                let r = if want_pause {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                match r {
                    Ok(()) => {
                        self.paused = want_pause;
                        resumed = !want_pause;
                        tracing::info!(in_flight, paused = want_pause, "backpressure");
                    }
                    Err(e) => tracing::warn!(error = %e, "pause/resume failed"),
                }
            }
        }
        gauges.in_flight(in_flight, self.paused);
        resumed
    }
}
