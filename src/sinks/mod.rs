//! Sinks: where joined logs and dead letters go.
//!
//! - `enriched`: the enriched-log JSON document (the Kafka output's record value).
//! - `kafka`: the Kafka producer for enriched logs and dead letters, with acknowledgement
//!   tracking for offset commits.
//! - `loki`: Grafana Loki's push protocol.

pub mod enriched;
pub mod kafka;
pub mod loki;
