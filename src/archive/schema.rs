//! The redb tables. Every event gets a sequence number (`seq`) when first seen, so the record
//! and ledger tables grow at their end instead of at random uid positions: a commit touches few
//! pages. Every index ends in `(last_seen, seq)`, so a filter on its prefix reads newest-first
//! in key order and a page touches about `limit` rows.

use redb::TableDefinition;

/// seq → the record ([`super::record`] encoding, uid included).
pub const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// (last_seen µs, seq): every record by time; retention deletes from the old end.
pub const BY_TIME: TableDefinition<(u64, u64), ()> = TableDefinition::new("by_time");

/// (namespace, last_seen µs, seq).
pub const BY_NAMESPACE: TableDefinition<(&str, u64, u64), ()> =
    TableDefinition::new("by_namespace");

/// (hash of namespace/kind/name, last_seen µs, seq): the involved object's history. A fixed-size
/// key keeps this index, the one with random insert positions, small; queries re-check the
/// record, so a hash collision costs a row read, never a wrong answer.
pub const BY_OBJECT: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("by_object");

/// (reason, last_seen µs, seq).
pub const BY_REASON: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("by_reason");

/// The occurrence ledger: seq → (uid, last seen count, last sighting in unix seconds, the last
/// occurrence in µs its record is indexed under or 0 when not archived). Committed with the
/// records it describes, so a restart neither recounts nor loses.
pub const LEDGER: TableDefinition<u64, (&str, u64, u64, u64)> = TableDefinition::new("ledger");

/// Watch stream → the resourceVersion to resume from.
pub const CHECKPOINTS: TableDefinition<&str, &str> = TableDefinition::new("checkpoints");

/// Counters: `next_seq`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The involved object's key in [`BY_OBJECT`]: FNV-1a over namespace, kind and name, stable
/// across versions and processes (unlike `std`'s randomly keyed hasher).
pub fn object_key(namespace: &str, kind: &str, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for part in [namespace, kind, name] {
        for b in part.bytes().chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
