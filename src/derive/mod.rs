//! Derive: signals computed from the spans as they stream by.
//!
//! - `red`: rate, errors and duration per service and operation, named like the
//!   OpenTelemetry Collector's spanmetrics connector.
//! - `servicegraph`: which service calls which (client/server and producer/consumer span
//!   pairs), named like the Collector's servicegraph connector.
//! - `slo`: SLO error-budget burn rates with attribution.

pub mod red;
pub mod servicegraph;
pub mod slo;
