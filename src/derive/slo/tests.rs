//! The engine's tests: window arithmetic against a naive recount, config errors, the caps and
//! bounds, crossings, the exposition, and the issue's scenario run on the engine directly.
//!
//! Why one file over 600 lines: the SLO unit tests share one set of span and log fixtures.

use super::window::{Grid, Shape, SLI_FINE};
use super::*;
use crate::model::{
    EmitReason, JoinOutcome, LogEvent, LogFields, LogFormat, Origin, SpanId, SpanKind,
    TimestampSource, TraceId,
};
use proptest::prelude::*;
use std::sync::Arc;

const S: i64 = 1_000_000_000;
const MIN: i64 = 60 * S;
/// 2023-11-14T22:13:20Z, a round event time to start from.
const T0: i64 = 1_700_000_000 * S;

// ---------------------------------------------------------------- window arithmetic

proptest! {
    /// A window's count equals a naive recount of the events in its buckets, whatever order the
    /// events came in, as long as the window lies within the ring's reach of the newest event;
    /// and never exceeds the recount anywhere.
    #[test]
    fn grid_windows_equal_a_naive_recount(
        events in prop::collection::vec((0i64..400, 1u64..4), 0..300),
        queries in prop::collection::vec((0i64..420, 1i64..40), 1..30),
    ) {
        let res = 10 * S;
        let slots = 32usize;
        let mut g = Grid::new(Shape { res: std::time::Duration::from_secs(10), slots });
        let col = g.add_column();
        // Event times in seconds, up to 400 s: more than the 320 s the ring reaches.
        for (t, n) in &events {
            g.record(T0 + t * S + 1, col, *n);
        }
        let newest = events.iter().map(|(t, _)| (T0 + t * S + 1).div_euclid(res)).max();
        for (qt, n) in queries {
            let w = T0 + qt * S;
            let end = w.div_euclid(res);
            let naive: u64 = events
                .iter()
                .filter(|(t, _)| {
                    let b = (T0 + t * S + 1).div_euclid(res);
                    b > end - n && b <= end
                })
                .map(|(_, k)| *k)
                .sum();
            let got = g.sum(col, w, n);
            prop_assert!(got <= naive, "never more than the events in the window");
            if let Some(newest) = newest {
                if end - n + 1 > newest - slots as i64 {
                    prop_assert_eq!(got, naive, "window ({}-{}, {}] newest {}", end, n, end, newest);
                }
            } else {
                prop_assert_eq!(got, 0);
            }
        }
    }

    /// The SLI burn rate of every window equals a naive recomputation from the event list.
    #[test]
    fn burn_rates_equal_a_naive_recomputation(
        events in prop::collection::vec((0i64..(4 * 3600), any::<bool>()), 1..400),
        ahead in 0i64..1200,
    ) {
        // As of at most 20 min past the newest event: within every ring's slack.
        let at = events.iter().map(|(t, _)| *t).max().unwrap_or(0) + ahead;
        let meta = series::Meta {
            name: "s".into(),
            service: "svc".into(),
            sloth_id: "svc-s".into(),
            objective: 0.99,
            period: std::time::Duration::from_secs(86_400),
            period_str: "1d".into(),
            labels: Vec::new(),
            min_events: 0,
        };
        let mut s = SloSeries::new(meta, 10, 10);
        for (t, bad) in &events {
            s.record(0, T0 + t * S, *bad);
        }
        let w = T0 + at * S + S / 2;
        for win in Window::ALL {
            let res = if win.is_short() { SLI_FINE.res.as_secs() as i64 } else { 300 } * S;
            let n = win.duration().as_secs() as i64 * S / res;
            let end = w.div_euclid(res);
            let inside: Vec<bool> = events
                .iter()
                .filter(|(t, _)| {
                    let b = (T0 + t * S).div_euclid(res);
                    b > end - n && b <= end
                })
                .map(|(_, bad)| *bad)
                .collect();
            let total = inside.len() as f64;
            let bad = inside.iter().filter(|b| **b).count() as f64;
            let naive = if total == 0.0 { 0.0 } else { bad / total / 0.01 };
            let got = s.burn_rate(win, w);
            prop_assert!((got - naive).abs() < 1e-9, "{}: {} vs {}", win.as_str(), got, naive);
        }
    }
}

