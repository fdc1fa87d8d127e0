//! The values that flow between the stages: ids, span summaries, log events and join outcomes.
//!
//! Ids are fixed-size byte arrays, not strings: they are compared and hashed on every record, and
//! rendered as hex only at the edge. A span summary keeps what the join and the metrics use, not
//! the whole OTLP span; service and span names are interned (`Arc<str>`) because a handful of
//! names repeat across millions of spans.

use std::fmt;
use std::sync::Arc;

/// A W3C / OpenTelemetry trace id. The all-zero id is invalid and never constructed by the decoders.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// A W3C / OpenTelemetry span id. The all-zero id is invalid and never constructed by the decoders.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

impl TraceId {
    /// From 16 bytes; `None` for the all-zero (invalid) id or a slice of another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 16] = bytes.try_into().ok()?;
        (arr != [0; 16]).then_some(TraceId(arr))
    }
    /// Lowercase hex, 32 characters, without allocating.
    pub fn to_hex(&self) -> HexBuf<32> {
        let mut buf = [0u8; 32];
        write_hex(&self.0, &mut buf);
        HexBuf(buf)
    }
    /// The low 64 bits: all a 64-bit id (Datadog, B3, Jaeger) has of a 128-bit one.
    pub fn low64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(b)
    }
    /// A 64-bit id as 128 bits, zero-padded on the left (how OpenTelemetry's Datadog and
    /// Zipkin bridges widen it); `None` for 0.
    pub fn from_low64(low: u64) -> Option<Self> {
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&low.to_be_bytes());
        Self::from_slice(&b)
    }
    /// Whether the high 64 bits are zero, as in a widened 64-bit id.
    pub fn high_is_zero(&self) -> bool {
        self.0[..8] == [0; 8]
    }
}

/// How many bits of trace id a log record carried.
///
/// A 64-bit id (Datadog's decimal `dd.trace_id`, 16 hex digits of B3, Zipkin or Jaeger) is kept
/// zero-padded in [`LogEvent::trace_id`]; the width says so, because padding cannot be told
/// from a 128-bit id whose first half happens to be zero. The join matches a 64-bit id against
/// the low 64 bits of the traces it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TraceIdWidth {
    /// 128 bits as written (OpenTelemetry, W3C, X-Ray, Google Cloud, OTLP records), or no id.
    #[default]
    Bits128,
    /// Only 64 bits were written.
    Bits64,
}

impl SpanId {
    /// From 8 bytes; `None` for the all-zero (invalid) id or a slice of another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 8] = bytes.try_into().ok()?;
        (arr != [0; 8]).then_some(SpanId(arr))
    }
    /// Lowercase hex, 16 characters, without allocating.
    pub fn to_hex(&self) -> HexBuf<16> {
        let mut buf = [0u8; 16];
        write_hex(&self.0, &mut buf);
        HexBuf(buf)
    }
}

/// Hex digits on the stack; derefs to `str`.
#[derive(Clone, Copy)]
pub struct HexBuf<const N: usize>([u8; N]);

impl<const N: usize> std::ops::Deref for HexBuf<N> {
    type Target = str;
    fn deref(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// OTLP span kind, rendered as the Collector's spanmetrics connector renders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED`
    #[default]
    Unspecified,
    /// `SPAN_KIND_INTERNAL`
    Internal,
    /// `SPAN_KIND_SERVER`
    Server,
    /// `SPAN_KIND_CLIENT`
    Client,
    /// `SPAN_KIND_PRODUCER`
    Producer,
    /// `SPAN_KIND_CONSUMER`
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number; unknown numbers map to `Unspecified`.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
    /// The OTLP enum name, e.g. `SPAN_KIND_SERVER`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
            SpanKind::Internal => "SPAN_KIND_INTERNAL",
            SpanKind::Server => "SPAN_KIND_SERVER",
            SpanKind::Client => "SPAN_KIND_CLIENT",
            SpanKind::Producer => "SPAN_KIND_PRODUCER",
            SpanKind::Consumer => "SPAN_KIND_CONSUMER",
        }
    }
    /// Parses the OTLP enum name or its short form (`server`), case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_uppercase();
        let s = s.strip_prefix("SPAN_KIND_").unwrap_or(&s);
        Some(match s {
            "UNSPECIFIED" => SpanKind::Unspecified,
            "INTERNAL" => SpanKind::Internal,
            "SERVER" => SpanKind::Server,
            "CLIENT" => SpanKind::Client,
            "PRODUCER" => SpanKind::Producer,
            "CONSUMER" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

/// OTLP span status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET`
    #[default]
    Unset,
    /// `STATUS_CODE_OK`
    Ok,
    /// `STATUS_CODE_ERROR`
    Error,
}

impl StatusCode {
    /// From the OTLP enum number; unknown numbers map to `Unset`.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
    /// The OTLP enum name, e.g. `STATUS_CODE_ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "STATUS_CODE_UNSET",
            StatusCode::Ok => "STATUS_CODE_OK",
            StatusCode::Error => "STATUS_CODE_ERROR",
        }
    }
}

