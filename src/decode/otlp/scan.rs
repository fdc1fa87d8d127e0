//! Span summaries straight from the protobuf wire bytes of an `ExportTraceServiceRequest`.
//!
//! Decoding into prost messages, lean as `wire`'s are, allocates a `Vec` for every repeated field
//! of every span (resource spans, scope spans, spans, attributes, events) and needs the record as
//! `Bytes`, though a summary keeps a small part of a span. This scanner walks the wire format in
//! place over `&[u8]` and allocates only what the summaries own.
//!
//! It must accept and reject what prost 0.14 does for `wire::ExportTraceServiceRequest`, and yield
//! what `SpanDecoder::convert` yields from prost's message (`tests::scan` compares the two on
//! generated and garbled records), so it follows prost's rules:
//! - a scalar or string field that appears more than once: the last value wins;
//! - an embedded message field that appears more than once (a span's `status`, a resource, a
//!   key-value's value) is merged field by field; a repeated field appends;
//! - unknown fields are skipped by wire type, groups included (nested up to prost's recursion
//!   limit); a declared field of another wire type, a truncated field, a varint longer than ten
//!   bytes or past 2^64, wire type 6 or 7, tag 0 and a stray end-group are errors;
//! - fields come in any order: a resource's `service.name` may follow its spans on the wire, so a
//!   `ResourceSpans` is read twice, for its resource (skipping the spans) and then for its spans.
//!   Within a span, everything is gathered first and the summary built at the span's end.
//!
//! A record that fails leaves `out` as it was. Names interned for its spans before the failure
//! stay interned, within the interner's cap.

use super::{clamp_nanos, utf8, SpanBatchStats, SERVICE_NAME, UNKNOWN_SERVICE};
use crate::decode::ids::{span_id_from_bytes, trace_id_from_bytes};
use crate::decode::intern::Interner;
use crate::model::{AttrValue, SpanKind, SpanSummary, StatusCode};
use std::fmt;
use std::sync::Arc;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// prost's `RECURSION_LIMIT`: the budget of the top-level message's fields. prost takes one off
/// per embedded message and per nested group, and fails a skip once it is spent; the scanner
/// passes the same budget down so that deeply nested unknown groups fail where prost's do.
const RECURSION_LIMIT: u32 = 100;

/// Why a record is not valid protobuf, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    kind: ErrorKind,
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    InvalidVarint,
    InvalidKey,
    InvalidWireType(u8),
    InvalidTag,
    UnexpectedWireType { tag: u32, actual: u8, expected: u8 },
    BufferUnderflow,
    UnexpectedEndGroup,
    RecursionLimit,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::InvalidVarint => f.write_str("invalid varint")?,
            ErrorKind::InvalidKey => f.write_str("invalid key value")?,
            ErrorKind::InvalidWireType(w) => write!(f, "invalid wire type value: {w}")?,
            ErrorKind::InvalidTag => f.write_str("invalid tag value: 0")?,
            ErrorKind::UnexpectedWireType {
                tag,
                actual,
                expected,
            } => write!(
                f,
                "field {tag}: invalid wire type {actual} (expected {expected})"
            )?,
            ErrorKind::BufferUnderflow => f.write_str("buffer underflow")?,
            ErrorKind::UnexpectedEndGroup => f.write_str("unexpected end group tag")?,
            ErrorKind::RecursionLimit => f.write_str("recursion limit reached")?,
        }
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for ScanError {}

type Result<T> = std::result::Result<T, ScanError>;

