//! Trace and span id normalisation for ids found in log lines.
//!
//! Accepted trace id shapes, in the order they are tried:
//! - a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), which also yields the span id;
//! - 32 hex digits (any case); 16 hex digits (a 64-bit id, left-padded with zeros as the
//!   OpenTelemetry-Datadog and Zipkin bridges do);
//! - an AWS X-Ray id (`1-5759e988-bd862e3fe1be46a994272793`), whose hex digits are the 128 bits;
//! - a decimal number up to 2^64-1 (Datadog's `dd.trace_id`), where the caller says the field is
//!   decimal, or where the digits cannot be hex (length other than 16 or 32);
//! - a Google Cloud trace resource name, `projects/<project>/traces/<32 hex>`;
//! - with `hex_padded` (Jaeger), 1 to 32 hex digits, left-padded with zeros.
//!
//! [`parse_context`] reads the propagation headers that carry trace and span id together: W3C
//! `traceparent`, B3 single (`<trace>-<span>[-<sampled>[-<parent>]]`), Jaeger `uber-trace-id`
//! (`<trace>:<span>:<parent>:<flags>`) and the X-Ray header (`Root=1-…;Parent=<16 hex>;…`).
//!
//! A 16- or 32-digit string of decimal digits is ambiguous; it is read as hex unless the field is
//! declared decimal, because OpenTelemetry ids are hex and most logs carrying them are OTel's.
//! All-zero ids mean "no id" (W3C), so they yield `None`.
//!
//! Every trace id comes with its width ([`TraceIdWidth`]): decimal ids, 16 hex digits, and
//! `hex_padded` ids of at most 16 digits are 64-bit; everything else is 128-bit, including 32
//! hex digits whose first 16 are zeros (written as 128 bits, so matched as 128 bits). The
//! width is decided by how the id was written, never guessed from leading zeros afterwards.

use crate::model::{SpanId, TraceId, TraceIdWidth};

/// A trace id as a log wrote it: the 128-bit value (a 64-bit id zero-padded) and its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogTraceId {
    /// The id, 64-bit ids zero-padded.
    pub id: TraceId,
    /// How many bits were written.
    pub width: TraceIdWidth,
}

impl LogTraceId {
    fn full(id: TraceId) -> Self {
        LogTraceId {
            id,
            width: TraceIdWidth::Bits128,
        }
    }
}

/// How an id field is encoded, when the rules know better than the guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdEncoding {
    /// Guess from the shape (see the module docs).
    #[default]
    Auto,
    /// Hex digits.
    Hex,
    /// Decimal 64-bit number (Datadog).
    Decimal,
    /// Hex digits of any length up to the id's width, left-padded with zeros (Jaeger).
    HexPadded,
}

impl IdEncoding {
    /// Whether `s` would be read as a decimal number under this encoding.
    pub fn reads_as_decimal(self, s: &str) -> bool {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            IdEncoding::Decimal => digits,
            IdEncoding::Auto => digits && s.len() != 16 && s.len() != 32,
            IdEncoding::Hex | IdEncoding::HexPadded => false,
        }
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses exactly `2*N` hex digits into `N` bytes.
fn parse_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
}

fn parse_decimal_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn from_u64(v: u64) -> Option<LogTraceId> {
    TraceId::from_low64(v).map(|id| LogTraceId {
        id,
        width: TraceIdWidth::Bits64,
    })
}

/// A parsed W3C `traceparent`: trace id and parent (span) id.
pub fn parse_traceparent(s: &str) -> Option<(TraceId, Option<SpanId>)> {
    let b = s.trim().as_bytes();
    // version "00" is 55 bytes; later versions may append fields after a '-'.
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    if b.len() > 55 && b[55] != b'-' {
        return None;
    }
    parse_hex::<1>(&b[0..2]).filter(|v| v[0] != 0xff)?;
    let trace = TraceId::from_slice(&parse_hex::<16>(&b[3..35])?)?;
    let span = parse_hex::<8>(&b[36..52]).and_then(|s| SpanId::from_slice(&s));
    Some((trace, span))
}

/// Up to `2*N` hex digits, left-padded with zeros.
fn parse_hex_padded<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.is_empty() || s.len() > 2 * N {
        return None;
    }
    let mut digits = [b'0'; 32];
    digits[2 * N - s.len()..2 * N].copy_from_slice(s);
    parse_hex::<N>(&digits[..2 * N])
}

fn full_from_hex32(s: &[u8]) -> Option<LogTraceId> {
    parse_hex::<16>(s)
        .and_then(|id| TraceId::from_slice(&id))
        .map(LogTraceId::full)
}

