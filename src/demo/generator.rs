//! Realistic traffic for the demo: nested spans over several services, errors, and logs in every
//! supported shape, with the disorder real pipelines have.
//!
//! Per trace: `frontend GET /checkout` (server) → `checkout POST /cart/checkout` (server) →
//! `payments POST /charge` (server) and `inventory reserve` (consumer), with client and
//! database spans between. Mixed in, on purpose:
//! - logs in OTLP protobuf, JSON, logfmt and plain text, one shape per log;
//! - spans as OTLP protobuf, some as OTLP/JSON;
//! - traces whose spans are produced after their logs (out of order across topics);
//! - logs from a span that is never exported (→ `matched_trace`), traces never exported at all
//!   (→ `unmatched`), logs without trace context (→ `no_trace_id`), logs stamped seconds in the
//!   past (→ `late`), and a few undecodable records (→ dead-letter topic).
//!
//! Why one file over 600 lines: the generator is one realistic traffic model (services, nested spans, every log shape and failure the demo shows); splitting it would scatter one scenario.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use rand::{Rng, RngCore};
use std::fmt::Write as _;

/// One record to produce.
pub struct GenRecord {
    /// `true` for the spans topic, `false` for the logs topic.
    pub spans: bool,
    /// Key: the trace id in hex, or none.
    pub key: Option<String>,
    /// Value.
    pub payload: Vec<u8>,
    /// Produce no earlier than this many milliseconds from now (out-of-order delivery).
    pub delay_ms: u64,
}

/// Counts of what was generated, to compare with what came out.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    /// Traces.
    pub traces: u64,
    /// Spans (exported ones).
    pub spans: u64,
    /// Log records.
    pub logs: u64,
    /// Undecodable records.
    pub garbage: u64,
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}
fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

struct GenSpan {
    service: &'static str,
    span: Span,
}

#[derive(Clone, Copy)]
enum Shape {
    Otlp,
    Json,
    Logfmt,
    Text,
}

