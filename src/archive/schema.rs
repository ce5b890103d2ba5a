//! The redb tables. Keys are chosen for the range scans the query API needs: every index ends
//! in `(last_seen, uid)`, so a filter on its prefix reads newest-first in key order and a page
//! touches about `limit` rows.

use redb::TableDefinition;

/// uid → the record ([`super::record`] encoding).
pub const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

/// (last_seen µs, uid): every record by time; retention deletes from the old end.
pub const BY_TIME: TableDefinition<(u64, &str), ()> = TableDefinition::new("by_time");

/// (namespace, last_seen µs, uid).
pub const BY_NAMESPACE: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("by_namespace");

/// (namespace, kind, name, last_seen µs, uid): the involved object's history.
pub const BY_OBJECT: TableDefinition<(&str, &str, &str, u64, &str), ()> =
    TableDefinition::new("by_object");

/// (reason, last_seen µs, uid).
pub const BY_REASON: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("by_reason");

/// The occurrence ledger: uid → (last seen count, last sighting in unix seconds, archived).
/// Committed with the records it describes, so a restart neither recounts nor loses.
pub const LEDGER: TableDefinition<&str, (u64, u64, bool)> = TableDefinition::new("ledger");

/// Watch stream → the resourceVersion to resume from.
pub const CHECKPOINTS: TableDefinition<&str, &str> = TableDefinition::new("checkpoints");
