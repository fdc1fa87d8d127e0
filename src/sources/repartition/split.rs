//! Splitting OTLP records per trace id, copying encoded sub-messages verbatim.
//!
//! # Protobuf
//!
//! An `ExportTraceServiceRequest` is `resource_spans = 1` → `ResourceSpans { resource = 1,
//! scope_spans = 2, schema_url = 3 }` → `ScopeSpans { scope = 1, spans = 2, schema_url = 3 }` →
//! `Span { trace_id = 1, … }`; the logs request has the same shape (`resource_logs`, `scope_logs`,
//! `log_records`, with the trace id in field 9 of a `LogRecord`). The split reads only that framing
//! and the trace id. Every other field of a resource or scope level (resource, scope, schema URL,
//! fields newer than our protos) is a *header*, copied as its encoded bytes into each output
//! record that takes spans from that level; each span is copied as its encoded field. Nothing
//! below a span's trace id is decoded, so a span keeps its links, trace state, dropped counts and
//! any unknown field, and the split costs a scan and a `memcpy`, not a decode and an encode.
//!
//! What is read is checked as strictly as prost checks it (varints, lengths, wire types of the
//! fields read, groups), so a record the decoder would reject is rejected here too, with the same
//! dead-letter code. Bytes below the trace id are not checked: a span with a broken attribute makes
//! only its own trace's record fail later in the decoder, not the other traces of the batch.
//!
//! # JSON
//!
//! The same split over OTLP/JSON: one pass with serde keeps every member other than the nested
//! arrays as a `RawValue` (verbatim text), and each span is re-read only for its trace id. Output
//! records are OTLP/JSON with lowerCamelCase array names (both spellings are accepted on input, as
//! the decoder accepts them).
//!
//! # Output
//!
//! One record per distinct trace key, in trace id order, the record of spans without a valid trace
//! id (the `None` key) first. Within a record, spans keep their input order and their resource and
//! scope. A record holding one trace key only is forwarded as it came (no re-encode); a record
//! holding no span at all yields nothing (it carries nothing the join uses).
//!
//! Why one file over 600 lines: the four splitters (spans and logs, protobuf and JSON) share one framing walker and one output discipline; apart they would repeat it.

use super::{SplitError, SplitStats, TraceKey};
use crate::model::TraceId;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Field number of the trace id in a `Span`.
const SPAN_TRACE_ID: u32 = 1;
/// Field number of the trace id in a `LogRecord`.
const LOG_TRACE_ID: u32 = 9;
/// Field number of `end_time_unix_nano` (fixed64) in a `Span`: the span's event time, which the
/// re-keying owner's progress marks report.
const SPAN_END_TIME: u32 = 8;
/// No event-time field is read (a log record's time comes from the decoder, which the re-keying
/// stage runs anyway to find trace ids in raw lines).
const NO_TIME: u32 = 0;

/// Splits an OTLP protobuf `ExportTraceServiceRequest` into one request per trace id, appending
/// `(key, encoded request)` to `out`. See the module docs.
pub fn split_spans_proto(
    payload: &[u8],
    out: &mut Vec<(TraceKey, Vec<u8>)>,
) -> Result<SplitStats, SplitError> {
    ProtoSplitter::default().split(payload, SPAN_TRACE_ID, SPAN_END_TIME, out)
}

/// Splits an OTLP protobuf `ExportLogsServiceRequest` into one request per trace id; log records
/// without a trace id go together under the `None` key.
pub fn split_logs_proto(
    payload: &[u8],
    out: &mut Vec<(TraceKey, Vec<u8>)>,
) -> Result<SplitStats, SplitError> {
    ProtoSplitter::default().split(payload, LOG_TRACE_ID, NO_TIME, out)
}

/// Splits an OTLP/JSON `ExportTraceServiceRequest` into one OTLP/JSON request per trace id.
pub fn split_spans_json(
    payload: &[u8],
    out: &mut Vec<(TraceKey, Vec<u8>)>,
) -> Result<SplitStats, SplitError> {
    split_json(payload, &SPAN_NAMES, out)
}