/// A message's bytes: `buf[pos..end]`, positions absolute in the record so that errors and kept
/// strings can name them.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn more(&self) -> bool {
        self.pos < self.end
    }

    fn err(&self, kind: ErrorKind) -> ScanError {
        ScanError {
            kind,
            offset: self.pos,
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        match self.buf[self.pos..self.end].first() {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    fn varint_long(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf[self.pos..self.end].iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // The tenth byte may carry only bit 63.
                if i == 9 && b >= 2 {
                    break;
                }
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(self.err(ErrorKind::InvalidVarint))
    }

    /// A field's tag and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8)> {
        let at = *self;
        let key = self.varint()?;
        let Ok(key) = u32::try_from(key) else {
            return Err(at.err(ErrorKind::InvalidKey));
        };
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err(at.err(ErrorKind::InvalidWireType(wire_type)));
        }
        if key >> 3 == 0 {
            return Err(at.err(ErrorKind::InvalidTag));
        }
        Ok((key >> 3, wire_type))
    }

    #[inline]
    fn expect(&self, tag: u32, actual: u8, expected: u8) -> Result<()> {
        if actual == expected {
            Ok(())
        } else {
            Err(self.err(ErrorKind::UnexpectedWireType {
                tag,
                actual,
                expected,
            }))
        }
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        if self.end - self.pos < n {
            return Err(self.err(ErrorKind::BufferUnderflow));
        }
        self.pos += n;
        Ok(())
    }

    /// The next length-delimited value, as a reader of its bytes.
    #[inline]
    fn len_delimited(&mut self) -> Result<Reader<'a>> {
        let len = self.varint()?;
        if len > (self.end - self.pos) as u64 {
            return Err(self.err(ErrorKind::BufferUnderflow));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(Reader {
            buf: self.buf,
            pos: start,
            end: self.pos,
        })
    }

    /// A `bytes` (or `string`) field's value.
    #[inline]
    fn bytes(&mut self, tag: u32, wire_type: u8) -> Result<&'a [u8]> {
        self.expect(tag, wire_type, LEN)?;
        let r = self.len_delimited()?;
        Ok(&r.buf[r.pos..r.end])
    }

    /// An `int32`/`int64`/`bool` field's value, before the cast prost applies.
    #[inline]
    fn varint_field(&mut self, tag: u32, wire_type: u8) -> Result<u64> {
        self.expect(tag, wire_type, VARINT)?;
        self.varint()
    }

    /// A `fixed64`/`double` field's value, as bits.
    #[inline]
    fn fixed64_field(&mut self, tag: u32, wire_type: u8) -> Result<u64> {
        self.expect(tag, wire_type, FIXED64)?;
        let Some(bytes) = self.buf[self.pos..self.end].first_chunk::<8>() else {
            return Err(self.err(ErrorKind::BufferUnderflow));
        };
        self.pos += 8;
        Ok(u64::from_le_bytes(*bytes))
    }

    /// An embedded message field's bytes. `ctx` is the recursion budget of the enclosing
    /// message's fields; the embedded message's fields get one less.
    #[inline]
    fn message(&mut self, tag: u32, wire_type: u8, ctx: u32) -> Result<Reader<'a>> {
        self.expect(tag, wire_type, LEN)?;
        if ctx == 0 {
            return Err(self.err(ErrorKind::RecursionLimit));
        }
        self.len_delimited()
    }

    /// Skips an undeclared field as prost's `skip_field` does, groups included.
    fn skip(&mut self, tag: u32, wire_type: u8, ctx: u32) -> Result<()> {
        if ctx == 0 {
            return Err(self.err(ErrorKind::RecursionLimit));
        }
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.advance(8),
            LEN => self.len_delimited().map(drop),
            START_GROUP => loop {
                let at = *self;
                let (inner_tag, inner_type) = self.key()?;
                if inner_type == END_GROUP {
                    if inner_tag != tag {
                        return Err(at.err(ErrorKind::UnexpectedEndGroup));
                    }
                    return Ok(());
                }
                self.skip(inner_tag, inner_type, ctx - 1)?;
            },
            END_GROUP => Err(self.err(ErrorKind::UnexpectedEndGroup)),
            FIXED32 => self.advance(4),
            other => Err(self.err(ErrorKind::InvalidWireType(other))),
        }
    }
}

/// An `AnyValue` as far as it is known before it is kept (or not): strings are positions in the
/// record, converted only for a kept attribute.
#[derive(Clone, Copy, Debug, Default)]
pub(super) enum Raw {
    /// No value, or only kinds `wire::AnyValue` does not declare (arrays, key-value lists).
    #[default]
    Unset,
    Str {
        start: usize,
        end: usize,
    },
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes,
}

impl Raw {
    fn str<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        match *self {
            Raw::Str { start, end } => Some(&record[start..end]),
            _ => None,
        }
    }

    /// Whether `attr_value` is `Some`, without converting.
    fn attr_value_is_some(&self) -> bool {
        matches!(
            self,
            Raw::Str { .. } | Raw::Bool(_) | Raw::Int(_) | Raw::Double(_)
        )
    }

    /// `super::attr_value`'s conversion.
    fn attr_value(&self, record: &[u8]) -> Option<AttrValue> {
        Some(match *self {
            Raw::Str { start, end } => {
                AttrValue::Str(String::from_utf8_lossy(&record[start..end]).into())
            }
            Raw::Bool(b) => AttrValue::Bool(b),
            Raw::Int(i) => AttrValue::Int(i),
            Raw::Double(d) => AttrValue::Double(d),
            Raw::Unset | Raw::Bytes => return None,
        })
    }
}

/// Merges one `AnyValue` message into `value`: its last declared oneof field wins, as prost's
/// oneof merge of scalars and bytes replaces.
fn any_value(mut r: Reader<'_>, ctx: u32, value: &mut Raw) -> Result<()> {
    while r.more() {
        let (tag, wire_type) = r.key()?;
        match tag {
            1 => {
                r.expect(tag, wire_type, LEN)?;
                let s = r.len_delimited()?;
                *value = Raw::Str {
                    start: s.pos,
                    end: s.end,
                };
            }
            2 => *value = Raw::Bool(r.varint_field(tag, wire_type)? != 0),
            3 => *value = Raw::Int(r.varint_field(tag, wire_type)? as i64),
            4 => *value = Raw::Double(f64::from_bits(r.fixed64_field(tag, wire_type)?)),
            7 => {
                r.bytes(tag, wire_type)?;
                *value = Raw::Bytes;
            }
            _ => r.skip(tag, wire_type, ctx)?,
        }
    }
    Ok(())
}

