//! Hand-written matchers for the shipped text rules that cost most per line.
//!
//! A line with ids runs three or four rules; through the regex engines each costs a one-pass
//! DFA or a bounded backtracker (the key=value alternations are not one-pass), or a forward, a
//! reverse and a capturing pass. These patterns are simple enough to match by hand in a few
//! byte comparisons. A matcher is used only for the exact pattern text it was written for (a
//! rules file that changes a pattern gets the regex), and it returns the regex's own answer:
//! the leftmost-first match and its groups. Where a pattern's meaning depends on Unicode case
//! folding (`(?i)s` also matches `ſ`, U+017F), the matcher defers to the regex on such lines.
//! The tests compare every matcher with its regex on generated lines.

use super::{G_LEVEL, G_SPAN_ID, G_TIMESTAMP, G_TRACEPARENT, G_TRACE_ID};

/// Byte ranges of the groups a match captured, by group index (see [`super::GROUPS`]).
pub type Caps = [Option<(usize, usize)>; 7];

/// What a matcher says about a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The regex's leftmost-first match has these groups.
    Match(Caps),
    /// The regex does not match.
    NoMatch,
    /// This line needs the regex.
    Defer,
}

/// A shipped rule matched by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// `leading_time_and_level`.
    LeadingTimeAndLevel,
    /// `klog`.
    Klog,
    /// `trace_id_key_value`.
    TraceIdKeyValue,
    /// `span_id_key_value`.
    SpanIdKeyValue,
    /// `sleuth`.
    Sleuth,
    /// `xray_trace_id`.
    XrayTraceId,
    /// `bare_traceparent`.
    BareTraceparent,
    /// `b3_single`.
    B3Single,
    /// `w3c_traceparent`.
    W3cTraceparent,
    /// `spring_boot_correlation`.
    SpringBootCorrelation,
    /// `jaeger`.
    Jaeger,
}

const PATTERNS: [(&str, Fast); 11] = [
    (
        r#"^(?P<timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)[ \t]+\[?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?[ \t]"#,
        Fast::LeadingTimeAndLevel,
    ),
    (
        r#"^(?P<level>[IWEF])[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[ \t]+[0-9]+ [^ \t:\]]+:[0-9]+\] "#,
        Fast::Klog,
    ),
    (
        r#"(?i)(?-u:\b)(?:trace[_.]?id|otelTraceID)[=:][ \t]*"?(?P<trace_id>1-[0-9a-f]{8}-[0-9a-f]{24}|[0-9a-f]{32}|[0-9a-f]{16}|[0-9]{1,20})(?-u:\b)"#,
        Fast::TraceIdKeyValue,
    ),
    (
        r#"(?i)(?-u:\b)(?:span[_.]?id|otelSpanID|segment[_.]?id)[=:][ \t]*"?(?P<span_id>[0-9a-f]{16}|[0-9]{1,20})(?-u:\b)"#,
        Fast::SpanIdKeyValue,
    ),
    (
        r#"\[[^\[\], \t]*,(?P<trace_id>[0-9a-f]{32}|[0-9a-f]{16}),(?P<span_id>[0-9a-f]{16})(?:,(?:true|false))?\]"#,
        Fast::Sleuth,
    ),
    (
        r#"(?:^|[^0-9A-Za-z=-])(?P<trace_id>1-[0-9a-f]{8}-[0-9a-f]{24})(?-u:\b)(?:.*?(?-u:\b)[Ss]egment[_ ]?[Ii][Dd][=:][ \t]*"?(?P<span_id>[0-9a-f]{16})(?-u:\b))?"#,
        Fast::XrayTraceId,
    ),
    (
        r#"(?:^|[ \t"=])(?P<traceparent>00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})(?:$|[ \t",])"#,
        Fast::BareTraceparent,
    ),
    (
        r#"(?i)(?-u:\b)b3[=:][ \t]*"?(?P<traceparent>(?:[0-9a-f]{32}|[0-9a-f]{16})-[0-9a-f]{16}(?:-[01d](?:-[0-9a-f]{16})?)?)(?-u:\b)"#,
        Fast::B3Single,
    ),
    (
        r#"(?i)traceparent[=:][ \t]*"?(?P<traceparent>[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"#,
        Fast::W3cTraceparent,
    ),
    (
        r#"\[(?P<trace_id>[0-9a-fA-F]{32})-(?P<span_id>[0-9a-fA-F]{16})\]"#,
        Fast::SpringBootCorrelation,
    ),
    (
        r#"(?i)uber-trace-id[=:][ \t]*"?(?P<traceparent>[0-9a-f]{1,32}:[0-9a-f]{1,16}:[0-9a-f]{1,16}:[0-9a-f]{1,2})(?-u:\b)"#,
        Fast::Jaeger,
    ),
];

