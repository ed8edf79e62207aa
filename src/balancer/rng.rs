//! The balancers' random numbers: SplitMix64 with its state in one of the shard's words.
//!
//! SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014)
//! needs one add per draw and passes BigCrush; a balancer needs speed and evenness, not secrecy.
//! Each shard has its own state, seeded from the build's seed and the shard index, so shards
//! draw independent sequences and a test with a fixed seed sees the same picks every run.

use super::cells::Words;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijection of `u64` that spreads every input bit over every
/// output bit. Also used to scatter hash keys.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The starting state of `shard`'s generator.
pub(crate) fn shard_seed(seed: u64, shard: usize) -> u64 {
    mix(seed ^ mix((shard as u64).wrapping_add(1).wrapping_mul(GAMMA)))
}

/// The next number from the generator whose state is word `at` of `words`.
#[inline]
pub(crate) fn next(words: Words<'_>, at: usize) -> u64 {
    let (state, r) = step(words.get(at));
    words.set(at, state);
    r
}

/// A seed that differs between processes: std's `RandomState` keys are drawn from the OS.
pub(crate) fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// One draw from a generator kept in a plain word by its owner: (next state, number).
#[inline]
pub(crate) fn step(state: u64) -> (u64, u64) {
    let next = state.wrapping_add(GAMMA);
    (next, mix(next))
}

/// A number below `n` from a uniform `r` (Lemire's multiply-shift; the bias, n / 2^64, is
/// far below anything a distribution test could see).
#[inline]
pub(crate) fn below(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::super::cells::ShardCells;
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64() {
        // The first outputs for seed 0, from the paper's reference implementation.
        let cells = ShardCells::new(1, 1);
        let w = cells.shard(0);
        assert_eq!(next(w, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next(w, 0), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_stays_below() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            assert!(below(r, 7) < 7);
        }
        assert_eq!(below(u64::MAX, 7), 6);
    }

    #[test]
    fn shards_get_different_seeds() {
        assert_ne!(shard_seed(1, 0), shard_seed(1, 1));
        assert_ne!(shard_seed(1, 0), shard_seed(2, 0));
    }
}
