//! Measurement 8: the archive writer under a sustained storm with every record archived. The
//! pipeline's side ([`ArchiveSink`]) is fed on a schedule, as a fast watch would, while the
//! writer task commits as the binary runs it: first at a fixed rate (100k new events/s and 50k
//! count updates/s, the budget), counting drops and how late each write became durable; then as
//! fast as the writer takes them (a file replay waits for room), for its capacity.

use std::{
    collections::{BTreeMap, VecDeque},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube_event_exporter::{
    archive::{
        Archive,
        limits::{ArchiveLimiter, ArchiveLimits},
        writer::{self, ArchiveSink, Sighting, WriterSettings},
    },
    event::{Event, uid_key},
    health::Health,
    metrics::Metrics,
    source::wire::{self, Shape},
};
use tokio_util::sync::CancellationToken;

use crate::common::{core_event, percentile, quick};

const NEW_PER_S: u64 = 100_000;
const UPDATES_PER_S: u64 = 50_000;
const TICK: Duration = Duration::from_millis(10);
/// Count updates bump one of this many latest events (the last second's): a storm repeats its
/// own events. The capacity is also measured with updates anywhere in the archive.
const RECENT: u64 = NEW_PER_S;

/// Makes the storm's events: 1,000 decoded templates, each new event a copy with its own uid,
/// name and time (decoding JSON for each would make the producer the bottleneck).
struct Storm {
    templates: Vec<Event>,
    base: Timestamp,
    /// Per event (by seq): the last occurrence its record is indexed under.
    indexed: Vec<Option<u64>>,
    /// Per event: its count so far.
    counts: Vec<u32>,
    updates: u64,
}

impl Storm {
    fn new() -> Self {
        let base = Timestamp::now();
        let templates = (0..1000)
            .map(|i| {
                let text = core_event(i, 1, i).to_string();
                let raw: wire::RawEvent = serde_json::from_str(&text).expect("event");
                raw.into_event(Shape::CoreV1, base)
            })
            .collect();
        Self {
            templates,
            base,
            indexed: Vec::new(),
            counts: Vec::new(),
            updates: 0,
        }
    }

    /// Event `seq` at its current count: seen `seq / NEW_PER_S` seconds into the storm, one
    /// more second for each update.
    fn event(&self, seq: u64) -> Event {
        let mut e = self.templates[(seq % 1000) as usize].clone();
        let count = u64::from(self.counts[seq as usize]);
        e.uid = format!("storm-{seq}");
        e.name = format!("{}.{seq:x}", e.regarding.name);
        e.regarding.name = format!("{}-{}", e.regarding.name, seq / 1000);
        e.count = count;
        e.first_seen = self.base + Duration::from_secs(seq / NEW_PER_S);
        e.last_seen = e.first_seen + Duration::from_secs(count - 1);
        e
    }

    fn write(&mut self, sink: &ArchiveSink, seq: u64) -> bool {
        let e = self.event(seq);
        let written = sink.write(Sighting {
            event: &e,
            seq,
            key: uid_key(&e.uid),
            indexed_at: self.indexed[seq as usize],
            seen_at: 0,
            pinned: false,
        });
        self.indexed[seq as usize] = written.indexed_at;
        written.indexed_at.is_some()
    }

    fn add(&mut self, sink: &ArchiveSink) -> bool {
        let seq = self.indexed.len() as u64;
        self.indexed.push(None);
        self.counts.push(1);
        self.write(sink, seq)
    }

    /// A count update of one of the latest `window` events, spread over them.
    fn update(&mut self, sink: &ArchiveSink, window: u64) -> bool {
        self.updates += 1;
        let n = self.indexed.len() as u64;
        let seq = n - 1 - self.updates.wrapping_mul(0x9e37_79b9_7f4a_7c15) % window.min(n);
        self.counts[seq as usize] += 1;
        self.write(sink, seq)
    }
}

struct Writer {
    sink: ArchiveSink,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    archive: Archive,
    _dir: tempfile::TempDir,
}

fn start_writer() -> Writer {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("bench.redb")).expect("open");
    let max = NonZeroU32::MAX;
    let limiter = ArchiveLimiter::new(ArchiveLimits {
        namespace_rate: max,
        namespace_burst: max,
        global_rate: max,
        global_burst: max,
    });
    let settings = WriterSettings {
        retention: Duration::from_secs(30 * 86_400),
        max_bytes: None,
    };
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let (sink, writer) = writer::channel(archive.clone(), limiter, settings, metrics, health);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    Writer {
        sink,
        stop,
        task,
        archive,
        _dir: dir,
    }
}

