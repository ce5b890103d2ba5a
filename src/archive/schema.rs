//! The redb tables. Every event gets a sequence number (`seq`) when first seen, so the record
//! and ledger tables grow at their end instead of at random uid positions: a commit touches few
//! pages. Every index ends in `(last_seen, seq)`, so a filter on its prefix reads newest-first
//! in key order and a page touches about `limit` rows. Index keys are fixed-width (strings
//! enter as 64-bit hashes): cheap to compare, and a record's keys never change but for its time.

use redb::TableDefinition;

use crate::{
    event::{Event, micros},
    util::hash::stable_hash,
};

/// The layout version, in [`META`]; a file of another layout is refused at open, but for
/// [`UPGRADABLE`].
pub const SCHEMA_VERSION: u64 = 3;

/// Older layouts this one reads as they are: version 2 lacks [`OCCURRENCES`] and
/// [`BY_OBJECT_RECENT`], which start empty. (A file once opened as version 3 is refused by the
/// older exporter, which would not see what those two tables hold.)
pub const UPGRADABLE: u64 = 2;

/// seq → the record ([`super::record`] encoding, uid included).
pub const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// seq → (last occurrence µs, count, resourceVersion) of a record repeated since it was written
/// ([`super::record::Occurrence`]), which stands over what the record holds. A storm's repeats
/// thus rewrite a few bytes each, not a whole record: 16,000 updates of the last second's
/// records dirtied about as many record pages per commit.
pub const OCCURRENCES: TableDefinition<u64, (u64, u64, &str)> = TableDefinition::new("occurrences");

/// (last_seen µs, seq): every record by time; retention deletes from the old end.
pub const BY_TIME: TableDefinition<(u64, u64), ()> = TableDefinition::new("by_time");

/// (hash of namespace, last_seen µs, seq). Queries re-check the record, so a hash collision
/// costs a row read, never a wrong answer (as for the two indexes below).
pub const BY_NAMESPACE: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("by_namespace");

/// (hash of namespace/kind/name, last_seen µs, seq): the involved object's history. A fixed-size
/// key keeps this index, the one with random insert positions, small; queries re-check the
/// record, so a hash collision costs a row read, never a wrong answer.
pub const BY_OBJECT: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("by_object");

/// Where [`BY_OBJECT`]'s new rows go first, in its layout. The object index is the one whose
/// rows land at random places (by the object's hash), so a batch of 60,000 dirtied about as
/// many of its pages; this table stays small, and its rows move into [`BY_OBJECT`] a slice of
/// the key space at a time ([`OBJECT_SLICES`]), so each of those pages is rewritten once per
/// many batches. A row is in one of the two tables; queries merge both.
pub const BY_OBJECT_RECENT: TableDefinition<(u64, u64, u64), ()> =
    TableDefinition::new("by_object_recent");

/// [`BY_OBJECT_RECENT`] moves a slice into [`BY_OBJECT`] at a commit that leaves it with more
/// rows than this.
pub const OBJECT_RECENT_ROWS: u64 = 65_536;

/// How many slices the object hashes are cut into; [`META`]'s `object_slice` is the next to
/// move.
pub const OBJECT_SLICES: u64 = 8;

/// (hash of reason, last_seen µs, seq).
pub const BY_REASON: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("by_reason");

/// The occurrence ledger of events whose record does not carry it (rate limited, or an update
/// dropped): seq → (uid key, see [`crate::event::uid_key`]; last seen count; last
/// sighting in unix seconds; the last occurrence in µs its record is indexed under, or 0 when
/// not archived). Committed with the records, so a restart neither recounts nor loses.
pub const LEDGER: TableDefinition<u64, (u128, u64, u64, u64)> = TableDefinition::new("ledger");

/// Watch stream → the resourceVersion to resume from.
pub const CHECKPOINTS: TableDefinition<&str, &str> = TableDefinition::new("checkpoints");

/// The ClickHouse outbox, in shipping order: stamp → seq of a record written since it was last
/// shipped. A stamp is the µs of the write, made unique and increasing within the file, so the
/// first key is the oldest change not yet shipped. Empty unless shipping is on.
pub const OUTBOX: TableDefinition<u64, u64> = TableDefinition::new("outbox");

/// seq → its stamp in [`OUTBOX`]: a record waits once, with its latest version (ClickHouse keeps
/// only the latest), however often it changes before it is shipped.
pub const OUTBOX_SEQ: TableDefinition<u64, u64> = TableDefinition::new("outbox_seq");

/// `schema` (the layout version), `next_seq` and `object_slice` (see [`OBJECT_SLICES`]).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The involved object's key in [`BY_OBJECT`].
pub fn object_key(namespace: &str, kind: &str, name: &str) -> u64 {
    stable_hash([namespace, kind, name])
}

/// A namespace's or reason's key in [`BY_NAMESPACE`] / [`BY_REASON`].
pub fn name_key(s: &str) -> u64 {
    stable_hash([s])
}

/// Where one version of a record is indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexKeys {
    pub namespace: u64,
    pub object: u64,
    pub reason: u64,
    /// The last occurrence, µs.
    pub last_seen: u64,
}

impl IndexKeys {
    pub fn of(e: &Event) -> Self {
        Self {
            namespace: name_key(&e.namespace),
            object: object_key(&e.namespace, &e.regarding.kind, &e.regarding.name),
            reason: name_key(&e.reason),
            last_seen: micros(e.last_seen),
        }
    }
}
