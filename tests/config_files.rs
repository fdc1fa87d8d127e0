//! Every config and rules file the project ships parses and validates: a shipped example that
//! does not load is a bug users meet first.

use std::path::Path;
use tracejoin::config::Config;
use tracejoin::decode::rules::ExtractRules;

fn files(dir: &str, ext: &[&str]) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| ext.iter().any(|e| x == *e)) {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn shipped_tracejoin_configs_load_and_validate() {
    let configs: Vec<_> = files("deploy", &["yaml", "yml"])
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tracejoin"))
        })
        // The Helm chart's files are templates and rule copies; its rendered config is loaded
        // and validated by tests/deploy_helm.rs.
        .filter(|p| !p.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm")))
        .collect();
    assert!(!configs.is_empty(), "deploy/ ships no tracejoin config");
    for p in configs {
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Some(rules) = &c.rules.extract {
            ExtractRules::load(rules).unwrap().compile().unwrap();
        }
    }
}

#[test]
fn shipped_extraction_rules_compile() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/extract.yaml");
    ExtractRules::load(&p).unwrap().compile().unwrap();
}

/// One documented default bind address: the code's default, `deploy/tracejoin.yaml` ("every key
/// with its default") and the README's config table say the same.
#[test]
fn the_metrics_listen_default_is_the_same_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let default = tracejoin::config::MetricsConfig::default().listen;
    let shipped = Config::load(&root.join("deploy/tracejoin.yaml")).unwrap();
    assert_eq!(shipped.metrics.listen, default, "deploy/tracejoin.yaml");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let row = format!("| `metrics.listen` | `{default}` |");
    assert!(readme.contains(&row), "README's config table lacks {row}");
}