impl Fast {
    /// The matcher written for exactly this pattern, if any.
    pub fn for_pattern(pattern: &str) -> Option<Fast> {
        PATTERNS
            .iter()
            .find(|(p, _)| *p == pattern)
            .map(|(_, f)| *f)
    }

    /// The leftmost-first match in `text`, none of which starts before `from` (the caller knows
    /// that from the prefilter; 0 otherwise).
    pub fn find(self, text: &str, from: usize) -> Outcome {
        let b = text.as_bytes();
        let one = |g: usize, span: Option<(usize, usize)>| {
            span.map_or(Outcome::NoMatch, |s| {
                let mut caps = [None; 7];
                caps[g] = Some(s);
                Outcome::Match(caps)
            })
        };
        match self {
            Fast::LeadingTimeAndLevel => leading_time_and_level(b),
            Fast::Klog => one(G_LEVEL, klog(b)),
            Fast::TraceIdKeyValue => one(G_TRACE_ID, trace_id_key_value(b, from)),
            Fast::SpanIdKeyValue => {
                // `(?i)s` matches `ſ` too: `ſpan_id=…` is a match this scan would miss.
                if !text.is_ascii() && text.contains('\u{17f}') {
                    return Outcome::Defer;
                }
                one(G_SPAN_ID, span_id_key_value(b, from))
            }
            Fast::Sleuth => sleuth(b, from),
            Fast::XrayTraceId => xray_trace_id(b, from),
            Fast::BareTraceparent => one(G_TRACEPARENT, bare_traceparent(b, from)),
            Fast::B3Single => one(G_TRACEPARENT, b3_single(b, from)),
            Fast::W3cTraceparent => one(G_TRACEPARENT, w3c_traceparent(b, from)),
            Fast::SpringBootCorrelation => spring_boot_correlation(b, from),
            Fast::Jaeger => one(G_TRACEPARENT, jaeger(b, from)),
        }
    }
}

/// `[0-9A-Za-z_]`: a word byte for `(?-u:\b)`.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `(?-u:\b)` at `i` after a word byte.
fn end_of_word(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| !is_word(c))
}

/// `(?-u:\b)` at `i` before a word byte.
fn start_of_word(b: &[u8], i: usize) -> bool {
    i == 0 || !is_word(b[i - 1])
}

fn all(b: &[u8], i: usize, n: usize, f: impl Fn(&u8) -> bool) -> bool {
    b.get(i..i + n).is_some_and(|s| s.iter().all(f))
}

fn digits(b: &[u8], i: usize, n: usize) -> bool {
    all(b, i, n, u8::is_ascii_digit)
}

