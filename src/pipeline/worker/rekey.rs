//! The repartition stage inside a worker: a record of an input topic that is not co-partitioned
//! by trace id is cut per trace and produced, keyed by trace id and placed by murmur2, to the
//! internal topic of its kind. The produced records carry the input record's token, so its
//! offset is committed only once the broker has every piece; and its coordinates, in the
//! `tracejoin.source.*` headers, so the enriched output names the input record.

use super::{Refused, Worker};
use crate::decode::logline::InputLogFormat;
use crate::model::{Origin, TraceId};
use crate::sinks::kafka::OutRecord;
use crate::sinks::Settled;
use crate::sources::ack::Ack;
use crate::sources::kafka::{Rekey, RepartitionPlan, TopicTable};
use crate::sources::repartition::{
    internal_partition, repartition_key, split_logs_json, split_logs_proto, split_spans_json,
    split_spans_proto, SplitError, TraceKey,
};
use crate::telemetry::metrics;
use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use std::fmt::Write as _;
use std::sync::Arc;

const SOURCE_TOPIC: &str = "tracejoin.source.topic";
const SOURCE_PARTITION: &str = "tracejoin.source.partition";
const SOURCE_OFFSET: &str = "tracejoin.source.offset";
/// Which piece of its input record a re-keyed record is (0, 1, … in the order produced): with
/// the offset, a re-keyed record's place in its input partition, so that a record re-keyed
/// again after a crash is known for a copy (`SloChangelog::rekeyed_replay`).
const SOURCE_PIECE: &str = "tracejoin.source.piece";

/// The internal topics.
pub(in crate::pipeline) struct Targets {
    pub(super) spans: Arc<str>,
    pub(super) logs: Arc<str>,
    pub(super) partitions: i32,
}

impl Targets {
    pub(in crate::pipeline) fn new(plan: &RepartitionPlan) -> Self {
        Targets {
            spans: plan.spans_topic.as_str().into(),
            logs: plan.logs_topic.as_str().into(),
            partitions: plan.partitions.max(1),
        }
    }
}

impl From<SplitError> for Refused {
    fn from(e: SplitError) -> Self {
        Refused {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The input record a re-keyed record was cut from, and which piece of it the record is (if
/// its producer said), from its headers.
pub(super) fn source_origin(
    m: &BorrowedMessage<'_>,
    topics: &TopicTable,
) -> Option<(Origin, Option<u32>)> {
    let headers = m.headers()?;
    let (mut topic, mut partition, mut offset, mut piece) = (None, None, None, None);
    for h in headers.iter() {
        let v = h.value.and_then(|v| std::str::from_utf8(v).ok());
        match h.key {
            SOURCE_TOPIC => topic = v.and_then(|t| topics.index(t)),
            SOURCE_PARTITION => partition = v.and_then(|p| p.parse().ok()),
            SOURCE_OFFSET => offset = v.and_then(|o| o.parse().ok()),
            SOURCE_PIECE => piece = v.and_then(|p| p.parse().ok()),
            _ => {}
        }
    }
    let origin = Origin {
        topic: topic?,
        partition: partition?,
        offset: offset?,
    };
    Some((origin, piece))
}

impl Worker {
    /// Re-keys one input record (see the module docs).
    pub(super) fn rekey(
        &mut self,
        m: &BorrowedMessage<'_>,
        kind: Rekey,
        origin: Origin,
        ack: &Ack,
        (kafka_nanos, max_future, now): (i64, i64, std::time::Instant),
    ) -> Result<(), Refused> {
        let payload = m.payload().unwrap_or_default();
        self.parts.clear();
        // The record's event time as the join will see it (future times clamped alike), for
        // this partition's progress marks.
        let (target, latest) = match kind {
            Rekey::Spans => {
                let stats = if payload.first() == Some(&b'{') {
                    split_spans_json(payload, &mut self.parts)?
                } else {
                    split_spans_proto(payload, &mut self.parts)?
                };
                let latest = stats.latest_event_nanos.map(|t| t.min(max_future));
                (self.rekey.spans.clone(), latest)
            }
            Rekey::Logs(format) => {
                let latest = self.split_logs(payload, format, origin, kafka_nanos, max_future)?;
                (self.rekey.logs.clone(), latest)
            }
        };
        self.marks.forwarded.observe(
            (origin.topic, origin.partition),
            latest.unwrap_or(kafka_nanos.min(max_future)),
            now,
        );
        let source = self.topics.name(origin.topic);
        metrics().rekeyed(source, self.parts.len() as u64);
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: SOURCE_TOPIC,
                value: Some(source),
            })
            .insert(Header {
                key: SOURCE_PARTITION,
                value: Some(&origin.partition.to_string()),
            })
            .insert(Header {
                key: SOURCE_OFFSET,
                value: Some(&origin.offset.to_string()),
            });
        let timestamp_ms = m.timestamp().to_millis();
        let mut piece = String::new();
        for (n, (trace, bytes)) in self.parts.drain(..).enumerate() {
            piece.clear();
            let _ = write!(piece, "{n}");
            let key = trace.kafka_key();
            let record = OutRecord {
                topic: target.clone(),
                partition: key.map(|k| internal_partition(&k, self.rekey.partitions)),
                key: key.map(|k| k.to_vec()),
                payload: bytes,
                headers: Some(headers.clone().insert(Header {
                    key: SOURCE_PIECE,
                    value: Some(&piece),
                })),
                ack: ack.clone(),
                event_time_nanos: None,
                timestamp_ms,
            };
            let delivery = self.outbox.kafka().send(record);
            self.outbox.push("repartition", 1, async move {
                delivery.await;
                Settled::Done
            });
        }
        Ok(())
    }

    /// A log record, cut per trace: raw lines (one log each) are forwarded as they are, keyed
    /// by the trace id the rules find; OTLP batches of several traces are split. Returns the
    /// latest log time, as the join will take it.
    fn split_logs(
        &mut self,
        payload: &[u8],
        format: InputLogFormat,
        origin: Origin,
        kafka_nanos: i64,
        max_future: i64,
    ) -> Result<Option<i64>, Refused> {
        self.logs_buf.clear();
        self.log_decoder.decode(
            Bytes::copy_from_slice(payload),
            format,
            origin,
            kafka_nanos,
            &mut self.logs_buf,
        )?;
        let mut first: Option<Option<TraceId>> = None;
        let mut several = false;
        let mut latest = None;
        for log in self.logs_buf.drain(..) {
            let t = log.timestamp_unix_nanos;
            let t = if t > max_future {
                kafka_nanos.min(max_future)
            } else {
                t
            };
            latest = latest.max(Some(t));
            match first {
                None => first = Some(log.trace_id),
                Some(t) if t != log.trace_id => several = true,
                Some(_) => {}
            }
        }
        if !several {
            let trace = first.flatten();
            debug_assert_eq!(repartition_key(trace.as_ref()), TraceKey(trace).kafka_key());
            self.parts.push((TraceKey(trace), payload.to_vec()));
            return Ok(latest);
        }
        if payload.first() == Some(&b'{') {
            split_logs_json(payload, &mut self.parts)?;
        } else {
            split_logs_proto(payload, &mut self.parts)?;
        }
        Ok(latest)
    }
}
