//! RED metrics scraped by a real Prometheus (Debian's package, started by
//! `scripts/prometheus.sh`): known spans go through a real Kafka broker and the pipeline, the
//! `/metrics` exposition passes `promtool check metrics`, and PromQL through Prometheus's HTTP API
//! gives the counts, the error ratio, the bucket counts and the increase the input implies.
//!
//! Needs `TRACEJOIN_KAFKA_BOOTSTRAP` (scripts/test.sh starts the broker) and `prometheus` and
//! `promtool` on the PATH (`scripts/prometheus.sh install`).

mod common;
#[path = "collector/red_input.rs"]
mod red_input;

use common::exposition::parse;
use common::services::{prometheus_query, Prometheus};
use common::*;
use red_input::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Server and consumer spans: what the default config counts.
const COUNTED: [i32; 2] = [2, 5];

/// An instant query: each result's labels and value.
async fn query(
    http: &reqwest::Client,
    url: &str,
    promql: &str,
) -> Vec<(BTreeMap<String, String>, f64)> {
    prometheus_query(http, url, promql, "red_prometheus")
        .await
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            (labels, v)
        })
        .collect()
}

/// Polls `promql` until `check` accepts the result or `timeout`; returns the last result.
async fn query_until(
    http: &reqwest::Client,
    prom: &Prometheus,
    promql: &str,
    timeout: Duration,
    check: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
) -> Vec<(BTreeMap<String, String>, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = query(http, &prom.url, promql).await;
        if check(&r) {
            return r;
        }
        if Instant::now() > deadline {
            panic!(
                "{promql}: no expected answer within {timeout:?}; last: {r:?}\nprometheus log:\n{}",
                prom.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn by_series(
    r: &[(BTreeMap<String, String>, f64)],
) -> BTreeMap<(String, String, String, String), u64> {
    r.iter()
        .map(|(l, v)| {
            let g = |k: &str| l.get(k).cloned().unwrap_or_default();
            (
                (
                    g("service_name"),
                    g("span_name"),
                    g("span_kind"),
                    g("status_code"),
                ),
                *v as u64,
            )
        })
        .collect()
}

/// Waits until the exposition counts `want` calls in all.
async fn wait_for_calls(http: &reqwest::Client, metrics_url: &str, want: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http
            .get(metrics_url)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        let series = red_series(
            &parse(&text),
            "traces_span_metrics_calls_total",
            "traces_span_metrics_duration_seconds",
            &[],
        );
        let got = total_calls(&series) as u64;
        if got == want {
            return text;
        }
        assert!(
            got < want,
            "counted {got} calls, more than the {want} produced"
        );
        assert!(
            Instant::now() < deadline,
            "only {got} of {want} calls counted within 60 s{}",
            if text.contains("traces_span_metrics_calls_total") {
                ""
            } else {
                " (no traces_span_metrics_calls_total at all: are the RED metrics wired into the pipeline?)"
            }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_red_metrics() {
    let t = Topics::create("red-", 2).await;
    let spans = &t.spans;
    let specs = stream(400, 0x5eed);
    let expected = expected_calls(&specs, &COUNTED);
    let expected_total: u64 = expected.values().sum();
    assert!(expected.len() > 20, "a stream with many series");

    // Wave 1, and one record delivered twice: its spans must count once.
    let wave1 = records(&specs, 25);
    let p = producer();
    for r in &wave1 {
        produce(&p, spans, None, r).await;
    }
    produce(&p, spans, None, &wave1[0]).await;

    // The default config: RED metrics are on, server and consumer spans, no dimensions.
    let running = start(t.config());
    let (metrics_url, shutdown) = running.serve_metrics().await;
    let http = reqwest::Client::new();
    let text = wait_for_calls(&http, &metrics_url, expected_total).await;

    // The exposition as served is clean for promtool (exit 0: no parse error, no lint).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exposition.txt");
    std::fs::write(&file, &text).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("run promtool (scripts/prometheus.sh install)");
    assert!(
        check.status.success(),
        "promtool check metrics exited {}: {}{}",
        check.status,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Prometheus scrapes it every second; the per-series counts are the input's.
    let target = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let prom = Prometheus::start(target);
    let per_series =
        "sum by (service_name, span_name, span_kind, status_code) (traces_span_metrics_calls_total)";
    let r = query_until(&http, &prom, per_series, Duration::from_secs(60), |r| {
        by_series(r) == expected
    })
    .await;
    assert_eq!(by_series(&r), expected);

    // Errors: the error ratio per service.
    let ratio = query(
        &http,
        &prom.url,
        "sum by (service_name) (traces_span_metrics_calls_total{status_code=\"STATUS_CODE_ERROR\"}) \
         / sum by (service_name) (traces_span_metrics_calls_total)",
    )
    .await;
    assert_eq!(ratio.len(), 3, "{ratio:?}");
    for (labels, v) in ratio {
        let service = &labels["service_name"];
        let all: u64 = expected
            .iter()
            .filter(|(k, _)| &k.0 == service)
            .map(|(_, n)| n)
            .sum();
        let errors: u64 = expected
            .iter()
            .filter(|(k, _)| &k.0 == service && k.3 == "STATUS_CODE_ERROR")
            .map(|(_, n)| n)
            .sum();
        assert!(
            (v - errors as f64 / all as f64).abs() < 1e-12,
            "{service}: {v}"
        );
    }

    // Duration: cumulative bucket counts over everything, at the connector's bounds.
    let buckets = query(
        &http,
        &prom.url,
        "sum by (le) (traces_span_metrics_duration_seconds_bucket)",
    )
    .await;
    let counted: Vec<i64> = specs
        .iter()
        .filter(|s| COUNTED.contains(&s.kind))
        .map(|s| s.nanos.max(0))
        .collect();
    let mut les: Vec<f64> = tracejoin::derive::red::connector_default_buckets();
    les.push(f64::INFINITY);
    assert_eq!(buckets.len(), les.len(), "{buckets:?}");
    for (labels, v) in &buckets {
        let le: f64 = match labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            s => s.parse().unwrap(),
        };
        assert!(les.contains(&le), "unexpected bound {le}");
        let want = counted.iter().filter(|n| **n as f64 / 1e9 <= le).count();
        assert_eq!(*v as usize, want, "le={le}");
    }

    // Rate: wave 2 repeats the stream with new ids; the increase Prometheus sees per series is
    // exactly one wave (max - min over the window: no extrapolation), and the rate is positive.
    let wave2 = records(&specs, 25);
    for r in &wave2 {
        produce(&p, spans, None, r).await;
    }
    wait_for_calls(&http, &metrics_url, 2 * expected_total).await;
    let increase = "sum by (service_name, span_name, span_kind, status_code) \
                    (max_over_time(traces_span_metrics_calls_total[10m]) \
                    - min_over_time(traces_span_metrics_calls_total[10m]))";
    let r = query_until(&http, &prom, increase, Duration::from_secs(30), |r| {
        by_series(r) == expected
    })
    .await;
    assert_eq!(by_series(&r), expected);
    let rate = query(
        &http,
        &prom.url,
        "sum(rate(traces_span_metrics_calls_total[1m]))",
    )
    .await;
    assert!(rate.len() == 1 && rate[0].1 > 0.0, "{rate:?}");

    drop(prom);
    shutdown.cancel();
    running.stop().await;
}
