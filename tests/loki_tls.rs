//! The Loki output over TLS (`outputs.loki.tls`) against a real server: VictoriaLogs serving
//! HTTPS only, with a certificate of a private CA made by `scripts/certs.sh`, and a second port
//! that requires a client certificate of that CA. VictoriaLogs' own `-mtls` is in its Enterprise
//! build only, so that port is Debian's socat (OpenSSL) terminating mTLS in front of
//! VictoriaLogs' TLS port: the client certificate is checked by a real TLS server, and the push
//! still lands in VictoriaLogs.
//!
//! - the private CA in `ca_file`: pushes arrive (read back with LogsQL over HTTPS);
//! - no `ca_file` (public roots) or another CA: every attempt fails with a TLS error naming the
//!   cause (`not signed by a trusted CA`), counted as `tracejoin_loki_retries_total{cause="tls"}`;
//! - the client-certificate port: without a certificate, or with one of another CA, refused with
//!   the cause named; with the CA's certificate, delivered;
//! - through the whole pipeline, an untrusted Loki certificate holds every log's offset
//!   uncommitted; restarted with the right CA, the same group delivers every log and commits.
//!
//! Needs `TRACEJOIN_VLTLS_*` (scripts/test.sh runs `scripts/victorialogs.sh start-tls` and
//! exports its lines) and, for the pipeline test, `TRACEJOIN_KAFKA_BOOTSTRAP`.

mod common;

use common::load::Load;
use common::logsql::{field, LogsQl};
use common::*;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracejoin::config::ClientTlsConfig;
use tracejoin::model::*;
use tracejoin::sinks::loki::*;

fn vl(key: &str) -> String {
    std::env::var(format!("TRACEJOIN_VLTLS_{key}")).unwrap_or_else(|_| {
        panic!(
            "TRACEJOIN_VLTLS_{key} is not set. These tests need VictoriaLogs over TLS: \
             `scripts/victorialogs.sh start-tls /tmp/vl-tls` prints KEY=VALUE lines; export each \
             as TRACEJOIN_VLTLS_KEY (scripts/test.sh does this)."
        )
    })
}

fn run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}",
        now_nanos() ^ (u64::from(std::process::id()) << 40) ^ N.fetch_add(1, Ordering::Relaxed)
    )
}

fn log(run: &str, i: u32) -> JoinedLog {
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: now_nanos() as i64 - 10_000_000_000 + i64::from(i),
            timestamp_source: TimestampSource::Record,
            trace_id: None,
            trace_id_width: Default::default(),
            span_id: None,
            severity: Some("info".into()),
            body: format!("tls run {run} log {i}").into(),
            service: Some("checkout".into()),
            fields: LogFields::None,
            format: LogFormat::Text,
            origin: Origin {
                topic: 1,
                partition: 0,
                offset: i64::from(i),
            },
            ack: tracejoin::sources::ack::Ack::detached(),
        },
        outcome: JoinOutcome::NoTraceId,
        reason: EmitReason::NoTraceId,
        span: None,
        trace: None,
    }
}

fn config(endpoint: &str, run: &str, tls: Option<ClientTlsConfig>) -> LokiConfig {
    let mut labels = LokiConfig::default().labels;
    labels.push(LabelSource {
        name: "test_run".into(),
        value: LabelValue::Static(run.into()),
    });
    let mut c = LokiConfig {
        endpoint: endpoint.into(),
        path: "/insert/loki/api/v1/push".into(),
        labels,
        tls,
        ..LokiConfig::default()
    };
    c.retry.initial_backoff = Duration::from_millis(50);
    c.retry.max_backoff = Duration::from_millis(200);
    c.retry.max_attempts = Some(3);
    c.request_timeout = Duration::from_secs(5);
    c
}

fn tls(ca: Option<&str>, client: Option<(&str, &str)>) -> Option<ClientTlsConfig> {
    Some(ClientTlsConfig {
        ca_file: ca.map(PathBuf::from),
        cert_file: client.map(|(c, _)| PathBuf::from(c)),
        key_file: client.map(|(_, k)| PathBuf::from(k)),
        insecure_skip_verify: false,
    })
}

/// Pushes `n` logs of run `run` in one batch; the outcome.
async fn push(cfg: LokiConfig, run: &str, n: u32) -> (BatchOutcome, LokiStats) {
    cfg.validate("outputs.loki").expect("valid config");
    let mut sink = LokiSink::new(cfg).expect("sink");
    for i in 0..n {
        assert!(sink.add(&log(run, i)).unwrap().is_none());
    }
    let batch = sink.take_due(Instant::now(), true).expect("a batch");
    let client = sink.client();
    let outcome = client.send(batch).await;
    (outcome, client.stats())
}

