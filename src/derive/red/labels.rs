//! Label names and values as the Collector's Prometheus exporter writes them, and the compact
//! encoding of a span's dimension values that keys a series.
//!
//! - Names: `otlptranslator.LabelNamer` (v1.0.0, `PreserveMultipleUnderscores`, no UTF-8): every
//!   character other than `[A-Za-z0-9]` becomes `_` (one per character, not per byte), a leading
//!   digit gets `key_` in front, and a name of underscores only is an error.
//! - Values: pdata's `Value.AsString`: integers in decimal, booleans `true`/`false`, doubles as
//!   ES6 number-to-string (`1e-7`, `1e+21`, `0.5`, `3`), `NaN`, `Infinity`, `-Infinity`.

use crate::model::AttrValue;
use std::fmt::Write;

/// The label of the series that takes the spans beyond the cardinality cap.
pub(crate) const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// The Prometheus label name of attribute `key`.
pub(crate) fn label_name(key: &str) -> Result<String, &'static str> {
    if key.is_empty() {
        return Err("an empty attribute name makes no label");
    }
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.chars().all(|c| c == '_') {
        return Err("the label name would be underscores only");
    }
    Ok(out)
}

/// Appends `v` as the exporter renders an attribute value. No allocation beyond `out`'s growth.
pub(crate) fn write_value(v: &AttrValue, out: &mut String) {
    match (plain_text(v, &mut [0; 20]), v) {
        (Some(text), _) => out.push_str(text),
        (None, AttrValue::Double(d)) => write_double(*d, out),
        (None, _) => {}
    }
}

/// The rendering of every value but a double, whose length is known before it is written.
fn plain_text<'a>(v: &'a AttrValue, digits: &'a mut [u8; 20]) -> Option<&'a str> {
    match v {
        AttrValue::Str(s) => Some(s),
        AttrValue::Int(i) => Some(decimal(*i, digits)),
        AttrValue::Bool(b) => Some(bool_str(*b)),
        AttrValue::Double(_) => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `i` in decimal, written into `buf`. `write!` through `fmt` was a third of RED's per-span cost
/// with an integer dimension (`http.response.status_code`).
fn decimal(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    // ASCII digits and a sign.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// A dimension's header: `=`, `len` in ten digits, `:`.
fn header(len: usize) -> [u8; 12] {
    let mut header = *b"=0000000000:";
    let mut n = len;
    for d in header[1..11].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    header
}

/// Appends a dimension's header in one copy.
fn push_header(len: usize, key: &mut String) {
    key.push_str(std::str::from_utf8(&header(len)).unwrap_or("=0000000000:"));
}

/// ES6 number-to-string, as pdata's `float64AsString`: shortest round-trip digits; exponent form
/// below 1e-6 and from 1e21 on, with a signed exponent (`1e-7`, `1e+21`).
pub(crate) fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let abs = d.abs();
        if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
            let start = out.len();
            let _ = write!(out, "{d:e}");
            // Rust writes `1e21`, Go `1e+21`; negative exponents agree (`1e-7`).
            if let Some(e) = out[start..].find('e') {
                if out.as_bytes().get(start + e + 1) != Some(&b'-') {
                    out.insert(start + e + 1, '+');
                }
            }
        } else {
            let _ = write!(out, "{d}");
        }
    }
}

/// Appends one dimension's value to a series key: `=<len>:<value>` when present, `-` when the
/// label is left off. Length-prefixed, so any value (even with separators in it) is unambiguous.
pub(crate) fn encode_dimension(value: Option<&AttrValue>, default: Option<&str>, key: &mut String) {
    let known = |text: &str, key: &mut String| {
        push_header(text.len(), key);
        key.push_str(text);
    };
    match (value, default) {
        (Some(v), _) => match plain_text(v, &mut [0; 20]) {
            Some(text) => known(text, key),
            None => {
                // A double: rendered after a placeholder header, whose length is then filled
                // in (ASCII over ASCII: the string stays valid UTF-8). No temporary string.
                let at = key.len();
                push_header(0, key);
                write_value(v, key);
                let len = key.len() - at - 12;
                key.replace_range(
                    at..at + 12,
                    std::str::from_utf8(&header(len)).unwrap_or("=0000000000:"),
                );
            }
        },
        (None, Some(d)) => known(d, key),
        (None, None) => key.push('-'),
    }
}

/// The dimension values of an encoded series key, in dimension order (`None`: label left off).
pub(crate) fn decode_dimensions(mut key: &str) -> impl Iterator<Item = Option<&str>> {
    std::iter::from_fn(move || {
        let first = key.as_bytes().first()?;
        if *first == b'-' {
            key = &key[1..];
            return Some(None);
        }
        // `=` + 10 digits + `:`
        let len: usize = key.get(1..11)?.parse().ok()?;
        let value = key.get(12..12 + len)?;
        key = &key[12 + len..];
        Some(Some(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_keys_render_as_fmt_does() {
        for i in [0, 7, -7, 200, 500, 1_000_000, i64::MAX, i64::MIN, -10, 10] {
            assert_eq!(decimal(i, &mut [0; 20]), i.to_string());
            let mut key = String::new();
            encode_dimension(Some(&AttrValue::Int(i)), None, &mut key);
            assert_eq!(key, format!("={:010}:{i}", i.to_string().len()));
            assert_eq!(
                decode_dimensions(&key).collect::<Vec<_>>(),
                [Some(&*i.to_string())]
            );
        }
        let mut key = String::new();
        encode_dimension(Some(&AttrValue::Str("/a:b=".into())), None, &mut key);
        encode_dimension(None, Some("prod"), &mut key);
        encode_dimension(None, None, &mut key);
        encode_dimension(Some(&AttrValue::Bool(true)), None, &mut key);
        encode_dimension(Some(&AttrValue::Double(0.5)), None, &mut key);
        assert_eq!(
            key,
            "=0000000005:/a:b==0000000004:prod-=0000000004:true=0000000003:0.5"
        );
    }
}
