//! Turning joined logs into batches: the line, the stream labels, the structured metadata, and
//! when the one open batch is closed.
//!
//! Edge cases:
//! - A batch has one tenant (`X-Scope-OrgID` is per request). With the tenant taken from a log
//!   field, a log of another tenant closes the open batch; interleaved tenants give small batches
//!   but memory stays at one open batch.
//! - A batch closes *before* the entry that would take it over `batch.max_bytes` (so a batch never
//!   exceeds it, except a single entry whose metadata alone is larger), and *after* the entry that
//!   reaches `batch.max_entries`.
//! - Label values are never empty (Loki drops a label with an empty value, and a stream with no
//!   labels is rejected): absent values become `unknown_service`, `unknown` or `none`, and values
//!   longer than Loki's 2048 bytes are cut.
//! - A line over `max_line_bytes` is cut at a UTF-8 boundary with `…[truncated N bytes]`, or,
//!   with `oversize: dead_letter`, refused by [`LokiSink::add`] as an [`OversizedLine`] that
//!   carries the whole entry for the dead-letter topic.
//!
//! Why one file over 600 lines: building a batch (labels, structured metadata, line rendering, limits) is one transformation from a joined log to a Loki entry.

use super::config::{
    LabelFrom, LabelSource, LabelValue, LineFormat, LokiConfig, MetadataField, OversizePolicy,
    MAX_LABEL_VALUE_BYTES,
};
use super::event::{self, write_label_string};
use super::service::LokiClient;
use super::LokiError;
use crate::model::{AttrValue, JoinedLog, LogFields, Origin, SpanSummary};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Loki's default `max_structured_metadata_entries_count`.
const MAX_METADATA_ENTRIES: usize = 128;
/// Longest structured-metadata value sent; longer values are cut (Loki's default limit for all
/// metadata of an entry is 64KB).
const MAX_METADATA_VALUE_BYTES: usize = 4096;
/// Distinct attribute names whose sanitised form is cached.
const NAME_CACHE_CAP: usize = 1024;
/// Fixed per-entry overhead counted towards `batch.max_bytes` (timestamp, protobuf framing).
const ENTRY_OVERHEAD: usize = 24;

/// One entry of an open batch.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) ts: i64,
    pub(crate) line: String,
    pub(crate) metadata: Vec<(Arc<str>, String)>,
    pub(crate) origin: Origin,
}

/// The entries of one label set.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    /// `{service="checkout", level="error", outcome="matched_span"}`.
    pub(crate) labels: String,
    /// The same, as pairs (for the JSON forms).
    pub(crate) pairs: Vec<(Arc<str>, String)>,
    pub(crate) entries: Vec<Entry>,
}

/// A closed batch: entries grouped in streams per label set, one tenant, and the origin of every
/// entry. Send it with [`LokiClient::send`].
#[derive(Debug)]
pub struct LokiBatch {
    pub(crate) tenant: Option<Arc<str>>,
    pub(crate) streams: Vec<Stream>,
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
    pub(crate) opened_at: Instant,
}

impl LokiBatch {
    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.entries
    }
    /// Approximate uncompressed payload size, as counted against `batch.max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Number of streams (distinct label sets).
    pub fn streams(&self) -> usize {
        self.streams.len()
    }
    /// The tenant (`X-Scope-OrgID`), if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    /// When its first entry was added.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }
    /// The origins of its entries (stream by stream, not in arrival order).
    pub fn origins(&self) -> impl Iterator<Item = Origin> + '_ {
        self.streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.origin))
    }
}

/// A log refused by [`LokiSink::add`] because its line is over `max_line_bytes` and the policy is
/// `dead_letter`. The open batch is untouched.
#[derive(Debug, thiserror::Error)]
#[error("log line of {line_bytes} bytes exceeds max_line_bytes ({limit})")]
pub struct OversizedLine {
    /// The log's record.
    pub origin: Origin,
    /// Length of its line.
    pub line_bytes: usize,
    /// The configured limit.
    pub limit: usize,
    /// The whole entry as one dead-letter JSON line, in the shape of
    /// `BatchOutcome::Rejected::payload`.
    pub payload: Vec<u8>,
}

