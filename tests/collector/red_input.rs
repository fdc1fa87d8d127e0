//! Shared by tests/red_prometheus.rs and tests/red_collector.rs (included with `#[path]`): a
//! deterministic span stream as OTLP protobuf records and the RED values it must give. The
//! exposition parser, `kv` and `now_nanos` are `tests/common`'s.

#![allow(dead_code)]

use crate::common::exposition::Sample;
use crate::common::{kv, now_nanos};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::collections::BTreeMap;

/// OTLP span kind names by number.
pub const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
/// OTLP status code names by number.
pub const STATUSES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// Durations that sit on, just below and just above the connector's default bounds, in ns.
/// A negative one is a span that ends before it starts (duration 0 on both sides).
pub const DURATIONS: [i64; 16] = [
    0,
    -1_000,
    1_999_999,
    2_000_000,
    2_000_001,
    6_000_000,
    10_000_000,
    49_999_999,
    100_000_000,
    123_456_789,
    1_000_000_000,
    1_400_000_000,
    1_400_000_001,
    15_000_000_000,
    15_000_000_001,
    20_000_000_000,
];

/// One span to produce.
#[derive(Debug, Clone)]
pub struct SpanSpec {
    pub service: &'static str,
    pub name: String,
    /// OTLP number, 0..=5.
    pub kind: i32,
    /// OTLP number, 0..=2.
    pub status: i32,
    pub nanos: i64,
    pub route: Option<&'static str>,
    pub http_status: Option<i64>,
}

/// A reproducible pseudo-random stream (xorshift), `n` spans over three services, every kind
/// and status, the boundary durations, and two dimensions that are sometimes missing.
pub fn stream(n: usize, seed: u64) -> Vec<SpanSpec> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let services = ["checkout", "cart", "payments"];
    let names = [
        "GET /cart",
        "POST /order",
        "charge",
        "orders.consume",
        "SELECT",
    ];
    let routes = [Some("/cart"), Some("/order/{id}"), None];
    (0..n)
        .map(|_| {
            let r = next();
            SpanSpec {
                service: services[(r % 3) as usize],
                name: names[((r >> 8) % 5) as usize].to_string(),
                kind: ((r >> 16) % 6) as i32,
                status: ((r >> 24) % 3) as i32,
                nanos: DURATIONS[((r >> 32) % 16) as usize],
                route: routes[((r >> 40) % 3) as usize],
                http_status: match (r >> 48) % 3 {
                    0 => Some(200),
                    1 => Some(503),
                    _ => None,
                },
            }
        })
        .collect()
}

/// The specs as OTLP `ExportTraceServiceRequest` records of up to `per_record` spans, one
/// resource per service in each, fresh random trace and span ids, ending about now.
pub fn records(specs: &[SpanSpec], per_record: usize) -> Vec<Vec<u8>> {
    let end = now_nanos() - 1_000_000_000;
    specs
        .chunks(per_record)
        .map(|chunk| {
            let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
            for s in chunk {
                let mut attributes = Vec::new();
                if let Some(r) = s.route {
                    attributes.push(kv("http.route", any_value::Value::StringValue(r.into())));
                }
                if let Some(c) = s.http_status {
                    attributes.push(kv(
                        "http.response.status_code",
                        any_value::Value::IntValue(c),
                    ));
                }
                attributes.push(kv("noise", any_value::Value::StringValue("x".into())));
                let start = (end as i64 - s.nanos.max(0)) as u64;
                let stop = if s.nanos < 0 {
                    start - s.nanos.unsigned_abs()
                } else {
                    end
                };
                by_service.entry(s.service).or_default().push(Span {
                    trace_id: rand::random::<[u8; 16]>().map(|b| b | 1).to_vec(),
                    span_id: rand::random::<[u8; 8]>().map(|b| b | 1).to_vec(),
                    name: s.name.clone(),
                    kind: s.kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: stop,
                    attributes,
                    status: Some(Status {
                        code: s.status,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            ExportTraceServiceRequest {
                resource_spans: by_service
                    .into_iter()
                    .map(|(service, spans)| ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![
                                kv(
                                    "service.name",
                                    any_value::Value::StringValue(service.into()),
                                ),
                                kv(
                                    "service.instance.id",
                                    any_value::Value::StringValue(format!("{service}-1")),
                                ),
                            ],
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        })
        .collect()
}

/// Expected calls by `(service, span_name, span_kind, status_code)` for the counted kinds.
pub fn expected_calls(
    specs: &[SpanSpec],
    kinds: &[i32],
) -> BTreeMap<(String, String, String, String), u64> {
    let mut m = BTreeMap::new();
    for s in specs.iter().filter(|s| kinds.contains(&s.kind)) {
        *m.entry((
            s.service.to_string(),
            s.name.clone(),
            KINDS[s.kind as usize].to_string(),
            STATUSES[s.status as usize].to_string(),
        ))
        .or_insert(0) += 1;
    }
    m
}

/// One RED series as read from an exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedSeries {
    pub calls: f64,
    /// Cumulative count by upper bound (`le` parsed and printed back, `inf` for `+Inf`).
    pub buckets: BTreeMap<String, f64>,
    pub count: f64,
    pub sum: f64,
}

/// The RED series of an exposition by label set, with the `ignore`d labels removed and the
/// series that then coincide summed (the Collector keeps one series per resource).
pub fn red_series(
    samples: &[Sample],
    calls: &str,
    duration: &str,
    ignore: &[&str],
) -> BTreeMap<BTreeMap<String, String>, RedSeries> {
    let mut out: BTreeMap<BTreeMap<String, String>, RedSeries> = BTreeMap::new();
    let (bucket, sum, count) = (
        format!("{duration}_bucket"),
        format!("{duration}_sum"),
        format!("{duration}_count"),
    );
    for s in samples {
        let mut labels = s.labels.clone();
        labels.retain(|k, _| !ignore.contains(&k.as_str()));
        let le = labels.remove("le");
        if s.name == calls {
            out.entry(labels).or_default().calls += s.value;
        } else if s.name == bucket {
            let le: f64 = match le.as_deref() {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().expect("le"),
                None => panic!("bucket without le: {s:?}"),
            };
            *out.entry(labels)
                .or_default()
                .buckets
                .entry(le.to_string())
                .or_default() += s.value;
        } else if s.name == sum {
            out.entry(labels).or_default().sum += s.value;
        } else if s.name == count {
            out.entry(labels).or_default().count += s.value;
        }
    }
    out
}

/// Total calls over every series.
pub fn total_calls(series: &BTreeMap<BTreeMap<String, String>, RedSeries>) -> f64 {
    series.values().map(|s| s.calls).sum()
}
