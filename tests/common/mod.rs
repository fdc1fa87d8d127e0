//! Shared by the integration tests, once: the real broker's address, the four-topic set-up,
//! producing, consuming and polling for outputs, running the pipeline in the background, small
//! id and time helpers (`hex`, `now_nanos`, `kv`), and in submodules the service handles
//! (`services`), the LogsQL client (`logsql`), the Prometheus exposition parser (`exposition`),
//! the fault tests' load (`load`) and the SLO tests' shop traffic (`shop`).
//!
//! The broker is started by `scripts/test.sh` (a real Apache Kafka in KRaft mode on 127.0.0.1)
//! and named by `TRACEJOIN_KAFKA_BOOTSTRAP`. Without it these tests fail: a missing broker must
//! fail the suite, not pass it.
//!
//! Every `tests/*.rs` is its own crate and uses only part of this module: hence the module-wide
//! `allow(dead_code)` (it covers the submodules too).

#![allow(dead_code, unreachable_pub)]

pub mod exposition;
pub mod fleet;
pub mod load;
pub mod logsql;
pub mod secure;
pub mod services;
pub mod shop;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracejoin::config::Config;
use tracejoin::pipeline::Hooks;
use tracejoin::telemetry::server::Health;

/// The repository's root (where `scripts/` and `tests/` are).
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Lower-case hex of `b` (trace and span ids as they appear in logs).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Wall-clock time in Unix nanoseconds.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An OTLP attribute.
pub fn kv(
    key: &str,
    v: opentelemetry_proto::tonic::common::v1::any_value::Value,
) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(v) }),
    }
}

/// The spans of one service as an OTLP `ResourceSpans` (resource `service.name`, one scope).
pub fn resource_spans(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::trace::v1::ResourceSpans {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", Value::StringValue(service.into()))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A free TCP port on 127.0.0.1, asked of the kernel.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bootstrap() -> String {
    std::env::var("TRACEJOIN_KAFKA_BOOTSTRAP").expect(
        "TRACEJOIN_KAFKA_BOOTSTRAP is not set: run the suite with scripts/test.sh, which starts a real Kafka broker",
    )
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("creating topic {topic}: {e}");
        }
    }
}

/// The four topics of a pipeline run (spans and logs in, enriched out, dead letters), named
/// uniquely for this run.
#[derive(Debug, Clone)]
pub struct Topics {
    pub spans: String,
    pub logs: String,
    pub out: String,
    pub dlq: String,
}

impl Topics {
    /// Creates the four topics (`{prefix}spans`, `{prefix}logs`, `{prefix}out`, `{prefix}dlq`,
    /// each made unique) with `partitions` partitions each.
    pub async fn create(prefix: &str, partitions: i32) -> Topics {
        let t = Topics {
            spans: unique(&format!("{prefix}spans")),
            logs: unique(&format!("{prefix}logs")),
            out: unique(&format!("{prefix}out")),
            dlq: unique(&format!("{prefix}dlq")),
        };
        create_topics(&[&t.spans, &t.logs, &t.out, &t.dlq], partitions).await;
        t
    }

    /// The shared test config (`config`) on these topics.
    pub fn config(&self) -> Config {
        config(&self.spans, &self.logs, &self.out, &self.dlq)
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, payload: &[u8]) {
    let mut r = FutureRecord::to(topic).payload(payload);
    if let Some(k) = key {
        r = r.key(k);
    }
    p.send(r, Timeout::After(Duration::from_secs(30)))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("record is JSON")
    }
}

/// A consumer assigned every partition of `topic` from the beginning (assigned, not subscribed:
/// no group to join, so reading starts at once), and the partitions. `eof`: the broker reports
/// when the reader reaches a partition's end.
fn reader(topic: &str, eof: bool) -> (BaseConsumer, Vec<i32>) {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", bootstrap());
    reader_with(base, topic, eof)
}

/// `reader` with the connection settings of `base` (a secured broker's).
fn reader_with(mut base: ClientConfig, topic: &str, eof: bool) -> (BaseConsumer, Vec<i32>) {
    let consumer: BaseConsumer = base
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .create()
        .expect("consumer");
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let partitions: Vec<i32> = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    (consumer, partitions)
}

/// Reads `topic` from the beginning until `want` records or `timeout`.
pub fn consume(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let (consumer, _) = reader(topic, false);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(Record::from_message(&m));
        }
    }
    out
}

/// Every record of `topic` up to its end as it is now: reads each partition until the broker
/// says it is at the end (partition EOF), so a slow fetch cannot cut the result short the way a
/// fixed read timeout can. Panics after `within` rather than returning a partial topic.
/// Blocking: call it from `spawn_blocking` in async tests.
pub fn read_all(topic: &str, within: Duration) -> Vec<Record> {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", bootstrap());
    read_all_with(base, topic, within)
}

/// `read_all` with the connection settings of `base` (a secured broker's).
pub fn read_all_with(base: ClientConfig, topic: &str, within: Duration) -> Vec<Record> {
    let (consumer, partitions) = reader_with(base, topic, true);
    let mut at_end: HashMap<i32, bool> = partitions.into_iter().map(|p| (p, false)).collect();
    assert!(!at_end.is_empty(), "topic {topic} has no partitions");
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while at_end.values().any(|done| !done) {
        assert!(
            Instant::now() < deadline,
            "{topic} not read to its end within {within:?}: {} records, partitions at end {at_end:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p, true);
            }
            Some(Ok(m)) => {
                at_end.insert(m.partition(), false);
                out.push(Record::from_message(&m));
            }
            _ => {}
        }
    }
    out
}

