//! Every hand-written matcher against its regex: same match or none, same groups.

use super::super::{CompiledRules, CompiledTextRule, ExtractRules};
use super::*;
use proptest::prelude::*;

fn rules() -> CompiledRules {
    ExtractRules::builtin().compile().unwrap()
}

/// The regex's answer in the matcher's terms.
fn by_regex(rule: &CompiledTextRule, text: &str) -> Outcome {
    let Some(c) = rule.regex.captures(text) else {
        return Outcome::NoMatch;
    };
    let mut caps = [None; 7];
    for (g, slot) in rule.slots.iter().enumerate() {
        caps[g] = slot.and_then(|s| c.get(s)).map(|m| (m.start(), m.end()));
    }
    Outcome::Match(caps)
}

/// Checks every matcher on `text`, from the line's start and from where the prefilter saw the
/// literal (as `apply_text_rules` calls it).
fn same_as_regex(rules: &CompiledRules, text: &str) -> Result<(), TestCaseError> {
    let pf = rules.prefilter.as_ref().unwrap();
    let mut c = crate::decode::rules::Candidates {
        rules: 0,
        first: [usize::MAX; 64],
    };
    pf.candidates_into(text, &mut c);
    for (i, rule) in rules.text.iter().enumerate() {
        let Some(fast) = rule.fast else { continue };
        let want = by_regex(rule, text);
        let mut froms = vec![0];
        if rule.at_literal.is_some() && c.first[i] != usize::MAX {
            froms.push(c.first[i]);
        }
        for from in froms {
            match fast.find(text, from) {
                Outcome::Defer => {}
                got => prop_assert_eq!(got, want, "rule {} from {} on {:?}", rule.name, from, text),
            }
        }
    }
    Ok(())
}

#[test]
fn every_matcher_serves_a_shipped_rule() {
    let rules = rules();
    let served: Vec<Fast> = rules.text.iter().filter_map(|r| r.fast).collect();
    for (_, f) in PATTERNS {
        assert!(
            served.contains(&f),
            "{f:?}: its pattern is not in rules/extract.yaml"
        );
    }
}

/// The matchers compare letters ASCII case-insensitively, which equals `(?i)` only for letters
/// without a non-ASCII case variant (`k` has `K`, U+212A, and `s` has `ſ`, U+017F).
#[test]
fn key_letters_have_no_non_ascii_case_variants() {
    for letter in "traceidolpnbgmu".chars() {
        let re = regex::Regex::new(&format!("(?i)^{letter}$")).unwrap();
        let other = (0x80u32..0x11_0000)
            .filter_map(char::from_u32)
            .find(|c| re.is_match(c.encode_utf8(&mut [0; 4])));
        let expect = (letter == 's').then_some('\u{17f}');
        assert_eq!(other, expect, "{letter}");
    }
    for class in ["(?i)^[0-9a-f]$", "(?i)^[01d]$"] {
        let re = regex::Regex::new(class).unwrap();
        assert!((0x80u32..0x11_0000)
            .filter_map(char::from_u32)
            .all(|c| !re.is_match(c.encode_utf8(&mut [0; 4]))));
    }
}