/// Normalises a trace id written in any of the shapes in the module docs.
pub fn parse_trace_id(s: &str, encoding: IdEncoding) -> Option<LogTraceId> {
    let s = s.trim().trim_matches('"');
    match encoding {
        IdEncoding::Decimal => return parse_decimal_u64(s).and_then(from_u64),
        IdEncoding::HexPadded => {
            let id =
                parse_hex_padded::<16>(s.as_bytes()).and_then(|id| TraceId::from_slice(&id))?;
            let width = if s.len() <= 16 {
                TraceIdWidth::Bits64
            } else {
                TraceIdWidth::Bits128
            };
            return Some(LogTraceId { id, width });
        }
        _ => {}
    }
    // Google Cloud: projects/<project>/traces/<id>
    if let Some(rest) = s.strip_prefix("projects/") {
        let (_, id) = rest.split_once("/traces/")?;
        return full_from_hex32(id.as_bytes());
    }
    let b = s.as_bytes();
    match b.len() {
        32 => {
            if let Some(id) = full_from_hex32(b) {
                return Some(id);
            }
        }
        16 => {
            if let Some(id) = parse_hex::<8>(b) {
                return from_u64(u64::from_be_bytes(id));
            }
        }
        55.. if b[2] == b'-' => return parse_traceparent(s).map(|(t, _)| LogTraceId::full(t)),
        35 if b.starts_with(b"1-") && b[10] == b'-' => {
            let mut joined = [0u8; 32];
            joined[..8].copy_from_slice(&b[2..10]);
            joined[8..].copy_from_slice(&b[11..35]);
            return full_from_hex32(&joined);
        }
        _ => {}
    }
    if encoding == IdEncoding::Auto {
        return parse_decimal_u64(s).and_then(from_u64);
    }
    None
}

/// Normalises a span id: 16 hex digits, or a decimal 64-bit number where declared or unambiguous.
pub fn parse_span_id(s: &str, encoding: IdEncoding) -> Option<SpanId> {
    let s = s.trim().trim_matches('"');
    let as_decimal =
        |s: &str| parse_decimal_u64(s).and_then(|v| SpanId::from_slice(&v.to_be_bytes()));
    match encoding {
        IdEncoding::Decimal => as_decimal(s),
        IdEncoding::HexPadded => {
            parse_hex_padded::<8>(s.as_bytes()).and_then(|id| SpanId::from_slice(&id))
        }
        _ => match parse_hex::<8>(s.as_bytes()) {
            Some(id) => SpanId::from_slice(&id),
            None if encoding == IdEncoding::Auto => as_decimal(s),
            None => None,
        },
    }
}

/// Trace and span id from a propagation header value: W3C `traceparent`, B3 single, Jaeger
/// `uber-trace-id`, or the X-Ray trace header (see the module docs). `None` unless the value is
/// well formed as one of them.
pub fn parse_context(s: &str) -> Option<(LogTraceId, Option<SpanId>)> {
    let s = s.trim().trim_matches('"');
    let b = s.as_bytes();
    if b.len() >= 55 && b[2] == b'-' {
        return parse_traceparent(s).map(|(t, sp)| (LogTraceId::full(t), sp));
    }
    if s.contains('=') {
        return parse_xray_header(s);
    }
    if s.contains(':') {
        // Jaeger: trace:span:parent:flags, trace and span hex up to 32 / 16 digits.
        let mut parts = s.split(':');
        let (t, sp, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|c| c.is_ascii_hexdigit())
        };
        if parts.next().is_some() || !hex(parent, 16) || !hex(flags, 2) {
            return None;
        }
        let trace = parse_trace_id(t, IdEncoding::HexPadded)?;
        return Some((trace, parse_span_id(sp, IdEncoding::HexPadded)));
    }
    if b.len() == 35 && b.starts_with(b"1-") && b[10] == b'-' {
        return parse_trace_id(s, IdEncoding::Hex).map(|t| (t, None));
    }
    // B3 single: trace(16|32)-span(16)[-sampled[-parent(16)]]
    let mut parts = s.split('-');
    let (t, sp) = (parts.next()?, parts.next()?);
    if t.len() != 16 && t.len() != 32 {
        return None;
    }
    if let Some(sampled) = parts.next() {
        if !matches!(sampled, "0" | "1" | "d") {
            return None;
        }
        if let Some(parent) = parts.next() {
            parse_hex::<8>(parent.as_bytes())?;
        }
        if parts.next().is_some() {
            return None;
        }
    }
    let trace = parse_trace_id(t, IdEncoding::Hex)?;
    let span = SpanId::from_slice(&parse_hex::<8>(sp.as_bytes())?);
    Some((trace, span))
}

