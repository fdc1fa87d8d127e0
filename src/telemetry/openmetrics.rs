//! The OpenMetrics text exposition (1.0.0), for scrapers that ask for it
//! (`Accept: application/openmetrics-text`): the same families as the Prometheus text format,
//! plus **exemplars** — the trace and span id of a recent span of a series, on its counter sample
//! and on the histogram bucket its duration fell in — so Grafana can jump from a latency spike
//! to an example trace, and from the trace to its logs.
//!
//! The `prometheus` crate encodes only the classic text format and its data model has no
//! exemplars, so this writes the text from its `MetricFamily` protos, and takes the exemplars
//! from a map keyed by [`series_key`].

use crate::model::{SpanId, TraceId};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use std::collections::HashMap;
use std::fmt::Write;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One exemplar: a span of the series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// Its trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// Its value: the span's duration in seconds for a histogram, 1 for a counter.
    pub value: f64,
    /// When it happened (the span's end), seconds since the Unix epoch.
    pub timestamp: f64,
}

/// Exemplars by [`series_key`].
pub type Exemplars = HashMap<String, Exemplar>;

/// The key of a series: its family name (a histogram's base name) and its labels sorted by
/// name, as `name{a="x",b="y"}` (values not escaped: a key, not exposition).
pub fn series_key(name: &str, labels: &[LabelPair]) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.iter().map(|l| (l.name(), l.value())).collect();
    pairs.sort_unstable();
    let mut k = String::with_capacity(name.len() + 16 * pairs.len());
    k.push_str(name);
    k.push('{');
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            k.push(',');
        }
        let _ = write!(k, "{n}=\"{v}\"");
    }
    k.push('}');
    k
}

