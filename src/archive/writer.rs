//! The write path. The pipeline hands records, ledger entries and checkpoints to an
//! [`ArchiveSink`] without waiting: they collect in a pending batch (coalesced per uid, bounded,
//! drops counted). The [`ArchiveWriter`] task commits the batch at least once a second, or as
//! soon as it is large, inside `spawn_blocking` because redb is synchronous. It also runs the
//! retention and size-cap sweeps.

use std::{
    mem,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{
    Archive, Batch, LedgerEntry, PINNED_SECS,
    limits::{ArchiveLimiter, Denied},
};
use crate::{
    event::{Event, micros},
    health::Health,
    metrics::{ArchiveDrop, Metrics},
    util::backoff::Backoff,
};

/// Commit at least this often. Occurrences are exposed (counted in `/metrics`, alerted) once
/// their batch is durable, so this bounds how late a count shows; Prometheus scrapes every 15 s
/// or more, and fewer commits leave the writer more room in a storm.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// After a commit the writer waits at least this long before the next, unless the batch is
/// large: a steady trickle of alerting events, each asking for a prompt commit, gets commits of
/// several events rather than one fsync per event.
const MIN_COMMIT_GAP: Duration = Duration::from_millis(100);

/// Commit early once this many records wait. One record per commit is fsync-bound at ~2k/s on
/// this hardware; thousands per commit spread the fsync and the index page writes.
pub const COMMIT_BATCH: usize = 4000;

/// At most this many records wait for a commit; more are dropped as `queue_full`. At ~400 bytes
/// a waiting record (its encoding and keys) that is ~24 MiB at most. The bound also sets how
/// large a commit grows when commits are slow, and large commits are what lets the writer keep
/// up with a storm (each touches a page once for many entries): in the benchmark's 150k/s storm
/// (`writer`, quick mode) 20,000 dropped 14 % of the records where 60,000 drops none.
pub const MAX_PENDING: usize = 60_000;

/// Retention deletes at most this many records per transaction, to keep commits short.
const DELETE_CHUNK: usize = 10_000;

/// The retention and size-cap sweep interval.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

struct Pending {
    batch: Mutex<Batch>,
    flush: Notify,
    /// Signalled when the writer takes the pending batch: there is room again.
    room: Notify,
}

/// What the writer has made durable: every batch up to generation `committed` (sightings
/// carry their batch's generation). While commits fail, `failing`: nothing more becomes
/// durable until they work again, and consumers expose occurrences from memory meanwhile
/// (availability first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub committed: u64,
    pub failing: bool,
}

impl Durable {
    /// Whether a sighting of batch `generation` may be exposed.
    pub fn covers(self, generation: u64) -> bool {
        self.failing || generation <= self.committed
    }
}

/// Where a sighting went: the last occurrence its record is indexed under (`None`: not
/// archived) and the generation of the batch that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub indexed_at: Option<u64>,
    pub generation: u64,
}

impl Pending {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Batch> {
        self.batch.lock()
    }
}

/// One sighting of an event with new occurrences, as the pipeline hands it to the archive.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    pub event: &'a Event,
    /// The event's sequence number: its key in the archive.
    pub seq: u64,
    /// Its uid key (see [`crate::event::uid_key`]), for the ledger table.
    pub key: u128,
    /// The last occurrence (µs) its archived record is indexed under; `None`: not archived.
    pub indexed_at: Option<u64>,
    /// When it was seen, in unix seconds.
    pub seen_at: u64,
    /// A derived occurrence: its ledger entry is pinned (see the pipeline's ledger).
    pub pinned: bool,
}

/// The pipeline's side of the archive: never blocks on the disk.
pub struct ArchiveSink {
    pending: Arc<Pending>,
    limiter: ArchiveLimiter,
    metrics: Arc<Metrics>,
    durable: watch::Receiver<Durable>,
}

impl ArchiveSink {
    /// Queues the sighting's record for the next commit; if its record is not written, its
    /// ledger entry instead. A new record must pass the rate limits. Returns where the record is
    /// (or will be) indexed, and in which batch. A dropped record still leaves its ledger entry,
    /// so it is never counted twice.
    pub fn write(&self, s: Sighting<'_>) -> Written {
        self.write_all(&[s], &[])[0]
    }

