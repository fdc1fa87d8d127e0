//! What the user writes under `metrics.red`, its defaults and its `validate()`.

use super::labels;
use crate::model::SpanKind;
use serde::{Deserialize, Deserializer};
use std::time::Duration;
use thiserror::Error;

/// The OpenTelemetry Collector spanmetrics connector's default explicit histogram bounds, in
/// milliseconds (`defaultHistogramBucketsMs`, `connector/spanmetricsconnector/config.go`,
/// contrib v0.165.1). With `histogram.unit: s` the connector divides each by 1000, as
/// [`connector_default_buckets`] does, so the bounds are the same `f64`s.
pub const CONNECTOR_DEFAULT_BUCKETS_MS: [f64; 16] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10_000.0, 15_000.0,
];

/// The connector's default bounds in seconds: 0.002 … 15.
pub fn connector_default_buckets() -> Vec<f64> {
    CONNECTOR_DEFAULT_BUCKETS_MS
        .iter()
        .map(|ms| ms / 1000.0)
        .collect()
}

/// Grafana Tempo metrics-generator's default latency bounds in seconds:
/// `ExponentialBuckets(0.002, 2, 14)`, 0.002 … 16.384.
pub fn tempo_default_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect()
}

/// Which names and intrinsic labels the RED metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedNaming {
    /// The OpenTelemetry Collector's spanmetrics connector (default namespace `traces.span.metrics`,
    /// `histogram.unit: s`) as its Prometheus exporter renders it:
    /// `traces_span_metrics_calls_total` and the histogram `traces_span_metrics_duration_seconds`,
    /// labels `service_name`, `span_name`, `span_kind`, `status_code`.
    #[default]
    Spanmetrics,
    /// Grafana Tempo's metrics-generator: `traces_spanmetrics_calls_total` and the histogram
    /// `traces_spanmetrics_latency`, labels `service`, `span_name`, `span_kind`, `status_code`.
    Tempo,
}

impl RedNaming {
    /// The counter's name.
    pub fn calls_name(self) -> &'static str {
        match self {
            RedNaming::Spanmetrics => "traces_span_metrics_calls_total",
            RedNaming::Tempo => "traces_spanmetrics_calls_total",
        }
    }
    /// The histogram's name (without `_bucket`, `_sum`, `_count`).
    pub fn duration_name(self) -> &'static str {
        match self {
            RedNaming::Spanmetrics => "traces_span_metrics_duration_seconds",
            RedNaming::Tempo => "traces_spanmetrics_latency",
        }
    }
    /// The label that carries the service name.
    pub fn service_label(self) -> &'static str {
        match self {
            RedNaming::Spanmetrics => "service_name",
            RedNaming::Tempo => "service",
        }
    }
    /// The default histogram bounds, in seconds.
    pub fn default_buckets(self) -> Vec<f64> {
        match self {
            RedNaming::Spanmetrics => connector_default_buckets(),
            RedNaming::Tempo => tempo_default_buckets(),
        }
    }
}

/// An extra label taken from a span attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// The attribute key, e.g. `http.route`; the label is its Prometheus form, `http_route`.
    pub name: String,
    /// The label value when the span lacks the attribute; without one the label is left off
    /// that series, as the connector does.
    pub default: Option<String>,
}

impl<'de> Deserialize<'de> for Dimension {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// `{name, default}`, as the connector writes a dimension.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            default: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Full(Full),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Name(name) => Dimension {
                name,
                default: None,
            },
            Raw::Full(Full { name, default }) => Dimension { name, default },
        })
    }
}

fn span_kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SpanKind>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            SpanKind::parse(s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown span kind {s:?} (server, client, producer, consumer, internal, \
                     unspecified, or SPAN_KIND_SERVER …)"
                ))
            })
        })
        .collect()
}

