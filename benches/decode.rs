//! Decode stage: OTLP span records (the wire scanner the worker uses, and decoding into the full
//! generated types for scale) and log lines of every shape.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use std::hint::black_box;
use std::sync::Arc;
use tracejoin::decode::logline::{InputLogFormat, LogDecoder};
use tracejoin::decode::otlp::SpanDecoder;
use tracejoin::decode::rules::ExtractRules;
use tracejoin::model::Origin;

const SPANS_PER_RECORD: usize = 50;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

/// A realistic record: 50 spans of 5 services with a dozen attributes each, as an SDK batch.
fn span_record() -> Vec<u8> {
    let services = ["frontend", "checkout", "payments", "inventory", "shipping"];
    let resource_spans = services
        .iter()
        .enumerate()
        .map(|(si, svc)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue(svc.to_string()),
                    ),
                    kv(
                        "service.version",
                        any_value::Value::StringValue("1.4.2".into()),
                    ),
                    kv(
                        "k8s.pod.name",
                        any_value::Value::StringValue(format!("{svc}-7d9f-x2x{si}")),
                    ),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..SPANS_PER_RECORD / services.len())
                    .map(|i| Span {
                        trace_id: rand::random::<[u8; 16]>().to_vec(),
                        span_id: rand::random::<[u8; 8]>().to_vec(),
                        parent_span_id: rand::random::<[u8; 8]>().to_vec(),
                        name: format!("POST /api/v1/op{}", i % 7),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_050_000_000,
                        attributes: vec![
                            kv(
                                "http.route",
                                any_value::Value::StringValue(format!("/api/v1/op{}", i % 7)),
                            ),
                            kv(
                                "http.request.method",
                                any_value::Value::StringValue("POST".into()),
                            ),
                            kv("http.response.status_code", any_value::Value::IntValue(200)),
                            kv(
                                "url.full",
                                any_value::Value::StringValue(format!(
                                    "https://shop.example.com/api/v1/op{}?id={i}",
                                    i % 7
                                )),
                            ),
                            kv(
                                "user_agent.original",
                                any_value::Value::StringValue(
                                    "Mozilla/5.0 (X11; Linux x86_64)".into(),
                                ),
                            ),
                            kv(
                                "network.peer.address",
                                any_value::Value::StringValue("10.1.2.3".into()),
                            ),
                            kv(
                                "server.address",
                                any_value::Value::StringValue("shop.example.com".into()),
                            ),
                            kv("server.port", any_value::Value::IntValue(443)),
                            kv("thread.id", any_value::Value::IntValue(42)),
                            kv(
                                "code.function",
                                any_value::Value::StringValue("handle".into()),
                            ),
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
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// The shape of the profiled span backlog: five server spans, each in its own `ResourceSpans`
/// with `service.name`, and two attributes.
fn span_record_small() -> Vec<u8> {
    let resource_spans = (0..5)
        .map(|i| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(format!("svc{i}")),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: rand::random::<[u8; 16]>().to_vec(),
                    span_id: rand::random::<[u8; 8]>().to_vec(),
                    parent_span_id: rand::random::<[u8; 8]>().to_vec(),
                    name: format!("GET /api/v1/op{i}"),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_050_000_000,
                    attributes: vec![
                        kv(
                            "http.route",
                            any_value::Value::StringValue(format!("/api/v1/op{i}")),
                        ),
                        kv("http.response.status_code", any_value::Value::IntValue(200)),
                    ],
                    status: Some(Status::default()),
                    ..Default::default()
                }],
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

fn spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_spans");
    // The worker hands the decoder the Kafka payload as `&[u8]`, as here: the prost decoder this
    // replaced needed a `Bytes` copy of it, which this benchmark timed too.
    for (name, record, n) in [
        ("proto_batch50", span_record(), SPANS_PER_RECORD),
        ("proto_backlog5", span_record_small(), 5),
    ] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(name, |b| {
            let mut d = SpanDecoder::new(&keep(), 10_000);
            let mut out = Vec::with_capacity(n);
            b.iter(|| {
                out.clear();
                d.decode_proto(black_box(&record), &mut out).unwrap();
                out.len()
            })
        });
    }
    // The "before" of the lean messages: opentelemetry-proto's generated types (every string
    // owned).
    let record = span_record();
    g.throughput(Throughput::Elements(SPANS_PER_RECORD as u64));
    g.bench_function("full_generated_types", |b| {
        b.iter_batched(
            || Bytes::copy_from_slice(&record),
            |bytes| {
                ExportTraceServiceRequest::decode(bytes)
                    .unwrap()
                    .resource_spans
                    .len()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn log_lines(c: &mut Criterion) {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    let lines = [
        ("json", format!(r#"{{"timestamp":"2024-05-01T12:00:00.123Z","level":"ERROR","message":"payment declined for order 1234","trace_id":"{t}","span_id":"{s}","service":"payments","logger":"payments.handler","user":{{"id":7}}}}"#)),
        ("logfmt", format!(r#"ts=2024-05-01T12:00:00.123Z level=warn service=checkout msg="slow query on accounts took 412ms" trace_id={t} span_id={s}"#)),
        ("text", format!("2024-05-01 12:00:00.123 ERROR [payments] payment declined for order 1234 trace_id={t} span_id={s}")),
    ];
    let rules = Arc::new(ExtractRules::builtin().compile().unwrap());
    let mut g = c.benchmark_group("decode_log_line");
    g.throughput(Throughput::Elements(1));
    for (name, line) in lines {
        g.bench_function(name, |b| {
            let mut d = LogDecoder::new(rules.clone(), 10_000);
            let mut out = Vec::with_capacity(1);
            let origin = Origin {
                topic: 1,
                partition: 0,
                offset: 0,
            };
            // The copy is timed: the worker makes it for every record (the decoded log keeps
            // slices of it, and librdkafka's buffer is only lent).
            b.iter(|| {
                out.clear();
                let bytes = Bytes::copy_from_slice(line.as_bytes());
                d.decode(bytes, InputLogFormat::Auto, origin, 0, &mut out)
                    .unwrap();
                out.len()
            })
        });
    }
    g.finish();
}

/// Plain-text lines of the shapes the default rules know, without ids (the common case: most
/// lines of a service are not inside a traced request, or its logger does not print the ids) and
/// with ids; each iteration decodes all eight, throughput is per line.
fn text_mixes() -> [(&'static str, Vec<String>); 2] {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    let no_ids = vec![
        "2024-05-01 12:00:00.123 ERROR [payments] payment declined for order 1234".to_string(),
        "2024-05-01T12:00:00.123Z  INFO 12345 --- [payments] [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat started on port 8080 (http) with context path '/'".to_string(),
        "I0501 12:00:00.123456   12345 controller.go:123] Reconciling deployment default/web".to_string(),
        r#"10.1.2.3 - - [01/May/2024:12:00:00 +0000] "GET /api/v1/cart HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)""#.to_string(),
        "2024-05-01 12:00:00,123 WARNING urllib3.connectionpool Retrying (Retry(total=2)) after connection broken".to_string(),
        "<34>1 2024-05-01T12:00:00.123Z host01 payments 1234 ID47 - 'su root' failed for lonvick on /dev/pts/8".to_string(),
        "Starting worker pool with 16 threads, queue capacity 1024".to_string(),
        "E0501 12:00:00.123456    4321 server.go:88] failed to connect to upstream 10.0.0.7:5432: connection refused".to_string(),
    ];
    let with_ids = vec![
        format!("2024-05-01 12:00:00.123 ERROR [payments] payment declined for order 1234 trace_id={t} span_id={s}"),
        format!("2024-05-01T12:00:00.123Z ERROR 12345 --- [payments] [nio-8080-exec-1] [{t}-{s}] c.e.p.PaymentController : payment declined"),
        format!("2024-05-01 12:00:00.123  INFO [payments,{},{s},true] 12345 --- [nio-8080-exec-1] c.e.p.PaymentController : payment declined", &t[16..]),
        format!("2024-05-01T12:00:00.123Z XRAY TraceId: 1-{}-{} SegmentId: {s} payment declined", &t[..8], &t[8..]),
        format!(r#"10.1.2.3 - - [01/May/2024:12:00:00 +0000] "GET /api/v1/cart HTTP/1.1" 500 512 "-" "curl/8.5.0" "00-{t}-{s}-01""#),
        format!("2024-05-01 12:00:00.123 WARN uber-trace-id: {t}:{s}:0:1 slow upstream"),
        format!("2024-05-01 12:00:00.123 INFO request done b3: {t}-{s}-1"),
        format!("GET /cart 500 traceparent: 00-{t}-{s}-01"),
    ];
    [("text_no_ids", no_ids), ("text_with_ids", with_ids)]
}

fn text_lines(c: &mut Criterion) {
    let rules = Arc::new(ExtractRules::builtin().compile().unwrap());
    let mut g = c.benchmark_group("decode_text_line");
    for (name, lines) in text_mixes() {
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            let mut d = LogDecoder::new(rules.clone(), 10_000);
            let mut out = Vec::with_capacity(lines.len());
            let origin = Origin {
                topic: 1,
                partition: 0,
                offset: 0,
            };
            // The copy per record is timed, as in `log_lines`.
            b.iter(|| {
                out.clear();
                for l in &lines {
                    let r = Bytes::copy_from_slice(l.as_bytes());
                    d.decode(r, InputLogFormat::Text, origin, 0, &mut out)
                        .unwrap();
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, spans, log_lines, text_lines);
criterion_main!(benches);
