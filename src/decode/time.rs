//! Timestamps found in log lines, into nanoseconds since the Unix epoch.
//!
//! Accepted: RFC 3339 / ISO 8601 with an offset or `Z`; the same with a space instead of `T`; a
//! naive `YYYY-MM-DD HH:MM:SS[.,fraction]` taken as UTC (Python logging's default shape); and
//! epoch numbers, whose unit is inferred from their magnitude (seconds below 1e11, milliseconds
//! below 1e14, microseconds below 1e17, else nanoseconds), fractions allowed. Anything else is
//! `None`, and the caller falls back to the Kafka record time.

use chrono::{DateTime, NaiveDateTime};

/// Parses a timestamp string or number (see the module docs).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim().trim_matches('"');
    if s.is_empty() {
        return None;
    }
    if s.as_bytes()[0].is_ascii_digit() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if let Some(n) = parse_epoch(s) {
            return Some(n);
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return dt.timestamp_nanos_opt();
    }
    let spaced = s.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::parse_from_rfc3339(&spaced) {
        return dt.timestamp_nanos_opt();
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S,%3f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&spaced, fmt) {
            return dt.and_utc().timestamp_nanos_opt();
        }
    }
    None
}

fn parse_epoch(s: &str) -> Option<i64> {
    // Integer arithmetic: an f64 cannot hold nanoseconds since 1970 exactly.
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let scale: u32 = if whole < 100_000_000_000 {
        9
    } else if whole < 100_000_000_000_000 {
        6
    } else if whole < 100_000_000_000_000_000 {
        3
    } else {
        0
    };
    let mut frac_nanos: i64 = 0;
    for (i, d) in frac.bytes().take(scale as usize).enumerate() {
        frac_nanos += i64::from(d - b'0') * 10i64.pow(scale - 1 - i as u32);
    }
    whole.checked_mul(10i64.pow(scale))?.checked_add(frac_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_123_000_000;

    #[test]
    fn rfc3339_variants() {
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.123Z"), Some(T));
        assert_eq!(parse_timestamp("2023-11-14T23:13:20.123+01:00"), Some(T));
        assert_eq!(parse_timestamp("2023-11-14 22:13:20.123Z"), Some(T));
        assert_eq!(parse_timestamp("2023-11-14 22:13:20,123"), Some(T));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.123"), Some(T));
    }

    #[test]
    fn epoch_units_by_magnitude() {
        assert_eq!(parse_timestamp("1700000000.123"), Some(T));
        assert_eq!(parse_timestamp("1700000000123"), Some(T));
        assert_eq!(parse_timestamp("1700000000123000"), Some(T));
        assert_eq!(parse_timestamp("1700000000123000000"), Some(T));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("99999999999999999999999"), None);
        assert_eq!(parse_timestamp("1.2.3"), None);
    }
}
