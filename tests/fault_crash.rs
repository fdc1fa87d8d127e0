//! Crashes and rebalances of the real binary on a real broker: nothing is lost.
//!
//! - `kill -9` at random moments under continuous load, three times, restarting each time: every
//!   input log comes out at least once, matched to its span, and the duplicate rate stays within
//!   `KILL_9_MAX_DUPLICATES` (README: measured 2.4% to 8.4%, once 20.1%).
//! - A second instance joins the group during load and the first leaves (SIGTERM, graceful): the
//!   same check, the duplicate rate within `JOIN_LEAVE_MAX_DUPLICATES` (measured 1.1% to 2.4%), and the
//!   leaving instance exits 0 within its shutdown deadline.

mod common;

use common::load::{assert_duplicates_within, check_outputs, Load};
use common::*;
use rand::Rng;
use std::time::Duration;

/// Duplicates allowed under three kill -9s, in percent of the logs. Each crash replays what was
/// consumed since the last commit, in both stages of the default (repartitioned) path: input →
/// internal topics, internal topics → join. At the steady rate that is one `commit_interval`
/// (500 ms) plus the commit's round trip, about 0.75 s of traffic at 300 logs/s: 2 × 225 = 450
/// logs per crash. But a restarted instance first waits out its predecessor's members (the 6 s
/// session timeout), then drains the backlog of the outage as fast as it can: a crash in that
/// burst replays what the burst consumed since its last commit, up to the whole backlog (about
/// 7.5 s × 300 = 2 250 logs). One such crash and two steady ones: 2 250 + 900 = 3 150 of 6 000,
/// 52.5%, rounded up. Measured: 2.4% to 8.4% in seven runs and 20.1% in one (2026-12-02), 1.4%
/// to 6.2% and once 17.7% on the build before. More means commits lag behind acknowledged logs.
const KILL_9_MAX_DUPLICATES: f64 = 55.0;
/// Duplicates allowed when an instance joins and another leaves gracefully. A revoking member
/// commits what its ledger last published (every 200 ms tick), so each rebalance replays up to
/// one tick of traffic in each of the two stages, and under the classic protocol every
/// rebalance revokes every partition: three rebalances here (one per joining worker, one for
/// the leave) × 2 × 0.2 s × 300 logs/s = 360 of 5 000 (7%) at worst. Measured 1.1% to 2.4%
/// with two workers per instance (0.2% with one, before workers).
const JOIN_LEAVE_MAX_DUPLICATES: f64 = 7.0;

struct Setup {
    dir: tempfile::TempDir,
    group: String,
    t: Topics,
}

async fn setup(partitions: i32) -> Setup {
    Setup {
        dir: tempfile::tempdir().unwrap(),
        group: unique("group"),
        t: Topics::create("", partitions).await,
    }
}

impl Setup {
    fn config_file(&self) -> std::path::PathBuf {
        let t = &self.t;
        write_config(
            self.dir.path(),
            &self.group,
            &t.spans,
            &t.logs,
            &t.out,
            &t.dlq,
            "",
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing() {
    let s = setup(3).await;
    let config = s.config_file();
    let load = Load::start(&bootstrap(), &s.t.spans, &s.t.logs, 3000, 150);
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
    let (expected, records) = load.finish_and_read(&s.t.out).await;
    let status = tokio::task::spawn_blocking(move || proc.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success(), "graceful shutdown exit status {status}");
    let (unique, total) = check_outputs(&expected, &records);
    assert_duplicates_within(
        "kill -9 x3",
        expected.len(),
        unique,
        total,
        KILL_9_MAX_DUPLICATES,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joins_and_the_first_leaves_without_loss() {
    let s = setup(4).await;
    let config = s.config_file();
    let load = Load::start(&bootstrap(), &s.t.spans, &s.t.logs, 2500, 150);
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
    let (expected, records) = load.finish_and_read(&s.t.out).await;
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
    assert_duplicates_within(
        "join + leave",
        expected.len(),
        unique,
        total,
        JOIN_LEAVE_MAX_DUPLICATES,
    );
}
