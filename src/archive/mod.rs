//! The archive: every Event object as one record in an embedded redb file, with the occurrence
//! ledger and the watch checkpoints committed in the same transactions. Batches come in from
//! the pipeline through [`writer::ArchiveSink`]; [`query`] reads pages out for the HTTP API.

pub mod batch;
pub mod limits;
pub mod outbox;
pub mod query;
pub mod record;
pub mod schema;
pub mod writer;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

pub use batch::Batch;

use crate::event::{Event, uid_key};
use record::{Occurrence, View};
use schema::{
    BY_NAMESPACE, BY_OBJECT, BY_OBJECT_RECENT, BY_REASON, BY_TIME, CHECKPOINTS, IndexKeys, LEDGER,
    META, OBJECT_RECENT_ROWS, OBJECT_SLICES, OCCURRENCES, OUTBOX, OUTBOX_SEQ, RECORDS,
    SCHEMA_VERSION, UPGRADABLE,
};

/// Why an archive operation failed. All are internal failures (a 5xx, an error metric).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open the archive {path}: {source}")]
    OpenFailed {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("archive transaction failed: {0}")]
    TransactionFailed(#[from] redb::TransactionError),
    #[error("archive table failed: {0}")]
    TableFailed(#[from] redb::TableError),
    #[error("archive storage failed: {0}")]
    StorageFailed(#[from] redb::StorageError),
    #[error("archive commit failed: {0}")]
    CommitFailed(#[from] redb::CommitError),
    #[error(transparent)]
    Corrupt(#[from] record::CorruptRecord),
    #[error(
        "the archive {path} has layout version {found}, this exporter writes {SCHEMA_VERSION}: move it away (or choose another --archive-path) to start a new one"
    )]
    OtherSchema { path: PathBuf, found: u64 },
    #[error("archive task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
    #[error("the archive is closed after an I/O error; it is being reopened")]
    Closed,
    #[error("the archive cannot be reopened while a query reads it")]
    Busy,
    #[error(
        "the archive {path} is damaged ({detail}): move it aside (or start with --archive-on-corruption=move-aside) to start a new one"
    )]
    Damaged { path: PathBuf, detail: String },
}

impl ArchiveError {
    /// A bounded label value for `archive_errors_total{kind}` and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OpenFailed { .. } => "open",
            Self::TransactionFailed(_) | Self::TableFailed(_) | Self::StorageFailed(_) => "storage",
            Self::CommitFailed(_) => "commit",
            Self::Corrupt(_) | Self::OtherSchema { .. } | Self::Damaged { .. } => "corrupt",
            Self::TaskFailed(_) => "task",
            Self::Closed | Self::Busy => "closed",
        }
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// redb's page cache. Its default (1 GiB) would let the exporter's memory grow with the archive;
/// 2 MiB holds the hot pages (recent records, the index tails), and cold pages come from the
/// kernel's page cache. Measured against 8 MiB: queries over 1M records stay under a
/// millisecond (p99 0.3 ms, window 0.7 ms), the writer keeps the same pace, and the RSS after
/// 100k archived events is 5 MiB lower.
const CACHE_BYTES: usize = 2 << 20;

/// One ledger entry: the event's uid key, the last count seen, when, and where its record is.
/// Stored in [`schema::LEDGER`] only while the record does not carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: u128,
    pub count: u64,
    /// Unix seconds of the last sighting.
    pub touched: u64,
    /// The last occurrence (µs) under which the record is indexed; `None`: not archived (it
    /// was rate limited).
    pub archived: Option<u64>,
}

/// The `touched` of a pinned ledger entry (a derived occurrence's): kept whatever its age.
pub const PINNED_SECS: u64 = u64::MAX;

/// What the archive held at start.
#[derive(Debug, Default)]
pub struct Restored {
    pub ledger: Vec<(u64, LedgerEntry)>,
    pub checkpoints: HashMap<String, String>,
    pub next_seq: u64,
}

