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
//! matches start with its literal is searched anchored where the scan saw it.
//!
//! Compilation checks every regex and every group name, and the error names the rule.

use super::ids::IdEncoding;
use super::level::LevelScheme;
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
}

/// The literals the text rules need: a rule can match only a line holding one of its literals
/// (ASCII case-insensitively), so one Aho-Corasick pass rules most of them out.
#[derive(Debug, Clone)]
pub struct Prefilter {
    ac: aho_corasick::dfa::DFA,
    /// The rules each literal stands for.
    hits: Vec<Vec<Hit>>,
    /// Rules that need no literal (always candidates).
    always: u64,
    /// Rules every match of which starts with one of their literals.
    starts: u64,
}

/// A rule a literal stands for, with the bytes (lowercase, as a bit set) one of which must
/// follow it. `[` then a hex digit is the literal `[` and a check of the next byte: sixteen
/// literals `[0`…`[f` would make the automaton larger than the L1 cache, and its scan, one
/// dependent load per byte, several times slower.
#[derive(Debug, Clone)]
struct Hit {
    rule: u32,
    follow: Option<[u64; 4]>,
}

/// The rules that can match a line, and where the first literal of each rule that starts its
/// matches with one was seen.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// Rule bits.
    pub rules: u64,
    /// Per rule, the first offset of a literal that starts its matches (`usize::MAX`: none).
    pub first: [usize; 64],
}

impl Prefilter {
    /// The prefilter, and the rules whose literals start every match of them.
    fn new(rules: &[CompiledTextRule], patterns: &[String]) -> Option<(Self, u64)> {
        if rules.len() > 64 {
            return None;
        }
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut hits: Vec<Vec<Hit>> = Vec::new();
        let mut always = 0u64;
        let mut starts = 0u64;
        for (i, p) in patterns.iter().enumerate() {
            let need = regex_syntax::parse(p).ok().and_then(|h| {
                let plain = required(&h);
                let spread = spread_required(&h);
                let best = match (plain, spread) {
                    (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
                    (a, b) => a.or(b),
                };
                let prefix = prefix_literals(&h).filter(|p| p.iter().all(|l| !l.is_empty()));
                match (best, prefix) {
                    (Some(b), Some(p)) if score(&p) >= score(&b) => {
                        starts |= 1 << i;
                        Some(p)
                    }
                    (None, Some(p)) => {
                        starts |= 1 << i;
                        Some(p)
                    }
                    (b, _) => b,
                }
            });
            match need {
                Some(set) if !set.is_empty() && set.iter().all(|l| !l.is_empty()) => {
                    for (lit, follow) in stems(set) {
                        let hit = Hit {
                            rule: i as u32,
                            follow,
                        };
                        match literals.iter().position(|l| *l == lit) {
                            Some(j) => hits[j].push(hit),
                            None => {
                                literals.push(lit);
                                hits.push(vec![hit]);
                            }
                        }
                    }
                }
                _ => {
                    always |= 1 << i;
                    starts &= !(1 << i);
                }
            }
        }
        // The DFA itself rather than `AhoCorasick`: its overlapping search steps through a
        // trait object, a dynamic call per byte, about a fifth of a text line's time.
        let ac = aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .prefilter(false)
            .build(&literals)
            .ok()?;
        Some((
            Prefilter {
                ac,
                hits,
                always,
                starts,
            },
            starts,
        ))
    }

    /// The rules (bits) that can match `text`.
    pub fn candidates(&self, text: &str) -> u64 {
        let mut c = Candidates {
            rules: 0,
            first: [usize::MAX; 64],
        };
        self.candidates_into(text, &mut c);
        c.rules
    }

    /// The rules that can match `text`, with the first offset of the literal that starts the
    /// matches of those whose matches start with one.
    pub fn candidates_into(&self, text: &str, c: &mut Candidates) {
        use aho_corasick::automaton::Automaton;
        c.rules = self.always;
        let Ok(mut sid) = self.ac.start_state(aho_corasick::Anchored::No) else {
            // Cannot happen for an unanchored DFA; every rule stays a candidate.
            c.rules = u64::MAX;
            return;
        };
        let bytes = text.as_bytes();
        let mut end = 0;
        // Only the state stays live in this loop: what a match does is out of it, so the state
        // is kept in a register (one dependent table load per byte is the whole cost).
        while end < bytes.len() {
            sid = self
                .ac
                .next_state(aho_corasick::Anchored::No, sid, bytes[end]);
            end += 1;
            if self.ac.is_special(sid) && self.ac.is_match(sid) {
                self.record(sid, bytes, end, c);
            }
        }
    }

    /// Marks the rules of the literals matched in state `sid`, ending at `end`.
    #[inline(never)]
    fn record(
        &self,
        sid: aho_corasick::automaton::StateID,
        bytes: &[u8],
        end: usize,
        c: &mut Candidates,
    ) {
        use aho_corasick::automaton::Automaton;
        for k in 0..self.ac.match_len(sid) {
            let pid = self.ac.match_pattern(sid, k);
            for hit in &self.hits[pid.as_usize()] {
                if let Some(follow) = &hit.follow {
                    let Some(next) = bytes.get(end) else {
                        continue;
                    };
                    let next = next.to_ascii_lowercase();
                    if follow[usize::from(next >> 6)] & (1 << (next & 63)) == 0 {
                        continue;
                    }
                }
                c.rules |= 1 << hit.rule;
                if self.starts & (1 << hit.rule) != 0 {
                    let start = end - self.ac.pattern_len(pid);
                    let first = &mut c.first[hit.rule as usize];
                    *first = (*first).min(start);
                }
            }
        }
    }
}

/// A byte that a node matches, if it matches exactly one ASCII character up to case.
fn single_char(h: &regex_syntax::hir::Hir) -> Option<u8> {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Literal(l) if l.0.len() == 1 => Some(l.0[0].to_ascii_lowercase()),
        HirKind::Class(Class::Unicode(c)) => {
            let mut chars = c.iter().flat_map(|r| r.start()..=r.end());
            let first = chars.next()?;
            if !first.is_ascii() {
                return None;
            }
            let lower = first.to_ascii_lowercase();
            let mut n = 1;
            for ch in chars {
                n += 1;
                if n > 2 || !ch.is_ascii() || ch.to_ascii_lowercase() != lower {
                    return None;
                }
            }
            Some(lower as u8)
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut bytes = c.iter().flat_map(|r| r.start()..=r.end());
            let first = bytes.next()?;
            let lower = first.to_ascii_lowercase();
            let mut n = 1;
            for b in bytes {
                n += 1;
                if n > 2 || b.to_ascii_lowercase() != lower {
                    return None;
                }
            }
            Some(lower)
        }
        _ => None,
    }
}

