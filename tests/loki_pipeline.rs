//! Kafka → tracejoin → a real server of Loki's push protocol (VictoriaLogs), through the whole
//! pipeline: every log arrives with its labels and span context in structured metadata, and a
//! log's offset is committed only after both sinks (Kafka and Loki) have it.

mod common;

use common::logsql::LogsQl;
use common::services::victorialogs_url;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enriched_logs_reach_loki_with_labels_and_span_metadata() {
    let t = Topics::create("", 2).await;
    let (spans, logs) = (&t.spans, &t.logs);
    let mut cfg = t.config();
    let loki_yaml = format!(
        "endpoint: {}\npath: /insert/loki/api/v1/push\nbatch: {{max_wait: 200ms}}\n",
        victorialogs_url()
    );
    cfg.outputs.loki = Some(serde_yaml::from_str(&loki_yaml).expect("loki config"));
    let group = cfg.kafka.group_id.clone();
    let now = now_nanos();
    let p = producer();
    let mut expected = std::collections::HashMap::new();
    for n in 0..20 {
        let (records, expects) = common::load::trace_records(n, now);
        for (is_span, key, payload) in records {
            produce(&p, if is_span { spans } else { logs }, Some(&key), &payload).await;
        }
        expected.extend(expects);
    }
    let running = start(cfg);
    let trace_ids: Vec<String> = consume(logs, 40, Duration::from_secs(30))
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap()).unwrap())
        .collect();
    let query = format!(
        "_stream:{{outcome=\"matched_span\"}} AND ({})",
        trace_ids
            .iter()
            .map(|t| format!("trace_id:\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let got = LogsQl::new(&victorialogs_url())
        .wait_rows(&query, None, expected.len(), Duration::from_secs(60))
        .await
        .into_iter()
        .map(serde_json::Value::Object)
        .collect::<Vec<_>>();
    // Let the commit after Loki's acknowledgement happen, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;
    assert_eq!(got.len(), expected.len(), "rows in VictoriaLogs: {got:?}");
    for row in &got {
        // VictoriaLogs unpacks a JSON line into fields (the message lands in `message`).
        let msg = row["message"]
            .as_str()
            .or(row["_msg"].as_str())
            .unwrap_or_default();
        let id = log_id(msg).unwrap_or_else(|| panic!("no log_id in {row}"));
        let want = &expected[&id];
        assert_eq!(row["span_name"], want.span_name.as_str(), "{row}");
        // Labels (the stream), not fields of the JSON line, which VictoriaLogs also unpacks.
        assert_eq!(
            row["_stream"], r#"{level="info",outcome="matched_span",service="shop"}"#,
            "{row}"
        );
        assert!(
            row["trace_id"]
                .as_str()
                .is_some_and(|t| trace_ids.contains(&t.to_string())),
            "{row}"
        );
        assert_eq!(
            row["root_operation"]
                .as_str()
                .map(|s| s.starts_with("GET /item/")),
            Some(true),
            "{row}"
        );
    }
    assert_eq!(
        committed(&group, logs, 2),
        end_offsets(logs, 2),
        "both sinks acknowledged: all committed"
    );
    let exposition = tracejoin::telemetry::metrics().render();
    assert!(
        exposition
            .lines()
            .any(|l| l.starts_with("tracejoin_loki_entries_total{result=\"delivered\"}")),
        "loki metrics missing"
    );
}