/// A log's tenant: the configured one (shared) or one read from the record.
enum Tenant<'a> {
    Shared(Arc<str>),
    Field(Cow<'a, str>),
}

impl Tenant<'_> {
    fn as_str(&self) -> &str {
        match self {
            Tenant::Shared(t) => t,
            Tenant::Field(t) => t,
        }
    }
    fn into_arc(self) -> Arc<str> {
        match self {
            Tenant::Shared(t) => t,
            Tenant::Field(t) => Arc::from(&*t),
        }
    }
}

/// The tenant of each log.
#[derive(Debug)]
enum TenantMode {
    None,
    Static(Arc<str>),
    Field { field: String, default: Arc<str> },
}

/// Builds batches from joined logs. Holds at most one open batch.
#[derive(Debug)]
pub struct LokiSink {
    labels: Vec<(Arc<str>, LabelValue)>,
    metadata: Vec<(MetadataField, Arc<str>)>,
    line: LineFormat,
    tenant: TenantMode,
    max_line_bytes: usize,
    oversize: OversizePolicy,
    max_bytes: usize,
    max_entries: usize,
    max_wait: Duration,
    open: Option<LokiBatch>,
    /// Label string → stream index in the open batch.
    index: HashMap<Box<str>, usize>,
    /// Reused label string.
    scratch: String,
    /// Attribute name → its metadata name (`http.route` → `http_route`).
    names: HashMap<Box<str>, Arc<str>>,
    truncated_name: Arc<str>,
    client: LokiClient,
}

impl LokiSink {
    /// Validates `cfg` (keys reported under `loki.`; the pipeline validates under its own prefix
    /// first), reads the secrets and builds the HTTP client.
    pub fn new(cfg: LokiConfig) -> Result<Self, LokiError> {
        cfg.validate("outputs.loki")?;
        let client = LokiClient::new(&cfg)?;
        let tenant = match &cfg.tenant {
            None => TenantMode::None,
            Some(t) => match (&t.id, &t.field) {
                (Some(id), _) => TenantMode::Static(Arc::from(id.as_str())),
                (None, Some(field)) => TenantMode::Field {
                    field: field.clone(),
                    default: Arc::from(t.default.as_deref().unwrap_or("fake")),
                },
                (None, None) => TenantMode::None,
            },
        };
        Ok(LokiSink {
            labels: cfg
                .labels
                .iter()
                .map(|LabelSource { name, value }| (Arc::from(name.as_str()), value.clone()))
                .collect(),
            metadata: cfg
                .structured_metadata
                .iter()
                .map(|m| (*m, Arc::from(m.as_str())))
                .collect(),
            line: cfg.line,
            tenant,
            max_line_bytes: cfg.max_line_bytes.as_usize(),
            oversize: cfg.oversize,
            max_bytes: cfg.batch.max_bytes.as_usize(),
            max_entries: cfg.batch.max_entries,
            max_wait: cfg.batch.max_wait,
            open: None,
            index: HashMap::new(),
            scratch: String::new(),
            names: HashMap::new(),
            truncated_name: Arc::from("line_truncated_bytes"),
            client,
        })
    }

    /// A handle on the HTTP client: cheap to clone, `Send + 'static`.
    pub fn client(&self) -> LokiClient {
        self.client.clone()
    }

    /// Entries in the open batch.
    pub fn open_entries(&self) -> usize {
        self.open.as_ref().map_or(0, |b| b.entries)
    }

