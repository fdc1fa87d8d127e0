//! The pipeline against a real Apache Kafka broker: the join's outcomes end to end, dead
//! letters with their headers, and offsets committed only behind acknowledged logs.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{span, Span, Status};
use prost::Message;
use std::collections::HashMap;
use std::time::Duration;

struct TestTrace {
    trace_id: [u8; 16],
    root: [u8; 8],
    child: [u8; 8],
}

impl TestTrace {
    fn new() -> Self {
        TestTrace {
            trace_id: rand::random(),
            root: rand::random::<[u8; 8]>().map(|b| b | 1),
            child: rand::random::<[u8; 8]>().map(|b| b | 1),
        }
    }
    fn hex(&self) -> String {
        hex(&self.trace_id)
    }
    fn spans(&self, t: u64) -> Vec<u8> {
        let span = |id: [u8; 8], parent: Option<[u8; 8]>, name: &str, kind: span::SpanKind| Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: t - 50_000_000,
            end_time_unix_nano: t,
            status: Some(Status::default()),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource_spans(
                    "frontend",
                    vec![span(self.root, None, "GET /home", span::SpanKind::Server)],
                ),
                resource_spans(
                    "backend",
                    vec![span(
                        self.child,
                        Some(self.root),
                        "SELECT users",
                        span::SpanKind::Client,
                    )],
                ),
            ],
        }
        .encode_to_vec()
    }
    fn otlp_log(&self, t: u64, span_id: [u8; 8], body: &str) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: t,
                        trace_id: self.trace_id.to_vec(),
                        span_id: span_id.to_vec(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(body.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }
}

