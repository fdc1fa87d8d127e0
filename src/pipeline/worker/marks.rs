//! Progress marks: how the owner of a re-keyed input partition tells the join tasks how far that
//! partition has come.
//!
//! An internal topic's partition merges many input partitions, each forwarded at its own pace by
//! whichever worker owns it; its highest event time is no watermark (after a restart one input's
//! backlog is forwarded whole before another's, whose logs would then be judged late). So every
//! tick, while it is consuming, an owner writes one mark to every partition of each internal
//! topic it feeds: for each input partition of that kind it owns, the highest event time it has
//! forwarded and whether the partition has gone idle. The producer's queue keeps one partition's
//! order (`KafkaSink::send` enqueues at once), so a mark lands behind every record it covers.
//! A task takes, per origin, the highest of what the records and the marks say, and treats an
//! origin as idle only on its owner's word (`join::watermark`).
//!
//! A paused owner (start-up gate, backpressure) writes nothing: what it has not read yet must not
//! be declared idle. A crashed one writes nothing either, so its partitions hold the watermark
//! until their next owner replays them and speaks for them.
//!
//! A mark is a record with the `tracejoin.progress` header, no key, and one line per input
//! partition: `topic<TAB>partition<TAB>highest event time in ns, or -<TAB>idle 0|1`.

use super::Worker;
use crate::join::{OriginProgress, WatermarkTracker};
use crate::sinks::kafka::OutRecord;
use crate::sinks::Settled;
use crate::sources::ack::Ack;
use crate::sources::kafka::{Rekey, RepartitionPlan, TopicRole, TopicTable};
use crate::sources::PartitionKey;
use crate::telemetry::metrics;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The header that makes a record of an internal topic a progress mark.
pub(in crate::pipeline) const MARK_HEADER: &str = "tracejoin.progress";

/// The re-keying side (the input partitions this worker owns and forwards) and the joining side
/// (which input partitions feed each internal topic).
pub(in crate::pipeline) struct Marks {
    /// Event time and arrivals per owned re-keyed input partition.
    pub(super) forwarded: WatermarkTracker,
    /// The input partitions feeding the internal spans topic, and the internal logs topic.
    feeding_spans: Vec<PartitionKey>,
    feeding_logs: Vec<PartitionKey>,
    /// Reused line buffer.
    text: String,
}

impl Marks {
    pub(in crate::pipeline) fn new(
        plan: &RepartitionPlan,
        topics: &TopicTable,
        idle_timeout: Duration,
    ) -> Self {
        let (mut feeding_spans, mut feeding_logs) = (Vec::new(), Vec::new());
        for i in 0..topics.len() {
            let into = match topics.role(i as u16) {
                Some(TopicRole::Rekey(Rekey::Spans)) => &mut feeding_spans,
                Some(TopicRole::Rekey(Rekey::Logs(_))) => &mut feeding_logs,
                _ => continue,
            };
            // An input whose partition count was unknown at start-up is learned from its marks.
            let n = plan.input_partitions.get(i).copied().unwrap_or(0);
            into.extend((0..n).map(|p| (i as u16, p)));
        }
        Marks {
            forwarded: WatermarkTracker::new(Duration::ZERO, idle_timeout),
            feeding_spans,
            feeding_logs,
            text: String::new(),
        }
    }

    /// The input partitions whose records go to the internal topic of `role`.
    pub(in crate::pipeline) fn origins(&self, role: TopicRole) -> &[PartitionKey] {
        match role {
            TopicRole::RekeyedSpans => &self.feeding_spans,
            TopicRole::RekeyedLogs => &self.feeding_logs,
            _ => &[],
        }
    }
}

/// One mark's text for these partitions' progress.
fn encode(text: &mut String, topics: &TopicTable, progress: &[OriginProgress]) {
    text.clear();
    for p in progress {
        let _ = write!(text, "{}\t{}\t", topics.name(p.origin.0), p.origin.1);
        match p.max_event {
            Some(t) => {
                let _ = write!(text, "{t}");
            }
            None => text.push('-'),
        }
        text.push_str(if p.idle { "\t1\n" } else { "\t0\n" });
    }
}

/// A mark's progress lines; lines naming a topic this worker does not read, or malformed, are
/// skipped (a mark is advice from a peer, never a reason to stop).
fn decode(payload: &[u8], topics: &TopicTable, out: &mut Vec<OriginProgress>) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(topic), Some(partition), Some(max_event), Some(idle), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Some(topic), Ok(partition)) = (topics.index(topic), partition.parse()) else {
            continue;
        };
        let max_event = match max_event {
            "-" => None,
            t => match t.parse() {
                Ok(t) => Some(t),
                Err(_) => continue,
            },
        };
        let idle = match idle {
            "0" => false,
            "1" => true,
            _ => continue,
        };
        out.push(OriginProgress {
            origin: (topic, partition),
            max_event,
            idle,
        });
    }
}

/// Whether a record of an internal topic is a progress mark.
pub(super) fn is_mark(m: &BorrowedMessage<'_>) -> bool {
    m.headers()
        .is_some_and(|h| h.iter().any(|h| h.key == MARK_HEADER))
}

