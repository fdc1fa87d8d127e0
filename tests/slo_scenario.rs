//! The SLO issue's scenario through the whole pipeline on a real broker: steady traffic on two
//! endpoints, then `POST /api/checkout` starts failing with one database error in its logs
//! while `GET /api/cart` keeps a trickle of unrelated cache errors; then recovery. 45 minutes
//! of event time (span and log timestamps) are produced in seconds, no sleeping.
//!
//! Checked on `/metrics` and the attribution topic: at the peak the 5m burn rate is above 14.4,
//! and the attribution names the failing endpoint and the database error's template with the
//! dominant share; exactly one `page_quick` attribution event says the same; after recovery the
//! 5m burn rate decays below 1 while the 1h window still remembers.
//!
//! Needs the pipeline to run an SLO engine from `config.rules.slo` (a path to an SLO file) and
//! to produce attribution events to `config.outputs.attribution_topic`.

mod common;

use common::exposition::value;
use common::*;
use futures::future::join_all;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::{Duration, Instant};

const S: u64 = 1_000_000_000;
const MIN: u64 = 60 * S;

const SLO_YAML: &str = "slos:
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

const DB_TEMPLATE: &str = "db query failed: ERROR <num> (HY000): Lock wait timeout exceeded; \
                           try restarting transaction (order <num>)";

/// Ids of request `n` of this run: the trace, its server span and its DB client span.
struct Ids {
    trace: [u8; 16],
    server: [u8; 8],
    db: [u8; 8],
}

