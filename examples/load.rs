//! The end-to-end load harness: the real pipeline against a real Kafka broker.
//!
//!   scripts/load.sh [--traces-per-sec 3000] [--seconds 30] [--backlog-traces 50000]
//!                   [--partitions 4] [--workers 1] [--repartition never|auto|always]
//!                   [--backlog-only 1]
//!
//! Two phases, each on fresh topics:
//! 1. **backlog**: a burst of generated traffic is produced first, then the pipeline drains it:
//!    throughput in records/s and logs/s (the ceiling of one worker).
//! 2. **steady**: traffic at a fixed rate while the pipeline runs: per-log latency from the log's
//!    event time to the enriched record's broker timestamp, percentiles per outcome (a
//!    `matched_span` log waits only for its span; an `unmatched` one waits out `max_wait`).
//!
//! For the drain, prints logs per CPU-second of the process split into the pipeline's threads
//! and librdkafka's (`rdk:*`), and the drain's peak RSS; for the steady phase, the peak RSS of
//! pipeline, generator and reader together and the largest join state seen. Bounded by count and time; talks only to the broker named by
//! `TRACEJOIN_KAFKA_BOOTSTRAP`.

#[path = "common/procstat.rs"]
mod procstat;

use rand::SeedableRng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracejoin::config::{Config, LogsInput, SpanFormat, Workers};
use tracejoin::decode::logline::InputLogFormat;
use tracejoin::demo::generator::{self, Generated};
use tracejoin::pipeline::{Hooks, Progress};
use tracejoin::sources::repartition::RepartitionPolicy;
use tracejoin::telemetry::server::Health;

struct Args {
    rate: u64,
    seconds: u64,
    backlog_traces: u64,
    partitions: i32,
    workers: usize,
    repartition: RepartitionPolicy,
    backlog_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        rate: 2000,
        seconds: 30,
        backlog_traces: 50_000,
        partitions: 4,
        workers: 1,
        repartition: RepartitionPolicy::Never,
        backlog_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        if pair[0] == "--repartition" {
            a.repartition = match pair.get(1).map(String::as_str) {
                Some("auto") => RepartitionPolicy::Auto,
                Some("always") => RepartitionPolicy::Always,
                Some("never") => RepartitionPolicy::Never,
                other => panic!("--repartition auto|always|never, not {other:?}"),
            };
            continue;
        }
        let v = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), v) {
            ("--workers", Some(v)) => a.workers = v as usize,
            ("--backlog-only", Some(v)) => a.backlog_only = v != 0,
            ("--traces-per-sec", Some(v)) => a.rate = v,
            ("--seconds", Some(v)) => a.seconds = v,
            ("--backlog-traces", Some(v)) => a.backlog_traces = v,
            ("--partitions", Some(v)) => a.partitions = v as i32,
            (flag, _) => panic!("unknown or incomplete flag {flag}"),
        }
    }
    a
}

struct Topics {
    spans: String,
    logs: String,
    out: String,
    dlq: String,
}

async fn topics(bootstrap: &str, tag: &str, partitions: i32) -> Topics {
    let id = format!("{tag}-{}", rand::random::<u32>());
    let t = Topics {
        spans: format!("load-spans-{id}"),
        logs: format!("load-logs-{id}"),
        out: format!("load-out-{id}"),
        dlq: format!("load-dlq-{id}"),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new: Vec<NewTopic> = [&t.spans, &t.logs, &t.out, &t.dlq]
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.map_err(|(t, e)| format!("{t}: {e}")).unwrap();
    }
    t
}

