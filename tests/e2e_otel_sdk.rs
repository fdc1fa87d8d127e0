//! End to end with real OpenTelemetry code: the OpenTelemetry Python SDK makes the traces and
//! the logs (OTLP logs through its logging handler, and JSON lines with the trace context of the
//! current span), encodes them with its own OTLP encoders and produces them to a real Kafka the
//! way the Collector's Kafka exporter does (`tests/otel/produce.py`). The pipeline runs against
//! the same broker; every log must come out exactly once with the outcome and span context the
//! producer's manifest predicts.

mod common;

use common::exposition::value;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_traces_and_logs_are_joined_exactly_once() {
    let python = std::env::var("TRACEJOIN_PYTHON")
        .expect("TRACEJOIN_PYTHON is not set: run the suite with scripts/test.sh, which builds the OpenTelemetry SDK venv");
    let Topics {
        spans,
        logs,
        out,
        dlq,
    } = Topics::create("otlp-", 3).await;
    let mut cfg = config(&spans, &logs, &out, &dlq);
    cfg.join.max_wait = Duration::from_secs(5);
    cfg.join.idle_timeout = Duration::from_secs(3);
    // confluent-kafka (librdkafka) partitions keyed records by CRC32 of the key.
    cfg.inputs.partitioner = tracejoin::sources::partitioner::Partitioner::Crc32;
    // Long enough that every client span meets its server span in this run, whatever the
    // batching of the SDK's exporter: the edges are then those of an offline pairing.
    cfg.metrics.service_graph.store.ttl = Duration::from_secs(60);
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
    check_service_graph(&spans, &running).await;
    let running_metrics = {
        let h = running.health.clone();
        move || h.render()
    };
    running.stop().await;

    let exposition = running_metrics();
    let records = read_all(&out, Duration::from_secs(60));
    // Co-partitioning: every keyed record the SDK producer (librdkafka) wrote sits on the
    // partition tracejoin's crc32 computes for its key, and tracejoin counted no mismatch.
    // Both must have looked at records: a check that saw nothing fails.
    let mut keyed = 0;
    for topic in [&spans, &logs] {
        let input = read_all(topic, Duration::from_secs(60));
        for r in input.iter().filter(|r| r.key.is_some()) {
            let key = r.key.as_deref().unwrap();
            assert_eq!(
                tracejoin::sources::partitioner::Partitioner::Crc32.partition(key, 3),
                Some(r.partition),
                "librdkafka put key {:?} of {topic} elsewhere than tracejoin's crc32",
                String::from_utf8_lossy(key)
            );
            keyed += 1;
        }
        let consumed = value(
            &exposition,
            "tracejoin_records_consumed_total",
            &[("topic", topic.as_str())],
        )
        .unwrap_or_else(|| panic!("no tracejoin_records_consumed_total for {topic}"));
        assert_eq!(
            consumed as usize,
            input.len(),
            "tracejoin consumed every record of {topic}"
        );
        assert_eq!(
            value(
                &exposition,
                "tracejoin_partition_key_mismatch_total",
                &[("topic", topic.as_str())]
            ),
            None,
            "librdkafka's partitioner disagrees with tracejoin's crc32 for {topic}"
        );
    }
    assert!(
        keyed > 0,
        "no keyed input record: co-partitioning was not checked"
    );
    eprintln!("co-partitioning: {keyed} keyed input records on their crc32 partition");
    let got = by_log_id(&records);
    // Every log exactly once: name all the missing and all the repeated ones at once, which says
    // more about a failure (a replay, a loss) than the first log that differs.
    let missing: Vec<&str> = manifest
        .iter()
        .map(|m| m["log_id"].as_str().unwrap())
        .filter(|id| !got.contains_key(*id))
        .collect();
    let repeated: Vec<(&String, usize)> = got
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(id, v)| (id, v.len()))
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "of {} logs, {} never came out ({missing:?}) and {} came out more than once ({repeated:?}); {} output records",
        manifest.len(),
        missing.len(),
        repeated.len(),
        records.len()
    );
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

