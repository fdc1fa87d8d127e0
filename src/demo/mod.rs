//! `tracejoin demo`: the real pipeline on an embedded Kafka with generated traffic.
//!
//! librdkafka's mock cluster stands in for Kafka (in process, nothing to install); it keeps only
//! the newest records of a partition, so the generator and the pipeline run together. Everything
//! else is the production path: the same consumer group code, decoders, join, sinks and
//! `/metrics`. The join windows are shortened so a 20-second run shows every outcome.

pub mod generator;

use crate::config::{Config, LogsInput, SpanFormat};
use crate::decode::logline::InputLogFormat;
use crate::model::JoinOutcome;
use crate::pipeline::{self, Hooks, Progress};
use crate::telemetry::server::{self, Health};
use generator::Generated;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long to generate traffic.
    pub duration: Duration,
    /// Traces per second.
    pub rate: u32,
    /// Where to serve `/metrics` (port 0: any free port).
    pub metrics_addr: SocketAddr,
}

/// What the demo saw.
#[derive(Debug)]
pub struct DemoSummary {
    /// What the generator produced.
    pub generated: Generated,
    /// Logs out by outcome.
    pub outcomes: [u64; 4],
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records consumed.
    pub records: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

const PARTITIONS: i32 = 4;

/// Runs the demo, printing progress to stdout; returns the summary.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let cluster = MockCluster::new(1)?;
    for (topic, partitions) in [
        ("otlp_spans", PARTITIONS),
        ("app_logs", PARTITIONS),
        ("logs.enriched", PARTITIONS),
        ("tracejoin.dlq", 1),
    ] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    let bootstrap = cluster.bootstrap_servers();
    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.clone();
    config.kafka.group_id = "tracejoin-demo".into();
    config.inputs.spans.topic = "otlp_spans".into();
    config.inputs.spans.format = SpanFormat::Auto;
    config.inputs.logs = vec![LogsInput {
        topic: "app_logs".into(),
        format: InputLogFormat::Auto,
    }];
    config.join.max_wait = Duration::from_secs(2);
    config.join.span_retention = Duration::from_secs(15);
    config.join.allowed_lateness = Duration::from_secs(1);
    config.join.idle_timeout = Duration::from_secs(3);
    config.shutdown.emit_waiting_logs = true;
    config.validate()?;

    let shutdown = CancellationToken::new();
    let health = Health::default();
    let bound = server::serve(opts.metrics_addr, health.clone(), shutdown.clone())
        .await
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))?;
    let progress = Arc::new(Progress::default());
    let (samples_tx, mut samples_rx) = tokio::sync::mpsc::channel(16);
    let hooks = Hooks {
        progress: progress.clone(),
        samples: Some(samples_tx),
        ..Default::default()
    };
    let pipeline = tokio::spawn(pipeline::run(
        config,
        health.clone(),
        hooks,
        shutdown.clone(),
    ));

    println!(
        "tracejoin demo: embedded Kafka at {bootstrap}, {} partitions per topic",
        PARTITIONS
    );
    println!(
        "  metrics: http://{bound}/metrics   generating {} traces/s for {}",
        opts.rate,
        humantime::format_duration(opts.duration)
    );
    let generated = generate(&bootstrap, &opts, &progress).await?;

    // Let the watermark pass the last logs' wait, then drain.
    let settle = Instant::now();
    while progress.logs_total() < generated.logs && settle.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        print_progress(&progress, opts.duration + settle.elapsed(), None);
    }
    shutdown.cancel();
    pipeline.await??;
    println!();
    let outcomes: [u64; 4] = std::array::from_fn(|i| progress.logs[i].load(Ordering::Relaxed));
    let summary = DemoSummary {
        generated,
        outcomes,
        dead_lettered: progress.dead_lettered.load(Ordering::Relaxed),
        records: progress.records.load(Ordering::Relaxed),
        elapsed: opts.duration + settle.elapsed(),
    };
    let mut samples = Vec::new();
    while let Ok(s) = samples_rx.try_recv() {
        samples.push(s);
    }
    print_summary(&summary, &samples);
    drop(cluster);
    Ok(summary)
}

async fn generate(
    bootstrap: &str,
    opts: &DemoOptions,
    progress: &Progress,
) -> anyhow::Result<Generated> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let mut traffic = generator::Traffic::new(42, f64::from(opts.rate));
    let mut due = Vec::new();
    let start = Instant::now();
    let mut last_print = Instant::now();
    while start.elapsed() < opts.duration {
        traffic.due(&mut due);
        for r in due.drain(..) {
            send(&producer, &r);
        }
        if last_print.elapsed() >= Duration::from_millis(500) {
            last_print = Instant::now();
            print_progress(progress, start.elapsed(), Some(traffic.counts().logs));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    traffic.rest(&mut due);
    for r in due.drain(..) {
        send(&producer, &r);
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(traffic.counts())
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, r: &generator::GenRecord) {
    let topic = if r.spans { "otlp_spans" } else { "app_logs" };
    generator::send_blocking(producer, topic, r.key.as_deref(), &r.payload);
}

fn print_progress(p: &Progress, elapsed: Duration, generated_logs: Option<u64>) {
    let logs = p.logs_total();
    let rate = logs as f64 / elapsed.as_secs_f64().max(0.001);
    let o = |i: usize| p.logs[i].load(Ordering::Relaxed);
    let gen = generated_logs.map_or(String::new(), |g| format!(" of {g}"));
    print!(
        "\r[{:>5.1}s] records {:>8} | spans {:>8} | logs out {:>7}{gen} ({:>6.0}/s) span {} trace {} unmatched {} no-id {} | dlq {} | open traces {:>6}   ",
        elapsed.as_secs_f64(),
        p.records.load(Ordering::Relaxed),
        p.spans.load(Ordering::Relaxed),
        logs,
        rate,
        o(0),
        o(1),
        o(2),
        o(3),
        p.dead_lettered.load(Ordering::Relaxed),
        p.open_traces.load(Ordering::Relaxed),
    );
    let _ = std::io::stdout().flush();
}

fn print_summary(s: &DemoSummary, samples: &[(JoinOutcome, String)]) {
    let total: u64 = s.outcomes.iter().sum();
    println!("\nsummary after {:.1}s", s.elapsed.as_secs_f64());
    println!(
        "  generated: {} traces, {} spans, {} logs, {} undecodable records",
        s.generated.traces, s.generated.spans, s.generated.logs, s.generated.garbage
    );
    println!(
        "  consumed:  {} records ({:.0} records/s)",
        s.records,
        s.records as f64 / s.elapsed.as_secs_f64()
    );
    println!(
        "  logs out:  {total} of {} generated ({:.0} logs/s)",
        s.generated.logs,
        total as f64 / s.elapsed.as_secs_f64()
    );
    for (i, o) in JoinOutcome::ALL.iter().enumerate() {
        let n = s.outcomes[i];
        println!(
            "    {:<14} {:>8}  {:>5.1}%",
            o.as_str(),
            n,
            100.0 * n as f64 / total.max(1) as f64
        );
    }
    println!("  dead-lettered: {}", s.dead_lettered);
    println!("\nsample enriched logs (topic logs.enriched):");
    let mut shown = [0; 4];
    for (o, line) in samples {
        let i = *o as usize;
        if shown[i] < 1 {
            shown[i] += 1;
            println!("  {line}");
        }
    }
}