impl Worker {
    /// Writes this worker's marks (see the module docs), unless it is paused.
    pub(super) fn send_marks(&mut self, now: Instant) {
        if !*self.gate.borrow() || self.commits.paused() {
            return;
        }
        let mut progress: Vec<OriginProgress> = self
            .marks
            .forwarded
            .progress(now, self.trouble.last())
            .collect();
        if progress.is_empty() {
            return;
        }
        progress.sort_by_key(|p| p.origin);
        let topics = &self.topics;
        let spans = |p: &&OriginProgress| {
            matches!(
                topics.role(p.origin.0),
                Some(TopicRole::Rekey(Rekey::Spans))
            )
        };
        let (of_spans, of_logs): (Vec<&OriginProgress>, Vec<&OriginProgress>) =
            progress.iter().partition(spans);
        for (target, kind) in [
            (self.rekey.spans.clone(), of_spans),
            (self.rekey.logs.clone(), of_logs),
        ] {
            if kind.is_empty() {
                continue;
            }
            let owned: Vec<OriginProgress> = kind.into_iter().copied().collect();
            encode(&mut self.marks.text, &self.topics, &owned);
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: MARK_HEADER,
                value: Some("1"),
            });
            for partition in 0..self.rekey.partitions {
                let record = OutRecord {
                    topic: target.clone(),
                    key: None,
                    payload: self.marks.text.as_bytes().to_vec(),
                    headers: Some(headers.clone()),
                    ack: Ack::detached(),
                    event_time_nanos: None,
                    partition: Some(partition),
                    timestamp_ms: None,
                };
                let delivery = self.outbox.kafka().send(record);
                self.outbox.push("progress_mark", 1, async move {
                    delivery.await;
                    Settled::Done
                });
            }
            metrics().progress_marks("sent", self.rekey.partitions as u64);
        }
    }

    /// A mark read from internal partition `via`: the progress of the origins it names.
    pub(super) fn on_mark(&mut self, m: &BorrowedMessage<'_>, via: PartitionKey, now: Instant) {
        let mut read = Vec::new();
        decode(m.payload().unwrap_or_default(), &self.topics, &mut read);
        // A mark fetched before its partition was revoked must not create a task.
        if let Some(task) = self.tasks.existing(via.1) {
            for p in read {
                task.watermark.mark(via, p, now);
            }
        }
        metrics().progress_marks("read", 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::logline::InputLogFormat;
    use std::sync::Arc;

    fn table() -> TopicTable {
        TopicTable(vec![
            (Arc::from("spans"), TopicRole::Rekey(Rekey::Spans)),
            (
                Arc::from("logs"),
                TopicRole::Rekey(Rekey::Logs(InputLogFormat::Json)),
            ),
            (Arc::from("g.repartition.spans"), TopicRole::RekeyedSpans),
            (Arc::from("g.repartition.logs"), TopicRole::RekeyedLogs),
        ])
    }

    #[test]
    fn a_mark_reads_back_as_written() {
        let topics = table();
        let written = vec![
            OriginProgress {
                origin: (0, 2),
                max_event: Some(1_764_000_000_123_456_789),
                idle: false,
            },
            OriginProgress {
                origin: (1, 0),
                max_event: None,
                idle: true,
            },
        ];
        let mut text = String::new();
        encode(&mut text, &topics, &written);
        assert_eq!(text, "spans\t2\t1764000000123456789\t0\nlogs\t0\t-\t1\n");
        let mut read = Vec::new();
        decode(text.as_bytes(), &topics, &mut read);
        assert_eq!(read, written);
    }

    #[test]
    fn malformed_lines_and_unknown_topics_are_skipped() {
        let mut read = Vec::new();
        decode(
            b"other\t0\t5\t0\nspans\tx\t5\t0\nspans\t1\tnan\t0\nspans\t1\t5\t2\nspans\t1\t5\nlogs\t3\t7\t1\n",
            &table(),
            &mut read,
        );
        assert_eq!(
            read,
            vec![OriginProgress {
                origin: (1, 3),
                max_event: Some(7),
                idle: true
            }]
        );
        read.clear();
        decode(b"logs\t3\t7\t1\n\xff", &table(), &mut read);
        assert!(read.is_empty(), "a mark that is not UTF-8 says nothing");
    }

    #[test]
    fn each_internal_topic_is_fed_by_the_partitions_of_its_kind() {
        let plan = RepartitionPlan {
            rekey: vec![true, true],
            input_partitions: vec![2, 3],
            ..RepartitionPlan::default()
        };
        let marks = Marks::new(&plan, &table(), Duration::from_secs(1));
        assert_eq!(marks.origins(TopicRole::RekeyedSpans), &[(0, 0), (0, 1)]);
        assert_eq!(
            marks.origins(TopicRole::RekeyedLogs),
            &[(1, 0), (1, 1), (1, 2)]
        );
        assert!(marks.origins(TopicRole::Spans).is_empty());
    }
}