/// What to do with an archive file that fails its integrity check at open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCorruption {
    /// Refuse to start ([`ArchiveError::Damaged`]): the file stays for inspection or repair.
    #[default]
    Fail,
    /// Rename the file to `<path>.damaged-<unix seconds>` and start a new one.
    MoveAside,
}

/// The archive file; cheap to clone, shared by the writer and the readers.
#[derive(Clone)]
pub struct Archive {
    /// `None` only while [`Archive::reopen`] has closed the file and could not open it again.
    db: Arc<RwLock<Option<Arc<Database>>>>,
    path: PathBuf,
    /// Records written are queued for ClickHouse ([`outbox`]); set once, before cloning.
    outbox: bool,
}

/// What one deletion removed: records, and of them how many had not been shipped yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub records: usize,
    pub unshipped: usize,
}

impl Archive {
    /// Opens (or creates) the archive and its tables, refusing a damaged file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, OnCorruption::Fail)
    }

    /// Opens (or creates) the archive and its tables. redb recovers a file that was not closed
    /// cleanly: everything committed before a crash or kill is there. Every page's checksum is
    /// verified first, so a file damaged outside redb (a bad disk, a stray write) is an
    /// [`ArchiveError::Damaged`], or is moved aside, and never trusted: redb may panic on one.
    pub fn open_with(path: &Path, on_corruption: OnCorruption) -> Result<Self> {
        let db = open_db(path, on_corruption)?;
        Ok(Self {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            path: path.to_owned(),
            outbox: false,
        })
    }

    /// Queues every record written from now on for ClickHouse (`ship`), or, without shipping,
    /// empties the outbox a previous run left: nothing would ever take it.
    pub fn with_outbox(mut self, ship: bool) -> Result<Self> {
        if !ship && self.outbox_stats()?.rows > 0 {
            self.outbox_clear()?;
        }
        self.outbox = ship;
        Ok(self)
    }

    /// Closes and opens the file again: after an I/O error (a full disk), redb refuses every
    /// transaction until then. Fails, leaving the archive closed, while a query still holds the
    /// old handle or the file cannot be opened yet; the caller retries.
    pub fn reopen(&self) -> Result<()> {
        let mut slot = self.db.write();
        if let Some(db) = slot.take() {
            match Arc::try_unwrap(db) {
                // The only handle: dropping it closes the file.
                Ok(db) => drop(db),
                Err(shared) => {
                    *slot = Some(shared);
                    return Err(ArchiveError::Busy);
                }
            }
        }
        *slot = Some(Arc::new(open_db(&self.path, OnCorruption::Fail)?));
        Ok(())
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file; an error while it is being reopened.
    pub(crate) fn db(&self) -> Result<Arc<Database>> {
        self.db.read().clone().ok_or(ArchiveError::Closed)
    }

    /// The ledger and checkpoints, for a restart. The ledger of an archived event is its
    /// record: every record last seen at or after `since_us` (µs) comes back as an entry with its
    /// count, touched at its last occurrence. The [`LEDGER`] table adds the events whose record
    /// is missing or behind (rate limited, dropped); the higher count wins.
    pub fn restore(&self, since_us: u64) -> Result<Restored> {
        let txn = self.db()?.begin_read()?;
        // The ledger table is small (only what the records do not carry): keyed by seq, its rows
        // are merged into the records' entries as they stream past.
        let mut rows: HashMap<u64, LedgerEntry> = HashMap::new();
        for row in txn.open_table(LEDGER)?.iter()? {
            let (seq, value) = row?;
            let (key, count, touched, archived_at) = value.value();
            // 0 is "not archived"; stored times are at least 1 µs.
            let archived = (archived_at != 0).then_some(archived_at);
            let entry = LedgerEntry {
                key,
                count,
                touched,
                archived,
            };
            rows.insert(seq.value(), entry);
        }
        let mut ledger = Vec::new();
        let records = txn.open_table(RECORDS)?;
        let occurrences = txn.open_table(OCCURRENCES)?;
        for row in txn.open_table(BY_TIME)?.range((since_us, 0)..)? {
            let (t, seq) = row?.0.value();
            let found = read_record(&records, &occurrences, seq, |v| (uid_key(v.uid), v.count))?;
            if let Some((key, count)) = found {
                let mut entry = LedgerEntry {
                    key,
                    count,
                    touched: t / 1_000_000,
                    archived: Some(t),
                };
                if let Some(row) = rows.remove(&seq) {
                    entry.count = entry.count.max(row.count);
                    entry.touched = entry.touched.max(row.touched);
                }
                ledger.push((seq, entry));
            }
        }
        ledger.extend(rows);
        let mut restored = Restored {
            ledger,
            ..Restored::default()
        };
        restored.next_seq = txn
            .open_table(META)?
            .get("next_seq")?
            .map_or(0, |v| v.value());
        for row in txn.open_table(CHECKPOINTS)?.iter()? {
            let (stream, rv) = row?;
            restored
                .checkpoints
                .insert(stream.value().to_owned(), rv.value().to_owned());
        }
        Ok(restored)
    }

    /// Commits one batch in one transaction; returns how many records it wrote.
    pub fn commit(&self, batch: &Batch) -> Result<usize> {
        let txn = self.db()?.begin_write()?;
        let written = write_batch(&txn, batch)?;
        if self.outbox {
            let seqs: Vec<u64> = batch.records.keys().copied().collect();
            let now = crate::event::micros(jiff::Timestamp::now());
            outbox::enqueue(&txn, &seqs, now)?;
        }
        txn.commit()?;
        Ok(written)
    }

    /// Deletes up to `max` records whose last occurrence is before `cutoff_us`, oldest first;
    /// returns how many went.
    pub fn delete_older_than(&self, cutoff_us: u64, max: usize) -> Result<Deleted> {
        let txn = self.db()?.begin_write()?;
        let doomed: Vec<u64> = {
            let by_time = txn.open_table(BY_TIME)?;
            let mut doomed = Vec::new();
            for row in by_time.range((0u64, 0u64)..(cutoff_us, 0u64))?.take(max) {
                doomed.push(row?.0.value().1);
            }
            doomed
        };
        let records = doomed.len();
        delete_records(&txn, &doomed)?;
        let unshipped = outbox::forget(&txn, &doomed)?;
        txn.commit()?;
        Ok(Deleted { records, unshipped })
    }

    /// Deletes the `n` oldest records (the size cap); returns how many went.
    pub fn delete_oldest(&self, n: usize) -> Result<Deleted> {
        self.delete_older_than(u64::MAX, n)
    }

    /// Up to `max` records whose last occurrence is at or after `since_us`, oldest first: the
    /// events whose alerts may still be active after a restart.
    pub fn recent(&self, since_us: u64, max: usize) -> Result<Vec<Event>> {
        let txn = self.db()?.begin_read()?;
        let by_time = txn.open_table(BY_TIME)?;
        let records = txn.open_table(RECORDS)?;
        let occurrences = txn.open_table(OCCURRENCES)?;
        let mut out = Vec::new();
        for row in by_time.range((since_us, 0u64)..)?.take(max) {
            let (_, seq) = row?.0.value();
            out.extend(read_record(&records, &occurrences, seq, |v| v.to_event())?);
        }
        Ok(out)
    }

    pub fn record_count(&self) -> Result<u64> {
        Ok(self.db()?.begin_read()?.open_table(RECORDS)?.len()?)
    }

    /// Bytes of the file in use by live pages (freed pages are reused before the file grows).
    pub fn used_bytes(&self) -> Result<u64> {
        let txn = self.db()?.begin_write()?;
        let stats = txn.stats()?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        txn.abort()?;
        Ok(used)
    }

    /// The size of the file on disk.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// One record by seq.
    pub fn get(&self, seq: u64) -> Result<Option<Event>> {
        let txn = self.db()?.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let occurrences = txn.open_table(OCCURRENCES)?;
        read_record(&records, &occurrences, seq, |v| v.to_event())
    }
}

