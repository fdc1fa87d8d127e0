//! Re-keying does not change which logs are late. The internal topics merge input partitions
//! that are forwarded at different paces; a join task must still wait for the slowest input
//! partition as the co-partitioned path does (`join::watermark`, progress marks), not take the
//! merged stream's newest time.
//!
//! On a real broker, the binary re-keys (`repartition: always`) a logs topic of two partitions:
//! partition 0 carries its logs as they happen, partition 1 three seconds late (a slow shipper),
//! well inside `idle_timeout` (10 s) and well past `max_wait` + `allowed_lateness` (1.2 s). In the
//! co-partitioned path partition 1 holds the watermark until its logs come; so must the internal
//! partitions its logs are re-keyed into. Every log must come out matched to its span, none
//! judged `late`. (Before progress marks, the internal partitions followed partition 0's logs
//! and the spans, and partition 1's logs were judged `late`.)

mod common;

use common::load::{check_outputs, trace_records, Expect};
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

const TRACES: u64 = 120;
const EVERY: Duration = Duration::from_millis(50);
/// How far behind partition 1's logs are produced.
const SHIPPER_DELAY: usize = 60; // × EVERY = 3 s

async fn send(p: &FutureProducer, topic: &str, partition: Option<i32>, key: &str, payload: &[u8]) {
    let mut r = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(partition) = partition {
        r = r.partition(partition);
    }
    p.send(r, Timeout::After(Duration::from_secs(30)))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_input_partition_holds_the_internal_partitions_it_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create("order-", 2).await;
    let group = unique("order");
    let config = dir.path().join("tracejoin.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: {group}\n  commit_interval: 500ms\n\
             inputs:\n  spans: {{topic: {}}}\n  logs: [{{topic: {}, format: json}}]\n  repartition: always\n\
             outputs:\n  kafka: {{topic: {}}}\n  dead_letter: {{topic: {}}}\n\
             metrics:\n  listen: \"127.0.0.1:0\"\n\
             join:\n  max_wait: 1s\n  allowed_lateness: 200ms\n  idle_timeout: 10s\n",
            bootstrap(),
            t.spans,
            t.logs,
            t.out,
            t.dlq
        ),
    )
    .unwrap();
    let proc = Process::spawn(&config, "run");
    let p = producer();

    // A first trace through both partitions, out before the measured traffic starts: the
    // group has settled and the internal topics exist.
    let (records, warmup) = trace_records(1_000_000, now_nanos());
    for (i, (is_span, key, payload)) in records.iter().enumerate() {
        let (topic, partition) = if *is_span {
            (&t.spans, None)
        } else {
            (&t.logs, Some(i as i32 % 2))
        };
        send(&p, topic, partition, key, payload).await;
    }
    let out = t.out.clone();
    tokio::task::spawn_blocking(move || wait_for_outputs(&out, 2, Duration::from_secs(90)))
        .await
        .unwrap();

    let mut expected: HashMap<String, Expect> = warmup.into_iter().collect();
    let mut delayed: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    for n in 0..TRACES {
        let (records, expects) = trace_records(n, now_nanos());
        expected.extend(expects);
        for (is_span, key, payload) in records {
            if is_span {
                send(&p, &t.spans, None, &key, &payload).await;
            } else if n % 2 == 0 {
                send(&p, &t.logs, Some(0), &key, &payload).await;
            } else {
                delayed.push_back((key, payload));
            }
        }
        // Partition 1's shipper is SHIPPER_DELAY ticks behind (two logs per trace, every other
        // trace).
        while delayed.len() > SHIPPER_DELAY {
            let (key, payload) = delayed.pop_front().unwrap();
            send(&p, &t.logs, Some(1), &key, &payload).await;
        }
        tokio::time::sleep(EVERY).await;
    }
    while let Some((key, payload)) = delayed.pop_front() {
        send(&p, &t.logs, Some(1), &key, &payload).await;
        tokio::time::sleep(EVERY / 2).await;
    }

    let out = t.out.clone();
    let want = expected.len();
    let records =
        tokio::task::spawn_blocking(move || wait_for_outputs(&out, want, Duration::from_secs(90)))
            .await
            .unwrap();
    let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
    let status = tokio::task::spawn_blocking(move || proc.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}:\n{log}");
    // Every log out, each matched to its span.
    let (unique, _) = check_outputs(&expected, &records);
    assert_eq!(unique, expected.len());
    // And none judged late: a late log is decided at once on whatever spans are left (here
    // they still are, so it matches, but with a shorter `span_retention` or a busier state it
    // would not).
    let late: Vec<String> = records
        .iter()
        .map(Record::json)
        .filter(|v| v["join"]["reason"] == "late")
        .map(|v| v["body"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        late.is_empty(),
        "{} of {} logs were judged late, e.g. {:?}",
        late.len(),
        expected.len(),
        &late[..late.len().min(3)]
    );
}
