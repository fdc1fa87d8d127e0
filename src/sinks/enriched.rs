//! The enriched log as JSON: the log, its join outcome, and its span's and trace's context.
//!
//! Shape (fields absent when unknown; `golden` test pins it):
//! ```json
//! {"timestamp":"…Z","severity":"ERROR","body":"…","service":"checkout",
//!  "trace_id":"…","span_id":"…",
//!  "join":{"outcome":"matched_span","reason":"span_arrived","id_match":"full","timestamp_source":"record"},
//!  "span":{"span_id":"…","parent_span_id":"…","service":"…","name":"…","kind":"SPAN_KIND_SERVER",
//!          "status":"STATUS_CODE_ERROR","status_message":"…","exception_type":"…",
//!          "start":"…Z","duration_ms":12.5,"attributes":{"http.route":"/cart"}},
//!  "trace":{"root_service":"…","root_operation":"…","error":true,"span_count":4},
//!  "log":{"format":"json","fields":{…the original object…}},
//!  "source":{"topic":"app_logs","partition":0,"offset":17}}
//! ```
//! Serialised straight into a reusable buffer from borrowed views: no intermediate
//! `serde_json::Value`, and the original JSON object of a JSON log is copied verbatim.

use crate::model::{
    AttrValue, JoinedLog, LogFields, LogFormat, SpanSummary, TimestampSource, TraceContext,
};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

struct Rfc3339(i64);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(rfc3339_nanos(self.0, &mut [0; 30]))
    }
}

/// `nanos` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC), written into `buf`.
/// What chrono's `format("%Y-%m-%dT%H:%M:%S%.9fZ")` writes, without parsing the format for every
/// timestamp: that parse and its formatter were over a third of encoding a log. chrono still
/// does the calendar. An `i64` of nanoseconds spans the years 1677 to 2262, always four digits.
fn rfc3339_nanos(nanos: i64, buf: &mut [u8; 30]) -> &str {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_nanos(nanos);
    *buf = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, t.year().unsigned_abs());
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 9, t.nanosecond());
    // ASCII digits and separators.
    std::str::from_utf8(&buf[..]).unwrap_or("1970-01-01T00:00:00.000000000Z")
}

struct Hex<'a>(&'a str);
impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

#[derive(Serialize)]
struct Join {
    outcome: &'static str,
    reason: &'static str,
    /// Matched outcomes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    id_match: Option<&'static str>,
    timestamp_source: TimestampSource,
}

struct Attributes<'a>(&'a [(std::sync::Arc<str>, AttrValue)]);
impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

struct SpanView<'a>(&'a SpanSummary);
impl Serialize for SpanView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sp = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("span_id", &Hex(&sp.span_id.to_hex()))?;
        if let Some(p) = sp.parent_span_id {
            m.serialize_entry("parent_span_id", &Hex(&p.to_hex()))?;
        }
        m.serialize_entry("service", &*sp.service)?;
        m.serialize_entry("name", &*sp.name)?;
        m.serialize_entry("kind", sp.kind.as_str())?;
        m.serialize_entry("status", sp.status.as_str())?;
        if let Some(msg) = &sp.status_message {
            m.serialize_entry("status_message", &**msg)?;
        }
        if let Some(e) = &sp.exception_type {
            m.serialize_entry("exception_type", &**e)?;
        }
        m.serialize_entry("start", &Rfc3339(sp.start_unix_nanos))?;
        m.serialize_entry("duration_ms", &(sp.duration_nanos() as f64 / 1e6))?;
        if !sp.attributes.is_empty() {
            m.serialize_entry("attributes", &Attributes(&sp.attributes))?;
        }
        m.end()
    }
}

struct TraceView<'a>(&'a TraceContext);
impl Serialize for TraceView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = &t.root_service {
            m.serialize_entry("root_service", &**v)?;
        }
        if let Some(v) = &t.root_operation {
            m.serialize_entry("root_operation", &**v)?;
        }
        m.serialize_entry("error", &t.error)?;
        m.serialize_entry("span_count", &t.span_count)?;
        m.end()
    }
}

struct LogView<'a>(LogFormat, &'a LogFields);
impl Serialize for LogView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("format", self.0.as_str())?;
        match self.1 {
            LogFields::None => {}
            LogFields::RawJson(raw) => m.serialize_entry("fields", raw)?,
            LogFields::Pairs(pairs) => {
                struct P<'a>(&'a [(Box<str>, Box<str>)]);
                impl Serialize for P<'_> {
                    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let mut m = s.serialize_map(Some(self.0.len()))?;
                        for (k, v) in self.0 {
                            m.serialize_entry(&**k, &**v)?;
                        }
                        m.end()
                    }
                }
                m.serialize_entry("fields", &P(pairs))?
            }
            LogFields::Attributes(attrs) => {
                struct A<'a>(&'a [(Box<str>, AttrValue)]);
                impl Serialize for A<'_> {
                    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let mut m = s.serialize_map(Some(self.0.len()))?;
                        for (k, v) in self.0 {
                            m.serialize_entry(&**k, v)?;
                        }
                        m.end()
                    }
                }
                m.serialize_entry("attributes", &A(attrs))?
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Source<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

/// Appends the enriched JSON of `joined` to `buf`. `topic_name` maps the origin's topic index.
pub fn encode(joined: &JoinedLog, topic_name: &str, buf: &mut Vec<u8>) {
    let log = &joined.log;
    let mut ser = serde_json::Serializer::new(&mut *buf);
    let result = (|| {
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("timestamp", &Rfc3339(log.timestamp_unix_nanos))?;
        if let Some(sev) = &log.severity {
            m.serialize_entry("severity", &**sev)?;
        }
        m.serialize_entry("body", &*log.body)?;
        if let Some(svc) = &log.service {
            m.serialize_entry("service", &**svc)?;
        }
        if let Some(t) = log.trace_id {
            m.serialize_entry("trace_id", &Hex(&t.to_hex()))?;
        }
        if let Some(sid) = log.span_id {
            m.serialize_entry("span_id", &Hex(&sid.to_hex()))?;
        }
        m.serialize_entry(
            "join",
            &Join {
                outcome: joined.outcome.as_str(),
                reason: joined.reason.as_str(),
                id_match: joined.id_match().map(|m| m.as_str()),
                timestamp_source: log.timestamp_source,
            },
        )?;
        if let Some(span) = &joined.span {
            m.serialize_entry("span", &SpanView(span))?;
        }
        if let Some(trace) = &joined.trace {
            m.serialize_entry("trace", &TraceView(trace))?;
        }
        m.serialize_entry("log", &LogView(log.format, &log.fields))?;
        m.serialize_entry(
            "source",
            &Source {
                topic: topic_name,
                partition: log.origin.partition,
                offset: log.origin.offset,
            },
        )?;
        SerializeMap::end(m)
    })();
    // Serialising into a Vec cannot fail: every value is a string, number, bool or valid raw JSON.
    debug_assert!(result.is_ok());
}

#[cfg(test)]
mod tests;
