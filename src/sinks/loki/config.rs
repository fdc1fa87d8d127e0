//! What the user writes under `outputs.loki`, its defaults, and the checks `validate` runs at
//! start-up against Loki's default limits (15 label names per stream, label names
//! `[a-zA-Z_][a-zA-Z0-9_]*` up to 1024 bytes, label values up to 2048 bytes, tenant ids up to 150
//! bytes). A config that passes cannot produce a stream Loki rejects for its labels.
//!
//! Secrets (basic password, bearer token) are never written in the file: the file names an
//! environment variable or a file to read them from, and no `Debug` output contains them.
//!
//! Why one file over 600 lines: every key of `outputs.loki` with its default and its check against Loki's documented limits, so the validation errors and the docs cannot drift apart.

pub(crate) use crate::config::secret::Secret;
pub use crate::config::secret::SecretSource;
use crate::config::tls::ClientTlsConfig;
use crate::config::ByteSize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// Loki's default `max_label_names_per_series`.
pub(crate) const MAX_LABEL_NAMES: usize = 15;
/// Loki's default `max_label_name_length`.
pub(crate) const MAX_LABEL_NAME_BYTES: usize = 1024;
/// Loki's default `max_label_value_length`; longer values taken from records are cut to it.
pub(crate) const MAX_LABEL_VALUE_BYTES: usize = 2048;
/// Loki's limit on a tenant id (`X-Scope-OrgID`).
pub(crate) const MAX_TENANT_BYTES: usize = 150;