struct GenLog {
    service: &'static str,
    trace_id: Option<[u8; 16]>,
    span_id: Option<[u8; 8]>,
    ts: u64,
    level: &'static str,
    message: String,
    shape: Shape,
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Generates one trace's records.
pub fn trace(rng: &mut impl Rng, seq: u64, out: &mut Vec<GenRecord>, counts: &mut Generated) {
    let mut trace_id = [0u8; 16];
    rng.fill_bytes(&mut trace_id);
    let new_span_id = |rng: &mut dyn RngCore| {
        let mut b = [0u8; 8];
        rng.fill_bytes(&mut b);
        b[0] |= 1;
        b
    };
    let end = now_nanos();
    let total_ms = rng.random_range(20..400u64);
    let start = end - total_ms * 1_000_000;
    let failing = rng.random_bool(0.1);
    let slow = rng.random_bool(0.05);
    let order = 1000 + seq % 9000;

    let mk = |service,
              id: [u8; 8],
              parent: Option<[u8; 8]>,
              name: &str,
              kind: span::SpanKind,
              s0: u64,
              s1: u64,
              err: Option<(&str, &str)>,
              attrs: Vec<KeyValue>| GenSpan {
        service,
        span: Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: s0,
            end_time_unix_nano: s1,
            attributes: attrs,
            events: err
                .map(|(ty, msg)| {
                    vec![span::Event {
                        name: "exception".into(),
                        time_unix_nano: s1,
                        attributes: vec![
                            kv("exception.type", s(ty)),
                            kv("exception.message", s(msg)),
                        ],
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            status: Some(Status {
                code: if err.is_some() {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Unset
                } as i32,
                message: err.map(|(_, m)| m.to_string()).unwrap_or_default(),
            }),
            ..Default::default()
        },
    };
    let at = |frac: f64| start + ((end - start) as f64 * frac) as u64;
    let (root, co, pay, inv, db, hidden) = (
        new_span_id(rng),
        new_span_id(rng),
        new_span_id(rng),
        new_span_id(rng),
        new_span_id(rng),
        new_span_id(rng),
    );
    let status = if failing { 502 } else { 200 };
    let spans = vec![
        mk(
            "frontend",
            root,
            None,
            "GET /checkout",
            span::SpanKind::Server,
            start,
            end,
            failing.then_some(("UpstreamError", "checkout failed")),
            vec![
                kv("http.route", s("/checkout")),
                kv("http.request.method", s("GET")),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(status),
                ),
            ],
        ),
        mk(
            "checkout",
            co,
            Some(root),
            "POST /cart/checkout",
            span::SpanKind::Server,
            at(0.05),
            at(0.95),
            failing.then_some(("PaymentError", "payment declined")),
            vec![
                kv("http.route", s("/cart/checkout")),
                kv("http.request.method", s("POST")),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(status),
                ),
            ],
        ),
        mk(
            "payments",
            pay,
            Some(co),
            "POST /charge",
            span::SpanKind::Server,
            at(0.2),
            at(if slow { 0.9 } else { 0.6 }),
            failing.then_some(("CardDeclinedError", "card declined by issuer")),
            vec![
                kv("http.route", s("/charge")),
                kv("http.request.method", s("POST")),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(if failing { 402 } else { 200 }),
                ),
            ],
        ),
        mk(
            "payments",
            db,
            Some(pay),
            "SELECT accounts",
            span::SpanKind::Client,
            at(0.25),
            at(0.4),
            None,
            vec![kv("db.system", s("postgresql"))],
        ),
        mk(
            "inventory",
            inv,
            Some(co),
            "reserve",
            span::SpanKind::Consumer,
            at(0.65),
            at(0.9),
            None,
            vec![kv("messaging.destination.name", s("reservations"))],
        ),
    ];

    // Scenario switches.
    let exported = !rng.random_bool(0.06);
    let logs_first = rng.random_bool(0.15);
    let as_json = rng.random_bool(0.1);

    let mut logs = vec![
        GenLog {
            service: "frontend",
            trace_id: Some(trace_id),
            span_id: Some(root),
            ts: at(0.02),
            level: "INFO",
            message: format!("GET /checkout order={order}"),
            shape: Shape::Json,
        },
        GenLog {
            service: "checkout",
            trace_id: Some(trace_id),
            span_id: Some(co),
            ts: at(0.1),
            level: "INFO",
            message: format!("checkout started for order {order} items=3"),
            shape: Shape::Logfmt,
        },
        GenLog {
            service: "payments",
            trace_id: Some(trace_id),
            span_id: Some(pay),
            ts: at(0.3),
            level: "DEBUG",
            message: format!(
                "charging card ****{:04} amount={}.{:02}",
                order % 10000,
                order % 300,
                order % 100
            ),
            shape: Shape::Otlp,
        },
        GenLog {
            service: "inventory",
            trace_id: Some(trace_id),
            span_id: Some(inv),
            ts: at(0.7),
            level: "INFO",
            message: format!("reserved 3 items for order {order}"),
            shape: Shape::Text,
        },
    ];
    if failing {
        logs.push(GenLog {
            service: "payments",
            trace_id: Some(trace_id),
            span_id: Some(pay),
            ts: at(0.55),
            level: "ERROR",
            message: format!("payment declined: card_declined for order {order} (issuer code 05)"),
            shape: Shape::Json,
        });
    }
    if slow {
        logs.push(GenLog {
            service: "payments",
            trace_id: Some(trace_id),
            span_id: Some(db),
            ts: at(0.35),
            level: "WARN",
            message: "slow query on accounts took 412ms".into(),
            shape: Shape::Logfmt,
        });
    }
    if rng.random_bool(0.15) {
        // An internal span the service does not export: its logs match the trace, not a span.
        logs.push(GenLog {
            service: "checkout",
            trace_id: Some(trace_id),
            span_id: Some(hidden),
            ts: at(0.5),
            level: "INFO",
            message: format!("cache miss for cart {order}"),
            shape: Shape::Json,
        });
    }
    if rng.random_bool(0.1) {
        logs.push(GenLog {
            service: "frontend",
            trace_id: None,
            span_id: None,
            ts: at(0.5),
            level: "INFO",
            message: "health check ok".into(),
            shape: Shape::Text,
        });
    }
    let late = rng.random_bool(0.03).then(|| {
        // Delivered 4 s after it was written: the watermark has passed its wait by then.
        GenLog {
            service: "checkout",
            trace_id: Some(trace_id),
            span_id: Some(co),
            ts: at(0.6),
            level: "WARN",
            message: format!("retrying stale request for order {order}"),
            shape: Shape::Json,
        }
    });

    let key = Some(hex(&trace_id));
    let spans_delay = if logs_first {
        rng.random_range(300..1200)
    } else {
        0
    };
    if exported {
        counts.spans += spans.len() as u64;
        out.push(GenRecord {
            spans: true,
            key: key.clone(),
            payload: if as_json {
                spans_json(&spans)
            } else {
                spans_proto(&spans)
            },
            delay_ms: spans_delay,
        });
    }
    counts.traces += 1;
    counts.logs += logs.len() as u64;
    // OTLP logs of one trace travel together, as an SDK batch would.
    let otlp: Vec<&GenLog> = logs
        .iter()
        .filter(|l| matches!(l.shape, Shape::Otlp))
        .collect();
    if !otlp.is_empty() {
        out.push(GenRecord {
            spans: false,
            key: key.clone(),
            payload: logs_proto(&otlp),
            delay_ms: 0,
        });
    }
    for l in logs.iter().filter(|l| !matches!(l.shape, Shape::Otlp)) {
        out.push(GenRecord {
            spans: false,
            key: l.trace_id.map(|t| hex(&t)),
            payload: raw_line(l).into_bytes(),
            delay_ms: 0,
        });
    }
    if let Some(l) = late {
        counts.logs += 1;
        out.push(GenRecord {
            spans: false,
            key: key.clone(),
            payload: raw_line(&l).into_bytes(),
            delay_ms: 4000,
        });
    }
    if seq % 1500 == 7 {
        counts.garbage += 1;
        out.push(GenRecord {
            spans: true,
            key: key.clone(),
            payload: vec![0x0a, 0xff, 0xff, 0x01, 0x02],
            delay_ms: 0,
        });
    }
}

fn spans_proto(spans: &[GenSpan]) -> Vec<u8> {
    let mut req = ExportTraceServiceRequest::default();
    for service in ["frontend", "checkout", "payments", "inventory"] {
        let these: Vec<Span> = spans
            .iter()
            .filter(|g| g.service == service)
            .map(|g| g.span.clone())
            .collect();
        if these.is_empty() {
            continue;
        }
        req.resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: these,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    req.encode_to_vec()
}

fn spans_json(spans: &[GenSpan]) -> Vec<u8> {
    let attr = |kvs: &[KeyValue]| -> Vec<serde_json::Value> {
        kvs.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => serde_json::json!({"stringValue": s}),
                    Some(any_value::Value::IntValue(i)) => {
                        serde_json::json!({"intValue": i.to_string()})
                    }
                    _ => serde_json::json!({}),
                };
                serde_json::json!({"key": kv.key, "value": v})
            })
            .collect()
    };
    let resource_spans: Vec<serde_json::Value> = ["frontend", "checkout", "payments", "inventory"]
        .iter()
        .map(|service| {
            let these: Vec<serde_json::Value> = spans
                .iter()
                .filter(|g| g.service == *service)
                .map(|g| {
                    let sp = &g.span;
                    serde_json::json!({
                        "traceId": hex(&sp.trace_id), "spanId": hex(&sp.span_id), "parentSpanId": hex(&sp.parent_span_id),
                        "name": sp.name, "kind": sp.kind,
                        "startTimeUnixNano": sp.start_time_unix_nano.to_string(), "endTimeUnixNano": sp.end_time_unix_nano.to_string(),
                        "attributes": attr(&sp.attributes),
                        "events": sp.events.iter().map(|e| serde_json::json!({"name": e.name, "timeUnixNano": e.time_unix_nano.to_string(), "attributes": attr(&e.attributes)})).collect::<Vec<_>>(),
                        "status": sp.status.as_ref().map(|st| serde_json::json!({"code": st.code, "message": st.message})),
                    })
                })
                .collect();
            serde_json::json!({"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}, "scopeSpans": [{"scope": {"name": "demo"}, "spans": these}]})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "resourceSpans": resource_spans })).unwrap_or_default()
}

fn logs_proto(logs: &[&GenLog]) -> Vec<u8> {
    let records = logs
        .iter()
        .map(|l| LogRecord {
            time_unix_nano: l.ts,
            observed_time_unix_nano: l.ts,
            severity_text: l.level.into(),
            severity_number: match l.level {
                "DEBUG" => 5,
                "INFO" => 9,
                "WARN" => 13,
                _ => 17,
            },
            body: Some(AnyValue {
                value: Some(s(&l.message)),
            }),
            trace_id: l.trace_id.map(|t| t.to_vec()).unwrap_or_default(),
            span_id: l.span_id.map(|t| t.to_vec()).unwrap_or_default(),
            flags: 1,
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(logs[0].service))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn raw_line(l: &GenLog) -> String {
    let ts = chrono::DateTime::from_timestamp_nanos(l.ts as i64);
    let iso = ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ids = |sep: &str| match (l.trace_id, l.span_id) {
        (Some(t), Some(sp)) => format!("{sep}trace_id={} span_id={}", hex(&t), hex(&sp)),
        _ => String::new(),
    };
    match l.shape {
        Shape::Json => {
            let mut v = serde_json::json!({"timestamp": iso, "level": l.level, "message": l.message, "service": l.service, "logger": format!("{}.handler", l.service)});
            if let (Some(t), Some(sp)) = (l.trace_id, l.span_id) {
                v["trace_id"] = hex(&t).into();
                v["span_id"] = hex(&sp).into();
            }
            v.to_string()
        }
        Shape::Logfmt => format!(
            "ts={iso} level={} service={} msg={:?}{}",
            l.level.to_lowercase(),
            l.service,
            l.message,
            ids(" ")
        ),
        Shape::Text | Shape::Otlp => format!(
            "{} {} [{}] {}{}",
            iso.replace('T', " ").trim_end_matches('Z'),
            l.level,
            l.service,
            l.message,
            ids(" ")
        ),
    }
}

/// Traffic at a steady rate of traces per second, with the delayed records (spans produced after
/// their logs, late logs) released when their time comes. Shared by the demo and the load
/// harness.
pub struct Traffic {
    rng: rand::rngs::StdRng,
    rate: f64,
    start: std::time::Instant,
    seq: u64,
    counts: Generated,
    batch: Vec<GenRecord>,
    delayed: Vec<(std::time::Instant, GenRecord)>,
}

impl Traffic {
    /// Traffic of `rate` traces per second from now, reproducible from `seed`.
    pub fn new(seed: u64, rate: f64) -> Self {
        use rand::SeedableRng;
        Traffic {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            rate,
            start: std::time::Instant::now(),
            seq: 0,
            counts: Generated::default(),
            batch: Vec::new(),
            delayed: Vec::new(),
        }
    }

    /// Appends to `out` every record due by now.
    pub fn due(&mut self, out: &mut Vec<GenRecord>) {
        let now = std::time::Instant::now();
        let due = (now.duration_since(self.start).as_secs_f64() * self.rate) as u64;
        while self.seq < due {
            trace(&mut self.rng, self.seq, &mut self.batch, &mut self.counts);
            self.seq += 1;
        }
        for r in self.batch.drain(..) {
            if r.delay_ms > 0 {
                self.delayed
                    .push((now + std::time::Duration::from_millis(r.delay_ms), r));
            } else {
                out.push(r);
            }
        }
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                out.push(self.delayed.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
    }

    /// Appends every record still held back (at the end of a run).
    pub fn rest(&mut self, out: &mut Vec<GenRecord>) {
        out.extend(self.delayed.drain(..).map(|(_, r)| r));
    }

    /// What was generated so far.
    pub fn counts(&self) -> Generated {
        self.counts
    }
}

/// Produces one record, waiting while librdkafka's queue is full.
pub fn send_blocking(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
) {
    let mut rec = rdkafka::producer::BaseRecord::<str, [u8]>::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    let mut rec = Some(rec);
    while let Some(record) = rec.take() {
        if let Err((_, back)) = producer.send(record) {
            std::thread::sleep(std::time::Duration::from_millis(2));
            rec = Some(back);
        }
    }
}
