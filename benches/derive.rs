//! Derive stage: span decode + RED update, the per-span cost of the RED metrics on the pipeline's
//! hot path. Throughput is in spans; the bench runs on one thread, so spans/s is per core.
//!
//! Records are realistic OTLP batches (50 server spans of 5 services, a dozen attributes each,
//! as an SDK sends them) built before the timed loop. Each timed record has span ids not seen
//! in the last `dedup_window` spans (a pool larger than the window is cycled), so the redelivery
//! filter does its full work instead of short-cutting on duplicates.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::cell::Cell;
use tracejoin::decode::otlp::SpanDecoder;
use tracejoin::derive::red::{Dimension, RedConfig, RedMetrics};
use tracejoin::derive::servicegraph::{ServiceGraph, ServiceGraphConfig};
use tracejoin::model::{SpanId, SpanSummary, TraceId};

const SPANS_PER_RECORD: usize = 50;
/// Records in the pool: 2,600 × 50 = 130,000 distinct spans, more than the default window.
const POOL: usize = 2_600;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// One record: 50 spans of 5 services; `ops` distinct operation names per service.
fn span_record(ops: usize) -> Vec<u8> {
    let services = ["frontend", "checkout", "payments", "inventory", "shipping"];
    let resource_spans = services
        .iter()
        .enumerate()
        .map(|(si, svc)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(svc)),
                    kv("service.version", s("1.4.2")),
                    kv("k8s.pod.name", s(&format!("{svc}-7d9f-x2x{si}"))),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..SPANS_PER_RECORD / services.len())
                    .map(|_| {
                        let op = rand::random_range(0..ops);
                        let start = 1_700_000_000_000_000_000u64;
                        Span {
                            trace_id: rand::random::<[u8; 16]>().map(|b| b | 1).to_vec(),
                            span_id: rand::random::<[u8; 8]>().map(|b| b | 1).to_vec(),
                            parent_span_id: rand::random::<[u8; 8]>().to_vec(),
                            name: format!("POST /api/v1/op{op}"),
                            kind: span::SpanKind::Server as i32,
                            start_time_unix_nano: start,
                            end_time_unix_nano: start + rand::random_range(100_000..2_000_000_000),
                            attributes: vec![
                                kv("http.route", s(&format!("/api/v1/op{op}"))),
                                kv("http.request.method", s("POST")),
                                kv(
                                    "http.response.status_code",
                                    any_value::Value::IntValue(if op % 11 == 0 {
                                        503
                                    } else {
                                        200
                                    }),
                                ),
                                kv(
                                    "url.full",
                                    s(&format!("https://shop.example.com/api/v1/op{op}?id=7")),
                                ),
                                kv("user_agent.original", s("Mozilla/5.0 (X11; Linux x86_64)")),
                                kv("network.peer.address", s("10.1.2.3")),
                                kv("server.address", s("shop.example.com")),
                                kv("server.port", any_value::Value::IntValue(443)),
                                kv("thread.id", any_value::Value::IntValue(42)),
                                kv("code.function", s("handle")),
                            ],
                            status: Some(Status {
                                code: if op % 11 == 0 { 2 } else { 0 },
                                ..Default::default()
                            }),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn keep() -> Vec<String> {
    tracejoin::config::JoinConfig::default().span_attributes
}

fn pool(ops: usize) -> Vec<Bytes> {
    (0..POOL).map(|_| Bytes::from(span_record(ops))).collect()
}

fn with_dims(mut c: RedConfig) -> RedConfig {
    c.dimensions = ["http.route", "http.response.status_code"]
        .iter()
        .map(|n| Dimension {
            name: n.to_string(),
            default: None,
        })
        .collect();
    c
}

/// Decode + RED update of one record, in the pipeline's order.
fn decode_and_red(c: &mut Criterion) {
    let mut g = c.benchmark_group("derive_decode_red");
    g.throughput(Throughput::Elements(SPANS_PER_RECORD as u64));
    let cases: [(&str, usize, RedConfig); 4] = [
        ("decode_only", 7, RedConfig::default()),
        ("default_35_series", 7, RedConfig::default()),
        ("dims2_35_series", 7, with_dims(RedConfig::default())),
        ("default_10k_series", 2_000, RedConfig::default()),
    ];
    for (name, ops, cfg) in cases {
        let records = pool(ops);
        let mut decoder = SpanDecoder::new(&keep(), 100_000);
        let mut red = RedMetrics::new(&cfg).unwrap();
        let red_on = name != "decode_only";
        // Warm: every series exists, as in steady state.
        let mut out = Vec::with_capacity(SPANS_PER_RECORD);
        for r in &records {
            out.clear();
            decoder.decode_proto(r, &mut out).unwrap();
            if red_on {
                red.observe(&out);
            }
        }
        let next = Cell::new(0usize);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let i = next.get();
                    next.set(i + 1);
                    records[i % POOL].clone()
                },
                |bytes| {
                    out.clear();
                    decoder.decode_proto(&bytes, &mut out).unwrap();
                    if red_on {
                        red.observe(&out).counted
                    } else {
                        out.len() as u64
                    }
                },
                BatchSize::SmallInput,
            )
        });
        if red_on {
            eprintln!(
                "{name}: {} series, {} spans in overflow",
                red.series(),
                red.overflowed()
            );
        }
    }
    g.finish();
}

