//! Burn-rate threshold crossings in event time, and the attribution events they produce.
//!
//! The SRE workbook's multiwindow, multi-burn-rate alerts for a 30-day budget, as Sloth
//! generates them (`internal/alert/windows/google-30d.yaml`): an alert's condition holds while
//! *both* its windows burn faster than its factor.
//!
//! | alert          | severity | short | long | factor |
//! |----------------|----------|-------|------|--------|
//! | `page_quick`   | page     | 5m    | 1h   | 14.4   |
//! | `page_slow`    | page     | 30m   | 6h   | 6      |
//! | `ticket_quick` | ticket   | 2h    | 1d   | 3      |
//! | `ticket_slow`  | ticket   | 6h    | 3d   | 1      |
//!
//! The engine evaluates the conditions at every 10 s step of event time the watermark crosses
//! (so the result does not depend on how far the watermark moves per tick; a jump of more than
//! 2 h is sampled at 720 points). The first watermark starts from the earliest event seen (at
//! most a day back): a backlog consumed before the first tick is evaluated as it happened. A condition turning true is a *crossing*: it produces one
//! [`AttributionEvent`], and the alert stays *firing* until the condition has been false for a
//! whole short window (hysteresis: a burn rate hovering at the threshold does not produce an
//! event per wobble). The event waits until the watermark passes the crossing + `max_wait`, so
//! that the bad events up to the crossing are finalised with their causes; its attribution is
//! over the short window ending at the crossing.

use super::series::SloSeries;
use super::window::Window;
use serde::Serialize;

/// One multiwindow burn-rate alert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlertSpec {
    pub(crate) name: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) short: Window,
    pub(crate) long: Window,
    pub(crate) factor: f64,
}

/// The workbook's four (module docs).
pub(crate) const ALERTS: [AlertSpec; 4] = [
    AlertSpec {
        name: "page_quick",
        severity: "page",
        short: Window::M5,
        long: Window::H1,
        factor: 14.4,
    },
    AlertSpec {
        name: "page_slow",
        severity: "page",
        short: Window::M30,
        long: Window::H6,
        factor: 6.0,
    },
    AlertSpec {
        name: "ticket_quick",
        severity: "ticket",
        short: Window::H2,
        long: Window::D1,
        factor: 3.0,
    },
    AlertSpec {
        name: "ticket_slow",
        severity: "ticket",
        short: Window::H6,
        long: Window::D3,
        factor: 1.0,
    },
];

/// Whether an alert is firing, and since when its condition has been false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlertState {
    pub(crate) firing: bool,
    quiet_since: Option<i64>,
}

impl AlertState {
    /// Moves to event time `t` with the condition `cond`; `true` on an upward crossing.
    pub(crate) fn step(&mut self, cond: bool, t: i64, rearm_after: i64) -> bool {
        match (self.firing, cond) {
            (false, true) => {
                self.firing = true;
                self.quiet_since = None;
                true
            }
            (true, true) => {
                self.quiet_since = None;
                false
            }
            (true, false) => {
                let since = *self.quiet_since.get_or_insert(t);
                if t - since >= rearm_after {
                    *self = AlertState::default();
                }
                false
            }
            (false, false) => false,
        }
    }
}

/// A crossing waiting for its bad events to be finalised.
#[derive(Debug, Clone)]
pub(crate) struct Crossing {
    pub(crate) slo: usize,
    pub(crate) alert: usize,
    pub(crate) at: i64,
    pub(crate) burn_rate: f64,
    pub(crate) long_burn_rate: f64,
    pub(crate) bad: u64,
    pub(crate) total: u64,
}

/// One (operation, cause) pair's share of the bad events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PairShare {
    /// The span name (or `other` past the cap).
    pub operation: String,
    /// The cause template (or `unknown`, `other`).
    pub cause: String,
    /// Bad events of the pair.
    pub bad_events: u64,
    /// Share of the window's attributed bad events, 0..1.
    pub share: f64,
}

/// An operation's share of the bad events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperationShare {
    /// The span name (or `other` past the cap).
    pub operation: String,
    /// Bad events of the operation.
    pub bad_events: u64,
    /// Share of the window's attributed bad events, 0..1.
    pub share: f64,
}

/// A cause's share of the bad events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CauseShare {
    /// The cause template (or `unknown`, `other`).
    pub cause: String,
    /// Bad events with the cause.
    pub bad_events: u64,
    /// Share of the window's attributed bad events, 0..1.
    pub share: f64,
}

