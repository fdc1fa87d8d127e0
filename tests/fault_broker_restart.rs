//! A broker restart mid-stream (same port, same data): producers and tracejoin ride it out and
//! nothing is lost. This test owns its broker (`scripts/kafka.sh start/restart/stop` on a
//! temporary folder) so the restart disturbs no other test.

mod common;

use common::load::{check_outputs_allowing_late, Load};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn kafka(cmd: &str, dir: &Path) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(cmd)
        .arg(dir)
        .output()
        .expect("scripts/kafka.sh");
    assert!(
        out.status.success(),
        "kafka.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("BOOTSTRAP=").map(String::from))
        .unwrap_or_default()
}

struct Broker(tempfile::TempDir);
impl Drop for Broker {
    fn drop(&mut self) {
        kafka("stop", &self.0.path().join("kafka"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let broker = Broker(tempfile::tempdir().unwrap());
    let dir = broker.0.path().join("kafka");
    let bootstrap = kafka("start", &dir);
    // The helpers read the broker from the environment; this test binary has only this test.
    std::env::set_var("TRACEJOIN_KAFKA_BOOTSTRAP", &bootstrap);
    let (spans, logs, out, dlq) = (
        unique("spans"),
        unique("logs"),
        unique("out"),
        unique("dlq"),
    );
    create_topics(&[&spans, &logs, &out, &dlq], 2).await;
    let mut cfg = config(&spans, &logs, &out, &dlq);
    // A log waits longer than the outage lasts, as in production (default 10s): a span held up
    // by the restart must still find the log waiting.
    cfg.join.max_wait = Duration::from_secs(15);
    let running = start(cfg);
    let load = Load::start(&bootstrap, &spans, &logs, 2000, 100);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let down = Instant::now();
    tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || kafka("restart", &dir)
    })
    .await
    .unwrap();
    eprintln!("broker restarted in {:.1}s", down.elapsed().as_secs_f64());
    let expected = tokio::task::spawn_blocking(move || load.finish())
        .await
        .unwrap();
    let records = tokio::task::spawn_blocking({
        let (out, n) = (out.clone(), expected.len());
        move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let got = consume(&out, usize::MAX, Duration::from_secs(3));
                if got.len() >= n || Instant::now() > deadline {
                    return got;
                }
            }
        }
    })
    .await
    .unwrap();
    running.stop().await;
    // Nothing may be lost. A log whose records came back from the broker behind newer ones may
    // leave flagged `late` rather than matched; it must say so, and stay rare.
    let (unique, total, late) = check_outputs_allowing_late(&expected, &records);
    eprintln!(
        "broker restart: {} logs in, {unique} out, {total} copies: duplicate rate {:.2}%, {late} decided late",
        expected.len(),
        100.0 * (total - unique) as f64 / unique as f64
    );
    assert!(
        late * 100 <= expected.len(),
        "{late} of {} logs decided late: more than 1%",
        expected.len()
    );
}