#[test]
fn lines_of_every_shape() {
    let rules = rules();
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    let lines = [
        format!("2024-05-01 12:00:00.123 ERROR [payments] payment declined trace_id={t} span_id={s}"),
        format!("2024-05-01T12:00:00.123Z ERROR 12345 --- [payments] [nio-8080-exec-1] [{t}-{s}] c.e.p.C : x"),
        format!("2024-05-01 12:00:00.123  INFO [payments,{},{s},true] 12345 --- [main] c.e.p.C : x", &t[16..]),
        format!("2024-05-01T12:00:00.123Z XRAY TraceId: 1-{}-{} SegmentId: {s} x", &t[..8], &t[8..]),
        format!(r#"10.1.2.3 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 500 512 "-" "curl" "00-{t}-{s}-01""#),
        format!("2024-05-01 12:00:00.123 WARN uber-trace-id: {t}:{s}:0:1 slow upstream"),
        format!("2024-05-01 12:00:00.123 INFO request done b3: {t}-{s}-1"),
        format!("2024-05-01 12:00:00.123 INFO b3={}-{s}-d-{s} B3: {t}-{s}", &t[16..]),
        format!("GET /cart 500 traceparent: 00-{t}-{s}-01"),
        "I0501 12:00:00.123456   12345 controller.go:123] Reconciling deployment".to_string(),
        "E0501 12:00:00.123456\t4321 server.go:88] failed".to_string(),
        "2024-05-01 12:00:00,123 WARNING urllib3 Retrying".to_string(),
        "2024-05-01T12:00:00+05:30 [WARN] x".to_string(),
        "2024-05-01T12:00:00-0530\tFATAL] x".to_string(),
        "2024-05-01T12:00:00.5+05:3 ERROR x".to_string(),
        "2024-05-01T12:00:00. ERROR x".to_string(),
        "2024-05-01T12:00:00Z WARNINGS x".to_string(),
        format!("trace_id=1-{}-{} traceid:\"{t}\" TRACE.ID: 12345678901234567890", &t[..8], &t[8..]),
        "xtrace_id=1234 trace_id=123456789012345678901 otelTraceID=42".to_string(),
        format!("ſpan_id={s} span_id=12"),
        format!("segment id={s} SEGMENT.ID={s}x segment_id=0099"),
        format!("[a b,{t},{s}] [x,{},{s},false] [,{t},{s},maybe]", &t[16..]),
        format!("1-{}-{}\nSegmentId={s}", &t[..8], &t[8..]),
        format!("é1-{}-{} x.segment_id: \"{s}\"", &t[..8], &t[8..]),
        format!("=00-{t}-{s}-01 \"00-{t}-{s}-01,"),
        format!("00-{t}-{s}-01"),
    ];
    for line in &lines {
        same_as_regex(&rules, line).unwrap();
    }
}

/// `n` hex digits, or one more or fewer; lowercase, or now and then of either case.
fn hex(n: usize) -> impl Strategy<Value = String> {
    let len = proptest::sample::select(vec![n, n, n, n, n - 1, n + 1]);
    (len, 0..8u8).prop_flat_map(|(n, case)| {
        let class = if case == 0 { "[0-9a-fA-F]" } else { "[0-9a-f]" };
        proptest::string::string_regex(&format!("{class}{{{n}}}")).unwrap()
    })
}

fn id() -> impl Strategy<Value = String> {
    let either = || prop_oneof![hex(32), hex(16)];
    let tail = proptest::sample::select(vec!["", "-1", "-0", "-d", "-D", "-2", "-", "-1-"]);
    let end = proptest::sample::select(vec!["]", ",true]", ",false]", ",tru]", "", ",true"]);
    let app = proptest::sample::select(vec!["app", "", "a b", "x[y", "a]"]);
    prop_oneof![
        hex(16),
        hex(32),
        (hex(8), hex(24)).prop_map(|(a, b)| format!("1-{a}-{b}")),
        (hex(32), hex(16), hex(2)).prop_map(|(a, b, c)| format!("00-{a}-{b}-{c}")),
        (either(), hex(16), tail, hex(16), any::<bool>()).prop_map(|(a, b, t, c, parent)| {
            if parent {
                format!("{a}-{b}{t}{c}")
            } else {
                format!("{a}-{b}{t}")
            }
        }),
        (app, either(), hex(16), end).prop_map(|(a, t, s, e)| format!("[{a},{t},{s}{e}")),
        (
            hex(32),
            hex(16),
            proptest::sample::select(vec!["]", "", "-"])
        )
            .prop_map(|(t, s, e)| format!("[{t}-{s}{e}")),
        (hex(2), hex(32), hex(16), hex(2)).prop_map(|(a, b, c, d)| format!("{a}-{b}-{c}-{d}")),
        (
            1..34usize,
            1..18usize,
            1..18usize,
            1..4usize,
            "[0-9a-fA-F]{40}",
            ":?"
        )
            .prop_map(|(a, b, c, d, h, x)| format!(
                "uber-trace-id: {}:{}:{}:{}{x}",
                &h[..a],
                &h[..b],
                &h[..c],
                &h[..d]
            )),
    ]
}

fn fragment() -> impl Strategy<Value = String> {
    let fixed = [
        "[",
        "]",
        ",",
        "-",
        ":",
        "=",
        " ",
        "  ",
        "\t",
        "\n",
        "\"",
        ".",
        "_",
        "x",
        "é",
        "ſ",
        "\u{212a}",
        "1-",
        "00-",
        "-1",
        "-0",
        "-d",
        "-D",
        "-01",
        ",true]",
        ",false]",
        "[app,",
        "[a b,",
        "[,",
        "trace_id=",
        "TRACE.ID:",
        "traceid",
        "Trace_Id",
        "otelTraceID=",
        "OTELTRACEID:",
        "xtrace_id=",
        "span_id=",
        "Span.Id:",
        "spanid",
        "ſpan_id=",
        "otelSpanID:",
        "segment_id=",
        "SegmentId: ",
        "Segment ID=",
        "segment.id",
        "segment id:",
        "b3=",
        "B3: ",
        "xb3:",
        "b3:\"",
        "uber-trace-id: ",
        "traceparent=",
        "Root=1-",
        "E0501 12:00:00.123456",
        " 12 a.go:8] ",
    ];
    let keys = [
        "trace_id=",
        "TRACE.ID:",
        "traceid: \"",
        "otelTraceID=",
        "xtrace_id=",
        "span_id=",
        "Span.Id:\t",
        "spanid=\"",
        "ſpan_id=",
        "otelSpanID:",
        "segment_id=",
        "SegmentId: ",
        "Segment ID=",
        "segment id:",
        "b3=",
        "B3: ",
        "xb3:",
        "b3:\"",
        " b3-",
        "traceparent=",
        "1-",
        "=",
        "\"",
    ];
    let sep = proptest::sample::select(vec![
        "", "=", ":", ": ", ":\t\"", "=\"", " ", "-", ",", "\"", "]",
    ]);
    prop_oneof![
        4 => proptest::sample::select(fixed.to_vec()).prop_map(str::to_string),
        4 => id(),
        3 => (id(), sep).prop_map(|(h, s)| h + s),
        3 => (proptest::sample::select(keys.to_vec()), id()).prop_map(|(k, v)| format!("{k}{v}")),
        1 => (
            hex(8),
            hex(24),
            proptest::sample::select(vec![" ", " x ", "\n", "", "é ", "=", " ab"]),
            proptest::sample::select(vec![
                "SegmentId: ", "segment_id=\"", "Segment ID:", "segmentid=", "segment-id=", "Segment_Id:",
            ]),
            hex(16),
        )
            .prop_map(|(a, b, g, k, s)| format!("1-{a}-{b}{g}{k}{s}")),
        1 => "[0-9]{1,22}",
        1 => "[ -~]{0,3}",
    ]
}

/// Lines most of which start like one of the anchored rules.
fn line() -> impl Strategy<Value = String> {
    let level = proptest::sample::select(vec![
        "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL",
        "info", "WARNI", "ERR",
    ]);
    let time_level = (
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]{0,4})?(Z|[+-][0-9]{2}:?[0-9]{0,2})?[ \t]{0,2}\\[?",
        level,
        "\\]?[ \t]?",
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"));
    let head = prop_oneof![
        Just(String::new()),
        time_level,
        (
            "[IWEFX][0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{5,6}[ \t]{0,2}[0-9]{0,3} ",
            proptest::sample::select(vec!["a.go", "", "x y", "f]", "é", "\n"]),
            proptest::sample::select(vec![":12] ", ":] ", ":1]", ":1 ] ", "12] ", ":3:4] "]),
        )
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ];
    (head, proptest::collection::vec(fragment(), 0..12)).prop_map(|(h, parts)| h + &parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn same_match_and_groups_as_the_regex(line in line()) {
        static RULES: std::sync::LazyLock<CompiledRules> = std::sync::LazyLock::new(rules);
        same_as_regex(&RULES, &line)?;
    }
}
