//! An SLO's selector and indicator, compiled for the hot path, and the cache that spares a
//! regex match per span: the SLOs a (service, span name, kind) triple selects are computed once.

use super::config::{anchored, AttrPredicate, Indicator, SloError, SloSpec};
use crate::model::{SpanKind, SpanSummary, StatusCode};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Triples remembered before the cache starts over.
const CACHE_CAP: usize = 16_384;

#[derive(Debug)]
enum NameMatch {
    Any,
    Exact(String),
    Regex(regex::Regex),
}

#[derive(Debug)]
enum Bad {
    Availability {
        error_status: bool,
        predicates: Vec<AttrPredicate>,
    },
    Latency {
        threshold_nanos: i64,
    },
}

/// One SLO's selector and indicator.
#[derive(Debug)]
pub(crate) struct Compiled {
    service: String,
    name: NameMatch,
    /// Indexed by `SpanKind as usize`.
    kinds: [bool; 6],
    bad: Bad,
}

impl Compiled {
    pub(crate) fn new(spec: &SloSpec) -> Result<Self, SloError> {
        let sel = &spec.selector;
        let name = match (&sel.span_name, &sel.span_name_regex) {
            (Some(n), _) => NameMatch::Exact(n.clone()),
            (None, Some(re)) => NameMatch::Regex(anchored(re).map_err(|e| SloError::Invalid {
                origin: String::new(),
                slo: spec.name.clone(),
                key: "selector.span_name_regex".into(),
                value: re.clone(),
                reason: e.to_string(),
            })?),
            (None, None) => NameMatch::Any,
        };
        let mut kinds = [false; 6];
        for k in &sel.span_kinds {
            kinds[*k as usize] = true;
        }
        let bad = match &spec.indicator {
            Indicator::Availability(a) => Bad::Availability {
                error_status: a.error_status,
                predicates: a
                    .bad_attributes
                    .iter()
                    .map(|p| {
                        AttrPredicate::parse(p).map_err(|reason| SloError::Invalid {
                            origin: String::new(),
                            slo: spec.name.clone(),
                            key: "indicator.availability.bad_attributes".into(),
                            value: p.clone(),
                            reason,
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            Indicator::Latency(l) => Bad::Latency {
                threshold_nanos: i64::try_from(l.threshold.as_nanos()).unwrap_or(i64::MAX),
            },
        };
        Ok(Compiled {
            service: sel.service.clone().unwrap_or_else(|| spec.service.clone()),
            name,
            kinds,
            bad,
        })
    }

    fn selects(&self, service: &str, name: &str, kind: SpanKind) -> bool {
        self.kinds[kind as usize]
            && service == self.service
            && match &self.name {
                NameMatch::Any => true,
                NameMatch::Exact(n) => name == n,
                NameMatch::Regex(re) => re.is_match(name),
            }
    }

    /// Whether a selected span is a bad event.
    pub(crate) fn is_bad(&self, s: &SpanSummary) -> bool {
        match &self.bad {
            Bad::Availability {
                error_status,
                predicates,
            } => {
                (*error_status && s.status == StatusCode::Error)
                    || predicates.iter().any(|p| p.holds(s.attribute(&p.key)))
            }
            Bad::Latency { threshold_nanos } => s.duration_nanos() > *threshold_nanos,
        }
    }
}

struct Entry {
    service: Arc<str>,
    name: Arc<str>,
    kind: SpanKind,
    slos: Box<[u16]>,
}

/// Which SLOs select a span, remembered per (service, name, kind).
pub(crate) struct Selection {
    hasher: RandomState,
    cache: HashMap<u64, Vec<Entry>>,
    len: usize,
}

impl Selection {
    pub(crate) fn new() -> Self {
        Selection {
            hasher: RandomState::new(),
            cache: HashMap::new(),
            len: 0,
        }
    }

    /// The indices of the SLOs in `slos` that select `s`. Allocates only for a new triple.
    pub(crate) fn of(&mut self, slos: &[Compiled], s: &SpanSummary) -> &[u16] {
        let h = self.hasher.hash_one((&*s.service, &*s.name, s.kind));
        let pos = self.cache.get(&h).and_then(|v| {
            v.iter()
                .position(|e| e.kind == s.kind && *e.service == *s.service && *e.name == *s.name)
        });
        let pos = match pos {
            Some(p) => p,
            None => {
                if self.len >= CACHE_CAP {
                    self.cache.clear();
                    self.len = 0;
                }
                let hits: Box<[u16]> = slos
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.selects(&s.service, &s.name, s.kind))
                    .map(|(i, _)| i as u16)
                    .collect();
                let v = self.cache.entry(h).or_default();
                v.push(Entry {
                    service: s.service.clone(),
                    name: s.name.clone(),
                    kind: s.kind,
                    slos: hits,
                });
                self.len += 1;
                v.len() - 1
            }
        };
        &self.cache[&h][pos].slos
    }
}
