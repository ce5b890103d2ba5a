//! The pipeline in process, built as the binary builds it ([`Parts::build`]) and driven through
//! its channel on a paused clock: one update reaches every consumer (the counters, the archive,
//! the alert queue, readiness), duplicates and filtered events reach none, and the `/metrics`
//! exposition it leaves matches a golden file.

// Counter samples are integers, exact in f64: comparing them exactly is right.
#![allow(clippy::float_cmp)]

use std::{path::Path, sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use clap::Parser;
use jiff::Timestamp;
use kube_event_exporter::{
    alerting::Alerting,
    app::Parts,
    archive::Archive,
    config::{Args, Config},
    event::{Event, EventType, ObjectRef},
    http::{AppState, router},
    source::SourceMsg,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Regenerates the golden files instead of comparing with them.
const UPDATE: &str = "UPDATE_GOLDEN";

fn event(uid: &str, namespace: &str, reason: &str, type_: EventType, count: u64) -> Event {
    let at = Timestamp::now();
    Event {
        uid: uid.into(),
        namespace: namespace.into(),
        name: format!("api-7d9f.{uid}"),
        resource_version: count.to_string(),
        regarding: ObjectRef {
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: "api-7d9f".into(),
            uid: "pod-uid".into(),
            api_version: "v1".into(),
            field_path: "spec.containers{api}".into(),
        },
        reason: reason.into(),
        type_,
        message: format!("{reason} happened"),
        count,
        first_seen: at,
        last_seen: at,
        source: "kubelet".into(),
        host: "node-1".into(),
        reporting_instance: String::new(),
        action: String::new(),
        workload: kube_event_exporter::event::Workload::default(),
    }
}

/// The exporter's parts for a replay into `dir`, watching `namespaces`, with one Alertmanager
/// that nothing delivers to: its queue is read by the test.
struct Running {
    tx: tokio::sync::mpsc::Sender<SourceMsg>,
    state: AppState,
    alerting: Arc<Alerting>,
    archive: Archive,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn start(dir: &Path, namespaces: &str, extra: &[&str]) -> Running {
    let path = dir.join("archive.redb");
    let mut args = vec![
        "kube-event-exporter",
        "--replay",
        "-",
        "--archive-path",
        path.to_str().expect("utf-8"),
        "--namespace",
        namespaces,
        "--alertmanager-url",
        "http://127.0.0.1:9",
    ];
    args.extend_from_slice(extra);
    let config = Config::try_from(Args::try_parse_from(args).expect("args")).expect("config");
    let archive = Archive::open(&config.archive.path).expect("open");
    let parts = Parts::build(&config, archive.clone(), 1).expect("parts");
    let stop = CancellationToken::new();
    let tasks = vec![
        tokio::spawn(parts.archive_writer.run(stop.clone())),
        tokio::spawn(parts.pipeline.run(stop.clone())),
    ];
    Running {
        tx: parts.source_ctx.tx,
        state: parts.state,
        alerting: parts.alerting.expect("alerting on"),
        archive,
        stop,
        tasks,
    }
}

impl Running {
    async fn send(&self, msg: SourceMsg) {
        self.tx.send(msg).await.expect("pipeline running");
    }

    /// An update of the Event `uid` in `namespace` with `reason`, `type_` and `count`.
    async fn apply(&self, uid: &str, namespace: &str, reason: &str, type_: EventType, count: u64) {
        self.send(SourceMsg::Applied(Box::new(event(
            uid, namespace, reason, type_, count,
        ))))
        .await;
    }

    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.expect("join").expect("task");
        }
    }
}

/// Lets every task run and the writer's one-second commit pass: on a paused clock this is
/// deterministic, the runtime advances time only once every task waits.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// The update of one Warning event fans out to the counters, the archive, the alert queue and
/// readiness; a repeat of the same count is a duplicate and a namespace outside the filter is
/// filtered, and neither reaches any consumer.
#[tokio::test(start_paused = true)]
async fn an_update_reaches_every_consumer_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = start(dir.path(), "shop", &[]);
    let labels = [
        ("namespace", "shop"),
        ("kind", "Pod"),
        ("reason", "BackOff"),
        ("type", "Warning"),
    ];
    let m = run.state.metrics.clone();

    run.apply("e1", "shop", "BackOff", EventType::Warning, 1)
        .await;
    run.apply("e1", "shop", "BackOff", EventType::Warning, 3)
        .await;
    settle().await;
    assert!(
        !run.state.health.is_ready(),
        "ready before the source synced"
    );
    run.send(SourceMsg::Synced).await;
    // The same count again, and an event of a namespace that is not watched.
    run.apply("e1", "shop", "BackOff", EventType::Warning, 3)
        .await;
    run.apply("e2", "other", "BackOff", EventType::Warning, 5)
        .await;
    settle().await;

    assert!(run.state.health.is_ready());
    assert_eq!(m.sample("kube_events_total", &labels), 3.0);
    let skipped = |reason| {
        m.sample(
            "kube_event_exporter_occurrences_skipped_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(skipped("duplicate"), 1.0);
    assert_eq!(skipped("filtered"), 1.0);
    assert_eq!(m.sample("kube_event_exporter_ledger_entries", &[]), 1.0);

    let archived = run.archive.recent(0, 10).expect("recent");
    assert_eq!(archived.len(), 1, "one record per event: {archived:?}");
    assert_eq!((archived[0].uid.as_str(), archived[0].count), ("e1", 3));
    // The gauges follow each commit.
    assert_eq!(m.sample("kube_event_exporter_archive_records", &[]), 1.0);

    let queue = &run.alerting.queues()[0];
    let alerts = queue.take_batch(10);
    assert_eq!(alerts.len(), 1, "updates of one alert coalesce: {alerts:?}");
    assert_eq!(alerts[0].labels["reason"], "BackOff");
    assert_eq!(alerts[0].labels["namespace"], "shop");
    assert_eq!(alerts[0].annotations["count"], "3");
    run.stop().await;
}

/// `--metrics-max-series` bounds `kube_events_total`: the label sets beyond it are counted in
/// the `_overflow` series, and every occurrence is still counted once.
#[tokio::test(start_paused = true)]
async fn label_sets_beyond_the_series_cap_are_counted_in_one_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = start(dir.path(), "shop", &["--metrics-max-series", "2"]);
    for i in 0..50u64 {
        let reason = format!("Reason{i}");
        run.apply(
            &format!("e{i}"),
            "shop",
            &reason,
            EventType::Warning,
            1 + i % 3,
        )
        .await;
    }
    settle().await;
    let m = &run.state.metrics;
    let total = |reason: &str| m.sample("kube_events_total", &[("reason", reason)]);
    let all: f64 = (0..50u64).map(|i| 1.0 + (i % 3) as f64).sum();
    assert_eq!(total("Reason0") + total("Reason1"), 1.0 + 2.0);
    assert_eq!(total("_overflow"), all - 3.0);
    assert_eq!(m.sample("kube_events_total", &[]), all, "nothing lost");
    let exposition = m.encode_classic();
    let series = exposition
        .lines()
        .filter(|l| l.starts_with("kube_events_total{"))
        .count();
    assert_eq!(series, 3, "{exposition}");
    run.stop().await;
}

/// The exposition's metric names, help, types and label sets, in both formats. Values that
/// depend on timing, file sizes or the clock are masked; every other value is exact.
#[tokio::test(start_paused = true)]
async fn metrics_exposition_matches_golden_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = start(dir.path(), "shop", &[]);
    for (uid, reason, type_, count) in [
        ("e1", "BackOff", EventType::Warning, 2),
        ("e2", "Pulled", EventType::Normal, 1),
        ("e1", "BackOff", EventType::Warning, 2),
    ] {
        run.apply(uid, "shop", reason, type_, count).await;
    }
    run.send(SourceMsg::Synced).await;
    settle().await;

    for (accept, golden) in [
        ("application/openmetrics-text", "metrics.openmetrics"),
        ("text/plain", "metrics.txt"),
    ] {
        let response = router(run.state.clone())
            .oneshot(
                Request::get("/metrics")
                    .header("accept", accept)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = mask(std::str::from_utf8(&body).expect("utf-8"));
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(golden);
        if std::env::var_os(UPDATE).is_some() {
            std::fs::write(&path, &text).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run with {UPDATE}=1 to create it", path.display())
        });
        assert!(
            text == want,
            "{golden} differs from {} (run with {UPDATE}=1 to accept):\n{}",
            path.display(),
            diff(&want, &text)
        );
    }
    run.stop().await;
}

