//! The benchmark suite. `cargo bench --bench bench` runs the full mode (1M-event runs, each
//! measurement three times, medians); `-- --quick` a quick one (100k-event runs, once each, under
//! two minutes); `-- --runs N` sets the runs. Each measurement runs in its own process, so its
//! peak RSS is its own. Nothing here asserts on time.

#![allow(clippy::too_many_lines, clippy::format_push_string)]

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube_event_exporter::{
    alerting::{AlertSettings, Alerting, delivery::DeliveryQueue},
    archive::{
        Archive, Batch,
        limits::{ArchiveLimiter, ArchiveLimits},
        query::Query,
        writer::{self, WriterSettings},
    },
    event::Event,
    health::Health,
    metrics::Metrics,
    pipeline::{Consumers, Pipeline, ledger::Ledger},
    rules::Rules,
    source::{
        SourceMsg,
        wire::{self, Shape, WatchItem},
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NAMESPACES: u64 = 50;
const REASONS: [&str; 8] = [
    "BackOff",
    "Pulled",
    "Created",
    "Started",
    "Unhealthy",
    "FailedScheduling",
    "Killing",
    "FailedMount",
];

fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

// ---------- process measurements ----------

/// A field of `/proc/<process>/status` in KiB (`process` is a pid or `self`).
fn status_kib(process: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_status(field: &str) -> u64 {
    status_kib("self", field)
}

fn child_status(pid: u32, field: &str) -> u64 {
    status_kib(&pid.to_string(), field)
}

/// CPU seconds (user + system) of a process so far (`process` is a pid or `self`).
fn process_cpu_seconds(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime; the first after the name is field 3), in
    // clock ticks of 10 ms.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------- realistic events ----------

/// A kubelet-style core/v1 Event of about 1.2 KB as JSON, in `namespace`, happening `count`
/// times.
fn core_event(i: u64, count: u64, rv: u64) -> serde_json::Value {
    let ns = format!("team-{:02}", i % NAMESPACES);
    let pod = format!(
        "svc-{}-7f9c5d8b6-{:05x}",
        (i / 7) % 400,
        (i * 7919) % 0xfffff
    );
    let reason = REASONS[(i % 8) as usize];
    let message = match reason {
        "BackOff" => format!("Back-off restarting failed container app in pod {pod}_{ns}(3f1c2d4e-9a8b-4c7d-8e6f-{i:012})"),
        "Unhealthy" => format!("Readiness probe failed: Get \"http://10.42.{}.{}:8080/healthz\": dial tcp 10.42.{}.{}:8080: connect: connection refused", i % 250, i % 200, i % 250, i % 200),
        "FailedScheduling" => "0/120 nodes are available: 40 Insufficient memory, 80 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/120 nodes are available: 40 No preemption victims found for incoming pod, 80 Preemption is not helpful for scheduling.".to_owned(),
        "Pulled" => format!("Successfully pulled image \"registry.example.com/{ns}/svc:{}.{}.0\" in 1.204s (1.204s including waiting). Image size: 48213 bytes.", i % 9, i % 30),
        _ => format!("{reason} container app"),
    };
    let t = Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {
            "name": format!("{pod}.{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)), "namespace": ns,
            "uid": format!("{:08x}-4668-4257-bdd6-{i:012x}", i.wrapping_mul(2_654_435_761) as u32),
            "resourceVersion": rv.to_string(), "creationTimestamp": t,
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": t,
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:count": {}, "f:firstTimestamp": {}, "f:involvedObject": {}, "f:lastTimestamp": {}, "f:message": {}, "f:reason": {}, "f:reportingComponent": {}, "f:reportingInstance": {}, "f:source": {"f:component": {}, "f:host": {}}, "f:type": {}}}]
        },
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "uid": format!("1a3d1fa7-bc89-40a9-a3b8-{:012x}", i / 7),
                           "apiVersion": "v1", "resourceVersion": "918273", "fieldPath": "spec.containers{app}"},
        "reason": reason, "message": message,
        "source": {"component": "kubelet", "host": format!("node-{}", i % 120)},
        "firstTimestamp": t, "lastTimestamp": t, "count": count,
        "type": if matches!(reason, "BackOff" | "Unhealthy" | "FailedScheduling" | "FailedMount") { "Warning" } else { "Normal" },
        "eventTime": null, "reportingComponent": "kubelet", "reportingInstance": format!("node-{}", i % 120)
    })
}

/// The same event in the events.k8s.io/v1 shape (as the API server converts it).
fn events_v1_event(i: u64, count: u64, rv: u64) -> serde_json::Value {
    let c = core_event(i, count, rv);
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": c["metadata"], "eventTime": null,
        "reason": c["reason"], "type": c["type"], "note": c["message"], "regarding": c["involvedObject"],
        "reportingController": "kubelet", "reportingInstance": c["reportingInstance"],
        "deprecatedSource": c["source"], "deprecatedFirstTimestamp": c["firstTimestamp"],
        "deprecatedLastTimestamp": c["lastTimestamp"], "deprecatedCount": count
    })
}

