//! The occurrence ledger: event uid → last seen count, so that every update becomes the number
//! of new occurrences it stands for. It holds every live event of the cluster, so an entry is
//! kept small: the uid as 128 bits, times in seconds, 40 bytes in all.

use std::time::{Duration, Instant};

use crate::{
    archive::{LedgerEntry, PINNED_SECS},
    event::uid_key,
    util::hash::FastMap,
};

/// The map key: a uid key as two words, so an entry needs 8-byte alignment, not 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(u64, u64);

impl From<u128> for Key {
    fn from(k: u128) -> Self {
        Self((k >> 64) as u64, k as u64)
    }
}

#[derive(Debug)]
struct Entry {
    /// The event's sequence number: its key in the archive.
    seq: u64,
    /// The last occurrence (µs) its archive record is indexed under; 0 while it is not
    /// archived (it may have been rate limited).
    archived: u64,
    /// Kubernetes counts are 32-bit.
    count: u32,
    /// When it was last seen, in [`Ledger::clock`] seconds.
    touched: u32,
}

/// What one sighting of an event means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// New occurrences: all of them for an unknown uid, the increase for a known one.
    pub occurrences: u64,
    /// The last occurrence (µs) its record is indexed under, if it is archived.
    pub indexed_at: Option<u64>,
    /// The event's sequence number, given at its first sighting.
    pub seq: u64,
    /// The event's uid key.
    pub key: u128,
}

/// Remembers the highest count seen per event uid. Bounded: an entry goes when its event is
/// deleted, or when it has not been seen for `ttl` (a deletion missed during a gap).
#[derive(Debug)]
pub struct Ledger {
    entries: FastMap<Key, Entry>,
    /// In whole seconds (at least one).
    ttl: u32,
    /// The clock's zero lies `ttl` before the ledger was made, so every restored entry (last
    /// seen less than `ttl` ago) has a non-negative time.
    created: Instant,
    next_seq: u64,
}

