//! RED counts that survive kill -9 exactly (`metrics.red.per_partition`).
//!
//! Each join partition's series are kept in the state changelog with the offsets they cover,
//! and offsets commit only up to what a written state covers; a partition's next owner restores
//! its series and counts replayed records only from the state's position on. So whatever
//! crashes, the series the *live* fleet exposes hold every span exactly once: no replay counted
//! twice, no count lost with a dead process.
//!
//! On the real broker, with the real binary, under load: two members run; three times a member
//! is killed with `kill -9` while traces are being produced, and a new one takes its place. At
//! the end the sum of `traces_span_metrics_calls_total` over the live members equals the number
//! of server spans produced, exactly, each partition is exposed by one member only, and the
//! restored states were used (`tracejoin_red_restored_replay_spans_total` moved). The SLOs'
//! good and bad totals, read from the same live fleet, equal the input's too.

mod common;

use common::fleet::{self, Instance};
use common::load::Load;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

const PARTITIONS: i32 = 4;
const CALLS: &str = "traces_span_metrics_calls_total";

/// Two SLOs over the load's server spans (20 ms each, never an error): every one is good for
/// `items-availability`; for `items-latency` (under 10 ms, only `GET /item/0` … `/4`) every one
/// it selects is bad.
const SLOS: &str = r#"slos:
  - name: items-availability
    service: shop
    objective: 0.99
    time_window: 30d
    selector: {span_name_regex: "GET /item/.*", span_kinds: [server]}
    indicator: {availability: {}}
  - name: items-latency
    service: shop
    objective: 0.99
    time_window: 30d
    selector: {span_name_regex: "GET /item/[0-4]", span_kinds: [server]}
    indicator: {latency: {threshold: 10ms}}
"#;

/// What the live fleet shows: the RED calls, per partition the members exposing its series,
/// and per (SLO, outcome) the events in the 30d windows.
type View = (
    u64,
    BTreeMap<String, Vec<String>>,
    BTreeMap<(String, String), u64>,
);

