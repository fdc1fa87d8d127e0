//! SLO windows that survive crashes, restarts and rebalances, on the real broker with the real
//! binary: each join partition's SLO state is changelogged to `<group>.slo-state` and restored
//! by its next owner (`pipeline::slo_state`).
//!
//! - **Interrupted like an uninterrupted run.** The shop scenario (`common::shop`: 45 minutes of
//!   event time, a checkout failure from minute 15 to 30) is consumed by two groups from the same
//!   topics: one instance that runs throughout, and a chain of instances of another group: the
//!   first is killed with `kill -9` at minute 20 of the traffic, the second stops gracefully at
//!   minute 37, the third finishes. At the end the chain's last instance reports what the
//!   uninterrupted one does: the same good and bad counts in every window from 1h to the 30d
//!   period (exactly the events produced: nothing lost, nothing counted twice), the same error
//!   ratios and the same attribution shares.
//! - **A moved partition keeps its windows.** One instance consumes the whole scenario; a second
//!   joins and takes a partition with its state: the fleet's sums (what the recording rules in
//!   `rules/alerts/` divide) are what the first instance alone reported before the move.
//!
//! The windows compared are those that hold the whole scenario as of the end (1h and longer):
//! the shorter ones are read as of each instance's own watermark, which moves with the wall
//! clock once the input is idle.

mod common;

use common::exposition::{parse, value};
use common::shop::*;
use common::*;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 2;
const STEPS_PER_MIN: u64 = 30;
const STEPS: u64 = 45 * STEPS_PER_MIN;
/// Windows holding the whole scenario at the end.
const WHOLE: [&str; 6] = ["1h", "2h", "6h", "1d", "3d", "30d"];

/// SLO events the scenario produces: (total, bad). Both server spans of a step are events
/// (`SLO_YAML` selects `GET|POST /api/*` server spans).
fn expected_events() -> (u64, u64) {
    let bad = (0..STEPS)
        .map(|i| {
            let cart = i % 100 == 37;
            let checkout = (15..30).contains(&(i / STEPS_PER_MIN)) && i % 10 != 0;
            u64::from(cart) + u64::from(checkout)
        })
        .sum();
    (2 * STEPS, bad)
}

/// One instance of the binary and its metrics endpoint.
struct Instance {
    process: Option<Process>,
    metrics: String,
}

impl Instance {
    fn spawn(config: &std::path::Path, name: &str) -> Instance {
        let port = free_port();
        let yaml = std::fs::read_to_string(config).unwrap().replace(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"127.0.0.1:{port}\""),
        );
        assert!(yaml.contains(&port.to_string()), "metrics port set");
        let path = config.with_file_name(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        Instance {
            process: Some(Process::spawn(&path, name)),
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    async fn scrape(&self) -> Option<String> {
        reqwest::get(&self.metrics).await.ok()?.text().await.ok()
    }

    fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| std::fs::read_to_string(&p.log).unwrap_or_default())
            .unwrap_or_default()
    }

    fn crash(&mut self) {
        self.process.take().expect("running").crash();
    }

