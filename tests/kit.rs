//! The operator's kit as files, no exporter running: the alert rules pass promtool and every
//! alert has a firing and a quiet test case and a runbook section, the PrometheusRule holds
//! exactly the rules file, the dashboards are valid and use the datasource input, and the
//! Dockerfile builds the binary the README documents. What needs the running exporter (every
//! query on real data, the deployment against the binary) is in `tests/e2e/kit.rs`.

#[path = "e2e/support/operator_kit.rs"]
mod operator_kit;

use std::{collections::HashSet, process::Command};

use serde_json::Value;

use operator_kit::{all_rules, dashboards, needs_workload_labels, root, rules, yaml};

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("alerts"))
        .output()
        .expect("promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_firing_and_a_quiet_case() {
    let (ok, out) = promtool(&["check", "rules", "kube-event-exporter.rules.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "kube-event-exporter.rules.test.yml"]);
    assert!(ok, "{out}");

    let tests = yaml(&root().join("alerts/kube-event-exporter.rules.test.yml"));
    let mut firing = HashSet::new();
    let mut quiet = HashSet::new();
    for t in tests["tests"].as_array().expect("tests") {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let runbook = std::fs::read_to_string(root().join("alerts/runbook.md")).expect("runbook");
    for rule in all_rules(&rules()) {
        let name = rule["alert"].as_str().expect("alert name");
        assert!(firing.contains(name), "{name} has no firing test case");
        assert!(quiet.contains(name), "{name} has no quiet test case");
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "{name} lacks {key}"
            );
        }
        let anchor = rule["annotations"]["runbook_url"]
            .as_str()
            .expect("url")
            .rsplit_once('#')
            .expect("anchor")
            .1
            .to_owned();
        assert_eq!(anchor, name.to_lowercase());
        assert!(
            runbook.contains(&format!("## {name}\n")),
            "runbook has no section for {name}"
        );
        for part in [
            "**Meaning.**",
            "**Impact.**",
            "**Diagnosis.**",
            "**Mitigation.**",
        ] {
            let section = runbook
                .split(&format!("## {name}\n"))
                .nth(1)
                .expect("section")
                .split("\n## ")
                .next()
                .expect("body");
            assert!(
                section.contains(part),
                "runbook section {name} lacks {part}"
            );
        }
    }
}

#[test]
fn the_prometheusrule_holds_exactly_the_rules_file() {
    let pr = yaml(&root().join("deploy/prometheusrule/prometheusrule.yaml"));
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        pr["spec"],
        rules(),
        "deploy/prometheusrule/prometheusrule.yaml is out of date with alerts/"
    );
}

/// Every `"datasource"` object anywhere in a dashboard.
fn datasources(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "datasource" {
                    out.push(v.clone());
                }
                datasources(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| datasources(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_valid_and_use_the_datasource_input() {
    for (file, d) in dashboards() {
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: current schema"
        );
        assert_eq!(d["__inputs"][0]["type"], "datasource", "{file}");
        let input = format!(
            "${{{}}}",
            d["__inputs"][0]["name"].as_str().expect("input name")
        );
        let ds_var = &d["templating"]["list"][0];
        assert_eq!(
            (ds_var["type"].as_str(), ds_var["current"]["value"].as_str()),
            (Some("datasource"), Some(input.as_str())),
            "{file}"
        );
        let mut ids = HashSet::new();
        for p in d["panels"].as_array().expect("panels") {
            assert!(
                ids.insert(p["id"].as_u64().expect("id")),
                "{file}: duplicate panel id {}",
                p["id"]
            );
        }
        let mut refs = Vec::new();
        datasources(&d["panels"], &mut refs);
        datasources(
            &d["templating"]["list"].as_array().expect("vars")[1..]
                .to_vec()
                .into(),
            &mut refs,
        );
        for r in refs {
            assert_eq!(
                r["uid"], "${datasource}",
                "{file}: a datasource reference bypasses the input: {r}"
            );
        }
        for name in ["namespace", "kind", "reason"] {
            if file == "kubernetes-events.json" {
                assert!(
                    d["templating"]["list"]
                        .as_array()
                        .expect("vars")
                        .iter()
                        .any(|v| v["name"] == name),
                    "{file}: no ${name}"
                );
            }
        }
    }
}

/// Every panel's query expressions, with the panel.
fn panel_queries(d: &Value) -> Vec<(&Value, &str)> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (p, t["expr"].as_str().expect("expr")))
        })
        .collect()
}

