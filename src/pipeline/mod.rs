//! One worker: Kafka in → decode → join → sinks, with offsets committed only behind what every
//! sink has acknowledged.
//!
//! A single task owns the consumer loop, the decoders, the join and the offset ledger, so the hot
//! path takes no locks and needs no channels between stages; deliveries are futures polled by the
//! same loop. Scaling is by partitions: more workers in the same consumer group, each over its
//! share (see `sources::kafka`).
//!
//! - `worker`: per record, take its acknowledgement token → decode (failures dead-lettered) →
//!   observers (RED, SLO, progress) → join → fan out what it emits to the sinks → complete the
//!   token. Per tick (200 ms): move the watermark, ship what it releases, commit.
//! - `commit`: offset commits and backpressure.
//! - `copartition`: the check that the input topics are co-partitioned by trace id.
//! - `observe`: the observers.
//! - `repartition`: which input topics are re-keyed by trace id first (`inputs.repartition`);
//!   `worker/rekey.rs` does it.
//! - `tasks`: one join with its own watermark per partition number (Kafka Streams' tasks).

mod commit;
mod copartition;
mod observe;
mod repartition;
mod slo_state;
mod tasks;
mod worker;

pub use observe::Observer;

use crate::config::Config;
use crate::decode::rules::RulesError;
use crate::derive::red::RedError;
use crate::model::JoinOutcome;
use crate::sinks::Sink;
use crate::sources::connect;
use crate::telemetry::server::Health;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the pipeline could not start or had to stop.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The extraction rules are invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A Kafka client could not be created.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The SLO definitions could not be loaded.
    #[error("slo: {0}")]
    Slo(#[from] crate::derive::slo::SloError),
    /// The Loki sink could not be built.
    #[error("loki sink: {0}")]
    Loki(#[from] crate::sinks::loki::LokiError),
    /// The RED metrics config is invalid.
    #[error(transparent)]
    Red(#[from] RedError),
    /// The service graph config is invalid.
    #[error(transparent)]
    ServiceGraph(#[from] crate::derive::servicegraph::ServiceGraphError),
    /// The metrics endpoint could not bind.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// Live counters for progress displays and summaries (the demo's, and tests').
#[derive(Debug, Default)]
pub struct Progress {
    /// Records consumed.
    pub records: AtomicU64,
    /// Spans decoded.
    pub spans: AtomicU64,
    /// Logs out by outcome (`JoinOutcome` order).
    pub logs: [AtomicU64; 4],
    /// Records dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Enriched logs acknowledged by the Kafka sink.
    pub delivered: AtomicU64,
    /// Open traces in the join.
    pub open_traces: AtomicU64,
}

impl Progress {
    /// Logs out, all outcomes.
    pub fn logs_total(&self) -> u64 {
        self.logs.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Makes one more sink for the worker with this index.
pub type SinkFactory = Box<dyn Fn(usize) -> Box<dyn Sink> + Send + Sync>;

/// Options for embedding the pipeline (demo, tests).
#[derive(Default)]
pub struct Hooks {
    /// Live counters (all workers).
    pub progress: Arc<Progress>,
    /// Receives the first few enriched lines of each outcome.
    pub samples: Option<mpsc::Sender<(JoinOutcome, String)>>,
    /// Sinks beyond the configured ones: one made per worker.
    pub sinks: Vec<SinkFactory>,
}

/// Waits until the cluster accepts the process's credentials and certificates
/// (`sources::connect`). While it refuses them the process stays up, not ready: each attempt
/// logs the cause at error level, counts it (`tracejoin_kafka_connect_failures_total`) and puts
/// it in `/readyz`'s body, and the next attempt comes after a backoff (2 s doubling to 30 s). It
/// keeps retrying rather than exiting because the fix usually comes from outside: an ACL or a
/// user created on the broker, a rotated secret file (read again at each attempt). Returns
/// false when shutdown came first.
async fn wait_for_cluster(config: &Config, health: &Health, shutdown: &CancellationToken) -> bool {
    let mut backoff = Duration::from_secs(2);
    loop {
        let cfg = config.clone();
        let outcome = tokio::task::spawn_blocking(move || connect::check(&cfg))
            .await
            .unwrap_or(Ok(()));
        match outcome {
            Ok(()) => {
                health.set_problem(None);
                return true;
            }
            Err(e) if e.is_refusal() => {
                crate::telemetry::metrics().kafka_connect_failed(e.cause());
                tracing::error!(cause = e.cause(), error = %e, retry_in = ?backoff, "kafka refused the connection: not ready; retrying");
                health.set_problem(Some(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "no broker answered the start-up check; starting anyway (the clients keep reconnecting)");
                return true;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Runs `config.workers` workers until `shutdown` is cancelled; then each drains, commits and
/// leaves the group.
pub async fn run(
    config: Config,
    health: Health,
    hooks: Hooks,
    shutdown: CancellationToken,
) -> Result<(), PipelineError> {
    for (section, props) in [
        ("kafka.properties", &config.kafka.properties),
        ("outputs.kafka.properties", &config.outputs.kafka.properties),
    ] {
        for key in props.plain_secrets() {
            tracing::warn!(key = %format!("{section}.{key}"), "a secret is written in the config file; give it as {{env: NAME}} or {{file: PATH}}");
        }
    }
    if !wait_for_cluster(&config, &health, &shutdown).await {
        return Ok(());
    }
    let workers = config.workers.resolve();
    let mut shared = worker::Shared::new(&config, &health, workers)?;
    let plan = repartition::plan(&config, shared.rules.clone()).await?;
    if shared.has_changelogged_state(&config) && config.state.changelog {
        // One changelog partition per join partition: the internal topics' when the spans are
        // re-keyed, the spans topic's otherwise.
        let join_partitions = if plan.spans() {
            plan.partitions
        } else {
            plan.input_partitions.first().copied().unwrap_or(1)
        };
        let n = slo_state::create_topic(&config, join_partitions).await?;
        shared.slo_changelog_partitions = Some(n);
        tracing::info!(topic = %slo_state::topic_name(&config), partitions = n, "state changelog on");
    }
    let mut tasks = Vec::with_capacity(workers);
    for index in 0..workers {
        let worker = worker::Worker::assemble(
            index,
            config.clone(),
            &plan,
            &shared,
            health.clone(),
            worker::WorkerHooks {
                progress: hooks.progress.clone(),
                samples: hooks.samples.clone(),
                sinks: hooks.sinks.iter().map(|make| make(index)).collect(),
            },
            shutdown.clone(),
        )?;
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    tracing::info!(workers, group = %config.kafka.group_id, "workers started");
    // A worker that never gets an assignment (its join failed, the coordinator is away) must
    // not hold its siblings' partitions forever.
    let gate = shared.gate.clone();
    let session = config
        .kafka
        .properties
        .get("session.timeout.ms")
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    let deadline = Duration::from_secs(30).max(session * 3);
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(deadline) => {
                    if !gate.is_open() {
                        let missing = gate.force_open();
                        tracing::warn!(?missing, ?deadline, "workers without an assignment after the start-up deadline; the others consume without them");
                    }
                }
            }
        }
    });
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a worker ended abnormally");
        }
    }
    Ok(())
}