/// `[0-9a-f]{n}`.
fn lower_hex(b: &[u8], i: usize, n: usize) -> bool {
    all(b, i, n, |c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `(?i)[0-9a-f]{n}`.
fn any_hex(b: &[u8], i: usize, n: usize) -> bool {
    all(b, i, n, u8::is_ascii_hexdigit)
}

fn is(b: &[u8], i: usize, c: u8) -> bool {
    b.get(i) == Some(&c)
}

fn blank(b: &[u8], i: usize) -> bool {
    matches!(b.get(i), Some(b' ' | b'\t'))
}

/// `lit` (lowercase ASCII) at `i`, ASCII case-insensitively.
fn word_at(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b.get(i..i + lit.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(lit))
}

/// The end of a run of `[0-9]` from `i`.
fn digit_run(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// `[ \t]*`: past the blanks from `i`.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while blank(b, i) {
        i += 1;
    }
    i
}

/// `lit` then `[_.]?id` at `i` (case-insensitively): the end of the key.
fn key_with_id(b: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    if !word_at(b, i, lit) {
        return None;
    }
    let i = i + lit.len();
    if matches!(b.get(i), Some(b'_' | b'.')) && word_at(b, i + 1, b"id") {
        return Some(i + 3);
    }
    word_at(b, i, b"id").then_some(i + 2)
}

/// `[=:][ \t]*"?` at `i`: where the value starts.
fn separator(b: &[u8], i: usize) -> Option<usize> {
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    let i = skip_blanks(b, i + 1);
    Some(if is(b, i, b'"') { i + 1 } else { i })
}

/// `[0-9]{1,20}(?-u:\b)` at `i`: a longer run of digits has no word boundary within it.
fn decimal(b: &[u8], i: usize) -> Option<usize> {
    let e = digit_run(b, i);
    (e > i && e - i <= 20 && end_of_word(b, e)).then_some(e)
}

fn leading_time_and_level(b: &[u8]) -> Outcome {
    let date_time = digits(b, 0, 4)
        && is(b, 4, b'-')
        && digits(b, 5, 2)
        && is(b, 7, b'-')
        && digits(b, 8, 2)
        && matches!(b.get(10), Some(b'T' | b' '))
        && digits(b, 11, 2)
        && is(b, 13, b':')
        && digits(b, 14, 2)
        && is(b, 16, b':')
        && digits(b, 17, 2);
    if !date_time {
        return Outcome::NoMatch;
    }
    let mut i = 19;
    // Each optional part, when absent, leaves a byte that `[ \t]+` does not take: a part that
    // starts but does not complete fails the whole match.
    if matches!(b.get(i), Some(b'.' | b',')) {
        let e = digit_run(b, i + 1);
        if e == i + 1 {
            return Outcome::NoMatch;
        }
        i = e;
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') => {
            if !digits(b, i + 1, 2) {
                return Outcome::NoMatch;
            }
            let j = i + 3;
            if is(b, j, b':') && digits(b, j + 1, 2) {
                i = j + 3;
            } else if digits(b, j, 2) {
                i = j + 2;
            } else {
                return Outcome::NoMatch;
            }
        }
        _ => {}
    }
    let ts_end = i;
    let mut i = skip_blanks(b, i);
    if i == ts_end {
        return Outcome::NoMatch;
    }
    if is(b, i, b'[') {
        i += 1;
    }
    const LEVELS: [&[u8]; 9] = [
        b"TRACE",
        b"DEBUG",
        b"INFO",
        b"NOTICE",
        b"WARN",
        b"WARNING",
        b"ERROR",
        b"CRITICAL",
        b"FATAL",
    ];
    for level in LEVELS {
        if !b[i..].starts_with(level) {
            continue;
        }
        let e = i + level.len();
        if blank(b, e) || (is(b, e, b']') && blank(b, e + 1)) {
            let mut caps = [None; 7];
            caps[G_TIMESTAMP] = Some((0, ts_end));
            caps[G_LEVEL] = Some((i, e));
            return Outcome::Match(caps);
        }
    }
    Outcome::NoMatch
}

fn klog(b: &[u8]) -> Option<(usize, usize)> {
    let head = matches!(b.first(), Some(b'I' | b'W' | b'E' | b'F'))
        && digits(b, 1, 4)
        && is(b, 5, b' ')
        && digits(b, 6, 2)
        && is(b, 8, b':')
        && digits(b, 9, 2)
        && is(b, 11, b':')
        && digits(b, 12, 2)
        && is(b, 14, b'.')
        && digits(b, 15, 6);
    if !head {
        return None;
    }
    let i = skip_blanks(b, 21);
    if i == 21 {
        return None;
    }
    let e = digit_run(b, i);
    if e == i || !is(b, e, b' ') {
        return None;
    }
    let start = e + 1;
    let mut i = start;
    while b
        .get(i)
        .is_some_and(|c| !matches!(c, b' ' | b'\t' | b':' | b']'))
    {
        i += 1;
    }
    if i == start || !is(b, i, b':') {
        return None;
    }
    let e = digit_run(b, i + 1);
    (e > i + 1 && is(b, e, b']') && is(b, e + 1, b' ')).then_some((0, 1))
}