#[test]
fn every_query_of_kube_events_total_takes_the_max_over_replicas_first() {
    let mut queries: Vec<(String, String)> = Vec::new();
    for (file, d) in dashboards() {
        for (p, expr) in panel_queries(&d) {
            queries.push((format!("{file}: {}", p["title"]), expr.to_owned()));
        }
    }
    for rule in all_rules(&rules()) {
        queries.push((
            format!("rule {}", rule["alert"]),
            rule["expr"].as_str().expect("expr").to_owned(),
        ));
    }
    for (name, expr) in queries {
        if expr.contains("kube_events_total") {
            assert!(
                expr.contains("max without (instance, pod) ("),
                "{name}: two replicas would double {expr}"
            );
        }
    }
}

#[test]
fn the_service_row_shows_restarts_oom_kills_and_stuck_rollouts_by_namespace_and_workload() {
    let dashboards = dashboards();
    let events = &dashboards
        .iter()
        .find(|(f, _)| f == "kubernetes-events.json")
        .expect("kubernetes-events.json")
        .1;
    let panels = events["panels"].as_array().expect("panels");
    let start = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "What happened to my service?")
        .expect("a row \"What happened to my service?\"");
    let row: Vec<&Value> = panels[start + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .collect();
    let query = |p: &Value| {
        p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["expr"].as_str().expect("expr").to_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for reason in ["ContainerRestarted", "ContainerOOMKilled", "RolloutStuck"] {
        assert!(
            row.iter().any(|p| query(p).contains(reason)),
            "no panel of the row counts {reason}"
        );
    }
    assert!(
        row.iter().any(|p| needs_workload_labels(&query(p))),
        "no panel of the row shows workloads"
    );
    for p in &row {
        let q = query(p);
        assert!(
            q.contains(r#"namespace=~"$namespace""#),
            "{}: ignores $namespace",
            p["title"]
        );
        if q.contains("workload") {
            assert!(
                q.contains(r#"workload=~"$workload""#)
                    && q.contains(r#"workload_kind=~"$workload_kind""#),
                "{}: ignores $workload or $workload_kind",
                p["title"]
            );
            assert!(
                p["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("--metrics-workload-labels")),
                "{}: does not say that workloads need --metrics-workload-labels",
                p["title"]
            );
        }
    }
    let variables: Vec<&str> = events["templating"]["list"]
        .as_array()
        .expect("vars")
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    for name in ["workload_kind", "workload"] {
        assert!(variables.contains(&name), "no ${name}");
    }

    let exporter = &dashboards
        .iter()
        .find(|(f, _)| f == "kube-event-exporter.json")
        .expect("kube-event-exporter.json")
        .1;
    assert!(
        panel_queries(exporter)
            .iter()
            .any(|(_, e)| e.contains("kube_event_exporter_watch_forbidden")),
        "the exporter's dashboard does not show refused watches"
    );
}

#[test]
fn the_dockerfile_builds_the_binary_the_readme_documents() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let build = "cargo build --release --locked --bin kube-event-exporter";
    assert!(
        dockerfile.contains(&format!("RUN {build}")),
        "Dockerfile builds with `{build}`"
    );
    assert!(readme.contains(build), "README documents `{build}`");
    assert!(dockerfile.contains("USER 65532"), "non-root");
}