/// The marker every test log carries in its body (`log_id=<id>`), which says which input log
/// an output is.
pub fn log_id(body: &str) -> Option<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"log_id=(\w+)").unwrap())
        .captures(body)
        .map(|c| c[1].to_string())
}

/// The outputs by marker: every copy of every log that came out.
pub fn by_log_id(records: &[Record]) -> HashMap<String, Vec<serde_json::Value>> {
    let mut map: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for r in records {
        let v = r.json();
        let body = v["body"].as_str().unwrap_or_default();
        let id = log_id(body).unwrap_or_else(|| panic!("no log_id in {body}"));
        map.entry(id).or_default().push(v);
    }
    map
}

/// Re-reads `topic` until `want` distinct logs (by marker) are in it, or `timeout`; returns
/// every record read (duplicates included). Blocking: call it from `spawn_blocking`.
pub fn wait_for_outputs(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_all(topic, Duration::from_secs(60));
        let distinct: std::collections::HashSet<_> = got
            .iter()
            .filter_map(|r| log_id(r.json()["body"].as_str().unwrap_or_default()))
            .collect();
        if distinct.len() >= want || Instant::now() > deadline {
            return got;
        }
    }
}

/// A test config: real broker, unique group, short windows.
pub fn config(spans: &str, logs: &str, out: &str, dlq: &str) -> Config {
    let mut c = Config::default();
    c.kafka.bootstrap_servers = bootstrap();
    c.kafka.group_id = unique("tracejoin-test");
    c.kafka.commit_interval = Duration::from_millis(200);
    c.kafka.properties.insert("session.timeout.ms", "6000");
    c.inputs.spans.topic = spans.into();
    c.inputs.logs[0].topic = logs.into();
    c.outputs.kafka.topic = out.into();
    c.outputs.dead_letter.topic = dlq.into();
    c.join.max_wait = Duration::from_secs(3);
    c.join.allowed_lateness = Duration::from_millis(500);
    c.join.idle_timeout = Duration::from_secs(2);
    c.metrics.listen = "127.0.0.1:0".parse().unwrap();
    c
}

/// The pipeline running in the background.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), tracejoin::pipeline::PipelineError>>,
    pub health: Health,
}

pub fn start(config: Config) -> Running {
    config.validate().expect("valid test config");
    let shutdown = CancellationToken::new();
    let health = Health::default();
    let task = tokio::spawn(tracejoin::pipeline::run(
        config,
        health.clone(),
        Hooks::default(),
        shutdown.clone(),
    ));
    Running {
        shutdown,
        task,
        health,
    }
}

impl Running {
    /// Serves the pipeline's `/metrics` on a free port, as `tracejoin run` does: its URL, and
    /// the token that stops the server.
    pub async fn serve_metrics(&self) -> (String, CancellationToken) {
        let shutdown = CancellationToken::new();
        let addr = tracejoin::telemetry::server::serve(
            "127.0.0.1:0".parse().unwrap(),
            self.health.clone(),
            shutdown.clone(),
        )
        .await
        .expect("serve /metrics");
        (format!("http://{addr}/metrics"), shutdown)
    }

    /// Graceful stop: drain, commit, leave the group.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("pipeline task")
            .expect("pipeline ran without error");
    }
}

/// Offsets committed by `group` for every partition of `topic`.
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", bootstrap());
    committed_with(base, group, topic, partitions)
}

/// `committed` with the connection settings of `base` (a secured broker's).
pub fn committed_with(
    mut base: ClientConfig,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<i64> {
    let consumer: BaseConsumer = base.set("group.id", group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match c.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// End (high-water) offsets of every partition of `topic`.
pub fn end_offsets(topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// The `tracejoin` binary the process tests run: cargo's build of this package, or
/// `TRACEJOIN_BIN` when set (a copy of it, for worktrees that share one target directory and
/// so one `target/release/tracejoin`).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("TRACEJOIN_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tracejoin").into())
}

/// A `tracejoin run` process (the real binary), for tests that crash or signal it.
pub struct Process {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

/// Writes a config file for the binary; `extra` is appended YAML at the top level's `join:` key.
pub fn write_config(
    dir: &std::path::Path,
    group: &str,
    spans: &str,
    logs: &str,
    out: &str,
    dlq: &str,
    join_extra: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{}.yaml", unique("tracejoin")));
    let yaml = format!(
        "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: {group}\n  commit_interval: 500ms\n  properties:\n    session.timeout.ms: \"6000\"\n\
         inputs:\n  spans: {{topic: {spans}}}\n  logs: [{{topic: {logs}, format: json}}]\n\
         outputs:\n  kafka: {{topic: {out}}}\n  dead_letter: {{topic: {dlq}}}\n\
         metrics:\n  listen: \"127.0.0.1:0\"\n\
         join:\n  max_wait: 3s\n  allowed_lateness: 500ms\n  idle_timeout: 2s\n{join_extra}",
        bootstrap()
    );
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// A test that fails before stopping its process must not leave it running.
impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Process {
    pub fn spawn(config: &std::path::Path, name: &str) -> Process {
        Self::spawn_with_env(config, name, &[])
    }

    /// `spawn` with extra environment variables for the process (secrets given as `{env: …}`).
    pub fn spawn_with_env(config: &std::path::Path, name: &str, env: &[(&str, &str)]) -> Process {
        let log = config.with_extension(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = std::process::Command::new(binary())
            .args(["run", "--config"])
            .arg(config)
            // `TRACEJOIN_TEST_RUST_LOG` to look closer at a failing test.
            .env(
                "RUST_LOG",
                std::env::var("TRACEJOIN_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn tracejoin");
        Process { child, log }
    }

    /// kill -9: no drain, no commit.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tracejoin did not exit within {within:?} of SIGTERM; log: {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}