fn trace_id_key_value(b: &[u8], from: usize) -> Option<(usize, usize)> {
    for p in from..b.len() {
        if !matches!(b[p], b't' | b'T' | b'o' | b'O') || !start_of_word(b, p) {
            continue;
        }
        let Some(v) = key_with_id(b, p, b"trace")
            .or_else(|| word_at(b, p, b"oteltraceid").then_some(p + 11))
            .and_then(|k| separator(b, k))
        else {
            continue;
        };
        if is(b, v, b'1')
            && is(b, v + 1, b'-')
            && any_hex(b, v + 2, 8)
            && is(b, v + 10, b'-')
            && any_hex(b, v + 11, 24)
            && end_of_word(b, v + 35)
        {
            return Some((v, v + 35));
        }
        for n in [32, 16] {
            if any_hex(b, v, n) && end_of_word(b, v + n) {
                return Some((v, v + n));
            }
        }
        if let Some(e) = decimal(b, v) {
            return Some((v, e));
        }
    }
    None
}

fn span_id_key_value(b: &[u8], from: usize) -> Option<(usize, usize)> {
    for p in from..b.len() {
        if !matches!(b[p], b's' | b'S' | b'o' | b'O') || !start_of_word(b, p) {
            continue;
        }
        // `span…` and `segment…` differ in their second byte: at most one key matches here.
        let Some(v) = key_with_id(b, p, b"span")
            .or_else(|| word_at(b, p, b"otelspanid").then_some(p + 10))
            .or_else(|| key_with_id(b, p, b"segment"))
            .and_then(|k| separator(b, k))
        else {
            continue;
        };
        if any_hex(b, v, 16) && end_of_word(b, v + 16) {
            return Some((v, v + 16));
        }
        if let Some(e) = decimal(b, v) {
            return Some((v, e));
        }
    }
    None
}

fn sleuth(b: &[u8], from: usize) -> Outcome {
    for p in from..b.len() {
        if b[p] != b'[' {
            continue;
        }
        let mut j = p + 1;
        while b
            .get(j)
            .is_some_and(|c| !matches!(c, b'[' | b']' | b',' | b' ' | b'\t'))
        {
            j += 1;
        }
        if !is(b, j, b',') {
            continue;
        }
        let t = j + 1;
        for n in [32, 16] {
            let s = t + n + 1;
            if !(lower_hex(b, t, n) && is(b, t + n, b',') && lower_hex(b, s, 16)) {
                continue;
            }
            let rest = &b[s + 16..];
            if rest.starts_with(b"]") || rest.starts_with(b",true]") || rest.starts_with(b",false]")
            {
                let mut caps = [None; 7];
                caps[G_TRACE_ID] = Some((t, t + n));
                caps[G_SPAN_ID] = Some((s, s + 16));
                return Outcome::Match(caps);
            }
        }
    }
    Outcome::NoMatch
}

fn xray_trace_id(b: &[u8], from: usize) -> Outcome {
    // The match starts at the byte before the id (or at the line's start): the leftmost match
    // is the one with the leftmost id.
    for q in from..b.len() {
        let id = b[q] == b'1'
            && is(b, q + 1, b'-')
            && (q == 0
                || !matches!(b[q - 1], b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'=' | b'-'))
            && lower_hex(b, q + 2, 8)
            && is(b, q + 10, b'-')
            && lower_hex(b, q + 11, 24)
            && end_of_word(b, q + 35);
        if !id {
            continue;
        }
        let mut caps = [None; 7];
        caps[G_TRACE_ID] = Some((q, q + 35));
        caps[G_SPAN_ID] = xray_segment_id(b, q + 35);
        return Outcome::Match(caps);
    }
    Outcome::NoMatch
}

/// `.*?(?-u:\b)[Ss]egment[_ ]?[Ii][Dd][=:][ \t]*"?(?P<span_id>[0-9a-f]{16})(?-u:\b)` from `i`:
/// the first place it matches, before the line's next `\n` (`.` does not take it).
fn xray_segment_id(b: &[u8], i: usize) -> Option<(usize, usize)> {
    for k in i..b.len() {
        match b[k] {
            b'\n' => return None,
            b'S' | b's' if !is_word(b[k - 1]) && b[k + 1..].starts_with(b"egment") => {}
            _ => continue,
        }
        let mut j = k + 7;
        if matches!(b.get(j), Some(b'_' | b' ')) && word_at(b, j + 1, b"id") {
            j += 3;
        } else if word_at(b, j, b"id") {
            j += 2;
        } else {
            continue;
        }
        let Some(v) = separator(b, j) else { continue };
        if lower_hex(b, v, 16) && end_of_word(b, v + 16) {
            return Some((v, v + 16));
        }
    }
    None
}

