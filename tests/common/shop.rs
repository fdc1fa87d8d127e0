//! The SLO issue's shop: steady traffic on two endpoints, then `POST /api/checkout` fails with
//! one database error in its logs from minute 15 to 30 while `GET /api/cart` keeps a trickle of
//! unrelated cache errors; then recovery. 45 minutes of event time (2 s steps), produced as OTLP
//! span records keyed by trace id and JSON log lines. Shared by the SLO tests.

use super::{hex, kv, resource_spans};
use futures::future::join_all;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

/// The shop's pipeline config over `t`: `SLO_YAML` as the SLO file (in the returned directory,
/// which must outlive the run) and a fresh attribution topic (`<prefix>-attribution`), created.
pub async fn config_with_slos(
    t: &super::Topics,
    prefix: &str,
) -> (tracejoin::config::Config, String, tempfile::TempDir) {
    let attr = super::unique(&format!("{prefix}-attribution"));
    super::create_topics(&[&attr], 1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let slo_path = dir.path().join("slo.yaml");
    std::fs::write(&slo_path, SLO_YAML).expect("write slo.yaml");
    let mut config = t.config();
    config.rules.slo = Some(slo_path);
    config.outputs.attribution_topic = Some(attr.clone());
    (config, attr, dir)
}

pub const S: u64 = 1_000_000_000;
pub const MIN: u64 = 60 * S;

pub const SLO_YAML: &str = "slos:
  - name: shop-api
    service: shop
    objective: 0.99
    time_window: 30d
    selector:
      span_name_regex: \"(GET|POST) /api/.*\"
      span_kinds: [server]
    indicator:
      availability:
        error_status: true
        bad_attributes: [\"http.response.status_code >= 500\"]
";

pub const DB_TEMPLATE: &str = "db query failed: ERROR <num> (HY000): Lock wait timeout exceeded; \
                           try restarting transaction (order <num>)";

/// Ids of request `n` of this run: the trace, its server span and its DB client span.
pub struct Ids {
    pub trace: [u8; 16],
    pub server: [u8; 8],
    pub db: [u8; 8],
}

pub fn ids(run: u32, n: u64) -> Ids {
    let mut trace = [0u8; 16];
    trace[..4].copy_from_slice(&run.to_be_bytes());
    trace[8..].copy_from_slice(&n.to_be_bytes());
    trace[4] = 1;
    let mut server = n.to_be_bytes();
    server[0] = 1;
    let mut db = n.to_be_bytes();
    db[0] = 2;
    Ids { trace, server, db }
}

/// What to produce for one 2 s step of event time.
pub struct Step {
    pub spans: Vec<u8>,
    pub logs: Vec<String>,
}

fn log_line(t: u64, level: &str, ids: &Ids, span: [u8; 8], msg: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_nanos(t as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    serde_json::json!({
        "timestamp": ts,
        "level": level,
        "trace_id": hex(&ids.trace),
        "span_id": hex(&span),
        "service": "shop",
        "message": msg,
    })
    .to_string()
}

/// Step `i` at event time `t` (nanoseconds), `base` the scenario's start: a cart request (1 in
/// 100 fails with a cache timeout) and a checkout request (9 in 10 fail with one database
/// error from minute 15 to 30, the DB span logging it before the server span logs its own).
pub fn step(run: u32, i: u64, t: u64, base: u64) -> Step {
    let minute = (t - base) / MIN;
    let cart = ids(run, 2 * i);
    let co = ids(run, 2 * i + 1);
    let cart_bad = i % 100 == 37;
    let co_bad = (15..30).contains(&minute) && i % 10 != 0;
    let server = |ids: &Ids, name: &str, bad: bool| Span {
        trace_id: ids.trace.to_vec(),
        span_id: ids.server.to_vec(),
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: t - 120_000_000,
        end_time_unix_nano: t,
        attributes: vec![
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(if bad { 500 } else { 200 }),
            ),
            kv("http.route", any_value::Value::StringValue(name.into())),
        ],
        status: Some(Status {
            code: if bad {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let db = Span {
        trace_id: co.trace.to_vec(),
        span_id: co.db.to_vec(),
        parent_span_id: co.server.to_vec(),
        name: "SELECT orders".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: t - 100_000_000,
        end_time_unix_nano: t - 20_000_000,
        ..Default::default()
    };
    let spans = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            "shop",
            vec![
                server(&cart, "GET /api/cart", cart_bad),
                db,
                server(&co, "POST /api/checkout", co_bad),
            ],
        )],
    }
    .encode_to_vec();
    let mut logs = vec![log_line(
        t - 60_000_000,
        "INFO",
        &cart,
        cart.server,
        "cart viewed",
    )];
    if cart_bad {
        logs.push(log_line(
            t - 10_000_000,
            "ERROR",
            &cart,
            cart.server,
            &format!(
                "cache lookup failed: redis 10.0.3.{}:6379 timed out after {}ms",
                i % 250,
                200 + i % 90
            ),
        ));
    }
    if co_bad {
        logs.push(log_line(
            t - 30_000_000,
            "ERROR",
            &co,
            co.db,
            &format!(
                "db query failed: ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting \
                 transaction (order {})",
                48_000 + i
            ),
        ));
        logs.push(log_line(
            t - 5_000_000,
            "ERROR",
            &co,
            co.server,
            &format!("request {} failed with status 500", 2 * i + 1),
        ));
    } else {
        logs.push(log_line(
            t - 5_000_000,
            "INFO",
            &co,
            co.server,
            "order placed",
        ));
    }
    Step { spans, logs }
}

/// Produces steps `from..to`, spans and logs interleaved in event-time order, many in flight.
pub async fn produce_steps(
    p: &FutureProducer,
    spans: &str,
    logs: &str,
    run: u32,
    base: u64,
    from: u64,
    to: u64,
) {
    let mut i = from;
    while i < to {
        let chunk: Vec<(String, Step)> = (i..to.min(i + 100))
            .map(|i| {
                let key = hex(&ids(run, 2 * i).trace);
                (key, step(run, i, base + i * 2 * S, base))
            })
            .collect();
        let mut pending = Vec::new();
        for (key, s) in &chunk {
            pending.push(
                p.send(
                    FutureRecord::<str, [u8]>::to(spans)
                        .key(key.as_str())
                        .payload(s.spans.as_slice()),
                    Timeout::After(Duration::from_secs(30)),
                ),
            );
            for l in &s.logs {
                pending.push(p.send(
                    FutureRecord::<str, [u8]>::to(logs).payload(l.as_bytes()),
                    Timeout::After(Duration::from_secs(30)),
                ));
            }
        }
        for r in join_all(pending).await {
            r.map_err(|(e, _)| e).expect("produce");
        }
        i += chunk.len() as u64;
    }
}
