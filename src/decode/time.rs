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
    if let Some(n) = parse_iso_fast(s.as_bytes()) {
        return Some(n);
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

/// `YYYY-MM-DD[T ]HH:MM:SS[.,fraction][Z|±HH[:]MM]` without chrono's format machinery (the
/// shape of nearly every log timestamp); `None` for anything else, which then takes the general
/// path.
fn parse_iso_fast(b: &[u8]) -> Option<i64> {
    use chrono::{NaiveDate, TimeDelta};
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let mut i = 19;
    let mut nanos = 0u32;
    if i < b.len() && matches!(b[i], b'.' | b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let time = date.and_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    let offset_secs: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, rest @ ..] => {
            let mm = match rest {
                [b':', m1, m2] | [m1, m2] => [*m1, *m2],
                _ => return None,
            };
            let digits = [*h1, *h2, mm[0], mm[1]];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from(digits[0] - b'0') * 10 + i64::from(digits[1] - b'0');
            let m = i64::from(digits[2] - b'0') * 10 + i64::from(digits[3] - b'0');
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    (time.and_utc() - TimeDelta::seconds(offset_secs)).timestamp_nanos_opt()
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
        assert_eq!(parse_timestamp("2023-11-14T17:13:20.123-0500"), Some(T));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.123456789Z"),
            Some(T + 456_789)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(T - 123_000_000)
        );
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in [
            "2023-11-14T22:13:20.123Z",
            "2023-11-14 22:13:20,5+01:00",
            "2023-02-30T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+1",
            "2023-11-14T25:13:20Z",
            "2016-06-07T03:44:57.8532799Z",
        ] {
            let slow = DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1))
                .ok()
                .and_then(|d| d.timestamp_nanos_opt())
                .or_else(|| {
                    NaiveDateTime::parse_from_str(
                        &s.replacen(' ', "T", 1),
                        "%Y-%m-%dT%H:%M:%S,%3f%:z",
                    )
                    .ok()
                    .and_then(|d| d.and_utc().timestamp_nanos_opt())
                });
            let fast = parse_iso_fast(s.as_bytes());
            if fast.is_some() {
                assert_eq!(fast, parse_timestamp(s), "{s}");
            }
            if slow.is_some() {
                assert_eq!(fast, slow, "{s}");
            }
        }
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
