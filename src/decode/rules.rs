//! Extraction rules: where a raw log line keeps its trace id, span id, level, time and message.
//!
//! The rules live in `rules/extract.yaml` because they are what users change most. Two parts:
//! - `fields`: for JSON objects and logfmt lines, the field names to try, in order, for each
//!   value. A name with dots (`trace.id`) is tried first as a literal key, then as a path into
//!   nested objects (`{"trace":{"id":…}}`). An entry may declare the id encoding
//!   (`{path: dd.trace_id, encoding: decimal}`).
//! - `text`: regexes with named groups (`trace_id`, `span_id`, `traceparent`, `level`,
//!   `timestamp`, `message`, `service`), all applied to plain-text lines (and to the message of a
//!   JSON or logfmt line that had no id field); the first rule to capture a value wins it.
//!
//! Compilation checks every regex and every group name, and the error names the rule.

use super::ids::IdEncoding;
use serde::Deserialize;
use std::path::Path;
use thiserror::Error;

/// A field to look in, with the id encoding where it matters.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FieldRef {
    /// A field name or dotted path.
    Path(String),
    /// A field with its id encoding.
    Spec {
        /// Field name or dotted path.
        path: String,
        /// How the id in it is written.
        #[serde(default)]
        encoding: IdEncoding,
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

/// A compiled text rule.
#[derive(Debug, Clone)]
pub struct CompiledTextRule {
    /// Rule name.
    pub name: String,
    /// The regex.
    pub regex: regex::Regex,
}

/// Rules ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    /// Field names for JSON and logfmt lines.
    pub fields: FieldRules,
    /// Compiled text regexes, in file order.
    pub text: Vec<CompiledTextRule>,
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
            text.push(CompiledTextRule {
                name: rule.name.clone(),
                regex,
            });
        }
        Ok(CompiledRules {
            fields: self.fields.clone(),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
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
