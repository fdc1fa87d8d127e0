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
use common::shop::*;
use common::*;
use std::time::{Duration, Instant};

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
    // Integration: the SLO file and the attribution topic (see the module docs).
    let (config, attr, _slo_dir) = config_with_slos(&t, "slo").await;
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
