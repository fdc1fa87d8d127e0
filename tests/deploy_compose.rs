//! The whole-stack compose file (`deploy/compose/`) checked by the tools that consume its parts:
//! compose-spec's own loader (compose-go, what Docker Compose uses: schema, model, consistency;
//! plus every bind-mount source and build context on disk), the Collector's `validate` on its
//! Collector config (the Collector `scripts/collector.sh` builds, which has the OTLP receiver and
//! the Kafka exporter), `promtool check config` on its Prometheus config, and tracejoin's own
//! loader on its tracejoin config (`tests/config_files.rs`, as for every `deploy/tracejoin*.yaml`).
//!
//! Needs the checker (`scripts/compose.sh install`; `TRACEJOIN_COMPOSE_CHECK` or
//! `scripts/compose.sh checker`), the Collector (`scripts/collector.sh install`) and `promtool`.

mod common;

use common::repo;
use serde_yaml::Value;
use std::path::PathBuf;
use std::process::Command;
use tracejoin::config::Config;

fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

fn checker() -> String {
    if let Ok(p) = std::env::var("TRACEJOIN_COMPOSE_CHECK") {
        return p;
    }
    let out = Command::new(repo().join("scripts/compose.sh"))
        .arg("checker")
        .output()
        .expect("run scripts/compose.sh");
    assert!(
        out.status.success(),
        "TRACEJOIN_COMPOSE_CHECK is unset and scripts/compose.sh checker found nothing: run \
         scripts/compose.sh install\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn check(file: &std::path::Path) -> std::process::Output {
    Command::new(checker())
        .arg(file)
        .output()
        .expect("run the compose checker")
}

fn compose() -> Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(compose_dir().join("docker-compose.yaml")).unwrap(),
    )
    .unwrap()
}

#[test]
fn compose_specs_loader_accepts_the_stack() {
    let out = check(&compose_dir().join("docker-compose.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in [
        "kafka",
        "otel-collector",
        "tracejoin",
        "prometheus",
        "loki",
        "grafana",
    ] {
        assert!(stdout.contains(&format!("ok service {s} ")), "{stdout}");
    }
}

/// A copy of the compose file beside it (so its relative paths still resolve), removed on drop.
struct Variant(PathBuf);

impl Variant {
    fn new(from: &str, to: &str) -> Variant {
        let text = std::fs::read_to_string(compose_dir().join("docker-compose.yaml")).unwrap();
        assert!(text.contains(from), "{from}");
        let p = compose_dir().join(format!(".variant-{}.yaml", std::process::id()));
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        Variant(p)
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_checker_rejects_a_broken_stack() {
    for (from, to, want) in [
        // A key the compose spec does not have.
        (
            "stop_grace_period:",
            "stop_grace_perod:",
            "stop_grace_perod",
        ),
        // A dependency on a service that does not exist.
        (
            "      - prometheus\n",
            "      - prometheus2\n",
            "prometheus2",
        ),
        // A bind mount whose source is missing.
        ("./prometheus.yml:", "./prometheus.yaml:", "bind mount"),
    ] {
        let v = Variant::new(from, to);
        let out = check(&v.0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to}: accepted");
        assert!(err.contains(want), "{to}: {err}");
    }
}

#[test]
fn the_collector_validates_its_config() {
    let bin = common::services::collector_bin();
    let file = compose_dir().join("otel-collector.yaml");
    let out = Command::new(&bin)
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .expect("run the Collector");
    assert!(
        out.status.success(),
        "otelcol validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It can fail: an exporter setting the Kafka exporter does not have.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &bad,
        text.replace("partition_traces_by_id:", "partition_trace_by_id:"),
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt exporter key passed");
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(compose_dir().join("prometheus.yml"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_stack_is_wired_together() {
    let c = compose();
    let svc = &c["services"];
    // tracejoin reads the compose's config at the image's fixed path, and is given longer than
    // its drain before the kill.
    let config = Config::load(&compose_dir().join("tracejoin.yaml")).unwrap();
    let tj = &svc["tracejoin"];
    assert!(tj["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v.as_str() == Some("./tracejoin.yaml:/etc/tracejoin/tracejoin.yaml:ro")));
    let grace = humantime::parse_duration(tj["stop_grace_period"].as_str().unwrap()).unwrap();
    assert!(grace > config.shutdown.timeout, "{grace:?}");
    assert_eq!(tj["read_only"], true);
    assert_eq!(config.kafka.bootstrap_servers, "kafka:9092");
    assert!(config
        .outputs
        .loki
        .as_ref()
        .is_some_and(|l| l.endpoint == "http://loki:3100"));
    // Prometheus scrapes it on the port it listens on.
    let prom: Value = serde_yaml::from_str(
        &std::fs::read_to_string(compose_dir().join("prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        prom["scrape_configs"][0]["static_configs"][0]["targets"][0],
        format!("tracejoin:{}", config.metrics.listen.port()).as_str()
    );
    // Grafana's dashboard provider reads the folder the dashboards are mounted at.
    let provider: Value = serde_yaml::from_str(
        &std::fs::read_to_string(compose_dir().join("grafana/dashboards.yaml")).unwrap(),
    )
    .unwrap();
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(svc["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v.as_str() == Some(&format!("../grafana:{path}:ro"))));
}
