//! From a metric to the trace and its logs: a real Prometheus (Debian's, started with
//! `--enable-feature=exemplar-storage` by `scripts/prometheus.sh`) scrapes tracejoin, asks for
//! OpenMetrics, and stores the exemplars on the RED series. Through `/api/v1/query_exemplars`
//! the test finds trace ids whose logs came out of the join, and on the error series a trace
//! whose *error* logs were joined (error series prefer those).

mod common;

use common::services::Prometheus;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const TRACES: u64 = 40;

fn ids(n: u64) -> ([u8; 16], [u8; 8]) {
    let mut trace = [0x7e; 16];
    trace[8..].copy_from_slice(&n.to_be_bytes());
    let mut span = n.to_be_bytes();
    span[0] = 0x5a;
    (trace, span)
}

/// Every third trace fails; only some failing traces log an error.
fn failing(n: u64) -> bool {
    n % 3 == 0
}
fn logs_error(n: u64) -> bool {
    failing(n) && n % 2 == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_exemplars_that_lead_to_joined_logs() {
    let t = Topics::create("exemplars-", 1).await;
    let p = producer();
    let now = now_nanos();
    let mut joined_traces = BTreeSet::new();
    let mut error_logged = BTreeSet::new();
    for n in 0..TRACES {
        let (trace, span_id) = ids(n);
        let end = now - (TRACES - n) * 50_000_000;
        let bad = failing(n);
        let record = ExportTraceServiceRequest {
            resource_spans: vec![resource_spans(
                "shop",
                vec![Span {
                    trace_id: trace.to_vec(),
                    span_id: span_id.to_vec(),
                    name: "GET /api/items".into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: end - (n + 1) * 3_000_000,
                    end_time_unix_nano: end,
                    status: Some(Status {
                        code: if bad {
                            status::StatusCode::Error as i32
                        } else {
                            status::StatusCode::Unset as i32
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
            )],
        }
        .encode_to_vec();
        let key = hex(&trace);
        produce(&p, &t.spans, Some(&key), &record).await;
        let level = if logs_error(n) { "ERROR" } else { "INFO" };
        let line = serde_json::json!({
            "timestamp": chrono::DateTime::from_timestamp_nanos((end - 1_000_000) as i64)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "level": level,
            "trace_id": key,
            "span_id": hex(&span_id),
            "message": format!("log_id=x{n} handled item {n}"),
        })
        .to_string();
        produce(&p, &t.logs, Some(&key), line.as_bytes()).await;
        joined_traces.insert(key.clone());
        if logs_error(n) {
            error_logged.insert(key);
        }
    }

    let running = start(t.config());
    let (metrics_url, stop_metrics) = running.serve_metrics().await;
    let out = tokio::task::spawn_blocking({
        let out = t.out.clone();
        move || consume(&out, TRACES as usize, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(out.len(), TRACES as usize, "every log out");
    for r in &out {
        let v = r.json();
        assert_eq!(v["join"]["outcome"], "matched_span", "{v}");
    }

    // The exposition Prometheus asks for: OpenMetrics, exemplars on counter and buckets.
    let http = reqwest::Client::new();
    let om = http
        .get(&metrics_url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        om.headers()
    );
    let om = om.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(
        om.lines()
            .any(|l| l.starts_with("traces_span_metrics_calls_total{")
                && l.contains(" # {trace_id=\"")),
        "no exemplar on the calls counter:\n{om}"
    );
    let plain = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !plain.contains("# EOF") && !plain.contains("trace_id=\""),
        "the classic format has no exemplars"
    );

    let target = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let prom = Prometheus::start(target);
    let deadline = Instant::now() + Duration::from_secs(60);
    let found: HashMap<String, Vec<String>> = loop {
        let now_s = now_nanos() / 1_000_000_000;
        let url = format!(
            "{}/api/v1/query_exemplars?query={}&start={}&end={}",
            prom.url,
            "traces_span_metrics_duration_seconds_bucket",
            now_s - 3600,
            now_s + 60
        );
        let text = http.get(url).send().await.unwrap().text().await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).expect("prometheus answers JSON");
        assert_eq!(body["status"], "success", "{body}");
        // status_code → exemplar trace ids
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for series in body["data"].as_array().unwrap() {
            let status = series["seriesLabels"]["status_code"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for e in series["exemplars"].as_array().unwrap() {
                let trace = e["labels"]["trace_id"].as_str().unwrap_or_default();
                found
                    .entry(status.clone())
                    .or_default()
                    .push(trace.to_string());
            }
        }
        if found.contains_key("STATUS_CODE_ERROR") && found.contains_key("STATUS_CODE_UNSET") {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplars for both series within 60 s: {body}\nprometheus log:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("exemplars by status: {found:?}");
    for traces in found.values() {
        for trace in traces {
            assert!(
                joined_traces.contains(trace),
                "exemplar trace {trace} is not one whose logs came out of the join"
            );
        }
    }
    for trace in &found["STATUS_CODE_ERROR"] {
        assert!(
            error_logged.contains(trace),
            "the error series' exemplar {trace} is not a trace with error logs joined ({error_logged:?})"
        );
    }
    drop(prom);
    stop_metrics.cancel();
    running.stop().await;
}
