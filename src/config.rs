//! The one typed config tree: defaults in one place, every field documented, one `validate()`.
//!
//! The YAML file mirrors this tree. Durations are written as `"30s"`, sizes as `"256MiB"` or a
//! number of bytes, choices as snake_case names. Unknown keys are errors (a misspelt key would
//! otherwise silently take its default). `validate` checks what serde cannot: cross-field rules,
//! and settings that would break the delivery guarantee; its errors name the key and the value.
//!
//! Why one file over 600 lines: the config tree is read as a whole (one `deploy/tracejoin.yaml`), and its cross-key validation (lateness against retention, reserved librdkafka keys) needs every section; the Loki, RED and SLO sections already live beside their components.

use crate::decode::logline::InputLogFormat;
use crate::derive::red::{RedConfig, RedError};
use crate::derive::servicegraph::ServiceGraphConfig;
use crate::sinks::loki::{LokiConfig, LokiConfigError};
use crate::sources::partitioner::Partitioner;
use crate::sources::repartition::RepartitionPolicy;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

pub mod properties;
pub mod secret;
pub mod tls;

pub use properties::{KafkaProperties, PropertyValue};
pub use secret::SecretSource;
pub use tls::{ClientTlsConfig, ServerTlsConfig, TlsError};

/// Why a config was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not match the config schema.
    #[error("config {path}: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The YAML error, with its location and key.
        source: serde_yaml::Error,
    },
    /// A value breaks a rule `validate` checks.
    #[error("config key `{key}` = {value}: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &str, value: impl std::fmt::Display, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A size in bytes, written as a number or with a unit (`512KiB`, `256MiB`, `1GiB`, `10MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"256MiB"`, `"10MB"`, `"4096"`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
    /// As `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("invalid size {s:?} (e.g. 256MiB, 10MB, 4096)"))
            }),
        }
    }
}

/// `workers`: how many consumer-and-join workers one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    /// One per core available to the process (`std::thread::available_parallelism`).
    #[default]
    Auto,
    /// Exactly this many.
    Count(usize),
}

impl Workers {
    /// The number of workers to run.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Workers::Count(n) => n,
        }
    }
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(usize),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Workers::Count(n)),
            Raw::S(s) if s == "auto" => Ok(Workers::Auto),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "invalid workers {s:?} (auto, or a number)"
            ))),
        }
    }
}

/// The whole processor config.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Workers in this process: `auto` (one per core available to the process) or a number.
    /// Each is its own consumer in the group with its own join state.
    pub workers: Workers,
    /// Connection to Kafka, shared by consumer and producers.
    pub kafka: KafkaConfig,
    /// The input topics.
    pub inputs: InputsConfig,
    /// Join windows and state bounds.
    pub join: JoinConfig,
    /// Where enriched logs and dead letters go.
    pub outputs: OutputsConfig,
    /// The Prometheus endpoint and derived metrics.
    pub metrics: MetricsConfig,
    /// Extraction rules for raw log lines.
    pub rules: RulesConfig,
    /// Per-record and in-flight limits.
    pub limits: LimitsConfig,
    /// Shutdown behaviour.
    pub shutdown: ShutdownConfig,
    /// Where derived state (the SLO windows) survives restarts and rebalances.
    pub state: StateConfig,
}

/// Derived state kept across restarts and rebalances, the way Kafka Streams keeps a state store:
/// each join partition's SLO state (and its RED series with `metrics.red.per_partition`) is
/// written to a compacted changelog topic (`<group_id>.slo-state`) and restored by the
/// partition's next owner before it processes the partition. Only with SLOs (`rules.slo`) or
/// per-partition RED.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Changelog the SLO state. Off: the windows live in memory only and start empty after a
    /// restart or on a partition's new owner.
    pub changelog: bool,
    /// How often each partition's state is written (when its input moved). Offsets of a
    /// changelogged partition are committed only up to what a written state covers, so this
    /// also bounds how often they are committed.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            changelog: true,
            snapshot_interval: Duration::from_secs(5),
        }
    }
}

