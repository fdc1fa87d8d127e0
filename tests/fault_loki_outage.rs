//! A Loki outage through the whole pipeline: the Loki-protocol server (VictoriaLogs, an
//! instance this test owns) is stopped for 20 s mid-stream and started again on the same port.
//! Consumption pauses while Loki entries pile up (backpressure), resumes when it is back, and
//! every log reaches both sinks: nothing lost, offsets committed only behind both.

mod common;

use common::load::{check_outputs, Load};
use common::*;
use std::time::{Duration, Instant};

fn vl(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/victorialogs.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("scripts/victorialogs.sh");
    assert!(
        out.status.success(),
        "victorialogs.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("VICTORIALOGS_URL=").map(String::from))
        .unwrap_or_default()
}

struct Server(std::path::PathBuf);
impl Drop for Server {
    fn drop(&mut self) {
        vl(&["stop", self.0.to_str().unwrap()]);
    }
}

async fn count(url: &str, query: &str) -> usize {
    let u = reqwest::Url::parse_with_params(
        &format!("{url}/select/logsql/query"),
        &[("query", format!("{query} | stats count() n"))],
    )
    .unwrap();
    let body = reqwest::get(u)
        .await
        .and_then(|r| r.error_for_status())
        .map(|r| r.text());
    match body {
        Ok(t) => t
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t.lines().next()?).ok())
            .and_then(|v| v["n"].as_str()?.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loki_outage_pauses_consumption_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vl");
    let server = Server(dir.clone());
    let url = vl(&["start", dir.to_str().unwrap()]);
    let port = url.rsplit(':').next().unwrap().to_string();
    let (spans, logs, out, dlq) = (
        unique("spans"),
        unique("logs"),
        unique("out"),
        unique("dlq"),
    );
    create_topics(&[&spans, &logs, &out, &dlq], 2).await;
    let mut cfg = config(&spans, &logs, &out, &dlq);
    let loki_yaml = format!(
        "endpoint: {url}\npath: /insert/loki/api/v1/push\nbatch: {{max_wait: 200ms, max_entries: 200}}\nretry: {{initial_backoff: 100ms, max_backoff: 1s}}\n"
    );
    cfg.outputs.loki = Some(serde_yaml::from_str(&loki_yaml).unwrap());
    cfg.limits.max_in_flight = 400;
    let group = cfg.kafka.group_id.clone();
    let running = start(cfg);
    let load = Load::start(&bootstrap(), &spans, &logs, 1500, 100);
    tokio::time::sleep(Duration::from_secs(4)).await;

    vl(&["stop", dir.to_str().unwrap()]);
    let down = Instant::now();
    let mut paused_seen = false;
    let mut max_held = 0u64;
    while down.elapsed() < Duration::from_secs(20) {
        let m = running.health.render();
        paused_seen |= m.lines().any(|l| l == "tracejoin_consumption_paused 1");
        if let Some(v) = m
            .lines()
            .find_map(|l| l.strip_prefix("tracejoin_records_in_flight "))
        {
            max_held = max_held.max(v.parse().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    vl(&["start", dir.to_str().unwrap(), &port]);
    eprintln!(
        "loki outage: down {:.1}s, paused: {paused_seen}, most records in flight: {max_held}",
        down.elapsed().as_secs_f64()
    );

    let expected = tokio::task::spawn_blocking(move || load.finish())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut in_loki = 0;
    while Instant::now() < deadline {
        // This server is the test's own: every row in it is one of this test's logs.
        in_loki = count(&url, "trace_id:* AND span_name:*").await;
        if in_loki >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;
    drop(server);

    assert!(paused_seen, "consumption never paused while Loki was down");
    assert!(
        max_held <= 400 + 200,
        "in-flight records {max_held} went past the bound"
    );
    assert!(
        in_loki >= expected.len(),
        "only {in_loki} of {} logs reached Loki",
        expected.len()
    );
    let records = consume(&out, usize::MAX, Duration::from_secs(5));
    let (unique, total) = check_outputs(&expected, &records);
    assert_eq!(
        committed(&group, &logs, 2),
        end_offsets(&logs, 2),
        "all committed once both sinks had everything"
    );
    eprintln!("loki outage: {} logs in, {unique} out on Kafka, {in_loki} rows in Loki, {total} Kafka copies", expected.len());
}
