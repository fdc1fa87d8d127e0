//! Spans replayed after a rebalance, a crash or a restart are joined again but counted once.
//!
//! Span records stay uncommitted for `join.span_retention` (the join may still need them), so
//! whoever owns a spans partition next replays up to a minute of them. Each commit carries a
//! seen mark (commit metadata: every offset below it was consumed and its spans counted); the
//! next owner skips the derived signals for the records below it. On the real broker, with the
//! real binary, each step waits until the group is quiet, then compares the RED call counts of
//! every instance that ever ran (each instance's last scrape) with the spans produced, exactly:
//! - a second instance joins (half the partitions move and are replayed);
//! - that instance is killed with `kill -9` (its partitions move back and are replayed);
//! - the remaining instance stops gracefully and a new one takes over everything.
//!
//! A step counts only if replays happened: `tracejoin_spans_counted_before_total` must move.
//! What is not covered here: a crash in the middle of traffic, where spans consumed after the
//! last commit are counted by the crashed instance (if it was scraped) and again by the next
//! owner; the README states that bound.

mod common;

use common::fleet::{self, Instance};
use common::load::Load;
use common::*;
use std::time::Duration;

const PARTITIONS: i32 = 4;
const CALLS: &str = "traces_span_metrics_calls_total";
const COUNTED_BEFORE: &str = "tracejoin_spans_counted_before_total";

/// Every instance that ever ran, by its last scrape: (RED calls, spans counted before).
fn totals(fleet: &[Instance]) -> (u64, u64) {
    (
        fleet.iter().map(|i| i.sum(CALLS)).sum(),
        counted_before(fleet),
    )
}

/// Waits until the fleet is quiet for `quiet`; the RED calls of every instance that ever ran.
async fn settle(fleet: &mut [Instance], quiet: Duration) -> u64 {
    fleet::settle(fleet, totals, quiet).await.0
}

fn counted_before(fleet: &[Instance]) -> u64 {
    fleet.iter().map(|i| i.sum(COUNTED_BEFORE)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_spans_are_counted_once_across_rebalances_crashes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create("replay-", PARTITIONS).await;
    let base = write_config(
        dir.path(),
        &unique("group"),
        &t.spans,
        &t.logs,
        &t.out,
        &t.dlq,
        "workers: 1\n",
    );
    // Each trace has one server span (counted by RED's default span kinds) and one client span.
    let mut produced = 0u64;
    let mut wave = |traces: u64| {
        let load = Load::start(&bootstrap(), &t.spans, &t.logs, traces, 400);
        produced += load.finish().len() as u64 / 2;
        produced
    };

    let mut fleet = vec![Instance::spawn(dir.path(), &base, "first")];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let want = tokio::task::block_in_place(|| wave(300));
    // The commit interval is 500 ms: quiet for 3 s means the seen marks are committed.
    assert_eq!(
        settle(&mut fleet, Duration::from_secs(3)).await,
        want,
        "one instance, no replay"
    );

    // A second instance joins: the partitions it takes are replayed from their commits.
    fleet.push(Instance::spawn(dir.path(), &base, "second"));
    let calls = settle(&mut fleet, Duration::from_secs(6)).await;
    assert!(
        counted_before(&fleet) > 0,
        "the joining instance replayed no span: the step proves nothing; its log:\n{}",
        fleet[1].log()
    );
    assert_eq!(calls, want, "after a member joined");
    let want = tokio::task::block_in_place(|| wave(200));
    assert_eq!(
        settle(&mut fleet, Duration::from_secs(3)).await,
        want,
        "two instances"
    );

    // kill -9 the second (its last scrape stands for what it counted); the first replays.
    let before = counted_before(&fleet);
    fleet[1].crash();
    let calls = settle(&mut fleet, Duration::from_secs(12)).await;
    assert!(
        counted_before(&fleet) > before,
        "no span was replayed after the crash: the step proves nothing"
    );
    assert_eq!(calls, want, "after kill -9 of a member");

    // The first stops gracefully; a third takes over everything.
    fleet[0].stop(Duration::from_secs(40)).await;
    fleet.push(Instance::spawn(dir.path(), &base, "third"));
    let want = tokio::task::block_in_place(|| wave(100));
    let calls = settle(&mut fleet, Duration::from_secs(6)).await;
    assert!(
        fleet[2].sum(COUNTED_BEFORE) > 0,
        "the new instance replayed no span: the step proves nothing"
    );
    assert_eq!(calls, want, "after a graceful restart");
    fleet[2].stop(Duration::from_secs(40)).await;
}