    /// Adds one enriched log to the open batch. Returns `Ok(Some(batch))` when a batch closed
    /// (full, or of another tenant), `Ok(None)` when the log is buffered, and
    /// `Err(OversizedLine)` when its line is over `max_line_bytes` with `oversize: dead_letter`
    /// (the log is not added; dead-letter it and count it as done).
    pub fn add(&mut self, joined: &JoinedLog) -> Result<Option<LokiBatch>, OversizedLine> {
        let log = &joined.log;
        let mut line = render_line(joined, self.line);
        let mut truncated = None;
        if line.len() > self.max_line_bytes {
            match self.oversize {
                OversizePolicy::Truncate => {
                    truncated = Some(truncate_line(&mut line, self.max_line_bytes))
                }
                OversizePolicy::DeadLetter => return Err(self.oversized(joined, line)),
            }
        }

        // The label string (no allocation when the stream exists).
        let mut scratch = std::mem::take(&mut self.scratch);
        write_label_string(
            &mut scratch,
            self.labels
                .iter()
                .map(|(n, v)| (&**n, label_value(v, joined))),
        );

        let tenant = self.tenant_of(joined);
        let metadata = self.metadata_of(joined, truncated);
        let entry_bytes = line.len()
            + ENTRY_OVERHEAD
            + metadata
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        let stream_bytes = scratch.len() + ENTRY_OVERHEAD;

        let mut closed = None;
        if let Some(open) = &self.open {
            let new_stream = !self.index.contains_key(scratch.as_str());
            let grown = open.bytes + entry_bytes + if new_stream { stream_bytes } else { 0 };
            if open.tenant.as_deref() != tenant.as_ref().map(Tenant::as_str)
                || grown > self.max_bytes
            {
                closed = self.take();
            }
        }
        let batch = self.open.get_or_insert_with(|| LokiBatch {
            tenant: tenant.map(Tenant::into_arc),
            streams: Vec::new(),
            entries: 0,
            bytes: 0,
            opened_at: Instant::now(),
        });
        let idx = match self.index.get(scratch.as_str()) {
            Some(&i) => i,
            None => {
                let pairs = self
                    .labels
                    .iter()
                    .map(|(n, v)| (n.clone(), label_value(v, joined).into_owned()))
                    .collect();
                batch.streams.push(Stream {
                    labels: scratch.clone(),
                    pairs,
                    entries: Vec::new(),
                });
                batch.bytes += stream_bytes;
                self.index
                    .insert(scratch.as_str().into(), batch.streams.len() - 1);
                batch.streams.len() - 1
            }
        };
        batch.streams[idx].entries.push(Entry {
            ts: log.timestamp_unix_nanos,
            line,
            metadata,
            origin: log.origin,
        });
        batch.entries += 1;
        batch.bytes += entry_bytes;
        let full = batch.entries >= self.max_entries || batch.bytes >= self.max_bytes;
        self.scratch = scratch;
        if closed.is_none() && full {
            closed = self.take();
        }
        Ok(closed)
    }

    /// The open batch if `batch.max_wait` has passed since its first entry (call on a timer), or
    /// unconditionally when `force` (shutdown, partition revoked).
    pub fn take_due(&mut self, now: Instant, force: bool) -> Option<LokiBatch> {
        let due = self
            .open
            .as_ref()
            .is_some_and(|b| force || now.saturating_duration_since(b.opened_at) >= self.max_wait);
        if due {
            self.take()
        } else {
            None
        }
    }

