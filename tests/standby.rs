//! A member of the group without partitions is a ready standby (`/readyz`).
//!
//! In a file of its own: run beside `kafka_pipeline`'s tests on a loaded machine, its two
//! pipelines made that file's consumer-lag gauge check fail (1 run in 3 under two busy loops,
//! 0 in 4 without it; cause not found yet, 2026-12-02). Test files run one after another.

mod common;

use common::*;
use std::time::Duration;

/// More members than partitions is normal (a rollout surges, a fleet is sized for peaks): the
/// member that gets no partition is a standby, and `/readyz` says ready, so it does not fail
/// the rollout. Readiness holds through rebalances too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_partitions_is_ready_as_a_standby() {
    let t = Topics::create("standby-", 1).await;
    let mut cfg = t.config();
    cfg.workers = tracejoin::config::Workers::Count(1);
    cfg.inputs.repartition = tracejoin::sources::repartition::RepartitionPolicy::Never;
    let first = start(cfg.clone());
    let second = start(cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(first.health.is_ready() && second.health.is_ready()) {
        assert!(
            std::time::Instant::now() < deadline,
            "ready: first {}, second {} — a member without partitions must be ready",
            first.health.is_ready(),
            second.health.is_ready()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.stop().await;
    second.stop().await;
}