/// Record `seq` as it is now, shown to `f` in place: the stored record, with the later
/// occurrence in [`OCCURRENCES`], if any, standing over its own.
fn read_record<T>(
    records: &impl ReadableTable<u64, &'static [u8]>,
    occurrences: &impl ReadableTable<u64, (u64, u64, &'static str)>,
    seq: u64,
    f: impl FnOnce(View<'_>) -> T,
) -> Result<Option<T>> {
    let Some(bytes) = records.get(seq)? else {
        return Ok(None);
    };
    let later = occurrences.get(seq)?;
    let mut view = record::view(bytes.value())?;
    if let Some(later) = &later {
        let (last_seen_us, count, resource_version) = later.value();
        view = view.with(Occurrence {
            last_seen_us,
            count,
            resource_version,
        });
    }
    Ok(Some(f(view)))
}

/// The record table and its indexes, open in one write transaction.
struct Tables<'t> {
    records: redb::Table<'t, u64, &'static [u8]>,
    occurrences: redb::Table<'t, u64, (u64, u64, &'static str)>,
    by_time: redb::Table<'t, (u64, u64), ()>,
    by_ns: redb::Table<'t, (u64, u64, u64), ()>,
    by_object: redb::Table<'t, (u64, u64, u64), ()>,
    by_object_recent: redb::Table<'t, (u64, u64, u64), ()>,
    by_reason: redb::Table<'t, (u64, u64, u64), ()>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            records: txn.open_table(RECORDS)?,
            occurrences: txn.open_table(OCCURRENCES)?,
            by_time: txn.open_table(BY_TIME)?,
            by_ns: txn.open_table(BY_NAMESPACE)?,
            by_object: txn.open_table(BY_OBJECT)?,
            by_object_recent: txn.open_table(BY_OBJECT_RECENT)?,
            by_reason: txn.open_table(BY_REASON)?,
        })
    }

    /// Removes the index entries of a record with keys `k` as it was indexed at last
    /// occurrence `t`.
    fn unindex_at(&mut self, seq: u64, k: &IndexKeys, t: u64) -> Result<()> {
        self.by_time.remove((t, seq))?;
        self.by_ns.remove((k.namespace, t, seq))?;
        self.remove_object_row((k.object, t, seq))?;
        self.by_reason.remove((k.reason, t, seq))?;
        Ok(())
    }

    /// Removes an object index row from the table that has it.
    fn remove_object_row(&mut self, row: (u64, u64, u64)) -> Result<()> {
        if self.by_object_recent.remove(row)?.is_none() {
            self.by_object.remove(row)?;
        }
        Ok(())
    }

    /// Moves the next slice of [`BY_OBJECT_RECENT`] into [`BY_OBJECT`] once it holds more than
    /// [`OBJECT_RECENT_ROWS`] rows: the rows of one slice of the hashes, in key order.
    fn settle_object_rows(&mut self, meta: &mut redb::Table<'_, &'static str, u64>) -> Result<()> {
        if self.by_object_recent.len()? <= OBJECT_RECENT_ROWS {
            return Ok(());
        }
        let slice = meta.get("object_slice")?.map_or(0, |v| v.value()) % OBJECT_SLICES;
        let width = u64::MAX / OBJECT_SLICES + 1;
        let low = (slice * width, 0, 0);
        let high = (slice * width + (width - 1), u64::MAX, u64::MAX);
        let rows = self
            .by_object_recent
            .range(low..=high)?
            .map(|row| Ok(row?.0.value()))
            .collect::<Result<Vec<_>>>()?;
        self.by_object_recent.retain_in(low..=high, |_, ()| false)?;
        for row in rows {
            self.by_object.insert(row, ())?;
        }
        meta.insert("object_slice", (slice + 1) % OBJECT_SLICES)?;
        Ok(())
    }

    fn stored(&self, seq: u64) -> Result<Option<Event>> {
        read_record(&self.records, &self.occurrences, seq, |v| v.to_event())
    }

    /// Writes `bytes` as record `seq`. An `update` that moves only the record's
    /// [`Occurrence`] writes that, apart; anything else rewrites the record.
    fn put_record(&mut self, seq: u64, update: bool, bytes: &[u8]) -> Result<()> {
        if update
            && let Some(old) = self.records.get(seq)?
            && let Some(o) = record::update_of(old.value(), bytes)?
        {
            drop(old);
            let value = (o.last_seen_us, o.count, o.resource_version);
            self.occurrences.insert(seq, value)?;
            return Ok(());
        }
        let earlier = self
            .records
            .insert(seq, bytes)?
            .map(|old| record::first_seen_us(old.value()))
            .transpose()?;
        if let Some(earlier) = earlier {
            // The new record carries its occurrence.
            self.occurrences.remove(seq)?;
            // A record's first sighting never moves later: an event that carries no first
            // time gets its last occurrence as one, which moves with each update. What was
            // seen first stays (the ClickHouse rows' day partition is keyed by it).
            if earlier < record::first_seen_us(bytes)? {
                let kept = record::with_first_seen(bytes, earlier)?;
                self.records.insert(seq, kept.as_slice())?;
            }
        }
        Ok(())
    }
}

