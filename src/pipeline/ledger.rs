//! The occurrence ledger: event uid → last seen count, so that every update becomes the number
//! of new occurrences it stands for.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Debug)]
struct Entry {
    count: u64,
    touched: Instant,
}

/// Remembers the highest count seen per event uid. Bounded: an entry goes when its event is
/// deleted, or when it has not been seen for `ttl` (a deletion missed during a gap).
#[derive(Debug)]
pub struct Ledger {
    entries: HashMap<String, Entry>,
    ttl: Duration,
}

impl Ledger {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
        }
    }

    /// Records that event `uid` has happened `count` times and returns how many of those are
    /// new: all of them for an unknown uid, the increase for a known one, never a negative.
    pub fn observe(&mut self, uid: &str, count: u64, now: Instant) -> u64 {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.touched = now;
            let delta = count.saturating_sub(entry.count);
            entry.count = entry.count.max(count);
            delta
        } else {
            self.entries.insert(
                uid.to_owned(),
                Entry {
                    count,
                    touched: now,
                },
            );
            count
        }
    }

    /// The event was deleted; its uid is never reused.
    pub fn forget(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Drops entries not seen for the ttl; returns how many went.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let ttl = self.ttl;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.touched) < ttl);
        before - self.entries.len()
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
        let mut l = Ledger::new(Duration::from_secs(60));
        assert_eq!(l.observe("a", 3, t), 3);
        assert_eq!(l.observe("a", 7, t), 4, "3 → 7 is four occurrences");
        assert_eq!(l.observe("a", 7, t), 0, "an unchanged object adds nothing");
        assert_eq!(l.observe("a", 5, t), 0, "a stale delivery adds nothing");
        assert_eq!(l.observe("a", 8, t), 1, "and does not lower the mark");
        assert_eq!(l.observe("b", 1, t), 1);
        l.forget("a");
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_sum_of_deltas_is_the_highest_count() {
        // Any delivery order, with repeats and reorders: the occurrences add up to the max.
        let t = Instant::now();
        for seq in [vec![1, 1, 2, 5, 3, 5, 9], vec![4, 2, 6, 6, 1], vec![1]] {
            let mut l = Ledger::new(Duration::from_secs(60));
            let total: u64 = seq.iter().map(|c| l.observe("x", *c, t)).sum();
            assert_eq!(total, *seq.iter().max().unwrap());
        }
    }

    #[test]
    fn sweep_drops_only_unseen_entries() {
        let t0 = Instant::now();
        let mut l = Ledger::new(Duration::from_secs(60));
        l.observe("old", 1, t0);
        l.observe("fresh", 1, t0);
        l.observe("fresh", 1, t0 + Duration::from_secs(50));
        assert_eq!(l.sweep(t0 + Duration::from_secs(70)), 1);
        assert_eq!(l.observe("fresh", 2, t0 + Duration::from_secs(70)), 1);
    }
}
