//! The RED metrics cross-checked against a real OpenTelemetry Collector: the same OTLP span
//! stream, on one Kafka topic, is read by tracejoin's pipeline and by the Collector's Kafka
//! receiver (its own consumer group) feeding the spanmetrics connector and the Prometheus
//! exporter. Both expositions are scraped and compared series by series: call counts, histogram
//! bucket counts at the same bounds, counts and sums.
//!
//! The Collector is `tests/collector/` built by `scripts/collector.sh install` (core v0.165.0 /
//! v1.71.0, contrib v0.165.1); its path comes from `TRACEJOIN_OTELCOL_BIN` or
//! `scripts/collector.sh bin`. Labels only the Collector side has are left out of the comparison
//! and its per-resource series summed: `job` and `instance` (from the resource),
//! `otel_scope_name`/`_version`/`_schema_url`, and `collector_instance_id` (see
//! `src/derive/red.rs` for why tracejoin does not emit them).

mod common;
#[path = "collector/red_input.rs"]
mod red_input;

use common::exposition::parse;
use common::services::Collector;
use common::*;
use red_input::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracejoin::config::Config;

const CALLS: &str = "traces_span_metrics_calls_total";
const DURATION: &str = "traces_span_metrics_duration_seconds";
const COLLECTOR_ONLY: [&str; 6] = [
    "job",
    "instance",
    "otel_scope_name",
    "otel_scope_version",
    "otel_scope_schema_url",
    "collector_instance_id",
];

type Series = BTreeMap<BTreeMap<String, String>, RedSeries>;

/// Scrapes `url` until its RED series count `want` calls and stay so for two scrapes a second
/// apart (the connector exports a new cumulative series as 0 the first time, then its count).
async fn scrape_settled(
    http: &reqwest::Client,
    url: &str,
    want: u64,
    ignore: &[&str],
    what: &str,
    log: impl Fn() -> String,
) -> Series {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last: Option<Series> = None;
    loop {
        let got = match http.get(url).send().await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        };
        if let Some(text) = got {
            let series = red_series(&parse(&text), CALLS, DURATION, ignore);
            let total = total_calls(&series) as u64;
            if total == want && last.as_ref() == Some(&series) {
                return series;
            }
            last = (total == want).then_some(series);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the exposition at {url} did not settle on {want} calls within 90 s; last: \
             {last:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

fn compare(tracejoin: &Series, collector: &Series) {
    let only_here: Vec<_> = tracejoin
        .keys()
        .filter(|k| !collector.contains_key(*k))
        .collect();
    let only_there: Vec<_> = collector
        .keys()
        .filter(|k| !tracejoin.contains_key(*k))
        .collect();
    assert!(
        only_here.is_empty() && only_there.is_empty(),
        "label sets differ\nonly in tracejoin: {only_here:#?}\nonly in the Collector: {only_there:#?}"
    );
    for (labels, t) in tracejoin {
        let c = &collector[labels];
        assert_eq!(t.calls, c.calls, "calls of {labels:?}");
        assert_eq!(t.count, c.count, "count of {labels:?}");
        assert_eq!(t.buckets, c.buckets, "buckets of {labels:?}");
        assert!(
            (t.sum - c.sum).abs() <= 1e-9 * t.sum.abs().max(1.0),
            "sum of {labels:?}: {} vs {}",
            t.sum,
            c.sum
        );
        assert_eq!(t.calls, t.count, "calls and histogram count of {labels:?}");
    }
}

async fn run_both(
    specs: &[SpanSpec],
    partitions: i32,
    per_record: usize,
    cardinality_limit: usize,
) -> (Series, Series) {
    let t = Topics::create("redx-", partitions).await;
    let p = producer();
    for r in records(specs, per_record) {
        produce(&p, &t.spans, None, &r).await;
    }
    let collector = Collector::start(&t.spans, cardinality_limit);

    // The RED settings as a user writes them: every kind (the connector counts all) and the two
    // dimensions of config.yaml. The rest is the shared test config.
    let max_series = if cardinality_limit > 0 {
        format!("\n    max_series: {cardinality_limit}")
    } else {
        String::new()
    };
    let yaml = format!(
        "metrics:\n  red:\n    span_kinds: [unspecified, internal, server, client, producer, consumer]\n    \
         dimensions: [http.route, http.response.status_code]{max_series}\n"
    );
    let mut c: Config = serde_yaml::from_str(&yaml)
        .unwrap_or_else(|e| panic!("metrics.red in the config tree: {e}\n{yaml}"));
    let base = t.config();
    c.kafka = base.kafka;
    c.inputs = base.inputs;
    c.outputs = base.outputs;
    c.join = base.join;
    c.metrics.listen = base.metrics.listen;
    let running = start(c);
    let (metrics_url, shutdown) = running.serve_metrics().await;

    let http = reqwest::Client::new();
    let want = specs.len() as u64;
    let ours = scrape_settled(&http, &metrics_url, want, &[], "tracejoin", String::new).await;
    let theirs = scrape_settled(
        &http,
        &collector.metrics_url,
        want,
        &COLLECTOR_ONLY,
        "the Collector",
        || format!("collector log:\n{}", collector.log()),
    )
    .await;
    shutdown.cancel();
    running.stop().await;
    drop(collector);
    (ours, theirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_metrics_equal_the_spanmetrics_connector() {
    let specs = stream(1_500, 0xc0ffee);
    let (ours, theirs) = run_both(&specs, 2, 50, 0).await;
    compare(&ours, &theirs);
    // The stream exercised what it should.
    assert!(ours.len() > 100, "{} series", ours.len());
    let bounds: Vec<String> = tracejoin::derive::red::connector_default_buckets()
        .iter()
        .map(|b| b.to_string())
        .chain(["inf".to_string()])
        .collect();
    for s in ours.values() {
        assert_eq!(
            s.buckets.keys().cloned().collect::<Vec<_>>().len(),
            bounds.len()
        );
        assert!(bounds.iter().all(|b| s.buckets.contains_key(b)));
    }
    let has = |label: &str, value: &str| {
        ours.keys()
            .any(|k| k.get(label).map(String::as_str) == Some(value))
    };
    assert!(has("http_response_status_code", "503"));
    assert!(has("http_route", "/order/{id}"));
    assert!(
        ours.keys().any(|k| !k.contains_key("http_route")),
        "a series without the dimension"
    );
    eprintln!(
        "cross-check: {} series, {} spans, equal to the Collector's spanmetrics connector",
        ours.len(),
        specs.len()
    );
}

/// One service (one resource, so the connector's per-resource cap and tracejoin's cap agree),
/// more label sets than the cap, in one partition so both see the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_series_equals_the_connectors() {
    let specs: Vec<SpanSpec> = (0..40)
        .map(|i| SpanSpec {
            service: "checkout",
            name: format!("op-{}", i % 12),
            kind: 2,
            status: 0,
            nanos: DURATIONS[i % DURATIONS.len()],
            route: None,
            http_status: None,
        })
        .collect();
    let (ours, theirs) = run_both(&specs, 1, 40, 5).await;
    compare(&ours, &theirs);
    let overflow: BTreeMap<String, String> =
        [("otel_metric_overflow".to_string(), "true".to_string())].into();
    assert_eq!(
        ours.len(),
        6,
        "five series and the overflow series: {ours:#?}"
    );
    // op-0..op-4 are the first five label sets; op-5..op-11 overflow.
    let in_overflow = specs
        .iter()
        .filter(|s| s.name["op-".len()..].parse::<usize>().unwrap() >= 5)
        .count();
    assert_eq!(ours[&overflow].calls as usize, in_overflow);
}
