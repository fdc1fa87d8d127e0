//! The prefilter of the text rules: which rules can match a line, found in one scan for the
//! literals each rule's regex needs, and where a rule whose matches start with a literal saw it.

use super::CompiledTextRule;

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
    pub(super) fn new(rules: &[CompiledTextRule], patterns: &[String]) -> Option<(Self, u64)> {
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
pub(super) fn required(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
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
pub(super) fn spread_required(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
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
