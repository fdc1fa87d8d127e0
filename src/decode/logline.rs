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
//!
//! Why one file over 600 lines: the four line formats share one extraction discipline (fields
//! first, then the text rules on what is left, each value with its source for `check`), and the
//! id validation that keeps a wrong id out reads best beside every place that fills one.

use super::ids::{parse_context, parse_span_id, parse_trace_id, LogTraceId};
use super::intern::Interner;
use super::level::{normalize_level, LevelScheme};
use super::otlp::{json as otlp_json, otlp_logs, wire};
use super::rules::{
    group_bit, Candidates, Caps, CompiledRules, Outcome, Source, G_LEVEL, G_MESSAGE, G_SERVICE,
    G_SPAN_ID, G_TIMESTAMP, G_TRACEPARENT, G_TRACE_ID,
};
use super::time::parse_timestamp;
use super::DecodeError;
use crate::model::{LogEvent, LogFields, LogFormat, Origin, SpanId, TimestampSource, TraceIdWidth};
use bytes::Bytes;
use prost::Message;
use regex::CaptureLocations;
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
    /// One reusable capture buffer per text rule (no allocation per line).
    locs: Vec<CaptureLocations>,
    /// Search state for the rules searched where their literal was seen.
    anchored: Vec<Option<Anchored>>,
    /// Prefilter output, kept to reuse its buffer.
    candidates: Candidates,
    /// Where the values of the last JSON/logfmt/text line came from.
    last: Provenance,
}

/// Where each value of a line came from, and the ids rules captured but rejected.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Provenance {
    /// Source of the trace id.
    pub trace_id: Option<Source>,
    /// Source of the span id.
    pub span_id: Option<Source>,
    /// Source of the level.
    pub level: Option<Source>,
    /// Source of the timestamp.
    pub timestamp: Option<Source>,
    /// Captured values that were not well-formed ids (or only a piece of a longer token).
    pub rejected: Vec<(Source, String)>,
}

/// A rule's cache and capture buffer for [`CompiledTextRule::at_literal`].
#[derive(Debug)]
struct Anchored {
    cache: regex_automata::meta::Cache,
    caps: regex_automata::util::captures::Captures,
}

/// Values found in a line, borrowed from it where possible.
#[derive(Default, Debug)]
struct Found<'a> {
    trace_id: Option<LogTraceId>,
    span_id: Option<SpanId>,
    timestamp: Option<Cow<'a, str>>,
    level: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    service: Option<Cow<'a, str>>,
    prov: Provenance,
}

impl<'a> Found<'a> {
    /// Takes from `other` what this has not found.
    fn fill_missing(&mut self, other: Found<'a>) {
        if self.trace_id.is_none() && other.trace_id.is_some() {
            self.trace_id = other.trace_id;
            self.prov.trace_id = other.prov.trace_id;
        }
        if self.span_id.is_none() && other.span_id.is_some() {
            self.span_id = other.span_id;
            self.prov.span_id = other.prov.span_id;
        }
        if self.timestamp.is_none() && other.timestamp.is_some() {
            self.timestamp = other.timestamp;
            self.prov.timestamp = other.prov.timestamp;
        }
        if self.level.is_none() && other.level.is_some() {
            self.level = other.level;
            self.prov.level = other.prov.level;
        }
        self.message = self.message.take().or(other.message);
        self.service = self.service.take().or(other.service);
        self.prov.rejected.extend(other.prov.rejected);
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
            prov: self.prov,
        }
    }

    /// The groups filled, as a mask of [`group_bit`]s (`traceparent` always counts as filled:
    /// rules that have it are run for the trace and span id it gives).
    fn filled(&self) -> u8 {
        let mut m = group_bit(G_TRACEPARENT);
        let mut set = |cond: bool, g: usize| {
            if cond {
                m |= group_bit(g)
            }
        };
        set(self.trace_id.is_some(), G_TRACE_ID);
        set(self.span_id.is_some(), G_SPAN_ID);
        set(self.level.is_some(), G_LEVEL);
        set(self.timestamp.is_some(), G_TIMESTAMP);
        set(self.message.is_some(), G_MESSAGE);
        set(self.service.is_some(), G_SERVICE);
        m
    }
}

/// Every group.
const ALL_GROUPS: u8 = 0x7f;

/// An id value that says "no id" (all zeros): not a rejection.
fn is_zero_id(v: &str) -> bool {
    let v = v.trim().trim_matches('"');
    !v.is_empty() && v.bytes().all(|b| b == b'0' || b == b'-')
}