pub async fn writer_sustained() -> BTreeMap<&'static str, f64> {
    let secs = if quick() { 3 } else { 20 };
    let mut storm = Storm::new();
    let w = start_writer();
    let durable = w.sink.durable();

    // The budget's rate, on a 10 ms schedule: what is due is written, late ticks catch up.
    let (mut added, mut updated, mut dropped) = (0u64, 0u64, 0u64);
    let mut waiting: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut lags = Vec::new();
    let mut ticks = tokio::time::interval(TICK);
    let start = Instant::now();
    let run = Duration::from_secs(secs);
    while start.elapsed() < run {
        ticks.tick().await;
        let due = start.elapsed().min(run).as_secs_f64();
        while added < (due * NEW_PER_S as f64) as u64 {
            dropped += u64::from(!storm.add(&w.sink));
            added += 1;
        }
        while updated < (due * UPDATES_PER_S as f64) as u64 {
            dropped += u64::from(!storm.update(&w.sink, RECENT));
            updated += 1;
        }
        waiting.push_back((w.sink.written_generation(), Instant::now()));
        let committed = durable.borrow().committed;
        while waiting.front().is_some_and(|(g, _)| *g <= committed) {
            let (_, at) = waiting.pop_front().expect("front");
            lags.push(at.elapsed());
        }
    }
    let offered_secs = start.elapsed().as_secs_f64();
    let mut durable = durable;
    while let Some((g, at)) = waiting.pop_front() {
        durable
            .wait_for(|d| d.committed >= g)
            .await
            .expect("writer");
        lags.push(at.elapsed());
    }
    lags.sort();

    // Capacity: as fast as the writer takes them, two new events to one update, waiting for
    // room instead of dropping (as a file replay does); updates of recent events, then anywhere.
    let n = if quick() { 300_000 } else { 1_500_000 };
    let capacity_recent = capacity(&w.sink, &mut storm, n, RECENT).await;
    let capacity_anywhere = capacity(&w.sink, &mut storm, n, u64::MAX).await;
    w.stop.cancel();
    w.task.await.expect("join").expect("writer");
    let records = w.archive.record_count().expect("count");
    let queued = storm.indexed.iter().filter(|i| i.is_some()).count() as u64;
    assert_eq!(records, queued, "every queued event archived once");

    BTreeMap::from([
        ("new_per_s_offered", added as f64 / offered_secs),
        ("updates_per_s_offered", updated as f64 / offered_secs),
        ("dropped", dropped as f64),
        (
            "durable_lag_p50_ms",
            percentile(&lags, 0.5).as_secs_f64() * 1e3,
        ),
        (
            "durable_lag_p99_ms",
            percentile(&lags, 0.99).as_secs_f64() * 1e3,
        ),
        ("capacity_recent_updates_per_s", capacity_recent),
        ("capacity_updates_anywhere_per_s", capacity_anywhere),
        ("records_in_archive", records as f64),
    ])
}

/// Records per second the writer takes when the producer waits for room (`n` sightings, two new
/// events to one update of the latest `window`).
async fn capacity(sink: &ArchiveSink, storm: &mut Storm, n: u64, window: u64) -> f64 {
    let t = Instant::now();
    for k in 0..n {
        if !sink.has_room() {
            sink.room().await;
        }
        let ok = if k % 3 == 2 {
            storm.update(sink, window)
        } else {
            storm.add(sink)
        };
        assert!(ok, "a record was dropped while waiting for room");
    }
    let g = sink.written_generation();
    sink.durable()
        .wait_for(|d| d.committed >= g)
        .await
        .expect("writer");
    n as f64 / t.elapsed().as_secs_f64()
}