/// The `k`-th of `distinct * repeats` watch lines: every event once, then every event again with
/// a higher count…, as a storm of repeats arrives.
fn watch_line(k: u64, distinct: u64, events_api: bool) -> String {
    let (round, i) = (k / distinct, k % distinct);
    let rv = 1_000_000 + k;
    let object = if events_api {
        events_v1_event(i, round + 1, rv)
    } else {
        core_event(i, round + 1, rv)
    };
    let kind = if round == 0 { "ADDED" } else { "MODIFIED" };
    json!({"type": kind, "object": object}).to_string()
}

/// Feeds `total` watch lines through the pipeline, generating them in chunks outside the timed
/// part; returns the seconds spent decoding and handling.
async fn feed(p: &mut InProcess, total: u64, distinct: u64, events_api: bool) -> f64 {
    let mut busy = Duration::ZERO;
    let mut chunk = Vec::with_capacity(1000);
    for start in (0..total).step_by(1000) {
        chunk.clear();
        chunk.extend(
            (start..(start + 1000).min(total)).map(|k| watch_line(k, distinct, events_api)),
        );
        let t = Instant::now();
        for line in &chunk {
            if let Some(msg) = decode(line, events_api) {
                p.pipeline.handle(msg);
            }
        }
        busy += t.elapsed();
        // The writer runs on the runtime too: let it make progress.
        tokio::task::yield_now().await;
    }
    busy.as_secs_f64()
}

// ---------- 1 and 6: the pipeline in process ----------

struct InProcess {
    pipeline: Pipeline,
    stop: CancellationToken,
    writer: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
    _tx: tokio::sync::mpsc::Sender<SourceMsg>,
}

fn unlimited() -> ArchiveLimits {
    let max = NonZeroU32::MAX;
    ArchiveLimits {
        namespace_rate: max,
        namespace_burst: max,
        global_rate: max,
        global_burst: max,
    }
}

