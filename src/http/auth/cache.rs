//! A small map whose entries expire: access decisions keyed by a digest, each kept for the TTL
//! its kind of answer allows, with a cap on entries so a flood of distinct tokens cannot grow
//! memory.

use std::{collections::HashMap, hash::Hash, time::Instant};

/// At most `cap` entries; each answers until its own deadline.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The value of `key` if it has not expired at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` until `until`. A full cache first drops what has expired, then, if still
    /// full, the entry that would expire first: the cost of that scan is paid only under a
    /// flood, and a flood must not evict all at once what honest users are using.
    pub fn insert(&mut self, key: K, value: V, until: Instant, now: Instant) {
        if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, t)| now < *t);
            if self.entries.len() >= self.cap
                && let Some(first) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&first);
            }
        }
        self.entries.insert(key, (value, until));
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_entry_answers_until_its_deadline() {
        let now = Instant::now();
        let mut c = TtlCache::new(4);
        c.insert(1, "a", now + Duration::from_secs(10), now);
        assert_eq!(c.get(&1, now + Duration::from_secs(9)), Some("a"));
        assert_eq!(c.get(&1, now + Duration::from_secs(10)), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_cap() {
        let now = Instant::now();
        let mut c = TtlCache::new(3);
        for i in 0..100u64 {
            c.insert(i, i, now + Duration::from_secs(100 + i), now);
            assert!(c.len() <= 3);
        }
        // The newest stay; the first to expire went.
        assert_eq!(c.get(&99, now), Some(99));
        assert_eq!(c.get(&0, now), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let now = Instant::now();
        let mut c = TtlCache::new(2);
        c.insert(1, 1, now + Duration::from_secs(1), now);
        c.insert(2, 2, now + Duration::from_secs(100), now);
        let later = now + Duration::from_secs(5);
        c.insert(3, 3, later + Duration::from_secs(1), later);
        assert_eq!((c.get(&2, later), c.get(&3, later)), (Some(2), Some(3)));
    }
}