/// A `KeyValue`'s key (the last one on the wire) and its value (every one merged). Every value is
/// read, kept or not: prost rejects a record with a malformed one.
fn key_value<'a>(mut r: Reader<'a>, ctx: u32) -> Result<(&'a [u8], Raw)> {
    let mut key: &[u8] = &[];
    let mut value = Raw::Unset;
    while r.more() {
        let (tag, wire_type) = r.key()?;
        match tag {
            1 => key = r.bytes(tag, wire_type)?,
            2 => any_value(r.message(tag, wire_type, ctx)?, ctx - 1, &mut value)?,
            _ => r.skip(tag, wire_type, ctx)?,
        }
    }
    Ok((key, value))
}

/// A `Resource`: `service` becomes the value of the first `service.name` attribute, over every
/// occurrence of the resource (prost appends their attributes).
fn resource(mut r: Reader<'_>, ctx: u32, service: &mut Option<Raw>) -> Result<()> {
    while r.more() {
        let (tag, wire_type) = r.key()?;
        match tag {
            1 => {
                let (key, value) = key_value(r.message(tag, wire_type, ctx)?, ctx - 1)?;
                if service.is_none() && key == SERVICE_NAME {
                    *service = Some(value);
                }
            }
            _ => r.skip(tag, wire_type, ctx)?,
        }
    }
    Ok(())
}

/// An `Event`: whether it is named `exception`, and the value of its first `exception.type`
/// attribute if it has one.
fn event(mut r: Reader<'_>, ctx: u32) -> Result<(bool, Option<Raw>)> {
    let mut name: &[u8] = &[];
    let mut exception_type = None;
    while r.more() {
        let (tag, wire_type) = r.key()?;
        match tag {
            2 => name = r.bytes(tag, wire_type)?,
            3 => {
                let (key, value) = key_value(r.message(tag, wire_type, ctx)?, ctx - 1)?;
                if exception_type.is_none() && key == b"exception.type" {
                    exception_type = Some(value);
                }
            }
            _ => r.skip(tag, wire_type, ctx)?,
        }
    }
    Ok((name == b"exception", exception_type))
}

/// The walk over one record.
pub(super) struct Scan<'a, 'd> {
    pub(super) record: &'a [u8],
    pub(super) interner: &'d mut Interner,
    pub(super) keep: &'d [Arc<str>],
    /// Per span, one slot per `keep` entry: the value of the first attribute of that key. Reused
    /// from span to span (and record to record) so that a span allocates nothing for it.
    pub(super) kept: &'d mut Vec<Option<Raw>>,
    pub(super) out: &'d mut Vec<SpanSummary>,
}

impl Scan<'_, '_> {
    /// Appends the record's spans to `out`; on an error, `out` is left as it was.
    pub(super) fn run(mut self) -> Result<SpanBatchStats> {
        let before = self.out.len();
        let mut stats = SpanBatchStats::default();
        let result = self.request(&mut stats);
        if result.is_err() {
            self.out.truncate(before);
        }
        result.map(|()| stats)
    }

    fn request(&mut self, stats: &mut SpanBatchStats) -> Result<()> {
        let ctx = RECURSION_LIMIT;
        let mut r = Reader {
            buf: self.record,
            pos: 0,
            end: self.record.len(),
        };
        while r.more() {
            let (tag, wire_type) = r.key()?;
            match tag {
                1 => self.resource_spans(r.message(tag, wire_type, ctx)?, ctx - 1, stats)?,
                _ => r.skip(tag, wire_type, ctx)?,
            }
        }
        Ok(())
    }

    fn resource_spans(
        &mut self,
        r: Reader<'_>,
        ctx: u32,
        stats: &mut SpanBatchStats,
    ) -> Result<()> {
        // First pass: the resource, wherever it is; the scope spans are only delimited.
        let mut service = None;
        let mut first = r;
        while first.more() {
            let (tag, wire_type) = first.key()?;
            match tag {
                1 => resource(first.message(tag, wire_type, ctx)?, ctx - 1, &mut service)?,
                2 => drop(first.message(tag, wire_type, ctx)?),
                _ => first.skip(tag, wire_type, ctx)?,
            }
        }
        let name = match service.and_then(|v| v.str(self.record)) {
            Some(s) => utf8(s),
            None => UNKNOWN_SERVICE,
        };
        let service = self.interner.intern(name);
        // Second pass: the spans. Everything else was checked by the first.
        let mut second = r;
        while second.more() {
            let (tag, wire_type) = second.key()?;
            match tag {
                2 => self.scope_spans(
                    second.message(tag, wire_type, ctx)?,
                    ctx - 1,
                    &service,
                    stats,
                )?,
                1 => drop(second.message(tag, wire_type, ctx)?),
                _ => second.skip(tag, wire_type, ctx)?,
            }
        }
        Ok(())
    }

