//! Measurements 2, 3 and 5, and RSS: the real binary against the fake API server over HTTP;
//! and a big replay.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube_event_exporter::source::wire::{self, Shape};

use crate::{
    common::{
        REASONS, avg_len, child_status, core_event, cpu_seconds, floor_decode_us, mib, percentile,
        process_cpu_seconds, quick,
    },
    support::{
        Exporter,
        alertmanager::{Alertmanager, Webhook, config},
        fake_apiserver::{FakeApiServer, NewEvent, new_event},
        objects::{Builder, pod},
    },
};

/// The real binary against `fake`, ready, with archive rate limits that never bite (so every
/// record is written).
async fn unlimited_exporter(
    fake: &FakeApiServer,
    dir: &std::path::Path,
    extra: &[&str],
) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let mut args = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8")];
    args.extend(extra);
    unlimited(&mut args);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

/// Adds archive rate limits that never bite to `args`: every record is written.
pub fn unlimited(args: &mut Vec<&str>) {
    for flag in [
        "--archive-namespace-rate",
        "--archive-namespace-burst",
        "--archive-rate",
        "--archive-burst",
    ] {
        args.extend([flag, "1000000"]);
    }
}

/// A fake API server holding `n` events in 50 namespaces, as a big cluster's would: last
/// seen over the past hour (the API server keeps Events an hour), about Pods gone since.
async fn preloaded(n: usize, type_: &str, count: u32) -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.preload((0..n).map(|i| NewEvent {
        age: Duration::from_secs((i % 3600) as u64),
        ..new_event(
            &format!("ns-{}", i % 50),
            "Pod",
            &format!("p-{i}"),
            REASONS[i % 8],
            type_,
            count,
        )
    }));
    fake
}