/// Kafka connection and consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Consumer group id; every instance of one deployment uses the same.
    pub group_id: String,
    /// Where a partition with no committed offset starts: `earliest` or `latest`.
    pub auto_offset_reset: OffsetReset,
    /// How often committable offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Extra librdkafka properties for consumer and producers (`security.protocol`,
    /// `sasl.mechanisms`, `ssl.ca.location`, …), passed through as written. Any value may be a
    /// secret read from the environment or a file, `{env: NAME}` / `{file: PATH}` (the file read
    /// again whenever a client is created); passwords and other secrets are never printed.
    pub properties: KafkaProperties,
    /// The consumer group protocol: `classic` (every broker; a member joining or leaving stops
    /// every member while partitions are handed over) or `consumer` (KIP-848, Kafka 4.0 and
    /// later: the broker's `range` assignor moves only the partitions that change owner).
    pub group_protocol: GroupProtocol,
}

/// `group.protocol`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GroupProtocol {
    /// The classic protocol with the client-side `range` assignor (eager).
    #[default]
    Classic,
    /// KIP-848's protocol with the broker-side `range` assignor (incremental).
    Consumer,
}

/// Consumer properties the broker owns under the `consumer` group protocol (KIP-848): librdkafka
/// refuses them there, so the config says which key is wrong instead.
const CLASSIC_ONLY_CONSUMER_PROPERTIES: [&str; 3] = [
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
];

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "tracejoin".into(),
            auto_offset_reset: OffsetReset::Earliest,
            commit_interval: Duration::from_secs(1),
            properties: KafkaProperties::default(),
            group_protocol: GroupProtocol::Classic,
        }
    }
}

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// From the oldest record kept.
    Earliest,
    /// From new records only.
    Latest,
}

impl OffsetReset {
    /// The librdkafka value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// The input topics. They must be co-partitioned by trace id (same partition count, same
/// partitioner), as the Collector's Kafka exporter does with `partition_traces_by_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// The spans topic.
    pub spans: SpansInput,
    /// One or more logs topics.
    pub logs: Vec<LogsInput>,
    /// The partitioner the producers of every input topic use (`murmur2` for Java clients and
    /// Kafka Streams, `crc32` for librdkafka's default, `fnv1a` for sarama and the Collector's
    /// exporter, `none` to skip). Each keyed record is checked against it; a record on another
    /// partition than its key says means the topics are not co-partitioned
    /// (`tracejoin_partition_key_mismatch_total`).
    pub partitioner: Partitioner,
    /// Whether records are re-keyed by trace id into internal topics before the join
    /// (`<group_id>.repartition.spans` / `.logs`): `auto` (the input topics not proven
    /// co-partitioned by a sample at start-up), `always`, `never`.
    pub repartition: RepartitionPolicy,
    /// Partitions of the internal topics; default: the most any input topic has.
    pub repartition_partitions: Option<i32>,
    /// How long the internal topics keep records (`retention.ms`): long enough to ride out an
    /// outage of the join stage, short enough to keep them small.
    #[serde(with = "humantime_serde")]
    pub repartition_retention: Duration,
}

impl Default for InputsConfig {
    fn default() -> Self {
        InputsConfig {
            spans: SpansInput::default(),
            logs: vec![LogsInput {
                topic: "otlp_logs".into(),
                format: InputLogFormat::Auto,
            }],
            partitioner: Partitioner::None,
            repartition: RepartitionPolicy::Auto,
            repartition_partitions: None,
            repartition_retention: Duration::from_secs(6 * 3600),
        }
    }
}

/// The spans topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpansInput {
    /// Topic name (the Collector's default is `otlp_spans`).
    pub topic: String,
    /// `otlp_proto`, `otlp_json`, or `auto` (JSON if the record starts with `{`).
    pub format: SpanFormat,
}

impl Default for SpansInput {
    fn default() -> Self {
        SpansInput {
            topic: "otlp_spans".into(),
            format: SpanFormat::OtlpProto,
        }
    }
}

