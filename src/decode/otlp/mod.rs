//! OTLP spans and logs, protobuf or JSON, into span summaries and log events.
//!
//! One Kafka record holds one `ExportTraceServiceRequest` / `ExportLogsServiceRequest`, which may
//! carry many spans of many traces (the Collector's exporter without `partition_traces_by_id`).
//! A span without a valid trace or span id cannot be joined and is skipped and counted, not
//! dead-lettered: the rest of the batch is good. A record that does not decode at all is the
//! caller's to dead-letter.

pub mod json;
mod scan;
pub mod wire;

pub use scan::ScanError;

use super::intern::Interner;
use super::DecodeError;
use crate::decode::ids::{span_id_from_bytes, trace_id_from_bytes};
use crate::model::{
    AttrValue, LogEvent, LogFields, LogFormat, Origin, SpanKind, SpanSummary, StatusCode,
    TimestampSource,
};
#[cfg(test)]
use bytes::Bytes;
#[cfg(test)]
use prost::Message;
use std::sync::Arc;

/// The resource attribute that names the service.
const SERVICE_NAME: &[u8] = b"service.name";
/// What the SDKs report when the resource names no service.
const UNKNOWN_SERVICE: &str = "unknown_service";

fn utf8(b: &[u8]) -> &str {
    // Invalid UTF-8 in a name is replaced rather than failing the whole batch.
    std::str::from_utf8(b).unwrap_or("\u{fffd}")
}

fn attr_value(v: &wire::AnyValue) -> Option<AttrValue> {
    use wire::any_value::Value;
    Some(match v.value.as_ref()? {
        Value::StringValue(s) => AttrValue::Str(String::from_utf8_lossy(s).into()),
        Value::BoolValue(b) => AttrValue::Bool(*b),
        Value::IntValue(i) => AttrValue::Int(*i),
        Value::DoubleValue(d) => AttrValue::Double(*d),
        Value::BytesValue(_) => return None,
    })
}

fn service_of(resource: Option<&wire::Resource>, interner: &mut Interner) -> Arc<str> {
    let name = resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVICE_NAME))
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            wire::any_value::Value::StringValue(s) => Some(utf8(s)),
            _ => None,
        })
        .unwrap_or(UNKNOWN_SERVICE);
    interner.intern(name)
}

/// Decodes span records into summaries, keeping the configured span attributes.
#[derive(Debug)]
pub struct SpanDecoder {
    interner: Interner,
    keep_attributes: Vec<Arc<str>>,
    /// The scanner's per-span scratch, kept to be reused.
    kept: Vec<Option<scan::Raw>>,
}

/// What one record yielded besides its spans.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanBatchStats {
    /// Spans skipped for an invalid trace or span id.
    pub invalid_ids: u32,
}

impl SpanDecoder {
    /// A decoder keeping `keep_attributes` of each span (e.g. `http.route`).
    pub fn new(keep_attributes: &[String], interner_cap: usize) -> Self {
        let mut interner = Interner::new(interner_cap);
        let keep_attributes = keep_attributes.iter().map(|k| interner.intern(k)).collect();
        SpanDecoder {
            interner,
            keep_attributes,
            kept: Vec::new(),
        }
    }

    /// Decodes an OTLP protobuf record, appending its spans to `out` (nothing if it fails).
    pub fn decode_proto(
        &mut self,
        record: &[u8],
        out: &mut Vec<SpanSummary>,
    ) -> Result<SpanBatchStats, DecodeError> {
        scan::Scan {
            record,
            interner: &mut self.interner,
            keep: &self.keep_attributes,
            kept: &mut self.kept,
            out,
        }
        .run()
        .map_err(DecodeError::ProtobufScan)
    }

    /// What `decode_proto` did before the scanner, and must still do: prost's messages, then
    /// `convert`. The tests compare the two.
    #[cfg(test)]
    pub(crate) fn decode_proto_via_prost(
        &mut self,
        record: Bytes,
        out: &mut Vec<SpanSummary>,
    ) -> Result<SpanBatchStats, DecodeError> {
        let req = wire::ExportTraceServiceRequest::decode(record).map_err(DecodeError::Protobuf)?;
        Ok(self.convert(&req, out))
    }

    /// Decodes an OTLP/JSON record, appending its spans to `out`.
    pub fn decode_json(
        &mut self,
        record: &[u8],
        out: &mut Vec<SpanSummary>,
    ) -> Result<SpanBatchStats, DecodeError> {
        let req = json::traces_from_json(record).map_err(DecodeError::Json)?;
        Ok(self.convert(&req, out))
    }

