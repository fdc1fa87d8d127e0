//! End to end with real OpenTelemetry code: the OpenTelemetry Python SDK makes the traces and
//! the logs (OTLP logs through its logging handler, and JSON lines with the trace context of the
//! current span), encodes them with its own OTLP encoders and produces them to a real Kafka the
//! way the Collector's Kafka exporter does (`tests/otel/produce.py`). The pipeline runs against
//! the same broker; every log must come out exactly once with the outcome and span context the
//! producer's manifest predicts.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_traces_and_logs_are_joined_exactly_once() {
    let python = std::env::var("TRACEJOIN_PYTHON")
        .expect("TRACEJOIN_PYTHON is not set: run the suite with scripts/test.sh, which builds the OpenTelemetry SDK venv");
    let (spans, logs, out, dlq) = (
        unique("otlp_spans"),
        unique("otlp_logs"),
        unique("enriched"),
        unique("dlq"),
    );
    create_topics(&[&spans, &logs, &out, &dlq], 3).await;
    let mut cfg = config(&spans, &logs, &out, &dlq);
    cfg.join.max_wait = Duration::from_secs(5);
    cfg.join.idle_timeout = Duration::from_secs(3);
    // confluent-kafka (librdkafka) partitions keyed records by CRC32 of the key.
    cfg.inputs.partitioner = tracejoin::sources::partitioner::Partitioner::Crc32;
    let running = start(cfg);

    let manifest_path = std::env::temp_dir().join(format!("{}.jsonl", unique("manifest")));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/produce.py");
    let status = tokio::task::spawn_blocking({
        let (python, manifest_path) = (python.clone(), manifest_path.clone());
        let (spans, logs) = (spans.clone(), logs.clone());
        move || {
            std::process::Command::new(python)
                .args([
                    script,
                    "--bootstrap",
                    &bootstrap(),
                    "--spans-topic",
                    &spans,
                    "--logs-topic",
                    &logs,
                ])
                .arg("--manifest")
                .arg(&manifest_path)
                .args(["--traces", "40", "--seed", "7"])
                .status()
        }
    })
    .await
    .unwrap()
    .expect("run produce.py");
    assert!(status.success(), "produce.py failed: {status}");

    let manifest: Vec<serde_json::Value> = std::fs::read_to_string(&manifest_path)
        .expect("manifest")
        .lines()
        .map(|l| serde_json::from_str(l).expect("manifest line"))
        .collect();
    assert!(
        manifest.len() > 50,
        "the producer made too few logs: {}",
        manifest.len()
    );
    let first = tokio::task::spawn_blocking({
        let (out, n) = (out.clone(), manifest.len());
        move || consume(&out, n, Duration::from_secs(120))
    })
    .await
    .unwrap();
    assert_eq!(
        first.len(),
        manifest.len(),
        "not every log came out in time"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running_metrics = {
        let h = running.health.clone();
        move || h.render()
    };
    running.stop().await;

    let exposition = running_metrics();
    let records = consume(&out, usize::MAX, Duration::from_secs(4));
    for topic in [&spans, &logs] {
        assert!(
            !exposition.contains(&format!(
                "tracejoin_partition_key_mismatch_total{{topic=\"{topic}\"}}"
            )),
            "librdkafka's partitioner disagrees with tracejoin's crc32 for {topic}"
        );
    }
    for topic in [&spans, &logs] {
        let prefix = format!("tracejoin_records_consumed_total{{topic=\"{topic}\"}} ");
        let n: u64 = exposition
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in the exposition"));
        assert!(n > 0, "{prefix}{n}");
    }
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
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for m in &manifest {
        let id = m["log_id"].as_str().unwrap();
        let versions = got
            .get(id)
            .unwrap_or_else(|| panic!("log {id} never came out: {m}"));
        assert_eq!(
            versions.len(),
            1,
            "log {id} came out {} times",
            versions.len()
        );
        let v = &versions[0];
        let outcome = m["expected_outcome"].as_str().unwrap();
        *outcomes.entry(outcome.to_string()).or_default() += 1;
        assert_eq!(
            v["join"]["outcome"], outcome,
            "log {id}: manifest {m}\n got {v}"
        );
        assert_eq!(v["trace_id"], m["trace_id"], "log {id}");
        match outcome {
            "matched_span" => {
                assert_eq!(v["span"]["name"], m["expected_span_name"], "log {id}: {v}");
                assert_eq!(v["span"]["service"], m["expected_service"], "log {id}: {v}");
                assert_eq!(v["span_id"], m["span_id"], "log {id}");
            }
            "matched_trace" => {
                assert_eq!(
                    v["trace"]["root_service"], m["expected_root_service"],
                    "log {id}: {v}"
                );
                assert_eq!(
                    v["trace"]["root_operation"], m["expected_root_operation"],
                    "log {id}: {v}"
                );
            }
            _ => assert!(v.get("span").is_none(), "log {id}: {v}"),
        }
        assert_eq!(
            v["log"]["format"],
            if m["format"] == "otlp" {
                "otlp_proto"
            } else {
                "json"
            },
            "log {id}"
        );
    }
    assert_eq!(
        got.len(),
        manifest.len(),
        "logs the producer never wrote came out"
    );
    for o in ["matched_span", "matched_trace", "unmatched", "no_trace_id"] {
        assert!(
            outcomes.get(o).copied().unwrap_or(0) > 0,
            "the scenario never exercised {o}: {outcomes:?}"
        );
    }
    let _ = std::fs::remove_file(manifest_path);
}