/// Expected outcome and span name per log id.
type Expected = HashMap<String, (&'static str, Option<&'static str>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_every_log_shape_exactly_once_on_a_real_broker() {
    let t = Topics::create("", 3).await;
    let p = producer();
    let now = now_nanos();
    let mut expected: Expected = HashMap::new();
    let matched = TestTrace::new();
    let early = TestTrace::new();
    let orphan = TestTrace::new();

    // Spans first for `matched`; logs in every shape, keyed by trace id as the Collector does.
    produce(&p, &t.spans, Some(&matched.hex()), &matched.spans(now)).await;
    let (m, mh) = (&matched, matched.hex());
    let lines = [
        (
            "json1",
            format!(
                r#"{{"message":"log_id=json1 hello","trace_id":"{mh}","span_id":"{}","level":"INFO"}}"#,
                hex(&m.root)
            ),
            ("matched_span", Some("GET /home")),
        ),
        (
            "logfmt1",
            format!(
                r#"level=warn msg="log_id=logfmt1 slow" trace_id={mh} span_id={}"#,
                hex(&m.child)
            ),
            ("matched_span", Some("SELECT users")),
        ),
        (
            "text1",
            format!(
                "{} ERROR log_id=text1 boom trace_id={mh}",
                chrono::Utc::now().to_rfc3339()
            ),
            ("matched_trace", Some("GET /home")),
        ),
        (
            "noid1",
            "log_id=noid1 no context at all".to_string(),
            ("no_trace_id", None),
        ),
    ];
    for (id, line, exp) in lines {
        let key = if id == "noid1" {
            None
        } else {
            Some(mh.as_str())
        };
        produce(&p, &t.logs, key, line.as_bytes()).await;
        expected.insert(id.to_string(), exp);
    }
    produce(
        &p,
        &t.logs,
        Some(&mh),
        &m.otlp_log(now, m.child, "log_id=otlp1 from the sdk"),
    )
    .await;
    expected.insert("otlp1".into(), ("matched_span", Some("SELECT users")));
    // Logs before their spans: they wait.
    produce(
        &p,
        &t.logs,
        Some(&early.hex()),
        format!(
            r#"{{"msg":"log_id=early1 first","traceId":"{}","spanId":"{}"}}"#,
            early.hex(),
            hex(&early.child)
        )
        .as_bytes(),
    )
    .await;
    expected.insert("early1".into(), ("matched_span", Some("SELECT users")));
    // A trace whose spans never come.
    produce(
        &p,
        &t.logs,
        Some(&orphan.hex()),
        format!(
            r#"{{"msg":"log_id=orphan1 alone","trace_id":"{}"}}"#,
            orphan.hex()
        )
        .as_bytes(),
    )
    .await;
    expected.insert("orphan1".into(), ("unmatched", None));

    let running = start(config(&t.spans, &t.logs, &t.out, &t.dlq));
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce(&p, &t.spans, Some(&early.hex()), &early.spans(now)).await;

    let first = tokio::task::spawn_blocking({
        let out = t.out.clone();
        let n = expected.len();
        move || consume(&out, n, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        first.len(),
        expected.len(),
        "not every log came out in time"
    );
    // Consumer lag per partition comes from librdkafka's statistics (every 5 s): caught up, 0.
    // Meanwhile a duplicate, if the pipeline made one, has time to show up. A rebalance removes
    // the gauge with the partition and its next owner reports it at its next statistics, so the
    // wait allows a few intervals (once seen missing for 15 s in a loaded run, 2026-12-02). A
    // partition that reached its new owner already consumed to its end was never reported at
    // all until the lag fell back to the fetch position (`sources::kafka::lag`).
    let lag_line = format!(
        "tracejoin_consumer_lag_records{{partition=\"0\",topic=\"{}\"}}",
        t.logs
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while last.as_deref() != Some("0") {
        let exposition = running.health.render();
        last = exposition
            .lines()
            .find_map(|l| l.strip_prefix(&lag_line))
            .map(|v| v.trim().to_string());
        assert!(
            std::time::Instant::now() < deadline,
            "{lag_line} never reached 0 (last: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    running.stop().await;
    let records = read_all(&t.out, Duration::from_secs(60));
    let got = by_log_id(&records);
    for (id, (outcome, span_name)) in &expected {
        let versions = got
            .get(id)
            .unwrap_or_else(|| panic!("log {id} never came out; got {:?}", got.keys()));
        assert_eq!(
            versions.len(),
            1,
            "log {id} came out {} times",
            versions.len()
        );
        let v = &versions[0];
        assert_eq!(v["join"]["outcome"], *outcome, "log {id}: {v}");
        assert_eq!(v["span"]["name"].as_str(), *span_name, "log {id}: {v}");
        if *outcome == "matched_span" || *outcome == "matched_trace" {
            assert_eq!(v["trace"]["root_operation"], "GET /home", "log {id}: {v}");
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "unexpected extra logs: {:?}",
        got.keys()
    );
    // Keyed by trace id, so the output is co-partitioned like the input: every log with a
    // trace id (all but `noid1`) is checked, and the check must have seen them all.
    let mut checked = 0;
    for r in &records {
        let v = r.json();
        if let Some(t) = v["trace_id"].as_str() {
            assert_eq!(r.key.as_deref(), Some(t.as_bytes()), "{v}");
            checked += 1;
        }
    }
    let with_trace_id = expected.keys().filter(|id| *id != "noid1").count();
    assert_eq!(
        checked, with_trace_id,
        "keyed outputs checked for co-partitioning"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_are_dead_lettered_and_the_partition_keeps_flowing() {
    let t = Topics::create("", 1).await;
    let p = producer();
    let trace = TestTrace::new();
    let now = now_nanos();
    let mut config = config(&t.spans, &t.logs, &t.out, &t.dlq);
    config.limits.max_record_bytes = tracejoin::config::ByteSize(64 * 1024);
    config.inputs.logs[0].format = tracejoin::decode::logline::InputLogFormat::Json;
    produce(&p, &t.spans, None, b"\x0a\xff\xff\xff\xff\x0f garbage").await;
    produce(&p, &t.logs, Some("k1"), b"{\"message\": \"truncated").await;
    produce(&p, &t.logs, None, b"\xff\xfe not utf-8").await;
    produce(&p, &t.logs, None, &vec![b'x'; 100 * 1024]).await;
    produce(&p, &t.logs, None, b"").await;
    // Good records after the bad ones must still be processed.
    produce(&p, &t.spans, Some(&trace.hex()), &trace.spans(now)).await;
    produce(
        &p,
        &t.logs,
        Some(&trace.hex()),
        format!(
            r#"{{"message":"log_id=good1 fine","trace_id":"{}","span_id":"{}"}}"#,
            trace.hex(),
            hex(&trace.root)
        )
        .as_bytes(),
    )
    .await;

    let running = start(config);
    let (dlq, out) = tokio::task::spawn_blocking({
        let (dlq, out) = (t.dlq.clone(), t.out.clone());
        move || {
            (
                consume(&dlq, 5, Duration::from_secs(60)),
                consume(&out, 1, Duration::from_secs(30)),
            )
        }
    })
    .await
    .unwrap();
    running.stop().await;

    assert_eq!(out.len(), 1);
    assert_eq!(out[0].json()["join"]["outcome"], "matched_span");
    assert_eq!(dlq.len(), 5, "{dlq:?}");
    let mut reasons: Vec<(String, String, String)> = dlq
        .iter()
        .map(|r| {
            for h in [
                "tracejoin.error.message",
                "tracejoin.source.partition",
                "tracejoin.source.offset",
            ] {
                assert!(
                    r.headers.contains_key(h),
                    "missing header {h}: {:?}",
                    r.headers
                );
            }
            (
                r.headers["tracejoin.source.topic"].clone(),
                r.headers["tracejoin.error.reason"].clone(),
                r.headers["tracejoin.source.offset"].clone(),
            )
        })
        .collect();
    reasons.sort();
    let mut want = vec![
        (
            t.spans.clone(),
            "invalid_protobuf".to_string(),
            "0".to_string(),
        ),
        (t.logs.clone(), "invalid_json".to_string(), "0".to_string()),
        (t.logs.clone(), "invalid_utf8".to_string(), "1".to_string()),
        (t.logs.clone(), "too_large".to_string(), "2".to_string()),
        (t.logs.clone(), "empty".to_string(), "3".to_string()),
    ];
    want.sort();
    assert_eq!(reasons, want);
    // The dead letter keeps the original bytes and key.
    let json = dlq
        .iter()
        .find(|r| r.headers["tracejoin.error.reason"] == "invalid_json")
        .unwrap();
    assert_eq!(json.payload, b"{\"message\": \"truncated");
    assert_eq!(json.key.as_deref(), Some(&b"k1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_log_is_not_committed_and_is_joined_after_a_restart() {
    let t = Topics::create("", 1).await;
    let p = producer();
    let trace = TestTrace::new();
    let now = now_nanos();
    let mut cfg = config(&t.spans, &t.logs, &t.out, &t.dlq);
    // A long wait: the log is still waiting when the first run stops.
    cfg.join.max_wait = Duration::from_secs(600);
    cfg.join.idle_timeout = Duration::from_secs(600);
    let group = cfg.kafka.group_id.clone();

    produce(&p, &t.logs, None, b"log_id=done1 no trace, leaves at once").await;
    produce(
        &p,
        &t.logs,
        Some(&trace.hex()),
        format!(
            r#"{{"message":"log_id=wait1 waits","trace_id":"{}","span_id":"{}"}}"#,
            trace.hex(),
            hex(&trace.child)
        )
        .as_bytes(),
    )
    .await;
    let running = start(cfg.clone());
    let first = tokio::task::spawn_blocking({
        let out = t.out.clone();
        move || consume(&out, 1, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;

    // Offset 0 (acked) may be committed, offset 1 (waiting) may not.
    assert_eq!(
        committed(&group, &t.logs, 1),
        vec![1],
        "commit stops at the waiting log"
    );

    // Second run, same group: the waiting log is re-read, and joins when its span arrives.
    produce(&p, &t.spans, Some(&trace.hex()), &trace.spans(now)).await;
    let running = start(cfg);
    let all = tokio::task::spawn_blocking({
        let out = t.out.clone();
        move || consume(&out, 2, Duration::from_secs(60))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;
    let got = by_log_id(&all);
    assert_eq!(got["done1"].len(), 1, "the committed log is not replayed");
    assert_eq!(got["wait1"].len(), 1);
    assert_eq!(got["wait1"][0]["join"]["outcome"], "matched_span");
    assert_eq!(committed(&group, &t.logs, 1), end_offsets(&t.logs, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_wrong_partition_are_counted() {
    use rdkafka::producer::FutureRecord;
    use tracejoin::sources::partitioner::Partitioner;
    let t = Topics::create("", 3).await;
    let p = producer();
    let mut cfg = config(&t.spans, &t.logs, &t.out, &t.dlq);
    cfg.inputs.partitioner = Partitioner::Murmur2;
    // The check applies to topics joined as they are.
    cfg.inputs.repartition = tracejoin::sources::repartition::RepartitionPolicy::Never;
    let running = start(cfg);
    for i in 0..10 {
        let key = format!("{:032x}", 1000 + i);
        let right = Partitioner::Murmur2.partition(key.as_bytes(), 3).unwrap();
        // Half on the partition murmur2 says, half on the next one.
        let partition = if i % 2 == 0 { right } else { (right + 1) % 3 };
        let line = format!("log_id=k{i} no trace in this line");
        let rec = FutureRecord::to(&t.logs)
            .key(&key)
            .payload(&line)
            .partition(partition);
        p.send(rec, rdkafka::util::Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let out = tokio::task::spawn_blocking({
        let out = t.out.clone();
        move || consume(&out, 10, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(out.len(), 10);
    let exposition = running.health.render();
    running.stop().await;
    let line = format!(
        "tracejoin_partition_key_mismatch_total{{topic=\"{}\"}} 5",
        t.logs
    );
    assert!(
        exposition.contains(&line),
        "expected `{line}` in\n{}",
        exposition
            .lines()
            .filter(|l| l.contains("mismatch"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
