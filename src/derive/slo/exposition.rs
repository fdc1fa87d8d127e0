//! The SLO state as Prometheus metric families, computed at each scrape as of the engine's
//! watermark (the event time up to which the input is complete).
//!
//! Sloth-compatible (names and labels of the rules Sloth generates, `internal/prometheus/
//! recording_rules.go` and `conventions.go` in slok/sloth), labels `sloth_id`
//! (`<service>-<name>`), `sloth_service`, `sloth_slo`, the SLO's own `labels`, and
//! `sloth_window` on the SLIs:
//!
//! ```text
//! slo:sli_error:ratio_rate5m|30m|1h|2h|6h|1d|3d|<period>   error ratio over the window
//! slo:objective:ratio  slo:error_budget:ratio  slo:time_period:days
//! slo:current_burn_rate:ratio              5m error ratio ÷ budget
//! slo:period_burn_rate:ratio               period error ratio ÷ budget
//! slo:period_error_budget_remaining:ratio  1 - period burn rate
//! sloth_slo_info{sloth_mode="tracejoin",sloth_objective,sloth_spec,sloth_version}
//! ```
//!
//! tracejoin's own:
//!
//! ```text
//! tracejoin_slo_events_total{slo,outcome="good|bad",operation,cause}   counter (cause="none" for good)
//! tracejoin_slo_window_events{slo,window,outcome="good|bad"}           events in the window
//! tracejoin_slo_burn_attribution_ratio{slo,window,operation,cause}     share of the window's bad events
//! ```
//!
//! Where this differs from Sloth: the ratios are over event time (span end), exact counts in
//! time buckets rather than `rate()` over scrapes; the period ratio is the period's events, not
//! Sloth's average of 5m ratios; a window without events has ratio 0, where Sloth's `0/0` is
//! NaN; a window with fewer than the SLO's `min_events` events also reads 0 (all its ratios:
//! SLI, burn rates). Until the first watermark only the constant series are exported. Bad events are counted
//! in `tracejoin_slo_events_total` and the attribution when finalised (`max_wait` after the
//! span's end), good ones at once. Attribution series are exported only for pairs with bad
//! events in the window.

use super::series::Counts;
use super::window::Window;
use super::Shared;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

const EVENTS: &str = "tracejoin_slo_events_total";
const WINDOW_EVENTS: &str = "tracejoin_slo_window_events";
const ATTRIBUTION: &str = "tracejoin_slo_burn_attribution_ratio";

fn sli_name(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// (name, help) of the per-SLO gauges with Sloth's labels, besides the SLIs.
const META: [(&str, &str); 7] = [
    (
        "slo:objective:ratio",
        "The SLO's objective (ratio of good events).",
    ),
    (
        "slo:error_budget:ratio",
        "The SLO's error budget: 1 - objective.",
    ),
    ("slo:time_period:days", "The SLO's period in days."),
    (
        "slo:current_burn_rate:ratio",
        "Error ratio over the last 5m of event time divided by the error budget.",
    ),
    (
        "slo:period_burn_rate:ratio",
        "Error ratio over the SLO period (event time) divided by the error budget.",
    ),
    (
        "slo:period_error_budget_remaining:ratio",
        "1 - the period burn rate: the share of the period's error budget left.",
    ),
    ("sloth_slo_info", "The SLO, as Sloth's info series."),
];

pub(super) struct Exposition {
    descs: Vec<Desc>,
    shared: Arc<Mutex<Shared>>,
}

impl Exposition {
    pub(super) fn new(shared: Arc<Mutex<Shared>>) -> Self {
        let periods: Vec<String> = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            let mut p: Vec<String> = s.slos.iter().map(|x| x.meta.period_str.clone()).collect();
            p.sort();
            p.dedup();
            p
        };
        let mut names: Vec<(String, String)> = Window::ALL
            .iter()
            .map(|w| w.as_str().to_string())
            .chain(
                periods
                    .into_iter()
                    .filter(|p| !Window::ALL.iter().any(|w| w.as_str() == p)),
            )
            .map(|w| {
                let help =
                    format!("Error ratio of the SLO's events over the last {w} of event time.");
                (sli_name(&w), help)
            })
            .collect();
        names.extend(META.iter().map(|(n, h)| (n.to_string(), h.to_string())));
        names.push((
            EVENTS.into(),
            "SLO events by outcome, operation and cause.".into(),
        ));
        names.push((
            WINDOW_EVENTS.into(),
            "SLO events in the window (event time), by outcome.".into(),
        ));
        names.push((
            ATTRIBUTION.into(),
            "Share of the window's finalised bad events by operation and cause.".into(),
        ));
        let descs = names
            .into_iter()
            .map(|(n, h)| Desc::new(n, h, Vec::new(), HashMap::new()).expect("static metric names"))
            .collect();
        Exposition { descs, shared }
    }
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_string());
    p.set_value(value.to_string());
    p
}