/// Encoding of span records.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SpanFormat {
    /// Protobuf `ExportTraceServiceRequest` (the Collector's `otlp_proto`).
    OtlpProto,
    /// OTLP/JSON (the Collector's `otlp_json`).
    OtlpJson,
    /// JSON if the record starts with `{`, else protobuf.
    Auto,
}

/// A logs topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsInput {
    /// Topic name.
    pub topic: String,
    /// `auto` (sniff each record), `otlp_proto`, `otlp_json`, `json`, `logfmt` or `text`.
    #[serde(default)]
    pub format: InputLogFormat,
}

/// Join windows and state bounds. See `src/join/mod.rs` for the exact semantics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// How long past its own time a log waits for its span (event time).
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// How long past its end a span is kept for logs that come after it (event time).
    #[serde(with = "humantime_serde")]
    pub span_retention: Duration,
    /// How far behind the newest event time records may arrive and still be on time.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A partition silent this long (wall clock) stops holding the watermark back.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A record stamped further than this in the future (wall clock) gets its arrival time
    /// instead, so one bad clock cannot push the watermark ahead of everyone else.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// At most this many open traces; the least recently used is evicted first.
    pub max_traces: usize,
    /// At most about this much join state (logs waiting and span summaries).
    pub max_state_bytes: ByteSize,
    /// Span attributes kept in the summary and copied into enriched logs.
    pub span_attributes: Vec<String>,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            max_wait: Duration::from_secs(10),
            span_retention: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_future_skew: Duration::from_secs(300),
            max_traces: 200_000,
            max_state_bytes: ByteSize(256 << 20),
            span_attributes: [
                "http.route",
                "http.request.method",
                "http.response.status_code",
                "rpc.method",
                "db.system",
                "messaging.destination.name",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Where enriched logs and dead letters go.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Enriched logs as JSON to a Kafka topic.
    pub kafka: KafkaOutput,
    /// Undecodable records and refused batches.
    pub dead_letter: DeadLetterOutput,
    /// Enriched logs to Grafana Loki (or any server of its push protocol); off when absent.
    pub loki: Option<LokiConfig>,
    /// Where SLO attribution events go (JSON, when a burn-rate threshold is crossed); with
    /// `rules.slo` set and this absent, attribution is exported as metrics only.
    pub attribution_topic: Option<String>,
}

/// The enriched-logs topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaOutput {
    /// Whether enriched logs are written to Kafka.
    pub enabled: bool,
    /// Topic name; records are keyed by trace id.
    pub topic: String,
    /// Extra librdkafka producer properties (e.g. `compression.type`); values as in
    /// `kafka.properties`, secrets included.
    pub properties: KafkaProperties,
}

impl Default for KafkaOutput {
    fn default() -> Self {
        KafkaOutput {
            enabled: true,
            topic: "logs.enriched".into(),
            properties: KafkaProperties::default(),
        }
    }
}

/// The dead-letter topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterOutput {
    /// Topic name. Records keep their key and value; headers say why and where from.
    pub topic: String,
}

impl Default for DeadLetterOutput {
    fn default() -> Self {
        DeadLetterOutput {
            topic: "tracejoin.dlq".into(),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Users allowed to scrape `/metrics`, name → bcrypt hash of the password (Prometheus
    /// web-config's `basic_auth_users`; `htpasswd -nBC 10 USER` makes one). Empty: no
    /// authentication. `/healthz` and `/readyz` stay open for probes.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Serve the endpoint over HTTPS only (Prometheus web-config's `tls_server_config`):
    /// `cert_file`, `key_file`, and optionally `client_ca_file` (then every client must present
    /// a certificate signed by it). Unset: plain HTTP.
    pub tls: Option<ServerTlsConfig>,
    /// RED metrics (rate, errors, duration) from the spans, named like the OpenTelemetry
    /// Collector's spanmetrics connector.
    pub red: RedConfig,
    /// Service graph metrics from client/server span pairs, named like the Collector's
    /// servicegraph connector.
    pub service_graph: ServiceGraphConfig,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            basic_auth_users: BTreeMap::new(),
            tls: None,
            red: RedConfig::default(),
            service_graph: ServiceGraphConfig::default(),
        }
    }
}

/// Extraction rules.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Path of the extraction rules; the shipped `rules/extract.yaml` is built in and used when
    /// absent. Relative paths are taken from the config file's folder.
    pub extract: Option<PathBuf>,
    /// Path of the SLO definitions (`rules/slo.yaml`); SLO burn rates and attribution are off
    /// when absent. Relative paths are taken from the config file's folder.
    pub slo: Option<PathBuf>,
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Records larger than this are dead-lettered with reason `too_large`.
    pub max_record_bytes: ByteSize,
    /// At most this many records waiting for a sink's acknowledgement; consumption pauses
    /// beyond it (backpressure).
    pub max_in_flight: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_record_bytes: ByteSize(1 << 20),
            max_in_flight: 20_000,
        }
    }
}

