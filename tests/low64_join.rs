//! 64-bit trace ids joined to 128-bit traces on a real Apache Kafka broker: OTLP spans with
//! 128-bit ids, logs written the way Datadog's tracers inject them (`dd.trace_id` and
//! `dd.span_id` as decimal numbers of 64 bits, JSON and text), and two traces sharing their
//! low 64 bits. Checked in the enriched output: `join.id_match`, the `trace_id` rewritten to
//! the trace's full id, the span's and trace's context, and `ambiguous_id`.
//!
//! One partition per topic: low-64 matching needs the 64-bit logs and the trace's spans in
//! the same task, and this test is about the join, not about placing them there.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span, Span, Status};
use prost::Message;
use std::collections::HashMap;
use std::time::Duration;

struct Trace {
    id: [u8; 16],
    root: [u8; 8],
    child: [u8; 8],
}

impl Trace {
    /// A random 128-bit trace; `low` forces its low 64 bits (for the colliding pair).
    fn new(low: Option<u64>) -> Self {
        let mut id: [u8; 16] = rand::random();
        // A non-zero high half: a real 128-bit id, not a widened 64-bit one.
        id[0] |= 0x80;
        if let Some(low) = low {
            id[8..].copy_from_slice(&low.to_be_bytes());
        }
        Trace {
            id,
            root: rand::random::<[u8; 8]>().map(|b| b | 1),
            child: rand::random::<[u8; 8]>().map(|b| b | 1),
        }
    }
    fn hex(&self) -> String {
        hex(&self.id)
    }
    fn low64(&self) -> u64 {
        u64::from_be_bytes(self.id[8..].try_into().unwrap())
    }
    /// The id as a Datadog tracer in 64-bit mode writes it: the low half, in decimal.
    fn dd_trace_id(&self) -> String {
        self.low64().to_string()
    }
    /// The trace id a 64-bit log carries before the join: the low half, zero-padded.
    fn padded_hex(&self) -> String {
        format!("{:032x}", self.low64())
    }
    fn spans(&self, end: u64) -> Vec<u8> {
        let span = |id: [u8; 8], parent: Option<[u8; 8]>, name: &str, kind: span::SpanKind| Span {
            trace_id: self.id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: end - 80_000_000,
            end_time_unix_nano: end,
            status: Some(Status::default()),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource_spans(
                    "web",
                    vec![span(self.root, None, "GET /orders", span::SpanKind::Server)],
                ),
                resource_spans(
                    "orders",
                    vec![span(
                        self.child,
                        Some(self.root),
                        "SELECT orders",
                        span::SpanKind::Client,
                    )],
                ),
            ],
        }
        .encode_to_vec()
    }
}

fn dec(span_id: [u8; 8]) -> String {
    u64::from_be_bytes(span_id).to_string()
}