/// Counts a rejected id and keeps it for `tracejoin check`.
fn reject(rules: &CompiledRules, prov: &mut Provenance, source: Source, value: &str) {
    if value.trim().is_empty() || is_zero_id(value) {
        return;
    }
    crate::telemetry::metrics().log_id_rejected(&rules.label(source));
    prov.rejected.push((source, value.to_string()));
}

/// Whether `text[a..b]` is a whole token rather than a piece of a longer one: no letter or
/// digit right beside it, and, for a value read as decimal, not followed by `-` or `:` nor
/// joined by `.` to more of a token, nor after `-`/`.` joined to one (the `1` of the X-Ray id
/// `1-5759e988-…`, the `00` of a traceparent).
fn whole_token(text: &str, a: usize, b: usize, decimal: bool) -> bool {
    let bytes = text.as_bytes();
    let alnum = |i: Option<usize>| {
        i.and_then(|i| bytes.get(i))
            .is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if alnum(a.checked_sub(1)) || alnum(Some(b)) {
        return false;
    }
    if decimal {
        match bytes.get(b) {
            Some(b'-' | b':') => return false,
            Some(b'.') if alnum(Some(b + 1)) => return false,
            _ => {}
        }
        if a >= 1 && matches!(bytes[a - 1], b'-' | b'.') && alnum(a.checked_sub(2)) {
            return false;
        }
    }
    true
}

impl LogDecoder {
    /// A decoder applying `rules`.
    pub fn new(rules: Arc<CompiledRules>, interner_cap: usize) -> Self {
        let locs = rules
            .text
            .iter()
            .map(|r| r.regex.capture_locations())
            .collect();
        let anchored = rules
            .text
            .iter()
            .map(|r| {
                r.at_literal.as_ref().map(|re| Anchored {
                    cache: re.create_cache(),
                    caps: re.create_captures(),
                })
            })
            .collect();
        LogDecoder {
            rules,
            interner: Interner::new(interner_cap),
            locs,
            anchored,
            candidates: Candidates {
                rules: 0,
                first: [usize::MAX; 64],
            },
            last: Provenance::default(),
        }
    }

    /// The rules this decoder applies.
    pub fn rules(&self) -> &CompiledRules {
        &self.rules
    }

    /// Where the values of the last JSON, logfmt or text line decoded came from.
    pub fn last_provenance(&self) -> &Provenance {
        &self.last
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
        let lookup = |f: &str| object.lookup(f);
        let mut found = fields(&self.rules, lookup);
        if found.trace_id.is_none() {
            if let Some(msg) = found.message.clone() {
                let mut from_message = Found::default();
                apply_text_rules(
                    &self.rules,
                    &mut self.locs,
                    &mut self.anchored,
                    &mut self.candidates,
                    &msg,
                    &mut from_message,
                    ALL_GROUPS,
                );
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
        let mut found = fields(&self.rules, |f: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| Cow::Borrowed(v.as_ref()))
        });
        if found.trace_id.is_none() {
            let text = found.message.clone().unwrap_or(Cow::Borrowed(line));
            let mut from_text = Found::default();
            apply_text_rules(
                &self.rules,
                &mut self.locs,
                &mut self.anchored,
                &mut self.candidates,
                &text,
                &mut from_text,
                ALL_GROUPS,
            );
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
        // The whole line is the body: it is what a person reading the log expects to see, so
        // a rule's `message` group is not needed here.
        apply_text_rules(
            &self.rules,
            &mut self.locs,
            &mut self.anchored,
            &mut self.candidates,
            line,
            &mut found,
            ALL_GROUPS & !group_bit(G_MESSAGE),
        );
        found.message = None;
        self.event(
            found,
            line.trim_end().into(),
            LogFields::None,
            LogFormat::Text,
            origin,
            ts,
        )
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
        let mut found = found;
        self.last = std::mem::take(&mut found.prov);
        let (timestamp_unix_nanos, timestamp_source) =
            match found.timestamp.as_deref().and_then(parse_timestamp) {
                Some(t) => (t, TimestampSource::Record),
                None => (ts, TimestampSource::Kafka),
            };
        LogEvent {
            timestamp_unix_nanos,
            timestamp_source,
            trace_id: found.trace_id.map(|t| t.id),
            trace_id_width: found.trace_id.map_or(TraceIdWidth::Bits128, |t| t.width),
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

/// Applies the field rules through `lookup` (a field name or dotted path to its value).
fn fields<'a>(rules: &CompiledRules, lookup: impl Fn(&str) -> Option<Cow<'a, str>>) -> Found<'a> {
    let f = &rules.fields;
    let mut found = Found::default();
    let src = |group: usize, index: usize| Source::Field {
        group: group as u8,
        index: index as u16,
    };
    for (i, r) in f.trace_id.iter().enumerate() {
        let Some(v) = lookup(r.path()) else { continue };
        match parse_trace_id(&v, r.encoding()) {
            Some(t) => {
                found.trace_id = Some(t);
                found.prov.trace_id = Some(src(G_TRACE_ID, i));
                break;
            }
            None => reject(rules, &mut found.prov, src(G_TRACE_ID, i), &v),
        }
    }
    for (i, r) in f.span_id.iter().enumerate() {
        let Some(v) = lookup(r.path()) else { continue };
        match parse_span_id(&v, r.encoding()) {
            Some(s) => {
                found.span_id = Some(s);
                found.prov.span_id = Some(src(G_SPAN_ID, i));
                break;
            }
            None => reject(rules, &mut found.prov, src(G_SPAN_ID, i), &v),
        }
    }
    if found.trace_id.is_none() {
        for (i, r) in f.traceparent.iter().enumerate() {
            let Some(v) = lookup(r.path()) else { continue };
            match parse_context(&v) {
                Some((t, s)) => {
                    found.trace_id = Some(t);
                    found.prov.trace_id = Some(src(G_TRACEPARENT, i));
                    if found.span_id.is_none() && s.is_some() {
                        found.span_id = s;
                        found.prov.span_id = Some(src(G_TRACEPARENT, i));
                    }
                    break;
                }
                None => reject(rules, &mut found.prov, src(G_TRACEPARENT, i), &v),
            }
        }
    }
    let first = |group: usize, prov: &mut Option<Source>| {
        let refs = f.list(group);
        let v = refs.iter().enumerate().find_map(|(i, r)| {
            let v = lookup(r.path())?;
            let v = if group == G_LEVEL {
                normalize_level(v, LevelScheme::Auto)?
            } else {
                v
            };
            *prov = Some(src(group, i));
            Some(v)
        });
        v.or_else(|| {
            refs.iter().enumerate().find_map(|(i, r)| {
                let (default, when) = r.default()?;
                if when.is_some_and(|w| lookup(w).is_none()) {
                    return None;
                }
                *prov = Some(Source::Default {
                    group: group as u8,
                    index: i as u16,
                });
                Some(Cow::Owned(default.to_string()))
            })
        })
    };
    found.timestamp = first(G_TIMESTAMP, &mut found.prov.timestamp);
    found.level = first(G_LEVEL, &mut found.prov.level);
    found.message = first(G_MESSAGE, &mut None);
    found.service = first(G_SERVICE, &mut None);
    found
}

/// Applies the text rules to `text`, filling what `found` lacks among the groups of `want`.
/// Rules whose groups are all filled are skipped; the rules' literal prefilter says in one pass
/// which of the others can match.
#[allow(clippy::too_many_arguments)]
fn apply_text_rules<'a>(
    rules: &CompiledRules,
    locs: &mut [CaptureLocations],
    anchored: &mut [Option<Anchored>],
    cands: &mut Candidates,
    text: &'a str,
    found: &mut Found<'a>,
    want: u8,
) {
    // No rule fills a group outside `rules.fills`: once the others are filled, stop.
    let want = want & rules.fills;
    let mut need = want & !found.filled();
    if need == 0 || rules.text.is_empty() {
        return;
    }
    let candidates = rules.prefilter.as_ref().map(|p| {
        cands.first[..rules.text.len()].fill(usize::MAX);
        p.candidates_into(text, cands);
        cands.rules
    });
    for (i, rule) in rules.text.iter().enumerate() {
        if rule.fills & need == 0 {
            continue;
        }
        if candidates.is_some_and(|c| c & (1 << i) == 0) {
            continue;
        }
        let at = cands.first[i];
        let at_known = candidates.is_some() && at != usize::MAX && rule.at_literal.is_some();
        let fast = match rule.fast {
            Some(f) => f.find(text, if at_known { at } else { 0 }),
            None => Outcome::Defer,
        };
        let got: Option<Caps> = match (fast, at_known, &rule.at_literal, &mut anchored[i]) {
            (Outcome::Match(caps), ..) => Some(caps),
            (Outcome::NoMatch, ..) => None,
            (_, true, Some(re), Some(a)) => search_from_literal(re, a, text, at).then(|| {
                let mut out = [None; 7];
                for (g, slot) in rule.slots.iter().enumerate() {
                    out[g] = slot
                        .and_then(|s| a.caps.get_group(s))
                        .map(|m| (m.start, m.end));
                }
                out
            }),
            _ => {
                let loc = &mut locs[i];
                rule.regex.captures_read(loc, text).map(|_| {
                    let mut out = [None; 7];
                    for (g, slot) in rule.slots.iter().enumerate() {
                        out[g] = slot.and_then(|s| loc.get(s));
                    }
                    out
                })
            }
        };
        let Some(got) = got else { continue };
        let get = |g: usize| got[g];
        let source = Source::Rule(i as u16);
        if let Some((a, b)) = get(G_TRACEPARENT) {
            let v = &text[a..b];
            match parse_context(v).filter(|_| whole_token(text, a, b, false)) {
                Some((t, s)) if found.trace_id.is_none() => {
                    found.trace_id = Some(t);
                    found.prov.trace_id = Some(source);
                    if found.span_id.is_none() && s.is_some() {
                        found.span_id = s;
                        found.prov.span_id = Some(source);
                    }
                }
                Some((t, s))
                    if found.trace_id.map(|f| f.id) == Some(t.id) && found.span_id.is_none() =>
                {
                    if s.is_some() {
                        found.span_id = s;
                        found.prov.span_id = Some(source);
                    }
                }
                Some(_) => {}
                None => reject(rules, &mut found.prov, source, v),
            }
        }
        if found.trace_id.is_none() {
            if let Some((a, b)) = get(G_TRACE_ID) {
                let v = &text[a..b];
                let decimal = rule.encoding.reads_as_decimal(v);
                match parse_trace_id(v, rule.encoding).filter(|_| whole_token(text, a, b, decimal))
                {
                    Some(t) => {
                        found.trace_id = Some(t);
                        found.prov.trace_id = Some(source);
                    }
                    None => reject(rules, &mut found.prov, source, v),
                }
            }
        }
        if found.span_id.is_none() {
            if let Some((a, b)) = get(G_SPAN_ID) {
                let v = &text[a..b];
                let decimal = rule.encoding.reads_as_decimal(v);
                match parse_span_id(v, rule.encoding).filter(|_| whole_token(text, a, b, decimal)) {
                    Some(s) => {
                        found.span_id = Some(s);
                        found.prov.span_id = Some(source);
                    }
                    None => reject(rules, &mut found.prov, source, v),
                }
            }
        }
        if found.level.is_none() {
            if let Some((a, b)) = get(G_LEVEL) {
                if let Some(l) = normalize_level(Cow::Borrowed(&text[a..b]), rule.level) {
                    found.level = Some(l);
                    found.prov.level = Some(source);
                }
            }
        }
        if found.timestamp.is_none() {
            if let Some((a, b)) = get(G_TIMESTAMP) {
                found.timestamp = Some(Cow::Borrowed(&text[a..b]));
                found.prov.timestamp = Some(source);
            }
        }
        if need & group_bit(G_MESSAGE) != 0 && found.message.is_none() {
            found.message = get(G_MESSAGE).map(|(a, b)| Cow::Borrowed(&text[a..b]));
        }
        if found.service.is_none() {
            found.service = get(G_SERVICE).map(|(a, b)| Cow::Borrowed(&text[a..b]));
        }
        need = want & !found.filled();
        if need == 0 {
            break;
        }
    }
}

/// The leftmost match of `re` in `text`, whose matches all start with a literal first seen at
/// `at`: anchored there first (a match there is the leftmost: none starts before a literal),
/// else anywhere after it. Look-around still sees the text before `at`.
fn search_from_literal(
    re: &regex_automata::meta::Regex,
    a: &mut Anchored,
    text: &str,
    at: usize,
) -> bool {
    use regex_automata::{Anchored as A, Input};
    let input = Input::new(text).span(at..text.len()).anchored(A::Yes);
    re.search_captures_with(&mut a.cache, &input, &mut a.caps);
    if a.caps.is_match() {
        return true;
    }
    if at + 1 > text.len() {
        return false;
    }
    let input = Input::new(text).span(at + 1..text.len());
    re.search_captures_with(&mut a.cache, &input, &mut a.caps);
    a.caps.is_match()
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
        let nested: &'a RawValue = nested;
        match nested.get().as_bytes().first()? {
            b'{' => {
                let inner: BorrowedObject<'a> = serde_json::from_str(nested.get()).ok()?;
                inner.lookup(rest)
            }
            // An array of objects (.NET's `Scopes`): the first element that has the path.
            b'[' => {
                let items: Vec<&'a RawValue> = serde_json::from_str(nested.get()).ok()?;
                items.into_iter().find_map(|item| {
                    if !item.get().starts_with('{') {
                        return None;
                    }
                    let inner: BorrowedObject<'a> = serde_json::from_str(item.get()).ok()?;
                    inner.lookup(rest)
                })
            }
            _ => None,
        }
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