    fn scope_spans(
        &mut self,
        mut r: Reader<'_>,
        ctx: u32,
        service: &Arc<str>,
        stats: &mut SpanBatchStats,
    ) -> Result<()> {
        while r.more() {
            let (tag, wire_type) = r.key()?;
            match tag {
                2 => self.span(r.message(tag, wire_type, ctx)?, ctx - 1, service, stats)?,
                _ => r.skip(tag, wire_type, ctx)?,
            }
        }
        Ok(())
    }

    fn span(
        &mut self,
        mut r: Reader<'_>,
        ctx: u32,
        service: &Arc<str>,
        stats: &mut SpanBatchStats,
    ) -> Result<()> {
        let mut trace_id: &[u8] = &[];
        let mut span_id: &[u8] = &[];
        let mut parent_span_id: &[u8] = &[];
        let mut name: &[u8] = &[];
        let mut kind = 0i32;
        let mut start = 0u64;
        let mut end = 0u64;
        let mut status_message: &[u8] = &[];
        let mut status_code = 0i32;
        // `Some` once an event named `exception` was seen: only the first one counts.
        let mut exception: Option<Option<Raw>> = None;
        self.kept.clear();
        self.kept.resize(self.keep.len(), None);
        while r.more() {
            let (tag, wire_type) = r.key()?;
            match tag {
                1 => trace_id = r.bytes(tag, wire_type)?,
                2 => span_id = r.bytes(tag, wire_type)?,
                4 => parent_span_id = r.bytes(tag, wire_type)?,
                5 => name = r.bytes(tag, wire_type)?,
                // prost's int32 truncates the 64-bit varint.
                6 => kind = r.varint_field(tag, wire_type)? as i32,
                7 => start = r.fixed64_field(tag, wire_type)?,
                8 => end = r.fixed64_field(tag, wire_type)?,
                9 => {
                    let (key, value) = key_value(r.message(tag, wire_type, ctx)?, ctx - 1)?;
                    for (slot, k) in self.kept.iter_mut().zip(self.keep) {
                        if slot.is_none() && k.as_bytes() == key {
                            *slot = Some(value);
                        }
                    }
                }
                11 => {
                    let (is_exception, exception_type) =
                        event(r.message(tag, wire_type, ctx)?, ctx - 1)?;
                    if is_exception && exception.is_none() {
                        exception = Some(exception_type);
                    }
                }
                15 => {
                    let mut s = r.message(tag, wire_type, ctx)?;
                    while s.more() {
                        let (tag, wire_type) = s.key()?;
                        match tag {
                            2 => status_message = s.bytes(tag, wire_type)?,
                            3 => status_code = s.varint_field(tag, wire_type)? as i32,
                            _ => s.skip(tag, wire_type, ctx - 1)?,
                        }
                    }
                }
                _ => r.skip(tag, wire_type, ctx)?,
            }
        }

        let (Some(trace_id), Some(span_id)) =
            (trace_id_from_bytes(trace_id), span_id_from_bytes(span_id))
        else {
            stats.invalid_ids += 1;
            return Ok(());
        };
        let record = self.record;
        let kept = self.kept.iter().flatten();
        let count = kept.filter(|v| v.attr_value_is_some()).count();
        // Exactly as many as are kept, and no allocation when none is.
        let mut attributes = Vec::with_capacity(count);
        if count > 0 {
            for (slot, key) in self.kept.iter().zip(self.keep) {
                if let Some(value) = slot.and_then(|v| v.attr_value(record)) {
                    attributes.push((key.clone(), value));
                }
            }
        }
        let exception_type = exception
            .flatten()
            .and_then(|v| v.str(record))
            .map(|s| self.interner.intern(utf8(s)));
        self.out.push(SpanSummary {
            trace_id,
            span_id,
            parent_span_id: span_id_from_bytes(parent_span_id),
            service: service.clone(),
            name: self.interner.intern(utf8(name)),
            kind: SpanKind::from_otlp(kind),
            status: StatusCode::from_otlp(status_code),
            status_message: (!status_message.is_empty())
                .then(|| String::from_utf8_lossy(status_message).into()),
            start_unix_nanos: clamp_nanos(start),
            end_unix_nanos: clamp_nanos(end),
            exception_type,
            attributes,
        });
        Ok(())
    }
}