/// The `touched` of a pinned entry: the sweep never finds it old.
const PINNED: u32 = u32::MAX;

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Ledger {
    /// An empty ledger that numbers new events from `next_seq` on.
    pub fn new(ttl: Duration, next_seq: u64) -> Self {
        Self {
            entries: FastMap::default(),
            ttl: secs(ttl).max(1),
            created: Instant::now(),
            next_seq,
        }
    }

    /// Seconds on the ledger's clock at `now`.
    fn clock(&self, now: Instant) -> u32 {
        secs(now.saturating_duration_since(self.created)).saturating_add(self.ttl)
    }

    /// Records that event `uid` has happened `count` times and says how many of those are new
    /// (never a negative: a stale or repeated delivery is zero).
    pub fn observe(&mut self, uid: &str, count: u64, now: Instant) -> Observation {
        let key = uid_key(uid);
        let touched = self.clock(now);
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if let Some(entry) = self.entries.get_mut(&Key::from(key)) {
            entry.touched = touched;
            let occurrences = count.saturating_sub(entry.count);
            entry.count = entry.count.max(count);
            Observation {
                occurrences: occurrences.into(),
                indexed_at: (entry.archived != 0).then_some(entry.archived),
                seq: entry.seq,
                key,
            }
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.entries.insert(
                Key::from(key),
                Entry {
                    seq,
                    count,
                    touched,
                    archived: 0,
                },
            );
            Observation {
                occurrences: count.into(),
                indexed_at: None,
                seq,
                key,
            }
        }
    }

    /// Records that the derived occurrence `uid` (a container's restarts, OOM kills, a stuck
    /// rollout, or one of their marks) stands at `count`. An entry the ledger does not know
    /// starts from `baseline`: what happened before the exporter could see it is not new.
    /// Derived entries are pinned: they go when their object is deleted, never by the ttl, so
    /// a container that restarts again after days counts only the new restart.
    pub fn observe_derived(&mut self, uid: &str, count: u64, baseline: u64) -> Observation {
        let known = self.entries.contains_key(&Key::from(uid_key(uid)));
        let mut seen = self.observe(uid, count, self.created);
        if !known {
            seen.occurrences = count.saturating_sub(baseline.min(count));
        }
        if let Some(entry) = self.entries.get_mut(&Key::from(seen.key)) {
            entry.touched = PINNED;
        }
        seen
    }

    /// The highest count seen of `uid`, if it is known.
    pub fn count(&self, uid: &str) -> Option<u64> {
        self.entries
            .get(&Key::from(uid_key(uid)))
            .map(|e| u64::from(e.count))
    }

    /// The event's record is (queued to be) indexed under last occurrence `at` µs.
    pub fn set_archived(&mut self, key: u128, at: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(&Key::from(key)) {
            entry.archived = at.map_or(0, |t| t.max(1));
        }
    }

    /// The ledger as the archive left it, numbering new events from `next_seq` on. Entries
    /// unseen for longer than the ttl (`touched` is in unix seconds, `now_secs` the present) are
    /// not restored; their seqs are returned so the archive can forget them too.
    pub fn restore(
        ttl: Duration,
        next_seq: u64,
        entries: Vec<(u64, LedgerEntry)>,
        now_secs: u64,
    ) -> (Self, Vec<u64>) {
        let mut ledger = Self::new(ttl, next_seq);
        // Sized once: growing a million-entry table on the way holds the old and the new at once.
        ledger.entries.reserve(entries.len());
        let now = Instant::now();
        let mut expired = Vec::new();
        for (seq, entry) in entries {
            let age = Duration::from_secs(now_secs.saturating_sub(entry.touched));
            if !ledger.put_back(seq, &entry, age, now) {
                expired.push(seq);
            } else if entry.touched == PINNED_SECS
                && let Some(e) = ledger.entries.get_mut(&Key::from(entry.key))
            {
                e.touched = PINNED;
            }
        }
        (ledger, expired)
    }

    /// Puts back an entry last seen `age` ago; entries older than the ttl are not put back.
    /// Returns whether it was.
    fn put_back(&mut self, seq: u64, entry: &LedgerEntry, age: Duration, now: Instant) -> bool {
        self.next_seq = self.next_seq.max(seq + 1);
        if secs(age) >= self.ttl {
            return false;
        }
        self.entries.insert(
            Key::from(entry.key),
            Entry {
                seq,
                count: u32::try_from(entry.count).unwrap_or(u32::MAX),
                touched: self.clock(now) - secs(age),
                archived: entry.archived.map_or(0, |t| t.max(1)),
            },
        );
        true
    }

    /// The event was deleted (its uid is never reused); returns its seq if it was known.
    pub fn forget(&mut self, uid: &str) -> Option<u64> {
        self.entries.remove(&Key::from(uid_key(uid))).map(|e| e.seq)
    }

    /// Drops entries not seen for the ttl; returns their seqs.
    pub fn sweep(&mut self, now: Instant) -> Vec<u64> {
        let (ttl, now) = (self.ttl, self.clock(now));
        let mut expired = Vec::new();
        self.entries.retain(|_, e| {
            let keep = now.saturating_sub(e.touched) < ttl;
            if !keep {
                expired.push(e.seq);
            }
            keep
        });
        expired
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas() {
        let t = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(60), 0);
        let mut seen = |uid, count| l.observe(uid, count, t).occurrences;
        assert_eq!(seen("a", 3), 3);
        assert_eq!(seen("a", 7), 4, "3 → 7 is four occurrences");
        assert_eq!(seen("a", 7), 0, "an unchanged object adds nothing");
        assert_eq!(seen("a", 5), 0, "a stale delivery adds nothing");
        assert_eq!(seen("a", 8), 1, "and does not lower the mark");
        assert_eq!(seen("b", 1), 1);
        assert_eq!(l.forget("a"), Some(0));
        assert_eq!(l.observe("c", 1, t).seq, 2, "seqs are never reused");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn the_sum_of_deltas_is_the_highest_count() {
        // Any delivery order, with repeats and reorders: the occurrences add up to the max.
        let t = Instant::now();
        for seq in [vec![1, 1, 2, 5, 3, 5, 9], vec![4, 2, 6, 6, 1], vec![1]] {
            let mut l = Ledger::new(Duration::from_secs(60), 0);
            let total: u64 = seq.iter().map(|c| l.observe("x", *c, t).occurrences).sum();
            assert_eq!(total, *seq.iter().max().unwrap());
        }
    }

    #[test]
    fn derived_entries_start_from_their_baseline_and_are_pinned() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(60), 0);
        assert_eq!(l.observe_derived("r", 5, 5).occurrences, 0, "first sight");
        assert_eq!(
            l.observe_derived("r", 7, 7).occurrences,
            2,
            "known: the increase"
        );
        assert_eq!(l.observe_derived("new", 2, 0).occurrences, 2);
        assert_eq!(l.count("r"), Some(7));
        assert_eq!(l.count("none"), None);
        assert!(l.sweep(t0 + Duration::from_secs(3600)).is_empty(), "pinned");
        // Restored from the archive's pinned row, still pinned.
        let entry = LedgerEntry {
            key: uid_key("r"),
            count: 7,
            touched: PINNED_SECS,
            archived: None,
        };
        let (mut l, expired) = Ledger::restore(Duration::from_secs(60), 0, vec![(3, entry)], 1);
        assert!(expired.is_empty());
        assert!(l.sweep(t0 + Duration::from_secs(3600)).is_empty());
        assert_eq!(l.observe_derived("r", 8, 8).occurrences, 1);
    }

    #[test]
    fn sweep_drops_only_unseen_entries() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(60), 0);
        l.observe("old", 1, t0);
        l.observe("fresh", 1, t0);
        l.observe("fresh", 1, t0 + Duration::from_secs(50));
        assert_eq!(l.sweep(t0 + Duration::from_secs(70)), [0]);
        assert_eq!(
            l.observe("fresh", 2, t0 + Duration::from_secs(70))
                .occurrences,
            1
        );
    }

    #[test]
    fn restored_entries_keep_counts_and_archived_state() {
        let t = Instant::now();
        let now_secs = 1_000_000;
        let entry = |uid, touched| LedgerEntry {
            key: uid_key(uid),
            count: 5,
            touched,
            archived: Some(3),
        };
        let (mut l, expired) = Ledger::restore(
            Duration::from_secs(60),
            0,
            vec![
                (7, entry("a", now_secs - 10)),
                (9, entry("stale", now_secs - 60)),
            ],
            now_secs,
        );
        assert_eq!(expired, [9]);
        // Restored as seen 10 s ago: still there 49 s later, gone after 50.
        assert!(l.sweep(t + Duration::from_secs(49)).is_empty());
        assert_eq!(
            l.observe("a", 7, t),
            Observation {
                occurrences: 2,
                indexed_at: Some(3),
                seq: 7,
                key: uid_key("a"),
            }
        );
        // New events are numbered after every restored seq, even a stale one.
        assert_eq!(
            l.observe("stale", 5, t),
            Observation {
                occurrences: 5,
                indexed_at: None,
                seq: 10,
                key: uid_key("stale"),
            }
        );
    }
}
