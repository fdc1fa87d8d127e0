//! Extraction rules: where a raw log line keeps its trace id, span id, level, time and message.
//!
//! The rules live in `rules/extract.yaml` because they are what users change most. Two parts:
//! - `fields`: for JSON objects and logfmt lines, the field names to try, in order, for each
//!   value. A name with dots (`trace.id`) is tried first as a literal key, then as a path into
//!   nested objects (`{"trace":{"id":…}}`). An entry may declare the id encoding
//!   (`{path: dd.trace_id, encoding: decimal}`).
//!   An entry may also give a `default` used when the field is absent but the field named by
//!   `when` is present (Serilog CLEF: no `@l` means Information).
//! - `text`: regexes with named groups (`trace_id`, `span_id`, `traceparent`, `level`,
//!   `timestamp`, `message`, `service`), applied in order to plain-text lines (and to the message
//!   of a JSON or logfmt line that had no id field); the first rule to capture a value wins it.
//!   `traceparent` takes any propagation header value (W3C, B3 single, Jaeger, X-Ray). A rule may
//!   declare its id `encoding` and its `level` scheme (`syslog_pri`).
//!
//! An id a rule or field captures that is not well formed for its encoding, or that is only a
//! piece of a longer token (the `1` of an X-Ray id `1-5759e988-…`), is no id: the value stays
//! free for later rules and the rejection is counted (`tracejoin_log_ids_rejected_total`).
//!
//! Applying: a rule is skipped when every group it captures is already filled, and one
//! Aho-Corasick pass over the line for the literals the rules need (derived from each regex:
//! `trace`, `uber-trace-id`, `root=1-`, `[` before a hex digit, …) says which rules can match at
//! all, so a line costs one scan plus the captures of the rules that match it. A rule whose
//! matches start with its literal is searched anchored where the scan saw it. The shipped
//! patterns a line with ids runs most (`rules/fast.rs`) are matched by hand while their pattern
//! text is unchanged: same matches and groups as the regex, without the regex engines.
//!
//! Compilation checks every regex and every group name, and the error names the rule.

mod fast;
mod prefilter;

use super::ids::IdEncoding;
use super::level::LevelScheme;
pub use fast::{Caps, Fast, Outcome};
pub use prefilter::{Candidates, Prefilter};
use serde::Deserialize;
use std::path::Path;
use thiserror::Error;

/// A field to look in, with the id encoding where it matters.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FieldRef {
    /// A field name or dotted path.
    Path(String),
    /// A field with its id encoding, or a default.
    Spec {
        /// Field name or dotted path.
        path: String,
        /// How the id in it is written.
        #[serde(default)]
        encoding: IdEncoding,
        /// The value when the field is absent (and `when` is present).
        #[serde(default)]
        default: Option<String>,
        /// The field whose presence makes `default` apply.
        #[serde(default)]
        when: Option<String>,
    },
}

impl FieldRef {
    /// The field name or path.
    pub fn path(&self) -> &str {
        match self {
            FieldRef::Path(p) | FieldRef::Spec { path: p, .. } => p,
        }
    }
    /// The declared encoding.
    pub fn encoding(&self) -> IdEncoding {
        match self {
            FieldRef::Path(_) => IdEncoding::Auto,
            FieldRef::Spec { encoding, .. } => *encoding,
        }
    }
    /// The default value and the field that must be present for it to apply.
    pub fn default(&self) -> Option<(&str, Option<&str>)> {
        match self {
            FieldRef::Spec {
                default: Some(d),
                when,
                ..
            } => Some((d, when.as_deref())),
            _ => None,
        }
    }
}

/// Field names for JSON and logfmt lines.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FieldRules {
    /// Fields holding the trace id.
    pub trace_id: Vec<FieldRef>,
    /// Fields holding the span id.
    pub span_id: Vec<FieldRef>,
    /// Fields holding a W3C `traceparent` (trace and span id at once).
    pub traceparent: Vec<FieldRef>,
    /// Fields holding the event time.
    pub timestamp: Vec<FieldRef>,
    /// Fields holding the level / severity.
    pub level: Vec<FieldRef>,
    /// Fields holding the message.
    pub message: Vec<FieldRef>,
    /// Fields holding the service name.
    pub service: Vec<FieldRef>,
}

/// A regex applied to text lines.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextRule {
    /// A name for error messages and `tracejoin check` output.
    pub name: String,
    /// The regex; its named groups say what it captures.
    pub pattern: String,
    /// How the ids it captures are written.
    #[serde(default)]
    pub encoding: IdEncoding,
    /// How the level it captures is written.
    #[serde(default)]
    pub level: LevelScheme,
}

