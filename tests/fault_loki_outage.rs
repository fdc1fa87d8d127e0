//! A Loki outage through the whole pipeline: the Loki-protocol server (VictoriaLogs, an
//! instance this test owns) is stopped for 20 s mid-stream and started again on the same port.
//! Consumption pauses while Loki entries pile up (backpressure), resumes when it is back, and
//! every log reaches both sinks: nothing lost, offsets committed only behind both.
//!
//! The in-flight bound is the pipeline's own: nothing in this test limits what it sends. It is
//! observed from the processor's metrics (`tracejoin_loki_batches_failing` and
//! `tracejoin_loki_retries_total` moving during the outage, `tracejoin_records_in_flight`,
//! `tracejoin_consumption_paused`, `tracejoin_records_consumed_total`), and what reaches the
//! server is checked log by log.

mod common;

use common::exposition::{parse, value};
use common::load::{check_outputs, Load};
use common::logsql::{field, LogsQl};
use common::services::VictoriaLogs;
use common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const MAX_IN_FLIGHT: usize = 400;
const BATCH_ENTRIES: usize = 200;

/// The gauges and the log topic's consumed counter, from the processor's exposition.
struct Observed {
    in_flight: f64,
    paused: f64,
    consumed_logs: f64,
    /// Loki batches whose last attempt failed, now.
    failing: f64,
    /// Loki retries so far, every cause.
    retries: f64,
}

fn observe(running: &Running, logs_topic: &str) -> Observed {
    let m = running.health.render();
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&m, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in the exposition"))
    };
    // Per worker; the bound (limits.max_in_flight) is the process's, shared among its workers.
    let over_workers = |name: &str, fold: fn(f64, f64) -> f64| {
        let samples: Vec<f64> = parse(&m)
            .into_iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .collect();
        assert!(!samples.is_empty(), "no {name} in the exposition");
        samples.into_iter().fold(0.0, fold)
    };
    Observed {
        in_flight: over_workers("tracejoin_records_in_flight", |a, b| a + b),
        paused: over_workers("tracejoin_consumption_paused", f64::max),
        consumed_logs: get("tracejoin_records_consumed_total", &[("topic", logs_topic)]),
        failing: get("tracejoin_loki_batches_failing", &[]),
        retries: parse(&m)
            .into_iter()
            .filter(|s| s.name == "tracejoin_loki_retries_total")
            .map(|s| s.value)
            .sum(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loki_outage_pauses_consumption_and_loses_nothing() {
    let vl = VictoriaLogs::start();
    let url = vl.url();
    let t = Topics::create("", 2).await;
    let mut cfg = t.config();
    let loki_yaml = format!(
        "endpoint: {url}\npath: /insert/loki/api/v1/push\nbatch: {{max_wait: 200ms, max_entries: {BATCH_ENTRIES}}}\nretry: {{initial_backoff: 100ms, max_backoff: 1s}}\n"
    );
    cfg.outputs.loki = Some(serde_yaml::from_str(&loki_yaml).unwrap());
    cfg.limits.max_in_flight = MAX_IN_FLIGHT;
    // The bound asserted below is one worker's (the process's bound is shared among workers,
    // and each may overshoot by a batch): one worker, inputs joined as they are.
    cfg.workers = tracejoin::config::Workers::Count(1);
    cfg.inputs.repartition = tracejoin::sources::repartition::RepartitionPolicy::Never;
    let group = cfg.kafka.group_id.clone();
    let running = start(cfg);
    let load = Load::start(&bootstrap(), &t.spans, &t.logs, 1500, 100);
    tokio::time::sleep(Duration::from_secs(4)).await;

    let at_stop = observe(&running, &t.logs);
    vl.stop();
    let down = Instant::now();
    let mut paused_seen = false;
    let mut failing_seen = 0f64;
    let mut retries_while_down = 0f64;
    let mut max_held = 0f64;
    let mut last = at_stop.consumed_logs;
    while down.elapsed() < Duration::from_secs(20) {
        let o = observe(&running, &t.logs);
        paused_seen |= o.paused == 1.0;
        failing_seen = failing_seen.max(o.failing);
        retries_while_down = o.retries - at_stop.retries;
        max_held = max_held.max(o.in_flight);
        last = o.consumed_logs;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // While Loki is down it acknowledges nothing: every log consumed since the stop is still in
    // flight, so the consumer may take at most the bound plus one batch.
    let consumed_while_down = last - at_stop.consumed_logs;
    vl.restart();
    eprintln!(
        "loki outage: down {:.1}s, paused: {paused_seen}, most records in flight: {max_held} \
         (bound {MAX_IN_FLIGHT} + one batch of {BATCH_ENTRIES}), logs consumed while down: \
         {consumed_while_down} (in flight at the stop: {})",
        down.elapsed().as_secs_f64(),
        at_stop.in_flight
    );
    assert!(paused_seen, "consumption never paused while Loki was down");
    // The outage shows on /metrics while it lasts, not when the batches finally get through.
    assert!(
        failing_seen >= 1.0,
        "tracejoin_loki_batches_failing stayed 0 while Loki was down"
    );
    assert!(
        retries_while_down >= 5.0,
        "tracejoin_loki_retries_total moved by {retries_while_down} during a 20 s outage"
    );
    assert!(
        max_held >= MAX_IN_FLIGHT as f64,
        "the in-flight gauge never reached the bound ({max_held}): the outage was not observed"
    );
    assert!(
        max_held <= (MAX_IN_FLIGHT + BATCH_ENTRIES) as f64,
        "in-flight records {max_held} went past the bound {MAX_IN_FLIGHT} + {BATCH_ENTRIES}"
    );
    assert!(
        consumed_while_down <= (MAX_IN_FLIGHT + BATCH_ENTRIES) as f64,
        "{consumed_while_down} logs consumed while Loki acknowledged nothing: past the bound"
    );

    let expected = tokio::task::spawn_blocking(move || load.finish())
        .await
        .unwrap();
    // This server is the test's own: every row in it is one of this test's logs.
    let q = LogsQl::new(&url);
    let in_loki = q
        .wait_count(
            "trace_id:* AND span_name:*",
            None,
            expected.len() as u64,
            Duration::from_secs(120),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = observe(&running, &t.logs);
    assert_eq!(after.failing, 0.0, "Loki is back: nothing is failing");
    running.stop().await;

    // Log by log: the set of markers in Loki is the set produced.
    let rows = q.query("* | fields message, _msg", None).await;
    let markers: HashSet<String> = rows
        .iter()
        .filter_map(|r| {
            let msg = field(r, "message").or_else(|| field(r, "_msg"));
            log_id(&msg.unwrap_or_default())
        })
        .collect();
    let want: HashSet<String> = expected.keys().cloned().collect();
    let missing: Vec<_> = want.difference(&markers).take(10).collect();
    let extra: Vec<_> = markers.difference(&want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} rows in Loki, {} distinct logs for {} produced; missing e.g. {missing:?}, unknown {extra:?}",
        rows.len(),
        markers.len(),
        want.len()
    );
    let records = read_all(&t.out, Duration::from_secs(60));
    let (unique, total) = check_outputs(&expected, &records);
    assert_eq!(
        committed(&group, &t.logs, 2),
        end_offsets(&t.logs, 2),
        "all committed once both sinks had everything"
    );
    eprintln!(
        "loki outage: {} logs in, {unique} out on Kafka, {in_loki} rows in Loki, {total} Kafka copies",
        expected.len()
    );
}
