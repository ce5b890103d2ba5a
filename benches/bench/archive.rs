//! Measurement 4: the archive alone: insert, disk per record, query latency; and the history
//! page of the newest 100 records: render time and weight.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube_event_exporter::{
    archive::{Archive, Batch, query::Query},
    event::Event,
    http::page::{self, Outcome, Params},
    source::wire::{self, Shape},
};

use crate::common::{NAMESPACES, REASONS, core_event, disk_bytes, leak, percentile, quick};

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

pub fn archive_queries() -> BTreeMap<&'static str, f64> {
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
    // `GET /` without filters: the newest 100 records as the page renders them (the query is
    // measured above).
    let newest = archive
        .query(&Query::parse(&[], Timestamp::now()).expect("query"))
        .expect("query");
    assert_eq!(newest.items.len(), 100);
    let now = Timestamp::now();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..500 {
        let t = Instant::now();
        let html = page::render(&Params::default(), &Outcome::Page(&newest), now);
        times.push(t.elapsed());
        bytes = html.len();
    }
    times.sort();
    out.insert(
        "page_render_p50_ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
    );
    out.insert(
        "page_render_p99_ms",
        percentile(&times, 0.99).as_secs_f64() * 1e3,
    );
    out.insert("page_bytes", bytes as f64);
    out
}