/// One batch's entries for each index, to be applied in key order: consecutive changes land on
/// the same pages (dirty already, in the cache), where record order would visit four trees'
/// random pages in turn.
#[derive(Default)]
struct IndexEntries {
    time: Vec<(u64, u64)>,
    ns: Vec<(u64, u64, u64)>,
    object: Vec<(u64, u64, u64)>,
    reason: Vec<(u64, u64, u64)>,
}

impl IndexEntries {
    fn push(&mut self, seq: u64, k: &IndexKeys, t: u64) {
        self.time.push((t, seq));
        self.ns.push((k.namespace, t, seq));
        self.object.push((k.object, t, seq));
        self.reason.push((k.reason, t, seq));
    }
}

impl Tables<'_> {
    /// Removes `removes`, then inserts `inserts`, table by table.
    fn reindex(&mut self, removes: IndexEntries, inserts: IndexEntries) -> Result<()> {
        apply_sorted(&mut self.by_time, removes.time, inserts.time)?;
        apply_sorted(&mut self.by_ns, removes.ns, inserts.ns)?;
        let mut gone = removes.object;
        gone.sort_unstable();
        for row in gone {
            self.remove_object_row(row)?;
        }
        apply_sorted(&mut self.by_object_recent, Vec::new(), inserts.object)?;
        apply_sorted(&mut self.by_reason, removes.reason, inserts.reason)
    }
}

