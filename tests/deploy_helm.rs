//! The Helm chart (`deploy/helm/tracejoin`) checked by the tools that will consume it: `helm lint
//! --strict`, `helm template` with the default values and with `ci/full-values.yaml` (every
//! optional object on), and every rendered object decoded strictly by the Kubernetes API types of
//! its kind (`deploy/helm/check`: client-go's scheme, prometheus-operator, KEDA; unknown fields
//! rejected). Then what the types cannot see: the rendered config loads and validates as
//! tracejoin's own, the pod outlives the drain, the probes and port are tracejoin's, the
//! PrometheusRule carries exactly the rule files of `rules/alerts/`.
//!
//! Needs helm and the checker, built from the Go module proxy by `scripts/helm.sh install`
//! (`scripts/test.sh` runs it); their paths from `TRACEJOIN_HELM` / `TRACEJOIN_K8S_CHECK`, else
//! from `scripts/helm.sh bin|checker`. Missing tools fail the test: the chart would go unchecked.

use serde::Deserialize;
use serde_yaml::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tracejoin::config::Config;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn chart() -> PathBuf {
    root().join("deploy/helm/tracejoin")
}

/// A tool's path: the environment variable, else what `scripts/helm.sh <arg>` prints.
fn tool(var: &str, arg: &str) -> String {
    if let Ok(p) = std::env::var(var) {
        return p;
    }
    let out = Command::new(root().join("scripts/helm.sh"))
        .arg(arg)
        .output()
        .expect("run scripts/helm.sh");
    assert!(
        out.status.success(),
        "{var} is unset and scripts/helm.sh {arg} found nothing: run scripts/helm.sh install\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(tool("TRACEJOIN_HELM", "bin"))
        .args(args)
        .current_dir(chart())
        .output()
        .expect("run helm")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} exited {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` with these extra arguments.
fn render(extra: &[&str]) -> String {
    let mut args = vec!["template", "tj", "."];
    args.extend_from_slice(extra);
    ok(helm(&args), &format!("helm {}", args.join(" ")))
}

/// Runs the strict checker on rendered objects; returns its report.
fn check_strictly(rendered: &str, require: &str) -> String {
    let mut child = Command::new(tool("TRACEJOIN_K8S_CHECK", "checker"))
        .args(["-require", require])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the k8s checker");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rendered.as_bytes())
        .unwrap();
    ok(child.wait_with_output().unwrap(), "tracejoin-k8s-check")
}

fn objects(rendered: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn object<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

const ALWAYS: &str = "Deployment,ConfigMap,Service,PodDisruptionBudget,ServiceAccount";
const FULL: &str = "Deployment,ConfigMap,Service,PodDisruptionBudget,ServiceAccount,\
                    ServiceMonitor,PodMonitor,PrometheusRule,ScaledObject";

#[test]
fn helm_lint_passes_strictly_with_default_and_full_values() {
    ok(helm(&["lint", "--strict", "."]), "helm lint --strict");
    ok(
        helm(&["lint", "--strict", ".", "-f", "ci/full-values.yaml"]),
        "helm lint --strict -f ci/full-values.yaml",
    );
}

#[test]
fn every_rendered_object_decodes_strictly_into_its_api_type() {
    let report = check_strictly(&render(&[]), ALWAYS);
    assert!(report.contains("5 objects decoded strictly"), "{report}");
    let report = check_strictly(&render(&["-f", "ci/full-values.yaml"]), FULL);
    assert!(report.contains("9 objects decoded strictly"), "{report}");
}

#[test]
fn the_checker_rejects_an_unknown_field() {
    // The checker must be able to fail: a misspelt field of the Deployment and of the
    // ScaledObject (a KEDA type) are refused.
    let full = render(&["-f", "ci/full-values.yaml"]);
    for (from, to) in [
        (
            "terminationGracePeriodSeconds:",
            "terminationGracePeriodSecond:",
        ),
        ("  maxReplicaCount:", "  maxReplicas:"),
        ("  podMetricsEndpoints:", "  podMetricsEndpoint:"),
    ] {
        assert!(full.contains(from));
        let mut child = Command::new(tool("TRACEJOIN_K8S_CHECK", "checker"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(full.replacen(from, to, 1).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{to} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown field"), "{err}");
    }
}

/// Where the chart mounts secrets; the test puts stand-in files under a temporary directory.
const SECRETS: &str = "/var/run/secrets/tracejoin/";

/// The rendered config (and SLO file) loaded and validated by tracejoin's own config code, with
/// every file it names under the secrets' mount made (validation reads them).
fn rendered_config(objs: &[Value]) -> (Config, tempfile::TempDir) {
    let data = &object(objs, "ConfigMap")["data"];
    let dir = tempfile::tempdir().unwrap();
    let mut text = data["tracejoin.yaml"].as_str().unwrap().to_string();
    let secrets = dir.path().join("secrets");
    for (i, _) in text.match_indices(SECRETS) {
        let rest = &text[i + SECRETS.len()..];
        let rel = &rest[..rest
            .find(|c: char| c.is_whitespace() || c == '}' || c == ',' || c == '"')
            .unwrap_or(rest.len())];
        let file = secrets.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "stand-in secret\n").unwrap();
    }
    text = text.replace(SECRETS, &format!("{}/", secrets.display()));
    if let Some(slo) = data["slo.yaml"].as_str() {
        assert!(text.contains("slo: /etc/tracejoin/slo.yaml"), "{text}");
        text = text.replace("/etc/tracejoin/slo.yaml", "slo.yaml");
        std::fs::write(dir.path().join("slo.yaml"), slo).unwrap();
        tracejoin::derive::slo::SloConfig::load(dir.path().join("slo.yaml"))
            .expect("the chart's sloRules load");
    }
    let path = dir.path().join("tracejoin.yaml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("the rendered config: {e}"));
    (config, dir)
}

fn pod_spec(objs: &[Value]) -> &Value {
    &object(objs, "Deployment")["spec"]["template"]["spec"]
}

#[test]
fn the_rendered_config_is_a_valid_tracejoin_config_and_the_pod_fits_it() {
    for extra in [&[][..], &["-f", "ci/full-values.yaml"][..]] {
        let objs = objects(&render(extra));
        let (config, _dir) = rendered_config(&objs);
        let spec = pod_spec(&objs);
        let c = &spec["containers"][0];
        assert_eq!(
            c["args"],
            serde_yaml::from_str::<Value>("[run, --config, /etc/tracejoin/tracejoin.yaml]")
                .unwrap()
        );
        // Kubernetes' SIGKILL comes after the drain (and the preStop pause) can finish.
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        let pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            grace > config.shutdown.timeout.as_secs() + pause,
            "grace {grace} s, drain {:?}, pause {pause} s ({extra:?})",
            config.shutdown.timeout
        );
        // The probes ask tracejoin's endpoints on the port it listens on.
        assert_eq!(
            c["ports"][0]["containerPort"].as_u64(),
            Some(u64::from(config.metrics.listen.port()))
        );
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
        // Non-root on a read-only root filesystem, the config at its fixed path.
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        assert!(c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/tracejoin"));
        assert!(c["resources"]["limits"]["memory"].is_string());
    }
}

#[test]
fn secrets_are_mounted_where_the_config_reads_them() {
    let objs = objects(&render(&["-f", "ci/full-values.yaml"]));
    rendered_config(&objs);
    let text = object(&objs, "ConfigMap")["data"]["tracejoin.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = pod_spec(&objs);
    let mounts = spec["containers"][0]["volumeMounts"].as_sequence().unwrap();
    for (secret, file) in [
        (
            "tracejoin-kafka",
            "/var/run/secrets/tracejoin/kafka/password",
        ),
        ("tracejoin-loki", "/var/run/secrets/tracejoin/loki/token"),
    ] {
        assert!(
            text.contains(&format!("file: {file}")),
            "the config reads no {file}: {text}"
        );
        let volume = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["secret"]["secretName"] == secret)
            .unwrap_or_else(|| panic!("no volume of Secret {secret}"));
        let mount = mounts.iter().find(|m| m["name"] == volume["name"]).unwrap();
        let dir = mount["mountPath"].as_str().unwrap();
        assert!(
            file.starts_with(&format!("{dir}/")),
            "{file} not under {dir}"
        );
        assert_eq!(mount["readOnly"], true);
    }
}

#[test]
fn a_grace_period_shorter_than_the_drain_does_not_render() {
    let out = helm(&[
        "template",
        "tj",
        ".",
        "--set",
        "terminationGracePeriodSeconds=30",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must exceed config.shutdown.timeout (30 s)"),
        "{err}"
    );
    // 2m drain, 125 s grace, 5 s pause: 125 is not above 125.
    let out = helm(&[
        "template",
        "tj",
        ".",
        "--set",
        "config.shutdown.timeout=2m",
        "--set",
        "terminationGracePeriodSeconds=125",
    ]);
    assert!(!out.status.success());
    render(&[
        "--set",
        "config.shutdown.timeout=2m",
        "--set",
        "terminationGracePeriodSeconds=126",
    ]);
}

#[test]
fn keda_owns_the_replicas_and_scales_the_group_on_lag() {
    let objs = objects(&render(&[]));
    assert_eq!(object(&objs, "Deployment")["spec"]["replicas"], 2);
    let objs = objects(&render(&["-f", "ci/full-values.yaml"]));
    assert!(object(&objs, "Deployment")["spec"]["replicas"].is_null());
    let so = &object(&objs, "ScaledObject")["spec"];
    let (config, _dir) = rendered_config(&objs);
    assert_eq!(
        so["scaleTargetRef"]["name"],
        object(&objs, "Deployment")["metadata"]["name"]
    );
    let trigger = &so["triggers"][0];
    assert_eq!(trigger["type"], "kafka");
    assert_eq!(
        trigger["metadata"]["consumerGroup"],
        config.kafka.group_id.as_str()
    );
    assert_eq!(
        trigger["metadata"]["bootstrapServers"],
        config.kafka.bootstrap_servers.as_str()
    );
}

#[test]
fn the_prometheus_rule_carries_the_shipped_rule_files() {
    // The chart's copies are the files of rules/alerts/, byte for byte.
    for f in ["tracejoin", "slo-burn-rate", "slo-recording"] {
        let shipped =
            std::fs::read_to_string(root().join(format!("rules/alerts/{f}.yaml"))).unwrap();
        let copy = std::fs::read_to_string(chart().join(format!("files/alerts/{f}.yaml"))).unwrap();
        assert!(
            shipped == copy,
            "deploy/helm/tracejoin/files/alerts/{f}.yaml differs from rules/alerts/{f}.yaml: \
             cp rules/alerts/{f}.yaml deploy/helm/tracejoin/files/alerts/"
        );
    }
    let objs = objects(&render(&["-f", "ci/full-values.yaml"]));
    let groups = object(&objs, "PrometheusRule")["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .clone();
    let mut expected = Vec::new();
    for f in ["tracejoin", "slo-burn-rate", "slo-recording"] {
        let text = std::fs::read_to_string(root().join(format!("rules/alerts/{f}.yaml"))).unwrap();
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        expected.extend(doc["groups"].as_sequence().unwrap().iter().cloned());
    }
    assert_eq!(groups, expected);
}