/// The rules file as written.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractRules {
    /// Field names for JSON and logfmt lines.
    pub fields: FieldRules,
    /// Regexes for plain text.
    pub text: Vec<TextRule>,
}

/// The group names a text rule may use.
pub const GROUPS: [&str; 7] = [
    "trace_id",
    "span_id",
    "traceparent",
    "level",
    "timestamp",
    "message",
    "service",
];

/// Bit of a group (index in [`GROUPS`]) in a group mask.
pub const fn group_bit(group: usize) -> u8 {
    1 << group
}

/// Index of `trace_id` in [`GROUPS`].
pub const G_TRACE_ID: usize = 0;
/// Index of `span_id`.
pub const G_SPAN_ID: usize = 1;
/// Index of `traceparent`.
pub const G_TRACEPARENT: usize = 2;
/// Index of `level`.
pub const G_LEVEL: usize = 3;
/// Index of `timestamp`.
pub const G_TIMESTAMP: usize = 4;
/// Index of `message`.
pub const G_MESSAGE: usize = 5;
/// Index of `service`.
pub const G_SERVICE: usize = 6;

/// A compiled text rule.
#[derive(Debug, Clone)]
pub struct CompiledTextRule {
    /// Rule name.
    pub name: String,
    /// The regex.
    pub regex: regex::Regex,
    /// How its ids are written.
    pub encoding: IdEncoding,
    /// How its level is written.
    pub level: LevelScheme,
    /// Capture index of each group of [`GROUPS`] it has.
    pub slots: [Option<usize>; 7],
    /// The values it can fill, as a mask of [`group_bit`]s (`traceparent` counts as trace and
    /// span id).
    pub fills: u8,
    /// The same regex for searches anchored where the prefilter saw the literal every match of
    /// it starts with: one capturing pass (one-pass DFA where the pattern allows) instead of a
    /// forward, a reverse and a capturing pass. `None` when its matches start with no literal.
    pub at_literal: Option<regex_automata::meta::Regex>,
    /// A hand-written matcher giving the regex's matches, for a shipped pattern.
    pub fast: Option<Fast>,
}

/// Where a value came from, for `tracejoin check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Entry `index` of the field list of group `group` (index in [`GROUPS`]).
    Field {
        /// The list (index in [`GROUPS`]).
        group: u8,
        /// The entry.
        index: u16,
    },
    /// The `default` of that entry (the field was absent).
    Default {
        /// The list (index in [`GROUPS`]).
        group: u8,
        /// The entry.
        index: u16,
    },
    /// Text rule `index`.
    Rule(u16),
}

/// Rules ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    /// Field names for JSON and logfmt lines.
    pub fields: FieldRules,
    /// Compiled text regexes, in file order.
    pub text: Vec<CompiledTextRule>,
    /// Which rules can match a line, from the literals each needs, in one pass.
    pub prefilter: Option<Prefilter>,
    /// The groups some text rule fills (see [`CompiledTextRule::fills`]).
    pub fills: u8,
}

impl FieldRules {
    /// The field list of group `group` (index in [`GROUPS`]).
    pub fn list(&self, group: usize) -> &[FieldRef] {
        match group {
            G_TRACE_ID => &self.trace_id,
            G_SPAN_ID => &self.span_id,
            G_TRACEPARENT => &self.traceparent,
            G_LEVEL => &self.level,
            G_TIMESTAMP => &self.timestamp,
            G_MESSAGE => &self.message,
            _ => &self.service,
        }
    }
}

impl CompiledRules {
    /// Names a source: `field "@tr"`, `rule "sleuth"`, `default of "@l"`.
    pub fn describe(&self, source: Source) -> String {
        match source {
            Source::Field { group, index } => format!(
                "field {:?}",
                self.fields
                    .list(group as usize)
                    .get(index as usize)
                    .map_or("?", FieldRef::path)
            ),
            Source::Default { group, index } => format!(
                "absent field {:?} (default)",
                self.fields
                    .list(group as usize)
                    .get(index as usize)
                    .map_or("?", FieldRef::path)
            ),
            Source::Rule(i) => format!(
                "rule {:?}",
                self.text.get(i as usize).map_or("?", |r| r.name.as_str())
            ),
        }
    }

    /// The metric label of a source: the rule name, or `field:<path>`.
    pub fn label(&self, source: Source) -> String {
        match source {
            Source::Rule(i) => self
                .text
                .get(i as usize)
                .map_or_else(|| "?".into(), |r| r.name.clone()),
            Source::Field { group, index } | Source::Default { group, index } => format!(
                "field:{}",
                self.fields
                    .list(group as usize)
                    .get(index as usize)
                    .map_or("?", FieldRef::path)
            ),
        }
    }
}