/// RED metrics (rate, errors, duration) from spans, named like the OpenTelemetry Collector's
/// spanmetrics connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedConfig {
    /// Whether RED metrics are derived at all.
    pub enabled: bool,
    /// Metric and label names: `spanmetrics` (the Collector's spanmetrics connector) or `tempo`
    /// (Grafana Tempo's metrics-generator).
    pub naming: RedNaming,
    /// Which span kinds count: `server`, `consumer` by default (the spans that are requests a
    /// service handles). The connector counts every kind; list all six to match it.
    #[serde(deserialize_with = "span_kinds")]
    pub span_kinds: Vec<SpanKind>,
    /// Span attributes that become extra labels, dots turned into underscores as the Collector's
    /// Prometheus exporter does (`http.route` → `http_route`). Each is a key or
    /// `{name: key, default: value}`. The attributes must also be kept by the decoder
    /// (`join.span_attributes`); only span attributes are read, not resource attributes.
    pub dimensions: Vec<Dimension>,
    /// Histogram upper bounds in seconds, strictly increasing; `+Inf` is implied. Default: the
    /// connector's (0.002 0.004 0.006 0.008 0.01 0.05 0.1 0.2 0.4 0.8 1 1.4 2 5 10 15), or
    /// Tempo's (0.002 × 2ⁿ up to 16.384) with `naming: tempo`.
    pub buckets: Option<Vec<f64>>,
    /// At most this many series per metric. Spans of further label sets are counted in one
    /// series labelled only `otel_metric_overflow="true"`, as the connector's
    /// `aggregation_cardinality_limit` does.
    pub max_series: usize,
    /// A series that has seen no span for this long is dropped (each on its own, like the
    /// connector's `series_expiration`); it starts from zero if its spans come back. `0s` keeps
    /// series forever.
    #[serde(with = "humantime_serde")]
    pub series_idle_timeout: Duration,
    /// How many recently counted spans (trace id + span id) are at least remembered so a
    /// redelivered copy is not counted twice (at most twice as many are). `0` turns the check
    /// off.
    pub dedup_window: usize,
    /// Count each join partition's spans in series of their own, labelled `partition`, kept in
    /// the state changelog (`state.changelog`) and restored by the partition's next owner: the
    /// counts then survive kill -9, restarts and rebalances exactly (each span counted once,
    /// across the fleet). Costs one series per label set *per partition*; sum them away with
    /// `sum without (partition)`. Off: series are the process's, and a crash replays (and
    /// counts again) the spans consumed since the last commit.
    pub per_partition: bool,
}

impl Default for RedConfig {
    fn default() -> Self {
        RedConfig {
            enabled: true,
            naming: RedNaming::Spanmetrics,
            span_kinds: vec![SpanKind::Server, SpanKind::Consumer],
            dimensions: Vec::new(),
            buckets: None,
            max_series: 10_000,
            series_idle_timeout: Duration::from_secs(600),
            dedup_window: 100_000,
            per_partition: false,
        }
    }
}

/// Why the RED metrics could not be set up.
#[derive(Debug, Error, PartialEq)]
pub enum RedError {
    /// A setting breaks a rule; `key` is relative to `metrics.red`.
    #[error("metrics.red.{key} = {value}: {reason}")]
    Invalid {
        /// The key under `metrics.red`, e.g. `buckets`.
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &str, value: impl std::fmt::Display, reason: &str) -> RedError {
    RedError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

impl RedConfig {
    /// The histogram bounds in force: the configured ones, else the naming's default.
    pub fn effective_buckets(&self) -> Vec<f64> {
        self.buckets
            .clone()
            .unwrap_or_else(|| self.naming.default_buckets())
    }

    /// Checks what serde cannot. Errors name the key (relative to `metrics.red`) and the value.
    pub fn validate(&self) -> Result<(), RedError> {
        if self.span_kinds.is_empty() {
            return Err(invalid("span_kinds", "[]", "list at least one span kind"));
        }
        if self.max_series == 0 {
            return Err(invalid("max_series", 0, "must be at least 1"));
        }
        let buckets = self.effective_buckets();
        if buckets.is_empty() {
            return Err(invalid(
                "buckets",
                "[]",
                "list at least one bound (+Inf is implied)",
            ));
        }
        for (i, b) in buckets.iter().enumerate() {
            if !b.is_finite() {
                return Err(invalid(
                    &format!("buckets[{i}]"),
                    b,
                    "bounds are finite (+Inf is implied)",
                ));
            }
            if i > 0 && *b <= buckets[i - 1] {
                return Err(invalid(
                    &format!("buckets[{i}]"),
                    b,
                    "bounds must be strictly increasing",
                ));
            }
        }
        let intrinsic = [
            self.naming.service_label(),
            "span_name",
            "span_kind",
            "status_code",
            labels::OVERFLOW_LABEL,
            "le",
        ];
        let mut seen: Vec<String> = Vec::new();
        for (i, d) in self.dimensions.iter().enumerate() {
            let key = format!("dimensions[{i}]");
            let label =
                labels::label_name(&d.name).map_err(|reason| invalid(&key, &d.name, reason))?;
            if intrinsic.contains(&label.as_str()) || label.starts_with("__") {
                return Err(invalid(
                    &key,
                    &d.name,
                    &format!("its label `{label}` is reserved"),
                ));
            }
            if seen.contains(&label) {
                return Err(invalid(
                    &key,
                    &d.name,
                    &format!("its label `{label}` is already taken by another dimension"),
                ));
            }
            seen.push(label);
        }
        Ok(())
    }
}