fn logsql() -> LogsQl {
    LogsQl::with_ca(&vl("TLS_URL"), &std::fs::read(vl("CA_FILE")).unwrap())
}

async fn assert_arrived(run: &str, n: usize) {
    let rows = logsql()
        .wait_rows(
            &format!("test_run:\"{run}\""),
            None,
            n,
            Duration::from_secs(30),
        )
        .await;
    let msgs: HashSet<String> = rows.iter().filter_map(|r| field(r, "_msg")).collect();
    assert_eq!(msgs.len(), n, "every line arrives: {msgs:?}");
}

/// A batch that must fail on TLS: rejected after its 3 attempts, every retry counted as a TLS
/// retry, with `cause` in the reason.
fn assert_tls_failure(outcome: &BatchOutcome, stats: &LokiStats, cause: &str) {
    match outcome {
        BatchOutcome::Rejected {
            cause: RejectCause::RetriesExhausted,
            status: 0,
            reason,
            ..
        } => {
            assert!(reason.contains("TLS: "), "reason names TLS: {reason}");
            assert!(reason.contains(cause), "reason names `{cause}`: {reason}");
            eprintln!("as expected: {reason}");
        }
        other => panic!("expected a TLS failure naming `{cause}`, got {other:?}"),
    }
    assert_eq!(
        stats.requests, 3,
        "every attempt made (retried, like a connection error)"
    );
    assert_eq!(stats.batches_delivered, 0);
    let m = tracejoin::telemetry::metrics().render();
    assert!(
        m.lines()
            .any(|l| l.starts_with("tracejoin_loki_retries_total{cause=\"tls\"}")),
        "TLS retries counted apart: {}",
        m.lines()
            .filter(|l| l.contains("loki_retries"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_private_ca_in_ca_file_delivers() {
    let run = run_id();
    let ca = vl("CA_FILE");
    let (outcome, _) = push(config(&vl("TLS_URL"), &run, tls(Some(&ca), None)), &run, 25).await;
    assert!(
        matches!(outcome, BatchOutcome::Delivered { entries: 25, .. }),
        "{outcome:?}"
    );
    assert_arrived(&run, 25).await;
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails_naming_the_cause() {
    const UNTRUSTED: &str = "not signed by a trusted CA";
    // The public roots only (no `tls`: an https endpoint works without it).
    let run = run_id();
    let (outcome, stats) = push(config(&vl("TLS_URL"), &run, None), &run, 5).await;
    assert_tls_failure(&outcome, &stats, UNTRUSTED);
    // Another CA in `ca_file`: the private CA replaces the roots, it does not add to them.
    let rogue = vl("ROGUE_CA_FILE");
    let (outcome, stats) = push(
        config(&vl("TLS_URL"), &run, tls(Some(&rogue), None)),
        &run,
        5,
    )
    .await;
    assert_tls_failure(&outcome, &stats, UNTRUSTED);
    // Nothing of the run reached the server.
    let n = logsql().count(&format!("test_run:\"{run}\""), None).await;
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_server_requiring_client_certificates() {
    const REFUSED: &str = "client certificate";
    let url = vl("MTLS_URL");
    let ca = vl("CA_FILE");
    let run = run_id();
    // No client certificate.
    let (outcome, stats) = push(config(&url, &run, tls(Some(&ca), None)), &run, 5).await;
    assert_tls_failure(&outcome, &stats, REFUSED);
    // A certificate of the same name from a CA the server does not trust.
    let (rc, rk) = (vl("ROGUE_CLIENT_CERT_FILE"), vl("ROGUE_CLIENT_KEY_FILE"));
    let (outcome, stats) = push(
        config(&url, &run, tls(Some(&ca), Some((&rc, &rk)))),
        &run,
        5,
    )
    .await;
    assert_tls_failure(&outcome, &stats, REFUSED);
    // The CA's client certificate: through socat's check, into VictoriaLogs.
    let (c, k) = (vl("CLIENT_CERT_FILE"), vl("CLIENT_KEY_FILE"));
    let (outcome, _) = push(config(&url, &run, tls(Some(&ca), Some((&c, &k)))), &run, 7).await;
    assert!(
        matches!(outcome, BatchOutcome::Delivered { entries: 7, .. }),
        "{outcome:?}"
    );
    assert_arrived(&run, 7).await;
}

#[test]
fn start_up_errors_name_the_key() {
    let run = run_id();
    let missing = config(&vl("TLS_URL"), &run, tls(Some("/nonexistent/ca.crt"), None));
    let e = LokiSink::new(missing).unwrap_err().to_string();
    assert!(
        e.contains("`outputs.loki.tls.ca_file`") && e.contains("/nonexistent/ca.crt"),
        "{e}"
    );
    let key_for_ca = config(
        &vl("TLS_URL"),
        &run,
        tls(Some(&vl("CLIENT_KEY_FILE")), None),
    );
    let e = key_for_ca.validate("outputs.loki").unwrap_err().to_string();
    assert!(
        e.contains("`outputs.loki.tls.ca_file`") && e.contains("no PEM certificate"),
        "{e}"
    );
    assert!(!e.contains("PRIVATE KEY"), "no file content in errors: {e}");
    let http = config("http://127.0.0.1:9", &run, tls(Some(&vl("CA_FILE")), None));
    let e = http.validate("outputs.loki").unwrap_err().to_string();
    assert!(
        e.contains("`outputs.loki.tls`") && e.contains("https://"),
        "{e}"
    );
}

/// The whole pipeline: while Loki's certificate is untrusted, nothing is committed; a restart
/// with the right CA delivers every log (the Kafka output had them all along) and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_loki_holds_the_offsets_and_a_fixed_ca_delivers_everything() {
    let t = Topics::create("", 2).await;
    let run = run_id();
    let loki = |ca: &str| -> LokiConfig {
        serde_yaml::from_str(&format!(
            "endpoint: {}\npath: /insert/loki/api/v1/push\n\
             labels: [service, {{name: test_run, value: \"{run}\"}}]\n\
             tls: {{ca_file: {ca}}}\n\
             batch: {{max_wait: 200ms}}\nretry: {{initial_backoff: 100ms, max_backoff: 500ms}}\n",
            vl("TLS_URL")
        ))
        .unwrap()
    };
    let mut cfg = t.config();
    cfg.outputs.loki = Some(loki(&vl("ROGUE_CA_FILE")));
    cfg.workers = tracejoin::config::Workers::Count(1);
    cfg.inputs.repartition = tracejoin::sources::repartition::RepartitionPolicy::Never;
    cfg.shutdown.timeout = Duration::from_secs(3);
    let group = cfg.kafka.group_id.clone();
    let running = start(cfg.clone());
    let expected = tokio::task::spawn_blocking({
        let (spans, logs) = (t.spans.clone(), t.logs.clone());
        move || Load::start(&bootstrap(), &spans, &logs, 40, 40).finish()
    })
    .await
    .unwrap();
    // Every log reaches the Kafka output (its sink works) while Loki refuses the handshake.
    tokio::task::spawn_blocking({
        let (out, n) = (t.out.clone(), expected.len());
        move || wait_for_outputs(&out, n, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tls_retries = loop {
        let m = running.health.render();
        let v = common::exposition::value(&m, "tracejoin_loki_retries_total", &[("cause", "tls")]);
        if v.is_some_and(|v| v >= 3.0) {
            break v.unwrap();
        }
        assert!(Instant::now() < deadline, "no TLS retries counted: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let held = committed(&group, &t.logs, 2);
    assert!(
        held.iter().all(|&o| o <= 0),
        "no log offset may be committed while Loki has nothing: {held:?}"
    );
    running.stop().await;
    assert_eq!(
        logsql().count(&format!("test_run:\"{run}\""), None).await,
        0
    );

    // Fixed: the right CA, the same group. The uncommitted logs are read again and delivered.
    cfg.outputs.loki = Some(loki(&vl("CA_FILE")));
    let running = start(cfg);
    let rows = logsql()
        .wait_rows(
            &format!("test_run:\"{run}\""),
            None,
            expected.len(),
            Duration::from_secs(90),
        )
        .await;
    let markers: HashSet<String> = rows
        .iter()
        .filter_map(|r| {
            let msg = field(r, "message").or_else(|| field(r, "_msg"));
            log_id(&msg.unwrap_or_default())
        })
        .collect();
    let want: HashSet<String> = expected.keys().cloned().collect();
    assert_eq!(markers, want, "every log in Loki after the fix");
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = end_offsets(&t.logs, 2);
    while committed(&group, &t.logs, 2) != end {
        assert!(
            Instant::now() < deadline,
            "offsets never committed to the end"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    running.stop().await;
    eprintln!(
        "untrusted Loki: {tls_retries} TLS retries, offsets held at {held:?}; after the fix {} \
         logs in Loki, committed to {end:?}",
        want.len()
    );
}
