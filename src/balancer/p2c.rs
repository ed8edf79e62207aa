//! Power of two choices on active requests (Mitzenmacher): draw two distinct usable targets in
//! proportion to weight, send to the one with fewer active requests per unit of weight.
//!
//! O(1) at any size (two alias-table draws, [`super::alias`]). Two random choices keep the
//! worst load within O(log log n) of the mean where one random choice leaves O(log n / log log
//! n), without least_conn's full scan or its herding: every shard looking at the same minimum.
//!
//! Ties, including the idle case where nothing is in flight, go to the first draw, so an idle
//! upstream sees exactly its weights. Active requests are the shard's own (`started` and
//! `finished`), as for least_conn.

use std::time::Duration;

use super::alias::AliasTable;
use super::cells::ShardCells;
use super::Balance;

/// The shard's words: the generator's state, then one active count per target.
const RNG: usize = 0;
const ACTIVE: usize = 1;

pub struct P2c {
    table: AliasTable,
    cells: ShardCells,
}

impl P2c {
    /// Weights below 1 count as 1.
    pub fn new(weights: &[u32], shards: usize, seed: u64) -> P2c {
        P2c {
            table: AliasTable::new(weights),
            cells: ShardCells::seeded(shards, ACTIVE + weights.len(), RNG, seed),
        }
    }
}

impl Balance for P2c {
    fn pick(
        &self,
        shard: usize,
        _key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let words = self.cells.shard(shard);
        self.table.pick_of_two(words, RNG, usable, |first, second| {
            let (a, b) = (words.get(ACTIVE + first), words.get(ACTIVE + second));
            let (wa, wb) = (self.table.weight(first), self.table.weight(second));
            // b/wb < a/wa, cross-multiplied.
            u128::from(b) * u128::from(wa) < u128::from(a) * u128::from(wb)
        })
    }

    fn started(&self, shard: usize, i: usize) {
        self.cells.shard(shard).increment(ACTIVE + i);
    }

    fn finished(&self, shard: usize, i: usize, _latency: Duration, _ok: bool) {
        self.cells.shard(shard).decrement(ACTIVE + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_less_loaded_of_two() {
        let p = P2c::new(&[1, 1], 1, 9);
        for _ in 0..3 {
            p.started(0, 0);
        }
        for _ in 0..100 {
            assert_eq!(p.pick(0, None, &|_| true), Some(1));
        }
        for _ in 0..3 {
            p.finished(0, 0, Duration::ZERO, true);
        }
        p.started(0, 1);
        for _ in 0..100 {
            assert_eq!(p.pick(0, None, &|_| true), Some(0));
        }
    }

    #[test]
    fn spreads_held_requests_evenly() {
        // 100 requests held open on 10 equal targets: two choices keep every target within a
        // couple of requests of the mean of 10.
        let p = P2c::new(&[1; 10], 1, 5);
        let mut active = [0u32; 10];
        for _ in 0..100 {
            let i = p.pick(0, None, &|_| true).unwrap();
            p.started(0, i);
            active[i] += 1;
        }
        let (min, max) = (active.iter().min().unwrap(), active.iter().max().unwrap());
        assert!(*min >= 8 && *max <= 12, "{active:?}");
    }

    #[test]
    fn weight_scales_what_counts_as_loaded() {
        // 3 active on weight 4 is lighter than 1 active on weight 1.
        let p = P2c::new(&[4, 1], 1, 2);
        for _ in 0..3 {
            p.started(0, 0);
        }
        p.started(0, 1);
        for _ in 0..100 {
            assert_eq!(p.pick(0, None, &|_| true), Some(0));
        }
    }
}