/// Removes, then inserts, each in key order. A record's old and new entries differ in their
/// time, so the order between the two lists does not matter.
fn apply_sorted<K>(
    table: &mut redb::Table<'_, K, ()>,
    mut removes: Vec<K>,
    mut inserts: Vec<K>,
) -> Result<()>
where
    K: redb::Key + Ord + Copy + for<'a> std::borrow::Borrow<K::SelfType<'a>> + 'static,
{
    removes.sort_unstable();
    inserts.sort_unstable();
    for k in removes {
        table.remove(k)?;
    }
    for k in inserts {
        table.insert(k, ())?;
    }
    Ok(())
}

fn write_batch(txn: &WriteTransaction, batch: &Batch) -> Result<usize> {
    let mut tables = Tables::open(txn)?;
    let (mut removes, mut inserts) = (IndexEntries::default(), IndexEntries::default());
    for (seq, write, bytes) in batch.records_in_order() {
        // An update at the same last occurrence (a count that moved within one timestamp
        // second) leaves the index entries where they are.
        let moved = write.replaces != Some(write.keys.last_seen);
        if let Some(t) = write.replaces.filter(|_| moved) {
            removes.push(seq, &write.keys, t);
        }
        tables.put_record(seq, write.replaces.is_some(), bytes)?;
        if moved {
            inserts.push(seq, &write.keys, write.keys.last_seen);
        }
    }
    tables.reindex(removes, inserts)?;
    let mut meta = txn.open_table(META)?;
    tables.settle_object_rows(&mut meta)?;
    let mut ledger = txn.open_table(LEDGER)?;
    for (seq, e) in &batch.ledger {
        ledger.insert(
            *seq,
            (
                e.key,
                e.count,
                e.touched,
                e.archived.map_or(0, |t| t.max(1)),
            ),
        )?;
    }
    for seq in &batch.forget {
        ledger.remove(*seq)?;
    }
    let mut checkpoints = txn.open_table(CHECKPOINTS)?;
    for (stream, rv) in &batch.checkpoints {
        checkpoints.insert(stream.as_str(), rv.as_str())?;
    }
    let stored_next = meta.get("next_seq")?.map_or(0, |v| v.value());
    if batch.next_seq > stored_next {
        meta.insert("next_seq", batch.next_seq)?;
    }
    Ok(batch.record_count())
}

