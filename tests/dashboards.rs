//! The Grafana dashboards of `deploy/grafana/` checked against the real thing: every PromQL
//! expression of every panel (and of every template variable) parses (`promtool check rules` on a
//! rule file made of them), reads only metrics tracejoin defines, and returns data — at least one
//! finite sample — from a real Prometheus (Debian's, `scripts/prometheus.sh`) that scraped a
//! running tracejoin fed by a test workload on the real broker: the SLO shop (steady traffic,
//! then a failing endpoint; spans, JSON logs, an SLO with attribution), a few undecodable
//! records, enriched logs to Kafka and to a real server of Loki's push protocol (VictoriaLogs),
//! a co-partitioning check the producer does not meet.
//!
//! Grafana's variables are replaced as Grafana would with "All" selected: `$job`, `$service`,
//! `$slo` by `.+`, `$__rate_interval` by `5m` (longer than the run, so a burst that ended still
//! has a rate). Panels whose series exist only in a failure the workload does not create are
//! listed in `MAY_BE_EMPTY`, each with its reason; they must still parse.
//!
//! Needs `TRACEJOIN_KAFKA_BOOTSTRAP`, `TRACEJOIN_VICTORIALOGS_URL` (scripts/test.sh starts both),
//! and `prometheus` and `promtool` on the PATH.

mod common;

use common::services::{prometheus_query, victorialogs_url, Prometheus};
use common::shop::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Metrics whose series appear only when something fails, which this workload does not make
/// happen; a panel reading only them may come back empty (it must still parse).
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    (
        "tracejoin_produce_retries_total",
        "a Kafka delivery re-sent after librdkafka gave up: needs a refused write (ACL) or an \
         unavailable partition for longer than message.timeout.ms",
    ),
    (
        "tracejoin_loki_retries_total",
        "a retried Loki push: needs Loki to answer 429/5xx or drop the connection \
         (tests/fault_loki_outage.rs makes that happen)",
    ),
];

/// One query of a dashboard: where it is, and the PromQL as Grafana would send it.
struct Query {
    at: String,
    expr: String,
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo().join("deploy/grafana");
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 3,
        "deploy/grafana ships {} dashboards",
        out.len()
    );
    out
}

/// Grafana's substitution with "All" selected and a long rate interval.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "5m")
        .replace("$job", ".+")
        .replace("$service", ".+")
        .replace("$slo", ".+")
}

fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every query of every dashboard, checking the shape Grafana needs on the way.
fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    let mut uids = BTreeSet::new();
    for (path, d) in dashboards() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{name}: uid used twice"
        );
        assert!(
            d["title"].is_string() && d["schemaVersion"].is_u64(),
            "{name}"
        );
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: panel id twice"
            );
            assert!(p["gridPos"]["w"].is_u64(), "{name}: {title} has no gridPos");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                assert!(!expr.trim().is_empty(), "{name}: {title}");
                out.push(Query {
                    at: format!("{name}: panel {title:?} {}", t["refId"]),
                    expr: substitute(expr),
                });
            }
        }
        // Template variables: label_values(METRIC, LABEL) asks for METRIC's series.
        for var in d["templating"]["list"].as_array().unwrap() {
            if var["type"] != "query" {
                continue;
            }
            let q = var["query"]["query"].as_str().unwrap();
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: variable {q}"));
            let (metric, label) = inner.rsplit_once(',').unwrap();
            out.push(Query {
                at: format!("{name}: variable {}", var["name"]),
                expr: format!("count by ({}) ({})", label.trim(), metric.trim()),
            });
        }
    }
    out
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cur = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            cur.push(c);
        } else {
            if cur.starts_with("tracejoin_")
                || cur.starts_with("traces_")
                || cur.starts_with("slo:")
            {
                out.insert(cur.clone());
            }
            cur.clear();
        }
    }
    out
}

