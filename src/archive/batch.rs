//! One batch of archive writes, collected in memory between commits: records (encoded once,
//! coalesced per event), ledger entries, forgotten events and checkpoints. A batch is cleared
//! and reused, so a steady stream of batches allocates nothing.

use std::collections::HashMap;

use super::{LedgerEntry, record, schema::IndexKeys};
use crate::event::Event;

/// A record to write: where its encoding lies in the batch's bytes, its index keys, and the last
/// occurrence (µs) of the version it replaces, if any. An event's namespace, involved object and
/// reason never change, so that is all it takes to find the old index entries: an update needs
/// no read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordWrite {
    start: usize,
    end: usize,
    pub(super) keys: IndexKeys,
    pub(super) replaces: Option<u64>,
}

/// Bytes of encoded records a cleared batch keeps allocated for the next one.
const KEPT_BYTES: usize = 4 << 20;

/// What one batch asks the archive to do, in one transaction. Keys are event seqs. A batch is
/// cleared and reused, so a steady stream of batches allocates nothing.
#[derive(Debug, Default)]
pub struct Batch {
    /// Records to insert or update; a later update of the same event replaced the earlier.
    pub(super) records: HashMap<u64, RecordWrite>,
    /// The encoded records back to back (a few hundred bytes each); a coalesced update appends
    /// and leaves the old bytes until the batch is cleared.
    bytes: Vec<u8>,
    pub ledger: HashMap<u64, LedgerEntry>,
    /// Ledger entries to drop (the event was deleted or expired); records stay.
    pub forget: Vec<u64>,
    /// Stream → resourceVersion.
    pub checkpoints: HashMap<String, String>,
    /// The first seq not yet given to an event.
    pub next_seq: u64,
    /// Which pending batch this is: the writer numbers them 1, 2, … as it takes them, so a
    /// writer can tell a sighting's batch committed (see [`super::writer::Durable`]). Kept by
    /// [`Batch::clear`].
    pub generation: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.ledger.is_empty()
            && self.forget.is_empty()
            && self.checkpoints.is_empty()
    }

    /// How many records wait.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Queues `event`'s record under `seq`, replacing the archived version last indexed at
    /// `replaces` (µs). A queued version is overwritten (and still replaces what the archive
    /// holds). A new seq is refused when `max` records wait. Returns the last occurrence the
    /// record will be indexed under, if it was queued.
    pub fn put(
        &mut self,
        seq: u64,
        event: &Event,
        replaces: Option<u64>,
        max: usize,
    ) -> Option<u64> {
        let keys = IndexKeys::of(event);
        let queued = self.records.get(&seq).map(|w| w.replaces);
        if queued.is_none() && self.records.len() >= max {
            return None;
        }
        let start = self.bytes.len();
        record::encode(event, &mut self.bytes);
        let write = RecordWrite {
            start,
            end: self.bytes.len(),
            keys,
            replaces: queued.unwrap_or(replaces),
        };
        self.records.insert(seq, write);
        Some(keys.last_seen)
    }

    /// Empties the batch, keeping its allocations (up to [`KEPT_BYTES`] of record bytes).
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
        self.bytes.shrink_to(KEPT_BYTES);
        self.ledger.clear();
        self.forget.clear();
        self.checkpoints.clear();
        self.next_seq = 0;
    }
}

impl Batch {
    /// Takes `newer`'s writes into this older batch (which failed to commit), leaving `newer`
    /// empty: the result is what committing this batch and then `newer` would write. A record
    /// in both keeps this batch's `replaces`, which is what the archive still holds.
    pub fn absorb(&mut self, newer: &mut Batch) {
        for (seq, write) in newer.records.drain() {
            let start = self.bytes.len();
            self.bytes
                .extend_from_slice(&newer.bytes[write.start..write.end]);
            let replaces = self
                .records
                .get(&seq)
                .map_or(write.replaces, |older| older.replaces);
            self.records.insert(
                seq,
                RecordWrite {
                    start,
                    end: self.bytes.len(),
                    keys: write.keys,
                    replaces,
                },
            );
        }
        for seq in newer.forget.drain(..) {
            self.ledger.remove(&seq);
            self.forget.push(seq);
        }
        self.ledger.extend(newer.ledger.drain());
        self.checkpoints.extend(newer.checkpoints.drain());
        self.next_seq = self.next_seq.max(newer.next_seq);
        self.generation = self.generation.max(newer.generation);
        newer.clear();
    }