    /// When the open batch becomes due, for the pipeline's timer.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.as_ref().map(|b| b.opened_at + self.max_wait)
    }

    fn take(&mut self) -> Option<LokiBatch> {
        self.index.clear();
        self.open.take()
    }

    fn tenant_of<'a>(&self, joined: &'a JoinedLog) -> Option<Tenant<'a>> {
        match &self.tenant {
            TenantMode::None => None,
            TenantMode::Static(t) => Some(Tenant::Shared(t.clone())),
            TenantMode::Field { field, default } => Some(
                log_field(&joined.log.fields, field)
                    .filter(|t| super::config::is_tenant_id(t))
                    .map_or_else(|| Tenant::Shared(default.clone()), Tenant::Field),
            ),
        }
    }

    fn attr_name(&mut self, raw: &str) -> Arc<str> {
        if let Some(n) = self.names.get(raw) {
            return n.clone();
        }
        let clean: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let clean: Arc<str> = if clean.starts_with(|c: char| c.is_ascii_digit()) {
            Arc::from(format!("_{clean}"))
        } else {
            Arc::from(clean)
        };
        if self.names.len() < NAME_CACHE_CAP {
            self.names.insert(raw.into(), clean.clone());
        }
        clean
    }

    fn metadata_of(
        &mut self,
        joined: &JoinedLog,
        truncated: Option<usize>,
    ) -> Vec<(Arc<str>, String)> {
        let log = &joined.log;
        let span = joined.span.as_deref();
        let trace = joined.trace.as_ref();
        let mut out: Vec<(Arc<str>, String)> = Vec::with_capacity(self.metadata.len() + 1);
        let fields = std::mem::take(&mut self.metadata);
        for (field, name) in &fields {
            let sp = |f: fn(&SpanSummary) -> Option<String>| span.and_then(f);
            let value: Option<String> = match field {
                MetadataField::TraceId => log.trace_id.map(|t| t.to_hex().to_string()),
                MetadataField::SpanId => log.span_id.map(|s| s.to_hex().to_string()),
                MetadataField::ParentSpanId => {
                    sp(|s| s.parent_span_id.map(|p| p.to_hex().to_string()))
                }
                MetadataField::SpanName => sp(|s| Some(s.name.to_string())),
                MetadataField::SpanKind => sp(|s| Some(s.kind.as_str().to_string())),
                MetadataField::SpanStatus => sp(|s| Some(s.status.as_str().to_string())),
                MetadataField::SpanStatusMessage => {
                    sp(|s| s.status_message.as_deref().map(String::from))
                }
                MetadataField::SpanDurationMs => sp(|s| Some(format_ms(s.duration_nanos()))),
                MetadataField::SpanService => sp(|s| Some(s.service.to_string())),
                MetadataField::ExceptionType => {
                    sp(|s| s.exception_type.as_deref().map(String::from))
                }
                MetadataField::RootService => {
                    trace.and_then(|t| t.root_service.as_deref().map(String::from))
                }
                MetadataField::RootOperation => {
                    trace.and_then(|t| t.root_operation.as_deref().map(String::from))
                }
                MetadataField::TraceError => trace.map(|t| t.error.to_string()),
                MetadataField::TraceSpanCount => trace.map(|t| t.span_count.to_string()),
                MetadataField::JoinOutcome => Some(joined.outcome.as_str().to_string()),
                MetadataField::JoinReason => Some(joined.reason.as_str().to_string()),
                MetadataField::Severity => log.severity.as_deref().map(String::from),
                MetadataField::TimestampSource => Some(
                    match log.timestamp_source {
                        crate::model::TimestampSource::Record => "record",
                        crate::model::TimestampSource::Kafka => "kafka",
                        crate::model::TimestampSource::ClampedFuture => "clamped_future",
                    }
                    .to_string(),
                ),
                MetadataField::LogFormat => Some(log.format.as_str().to_string()),
                MetadataField::KafkaOffset => {
                    Some(format!("{}:{}", log.origin.partition, log.origin.offset))
                }
                MetadataField::SpanAttributes => {
                    if let Some(s) = span {
                        for (k, v) in &s.attributes {
                            let n = self.attr_name(k);
                            out.push((n, v.to_label()));
                        }
                    }
                    None
                }
                MetadataField::LogAttributes => {
                    match &log.fields {
                        LogFields::Attributes(a) => {
                            for (k, v) in a {
                                let n = self.attr_name(k);
                                out.push((n, v.to_label()));
                            }
                        }
                        LogFields::Pairs(p) => {
                            for (k, v) in p {
                                let n = self.attr_name(k);
                                out.push((n, v.to_string()));
                            }
                        }
                        LogFields::None | LogFields::RawJson(_) => {}
                    }
                    None
                }
            };
            if let Some(v) = value {
                out.push((name.clone(), v));
            }
        }
        self.metadata = fields;
        if let Some(n) = truncated {
            out.push((self.truncated_name.clone(), n.to_string()));
        }
        out.retain(|(_, v)| !v.is_empty());
        out.truncate(MAX_METADATA_ENTRIES);
        for (_, v) in &mut out {
            if v.len() > MAX_METADATA_VALUE_BYTES {
                truncate_line(v, MAX_METADATA_VALUE_BYTES);
            }
        }
        out
    }

    fn oversized(&mut self, joined: &JoinedLog, line: String) -> OversizedLine {
        let line_bytes = line.len();
        let labels: Vec<(Arc<str>, String)> = self
            .labels
            .iter()
            .map(|(n, v)| (n.clone(), label_value(v, joined).into_owned()))
            .collect();
        let tenant = self.tenant_of(joined).map(Tenant::into_arc);
        let entry = Entry {
            ts: joined.log.timestamp_unix_nanos,
            line,
            metadata: self.metadata_of(joined, None),
            origin: joined.log.origin,
        };
        let origin = entry.origin;
        let mut payload = Vec::with_capacity(line_bytes + 256);
        event::write_dead_letter_line(
            tenant.as_deref(),
            &labels,
            &entry.into_wire(),
            origin,
            &mut payload,
        );
        OversizedLine {
            origin,
            line_bytes,
            limit: self.max_line_bytes,
            payload,
        }
    }
}