fn delete_records(txn: &WriteTransaction, seqs: &[u64]) -> Result<()> {
    let mut tables = Tables::open(txn)?;
    for &seq in seqs {
        if let Some(old) = tables.stored(seq)? {
            let keys = IndexKeys::of(&old);
            tables.unindex_at(seq, &keys, keys.last_seen)?;
            tables.records.remove(seq)?;
            tables.occurrences.remove(seq)?;
        }
    }
    Ok(())
}
/// Opens (or creates) the file and its tables; see [`Archive::open_with`].
fn open_db(path: &Path, on_corruption: OnCorruption) -> Result<Database> {
    let open_failed = |source| ArchiveError::OpenFailed {
        path: path.to_owned(),
        source,
    };
    // The checked open verifies every page and never trusts a damaged file (a plain open may
    // panic on one), but leaves the file's allocator state rebuilt in a way that made every
    // later commit about twice as slow (measured: 28,500 of 100,000 listed events dropped as
    // queue_full where none were). So the file is checked, closed cleanly, and opened again.
    let checked = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create(path)
        .map(drop)
        .and_then(|()| Database::builder().set_cache_size(CACHE_BYTES).create(path));
    let db = match checked {
        Ok(db) => db,
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail))) => {
            if on_corruption == OnCorruption::Fail {
                return Err(ArchiveError::Damaged {
                    path: path.to_owned(),
                    detail,
                });
            }
            let aside = moved_aside(path);
            std::fs::rename(path, &aside)
                .map_err(|e| open_failed(redb::StorageError::Io(e).into()))?;
            tracing::warn!(
                damaged = %aside.display(),
                error = %detail,
                "The archive was damaged: moved it aside and started a new one."
            );
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)
                .map_err(open_failed)?
        }
        Err(e) => return Err(open_failed(e)),
    };
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get("schema")?.map(|v| v.value());
        // A file without a version is new, or of the first layout if it has records.
        let found = found.or_else(|| meta.get("next_seq").ok().flatten().map(|_| 1));
        match found {
            Some(SCHEMA_VERSION) => {}
            None | Some(UPGRADABLE) => {
                meta.insert("schema", SCHEMA_VERSION)?;
            }
            Some(found) => {
                return Err(ArchiveError::OtherSchema {
                    path: path.to_owned(),
                    found,
                });
            }
        }
    }
    txn.open_table(RECORDS)?;
    txn.open_table(OCCURRENCES)?;
    txn.open_table(BY_TIME)?;
    txn.open_table(BY_NAMESPACE)?;
    txn.open_table(BY_OBJECT)?;
    txn.open_table(BY_OBJECT_RECENT)?;
    txn.open_table(BY_REASON)?;
    txn.open_table(LEDGER)?;
    txn.open_table(CHECKPOINTS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(OUTBOX_SEQ)?;
    txn.commit()?;
    Ok(db)
}

/// `<path>.damaged-<unix seconds>`: where a damaged archive goes.
fn moved_aside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{}", jiff::Timestamp::now().as_second()));
    PathBuf::from(name)
}