    /// Summaries of a decoded request: the JSON path's, and in the tests the reference for
    /// `scan`, which must yield the same from protobuf.
    fn convert(
        &mut self,
        req: &wire::ExportTraceServiceRequest,
        out: &mut Vec<SpanSummary>,
    ) -> SpanBatchStats {
        let mut stats = SpanBatchStats::default();
        for rs in &req.resource_spans {
            let service = service_of(rs.resource.as_ref(), &mut self.interner);
            for ss in &rs.scope_spans {
                out.reserve(ss.spans.len());
                for span in &ss.spans {
                    let (Some(trace_id), Some(span_id)) = (
                        trace_id_from_bytes(&span.trace_id),
                        span_id_from_bytes(&span.span_id),
                    ) else {
                        stats.invalid_ids += 1;
                        continue;
                    };
                    let status = span.status.as_ref();
                    let attributes = self
                        .keep_attributes
                        .iter()
                        .filter_map(|key| {
                            let kv = span
                                .attributes
                                .iter()
                                .find(|kv| kv.key.as_ref() == key.as_bytes())?;
                            Some((key.clone(), attr_value(kv.value.as_ref()?)?))
                        })
                        .collect();
                    let exception_type = span
                        .events
                        .iter()
                        .find(|e| e.name.as_ref() == b"exception")
                        .and_then(|e| {
                            e.attributes
                                .iter()
                                .find(|kv| kv.key.as_ref() == b"exception.type")
                        })
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            wire::any_value::Value::StringValue(s) => {
                                Some(self.interner.intern(utf8(s)))
                            }
                            _ => None,
                        });
                    out.push(SpanSummary {
                        trace_id,
                        span_id,
                        parent_span_id: span_id_from_bytes(&span.parent_span_id),
                        service: service.clone(),
                        name: self.interner.intern(utf8(&span.name)),
                        kind: SpanKind::from_otlp(span.kind),
                        status: StatusCode::from_otlp(status.map_or(0, |s| s.code)),
                        status_message: status
                            .filter(|s| !s.message.is_empty())
                            .map(|s| String::from_utf8_lossy(&s.message).into()),
                        start_unix_nanos: clamp_nanos(span.start_time_unix_nano),
                        end_unix_nanos: clamp_nanos(span.end_time_unix_nano),
                        exception_type,
                        attributes,
                    });
                }
            }
        }
        stats
    }
}

fn clamp_nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Converts OTLP log records into log events. `fallback_nanos` (the Kafka record time) stands in
/// for a record with neither time nor observed time.
pub fn otlp_logs(
    req: &wire::ExportLogsServiceRequest,
    format: LogFormat,
    origin: Origin,
    fallback_nanos: i64,
    interner: &mut Interner,
    out: &mut Vec<LogEvent>,
) {
    for rl in &req.resource_logs {
        let service = service_of(rl.resource.as_ref(), interner);
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let (timestamp_unix_nanos, timestamp_source) =
                    match (rec.time_unix_nano, rec.observed_time_unix_nano) {
                        (0, 0) => (fallback_nanos, TimestampSource::Kafka),
                        (0, observed) => (clamp_nanos(observed), TimestampSource::Record),
                        (t, _) => (clamp_nanos(t), TimestampSource::Record),
                    };
                let severity = if rec.severity_text.is_empty() {
                    severity_from_number(rec.severity_number).map(Into::into)
                } else {
                    Some(String::from_utf8_lossy(&rec.severity_text).into())
                };
                let body: Box<str> = match rec.body.as_ref().and_then(attr_value) {
                    Some(AttrValue::Str(s)) => s,
                    Some(other) => other.to_label().into(),
                    None => "".into(),
                };
                let attributes: Vec<(Box<str>, AttrValue)> = rec
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((utf8(&kv.key).into(), attr_value(kv.value.as_ref()?)?)))
                    .collect();
                out.push(LogEvent {
                    timestamp_unix_nanos,
                    timestamp_source,
                    trace_id: trace_id_from_bytes(&rec.trace_id),
                    // OTLP carries 16 bytes: always a 128-bit id.
                    trace_id_width: crate::model::TraceIdWidth::Bits128,
                    span_id: span_id_from_bytes(&rec.span_id),
                    severity,
                    body,
                    service: Some(service.clone()),
                    fields: if attributes.is_empty() {
                        LogFields::None
                    } else {
                        LogFields::Attributes(attributes)
                    },
                    format,
                    origin,
                    ack: crate::sources::ack::Ack::detached(),
                });
            }
        }
    }
}

/// The OTLP severity number's short name (`SeverityNumber` ranges of four).
fn severity_from_number(n: i32) -> Option<&'static str> {
    Some(match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
