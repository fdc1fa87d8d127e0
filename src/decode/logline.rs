//! Log records into log events: OTLP logs, JSON objects, logfmt and plain text.
//!
//! Format `auto` sniffs each record: `{"resourceLogs"` is OTLP/JSON, another `{` a JSON line
//! (or, if it does not parse as an object, plain text), bytes that start like an OTLP protobuf
//! (field 1, length-delimited: 0x0a) are tried as OTLP protobuf, `key=value …` is logfmt,
//! anything else plain text. With an explicit format, a record that does not parse as that
//! format is an error (dead-lettered by the caller); in `auto`, only bytes that are neither OTLP
//! nor UTF-8 are (`invalid_protobuf` when they start like OTLP, else `invalid_utf8`).
//!
//! JSON lines are parsed shallowly: the top-level object into borrowed `(key, raw value)` pairs,
//! nested objects only when a dotted rule path needs them, and the object is kept verbatim for
//! the output, so a JSON line costs one parse and one copy.

use super::ids::{parse_span_id, parse_trace_id, parse_traceparent, IdEncoding};
use super::intern::Interner;
use super::otlp::{json as otlp_json, otlp_logs, wire};
use super::rules::{CompiledRules, FieldRef};
use super::time::parse_timestamp;
use super::DecodeError;
use crate::model::{LogEvent, LogFields, LogFormat, Origin, SpanId, TimestampSource, TraceId};
use bytes::Bytes;
use prost::Message;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The format configured for a logs topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputLogFormat {
    /// Sniff each record (see the module docs).
    #[default]
    Auto,
    /// OTLP `ExportLogsServiceRequest`, protobuf.
    OtlpProto,
    /// OTLP `ExportLogsServiceRequest`, JSON.
    OtlpJson,
    /// One JSON object per record.
    Json,
    /// One logfmt line per record.
    Logfmt,
    /// One plain-text line per record.
    Text,
}

/// Decodes log records; one per input stream, it owns its interner.
#[derive(Debug)]
pub struct LogDecoder {
    rules: Arc<CompiledRules>,
    interner: Interner,
}

/// Values found in a line, borrowed from it where possible.
#[derive(Default, Debug)]
struct Found<'a> {
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    timestamp: Option<Cow<'a, str>>,
    level: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    service: Option<Cow<'a, str>>,
}

impl<'a> Found<'a> {
    /// Takes from `other` what this has not found.
    fn fill_missing(&mut self, other: Found<'a>) {
        self.trace_id = self.trace_id.or(other.trace_id);
        self.span_id = self.span_id.or(other.span_id);
        self.timestamp = self.timestamp.take().or(other.timestamp);
        self.level = self.level.take().or(other.level);
        self.message = self.message.take().or(other.message);
        self.service = self.service.take().or(other.service);
    }

    fn into_owned(self) -> Found<'static> {
        let own = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        Found {
            trace_id: self.trace_id,
            span_id: self.span_id,
            timestamp: own(self.timestamp),
            level: own(self.level),
            message: own(self.message),
            service: own(self.service),
        }
    }
}

impl LogDecoder {
    /// A decoder applying `rules`.
    pub fn new(rules: Arc<CompiledRules>, interner_cap: usize) -> Self {
        LogDecoder {
            rules,
            interner: Interner::new(interner_cap),
        }
    }

    /// Decodes one record, appending its log events to `out` (OTLP records may hold many).
    /// `kafka_time_nanos` stands in for a missing timestamp.
    pub fn decode(
        &mut self,
        record: Bytes,
        format: InputLogFormat,
        origin: Origin,
        kafka_time_nanos: i64,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), DecodeError> {
        let trimmed = trim_ascii(&record);
        if trimmed.is_empty() {
            return Err(DecodeError::Empty);
        }
        match format {
            InputLogFormat::OtlpProto => self.otlp_proto(record, origin, kafka_time_nanos, out),
            InputLogFormat::OtlpJson => {
                let req = otlp_json::logs_from_json(&record).map_err(DecodeError::Json)?;
                otlp_logs(
                    &req,
                    LogFormat::OtlpJson,
                    origin,
                    kafka_time_nanos,
                    &mut self.interner,
                    out,
                );
                Ok(())
            }
            InputLogFormat::Json => {
                let line = as_utf8(&record)?;
                let ev = self
                    .json_line(line, origin, kafka_time_nanos)
                    .map_err(DecodeError::Json)?;
                out.push(ev);
                Ok(())
            }
            InputLogFormat::Logfmt => {
                out.push(self.logfmt_line(as_utf8(&record)?, origin, kafka_time_nanos));
                Ok(())
            }
            InputLogFormat::Text => {
                out.push(self.text_line(as_utf8(&record)?, origin, kafka_time_nanos));
                Ok(())
            }
            InputLogFormat::Auto => self.sniff(record, origin, kafka_time_nanos, out),
        }
    }

