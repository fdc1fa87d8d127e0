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
    match v {
        AttrValue::Str(s) => out.push_str(s),
        AttrValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttrValue::Double(d) => write_double(*d, out),
    }
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
    match (value, default) {
        (Some(v), _) => {
            // Render after a placeholder, then fill in the length: no temporary string.
            key.push('=');
            let len_at = key.len();
            key.push_str("0000000000:");
            let start = key.len();
            write_value(v, key);
            let len = key.len() - start;
            let mut digits = [b'0'; 10];
            let mut n = len;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            // ASCII digits over ASCII digits: the string stays valid UTF-8.
            key.replace_range(
                len_at..len_at + 10,
                std::str::from_utf8(&digits).unwrap_or("0000000000"),
            );
        }
        (None, Some(d)) => {
            let _ = write!(key, "={:010}:{d}", d.len());
        }
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
