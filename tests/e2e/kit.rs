//! The operator's kit against the running exporter: every dashboard and rule query evaluated by
//! a real Prometheus that scraped it, and the kustomize deployment checked against the
//! Kubernetes types and the binary's flags and routes. The kit's file-only checks are in
//! `tests/kit.rs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{
    Exporter, POLL, Prometheus,
    operator_kit::{all_rules, dashboards, needs_workload_labels, root, rules},
    wait_for,
};

/// A replay has no Pod watch, so its events have no workloads: here the queries that select
/// workloads must parse and evaluate, nothing more. `tests/e2e/workloads.rs` requires their data
/// from an exporter that watches the fake API server's Pods with `--metrics-workload-labels`.
const WORKLOAD_LABELS: bool = false;

/// What a query must return on the replayed sample.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// At least one series.
    Data,
    /// Data with `--metrics-workload-labels` (see [`WORKLOAD_LABELS`]); else only no error.
    DataWithWorkloadLabels,
    /// No error: alert rules mostly hold no data, the exporter's dashboard needs failures.
    NoError,
}

/// The alert rules that fire on the replayed occurrences (see [`sample`]).
const FIRING_ON_THE_SAMPLE: [&str; 2] = [
    "KubeEventsContainerOOMKilledRepeatedly",
    "KubeEventsRolloutStuck",
];

/// Every PromQL expression of the dashboards (with the template variables filled in) and the
/// alert rules, with what it must return.
pub(crate) fn expressions() -> Vec<(String, String, Want)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .expect("expr")
                    .replace("$namespace", "shop")
                    .replace("$kind", "Pod")
                    .replace("$reason", ".*")
                    .replace("$workload_kind", ".*")
                    .replace("$workload", ".*")
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "1h");
                let name = format!("{file}: {}", p["title"].as_str().unwrap_or_default());
                let want = if file != "kubernetes-events.json" {
                    Want::NoError
                } else if needs_workload_labels(&expr) {
                    Want::DataWithWorkloadLabels
                } else {
                    Want::Data
                };
                out.push((name, expr, want));
            }
        }
        for v in d["templating"]["list"].as_array().expect("vars") {
            if let Some(q) = v["query"]["query"].as_str() {
                // label_values(metric{…}, label) is Grafana's; Prometheus evaluates the selector.
                let selector = q
                    .trim_start_matches("label_values(")
                    .rsplit_once(',')
                    .expect("label_values")
                    .0
                    .replace("$namespace", "shop")
                    .replace("$kind", "Pod")
                    .replace("$workload_kind", ".*");
                out.push((
                    format!("{file}: variable {}", v["name"]),
                    selector,
                    Want::Data,
                ));
            }
        }
    }
    for rule in all_rules(&rules()) {
        let name = rule["alert"].as_str().expect("alert");
        let want = if FIRING_ON_THE_SAMPLE.contains(&name) {
            Want::Data
        } else {
            Want::NoError
        };
        out.push((
            format!("rule {name}"),
            rule["expr"].as_str().expect("expr").to_owned(),
            want,
        ));
    }
    out
}

