//! The benchmark suite: `cargo bench --bench bench` (full) or `cargo bench --bench bench --
//! --quick` (under two minutes). Prints a table of medians; asserts nothing about time.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube_event_exporter::{
    archive::{Archive, Batch, LedgerEntry, query::Query},
    event::{Event, ObjectRef},
};

struct Mode {
    quick: bool,
}

impl Mode {
    fn records(&self) -> u64 {
        if self.quick { 100_000 } else { 1_000_000 }
    }
}

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

/// A realistic event: kubelet-style names and a message of 60–400 bytes.
fn event(i: u64, base: Timestamp) -> Event {
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
    Event {
        uid: format!(
            "{:08x}-4668-4257-bdd6-{i:012x}",
            i.wrapping_mul(2_654_435_761) as u32
        ),
        namespace: ns.clone(),
        name: format!("{pod}.{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        resource_version: (1_000_000 + i).to_string(),
        regarding: ObjectRef {
            kind: "Pod".into(),
            namespace: ns,
            name: pod,
            uid: format!("1a3d1fa7-bc89-40a9-a3b8-{:012x}", i / 7),
            api_version: "v1".into(),
            field_path: "spec.containers{app}".into(),
        },
        reason: reason.into(),
        type_: if matches!(
            reason,
            "BackOff" | "Unhealthy" | "FailedScheduling" | "FailedMount"
        ) {
            "Warning"
        } else {
            "Normal"
        }
        .into(),
        message,
        count: 1 + i % 5,
        first_seen: base + Duration::from_secs(i / 20),
        last_seen: base + Duration::from_secs(i / 20),
        source: "kubelet".into(),
        host: format!("node-{}", i % 120),
        reporting_instance: format!("node-{}", i % 120),
        action: String::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Builds the parameters of the `k`-th query of one kind.
type QueryMaker = Box<dyn Fn(u64) -> Vec<(String, String)>>;

fn archive_bench(mode: &Mode, rows: &mut Vec<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("bench.redb")).expect("open");
    let n = mode.records();
    let base: Timestamp = "2026-11-20T00:00:00Z".parse().expect("time");
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut batch = Batch::default();
        for j in i..(i + 1000).min(n) {
            let e = event(j, base);
            let entry = LedgerEntry {
                uid: e.uid.clone(),
                count: e.count,
                touched: 0,
                archived: true,
            };
            batch.ledger.insert(j, entry);
            batch.records.insert(j, e);
            batch.next_seq = j + 1;
        }
        archive.commit(&batch).expect("commit");
        i += 1000;
    }
    let elapsed = started.elapsed();
    rows.push((
        format!("archive insert, {n} records, 1000/commit"),
        format!("{:.0} records/s", n as f64 / elapsed.as_secs_f64()),
    ));
    let file = archive.file_bytes();
    rows.push((
        "archive disk per record (file / records)".into(),
        format!(
            "{:.0} B ({:.2} GB per million)",
            file as f64 / n as f64,
            file as f64 / n as f64 * 1e6 / 1e9
        ),
    ));

    query_bench(&archive, n, base, rows);
}

fn query_bench(archive: &Archive, n: u64, base: Timestamp, rows: &mut Vec<(String, String)>) {
    let span_secs = n / 20;
    let queries: Vec<(&str, QueryMaker)> = vec![
        (
            "query namespace + 1h window, 100 rows",
            Box::new(move |k| {
                let start =
                    base + Duration::from_secs((k * 7919) % span_secs.saturating_sub(3600).max(1));
                vec![
                    ("namespace".into(), format!("team-{:02}", k % NAMESPACES)),
                    ("since".into(), start.to_string()),
                    (
                        "until".into(),
                        (start + Duration::from_secs(3600)).to_string(),
                    ),
                ]
            }),
        ),
        (
            "query involved object, 100 rows",
            Box::new(move |k| {
                let i = (k * 104_729) % n;
                let e = event(i, base);
                vec![
                    ("namespace".into(), e.namespace),
                    ("kind".into(), "Pod".into()),
                    ("name".into(), e.regarding.name),
                ]
            }),
        ),
        (
            "query reason, 100 rows",
            Box::new(|k| vec![("reason".into(), REASONS[(k % 8) as usize].into())]),
        ),
    ];
    for (name, make) in queries {
        let mut times = Vec::new();
        for k in 0..500 {
            let q = Query::parse(&make(k), Timestamp::now()).expect("query");
            let t = Instant::now();
            let page = archive.query(&q).expect("query");
            times.push(t.elapsed());
            assert!(
                !page.items.is_empty() || name.contains("object"),
                "{name} found nothing"
            );
        }
        times.sort();
        rows.push((
            format!("{name} (p50 / p99)"),
            format!(
                "{} / {}",
                fmt_ms(percentile(&times, 0.5)),
                fmt_ms(percentile(&times, 0.99))
            ),
        ));
    }
    // A deep page: follow the cursor 50 pages into one namespace.
    let mut q =
        Query::parse(&[("namespace".into(), "team-07".into())], Timestamp::now()).expect("query");
    for _ in 0..50 {
        q.cursor = archive.query(&q).expect("query").next_cursor;
    }
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        archive.query(&q).expect("query");
        times.push(t.elapsed());
    }
    times.sort();
    rows.push((
        "query deep cursor page (page 51), 100 rows (p50 / p99)".into(),
        format!(
            "{} / {}",
            fmt_ms(percentile(&times, 0.5)),
            fmt_ms(percentile(&times, 0.99))
        ),
    ));
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mode = Mode { quick };
    let mut rows = Vec::new();
    archive_bench(&mode, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("\n{:width$}  result", "measurement");
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
}
