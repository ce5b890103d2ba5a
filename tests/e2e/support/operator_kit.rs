//! The operator's kit as data: its root, the alert rules and the dashboards, parsed. Shared by
//! the kit's file checks (`tests/kit.rs`) and its checks against a running exporter
//! (`tests/e2e/kit.rs`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root, where the kit's files are.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file as JSON values.
pub fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml")
}

/// The Prometheus alert rules file.
pub fn rules() -> Value {
    yaml(&root().join("alerts/kube-event-exporter.rules.yml"))
}

/// Every rule of every group.
pub fn all_rules(rules: &Value) -> Vec<Value> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The Grafana dashboards: file name and JSON.
pub fn dashboards() -> Vec<(String, Value)> {
    ["kubernetes-events.json", "kube-event-exporter.json"]
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(root().join("dashboards").join(f)).expect("read dashboard");
            (
                (*f).to_owned(),
                serde_json::from_str(&text).expect("dashboard JSON"),
            )
        })
        .collect()
}

/// Whether a query returns data only when the exporter runs with `--metrics-workload-labels`:
/// it selects series that have a workload.
pub fn needs_workload_labels(expr: &str) -> bool {
    expr.contains(r#"workload!="""#)
}