/// A pipeline with the archive (unlimited, so every record is written) and, with `alerts`, one
/// alert queue.
fn in_process(ledger_ttl: Duration, alerts: bool) -> InProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(Metrics::new());
    let archive = Archive::open(&dir.path().join("bench.redb")).expect("open");
    let settings = WriterSettings {
        retention: Duration::from_secs(7 * 86_400),
        max_bytes: None,
    };
    let (sink, writer) = writer::channel(
        archive,
        ArchiveLimiter::new(unlimited()),
        settings,
        metrics.clone(),
    );
    let stop = CancellationToken::new();
    let writer = tokio::spawn(writer.run(stop.clone()));
    let queue = Arc::new(DeliveryQueue::new("bench", 10_000, &metrics));
    let alert_settings = AlertSettings {
        resolve_after: Duration::from_secs(900),
        resend_interval: Duration::from_secs(60),
        static_labels: BTreeMap::new(),
        external_url: "http://bench:9102".into(),
    };
    let alerting = Arc::new(Alerting::new(
        alert_settings,
        vec![queue.clone()],
        metrics.clone(),
    ));
    // Drain the alert queue as a delivery task would, without a network in the way.
    tokio::spawn(async move {
        loop {
            queue.take_batch(500);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let consumers = Consumers {
        archive: sink,
        rules: Rules::default(),
        alerting: alerts.then_some(alerting),
    };
    let pipeline = Pipeline::new(
        rx,
        Ledger::new(ledger_ttl, 0),
        Vec::new(),
        1,
        metrics.clone(),
        Arc::new(Health::new(Duration::from_secs(60))),
        consumers,
    );
    InProcess {
        pipeline,
        stop,
        writer,
        metrics,
        _dir: dir,
        _tx: tx,
    }
}

/// Decodes a watch line as the Kubernetes source does.
fn decode(line: &str, events_api: bool) -> Option<SourceMsg> {
    let shape = if events_api {
        Shape::EventsV1
    } else {
        Shape::CoreV1
    };
    match wire::watch_line(line.as_bytes(), shape, Timestamp::now()).ok()? {
        WatchItem::Added(e) | WatchItem::Modified(e) => Some(SourceMsg::Applied(Box::new(e))),
        _ => None,
    }
}

async fn pipeline_throughput(events_api: bool) -> BTreeMap<&'static str, f64> {
    let (distinct, repeats) = if quick() { (25_000, 4) } else { (250_000, 4) };
    let total = distinct * repeats;
    let mut p = in_process(Duration::from_secs(7200), true);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let pipeline_secs = feed(&mut p, total, distinct, events_api).await;
    let generate_secs = t0.elapsed().as_secs_f64() - pipeline_secs;
    p.stop.cancel();
    p.writer.await.expect("join").expect("writer");
    // Wall time with the archive drained, less the time spent making the input.
    let total_secs = t0.elapsed().as_secs_f64() - generate_secs;
    let n = total as f64;
    let m = &p.metrics.archive;
    BTreeMap::from([
        ("events_per_s", n / total_secs),
        ("pipeline_events_per_s", n / pipeline_secs),
        // Generating the input is single-threaded CPU work: its wall time is its CPU time.
        (
            "cpu_us_per_event",
            (cpu_seconds() - cpu0 - generate_secs).max(0.0) * 1e6 / n,
        ),
        ("peak_rss_mib", mib(proc_status("VmHWM:"))),
        ("records_written", m.writes.get() as f64),
        (
            "records_dropped",
            (m.dropped_queue_full.get() + m.dropped_error.get()) as f64,
        ),
    ])
}

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
    for flag in [
        "--archive-namespace-rate",
        "--archive-namespace-burst",
        "--archive-rate",
        "--archive-burst",
    ] {
        args.extend([flag, "1000000"]);
    }
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

/// A fake API server holding `n` events in 50 namespaces, as a big cluster's would.
async fn preloaded(n: usize, type_: &str, count: u32) -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.preload((0..n).map(|i| {
        new_event(
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
async fn rss_after_100k() -> BTreeMap<&'static str, f64> {
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
    BTreeMap::from([
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
    ])
}

/// An hour of cluster life in fast motion: every simulated minute brings new events and repeats,
/// and the API server's one-hour TTL deletes what is older. RSS is sampled each "minute".
async fn churn() -> BTreeMap<&'static str, f64> {
    let per_minute: u64 = if quick() { 1_000 } else { 5_000 };
    let minutes = 120;
    let mut p = in_process(Duration::from_secs(7200), false);
    let mut samples = Vec::new();
    for minute in 0..minutes {
        for k in 0..per_minute {
            let i = minute * per_minute + k;
            let line = json!({"type": "ADDED", "object": core_event(i, 1, i)}).to_string();
            p.pipeline.handle(decode(&line, false).expect("decode"));
            // A repeat of an event from ten minutes ago.
            if minute >= 10 {
                let j = (minute - 10) * per_minute + k;
                let line = json!({"type": "MODIFIED", "object": core_event(j, 2, i)}).to_string();
                p.pipeline.handle(decode(&line, false).expect("decode"));
            }
            // TTL: what happened an hour ago is deleted.
            if minute >= 60 {
                let old = (minute - 60) * per_minute + k;
                let uid = core_event(old, 1, 0)["metadata"]["uid"]
                    .as_str()
                    .expect("uid")
                    .to_owned();
                p.pipeline.handle(SourceMsg::Deleted { uid });
            }
        }
        tokio::task::yield_now().await;
        samples.push(mib(proc_status("VmRSS:")));
    }
    p.stop.cancel();
    p.writer.await.expect("join").expect("writer");
    // Warm-up is the first simulated hour (until deletions start); compare the second hour's
    // quarters.
    let q = |a: usize, b: usize| samples[a..b].iter().sum::<f64>() / (b - a) as f64;
    let second_hour = &samples[60..];
    let max = second_hour.iter().copied().fold(0.0, f64::max);
    let min = second_hour.iter().copied().fold(f64::MAX, f64::min);
    BTreeMap::from([
        ("rss_min_60_75_mib", q(60, 75)),
        ("rss_min_105_120_mib", q(105, 120)),
        ("rss_spread_pct", (max - min) / min * 100.0),
        ("ledger_entries", p.metrics.ledger_entries.get() as f64),
    ])
}

// ---------- 4: archive queries ----------

fn archive_event(i: u64, base: Timestamp) -> Event {
    let c = core_event(i, 1 + i % 5, i);
    let text = c.to_string();
    let raw: wire::RawEvent = serde_json::from_str(&text).expect("event");
    let mut e = raw.into_event(Shape::CoreV1, base);
    let t = base + Duration::from_secs(i / 20);
    e.first_seen = t;
    e.last_seen = t;
    e
}

fn archive_queries() -> BTreeMap<&'static str, f64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.redb");
    let archive = Archive::open(&path).expect("open");
    let n: u64 = if quick() { 100_000 } else { 1_000_000 };
    let base: Timestamp = "2026-11-20T00:00:00Z".parse().expect("time");
    // Only encoding and committing is timed, not making the events.
    let mut busy = Duration::ZERO;
    for start in (0..n).step_by(1000) {
        let events: Vec<Event> = (start..(start + 1000).min(n))
            .map(|j| archive_event(j, base))
            .collect();
        let t0 = Instant::now();
        let mut batch = Batch::default();
        for (j, e) in (start..).zip(&events) {
            batch.put(j, e, None, usize::MAX);
            batch.next_seq = j + 1;
        }
        archive.commit(&batch).expect("commit");
        busy += t0.elapsed();
    }
    let insert_per_s = n as f64 / busy.as_secs_f64();
    let mut out = BTreeMap::from([
        ("insert_records_per_s", insert_per_s),
        ("bytes_per_record", archive.file_bytes() as f64 / n as f64),
        // What the file occupies on disk (`du`): redb grows the file ahead of use, sparsely.
        ("disk_bytes_per_record", disk_bytes(&path) as f64 / n as f64),
        (
            "live_bytes_per_record",
            archive.used_bytes().expect("used") as f64 / n as f64,
        ),
    ]);
    let span = n / 20;
    let run = |make: &dyn Fn(u64) -> Vec<(String, String)>| {
        let mut times = Vec::new();
        for k in 0..500 {
            let q = Query::parse(&make(k), Timestamp::now()).expect("query");
            let t = Instant::now();
            let page = archive.query(&q).expect("query");
            times.push(t.elapsed());
            assert!(!page.items.is_empty(), "a query found nothing");
        }
        times.sort();
        (
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        )
    };
    let window = run(&|k| {
        let start = base + Duration::from_secs((k * 7919) % (span - 3600));
        vec![
            ("namespace".into(), format!("team-{:02}", k % NAMESPACES)),
            ("since".into(), start.to_string()),
            (
                "until".into(),
                (start + Duration::from_secs(3600)).to_string(),
            ),
        ]
    });
    let object = run(&|k| {
        let e = archive_event((k * 104_729) % n, base);
        vec![
            ("namespace".into(), e.namespace),
            ("kind".into(), "Pod".into()),
            ("name".into(), e.regarding.name),
        ]
    });
    let reason = run(&|k| vec![("reason".into(), REASONS[(k % 8) as usize].into())]);
    let mut deep =
        Query::parse(&[("namespace".into(), "team-07".into())], Timestamp::now()).expect("query");
    for _ in 0..50 {
        deep.cursor = archive.query(&deep).expect("query").next_cursor;
    }
    let mut times = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        archive.query(&deep).expect("query");
        times.push(t.elapsed());
    }
    times.sort();
    for (k, (p50, p99)) in [
        ("window", window),
        ("object", object),
        ("reason", reason),
        (
            "deep",
            (
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3,
            ),
        ),
    ] {
        out.insert(leak(format!("{k}_p50_ms")), p50);
        out.insert(leak(format!("{k}_p99_ms")), p99);
    }
    out
}

/// Bytes the file's allocated blocks take on disk.
fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// ---------- 2, 3, 5: the real binary over HTTP ----------

use support::{
    Exporter,
    alertmanager::{Alertmanager, Webhook, config},
    fake_apiserver::{FakeApiServer, new_event},
};

async fn total_events(exporter: &Exporter) -> u64 {
    exporter.metrics().await.event_totals().values().sum()
}

async fn end_to_end() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 5_000 } else { 50_000 };
    let fake = FakeApiServer::start().await;
    fake.set_bookmark_interval(Duration::from_secs(3600));
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = unlimited_exporter(&fake, dir.path(), &[]).await;
    let pid = exporter.pid().to_string();
    let cpu0 = process_cpu_seconds(&pid);
    let t0 = Instant::now();
    for i in 0..n {
        fake.create(&new_event(
            &format!("ns-{}", i % 20),
            "Pod",
            &format!("p-{i}"),
            REASONS[i % 8],
            "Warning",
            1,
        ));
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let offered = t0.elapsed().as_secs_f64();
    loop {
        let s = exporter.metrics().await;
        let counted: u64 = s.event_totals().values().sum();
        if counted as usize >= n
            && s.value("kube_event_exporter_archive_writes_total") as usize >= n
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let throughput = n as f64 / t0.elapsed().as_secs_f64();
    // The exporter's own CPU: watch decode, pipeline, archive commits, and its share of
    // answering the /metrics polls above.
    let cpu_us_per_event = (process_cpu_seconds(&pid) - cpu0) * 1e6 / n as f64;

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
                &format!("p-{i}"),
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
        ("offered_per_s", n as f64 / offered),
        ("lag_p50_ms", percentile(&lags, 0.5).as_secs_f64() * 1e3),
        ("lag_p99_ms", percentile(&lags, 0.99).as_secs_f64() * 1e3),
        (
            "exporter_peak_rss_mib",
            mib(child_status(exporter.pid(), "VmHWM:")),
        ),
    ])
}