    /// Writes the sightings and the ledger-only `marks` (seq, uid key, count; pinned) into one
    /// batch, so that they become durable together: what one object update derived.
    pub fn write_all(
        &self,
        sightings: &[Sighting<'_>],
        marks: &[(u64, u128, u64)],
    ) -> Vec<Written> {
        let admitted: Vec<bool> = sightings.iter().map(|s| self.admit(s)).collect();
        let mut batch = self.pending.lock();
        let mut written = Vec::with_capacity(sightings.len());
        for (s, admitted) in sightings.iter().zip(admitted) {
            let queued = if admitted {
                let queued = batch.put(s.seq, s.event, s.indexed_at, MAX_PENDING);
                if queued.is_none() {
                    self.metrics.archive_dropped(ArchiveDrop::QueueFull, 1);
                }
                queued
            } else {
                None
            };
            if queued.is_none() || s.pinned {
                // The record does not carry this sighting (or a restart must find the entry
                // whatever its age): the ledger table must.
                batch.ledger.insert(
                    s.seq,
                    LedgerEntry {
                        key: s.key,
                        count: s.event.count,
                        touched: if s.pinned { PINNED_SECS } else { s.seen_at },
                        archived: queued.or(s.indexed_at),
                    },
                );
            }
            batch.next_seq = batch.next_seq.max(s.seq + 1);
            written.push(Written {
                indexed_at: queued.or(s.indexed_at),
                generation: batch.generation,
            });
        }
        for &(seq, key, count) in marks {
            let entry = LedgerEntry {
                key,
                count,
                touched: PINNED_SECS,
                archived: None,
            };
            batch.ledger.insert(seq, entry);
            batch.next_seq = batch.next_seq.max(seq + 1);
        }
        let waiting = batch.record_count();
        drop(batch);
        self.metrics.archive_pending(waiting);
        if waiting >= COMMIT_BATCH {
            self.pending.flush.notify_one();
        }
        written
    }

    /// Whether the sighting's record may be written: updates always, new records within the
    /// rate limits, derived occurrences always (they are few, and their records hold state).
    fn admit(&self, s: &Sighting<'_>) -> bool {
        if s.indexed_at.is_some() || s.pinned {
            return true;
        }
        match self.limiter.admit(&s.event.namespace) {
            Ok(()) => true,
            Err(Denied::Namespace | Denied::Global) => {
                self.metrics.archive_dropped(ArchiveDrop::RateLimited, 1);
                false
            }
        }
    }

    /// The generation of the batch that holds the latest write: once it is durable, so is
    /// everything written so far.
    pub fn written_generation(&self) -> u64 {
        let batch = self.pending.lock();
        if batch.is_empty() {
            batch.generation - 1
        } else {
            batch.generation
        }
    }

    /// Whether a new record would be queued rather than dropped as `queue_full`.
    pub fn has_room(&self) -> bool {
        self.pending.lock().record_count() < MAX_PENDING
    }

    /// Waits until the writer has taken the pending batch (a source that can wait, a file,
    /// waits here instead of losing records).
    pub async fn room(&self) {
        let room = self.pending.room.notified();
        tokio::pin!(room);
        // Registered before the check: a batch taken in between still wakes this.
        room.as_mut().enable();
        if self.has_room() {
            return;
        }
        self.pending.flush.notify_one();
        room.await;
    }

    /// Asks for a commit now rather than at the next interval (an alert waits for it).
    pub fn flush_soon(&self) {
        self.pending.flush.notify_one();
    }

    /// What is durable; changes after every commit.
    pub fn durable(&self) -> watch::Receiver<Durable> {
        self.durable.clone()
    }

    /// The event is gone from the API server (or expired from the ledger): drop its ledger
    /// entry. Its record stays.
    pub fn forget(&self, seq: u64) {
        let mut batch = self.pending.lock();
        batch.ledger.remove(&seq);
        batch.forget.push(seq);
    }

    /// The stream has seen everything up to `resource_version`.
    pub fn checkpoint(&self, stream: &str, resource_version: &str) {
        let mut batch = self.pending.lock();
        match batch.checkpoints.get_mut(stream) {
            Some(rv) => resource_version.clone_into(rv),
            None => {
                batch
                    .checkpoints
                    .insert(stream.to_owned(), resource_version.to_owned());
            }
        }
    }

    pub fn housekeep(&self) {
        self.limiter.housekeep();
    }
}

/// Settings of the writer task.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Records whose last occurrence is older are deleted.
    pub retention: Duration,
    /// Evict the oldest records while the file's live pages exceed this.
    pub max_bytes: Option<u64>,
}

