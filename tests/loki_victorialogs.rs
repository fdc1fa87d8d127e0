//! The Loki sink against a real server of Loki's push protocol: VictoriaLogs (Apache-2.0; Grafana
//! Loki itself is AGPL and is not built here). Logs are pushed through `LokiSink`/`LokiClient` to
//! `/insert/loki/api/v1/push` and read back with LogsQL from `/select/logsql/query`: every line
//! must arrive with its labels, its structured metadata and its timestamp.
//!
//! Needs `TRACEJOIN_VICTORIALOGS_URL` (scripts/test.sh starts VictoriaLogs and sets it; by hand:
//! `scripts/victorialogs.sh start /tmp/vl`). The outage test starts and stops its own instance
//! with `scripts/victorialogs.sh`.

mod common;

use common::logsql::{field, LogsQl, Row};
use common::services::{victorialogs_url, VictoriaLogs};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracejoin::model::*;
use tracejoin::sinks::loki::*;

/// A run id unique across test runs against the same server.
fn run_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (u64::from(std::process::id()) << 40) ^ N.fetch_add(1, Ordering::Relaxed)
}

const SERVICES: [&str; 3] = ["checkout", "cart", "billing \"v2\" \\ edge"];
const LEVELS: [(&str, &str); 3] = [("ERROR", "error"), ("info", "info"), ("Warning", "warn")];
const OUTCOMES: [JoinOutcome; 4] = [
    JoinOutcome::MatchedSpan,
    JoinOutcome::MatchedTrace,
    JoinOutcome::Unmatched,
    JoinOutcome::NoTraceId,
];

/// Log `i` of run `run`: services, levels and outcomes vary; each trace id is unique.
fn joined(run: u64, i: u32, base_ts: i64) -> JoinedLog {
    let service = SERVICES[i as usize % 3];
    let (level, _) = LEVELS[(i as usize / 3) % 3];
    let outcome = OUTCOMES[(i as usize / 9) % 4];
    let mut tid = [0u8; 16];
    tid[..8].copy_from_slice(&run.to_be_bytes());
    tid[8..12].copy_from_slice(&i.to_be_bytes());
    tid[15] = 1;
    let has_trace = outcome != JoinOutcome::NoTraceId;
    let matched = matches!(
        outcome,
        JoinOutcome::MatchedSpan | JoinOutcome::MatchedTrace
    );
    let ts = base_ts + i64::from(i) * 1_000;
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: ts,
            timestamp_source: TimestampSource::Record,
            trace_id: has_trace.then_some(TraceId(tid)),
            trace_id_width: Default::default(),
            span_id: has_trace.then_some(SpanId([(i % 250) as u8 + 1; 8])),
            severity: Some(level.into()),
            body: format!("run {run:x} log {i}: café ☕ “quoted” payment of {i}.00 EUR").into(),
            service: Some(service.into()),
            fields: LogFields::None,
            format: LogFormat::Text,
            origin: Origin {
                topic: 1,
                partition: (i % 4) as i32,
                offset: i64::from(i),
            },
            ack: tracejoin::sources::ack::Ack::detached(),
        },
        outcome,
        reason: if matched {
            EmitReason::SpanArrived
        } else {
            EmitReason::WindowClosed
        },
        span: matched.then(|| {
            Arc::new(SpanSummary {
                trace_id: TraceId(tid),
                span_id: SpanId([(i % 250) as u8 + 1; 8]),
                parent_span_id: None,
                service: service.into(),
                name: format!(
                    "POST /{}",
                    ["charge", "cart/add", "invoice"][i as usize % 3]
                )
                .into(),
                kind: SpanKind::Server,
                status: if i % 2 == 0 {
                    StatusCode::Error
                } else {
                    StatusCode::Ok
                },
                status_message: None,
                start_unix_nanos: ts - 2_250_000,
                end_unix_nanos: ts,
                exception_type: (i % 2 == 0).then(|| "CardDeclined".into()),
                attributes: vec![],
            })
        }),
        trace: matched.then(|| TraceContext {
            root_service: Some("frontend".into()),
            root_operation: Some("GET /checkout".into()),
            error: i % 2 == 0,
            span_count: 3,
        }),
    }
}

