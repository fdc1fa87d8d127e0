//! What a member joining or leaving the group costs, under each group protocol, on the real
//! broker: how many partitions stop, how many change owner, how long they stand still, and how
//! many logs come out twice.
//!
//! One instance (one worker) runs under steady load; a second joins; then the first leaves
//! (SIGTERM). Both instances log every revocation and assignment with its time; the test pairs
//! each revoked partition with its next assignment, in either process, to get the partition's
//! pause. It asserts what the protocol promises (classic: every partition of every member stops
//! at each rebalance; consumer, KIP-848: only the partitions that change owner stop), that no log
//! is lost or mis-joined (the broker's `range` assignor keeps partition *p* of both topics on one
//! member), and the duplicate bound. Pause lengths are printed, not asserted: they are timings.

mod common;

use common::load::{assert_duplicates_within, check_outputs, Load};
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Duplicates allowed for one join and one graceful leave (the fault test's bound).
const MAX_DUPLICATES: f64 = 2.0;
const PARTITIONS: i32 = 4;

/// One revocation or assignment as an instance logged it.
#[derive(Debug, Clone)]
struct Change {
    at: chrono::DateTime<chrono::FixedOffset>,
    instance: &'static str,
    revoked: bool,
    partitions: Vec<String>,
}

fn changes(log: &std::path::Path, instance: &'static str) -> Vec<Change> {
    let ansi = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
    let partition = regex::Regex::new(r#""([^"/]+/\d+)""#).unwrap();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| ansi.replace_all(l, "").into_owned())
        .filter_map(|l| {
            let revoked = l.contains("partitions revoked");
            if !revoked && !l.contains("partitions assigned") {
                return None;
            }
            let at = chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok()?;
            let partitions = partition
                .captures_iter(&l)
                .map(|c| c[1].to_string())
                .collect();
            Some(Change {
                at,
                instance,
                revoked,
                partitions,
            })
        })
        .collect()
}

/// What one membership change cost.
#[derive(Debug, Default)]
struct Cost {
    /// Partitions revoked from any member.
    stopped: BTreeSet<String>,
    /// Partitions that ended with another instance than the one they were revoked from.
    moved: BTreeSet<String>,
    /// Per stopped partition: from its revocation to its next assignment.
    pauses_ms: Vec<i64>,
}

/// The cost of the changes logged in `[from, to)`.
fn cost(
    all: &[Change],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Cost {
    let mut c = Cost::default();
    let window: Vec<&Change> = all
        .iter()
        .filter(|ch| ch.at >= from && ch.at < to)
        .collect();
    for (i, r) in window.iter().enumerate().filter(|(_, ch)| ch.revoked) {
        for p in &r.partitions {
            c.stopped.insert(p.clone());
            if let Some(next) = window[i + 1..]
                .iter()
                .find(|a| !a.revoked && a.partitions.contains(p))
            {
                c.pauses_ms.push((next.at - r.at).num_milliseconds());
                if next.instance != r.instance {
                    c.moved.insert(p.clone());
                }
            }
        }
    }
    c.pauses_ms.sort_unstable();
    c
}

fn report(protocol: &str, event: &str, c: &Cost) {
    let max = c.pauses_ms.last().copied().unwrap_or(0);
    let median = c.pauses_ms.get(c.pauses_ms.len() / 2).copied().unwrap_or(0);
    eprintln!(
        "{protocol}: {event}: {} partitions stopped, {} changed owner, pause median {median} ms, max {max} ms",
        c.stopped.len(),
        c.moved.len()
    );
}

async fn join_then_leave(protocol: &str) {
    let dir = tempfile::tempdir().unwrap();
    let group = unique("group");
    let t = Topics::create("", PARTITIONS).await;
    let config = write_config(
        dir.path(),
        &group,
        &t.spans,
        &t.logs,
        &t.out,
        &t.dlq,
        "workers: 1\n",
    );
    // The load is keyed by trace id on co-partitioned topics: no repartition stage, so the
    // partitions that move are the inputs' own.
    let yaml = std::fs::read_to_string(&config).unwrap();
    let logs_line = format!("  logs: [{{topic: {}, format: json}}]\n", t.logs);
    assert!(yaml.contains(&logs_line), "{yaml}");
    std::fs::write(
        &config,
        yaml.replace(&logs_line, &format!("{logs_line}  repartition: never\n")),
    )
    .unwrap();
    if protocol == "consumer" {
        // Under KIP-848 the session timeout is the group's (broker side), not the client's.
        let yaml = std::fs::read_to_string(&config).unwrap().replace(
            "  properties:\n    session.timeout.ms: \"6000\"\n",
            "  group_protocol: consumer\n",
        );
        assert!(yaml.contains("group_protocol: consumer"));
        std::fs::write(&config, yaml).unwrap();
    }
    let load = Load::start(&bootstrap(), &t.spans, &t.logs, 2500, 150);
    let first = Process::spawn(&config, "first");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let joined_at = chrono::Utc::now();
    let second = Process::spawn(&config, "second");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let left_at = chrono::Utc::now();
    let (first_log, second_log) = (first.log.clone(), second.log.clone());
    let status = tokio::task::spawn_blocking(move || first.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success(), "the leaving instance exits 0: {status}");
    let (expected, records) = load.finish_and_read(&t.out).await;
    let end = chrono::Utc::now();
    let status = tokio::task::spawn_blocking(move || second.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success());

    let mut all = changes(&first_log, "first");
    all.extend(changes(&second_log, "second"));
    all.sort_by_key(|c| c.at);
    let every: BTreeSet<String> = [&t.spans, &t.logs]
        .iter()
        .flat_map(|topic| (0..PARTITIONS).map(move |p| format!("{topic}/{p}")))
        .collect();
    let second_owns: BTreeSet<String> = all
        .iter()
        .filter(|c| c.instance == "second" && !c.revoked && c.at < left_at)
        .flat_map(|c| c.partitions.clone())
        .collect();
    assert!(
        !second_owns.is_empty(),
        "the second instance was given nothing before the first left: {all:#?}"
    );
    let join = cost(&all, joined_at, left_at);
    let leave = cost(&all, left_at, end);
    report(protocol, "a member joins", &join);
    report(protocol, "a member leaves", &leave);

    assert_eq!(
        join.moved, second_owns,
        "what the joiner got is what changed owner"
    );
    match protocol {
        "classic" => {
            // Eager: the member that stays stops all it had, and picks half of it up again.
            assert_eq!(
                join.stopped, every,
                "classic: every partition stops when a member joins"
            );
        }
        _ => {
            // Incremental: only the partitions handed to the joiner stop.
            assert_eq!(
                join.stopped, join.moved,
                "consumer protocol: only the moved partitions stop"
            );
            let kept: BTreeSet<_> = every.difference(&second_owns).cloned().collect();
            assert!(
                leave.stopped.is_subset(&kept),
                "consumer protocol: the staying member keeps consuming its own partitions when the other leaves: stopped {:?}",
                leave.stopped
            );
        }
    }
    assert_eq!(
        join.pauses_ms.len(),
        join.stopped.len(),
        "every stopped partition was picked up again: {all:#?}"
    );
    let (unique, total) = check_outputs(&expected, &records);
    assert_duplicates_within(
        &format!("{protocol}: join + leave"),
        expected.len(),
        unique,
        total,
        MAX_DUPLICATES,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_stops_every_partition_when_a_member_joins() {
    join_then_leave("classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_stops_only_what_moves() {
    join_then_leave("consumer").await;
}