async fn startup() -> BTreeMap<&'static str, f64> {
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
    BTreeMap::from([
        ("events", n as f64),
        ("ready_s", ready),
        // Where the wall time went on the 2 shared cores: the exporter, and this process
        // (the fake API server encoding the pages).
        (
            "exporter_cpu_s",
            process_cpu_seconds(&exporter.pid().to_string()),
        ),
        ("fake_apiserver_cpu_s", cpu_seconds() - fake_cpu0),
        (
            "exporter_peak_rss_mib",
            mib(child_status(exporter.pid(), "VmHWM:")),
        ),
        (
            "list_requests",
            fake.requests().iter().filter(|r| r.is_list()).count() as f64,
        ),
    ])
}

/// A restart with a big archive: 1M events listed, all archived, the exporter killed and
/// started again on the same archive. The ledger comes back from the records; the watch resumes
/// from the checkpoint without a list.
async fn restart() -> BTreeMap<&'static str, f64> {
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

async fn alert_latency() -> BTreeMap<&'static str, f64> {
    let samples = if quick() { 20 } else { 100 };
    let webhook = Webhook::start(200).await;
    let am = Alertmanager::start(&config(&webhook, &[])).await;
    let fake = FakeApiServer::start().await;
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

// ---------- driver ----------

const MEASUREMENTS: [(&str, &str); 9] = [
    (
        "pipeline-core",
        "1. pipeline, core/v1 watch lines (decode, ledger, metrics, archive, alerts)",
    ),
    (
        "pipeline-events",
        "1. pipeline, events.k8s.io/v1 watch lines",
    ),
    ("rss-100k", "RSS after 100k distinct events"),
    (
        "e2e",
        "2. end to end over HTTP (fake API server → real binary)",
    ),
    ("startup", "3. start-up: initial list in pages of 500"),
    (
        "restart",
        "3. restart on a full archive (ledger from the records, no list)",
    ),
    ("archive", "4. archive: insert, disk, queries (100 rows)"),
    ("alerts", "5. alert latency: watch → Alertmanager → webhook"),
    ("churn", "6. memory under churn (2 simulated hours)"),
];