/// Literals (lowercase) one of which every match of `h` contains, or `None` if there is no
/// such set. Prefers the set whose shortest literal is longest.
fn required(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::HirKind;
    let score = |s: &Vec<Vec<u8>>| s.iter().map(Vec::len).min().unwrap_or(0);
    match h.kind() {
        HirKind::Literal(l) => Some(vec![l.0.to_ascii_lowercase()]),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Alternation(alts) => {
            let mut all = Vec::new();
            for a in alts {
                all.extend(required(a)?);
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut run: Vec<u8> = Vec::new();
            let offer = |cand: Vec<Vec<u8>>, best: &mut Option<Vec<Vec<u8>>>| {
                if best.as_ref().is_none_or(|b| score(&cand) > score(b)) {
                    *best = Some(cand);
                }
            };
            for p in parts {
                if let Some(c) = single_char(p) {
                    run.push(c);
                    continue;
                }
                if let HirKind::Literal(l) = p.kind() {
                    run.extend(l.0.to_ascii_lowercase());
                    continue;
                }
                if !run.is_empty() {
                    offer(vec![std::mem::take(&mut run)], &mut best);
                }
                if let Some(set) = required(p) {
                    offer(set, &mut best);
                }
            }
            if !run.is_empty() {
                offer(vec![run], &mut best);
            }
            best
        }
        _ => single_char(h).map(|c| vec![vec![c]]),
    }
}

/// How selective a literal set is: its shortest literal, then the fewer literals the better (a
/// line holds one of few long literals less often than one of many).
fn score(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    (
        set.iter().map(Vec::len).min().unwrap_or(0),
        std::cmp::Reverse(set.len()),
    )
}

/// A rule's literals as automaton literals: those that differ only in their last byte, four or
/// more of them, become their common stem with the set of last bytes to check after it.
fn stems(set: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Option<[u64; 4]>)> {
    let mut out: Vec<(Vec<u8>, Option<[u64; 4]>)> = Vec::new();
    let mut groups: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for lit in set {
        match lit.split_last() {
            Some((&last, stem)) if !stem.is_empty() => {
                match groups.iter_mut().find(|(s, _)| s == stem) {
                    Some((_, lasts)) => lasts.push(last),
                    None => groups.push((stem.to_vec(), vec![last])),
                }
            }
            _ => out.push((lit, None)),
        }
    }
    for (stem, lasts) in groups {
        if lasts.len() >= 4 {
            let mut bits = [0u64; 4];
            for b in lasts {
                bits[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            out.push((stem, Some(bits)));
        } else {
            out.extend(lasts.into_iter().map(|b| {
                let mut lit = stem.clone();
                lit.push(b);
                (lit, None)
            }));
        }
    }
    out
}

/// Classes of at most this many characters (after ASCII case folding: `[0-9a-f]` is 16) extend
/// a literal run as one literal per character.
const SPREAD_CLASS: usize = 16;
/// A run's literals may not exceed this many: the prefilter stays one small automaton.
const SPREAD_SET: usize = 64;

/// The bytes (ASCII, lowercase) a one-character node can match, if at most [`SPREAD_CLASS`].
fn char_set(h: &regex_syntax::hir::Hir) -> Option<Vec<u8>> {
    use regex_syntax::hir::{Class, HirKind};
    let mut set: Vec<u8> = match h.kind() {
        HirKind::Literal(l) if l.0.len() == 1 && l.0[0].is_ascii() => vec![l.0[0]],
        HirKind::Class(Class::Unicode(c)) => {
            let mut out = Vec::new();
            for r in c.iter() {
                if !r.end().is_ascii() || (r.end() as u32 - r.start() as u32) as usize > 128 {
                    return None;
                }
                out.extend((r.start() as u8)..=(r.end() as u8));
            }
            out
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut out = Vec::new();
            for r in c.iter() {
                if !r.end().is_ascii() {
                    return None;
                }
                out.extend(r.start()..=r.end());
            }
            out
        }
        _ => return None,
    };
    set.iter_mut().for_each(|b| *b = b.to_ascii_lowercase());
    set.sort_unstable();
    set.dedup();
    (set.len() <= SPREAD_CLASS).then_some(set)
}

/// The bytes (ASCII, lowercase) every match of `h` starts with, if few.
fn first_set(h: &regex_syntax::hir::Hir) -> Option<Vec<u8>> {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Literal(l) => {
            l.0.first()
                .filter(|b| b.is_ascii())
                .map(|b| vec![b.to_ascii_lowercase()])
        }
        HirKind::Class(_) => char_set(h),
        HirKind::Capture(c) => first_set(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => first_set(&r.sub),
        HirKind::Concat(parts) => {
            // Zero-width assertions before the first character do not move it.
            let first = parts
                .iter()
                .find(|p| !matches!(p.kind(), HirKind::Look(_)))?;
            first_set(first)
        }
        HirKind::Alternation(alts) => {
            let mut set = Vec::new();
            for a in alts {
                set.extend(first_set(a)?);
            }
            set.sort_unstable();
            set.dedup();
            (set.len() <= SPREAD_CLASS).then_some(set)
        }
        _ => None,
    }
}

/// Like [`required`], but a literal run also spreads over small classes (`\[` then a hex digit
/// gives the 16 literals `[0`…`[f`) and into the first character of the node after it, and
/// zero-width assertions do not break a run. Single characters such as `[` or `<` are in almost
/// every line; two or three characters with a hex digit or a digit are not.
fn spread_required(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{Hir, HirKind};
    fn flatten<'h>(h: &'h Hir, out: &mut Vec<&'h Hir>) {
        match h.kind() {
            HirKind::Concat(parts) => parts.iter().for_each(|p| flatten(p, out)),
            HirKind::Capture(c) => flatten(&c.sub, out),
            _ => out.push(h),
        }
    }
    match h.kind() {
        HirKind::Capture(c) => return spread_required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => return spread_required(&r.sub),
        HirKind::Alternation(alts) => {
            let mut all = Vec::new();
            for a in alts {
                all.extend(spread_required(a)?);
            }
            return Some(all);
        }
        HirKind::Concat(_) => {}
        _ => return required(h),
    }
    let mut parts = Vec::new();
    flatten(h, &mut parts);
    let mut best: Option<Vec<Vec<u8>>> = None;
    let offer = |cand: Vec<Vec<u8>>, best: &mut Option<Vec<Vec<u8>>>| {
        if !cand.is_empty() && best.as_ref().is_none_or(|b| score(&cand) > score(b)) {
            *best = Some(cand);
        }
    };
    // The run: literals one of which the input holds where the run's nodes matched.
    let mut run: Vec<Vec<u8>> = Vec::new();
    let extend = |run: &mut Vec<Vec<u8>>, set: &[u8], best: &mut Option<Vec<Vec<u8>>>| {
        if run.is_empty() {
            *run = set.iter().map(|&b| vec![b]).collect();
            return;
        }
        if run.len() * set.len() > SPREAD_SET {
            offer(std::mem::take(run), best);
            *run = set.iter().map(|&b| vec![b]).collect();
            return;
        }
        *run = run
            .iter()
            .flat_map(|l| {
                set.iter().map(move |&b| {
                    let mut l = l.clone();
                    l.push(b);
                    l
                })
            })
            .collect();
    };
    for p in parts {
        match p.kind() {
            HirKind::Look(_) => continue,
            HirKind::Literal(l) if l.0.is_ascii() => {
                for &b in l.0.iter() {
                    extend(&mut run, &[b.to_ascii_lowercase()], &mut best);
                }
                continue;
            }
            _ => {}
        }
        if let Some(set) = char_set(p) {
            extend(&mut run, &set, &mut best);
            continue;
        }
        if let HirKind::Repetition(r) = p.kind() {
            if let Some(set) = char_set(&r.sub) {
                for _ in 0..r.min.min(4) {
                    extend(&mut run, &set, &mut best);
                }
                if r.max != Some(r.min) || r.min > 4 {
                    offer(std::mem::take(&mut run), &mut best);
                }
                continue;
            }
        }
        if let Some(set) = first_set(p) {
            extend(&mut run, &set, &mut best);
        }
        offer(std::mem::take(&mut run), &mut best);
        if let Some(set) = spread_required(p) {
            offer(set, &mut best);
        }
    }
    offer(run, &mut best);
    best
}

/// Literals (lowercase) one of which every match of `h` starts with, if there is such a set.
/// Zero-width assertions before them do not count (they look at the text around, they do not
/// take any of it).
fn prefix_literals(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{Hir, HirKind};
    fn flatten<'h>(h: &'h Hir, out: &mut Vec<&'h Hir>) {
        match h.kind() {
            HirKind::Concat(parts) => parts.iter().for_each(|p| flatten(p, out)),
            HirKind::Capture(c) => flatten(&c.sub, out),
            _ => out.push(h),
        }
    }
    // The cross product, if it stays small.
    let cross = |run: &[Vec<u8>], set: &[Vec<u8>]| -> Option<Vec<Vec<u8>>> {
        if run.len() * set.len() > SPREAD_SET {
            return None;
        }
        Some(
            run.iter()
                .flat_map(|l| set.iter().map(move |s| [l.as_slice(), s].concat()))
                .collect(),
        )
    };
    match h.kind() {
        HirKind::Alternation(alts) => {
            let mut all = Vec::new();
            for a in alts {
                all.extend(prefix_literals(a)?);
            }
            return (all.len() <= SPREAD_SET).then_some(all);
        }
        HirKind::Repetition(r) if r.min >= 1 => return prefix_literals(&r.sub),
        _ => {}
    }
    let mut parts = Vec::new();
    flatten(h, &mut parts);
    let mut run: Vec<Vec<u8>> = vec![Vec::new()];
    for p in parts {
        let set: Vec<Vec<u8>> = match p.kind() {
            HirKind::Look(_) => continue,
            HirKind::Literal(l) if l.0.is_ascii() => vec![l.0.to_ascii_lowercase()],
            HirKind::Repetition(r) if r.min == 0 => break,
            HirKind::Repetition(r) if r.max == Some(r.min) && char_set(&r.sub).is_some() => {
                let singles: Vec<Vec<u8>> = char_set(&r.sub)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| vec![b])
                    .collect();
                let mut whole = true;
                for _ in 0..r.min {
                    match cross(&run, &singles) {
                        Some(r) => run = r,
                        None => {
                            whole = false;
                            break;
                        }
                    }
                }
                if whole {
                    continue;
                }
                break;
            }
            HirKind::Alternation(_) | HirKind::Repetition(_) => {
                // Branches of different lengths: nothing fixed comes after them.
                if let Some(set) = prefix_literals(p).and_then(|set| cross(&run, &set)) {
                    run = set;
                }
                break;
            }
            _ => match char_set(p) {
                Some(one) => one.into_iter().map(|b| vec![b]).collect(),
                None => break,
            },
        };
        match cross(&run, &set) {
            Some(r) if set.iter().all(|s| s.len() == set[0].len()) => run = r,
            Some(r) => {
                run = r;
                break;
            }
            None => break,
        }
    }
    Some(run)
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
            text,
            prefilter,
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