fn live_view(fleet: &[Instance]) -> View {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut slo: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut calls = 0;
    for i in fleet.iter().filter(|i| i.live()) {
        for s in i.last.iter().filter(|s| {
            s.name == "tracejoin_slo_window_events"
                && s.labels.get("window").map(String::as_str) == Some("30d")
        }) {
            let key = (s.labels["slo"].clone(), s.labels["outcome"].clone());
            *slo.entry(key).or_default() += s.value as u64;
        }
        for s in i.last.iter().filter(|s| s.name == CALLS) {
            calls += s.value as u64;
            let p = s.labels.get("partition").cloned().unwrap_or_default();
            let names = owners.entry(p).or_default();
            if !names.contains(&i.name) {
                names.push(i.name.clone());
            }
        }
    }
    (calls, owners, slo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_counts_are_exact_after_three_kill_9_under_load_on_co_partitioned_topics() {
    three_crashes_under_load("  partitioner: crc32\n  repartition: never\n").await;
}

/// Through the repartition stage, where a crash also replays the re-keying of the inputs: the
/// copies it makes are known by their input record and piece, and not counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_counts_are_exact_after_three_kill_9_under_load_through_the_repartition_stage() {
    three_crashes_under_load("  repartition: always\n").await;
}

/// Two members; three times one is killed under load and a new one joins. `inputs` is YAML
/// added to the `inputs` section.
async fn three_crashes_under_load(inputs: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create("redexact-", PARTITIONS).await;
    let slo_file = dir.path().join("slo.yaml");
    std::fs::write(&slo_file, SLOS).unwrap();
    let base = write_config(
        dir.path(),
        &unique("group"),
        &t.spans,
        &t.logs,
        &t.out,
        &t.dlq,
        &format!(
            "workers: 1\nstate:\n  snapshot_interval: 1s\nrules:\n  slo: \"{}\"\n",
            slo_file.display()
        ),
    );
    let yaml = std::fs::read_to_string(&base).unwrap().replace(
        "metrics:\n  listen: \"127.0.0.1:0\"\n",
        "metrics:\n  listen: \"127.0.0.1:0\"\n  red:\n    per_partition: true\n",
    );
    assert!(yaml.contains("per_partition: true"));
    // The load is keyed by trace id with librdkafka's partitioner: co-partitioned topics.
    let logs_line = format!("  logs: [{{topic: {}, format: json}}]\n", t.logs);
    assert!(yaml.contains(&logs_line), "{yaml}");
    let yaml = yaml.replace(&logs_line, &format!("{logs_line}{inputs}"));
    std::fs::write(&base, yaml).unwrap();

    let mut fleet = vec![
        Instance::spawn(dir.path(), &base, "a"),
        Instance::spawn(dir.path(), &base, "b"),
    ];
    tokio::time::sleep(Duration::from_secs(4)).await;

    // 24 s of traffic; each trace has one server span (counted) and one client span. A crash
    // every 7 s: the group notices it after the session timeout (6 s), so each crash is
    // followed by a rebalance before the next.
    let load = Load::start(&bootstrap(), &t.spans, &t.logs, 6_000, 250);
    for (victim, replacement) in [(0, "c"), (1, "d"), (2, "e")] {
        tokio::time::sleep(Duration::from_secs(if victim == 0 { 4 } else { 7 })).await;
        fleet[victim].crash();
        fleet.push(Instance::spawn(dir.path(), &base, replacement));
    }
    let produced = tokio::task::block_in_place(|| load.finish()).len() as u64 / 2;

    let (calls, owners, slo) = fleet::settle(&mut fleet, live_view, Duration::from_secs(8)).await;
    let logs: String = fleet
        .iter()
        .map(|i| format!("--- {}\n{}", i.name, i.log()))
        .collect();
    if std::env::var_os("TRACEJOIN_KEEP_LOGS").is_some() {
        std::fs::write("/tmp/red_exact.log", &logs).unwrap();
    }
    assert_eq!(
        owners.keys().cloned().collect::<Vec<_>>(),
        (0..PARTITIONS).map(|p| p.to_string()).collect::<Vec<_>>(),
        "every partition's series, labelled by partition, on the live members"
    );
    for (p, names) in &owners {
        assert_eq!(names.len(), 1, "partition {p} exposed by {names:?}");
    }
    assert_eq!(
        calls, produced,
        "the live fleet's RED calls equal the server spans produced, after three kill -9"
    );
    // The load numbers its traces 0, 1, …: `GET /item/{n % 10}`.
    let fast_names = (0..produced).filter(|n| n % 10 < 5).count() as u64;
    let event = |name: &str, outcome: &str| {
        slo.get(&(name.to_string(), outcome.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        (
            event("items-availability", "good"),
            event("items-availability", "bad"),
            event("items-latency", "good"),
            event("items-latency", "bad"),
        ),
        (produced, 0, 0, fast_names),
        "the live fleet's SLO good and bad totals (30d windows) equal the input's: {slo:?}"
    );
    // Replayed spans not counted again: below a restored position, or (through the
    // repartition stage, where that is checked first) as copies of re-keyed records.
    let live_sum =
        |name: &str| -> u64 { fleet.iter().filter(|i| i.live()).map(|i| i.sum(name)).sum() };
    let restored = live_sum("tracejoin_red_restored_replay_spans_total")
        + live_sum("tracejoin_repartition_copies_spans_total");
    let restores: u64 = fleet
        .iter()
        .filter(|i| i.live())
        .flat_map(|i| i.last.iter())
        .filter(|s| {
            s.name == "tracejoin_slo_state_restores_total"
                && s.labels.get("outcome").map(String::as_str) == Some("restored")
        })
        .map(|s| s.value as u64)
        .sum();
    assert!(
        restores > 0 && restored > 0,
        "no partition state was restored ({restores}) or no replayed span skipped ({restored}): the test proves nothing; logs:\n{logs}"
    );
    for i in fleet.iter_mut().filter(|i| i.live()) {
        i.stop(Duration::from_secs(40)).await;
    }
}
