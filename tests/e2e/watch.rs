//! The watch source against the fake API server: a scripted scenario with count updates and
//! every fault the product must ride out, checked in the exporter's exposition and in a real
//! Prometheus; readiness and liveness.

use std::time::Duration;

use crate::support::{
    Exporter, Model, POLL, Prometheus, Totals,
    fake_apiserver::{FakeApiServer, NewEvent, new_event},
    totals_key, wait_for,
};

fn series(mut ev: NewEvent, component: &str) -> NewEvent {
    ev.series = true;
    ev.component = component.into();
    ev
}

/// Plays the scenario: 24 events in 4 namespaces, with a count update from 3 to 7, a stream
/// close, an in-stream 410 with relist, HTTP 500 and 410 answers, a stalled stream, a duplicate
/// delivery and a deletion. Checks the exporter after every step; returns the final totals.
async fn play(fake: &FakeApiServer, args: &[&str]) -> (Totals, Exporter) {
    let mut m = Model::default();
    let backoff = m.create(
        fake,
        &new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3),
    );
    let pulled = m.create(
        fake,
        &new_event("shop", "Pod", "api-1", "Pulled", "Normal", 1),
    );
    m.create(
        fake,
        &new_event("shop", "Pod", "api-2", "Unhealthy", "Warning", 2),
    );
    m.create(
        fake,
        &new_event("shop", "Pod", "api-2", "Killing", "Normal", 1),
    );
    m.create(
        fake,
        &new_event("prod", "Pod", "db-0", "OOMKilling", "Warning", 1),
    );
    m.create(
        fake,
        &new_event(
            "prod",
            "Deployment",
            "web",
            "ScalingReplicaSet",
            "Normal",
            1,
        ),
    );
    m.create(
        fake,
        &new_event(
            "prod",
            "ReplicaSet",
            "web-7f9c",
            "SuccessfulCreate",
            "Normal",
            2,
        ),
    );
    let sched = m.create(
        fake,
        &series(
            new_event(
                "kube-system",
                "Pod",
                "coredns-x",
                "FailedScheduling",
                "Warning",
                4,
            ),
            "default-scheduler",
        ),
    );
    m.create(
        fake,
        &new_event("default", "Node", "node-1", "NodeNotReady", "Warning", 1),
    );
    m.create(
        fake,
        &new_event("kube-system", "Pod", "coredns-y", "Started", "Normal", 1),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let mut argv = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8 path"),
        "--watch-timeout",
        "3s",
    ];
    argv.extend_from_slice(args);
    let exporter = Exporter::start(&argv).await;
    exporter.wait_ready().await;
    exporter.wait_totals(&m.totals()).await;

    // A count update 3 → 7 adds four occurrences.
    m.set_count(fake, "shop", &backoff, 7);
    m.create(
        fake,
        &new_event("shop", "Pod", "api-3", "Killing", "Normal", 1),
    );
    m.create(
        fake,
        &new_event("prod", "Pod", "db-1", "FailedMount", "Warning", 2),
    );
    exporter.wait_totals(&m.totals()).await;
    // The totals match the model; the update came through the watch, not a relist.
    let s = exporter.metrics().await;
    assert_eq!(
        s.event_totals()[&totals_key("shop", "Pod", "BackOff", "Warning")],
        7
    );
    assert!(
        s.get(
            "kube_event_exporter_watch_events_total",
            &[("type", "MODIFIED")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the count update arrived as a MODIFIED watch event"
    );
    assert_eq!(s.value("kube_event_exporter_watch_gaps_total"), 0.0);

    // The stream closes; what happens meanwhile arrives through the re-watch.
    fake.close_watches();
    m.create(
        fake,
        &new_event("shop", "Pod", "api-4", "Started", "Normal", 1),
    );
    m.create(
        fake,
        &series(
            new_event("kube-system", "Pod", "coredns-z", "Scheduled", "Normal", 1),
            "default-scheduler",
        ),
    );
    exporter.wait_totals(&m.totals()).await;

    // Compaction: an in-stream 410 forces a relist that finds the new and updated events
    // and re-delivers the unchanged ones, which count nothing.
    fake.expire();
    m.create(
        fake,
        &new_event("prod", "Pod", "db-2", "BackOff", "Warning", 5),
    );
    m.create(
        fake,
        &new_event("default", "Node", "node-2", "Rebooted", "Warning", 1),
    );
    m.set_count(fake, "kube-system", &sched, 6);
    exporter.wait_totals(&m.totals()).await;
    let s = exporter.metrics().await;
    assert!(
        s.value("kube_event_exporter_watch_gaps_total") >= 1.0,
        "gap counted"
    );
    assert!(
        s.get(
            "kube_event_exporter_occurrences_skipped_total",
            &[("reason", "duplicate")]
        )
        .unwrap_or(0.0)
            >= 10.0,
        "relist duplicates counted"
    );

    // HTTP 500 and HTTP 410 answers to the next requests: retried, relisted.
    fake.fail_next(500);
    fake.fail_next(410);
    fake.fail_next(500);
    fake.close_watches();
    m.create(
        fake,
        &new_event("shop", "Pod", "api-5", "Failed", "Warning", 1),
    );
    m.create(
        fake,
        &new_event("shop", "Pod", "api-5", "ErrImagePull", "Warning", 2),
    );
    exporter.wait_totals(&m.totals()).await;

    // A stalled stream (200, then silence) is dropped after timeoutSeconds + 5 s.
    fake.stall_next_watch();
    fake.close_watches();
    m.create(
        fake,
        &new_event("prod", "Pod", "db-3", "Created", "Normal", 1),
    );
    exporter.wait_totals(&m.totals()).await;

    // A duplicate delivery (MODIFIED, count unchanged) and a deletion add nothing.
    let skipped_before = exporter
        .metrics()
        .await
        .get(
            "kube_event_exporter_occurrences_skipped_total",
            &[("reason", "duplicate")],
        )
        .unwrap_or(0.0);
    fake.touch("shop", &backoff);
    fake.delete("shop", &pulled);
    m.create(
        fake,
        &new_event("default", "Node", "node-3", "NodeReady", "Normal", 1),
    );
    m.create(
        fake,
        &new_event("prod", "Pod", "db-4", "Pulling", "Normal", 1),
    );
    exporter.wait_totals(&m.totals()).await;
    let s = exporter.metrics().await;
    assert!(
        s.get(
            "kube_event_exporter_occurrences_skipped_total",
            &[("reason", "duplicate")]
        )
        .unwrap_or(0.0)
            > skipped_before
    );
    assert!(
        s.get(
            "kube_event_exporter_watch_events_total",
            &[("type", "DELETED")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(s.value("kube_event_exporter_watch_restarts_total") >= 4.0);
    assert_eq!(
        s.value("kube_event_exporter_decode_errors_total"),
        0.0,
        "{}",
        exporter
            .logs()
            .lines()
            .filter(|l| l.contains("undecodable"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(m.0.len() >= 20, "the scenario has at least 20 events");
    (m.totals(), exporter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_totals_are_exact_through_both_apis_and_in_prometheus() {
    let (fake_v1, fake_events) = (FakeApiServer::start().await, FakeApiServer::start().await);
    let ((core_totals, core), (events_totals, events)) = tokio::join!(
        play(&fake_v1, &["--events-api", "v1"]),
        play(&fake_events, &[])
    );
    assert_eq!(core_totals, events_totals);
    assert_eq!(
        core.metrics().await.event_totals(),
        events.metrics().await.event_totals()
    );
    assert!(
        fake_v1
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/api/v1/") || !r.is_events())
    );
    assert!(
        fake_events
            .requests()
            .iter()
            .filter(|r| r.is_events())
            .all(|r| r.path.starts_with("/apis/events.k8s.io/v1/"))
    );
    let namespaces: std::collections::BTreeSet<_> =
        core_totals.keys().map(|k| k.0.clone()).collect();
    assert!(namespaces.len() >= 3);

    // A real Prometheus scrapes both and answers the exact totals through its query API.
    let prometheus = Prometheus::start(&[core.addr, events.addr], &[]).await;
    for exporter in [&core, &events] {
        let promql = format!("kube_events_total{{instance=\"{}\"}}", exporter.addr);
        wait_for(
            &format!("Prometheus to answer the exact totals of {}", exporter.addr),
            Duration::from_secs(40),
            Duration::from_millis(250),
            || async {
                let data = prometheus.query(&promql).await?;
                let last: Totals = data["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let l = |k: &str| r["metric"][k].as_str().unwrap_or_default().to_owned();
                        let v: f64 = r["value"][1].as_str().unwrap_or("0").parse().unwrap_or(0.0);
                        (
                            (l("namespace"), l("kind"), l("reason"), l("type")),
                            v as u64,
                        )
                    })
                    .collect();
                if last == core_totals {
                    Ok(())
                } else {
                    Err(format!(
                        "expected {core_totals:#?}\ngot {last:#?}\n{}",
                        prometheus.logs()
                    ))
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_initial_list() {
    let fake = FakeApiServer::start().await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 2));
    fake.hold_lists(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let exporter = Exporter::start(&["--kubeconfig", kubeconfig.to_str().expect("utf-8")]).await;
    wait_for(
        "the list request to arrive",
        Duration::from_secs(10),
        POLL,
        || async {
            fake.requests()
                .iter()
                .any(super::support::fake_apiserver::Request::is_list)
                .then_some(())
        },
    )
    .await;
    assert_eq!(exporter.get("/readyz").await.0, 503);
    assert_eq!(exporter.get("/healthz").await.0, 200);
    fake.hold_lists(false);
    exporter.wait_ready().await;
    let expected: Totals = [(totals_key("shop", "Pod", "BackOff", "Warning"), 2)].into();
    // Ready means the listed events are already counted.
    assert_eq!(exporter.metrics().await.event_totals(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_the_api_server_refuses_and_recovers() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let exporter = Exporter::start(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--health-failure-threshold",
        "1s",
    ])
    .await;
    exporter.wait_ready().await;
    assert_eq!(exporter.get("/healthz").await.0, 200);

    fake.refuse_all(true);
    let body = exporter
        .wait_status("/healthz", 503, Duration::from_secs(20))
        .await;
    assert!(body.contains("failing"), "{body}");

    fake.refuse_all(false);
    exporter
        .wait_status("/healthz", 200, Duration::from_secs(40))
        .await;
    // It recovered by watching again, and counts new events.
    fake.create(&new_event("shop", "Pod", "api-9", "BackOff", "Warning", 1));
    exporter
        .wait_totals(&[(totals_key("shop", "Pod", "BackOff", "Warning"), 1)].into())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_namespaces_are_watched_each_and_only() {
    let fake = FakeApiServer::start().await;
    fake.create(&new_event("shop", "Pod", "a", "BackOff", "Warning", 2));
    fake.create(&new_event("prod", "Pod", "b", "BackOff", "Warning", 3));
    fake.create(&new_event("other", "Pod", "c", "BackOff", "Warning", 5));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let exporter = Exporter::start(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--namespace",
        "shop,prod",
    ])
    .await;
    exporter.wait_ready().await;
    fake.create(&new_event("prod", "Pod", "d", "Unhealthy", "Warning", 1));
    fake.create(&new_event("other", "Pod", "e", "Unhealthy", "Warning", 1));
    let expected: Totals = [
        (totals_key("shop", "Pod", "BackOff", "Warning"), 2),
        (totals_key("prod", "Pod", "BackOff", "Warning"), 3),
        (totals_key("prod", "Pod", "Unhealthy", "Warning"), 1),
    ]
    .into();
    exporter.wait_totals(&expected).await;
    let paths: std::collections::BTreeSet<String> = fake
        .requests()
        .iter()
        .filter(|r| r.is_events())
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/apis/events.k8s.io/v1/namespaces/prod/events",
            "/apis/events.k8s.io/v1/namespaces/shop/events"
        ]
        .map(String::from)
        .into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_is_skipped_and_counted_in_lists_and_watches() {
    let fake = FakeApiServer::start().await;
    fake.create(&new_event("shop", "Pod", "a", "BackOff", "Warning", 2));
    let bad = fake.create(&new_event("shop", "Pod", "b", "BackOff", "Warning", 1));
    fake.corrupt("shop", &bad);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let exporter = Exporter::start(&["--kubeconfig", kubeconfig.to_str().expect("utf-8")]).await;
    exporter.wait_ready().await;
    let key = totals_key("shop", "Pod", "BackOff", "Warning");
    // The list page holds the bad item: the good one on the same page still counts.
    exporter.wait_totals(&[(key.clone(), 2)].into()).await;
    let errors = "kube_event_exporter_decode_errors_total";
    assert_eq!(exporter.metrics().await.value(errors), 1.0);
    // In the watch: the bad line is skipped, the stream goes on.
    fake.corrupt("shop", &bad);
    fake.create(&new_event("shop", "Pod", "c", "BackOff", "Warning", 1));
    exporter.wait_totals(&[(key, 3)].into()).await;
    assert_eq!(exporter.metrics().await.value(errors), 2.0);
    let restarts = exporter
        .metrics()
        .await
        .value("kube_event_exporter_watch_restarts_total");
    assert_eq!(restarts, 0.0, "a bad event is not a failed watch");
}
