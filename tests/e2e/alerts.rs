//! Alert forwarding against a real Alertmanager with a webhook receiver: routing with rules,
//! repeats updating one alert, resolution, outages, an Alertmanager restart, two Alertmanagers
//! of which a frozen one delays no other, a 4xx that is not retried, and an exporter restart
//! that re-alerts nothing old or stale.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
    Exporter, POLL,
    alertmanager::{Alertmanager, Received, Webhook, config},
    barrier,
    fake_apiserver::{FakeApiServer, new_event},
    free_port, totals_key, wait_for,
};

const RULES: &str = r#"
rules:
  - match: ['namespace=~"prod(-.*)?"', 'reason="OOMKilling"']
    severity: critical
  - match: ['reason="FailedMount"']
    alert: false
"#;

/// Starts the exporter against `fake`, posting to `alertmanagers`, with the archive in `dir`.
async fn exporter(
    fake: &FakeApiServer,
    dir: &Path,
    alertmanagers: &[String],
    extra: &[&str],
) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, RULES).expect("write rules");
    let archive = dir.join("archive.redb");
    let urls = alertmanagers.join(",");
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--archive-path",
        archive.to_str().expect("utf-8"),
        "--config",
        rules.to_str().expect("utf-8"),
        "--alertmanager-url",
        &urls,
        "--alert-label",
        "cluster=test",
        "--external-url",
        "http://kee.test:9102",
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

fn label<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["labels"][name].as_str().unwrap_or_default()
}

fn annotation<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["annotations"][name].as_str().unwrap_or_default()
}

/// Polls Alertmanager until `check` accepts its alerts.
async fn wait_alerts<T>(
    am: &Alertmanager,
    what: &str,
    timeout: Duration,
    check: impl Fn(&[Value]) -> Option<T>,
) -> T {
    wait_for(what, timeout, Duration::from_millis(100), || async {
        let alerts = am.alerts().await;
        check(&alerts).ok_or_else(|| format!("Alertmanager has {alerts:#?}"))
    })
    .await
}

