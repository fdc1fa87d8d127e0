//! The outbox (deliveries in flight, dead letters) and the fan-out of joined logs to the sinks.

use super::enriched;
use super::kafka::{KafkaSink, OutRecord};
use super::{Emitted, Sink};
use crate::model::JoinedLog;
use crate::sources::ack::Ack;
use crate::telemetry::metrics;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::OwnedHeaders;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A record that cannot be delivered, for the dead-letter topic, with the tokens of the input
/// records it stands for (released when Kafka has the dead letter).
pub struct DeadLetter {
    /// The key (the original record's, for undecodable input).
    pub key: Option<Vec<u8>>,
    /// The payload (the original bytes, or the refused batch as JSON lines).
    pub payload: Vec<u8>,
    /// `tracejoin.error.*` and `tracejoin.source.*` headers (see `kafka::dead_letter_headers`).
    pub headers: OwnedHeaders,
    /// The metric labels: where it came from (an input topic, or a sink's name) and why.
    pub source: Arc<str>,
    /// The reason code (`invalid_protobuf`, `loki_refused`, …).
    pub reason: &'static str,
    /// Tokens of the records it stands for.
    pub acks: Vec<Ack>,
}

/// What a delivery came to.
pub enum Settled {
    /// Delivered; the tokens it carried are dropped.
    Done,
    /// Refused for good: dead-letter it.
    DeadLetter(DeadLetter),
}

type Pending = Pin<Box<dyn Future<Output = (usize, &'static str, Settled)> + Send>>;

/// Deliveries in flight, counted in entries (a Kafka record is one, a Loki batch as many as it
/// holds), and the producer for dead letters and derived events.
pub struct Outbox {
    pending: FuturesUnordered<Pending>,
    in_flight: usize,
    kafka: KafkaSink,
    dead_letter_topic: Arc<str>,
}

impl Outbox {
    /// An empty outbox producing with `kafka`.
    pub fn new(kafka: KafkaSink, dead_letter_topic: &str) -> Self {
        Outbox {
            pending: FuturesUnordered::new(),
            in_flight: 0,
            kafka,
            dead_letter_topic: dead_letter_topic.into(),
        }
    }

    /// Entries in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The Kafka producer (shared by the Kafka sink, dead letters and derived events).
    pub fn kafka(&self) -> &KafkaSink {
        &self.kafka
    }

    /// Tracks a delivery of `entries` entries by the sink `sink`.
    pub fn push(
        &mut self,
        sink: &'static str,
        entries: usize,
        delivery: impl Future<Output = Settled> + Send + 'static,
    ) {
        self.in_flight += entries;
        self.pending
            .push(Box::pin(async move { (entries, sink, delivery.await) }));
    }

    /// Produces a record that acknowledges nothing (derived events).
    pub fn produce(&mut self, sink: &'static str, record: OutRecord) {
        let delivery = self.kafka.send(record);
        self.push(sink, 1, async move {
            delivery.await;
            Settled::Done
        });
    }

    /// Sends a dead letter; its tokens are released once Kafka has it.
    pub fn dead_letter(&mut self, dl: DeadLetter) {
        metrics().dead_lettered(&dl.source, dl.reason);
        let record = OutRecord {
            topic: self.dead_letter_topic.clone(),
            key: dl.key,
            payload: dl.payload,
            headers: Some(dl.headers),
            ack: Ack::detached(),
            event_time_nanos: None,
            partition: None,
            timestamp_ms: None,
        };
        let delivery = self.kafka.send(record);
        let acks = dl.acks;
        self.push("dead_letter", 1, async move {
            delivery.await;
            drop(acks);
            Settled::Done
        });
    }

    /// Waits for the next delivery to settle (pending forever when none is in flight; guard
    /// with [`is_empty`](Self::is_empty) in a `select!`). Returns the sink's name and how many
    /// entries it delivered; refused deliveries are dead-lettered here.
    pub async fn next(&mut self) -> Option<(&'static str, usize)> {
        let (entries, sink, settled) = self.pending.next().await?;
        self.in_flight -= entries;
        match settled {
            Settled::Done => Some((sink, entries)),
            Settled::DeadLetter(dl) => {
                self.dead_letter(dl);
                Some((sink, 0))
            }
        }
    }
}

/// Hands each joined log to every sink, with its token.
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
    /// The reused buffer of the enriched JSON.
    json: Vec<u8>,
}

impl Fanout {
    /// Over these sinks.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Fanout {
            sinks,
            json: Vec::with_capacity(1024),
        }
    }

    /// The sinks' names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sinks.iter().map(|s| s.name())
    }

    /// Encodes one joined log and gives it to every sink; returns the encoded JSON (valid until
    /// the next call) for observers. Once the caller drops the log, only the sinks' clones of its
    /// token hold its record.
    pub fn emit(&mut self, joined: &JoinedLog, source_topic: &str, out: &mut Outbox) -> &[u8] {
        self.json.clear();
        enriched::encode(joined, source_topic, &mut self.json);
        let emitted = Emitted {
            joined,
            json: &self.json,
            source_topic,
        };
        for sink in &mut self.sinks {
            sink.send(&emitted, &joined.log.ack, out);
        }
        &self.json
    }

    /// Lets every sink send what its timers made due.
    pub fn tick(&mut self, now: Instant, out: &mut Outbox) {
        for sink in &mut self.sinks {
            sink.tick(now, out);
        }
    }

    /// Shutdown: every sink sends what it buffers.
    pub fn flush(&mut self, out: &mut Outbox) {
        for sink in &mut self.sinks {
            sink.flush(out);
        }
    }
}