/// A config value that breaks one of the rules `validate` checks.
#[derive(Debug, Error)]
pub enum LokiConfigError {
    /// The value at `key` is not acceptable.
    #[error("config key `{key}` = {value}: {reason}")]
    Invalid {
        /// The dotted key, with list indices (`outputs.loki.labels[3].name`).
        key: String,
        /// The offending value as written (never a secret).
        value: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: String, value: impl fmt::Display, reason: impl Into<String>) -> LokiConfigError {
    LokiConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The Loki output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    /// Base URL of the server, without the push path: `http://127.0.0.1:3100`,
    /// `https://logs-prod-012.grafana.net`. Required.
    pub endpoint: String,
    /// Push path appended to `endpoint`: `/loki/api/v1/push` for Loki and Grafana Cloud,
    /// `/insert/loki/api/v1/push` for VictoriaLogs.
    pub path: String,
    /// Request encoding: `protobuf` (snappy-compressed `PushRequest`, what Promtail and Alloy
    /// send) or `json`.
    pub encoding: LokiEncoding,
    /// Stream labels, in order. Keep them low-cardinality: every distinct label set is a stream.
    /// Each item is a source name (`service`, `level`, `outcome`, `reason`, `format`,
    /// `span_name`, `span_kind`, `span_status`, `root_service`), or a map
    /// `{name: <label>, from: <source>}`, `{name: <label>, value: <static>}`, or
    /// `{name: <label>, field: <log field>}` (a top-level JSON key, logfmt key or OTLP attribute).
    pub labels: Vec<LabelSource>,
    /// Per-entry structured metadata (high-cardinality context that must not be a label):
    /// `trace_id`, `span_id`, `parent_span_id`, `span_name`, `span_kind`, `span_status`,
    /// `span_status_message`, `span_duration_ms`, `span_service`, `exception_type`,
    /// `root_service`, `root_operation`, `trace_error`, `trace_span_count`, `join_outcome`,
    /// `join_reason`, `severity`, `timestamp_source`, `log_format`, `kafka_offset`,
    /// `span_attributes` (the span attributes the join keeps), `log_attributes` (OTLP attributes
    /// or logfmt pairs). Fields without a value for a log are left out.
    pub structured_metadata: Vec<MetadataField>,
    /// The log line: `original` (the JSON object or logfmt pairs as received, else the message)
    /// or `message` (the extracted message only).
    pub line: LineFormat,
    /// `X-Scope-OrgID`: none (single-tenant Loki), a static id, or one taken from a log field.
    pub tenant: Option<TenantConfig>,
    /// HTTP authentication: basic or bearer, the secret read from the environment or a file.
    pub auth: Option<AuthConfig>,
    /// TLS of an `https://` endpoint: `ca_file` (a private CA; replaces the public roots),
    /// `cert_file` + `key_file` (a client certificate, for servers that require one),
    /// `insecure_skip_verify` (tests only). Unset: public roots, no client certificate.
    pub tls: Option<ClientTlsConfig>,
    /// When a batch is sent.
    pub batch: BatchConfig,
    /// Longest log line sent (Loki's default `max_line_size` is 256KB). Longer lines are handled
    /// by `oversize`.
    pub max_line_bytes: ByteSize,
    /// What happens to a line over `max_line_bytes`: `truncate` (cut, with a
    /// `…[truncated N bytes]` marker and a `line_truncated_bytes` metadata field) or
    /// `dead_letter` (sent to the dead-letter topic whole).
    pub oversize: OversizePolicy,
    /// Retries of 429, 5xx and connection errors.
    pub retry: RetryConfig,
    /// Timeout of one HTTP request, connection included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for LokiConfig {
    fn default() -> Self {
        LokiConfig {
            endpoint: String::new(),
            path: "/loki/api/v1/push".into(),
            encoding: LokiEncoding::Protobuf,
            labels: vec![
                LabelSource::from(LabelFrom::Service),
                LabelSource::from(LabelFrom::Level),
                LabelSource::from(LabelFrom::Outcome),
            ],
            structured_metadata: MetadataField::DEFAULT.to_vec(),
            line: LineFormat::Original,
            tenant: None,
            auth: None,
            tls: None,
            batch: BatchConfig::default(),
            max_line_bytes: ByteSize(256 << 10),
            oversize: OversizePolicy::Truncate,
            retry: RetryConfig::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How a push request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LokiEncoding {
    /// `PushRequest` protobuf, snappy block format, `Content-Type: application/x-protobuf`.
    #[default]
    Protobuf,
    /// `{"streams":[{"stream":{…},"values":[["<ns>","<line>",{…metadata}]]}]}`,
    /// `Content-Type: application/json`.
    Json,
}

/// What the log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// The record as received: a JSON log's object verbatim, a logfmt log's pairs, else the
    /// message. Keeps every field for Loki's `| json` / `| logfmt`.
    #[default]
    Original,
    /// The extracted message only.
    Message,
}

/// What a line over `max_line_bytes` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OversizePolicy {
    /// Cut to the limit, with a marker and a `line_truncated_bytes` metadata field.
    #[default]
    Truncate,
    /// Handed back by `LokiSink::add` for the dead-letter topic, whole.
    DeadLetter,
}

/// Where a label's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelFrom {
    /// The log's service, else its span's service, else `unknown_service`.
    Service,
    /// The log's severity normalised to `trace`, `debug`, `info`, `warn`, `error`, `critical`,
    /// `fatal` or `unknown` (bounded cardinality; the raw value can go in metadata `severity`).
    Level,
    /// The join outcome: `matched_span`, `matched_trace`, `unmatched`, `no_trace_id`.
    Outcome,
    /// Why the log left the join: `span_present`, `window_closed`, `evicted`, …
    Reason,
    /// The input format: `otlp_proto`, `json`, `logfmt`, `text`, …
    Format,
    /// The span's name (the operation), `none` without a span.
    SpanName,
    /// The span's kind (`SPAN_KIND_SERVER`, …), `none` without a span.
    SpanKind,
    /// The span's status (`STATUS_CODE_ERROR`, …), `none` without a span.
    SpanStatus,
    /// The service of the trace's root span, `none` when unknown.
    RootService,
}

impl LabelFrom {
    /// The snake_case name, which is also the default label name.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelFrom::Service => "service",
            LabelFrom::Level => "level",
            LabelFrom::Outcome => "outcome",
            LabelFrom::Reason => "reason",
            LabelFrom::Format => "format",
            LabelFrom::SpanName => "span_name",
            LabelFrom::SpanKind => "span_kind",
            LabelFrom::SpanStatus => "span_status",
            LabelFrom::RootService => "root_service",
        }
    }
}

