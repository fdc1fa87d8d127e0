//! The series table as Prometheus metric families: a `prometheus::core::Collector` that the RED
//! registry holds, read at each scrape.
//!
//! Label pairs are sorted by name, as the Go client (and so the Collector's exporter) writes them.
//! The overflow series carries only `otel_metric_overflow="true"`.

use super::config::RedNaming;
use super::labels::{self, OVERFLOW_LABEL};
use super::{SeriesKey, Table};
use crate::model::StatusCode;
use crate::telemetry::openmetrics::{series_key, Exemplar, Exemplars};
use crate::telemetry::proto::{counter, histogram, pair};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(super) struct Exposition {
    naming: RedNaming,
    dim_labels: Vec<String>,
    /// Each series carries its join partition as `partition` (`per_partition`).
    per_partition: bool,
    descs: Vec<Desc>,
    table: Arc<Mutex<Table>>,
}

const CALLS_HELP: &str =
    "Spans counted, by service, span name, span kind and status code (spanmetrics calls).";
const DURATION_HELP: &str =
    "Span duration in seconds, by service, span name, span kind and status code (spanmetrics duration).";

impl Exposition {
    pub(super) fn new(
        naming: RedNaming,
        dim_labels: Vec<String>,
        per_partition: bool,
        table: Arc<Mutex<Table>>,
    ) -> Self {
        let mut variable: Vec<String> = [
            naming.service_label(),
            "span_name",
            "span_kind",
            "status_code",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        variable.extend(dim_labels.iter().cloned());
        if per_partition {
            variable.push(PARTITION_LABEL.to_string());
        }
        let descs = [
            (naming.calls_name(), CALLS_HELP),
            (naming.duration_name(), DURATION_HELP),
        ]
        .iter()
        .map(|(name, help)| {
            Desc::new(
                name.to_string(),
                help.to_string(),
                variable.clone(),
                HashMap::new(),
            )
            .expect("static metric names and validated label names")
        })
        .collect();
        Exposition {
            naming,
            dim_labels,
            per_partition,
            descs,
            table,
        }
    }
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

/// The registry's handle on the shared exposition (the RED metrics keep another, for the
/// exemplars).
pub(super) struct Registered(pub(super) Arc<Exposition>);

impl Collector for Registered {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

/// The label of a series' join partition with `per_partition`.
const PARTITION_LABEL: &str = "partition";

impl Exposition {
    /// The dimensions' label names, in configuration order.
    pub(super) fn dim_labels(&self) -> &[String] {
        &self.dim_labels
    }

    /// The overflow series' labels.
    fn overflow_labels(&self, partition: i32) -> Vec<LabelPair> {
        let mut pairs = vec![pair(OVERFLOW_LABEL, "true")];
        if self.per_partition {
            pairs.push(pair(PARTITION_LABEL, &partition.to_string()));
        }
        pairs
    }

    /// A series' labels, sorted by name.
    fn labels(&self, key: &SeriesKey) -> Vec<LabelPair> {
        let mut pairs = Vec::with_capacity(4 + self.dim_labels.len());
        pairs.push(pair(self.naming.service_label(), &key.service));
        pairs.push(pair("span_name", &key.name));
        pairs.push(pair("span_kind", key.kind.as_str()));
        pairs.push(pair("status_code", key.status.as_str()));
        for (label, value) in self
            .dim_labels
            .iter()
            .zip(labels::decode_dimensions(&key.dims))
        {
            if let Some(v) = value {
                pairs.push(pair(label, v));
            }
        }
        if self.per_partition {
            pairs.push(pair(PARTITION_LABEL, &key.partition.to_string()));
        }
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        pairs
    }

    /// Every series' exemplar, on its counter and its histogram (`telemetry::openmetrics`).
    pub(super) fn exemplars(&self, out: &mut Exemplars) {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let errors = &table.error_traces.set;
        for (key, cell) in &table.series {
            let error = key.status == StatusCode::Error;
            let Some(s) = cell.exemplar(|t| error && errors.contains(&t)) else {
                continue;
            };
            let labels = self.labels(key);
            let e = Exemplar {
                trace_id: s.trace_id,
                span_id: s.span_id,
                value: s.seconds,
                timestamp: s.end_nanos as f64 / 1e9,
            };
            out.insert(series_key(self.naming.duration_name(), &labels), e);
            out.insert(
                series_key(self.naming.calls_name(), &labels),
                Exemplar { value: 1.0, ..e },
            );
        }
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let n = table.len();
        let (mut calls, mut durations) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (key, cell) in &table.series {
            let pairs = self.labels(key);
            durations.push(histogram(
                pairs.clone(),
                &table.bounds,
                &cell.buckets,
                cell.calls,
                cell.sum,
            ));
            calls.push(counter(pairs, cell.calls));
        }
        for (partition, cell) in &table.overflow {
            let pairs = self.overflow_labels(*partition);
            durations.push(histogram(
                pairs.clone(),
                &table.bounds,
                &cell.buckets,
                cell.calls,
                cell.sum,
            ));
            calls.push(counter(pairs, cell.calls));
        }
        drop(table);
        vec![
            family(
                self.naming.calls_name(),
                CALLS_HELP,
                MetricType::COUNTER,
                calls,
            ),
            family(
                self.naming.duration_name(),
                DURATION_HELP,
                MetricType::HISTOGRAM,
                durations,
            ),
        ]
    }
}