    fn sniff(
        &mut self,
        record: Bytes,
        origin: Origin,
        ts: i64,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), DecodeError> {
        let trimmed = trim_ascii(&record);
        if trimmed[0] == b'{' {
            let head = &trimmed[..trimmed.len().min(24)];
            if head.starts_with(b"{\"resourceLogs\"") || head.starts_with(b"{\"resource_logs\"") {
                return self.decode(record, InputLogFormat::OtlpJson, origin, ts, out);
            }
            if let Ok(line) = std::str::from_utf8(&record) {
                if let Ok(ev) = self.json_line(line, origin, ts) {
                    out.push(ev);
                    return Ok(());
                }
            }
        }
        // 0x0a: field 1 (resource_logs), wire type 2; the first byte of any non-empty request.
        let looks_like_proto = record[0] == 0x0a;
        let line = std::str::from_utf8(&record);
        if looks_like_proto {
            let before = out.len();
            match self.otlp_proto(record.clone(), origin, ts, out) {
                Ok(()) if out.len() > before => return Ok(()),
                Ok(()) => {}
                Err(e) if line.is_err() => return Err(e),
                Err(_) => {}
            }
        }
        let line = line.map_err(|e| DecodeError::Utf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        if looks_like_logfmt(line) {
            out.push(self.logfmt_line(line, origin, ts));
        } else {
            out.push(self.text_line(line, origin, ts));
        }
        Ok(())
    }

    fn otlp_proto(
        &mut self,
        record: Bytes,
        origin: Origin,
        ts: i64,
        out: &mut Vec<LogEvent>,
    ) -> Result<(), DecodeError> {
        let req = wire::ExportLogsServiceRequest::decode(record).map_err(DecodeError::Protobuf)?;
        otlp_logs(
            &req,
            LogFormat::OtlpProto,
            origin,
            ts,
            &mut self.interner,
            out,
        );
        Ok(())
    }

    fn json_line(
        &mut self,
        line: &str,
        origin: Origin,
        ts: i64,
    ) -> Result<LogEvent, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(line.trim())?;
        let object: BorrowedObject<'_> = serde_json::from_str(raw.get())?;
        let lookup = |f: &FieldRef| object.lookup(f.path());
        let mut found = self.fields(lookup);
        if found.trace_id.is_none() {
            if let Some(msg) = found.message.clone() {
                let mut from_message = Found::default();
                self.apply_text_rules(&msg, &mut from_message);
                found.fill_missing(from_message.into_owned());
            }
        }
        let body = found
            .message
            .take()
            .map_or_else(|| line.trim().into(), |m| m.into());
        Ok(self.event(
            found,
            body,
            LogFields::RawJson(raw.to_owned()),
            LogFormat::Json,
            origin,
            ts,
        ))
    }

    fn logfmt_line(&mut self, line: &str, origin: Origin, ts: i64) -> LogEvent {
        let pairs = parse_logfmt(line);
        let mut found = self.fields(|f: &FieldRef| {
            pairs
                .iter()
                .find(|(k, _)| k == f.path())
                .map(|(_, v)| Cow::Borrowed(v.as_ref()))
        });
        if found.trace_id.is_none() {
            let text = found.message.clone().unwrap_or(Cow::Borrowed(line));
            let mut from_text = Found::default();
            self.apply_text_rules(&text, &mut from_text);
            found.fill_missing(from_text.into_owned());
        }
        let body = found
            .message
            .take()
            .map_or_else(|| line.trim().into(), |m| m.into());
        let found = found.into_owned();
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.event(
            found,
            body,
            LogFields::Pairs(pairs),
            LogFormat::Logfmt,
            origin,
            ts,
        )
    }

    fn text_line(&mut self, line: &str, origin: Origin, ts: i64) -> LogEvent {
        let mut found = Found::default();
        self.apply_text_rules(line, &mut found);
        found.message = None;
        // The whole line is the body: it is what a person reading the log expects to see.
        self.event(
            found,
            line.trim_end().into(),
            LogFields::None,
            LogFormat::Text,
            origin,
            ts,
        )
    }

