//! Crashes and rebalances of the real binary on a real broker: nothing is lost.
//!
//! - `kill -9` at random moments under continuous load, three times, restarting each time: every
//!   input log comes out at least once, matched to its span; the duplicate rate is printed.
//! - A second instance joins the group during load and the first leaves (SIGTERM, graceful): the
//!   same check, and the leaving instance exits 0 within its shutdown deadline.

mod common;

use common::load::{check_outputs, Load};
use common::*;
use rand::Rng;
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
    group: String,
    spans: String,
    logs: String,
    out: String,
    dlq: String,
}

async fn setup(partitions: i32) -> Setup {
    let s = Setup {
        dir: tempfile::tempdir().unwrap(),
        group: unique("group"),
        spans: unique("spans"),
        logs: unique("logs"),
        out: unique("out"),
        dlq: unique("dlq"),
    };
    create_topics(&[&s.spans, &s.logs, &s.out, &s.dlq], partitions).await;
    s
}

fn wait_for_outputs(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = consume(topic, usize::MAX, Duration::from_secs(3));
        let unique: std::collections::HashSet<_> = got
            .iter()
            .map(|r| r.json()["body"].as_str().unwrap_or_default().to_string())
            .collect();
        if unique.len() >= want || Instant::now() > deadline {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing() {
    let s = setup(3).await;
    let config = write_config(
        s.dir.path(),
        &s.group,
        &s.spans,
        &s.logs,
        &s.out,
        &s.dlq,
        "",
    );
    let load = Load::start(&bootstrap(), &s.spans, &s.logs, 3000, 150);
    let mut proc = Process::spawn(&config, "run");
    let mut rng = rand::rng();
    for crash in 0..3 {
        let wait = rng.random_range(2_000..5_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        eprintln!(
            "crash {crash}: kill -9 after {wait} ms, {} logs produced so far",
            load.produced_logs
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        proc.crash();
        tokio::time::sleep(Duration::from_millis(500)).await;
        proc = Process::spawn(&config, "run");
    }
    let expected = tokio::task::spawn_blocking(move || load.finish())
        .await
        .unwrap();
    let records = tokio::task::spawn_blocking({
        let (out, n) = (s.out.clone(), expected.len());
        move || wait_for_outputs(&out, n, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let status = tokio::task::spawn_blocking(move || proc.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success(), "graceful shutdown exit status {status}");
    let (unique, total) = check_outputs(&expected, &records);
    eprintln!(
        "kill -9 x3: {} logs in, {unique} out, {total} copies: duplicate rate {:.2}%",
        expected.len(),
        100.0 * (total - unique) as f64 / unique as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joins_and_the_first_leaves_without_loss() {
    let s = setup(4).await;
    let config = write_config(
        s.dir.path(),
        &s.group,
        &s.spans,
        &s.logs,
        &s.out,
        &s.dlq,
        "",
    );
    let load = Load::start(&bootstrap(), &s.spans, &s.logs, 2500, 150);
    let first = Process::spawn(&config, "first");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = Process::spawn(&config, "second");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let status = tokio::task::spawn_blocking(move || first.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(
        status.success(),
        "the leaving instance exits 0 after draining: {status}"
    );
    let expected = tokio::task::spawn_blocking(move || load.finish())
        .await
        .unwrap();
    let records = tokio::task::spawn_blocking({
        let (out, n) = (s.out.clone(), expected.len());
        move || wait_for_outputs(&out, n, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(&second.log).unwrap_or_default();
    let status = tokio::task::spawn_blocking(move || second.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success());
    let (unique, total) = check_outputs(&expected, &records);
    assert!(
        log.matches("partitions assigned").count() >= 2,
        "the second instance saw no rebalance:\n{log}"
    );
    eprintln!(
        "join + leave: {} logs in, {unique} out, {total} copies: duplicate rate {:.2}%",
        expected.len(),
        100.0 * (total - unique) as f64 / unique as f64
    );
}