/// The service graph: every edge of the SDK's spans, paired offline from the spans topic, is
/// counted once on /metrics, and the server and client duration histograms of each edge have
/// the offline pairing's bucket counts (virtual-node edges come only after the store's ttl).
async fn check_service_graph(spans: &str, running: &Running) {
    let (want, want_buckets) = offline_edges(spans);
    assert!(
        want.keys().any(|(_, _, c, _)| c == "messaging_system")
            && want.keys().any(|(_, _, c, _)| c.is_empty())
            && want.keys().any(|(_, _, _, failed)| *failed),
        "the scenario has plain, messaging and failed edges: {want:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = running.health.render();
        let (got, got_buckets) = (edges_on_metrics(&text), buckets_on_metrics(&text));
        if got == want && got_buckets == want_buckets {
            println!(
                "service graph: {} edges, {} requests, {} non-empty buckets",
                got.len(),
                got.values().sum::<u64>(),
                got_buckets.len()
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service graph on /metrics\n{got:#?}\nis not the offline pairing\n{want:#?}\n\
             (buckets equal: {})",
            got_buckets == want_buckets
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

type Edge = (String, String, String, bool);

/// Pairs the spans of the topic the way the Collector's servicegraph connector defines an edge
/// (client or producer span + the server or consumer span whose parent it is), with no store
/// and no ttl: (client, server, connection_type, failed) → requests.
fn offline_edges(topic: &str) -> (HashMap<Edge, u64>, HashMap<Bucket, u64>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
    use prost::Message;
    struct Half {
        service: String,
        messaging: bool,
        failed: bool,
        seconds: f64,
    }
    let (mut clients, mut servers) = (HashMap::new(), HashMap::new());
    for r in read_all(topic, Duration::from_secs(30)) {
        let req = ExportTraceServiceRequest::decode(r.payload.as_slice()).expect("OTLP spans");
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|res| res.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let failed = s
                    .status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32);
                let seconds =
                    s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e9;
                let half = |messaging| Half {
                    service: service.clone(),
                    messaging,
                    failed,
                    seconds,
                };
                match SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified) {
                    SpanKind::Client => {
                        clients.insert((s.trace_id.clone(), s.span_id.clone()), half(false));
                    }
                    SpanKind::Producer => {
                        clients.insert((s.trace_id.clone(), s.span_id.clone()), half(true));
                    }
                    SpanKind::Server if !s.parent_span_id.is_empty() => {
                        servers.insert((s.trace_id.clone(), s.parent_span_id.clone()), half(false));
                    }
                    SpanKind::Consumer if !s.parent_span_id.is_empty() => {
                        servers.insert((s.trace_id.clone(), s.parent_span_id.clone()), half(true));
                    }
                    _ => {}
                }
            }
        }
    }
    let mut edges = HashMap::new();
    let mut buckets = HashMap::new();
    let mut bounds = tracejoin::derive::servicegraph::DEFAULT_BUCKETS.to_vec();
    bounds.push(f64::INFINITY);
    for (key, c) in &clients {
        let Some(s) = servers.get(key) else { continue };
        let connection = if c.messaging && s.messaging {
            "messaging_system"
        } else {
            ""
        };
        let edge = (
            c.service.clone(),
            s.service.clone(),
            connection.to_string(),
            c.failed || s.failed,
        );
        *edges.entry(edge.clone()).or_insert(0) += 1;
        for (side, seconds) in [("server", s.seconds), ("client", c.seconds)] {
            for le in bounds.iter().filter(|le| seconds <= **le) {
                *buckets
                    .entry((edge.clone(), side, le.to_bits()))
                    .or_insert(0) += 1;
            }
        }
    }
    (edges, buckets)
}

/// (edge, `server` or `client` histogram, bucket bound's bits) → cumulative count.
type Bucket = (Edge, &'static str, u64);

/// The `_bucket` samples of the service graph's two histograms on /metrics (virtual-node edges
/// aside, zero counts left out as the offline pairing has no entry for them).
fn buckets_on_metrics(text: &str) -> HashMap<Bucket, u64> {
    common::exposition::parse(text)
        .into_iter()
        .filter(|s| s.value > 0.0)
        .filter(|s| s.labels.get("connection_type").map(String::as_str) != Some("virtual_node"))
        .filter_map(|s| {
            let side = match s.name.as_str() {
                "traces_service_graph_request_server_seconds_bucket" => "server",
                "traces_service_graph_request_client_seconds_bucket" => "client",
                _ => return None,
            };
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let le: f64 = match l("le").as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().ok()?,
            };
            let edge = (
                l("client"),
                l("server"),
                l("connection_type"),
                l("failed") == "true",
            );
            Some(((edge, side, le.to_bits()), s.value as u64))
        })
        .collect()
}

/// `traces_service_graph_request_total` on /metrics, virtual-node edges aside.
fn edges_on_metrics(text: &str) -> HashMap<Edge, u64> {
    common::exposition::parse(text)
        .into_iter()
        .filter(|s| s.name == "traces_service_graph_request_total")
        .filter(|s| s.labels.get("connection_type").map(String::as_str) != Some("virtual_node"))
        .map(|s| {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            (
                (
                    l("client"),
                    l("server"),
                    l("connection_type"),
                    l("failed") == "true",
                ),
                s.value as u64,
            )
        })
        .collect()
}