    /// Applies the field rules through `lookup`.
    fn fields<'a>(&self, lookup: impl Fn(&FieldRef) -> Option<Cow<'a, str>>) -> Found<'a> {
        let f = &self.rules.fields;
        let first = |refs: &[FieldRef]| refs.iter().find_map(&lookup);
        let first_id = |refs: &[FieldRef], parse: &dyn Fn(&str, IdEncoding) -> bool| {
            refs.iter().find_map(|r| {
                lookup(r)
                    .filter(|v| parse(v, r.encoding()))
                    .map(|v| (v, r.encoding()))
            })
        };
        let mut found = Found {
            trace_id: first_id(&f.trace_id, &|v, e| parse_trace_id(v, e).is_some())
                .and_then(|(v, e)| parse_trace_id(&v, e)),
            span_id: first_id(&f.span_id, &|v, e| parse_span_id(v, e).is_some())
                .and_then(|(v, e)| parse_span_id(&v, e)),
            timestamp: first(&f.timestamp),
            level: first(&f.level),
            message: first(&f.message),
            service: first(&f.service),
        };
        if found.trace_id.is_none() {
            if let Some((t, s)) = f
                .traceparent
                .iter()
                .find_map(|r| lookup(r).and_then(|v| parse_traceparent(&v)))
            {
                found.trace_id = Some(t);
                found.span_id = found.span_id.or(s);
            }
        }
        found
    }

    fn apply_text_rules<'a>(&self, text: &'a str, found: &mut Found<'a>) {
        for rule in &self.rules.text {
            let Some(caps) = rule.regex.captures(text) else {
                continue;
            };
            if found.trace_id.is_none() {
                if let Some(m) = caps.name("traceparent") {
                    if let Some((t, s)) = parse_traceparent(m.as_str()) {
                        found.trace_id = Some(t);
                        found.span_id = found.span_id.or(s);
                    }
                }
                found.trace_id = found.trace_id.or_else(|| {
                    caps.name("trace_id")
                        .and_then(|m| parse_trace_id(m.as_str(), IdEncoding::Auto))
                });
            }
            if found.span_id.is_none() {
                found.span_id = caps
                    .name("span_id")
                    .and_then(|m| parse_span_id(m.as_str(), IdEncoding::Auto));
            }
            let fill = |slot: &mut Option<Cow<'a, str>>, group: &str| {
                if slot.is_none() {
                    *slot = caps.name(group).map(|m| Cow::Borrowed(m.as_str()));
                }
            };
            fill(&mut found.timestamp, "timestamp");
            fill(&mut found.level, "level");
            fill(&mut found.message, "message");
            fill(&mut found.service, "service");
        }
    }

    fn event(
        &mut self,
        found: Found<'_>,
        body: Box<str>,
        fields: LogFields,
        format: LogFormat,
        origin: Origin,
        ts: i64,
    ) -> LogEvent {
        let (timestamp_unix_nanos, timestamp_source) =
            match found.timestamp.as_deref().and_then(parse_timestamp) {
                Some(t) => (t, TimestampSource::Record),
                None => (ts, TimestampSource::Kafka),
            };
        LogEvent {
            timestamp_unix_nanos,
            timestamp_source,
            trace_id: found.trace_id,
            span_id: found.span_id,
            severity: found.level.map(|l| l.into()),
            body,
            service: found.service.map(|s| self.interner.intern(&s)),
            fields,
            format,
            origin,
            ack: crate::sources::ack::Ack::detached(),
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn as_utf8(b: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(b).map_err(|e| DecodeError::Utf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// `key=value` at the start of the line, the key a word.
fn looks_like_logfmt(line: &str) -> bool {
    let line = line.trim_start();
    let key_len = line
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'))
        .count();
    key_len > 0 && line.as_bytes().get(key_len) == Some(&b'=')
}

/// Parses logfmt: `key=value`, `key="quoted \" value"`, bare `key` (empty value).
pub fn parse_logfmt(line: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut pairs = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        if i == key_start {
            i += 1;
            continue;
        }
        let key = &line[key_start..i];
        if i >= b.len() || b[i] != b'=' {
            pairs.push((Cow::Borrowed(key), Cow::Borrowed("")));
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let start = i;
            let mut owned: Option<String> = None;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    let s = owned.get_or_insert_with(|| line[start..i].to_string());
                    // The escaped character may be multi-byte: step over all of it (found by the
                    // logs fuzz target: stepping two bytes split a UTF-8 sequence).
                    let escaped = line[i + 1..].chars().next().unwrap_or('\\');
                    s.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        c => c,
                    });
                    i += 1 + escaped.len_utf8();
                    continue;
                }
                let ch_len = line[i..].chars().next().map_or(1, char::len_utf8);
                if let Some(s) = owned.as_mut() {
                    s.push_str(&line[i..i + ch_len]);
                }
                i += ch_len;
            }
            let value =
                owned.map_or_else(|| Cow::Borrowed(&line[start..i.min(b.len())]), Cow::Owned);
            pairs.push((Cow::Borrowed(key), value));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            pairs.push((Cow::Borrowed(key), Cow::Borrowed(&line[start..i])));
        }
    }
    pairs
}

/// A JSON object's top level as borrowed `(key, raw value)` pairs, in input order.
struct BorrowedObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> BorrowedObject<'a> {
    /// The value at `path`: a literal key first, then a dotted path into nested objects.
    fn lookup(&self, path: &str) -> Option<Cow<'a, str>> {
        if let Some((_, v)) = self.0.iter().find(|(k, _)| k == path) {
            return raw_scalar(v);
        }
        let (head, rest) = path.split_once('.')?;
        let (_, nested) = self.0.iter().find(|(k, _)| k == head)?;
        if !nested.get().starts_with('{') {
            return None;
        }
        let inner: BorrowedObject<'a> = serde_json::from_str(nested.get()).ok()?;
        inner.lookup(rest)
    }
}

/// A scalar JSON value as text: strings unquoted (borrowed unless escaped), numbers and booleans
/// as written; `None` for null, objects and arrays.
fn raw_scalar(v: &RawValue) -> Option<Cow<'_, str>> {
    let text = v.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<&str>(text)
            .map(Cow::Borrowed)
            .or_else(|_| serde_json::from_str::<String>(text).map(Cow::Owned))
            .ok(),
        b'{' | b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for BorrowedObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((k.0, v));
                }
                Ok(BorrowedObject(entries))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests;
