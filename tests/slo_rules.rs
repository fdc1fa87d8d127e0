//! The Prometheus rules shipped in `rules/alerts/` are valid (`promtool check rules`), their unit
//! tests pass (`promtool test rules rules/alerts/tests/*.yaml`), and they read only series that
//! tracejoin's SLO engine exports (or that the rules themselves record).
//!
//! Needs `promtool` on the PATH (Debian's `prometheus` package; `scripts/install-deps.sh`). A
//! missing promtool fails the test: the shipped alerts would go unchecked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tracejoin::derive::slo::{SloConfig, SloEngine};
use tracejoin::model::{AttrValue, SpanId, SpanKind, SpanSummary, StatusCode, TraceId};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    v.sort();
    v
}

fn promtool(args: &[&str], files: &[PathBuf]) {
    let out = Command::new("promtool")
        .args(args)
        .args(files)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package \
                 (scripts/install-deps.sh) so that promtool is on the PATH"
            )
        });
    assert!(
        out.status.success(),
        "promtool {} exited {}:\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_shipped_rules() {
    let files = yaml_files(&root().join("rules/alerts"));
    assert!(!files.is_empty(), "rules/alerts ships no rule file");
    promtool(&["check", "rules"], &files);
}

#[test]
fn promtool_unit_tests_of_the_shipped_rules_pass() {
    let files = yaml_files(&root().join("rules/alerts/tests"));
    assert!(
        files.len() >= yaml_files(&root().join("rules/alerts")).len(),
        "every rule file has a test file"
    );
    promtool(&["test", "rules"], &files);
}

/// The engine's exposition after one bad event is finalised, for the shipped SLO file.
fn exposition() -> String {
    let cfg = SloConfig::load(root().join("rules/slo.yaml")).expect("rules/slo.yaml");
    let mut engine = SloEngine::new(&cfg, Duration::from_secs(3)).unwrap();
    let end = 1_700_000_000_000_000_000i64;
    engine.observe_spans(&[SpanSummary {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([7; 8]),
        parent_span_id: None,
        service: "shop".into(),
        name: "POST /api/checkout".into(),
        kind: SpanKind::Server,
        status: StatusCode::Error,
        status_message: Some("boom".into()),
        start_unix_nanos: end - 1_000_000_000,
        end_unix_nanos: end,
        exception_type: None,
        attributes: vec![("http.response.status_code".into(), AttrValue::Int(500))],
    }]);
    engine.advance(end + 10_000_000_000, &mut Vec::new());
    let mut buf = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &engine.registry().gather(),
        &mut buf,
    )
    .unwrap();
    String::from_utf8(buf).unwrap()
}

fn names_in(text: &str, keep: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            cur.push(c);
        } else {
            if keep(&cur) {
                out.insert(cur.clone());
            }
            cur.clear();
        }
    }
    out
}

#[test]
fn the_rules_read_only_series_tracejoin_exports() {
    let exported = names_in(&exposition(), |n| {
        n.starts_with("slo:") || n.starts_with("tracejoin_slo") || n.starts_with("sloth_")
    });
    let mut read = BTreeSet::new();
    let mut recorded = BTreeSet::new();
    for f in yaml_files(&root().join("rules/alerts")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for g in doc["groups"].as_sequence().unwrap() {
            for r in g["rules"].as_sequence().unwrap() {
                if let Some(name) = r["record"].as_str() {
                    recorded.insert(name.to_string());
                }
                let mut exprs = vec![r["expr"].as_str().unwrap().to_string()];
                if let Some(a) = r["annotations"].as_mapping() {
                    exprs.extend(a.values().filter_map(|v| v.as_str()).map(String::from));
                }
                for e in exprs {
                    read.extend(names_in(&e, |n| {
                        n.starts_with("slo:")
                            || n.starts_with("tracejoin_slo")
                            || n.starts_with("tracejoin:")
                    }));
                }
            }
        }
    }
    assert!(!read.is_empty());
    let missing: Vec<_> = read
        .iter()
        .filter(|n| !exported.contains(*n) && !recorded.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "rules read series nobody exports: {missing:?}\nexported: {exported:?}"
    );
}

/// `promtool check metrics` parses the exposition, and its only lint is the one the Sloth names
/// cannot avoid: `slo:…` names hold colons, which Prometheus reserves for recording rules (they
/// are Sloth's recording-rule names; dashboards built on Sloth read them).
#[test]
fn promtool_accepts_the_exposition_but_for_sloths_colons() {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool (install Debian's `prometheus` package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 3 is "lint problems"; a parse error is 1.
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "promtool check metrics exited {}: {msg}",
        out.status
    );
    for line in msg.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("slo:") && line.ends_with("metric names should not contain ':'"),
            "unexpected lint: {line}\n{msg}"
        );
    }
}

/// The alerts on tracejoin's own health (`rules/alerts/tracejoin.yaml`) read only self-metrics
/// that `src/telemetry/mod.rs` defines: a renamed metric breaks this test, not the alert in
/// production (where a missing series is silence, not an error).
#[test]
fn the_health_alerts_read_only_metrics_tracejoin_defines() {
    let telemetry = std::fs::read_to_string(root().join("src/telemetry/mod.rs")).unwrap();
    let text = std::fs::read_to_string(root().join("rules/alerts/tracejoin.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut read = BTreeSet::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            read.extend(names_in(r["expr"].as_str().unwrap(), |n| {
                n.starts_with("tracejoin_")
            }));
        }
    }
    assert!(read.len() >= 6, "the health alerts read {read:?}");
    let missing: Vec<_> = read
        .iter()
        .filter(|n| !telemetry.contains(&format!("\"{n}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "alerts read metrics tracejoin does not define: {missing:?}"
    );
}