fn config(bootstrap: &str, t: &Topics, a: &Args) -> Config {
    let mut c = Config {
        workers: Workers::Count(a.workers),
        ..Config::default()
    };
    c.inputs.repartition = a.repartition;
    c.kafka.bootstrap_servers = bootstrap.into();
    c.kafka.group_id = format!("load-{}", rand::random::<u32>());
    c.inputs.spans.topic = t.spans.clone();
    c.inputs.spans.format = SpanFormat::Auto;
    c.inputs.logs = vec![LogsInput {
        topic: t.logs.clone(),
        format: InputLogFormat::Auto,
    }];
    c.outputs.kafka.topic = t.out.clone();
    c.outputs.dead_letter.topic = t.dlq.clone();
    c.join.max_wait = Duration::from_secs(2);
    c.join.allowed_lateness = Duration::from_millis(500);
    c.join.idle_timeout = Duration::from_secs(2);
    c.metrics.listen = "127.0.0.1:0".parse().unwrap();
    c
}

fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "10")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()
        .unwrap()
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, t: &Topics, r: &generator::GenRecord) {
    let topic = if r.spans { &t.spans } else { &t.logs };
    generator::send_blocking(p, topic, r.key.as_deref(), &r.payload);
}

fn start(
    config: Config,
) -> (
    Arc<Progress>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), tracejoin::pipeline::PipelineError>>,
) {
    let progress = Arc::new(Progress::default());
    let shutdown = CancellationToken::new();
    let hooks = Hooks {
        progress: progress.clone(),
        samples: None,
        ..Default::default()
    };
    let task = tokio::spawn(tracejoin::pipeline::run(
        config,
        Health::default(),
        hooks,
        shutdown.clone(),
    ));
    (progress, shutdown, task)
}