impl Entry {
    pub(crate) fn into_wire(self) -> event::EntryAdapter {
        event::EntryAdapter {
            timestamp: Some(event::Timestamp::from_unix_nanos(self.ts)),
            line: self.line,
            structured_metadata: self
                .metadata
                .into_iter()
                .map(|(name, value)| event::LabelPairAdapter {
                    name: name.to_string(),
                    value,
                })
                .collect(),
        }
    }
}

/// `12.5` (milliseconds, up to microsecond precision, no trailing zeros).
fn format_ms(nanos: i64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", nanos / 1_000_000);
    let frac = (nanos % 1_000_000) / 1000;
    if frac > 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// A label's value for `joined`: never empty, at most 2048 bytes.
pub(crate) fn label_value<'a>(v: &'a LabelValue, joined: &'a JoinedLog) -> Cow<'a, str> {
    let span = joined.span.as_deref();
    let value: Cow<'a, str> = match v {
        LabelValue::Static(s) => Cow::Borrowed(s),
        LabelValue::Field(f) => {
            log_field(&joined.log.fields, f).unwrap_or(Cow::Borrowed("unknown"))
        }
        LabelValue::From(from) => match from {
            LabelFrom::Service => Cow::Borrowed(
                joined
                    .log
                    .service
                    .as_deref()
                    .or(span.map(|s| &*s.service))
                    .unwrap_or("unknown_service"),
            ),
            LabelFrom::Level => Cow::Borrowed(normalize_level(joined.log.severity.as_deref())),
            LabelFrom::Outcome => Cow::Borrowed(joined.outcome.as_str()),
            LabelFrom::Reason => Cow::Borrowed(joined.reason.as_str()),
            LabelFrom::Format => Cow::Borrowed(joined.log.format.as_str()),
            LabelFrom::SpanName => Cow::Borrowed(span.map_or("none", |s| &*s.name)),
            LabelFrom::SpanKind => Cow::Borrowed(span.map_or("none", |s| s.kind.as_str())),
            LabelFrom::SpanStatus => Cow::Borrowed(span.map_or("none", |s| s.status.as_str())),
            LabelFrom::RootService => Cow::Borrowed(
                joined
                    .trace
                    .as_ref()
                    .and_then(|t| t.root_service.as_deref())
                    .unwrap_or("none"),
            ),
        },
    };
    if value.is_empty() {
        return Cow::Borrowed("unknown");
    }
    if value.len() > MAX_LABEL_VALUE_BYTES {
        let cut = floor_char_boundary(&value, MAX_LABEL_VALUE_BYTES);
        return Cow::Owned(value[..cut].to_string());
    }
    value
}