    async fn stop(&mut self) {
        let p = self.process.take().expect("running");
        let status = tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(40)))
            .await
            .unwrap();
        assert!(status.success(), "graceful stop: {status}");
    }

    /// Scrapes until `ok` holds (or panics after `within`); returns that exposition.
    async fn wait(&self, what: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Some(m) = self.scrape().await {
                if ok(&m) {
                    return m;
                }
                last = m;
            }
            if Instant::now() > deadline {
                let slo: Vec<&str> = last
                    .lines()
                    .filter(|l| l.starts_with("tracejoin_slo") || l.starts_with("slo:"))
                    .collect();
                panic!(
                    "timed out waiting for {what}; SLO series:\n{}\nlog:\n{}",
                    slo.join("\n"),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A config file for a group: the scenario's topics re-keyed by trace id into `PARTITIONS`
/// internal partitions (the records hold two traces each, and the logs are unkeyed, as from
/// the Collector's exporter), the shop SLO, and a state written every second.
fn group_config(dir: &std::path::Path, t: &Topics, slo: &std::path::Path) -> std::path::PathBuf {
    let path = write_config(
        dir,
        &unique("slo-group"),
        &t.spans,
        &t.logs,
        &t.out,
        &t.dlq,
        &format!(
            "workers: 1\nrules:\n  slo: \"{}\"\nstate:\n  snapshot_interval: 1s\n",
            slo.display()
        ),
    );
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "inputs:\n",
        &format!("inputs:\n  repartition: always\n  repartition_partitions: {PARTITIONS}\n"),
    );
    assert!(yaml.contains("repartition: always"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sum(m: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse(m)
        .iter()
        .filter(|s| s.name == name && s.has(labels))
        .map(|s| s.value)
        .sum()
}

/// (good, bad) in `window`.
fn window_events(m: &str, window: &str) -> (u64, u64) {
    let n = |outcome| {
        sum(
            m,
            "tracejoin_slo_window_events",
            &[("window", window), ("outcome", outcome)],
        ) as u64
    };
    (n("good"), n("bad"))
}

/// Every event of the scenario is in every window that can hold it all (the watermark has
/// passed the last one: a window is read as of the watermark) and none waits for its cause.
fn complete(m: &str) -> bool {
    let (total, bad) = expected_events();
    WHOLE.iter().all(|w| {
        let (g, b) = window_events(m, w);
        g + b >= total && b >= bad
    }) && value(m, "tracejoin_slo_pending_bad_events", &[]) == Some(0.0)
}

/// The window-derived series of the windows that hold the whole scenario, sorted: name, labels
/// and value, with the attribution shares rounded to 1e-9.
fn whole_windows(m: &str) -> Vec<String> {
    let mut out: Vec<String> = parse(m)
        .into_iter()
        .filter(|s| {
            let window = s
                .labels
                .iter()
                .find(|(k, _)| *k == "window" || *k == "sloth_window")
                .map(|(_, v)| v.as_str());
            (s.name == "tracejoin_slo_window_events"
                || s.name.starts_with("slo:sli_error:ratio_rate")
                || s.name == "tracejoin_slo_burn_attribution_ratio")
                && window.is_some_and(|w| WHOLE.contains(&w))
        })
        .map(|s| format!("{} {:?} {:.9}", s.name, s.labels, s.value))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_windows_after_kill_9_and_a_graceful_restart_equal_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create("slo-restart-", PARTITIONS).await;
    let slo = dir.path().join("slo.yaml");
    std::fs::write(&slo, SLO_YAML).unwrap();
    let steady = Instance::spawn(&group_config(dir.path(), &t, &slo), "steady");
    let chain_config = group_config(dir.path(), &t, &slo);
    let mut first = Instance::spawn(&chain_config, "first");

    let run: u32 = rand::random();
    let base = (now_nanos() - 50 * MIN) / S * S;
    let p = producer();
    let produce = |from: u64, to: u64| {
        let (p, spans, logs) = (&p, t.spans.clone(), t.logs.clone());
        async move {
            produce_steps(
                p,
                &spans,
                &logs,
                run,
                base,
                from * STEPS_PER_MIN,
                to * STEPS_PER_MIN,
            )
            .await
        }
    };

    // Up to minute 20 (the failure has begun: bad events wait for their causes); the first
    // instance is killed once it has written some state, in whatever state it is.
    produce(0, 20).await;
    first
        .wait(
            "the first instance's state writes",
            Duration::from_secs(90),
            |m| sum(m, "tracejoin_slo_state_writes_total", &[("result", "ok")]) >= 1.0,
        )
        .await;
    first.crash();
    produce(20, 29).await;

    // The second restores the states the first wrote, and stops gracefully at minute 37.
    let mut second = Instance::spawn(&chain_config, "second");
    let m = second
        .wait(
            "the second instance's restore",
            Duration::from_secs(90),
            |m| {
                sum(
                    m,
                    "tracejoin_slo_state_restores_total",
                    &[("outcome", "restored")],
                ) >= 1.0
                    && sum(m, "tracejoin_slo_state_writes_total", &[("result", "ok")]) >= 1.0
            },
        )
        .await;
    println!(
        "second: restored {} partitions, skipped {} replayed spans",
        sum(
            &m,
            "tracejoin_slo_state_restores_total",
            &[("outcome", "restored")]
        ),
        sum(&m, "tracejoin_slo_restored_replay_spans_total", &[])
    );
    produce(29, 37).await;
    second
        .wait(
            "the second instance to consume",
            Duration::from_secs(90),
            |m| window_events(m, "30d").0 > 0,
        )
        .await;
    second.stop().await;

    let third = Instance::spawn(&chain_config, "third");
    produce(37, 45).await;

    let (total, bad) = expected_events();
    let a = steady
        .wait(
            "the uninterrupted run to complete",
            Duration::from_secs(120),
            complete,
        )
        .await;
    let b = third
        .wait(
            "the interrupted run to complete",
            Duration::from_secs(120),
            complete,
        )
        .await;
    assert_eq!(
        window_events(&a, "30d"),
        (total - bad, bad),
        "the uninterrupted run counts every event once"
    );
    assert_eq!(
        window_events(&b, "30d"),
        (total - bad, bad),
        "after kill -9 and a graceful restart, every event counted once"
    );
    assert!(
        sum(
            &b,
            "tracejoin_slo_state_restores_total",
            &[("outcome", "restored")]
        ) >= 1.0,
        "the third instance restored nothing: the step proves nothing"
    );
    assert!(
        value(
            &b,
            "tracejoin_slo_burn_attribution_ratio",
            &[("window", "1h"), ("cause", DB_TEMPLATE)]
        )
        .is_some_and(|s| s > 0.5),
        "the attribution survived"
    );
    let (wa, wb) = (whole_windows(&a), whole_windows(&b));
    assert!(wa.len() > 20, "{wa:#?}");
    assert_eq!(
        wa, wb,
        "windows, ratios and attribution as if never interrupted"
    );

    let mut steady = steady;
    steady.stop().await;
    let mut third = third;
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moved_to_a_new_member_keeps_the_fleet_windows() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create("slo-move-", PARTITIONS).await;
    let slo = dir.path().join("slo.yaml");
    std::fs::write(&slo, SLO_YAML).unwrap();
    let config = group_config(dir.path(), &t, &slo);
    let mut first = Instance::spawn(&config, "first");
    let run: u32 = rand::random();
    let base = (now_nanos() - 50 * MIN) / S * S;
    let p = producer();
    produce_steps(&p, &t.spans, &t.logs, run, base, 0, STEPS).await;
    let before = first
        .wait(
            "the first instance to complete",
            Duration::from_secs(120),
            complete,
        )
        .await;
    // Its states cover everything it consumed (written every second).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut second = Instance::spawn(&config, "second");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut lowest = u64::MAX;
    let (m1, m2) = loop {
        let (m1, m2) = (first.scrape().await, second.scrape().await);
        if let (Some(m1), Some(m2)) = (m1, m2) {
            let total = |m: &str| {
                let (g, b) = window_events(m, "1h");
                g + b
            };
            lowest = lowest.min(total(&m1) + total(&m2));
            let moved = sum(
                &m2,
                "tracejoin_slo_state_restores_total",
                &[("outcome", "restored")],
            ) >= 1.0
                && window_events(&m2, "30d").0 > 0;
            if moved && total(&m1) + total(&m2) == total(&before) {
                break (m1, m2);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the moved partition's windows never came back; second's log:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "fleet 1h events: {} before, lowest seen during the move {lowest}",
        {
            let (g, b) = window_events(&before, "1h");
            g + b
        }
    );
    for w in WHOLE {
        let (g1, b1) = window_events(&m1, w);
        let (g2, b2) = window_events(&m2, w);
        assert!(
            g1 + b1 > 0 && g2 + b2 > 0,
            "both members hold a share of {w}"
        );
        assert_eq!(
            (g1 + g2, b1 + b2),
            window_events(&before, w),
            "the fleet's {w} window after the move"
        );
    }
    first.stop().await;
    second.stop().await;
}