/// The real binary after an initial list of 100k distinct events, archived: the default
/// configuration (archive on, forwarding off).
pub async fn rss_after_100k() -> BTreeMap<&'static str, f64> {
    // Idle first: ready on a cluster with no events, settled (the exporter gives start-up's
    // memory back within a second or two of being ready), then scraped once, as Prometheus
    // would, so the code that serves it is in.
    let empty = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let idle = unlimited_exporter(&empty, dir.path(), &[]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    idle.metrics().await;
    let idle_rss = |field| mib(child_status(idle.pid(), field));
    let mut out = BTreeMap::from([
        ("idle_rss_mib", idle_rss("VmRSS:")),
        ("idle_rss_anon_mib", idle_rss("RssAnon:")),
        ("idle_rss_file_mib", idle_rss("RssFile:")),
    ]);
    drop(idle);

    let n = 100_000;
    let fake = preloaded(n, "Warning", 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = unlimited_exporter(&fake, dir.path(), &[]).await;
    while exporter
        .metrics()
        .await
        .value("kube_event_exporter_archive_writes_total")
        < n as f64
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out.extend([
        (
            "exporter_rss_mib",
            mib(child_status(exporter.pid(), "VmRSS:")),
        ),
        (
            "exporter_peak_rss_mib",
            mib(child_status(exporter.pid(), "VmHWM:")),
        ),
        // Of the RSS: heap and stacks, and pages of the binary and the archive file.
        (
            "exporter_rss_anon_mib",
            mib(child_status(exporter.pid(), "RssAnon:")),
        ),
        (
            "exporter_rss_file_mib",
            mib(child_status(exporter.pid(), "RssFile:")),
        ),
    ]);
    out
}

async fn total_events(exporter: &Exporter) -> u64 {
    exporter.metrics().await.event_totals().values().sum()
}

/// The Pods the end-to-end events are about (`p-0`…`p-999`, Pod `p-j` in `ns-{j % 20}`), so
/// each event's workload is found at once, as in a cluster where a Pod exists before its events.
const PODS: usize = 1000;

pub async fn end_to_end() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 5_000 } else { 50_000 };
    let fake = FakeApiServer::start().await;
    fake.set_bookmark_interval(Duration::from_secs(3600));
    for j in 0..PODS {
        let ns = format!("ns-{}", j % 20);
        fake.apply("pods", pod(&ns, &format!("p-{j}")).container("app").build());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = unlimited_exporter(&fake, dir.path(), &[]).await;
    let pid = exporter.pid().to_string();
    let cpu0 = process_cpu_seconds(&pid);
    let t0 = Instant::now();
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let ns = format!("ns-{}", i % 20);
        let name = fake.create(&new_event(
            &ns,
            "Pod",
            &format!("p-{}", i % PODS),
            REASONS[i % 8],
            "Warning",
            1,
        ));
        names.push((ns, name));
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let offered = t0.elapsed().as_secs_f64();
    let settled = |want: usize| {
        let exporter = &exporter;
        async move {
            loop {
                let s = exporter.metrics().await;
                let counted: u64 = s.event_totals().values().sum();
                if counted as usize >= want
                    && s.value("kube_event_exporter_archive_writes_total") as usize >= want
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    settled(n).await;
    let throughput = n as f64 / t0.elapsed().as_secs_f64();
    // The exporter's own CPU: watch decode, pipeline, archive commits, and its share of
    // answering the /metrics polls above.
    let cpu_us_per_event = (process_cpu_seconds(&pid) - cpu0) * 1e6 / n as f64;

    // Each event once more, its count raised to 2: CPU per count update.
    let cpu0 = process_cpu_seconds(&pid);
    for (i, (ns, name)) in names.iter().enumerate() {
        fake.set_count(ns, name, 2);
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    settled(2 * n).await;
    let cpu_us_per_update = (process_cpu_seconds(&pid) - cpu0) * 1e6 / n as f64;

    // The floor: the lean decode of the same watch lines in this process, as the exporter
    // reads them.
    let lines: Vec<String> = names
        .iter()
        .take(2_000)
        .map(|(ns, name)| {
            let object = fake.get("events", ns, name).expect("the event");
            serde_json::json!({"type": "ADDED", "object": object}).to_string()
        })
        .collect();
    let floor_decode_us = floor_decode_us(&lines, wire::EVENT_UNREAD, |line| {
        wire::watch_line(line, Shape::CoreV1, Timestamp::now()).is_ok()
    });

    // Lag at a fixed offered rate: 500 events/s for a few seconds, sampled every 50th event.
    let rate = 500.0;
    let samples = if quick() { 20 } else { 60 };
    let mut lags = Vec::new();
    let base = total_events(&exporter).await;
    for k in 0..samples {
        for j in 0..50 {
            let i = n + k * 50 + j;
            fake.create(&new_event(
                &format!("ns-{}", i % 20),
                "Pod",
                &format!("p-{}", i % PODS),
                "BackOff",
                "Warning",
                1,
            ));
            tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
        }
        let created = Instant::now();
        let want = base + ((k + 1) * 50) as u64;
        while total_events(&exporter).await < want {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lags.push(created.elapsed());
    }
    lags.sort();
    BTreeMap::from([
        ("events_per_s", throughput),
        ("exporter_cpu_us_per_event", cpu_us_per_event),
        ("exporter_cpu_us_per_count_update", cpu_us_per_update),
        ("floor_event_decode_us", floor_decode_us),
        ("event_line_bytes_avg", avg_len(&lines)),
        ("offered_per_s", n as f64 / offered),
        ("lag_p50_ms", percentile(&lags, 0.5).as_secs_f64() * 1e3),
        ("lag_p99_ms", percentile(&lags, 0.99).as_secs_f64() * 1e3),
        (
            "exporter_peak_rss_mib",
            mib(child_status(exporter.pid(), "VmHWM:")),
        ),
    ])
}

pub async fn startup() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 50_000 } else { 1_000_000 };
    let fake = preloaded(n, "Normal", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let t0 = Instant::now();
    let fake_cpu0 = cpu_seconds();
    let exporter = Exporter::start(&["--kubeconfig", kubeconfig.to_str().expect("utf-8")]).await;
    exporter
        .wait_status("/readyz", 200, Duration::from_secs(600))
        .await;
    let ready = t0.elapsed().as_secs_f64();
    let peak = mib(child_status(exporter.pid(), "VmHWM:"));
    let exporter_cpu = process_cpu_seconds(&exporter.pid().to_string());
    let fake_cpu = cpu_seconds() - fake_cpu0;
    // What the exporter holds once the list is behind it: every event remembered, the writer's
    // backlog committed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    BTreeMap::from([
        ("events", n as f64),
        ("ready_s", ready),
        (
            "exporter_rss_settled_mib",
            mib(child_status(exporter.pid(), "VmRSS:")),
        ),
        // Where the wall time went on the 2 shared cores: the exporter, and this process
        // (the fake API server encoding the pages).
        ("exporter_cpu_s", exporter_cpu),
        ("fake_apiserver_cpu_s", fake_cpu),
        ("exporter_peak_rss_mib", peak),
        (
            "list_requests",
            fake.requests().iter().filter(|r| r.is_list()).count() as f64,
        ),
    ])
}

/// A restart with a big archive: 1M events listed, all archived, the exporter killed and
/// started again on the same archive. The ledger comes back from the records; the watch resumes
/// from the checkpoint without a list.
pub async fn restart() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 50_000 } else { 1_000_000 };
    let fake = preloaded(n, "Normal", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive.redb");
    let archive_args = ["--archive-path", archive.to_str().expect("utf-8")];
    let mut first = unlimited_exporter(&fake, dir.path(), &archive_args).await;
    // Every event written, or dropped when the list outran the writer (its ledger entry is
    // still written).
    let dropped = loop {
        let m = first.metrics().await;
        let dropped = m
            .get(
                "kube_event_exporter_archive_dropped_total",
                &[("reason", "queue_full")],
            )
            .unwrap_or(0.0);
        if m.value("kube_event_exporter_archive_writes_total") + dropped >= n as f64 {
            break dropped;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Give the last checkpoint its commit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill();
    let lists = fake.requests().iter().filter(|r| r.is_list()).count();
    let t0 = Instant::now();
    let second = unlimited_exporter(&fake, dir.path(), &archive_args).await;
    let ready = t0.elapsed().as_secs_f64();
    let restored = second
        .metrics()
        .await
        .value("kube_event_exporter_ledger_entries");
    BTreeMap::from([
        ("events", n as f64),
        ("ready_s", ready),
        ("ledger_entries_restored", restored),
        ("records_dropped_first_life", dropped),
        (
            "lists_after_restart",
            (fake.requests().iter().filter(|r| r.is_list()).count() - lists) as f64,
        ),
        (
            "exporter_peak_rss_mib",
            mib(child_status(second.pid(), "VmHWM:")),
        ),
    ])
}

pub async fn alert_latency() -> BTreeMap<&'static str, f64> {
    let samples = if quick() { 20 } else { 100 };
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(&webhook, &[])).await;
    let fake = FakeApiServer::start().await;
    // Each alert is about a Pod that exists, as in a cluster: its workload is known at once.
    for k in 0..samples {
        fake.apply(
            "pods",
            pod("shop", &format!("pod-{k}")).container("app").build(),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let url = am.url();
    let exporter = Exporter::start(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--alertmanager-url",
        &url,
    ])
    .await;
    exporter.wait_ready().await;
    let mut lags = Vec::new();
    for k in 0..samples {
        let name = format!("pod-{k}");
        let t0 = Instant::now();
        fake.create(&new_event("shop", "Pod", &name, "BackOff", "Warning", 1));
        while !webhook
            .alerts("/default")
            .iter()
            .any(|a| a["labels"]["name"] == name.as_str())
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lags.push(t0.elapsed());
    }
    lags.sort();
    BTreeMap::from([
        ("p50_ms", percentile(&lags, 0.5).as_secs_f64() * 1e3),
        ("p99_ms", percentile(&lags, 0.99).as_secs_f64() * 1e3),
    ])
}

/// A big replay: a `kubectl get events -o json` List of 200k events (20k in quick mode),
/// pretty-printed as kubectl prints it, with every record archived. The budget is its peak RSS.
pub async fn replay_list() -> BTreeMap<&'static str, f64> {
    use std::io::Write;
    let n: u64 = if quick() { 20_000 } else { 200_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("events.json");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("input"));
        f.write_all(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n")
            .expect("write");
        for i in 0..n {
            let pretty = serde_json::to_string_pretty(&core_event(i, 1, i)).expect("json");
            f.write_all(b"        ").expect("write");
            f.write_all(pretty.replace('\n', "\n        ").as_bytes())
                .expect("write");
            f.write_all(if i + 1 < n { b",\n" } else { b"\n" })
                .expect("write");
        }
        f.write_all(b"    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n")
            .expect("write");
    }
    let input_mib = std::fs::metadata(&input).expect("size").len() as f64 / 1_048_576.0;
    let mut args = vec!["--replay", input.to_str().expect("utf-8")];
    unlimited(&mut args);
    let started = Instant::now();
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    let ready_s = started.elapsed().as_secs_f64();
    let m = exporter.metrics().await;
    BTreeMap::from([
        ("events", n as f64),
        ("input_mib", input_mib),
        ("ready_s", ready_s),
        (
            "exporter_peak_rss_mib",
            mib(child_status(exporter.pid(), "VmHWM:")),
        ),
        (
            "records_archived",
            m.value("kube_event_exporter_archive_writes_total"),
        ),
        (
            "records_dropped",
            m.value("kube_event_exporter_archive_dropped_total"),
        ),
    ])
}
