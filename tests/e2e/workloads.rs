//! Workloads and derived occurrences against the fake API server's Pods, ReplicaSets, Jobs and
//! Deployments: owner chains of every shape, container restarts and OOM kills counted, archived
//! and alerted exactly once across exporter restarts, stuck rollouts, and a cluster that refuses
//! the Pod watch.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::support::{
    Exporter, POLL,
    alertmanager::{Alertmanager, Webhook, config},
    fake_apiserver::{FakeApiServer, new_event},
    objects::{
        Builder, PodBuilder, cronjob, daemonset, deployment, deployment_chain, job, pod,
        replicaset, statefulset, uid_for,
    },
    wait_for,
};

const WAIT: Duration = Duration::from_secs(20);

async fn start(fake: &FakeApiServer, dir: &Path, extra: &[&str]) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let archive = dir.join("archive.redb");
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--archive-path",
        archive.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

/// The archive's items for `query`.
async fn items(exporter: &Exporter, query: &str) -> Vec<Value> {
    let (status, body) = exporter.get(&format!("/api/v1/events?{query}")).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the archive holds exactly one item for `query` that `check` accepts.
async fn wait_item(exporter: &Exporter, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(query, WAIT, POLL, || async {
        let found = items(exporter, query).await;
        match found.as_slice() {
            [one] if check(one) => Ok(one.clone()),
            _ => Err(format!("{found:#?}")),
        }
    })
    .await
}

fn workload(item: &Value) -> (&str, &str) {
    (
        item["workload_kind"].as_str().unwrap_or_default(),
        item["workload"].as_str().unwrap_or_default(),
    )
}

/// `kube_events_total` of `reason`, summed over its series.
fn total(samples: &crate::support::Samples, reason: &str) -> f64 {
    samples
        .0
        .iter()
        .filter(|(n, l, _)| {
            n == "kube_events_total" && l.get("reason").map(String::as_str) == Some(reason)
        })
        .map(|(.., v)| v)
        .sum()
}

/// The `api` container of Pod `name` owned by ReplicaSet `rs`, after `restarts` restarts, the
/// last one ended by `reason`.
fn restarted(ns: &str, name: &str, rs: &str, restarts: u32, reason: &str) -> PodBuilder {
    let p = pod(ns, name)
        .owned_by("ReplicaSet", rs, &uid_for("ReplicaSet", ns, rs))
        .container("api")
        .node("node-3")
        .restarts("api", restarts);
    if restarts == 0 {
        return p.running("api");
    }
    let code = if reason == "OOMKilled" { 137 } else { 1 };
    p.last_terminated("api", reason, code, &finished(restarts))
        .running("api")
}

/// When restart `n` of the tests' containers ended: recently (an alert is only sent for a
/// recent occurrence), a second apart, on whole seconds as Kubernetes writes it.
fn finished(n: u32) -> String {
    static START: std::sync::LazyLock<jiff::Timestamp> = std::sync::LazyLock::new(|| {
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .expect("round")
            - Duration::from_secs(60)
    });
    (*START + Duration::from_secs(u64::from(n))).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_owner_chain_ends_at_its_workload() {
    let fake = FakeApiServer::start().await;
    let chain = deployment_chain("shop", "api", 1);
    chain.apply(&fake);
    let api_pod = chain.pod_names()[0].to_owned();
    fake.apply("statefulsets", statefulset("shop", "db").build());
    let sts = uid_for("StatefulSet", "shop", "db");
    fake.apply(
        "pods",
        pod("shop", "db-0")
            .owned_by("StatefulSet", "db", &sts)
            .container("db")
            .build(),
    );
    fake.apply("daemonsets", daemonset("kube-system", "agent").build());
    let ds = uid_for("DaemonSet", "kube-system", "agent");
    fake.apply(
        "pods",
        pod("kube-system", "agent-x7k2p")
            .owned_by("DaemonSet", "agent", &ds)
            .container("agent")
            .build(),
    );
    fake.apply("cronjobs", cronjob("data", "etl").build());
    let cj = uid_for("CronJob", "data", "etl");
    fake.apply(
        "jobs",
        job("data", "etl-28391520")
            .owned_by("CronJob", "etl", &cj)
            .build(),
    );
    let j = uid_for("Job", "data", "etl-28391520");
    fake.apply(
        "pods",
        pod("data", "etl-28391520-q8v2z")
            .owned_by("Job", "etl-28391520", &j)
            .container("etl")
            .build(),
    );
    fake.apply("pods", pod("shop", "debug").container("sh").build());
    for (ns, name) in [
        ("shop", api_pod.as_str()),
        ("shop", "db-0"),
        ("kube-system", "agent-x7k2p"),
        ("data", "etl-28391520-q8v2z"),
        ("shop", "debug"),
    ] {
        fake.create(&new_event(ns, "Pod", name, "BackOff", "Warning", 1));
    }
    fake.create(&new_event(
        "default",
        "Node",
        "node-1",
        "NodeNotReady",
        "Warning",
        1,
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &[]).await;

    for (query, want) in [
        (
            format!("namespace=shop&name={api_pod}"),
            ("Deployment", "api"),
        ),
        ("namespace=shop&name=db-0".into(), ("StatefulSet", "db")),
        (
            "namespace=kube-system&name=agent-x7k2p".into(),
            ("DaemonSet", "agent"),
        ),
        (
            "namespace=data&name=etl-28391520-q8v2z".into(),
            ("CronJob", "etl"),
        ),
        ("namespace=shop&name=debug".into(), ("Pod", "debug")),
        ("kind=Node&name=node-1".into(), ("Node", "node-1")),
    ] {
        let item = wait_item(&exporter, &query, |_| true).await;
        assert_eq!(workload(&item), want, "{query}: {item:#}");
    }
    // The workload filters find the Deployment's events, and only them.
    let by_workload = items(&exporter, "workload_kind=Deployment&workload=api").await;
    assert_eq!(by_workload.len(), 1, "{by_workload:#?}");

    // A Pod seen before its ReplicaSet: its event waits for the chain, then has it whole.
    let ns = "shop";
    fake.apply(
        "pods",
        pod(ns, "web-5d4-abcde")
            .owned_by(
                "ReplicaSet",
                "web-5d4",
                &uid_for("ReplicaSet", ns, "web-5d4"),
            )
            .container("web")
            .build(),
    );
    fake.create(&new_event(
        ns,
        "Pod",
        "web-5d4-abcde",
        "Unhealthy",
        "Warning",
        1,
    ));
    fake.apply("deployments", deployment(ns, "web").build());
    fake.apply(
        "replicasets",
        replicaset(ns, "web-5d4")
            .owned_by("Deployment", "web", &uid_for("Deployment", ns, "web"))
            .build(),
    );
    let item = wait_item(&exporter, "namespace=shop&name=web-5d4-abcde", |_| true).await;
    assert_eq!(workload(&item), ("Deployment", "web"), "{item:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kills_and_restarts_are_counted_archived_and_alerted_once_each() {
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(&webhook, &[("workload=\"api\"", "api-team")])).await;
    let fake = FakeApiServer::start().await;
    let chain = deployment_chain("shop", "api", 1);
    chain.apply(&fake);
    let rs = chain.replicaset_name().to_owned();
    let name = chain.pod_names()[0].to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let am_url = am.url();
    let exporter = start(
        &fake,
        dir.path(),
        &["--alertmanager-url", &am_url, "--metrics-workload-labels"],
    )
    .await;

    fake.apply(
        "pods",
        restarted("shop", &name, &rs, 1, "OOMKilled").build(),
    );
    fake.apply(
        "pods",
        restarted("shop", &name, &rs, 2, "OOMKilled").build(),
    );
    let samples = wait_for("two OOM kills and two restarts", WAIT, POLL, || async {
        let m = exporter.metrics().await;
        let seen = (
            total(&m, "ContainerOOMKilled"),
            total(&m, "ContainerRestarted"),
        );
        if seen == (2.0, 2.0) {
            Ok(m)
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    let oom = samples
        .get(
            "kube_events_total",
            &[
                ("namespace", "shop"),
                ("kind", "Pod"),
                ("reason", "ContainerOOMKilled"),
                ("type", "Warning"),
                ("workload_kind", "Deployment"),
                ("workload", "api"),
            ],
        )
        .unwrap_or(0.0);
    assert_eq!(oom, 2.0, "counted under the workload's labels");

    let oom = wait_item(&exporter, "namespace=shop&reason=ContainerOOMKilled", |i| {
        i["count"] == 2
    })
    .await;
    assert_eq!(
        oom["message"], "container api was OOM-killed (exit code 137), restart 2",
        "{oom:#}"
    );
    assert_eq!(oom["field_path"], "spec.containers{api}");
    assert_eq!(oom["source"], "kube-event-exporter");
    assert_eq!(oom["host"], "node-3");
    assert_eq!(workload(&oom), ("Deployment", "api"));
    let restarts = wait_item(&exporter, "namespace=shop&reason=ContainerRestarted", |i| {
        i["count"] == 2
    })
    .await;
    assert_eq!(
        restarts["message"],
        format!(
            "container api restarted (restart 2): exit code 137 (OOMKilled) at {}",
            finished(2)
        )
    );

    // One alert per (Pod, reason), with the workload, routed by it.
    let alerts = wait_for("both alerts at the api team", WAIT, POLL, || async {
        let alerts = webhook.alerts("/api-team");
        let mut names: Vec<String> = alerts
            .iter()
            .map(|a| {
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        if names == ["ContainerOOMKilled", "ContainerRestarted"] {
            Ok(alerts)
        } else {
            Err(format!(
                "{:#?} am: {:#?} active {}\n{}",
                webhook.received(),
                am.alerts().await,
                exporter
                    .metrics()
                    .await
                    .value("kube_event_exporter_alerts_active"),
                exporter.logs()
            ))
        }
    })
    .await;
    for a in &alerts {
        assert_eq!(a["labels"]["workload_kind"], "Deployment", "{a:#}");
        assert_eq!(a["labels"]["name"], name.as_str());
    }
    let firing = am.alerts().await;
    assert_eq!(firing.len(), 2, "one alert per (Pod, reason): {firing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_across_exporter_restarts_count_once_and_old_ones_never() {
    let fake = FakeApiServer::start().await;
    let chain = deployment_chain("shop", "api", 1);
    chain.apply(&fake);
    let rs = chain.replicaset_name().to_owned();
    let name = chain.pod_names()[0].to_owned();
    // Last month's restarts, and an OOM kill among them, before the exporter ever ran.
    fake.apply(
        "pods",
        restarted("shop", &name, &rs, 5, "OOMKilled").build(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut exporter = start(&fake, dir.path(), &[]).await;
    // Recorded with their counts, not counted: a first start alerts nothing.
    let item = wait_item(&exporter, "reason=ContainerRestarted", |i| i["count"] == 5).await;
    assert_eq!(workload(&item), ("Deployment", "api"));
    wait_item(&exporter, "reason=ContainerOOMKilled", |i| i["count"] == 1).await;
    let m = exporter.metrics().await;
    assert_eq!(
        (
            total(&m, "ContainerRestarted"),
            total(&m, "ContainerOOMKilled")
        ),
        (0.0, 0.0),
        "nothing counted on a first start"
    );
    exporter.terminate().await;

    // A restart while the exporter is down is counted once when it is back.
    fake.apply("pods", restarted("shop", &name, &rs, 6, "Error").build());
    let mut exporter = start(&fake, dir.path(), &[]).await;
    wait_for("the restart while down", WAIT, POLL, || async {
        let m = exporter.metrics().await;
        let seen = (
            total(&m, "ContainerRestarted"),
            total(&m, "ContainerOOMKilled"),
        );
        if seen == (1.0, 0.0) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    wait_item(&exporter, "reason=ContainerRestarted", |i| i["count"] == 6).await;
    exporter.kill();

    // A killed exporter's successor counts nothing again.
    let exporter = start(&fake, dir.path(), &[]).await;
    fake.apply(
        "pods",
        restarted("shop", &name, &rs, 7, "OOMKilled").build(),
    );
    wait_item(&exporter, "reason=ContainerRestarted", |i| i["count"] == 7).await;
    let m = exporter.metrics().await;
    assert_eq!(
        (
            total(&m, "ContainerRestarted"),
            total(&m, "ContainerOOMKilled")
        ),
        (1.0, 1.0),
        "only the new restart and its OOM kill"
    );
    wait_item(&exporter, "reason=ContainerOOMKilled", |i| i["count"] == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_is_one_occurrence_per_revision() {
    let fake = FakeApiServer::start().await;
    fake.apply("deployments", deployment("shop", "api").revision(1).build());
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &[]).await;
    let stuck = |revision| {
        deployment("shop", "api")
            .revision(revision)
            .progressing(
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"api-6b4\" has timed out progressing.",
            )
            .build()
    };
    fake.apply("deployments", stuck(2));
    // The same stuck rollout seen again is no new occurrence.
    fake.modify("deployments", "shop", "api", |d| {
        d["spec"]["replicas"] = 3.into();
    });
    let item = wait_item(&exporter, "reason=RolloutStuck", |i| i["count"] == 1).await;
    assert_eq!(
        item["message"],
        "rollout of revision 2 is stuck: ReplicaSet \"api-6b4\" has timed out progressing."
    );
    assert_eq!(
        (item["kind"].as_str(), item["name"].as_str()),
        (Some("Deployment"), Some("api"))
    );
    assert_eq!(workload(&item), ("Deployment", "api"));
    fake.apply(
        "deployments",
        deployment("shop", "api")
            .revision(3)
            .progressing("True", "NewReplicaSetAvailable", "rolled out")
            .build(),
    );
    fake.apply("deployments", stuck(4));
    wait_item(&exporter, "reason=RolloutStuck", |i| i["count"] == 2).await;
    let m = exporter.metrics().await;
    assert_eq!(total(&m, "RolloutStuck"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pod_watch_events_still_flow_and_the_metric_says_why() {
    let fake = FakeApiServer::start().await;
    fake.forbid("pods", true);
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 2));
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &[]).await;
    let item = wait_item(&exporter, "name=api-1", |_| true).await;
    assert_eq!(item["count"], 2);
    // The Pod's owner is unknown, and so is its workload; the event did not wait.
    assert_eq!(workload(&item), ("", ""));
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "kube_event_exporter_watch_forbidden",
            &[("resource", "pods")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "kube_event_exporter_watch_forbidden",
            &[("resource", "replicasets")]
        ),
        Some(0.0)
    );
    assert!(
        exporter.logs().contains("refuses to list pods"),
        "{}",
        exporter.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_does_not_decode_is_skipped_and_counted() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &[]).await;
    let errors = "kube_event_exporter_decode_errors_total";
    assert_eq!(exporter.metrics().await.value(errors), 0.0);
    fake.apply(
        "pods",
        serde_json::json!({"metadata": {"name": "bad", "namespace": "shop"},
                           "status": {"containerStatuses": 5}}),
    );
    // The watch goes on: a good Pod's restart after it is counted.
    fake.apply("pods", restarted("shop", "api-1", "api-7f", 0, "").build());
    fake.apply(
        "pods",
        restarted("shop", "api-1", "api-7f", 1, "Error").build(),
    );
    wait_item(&exporter, "reason=ContainerRestarted", |i| i["count"] == 1).await;
    let m = exporter.metrics().await;
    assert_eq!(m.value(errors), 1.0);
    assert_eq!(m.value("kube_event_exporter_watch_restarts_total"), 0.0);
}

/// The dashboard panels and rules that select workloads, on real derived occurrences in a real
/// Prometheus: restarts and OOM kills of a Deployment's Pod, and its stuck rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_panels_and_rules_show_derived_occurrences_in_prometheus() {
    use crate::{
        kit::{Want, expressions},
        support::{Prometheus, operator_kit::root},
    };
    let fake = FakeApiServer::start().await;
    let chain = deployment_chain("shop", "api", 1);
    chain.apply(&fake);
    let rs = chain.replicaset_name().to_owned();
    let name = chain.pod_names()[0].to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &["--metrics-workload-labels"]).await;
    let prometheus = Prometheus::start(
        &[exporter.addr],
        &[&root().join("alerts/kube-event-exporter.rules.yml")],
    )
    .await;
    // A first scrape without them, so the rules see the series appear.
    wait_for("a first scrape", WAIT, POLL, || async {
        let data = prometheus.query("up").await.ok()?;
        (data["result"][0]["value"][1] == "1").then_some(())
    })
    .await;
    for (n, reason) in [(1, "OOMKilled"), (2, "OOMKilled"), (3, "Error")] {
        fake.apply("pods", restarted("shop", &name, &rs, n, reason).build());
    }
    fake.apply(
        "deployments",
        deployment("shop", "api")
            .revision(2)
            .progressing("False", "ProgressDeadlineExceeded", "timed out")
            .build(),
    );
    wait_for("the occurrences in Prometheus", Duration::from_secs(60), POLL, || async {
        let q = r#"sum(kube_events_total{workload="api",reason=~"ContainerOOMKilled|RolloutStuck"})"#;
        let data = prometheus.query(q).await.ok()?;
        (data["result"][0]["value"][1] == "3").then_some(())
    })
    .await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, expr, want) in expressions() {
        let firing_rule = name == "rule KubeEventsContainerOOMKilledRepeatedly"
            || name == "rule KubeEventsRolloutStuck";
        if want != Want::DataWithWorkloadLabels && !firing_rule {
            continue;
        }
        checked += 1;
        match prometheus.query(&expr).await {
            Err(e) => failures.push(format!("{name}: {expr}\n  → {e}")),
            Ok(data) => {
                let result = data["result"].as_array().cloned().unwrap_or_default();
                if !result.iter().any(|r| r["metric"]["workload"] == "api") {
                    failures.push(format!("{name}: no data for workload api: {expr}\n{data}"));
                }
            }
        }
    }
    assert!(
        checked >= 3,
        "the workload panel and the two rules: {checked}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