/// How the writer names itself in `/healthz` while commits fail.
const HEALTH_PART: &str = "archive writes";

/// The task that owns all archive writes.
pub struct ArchiveWriter {
    archive: Archive,
    pending: Arc<Pending>,
    /// The batch swapped in for the pending one at each commit; cleared and kept between
    /// commits so their memory is reused, not freed and faulted in again.
    spare: Option<Batch>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: WriterSettings,
    /// Commits are failing: the next attempt reopens the file first.
    failing: bool,
    durable: watch::Sender<Durable>,
    last_commit: Instant,
    /// While failing, no attempt before this.
    retry_at: Option<Instant>,
    backoff: Backoff,
}

/// Creates the sink and the writer that drains it.
pub fn channel(
    archive: Archive,
    limiter: ArchiveLimiter,
    settings: WriterSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> (ArchiveSink, ArchiveWriter) {
    let mut first = Batch::default();
    first.generation = 1;
    let pending = Arc::new(Pending {
        batch: Mutex::new(first),
        flush: Notify::new(),
        room: Notify::new(),
    });
    let (durable, durable_rx) = watch::channel(Durable::default());
    let sink = ArchiveSink {
        pending: pending.clone(),
        limiter,
        metrics: metrics.clone(),
        durable: durable_rx,
    };
    let writer = ArchiveWriter {
        archive,
        pending,
        spare: Some(Batch::default()),
        metrics,
        health,
        settings,
        failing: false,
        durable,
        last_commit: Instant::now(),
        retry_at: None,
        backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
    };
    writer.metrics.archive_size_cap(settings.max_bytes);
    writer.report_size();
    (sink, writer)
}

impl ArchiveWriter {
    /// Commits until `stop`, then commits what is left.
    pub async fn run(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = self.pending.flush.notified() => {
                    let wait = MIN_COMMIT_GAP.saturating_sub(self.last_commit.elapsed());
                    if !wait.is_zero() && self.pending.lock().record_count() < COMMIT_BATCH {
                        tokio::time::sleep(wait).await;
                    }
                }
                _ = flush.tick() => {}
                _ = sweep.tick() => self.sweep().await,
                () = stop.cancelled() => {
                    self.flush(true).await;
                    info!("Archive flushed.");
                    return Ok(());
                }
            }
            self.flush(false).await;
        }
    }

    /// Commits the pending batch. A batch that fails to commit (a full disk, an I/O error) is
    /// not dropped: it goes back to pending, merged with what came in meanwhile, and the next
    /// attempt, after a backoff, reopens the file first. The pending bound still holds, so a
    /// long outage drops new records (as `queue_full`) but keeps every ledger entry.
    async fn flush(&mut self, stopping: bool) {
        if !stopping && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let mut batch = self.spare.take().unwrap_or_default();
        {
            let mut pending = self.pending.lock();
            if pending.is_empty() {
                // Nothing written since the last commit: nothing new to make durable, and the
                // generation stays, so an idle writer wakes no one.
                drop(pending);
                self.spare = Some(batch);
                return;
            }
            mem::swap(&mut *pending, &mut batch);
            pending.generation = batch.generation + 1;
        }
        self.pending.room.notify_waiters();
        self.metrics.archive_pending(0);
        let records = batch.record_count();
        let archive = self.archive.clone();
        let reopen = self.failing;
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let result = if reopen { archive.reopen() } else { Ok(()) }
                .and_then(|()| archive.commit(&batch));
            (batch, result)
        })
        .await;
        let (mut batch, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                // The blocking task died (a panic ends the process; this is the runtime
                // shutting down): the batch went with it.
                self.metrics
                    .archive_dropped(ArchiveDrop::Error, records as u64);
                error!(error = %e, records, "Archive commit task failed; batch lost.");
                return;
            }
        };
        match result {
            Ok(written) => {
                self.last_commit = Instant::now();
                self.durable.send_replace(Durable {
                    committed: batch.generation,
                    failing: false,
                });
                batch.clear();
                self.spare = Some(batch);
                self.metrics
                    .archive_committed(started.elapsed().as_secs_f64());
                self.metrics.archive_written(written);
                if self.failing {
                    info!(records, "Archive writes recovered.");
                    self.failing = false;
                    self.retry_at = None;
                    self.backoff.reset();
                    self.health.recovered(HEALTH_PART);
                }
                self.report_size();
            }
            Err(e) if stopping => {
                self.metrics
                    .archive_dropped(ArchiveDrop::Error, records as u64);
                self.metrics.archive_failed(e.kind());
                error!(error = %e, records, "Archive commit failed at shutdown; batch lost.");
            }
            Err(e) => {
                self.metrics.archive_failed(e.kind());
                let delay = self.backoff.next_delay();
                if self.failing {
                    debug!(error = %e, records, "Archive commit failed again.");
                } else {
                    warn!(error = %e, records, retry_in = ?delay,
                        "Archive commit failed; keeping the batch in memory and retrying.");
                }
                self.failing = true;
                self.durable.send_modify(|d| d.failing = true);
                self.retry_at = Some(Instant::now() + delay);
                self.health.failing(HEALTH_PART);
                let waiting = {
                    let mut pending = self.pending.lock();
                    batch.absorb(&mut pending);
                    mem::swap(&mut *pending, &mut batch);
                    pending.record_count()
                };
                self.spare = Some(batch);
                self.metrics.archive_pending(waiting);
            }
        }
    }

    /// Deletes what retention and the size cap say must go, in short transactions.
    fn report_size(&self) {
        self.metrics
            .archive_size(self.archive.file_bytes(), self.archive.record_count().ok());
    }

    async fn sweep(&self) {
        let archive = self.archive.clone();
        let settings = self.settings;
        let result =
            tokio::task::spawn_blocking(move || sweep(&archive, settings, jiff::Timestamp::now()))
                .await;
        match result.map_err(Into::into).and_then(|r| r) {
            Ok(swept) => {
                self.metrics.archive_deleted(swept.retention, swept.size);
                self.metrics.clickhouse_unshipped_deleted(swept.unshipped);
            }
            Err(e) => {
                self.metrics.archive_failed(e.kind());
                warn!(error = %e, "Archive sweep failed.");
            }
        }
        self.report_size();
    }
}