fn with_reason<'a>(alerts: &'a [Value], reason: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| label(a, "reason") == reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_deliver_each_alert_to_its_receiver_and_repeats_update_one_alert() {
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(
        &webhook,
        &[("namespace=\"shop\"", "a"), ("severity=\"critical\"", "b")],
    ))
    .await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[am.url()], &[]).await;

    let backoff = fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3));
    fake.create(&new_event(
        "prod",
        "Pod",
        "db-0",
        "OOMKilling",
        "Warning",
        1,
    ));
    fake.create(&new_event("shop", "Pod", "api-1", "Pulled", "Normal", 1));
    fake.create(&new_event(
        "shop",
        "Pod",
        "api-2",
        "FailedMount",
        "Warning",
        2,
    ));

    let to_a = wait_for("receiver a", Duration::from_secs(20), POLL, || async {
        Some(webhook.alerts("/a")).filter(|a| !a.is_empty())
    })
    .await;
    let to_b = wait_for("receiver b", Duration::from_secs(20), POLL, || async {
        Some(webhook.alerts("/b")).filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(to_a.len(), 1, "{to_a:#?}");
    assert_eq!(to_b.len(), 1, "{to_b:#?}");
    let (a, b) = (&to_a[0], &to_b[0]);
    for (name, want) in [
        ("alertname", "BackOff"),
        ("alerttype", "event"),
        ("namespace", "shop"),
        ("kind", "Pod"),
        ("name", "api-1"),
        ("reason", "BackOff"),
        ("severity", "warning"),
        ("cluster", "test"),
    ] {
        assert_eq!(label(a, name), want, "{name}");
    }
    assert_eq!(
        a["labels"].as_object().map(serde_json::Map::len),
        Some(8),
        "identity labels only: {a:#}"
    );
    assert_eq!(annotation(a, "summary"), "Pod shop/api-1: BackOff");
    assert_eq!(annotation(a, "message"), "BackOff on Pod/api-1");
    assert_eq!(annotation(a, "count"), "3");
    assert_eq!(annotation(a, "source"), "kubelet");
    assert!(
        !annotation(a, "event_uid").is_empty()
            && !annotation(a, "first_seen").is_empty()
            && !annotation(a, "last_seen").is_empty()
    );
    assert_eq!(
        a["generatorURL"],
        "http://kee.test:9102/?namespace=shop&kind=Pod&name=api-1"
    );
    assert_eq!(
        (
            label(b, "reason"),
            label(b, "severity"),
            label(b, "namespace")
        ),
        ("OOMKilling", "critical", "prod")
    );
    // The Normal event and the silenced reason never reach Alertmanager: a later alert goes
    // through the same queue, so once it is there, they would be too.
    let marker = new_event("shop", "Pod", "api-9", "Unhealthy", "Warning", 1);
    let all = barrier(&fake, &marker, || async {
        let alerts = am.alerts().await;
        alerts
            .iter()
            .any(|a| label(a, "name") == "api-9")
            .then_some(alerts)
    })
    .await;
    let mut got: Vec<(&str, &str)> = all
        .iter()
        .map(|a| (label(a, "name"), label(a, "reason")))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [
            ("api-1", "BackOff"),
            ("api-9", "Unhealthy"),
            ("db-0", "OOMKilling")
        ],
        "{all:#?}"
    );
    assert!(webhook.alerts("/default").is_empty());

    // Four repeats: still one alert, same fingerprint; its count and endsAt move. The fake's
    // timestamps have whole seconds: the repeats carry a later one once the clock has passed
    // the alert's last_seen.
    let first = with_reason(&all, "BackOff")[0].clone();
    let last_seen: jiff::Timestamp = annotation(&first, "last_seen").parse().expect("last_seen");
    wait_for(
        "the clock to pass the alert's last_seen",
        Duration::from_secs(3),
        POLL,
        || async {
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .expect("rounding to seconds cannot overflow");
            (now > last_seen).then_some(())
        },
    )
    .await;
    for count in 4..=7 {
        fake.set_count("shop", &backoff, count);
    }
    let updated = wait_alerts(&am, "count 7", Duration::from_secs(20), |alerts| {
        let b = with_reason(alerts, "BackOff");
        (b.len() == 1 && annotation(b[0], "count") == "7").then(|| b[0].clone())
    })
    .await;
    assert_eq!(updated["fingerprint"], first["fingerprint"]);
    assert_eq!(updated["startsAt"], first["startsAt"]);
    assert!(
        updated["endsAt"].as_str() > first["endsAt"].as_str(),
        "endsAt moved: {} → {}",
        first["endsAt"],
        updated["endsAt"]
    );
    let s = exporter.metrics().await;
    assert!(
        s.get(
            "kube_event_exporter_alerts_posted_total",
            &[("alertmanager", &am.url())]
        )
        .unwrap_or(0.0)
            >= 2.0
    );
    assert_eq!(
        s.get(
            "kube_event_exporter_alerts_skipped_total",
            &[("reason", "rule")]
        ),
        Some(1.0),
        "the silenced FailedMount, and only it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_without_new_occurrences_resolves() {
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(&webhook, &[])).await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _exporter = exporter(
        &fake,
        dir.path(),
        &[am.url()],
        &[
            "--alert-resolve-after",
            "3s",
            "--alert-resend-interval",
            "1s",
        ],
    )
    .await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 1));
    let resolved = wait_for(
        "the resolved notification",
        Duration::from_secs(30),
        POLL,
        || async {
            webhook
                .alerts("/default")
                .into_iter()
                .find(|a| a["status"] == "resolved")
        },
    )
    .await;
    assert_eq!(label(&resolved, "reason"), "BackOff");
    assert!(
        webhook
            .alerts("/default")
            .iter()
            .any(|a| a["status"] == "firing"),
        "it fired first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raised_while_alertmanager_is_down_arrive_when_it_comes_up() {
    let webhook = Webhook::start(200).await;
    let am_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[format!("http://{am_addr}")], &[]).await;
    for i in 0..5 {
        fake.create(&new_event(
            "shop",
            "Pod",
            &format!("api-{i}"),
            "BackOff",
            "Warning",
            2,
        ));
    }
    // Counting never waits for Alertmanager: the totals are there while its posts fail.
    exporter
        .wait_totals(&[(totals_key("shop", "Pod", "BackOff", "Warning"), 10)].into())
        .await;
    let am_url = format!("http://{am_addr}");
    let (s, failures) = wait_for(
        "failed posts to be counted",
        Duration::from_secs(10),
        POLL,
        || async {
            let s = exporter.metrics().await;
            let failures = s
                .get(
                    "kube_event_exporter_alert_post_failures_total",
                    &[("alertmanager", &am_url), ("reason", "connect")],
                )
                .filter(|v| *v >= 1.0)?;
            Some((s, failures))
        },
    )
    .await;
    // In the same scrape: every failure is a refused connection, and nothing was accepted.
    let all_failures: f64 =
        s.0.iter()
            .filter(|(name, labels, _)| {
                name == "kube_event_exporter_alert_post_failures_total"
                    && labels.get("alertmanager") == Some(&am_url)
            })
            .map(|(_, _, v)| v)
            .sum();
    assert_eq!(all_failures, failures, "only connection failures");
    assert_eq!(
        s.get(
            "kube_event_exporter_alerts_posted_total",
            &[("alertmanager", &am_url)]
        )
        .unwrap_or(0.0),
        0.0
    );
    wait_for(
        "the archive, which does not wait either",
        Duration::from_secs(10),
        POLL,
        || async {
            exporter
                .get("/api/v1/events?namespace=shop")
                .await
                .1
                .contains("api-4")
                .then_some(())
        },
    )
    .await;

    let am = Alertmanager::start_at(am_addr, &config(&webhook, &[])).await;
    let alerts = wait_alerts(&am, "all five alerts", Duration::from_secs(30), |a| {
        (a.len() == 5).then(|| a.to_vec())
    })
    .await;
    // The very alerts that waited, each once, with their count; none dropped from the queue.
    let mut names: Vec<&str> = alerts.iter().map(|a| label(a, "name")).collect();
    names.sort_unstable();
    assert_eq!(names, ["api-0", "api-1", "api-2", "api-3", "api-4"]);
    for a in &alerts {
        assert_eq!(annotation(a, "count"), "2", "{a:#}");
    }
    assert_eq!(
        exporter.metrics().await.get(
            "kube_event_exporter_alerts_dropped_total",
            &[("alertmanager", &am_url)]
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_alertmanager_gets_active_alerts_back_within_the_resend_interval() {
    let webhook = Webhook::start(200).await;
    let mut am = Alertmanager::start(&config(&webhook, &[])).await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _exporter = exporter(
        &fake,
        dir.path(),
        &[am.url()],
        &["--alert-resend-interval", "2s"],
    )
    .await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 1));
    wait_alerts(&am, "the alert", Duration::from_secs(20), |a| {
        (a.len() == 1).then_some(())
    })
    .await;
    let addr = am.addr;
    am.stop();
    let am = Alertmanager::start_at(addr, &config(&webhook, &[])).await;
    assert!(
        am.alerts().await.is_empty(),
        "a new Alertmanager starts empty"
    );
    let back = wait_alerts(&am, "the alert re-posted", Duration::from_secs(20), |a| {
        (a.len() == 1).then(|| a[0].clone())
    })
    .await;
    assert_eq!(label(&back, "name"), "api-1");
}