async fn backlog(bootstrap: &str, a: &Args) {
    let t = topics(bootstrap, "backlog", a.partitions).await;
    let p = producer(bootstrap);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut counts = Generated::default();
    let mut batch = Vec::new();
    let produce_start = Instant::now();
    let mut records = 0u64;
    for seq in 0..a.backlog_traces {
        generator::trace(&mut rng, seq, &mut batch, &mut counts);
        for r in batch.drain(..) {
            send(&p, &t, &r);
            records += 1;
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    // The generator's producer goes before the drain, its librdkafka threads with it: every
    // rdk:* thread measured below is then the pipeline's.
    drop(p);
    println!(
        "backlog: produced {records} records ({} spans, {} logs) in {:.1}s",
        counts.spans,
        counts.logs,
        produce_start.elapsed().as_secs_f64()
    );
    let peak_rss_reset = procstat::reset_peak_rss("self");
    let cpu_before = procstat::cpu_split("self");
    let (progress, shutdown, task) = start(config(bootstrap, &t, a));
    let started = Instant::now();
    let mut first_record = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while progress.delivered.load(Ordering::Relaxed) < counts.logs && Instant::now() < deadline {
        if first_record.is_none() && progress.records.load(Ordering::Relaxed) > 0 {
            first_record = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = first_record.unwrap_or(started).elapsed();
    let cpu = procstat::cpu_split("self").since(&cpu_before);
    let peak_rss_mib = procstat::peak_rss_mib("self");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let consumed = progress.records.load(Ordering::Relaxed);
    println!(
        "backlog: drained {consumed} records / {} logs in {:.2}s (after group join) = {:.0} records/s, {:.0} logs/s, {:.0} spans/s",
        progress.delivered.load(Ordering::Relaxed),
        drained.as_secs_f64(),
        consumed as f64 / drained.as_secs_f64(),
        counts.logs as f64 / drained.as_secs_f64(),
        counts.spans as f64 / drained.as_secs_f64(),
    );
    println!(
        "backlog: {} worker(s), repartition {:?}: {:.2} CPU-seconds of this process = {:.0} logs per CPU-second, {:.0} logs/s per worker",
        a.workers,
        a.repartition,
        cpu.total,
        counts.logs as f64 / cpu.total,
        counts.logs as f64 / drained.as_secs_f64() / a.workers as f64,
    );
    println!(
        "backlog: of which pipeline threads {:.2} s ({:.0} logs per CPU-second), librdkafka (rdk:*) {:.2} s ({:.0} logs per CPU-second), exited threads {:.2} s",
        cpu.other,
        counts.logs as f64 / cpu.other,
        cpu.librdkafka,
        counts.logs as f64 / cpu.librdkafka,
        cpu.exited(),
    );
    println!(
        "backlog: pipeline threads are every thread not named rdk:*: the pipeline's tokio workers (which also run this harness's 50 ms progress poll), the blocking pool and the rdkafka crate's \"producer polling thread\" (the output producer's delivery callbacks); the generator's producer was dropped before the drain, so none of its threads are left. By thread (CPU s): {}",
        cpu.by_name_line()
    );
    if peak_rss_reset {
        println!(
            "backlog: peak RSS of the drain (VmHWM, reset when it started): {peak_rss_mib:.1} MiB"
        );
    } else {
        println!("backlog: peak RSS (VmHWM, could not be reset: generation and drain together): {peak_rss_mib:.1} MiB");
    }
}

async fn steady(bootstrap: &str, a: &Args) {
    let t = topics(bootstrap, "steady", a.partitions).await;
    let (progress, shutdown, task) = start(config(bootstrap, &t, a));
    // Wait for the group join before producing, so latency is the pipeline's, not the join's.
    let ready = Instant::now();
    while ready.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if ready.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let p = producer(bootstrap);
    let mut traffic = generator::Traffic::new(2, a.rate as f64);
    let mut due = Vec::new();
    let start = Instant::now();
    let mut max_state = 0u64;
    while start.elapsed() < Duration::from_secs(a.seconds) {
        traffic.due(&mut due);
        for r in due.drain(..) {
            send(&p, &t, &r);
        }
        max_state = max_state.max(progress.open_traces.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    traffic.rest(&mut due);
    for r in due.drain(..) {
        send(&p, &t, &r);
    }
    let counts = traffic.counts();
    p.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.delivered.load(Ordering::Relaxed) < counts.logs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    println!(
        "steady: {} traces/s for {}s: {} logs, {} spans; delivered {}; open traces peak {}",
        a.rate,
        a.seconds,
        counts.logs,
        counts.spans,
        progress.delivered.load(Ordering::Relaxed),
        max_state
    );
    latency_report(bootstrap, &t.out, counts.logs as usize);
}

fn latency_report(bootstrap: &str, topic: &str, want: usize) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "load-reader")
        .create()
        .unwrap();
    let meta = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in meta.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut by_outcome: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while n < want && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        n += 1;
        let Some(broker_ms) = m.timestamp().to_millis() else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
        let Some(ts) = v["timestamp"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        else {
            continue;
        };
        let latency = (broker_ms - ts.timestamp_millis()) as f64 / 1000.0;
        let key = format!(
            "{}/{}",
            v["join"]["outcome"].as_str().unwrap_or("?"),
            v["join"]["reason"].as_str().unwrap_or("?")
        );
        by_outcome.entry(key).or_default().push(latency);
    }
    println!("steady: end-to-end latency (log event time -> enriched record in Kafka), seconds:");
    println!(
        "  {:<32} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "outcome/reason", "count", "p50", "p90", "p99", "max"
    );
    for (k, mut v) in by_outcome {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "  {:<32} {:>8} {:>7.3} {:>7.3} {:>7.3} {:>7.3}",
            k,
            v.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            v[v.len() - 1]
        );
    }
}

#[tokio::main]
async fn main() {
    let bootstrap = std::env::var("TRACEJOIN_KAFKA_BOOTSTRAP")
        .expect("TRACEJOIN_KAFKA_BOOTSTRAP (scripts/load.sh sets it)");
    let a = args();
    backlog(&bootstrap, &a).await;
    if a.backlog_only {
        return;
    }
    let since = if procstat::reset_peak_rss("self") {
        "the steady phase"
    } else {
        "the process's start"
    };
    steady(&bootstrap, &a).await;
    println!(
        "peak RSS (VmHWM since {since}, pipeline + generator + reader): {:.1} MiB",
        procstat::peak_rss_mib("self")
    );
}
