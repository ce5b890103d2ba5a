//! Measurement 10: shipping to a real ClickHouse on this machine. The rate rows arrive at, live
//! and when a backlog drains, and whether shipping slows the pipeline; the fleet query over
//! millions of shipped rows through `--history-from clickhouse`; and what the outbox costs on
//! the local archive's disk.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube_event_exporter::{archive::Archive, ship::row::create_table};

use crate::{
    binary::unlimited,
    common::{NAMESPACES, core_event, disk_bytes, percentile, process_cpu_seconds, quick},
    support::{Exporter, clickhouse::ClickHouse},
};

/// A debug build (CI's `cargo test --bench bench -- --quick`) only checks that this runs.
const DEBUG: bool = cfg!(debug_assertions);

/// The replay file: `n` distinct kubelet-style events as JSON lines.
fn write_replay(path: &Path, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("input"));
    for i in 0..n {
        serde_json::to_writer(&mut f, &core_event(i, 1, i)).expect("write");
        f.write_all(b"\n").expect("write");
    }
    f.flush().expect("flush");
}

/// One exporter life replaying `input` into the archive `name` (new, or as a previous life left
/// it), with every record archived.
struct Run {
    exporter: Exporter,
    archive: PathBuf,
    started: Instant,
}

impl Run {
    /// Starts the binary; with `clickhouse` = (URL, table) it ships there.
    async fn start(input: &Path, dir: &Path, name: &str, clickhouse: Option<(&str, &str)>) -> Self {
        let archive = dir.join(format!("{name}.redb"));
        let mut args = vec![
            "--replay",
            input.to_str().expect("utf-8"),
            "--archive-path",
            archive.to_str().expect("utf-8"),
        ];
        unlimited(&mut args);
        if let Some((url, table)) = clickhouse {
            args.extend([
                "--clickhouse-url",
                url,
                "--clickhouse-table",
                table,
                "--cluster-name",
                "bench",
            ]);
        }
        let started = Instant::now();
        let exporter = Exporter::start(&args).await;
        Self {
            exporter,
            archive,
            started,
        }
    }

    /// Seconds from the start until every event is counted and archived (or dropped, which is
    /// reported); returns them and the records dropped.
    async fn wait_pipeline(&self, n: u64) -> (f64, f64) {
        loop {
            let m = self.exporter.metrics().await;
            let counted: u64 = m.event_totals().values().sum();
            let dropped = m.value("kube_event_exporter_archive_dropped_total");
            let done = m.value("kube_event_exporter_archive_writes_total") + dropped;
            if counted >= n && done >= n as f64 {
                return (self.started.elapsed().as_secs_f64(), dropped);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        self.exporter.metrics().await.value(name)
    }

    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&self.exporter.pid().to_string())
    }

    /// Stops the exporter with SIGTERM (a clean close of the archive); returns the archive's
    /// bytes in live pages and on disk (`du`). redb grows its file ahead of use, in steps too
    /// coarse to show a 10 % difference in the file's length.
    async fn stop(mut self) -> (u64, u64) {
        let status = self.exporter.terminate().await;
        assert!(status.success(), "exporter exited with {status}");
        let used = Archive::open(&self.archive)
            .and_then(|a| a.used_bytes())
            .expect("archive");
        (used, disk_bytes(&self.archive))
    }
}