async fn run_one(name: &str) -> BTreeMap<&'static str, f64> {
    match name {
        "pipeline-core" => pipeline_throughput(false).await,
        "pipeline-events" => pipeline_throughput(true).await,
        "rss-100k" => rss_after_100k().await,
        "e2e" => end_to_end().await,
        "startup" => startup().await,
        "restart" => restart().await,
        "archive" => archive_queries(),
        "alerts" => alert_latency().await,
        "churn" => churn().await,
        other => panic!("unknown measurement {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let name = args[i + 1].clone();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(run_one(&name));
        println!("RESULT {}", serde_json::to_string(&result).expect("json"));
        return;
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        // Quick mode stays under two minutes with one run of each; full mode takes medians.
        .unwrap_or(if quick() { 1 } else { 3 });
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    let me = std::env::current_exe().expect("exe");
    println!(
        "kube-event-exporter benchmarks ({} mode, medians of {runs} runs)\n",
        if quick() { "quick" } else { "full" }
    );
    for (name, title) in MEASUREMENTS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..runs {
            let mut cmd = Command::new(&me);
            cmd.args(["--only", name]);
            if quick() {
                cmd.arg("--quick");
            }
            let out = cmd.output().expect("run measurement");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                eprintln!(
                    "{name} failed:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::process::exit(1);
            };
            let result: BTreeMap<String, f64> = serde_json::from_str(line).expect("result");
            for (k, v) in result {
                values.entry(k).or_default().push(v);
            }
        }
        println!("{title}");
        for (k, mut v) in values {
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            println!("    {k:<28} {median:>14.2}");
        }
    }
}