fn gauge(mut labels: Vec<LabelPair>, v: f64) -> Metric {
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

fn counter(mut labels: Vec<LabelPair>, v: f64) -> Metric {
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

/// `tracejoin_slo_window_events` of one window: good and bad.
fn window_events(slo: &str, window: &str, c: Counts) -> [Metric; 2] {
    [("good", c.total - c.bad), ("bad", c.bad)].map(|(outcome, n)| {
        gauge(
            vec![
                pair("slo", slo),
                pair("window", window),
                pair("outcome", outcome),
            ],
            n as f64,
        )
    })
}

/// The objective in percent as Sloth's `sloth_objective` writes it (`99.9`).
fn percent(objective: f64) -> String {
    let p = (objective * 100.0 * 1e9).round() / 1e9;
    format!("{p}")
}

impl Collector for Exposition {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        // name → (help, type, metrics), in a stable order.
        let mut fams: BTreeMap<String, (String, MetricType, Vec<Metric>)> = BTreeMap::new();
        let help: HashMap<String, String> = self
            .descs
            .iter()
            .map(|d| (d.fq_name.clone(), d.help.clone()))
            .collect();
        let mut push = |name: &str, kind: MetricType, m: Metric| {
            fams.entry(name.to_string())
                .or_insert_with(|| {
                    (
                        help.get(name).cloned().unwrap_or_default(),
                        kind,
                        Vec::new(),
                    )
                })
                .2
                .push(m);
        };
        for s in &shared.slos {
            let meta = &s.meta;
            let mut base = vec![
                pair("sloth_id", &meta.sloth_id),
                pair("sloth_service", &meta.service),
                pair("sloth_slo", &meta.name),
            ];
            base.extend(meta.labels.iter().map(|(k, v)| pair(k, v)));
            let with = |extra: &[(&str, &str)]| {
                let mut l = base.clone();
                l.extend(extra.iter().map(|(k, v)| pair(k, v)));
                l
            };
            let g = MetricType::GAUGE;
            push("slo:objective:ratio", g, gauge(with(&[]), meta.objective));
            push("slo:error_budget:ratio", g, gauge(with(&[]), meta.budget()));
            push(
                "slo:time_period:days",
                g,
                gauge(with(&[]), meta.period.as_secs_f64() / 86_400.0),
            );
            push(
                "sloth_slo_info",
                g,
                gauge(
                    with(&[
                        ("sloth_mode", "tracejoin"),
                        ("sloth_objective", &percent(meta.objective)),
                        ("sloth_spec", "tracejoin/slo/v1"),
                        ("sloth_version", env!("CARGO_PKG_VERSION")),
                    ]),
                    1.0,
                ),
            );
            let slo = meta.name.as_ref();
            for ((bad, op, cause), n) in &s.events {
                push(
                    EVENTS,
                    MetricType::COUNTER,
                    counter(
                        vec![
                            pair("slo", slo),
                            pair("outcome", if *bad { "bad" } else { "good" }),
                            pair("operation", s.ops.name(*op)),
                            pair("cause", s.causes.name(*cause)),
                        ],
                        *n as f64,
                    ),
                );
            }
            let Some(w) = shared.watermark else { continue };
            let mut ratio_5m = 0.0;
            for win in Window::ALL {
                let c = s.counts(win, w);
                if win == Window::M5 {
                    ratio_5m = meta.error_ratio(c);
                }
                for m in window_events(slo, win.as_str(), c) {
                    push(WINDOW_EVENTS, g, m);
                }
                push(
                    &sli_name(win.as_str()),
                    g,
                    gauge(with(&[("sloth_window", win.as_str())]), meta.error_ratio(c)),
                );
            }
            let pc = s.period_counts(w);
            for m in window_events(slo, &meta.period_str, pc) {
                push(WINDOW_EVENTS, g, m);
            }
            if !Window::ALL.iter().any(|x| x.as_str() == meta.period_str) {
                push(
                    &sli_name(&meta.period_str),
                    g,
                    gauge(
                        with(&[("sloth_window", &meta.period_str)]),
                        meta.error_ratio(pc),
                    ),
                );
            }
            let period_burn = meta.error_ratio(pc) / meta.budget();
            push(
                "slo:current_burn_rate:ratio",
                g,
                gauge(with(&[]), ratio_5m / meta.budget()),
            );
            push(
                "slo:period_burn_rate:ratio",
                g,
                gauge(with(&[]), period_burn),
            );
            push(
                "slo:period_error_budget_remaining:ratio",
                g,
                gauge(with(&[]), 1.0 - period_burn),
            );
            for win in Window::ALL {
                let a = s.attribution(win, w);
                for ((op, cause), n) in &a.pairs {
                    push(
                        ATTRIBUTION,
                        g,
                        gauge(
                            vec![
                                pair("slo", slo),
                                pair("window", win.as_str()),
                                pair("operation", s.ops.name(*op)),
                                pair("cause", s.causes.name(*cause)),
                            ],
                            *n as f64 / a.bad as f64,
                        ),
                    );
                }
            }
        }
        drop(shared);
        fams.into_iter()
            .map(|(name, (help, kind, metrics))| {
                let mut f = MetricFamily::default();
                f.set_name(name);
                f.set_help(help);
                f.set_field_type(kind);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}
