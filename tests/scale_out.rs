//! Scale-out with the producers people run: real OpenTelemetry SDK telemetry sent over OTLP to a
//! real OpenTelemetry Collector (built here from the Go module proxy) whose Kafka exporter runs at
//! its default settings — unkeyed records, each holding the spans of whatever traces a request
//! carried (eight here, as an SDK's batch span processor sends them) — plus unkeyed JSON log
//! lines, into **three instances of two workers each** in one consumer group.
//!
//! With `inputs.repartition: auto` every log gets the outcome the producer's manifest predicts
//! (what one instance gives). With `never`, the same traffic is mis-joined — the contrast is
//! what the repartition stage prevents — and the processor says so
//! (`tracejoin_partition_key_unchecked_total`).

mod common;

use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracejoin::config::{Config, Workers};
use tracejoin::pipeline::Hooks;
use tracejoin::sources::repartition::RepartitionPolicy;
use tracejoin::telemetry::server::Health;

const PARTITIONS: i32 = 6;
const INSTANCES: usize = 3;

struct Outcome {
    /// Logs whose outcome (and span) differs from the manifest's, with an example.
    wrong: usize,
    example: Option<String>,
    logs: usize,
    copies: usize,
    exposition: String,
}

async fn run(policy: RepartitionPolicy, seed: &str) -> Outcome {
    use common::services::Collector;
    let python = std::env::var("TRACEJOIN_PYTHON")
        .expect("TRACEJOIN_PYTHON is not set: run the suite with scripts/test.sh");
    let (spans, logs, out, dlq) = (
        unique("so_spans"),
        unique("so_logs"),
        unique("so_enriched"),
        unique("so_dlq"),
    );
    create_topics(&[&spans, &logs, &out, &dlq], PARTITIONS).await;
    let mut base: Config = config(&spans, &logs, &out, &dlq);
    base.workers = Workers::Count(2);
    base.inputs.repartition = policy;
    base.join.max_wait = Duration::from_secs(6);
    base.join.idle_timeout = Duration::from_secs(3);
    base.validate().expect("valid config");

    let shutdown = CancellationToken::new();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let health = Health::default();
        let task = tokio::spawn(tracejoin::pipeline::run(
            base.clone(),
            health.clone(),
            Hooks::default(),
            shutdown.clone(),
        ));
        instances.push((health, task));
    }
    // Settle the group before the traffic: six members, every partition assigned.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !instances.iter().all(|(h, _)| h.is_ready()) {
        if let Some(i) = instances.iter().position(|(_, t)| t.is_finished()) {
            let (_, task) = instances.swap_remove(i);
            panic!("an instance stopped: {:?}", task.await);
        }
        assert!(
            Instant::now() < deadline,
            "the instances never became ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;

    let (collector, otlp_url) = Collector::start_exporter(&spans, &logs);
    let manifest_path = std::env::temp_dir().join(format!("{}.jsonl", unique("manifest")));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/produce.py");
    let status = tokio::task::spawn_blocking({
        let (python, manifest_path, seed) =
            (python.clone(), manifest_path.clone(), seed.to_string());
        let (spans, logs) = (spans.clone(), logs.clone());
        move || {
            std::process::Command::new(python)
                .args([script, "--bootstrap", &bootstrap(), "--spans-topic", &spans])
                .args(["--logs-topic", &logs, "--traces", "60", "--seed", &seed])
                .args(["--unkeyed", "--batch", "8", "--otlp-endpoint", &otlp_url])
                .arg("--manifest")
                .arg(&manifest_path)
                .status()
        }
    })
    .await
    .unwrap()
    .expect("run produce.py");
    assert!(
        status.success(),
        "produce.py failed: {status}\nCollector log:\n{}",
        collector.log()
    );
    let manifest: Vec<serde_json::Value> = std::fs::read_to_string(&manifest_path)
        .expect("manifest")
        .lines()
        .map(|l| serde_json::from_str(l).expect("manifest line"))
        .collect();
    let _ = std::fs::remove_file(&manifest_path);
    assert!(manifest.len() > 80, "too few logs: {}", manifest.len());

    let records = tokio::task::spawn_blocking({
        let (out, n) = (out.clone(), manifest.len());
        move || consume(&out, n, Duration::from_secs(120))
    })
    .await
    .unwrap();
    assert_eq!(
        records.len(),
        manifest.len(),
        "not every log came out in time"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exposition = instances[0].0.render();
    shutdown.cancel();
    for (_, task) in instances {
        task.await
            .expect("task")
            .expect("pipeline ran without error");
    }
    let records = read_all(&out, Duration::from_secs(60));

    // What the Collector's exporter wrote: unkeyed records, some holding several traces.
    let span_records = read_all(&spans, Duration::from_secs(60));
    assert!(
        !span_records.is_empty(),
        "the Collector wrote no span record"
    );
    assert!(
        span_records.iter().all(|r| r.key.is_none()),
        "the exporter at its defaults does not key records"
    );
    let most_traces = span_records
        .iter()
        .map(|r| {
            let mut parts = Vec::new();
            tracejoin::sources::repartition::split_spans_proto(&r.payload, &mut parts)
                .expect("OTLP protobuf");
            parts.len()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most_traces > 1,
        "a span record holds several traces (at most {most_traces} seen)"
    );
    drop(collector);

    let re = regex::Regex::new(r"log_id=(\w+)").unwrap();
    let mut got: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in &records {
        let v = r.json();
        let id = re
            .captures(v["body"].as_str().unwrap_or_default())
            .map(|c| c[1].to_string())
            .expect("log_id in body");
        got.entry(id).or_default().push(v);
    }
    let (mut wrong, mut example) = (0, None);
    for m in &manifest {
        let id = m["log_id"].as_str().unwrap();
        let v = &got.get(id).unwrap_or_else(|| panic!("log {id} lost: {m}"))[0];
        let outcome = m["expected_outcome"].as_str().unwrap();
        let right = v["join"]["outcome"] == outcome
            && v["trace_id"] == m["trace_id"]
            && match outcome {
                "matched_span" => {
                    v["span"]["name"] == m["expected_span_name"] && v["span_id"] == m["span_id"]
                }
                "matched_trace" => v["trace"]["root_operation"] == m["expected_root_operation"],
                _ => v.get("span").is_none(),
            };
        if !right {
            wrong += 1;
            example.get_or_insert_with(|| format!("manifest {m}\n got {v}"));
        }
    }
    Outcome {
        wrong,
        example,
        logs: manifest.len(),
        copies: records.len(),
        exposition,
    }
}

fn sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_batched_telemetry_into_three_instances_is_joined_right_by_repartitioning() {
    let auto = run(RepartitionPolicy::Auto, "11").await;
    println!(
        "repartition auto: {} of {} logs right, {} copies out",
        auto.logs - auto.wrong,
        auto.logs,
        auto.copies
    );
    assert_eq!(
        auto.wrong,
        0,
        "with the repartition stage every log gets the one-instance outcome; first difference:\n{}",
        auto.example.unwrap_or_default()
    );
    assert!(
        sum(&auto.exposition, "tracejoin_repartition_active") >= 2.0,
        "both input topics re-keyed"
    );
    assert!(sum(&auto.exposition, "tracejoin_repartition_records_total") > 0.0);

    let never = run(RepartitionPolicy::Never, "11").await;
    println!(
        "repartition never: {} of {} logs mis-joined",
        never.wrong, never.logs
    );
    assert!(
        never.wrong > never.logs / 10,
        "without the stage, unkeyed batched telemetry over six workers is mis-joined (got {} of {})",
        never.wrong,
        never.logs
    );
    assert!(
        sum(&never.exposition, "tracejoin_partition_key_unchecked_total") > 0.0,
        "and the processor counts the records it could not check"
    );
}
