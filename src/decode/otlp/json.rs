//! OTLP/JSON, as the Collector's `otlp_json` encoding writes it, mapped onto the lean wire types
//! so that protobuf and JSON share one conversion into span summaries and log events.
//!
//! The OTLP/JSON rules that differ from a naive JSON mapping of the protos: ids are hex strings
//! (not base64), 64-bit integers may be strings or numbers, enums are numbers (names accepted
//! too), and keys are lowerCamelCase (snake_case accepted, as the spec asks receivers to).

use super::wire;
use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A hex id. One that is not hex (odd length, other characters, base64) becomes an empty id:
/// its span is skipped and counted as having an invalid id, as in protobuf, instead of failing
/// every span of the record.
fn hex_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
    if s.len() % 2 != 0 {
        return Ok(Bytes::new());
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    for pair in s.as_bytes().chunks_exact(2) {
        match (
            (pair[0] as char).to_digit(16),
            (pair[1] as char).to_digit(16),
        ) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Ok(Bytes::new()),
        }
    }
    Ok(Bytes::from(out))
}

fn string_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    let s: String = Deserialize::deserialize(d)?;
    Ok(Bytes::from(s))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString<'a> {
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(#[serde(borrow)] std::borrow::Cow<'a, str>),
}

fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Uint(u) => i64::try_from(u).map_err(de::Error::custom),
        IntOrString::Float(f) => Ok(f as i64),
        IntOrString::Str(s) => s.parse().map_err(de::Error::custom),
    }
}

fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => u64::try_from(i).map_err(de::Error::custom),
        IntOrString::Uint(u) => Ok(u),
        IntOrString::Float(f) => Ok(f as u64),
        IntOrString::Str(s) => s.parse().map_err(de::Error::custom),
    }
}

fn float64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i as f64),
        IntOrString::Uint(u) => Ok(u as f64),
        IntOrString::Float(f) => Ok(f),
        IntOrString::Str(s) => s.parse().map_err(de::Error::custom),
    }
}

fn enum_number<'de, D: Deserializer<'de>>(d: D, names: &[&str]) -> Result<i32, D::Error> {
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i as i32),
        IntOrString::Uint(u) => Ok(u as i32),
        IntOrString::Float(f) => Ok(f as i32),
        IntOrString::Str(s) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(&s))
            .map(|p| p as i32)
            .or_else(|| s.parse().ok())
            .ok_or_else(|| de::Error::custom(format!("unknown enum value {s:?}"))),
    }
}

const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn span_kind<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_number(d, SPAN_KINDS)
}
fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_number(d, STATUS_CODES)
}
fn severity_number<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    // Severity names (SEVERITY_NUMBER_INFO…) are rare in JSON; numbers are the spec's encoding.
    enum_number(d, &[])
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonAnyValue {
    #[serde(alias = "string_value", rename = "stringValue")]
    string_value: Option<String>,
    #[serde(alias = "bool_value", rename = "boolValue")]
    bool_value: Option<bool>,
    #[serde(
        alias = "int_value",
        rename = "intValue",
        deserialize_with = "opt_int64"
    )]
    int_value: Option<i64>,
    #[serde(
        alias = "double_value",
        rename = "doubleValue",
        deserialize_with = "opt_float64"
    )]
    double_value: Option<f64>,
    #[serde(alias = "bytes_value", rename = "bytesValue")]
    bytes_value: Option<String>,
}

fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}
fn opt_float64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    float64(d).map(Some)
}

impl From<JsonAnyValue> for wire::AnyValue {
    fn from(v: JsonAnyValue) -> Self {
        use wire::any_value::Value;
        let value = if let Some(s) = v.string_value {
            Some(Value::StringValue(Bytes::from(s)))
        } else if let Some(b) = v.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(Value::IntValue(i))
        } else if let Some(d) = v.double_value {
            Some(Value::DoubleValue(d))
        } else {
            v.bytes_value.map(|b| Value::BytesValue(Bytes::from(b)))
        };
        wire::AnyValue { value }
    }
}

#[derive(Deserialize)]
struct JsonKeyValue {
    #[serde(deserialize_with = "string_bytes")]
    key: Bytes,
    #[serde(default)]
    value: Option<JsonAnyValue>,
}

