//! Decode: Kafka record bytes into span summaries and log events.
//!
//! - `otlp`: OTLP spans and logs, protobuf or JSON (span protobuf by a wire scanner straight into
//!   summaries; logs and JSON through lean prost messages with zero-copy strings).
//! - `logline`: raw log lines (JSON objects, logfmt, plain text), with the trace context found by
//!   the rules in `rules/extract.yaml` (`rules`).
//! - `ids`: trace/span id normalisation; `time`: timestamp parsing; `intern`: shared names.
//!
//! Errors name what was wrong with the record in a small fixed set of codes (`DecodeError::code`),
//! which become the dead-letter reason and the metric label; the full text goes into the
//! dead-letter header.

pub mod ids;
pub mod intern;
pub mod level;
pub mod logline;
pub mod otlp;
pub mod rules;
pub mod time;

use thiserror::Error;

/// Why a record could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The record is not valid OTLP protobuf.
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// The record is not valid OTLP protobuf, as the span scanner found (`otlp::ScanError`).
    #[error("invalid OTLP protobuf: {0}")]
    ProtobufScan(#[source] otlp::ScanError),
    /// The record is not valid JSON (or not the expected OTLP/JSON shape).
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A text record is not valid UTF-8.
    #[error("invalid UTF-8 at byte {valid_up_to}")]
    Utf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The record is larger than `limits.max_record_bytes`.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Record size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The record has no value (a tombstone) or only white space.
    #[error("empty record")]
    Empty,
}

impl DecodeError {
    /// A short stable code, for the dead-letter reason header and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Protobuf(_) | DecodeError::ProtobufScan(_) => "invalid_protobuf",
            DecodeError::Json(_) => "invalid_json",
            DecodeError::Utf8 { .. } => "invalid_utf8",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Empty => "empty",
        }
    }
}