fn rfc3339(nanos: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// What one log must come out as.
struct Expect {
    outcome: &'static str,
    reason: Option<&'static str>,
    id_match: Option<&'static str>,
    trace_id: String,
    span: Option<(&'static str, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_64_bit_ids_join_128_bit_traces_on_a_real_broker() {
    // Three partitions, re-keyed: the internal topics place a 64-bit log by its low half, on
    // its trace's partition.
    let t = Topics::create("low64", 3).await;
    let p = producer();
    let now = now_nanos();
    // Written 10 ms before the spans end, as a log inside its span is.
    let ts = rfc3339(now - 10_000_000);
    let present = Trace::new(None);
    let later = Trace::new(None);
    let collide: u64 = rand::random::<u64>() | 1;
    let (twin_a, twin_b) = (Trace::new(Some(collide)), Trace::new(Some(collide)));
    let mut expected: HashMap<&str, Expect> = HashMap::new();

    // Spans first for `present` and the twins; `later`'s come after its logs.
    for tr in [&present, &twin_a, &twin_b] {
        produce(&p, &t.spans, Some(&tr.hex()), &tr.spans(now)).await;
    }
    let logs: Vec<(&str, String)> = vec![
        // Datadog JSON log injection, nested (`dd: {trace_id, span_id}`), as strings.
        (
            "dd_json",
            format!(
                r#"{{"timestamp":"{ts}","status":"error","message":"log_id=dd_json order lookup failed","dd":{{"trace_id":"{}","span_id":"{}","service":"orders"}}}}"#,
                present.dd_trace_id(),
                dec(present.child)
            ),
        ),
        // Flat keys, numbers, no span id: the trace's root gives the context.
        (
            "dd_flat",
            format!(
                r#"{{"timestamp":"{ts}","status":"info","message":"log_id=dd_flat listing orders","dd.trace_id":{}}}"#,
                present.dd_trace_id()
            ),
        ),
        // Plain text with the tracer's `dd.trace_id=… dd.span_id=…` injection.
        (
            "dd_text",
            format!(
                "{ts} INFO [orders] log_id=dd_text served dd.trace_id={} dd.span_id={}",
                present.dd_trace_id(),
                dec(present.root)
            ),
        ),
        // Before its spans: it waits, and the spans' arrival finds it.
        (
            "dd_early",
            format!(
                r#"{{"timestamp":"{ts}","message":"log_id=dd_early before the spans","dd":{{"trace_id":"{}","span_id":"{}"}}}}"#,
                later.dd_trace_id(),
                dec(later.child)
            ),
        ),
        // Two open traces end in these 64 bits: not guessed, even with a span id that is one
        // of theirs.
        (
            "dd_ambiguous",
            format!(
                r#"{{"timestamp":"{ts}","message":"log_id=dd_ambiguous which one","dd":{{"trace_id":"{}","span_id":"{}"}}}}"#,
                twin_a.dd_trace_id(),
                dec(twin_a.child)
            ),
        ),
        // The same trace written with its full id (OpenTelemetry): matched in full.
        (
            "otel_full",
            format!(
                r#"{{"timestamp":"{ts}","message":"log_id=otel_full by the full id","trace_id":"{}","span_id":"{}"}}"#,
                present.hex(),
                hex(&present.child)
            ),
        ),
    ];
    expected.insert(
        "dd_json",
        Expect {
            outcome: "matched_span",
            reason: Some("window_closed"),
            id_match: Some("low64"),
            trace_id: present.hex(),
            span: Some(("SELECT orders", hex(&present.child))),
        },
    );
    expected.insert(
        "dd_flat",
        Expect {
            outcome: "matched_trace",
            reason: Some("window_closed"),
            id_match: Some("low64"),
            trace_id: present.hex(),
            span: Some(("GET /orders", hex(&present.root))),
        },
    );
    expected.insert(
        "dd_text",
        Expect {
            outcome: "matched_span",
            reason: Some("window_closed"),
            id_match: Some("low64"),
            trace_id: present.hex(),
            span: Some(("GET /orders", hex(&present.root))),
        },
    );
    expected.insert(
        "dd_early",
        Expect {
            outcome: "matched_span",
            reason: Some("window_closed"),
            id_match: Some("low64"),
            trace_id: later.hex(),
            span: Some(("SELECT orders", hex(&later.child))),
        },
    );
    expected.insert(
        "dd_ambiguous",
        Expect {
            outcome: "unmatched",
            reason: Some("ambiguous_id"),
            id_match: None,
            trace_id: twin_a.padded_hex(),
            span: None,
        },
    );
    expected.insert(
        "otel_full",
        Expect {
            outcome: "matched_span",
            reason: None,
            id_match: Some("full"),
            trace_id: present.hex(),
            span: Some(("SELECT orders", hex(&present.child))),
        },
    );
    for (_, line) in &logs {
        produce(&p, &t.logs, None, line.as_bytes()).await;
    }
    assert_eq!(twin_a.padded_hex(), twin_b.padded_hex());
    assert_ne!(twin_a.hex(), twin_b.hex());

    let mut config = t.config();
    config.inputs.repartition = tracejoin::sources::repartition::RepartitionPolicy::Always;
    let running = start(config);
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce(&p, &t.spans, Some(&later.hex()), &later.spans(now)).await;

    let records = tokio::task::spawn_blocking({
        let out = t.out.clone();
        let n = expected.len();
        move || wait_for_outputs(&out, n, Duration::from_secs(90))
    })
    .await
    .unwrap();
    running.stop().await;
    let got = by_log_id(&records);
    assert_eq!(
        got.len(),
        expected.len(),
        "logs out: {:?}",
        got.keys().collect::<Vec<_>>()
    );
    for (id, want) in &expected {
        let versions = got
            .get(*id)
            .unwrap_or_else(|| panic!("log {id} never came out"));
        assert_eq!(
            versions.len(),
            1,
            "log {id} came out {} times",
            versions.len()
        );
        let v = &versions[0];
        assert_eq!(v["join"]["outcome"], want.outcome, "log {id}: {v}");
        if let Some(reason) = want.reason {
            assert_eq!(v["join"]["reason"], reason, "log {id}: {v}");
        }
        assert_eq!(
            v["join"]["id_match"].as_str(),
            want.id_match,
            "log {id}: {v}"
        );
        assert_eq!(v["trace_id"], want.trace_id.as_str(), "log {id}: {v}");
        match &want.span {
            Some((name, span_id)) => {
                assert_eq!(v["span"]["name"], *name, "log {id}: {v}");
                assert_eq!(v["span"]["span_id"], span_id.as_str(), "log {id}: {v}");
                assert_eq!(v["trace"]["root_operation"], "GET /orders", "log {id}: {v}");
                assert_eq!(v["trace"]["root_service"], "web", "log {id}: {v}");
                assert_eq!(v["trace"]["span_count"], 2, "log {id}: {v}");
            }
            None => assert!(
                v.get("span").is_none() && v.get("trace").is_none(),
                "log {id}: {v}"
            ),
        }
    }
    // The Kafka output is keyed by the trace id it carries: the full one once rewritten.
    for r in &records {
        let v = r.json();
        assert_eq!(
            r.key.as_deref(),
            v["trace_id"].as_str().map(str::as_bytes),
            "{v}"
        );
    }
}
