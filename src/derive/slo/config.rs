//! What the user writes in `rules/slo.yaml`: the SLOs (fields modelled on OpenSLO: service,
//! objective, time window, indicator) and how bad events are attributed. Defaults live here, in
//! the `Default` impls; `validate` checks what serde cannot and its errors name the SLO and key.

use crate::model::{AttrValue, SpanKind};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Why an SLO file was rejected.
#[derive(Debug, Error)]
pub enum SloError {
    /// The file could not be read.
    #[error("cannot read SLO file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not match the schema (unknown key, wrong type, bad duration …).
    #[error("SLO file {origin}: {source}")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// The YAML error, with its location and key.
        source: serde_yaml::Error,
    },
    /// A value breaks a rule `validate` checks.
    #[error("SLO file {origin}: {slo} `{key}` = {value}: {reason}")]
    Invalid {
        /// Where the text came from (empty for a config built in code).
        origin: String,
        /// Which SLO, as `slos[i] (name)`, or `attribution`.
        slo: String,
        /// The key inside it, e.g. `indicator.availability.bad_attributes[0]`.
        key: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// The whole SLO file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// The SLOs. Each span is checked against every SLO: one span may count in several.
    pub slos: Vec<SloSpec>,
    /// How bad events are attributed to operations and causes, and the bounds on that state.
    #[serde(default)]
    pub attribution: AttributionConfig,
    /// Where the text came from, for error messages.
    #[serde(skip)]
    pub origin: String,
}

/// One SLO.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// The SLO's name, unique in the file: the `slo` label of tracejoin's metrics and Sloth's
    /// `sloth_slo`. Sloth's `sloth_id` is `<service>-<name>`.
    pub name: String,
    /// The service the SLO belongs to (Sloth's `sloth_service`); also the default span service
    /// of the selector.
    pub service: String,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// The target ratio of good events, in (0, 1): `0.999` for "99.9 %" (OpenSLO's `target`).
    pub objective: f64,
    /// The rolling period the objective is over (OpenSLO's `timeWindow`), whole hours from `1d`
    /// to `90d`: the period of `slo:period_error_budget_remaining:ratio`. Default `30d`.
    #[serde(default = "default_time_window", with = "humantime_serde")]
    pub time_window: Duration,
    /// Extra labels on the Sloth-named series of this SLO (`team: payments`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Which spans are events of this SLO.
    #[serde(default)]
    pub selector: Selector,
    /// Which of them are bad: `{availability: {…}}` or `{latency: {…}}`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub indicator: Indicator,
    /// A window with fewer events than this has no error ratio: its SLI, its burn rate and the
    /// alert conditions over it read 0. One bad request in an otherwise empty 3-day window is
    /// 100 % errors, which would fire `ticket_slow`; the price is that a service with fewer
    /// requests than this per 5 minutes cannot page on the 5-minute window. 0 turns it off.
    /// Default 10.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
}

fn default_time_window() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_min_events() -> u64 {
    10
}

/// Which spans are events of an SLO. All given conditions must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The span's `service.name`; default the SLO's `service`.
    #[serde(default)]
    pub service: Option<String>,
    /// The span name, exactly (`POST /api/checkout`).
    #[serde(default)]
    pub span_name: Option<String>,
    /// The span name as a regular expression (Rust `regex` syntax), anchored at both ends as
    /// Prometheus anchors its matchers: `(GET|POST) /api/.*`. Exclusive with `span_name`.
    #[serde(default)]
    pub span_name_regex: Option<String>,
    /// Span kinds, e.g. `[server]` (the default) or `[server, consumer]`.
    #[serde(default = "default_kinds", deserialize_with = "span_kinds")]
    pub span_kinds: Vec<SpanKind>,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            service: None,
            span_name: None,
            span_name_regex: None,
            span_kinds: default_kinds(),
        }
    }
}

fn default_kinds() -> Vec<SpanKind> {
    vec![SpanKind::Server]
}

fn span_kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SpanKind>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            SpanKind::parse(s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown span kind {s:?} (server, client, producer, consumer, internal, \
                     unspecified, or SPAN_KIND_SERVER …)"
                ))
            })
        })
        .collect()
}

/// What makes an event bad.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Indicator {
    /// Bad = the span failed.
    Availability(AvailabilityIndicator),
    /// Bad = the span was too slow.
    Latency(LatencyIndicator),
}

/// Availability: a span is bad if its status is error (unless turned off) or any attribute
/// predicate holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityIndicator {
    /// Whether status `STATUS_CODE_ERROR` makes a span bad. Default `true`.
    #[serde(default = "yes")]
    pub error_status: bool,
    /// Predicates `<attribute> <op> <value>` (ops `>= > <= < == !=`), e.g.
    /// `http.response.status_code >= 500` or `rpc.grpc.status_code != 0`. A number compares
    /// numerically, a quoted string (or any other word) by equality. A span without the
    /// attribute does not satisfy the predicate. The attribute must be kept by the decoder
    /// (`join.span_attributes`).
    #[serde(default)]
    pub bad_attributes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Latency: a span is bad if it lasted longer than the threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyIndicator {
    /// Spans strictly longer than this (`end - start`) are bad: `300ms`.
    #[serde(with = "humantime_serde")]
    pub threshold: Duration,
}

