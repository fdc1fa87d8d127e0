//! Grafana Loki sink: enriched logs to Loki's push API (`POST /loki/api/v1/push`), protobuf
//! `PushRequest` snappy-compressed (or JSON), proven against VictoriaLogs' implementation of it.
//!
//! - `config`: what the user writes (`outputs.loki`), checked against Loki's limits at start-up.
//! - `event`: the wire formats (protobuf messages with `push.proto`'s field numbers, JSON push,
//!   the label-set string, dead-letter lines).
//! - `sink`: joined logs → entries (line, labels, structured metadata) → batches.
//! - `service`: one batch → one HTTP request, retried or rejected.
//!
//! How the pipeline drives it: [`LokiSink::add`] each joined log (a batch comes back when one
//! closes), [`LokiSink::take_due`] on a timer, and [`LokiClient::send`] each batch from a task;
//! the [`BatchOutcome`] says which origins are acknowledged or must be dead-lettered. The sink
//! holds one open batch; the pipeline bounds the batches in flight, so a failing server pauses
//! consumption instead of filling memory.

mod config;
mod event;
mod output;
mod service;
mod sink;

pub use config::{
    AuthConfig, BatchConfig, LabelFrom, LabelSource, LabelValue, LineFormat, LokiConfig,
    LokiConfigError, LokiEncoding, MetadataField, OversizePolicy, RetryConfig, SecretSource,
    TenantConfig,
};
pub use output::LokiOutput;
pub use service::{BatchOutcome, LokiClient, LokiStats, RejectCause, SendStats};
pub use sink::{LokiBatch, LokiSink, OversizedLine};

/// Why the sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    /// The config breaks a rule (or a secret cannot be read).
    #[error(transparent)]
    Config(#[from] LokiConfigError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the Loki HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests;
