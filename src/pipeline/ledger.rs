//! The occurrence ledger: event uid → last seen count, so that every update becomes the number
//! of new occurrences it stands for.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Debug)]
struct Entry {
    /// The event's sequence number: its key in the archive.
    seq: u64,
    count: u64,
    touched: Instant,
    /// The last occurrence (µs) its archive record is indexed under; `None` while it is not
    /// archived (it may have been rate limited).
    archived: Option<u64>,
}

/// What one sighting of an event means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// New occurrences: all of them for an unknown uid, the increase for a known one.
    pub occurrences: u64,
    /// Where the event's record is indexed, if it is archived.
    pub archived: Option<u64>,
    /// The event's sequence number, given at its first sighting.
    pub seq: u64,
}

/// Remembers the highest count seen per event uid. Bounded: an entry goes when its event is
/// deleted, or when it has not been seen for `ttl` (a deletion missed during a gap).
#[derive(Debug)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
    ttl: Duration,
    next_seq: u64,
}

impl Ledger {
    /// An empty ledger that numbers new events from `next_seq` on.
    pub fn new(ttl: Duration, next_seq: u64) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            next_seq,
        }
    }

    /// Records that event `uid` has happened `count` times and says how many of those are new
    /// (never a negative: a stale or repeated delivery is zero).
    pub fn observe(&mut self, uid: &str, count: u64, now: Instant) -> Observation {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.touched = now;
            let occurrences = count.saturating_sub(entry.count);
            entry.count = entry.count.max(count);
            Observation {
                occurrences,
                archived: entry.archived,
                seq: entry.seq,
            }
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.entries.insert(
                uid.to_owned(),
                Entry {
                    seq,
                    count,
                    touched: now,
                    archived: None,
                },
            );
            Observation {
                occurrences: count,
                archived: None,
                seq,
            }
        }
    }

    /// The event's record is (queued to be) indexed under last occurrence `at` µs.
    pub fn set_archived(&mut self, uid: &str, at: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.archived = at;
        }
    }

    /// Puts back an entry from the archive, last seen `age` ago; entries older than the ttl
    /// are not restored. Returns whether it was.
    pub fn restore(
        &mut self,
        seq: u64,
        uid: String,
        count: u64,
        archived: Option<u64>,
        age: Duration,
        now: Instant,
    ) -> bool {
        self.next_seq = self.next_seq.max(seq + 1);
        if age >= self.ttl {
            return false;
        }
        let touched = now.checked_sub(age).unwrap_or(now);
        self.entries.insert(
            uid,
            Entry {
                seq,
                count,
                touched,
                archived,
            },
        );
        true
    }

    /// The event was deleted (its uid is never reused); returns its seq if it was known.
    pub fn forget(&mut self, uid: &str) -> Option<u64> {
        self.entries.remove(uid).map(|e| e.seq)
    }

    /// Drops entries not seen for the ttl; returns their seqs.
    pub fn sweep(&mut self, now: Instant) -> Vec<u64> {
        let ttl = self.ttl;
        let mut expired = Vec::new();
        self.entries.retain(|_, e| {
            let keep = now.saturating_duration_since(e.touched) < ttl;
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
        let mut l = Ledger::new(Duration::from_secs(60), 0);
        assert!(l.restore(7, "a".into(), 5, Some(3), Duration::from_secs(10), t));
        assert!(!l.restore(9, "stale".into(), 5, Some(3), Duration::from_secs(60), t));
        // Restored as seen 10 s ago: still there 49 s later, gone after 50.
        assert!(l.sweep(t + Duration::from_secs(49)).is_empty());
        assert_eq!(
            l.observe("a", 7, t),
            Observation {
                occurrences: 2,
                archived: Some(3),
                seq: 7
            }
        );
        // New events are numbered after every restored seq, even a stale one.
        assert_eq!(
            l.observe("stale", 5, t),
            Observation {
                occurrences: 5,
                archived: None,
                seq: 10
            }
        );
    }
}