/// RED update alone, on decoded spans.
fn red_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("derive_red_update");
    g.throughput(Throughput::Elements(SPANS_PER_RECORD as u64));
    let mut decoder = SpanDecoder::new(&keep(), 100_000);
    let template: Vec<SpanSummary> = {
        let mut out = Vec::new();
        decoder.decode_proto(&span_record(7), &mut out).unwrap();
        out
    };
    for (name, cfg) in [
        ("default", RedConfig::default()),
        (
            "no_dedup",
            RedConfig {
                dedup_window: 0,
                ..RedConfig::default()
            },
        ),
        ("dims2", with_dims(RedConfig::default())),
    ] {
        let mut red = RedMetrics::new(&cfg).unwrap();
        let n = Cell::new(0u64);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Fresh ids for every span, outside the timed part.
                    let mut spans = template.clone();
                    for s in &mut spans {
                        let i = n.get() + 1;
                        n.set(i);
                        s.trace_id =
                            TraceId([[0xab; 8], i.to_be_bytes()].concat().try_into().unwrap());
                        s.span_id = SpanId(i.to_be_bytes());
                    }
                    spans
                },
                |spans| red.observe(&spans).counted,
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// One record of `SPANS_PER_RECORD / 2` requests, each a client span and the server span it
/// calls (another service), as an SDK batch of a busy service mesh carries them: what the
/// service graph pairs.
fn pair_record(ops: usize) -> Vec<u8> {
    let services = ["frontend", "checkout", "payments", "inventory", "shipping"];
    let start = 1_700_000_000_000_000_000u64;
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services.len()];
    for _ in 0..SPANS_PER_RECORD / 2 {
        let op = rand::random_range(0..ops);
        let trace_id = rand::random::<[u8; 16]>().map(|b| b | 1).to_vec();
        let client_id = rand::random::<[u8; 8]>().map(|b| b | 1).to_vec();
        let from = rand::random_range(0..services.len());
        let to = (from + 1 + rand::random_range(0..services.len() - 1)) % services.len();
        let span = |kind: span::SpanKind, id: Vec<u8>, parent: Vec<u8>, micros: u64| Span {
            trace_id: trace_id.clone(),
            span_id: id,
            parent_span_id: parent,
            name: format!("POST /api/v1/op{op}"),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + micros * 1000,
            attributes: vec![
                kv("http.route", s(&format!("/api/v1/op{op}"))),
                kv("http.request.method", s("POST")),
                kv("server.address", s(services[to])),
                kv("network.peer.address", s("10.1.2.3")),
            ],
            status: Some(Status {
                code: if op % 11 == 0 { 2 } else { 0 },
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = rand::random_range(100..2_000_000u64);
        by_service[from].push(span(
            span::SpanKind::Client,
            client_id.clone(),
            rand::random::<[u8; 8]>().to_vec(),
            d + 300,
        ));
        by_service[to].push(span(
            span::SpanKind::Server,
            rand::random::<[u8; 8]>().map(|b| b | 1).to_vec(),
            client_id,
            d,
        ));
    }
    let resource_spans = services
        .iter()
        .zip(by_service)
        .map(|(svc, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(svc))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// What the service graph adds to decode + RED, on records of client/server pairs (both halves
/// of an edge in the same record, the common case for an SDK batch of one process that calls
/// itself over the network; across records a half waits in the store first).
fn decode_red_service_graph(c: &mut Criterion) {
    let mut g = c.benchmark_group("derive_service_graph");
    g.throughput(Throughput::Elements(SPANS_PER_RECORD as u64));
    let records: Vec<Bytes> = (0..POOL).map(|_| Bytes::from(pair_record(7))).collect();
    let graph_cfg = ServiceGraphConfig::default();
    let mut keep = keep();
    keep.extend(graph_cfg.span_attributes());
    for (name, graph_on) in [("decode_red", false), ("decode_red_graph", true)] {
        let mut decoder = SpanDecoder::new(&keep, 100_000);
        let mut red = RedMetrics::new(&RedConfig::default()).unwrap();
        let mut graph = ServiceGraph::new(&graph_cfg).unwrap();
        let mut out = Vec::with_capacity(SPANS_PER_RECORD);
        for r in &records {
            out.clear();
            decoder.decode_proto(r, &mut out).unwrap();
            red.observe(&out);
            if graph_on {
                graph.observe(&out);
            }
        }
        let next = Cell::new(0usize);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let i = next.get();
                    next.set(i + 1);
                    records[i % POOL].clone()
                },
                |bytes| {
                    out.clear();
                    decoder.decode_proto(&bytes, &mut out).unwrap();
                    let n = red.observe(&out).counted;
                    if graph_on {
                        graph.observe(&out);
                    }
                    n
                },
                BatchSize::SmallInput,
            )
        });
        if graph_on {
            eprintln!("{name}: {:?}", graph.stats());
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    decode_and_red,
    red_update,
    decode_red_service_graph
);
criterion_main!(benches);
