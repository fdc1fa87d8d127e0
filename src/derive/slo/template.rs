//! A log line reduced to its template: the values that vary between occurrences of one error are
//! masked, so that a thousand "lock wait timeout for order 48213" lines are one cause.
//!
//! Masks, applied in this order (an earlier mask's placeholder holds no digit, so later masks
//! leave it alone):
//!
//! | what                                   | becomes   |
//! |----------------------------------------|-----------|
//! | UUIDs                                  | `<uuid>`  |
//! | ISO-8601 date-times                    | `<ts>`    |
//! | e-mail addresses                       | `<email>` |
//! | IPv4 (with a port), long IPv6          | `<ip>`    |
//! | `"double"`, `'single'`, `` `back` `` quoted values | `"<str>"` (quotes kept) |
//! | `0x…` and hex tokens of 8+ digits with both a digit and a letter | `<hex>` |
//! | numbers not glued to a word before them (`order-42`, `12.5ms`, `-3`, `1.2.3`) | `<num>` |
//!
//! Numbers glued to a word (`v2`, `e11000`, `http2`, `HY000`) are part of a name and stay. A
//! single quote only opens a quoted value after a non-word character, so `can't` is not one.
//! Whitespace runs become one space; the result is cut at `max_len` characters (ending in `…`).

use regex::{Captures, Regex};
use std::sync::LazyLock;

struct Masks {
    uuid: Regex,
    ts: Regex,
    email: Regex,
    ipv4: Regex,
    ipv6: Regex,
    dquote: Regex,
    squote: Regex,
    bquote: Regex,
    hex: Regex,
    num: Regex,
    space: Regex,
}

static MASKS: LazyLock<Masks> = LazyLock::new(|| {
    let re = |s: &str| Regex::new(s).expect("static regex");
    Masks {
        uuid: re(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        ts: re(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b",
        ),
        email: re(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
        ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"),
        ipv6: re(r"\b(?:[0-9A-Fa-f]{1,4}:){5,7}[0-9A-Fa-f]{1,4}\b"),
        dquote: re(r#""[^"]*""#),
        squote: re(r"(^|[^\w])'[^'\n]*'"),
        bquote: re(r"`[^`]*`"),
        hex: re(r"\b(?:0[xX][0-9A-Fa-f]+|[0-9A-Fa-f]{8,})\b"),
        num: re(r"(^|[^\w.])-?\d+(?:\.\d+)*"),
        space: re(r"\s+"),
    }
});

/// The template of `line` (module docs), at most `max_len` characters.
pub(crate) fn template(line: &str, max_len: usize) -> String {
    let m = &*MASKS;
    let s = m.uuid.replace_all(line, "<uuid>");
    let s = m.ts.replace_all(&s, "<ts>");
    let s = m.email.replace_all(&s, "<email>");
    let s = m.ipv4.replace_all(&s, "<ip>");
    let s = m.ipv6.replace_all(&s, "<ip>");
    let s = m.dquote.replace_all(&s, "\"<str>\"");
    let s = m.squote.replace_all(&s, "${1}'<str>'");
    let s = m.bquote.replace_all(&s, "`<str>`");
    let s = m.hex.replace_all(&s, |c: &Captures<'_>| {
        let t = &c[0];
        let is_hex = t.starts_with("0x")
            || t.starts_with("0X")
            || (t.bytes().any(|b| b.is_ascii_digit())
                && t.bytes().any(|b| b.is_ascii_alphabetic()));
        if is_hex {
            "<hex>".to_string()
        } else {
            t.to_string()
        }
    });
    let s = m.num.replace_all(&s, "${1}<num>");
    let s = m.space.replace_all(s.trim(), " ");
    truncate(&s, max_len)
}

/// `s` cut to `max_len` characters, ending in `…` when cut.
pub(crate) fn truncate(s: &str, max_len: usize) -> String {
    match s.char_indices().nth(max_len) {
        None => s.to_string(),
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(max_len.saturating_sub(1))
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        template(s, 160)
    }

    #[test]
    fn the_issue_example() {
        assert_eq!(
            t("payment declined: card_declined for order 4312 (issuer code 05)"),
            "payment declined: card_declined for order <num> (issuer code <num>)"
        );
    }

    #[test]
    fn numbers_in_names_stay_numbers_alone_go() {
        assert_eq!(
            t("db query failed: ERROR 1205 (HY000): Lock wait timeout exceeded (order 48213, 5012ms)"),
            "db query failed: ERROR <num> (HY000): Lock wait timeout exceeded (order <num>, <num>ms)"
        );
        assert_eq!(
            t("E11000 duplicate key, v2 api, http2"),
            "E11000 duplicate key, v2 api, http2"
        );
        assert_eq!(
            t("order-42 took 12.5ms, delta -3"),
            "order-<num> took <num>ms, delta <num>"
        );
        assert_eq!(
            t("version 1.2.3 of HTTP/1.1"),
            "version <num> of HTTP/<num>"
        );
    }

    #[test]
    fn ids_addresses_and_times() {
        assert_eq!(
            t("user 3f2b8c1e-9d4a-4e6b-8f00-1a2b3c4d5e6f not found"),
            "user <uuid> not found"
        );
        assert_eq!(
            t("trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7"),
            "trace <hex> span <hex>"
        );
        assert_eq!(t("ptr 0xdeadbeef freed"), "ptr <hex> freed");
        assert_eq!(
            t("mail to bob.smith@example.com bounced"),
            "mail to <email> bounced"
        );
        assert_eq!(t("redis 10.0.3.7:6379 timed out"), "redis <ip> timed out");
        assert_eq!(t("from fe80:0:0:0:202:b3ff:fe1e:8329"), "from <ip>");
        assert_eq!(t("at 2024-05-01T10:00:00.123Z retry"), "at <ts> retry");
        // Plain words made of hex letters are words.
        assert_eq!(t("deadbeefcafe accepted"), "deadbeefcafe accepted");
    }

    #[test]
    fn quoted_values() {
        assert_eq!(
            t(r#"relation "orders" does not exist, can't read 'cfg-7' or `x`"#),
            r#"relation "<str>" does not exist, can't read '<str>' or `<str>`"#
        );
    }

    #[test]
    fn whitespace_and_length() {
        assert_eq!(t("  a \t b\n c  "), "a b c");
        let long = "x".repeat(300);
        let out = template(&long, 20);
        assert_eq!(out.chars().count(), 20);
        assert!(out.ends_with('…'));
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }

    #[test]
    fn same_error_different_values_one_template() {
        let a = t("timeout after 250ms talking to 10.1.2.3:5432 for user 81723 req 9f8e7d6c5b4a");
        let b = t("timeout after 3000ms talking to 10.9.9.9:5432 for user 1 req 00aa11bb22cc");
        assert_eq!(a, b);
    }
}