/// What VictoriaLogs must return for log `i`: every label and metadata field.
fn expected_fields(run: u64, l: &JoinedLog) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("_msg", l.log.body.to_string());
    m.insert("service", l.log.service.as_deref().unwrap().to_string());
    let level = LEVELS
        .iter()
        .find(|(raw, _)| *raw == l.log.severity.as_deref().unwrap())
        .unwrap()
        .1;
    m.insert("level", level.to_string());
    m.insert("outcome", l.outcome.as_str().to_string());
    m.insert("test_run", format!("{run:x}"));
    m.insert("join_reason", l.reason.as_str().to_string());
    if let Some(t) = l.log.trace_id {
        m.insert("trace_id", t.to_hex().to_string());
        m.insert("span_id", l.log.span_id.unwrap().to_hex().to_string());
    }
    if let Some(s) = &l.span {
        m.insert("span_name", s.name.to_string());
        m.insert("span_kind", "SPAN_KIND_SERVER".into());
        m.insert("span_status", s.status.as_str().to_string());
        m.insert("span_duration_ms", "2.25".into());
        if let Some(e) = &s.exception_type {
            m.insert("exception_type", e.to_string());
        }
        m.insert("root_service", "frontend".into());
        m.insert("root_operation", "GET /checkout".into());
    }
    m
}

/// Fields whose absence is checked too (a log without a span must not have them).
const METADATA: [&str; 10] = [
    "trace_id",
    "span_id",
    "span_name",
    "span_kind",
    "span_status",
    "span_duration_ms",
    "exception_type",
    "root_service",
    "root_operation",
    "join_reason",
];

fn config(url: &str, run: u64, encoding: LokiEncoding) -> LokiConfig {
    let mut labels = LokiConfig::default().labels;
    labels.push(LabelSource {
        name: "test_run".into(),
        value: LabelValue::Static(format!("{run:x}")),
    });
    let mut c = LokiConfig {
        endpoint: url.into(),
        path: "/insert/loki/api/v1/push".into(),
        encoding,
        labels,
        ..LokiConfig::default()
    };
    c.retry.initial_backoff = Duration::from_millis(100);
    c.retry.max_backoff = Duration::from_secs(2);
    c
}

/// Pushes `logs` (several batches, sent concurrently); all must be delivered.
async fn push_all(sink: &mut LokiSink, logs: &[JoinedLog]) {
    let mut batches = Vec::new();
    for l in logs {
        if let Some(b) = sink.add(l).unwrap() {
            batches.push(b);
        }
    }
    batches.extend(sink.take_due(Instant::now(), true));
    assert!(batches.len() > 1, "the test should span several batches");
    let client = sink.client();
    let outcomes = futures::future::join_all(batches.into_iter().map(|b| client.send(b))).await;
    let mut delivered = 0;
    for o in outcomes {
        match o {
            BatchOutcome::Delivered { entries, .. } => delivered += entries,
            other => panic!("VictoriaLogs refused a batch: {other:?}"),
        }
    }
    assert_eq!(delivered, logs.len());
}