/// Why a rules file was rejected.
#[derive(Debug, Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not match the rules schema.
    #[error("rules file {path}: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The YAML error, with its location.
        source: serde_yaml::Error,
    },
    /// A regex does not compile.
    #[error("text rule {rule:?}: invalid regex: {source}")]
    Regex {
        /// The rule's name.
        rule: String,
        /// The regex error.
        source: regex::Error,
    },
    /// A regex has a named group tracejoin does not know.
    #[error("text rule {rule:?}: unknown group name {group:?} (known: {known})", known = GROUPS.join(", "))]
    UnknownGroup {
        /// The rule's name.
        rule: String,
        /// The group name.
        group: String,
    },
}

impl ExtractRules {
    /// Reads and parses a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses rules from YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, RulesError> {
        serde_yaml::from_str(text).map_err(|source| RulesError::Parse {
            path: origin.to_string(),
            source,
        })
    }

    /// The rules shipped in `rules/extract.yaml`, compiled into the binary so the demo and a
    /// config without `rules.extract` work anywhere.
    pub fn builtin() -> Self {
        Self::parse(
            include_str!("../../rules/extract.yaml"),
            "rules/extract.yaml (built in)",
        )
        .unwrap_or_default()
    }

    /// Compiles the regexes, checking group names.
    pub fn compile(&self) -> Result<CompiledRules, RulesError> {
        let mut text = Vec::with_capacity(self.text.len());
        for rule in &self.text {
            let regex = regex::Regex::new(&rule.pattern).map_err(|source| RulesError::Regex {
                rule: rule.name.clone(),
                source,
            })?;
            if let Some(bad) = regex
                .capture_names()
                .flatten()
                .find(|g| !GROUPS.contains(g))
            {
                return Err(RulesError::UnknownGroup {
                    rule: rule.name.clone(),
                    group: bad.to_string(),
                });
            }
            let mut slots = [None; 7];
            for (i, name) in regex.capture_names().enumerate() {
                if let Some(g) = name.and_then(|n| GROUPS.iter().position(|g| *g == n)) {
                    slots[g] = Some(i);
                }
            }
            let mut fills = 0u8;
            for (g, slot) in slots.iter().enumerate() {
                if slot.is_some() {
                    fills |= group_bit(g);
                }
            }
            if fills & group_bit(G_TRACEPARENT) != 0 {
                fills |= group_bit(G_TRACE_ID) | group_bit(G_SPAN_ID);
            }
            text.push(CompiledTextRule {
                name: rule.name.clone(),
                regex,
                encoding: rule.encoding,
                level: rule.level,
                slots,
                fills,
                at_literal: None,
                fast: Fast::for_pattern(&rule.pattern),
            });
        }
        let patterns: Vec<String> = self.text.iter().map(|r| r.pattern.clone()).collect();
        let prefilter = Prefilter::new(&text, &patterns).map(|(p, starts)| {
            for (i, rule) in text.iter_mut().enumerate() {
                if starts & (1 << i) != 0 {
                    // The pattern compiled as `regex` did; should it fail here, the rule just
                    // keeps the unanchored search.
                    rule.at_literal = regex_automata::meta::Regex::new(&patterns[i]).ok();
                }
            }
            p
        });
        Ok(CompiledRules {
            fields: self.fields.clone(),
            fills: text.iter().fold(0, |m, r| m | r.fills),
            text,
            prefilter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefilter::{required, spread_required};
    use super::*;

    #[test]
    fn shipped_rules_parse_and_compile() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/extract.yaml");
        let rules = ExtractRules::load(&path).unwrap();
        assert!(!rules.fields.trace_id.is_empty());
        assert!(!rules.text.is_empty());
        rules.compile().unwrap();
        assert_eq!(ExtractRules::builtin(), rules);
    }

    #[test]
    fn errors_name_the_rule() {
        let bad = ExtractRules::parse(
            "text:\n  - name: broken\n    pattern: '(?P<trace_id>['\n",
            "t",
        )
        .unwrap();
        let err = bad.compile().unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
        let bad =
            ExtractRules::parse("text:\n  - name: odd\n    pattern: '(?P<user>x)'\n", "t").unwrap();
        let err = bad.compile().unwrap_err().to_string();
        assert!(err.contains("odd") && err.contains("user"), "{err}");
        let err = ExtractRules::parse("fields:\n  trace: [x]\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml") && err.contains("trace"), "{err}");
    }

    #[test]
    fn required_literals() {
        let req = |p: &str| {
            required(&regex_syntax::parse(p).unwrap()).map(|s| {
                s.into_iter()
                    .map(|l| String::from_utf8(l).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(req("(?i)uber-trace-id[=:]x").unwrap(), ["uber-trace-id"]);
        assert_eq!(
            req(r"(?i)\b(?:trace[_.]?id|otelTraceID)[=:]").unwrap(),
            ["trace", "oteltraceid"]
        );
        assert_eq!(req(r"^\d+").as_deref(), None);
        assert_eq!(req(r"(?i)\[(?:info|warn)\]").unwrap(), ["info", "warn"]);
        // (?i)s also matches U+017F: no literal through it
        assert_eq!(req("(?i)spans").unwrap(), ["pan"]);
        let rules = ExtractRules::builtin().compile().unwrap();
        let pf = rules.prefilter.as_ref().unwrap();
        let idx = |n: &str| rules.text.iter().position(|r| r.name == n).unwrap();
        let c = pf.candidates("GET / uBer-Trace-Id: 1:2:0:1");
        assert!(c & (1 << idx("jaeger")) != 0);
        assert!(c & (1 << idx("datadog")) == 0);
    }

    #[test]
    fn spread_literals() {
        let req = |p: &str| {
            let mut v: Vec<String> = spread_required(&regex_syntax::parse(p).unwrap())
                .unwrap()
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(req(r"(?i)(?-u:\b)b3[=:]x"), ["b3:x", "b3=x"]);
        let spring = req(r"\[(?P<t>[0-9a-fA-F]{32})-");
        assert_eq!(spring.len(), 16);
        assert!(spring.contains(&"[a".to_string()) && spring.contains(&"[7".to_string()));
        let sleuth = req(r"\[[^,]*,(?P<t>[0-9a-f]{32}|[0-9a-f]{16}),");
        assert!(sleuth.contains(&",0".to_string()) && sleuth.len() == 16);
        assert_eq!(req("^<(?P<level>[0-9]{1,3})>").len(), 10);
        // (?i)s also matches U+017F: no literal through it
        assert_eq!(req("(?i)spans"), ["pan"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The prefilter may let through rules that do not match, never rule out one that does.
        #[test]
        fn prefilter_keeps_every_matching_rule(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just("[".to_string()), proptest::prelude::Just("]".to_string()),
                proptest::prelude::Just(",".to_string()), proptest::prelude::Just("<".to_string()),
                proptest::prelude::Just("-".to_string()), proptest::prelude::Just(":".to_string()),
                proptest::prelude::Just("=".to_string()), proptest::prelude::Just(" ".to_string()),
                proptest::prelude::Just("traceparent: 00-".to_string()),
                proptest::prelude::Just("Root=1-".to_string()),
                proptest::prelude::Just("TraceId: 1-".to_string()),
                proptest::prelude::Just("SegmentId=".to_string()),
                proptest::prelude::Just("uber-trace-id: ".to_string()),
                proptest::prelude::Just("B3=".to_string()),
                proptest::prelude::Just("dd.trace_id=".to_string()),
                proptest::prelude::Just(" dd.span_id=".to_string()),
                proptest::prelude::Just("trace_id=".to_string()),
                proptest::prelude::Just("otelSpanID=".to_string()),
                proptest::prelude::Just("2024-05-01T12:00:00.123Z ".to_string()),
                proptest::prelude::Just("E0501 12:00:00.123456 12 a.go:8] ".to_string()),
                proptest::prelude::Just("<34>1 ".to_string()),
                proptest::prelude::Just("WARN".to_string()),
                proptest::prelude::Just("[info]".to_string()),
                proptest::prelude::Just(",true]".to_string()),
                "[0-9a-f]{1,32}", "[0-9]{1,4}", "[ -~]{0,3}", "[0-9a-fA-F\\-]{1,8}",
            ], 0..14)) {
            let line = parts.concat();
            let rules = ExtractRules::builtin().compile().unwrap();
            let pf = rules.prefilter.as_ref().unwrap();
            let c = pf.candidates(&line);
            for (i, r) in rules.text.iter().enumerate() {
                if r.regex.is_match(&line) {
                    proptest::prop_assert!(c & (1 << i) != 0, "rule {} ruled out on {:?}", r.name, line);
                }
            }
        }
    }

    #[test]
    fn field_refs_with_encoding() {
        let r = ExtractRules::parse(
            "fields:\n  trace_id: [a, {path: dd.trace_id, encoding: decimal}]\n",
            "t",
        )
        .unwrap();
        assert_eq!(r.fields.trace_id[0].path(), "a");
        assert_eq!(r.fields.trace_id[1].encoding(), IdEncoding::Decimal);
    }
}
