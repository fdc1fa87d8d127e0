//! Repartition stage: splitting a batched, unkeyed span record (the Collector's default exporter)
//! into one record per trace. 50 spans of 10 traces over 5 services, as in `decode.rs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::hint::black_box;
use tracejoin::sources::repartition::{split_spans_json, split_spans_proto};

const SPANS: usize = 50;
const TRACES: usize = 10;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

fn record() -> ExportTraceServiceRequest {
    let traces: Vec<[u8; 16]> = (0..TRACES).map(|_| rand::random()).collect();
    let services = ["frontend", "checkout", "payments", "inventory", "shipping"];
    let per = SPANS / services.len();
    let resource_spans = services
        .iter()
        .enumerate()
        .map(|(si, svc)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", svc),
                    kv("service.version", "1.4.2"),
                    kv("k8s.pod.name", &format!("{svc}-7d9f-x2x{si}")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "2.1.0".into(),
                    ..Default::default()
                }),
                spans: (0..per)
                    .map(|i| Span {
                        trace_id: traces[(si * per + i) % TRACES].to_vec(),
                        span_id: rand::random::<[u8; 8]>().to_vec(),
                        parent_span_id: rand::random::<[u8; 8]>().to_vec(),
                        name: format!("POST /api/v1/op{}", i % 7),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_050_000_000,
                        attributes: vec![
                            kv("http.route", &format!("/api/v1/op{}", i % 7)),
                            kv("http.request.method", "POST"),
                            kv(
                                "url.full",
                                &format!("https://shop.example.com/api/v1/op{i}"),
                            ),
                            kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                            kv("network.peer.address", "10.1.2.3"),
                            kv("server.address", "shop.example.com"),
                        ],
                        status: Some(Status::default()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The same record as OTLP/JSON (hex ids, string nanos), written by hand: the proto crate here
/// is built without its serde feature.
fn json_record(req: &ExportTraceServiceRequest) -> Vec<u8> {
    use serde_json::json;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let kvs = |a: &[KeyValue]| {
        a.iter()
            .map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => {
                        json!({"key": kv.key, "value": {"stringValue": s}})
                    }
                    _ => json!({"key": kv.key}),
                },
            )
            .collect::<Vec<_>>()
    };
    let rs: Vec<_> = req
        .resource_spans
        .iter()
        .map(|rs| {
            json!({
                "resource": {"attributes": kvs(&rs.resource.as_ref().unwrap().attributes)},
                "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                    "scope": {"name": ss.scope.as_ref().unwrap().name},
                    "spans": ss.spans.iter().map(|s| json!({
                        "traceId": hex(&s.trace_id),
                        "spanId": hex(&s.span_id),
                        "parentSpanId": hex(&s.parent_span_id),
                        "name": s.name,
                        "kind": s.kind,
                        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                        "attributes": kvs(&s.attributes),
                        "status": {},
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceSpans": rs })).unwrap()
}

fn split(c: &mut Criterion) {
    let req = record();
    let proto = req.encode_to_vec();
    let json = json_record(&req);
    let mut g = c.benchmark_group("repartition_split_50_spans_10_traces");
    g.throughput(Throughput::Elements(SPANS as u64));
    let mut out = Vec::with_capacity(TRACES);
    g.bench_function("proto", |b| {
        b.iter(|| {
            out.clear();
            let stats = split_spans_proto(black_box(&proto), &mut out).unwrap();
            assert_eq!(stats.records as usize, TRACES);
            out.len()
        })
    });
    g.bench_function("json", |b| {
        b.iter(|| {
            out.clear();
            let stats = split_spans_json(black_box(&json), &mut out).unwrap();
            assert_eq!(stats.records as usize, TRACES);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, split);
criterion_main!(benches);