/// A scalar attribute value kept from a span or an OTLP log record.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(Box<str>),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// A boolean.
    Bool(bool),
}

impl AttrValue {
    /// The value as a float, for numeric predicates (`http.response.status_code >= 500`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(i) => Some(*i as f64),
            AttrValue::Double(d) => Some(*d),
            AttrValue::Str(s) => s.parse().ok(),
            AttrValue::Bool(_) => None,
        }
    }
    /// Rendered as a label value would be.
    pub fn to_label(&self) -> String {
        match self {
            AttrValue::Str(s) => s.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Double(d) => d.to_string(),
            AttrValue::Bool(b) => b.to_string(),
        }
    }
    fn heap_bytes(&self) -> usize {
        match self {
            AttrValue::Str(s) => s.len(),
            _ => 0,
        }
    }
}

impl serde::Serialize for AttrValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::Str(v) => s.serialize_str(v),
            AttrValue::Int(v) => s.serialize_i64(*v),
            AttrValue::Double(v) => s.serialize_f64(*v),
            AttrValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

/// Where a record came from: enough to commit its offset and to name it in a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Index of the input topic in the pipeline's topic table (0 = spans, 1.. = log topics).
    pub topic: u16,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

/// What the join keeps of one span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanSummary {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// `service.name` of the span's resource (`unknown_service` when absent, as the SDKs do).
    pub service: Arc<str>,
    /// Span name (the operation).
    pub name: Arc<str>,
    /// Span kind.
    pub kind: SpanKind,
    /// Status code.
    pub status: StatusCode,
    /// Status message, when set.
    pub status_message: Option<Box<str>>,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_unix_nanos: i64,
    /// End time, nanoseconds since the Unix epoch: the span's event time.
    pub end_unix_nanos: i64,
    /// `exception.type` of the span's first exception event, if any.
    pub exception_type: Option<Arc<str>>,
    /// The span attributes named in the config (`join.span_attributes`), in config order.
    pub attributes: Vec<(Arc<str>, AttrValue)>,
}

impl SpanSummary {
    /// Duration in nanoseconds (0 if the end precedes the start).
    pub fn duration_nanos(&self) -> i64 {
        (self.end_unix_nanos - self.start_unix_nanos).max(0)
    }
    /// The span's attribute `key`, if it was kept.
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }
    /// Approximate heap footprint, for the join's byte bound.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.status_message.as_ref().map_or(0, |m| m.len())
            + self.attributes.len() * std::mem::size_of::<(Arc<str>, AttrValue)>()
            + self
                .attributes
                .iter()
                .map(|(_, v)| v.heap_bytes())
                .sum::<usize>()
    }
}

/// The input shape a log record was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// OTLP `ExportLogsServiceRequest`, protobuf.
    OtlpProto,
    /// OTLP `ExportLogsServiceRequest`, JSON.
    OtlpJson,
    /// A JSON object per line.
    Json,
    /// logfmt `key=value` pairs.
    Logfmt,
    /// Plain text.
    Text,
}

impl LogFormat {
    /// The snake_case name used in config and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::OtlpProto => "otlp_proto",
            LogFormat::OtlpJson => "otlp_json",
            LogFormat::Json => "json",
            LogFormat::Logfmt => "logfmt",
            LogFormat::Text => "text",
        }
    }
}

/// The fields of a log record beyond the ones the join reads, kept for the enriched output.
#[derive(Clone, Debug, Default)]
pub enum LogFields {
    /// Nothing beyond the message (plain text).
    #[default]
    None,
    /// The original JSON object, written back verbatim (no re-encoding on the hot path).
    RawJson(Box<serde_json::value::RawValue>),
    /// logfmt pairs in input order.
    Pairs(Vec<(Box<str>, Box<str>)>),
    /// OTLP log record attributes.
    Attributes(Vec<(Box<str>, AttrValue)>),
}

impl LogFields {
    fn approx_bytes(&self) -> usize {
        match self {
            LogFields::None => 0,
            LogFields::RawJson(r) => r.get().len(),
            LogFields::Pairs(p) => p.iter().map(|(k, v)| k.len() + v.len() + 32).sum(),
            LogFields::Attributes(a) => a.iter().map(|(k, v)| k.len() + v.heap_bytes() + 40).sum(),
        }
    }
}

/// Why a record's event time is not the one it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// The record's own timestamp.
    #[default]
    Record,
    /// The record had none (or none that parsed): the Kafka record timestamp was used.
    Kafka,
    /// The record's timestamp was too far in the future and was replaced by the arrival time.
    ClampedFuture,
}

