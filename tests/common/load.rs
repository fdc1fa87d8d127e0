//! Continuous traffic for the fault tests: traces with two spans and two JSON logs each, keyed by
//! trace id, every log carrying `log_id=<n>` and the name of the span it was written in, so the
//! check can say for every input log whether it came out, how often, and with which span.

use super::{hex, log_id, now_nanos};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a log must come out with.
#[derive(Debug, Clone)]
pub struct Expect {
    pub span_name: String,
}

/// A load running on its own thread.
pub struct Load {
    pub produced_logs: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<HashMap<String, Expect>>>,
}

/// A record to produce: (to the spans topic?, key, payload).
pub type LoadRecord = (bool, String, Vec<u8>);

/// One trace's records, and its logs' expectations.
pub fn trace_records(n: u64, now_nanos: u64) -> (Vec<LoadRecord>, Vec<(String, Expect)>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;
    let trace_id: [u8; 16] = rand::random();
    let ids: [[u8; 8]; 2] = [
        rand::random::<[u8; 8]>().map(|b| b | 1),
        rand::random::<[u8; 8]>().map(|b| b | 1),
    ];
    let names = [
        format!("GET /item/{}", n % 10),
        format!("SELECT item {}", n % 10),
    ];
    let spans = (0..2)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: ids[i].to_vec(),
            parent_span_id: if i == 0 { vec![] } else { ids[0].to_vec() },
            name: names[i].clone(),
            kind: if i == 0 { 2 } else { 3 },
            start_time_unix_nano: now_nanos - 20_000_000,
            end_time_unix_nano: now_nanos,
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![super::resource_spans("shop", spans)],
    };
    let key = hex(&trace_id);
    let ts = chrono::DateTime::from_timestamp_nanos(now_nanos as i64 - 10_000_000).to_rfc3339();
    let mut records = vec![(true, key.clone(), req.encode_to_vec())];
    let mut expects = Vec::new();
    for i in 0..2 {
        let id = format!("L{n}x{i}");
        let line = format!(
            r#"{{"timestamp":"{ts}","level":"INFO","message":"log_id={id} work","trace_id":"{key}","span_id":"{}"}}"#,
            hex(&ids[i])
        );
        records.push((false, key.clone(), line.into_bytes()));
        expects.push((
            id,
            Expect {
                span_name: names[i].clone(),
            },
        ));
    }
    // Half the traces send their logs first: the join has to wait for the spans.
    if n % 2 == 0 {
        records.rotate_left(1);
    }
    (records, expects)
}

impl Load {
    /// Produces `traces` traces at `rate` traces/s to the two topics.
    pub fn start(
        bootstrap: &str,
        spans_topic: &str,
        logs_topic: &str,
        traces: u64,
        rate: u64,
    ) -> Load {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            // Ordered retries across a broker restart, as a well-configured producer has: without
            // it, batches retried after the restart land behind newer ones and are truly late.
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        let (spans_topic, logs_topic) = (spans_topic.to_string(), logs_topic.to_string());
        let produced_logs = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p2, s2) = (produced_logs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut expected = HashMap::new();
            for n in 0..traces {
                if s2.load(Ordering::Relaxed) {
                    break;
                }
                let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (records, expects) = trace_records(n, now_nanos());
                for (is_span, key, payload) in &records {
                    let topic = if *is_span { &spans_topic } else { &logs_topic };
                    let mut rec = Some(
                        BaseRecord::<str, [u8]>::to(topic)
                            .key(key.as_str())
                            .payload(payload),
                    );
                    while let Some(r) = rec.take() {
                        if let Err((_, back)) = producer.send(r) {
                            std::thread::sleep(Duration::from_millis(10));
                            rec = Some(back);
                        }
                    }
                }
                p2.fetch_add(expects.len() as u64, Ordering::Relaxed);
                expected.extend(expects);
            }
            producer
                .flush(Duration::from_secs(300))
                .expect("every input record delivered");
            expected
        });
        Load {
            produced_logs,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits for the producer to finish; returns what every log must come out as.
    pub fn finish(mut self) -> HashMap<String, Expect> {
        self.thread.take().unwrap().join().expect("load thread")
    }

    /// Waits for the producer to finish, then for every log to come out on `out` (by marker,
    /// up to 120 s): what every log must come out as, and every record read.
    pub async fn finish_and_read(self, out: &str) -> (HashMap<String, Expect>, Vec<super::Record>) {
        let out = out.to_string();
        tokio::task::spawn_blocking(move || {
            let expected = self.finish();
            let records = super::wait_for_outputs(&out, expected.len(), Duration::from_secs(120));
            (expected, records)
        })
        .await
        .expect("load thread")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checks that every expected log came out at least once with its span; returns
/// (unique logs, total copies) for the duplicate rate.
pub fn check_outputs(
    expected: &HashMap<String, Expect>,
    records: &[super::Record],
) -> (usize, usize) {
    let (unique, total, late) = check_outputs_allowing_late(expected, records);
    assert_eq!(late, 0, "{late} logs were decided late instead of matched");
    (unique, total)
}

/// Like `check_outputs`, but a log may instead have left flagged `late` (its window closed
/// before it arrived: not lost, and saying why it is not enriched). Returns (unique logs, total
/// copies, logs only ever decided late).
pub fn check_outputs_allowing_late(
    expected: &HashMap<String, Expect>,
    records: &[super::Record],
) -> (usize, usize, usize) {
    let mut seen: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in records {
        let v = r.json();
        if let Some(id) = log_id(v["body"].as_str().unwrap_or_default()) {
            seen.entry(id).or_default().push(v);
        }
    }
    let mut missing = Vec::new();
    let mut late = 0;
    for (id, e) in expected {
        let Some(copies) = seen.get(id) else {
            missing.push(id.clone());
            continue;
        };
        let matched = copies.iter().any(|v| {
            v["join"]["outcome"] == "matched_span" && v["span"]["name"] == e.span_name.as_str()
        });
        if !matched && copies.iter().all(|v| v["join"]["reason"] == "late") {
            late += 1;
            continue;
        }
        assert!(
            matched,
            "log {id} never came out matched to its span {:?}: {copies:?}",
            e.span_name
        );
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} logs lost, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(10)]
    );
    (seen.len(), seen.values().map(Vec::len).sum(), late)
}

/// Prints the figures of a fault run (`what: N logs in, U out, T copies: duplicate rate D%`)
/// and asserts the duplicate rate (copies beyond the first, per distinct log) is at most
/// `max_percent`: the bound the README states next to the figure.
pub fn assert_duplicates_within(
    what: &str,
    logs_in: usize,
    unique: usize,
    total: usize,
    max_percent: f64,
) {
    let rate = 100.0 * (total - unique) as f64 / unique.max(1) as f64;
    eprintln!(
        "{what}: {logs_in} logs in, {unique} out, {total} copies: duplicate rate {rate:.2}% (bound {max_percent}%)"
    );
    assert!(
        rate <= max_percent,
        "{what}: duplicate rate {rate:.2}% ({} extra copies of {unique} logs) over the bound {max_percent}%",
        total - unique
    );
}