#[test]
fn an_event_older_than_the_ring_is_refused_and_a_newer_one_recycles_the_slot() {
    let mut g = Grid::new(Shape {
        res: std::time::Duration::from_secs(10),
        slots: 6,
    });
    let c = g.add_column();
    assert!(g.record(T0 + 100 * S, c, 1));
    assert!(
        g.record(T0 + 165 * S, c, 1),
        "6 buckets later: the same slot, recycled"
    );
    assert!(
        !g.record(T0 + 101 * S, c, 1),
        "older than the slot's bucket: refused"
    );
    assert_eq!(g.sum(c, T0 + 165 * S, 6), 1);
    assert_eq!(g.sum(c, T0 + 105 * S, 1), 0, "the old bucket is gone");
}

#[test]
fn eval_points_step_through_every_10s_and_sample_long_jumps() {
    assert_eq!(eval_points(None, 5), vec![5]);
    let p = eval_points(Some(T0 + 3 * S), T0 + 35 * S);
    assert_eq!(p, vec![T0 + 10 * S, T0 + 20 * S, T0 + 30 * S, T0 + 35 * S]);
    assert_eq!(eval_points(Some(T0 + S), T0 + 2 * S), vec![T0 + 2 * S]);
    let long = eval_points(Some(T0), T0 + 10 * 3600 * S);
    assert!(long.len() <= 722 && long.len() > 300, "{}", long.len());
    assert_eq!(*long.last().unwrap(), T0 + 10 * 3600 * S);
    assert!(long.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn prometheus_durations() {
    use series::prom_duration;
    let d = |s: u64| prom_duration(std::time::Duration::from_secs(s));
    assert_eq!(d(30 * 86_400), "30d");
    assert_eq!(d(28 * 86_400), "4w");
    assert_eq!(d(90 * 86_400), "90d");
    assert_eq!(d(7 * 86_400), "1w");
    assert_eq!(d(36 * 3600), "1d12h");
    assert_eq!(d(300), "5m");
}

// ---------------------------------------------------------------- config

fn shipped() -> SloConfig {
    SloConfig::load(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/slo.yaml")).expect("rules/slo.yaml")
}

#[test]
fn the_shipped_slo_file_loads_and_builds_an_engine() {
    let cfg = shipped();
    assert!(!cfg.slos.is_empty());
    SloEngine::new(&cfg, std::time::Duration::from_secs(5)).unwrap();
    assert!(cfg
        .span_attributes()
        .contains(&"http.response.status_code".to_string()));
}

fn err(yaml: &str) -> String {
    SloConfig::parse(yaml, "test.yaml").unwrap_err().to_string()
}

#[test]
fn config_errors_name_the_slo_and_the_key() {
    let base = "slos:\n- name: a\n  service: s\n  objective: 0.99\n";
    let e = err(&format!("{base}  indicator: {{availability: {{}}}}\n  selector: {{span_name: x, span_name_regex: y}}\n"));
    assert!(
        e.contains("slos[0] (a)") && e.contains("selector.span_name_regex"),
        "{e}"
    );
    let e =
        err("slos:\n- name: a\n  service: s\n  objective: 99.9\n  indicator: {availability: {}}\n");
    assert!(e.contains("`objective` = 99.9"), "{e}");
    let e = err(&format!(
        "{base}  indicator: {{availability: {{bad_attributes: [\"http.status >> 5\"]}}}}\n"
    ));
    assert!(
        e.contains("indicator.availability.bad_attributes[0]") && e.contains(">>"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  time_window: 100d\n  indicator: {{availability: {{}}}}\n"
    ));
    assert!(e.contains("time_window"), "{e}");
    let e = err(&format!("{base}  indicator: {{latency: {{threshold: 300ms}}}}\n- name: a\n  service: t\n  objective: 0.9\n  indicator: {{availability: {{}}}}\n"));
    assert!(
        e.contains("slos[1] (a)") && e.contains("another SLO"),
        "{e}"
    );
    let e = err(&format!(
        "{base}  indicator: {{availability: {{}}}}\n  selector: {{span_name_regex: \"(\"}}\n"
    ));
    assert!(e.contains("selector.span_name_regex"), "{e}");
    let e = err(&format!(
        "{base}  indicator: {{availability: {{}}}}\n  colour: red\n"
    ));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err(&format!(
        "{base}  indicator: {{availability: {{}}}}\n  selector: {{span_kinds: [sever]}}\n"
    ));
    assert!(e.contains("unknown span kind"), "{e}");
    let e = err(&format!(
        "{base}  indicator: {{availability: {{}}}}\n  labels: {{sloth_id: x}}\n"
    ));
    assert!(e.contains("labels.sloth_id"), "{e}");
    let e = err(&format!(
        "{base}  indicator: {{availability: {{}}}}\nattribution: {{max_causes: 0}}\n"
    ));
    assert!(e.contains("attribution `max_causes`"), "{e}");
}

#[test]
fn predicates() {
    use crate::model::AttrValue;
    use config::AttrPredicate;
    let p = AttrPredicate::parse("http.response.status_code >= 500").unwrap();
    assert!(p.holds(Some(&AttrValue::Int(503))));
    assert!(p.holds(Some(&AttrValue::Str("500".into()))));
    assert!(!p.holds(Some(&AttrValue::Int(404))));
    assert!(!p.holds(None));
    let p = AttrPredicate::parse("rpc.grpc.status_code != 0").unwrap();
    assert!(p.holds(Some(&AttrValue::Int(14))) && !p.holds(Some(&AttrValue::Int(0))));
    let p = AttrPredicate::parse("db.system == \"postgresql\"").unwrap();
    assert!(p.holds(Some(&AttrValue::Str("postgresql".into()))));
    assert!(AttrPredicate::parse("a < \"x\"").is_err());
    assert!(AttrPredicate::parse("a >=").is_err());
}

// ---------------------------------------------------------------- helpers

fn cfg(extra_attribution: &str) -> SloConfig {
    slo_config(10, extra_attribution)
}

/// The test SLO (`shop-api`, 99 %, 5xx of `/api/` requests) with `min_events` and extra
/// attribution settings.
fn slo_config(min_events: u64, extra_attribution: &str) -> SloConfig {
    SloConfig::parse(
        &format!(
            "slos:
- name: shop-api
  service: shop
  objective: 0.99
  min_events: {min_events}
  selector:
    span_name_regex: \"(GET|POST) /api/.*\"
  indicator:
    availability:
      bad_attributes: [\"http.response.status_code >= 500\"]
attribution:
  dedup_window: 1000
{extra_attribution}"
        ),
        "test",
    )
    .unwrap()
}

fn trace(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[15] = 1;
    TraceId(b)
}

fn span_id(n: u64, k: u8) -> SpanId {
    let mut b = n.to_be_bytes();
    b[0] = k + 1;
    SpanId(b)
}

fn server(n: u64, name: &str, end: i64, error: bool) -> SpanSummary {
    SpanSummary {
        trace_id: trace(n),
        span_id: span_id(n, 0),
        parent_span_id: None,
        service: "shop".into(),
        name: name.into(),
        kind: SpanKind::Server,
        status: if error {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        status_message: None,
        start_unix_nanos: end - 120_000_000,
        end_unix_nanos: end,
        exception_type: None,
        attributes: vec![(
            "http.response.status_code".into(),
            crate::model::AttrValue::Int(if error { 500 } else { 200 }),
        )],
    }
}

fn db_span(n: u64, end: i64) -> SpanSummary {
    SpanSummary {
        span_id: span_id(n, 1),
        parent_span_id: Some(span_id(n, 0)),
        name: "SELECT orders".into(),
        kind: SpanKind::Client,
        start_unix_nanos: end - 80_000_000,
        attributes: Vec::new(),
        ..server(n, "x", end, true)
    }
}

fn log(n: u64, k: u8, ts: i64, severity: &str, body: &str) -> JoinedLog {
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: ts,
            timestamp_source: TimestampSource::Record,
            trace_id: Some(trace(n)),
            trace_id_width: Default::default(),
            span_id: Some(span_id(n, k)),
            severity: Some(severity.into()),
            body: body.into(),
            service: Some(Arc::from("shop")),
            fields: LogFields::None,
            format: LogFormat::Json,
            origin: Origin {
                topic: 1,
                partition: 0,
                offset: 0,
            },
            ack: crate::sources::ack::Ack::detached(),
        },
        outcome: JoinOutcome::MatchedSpan,
        reason: EmitReason::SpanPresent,
        span: None,
        trace: None,
    }
}

fn render(engine: &SloEngine) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&engine.registry().gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

// ---------------------------------------------------------------- bounds and caps

#[test]
fn causes_are_capped_and_the_excess_is_other() {
    let mut e = SloEngine::new(&cfg("  max_causes: 3\n"), MAX_WAIT).unwrap();
    for n in 0..10u64 {
        let end = T0 + n as i64 * S;
        e.observe_spans(&[server(n, "POST /api/checkout", end, true)]);
        e.observe_log(&log(
            n,
            0,
            end - S / 10,
            "ERROR",
            &format!("failure kind{n} happened"),
        ));
    }
    let mut out = Vec::new();
    e.advance(T0 + 20 * S, &mut out);
    let a = e.attribution("shop-api", Window::M5);
    let other: u64 = a
        .iter()
        .filter(|p| p.cause == "other")
        .map(|p| p.bad_events)
        .sum();
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(other, 7);
    assert_eq!(e.stats().causes_overflowed, 7);
    let text = render(&e);
    assert!(
        text.contains(
            "cause=\"other\",operation=\"POST /api/checkout\",outcome=\"bad\",slo=\"shop-api\"} 7"
        ),
        "{text}"
    );
}

#[test]
fn operations_are_capped() {
    let mut e = SloEngine::new(&cfg("  max_operations: 2\n"), MAX_WAIT).unwrap();
    for n in 0..5u64 {
        e.observe_spans(&[server(
            n,
            &format!("GET /api/item{n}"),
            T0 + n as i64 * S,
            false,
        )]);
    }
    assert_eq!(e.stats().operations_overflowed, 3);
    assert!(render(&e).contains("operation=\"other\",outcome=\"good\",slo=\"shop-api\"} 3"));
}

#[test]
fn pending_bad_events_are_bounded_oldest_finalised_first() {
    let mut e = SloEngine::new(&cfg("  max_pending: 10\n"), MAX_WAIT).unwrap();
    for n in 0..25u64 {
        let mut s = server(n, "POST /api/checkout", T0 + n as i64 * S, true);
        s.exception_type = Some("java.sql.SQLTransientConnectionException".into());
        e.observe_spans(&[s]);
    }
    let st = e.stats();
    assert_eq!((st.pending, st.forced_finalisations), (10, 15));
    // The forced ones were finalised with what the span said; the later ones still wait.
    let text = render(&e);
    assert!(
        text.contains("cause=\"java.sql.SQLTransientConnectionException\",operation=\"POST /api/checkout\",outcome=\"bad\",slo=\"shop-api\"} 15"),
        "{text}"
    );
    // A log for a pending one (trace 20) still counts; for a forced one (trace 3) it is late.
    e.observe_log(&log(20, 0, T0 + 20 * S - 1000, "error", "late db error 42"));
    e.observe_log(&log(3, 0, T0 + 3 * S - 1000, "error", "late db error 43"));
    e.advance(T0 + 60 * S, &mut Vec::new());
    let text = render(&e);
    assert!(text.contains("cause=\"late db error <num>\",operation=\"POST /api/checkout\",outcome=\"bad\",slo=\"shop-api\"} 1"), "{text}");
    assert_eq!(e.stats().pending, 0);
}

#[test]
fn redelivered_spans_count_once_and_other_spans_not_at_all() {
    let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    let s = server(1, "GET /api/cart", T0, false);
    e.observe_spans(&[s.clone(), s.clone()]);
    e.observe_spans(&[s]);
    let mut other = server(2, "GET /health", T0, true);
    e.observe_spans(&[other.clone()]);
    other.name = "GET /api/cart".into();
    other.kind = SpanKind::Client;
    other.service = "shop".into();
    e.observe_spans(&[other]);
    assert_eq!(e.stats().duplicates, 2);
    e.advance(T0 + S, &mut Vec::new());
    let text = render(&e);
    assert!(
        text.contains(
            "tracejoin_slo_window_events{outcome=\"good\",slo=\"shop-api\",window=\"5m\"} 1"
        ),
        "{text}"
    );
    assert!(text
        .contains("tracejoin_slo_window_events{outcome=\"bad\",slo=\"shop-api\",window=\"5m\"} 0"));
}

#[test]
fn the_cause_chain_log_then_exception_then_status_then_unknown() {
    let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    let mut a = server(1, "POST /api/a", T0, true);
    a.exception_type = Some("TimeoutError".into());
    a.status_message = Some("deadline exceeded after 30s".into());
    let mut b = server(2, "POST /api/b", T0, true);
    b.status_message = Some("deadline exceeded after 30s".into());
    let c = server(3, "POST /api/c", T0, true);
    let d = server(4, "POST /api/d", T0, true);
    e.observe_spans(&[a, b, c, d]);
    e.observe_log(&log(
        4,
        0,
        T0 - 1000,
        "Error",
        "upstream 10.0.0.1:443 refused",
    ));
    e.observe_log(&log(3, 0, T0 - 1000, "INFO", "just info"));
    e.advance(T0 + 3 * S, &mut Vec::new());
    assert_eq!(
        e.stats().pending,
        4,
        "not before the watermark passes end + max_wait"
    );
    e.advance(T0 + 3 * S + 1, &mut Vec::new());
    let mut a = e.attribution("shop-api", Window::M5);
    a.sort_by(|x, y| x.operation.cmp(&y.operation));
    let causes: Vec<(&str, &str)> = a
        .iter()
        .map(|p| (p.operation.as_str(), p.cause.as_str()))
        .collect();
    assert_eq!(
        causes,
        vec![
            ("POST /api/a", "TimeoutError"),
            ("POST /api/b", "deadline exceeded after <num>s"),
            ("POST /api/c", "unknown"),
            ("POST /api/d", "upstream <ip> refused"),
        ]
    );
}

#[test]
fn a_child_spans_error_log_that_left_the_join_first_names_the_cause() {
    let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    // The DB span's record comes first; its log leaves the join before the server span exists.
    e.observe_spans(&[db_span(7, T0 - 20_000_000)]);
    e.observe_log(&log(
        7,
        1,
        T0 - 30_000_000,
        "ERROR",
        "deadlock detected on relation \"orders\"",
    ));
    e.observe_spans(&[server(7, "POST /api/checkout", T0, true)]);
    e.observe_log(&log(
        7,
        0,
        T0 - 5_000_000,
        "ERROR",
        "request failed with 500",
    ));
    e.advance(T0 + 10 * S, &mut Vec::new());
    let a = e.attribution("shop-api", Window::M5);
    assert_eq!(a[0].cause, "deadlock detected on relation \"<str>\"");
}

// ---------------------------------------------------------------- crossings

#[test]
fn a_crossing_produces_one_event_not_one_per_tick() {
    let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    let mut out = Vec::new();
    let mut n = 0u64;
    // 20 minutes of 50 % errors, ticking every 200 ms of event time.
    let mut t = T0;
    while t < T0 + 20 * MIN {
        if t % S == 0 {
            n += 1;
            e.observe_spans(&[server(n, "POST /api/checkout", t, n % 2 == 0)]);
        }
        t += S / 5;
        e.advance(t - S, &mut out);
    }
    let pages: Vec<_> = out.iter().filter(|x| x.alert == "page_quick").collect();
    assert_eq!(pages.len(), 1, "{out:#?}");
    assert!(pages[0].burn_rate > 14.4);
    assert!(out.iter().filter(|x| x.alert == "page_slow").count() == 1);
}

#[test]
fn one_bad_event_in_an_empty_window_fires_nothing_under_the_minimum_events_guard() {
    let alerts = |min_events: u64| {
        let mut e = SloEngine::new(&slo_config(min_events, ""), MAX_WAIT).unwrap();
        let mut out = Vec::new();
        e.observe_spans(&[server(1, "POST /api/checkout", T0, true)]);
        let mut t = T0;
        while t < T0 + 10 * MIN {
            t += 10 * S;
            e.advance(t, &mut out);
        }
        let text = render(&e);
        let names: Vec<&str> = out.iter().map(|a| a.alert).collect();
        (names, text)
    };
    let (guarded, text) = alerts(10);
    assert!(guarded.is_empty(), "{guarded:?}");
    assert!(
        text.contains("slo:sli_error:ratio_rate3d{sloth_id=\"shop-shop-api\",sloth_service=\"shop\",sloth_slo=\"shop-api\",sloth_window=\"3d\"} 0"),
        "below the minimum the 3d SLI reads 0:\n{text}"
    );
    assert!(
        text.contains(
            "tracejoin_slo_window_events{outcome=\"bad\",slo=\"shop-api\",window=\"3d\"} 1"
        ),
        "the event itself is still counted:\n{text}"
    );
    // Without the guard the lone bad event is 100 % errors in every window: every alert fires.
    let (unguarded, _) = alerts(0);
    for alert in ["page_quick", "page_slow", "ticket_quick", "ticket_slow"] {
        assert!(unguarded.contains(&alert), "{alert} in {unguarded:?}");
    }
}

// ---------------------------------------------------------------- the issue's scenario

/// The request mix of the scenario: every 2 s of event time a cart and a checkout request.
/// The cart has a trickle of unrelated errors (1 in 100, a cache timeout); from minute 15 to 30
/// checkout fails 9 times in 10 with one database error, logged in its DB client span, before
/// the server span logs its own "request failed". Returns whether the checkout failed.
fn scenario_step(e: &mut SloEngine, i: u64, t: i64) {
    let minute = (t - T0) / MIN;
    let cart = 2 * i;
    let cart_bad = i % 100 == 37;
    e.observe_spans(&[server(cart, "GET /api/cart", t, cart_bad)]);
    if cart_bad {
        e.observe_log(&log(
            cart,
            0,
            t - 10_000_000,
            "ERROR",
            &format!(
                "cache lookup failed: redis 10.0.3.{}:6379 timed out after {}ms",
                i % 250,
                200 + i % 90
            ),
        ));
    }
    let co = 2 * i + 1;
    let failing = (15..30).contains(&minute) && i % 10 != 0;
    e.observe_spans(&[db_span(co, t - 20_000_000)]);
    if failing {
        e.observe_log(&log(
            co,
            1,
            t - 30_000_000,
            "ERROR",
            &format!(
                "db query failed: ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction (order {})",
                48_000 + i
            ),
        ));
    }
    e.observe_spans(&[server(co, "POST /api/checkout", t, failing)]);
    if failing {
        e.observe_log(&log(
            co,
            0,
            t - 5_000_000,
            "ERROR",
            &format!("request {co} failed with status 500"),
        ));
    }
}

const DB_TEMPLATE: &str = "db query failed: ERROR <num> (HY000): Lock wait timeout exceeded; try restarting transaction (order <num>)";

#[test]
fn scenario_burn_crosses_14_4_names_the_endpoint_and_the_db_error_then_decays() {
    let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    let mut out = Vec::new();
    let mut peak_5m: f64 = 0.0;
    let mut peak_metrics = String::new();
    for i in 0..(45 * 30u64) {
        let t = T0 + i as i64 * 2 * S;
        scenario_step(&mut e, i, t);
        e.advance(t - S, &mut out);
        let b = e.burn_rate("shop-api", Window::M5).unwrap();
        if b > peak_5m {
            peak_5m = b;
        }
        if t == T0 + 29 * MIN {
            peak_metrics = render(&e);
        }
    }
    // Steady and recovered: far below the page threshold.
    assert!(peak_5m > 14.4, "peak 5m burn {peak_5m}");
    let after = e.burn_rate("shop-api", Window::M5).unwrap();
    assert!(after < 1.0, "5m burn after recovery {after}");
    assert!(
        e.burn_rate("shop-api", Window::H1).unwrap() > after,
        "the 1h window still remembers"
    );

    let pages: Vec<&AttributionEvent> = out.iter().filter(|x| x.alert == "page_quick").collect();
    assert_eq!(pages.len(), 1, "one page crossing: {out:#?}");
    let p = pages[0];
    assert!(p.burn_rate > 14.4 && p.long_window_burn_rate > 14.4);
    assert_eq!(p.operations[0].operation, "POST /api/checkout");
    assert!(p.operations[0].share > 0.9, "{p:#?}");
    assert_eq!(p.causes[0].cause, DB_TEMPLATE);
    assert!(p.causes[0].share > 0.9, "{p:#?}");
    assert_eq!(
        (p.top[0].operation.as_str(), p.top[0].cause.as_str()),
        ("POST /api/checkout", DB_TEMPLATE)
    );
    let crossing_minute = (p.event_time_unix_nanos - T0) as f64 / MIN as f64;
    assert!(
        (15.0..30.0).contains(&crossing_minute),
        "crossed at minute {crossing_minute}"
    );
    let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
    assert_eq!(json["slo"], "shop-api");
    assert_eq!(json["window"], "5m");
    assert_eq!(p.key(), "shop-shop-api");
    // No new crossing after recovery.
    assert!(out.iter().all(|x| x.event_time_unix_nanos < T0 + 30 * MIN));

    // At the peak the attribution metric names the endpoint and the error with the dominant share.
    let line = peak_metrics
        .lines()
        .find(|l| {
            l.starts_with("tracejoin_slo_burn_attribution_ratio{")
                && l.contains("window=\"5m\"")
                && l.contains(DB_TEMPLATE)
        })
        .unwrap_or_else(|| panic!("{peak_metrics}"));
    assert!(line.contains("operation=\"POST /api/checkout\""));
    let share: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(share > 0.9, "{line}");
    let rate5m = peak_metrics
        .lines()
        .find(|l| l.starts_with("slo:sli_error:ratio_rate5m{"))
        .unwrap();
    let ratio: f64 = rate5m.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ratio / 0.01 > 14.4, "{rate5m}");
    if std::env::var_os("SLO_PRINT_METRICS").is_some() {
        println!("{peak_metrics}");
        println!("{}", String::from_utf8_lossy(&p.to_json()));
        println!("{:?}", e.stats());
    }
    assert!(e.stats().bytes < 200_000, "{:?}", e.stats());
}

#[test]
fn the_crossing_time_does_not_depend_on_when_the_watermark_comes() {
    let run = |tick: bool| {
        let mut e = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
        let mut out = Vec::new();
        for i in 0..(45 * 30u64) {
            let t = T0 + i as i64 * 2 * S;
            scenario_step(&mut e, i, t);
            if tick {
                e.advance(t - S, &mut out);
            }
        }
        // Without ticks: the whole backlog consumed before the first watermark.
        e.advance(T0 + 45 * MIN, &mut out);
        let page: Vec<i64> = out
            .iter()
            .filter(|x| x.alert == "page_quick")
            .map(|x| x.event_time_unix_nanos)
            .collect();
        assert_eq!(page.len(), 1, "tick={tick}: {out:#?}");
        page[0]
    };
    let (ticking, backlog) = (run(true), run(false));
    assert!(
        (ticking - backlog).abs() <= 10 * S,
        "{ticking} vs {backlog}"
    );
}

#[test]
fn sloth_names_and_labels() {
    let cfg = SloConfig::parse(
        "slos:
- name: requests-availability
  service: myservice
  objective: 0.999
  time_window: 28d
  labels: {team: payments}
  min_events: 0
  indicator: {availability: {}}
",
        "t",
    )
    .unwrap();
    let mut e = SloEngine::new(&cfg, MAX_WAIT).unwrap();
    let before = render(&e);
    assert!(before.contains("slo:objective:ratio{sloth_id=\"myservice-requests-availability\",sloth_service=\"myservice\",sloth_slo=\"requests-availability\",team=\"payments\"} 0.999"), "{before}");
    assert!(
        !before.contains("ratio_rate5m"),
        "no ratios before a watermark"
    );
    let mut s = server(1, "anything", T0, true);
    s.service = "myservice".into();
    e.observe_spans(&[s]);
    e.advance(T0 + 4 * S, &mut Vec::new());
    let text = render(&e);
    for want in [
        "slo:sli_error:ratio_rate5m{sloth_id=\"myservice-requests-availability\",sloth_service=\"myservice\",sloth_slo=\"requests-availability\",sloth_window=\"5m\",team=\"payments\"} 1",
        "slo:sli_error:ratio_rate3d{",
        "slo:sli_error:ratio_rate4w{sloth_id=\"myservice-requests-availability\",sloth_service=\"myservice\",sloth_slo=\"requests-availability\",sloth_window=\"4w\",team=\"payments\"} 1",
        "slo:error_budget:ratio{",
        "slo:time_period:days{sloth_id=\"myservice-requests-availability\",sloth_service=\"myservice\",sloth_slo=\"requests-availability\",team=\"payments\"} 28",
        "slo:current_burn_rate:ratio{",
        "slo:period_burn_rate:ratio{",
        "slo:period_error_budget_remaining:ratio{",
        "sloth_slo_info{sloth_id=\"myservice-requests-availability\",sloth_mode=\"tracejoin\",sloth_objective=\"99.9\",sloth_service=\"myservice\",sloth_slo=\"requests-availability\",sloth_spec=\"tracejoin/slo/v1\"",
        "# TYPE tracejoin_slo_events_total counter",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

// ---------------------------------------------------------------- partitions and their state

/// The series of `text` whose name starts with one of `prefixes` (the window-derived ones).
fn window_series(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            [
                "slo:sli_error",
                "tracejoin_slo_window_events",
                "tracejoin_slo_burn_attribution_ratio",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_partition_restored_midway_from_its_state_ends_as_an_uninterrupted_run() {
    let run = |e: &mut SloEngine, from: u64, to: u64, out: &mut Vec<AttributionEvent>| {
        for i in from..to {
            let t = T0 + i as i64 * 2 * S;
            scenario_step(e, i, t);
            if i % 5 == 4 {
                e.advance(t - S, out);
            }
        }
    };
    let mut whole = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    let (mut out_whole, mut out_moved) = (Vec::new(), Vec::new());
    // Midway through the failure (minute 15..30): bad events wait for their cause.
    run(&mut whole, 0, 703, &mut out_whole);
    assert!(
        whole.stats().pending > 0,
        "the state carries waiting bad events"
    );
    let state = whole.export(0);
    let bytes = state.to_json();
    let state = PartitionState::from_json(&bytes).unwrap();
    assert!(!state.is_empty());

    let mut moved = SloEngine::new(&cfg(""), MAX_WAIT).unwrap();
    moved.restore(&state, None);
    assert_eq!(moved.stats().pending, whole.stats().pending);
    run(&mut whole, 703, 45 * 30, &mut out_whole);
    run(&mut moved, 703, 45 * 30, &mut out_moved);
    let (a, b) = (render(&whole), render(&moved));
    let (a, b) = (window_series(&a), window_series(&b));
    assert!(
        a.iter().any(|l| l.contains("Lock wait timeout")),
        "attribution present"
    );
    assert_eq!(
        a, b,
        "windows and attribution as if the partition had never moved"
    );
}

#[test]
fn partitions_sum_and_a_revoked_one_leaves_with_its_windows() {
    let mut e = SloEngine::new(&slo_config(0, ""), MAX_WAIT).unwrap();
    let t = T0 + 10 * S;
    for n in 0..6u64 {
        let partition = (n % 2) as i32;
        assert!(e.observe_record(
            partition,
            n as i64,
            false,
            &[server(n, "GET /api/x", t, n < 2)]
        ));
    }
    e.advance(t + S, &mut Vec::new());
    let total = |e: &SloEngine| e.burn_rate("shop-api", Window::M5).unwrap();
    // 2 bad of 6: ratio 1/3, budget 1 %.
    assert!((total(&e) - 100.0 / 3.0).abs() < 1e-9, "{}", total(&e));
    e.revoke(1);
    // Partition 0 kept n = 0, 2, 4: one bad of three.
    assert!((total(&e) - 100.0 / 3.0).abs() < 1e-9);
    e.revoke(0);
    assert_eq!(total(&e), 0.0);
}

#[test]
fn spans_below_the_restored_position_are_not_counted_again() {
    let mut a = SloEngine::new(&slo_config(0, ""), MAX_WAIT).unwrap();
    let t = T0 + 10 * S;
    for n in 0..4u64 {
        a.observe_record(
            3,
            100 + n as i64,
            false,
            &[server(n, "GET /api/x", t, false)],
        );
    }
    let mut state = a.export(3);
    state.positions.push(crate::derive::slo::Position {
        topic: "spans".into(),
        partition: 3,
        offset: 104,
    });
    let mut b = SloEngine::new(&slo_config(0, ""), MAX_WAIT).unwrap();
    b.restore(&state, Some(104));
    // The replay from an older committed offset: counted in the state already.
    for n in 0..4u64 {
        assert!(!b.observe_record(
            3,
            100 + n as i64,
            false,
            &[server(n, "GET /api/x", t, false)]
        ));
    }
    // New records count, and a replay on another partition is judged by its own marks.
    assert!(b.observe_record(3, 104, true, &[server(9, "GET /api/x", t, true)]));
    assert!(!b.observe_record(5, 7, true, &[server(10, "GET /api/x", t, true)]));
    assert!(b.observe_record(5, 8, false, &[server(11, "GET /api/x", t, true)]));
    b.advance(t + S, &mut Vec::new());
    let text = render(&b);
    let events = window_series(&text)
        .into_iter()
        .filter(|l| l.starts_with("tracejoin_slo_window_events") && l.contains("window=\"5m\""))
        .collect::<Vec<_>>();
    assert!(
        events
            .iter()
            .any(|l| l.contains("outcome=\"good\"") && l.ends_with(" 4")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.contains("outcome=\"bad\"") && l.ends_with(" 2")),
        "{events:?}"
    );
    assert_eq!(b.stats().restored_replays, 5);
}

#[test]
fn a_state_of_another_version_or_shape_is_refused() {
    assert!(matches!(
        PartitionState::from_json(br#"{"version":99,"partition":0,"slos":[]}"#),
        Err(StateError::Version { found: 99 })
    ));
    assert!(PartitionState::from_json(b"not json").is_err());
}

#[test]
fn a_partition_restored_in_the_same_process_counts_its_replay_past_the_state_again() {
    let mut e = SloEngine::new(&slo_config(0, ""), MAX_WAIT).unwrap();
    let t = T0 + 10 * S;
    let span = |n: u64| [server(n, "GET /api/x", t, false)];
    e.observe_record(3, 100, false, &span(0));
    e.observe_record(3, 101, false, &span(1));
    let state = e.export(3);
    e.observe_record(3, 102, false, &span(2));
    e.observe_record(3, 103, false, &span(3));
    // Reassigned to this process (an eager rebalance): the newest durable state is the older
    // one, and the partition is replayed from before it.
    e.restore(&state, Some(102));
    for n in 0..4u64 {
        e.observe_record(3, 100 + n as i64, false, &span(n));
    }
    e.advance(t + S, &mut Vec::new());
    let text = render(&e);
    assert!(
        text.lines()
            .any(|l| l.starts_with("tracejoin_slo_window_events")
                && l.contains("window=\"5m\"")
                && l.contains("outcome=\"good\"")
                && l.ends_with(" 4")),
        "every span once: {}",
        window_series(&text).join("\n")
    );
}