/// Attribution of bad events, and the bounds on its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// Distinct operations (span names) per SLO in the attribution and event-count series;
    /// further ones are folded into `operation="other"`.
    pub max_operations: usize,
    /// Distinct causes per SLO; further ones are folded into `cause="other"`. `unknown` (no
    /// cause found) and `none` (good events) do not count against the cap.
    pub max_causes: usize,
    /// Bad events waiting for their trace's logs, over all SLOs, per join partition (the
    /// waiting events move with their partition). Beyond it the oldest is
    /// finalised early, with the cause known so far
    /// (`tracejoin_slo_forced_finalisations_total`, see [`SloStats`](super::SloStats)).
    pub max_pending: usize,
    /// Error logs kept for traces whose bad span has not been seen yet (a child span's log
    /// that left the join before its parent server span arrived), per join partition.
    pub max_orphan_logs: usize,
    /// How long (event time, past the log's `max_wait`) such a log is kept for a bad span of
    /// its trace to arrive.
    #[serde(with = "humantime_serde")]
    pub orphan_log_retention: Duration,
    /// Log severities that count as errors, compared case-insensitively after dropping a
    /// trailing number (`ERROR2` is `error`).
    pub error_severities: Vec<String>,
    /// Longest cause template, in characters; longer ones are cut and end in `…`.
    pub max_cause_length: usize,
    /// How many recently counted spans (trace id + span id) are remembered so a redelivered
    /// copy is not counted twice. `0` turns the check off.
    pub dedup_window: usize,
    /// How many operations, causes and (operation, cause) pairs an attribution event lists.
    pub top: usize,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig {
            max_operations: 20,
            max_causes: 30,
            max_pending: 100_000,
            max_orphan_logs: 10_000,
            orphan_log_retention: Duration::from_secs(300),
            error_severities: [
                "error",
                "err",
                "fatal",
                "critical",
                "crit",
                "alert",
                "emerg",
                "emergency",
                "panic",
                "severe",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_cause_length: 160,
            dedup_window: 100_000,
            top: 5,
        }
    }
}

/// A comparison in a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

/// What a predicate compares against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PredValue {
    Num(f64),
    Str(String),
}

/// `http.response.status_code >= 500`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttrPredicate {
    pub(crate) key: String,
    pub(crate) op: CmpOp,
    pub(crate) value: PredValue,
}

impl AttrPredicate {
    /// Parses `<key> <op> <value>`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().splitn(3, char::is_whitespace);
        let key = parts.next().unwrap_or_default();
        let op = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default().trim();
        if key.is_empty() || op.is_empty() || value.is_empty() {
            return Err(
                "write `<attribute> <op> <value>`, e.g. `http.response.status_code >= 500`".into(),
            );
        }
        let op = match op {
            ">=" => CmpOp::Ge,
            ">" => CmpOp::Gt,
            "<=" => CmpOp::Le,
            "<" => CmpOp::Lt,
            "==" | "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            other => return Err(format!("unknown operator `{other}` (>= > <= < == !=)")),
        };
        let quoted = value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')));
        let value = if quoted {
            PredValue::Str(value[1..value.len() - 1].to_string())
        } else if let Ok(n) = value.parse::<f64>() {
            PredValue::Num(n)
        } else {
            PredValue::Str(value.to_string())
        };
        if matches!(value, PredValue::Str(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err("a string compares only with == or !=".into());
        }
        Ok(AttrPredicate {
            key: key.to_string(),
            op,
            value,
        })
    }

    /// Whether the attribute value satisfies the predicate (a missing value never does).
    pub(crate) fn holds(&self, v: Option<&AttrValue>) -> bool {
        let Some(v) = v else { return false };
        match &self.value {
            PredValue::Num(n) => {
                let Some(x) = v.as_f64() else { return false };
                match self.op {
                    CmpOp::Ge => x >= *n,
                    CmpOp::Gt => x > *n,
                    CmpOp::Le => x <= *n,
                    CmpOp::Lt => x < *n,
                    CmpOp::Eq => x == *n,
                    CmpOp::Ne => x != *n,
                }
            }
            PredValue::Str(s) => {
                let equal = match v {
                    AttrValue::Str(a) => **a == **s,
                    other => other.to_label() == *s,
                };
                (self.op == CmpOp::Eq) == equal
            }
        }
    }
}

/// The longest period and the bounds of the durations accepted.
const MIN_PERIOD: Duration = Duration::from_secs(86_400);
const MAX_PERIOD: Duration = Duration::from_secs(90 * 86_400);

