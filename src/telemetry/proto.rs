//! Building the `prometheus` crate's metric protos by hand, for the derived metrics whose
//! series live in tables of their own (RED, the service graph) rather than in the crate's
//! metric types.

use prometheus::proto::{Bucket, Counter, Histogram, LabelPair, Metric};

/// One label.
pub fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_string());
    p.set_value(value.to_string());
    p
}

/// A counter sample.
pub fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

/// A histogram sample from per-bucket (not cumulative) counts, one per bound (a trailing
/// `+Inf` count beyond them is left to the encoder, which writes `count` there).
pub fn histogram(
    labels: Vec<LabelPair>,
    bounds: &[f64],
    per_bucket: &[u64],
    count: u64,
    sum: f64,
) -> Metric {
    let mut cumulative = 0u64;
    let buckets = bounds
        .iter()
        .zip(per_bucket)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(count);
    h.set_sample_sum(sum);
    let mut m = Metric::from_label(labels);
    m.set_histogram(h);
    m
}
