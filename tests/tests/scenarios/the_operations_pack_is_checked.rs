//! The operations pack (`ops/`): Prometheus alerting rules checked and unit-tested with
//! `promtool` (Debian's `prometheus`, which `.ci/run` installs), and every metric the
//! rules and the Grafana dashboard use is one the code exports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `stockade_*` metric named in `text`, without the histogram suffixes.
fn metrics_in(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("stockade_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_owned();
        if !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// The Rust sources of the crates that export metrics.
fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn the_rules_and_the_dashboard_use_only_exported_metrics() {
    let mut code = String::new();
    sources(&root().join("crates"), &mut code);
    sources(&root().join("projections"), &mut code);
    let rules = std::fs::read_to_string(root().join("ops/prometheus/stockade-rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root().join("ops/grafana/stockade.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(!parsed["panels"].as_array().unwrap().is_empty());
    for name in metrics_in(&rules).into_iter().chain(metrics_in(&dashboard)) {
        assert!(
            code.contains(&format!("\"{name}\"")),
            "{name} is used by ops/ but no code exports it"
        );
    }
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing: CI must install prometheus (.ci/run does)"
        );
        println!(
            "SKIPPED promtool_checks_and_tests_the_rules: promtool not found (apt-get install prometheus)"
        );
        return;
    }
    let dir = root().join("ops/prometheus");
    for args in [
        ["check", "rules", "stockade-rules.yml"],
        ["test", "rules", "stockade-rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