impl SloConfig {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SloError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SloError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SloError> {
        let mut cfg: SloConfig = serde_yaml::from_str(text).map_err(|source| SloError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        cfg.origin = origin.to_string();
        cfg.validate()?;
        Ok(cfg)
    }

    fn invalid(
        &self,
        slo: String,
        key: &str,
        value: impl std::fmt::Display,
        reason: &str,
    ) -> SloError {
        SloError::Invalid {
            origin: self.origin.clone(),
            slo,
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Checks what serde cannot. Errors name the SLO (`slos[i] (name)`) and the key.
    pub fn validate(&self) -> Result<(), SloError> {
        let mut names: Vec<&str> = Vec::new();
        for (i, s) in self.slos.iter().enumerate() {
            let at = format!("slos[{i}] ({})", s.name);
            let err = |key: &str, value: &dyn std::fmt::Display, reason: &str| {
                self.invalid(at.clone(), key, value, reason)
            };
            if s.name.trim().is_empty() {
                return Err(err("name", &"\"\"", "an SLO needs a name"));
            }
            if names.contains(&s.name.as_str()) {
                return Err(err("name", &s.name, "another SLO already has this name"));
            }
            names.push(&s.name);
            if s.service.trim().is_empty() {
                return Err(err("service", &"\"\"", "an SLO needs a service"));
            }
            if !(s.objective > 0.0 && s.objective < 1.0) {
                return Err(err(
                    "objective",
                    &s.objective,
                    "a ratio strictly between 0 and 1 (0.999 for 99.9 %)",
                ));
            }
            let tw = s.time_window;
            if tw < MIN_PERIOD
                || tw > MAX_PERIOD
                || tw.as_secs() % 3600 != 0
                || tw.subsec_nanos() != 0
            {
                return Err(err(
                    "time_window",
                    &humantime::format_duration(tw),
                    "whole hours from 1d to 90d",
                ));
            }
            for k in s.labels.keys() {
                if !valid_label_name(k) || k.starts_with("__") {
                    return Err(err(
                        &format!("labels.{k}"),
                        k,
                        "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
                    ));
                }
                if k.starts_with("sloth_") {
                    return Err(err(
                        &format!("labels.{k}"),
                        k,
                        "sloth_* labels are set by tracejoin",
                    ));
                }
            }
            let sel = &s.selector;
            if sel.span_name.is_some() && sel.span_name_regex.is_some() {
                return Err(err(
                    "selector.span_name_regex",
                    &sel.span_name_regex.as_deref().unwrap_or_default(),
                    "give span_name or span_name_regex, not both",
                ));
            }
            if let Some(re) = &sel.span_name_regex {
                if let Err(e) = anchored(re) {
                    return Err(err("selector.span_name_regex", re, &e.to_string()));
                }
            }
            if sel.span_kinds.is_empty() {
                return Err(err(
                    "selector.span_kinds",
                    &"[]",
                    "list at least one span kind",
                ));
            }
            match &s.indicator {
                Indicator::Availability(a) => {
                    if !a.error_status && a.bad_attributes.is_empty() {
                        return Err(err(
                            "indicator.availability",
                            &"error_status: false",
                            "nothing would make an event bad: keep error_status or add bad_attributes",
                        ));
                    }
                    for (j, p) in a.bad_attributes.iter().enumerate() {
                        if let Err(reason) = AttrPredicate::parse(p) {
                            return Err(err(
                                &format!("indicator.availability.bad_attributes[{j}]"),
                                p,
                                &reason,
                            ));
                        }
                    }
                }
                Indicator::Latency(l) => {
                    if l.threshold.is_zero() {
                        return Err(err(
                            "indicator.latency.threshold",
                            &"0s",
                            "must be positive",
                        ));
                    }
                }
            }
        }
        let a = &self.attribution;
        let at = || "attribution".to_string();
        for (key, v) in [
            ("max_operations", a.max_operations),
            ("max_causes", a.max_causes),
            ("max_pending", a.max_pending),
            ("max_cause_length", a.max_cause_length),
            ("top", a.top),
        ] {
            if v == 0 {
                return Err(self.invalid(at(), key, 0, "must be at least 1"));
            }
        }
        if a.max_cause_length < 16 {
            return Err(self.invalid(
                at(),
                "max_cause_length",
                a.max_cause_length,
                "must be at least 16",
            ));
        }
        if a.error_severities.is_empty() {
            return Err(self.invalid(at(), "error_severities", "[]", "list at least one severity"));
        }
        Ok(())
    }

    /// The span attributes the SLOs read: each must be in `join.span_attributes`, or the
    /// decoder drops it and the predicate never holds. For `Config::validate` to cross-check.
    pub fn span_attributes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.slos {
            if let Indicator::Availability(a) = &s.indicator {
                for p in &a.bad_attributes {
                    if let Ok(p) = AttrPredicate::parse(p) {
                        if !out.contains(&p.key) {
                            out.push(p.key);
                        }
                    }
                }
            }
        }
        out
    }
}

/// `^(?:re)$`, compiled.
pub(crate) fn anchored(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