/// Label values and HELP text escape the same three characters in OpenMetrics.
fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A number as OpenMetrics writes it (Go's float syntax for the infinities and NaN).
fn number(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn labels(pairs: &[LabelPair], extra: Option<(&str, f64)>, out: &mut String) {
    if pairs.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for p in pairs {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(p.name());
        out.push_str("=\"");
        escape(p.value(), out);
        out.push('"');
    }
    if let Some((name, v)) = extra {
        if !first {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        number(v, out);
        out.push('"');
    }
    out.push('}');
}

fn exemplar(e: &Exemplar, out: &mut String) {
    out.push_str(" # {trace_id=\"");
    out.push_str(&e.trace_id.to_hex());
    out.push_str("\",span_id=\"");
    out.push_str(&e.span_id.to_hex());
    out.push_str("\"} ");
    number(e.value, out);
    out.push(' ');
    let _ = write!(out, "{:.3}", e.timestamp);
}

fn sample(
    name: &str,
    suffix: &str,
    m: &Metric,
    extra: Option<(&str, f64)>,
    v: f64,
    ex: Option<&Exemplar>,
    out: &mut String,
) {
    out.push_str(name);
    out.push_str(suffix);
    labels(m.get_label(), extra, out);
    out.push(' ');
    number(v, out);
    if let Some(e) = ex {
        exemplar(e, out);
    }
    out.push('\n');
}

/// The families as OpenMetrics text, ending with `# EOF`. A counter family whose name ends in
/// `_total` is declared without it, as the format wants; any other counter is declared
/// `unknown` under its own name, so no series is renamed.
pub fn encode(families: &[MetricFamily], exemplars: &Exemplars) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for f in families {
        let name = f.name();
        let (declared, kind) = match f.get_field_type() {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(base) => (base, "counter"),
                None => (name, "unknown"),
            },
            MetricType::GAUGE => (name, "gauge"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        let _ = writeln!(out, "# TYPE {declared} {kind}");
        if !f.help().is_empty() {
            let _ = write!(out, "# HELP {declared} ");
            escape(f.help(), &mut out);
            out.push('\n');
        }
        for m in f.get_metric() {
            let key = || series_key(name, m.get_label());
            match f.get_field_type() {
                MetricType::COUNTER => {
                    let ex = exemplars.get(&key());
                    let v = m.get_counter().get_value();
                    if kind == "counter" {
                        sample(declared, "_total", m, None, v, ex, &mut out);
                    } else {
                        sample(name, "", m, None, v, None, &mut out);
                    }
                }
                MetricType::GAUGE => {
                    sample(name, "", m, None, m.get_gauge().get_value(), None, &mut out)
                }
                MetricType::UNTYPED => {
                    #[allow(deprecated)] // the plain model's only accessor for it
                    let v = m.get_untyped().get_value();
                    sample(name, "", m, None, v, None, &mut out)
                }
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let ex = exemplars.get(&key());
                    // The exemplar goes on the first bucket its value falls in.
                    let mut placed = false;
                    for b in h.get_bucket() {
                        let upper = b.upper_bound();
                        let here = ex.filter(|e| !placed && e.value <= upper);
                        placed |= here.is_some();
                        sample(
                            name,
                            "_bucket",
                            m,
                            Some(("le", upper)),
                            b.cumulative_count() as f64,
                            here,
                            &mut out,
                        );
                    }
                    let last_inf = h
                        .get_bucket()
                        .last()
                        .is_some_and(|b| b.upper_bound() == f64::INFINITY);
                    if !last_inf {
                        let here = ex.filter(|_| !placed);
                        sample(
                            name,
                            "_bucket",
                            m,
                            Some(("le", f64::INFINITY)),
                            h.get_sample_count() as f64,
                            here,
                            &mut out,
                        );
                    }
                    sample(name, "_sum", m, None, h.get_sample_sum(), None, &mut out);
                    sample(
                        name,
                        "_count",
                        m,
                        None,
                        h.get_sample_count() as f64,
                        None,
                        &mut out,
                    );
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        sample(
                            name,
                            "",
                            m,
                            Some(("quantile", q.quantile())),
                            q.value(),
                            None,
                            &mut out,
                        );
                    }
                    sample(name, "_sum", m, None, s.sample_sum(), None, &mut out);
                    sample(
                        name,
                        "_count",
                        m,
                        None,
                        s.sample_count() as f64,
                        None,
                        &mut out,
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

    #[test]
    fn counters_histograms_and_exemplars_as_openmetrics_writes_them() {
        let r = Registry::new();
        let c = IntCounterVec::new(Opts::new("calls_total", "Calls \"made\"."), &["svc"]).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["a\"b"]).inc_by(3);
        let h = Histogram::with_opts(
            HistogramOpts::new("dur_seconds", "Durations.").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h.observe(0.5);
        h.observe(0.05);
        let fams = r.gather();
        let mut ex = Exemplars::new();
        let e = Exemplar {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0xcd; 8]),
            value: 0.5,
            timestamp: 1_700_000_000.25,
        };
        ex.insert(series_key("dur_seconds", &[]), e);
        ex.insert(
            series_key("calls_total", fams[0].get_metric()[0].get_label()),
            Exemplar { value: 1.0, ..e },
        );
        let text = encode(&fams, &ex);
        let want = "# TYPE calls counter
# HELP calls Calls \\\"made\\\".
calls_total{svc=\"a\\\"b\"} 3 # {trace_id=\"abababababababababababababababab\",span_id=\"cdcdcdcdcdcdcdcd\"} 1 1700000000.250
# TYPE dur_seconds histogram
# HELP dur_seconds Durations.
dur_seconds_bucket{le=\"0.1\"} 1
dur_seconds_bucket{le=\"1\"} 2 # {trace_id=\"abababababababababababababababab\",span_id=\"cdcdcdcdcdcdcdcd\"} 0.5 1700000000.250
dur_seconds_bucket{le=\"+Inf\"} 2
dur_seconds_sum 0.55
dur_seconds_count 2
# EOF
";
        assert_eq!(text, want);
    }
}