/// Splits an OTLP/JSON `ExportLogsServiceRequest` into one OTLP/JSON request per trace id.
pub fn split_logs_json(
    payload: &[u8],
    out: &mut Vec<(TraceKey, Vec<u8>)>,
) -> Result<SplitStats, SplitError> {
    split_json(payload, &LOG_NAMES, out)
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire reading.

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_SGROUP: u8 = 3;
const WT_EGROUP: u8 = 4;
const WT_FIXED32: u8 = 5;
/// prost's default recursion limit, for skipping nested groups.
const MAX_GROUP_DEPTH: u32 = 100;
/// The tag byte of field 1 / field 2 with wire type LEN.
const TAG_1_LEN: u8 = (1 << 3) | WT_LEN;
const TAG_2_LEN: u8 = (2 << 3) | WT_LEN;

fn err(offset: usize, what: &'static str) -> SplitError {
    SplitError::Protobuf { offset, what }
}

/// Reads a varint at `*pos`, not beyond `end`.
fn read_varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, SplitError> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos).filter(|_| *pos < end) else {
            return Err(err(start, "truncated varint"));
        };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(err(start, "varint overflows 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(err(start, "varint longer than 10 bytes"))
}

/// One field of a message: its number, wire type, the value (for LEN: the payload) and where the
/// whole field (tag included) ends.
struct Field {
    number: u32,
    wire: u8,
    value_start: usize,
    value_end: usize,
}

/// Reads the field at `*pos` and moves past it.
fn read_field(buf: &[u8], pos: &mut usize, end: usize) -> Result<Field, SplitError> {
    let tag_at = *pos;
    let tag = read_varint(buf, pos, end)?;
    let tag = u32::try_from(tag).map_err(|_| err(tag_at, "tag overflows 32 bits"))?;
    let (number, wire) = (tag >> 3, (tag & 7) as u8);
    if number == 0 {
        return Err(err(tag_at, "field number 0"));
    }
    let value_start = *pos;
    skip_value(buf, pos, end, number, wire, 0, tag_at)?;
    let mut value_end = *pos;
    let mut value_start = value_start;
    if wire == WT_LEN {
        // `skip_value` checked the length; re-read it to find the payload.
        let mut p = value_start;
        read_varint(buf, &mut p, end)?;
        value_start = p;
        value_end = *pos;
    }
    Ok(Field {
        number,
        wire,
        value_start,
        value_end,
    })
}

fn skip_value(
    buf: &[u8],
    pos: &mut usize,
    end: usize,
    number: u32,
    wire: u8,
    depth: u32,
    tag_at: usize,
) -> Result<(), SplitError> {
    let need = |pos: &mut usize, n: u64| -> Result<(), SplitError> {
        if n > (end - *pos) as u64 {
            return Err(err(*pos, "length beyond the enclosing message"));
        }
        *pos += n as usize;
        Ok(())
    };
    match wire {
        WT_VARINT => read_varint(buf, pos, end).map(|_| ()),
        WT_FIXED64 => need(pos, 8),
        WT_FIXED32 => need(pos, 4),
        WT_LEN => {
            let n = read_varint(buf, pos, end)?;
            need(pos, n)
        }
        WT_SGROUP => {
            if depth >= MAX_GROUP_DEPTH {
                return Err(err(tag_at, "groups nested too deep"));
            }
            loop {
                if *pos >= end {
                    return Err(err(tag_at, "unterminated group"));
                }
                let inner_at = *pos;
                let tag = read_varint(buf, pos, end)?;
                let tag = u32::try_from(tag).map_err(|_| err(inner_at, "tag overflows 32 bits"))?;
                let (n, w) = (tag >> 3, (tag & 7) as u8);
                if n == 0 {
                    return Err(err(inner_at, "field number 0"));
                }
                if w == WT_EGROUP {
                    if n != number {
                        return Err(err(inner_at, "mismatched end group"));
                    }
                    return Ok(());
                }
                skip_value(buf, pos, end, n, w, depth + 1, inner_at)?;
            }
        }
        WT_EGROUP => Err(err(tag_at, "unexpected end group")),
        _ => Err(err(tag_at, "invalid wire type")),
    }
}

fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn put_varint(buf: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

// ---------------------------------------------------------------------------------------------
// The split, shared by protobuf and JSON: levels with headers, and leaf items keyed by trace.

/// A resource or scope level: its header pieces `hdrs[first..last]`, `len` bytes in all.
#[derive(Clone, Copy)]
struct Level {
    first: usize,
    last: usize,
    len: usize,
}

/// A span / log record: its trace key, its resource and scope level, and its bytes.
#[derive(Clone, Copy)]
struct Item {
    key: Option<TraceId>,
    rs: u32,
    ss: u32,
    start: usize,
    end: usize,
}

#[derive(Clone, Copy)]
struct ScopeRun {
    rs: u32,
    ss: u32,
    first: usize,
    last: usize,
    body: usize,
}

#[derive(Clone, Copy)]
struct ResourceRun {
    rs: u32,
    body: usize,
}

/// Scratch space for one split. Kept per call by the free functions.
#[derive(Default)]
struct ProtoSplitter {
    top: Vec<(usize, usize)>,
    hdrs: Vec<(usize, usize)>,
    rs: Vec<Level>,
    ss: Vec<Level>,
    items: Vec<Item>,
    /// Highest event time of the leaves read (spans' end time), if any.
    latest: Option<u64>,
    scope_runs: Vec<ScopeRun>,
    resource_runs: Vec<ResourceRun>,
}

impl ProtoSplitter {
    fn split(
        &mut self,
        buf: &[u8],
        trace_field: u32,
        time_field: u32,
        out: &mut Vec<(TraceKey, Vec<u8>)>,
    ) -> Result<SplitStats, SplitError> {
        self.scan(buf, trace_field, time_field)?;
        let mut stats = SplitStats {
            items: self.items.len() as u32,
            without_trace: self.items.iter().filter(|i| i.key.is_none()).count() as u32,
            latest_event_nanos: self.latest.and_then(|t| i64::try_from(t).ok()),
            ..SplitStats::default()
        };
        let Some(first) = self.items.first().map(|i| i.key) else {
            return Ok(stats);
        };
        if self.items.iter().all(|i| i.key == first) {
            out.push((TraceKey(first), buf.to_vec()));
            stats.records = 1;
            stats.passthrough = true;
            return Ok(stats);
        }
        // Stable: within a trace, items stay in input order, hence grouped by resource and scope.
        self.items.sort_by_key(|i| i.key);
        let mut g0 = 0;
        while g0 < self.items.len() {
            let key = self.items[g0].key;
            let g1 = g0 + self.items[g0..].partition_point(|i| i.key == key);
            out.push((TraceKey(key), self.write_group(buf, g0, g1)));
            stats.records += 1;
            g0 = g1;
        }
        Ok(stats)
    }

    /// Reads the framing: headers of every level, and each leaf with its trace id.
    fn scan(&mut self, buf: &[u8], trace_field: u32, time_field: u32) -> Result<(), SplitError> {
        self.latest = None;
        self.top.clear();
        self.hdrs.clear();
        self.rs.clear();
        self.ss.clear();
        self.items.clear();
        let end = buf.len();
        let mut pos = 0;
        while pos < end {
            let at = pos;
            let f = read_field(buf, &mut pos, end)?;
            if f.number != 1 {
                self.top.push((at, pos));
                continue;
            }
            if f.wire != WT_LEN {
                return Err(err(at, "resource level is not a message"));
            }
            // Two passes over the resource level: its headers first, so they are contiguous in
            // `hdrs`, then its scopes. The second pass re-reads only tags and lengths.
            let rs = self.rs.len() as u32;
            let first = self.hdrs.len();
            let mut p = f.value_start;
            while p < f.value_end {
                let at = p;
                let g = read_field(buf, &mut p, f.value_end)?;
                if g.number != 2 {
                    self.hdrs.push((at, p));
                } else if g.wire != WT_LEN {
                    return Err(err(at, "scope level is not a message"));
                }
            }
            self.push_level(first, true);
            let mut p = f.value_start;
            while p < f.value_end {
                let g = read_field(buf, &mut p, f.value_end)?;
                if g.number == 2 {
                    let fields = (trace_field, time_field);
                    self.scan_scope(buf, rs, g.value_start, g.value_end, fields)?;
                }
            }
        }
        Ok(())
    }

    fn scan_scope(
        &mut self,
        buf: &[u8],
        rs: u32,
        start: usize,
        end: usize,
        (trace_field, time_field): (u32, u32),
    ) -> Result<(), SplitError> {
        let ss = self.ss.len() as u32;
        let first = self.hdrs.len();
        let mut p = start;
        while p < end {
            let at = p;
            let f = read_field(buf, &mut p, end)?;
            if f.number != 2 {
                self.hdrs.push((at, p));
                continue;
            }
            if f.wire != WT_LEN {
                return Err(err(at, "span is not a message"));
            }
            let (key, time) = leaf_of(buf, f.value_start, f.value_end, trace_field, time_field)?;
            if time.is_some() {
                self.latest = self.latest.max(time);
            }
            self.items.push(Item {
                key,
                rs,
                ss,
                start: at,
                end: p,
            });
        }
        self.push_level(first, false);
        Ok(())
    }

    /// Records the level whose header pieces are `hdrs[first..]`.
    fn push_level(&mut self, first: usize, resource: bool) {
        let last = self.hdrs.len();
        let len = self.hdrs[first..last].iter().map(|(a, b)| b - a).sum();
        let level = Level { first, last, len };
        if resource {
            self.rs.push(level);
        } else {
            self.ss.push(level);
        }
    }

    fn write_group(&mut self, buf: &[u8], g0: usize, g1: usize) -> Vec<u8> {
        self.scope_runs.clear();
        self.resource_runs.clear();
        let mut i = g0;
        while i < g1 {
            let (rs, ss) = (self.items[i].rs, self.items[i].ss);
            let first = i;
            let mut body = self.ss[ss as usize].len;
            while i < g1 && self.items[i].rs == rs && self.items[i].ss == ss {
                body += self.items[i].end - self.items[i].start;
                i += 1;
            }
            self.scope_runs.push(ScopeRun {
                rs,
                ss,
                first,
                last: i,
                body,
            });
            let field = 1 + varint_len(body) + body;
            match self.resource_runs.last_mut() {
                Some(r) if r.rs == rs => r.body += field,
                _ => self.resource_runs.push(ResourceRun {
                    rs,
                    body: self.rs[rs as usize].len + field,
                }),
            }
        }
        let top_len: usize = self.top.iter().map(|(a, b)| b - a).sum();
        let total = top_len
            + self
                .resource_runs
                .iter()
                .map(|r| 1 + varint_len(r.body) + r.body)
                .sum::<usize>();
        let mut w = Vec::with_capacity(total);
        for &(a, b) in &self.top {
            w.extend_from_slice(&buf[a..b]);
        }
        let mut k = 0;
        for r in &self.resource_runs {
            w.push(TAG_1_LEN);
            put_varint(&mut w, r.body);
            let l = self.rs[r.rs as usize];
            for &(a, b) in &self.hdrs[l.first..l.last] {
                w.extend_from_slice(&buf[a..b]);
            }
            while let Some(s) = self.scope_runs.get(k).filter(|s| s.rs == r.rs) {
                w.push(TAG_2_LEN);
                put_varint(&mut w, s.body);
                let l = self.ss[s.ss as usize];
                for &(a, b) in &self.hdrs[l.first..l.last] {
                    w.extend_from_slice(&buf[a..b]);
                }
                for it in &self.items[s.first..s.last] {
                    w.extend_from_slice(&buf[it.start..it.end]);
                }
                k += 1;
            }
        }
        debug_assert_eq!(w.len(), total);
        w
    }
}

/// The trace id of the span / log record in `buf[start..end]`: the last `trace_field` (as prost
/// reads a repeated singular field), `None` when absent, empty, all-zero or not 16 bytes; and the
/// last fixed64 `time_field`, if any (0 reads none; a zero time is no time).
fn leaf_of(
    buf: &[u8],
    start: usize,
    end: usize,
    trace_field: u32,
    time_field: u32,
) -> Result<(Option<TraceId>, Option<u64>), SplitError> {
    let mut found: Option<(usize, usize)> = None;
    let mut time = None;
    let mut p = start;
    while p < end {
        let at = p;
        let f = read_field(buf, &mut p, end)?;
        if f.number == trace_field {
            if f.wire != WT_LEN {
                return Err(err(at, "trace id is not bytes"));
            }
            found = Some((f.value_start, f.value_end));
        } else if f.number == time_field && f.wire == WT_FIXED64 {
            if let Ok(bytes) = <[u8; 8]>::try_from(&buf[f.value_start..f.value_end]) {
                time = Some(u64::from_le_bytes(bytes)).filter(|t| *t > 0);
            }
        }
    }
    Ok((
        found.and_then(|(a, b)| TraceId::from_slice(&buf[a..b])),
        time,
    ))
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON.

/// The array names of one signal: resource level, scope level, leaf; each as both spellings.
struct JsonNames {
    resource: [&'static str; 2],
    scope: [&'static str; 2],
    leaf: [&'static str; 2],
    /// The leaf's event-time member read for progress marks (none for log records).
    time: [&'static str; 2],
}

const SPAN_NAMES: JsonNames = JsonNames {
    resource: ["resourceSpans", "resource_spans"],
    scope: ["scopeSpans", "scope_spans"],
    leaf: ["spans", "spans"],
    time: ["endTimeUnixNano", "end_time_unix_nano"],
};

const LOG_NAMES: JsonNames = JsonNames {
    resource: ["resourceLogs", "resource_logs"],
    scope: ["scopeLogs", "scope_logs"],
    leaf: ["logRecords", "log_records"],
    time: ["", ""],
};

/// An object key, borrowed from the record unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One JSON object level: its members other than the nested array, verbatim, and the array's
/// elements (arrays under both spellings, or repeated, are concatenated).
struct JsonLevel<'a, T> {
    members: Vec<(Key<'a>, &'a RawValue)>,
    children: Vec<T>,
    found: bool,
}

#[derive(Clone, Copy)]
struct LevelSeed<S> {
    names: [&'static str; 2],
    child: S,
}

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for LevelSeed<S> {
    type Value = JsonLevel<'de, S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for LevelSeed<S> {
    type Value = JsonLevel<'de, S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an OTLP/JSON object with {:?}", self.names[0])
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut level = JsonLevel {
            members: Vec::new(),
            children: Vec::new(),
            found: false,
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if self.names.contains(&&*key.0) {
                level.found = true;
                map.next_value_seed(SeqSeed {
                    child: self.child,
                    out: &mut level.children,
                })?;
            } else {
                level
                    .members
                    .push((key, map.next_value::<&'de RawValue>()?));
            }
        }
        Ok(level)
    }
}

/// An array whose elements are appended to `out`.
struct SeqSeed<'o, S, T> {
    child: S,
    out: &'o mut Vec<T>,
}

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for SeqSeed<'_, S, S::Value> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for SeqSeed<'_, S, S::Value> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element_seed(self.child)? {
            self.out.push(v);
        }
        Ok(())
    }
}

/// A leaf (span or log record), kept verbatim.
#[derive(Clone, Copy)]
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = &'de RawValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <&'de RawValue as de::Deserialize<'de>>::deserialize(d)
    }
}

/// The `traceId` / `trace_id` member of a leaf object, as the decoder reads it: hex, any case;
/// anything else (absent, not a string, not 32 hex digits, all zero) is no trace id. And its
/// event time (`time` names, a string or a number of nanoseconds), if any.
struct LeafSeed<'n>(&'n [&'static str; 2]);

impl<'de> DeserializeSeed<'de> for LeafSeed<'_> {
    type Value = (Option<TraceId>, Option<u64>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LeafSeed<'_> {
    type Value = (Option<TraceId>, Option<u64>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP/JSON span or log record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut time) = (None, None);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "traceId" || key.0 == "trace_id" {
                let raw = map.next_value::<&'de RawValue>()?;
                id = serde_json::from_str::<Key<'_>>(raw.get())
                    .ok()
                    .and_then(|s| hex_trace_id(&s.0));
            } else if !key.0.is_empty() && self.0.contains(&&*key.0) {
                let raw = map.next_value::<&'de RawValue>()?;
                let text = raw.get().trim_matches('"');
                time = text.parse::<u64>().ok().filter(|t| *t > 0);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok((id, time))
    }
}

fn hex_trace_id(s: &str) -> Option<TraceId> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        id[i] = (h * 16 + l) as u8;
    }
    TraceId::from_slice(&id)
}

type ScopeLevel<'a> = JsonLevel<'a, &'a RawValue>;
type ResourceLevel<'a> = JsonLevel<'a, ScopeLevel<'a>>;

fn split_json(
    payload: &[u8],
    names: &JsonNames,
    out: &mut Vec<(TraceKey, Vec<u8>)>,
) -> Result<SplitStats, SplitError> {
    let seed = LevelSeed {
        names: names.resource,
        child: LevelSeed {
            names: names.scope,
            child: LevelSeed {
                names: names.leaf,
                child: RawSeed,
            },
        },
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    let top = seed.deserialize(&mut de).map_err(SplitError::Json)?;
    de.end().map_err(SplitError::Json)?;
    if !top.found {
        // As the decoder: a request without its array is not OTLP/JSON.
        return Err(SplitError::Json(de::Error::missing_field(
            names.resource[0],
        )));
    }

    let mut items = Vec::new();
    let mut latest: Option<u64> = None;
    for (r, rs) in top.children.iter().enumerate() {
        for (s, ss) in rs.children.iter().enumerate() {
            for leaf in &ss.children {
                let mut de = serde_json::Deserializer::from_str(leaf.get());
                let (key, time) = LeafSeed(&names.time)
                    .deserialize(&mut de)
                    .map_err(SplitError::Json)?;
                if time.is_some() {
                    latest = latest.max(time);
                }
                items.push((key, r, s, *leaf));
            }
        }
    }
    let mut stats = SplitStats {
        items: items.len() as u32,
        without_trace: items.iter().filter(|i| i.0.is_none()).count() as u32,
        latest_event_nanos: latest.and_then(|t| i64::try_from(t).ok()),
        ..SplitStats::default()
    };
    let Some(first) = items.first().map(|i| i.0) else {
        return Ok(stats);
    };
    if items.iter().all(|i| i.0 == first) {
        out.push((TraceKey(first), payload.to_vec()));
        stats.records = 1;
        stats.passthrough = true;
        return Ok(stats);
    }
    items.sort_by_key(|i| i.0);
    let mut g0 = 0;
    while g0 < items.len() {
        let key = items[g0].0;
        let g1 = g0 + items[g0..].partition_point(|i| i.0 == key);
        let mut w = Vec::with_capacity(payload.len() / 2);
        write_json_group(&mut w, names, &top, &items[g0..g1]);
        out.push((TraceKey(key), w));
        stats.records += 1;
        g0 = g1;
    }
    Ok(stats)
}

fn write_json_str(w: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *w, s);
}

/// Opens an object with its verbatim members, then the array named `name`.
fn open_level(w: &mut Vec<u8>, members: &[(Key<'_>, &RawValue)], name: &str) {
    w.push(b'{');
    for (k, v) in members {
        write_json_str(w, &k.0);
        w.push(b':');
        w.extend_from_slice(v.get().as_bytes());
        w.push(b',');
    }
    write_json_str(w, name);
    w.extend_from_slice(b":[");
}

fn write_json_group(
    w: &mut Vec<u8>,
    names: &JsonNames,
    top: &JsonLevel<'_, ResourceLevel<'_>>,
    group: &[(Option<TraceId>, usize, usize, &RawValue)],
) {
    open_level(w, &top.members, names.resource[0]);
    let mut open: Option<(usize, usize)> = None;
    for &(_, r, s, leaf) in group {
        match open {
            Some((or, os)) if or == r && os == s => w.push(b','),
            Some((or, _)) if or == r => {
                w.extend_from_slice(b"]},");
                open_level(w, &top.children[r].children[s].members, names.leaf[0]);
            }
            prev => {
                if prev.is_some() {
                    w.extend_from_slice(b"]}]},");
                }
                open_level(w, &top.children[r].members, names.scope[0]);
                open_level(w, &top.children[r].children[s].members, names.leaf[0]);
            }
        }
        open = Some((r, s));
        w.extend_from_slice(leaf.get().as_bytes());
    }
    if open.is_some() {
        w.extend_from_slice(b"]}]}");
    }
    w.extend_from_slice(b"]}");
}