async fn roundtrip(encoding: LokiEncoding) {
    let url = victorialogs_url();
    let run = run_id();
    let base_ts = common::now_nanos() as i64 - 60_000_000_000;
    let logs: Vec<JoinedLog> = (0..72).map(|i| joined(run, i, base_ts)).collect();
    let mut cfg = config(&url, run, encoding);
    cfg.batch.max_entries = 20;
    let mut sink = LokiSink::new(cfg).unwrap();
    push_all(&mut sink, &logs).await;

    let q = LogsQl::new(&url);
    let run_filter = format!("test_run:\"{run:x}\"");
    let rows = q
        .wait_rows(&run_filter, None, logs.len(), Duration::from_secs(30))
        .await;
    assert_eq!(rows.len(), logs.len(), "every line arrives once");
    let by_msg: HashMap<String, &Row> = rows
        .iter()
        .map(|r| (field(r, "_msg").expect("_msg"), r))
        .collect();
    for l in &logs {
        let row = by_msg
            .get(&*l.log.body)
            .unwrap_or_else(|| panic!("missing line {:?}", l.log.body));
        let want = expected_fields(run, l);
        for (k, v) in &want {
            assert_eq!(
                field(row, k).as_deref(),
                Some(v.as_str()),
                "field {k} of {:?}: {row:?}",
                l.log.body
            );
        }
        for k in METADATA {
            if !want.contains_key(k) {
                assert!(
                    row.get(k).is_none(),
                    "unexpected {k} on {:?}: {row:?}",
                    l.log.body
                );
            }
        }
        // The labels made the stream; the timestamp is kept to the nanosecond.
        let stream = field(row, "_stream").unwrap();
        for label in ["service", "level", "outcome", "test_run"] {
            let mut quoted = String::new();
            quoted.push_str(label);
            quoted.push('=');
            quoted.push_str(&serde_json::to_string(&want[label]).unwrap());
            assert!(stream.contains(&quoted), "{quoted} not in stream {stream}");
        }
        let t = chrono::DateTime::parse_from_rfc3339(&field(row, "_time").unwrap()).unwrap();
        assert_eq!(t.timestamp_nanos_opt().unwrap(), l.log.timestamp_unix_nanos);
    }

    // The query users run: every line of a trace, by its id.
    for l in logs.iter().filter(|l| l.log.trace_id.is_some()) {
        let hex = l.log.trace_id.unwrap().to_hex();
        let rows = q.query(&format!("trace_id:\"{}\"", &*hex), None).await;
        assert_eq!(rows.len(), 1, "trace {}", &*hex);
        assert_eq!(field(&rows[0], "_msg").as_deref(), Some(&*l.log.body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_push_arrives_with_labels_and_metadata() {
    roundtrip(LokiEncoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_push_arrives_with_labels_and_metadata() {
    roundtrip(LokiEncoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_header_separates_tenants() {
    let url = victorialogs_url();
    let run = run_id();
    let mut cfg = config(&url, run, LokiEncoding::Protobuf);
    // VictoriaLogs reads X-Scope-OrgID as `account[:project]`.
    cfg.tenant = Some(TenantConfig {
        id: Some("42".into()),
        ..TenantConfig::default()
    });
    cfg.batch.max_entries = 5;
    let mut sink = LokiSink::new(cfg).unwrap();
    let logs: Vec<JoinedLog> = (0..12)
        .map(|i| joined(run, i, common::now_nanos() as i64))
        .collect();
    push_all(&mut sink, &logs).await;
    let q = LogsQl::new(&url);
    let f = format!("test_run:\"{run:x}\"");
    assert_eq!(
        q.wait_count(&f, Some("42"), 12, Duration::from_secs(30))
            .await,
        12
    );
    assert_eq!(
        q.wait_count(&f, None, 1, Duration::from_millis(10)).await,
        0,
        "not in the default tenant"
    );
}

/// Push throughput through the sink and client (4 batches in flight, default batch limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput() {
    let url = victorialogs_url();
    let run = run_id();
    let n: u32 = std::env::var("TRACEJOIN_LOKI_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let base = common::now_nanos() as i64 - 120_000_000_000;
    let logs: Vec<JoinedLog> = (0..n).map(|i| joined(run, i, base)).collect();
    let mut sink = LokiSink::new(config(&url, run, LokiEncoding::Protobuf)).unwrap();
    let client = sink.client();
    let permits = Arc::new(Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    let mut add_time = Duration::ZERO;
    for l in &logs {
        let a = Instant::now();
        let closed = sink.add(l).unwrap();
        add_time += a.elapsed();
        if let Some(b) = closed {
            let p = permits.clone().acquire_owned().await.unwrap();
            let c = client.clone();
            tasks.spawn(async move {
                let o = c.send(b).await;
                drop(p);
                o
            });
        }
    }
    if let Some(b) = sink.take_due(Instant::now(), true) {
        let c = client.clone();
        tasks.spawn(async move { c.send(b).await });
    }
    let mut delivered = 0;
    while let Some(o) = tasks.join_next().await {
        match o.unwrap() {
            BatchOutcome::Delivered { entries, .. } => delivered += entries,
            other => panic!("{other:?}"),
        }
    }
    let elapsed = t0.elapsed();
    assert_eq!(delivered, n as usize);
    let s = client.stats();
    eprintln!(
        "loki sink → VictoriaLogs: {n} entries in {:.2} s = {:.0} entries/s \
         ({:.1} MB/s uncompressed, {:.1} MB/s on the wire, {} requests, mean request {:.1} ms; \
         LokiSink::add alone {:.0} entries/s)",
        elapsed.as_secs_f64(),
        f64::from(n) / elapsed.as_secs_f64(),
        s.bytes_delivered as f64 / 1e6 / elapsed.as_secs_f64(),
        s.wire_bytes_delivered as f64 / 1e6 / elapsed.as_secs_f64(),
        s.requests,
        s.request_nanos as f64 / 1e6 / s.requests as f64,
        f64::from(n) / add_time.as_secs_f64(),
    );
    let q = LogsQl::new(&url);
    let f = format!("test_run:\"{run:x}\"");
    assert_eq!(
        q.wait_count(&f, None, u64::from(n), Duration::from_secs(60))
            .await,
        u64::from(n)
    );
}

// ---- outage ----

/// The server stops for 20 s mid-stream and comes back on the same port and data: nothing is
/// lost, the client retried, and while it was down the producer was held back instead of
/// buffering: a send does not complete while the server is down, so the producer waits.
///
/// The semaphore here stands in for the pipeline's in-flight limit (`limits.max_in_flight`),
/// so what it bounds is the test's own doing and is not asserted; the pipeline's bound is
/// observed from its metrics in `tests/fault_loki_outage.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_20s_loses_nothing_and_holds_the_producer_back() {
    const N: u32 = 3000;
    const IN_FLIGHT: usize = 4;
    let vl = VictoriaLogs::start();
    let url = vl.url();
    let run = run_id();
    let mut cfg = config(&url, run, LokiEncoding::Protobuf);
    cfg.batch.max_entries = 50;
    cfg.batch.max_wait = Duration::from_millis(200);
    cfg.request_timeout = Duration::from_secs(5);
    let mut sink = LokiSink::new(cfg).unwrap();
    let client = sink.client();
    let base = common::now_nanos() as i64;
    let logs: Vec<JoinedLog> = (0..N).map(|i| joined(run, i, base)).collect();

    // Producer: ~500 logs/s, a batch in flight per permit, blocks when all are taken.
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    let mut longest_block = Duration::ZERO;
    let mut outage: Option<(Instant, Instant)> = None;
    let mut stopped_at = None;
    let mut restart = None;
    for (i, l) in logs.iter().enumerate() {
        // The outage, driven from the producer loop so its timing is deterministic.
        if stopped_at.is_none() && t0.elapsed() >= Duration::from_secs(3) {
            vl.stop();
            stopped_at = Some(Instant::now());
            let dir = vl.dir.clone();
            let port = vl.port;
            restart = Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tokio::task::spawn_blocking(move || VictoriaLogs::launch(&dir, Some(port)))
                    .await
                    .unwrap();
                Instant::now()
            }));
        }
        let mut batches: Vec<LokiBatch> = sink.add(l).unwrap().into_iter().collect();
        batches.extend(sink.take_due(Instant::now(), false));
        for b in batches {
            let wait = Instant::now();
            let p = permits.clone().acquire_owned().await.unwrap();
            longest_block = longest_block.max(wait.elapsed());
            let c = client.clone();
            tasks.spawn(async move {
                let o = c.send(b).await;
                drop(p);
                o
            });
        }
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(b) = sink.take_due(Instant::now(), true) {
        let c = client.clone();
        tasks.spawn(async move { c.send(b).await });
    }
    let mut offsets = HashSet::new();
    let mut retried = 0u32;
    while let Some(o) = tasks.join_next().await {
        match o.unwrap() {
            BatchOutcome::Delivered { origins, stats, .. } => {
                offsets.extend(origins.iter().map(|o| o.offset));
                retried += stats.attempts - 1;
            }
            other => panic!("nothing may be rejected in an outage: {other:?}"),
        }
    }
    let restarted_at = restart.expect("the outage happened").await.unwrap();
    if let Some(s) = stopped_at {
        outage = Some((s, restarted_at));
    }
    let (down, up) = outage.unwrap();
    let s = client.stats();
    eprintln!(
        "outage: down {:.1} s; producer blocked up to {:.1} s; {} retries ({} connection, {} 5xx); \
         total {:.1} s",
        (up - down).as_secs_f64(),
        longest_block.as_secs_f64(),
        retried,
        s.retries_connection,
        s.retries_server_error,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(offsets.len(), N as usize, "every log acknowledged");
    assert!(
        s.retries_connection + s.retries_server_error > 0 && retried > 0,
        "{s:?}"
    );
    assert!(
        longest_block >= Duration::from_secs(15),
        "the producer must be held back while the server is down, not buffer: {longest_block:?}"
    );

    // Everything is in the server, including what was written before the stop.
    let q = LogsQl::new(&url);
    let f = format!("test_run:\"{run:x}\"");
    let n = q
        .wait_count(&f, None, u64::from(N), Duration::from_secs(30))
        .await;
    assert!(n >= u64::from(N), "lost {} lines", u64::from(N) - n);
    let rows = q
        .query(&format!("{f} | stats count_uniq(_msg) as u"), None)
        .await;
    let uniq: u64 = field(&rows[0], "u").unwrap().parse().unwrap();
    assert_eq!(uniq, u64::from(N), "every distinct line is there");
    eprintln!(
        "outage: {n} rows for {N} logs ({} duplicates from retried requests)",
        n - u64::from(N)
    );
}
