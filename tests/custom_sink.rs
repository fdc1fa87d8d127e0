//! A sink is one module: a type implementing `tracejoin::sinks::Sink`, passed in `Hooks::sinks`.
//! And a sink's tokens are what holds the commit: while it keeps them, nothing past its oldest
//! log is committed, whatever the other sinks did; when it lets them go, the commit follows.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracejoin::pipeline::Hooks;
use tracejoin::sinks::{Emitted, Outbox, Sink};
use tracejoin::sources::ack::Ack;
use tracejoin::telemetry::server::Health;

/// Keeps every log it gets, with its token, until the test lets go.
struct Holding(Arc<Mutex<Vec<(String, Ack)>>>);

impl Sink for Holding {
    fn name(&self) -> &'static str {
        "holding"
    }
    fn send(&mut self, log: &Emitted<'_>, ack: &Ack, _out: &mut Outbox) {
        let line = String::from_utf8(log.json.to_vec()).expect("utf-8 json");
        self.0.lock().unwrap().push((line, ack.clone()));
    }
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_is_one_module_and_its_tokens_hold_the_commit() {
    let (spans, logs, out, dlq) = (
        unique("cs-spans"),
        unique("cs-logs"),
        unique("cs-out"),
        unique("cs-dlq"),
    );
    create_topics(&[&spans, &logs, &out, &dlq], 1).await;
    let p = producer();
    const N: usize = 40;
    for i in 0..N {
        let line = format!(r#"{{"level":"info","msg":"held {i}"}}"#);
        produce(&p, &logs, None, line.as_bytes()).await;
    }

    let config = config(&spans, &logs, &out, &dlq);
    let group = config.kafka.group_id.clone();
    let held = Arc::new(Mutex::new(Vec::new()));
    let held_by_sink = held.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tracejoin::pipeline::run(
        config,
        Health::default(),
        Hooks {
            sinks: vec![Box::new(move |_worker| -> Box<dyn Sink> {
                Box::new(Holding(held_by_sink.clone()))
            })],
            ..Default::default()
        },
        shutdown.clone(),
    ));

    wait_for(
        "the custom sink to get every log",
        Duration::from_secs(60),
        || held.lock().unwrap().len() == N,
    )
    .await;
    // The Kafka sink has them too, so only the custom sink's tokens hold the commit now.
    let enriched = consume(&out, N, Duration::from_secs(30));
    assert_eq!(
        enriched.len(),
        N,
        "the configured Kafka sink still gets every log"
    );
    {
        let got = held.lock().unwrap();
        for (i, (line, _)) in got.iter().enumerate() {
            assert!(
                line.contains(&format!("held {i}")),
                "log {i} in order: {line}"
            );
            assert!(line.contains(r#""outcome":"no_trace_id""#), "{line}");
        }
    }
    // Ten commit intervals: nothing may be committed past the first held log.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = committed(&group, &logs, 1)[0];
    assert!(
        c <= 0,
        "committed {c} while the sink holds every log from offset 0"
    );

    // Let the first half go: the commit follows to the first log still held.
    held.lock().unwrap().drain(..N / 2);
    wait_for(
        "the commit to reach the first held log",
        Duration::from_secs(20),
        || committed(&group, &logs, 1)[0] == (N / 2) as i64,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        committed(&group, &logs, 1)[0],
        (N / 2) as i64,
        "and not past it"
    );

    held.lock().unwrap().clear();
    wait_for(
        "the commit to reach the end",
        Duration::from_secs(20),
        || committed(&group, &logs, 1)[0] == N as i64,
    )
    .await;
    shutdown.cancel();
    task.await
        .expect("task")
        .expect("pipeline ran without error");
}