#[test]
fn every_dashboard_query_parses_and_reads_metrics_tracejoin_defines() {
    let qs = queries();
    assert!(qs.len() > 40, "{} queries", qs.len());
    // promtool parses each as the expression of a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, q) in qs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&q.expr).unwrap()
        ));
    }
    let file = dir.path().join("dashboards.rules.yaml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool (scripts/prometheus.sh install)");
    assert!(
        out.status.success(),
        "promtool check rules on the dashboards' queries:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // tracejoin's own metrics: as defined in src/telemetry, or by the SLO engine's exposition
    // (histograms by their base name).
    let mut defined_in = std::fs::read_to_string(repo().join("src/telemetry/mod.rs")).unwrap();
    defined_in += &std::fs::read_to_string(repo().join("src/derive/slo/exposition.rs")).unwrap();
    for q in &qs {
        for m in metric_names(&q.expr) {
            if let Some(own) = m.strip_prefix("tracejoin_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| own.strip_suffix(s))
                    .unwrap_or(own);
                assert!(
                    defined_in.contains(&format!("\"tracejoin_{base}\"")),
                    "{}: tracejoin defines no {m}",
                    q.at
                );
            }
        }
    }
}

/// An instant query's finite sample values (an error is a failure: the query must run).
async fn finite_values(http: &reqwest::Client, url: &str, q: &Query) -> Vec<f64> {
    prometheus_query(http, url, &q.expr, &q.at)
        .await
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_scraped_tracejoin() {
    let qs = queries();
    let t = Topics::create("dash-", 2).await;
    let (mut config, _attr, _slo_dir) = config_with_slos(&t, "dash").await;
    config.outputs.loki = Some(tracejoin::sinks::loki::LokiConfig {
        endpoint: victorialogs_url(),
        path: "/insert/loki/api/v1/push".into(),
        ..Default::default()
    });
    // The producer places keyed spans with librdkafka's partitioner (CRC32); telling tracejoin
    // the producers use murmur2 (and to join the topics as they are, where the check runs)
    // makes it count mismatches, as it would for a real mix-up.
    config.inputs.partitioner = serde_yaml::from_str("murmur2").unwrap();
    config.inputs.repartition = serde_yaml::from_str("never").unwrap();
    let running = start(config);
    let (metrics_url, stop_metrics) = running.serve_metrics().await;
    let target = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let prom = Prometheus::start(target);

    let http = reqwest::Client::new();
    // Traffic must flow while Prometheus scrapes (a rate needs two samples that differ): wait
    // for the first scrape, then produce.
    let up = Query {
        at: "up".into(),
        expr: "up{job=\"tracejoin\"} == 1".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while finite_values(&http, &prom.url, &up).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped tracejoin"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The workload: 29 minutes of the shop's event time (the failure starts at minute 15), a
    // minute of it every second; undecodable records on the spans topic (dead letters).
    let run: u32 = rand::random();
    let base = (now_nanos() - 50 * MIN) / S * S;
    let p = producer();
    for minute in 0..29 {
        produce_steps(
            &p,
            &t.spans,
            &t.logs,
            run,
            base,
            minute * 30,
            (minute + 1) * 30,
        )
        .await;
        if minute % 10 == 5 {
            produce(
                &p,
                &t.spans,
                None,
                format!("not protobuf {minute}").as_bytes(),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Poll every query until each has a finite sample (or the deadline); the allowed ones are
    // not waited for.
    let allowed = |q: &Query| {
        let names = metric_names(&q.expr);
        !names.is_empty()
            && names
                .iter()
                .all(|n| MAY_BE_EMPTY.iter().any(|(m, _)| n == m))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut empty: BTreeMap<usize, &Query> = qs.iter().enumerate().collect();
    while empty.values().any(|q| !allowed(q)) && Instant::now() < deadline {
        let mut still = BTreeMap::new();
        for (i, q) in empty {
            if finite_values(&http, &prom.url, q).await.is_empty() {
                still.insert(i, q);
            }
        }
        empty = still;
        if empty.values().any(|q| !allowed(q)) {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let (allowed_empty, failing): (Vec<&Query>, Vec<&Query>) =
        empty.values().copied().partition(|q| allowed(q));
    for q in &allowed_empty {
        println!("empty, allowed (MAY_BE_EMPTY): {}: {}", q.at, q.expr);
    }
    println!(
        "{} of {} dashboard queries returned data",
        qs.len() - empty.len(),
        qs.len()
    );
    let report: Vec<String> = failing
        .iter()
        .map(|q| format!("{}: {}", q.at, q.expr))
        .collect();
    assert!(
        report.is_empty(),
        "dashboard queries with no data from a scraped tracejoin:\n{}\nprometheus log:\n{}",
        report.join("\n"),
        prom.log()
    );
    stop_metrics.cancel();
    running.stop().await;
}
