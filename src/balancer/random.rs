//! Weighted random: each pick independent, in proportion to weight among the usable targets.
//!
//! O(1) at any size through an alias table ([`super::alias`]); unusable targets are rejected
//! and redrawn, which keeps the usable shares exact. The generator is SplitMix64 with its state
//! in the shard's words, seeded from the build's seed, so tests see fixed sequences and shards
//! draw independently.

use super::alias::AliasTable;
use super::cells::ShardCells;
use super::Balance;

/// The shard's only word: its generator's state.
const RNG: usize = 0;

pub struct Random {
    table: AliasTable,
    cells: ShardCells,
}

impl Random {
    /// Weights below 1 count as 1.
    pub fn new(weights: &[u32], shards: usize, seed: u64) -> Random {
        Random {
            table: AliasTable::new(weights),
            cells: ShardCells::seeded(shards, 1, RNG, seed),
        }
    }
}

impl Balance for Random {
    fn pick(
        &self,
        shard: usize,
        _key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        self.table
            .draw_usable(self.cells.shard(shard), RNG, usable, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fixes_the_sequence() {
        let picks = |seed| {
            let r = Random::new(&[1, 1, 1, 1], 1, seed);
            (0..32)
                .map(|_| r.pick(0, None, &|_| true).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
    }

    #[test]
    fn a_heavy_unusable_target_does_not_skew_the_rest() {
        // 97% of the weight unusable: rejection mostly fails and the scan draws instead, and
        // the remaining two still split 2:1.
        let r = Random::new(&[97, 2, 1], 1, 3);
        let mut count = [0u32; 3];
        for _ in 0..30_000 {
            count[r.pick(0, None, &|i| i != 0).unwrap()] += 1;
        }
        assert_eq!(count[0], 0);
        let share = f64::from(count[1]) / 30_000.0;
        assert!((share - 2.0 / 3.0).abs() < 0.01, "{count:?}");
    }
}