/// The severity folded to a small fixed set, so the `level` label stays low-cardinality.
pub(crate) fn normalize_level(sev: Option<&str>) -> &'static str {
    let Some(s) = sev else { return "unknown" };
    // OTLP severity texts may carry a number (`INFO2`, `ERROR3`).
    let s = s.trim().trim_end_matches(|c: char| c.is_ascii_digit());
    const TABLE: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("trc", "trace"),
        ("finest", "trace"),
        ("finer", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("fine", "debug"),
        ("d", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("informational", "info"),
        ("notice", "info"),
        ("i", "info"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("wrn", "warn"),
        ("w", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("eror", "error"),
        ("e", "error"),
        ("severe", "error"),
        ("critical", "critical"),
        ("crit", "critical"),
        ("alert", "critical"),
        ("emerg", "critical"),
        ("emergency", "critical"),
        ("fatal", "fatal"),
        ("ftl", "fatal"),
        ("panic", "fatal"),
        ("f", "fatal"),
    ];
    TABLE
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(s))
        .map_or("unknown", |(_, v)| v)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Cuts `line` to at most `max` bytes including a `…[truncated N bytes]` marker; returns N.
pub(crate) fn truncate_line(line: &mut String, max: usize) -> usize {
    let len = line.len();
    // The marker's length with the largest N possible (len).
    let reserve = "…[truncated  bytes]".len() + len.to_string().len();
    let cut = floor_char_boundary(line, max.saturating_sub(reserve));
    let removed = len - cut;
    line.truncate(cut);
    let _ = write!(line, "…[truncated {removed} bytes]");
    removed
}

/// The log line for `joined`.
fn render_line(joined: &JoinedLog, fmt: LineFormat) -> String {
    let log = &joined.log;
    match (fmt, &log.fields) {
        (LineFormat::Original, LogFields::RawJson(raw)) => raw.get().to_string(),
        (LineFormat::Original, LogFields::Pairs(pairs)) if !pairs.is_empty() => {
            let mut s = String::with_capacity(log.body.len() + 16 * pairs.len());
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push('=');
                if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
                    let _ = write!(s, "{:?}", &**v);
                } else {
                    s.push_str(v);
                }
            }
            s
        }
        _ => log.body.to_string(),
    }
}

/// A top-level field of the log record: a logfmt key, an OTLP attribute, or a JSON key (string,
/// number or bool values; objects and arrays are not a field value).
pub(crate) fn log_field<'a>(fields: &'a LogFields, name: &str) -> Option<Cow<'a, str>> {
    match fields {
        LogFields::None => None,
        LogFields::Pairs(p) => p
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| Cow::Borrowed(&**v)),
        LogFields::Attributes(a) => a.iter().find(|(k, _)| &**k == name).map(|(_, v)| match v {
            AttrValue::Str(s) => Cow::Borrowed(&**s),
            other => Cow::Owned(other.to_label()),
        }),
        LogFields::RawJson(raw) => json_top_level(raw.get(), name).map(Cow::Owned),
    }
}

/// Finds `name` among the top-level keys of the JSON object `json` without building a tree.
fn json_top_level(json: &str, name: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    struct Find<'n>(&'n str);
    struct KeyIs<'n>(&'n str);
    impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            struct V<'n>(&'n str);
            impl<'de> Visitor<'de> for V<'_> {
                type Value = bool;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E>(self, s: &str) -> Result<bool, E> {
                    Ok(s == self.0)
                }
            }
            d.deserialize_str(V(self.0))
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        B(bool),
        N(serde_json::Number),
        Other(IgnoredAny),
    }
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Option<String>, A::Error> {
            let mut found = None;
            while let Some(hit) = m.next_key_seed(KeyIs(self.0))? {
                if hit && found.is_none() {
                    found = match m.next_value::<Scalar>()? {
                        Scalar::S(s) => Some(s),
                        Scalar::B(b) => Some(b.to_string()),
                        Scalar::N(n) => Some(n.to_string()),
                        Scalar::Other(_) => None,
                    };
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de> DeserializeSeed<'de> for Find<'_> {
        type Value = Option<String>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    Find(name).deserialize(&mut de).ok().flatten()
}
