//! Measurements 1 and 6: the pipeline in process, built as the binary builds it.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use jiff::Timestamp;
use kube_event_exporter::{
    app::Parts,
    archive::Archive,
    config::{Args, Config},
    metrics::Metrics,
    pipeline::Pipeline,
    source::{
        SourceMsg,
        wire::{self, Shape, WatchItem},
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::{core_event, cpu_seconds, mib, proc_status, quick, watch_line};

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

struct InProcess {
    pipeline: Pipeline,
    stop: CancellationToken,
    writer: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

/// The pipeline as the binary builds it ([`Parts::build`]), with the archive's rate limits out
/// of the way (every record is written) and, with `alerts`, one Alertmanager whose queue is
/// drained in process, without a network in the way.
fn in_process(ledger_ttl: Duration, alerts: bool) -> InProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.redb");
    let ttl = format!("{}s", ledger_ttl.as_secs());
    let mut args = vec![
        "kube-event-exporter",
        "--replay",
        "-",
        "--archive-path",
        path.to_str().expect("utf-8"),
        "--ledger-ttl",
        &ttl,
    ];
    for flag in [
        "--archive-namespace-rate",
        "--archive-namespace-burst",
        "--archive-rate",
        "--archive-burst",
    ] {
        args.extend([flag, "4294967295"]);
    }
    if alerts {
        args.extend(["--alertmanager-url", "http://127.0.0.1:9"]);
    }
    let config = Config::try_from(Args::try_parse_from(args).expect("args")).expect("config");
    let archive = Archive::open(&config.archive.path).expect("open");
    let parts = Parts::build(&config, archive, 1).expect("parts");
    let stop = CancellationToken::new();
    let writer = tokio::spawn(parts.archive_writer.run(stop.clone()));
    if let Some(alerting) = parts.alerting {
        let queues = alerting.queues().to_vec();
        tokio::spawn(async move {
            loop {
                for q in &queues {
                    q.take_batch(500);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    InProcess {
        pipeline: parts.pipeline,
        stop,
        writer,
        metrics: parts.state.metrics,
        _dir: dir,
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

pub async fn pipeline_throughput(events_api: bool) -> BTreeMap<&'static str, f64> {
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
    let m = &p.metrics;
    let archive_dropped = |reason| {
        m.sample(
            "kube_event_exporter_archive_dropped_total",
            &[("reason", reason)],
        )
    };
    BTreeMap::from([
        ("events_per_s", n / total_secs),
        ("pipeline_events_per_s", n / pipeline_secs),
        // Generating the input is single-threaded CPU work: its wall time is its CPU time.
        (
            "cpu_us_per_event",
            (cpu_seconds() - cpu0 - generate_secs).max(0.0) * 1e6 / n,
        ),
        ("peak_rss_mib", mib(proc_status("VmHWM:"))),
        (
            "records_written",
            m.sample("kube_event_exporter_archive_writes_total", &[]),
        ),
        (
            "records_dropped",
            archive_dropped("queue_full") + archive_dropped("error"),
        ),
    ])
}

/// An hour of cluster life in fast motion: every simulated minute brings new events and repeats,
/// and the API server's one-hour TTL deletes what is older. RSS is sampled each "minute".
pub async fn churn() -> BTreeMap<&'static str, f64> {
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
        (
            "ledger_entries",
            p.metrics.sample("kube_event_exporter_ledger_entries", &[]),
        ),
    ])
}
