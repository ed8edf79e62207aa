//! A fast, unkeyed hasher for the router's lookup tables.
//!
//! std's SipHash defends a map against keys chosen to collide, which matters only when an
//! attacker chooses the keys that get *inserted*. Router tables are filled from the operator's
//! config and only *probed* with request bytes, so the collision structure is fixed by the
//! config and a cheap word-at-a-time hash is safe. Lookups probe several keys per request
//! (host, suffixes, path boundaries), so this is measurable in `benches/router.rs`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hash map keyed by request-derived byte strings.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Odd 64-bit constant (2^64 / golden ratio) whose multiplication spreads each input word.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher {
    state: u64,
}

impl WordHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    /// The multiply leaves the low bits weak, and hashbrown picks buckets with the low bits and
    /// tags with the high ones, so fold the state once more (the murmur3 finaliser).
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    fn hash(bytes: &[u8]) -> u64 {
        BuildHasherDefault::<WordHasher>::default().hash_one(bytes)
    }

    #[test]
    fn length_is_part_of_the_hash() {
        // The zero padding of the tail must not make "a" and "a\0" collide; std hashes a
        // slice's length before its bytes, which separates them.
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
    }

    #[test]
    fn similar_keys_spread_over_buckets() {
        let mut low_bits = std::collections::HashSet::new();
        for i in 0..1024u32 {
            let key = format!("/api/v1/item{i}");
            low_bits.insert(hash(key.as_bytes()) & 1023);
        }
        // A uniform hash fills about 63% of 1024 buckets with 1024 keys.
        assert!(
            low_bits.len() > 550,
            "only {} distinct buckets",
            low_bits.len()
        );
    }

    #[test]
    fn map_works_with_borrowed_slices() {
        let mut map: FastMap<Box<[u8]>, u32> = FastMap::default();
        map.insert(b"example.com".to_vec().into_boxed_slice(), 7);
        assert_eq!(map.get(&b"example.com"[..]), Some(&7));
        assert_eq!(map.get(&b"example.org"[..]), None);
    }
}