/// A label's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelValue {
    /// Computed from the joined log.
    From(LabelFrom),
    /// A constant (`env: prod`).
    Static(String),
    /// A field of the log record; `unknown` when absent.
    Field(String),
}

/// One stream label: its name and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSource {
    /// The label name.
    pub name: String,
    /// Its value.
    pub value: LabelValue,
}

impl From<LabelFrom> for LabelSource {
    fn from(f: LabelFrom) -> Self {
        LabelSource {
            name: f.as_str().to_string(),
            value: LabelValue::From(f),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelSpec {
    name: String,
    from: Option<LabelFrom>,
    value: Option<String>,
    field: Option<String>,
}

impl<'de> Deserialize<'de> for LabelSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label source name (`service`) or a map {name, from|value|field}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LabelSource, E> {
                let from = LabelFrom::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                Ok(LabelSource::from(from))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LabelSource, A::Error> {
                let spec = LabelSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let value = match (spec.from, spec.value, spec.field) {
                    (Some(f), None, None) => LabelValue::From(f),
                    (None, Some(v), None) => LabelValue::Static(v),
                    (None, None, Some(f)) => LabelValue::Field(f),
                    _ => {
                        return Err(de::Error::custom(format!(
                            "label `{}`: give exactly one of `from`, `value`, `field`",
                            spec.name
                        )))
                    }
                };
                Ok(LabelSource {
                    name: spec.name,
                    value,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A structured-metadata field of each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataField {
    /// The log's trace id, 32 lowercase hex.
    TraceId,
    /// The log's span id, 16 lowercase hex.
    SpanId,
    /// The span's parent span id.
    ParentSpanId,
    /// The span's name.
    SpanName,
    /// The span's kind, `SPAN_KIND_SERVER`, ….
    SpanKind,
    /// The span's status, `STATUS_CODE_ERROR`, ….
    SpanStatus,
    /// The span's status message.
    SpanStatusMessage,
    /// The span's duration in milliseconds (`12.5`).
    SpanDurationMs,
    /// The span's service.
    SpanService,
    /// `exception.type` of the span's first exception event.
    ExceptionType,
    /// The service of the trace's root span.
    RootService,
    /// The name of the trace's root span.
    RootOperation,
    /// Whether any span of the trace has status error (`true`/`false`).
    TraceError,
    /// How many spans of the trace were in the window.
    TraceSpanCount,
    /// The join outcome.
    JoinOutcome,
    /// Why the log left the join.
    JoinReason,
    /// The severity as written.
    Severity,
    /// Where the event time came from (`record`, `kafka`, `clamped_future`).
    TimestampSource,
    /// The input format.
    LogFormat,
    /// `<partition>:<offset>` of the Kafka record (finds duplicates after a replay).
    KafkaOffset,
    /// The span attributes the join keeps, names with `.` as `_` (`http_route`).
    SpanAttributes,
    /// OTLP log attributes or logfmt pairs, names with `.` as `_`.
    LogAttributes,
}

impl MetadataField {
    /// The default set.
    pub const DEFAULT: [MetadataField; 10] = [
        MetadataField::TraceId,
        MetadataField::SpanId,
        MetadataField::SpanName,
        MetadataField::SpanKind,
        MetadataField::SpanStatus,
        MetadataField::SpanDurationMs,
        MetadataField::ExceptionType,
        MetadataField::RootService,
        MetadataField::RootOperation,
        MetadataField::JoinReason,
    ];
    /// The metadata name as sent (for the two attribute sets, a prefix-free marker).
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataField::TraceId => "trace_id",
            MetadataField::SpanId => "span_id",
            MetadataField::ParentSpanId => "parent_span_id",
            MetadataField::SpanName => "span_name",
            MetadataField::SpanKind => "span_kind",
            MetadataField::SpanStatus => "span_status",
            MetadataField::SpanStatusMessage => "span_status_message",
            MetadataField::SpanDurationMs => "span_duration_ms",
            MetadataField::SpanService => "span_service",
            MetadataField::ExceptionType => "exception_type",
            MetadataField::RootService => "root_service",
            MetadataField::RootOperation => "root_operation",
            MetadataField::TraceError => "trace_error",
            MetadataField::TraceSpanCount => "trace_span_count",
            MetadataField::JoinOutcome => "join_outcome",
            MetadataField::JoinReason => "join_reason",
            MetadataField::Severity => "severity",
            MetadataField::TimestampSource => "timestamp_source",
            MetadataField::LogFormat => "log_format",
            MetadataField::KafkaOffset => "kafka_offset",
            MetadataField::SpanAttributes => "span_attributes",
            MetadataField::LogAttributes => "log_attributes",
        }
    }
}

/// The tenant (`X-Scope-OrgID`) of each push. Give `id`, or `field` with `default`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// A static tenant id for every push.
    pub id: Option<String>,
    /// A log field (top-level JSON key, logfmt key or OTLP attribute) holding the tenant id.
    /// Logs are batched per tenant: consecutive logs of different tenants close each other's
    /// batch, so keep the input ordered or partitioned by tenant where you can.
    pub field: Option<String>,
    /// The tenant of logs whose `field` is absent or not a valid tenant id.
    pub default: Option<String>,
}

/// HTTP authentication. Written `{basic: {user, password: {env|file}}}` or
/// `{bearer: {token: {env|file}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AuthRepr")]
pub enum AuthConfig {
    /// `Authorization: Basic …` (Grafana Cloud: the numeric user id and an access token).
    Basic {
        /// The user name.
        user: String,
        /// Where the password is read.
        password: SecretSource,
    },
    /// `Authorization: Bearer …`.
    Bearer {
        /// Where the token is read.
        token: SecretSource,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthRepr {
    basic: Option<BasicRepr>,
    bearer: Option<BearerRepr>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicRepr {
    user: String,
    password: SecretSource,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BearerRepr {
    token: SecretSource,
}

impl TryFrom<AuthRepr> for AuthConfig {
    type Error = String;
    fn try_from(r: AuthRepr) -> Result<Self, String> {
        match (r.basic, r.bearer) {
            (Some(b), None) => Ok(AuthConfig::Basic {
                user: b.user,
                password: b.password,
            }),
            (None, Some(b)) => Ok(AuthConfig::Bearer { token: b.token }),
            _ => Err("auth: give exactly one of `basic` or `bearer`".into()),
        }
    }
}

/// When the open batch is sent: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Uncompressed payload size (lines, labels and metadata).
    pub max_bytes: ByteSize,
    /// Entries.
    pub max_entries: usize,
    /// Age of the batch's first entry.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_bytes: ByteSize(1 << 20),
            max_entries: 5000,
            max_wait: Duration::from_secs(1),
        }
    }
}

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before the first retry; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest delay between attempts (a server's `Retry-After` may ask for longer, up to 5m).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Attempts per batch before it is dead-lettered; unset = retry until delivered (the
    /// pipeline pauses consumption meanwhile, which is the at-least-once choice).
    pub max_attempts: Option<u32>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

/// Whether `s` is a valid Loki / Prometheus label name.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether `s` is a tenant id Loki accepts (alphanumerics and `!-_.*'()`, not `.` or `..`), or
/// VictoriaLogs' `account:project` form.
pub(crate) fn is_tenant_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TENANT_BYTES
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!-_.*'():".contains(&c))
}

impl LokiConfig {
    /// The full push URL.
    pub fn push_url(&self) -> String {
        format!("{}{}", self.endpoint.trim_end_matches('/'), self.path)
    }

    /// Checks what serde cannot; errors name the key under `key_prefix` (`outputs.loki`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), LokiConfigError> {
        let k = |rest: &str| format!("{key_prefix}.{rest}");

        if self.endpoint.trim().is_empty() {
            return Err(invalid(
                k("endpoint"),
                "\"\"",
                "required: the server's base URL",
            ));
        }
        match reqwest::Url::parse(&self.endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.query().is_some() {
                    return Err(invalid(
                        k("endpoint"),
                        &self.endpoint,
                        "must not have a query",
                    ));
                }
            }
            Ok(_) => {
                return Err(invalid(
                    k("endpoint"),
                    &self.endpoint,
                    "must be an http:// or https:// URL with a host",
                ))
            }
            Err(e) => return Err(invalid(k("endpoint"), &self.endpoint, e.to_string())),
        }
        if !self.path.starts_with('/') {
            return Err(invalid(k("path"), &self.path, "must start with `/`"));
        }
        if reqwest::Url::parse(&self.push_url()).is_err() {
            return Err(invalid(k("path"), &self.path, "does not form a valid URL"));
        }

        if self.labels.is_empty() {
            return Err(invalid(
                k("labels"),
                "[]",
                "Loki needs at least one label per stream",
            ));
        }
        if self.labels.len() > MAX_LABEL_NAMES {
            return Err(invalid(
                k("labels"),
                format!("{} labels", self.labels.len()),
                format!("Loki accepts at most {MAX_LABEL_NAMES} label names per stream"),
            ));
        }
        for (i, l) in self.labels.iter().enumerate() {
            let key = k(&format!("labels[{i}]"));
            if !is_label_name(&l.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("{:?}", l.name),
                    "a label name must match [a-zA-Z_][a-zA-Z0-9_]*",
                ));
            }
            if l.name.starts_with("__") {
                return Err(invalid(
                    format!("{key}.name"),
                    &l.name,
                    "names starting with `__` are reserved",
                ));
            }
            if l.name.len() > MAX_LABEL_NAME_BYTES {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("{} bytes", l.name.len()),
                    format!("longer than Loki's {MAX_LABEL_NAME_BYTES}-byte limit"),
                ));
            }
            if let Some(j) = self.labels[..i].iter().position(|o| o.name == l.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    &l.name,
                    format!("duplicate of labels[{j}]"),
                ));
            }
            match &l.value {
                LabelValue::Static(v) if v.is_empty() => {
                    return Err(invalid(
                        format!("{key}.value"),
                        "\"\"",
                        "a label value must not be empty",
                    ))
                }
                LabelValue::Static(v) if v.len() > MAX_LABEL_VALUE_BYTES => {
                    return Err(invalid(
                        format!("{key}.value"),
                        format!("{} bytes", v.len()),
                        format!("longer than Loki's {MAX_LABEL_VALUE_BYTES}-byte limit"),
                    ))
                }
                LabelValue::Field(f) if f.is_empty() => {
                    return Err(invalid(format!("{key}.field"), "\"\"", "name a log field"))
                }
                _ => {}
            }
        }
        for (i, m) in self.structured_metadata.iter().enumerate() {
            if let Some(j) = self.structured_metadata[..i].iter().position(|o| o == m) {
                return Err(invalid(
                    k(&format!("structured_metadata[{i}]")),
                    m.as_str(),
                    format!("duplicate of structured_metadata[{j}]"),
                ));
            }
        }

        if let Some(t) = &self.tenant {
            match (&t.id, &t.field) {
                (Some(id), None) => {
                    if !is_tenant_id(id) {
                        return Err(invalid(
                            k("tenant.id"),
                            id,
                            "a tenant id is 1-150 bytes of alphanumerics and !-_.*'(): (not . or ..)",
                        ));
                    }
                    if t.default.is_some() {
                        return Err(invalid(
                            k("tenant.default"),
                            t.default.as_deref().unwrap_or_default(),
                            "only used with `tenant.field`",
                        ));
                    }
                }
                (None, Some(field)) => {
                    if field.is_empty() {
                        return Err(invalid(k("tenant.field"), "\"\"", "name a log field"));
                    }
                    match &t.default {
                        Some(d) if is_tenant_id(d) => {}
                        Some(d) => {
                            return Err(invalid(
                                k("tenant.default"),
                                d,
                                "a tenant id is 1-150 bytes of alphanumerics and !-_.*'(): (not . or ..)",
                            ))
                        }
                        None => {
                            return Err(invalid(
                                k("tenant.default"),
                                "(unset)",
                                "required with `tenant.field`: the tenant of logs without the field",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(invalid(
                        k("tenant"),
                        "{…}",
                        "give exactly one of `id` or `field` (with `default`)",
                    ))
                }
            }
        }

        match &self.auth {
            None => {}
            Some(AuthConfig::Basic { user, password }) => {
                if user.is_empty() {
                    return Err(invalid(k("auth.basic.user"), "\"\"", "required"));
                }
                let key = k("auth.basic.password");
                check_secret(password, &key)?;
            }
            Some(AuthConfig::Bearer { token }) => check_secret(token, &k("auth.bearer.token"))?,
        }

        if let Some(tls) = &self.tls {
            if !self.endpoint.starts_with("https://") {
                return Err(invalid(
                    k("tls"),
                    "{…}",
                    format!(
                        "TLS settings need an https:// endpoint (outputs.loki.endpoint is {})",
                        self.endpoint
                    ),
                ));
            }
            tls.load(&k("tls")).map_err(|e| {
                let (key, value, reason) = e.into_parts();
                LokiConfigError::Invalid { key, value, reason }
            })?;
        }

        let b = &self.batch;
        if b.max_bytes.0 < 1024 {
            return Err(invalid(
                k("batch.max_bytes"),
                b.max_bytes.0,
                "must be at least 1KiB",
            ));
        }
        if b.max_entries == 0 {
            return Err(invalid(k("batch.max_entries"), 0, "must be at least 1"));
        }
        if b.max_wait.is_zero() {
            return Err(invalid(k("batch.max_wait"), "0s", "must be positive"));
        }
        if self.max_line_bytes.0 < 64 {
            return Err(invalid(
                k("max_line_bytes"),
                self.max_line_bytes.0,
                "must be at least 64 bytes",
            ));
        }
        if self.max_line_bytes > b.max_bytes {
            return Err(invalid(
                k("max_line_bytes"),
                self.max_line_bytes.0,
                format!("must not exceed batch.max_bytes ({})", b.max_bytes.0),
            ));
        }
        let r = &self.retry;
        if r.initial_backoff.is_zero() {
            return Err(invalid(
                k("retry.initial_backoff"),
                "0s",
                "must be positive",
            ));
        }
        if r.max_backoff < r.initial_backoff {
            return Err(invalid(
                k("retry.max_backoff"),
                humantime::format_duration(r.max_backoff),
                "must not be shorter than retry.initial_backoff",
            ));
        }
        if r.max_attempts == Some(0) {
            return Err(invalid(
                k("retry.max_attempts"),
                0,
                "must be at least 1 (leave unset to retry until delivered)",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid(k("request_timeout"), "0s", "must be positive"));
        }
        Ok(())
    }
}

fn check_secret(src: &SecretSource, key: &str) -> Result<(), LokiConfigError> {
    let sub = match src {
        SecretSource::Env(_) => "env",
        SecretSource::File(_) => "file",
    };
    src.read()
        .map(drop)
        .map_err(|e| invalid(format!("{key}.{sub}"), src.describe(), e))
}
