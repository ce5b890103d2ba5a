//! The occurrence ledger: event uid → last seen count, so that every update becomes the number
//! of new occurrences it stands for. It holds every live event of the cluster, so an entry is
//! kept small: the uid as 128 bits, times in seconds, 40 bytes in all.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    time::{Duration, Instant},
};

/// An event's identity in the ledger and the archive: a uid, which the API server makes a UUID,
/// as its 128 bits; any other uid (a replay file's `<namespace>/<name>`) as its 128-bit FNV-1a
/// hash.
pub fn uid_key(uid: &str) -> u128 {
    parse_uuid(uid).unwrap_or_else(|| {
        let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        for b in uid.bytes() {
            h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
        h
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case) as a number.
fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        v = (v << 4) | u128::from(char::from(c).to_digit(16)?);
    }
    Some(v)
}

/// The map key: a uid key as two words, so an entry needs 8-byte alignment, not 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(u64, u64);

impl From<u128> for Key {
    fn from(k: u128) -> Self {
        Self((k >> 64) as u64, k as u64)
    }
}

/// Uid keys are random bits (UUIDs) or hashes already: a multiply-fold of their two words (as
/// rustc's FxHash does) spreads them well enough, at a fraction of SipHash's cost.
#[derive(Clone, Copy, Debug, Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b.into());
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
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
    /// Where the event's record is indexed, if it is archived.
    pub archived: Option<u64>,
    /// The event's sequence number, given at its first sighting.
    pub seq: u64,
    /// The event's uid key.
    pub key: u128,
}

/// Remembers the highest count seen per event uid. Bounded: an entry goes when its event is
/// deleted, or when it has not been seen for `ttl` (a deletion missed during a gap).
#[derive(Debug)]
pub struct Ledger {
    entries: HashMap<Key, Entry, BuildHasherDefault<FoldHasher>>,
    /// In whole seconds (at least one).
    ttl: u32,
    /// The clock's zero lies `ttl` before the ledger was made, so every restored entry (last
    /// seen less than `ttl` ago) has a non-negative time.
    created: Instant,
    next_seq: u64,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Ledger {
    /// An empty ledger that numbers new events from `next_seq` on.
    pub fn new(ttl: Duration, next_seq: u64) -> Self {
        Self {
            entries: HashMap::default(),
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
                archived: (entry.archived != 0).then_some(entry.archived),
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
                archived: None,
                seq,
                key,
            }
        }
    }

    /// Makes room for `n` more entries (a restore) without growing step by step.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// The event's record is (queued to be) indexed under last occurrence `at` µs.
    pub fn set_archived(&mut self, key: u128, at: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(&Key::from(key)) {
            entry.archived = at.map_or(0, |t| t.max(1));
        }
    }

    /// Puts back an entry from the archive, last seen `age` ago; entries older than the ttl
    /// are not restored. Returns whether it was.
    pub fn restore(
        &mut self,
        seq: u64,
        key: u128,
        count: u64,
        archived: Option<u64>,
        age: Duration,
        now: Instant,
    ) -> bool {
        self.next_seq = self.next_seq.max(seq + 1);
        if secs(age) >= self.ttl {
            return false;
        }
        self.entries.insert(
            Key::from(key),
            Entry {
                seq,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                touched: self.clock(now) - secs(age),
                archived: archived.map_or(0, |t| t.max(1)),
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
        assert!(l.restore(7, uid_key("a"), 5, Some(3), Duration::from_secs(10), t));
        assert!(!l.restore(9, uid_key("stale"), 5, Some(3), Duration::from_secs(60), t));
        // Restored as seen 10 s ago: still there 49 s later, gone after 50.
        assert!(l.sweep(t + Duration::from_secs(49)).is_empty());
        assert_eq!(
            l.observe("a", 7, t),
            Observation {
                occurrences: 2,
                archived: Some(3),
                seq: 7,
                key: uid_key("a"),
            }
        );
        // New events are numbered after every restored seq, even a stale one.
        assert_eq!(
            l.observe("stale", 5, t),
            Observation {
                occurrences: 5,
                archived: None,
                seq: 10,
                key: uid_key("stale"),
            }
        );
    }

    #[test]
    fn uuids_are_their_bits_and_other_uids_hash() {
        assert_eq!(
            uid_key("3eb13b90-4668-4257-bdd6-40fb06671ad1"),
            0x3eb1_3b90_4668_4257_bdd6_40fb_0667_1ad1
        );
        assert_eq!(
            uid_key("3EB13B90-4668-4257-BDD6-40FB06671AD1"),
            uid_key("3eb13b90-4668-4257-bdd6-40fb06671ad1")
        );
        for not_uuid in [
            "ns/name",
            "3eb13b90-4668-4257-bdd6-40fb06671adz",
            "3eb13b90+4668-4257-bdd6-40fb06671ad1",
            "",
        ] {
            assert_eq!(parse_uuid(not_uuid), None, "{not_uuid}");
        }
        assert_ne!(uid_key("ns/a"), uid_key("ns/b"));
        assert_eq!(
            uid_key("ns/a"),
            uid_key("ns/a"),
            "stable: the archive stores it"
        );
    }
}