/// Shutdown behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long SIGTERM may take to flush sinks and commit before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Emit logs still waiting for their span at shutdown (outcome decided on what is there).
    /// Off by default: their offsets are not committed, so the next run re-reads them and
    /// joins them properly.
    pub emit_waiting_logs: bool,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            timeout: Duration::from_secs(30),
            emit_waiting_logs: false,
        }
    }
}

/// librdkafka properties that would break at-least-once delivery if overridden.
const RESERVED_CONSUMER_PROPERTIES: [&str; 3] =
    ["enable.auto.commit", "enable.auto.offset.store", "group.id"];

impl Config {
    /// Reads, parses and validates a config file; relative rule paths are resolved against it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        for rules in [&mut config.rules.extract, &mut config.rules.slo] {
            if let (Some(rel), Some(dir)) = (rules.as_ref(), path.parent()) {
                if rel.is_relative() {
                    *rules = Some(dir.join(rel));
                }
            }
        }
        if let Some(dir) = path.parent() {
            if let Some(tls) = &mut config.metrics.tls {
                tls.resolve_relative(dir);
            }
            if let Some(tls) = config.outputs.loki.as_mut().and_then(|l| l.tls.as_mut()) {
                tls.resolve_relative(dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML text (not validated); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            path: origin.to_string(),
            source,
        })
    }

    /// Checks the rules serde cannot; the error names the key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.metrics.red.validate().map_err(|e| match e {
            RedError::Invalid { key, value, reason } => {
                invalid(&format!("metrics.red.{key}"), value, &reason)
            }
        })?;
        self.metrics.service_graph.validate().map_err(|e| {
            invalid(
                &format!("metrics.service_graph.{}", e.key),
                e.value,
                &e.reason,
            )
        })?;
        for (user, hash) in &self.metrics.basic_auth_users {
            if !crate::telemetry::auth::is_bcrypt_hash(hash) {
                return Err(invalid(
                    &format!("metrics.basic_auth_users.{user}"),
                    "(not shown)",
                    "must be a bcrypt hash ($2y$10$…, e.g. from htpasswd -nBC 10 USER), not a password",
                ));
            }
        }
        if let Some(tls) = &self.metrics.tls {
            tls.server_config("metrics.tls").map_err(|e| {
                let (key, value, reason) = e.into_parts();
                ConfigError::Invalid { key, value, reason }
            })?;
        }
        if let Some(n) = self.inputs.repartition_partitions.filter(|n| *n < 1) {
            return Err(invalid(
                "inputs.repartition_partitions",
                n,
                "must be at least 1",
            ));
        }
        if self.workers == Workers::Count(0) {
            return Err(invalid(
                "workers",
                0,
                "at least one worker is needed (or auto)",
            ));
        }
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "\"\"",
                "must name at least one broker",
            ));
        }
        if self.kafka.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "\"\"", "must not be empty"));
        }
        if self.metrics.red.per_partition && !self.state.changelog {
            return Err(invalid(
                "metrics.red.per_partition",
                "true",
                "needs state.changelog: true (the per-partition series are kept in the state changelog)",
            ));
        }
        if self.state.snapshot_interval.is_zero() {
            return Err(invalid(
                "state.snapshot_interval",
                "0s",
                "must be positive (offsets of changelogged partitions commit at this pace)",
            ));
        }
        for (section, props) in [
            ("kafka.properties", &self.kafka.properties),
            ("outputs.kafka.properties", &self.outputs.kafka.properties),
        ] {
            for (key, value) in props.iter() {
                if let PropertyValue::Secret(source) = value {
                    let sub = match source {
                        SecretSource::Env(_) => "env",
                        SecretSource::File(_) => "file",
                    };
                    source.read().map_err(|reason| {
                        invalid(
                            &format!("{section}.{key}.{sub}"),
                            source.describe(),
                            &reason,
                        )
                    })?;
                }
            }
        }
        for key in RESERVED_CONSUMER_PROPERTIES {
            if let Some(v) = self.kafka.properties.shown(key) {
                return Err(invalid(
                    &format!("kafka.properties.{key}"),
                    v,
                    "is managed by tracejoin: offsets are committed only when every sink has the record",
                ));
            }
        }
        if self.kafka.group_protocol == GroupProtocol::Consumer {
            for key in CLASSIC_ONLY_CONSUMER_PROPERTIES {
                if let Some(v) = self.kafka.properties.shown(key) {
                    return Err(invalid(
                        &format!("kafka.properties.{key}"),
                        v,
                        "is set by the broker under kafka.group_protocol: consumer (the group's own config, e.g. group.consumer.session.timeout.ms)",
                    ));
                }
            }
        }
        if let Some(v) = self.kafka.properties.shown("partition.assignment.strategy") {
            if self.kafka.properties.get("partition.assignment.strategy") != Some("range") {
                return Err(invalid(
                    "kafka.properties.partition.assignment.strategy",
                    v,
                    "must be range: the join needs partition p of every input topic on one member",
                ));
            }
        }
        if self.inputs.logs.is_empty() {
            return Err(invalid(
                "inputs.logs",
                "[]",
                "at least one logs topic is needed",
            ));
        }
        let mut topics = vec![("inputs.spans.topic".to_string(), &self.inputs.spans.topic)];
        for (i, l) in self.inputs.logs.iter().enumerate() {
            topics.push((format!("inputs.logs[{i}].topic"), &l.topic));
        }
        for (i, (key, topic)) in topics.iter().enumerate() {
            if topic.trim().is_empty() {
                return Err(invalid(key, "\"\"", "must not be empty"));
            }
            if topics[..i].iter().any(|(_, t)| t == topic) {
                return Err(invalid(key, topic, "the same topic is listed twice"));
            }
            for (out_key, out) in [
                ("outputs.kafka.topic", &self.outputs.kafka.topic),
                ("outputs.dead_letter.topic", &self.outputs.dead_letter.topic),
            ] {
                if out == *topic {
                    return Err(invalid(
                        out_key,
                        out,
                        &format!("is also an input ({key}): that would loop"),
                    ));
                }
            }
        }
        let j = &self.join;
        if j.max_wait.is_zero() {
            return Err(invalid("join.max_wait", "0s", "must be positive"));
        }
        if j.allowed_lateness > j.span_retention {
            return Err(invalid(
                "join.allowed_lateness",
                humantime::format_duration(j.allowed_lateness),
                &format!(
                    "must not exceed join.span_retention ({}): a log within the lateness could find its span already expired",
                    humantime::format_duration(j.span_retention)
                ),
            ));
        }
        if j.idle_timeout.is_zero() {
            return Err(invalid("join.idle_timeout", "0s", "must be positive"));
        }
        if j.max_traces == 0 {
            return Err(invalid("join.max_traces", 0, "must be at least 1"));
        }
        if j.max_state_bytes.0 < 1 << 20 {
            return Err(invalid(
                "join.max_state_bytes",
                j.max_state_bytes.0,
                "must be at least 1MiB",
            ));
        }
        if self.limits.max_record_bytes.0 == 0 {
            return Err(invalid("limits.max_record_bytes", 0, "must be positive"));
        }
        if self.limits.max_in_flight == 0 {
            return Err(invalid("limits.max_in_flight", 0, "must be at least 1"));
        }
        if !self.outputs.kafka.enabled && self.outputs.loki.is_none() {
            return Err(invalid(
                "outputs.kafka.enabled",
                false,
                "no sink left: enable Kafka or configure outputs.loki",
            ));
        }
        if let Some(path) = &self.rules.slo {
            crate::derive::slo::SloConfig::load(path)
                .map_err(|e| invalid("rules.slo", path.display(), &e.to_string()))?;
        }
        if let Some(loki) = &self.outputs.loki {
            loki.validate("outputs.loki").map_err(
                |LokiConfigError::Invalid { key, value, reason }| ConfigError::Invalid {
                    key,
                    value,
                    reason,
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        Config::parse("{}", "t").unwrap().validate().unwrap();
    }

    #[test]
    fn durations_sizes_and_enums_parse() {
        let c = Config::parse(
            "join:\n  max_wait: 2s\n  max_state_bytes: 64MiB\ninputs:\n  spans: {topic: s, format: otlp_json}\n  logs: [{topic: l, format: logfmt}]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.join.max_wait, Duration::from_secs(2));
        assert_eq!(c.join.max_state_bytes, ByteSize(64 << 20));
        assert_eq!(c.inputs.spans.format, SpanFormat::OtlpJson);
        assert_eq!(c.inputs.logs[0].format, InputLogFormat::Logfmt);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("join:\n  max_wiat: 2s\n", "cfg.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_wiat") && err.contains("cfg.yaml"),
            "{err}"
        );
    }

    #[test]
    fn validation_errors_name_key_and_value() {
        let check = |yaml: &str, key: &str| {
            let err = Config::parse(yaml, "t")
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
        };
        check(
            "kafka:\n  properties: {enable.auto.commit: 'true'}\n",
            "kafka.properties.enable.auto.commit",
        );
        check(
            "join:\n  allowed_lateness: 2m\n  span_retention: 1m\n",
            "join.allowed_lateness",
        );
        check(
            "inputs:\n  logs: [{topic: a}, {topic: a}]\n",
            "inputs.logs[1].topic",
        );
        check(
            "outputs:\n  kafka: {topic: otlp_spans}\n",
            "outputs.kafka.topic",
        );
        check("join:\n  max_traces: 0\n", "join.max_traces");
        check("inputs:\n  logs: []\n", "inputs.logs");
    }

    #[test]
    fn metrics_users_need_bcrypt_hashes_and_errors_do_not_show_them() {
        let err = Config::parse(
            "metrics:\n  basic_auth_users: {prometheus: plain-pw-123}\n",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("metrics.basic_auth_users.prometheus"), "{err}");
        assert!(!err.contains("plain-pw-123"), "{err}");
        let hash = bcrypt::hash("pw", 4).unwrap();
        Config::parse(
            &format!("metrics:\n  basic_auth_users: {{prometheus: '{hash}'}}\n"),
            "t",
        )
        .unwrap()
        .validate()
        .unwrap();
    }

    #[test]
    fn secrets_in_kafka_properties_are_checked_and_never_shown() {
        std::env::set_var("TRACEJOIN_TEST_CFG_SECRET", "env-s3cr3t-value");
        let c = Config::parse(
            "kafka:\n  properties:\n    sasl.password: {env: TRACEJOIN_TEST_CFG_SECRET}\n    ssl.key.password: written-s3cr3t\n    enable.auto.commit: {env: TRACEJOIN_TEST_CFG_SECRET}\n",
            "t",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("kafka.properties.enable.auto.commit"), "{err}");
        let debug = format!("{c:?}");
        for shown in [&err, &debug] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        let missing = Config::parse(
            "kafka:\n  properties:\n    sasl.password: {env: TRACEJOIN_TEST_CFG_UNSET_VAR}\n",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("kafka.properties.sasl.password.env"),
            "{missing}"
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("1GiB"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("10MB"), Some(ByteSize(10_000_000)));
        assert_eq!(ByteSize::parse("12"), Some(ByteSize(12)));
        assert_eq!(ByteSize::parse("12 parsecs"), None);
    }
}
