//! Stable hashing: FNV-1a (the `fnv` crate), the same in every process and version, for keys
//! that are stored (archive index keys) or handed out (cursors). In-memory maps whose keys are
//! already random use foldhash instead (see [`FastMap`]).

use std::{collections::HashMap, hash::Hasher};

use fnv::FnvHasher;

/// A hash map for keys that are random bits already (UUIDs, stable hashes) or short strings:
/// foldhash, at a fraction of SipHash's cost. Not for keys an attacker chooses in bulk.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// FNV-1a of `parts`, each ended by `0xff`, a byte no UTF-8 string holds, so `["ab", "c"]` and
/// `["a", "bc"]` differ.
pub fn stable_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut h = FnvHasher::default();
    for part in parts {
        h.write(part.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// 128-bit FNV-1a of `bytes`: for identities that need more room than 64 bits against
/// collisions. Its values are stored in archives, so it must never change.
pub fn stable_hash128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fnv_1a_and_never_change() {
        // Archives on disk hold these: a change would orphan their index entries.
        assert_eq!(stable_hash(["shop"]), 0xf698_da48_f788_ce02);
        assert_eq!(
            stable_hash128(b"ns/a"),
            0x692d_4228_9a75_7277_b806_e961_fbb1_0376
        );
        assert_ne!(stable_hash(["ab", "c"]), stable_hash(["a", "bc"]));
    }
}