    /// The records in seq order (appends at the end of the record table), with their bytes.
    pub(super) fn records_in_order(&self) -> Vec<(u64, RecordWrite, &[u8])> {
        let mut out: Vec<_> = self
            .records
            .iter()
            .map(|(seq, w)| (*seq, *w, &self.bytes[w.start..w.end]))
            .collect();
        out.sort_unstable_by_key(|(seq, ..)| *seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(count: u64, at: &str) -> Event {
        let mut e = record::tests::sample();
        e.count = count;
        e.last_seen = at.parse().unwrap();
        e
    }

    #[test]
    fn a_batch_coalesces_refuses_past_its_bound_and_clears_for_reuse() {
        let mut b = Batch::default();
        let first = event(1, "2026-11-29T10:00:00Z");
        let later = event(2, "2026-11-29T10:05:00Z");
        let t = |e: &Event| crate::event::micros(e.last_seen);
        assert_eq!(b.put(7, &first, Some(5), 2), Some(t(&first)));
        // A second version of seq 7: it still replaces what the archive holds (at 5).
        assert_eq!(b.put(7, &later, Some(t(&first)), 2), Some(t(&later)));
        assert_eq!(b.put(8, &first, None, 2), Some(t(&first)));
        assert_eq!(
            b.put(9, &first, None, 2),
            None,
            "two records wait: the bound"
        );
        assert_eq!(
            b.put(8, &later, None, 2),
            Some(t(&later)),
            "updates still fit"
        );
        let w = b.records[&7];
        assert_eq!(w.replaces, Some(5));
        assert_eq!(w.keys.last_seen, t(&later));
        assert_eq!(record::decode(&b.bytes[w.start..w.end]).unwrap(), later);
        assert_eq!(b.record_count(), 2);
        let capacity = b.bytes.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.bytes.capacity(), capacity, "kept for the next batch");
    }

    /// A failed batch absorbs the newer one: the newer versions win, but an event in both
    /// still replaces what the archive holds (the older batch's `replaces`).
    #[test]
    fn a_failed_batch_absorbs_what_came_after_it() {
        let t = |e: &Event| crate::event::micros(e.last_seen);
        let (first, later) = (
            event(1, "2026-11-29T10:00:00Z"),
            event(2, "2026-11-29T10:05:00Z"),
        );
        let mut failed = Batch::default();
        failed.put(7, &first, Some(5), 10);
        failed.ledger.insert(
            9,
            LedgerEntry {
                key: 9,
                count: 1,
                touched: 1,
                archived: None,
            },
        );
        failed.checkpoints.insert("s".into(), "10".into());
        failed.next_seq = 10;
        let mut newer = Batch::default();
        newer.put(7, &later, Some(t(&first)), 10);
        newer.put(8, &first, None, 10);
        newer.forget.push(9);
        newer.checkpoints.insert("s".into(), "12".into());
        newer.next_seq = 11;
        failed.absorb(&mut newer);
        assert!(newer.is_empty());
        let w = failed.records[&7];
        assert_eq!(
            w.replaces,
            Some(5),
            "the archive still holds the version at 5"
        );
        assert_eq!(
            record::decode(&failed.bytes[w.start..w.end]).unwrap(),
            later
        );
        let w = failed.records[&8];
        assert_eq!(
            record::decode(&failed.bytes[w.start..w.end]).unwrap(),
            first
        );
        assert!(!failed.ledger.contains_key(&9));
        assert_eq!(failed.forget, [9]);
        assert_eq!(failed.checkpoints["s"], "12");
        assert_eq!(failed.next_seq, 11);
    }
}
