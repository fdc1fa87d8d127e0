//! Sinks: where joined logs, dead letters and derived events go.
//!
//! Every output of the pipeline goes through one [`Outbox`]: it owns the deliveries in flight
//! (futures polled by the worker's loop), counts them for backpressure, and sends dead letters.
//! A sink of joined logs implements [`Sink`]; the [`Fanout`] hands each joined log to every sink
//! with its record's acknowledgement token, and a sink keeps a clone of that token until the log
//! is safely out (acknowledged, or dead-lettered and the dead letter acknowledged). Adding a sink
//! is one module implementing [`Sink`] and a line where the worker is assembled.
//!
//! - `enriched`: the enriched-log JSON document (encoded once per log, shared by the sinks).
//! - `kafka`: the Kafka producer, the `logs.enriched` sink, dead letters.
//! - `loki`: Grafana Loki's push protocol.

pub mod enriched;
pub mod kafka;
pub mod loki;
mod outbox;

pub use outbox::{DeadLetter, Fanout, Outbox, Settled};

use crate::model::JoinedLog;
use crate::sources::ack::Ack;
use std::time::Instant;

/// One joined log as the sinks see it.
pub struct Emitted<'a> {
    /// The log, its outcome and its span's context.
    pub joined: &'a JoinedLog,
    /// Its enriched JSON document (see [`enriched::encode`]).
    pub json: &'a [u8],
    /// The name of the topic it was consumed from.
    pub source_topic: &'a str,
}

/// A destination of joined logs.
///
/// Contract: a sink that cannot deliver a log now keeps a clone of `ack` (in a buffer, a batch,
/// a pending delivery) until the log is delivered for good or handed back as a [`DeadLetter`];
/// dropping the last clone is what lets the record's offset be committed. Deliveries go into the
/// [`Outbox`], which counts them against `limits.max_in_flight`.
pub trait Sink: Send {
    /// A short name for logs and metrics (`kafka`, `loki`).
    fn name(&self) -> &'static str;
    /// Takes one joined log.
    fn send(&mut self, log: &Emitted<'_>, ack: &Ack, out: &mut Outbox);
    /// Called every tick (200 ms): send what a timer made due (open batches).
    fn tick(&mut self, _now: Instant, _out: &mut Outbox) {}
    /// Shutdown: send everything buffered.
    fn flush(&mut self, _out: &mut Outbox) {}
}