fn bare_traceparent(b: &[u8], from: usize) -> Option<(usize, usize)> {
    (from..b.len()).find_map(|q| {
        let ok = (q == 0 || matches!(b[q - 1], b' ' | b'\t' | b'"' | b'='))
            && b[q..].starts_with(b"00-")
            && lower_hex(b, q + 3, 32)
            && is(b, q + 35, b'-')
            && lower_hex(b, q + 36, 16)
            && is(b, q + 52, b'-')
            && lower_hex(b, q + 53, 2)
            && b.get(q + 55)
                .is_none_or(|c| matches!(c, b' ' | b'\t' | b'"' | b','));
        ok.then_some((q, q + 55))
    })
}

fn b3_single(b: &[u8], from: usize) -> Option<(usize, usize)> {
    for p in from..b.len() {
        if !matches!(b[p], b'b' | b'B') || !is(b, p + 1, b'3') || !start_of_word(b, p) {
            continue;
        }
        let Some(v) = separator(b, p + 2) else {
            continue;
        };
        for n in [32, 16] {
            if !(any_hex(b, v, n) && is(b, v + n, b'-') && any_hex(b, v + n + 1, 16)) {
                continue;
            }
            // The optional parts, longest first, each taken only if the boundary follows.
            let e = v + n + 17;
            if is(b, e, b'-') && matches!(b.get(e + 1), Some(b'0' | b'1' | b'd' | b'D')) {
                if is(b, e + 2, b'-') && any_hex(b, e + 3, 16) && end_of_word(b, e + 19) {
                    return Some((v, e + 19));
                }
                if end_of_word(b, e + 2) {
                    return Some((v, e + 2));
                }
            }
            if end_of_word(b, e) {
                return Some((v, e));
            }
        }
    }
    None
}

fn w3c_traceparent(b: &[u8], from: usize) -> Option<(usize, usize)> {
    (from..b.len()).find_map(|p| {
        if !matches!(b[p], b't' | b'T') || !word_at(b, p, b"traceparent") {
            return None;
        }
        let v = separator(b, p + 11)?;
        let ok = any_hex(b, v, 2)
            && is(b, v + 2, b'-')
            && any_hex(b, v + 3, 32)
            && is(b, v + 35, b'-')
            && any_hex(b, v + 36, 16)
            && is(b, v + 52, b'-')
            && any_hex(b, v + 53, 2);
        ok.then_some((v, v + 55))
    })
}

fn spring_boot_correlation(b: &[u8], from: usize) -> Outcome {
    for p in from..b.len() {
        if b[p] == b'['
            && any_hex(b, p + 1, 32)
            && is(b, p + 33, b'-')
            && any_hex(b, p + 34, 16)
            && is(b, p + 50, b']')
        {
            let mut caps = [None; 7];
            caps[G_TRACE_ID] = Some((p + 1, p + 33));
            caps[G_SPAN_ID] = Some((p + 34, p + 50));
            return Outcome::Match(caps);
        }
    }
    Outcome::NoMatch
}

/// The end of a run of `(?i)[0-9a-f]` from `i`.
fn hex_run(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
        i += 1;
    }
    i
}

fn jaeger(b: &[u8], from: usize) -> Option<(usize, usize)> {
    (from..b.len()).find_map(|p| {
        if !matches!(b[p], b'u' | b'U') || !word_at(b, p, b"uber-trace-id") {
            return None;
        }
        let v = separator(b, p + 13)?;
        // A run longer than its bound leaves a hex digit where the `:` (or the boundary)
        // must be, however much of it the bounded repetition takes.
        let mut i = v;
        for max in [32, 16, 16] {
            let e = hex_run(b, i);
            if e == i || e - i > max || !is(b, e, b':') {
                return None;
            }
            i = e + 1;
        }
        let e = hex_run(b, i);
        (e > i && e - i <= 2 && end_of_word(b, e)).then_some((v, e))
    })
}

#[cfg(test)]
mod tests;
