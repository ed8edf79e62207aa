//! The balancers' per-shard state: a block of 64-bit words per shard, each block starting on
//! its own cache line, so one shard's picks never invalidate a line another shard is writing.
//!
//! Only the shard's own thread writes its block, so a relaxed load followed by a store is exact
//! and skips the locked read-modify-write a shared counter would pay (the same trade as
//! `metrics/per_shard.rs`). The words are atomics only because the snapshot that owns them must
//! be `Sync`; a caller that broke the one-writer rule would lose updates, never read a torn one.
//!
//! One flat allocation for all shards: a `Box<[AtomicU64]>` per shard would let the allocator
//! place two shards' small arrays on one line, which is the false sharing this file exists to
//! prevent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const WORDS_PER_LINE: usize = 16;

/// 128 bytes, as crossbeam's `CachePadded` on x86-64: the adjacent-line prefetcher moves lines
/// in pairs, so 64 would still let two shards contend.
#[repr(align(128))]
struct Line([AtomicU64; WORDS_PER_LINE]);

pub(crate) struct ShardCells {
    lines: Box<[Line]>,
    lines_per_shard: usize,
    shards: usize,
}

/// One shard's words, borrowed from [`ShardCells::shard`].
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    lines: &'a [Line],
}

impl ShardCells {
    /// `words` zeroed words for each of `shards` shards (at least one).
    pub(crate) fn new(shards: usize, words: usize) -> ShardCells {
        let shards = shards.max(1);
        let lines_per_shard = words.div_ceil(WORDS_PER_LINE).max(1);
        let lines = (0..shards * lines_per_shard)
            .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        ShardCells {
            lines,
            lines_per_shard,
            shards,
        }
    }

    /// Like [`ShardCells::new`], with word `rng_at` of each shard holding its own random
    /// generator, seeded from `seed`.
    pub(crate) fn seeded(shards: usize, words: usize, rng_at: usize, seed: u64) -> ShardCells {
        let cells = ShardCells::new(shards, words);
        for (s, words) in cells.each_shard().enumerate() {
            words.set(rng_at, super::rng::shard_seed(seed, s));
        }
        cells
    }

    /// The words of `shard`. A shard index beyond the count given to `new` wraps around, so a
    /// wiring mistake shares state instead of panicking on the request path.
    #[inline]
    pub(crate) fn shard(&self, shard: usize) -> Words<'_> {
        let shard = if shard < self.shards {
            shard
        } else {
            shard % self.shards
        };
        let start = shard * self.lines_per_shard;
        Words {
            lines: &self.lines[start..start + self.lines_per_shard],
        }
    }

    /// Every shard's words, for setting initial values at build time.
    pub(crate) fn each_shard(&self) -> impl Iterator<Item = Words<'_>> {
        (0..self.shards).map(|s| self.shard(s))
    }
}

impl Words<'_> {
    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.lines[i / WORDS_PER_LINE].0[i % WORDS_PER_LINE]
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.word(i).load(Relaxed)
    }

    #[inline]
    pub(crate) fn set(&self, i: usize, v: u64) {
        self.word(i).store(v, Relaxed);
    }

    /// The word as a signed value (smooth round robin's current weights go negative).
    #[inline]
    pub(crate) fn get_i64(&self, i: usize) -> i64 {
        self.get(i) as i64
    }

    #[inline]
    pub(crate) fn set_i64(&self, i: usize, v: i64) {
        self.set(i, v as u64);
    }

    /// Adds one (a request started).
    #[inline]
    pub(crate) fn increment(&self, i: usize) {
        self.set(i, self.get(i).wrapping_add(1));
    }

    /// Takes one away, stopping at zero: a `finished` without its `started` (a balancer rebuilt
    /// by a reload while the request was in flight) must not wrap to a huge load.
    #[inline]
    pub(crate) fn decrement(&self, i: usize) {
        self.set(i, self.get(i).saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_starts_on_its_own_line() {
        let cells = ShardCells::new(3, 20);
        let first = |s: usize| cells.shard(s).word(0) as *const AtomicU64 as usize;
        for s in 0..3 {
            assert_eq!(first(s) % 128, 0);
        }
        assert!(first(1) - first(0) >= 20 * 8);
        cells.shard(1).set(19, 7);
        assert_eq!(cells.shard(1).get(19), 7);
        assert_eq!(cells.shard(0).get(19), 0);
        assert_eq!(cells.shard(2).get(19), 0);
        assert_eq!(cells.shard(4).get(19), 7, "shard indexes wrap");
    }

    #[test]
    fn decrement_stops_at_zero() {
        let cells = ShardCells::new(1, 1);
        let w = cells.shard(0);
        w.increment(0);
        w.decrement(0);
        w.decrement(0);
        assert_eq!(w.get(0), 0);
    }
}
