//! tracejoin: joins application logs with distributed traces while both stream through Kafka.
//!
//! The crate follows the data: `sources` (Kafka in, offsets) → `decode` (OTLP, log lines, rules)
//! → `join` (event-time windows on trace id) → `derive` (RED metrics) → `sinks` (enriched JSON to
//! Kafka, dead letters, the metrics endpoint). `pipeline` wires one worker; `telemetry` names
//! every metric the processor reports about itself; `config` is the one typed config tree.
//! `ARCHITECTURE.md` at the repository root is the codemap.

#![warn(missing_docs, unreachable_pub)]

pub mod check;
pub mod config;
pub mod decode;
pub mod demo;
pub mod derive;
pub mod join;
pub mod model;
pub mod pipeline;
pub mod sinks;
pub mod sources;
pub mod telemetry;