/// How many records one sweep deleted, by reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub retention: usize,
    pub size: usize,
    /// Of those, records deleted before they were shipped to ClickHouse.
    pub unshipped: usize,
}

/// Deletes records older than the retention at `now`, then the oldest while over the size cap.
pub fn sweep(
    archive: &Archive,
    settings: WriterSettings,
    now: jiff::Timestamp,
) -> super::Result<Swept> {
    let mut swept = Swept::default();
    let cutoff = now.checked_sub(settings.retention).map_or(0, micros);
    loop {
        let deleted = archive.delete_older_than(cutoff, DELETE_CHUNK)?;
        swept.retention += deleted.records;
        swept.unshipped += deleted.unshipped;
        if deleted.records < DELETE_CHUNK {
            break;
        }
    }
    if let Some(max) = settings.max_bytes {
        // Each round frees about 1% of the records; freed pages are reused, not returned.
        for _ in 0..100 {
            if archive.used_bytes()? <= max {
                break;
            }
            let chunk = (archive.record_count()? / 100).max(100) as usize;
            let deleted = archive.delete_oldest(chunk)?;
            swept.size += deleted.records;
            swept.unshipped += deleted.unshipped;
            if deleted.records == 0 {
                break;
            }
        }
    }
    Ok(swept)
}