/// The example morning plus what the exporter derives from object status in `shop`: a
/// container of the Deployment api restarted three times, two of them OOM kills, and a stuck
/// rollout of api. Written as the Events the archive holds for them.
fn sample(dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("examples/events.jsonl")).expect("sample");
    let derived = |reason: &str,
                   kind: &str,
                   name: &str,
                   field_path: &str,
                   message: &str,
                   count: u32| {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{}", reason.to_lowercase()), "namespace": "shop",
                         "uid": format!("kit-{reason}"), "resourceVersion": "99001",
                         "creationTimestamp": "2026-11-29T09:30:00Z"},
            "involvedObject": {"kind": kind, "namespace": "shop", "name": name,
                               "uid": format!("kit-{kind}"), "fieldPath": field_path},
            "reason": reason, "message": message, "type": "Warning",
            "source": {"component": "kube-event-exporter"},
            "firstTimestamp": "2026-11-29T09:30:00Z", "lastTimestamp": "2026-11-29T09:40:00Z",
            "count": count,
        })
    };
    for event in [
        derived(
            "ContainerRestarted",
            "Pod",
            "api-1a3b1799d-kit01",
            "spec.containers{api}",
            "container api restarted (restart 3): exit code 137 (OOMKilled) at 2026-11-29T09:40:00Z",
            3,
        ),
        derived(
            "ContainerOOMKilled",
            "Pod",
            "api-1a3b1799d-kit01",
            "spec.containers{api}",
            "container api was OOM-killed (exit code 137), restart 3",
            2,
        ),
        derived(
            "RolloutStuck",
            "Deployment",
            "api",
            "",
            "rollout of revision 7 exceeded its progress deadline",
            1,
        ),
    ] {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    let path = dir.join("events.jsonl");
    std::fs::write(&path, text).expect("write sample");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_rule_query_runs_on_real_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = sample(dir.path());
    let mut args = vec![
        "--replay",
        sample.to_str().expect("utf-8"),
        "--alertmanager-url",
        "http://127.0.0.1:9",
    ];
    if WORKLOAD_LABELS {
        args.push("--metrics-workload-labels");
    }
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    let prometheus = Prometheus::start(
        &[exporter.addr],
        &[&root().join("alerts/kube-event-exporter.rules.yml")],
    )
    .await;
    // Two scrapes of the counters, so rate() has points to work with.
    wait_for("two scrapes", Duration::from_secs(40), POLL, || async {
        let data = prometheus
            .query("count_over_time(kube_events_total[1m])")
            .await
            .ok()?;
        data["result"]
            .as_array()?
            .iter()
            .any(|r| {
                r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 2.0)
            })
            .then_some(())
    })
    .await;
    let mut failures = Vec::new();
    for (name, expr, want) in expressions() {
        let needs_data =
            want == Want::Data || (want == Want::DataWithWorkloadLabels && WORKLOAD_LABELS);
        match prometheus.query(&expr).await {
            Err(e) => failures.push(format!("{name}: {expr}\n  → {e}")),
            Ok(data) if needs_data && data["result"].as_array().is_none_or(Vec::is_empty) => {
                failures.push(format!("{name}: no data for {expr}"));
            }
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The rules file loaded into Prometheus as is.
    let rules_api = format!("http://{}/api/v1/rules", prometheus.addr);
    let body: Value = crate::support::http()
        .get(&rules_api)
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    let loaded: usize = body["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(loaded, all_rules(&rules()).len());
    // The rules on the derived occurrences fire on them, for shop, as Prometheus evaluates them.
    let alerts_api = format!("http://{}/api/v1/alerts", prometheus.addr);
    wait_for(
        "the alerts on derived occurrences",
        Duration::from_secs(30),
        POLL,
        || async {
            let body: Value = crate::support::http()
                .get(&alerts_api)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let firing: BTreeSet<(String, String)> = body["data"]["alerts"]
                .as_array()?
                .iter()
                .filter(|a| a["state"] == "firing")
                .map(|a| {
                    (
                        a["labels"]["alertname"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        a["labels"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            FIRING_ON_THE_SAMPLE
                .iter()
                .all(|name| firing.contains(&((*name).to_owned(), "shop".to_owned())))
                .then_some(())
        },
    )
    .await;
}

fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(
        &String::from_utf8(out.stdout).expect("utf-8"),
    )
    .expect("yaml documents")
}

/// Deserialises into the Kubernetes type and back: a misspelt or misplaced field is lost on the
/// way and shows up as a difference.
fn round_trips<K: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) {
    let typed: K = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", object["kind"]));
    let back = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(
        &back, object,
        "{} does not survive a round trip through its type",
        object["kind"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_renders_into_valid_objects_that_match_the_binary() {
    use k8s_openapi::api::{
        apps::v1 as apps, core::v1 as core, networking::v1 as net, rbac::v1 as rbac,
    };
    let objects = kustomize("deploy");
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
        .into()
    );
    let by_kind: BTreeMap<&str, &Value> = objects
        .iter()
        .map(|o| (o["kind"].as_str().expect("kind"), o))
        .collect();
    for o in &objects {
        match o["kind"].as_str().expect("kind") {
            "Namespace" => round_trips::<core::Namespace>(o),
            "ServiceAccount" => round_trips::<core::ServiceAccount>(o),
            "ConfigMap" => round_trips::<core::ConfigMap>(o),
            "Service" => round_trips::<core::Service>(o),
            "PersistentVolumeClaim" => round_trips::<core::PersistentVolumeClaim>(o),
            "ClusterRole" => round_trips::<rbac::ClusterRole>(o),
            "ClusterRoleBinding" => round_trips::<rbac::ClusterRoleBinding>(o),
            "Deployment" => round_trips::<apps::Deployment>(o),
            "NetworkPolicy" => round_trips::<net::NetworkPolicy>(o),
            "ServiceMonitor" => {
                assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1");
                assert_eq!(o["spec"]["endpoints"][0]["port"], "metrics");
                assert_eq!(o["spec"]["endpoints"][0]["path"], "/metrics");
            }
            other => panic!("unexpected {other}"),
        }
    }

    // Least privilege: get, list, watch on events in the core and events.k8s.io groups, and on
    // the resources the binary watches for workloads.
    let mut rules: Vec<(String, String, String)> = Vec::new();
    for r in by_kind["ClusterRole"]["rules"].as_array().expect("rules") {
        let list = |k: &str| {
            r[k].as_array()
                .expect(k)
                .iter()
                .map(|v| v.as_str().expect("str").to_owned())
                .collect::<Vec<_>>()
        };
        for g in list("apiGroups") {
            for res in list("resources") {
                for v in list("verbs") {
                    rules.push((g.clone(), res.clone(), v));
                }
            }
        }
    }
    let mut want = Vec::new();
    let watched = [("", "events"), ("events.k8s.io", "events")]
        .into_iter()
        .chain(
            kube_event_exporter::source::objects::Resource::ALL.map(|r| (r.group(), r.plural())),
        );
    for (g, res) in watched {
        for v in ["get", "list", "watch"] {
            want.push((g.to_owned(), res.to_owned(), v.to_owned()));
        }
    }
    rules.sort();
    want.sort();
    assert_eq!(rules, want);

    // The Deployment: one replica, Recreate, hardened, probes on the binary's real routes, env
    // the binary accepts.
    let d = by_kind["Deployment"];
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    let env: BTreeMap<String, String> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    // Two ports: metrics (/metrics and the probes) on KEE_LISTEN, the history on
    // KEE_HISTORY_LISTEN; the Service has both, by name.
    let container_port = |name: &str| {
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
            .as_u64()
            .expect("port")
    };
    for (var, name) in [("KEE_LISTEN", "metrics"), ("KEE_HISTORY_LISTEN", "history")] {
        let port = container_port(name);
        assert!(
            env[var].ends_with(&format!(":{port}")),
            "{var} matches the container port {name}"
        );
    }
    let service_ports: BTreeSet<(String, u64, String)> = by_kind["Service"]["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_owned(),
                p["port"].as_u64().expect("port"),
                p["targetPort"].as_str().expect("a named target").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        service_ports,
        [
            (
                "history".to_owned(),
                container_port("history"),
                "history".to_owned()
            ),
            (
                "metrics".to_owned(),
                container_port("metrics"),
                "metrics".to_owned()
            ),
        ]
        .into()
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["mountPath"].as_str().expect("path"))
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| env["KEE_ARCHIVE_PATH"].starts_with(m)),
        "the archive is on the volume"
    );
    assert!(
        mounts.iter().any(|m| env["KEE_CONFIG"].starts_with(m)),
        "the rules file is mounted"
    );

    // Run the binary with the Deployment's environment (paths moved into a temp dir, the rules
    // from the ConfigMap): it accepts every variable and serves the probe routes.
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(
        &rules_file,
        by_kind["ConfigMap"]["data"]["rules.yaml"]
            .as_str()
            .expect("rules.yaml"),
    )
    .expect("write");
    let help = String::from_utf8(
        Command::new(Exporter::binary())
            .arg("--help")
            .output()
            .expect("help")
            .stdout,
    )
    .expect("utf-8");
    let history_addr = format!("127.0.0.1:{}", crate::support::free_port());
    let mut args: Vec<String> = vec![
        "--replay".into(),
        root().join("examples/events.jsonl").display().to_string(),
    ];
    for (name, value) in &env {
        assert!(
            help.contains(&format!("env: {name}")),
            "{name} is not a flag's variable"
        );
        let flag = format!(
            "--{}",
            name.trim_start_matches("KEE_")
                .to_lowercase()
                .replace('_', "-")
        );
        let value = match name.as_str() {
            "KEE_LISTEN" => continue,
            "KEE_HISTORY_LISTEN" => history_addr.clone(),
            "KEE_ARCHIVE_PATH" => dir.path().join("archive.redb").display().to_string(),
            "KEE_CONFIG" => rules_file.display().to_string(),
            _ => value.clone(),
        };
        args.push(flag);
        args.push(value);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&argv).await;
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().expect("probe path");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics");
        exporter
            .wait_status(path, 200, Duration::from_secs(20))
            .await;
    }
    // The history answers on its own port and not on the metrics port.
    assert_eq!(exporter.get("/api/v1/events").await.0, 404);
    let history = crate::support::http()
        .get(format!("http://{history_addr}/api/v1/events"))
        .send()
        .await
        .expect("the history port");
    assert_eq!(history.status(), 200);

    // The variant with the PrometheusRule renders too, and adds just that.
    let with_rules = kustomize("deploy/with-prometheusrule");
    assert_eq!(with_rules.len(), objects.len() + 1);
    let pr = with_rules
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    assert_eq!(pr["metadata"]["namespace"], "kube-event-exporter");
}

/// A ClusterRole's rules as (apiGroup, resource, verb) triples.
fn role_rules(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in role["rules"].as_array().expect("rules") {
        let list = |k: &str| {
            r[k].as_array()
                .expect(k)
                .iter()
                .map(|v| v.as_str().expect("str").to_owned())
                .collect::<Vec<_>>()
        };
        for g in list("apiGroups") {
            for res in list("resources") {
                for v in list("verbs") {
                    out.insert((g.clone(), res.clone(), v));
                }
            }
        }
    }
    out
}

/// The object of `kind` named `name`.
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The exporter container's environment.
fn exporter_env(objects: &[Value]) -> BTreeMap<String, String> {
    object(objects, "Deployment", "kube-event-exporter")["spec"]["template"]["spec"]["containers"]
        [0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A NetworkPolicy's ingress as (peer, port) pairs; a peer is `ns=<name>`, `pod=<name>` or
/// both, from the `kubernetes.io/metadata.name` and `app.kubernetes.io/name` labels.
fn admitted(policy: &Value) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    for rule in policy["spec"]["ingress"].as_array().expect("ingress") {
        let ports: Vec<u64> = rule["ports"]
            .as_array()
            .expect("ingress rules name their ports")
            .iter()
            .map(|p| p["port"].as_u64().expect("port"))
            .collect();
        let peers = rule["from"]
            .as_array()
            .expect("ingress rules name their sources: none admits everyone");
        for peer in peers {
            let ns =
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str();
            let pod = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str();
            assert!(ns.is_some() || pod.is_some(), "an unselective peer: {peer}");
            let name = [
                ns.map(|n| format!("ns={n}")),
                pod.map(|p| format!("pod={p}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(",");
            for port in &ports {
                out.insert((name.clone(), *port));
            }
        }
    }
    out
}

#[test]
fn access_control_manifests_allow_exactly_what_the_readme_says() {
    use k8s_openapi::api::{apps::v1 as apps, networking::v1 as net, rbac::v1 as rbac};
    let pairs = |p: &[(&str, u64)]| -> BTreeSet<(String, u64)> {
        p.iter().map(|(n, port)| ((*n).to_owned(), *port)).collect()
    };
    let reviews: BTreeSet<(String, String, String)> = [
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    ]
    .iter()
    .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
    .collect();

    // The base: no review rights, auth off; the metrics port (9102) open to the monitoring
    // namespace only, the history port (9103) to the ingress-nginx namespace only, and the
    // history served on 9103 alone.
    let base = kustomize("deploy");
    let base_rules = role_rules(object(&base, "ClusterRole", "kube-event-exporter"));
    assert!(base_rules.is_disjoint(&reviews), "{base_rules:?}");
    let base_env = exporter_env(&base);
    assert!(!base_env.contains_key("KEE_AUTH"));
    assert_eq!(
        (
            base_env["KEE_LISTEN"].as_str(),
            base_env["KEE_HISTORY_LISTEN"].as_str()
        ),
        ("0.0.0.0:9102", "0.0.0.0:9103")
    );
    assert_eq!(
        admitted(object(&base, "NetworkPolicy", "kube-event-exporter")),
        pairs(&[("ns=ingress-nginx", 9103), ("ns=monitoring", 9102)])
    );
    let monitor = object(&base, "ServiceMonitor", "kube-event-exporter");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let service = object(&base, "Service", "kube-event-exporter");
    let port_of = |name: &str| {
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["port"].as_u64())
    };
    assert_eq!(
        (port_of("metrics"), port_of("history")),
        (Some(9102), Some(9103))
    );

    // The auth component adds exactly `create` on the two reviews and turns the flag on.
    let with_auth = kustomize("deploy/with-auth");
    assert_eq!(with_auth.len(), base.len());
    let role = object(&with_auth, "ClusterRole", "kube-event-exporter");
    round_trips::<rbac::ClusterRole>(role);
    let added: BTreeSet<_> = role_rules(role).difference(&base_rules).cloned().collect();
    assert_eq!(added, reviews);
    assert!(role_rules(role).is_superset(&base_rules));
    assert_eq!(exporter_env(&with_auth)["KEE_AUTH"], "kubernetes");

    // The oauth2-proxy example: the exporter trusts the proxy's headers, so only the proxy may
    // reach the history port (the monitoring namespace still scrapes the metrics port, where
    // nothing reads the headers); the proxy only from ingress-nginx; the Ingress leads to the
    // proxy, never straight to the exporter.
    let example = kustomize("deploy/examples/oauth2-proxy");
    for o in &example {
        match o["kind"].as_str().expect("kind") {
            "NetworkPolicy" => round_trips::<net::NetworkPolicy>(o),
            "Ingress" => round_trips::<net::Ingress>(o),
            "Deployment" => round_trips::<apps::Deployment>(o),
            "ClusterRole" => round_trips::<rbac::ClusterRole>(o),
            _ => {}
        }
    }
    let env = exporter_env(&example);
    assert_eq!(
        (
            env["KEE_AUTH"].as_str(),
            env["KEE_AUTH_TRUSTED_PROXY_HEADERS"].as_str()
        ),
        ("kubernetes", "true")
    );
    assert_eq!(
        role_rules(object(&example, "ClusterRole", "kube-event-exporter")),
        role_rules(role)
    );
    assert_eq!(
        admitted(object(&example, "NetworkPolicy", "kube-event-exporter")),
        pairs(&[("ns=monitoring", 9102), ("pod=oauth2-proxy", 9103)])
    );
    assert_eq!(
        exporter_env(&example)["KEE_HISTORY_LISTEN"],
        base_env["KEE_HISTORY_LISTEN"]
    );
    assert_eq!(
        admitted(object(&example, "NetworkPolicy", "oauth2-proxy")),
        pairs(&[("ns=ingress-nginx", 4180)])
    );
    // The proxy may reach the exporter's history port and no other of its ports.
    let to_exporter: BTreeSet<u64> =
        object(&example, "NetworkPolicy", "oauth2-proxy")["spec"]["egress"]
            .as_array()
            .expect("egress")
            .iter()
            .filter(|rule| {
                rule["to"].as_array().is_some_and(|to| {
                    to.iter().any(|peer| {
                        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                            == "kube-event-exporter"
                    })
                })
            })
            .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["port"].as_u64())
            .collect();
    assert_eq!(to_exporter, [9103].into());
    let ingress = object(&example, "Ingress", "kube-event-exporter");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    for rule in ingress["spec"]["rules"].as_array().expect("rules") {
        for path in rule["http"]["paths"].as_array().expect("paths") {
            assert_eq!(path["backend"]["service"]["name"], "oauth2-proxy");
        }
    }
    let proxy = &object(&example, "Deployment", "oauth2-proxy")["spec"]["template"]["spec"]["containers"]
        [0];
    let args: Vec<&str> = proxy["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    assert!(args.contains(&"--pass-user-headers=true"), "{args:?}");
    assert!(
        args.contains(&"--upstream=http://kube-event-exporter.kube-event-exporter.svc:9103/"),
        "{args:?}"
    );
    // Every variable the manifests give the exporter is one of its flags.
    let help = String::from_utf8(
        Command::new(Exporter::binary())
            .arg("--help")
            .output()
            .expect("help")
            .stdout,
    )
    .expect("utf-8");
    for name in env.keys() {
        assert!(help.contains(&format!("env: {name}")), "{name}");
    }
}

/// The ClickHouse component sets the URL and the cluster name from the Secret (never inline)
/// and opens egress to ClickHouse's HTTP ports; nothing else changes.
#[test]
fn the_clickhouse_component_reads_its_url_from_a_secret() {
    let base = kustomize("deploy");
    let shipped = kustomize("deploy/with-clickhouse");
    assert_eq!(shipped.len(), base.len());
    let deployment = object(&shipped, "Deployment", "kube-event-exporter");
    round_trips::<k8s_openapi::api::apps::v1::Deployment>(deployment);
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    for (name, key) in [
        ("KEE_CLICKHOUSE_URL", "url"),
        ("KEE_CLUSTER_NAME", "cluster-name"),
    ] {
        let var = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(var.get("value").is_none(), "{name} must not be inline");
        let secret = &var["valueFrom"]["secretKeyRef"];
        assert_eq!(secret["name"], "kube-event-exporter-clickhouse");
        assert_eq!(secret["key"], key);
    }
    let policy = object(&shipped, "NetworkPolicy", "kube-event-exporter");
    let ports: BTreeSet<u64> = policy["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert!(ports.contains(&8123) && ports.contains(&8443), "{ports:?}");

    // The fleet's history server: query-only, its URL from a Secret, flags the binary knows.
    let fleet = kustomize("deploy/examples/fleet-history");
    let deployment = object(&fleet, "Deployment", "kube-event-history");
    round_trips::<k8s_openapi::api::apps::v1::Deployment>(deployment);
    let env = exporter_env_of(deployment);
    assert_eq!(env["KEE_NO_WATCH"], "true");
    assert_eq!(env["KEE_HISTORY_FROM"], "clickhouse");
    let help = String::from_utf8(
        Command::new(Exporter::binary())
            .arg("--help")
            .output()
            .expect("help")
            .stdout,
    )
    .expect("utf-8");
    for name in env.keys() {
        assert!(help.contains(&format!("env: {name}")), "{name}");
    }
}

/// A Deployment's first container's variables (a `valueFrom` one as empty).
fn exporter_env_of(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