/// "What is burning the budget": produced once per upward crossing of a burn-rate alert
/// condition, for the attribution topic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributionEvent {
    /// The SLO's name (`sloth_slo`).
    pub slo: String,
    /// `<service>-<name>` (`sloth_id`).
    pub sloth_id: String,
    /// The SLO's service (`sloth_service`).
    pub service: String,
    /// The alert whose condition turned true: `page_quick`, `page_slow`, `ticket_quick`,
    /// `ticket_slow`.
    pub alert: &'static str,
    /// `page` or `ticket` (Sloth's `sloth_severity`).
    pub severity: &'static str,
    /// The alert's short window, over which the attribution is computed.
    pub window: &'static str,
    /// The alert's long window.
    pub long_window: &'static str,
    /// The burn-rate factor both windows exceeded.
    pub threshold: f64,
    /// Burn rate of the short window at the crossing.
    pub burn_rate: f64,
    /// Burn rate of the long window at the crossing.
    pub long_window_burn_rate: f64,
    /// The SLO's objective.
    pub objective: f64,
    /// Event time of the crossing, RFC 3339.
    pub event_time: String,
    /// Event time of the crossing, nanoseconds since the Unix epoch.
    pub event_time_unix_nanos: i64,
    /// Events in the short window.
    pub total_events: u64,
    /// Bad events in the short window.
    pub bad_events: u64,
    /// Bad events of the short window finalised with a cause (the shares' denominator).
    pub attributed_bad_events: u64,
    /// The largest (operation, cause) pairs.
    pub top: Vec<PairShare>,
    /// The largest operations.
    pub operations: Vec<OperationShare>,
    /// The largest causes.
    pub causes: Vec<CauseShare>,
}

impl AttributionEvent {
    /// The Kafka record value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The Kafka record key: the SLO's `sloth_id`, so one SLO's events stay in order.
    pub fn key(&self) -> String {
        self.sloth_id.clone()
    }

    pub(crate) fn build(series: &SloSeries, c: &Crossing, top: usize) -> Self {
        let spec = ALERTS[c.alert];
        let attr = series.attribution(spec.short, c.at);
        let share = |n: u64| {
            if attr.bad == 0 {
                0.0
            } else {
                n as f64 / attr.bad as f64
            }
        };
        let mut ops: Vec<(u32, u64)> = Vec::new();
        let mut causes: Vec<(u32, u64)> = Vec::new();
        for ((op, cause), n) in &attr.pairs {
            match ops.iter_mut().find(|(o, _)| o == op) {
                Some(e) => e.1 += n,
                None => ops.push((*op, *n)),
            }
            match causes.iter_mut().find(|(c, _)| c == cause) {
                Some(e) => e.1 += n,
                None => causes.push((*cause, *n)),
            }
        }
        ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        AttributionEvent {
            slo: series.meta.name.to_string(),
            sloth_id: series.meta.sloth_id.to_string(),
            service: series.meta.service.to_string(),
            alert: spec.name,
            severity: spec.severity,
            window: spec.short.as_str(),
            long_window: spec.long.as_str(),
            threshold: spec.factor,
            burn_rate: c.burn_rate,
            long_window_burn_rate: c.long_burn_rate,
            objective: series.meta.objective,
            event_time: chrono::DateTime::from_timestamp_nanos(c.at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event_time_unix_nanos: c.at,
            total_events: c.total,
            bad_events: c.bad,
            attributed_bad_events: attr.bad,
            top: attr
                .pairs
                .iter()
                .take(top)
                .map(|((op, cause), n)| PairShare {
                    operation: series.ops.name(*op).to_string(),
                    cause: series.causes.name(*cause).to_string(),
                    bad_events: *n,
                    share: share(*n),
                })
                .collect(),
            operations: ops
                .iter()
                .take(top)
                .map(|(op, n)| OperationShare {
                    operation: series.ops.name(*op).to_string(),
                    bad_events: *n,
                    share: share(*n),
                })
                .collect(),
            causes: causes
                .iter()
                .take(top)
                .map(|(cause, n)| CauseShare {
                    cause: series.causes.name(*cause).to_string(),
                    bad_events: *n,
                    share: share(*n),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_crossing_and_rearms_after_a_quiet_short_window() {
        let mut a = AlertState::default();
        let rearm = 300;
        assert!(!a.step(false, 0, rearm));
        assert!(a.step(true, 10, rearm), "upward crossing");
        for t in 20..100 {
            assert!(!a.step(true, t, rearm), "held: no event per tick");
        }
        // A wobble below the threshold shorter than the short window does not re-arm.
        assert!(!a.step(false, 100, rearm));
        assert!(!a.step(false, 200, rearm));
        assert!(!a.step(true, 250, rearm));
        assert!(a.firing);
        // Quiet for a whole short window: re-armed; the next crossing fires again.
        assert!(!a.step(false, 300, rearm));
        assert!(!a.step(false, 600, rearm));
        assert!(!a.firing);
        assert!(a.step(true, 610, rearm));
    }
}