/// The exporter's timeout for one post (`Alerting::with_deliverers` in src/alerting/mod.rs): a
/// post to an Alertmanager that takes the request but never answers hangs this long.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alertmanager_gets_every_alert_and_a_dead_one_delays_no_other() {
    let (hook1, hook2) = (Webhook::start(200).await, Webhook::start(200).await);
    let am1 = Alertmanager::start(&config(&hook1, &[])).await;
    let am2 = Alertmanager::start(&config(&hook2, &[])).await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[am1.url(), am2.url()], &[]).await;
    let metric =
        |s: &crate::support::Samples, name: &str| s.get(name, &[("alertmanager", &am2.url())]);
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 1));
    for am in [&am1, &am2] {
        wait_alerts(am, "the alert on both", Duration::from_secs(20), |a| {
            (a.len() == 1).then_some(())
        })
        .await;
    }
    wait_for(
        "the exporter to see the second one accept it",
        Duration::from_secs(10),
        POLL,
        || async {
            metric(
                &exporter.metrics().await,
                "kube_event_exporter_alerts_posted_total",
            )
            .filter(|v| *v == 1.0)
        },
    )
    .await;

    // The second one dies the worst way: it still takes connections and requests but never
    // answers, so each post to it hangs for the whole post timeout.
    am2.freeze().await;
    for name in ["api-2", "api-3"] {
        let raised = Instant::now();
        fake.create(&new_event("shop", "Pod", name, "BackOff", "Warning", 1));
        wait_alerts(
            &am1,
            &format!("the live one to get {name}"),
            Duration::from_secs(20),
            |a| a.iter().any(|a| label(a, "name") == name).then_some(()),
        )
        .await;
        let took = raised.elapsed();
        assert!(
            took < POST_TIMEOUT / 2,
            "the live Alertmanager got {name} {took:?} after it was raised: the frozen one, \
             whose posts hang for {POST_TIMEOUT:?}, held it up"
        );
    }
    // The frozen one was being posted to all along: api-2 is in flight to it, api-3 waits
    // behind, and it has accepted nothing since it froze.
    let s = exporter.metrics().await;
    assert_eq!(
        metric(&s, "kube_event_exporter_alert_queue_length"),
        Some(1.0),
        "api-3 queued behind the hanging post of api-2"
    );
    assert_eq!(
        metric(&s, "kube_event_exporter_alerts_posted_total"),
        Some(1.0)
    );

    // Thawed, it answers the hanging post and gets the rest: delayed, nothing lost.
    am2.thaw();
    for am in [&am1, &am2] {
        wait_alerts(am, "all three on both", Duration::from_secs(20), |a| {
            (a.len() == 3).then_some(())
        })
        .await;
    }
    wait_for(
        "the live one's receiver to be notified of all three",
        Duration::from_secs(20),
        POLL,
        || async {
            let webhook_alerts = hook1.alerts("/default");
            ["api-1", "api-2", "api-3"]
                .iter()
                .all(|n| webhook_alerts.iter().any(|a| label(a, "name") == *n))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_is_not_retried() {
    // The exporter posts straight to a receiver of our own that rejects everything with 400.
    let rejecting = Webhook::start(400).await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(
        &fake,
        dir.path(),
        &[rejecting.url("")],
        &["--alert-resend-interval", "1h"],
    )
    .await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 1));
    wait_for("the first post", Duration::from_secs(20), POLL, || async {
        (rejecting.received().len() == 1).then_some(())
    })
    .await;
    fake.create(&new_event("shop", "Pod", "api-2", "BackOff", "Warning", 1));
    wait_for("the second post", Duration::from_secs(20), POLL, || async {
        (rejecting.received().len() >= 2).then_some(())
    })
    .await;
    // A retry would go out before any later alert (a failed batch goes back to the front of
    // the queue): once a third alert is posted, every retry there was to be is in.
    let names = |post: &Received| -> Vec<String> {
        post.body
            .as_array()
            .expect("array")
            .iter()
            .map(|a| label(a, "name").to_owned())
            .collect()
    };
    let marker = new_event("shop", "Pod", "api-3", "BackOff", "Warning", 1);
    let received = barrier(&fake, &marker, || async {
        let received = rejecting.received();
        received
            .iter()
            .any(|r| names(r).iter().any(|n| n == "api-3"))
            .then_some(received)
    })
    .await;
    assert_eq!(received.len(), 3, "no retries: {received:#?}");
    assert_eq!(received[0].path, "/api/v2/alerts");
    assert_eq!(names(&received[0]), ["api-1"]);
    assert_eq!(
        names(&received[1]),
        ["api-2"],
        "the rejected alert was not sent again"
    );
    assert_eq!(names(&received[2]), ["api-3"]);
    // Each rejection is counted once the exporter has read the answer.
    wait_for(
        "the three rejections to be counted",
        Duration::from_secs(10),
        POLL,
        || async {
            let failures = exporter.metrics().await.get(
                "kube_event_exporter_alert_post_failures_total",
                &[("alertmanager", &rejecting.url("")), ("reason", "http_4xx")],
            );
            if failures == Some(3.0) {
                Ok(())
            } else {
                Err(format!("{failures:?}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_restart_re_alerts_nothing_old_and_nothing_stale() {
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(&webhook, &[])).await;
    let fake = FakeApiServer::start().await;
    // An event whose last occurrence is older than resolve-after (15m): never alerted.
    let mut stale = new_event("shop", "Pod", "old-1", "BackOff", "Warning", 4);
    stale.age = Duration::from_secs(3_600);
    fake.create(&stale);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = exporter(&fake, dir.path(), &[am.url()], &[]).await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 2));
    let before = wait_alerts(&am, "the fresh alert", Duration::from_secs(20), |a| {
        (a.len() == 1).then(|| a[0].clone())
    })
    .await;
    wait_for(
        "the alert's event to be archived",
        Duration::from_secs(10),
        POLL,
        || async {
            first
                .get("/api/v1/events?namespace=shop&name=api-1")
                .await
                .1
                .contains("api-1")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        first.metrics().await.get(
            "kube_event_exporter_alerts_skipped_total",
            &[("reason", "stale")]
        ),
        Some(1.0)
    );
    let notified = webhook.alerts("/default").len();
    first.kill();

    let second = exporter(&fake, dir.path(), &[am.url()], &[]).await;
    // The restart may re-post the active alert unchanged; wait until it has.
    wait_for("the re-post", Duration::from_secs(20), POLL, || async {
        second
            .metrics()
            .await
            .get(
                "kube_event_exporter_alerts_posted_total",
                &[("alertmanager", &am.url())],
            )
            .filter(|v| *v >= 1.0)
    })
    .await;
    // The restored alerts were queued before any new event: once a new event's alert is in
    // Alertmanager, so is everything the second exporter had to say about the old ones.
    let marker = new_event("shop", "Pod", "api-2", "BackOff", "Warning", 1);
    let after = barrier(&fake, &marker, || async {
        let alerts = am.alerts().await;
        alerts
            .iter()
            .any(|a| label(a, "name") == "api-2")
            .then_some(alerts)
    })
    .await;
    assert_eq!(
        after.len(),
        2,
        "the stale event is never alerted: {after:#?}"
    );
    let old = after
        .iter()
        .find(|a| label(a, "name") == "api-1")
        .expect("the old alert is still active");
    for field in ["fingerprint", "startsAt", "endsAt"] {
        assert_eq!(old[field], before[field], "{field} unchanged");
    }
    assert_eq!(annotation(old, "count"), "2");
    // Alertmanager holds the old alert unchanged, so it has nothing new to notify about it;
    // the new alert's notification is the only one.
    let notifications = wait_for(
        "the new alert's notification",
        Duration::from_secs(20),
        POLL,
        || async {
            let all = webhook.alerts("/default");
            all.iter()
                .any(|a| label(a, "name") == "api-2")
                .then_some(all)
        },
    )
    .await;
    let new: Vec<&str> = notifications[notified..]
        .iter()
        .map(|a| label(a, "name"))
        .collect();
    assert_eq!(new, ["api-2"], "no new notification for the old alert");
    assert_eq!(
        second.metrics().await.event_totals(),
        [(totals_key("shop", "Pod", "BackOff", "Warning"), 1)].into(),
        "nothing counted twice: only the new event's occurrence"
    );
}
