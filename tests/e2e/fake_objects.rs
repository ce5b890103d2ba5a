//! The fake API server's workloads (pods, replicasets, deployments, statefulsets, daemonsets,
//! jobs, cronjobs) checked against the real clients: the installed kubectl (lists, tables, single
//! GETs, watches, 403s) and kube-rs typed APIs (every object decodes into its k8s-openapi type;
//! paging, resuming watches, 410 and injected faults).

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::Pod,
};
use kube::{
    Api, Client,
    api::{ListParams, WatchEvent, WatchParams},
};
use serde_json::Value;

use crate::support::{
    POLL,
    fake_apiserver::{FakeApiServer, Request, new_event},
    objects::{
        Builder, cronjob, daemonset, deployment_chain, job, pod, set_condition, statefulset,
    },
    wait_for,
};

const FINISHED: &str = "2025-05-01T10:00:00Z";

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(kubeconfig.with_file_name("kube-cache"))
        .args(args);
    cmd
}

fn run(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl(kubeconfig, args).output().expect("run kubectl")
}

fn stdout_of(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json_of(kubeconfig: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&stdout_of(kubeconfig, args)).expect("kubectl printed JSON")
}

/// A small cluster: Deployment shop/web (2 Pods), StatefulSet prod/db (1 Pod OOM-killed twice),
/// DaemonSet kube-system/agent, CronJob prod/report → Job → Pod, and a bare Pod.
fn populate(fake: &FakeApiServer) {
    deployment_chain("shop", "web", 2).apply(fake);
    let db = statefulset("prod", "db").build();
    let db_uid = db["metadata"]["uid"].as_str().expect("uid").to_owned();
    fake.apply("statefulsets", db);
    fake.apply(
        "pods",
        pod("prod", "db-0")
            .owned_by("StatefulSet", "db", &db_uid)
            .container("postgres")
            .restarts("postgres", 2)
            .last_terminated("postgres", "OOMKilled", 137, FINISHED)
            .build(),
    );
    let agent = daemonset("kube-system", "agent").build();
    let agent_uid = agent["metadata"]["uid"].as_str().expect("uid").to_owned();
    fake.apply("daemonsets", agent);
    fake.apply(
        "pods",
        pod("kube-system", "agent-x7k2p")
            .owned_by("DaemonSet", "agent", &agent_uid)
            .node("node-2")
            .build(),
    );
    let report = cronjob("prod", "report").build();
    let report_uid = report["metadata"]["uid"].as_str().expect("uid").to_owned();
    fake.apply("cronjobs", report);
    let run = job("prod", "report-29100000")
        .owned_by("CronJob", "report", &report_uid)
        .build();
    let run_uid = run["metadata"]["uid"].as_str().expect("uid").to_owned();
    fake.apply("jobs", run);
    fake.apply(
        "pods",
        pod("prod", "report-29100000-q8w4z")
            .owned_by("Job", "report-29100000", &run_uid)
            .restart_policy("OnFailure")
            .init_container("migrate")
            .waiting("app", "CrashLoopBackOff")
            .restarts("app", 4)
            .last_terminated("app", "Error", 1, FINISHED)
            .build(),
    );
    fake.apply("pods", pod("default", "debug").build());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_as_big_as_a_real_one() {
    let p = pod("shop", "web-5d8f7c9b6-abcde")
        .owned_by("ReplicaSet", "web-5d8f7c9b6", "0000")
        .restarts("app", 1)
        .last_terminated("app", "OOMKilled", 137, FINISHED)
        .build();
    let size = p.to_string().len();
    assert!((3_000..=6_500).contains(&size), "{size} bytes: {p:#}");
    let decoded: Pod = serde_json::from_value(p).expect("a Pod");
    let status = &decoded
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    assert_eq!(status.restart_count, 1);
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    assert_eq!(last.and_then(|t| t.reason.as_deref()), Some("OOMKilled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_gets_and_prints_workloads() {
    let fake = FakeApiServer::start().await;
    populate(&fake);
    fake.create(&new_event("shop", "Pod", "web-1", "BackOff", "Warning", 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());

    let pods = json_of(&kubeconfig, &["get", "pods", "-A", "-o", "json"]);
    let items = pods["items"].as_array().expect("items");
    assert_eq!(items.len(), 6, "{pods:#}");
    assert!(
        items
            .iter()
            .all(|p| p["kind"] == "Pod" && p["apiVersion"] == "v1")
    );
    let db = items
        .iter()
        .find(|p| p["metadata"]["name"] == "db-0")
        .expect("db-0");
    assert_eq!(db["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    assert_eq!(db["status"]["containerStatuses"][0]["restartCount"], 2);

    // kubectl asks for a server-side Table and prints its columns.
    let table = stdout_of(&kubeconfig, &["get", "pods", "-n", "shop"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows.iter()
            .all(|r| r[0].starts_with("web-") && r[1..4] == ["1/1", "Running", "0"])
    );
    let prod = stdout_of(&kubeconfig, &["get", "pods", "-n", "prod", "-o", "wide"]);
    assert!(
        prod.lines()
            .any(|l| l.contains("report-29100000-q8w4z") && l.contains("CrashLoopBackOff")),
        "{prod}"
    );
    assert!(
        prod.lines()
            .any(|l| l.starts_with("db-0 ") && l.contains("2 (") && l.contains("node-1")),
        "{prod}"
    );
    // Short names, categories and every kind's columns.
    let all = stdout_of(&kubeconfig, &["get", "po,deploy,rs,sts,ds,job,cj", "-A"]);
    for name in [
        "pod/web-",
        "deployment.apps/web",
        "replicaset.apps/web-",
        "statefulset.apps/db",
        "daemonset.apps/agent",
        "job.batch/report-29100000",
        "cronjob.batch/report",
    ] {
        assert!(all.contains(name), "{name} missing from\n{all}");
    }
    let category = stdout_of(&kubeconfig, &["get", "all", "-n", "shop"]);
    assert!(category.contains("deployment.apps/web"), "{category}");

    let workloads = json_of(
        &kubeconfig,
        &[
            "get",
            "deployments,replicasets,jobs,cronjobs",
            "-A",
            "-o",
            "json",
        ],
    );
    let kinds: BTreeSet<(String, String)> = workloads["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["apiVersion"].as_str().unwrap_or_default().to_owned(),
                i["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
    ]
    .iter()
    .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(kinds, expected, "{workloads:#}");

    // A single GET, printed as YAML.
    let yaml = stdout_of(
        &kubeconfig,
        &["get", "pod", "db-0", "-n", "prod", "-o", "yaml"],
    );
    for line in [
        "kind: Pod",
        "name: db-0",
        "restartCount: 2",
        "reason: OOMKilled",
        "exitCode: 137",
        "kind: StatefulSet",
    ] {
        assert!(yaml.contains(line), "{line} missing from\n{yaml}");
    }
    let missing = run(&kubeconfig, &["get", "pod", "nope", "-n", "prod"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(r#"Error from server (NotFound): pods "nope" not found"#),
        "{stderr}"
    );
    // Events are still served as before.
    let events = json_of(&kubeconfig, &["get", "events", "-A", "-o", "json"]);
    assert_eq!(events["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_prints_added_then_modified_pods() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let file = dir.path().join("watch.json");
    let mut watcher = kubectl(
        &kubeconfig,
        &[
            "get",
            "pods",
            "-n",
            "shop",
            "--watch",
            "-o",
            "json",
            "--output-watch-events",
        ],
    )
    .stdout(std::fs::File::create(&file).expect("create"))
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn kubectl --watch");
    wait_for(
        "kubectl to watch pods",
        Duration::from_secs(20),
        POLL,
        || async {
            fake.requests()
                .iter()
                .any(|r| r.is_watch_of("pods"))
                .then_some(())
        },
    )
    .await;
    fake.apply("pods", pod("shop", "api-0").build());
    fake.apply("pods", pod("other", "api-0").build());
    fake.modify("pods", "shop", "api-0", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] = 1.into();
        p["status"]["containerStatuses"][0]["lastState"] = serde_json::json!({"terminated": {
            "exitCode": 137, "reason": "OOMKilled", "startedAt": FINISHED, "finishedAt": FINISHED}});
    });
    let events: Vec<Value> = wait_for(
        "kubectl to print two watch events",
        Duration::from_secs(20),
        POLL,
        || async {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let events: Vec<Value> = serde_json::Deserializer::from_str(&text)
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            (events.len() >= 2).then_some(events)
        },
    )
    .await;
    fake.close_watches();
    assert!(watcher.wait().expect("kubectl exits").success());
    let seen: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default(),
                e["object"]["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default(),
                e["object"]["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(seen, [("ADDED", "shop", 0), ("MODIFIED", "shop", 1)]);
    assert_eq!(events[1]["object"]["kind"], "Pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_resource_answers_403_as_rbac_does() {
    let fake = FakeApiServer::start().await;
    populate(&fake);
    fake.create(&new_event("shop", "Pod", "web-1", "BackOff", "Warning", 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    fake.forbid("pods", true);
    fake.forbid("deployments", true);
    let user = "system:serviceaccount:kube-event-exporter:kube-event-exporter";
    for (args, message) in [
        (
            &["get", "pods", "-A"][..],
            format!(
                r#"Error from server (Forbidden): pods is forbidden: User "{user}" cannot list resource "pods" in API group "" at the cluster scope"#
            ),
        ),
        (
            &["get", "pod", "db-0", "-n", "prod", "-o", "json"][..],
            format!(
                r#"Error from server (Forbidden): pods "db-0" is forbidden: User "{user}" cannot get resource "pods" in API group "" in the namespace "prod""#
            ),
        ),
        (
            &["get", "deployments", "-n", "shop", "-o", "json"][..],
            format!(
                r#"Error from server (Forbidden): deployments.apps is forbidden: User "{user}" cannot list resource "deployments" in API group "apps" in the namespace "shop""#
            ),
        ),
    ] {
        let out = run(&kubeconfig, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
    }
    // Other resources and events go on.
    let rs = json_of(&kubeconfig, &["get", "rs", "-A", "-o", "json"]);
    assert_eq!(rs["items"].as_array().map(Vec::len), Some(1));
    let events = json_of(&kubeconfig, &["get", "events", "-A", "-o", "json"]);
    assert_eq!(events["items"].as_array().map(Vec::len), Some(1));

    // A typed client sees the Status with its details.
    let pods: Api<Pod> = Api::all(client(&fake));
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("forbidden");
    let kube::Error::Api(status) = err else {
        panic!("not a Status: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    let details = status.details.expect("details");
    assert_eq!(details.kind, "pods");

    fake.forbid("pods", false);
    let listed = pods
        .list(&ListParams::default())
        .await
        .expect("allowed again");
    assert_eq!(listed.items.len(), 6);
}

fn client(fake: &FakeApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(fake.url().parse().expect("url"));
    Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_decodes_pages_and_resumes_every_workload() {
    let fake = FakeApiServer::start().await;
    populate(&fake);
    let client = client(&fake);

    // Every object decodes into its k8s-openapi type, through a typed list.
    let pods: Api<Pod> = Api::all(client.clone());
    let page = pods
        .list(&ListParams::default().limit(4))
        .await
        .expect("page 1");
    assert_eq!(page.items.len(), 4);
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = pods
        .list(&ListParams::default().limit(4).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.metadata.continue_.as_deref().unwrap_or(""), "");
    assert_eq!(
        page.metadata.resource_version,
        rest.metadata.resource_version
    );
    let in_prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    assert_eq!(
        in_prod
            .list(&ListParams::default())
            .await
            .expect("prod")
            .items
            .len(),
        2
    );
    assert_eq!(
        Api::<Deployment>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("deployments")
            .items
            .len(),
        1
    );
    assert_eq!(
        Api::<ReplicaSet>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("replicasets")
            .items
            .len(),
        1
    );
    assert_eq!(
        Api::<StatefulSet>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("statefulsets")
            .items
            .len(),
        1
    );
    assert_eq!(
        Api::<DaemonSet>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("daemonsets")
            .items
            .len(),
        1
    );
    assert_eq!(
        Api::<Job>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("jobs")
            .items
            .len(),
        1
    );
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "prod");
    let report = cronjobs.get("report").await.expect("get cronjob");
    assert_eq!(report.spec.schedule, "*/5 * * * *");

    // Watches resume from the list's resourceVersion and see only their resource: the one
    // resourceVersion sequence also counts the Event in between.
    let from = page.metadata.resource_version.expect("list rv");
    let rv_event = fake.resource_version() + 1;
    fake.create(&new_event("prod", "Pod", "db-0", "BackOff", "Warning", 1));
    assert_eq!(fake.resource_version(), rv_event);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let rv_modified = fake.modify("deployments", "shop", "web", |d| {
        set_condition(
            d,
            serde_json::json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                               "message": "ReplicaSet \"web-1\" has timed out progressing."}),
        );
    });
    let rv_deleted = fake.remove("pods", "default", "debug");
    let rv_dep: Vec<String> = deployments
        .watch(&WatchParams::default().timeout(1), &from)
        .await
        .expect("watch deployments")
        .map_ok(|e| match e {
            WatchEvent::Modified(d) => format!(
                "MODIFIED {}",
                d.metadata.resource_version.unwrap_or_default()
            ),
            other => format!("{other:?}"),
        })
        .try_filter(|e| std::future::ready(!e.starts_with("Bookmark")))
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(rv_dep, [format!("MODIFIED {rv_modified}")]);
    let pod_events: Vec<String> = pods
        .watch(&WatchParams::default().timeout(1), &from)
        .await
        .expect("watch pods")
        .map_ok(|e| match e {
            WatchEvent::Deleted(p) => format!(
                "DELETED {} {}",
                p.metadata.name.unwrap_or_default(),
                p.metadata.resource_version.unwrap_or_default()
            ),
            other => format!("{other:?}"),
        })
        .try_filter(|e| std::future::ready(!e.starts_with("Bookmark")))
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(pod_events, [format!("DELETED debug {rv_deleted}")]);

    // Injected faults are per resource: pods fail, deployments do not.
    fake.fail_next_of("pods", 500);
    let err = pods.list(&ListParams::default()).await.expect_err("500");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500),
        "{err}"
    );
    deployments
        .list(&ListParams::default())
        .await
        .expect("deployments unaffected");
    assert!(fake.requests().iter().any(|r| r.is_list_of("deployments")));

    // After compaction a watch from the old resourceVersion gets 410 Gone in the stream.
    fake.expire();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(5), &from)
        .await
        .expect("watch")
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }

    // A stalled watch sends nothing; the requests say which resource each one was for.
    fake.stall_next_watch_of("pods");
    let mut stalled = pods
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .expect("watch")
        .boxed();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stalled.next())
            .await
            .is_err()
    );
    let requests = fake.requests();
    let pod_watches = requests.iter().filter(|r| r.is_watch_of("pods")).count();
    assert_eq!(pod_watches, 3);
    assert!(
        requests
            .iter()
            .any(|r| r.is_get_of("cronjobs") && r.name() == Some("report"))
    );
    assert!(
        !requests.iter().any(Request::is_events),
        "no event requests here"
    );
}