/// `SELECT count()` of `table`; 0 while it does not exist or ClickHouse is down.
async fn rows_in(ch: &ClickHouse, table: &str) -> u64 {
    ch.query(&format!("SELECT count() FROM default.`{table}`"))
        .await
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `table` until it holds `n` rows; returns rows per second from the first row seen to
/// the last (counting only the rows that arrived after the first look that saw any; 0 when all
/// came in one batch, as in a debug build's few events).
async fn arrival_rate(ch: &ClickHouse, table: &str, n: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let rows = rows_in(ch, table).await;
        let now = Instant::now();
        if rows > 0 && first.is_none() {
            first = Some((now, rows));
        }
        if rows >= n {
            let (t0, r0) = first.expect("seen");
            let secs = now.duration_since(t0).as_secs_f64();
            // All at once between two looks: at least one look's worth of time.
            return (n - r0) as f64 / secs.max(0.05);
        }
        assert!(now < deadline, "{table}: {rows} of {n} rows after 10 min");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `rows` realistic shipped rows of one cluster, straight into `table` (the shipper's DDL):
/// 50 namespaces, 8 reasons, first occurrences spread over the last 7 days, last occurrences up
/// to an hour later, messages of 20–300 bytes as kubelet writes them, one version each.
async fn fill(ch: &ClickHouse, table: &str, rows: u64, now_s: i64) {
    let week = 7 * 86_400;
    let start = now_s - week;
    let select = format!(
        "SELECT \
           'prod' AS cluster, \
           concat(lower(hex(cityHash64(number))), '-4668-4257-bdd6-', toString(number)) AS uid, \
           concat('team-', toString(number % {NAMESPACES})) AS namespace, \
           'Pod' AS kind, \
           concat('svc-', toString(intDiv(number, 7) % 400), '-7f9c5d8b6-', lower(hex(number % 1048575))) AS name, \
           ['BackOff','Pulled','Created','Started','Unhealthy','FailedScheduling','Killing','FailedMount'][number % 8 + 1] AS reason, \
           if(number % 8 IN (0, 4, 5, 7), 'Warning', 'Normal') AS type, \
           multiIf(number % 8 = 0, concat('Back-off restarting failed container app in pod ', name, '_', namespace, '(3f1c2d4e-9a8b-4c7d-8e6f-', toString(number), ')'), \
                   number % 8 = 1, concat('Successfully pulled image \"registry.example.com/', namespace, '/svc:1.', toString(number % 30), '.0\" in 1.204s (1.204s including waiting). Image size: 48213 bytes.'), \
                   number % 8 = 4, concat('Readiness probe failed: Get \"http://10.42.', toString(number % 250), '.', toString(number % 200), ':8080/healthz\": dial tcp 10.42.', toString(number % 250), '.', toString(number % 200), ':8080: connect: connection refused'), \
                   number % 8 = 5, '0/120 nodes are available: 40 Insufficient memory, 80 node(s) had untolerated taint {{node-role.kubernetes.io/control-plane: }}. preemption: 0/120 nodes are available: 40 No preemption victims found for incoming pod, 80 Preemption is not helpful for scheduling.', \
                   concat(reason, ' container app')) AS message, \
           toUInt64(1 + number % 5) AS count, \
           {start} + cityHash64(number, 1) % {week} AS fs, \
           fs + cityHash64(number, 2) % 3600 AS ls, \
           toDateTime(fs, 'UTC') AS first_seen, toDateTime(ls, 'UTC') AS last_seen, \
           toUInt64(fs) * 1000000 AS first_seen_us, toUInt64(ls) * 1000000 + number % 1000000 AS last_seen_us, \
           'kubelet' AS source, concat('node-', toString(number % 120)) AS host, \
           concat('1a3d1fa7-bc89-40a9-a3b8-', toString(intDiv(number, 7))) AS object_uid, \
           namespace AS object_namespace, 'v1' AS object_api_version, 'spec.containers{{app}}' AS field_path, \
           host AS reporting_instance, '' AS action, concat(name, '.', lower(hex(cityHash64(number, 3)))) AS event_name, \
           'Deployment' AS workload_kind, concat('svc-', toString(intDiv(number, 7) % 400)) AS workload \
         FROM numbers({rows})"
    );
    // Only the table's columns, in its order: `fs` and `ls` are helpers.
    let columns = "cluster, uid, namespace, kind, name, reason, type, message, count, first_seen, \
                   last_seen, first_seen_us, last_seen_us, source, host, object_uid, \
                   object_namespace, object_api_version, field_path, reporting_instance, action, \
                   event_name, workload_kind, workload";
    let sql = format!("INSERT INTO default.`{table}` ({columns}) SELECT {columns} FROM ({select})");
    // Longer than the support client's time limit: tens of seconds for 10M rows.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .expect("client");
    let r = client
        .post(ch.url())
        .body(sql)
        .send()
        .await
        .expect("fill the table");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "fill the table: {status} {text}");
}

/// Waits (up to a deadline) until ClickHouse merges nothing, so queries are timed on a table at
/// rest, as a fleet's would mostly be.
async fn merges_settled(ch: &ClickHouse) {
    let deadline = Instant::now() + Duration::from_secs(if quick() { 30 } else { 120 });
    while Instant::now() < deadline {
        let merges = ch.query("SELECT count() FROM system.merges").await;
        if merges.is_ok_and(|m| m.trim() == "0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn clickhouse() -> BTreeMap<&'static str, f64> {
    let n: u64 = match (quick(), DEBUG) {
        (false, _) => 500_000,
        (true, false) => 50_000,
        (true, true) => 2_000,
    };
    let table_rows: u64 = match (quick(), DEBUG) {
        (false, _) => 10_000_000,
        (true, false) => 1_000_000,
        (true, true) => 100_000,
    };
    let queries = if DEBUG { 20 } else { 200 };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("events.jsonl");
    write_replay(&input, n);
    let mut ch = ClickHouse::start().await;
    let url = ch.url();
    let mut out = BTreeMap::from([("events", n as f64)]);

    // The pipeline alone: the baseline of time and disk.
    let run = Run::start(&input, dir.path(), "plain", None).await;
    let (plain_s, dropped) = run.wait_pipeline(n).await;
    out.insert("plain_records_dropped", dropped);
    out.insert("plain_pipeline_events_per_s", n as f64 / plain_s);
    out.insert("plain_exporter_cpu_s", run.cpu_seconds());
    let plain = run.stop().await;

    // Shipping live: the same replay with ClickHouse up.
    let run = Run::start(&input, dir.path(), "live", Some((&url, "live"))).await;
    let (rate, (shipping_s, dropped)) =
        tokio::join!(arrival_rate(&ch, "live", n), run.wait_pipeline(n));
    out.insert("shipping_records_dropped", dropped);
    out.insert("shipping_pipeline_events_per_s", n as f64 / shipping_s);
    out.insert("shipping_exporter_cpu_s", run.cpu_seconds());
    out.insert("live_rows_per_s", rate);
    out.insert(
        "live_last_row_after_pipeline_s",
        run.started.elapsed().as_secs_f64() - shipping_s,
    );
    // Positive: the pipeline took that much longer with shipping on.
    out.insert(
        "pipeline_slowdown_pct",
        (shipping_s / plain_s - 1.0) * 100.0,
    );
    drop(run);

    // ClickHouse down for the whole replay: the outbox holds every record.
    ch.stop();
    let run = Run::start(&input, dir.path(), "outage", Some((&url, "drain"))).await;
    // Outbox writes without shipping: what the outbox alone costs the pipeline.
    let (outage_s, _) = run.wait_pipeline(n).await;
    out.insert("outage_pipeline_events_per_s", n as f64 / outage_s);
    out.insert("outage_exporter_cpu_s", run.cpu_seconds());
    let full = run.stop().await;
    // ClickHouse back, the same archive with nothing more to replay: the backlog drains at the
    // shipper's own pace.
    ch.resume().await;
    let nothing = dir.path().join("nothing.jsonl");
    std::fs::write(&nothing, "").expect("empty input");
    let run = Run::start(&nothing, dir.path(), "outage", Some((&url, "drain"))).await;
    out.insert("drain_rows_per_s", arrival_rate(&ch, "drain", n).await);
    while run
        .metric("kube_event_exporter_clickhouse_outbox_rows")
        .await
        > 0.0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = run.stop().await;
    let per = |bytes: u64| bytes as f64 / n as f64;
    let extra = |with: u64, without: u64| (with as f64 / without as f64 - 1.0) * 100.0;
    out.insert("archive_used_bytes_per_record_plain", per(plain.0));
    out.insert("archive_du_bytes_per_record_plain", per(plain.1));
    out.insert("archive_used_bytes_per_record_outbox_full", per(full.0));
    out.insert("archive_du_bytes_per_record_outbox_full", per(full.1));
    out.insert("archive_used_bytes_per_record_drained", per(drained.0));
    out.insert("archive_du_bytes_per_record_drained", per(drained.1));
    out.insert("outbox_full_used_extra_pct", extra(full.0, plain.0));
    out.insert("outbox_full_du_extra_pct", extra(full.1, plain.1));
    out.insert("outbox_drained_used_extra_pct", extra(drained.0, plain.0));
    out.insert("outbox_drained_du_extra_pct", extra(drained.1, plain.1));

    // The driver shows a failed measurement's stderr: what was measured before the query part.
    eprintln!("so far: {out:?}");

    // The fleet query: a table of shipped rows, read through the history server.
    let table = "fleet";
    ch.query(&create_table("default", table))
        .await
        .expect("create the table as the shipper does");
    let now_s = Timestamp::now().as_second();
    let filled = Instant::now();
    fill(&ch, table, table_rows, now_s).await;
    out.insert(
        "fill_rows_per_s",
        table_rows as f64 / filled.elapsed().as_secs_f64(),
    );
    merges_settled(&ch).await;
    out.insert("query_table_rows", rows_in(&ch, table).await as f64);
    let server = Exporter::start(&[
        "--no-watch",
        "--history-from",
        "clickhouse",
        "--clickhouse-url",
        &url,
        "--clickhouse-table",
        table,
    ])
    .await;
    server.wait_ready().await;
    let mut times = Vec::with_capacity(queries);
    let mut items = 0;
    let began = Instant::now();
    for k in 0..queries as i64 {
        // A query far over budget need not be timed 200 times to say so.
        if k >= 20 && began.elapsed() > Duration::from_secs(120) {
            break;
        }
        // Windows that end in the last 6 days: each has about an hour's worth of events.
        let since = now_s - 6 * 86_400 + (k * 7919) % (6 * 86_400 - 3600);
        let ts = |s: i64| Timestamp::from_second(s).expect("time").to_string();
        let path = format!(
            "/api/v1/events?namespace=team-{}&since={}&until={}&limit=100",
            k % NAMESPACES as i64,
            ts(since),
            ts(since + 3600)
        );
        let t = Instant::now();
        let (status, body) = server.get(&path).await;
        times.push(t.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
        let page: serde_json::Value = serde_json::from_str(&body).expect("json");
        items += page["items"].as_array().map_or(0, Vec::len);
    }
    times.sort();
    out.insert("queries", times.len() as f64);
    out.insert("query_items_per_page", items as f64 / times.len() as f64);
    out.insert("query_p50_ms", percentile(&times, 0.5).as_secs_f64() * 1e3);
    out.insert("query_p99_ms", percentile(&times, 0.99).as_secs_f64() * 1e3);
    out
}