/// `Root=1-…;Parent=…;Sampled=…` in any order (other keys, such as ALB's `Self`, ignored).
fn parse_xray_header(s: &str) -> Option<(LogTraceId, Option<SpanId>)> {
    let (mut root, mut parent) = (None, None);
    for kv in s.split(';') {
        match kv.trim().split_once('=')? {
            ("Root", v) => root = Some(v),
            ("Parent", v) => parent = Some(v),
            _ => {}
        }
    }
    let root = root?;
    if !(root.len() == 35 && root.starts_with("1-")) {
        return None;
    }
    let trace = parse_trace_id(root, IdEncoding::Hex)?;
    let span = match parent {
        Some(p) => Some(parse_span_id(p, IdEncoding::Hex)?),
        None => None,
    };
    Some((trace, span))
}

/// Trace id from raw OTLP bytes (16 bytes; empty or all-zero means none).
pub fn trace_id_from_bytes(b: &[u8]) -> Option<TraceId> {
    TraceId::from_slice(b)
}

/// Span id from raw OTLP bytes (8 bytes; empty or all-zero means none).
pub fn span_id_from_bytes(b: &[u8]) -> Option<SpanId> {
    SpanId::from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn hex_trace_ids_of_both_widths_and_cases() {
        assert_eq!(
            parse_trace_id(T, IdEncoding::Auto).unwrap().id.to_string(),
            T
        );
        assert_eq!(
            parse_trace_id(&T.to_uppercase(), IdEncoding::Auto)
                .unwrap()
                .id
                .to_string(),
            T
        );
        assert_eq!(
            parse_trace_id("a3ce929d0e0e4736", IdEncoding::Auto)
                .unwrap()
                .id
                .to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
    }

    #[test]
    fn traceparent_yields_trace_and_span() {
        let (t, s) = parse_traceparent(&format!("00-{T}-00f067aa0ba902b7-01")).unwrap();
        assert_eq!(t.to_string(), T);
        assert_eq!(s.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(parse_traceparent(&format!("ff-{T}-00f067aa0ba902b7-01")).is_none());
        assert!(parse_traceparent("00-zz").is_none());
    }

    #[test]
    fn datadog_decimal_ids() {
        // 2^64-1
        let t = parse_trace_id("18446744073709551615", IdEncoding::Decimal)
            .unwrap()
            .id;
        assert_eq!(t.to_string(), "0000000000000000ffffffffffffffff");
        // 19 digits cannot be hex of either width: decimal even in auto.
        let t = parse_trace_id("1234567890123456789", IdEncoding::Auto)
            .unwrap()
            .id;
        assert_eq!(
            t.to_string(),
            format!("0000000000000000{:016x}", 1234567890123456789u64)
        );
        assert!(parse_trace_id("18446744073709551616", IdEncoding::Decimal).is_none());
        assert_eq!(
            parse_span_id("255", IdEncoding::Decimal)
                .unwrap()
                .to_string(),
            "00000000000000ff"
        );
    }

    #[test]
    fn xray_ids() {
        let t = parse_trace_id("1-5759e988-bd862e3fe1be46a994272793", IdEncoding::Auto)
            .unwrap()
            .id;
        assert_eq!(t.to_string(), "5759e988bd862e3fe1be46a994272793");
    }

    #[test]
    fn google_cloud_resource_names() {
        let t = parse_trace_id(&format!("projects/my-project/traces/{T}"), IdEncoding::Auto);
        assert_eq!(t.unwrap().id.to_string(), T);
        assert!(parse_trace_id("projects/p/traces/42", IdEncoding::Auto).is_none());
        assert!(parse_trace_id("projects/p/spans/x", IdEncoding::Auto).is_none());
    }

    #[test]
    fn jaeger_ids_are_padded() {
        let t = parse_trace_id("deadbeef", IdEncoding::HexPadded)
            .unwrap()
            .id;
        assert_eq!(t.to_string(), "000000000000000000000000deadbeef");
        assert_eq!(
            parse_span_id("beef", IdEncoding::HexPadded)
                .unwrap()
                .to_string(),
            "000000000000beef"
        );
        assert!(parse_trace_id(&"a".repeat(33), IdEncoding::HexPadded).is_none());
        assert!(parse_trace_id("xyz", IdEncoding::HexPadded).is_none());
    }

    #[test]
    fn propagation_headers() {
        let s = "00f067aa0ba902b7";
        let ctx =
            |v: &str| parse_context(v).map(|(t, s)| (t.id.to_string(), s.map(|s| s.to_string())));
        let full = Some((T.to_string(), Some(s.to_string())));
        assert_eq!(ctx(&format!("00-{T}-{s}-01")), full);
        // B3 single, https://github.com/openzipkin/b3-propagation (single header)
        assert_eq!(ctx(&format!("{T}-{s}-1")), full);
        assert_eq!(ctx(&format!("{T}-{s}")), full);
        assert_eq!(ctx(&format!("{T}-{s}-d-{s}")), full);
        assert_eq!(ctx(&format!("{T}-{s}-x")), None);
        // Jaeger, https://www.jaegertracing.io/docs/client-libraries/#propagation-format
        assert_eq!(ctx(&format!("{T}:{s}:0:1")), full);
        assert_eq!(
            ctx("deadbeef:beef:0:01"),
            Some((
                format!("{:032x}", 0xdeadbeefu32),
                Some("000000000000beef".into())
            ))
        );
        assert_eq!(ctx("deadbeef:beef:0"), None);
        // X-Ray, https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader
        let xray = format!("1-{}-{}", &T[..8], &T[8..]);
        assert_eq!(ctx(&format!("Root={xray};Parent={s};Sampled=1")), full);
        assert_eq!(
            ctx(&format!(
                "Self=1-67891234-12456789abcdef012345678;Root={xray}"
            )),
            Some((T.to_string(), None))
        );
        assert_eq!(ctx(&xray), Some((T.to_string(), None)));
        assert_eq!(ctx("Root=1-5759e988;Parent=x"), None);
        assert_eq!(ctx("1"), None);
    }

    /// The width comes from how the id was written: the join matches 64-bit ids on the low half
    /// only, so a 128-bit id must never be taken for one (nor the reverse).
    #[test]
    fn widths_follow_the_written_shape() {
        use TraceIdWidth::{Bits128, Bits64};
        let w = |s: &str, e: IdEncoding| parse_trace_id(s, e).map(|t| t.width);
        assert_eq!(w(T, IdEncoding::Auto), Some(Bits128));
        let high_zero = format!("{:032x}", 0xa3ce929d0e0e4736u64);
        assert_eq!(w(&high_zero, IdEncoding::Auto), Some(Bits128));
        assert_eq!(w(&high_zero, IdEncoding::HexPadded), Some(Bits128));
        assert_eq!(w("a3ce929d0e0e4736", IdEncoding::Auto), Some(Bits64));
        assert_eq!(w("a3ce929d0e0e4736", IdEncoding::Hex), Some(Bits64));
        assert_eq!(w("1234567890123456789", IdEncoding::Auto), Some(Bits64));
        assert_eq!(w("42", IdEncoding::Decimal), Some(Bits64));
        assert_eq!(w("deadbeef", IdEncoding::HexPadded), Some(Bits64));
        assert_eq!(w(&"f".repeat(17), IdEncoding::HexPadded), Some(Bits128));
        assert_eq!(
            w("1-5759e988-bd862e3fe1be46a994272793", IdEncoding::Auto),
            Some(Bits128)
        );
        assert_eq!(
            w(&format!("projects/p/traces/{T}"), IdEncoding::Auto),
            Some(Bits128)
        );
        let cw = |v: &str| parse_context(v).map(|(t, _)| t.width);
        let s = "00f067aa0ba902b7";
        assert_eq!(cw(&format!("00-{T}-{s}-01")), Some(Bits128));
        assert_eq!(cw(&format!("{T}-{s}-1")), Some(Bits128));
        assert_eq!(cw(&format!("{}-{s}-1", &T[16..])), Some(Bits64));
        assert_eq!(cw(&format!("{T}:{s}:0:1")), Some(Bits128));
        assert_eq!(cw(&format!("{}:{s}:0:1", &T[16..])), Some(Bits64));
        assert_eq!(cw("deadbeef:beef:0:1"), Some(Bits64));
        let xray = format!("Root=1-{}-{};Parent={s}", &T[..8], &T[8..]);
        assert_eq!(cw(&xray), Some(Bits128));
    }

    #[test]
    fn zero_and_garbage_mean_none() {
        assert!(parse_trace_id(&"0".repeat(32), IdEncoding::Auto).is_none());
        assert!(parse_trace_id("0", IdEncoding::Auto).is_none());
        assert!(parse_trace_id("not-an-id", IdEncoding::Auto).is_none());
        assert!(parse_trace_id("", IdEncoding::Auto).is_none());
        assert!(parse_span_id("0000000000000000", IdEncoding::Auto).is_none());
        assert!(trace_id_from_bytes(&[]).is_none());
        assert!(trace_id_from_bytes(&[0; 16]).is_none());
        assert!(span_id_from_bytes(&[1; 7]).is_none());
    }
}