fn key_values(kvs: Vec<JsonKeyValue>) -> Vec<wire::KeyValue> {
    kvs.into_iter()
        .map(|kv| wire::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonResource {
    attributes: Vec<JsonKeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonStatus {
    #[serde(deserialize_with = "string_bytes")]
    message: Bytes,
    #[serde(deserialize_with = "status_code")]
    code: i32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonEvent {
    #[serde(deserialize_with = "string_bytes")]
    name: Bytes,
    attributes: Vec<JsonKeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonSpan {
    #[serde(alias = "trace_id", rename = "traceId", deserialize_with = "hex_bytes")]
    trace_id: Bytes,
    #[serde(alias = "span_id", rename = "spanId", deserialize_with = "hex_bytes")]
    span_id: Bytes,
    #[serde(
        alias = "parent_span_id",
        rename = "parentSpanId",
        deserialize_with = "hex_bytes"
    )]
    parent_span_id: Bytes,
    #[serde(deserialize_with = "string_bytes")]
    name: Bytes,
    #[serde(deserialize_with = "span_kind")]
    kind: i32,
    #[serde(
        alias = "start_time_unix_nano",
        rename = "startTimeUnixNano",
        deserialize_with = "uint64"
    )]
    start_time_unix_nano: u64,
    #[serde(
        alias = "end_time_unix_nano",
        rename = "endTimeUnixNano",
        deserialize_with = "uint64"
    )]
    end_time_unix_nano: u64,
    attributes: Vec<JsonKeyValue>,
    events: Vec<JsonEvent>,
    status: Option<JsonStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonScopeSpans {
    spans: Vec<JsonSpan>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonResourceSpans {
    resource: Option<JsonResource>,
    #[serde(alias = "scope_spans", rename = "scopeSpans")]
    scope_spans: Vec<JsonScopeSpans>,
}

#[derive(Deserialize)]
struct JsonTraces {
    #[serde(alias = "resource_spans", rename = "resourceSpans")]
    resource_spans: Vec<JsonResourceSpans>,
}

/// Parses an OTLP/JSON `ExportTraceServiceRequest` into the lean wire types.
pub fn traces_from_json(
    bytes: &[u8],
) -> Result<wire::ExportTraceServiceRequest, serde_json::Error> {
    let doc: JsonTraces = serde_json::from_slice(bytes)?;
    let resource_spans = doc
        .resource_spans
        .into_iter()
        .map(|rs| wire::ResourceSpans {
            resource: rs.resource.map(|r| wire::Resource {
                attributes: key_values(r.attributes),
            }),
            scope_spans: rs
                .scope_spans
                .into_iter()
                .map(|ss| wire::ScopeSpans {
                    spans: ss
                        .spans
                        .into_iter()
                        .map(|s| wire::Span {
                            trace_id: s.trace_id,
                            span_id: s.span_id,
                            parent_span_id: s.parent_span_id,
                            name: s.name,
                            kind: s.kind,
                            start_time_unix_nano: s.start_time_unix_nano,
                            end_time_unix_nano: s.end_time_unix_nano,
                            attributes: key_values(s.attributes),
                            events: s
                                .events
                                .into_iter()
                                .map(|e| wire::Event {
                                    name: e.name,
                                    attributes: key_values(e.attributes),
                                })
                                .collect(),
                            status: s.status.map(|st| wire::Status {
                                message: st.message,
                                code: st.code,
                            }),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(wire::ExportTraceServiceRequest { resource_spans })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonLogRecord {
    #[serde(
        alias = "time_unix_nano",
        rename = "timeUnixNano",
        deserialize_with = "uint64"
    )]
    time_unix_nano: u64,
    #[serde(
        alias = "observed_time_unix_nano",
        rename = "observedTimeUnixNano",
        deserialize_with = "uint64"
    )]
    observed_time_unix_nano: u64,
    #[serde(
        alias = "severity_number",
        rename = "severityNumber",
        deserialize_with = "severity_number"
    )]
    severity_number: i32,
    #[serde(
        alias = "severity_text",
        rename = "severityText",
        deserialize_with = "string_bytes"
    )]
    severity_text: Bytes,
    body: Option<JsonAnyValue>,
    attributes: Vec<JsonKeyValue>,
    #[serde(alias = "trace_id", rename = "traceId", deserialize_with = "hex_bytes")]
    trace_id: Bytes,
    #[serde(alias = "span_id", rename = "spanId", deserialize_with = "hex_bytes")]
    span_id: Bytes,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonScopeLogs {
    #[serde(alias = "log_records", rename = "logRecords")]
    log_records: Vec<JsonLogRecord>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonResourceLogs {
    resource: Option<JsonResource>,
    #[serde(alias = "scope_logs", rename = "scopeLogs")]
    scope_logs: Vec<JsonScopeLogs>,
}

#[derive(Deserialize)]
struct JsonLogs {
    #[serde(alias = "resource_logs", rename = "resourceLogs")]
    resource_logs: Vec<JsonResourceLogs>,
}

/// Parses an OTLP/JSON `ExportLogsServiceRequest` into the lean wire types.
pub fn logs_from_json(bytes: &[u8]) -> Result<wire::ExportLogsServiceRequest, serde_json::Error> {
    let doc: JsonLogs = serde_json::from_slice(bytes)?;
    let resource_logs = doc
        .resource_logs
        .into_iter()
        .map(|rl| wire::ResourceLogs {
            resource: rl.resource.map(|r| wire::Resource {
                attributes: key_values(r.attributes),
            }),
            scope_logs: rl
                .scope_logs
                .into_iter()
                .map(|sl| wire::ScopeLogs {
                    log_records: sl
                        .log_records
                        .into_iter()
                        .map(|l| wire::LogRecord {
                            time_unix_nano: l.time_unix_nano,
                            severity_number: l.severity_number,
                            severity_text: l.severity_text,
                            body: l.body.map(Into::into),
                            attributes: key_values(l.attributes),
                            trace_id: l.trace_id,
                            span_id: l.span_id,
                            observed_time_unix_nano: l.observed_time_unix_nano,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(wire::ExportLogsServiceRequest { resource_logs })
}
