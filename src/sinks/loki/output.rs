//! The Loki sink as one of the pipeline's [`Sink`]s: joined logs into batches, batches sent by
//! the client, refused batches dead-lettered.
//!
//! [`LokiSink`] holds at most one open batch and closes batches in the order their entries came,
//! so the tokens of the open batch's entries are kept in the same order beside it: when a batch
//! closes with `n` entries, they are the first `n` tokens.

use super::{BatchOutcome, LokiBatch, LokiClient, LokiSink};
use crate::sinks::kafka::dead_letter_headers;
use crate::sinks::{DeadLetter, Emitted, Outbox, Settled, Sink};
use crate::sources::ack::Ack;
use crate::telemetry::metrics;
use std::collections::VecDeque;
use std::time::Instant;

/// `outputs.loki` as a pipeline sink.
pub struct LokiOutput {
    batches: LokiSink,
    client: LokiClient,
    /// Tokens of the open batch's entries, in entry order.
    open_acks: VecDeque<Ack>,
}

impl LokiOutput {
    /// Around a configured sink.
    pub fn new(batches: LokiSink) -> Self {
        let client = batches.client();
        LokiOutput {
            batches,
            client,
            open_acks: VecDeque::new(),
        }
    }

    fn send_batch(&mut self, batch: LokiBatch, out: &mut Outbox) {
        let acks: Vec<Ack> = self.open_acks.drain(..batch.entries()).collect();
        let client = self.client.clone();
        out.push("loki", batch.entries(), async move {
            let outcome = client.send(batch).await;
            metrics().loki_batch(&outcome);
            match outcome {
                BatchOutcome::Delivered { .. } => Settled::Done,
                BatchOutcome::Rejected {
                    origins,
                    status,
                    reason,
                    payload,
                    cause,
                    ..
                } => {
                    tracing::warn!(status, %reason, entries = origins.len(), "loki refused a batch: dead-lettered");
                    // One dead letter stands for many records: the origins are in its lines.
                    let headers =
                        dead_letter_headers(&format!("loki_{}", cause.as_str()), &reason, "loki", -1, -1);
                    Settled::DeadLetter(DeadLetter {
                        key: None,
                        payload,
                        headers,
                        source: "loki".into(),
                        reason: "loki_refused",
                        acks,
                    })
                }
            }
        });
    }
}

impl Sink for LokiOutput {
    fn name(&self) -> &'static str {
        "loki"
    }

    fn send(&mut self, log: &Emitted<'_>, ack: &Ack, out: &mut Outbox) {
        self.open_acks.push_back(ack.clone());
        match self.batches.add(log.joined) {
            Ok(Some(batch)) => self.send_batch(batch, out),
            Ok(None) => {}
            Err(oversized) => {
                let ack = self.open_acks.pop_back().expect("pushed above");
                let headers = dead_letter_headers(
                    "loki_line_too_large",
                    &oversized.to_string(),
                    log.source_topic,
                    oversized.origin.partition,
                    oversized.origin.offset,
                );
                out.dead_letter(DeadLetter {
                    key: None,
                    payload: oversized.payload,
                    headers,
                    source: "loki".into(),
                    reason: "loki_line_too_large",
                    acks: vec![ack],
                });
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Outbox) {
        if let Some(batch) = self.batches.take_due(now, false) {
            self.send_batch(batch, out);
        }
    }

    fn flush(&mut self, out: &mut Outbox) {
        if let Some(batch) = self.batches.take_due(Instant::now(), true) {
            self.send_batch(batch, out);
        }
    }
}