/// One log record, decoded and normalised.
#[derive(Clone, Debug)]
pub struct LogEvent {
    /// Event time, nanoseconds since the Unix epoch.
    pub timestamp_unix_nanos: i64,
    /// Where the event time came from.
    pub timestamp_source: TimestampSource,
    /// Normalised trace id, if the record had a valid one. A 64-bit id is zero-padded here until
    /// the join finds the trace it belongs to, then rewritten to that trace's full id.
    pub trace_id: Option<TraceId>,
    /// Whether the record's trace id had only 64 bits.
    pub trace_id_width: TraceIdWidth,
    /// Normalised span id, if the record had a valid one.
    pub span_id: Option<SpanId>,
    /// Severity / level as written (`ERROR`, `warn`, …).
    pub severity: Option<Box<str>>,
    /// The message.
    pub body: Box<str>,
    /// Service that wrote the log, if the record says.
    pub service: Option<Arc<str>>,
    /// The rest of the record.
    pub fields: LogFields,
    /// The input shape.
    pub format: LogFormat,
    /// Where it came from.
    pub origin: Origin,
    /// Its record's acknowledgement token: the record's offset stays uncommitted while the log,
    /// or a sink's copy of it, is alive.
    pub ack: crate::sources::ack::Ack,
}

impl LogEvent {
    /// Approximate heap footprint, for the join's byte bound.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.body.len()
            + self.severity.as_ref().map_or(0, |s| s.len())
            + self.fields.approx_bytes()
    }
}

/// How a log left the join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinOutcome {
    /// Its own span (same span id) was found.
    MatchedSpan,
    /// Its span was not found, but spans of its trace were: enriched with the trace's context.
    MatchedTrace,
    /// It had a trace id but no span of that trace arrived in time.
    Unmatched,
    /// It had no (valid) trace id.
    NoTraceId,
}

impl JoinOutcome {
    /// All outcomes, for metric initialisation.
    pub const ALL: [JoinOutcome; 4] = [
        JoinOutcome::MatchedSpan,
        JoinOutcome::MatchedTrace,
        JoinOutcome::Unmatched,
        JoinOutcome::NoTraceId,
    ];
    /// The snake_case name used in output and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinOutcome::MatchedSpan => "matched_span",
            JoinOutcome::MatchedTrace => "matched_trace",
            JoinOutcome::Unmatched => "unmatched",
            JoinOutcome::NoTraceId => "no_trace_id",
        }
    }
}

/// Why a log left the join when it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmitReason {
    /// Its span was already in the state when it arrived.
    SpanPresent,
    /// Its span arrived while it waited.
    SpanArrived,
    /// The watermark passed its `max_wait`.
    WindowClosed,
    /// It arrived after the watermark had passed its `max_wait`: decided at once on what was left.
    Late,
    /// Its trace was evicted to keep the state within its bounds.
    Evicted,
    /// The processor was shutting down or giving up the partition.
    Drained,
    /// It carried no trace id: nothing to wait for.
    NoTraceId,
    /// Its 64-bit trace id is the low 64 bits of more than one trace in its window: not guessed.
    AmbiguousId,
}

impl EmitReason {
    /// The snake_case name used in output and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EmitReason::SpanPresent => "span_present",
            EmitReason::SpanArrived => "span_arrived",
            EmitReason::WindowClosed => "window_closed",
            EmitReason::Late => "late",
            EmitReason::Evicted => "evicted",
            EmitReason::Drained => "drained",
            EmitReason::NoTraceId => "no_trace_id",
            EmitReason::AmbiguousId => "ambiguous_id",
        }
    }
}

/// How a matched log's trace id met its trace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMatch {
    /// The ids are equal as written.
    Full,
    /// The log wrote 64 bits, the low half of its trace's 128-bit id; its `trace_id` was
    /// rewritten to the full id.
    Low64,
}

impl IdMatch {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            IdMatch::Full => "full",
            IdMatch::Low64 => "low64",
        }
    }
}

/// What the enriched log says about the trace as a whole.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TraceContext {
    /// Service of the trace's root span, if it was seen.
    pub root_service: Option<Arc<str>>,
    /// Name of the trace's root span, if it was seen.
    pub root_operation: Option<Arc<str>>,
    /// Whether any span of the trace seen in the window has status error.
    pub error: bool,
    /// How many spans of the trace were in the window.
    pub span_count: u32,
}

/// A log as it leaves the join.
#[derive(Clone, Debug)]
pub struct JoinedLog {
    /// The log.
    pub log: LogEvent,
    /// Its outcome.
    pub outcome: JoinOutcome,
    /// Why it left when it did.
    pub reason: EmitReason,
    /// The span whose context it carries: its own (matched_span) or the trace's root or earliest
    /// span (matched_trace).
    pub span: Option<Arc<SpanSummary>>,
    /// The trace's context (matched outcomes only).
    pub trace: Option<TraceContext>,
}

impl JoinedLog {
    /// How its trace id met the trace's, for matched outcomes (`None` otherwise). Derived, not
    /// stored: a 64-bit id the join rewrote is the only kind with a non-zero high half.
    pub fn id_match(&self) -> Option<IdMatch> {
        if !matches!(
            self.outcome,
            JoinOutcome::MatchedSpan | JoinOutcome::MatchedTrace
        ) {
            return None;
        }
        let rewritten = self.log.trace_id_width == TraceIdWidth::Bits64
            && self.log.trace_id.is_some_and(|t| !t.high_is_zero());
        Some(if rewritten {
            IdMatch::Low64
        } else {
            IdMatch::Full
        })
    }
}