/// Series whose values depend on timing, the clock or the file's size.
const VARYING: [&str; 4] = [
    "kube_event_exporter_archive_commit_duration_seconds",
    "kube_event_exporter_archive_size_bytes",
    "kube_event_exporter_last_event_timestamp_seconds",
    "kube_event_exporter_alert_post_duration_seconds",
];

/// Replaces the value of every sample of a [`VARYING`] series with `<varies>`, and sorts the
/// samples of each family: a family's series come out in hash-map order.
fn mask(text: &str) -> String {
    let mut out = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            samples.sort_unstable();
            out.append(&mut samples);
            out.push(line.to_owned());
            continue;
        }
        let varies = VARYING.iter().any(|m| line.starts_with(m));
        samples.push(match line.rfind(' ') {
            Some(at) if varies => format!("{} <varies>", &line[..at]),
            _ => line.to_owned(),
        });
    }
    samples.sort_unstable();
    out.append(&mut samples);
    out.join("\n") + "\n"
}

/// The lines only in `want` (`-`) and only in `got` (`+`).
fn diff(want: &str, got: &str) -> String {
    let w: Vec<_> = want.lines().collect();
    let g: Vec<_> = got.lines().collect();
    let only = |a: &[&str], b: &[&str], sign| {
        let mut out = String::new();
        for line in a.iter().filter(|line| !b.contains(line)) {
            out.extend([sign, ' ']);
            out.push_str(line);
            out.push('\n');
        }
        out
    };
    only(&w, &g, '-') + &only(&g, &w, '+')
}
