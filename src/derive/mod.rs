//! Derive: signals computed from the spans as they stream by.
//!
//! - `red`: rate, errors and duration per service and operation, named like the
//!   OpenTelemetry Collector's spanmetrics connector.

pub mod red;
pub mod slo;