fn ids(run: u32, n: u64) -> Ids {
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
struct Step {
    spans: Vec<u8>,
    logs: Vec<String>,
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
fn step(run: u32, i: u64, t: u64, base: u64) -> Step {
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
async fn produce_steps(
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

fn burn_5m(exposition: &str) -> Option<f64> {
    value(
        exposition,
        "slo:sli_error:ratio_rate5m",
        &[("sloth_slo", "shop-api")],
    )
    .map(|r| r / 0.01)
}

/// Reads the attribution topic until an event satisfies `want` (or 60 s); all events read.
async fn attribution_events(
    topic: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let topic = topic.to_string();
        let events: Vec<serde_json::Value> =
            tokio::task::spawn_blocking(move || consume(&topic, 1000, Duration::from_secs(2)))
                .await
                .unwrap()
                .iter()
                .map(Record::json)
                .collect();
        if events.iter().any(&want) || Instant::now() > deadline {
            return events;
        }
    }
}

/// Polls `/metrics` until `ok` holds; returns that exposition.
async fn wait_metrics(running: &Running, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let m = running.health.render();
        if ok(&m) {
            return m;
        }
        if Instant::now() > deadline {
            let slo: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("slo:") || l.starts_with("tracejoin_slo"))
                .collect();
            panic!(
                "timed out waiting for {what}; SLO series:\n{}",
                slo.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_crosses_14_4_attribution_names_endpoint_and_db_error_then_decays() {
    let t = Topics::create("slo-", 1).await;
    let (spans, logs) = (&t.spans, &t.logs);
    let attr = unique("slo-attribution");
    create_topics(&[&attr], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let slo_path = dir.path().join("slo.yaml");
    std::fs::write(&slo_path, SLO_YAML).unwrap();

    let mut config = t.config();
    // Integration: the SLO file and the attribution topic (see the module docs).
    config.rules.slo = Some(slo_path);
    config.outputs.attribution_topic = Some(attr.clone());
    let running = start(config);

    let run: u32 = rand::random();
    let now = now_nanos();
    // 45 minutes of event time ending 5 minutes ago (nothing in the future to clamp).
    let base = (now - 50 * MIN) / S * S;
    let p = producer();
    let steps_per_min = 30;

    // Steady, then the failure: up to minute 29.
    produce_steps(&p, spans, logs, run, base, 0, 29 * steps_per_min).await;
    let peak = wait_metrics(
        &running,
        "the 5m burn rate over 14.4 with attribution",
        |m| {
            burn_5m(m).is_some_and(|b| b > 14.4)
                && value(
                    m,
                    "tracejoin_slo_burn_attribution_ratio",
                    &[("window", "5m"), ("cause", DB_TEMPLATE)],
                )
                .is_some_and(|s| s > 0.9)
        },
    )
    .await;
    let peak_lines: Vec<&str> = peak
        .lines()
        .filter(|l| {
            l.starts_with("slo:sli_error:ratio_rate5m")
                || l.starts_with("slo:current_burn_rate")
                || l.starts_with("tracejoin_slo_burn_attribution_ratio")
                    && l.contains("window=\"5m\"")
                || l.starts_with("tracejoin_slo_events_total")
        })
        .collect();
    println!("/metrics at the peak:\n{}", peak_lines.join("\n"));
    let line = peak_lines
        .iter()
        .find(|l| l.starts_with("tracejoin_slo_burn_attribution_ratio") && l.contains(DB_TEMPLATE))
        .unwrap();
    assert!(line.contains("operation=\"POST /api/checkout\""), "{line}");

    // One page_quick attribution event, naming the endpoint and the error.
    let events = attribution_events(&attr, |e| e["alert"] == "page_quick").await;
    let pages: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["alert"] == "page_quick")
        .collect();
    assert!(!pages.is_empty(), "no page_quick event in {events:#?}");
    let e = &pages[0];
    println!("attribution event: {e}");
    assert_eq!(e["slo"], "shop-api");
    assert!(e["burn_rate"].as_f64().unwrap() > 14.4, "{e}");
    assert!(e["long_window_burn_rate"].as_f64().unwrap() > 14.4, "{e}");
    assert_eq!(e["operations"][0]["operation"], "POST /api/checkout");
    assert!(e["operations"][0]["share"].as_f64().unwrap() > 0.9, "{e}");
    assert_eq!(e["causes"][0]["cause"], DB_TEMPLATE);
    assert!(e["causes"][0]["share"].as_f64().unwrap() > 0.9, "{e}");
    let crossed = e["event_time_unix_nanos"].as_u64().unwrap();
    assert!(
        (base + 15 * MIN..base + 29 * MIN).contains(&crossed),
        "crossed at minute {}",
        (crossed - base) as f64 / MIN as f64
    );

    // Recovery: 16 more minutes; the 5m burn rate decays, the 1h window remembers.
    produce_steps(
        &p,
        spans,
        logs,
        run,
        base,
        29 * steps_per_min,
        45 * steps_per_min,
    )
    .await;
    let after = wait_metrics(&running, "the 5m burn rate to decay below 1", |m| {
        burn_5m(m).is_some_and(|b| b < 1.0)
            && value(
                m,
                "slo:sli_error:ratio_rate1h",
                &[("sloth_slo", "shop-api")],
            )
            .is_some_and(|r| r > 0.05)
    })
    .await;
    println!("after recovery: 5m burn {:?}", burn_5m(&after));
    let events = consume(&attr, 100, Duration::from_secs(5));
    assert!(
        events
            .iter()
            .all(|r| r.key.as_deref() == Some(b"shop-shop-api".as_slice())),
        "keyed by sloth_id"
    );
    let page_crossings: std::collections::BTreeSet<u64> = events
        .iter()
        .map(Record::json)
        .filter(|e| e["alert"] == "page_quick")
        .map(|e| e["event_time_unix_nanos"].as_u64().unwrap())
        .collect();
    assert_eq!(
        page_crossings.len(),
        1,
        "one crossing, one event: {:#?}",
        events.iter().map(Record::json).collect::<Vec<_>>()
    );
    // The engine's own counts are on /metrics: every event read was counted as produced.
    let m = running.health.render();
    let distinct: std::collections::BTreeSet<(String, u64)> = events
        .iter()
        .map(Record::json)
        .map(|e| {
            let alert = e["alert"].as_str().unwrap_or_default().to_string();
            (
                alert,
                e["event_time_unix_nanos"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let produced = value(&m, "tracejoin_slo_attribution_events_total", &[]).unwrap_or(0.0);
    assert!(
        produced >= distinct.len() as f64 && produced >= 1.0,
        "tracejoin_slo_attribution_events_total {produced}, {} events read",
        distinct.len()
    );
    assert!(
        value(&m, "tracejoin_slo_state_bytes", &[]).is_some_and(|b| b > 0.0),
        "tracejoin_slo_state_bytes"
    );
    assert!(
        value(&m, "tracejoin_slo_pending_bad_events", &[]).is_some(),
        "tracejoin_slo_pending_bad_events"
    );
    running.stop().await;
}
