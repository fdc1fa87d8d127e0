//! Levels as the logging stacks write them, into names.
//!
//! Names (`ERROR`, `warn`, `Information`) are kept as written. Numbers and one-letter codes are
//! read where they cannot be anything else: 0–7 are syslog severities (RFC 5424; also Datadog's
//! `status`), 10–60 in steps of ten are Bunyan/pino levels, and a single capital `I`, `W`, `E`,
//! `F` (klog/glog) or `D`, `V` is that level's initial. Any other number (an HTTP `status: 200`)
//! is no level at all. A rule may say its level is a syslog `PRI` (`<34>`: facility × 8 +
//! severity), which is read modulo 8.

use serde::Deserialize;
use std::borrow::Cow;

/// How a level value is written, when a rule knows better than the guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelScheme {
    /// Names kept, numbers and letters read as in the module docs.
    #[default]
    Auto,
    /// A syslog PRI value (facility × 8 + severity).
    SyslogPri,
}

const SYSLOG: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];
const BUNYAN: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// The level `raw` names, or `None` when it is not a level (see the module docs).
pub fn normalize_level(raw: Cow<'_, str>, scheme: LevelScheme) -> Option<Cow<'_, str>> {
    let t = raw.trim().trim_matches('"');
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = t.parse().ok()?;
        return match scheme {
            LevelScheme::SyslogPri => (n <= 191).then(|| SYSLOG[(n % 8) as usize]),
            LevelScheme::Auto => match n {
                0..=7 => Some(SYSLOG[n as usize]),
                10 | 20 | 30 | 40 | 50 | 60 => Some(BUNYAN[(n / 10 - 1) as usize]),
                _ => None,
            },
        }
        .map(Cow::Borrowed);
    }
    if scheme == LevelScheme::SyslogPri {
        return None;
    }
    let letter = match t.as_bytes() {
        [b'I'] => "info",
        [b'W'] => "warning",
        [b'E'] => "error",
        [b'F'] => "fatal",
        [b'D'] => "debug",
        [b'V'] => "verbose",
        _ => return Some(raw),
    };
    Some(Cow::Borrowed(letter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, scheme: LevelScheme) -> Option<String> {
        normalize_level(Cow::Borrowed(s), scheme).map(Cow::into_owned)
    }

    #[test]
    fn names_numbers_and_letters() {
        assert_eq!(n("ERROR", LevelScheme::Auto).as_deref(), Some("ERROR"));
        assert_eq!(
            n("Information", LevelScheme::Auto).as_deref(),
            Some("Information")
        );
        // Bunyan/pino: 10 trace … 60 fatal (https://github.com/trentm/node-bunyan#levels)
        assert_eq!(n("30", LevelScheme::Auto).as_deref(), Some("info"));
        assert_eq!(n("50", LevelScheme::Auto).as_deref(), Some("error"));
        // syslog severities, and Datadog status integers 0-7
        assert_eq!(n("3", LevelScheme::Auto).as_deref(), Some("error"));
        assert_eq!(n("200", LevelScheme::Auto), None);
        assert_eq!(n("E", LevelScheme::Auto).as_deref(), Some("error"));
        assert_eq!(n("W", LevelScheme::Auto).as_deref(), Some("warning"));
        assert_eq!(n("e", LevelScheme::Auto).as_deref(), Some("e"));
        assert_eq!(n("", LevelScheme::Auto), None);
    }

    #[test]
    fn syslog_pri() {
        // RFC 5424 §6.2.1: <34> is facility 4 (auth), severity 2 (critical)
        assert_eq!(n("34", LevelScheme::SyslogPri).as_deref(), Some("critical"));
        assert_eq!(n("165", LevelScheme::SyslogPri).as_deref(), Some("notice"));
        assert_eq!(n("192", LevelScheme::SyslogPri), None);
        assert_eq!(n("x", LevelScheme::SyslogPri), None);
    }
}
