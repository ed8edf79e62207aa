//! Round robin; smooth weighted round robin (as nginx does it) when weights differ.
//!
//! State is per shard, so each shard cycles independently and no cache line is shared.
//!
//! Three shapes, chosen at build:
//! - equal weights: a cursor over the targets, O(1) (plus one step per unusable target
//!   passed over);
//! - different weights, up to [`SMOOTH_MAX`] targets: smooth weighted round robin, O(n);
//! - different weights, more targets: an earliest-deadline-first heap ([`super::edf`]),
//!   O(log n). EDF keeps the shares exact but is less smooth at the start of a cycle (5:1:1
//!   opens a a a a a b c where smooth round robin gives a a b a c a a).

use super::cells::{ShardCells, Words};
use super::edf::Edf;
use super::Balance;

/// Above this many targets, weighted round robin uses EDF instead of the O(n) smooth pass.
pub const SMOOTH_MAX: usize = 64;

pub struct RoundRobin {
    weights: Box<[i64]>,
    shape: Shape,
    cells: ShardCells,
}

enum Shape {
    /// Word 0: the next target to try.
    Uniform,
    /// Word i: target i's current weight.
    Smooth,
    Edf(Edf),
}

impl RoundRobin {
    /// Weights below 1 count as 1.
    pub fn new(weights: &[u32], shards: usize) -> RoundRobin {
        let uniform = weights.windows(2).all(|w| w[0].max(1) == w[1].max(1));
        let shape = if uniform {
            Shape::Uniform
        } else if weights.len() <= SMOOTH_MAX {
            Shape::Smooth
        } else {
            Shape::Edf(Edf::new(weights))
        };
        let words = match &shape {
            Shape::Uniform => 1,
            Shape::Smooth => weights.len(),
            Shape::Edf(edf) => edf.words(),
        };
        let cells = ShardCells::new(shards, words);
        if let Shape::Edf(edf) = &shape {
            cells.each_shard().for_each(|w| edf.init(w));
        }
        RoundRobin {
            weights: weights.iter().map(|&w| i64::from(w.max(1))).collect(),
            shape,
            cells,
        }
    }

    fn next_uniform(&self, words: Words<'_>, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.weights.len();
        let mut i = words.get(0) as usize;
        if i >= n {
            i = 0;
        }
        for _ in 0..n {
            let next = if i + 1 == n { 0 } else { i + 1 };
            if usable(i) {
                words.set(0, next as u64);
                return Some(i);
            }
            i = next;
        }
        None
    }

    fn next_smooth(&self, words: Words<'_>, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        smooth_pick(words, self.weights.iter().copied(), |i| i, usable)
    }
}

/// Smooth weighted round robin among the `eligible` targets: each gains its weight, the
/// richest is chosen and pays the eligible total. Spreads picks evenly instead of in bursts.
/// Targets that are not eligible sit out with their current weight (word `slot(i)`) frozen,
/// so the sequence among the others stays smooth. Also least_conn's tie-break.
#[inline]
pub(super) fn smooth_pick(
    words: Words<'_>,
    weights: impl Iterator<Item = i64>,
    slot: impl Fn(usize) -> usize,
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best = None;
    let mut best_weight = i64::MIN;
    let mut total = 0;
    for (i, w) in weights.enumerate() {
        if !eligible(i) {
            continue;
        }
        let v = words.get_i64(slot(i)) + w;
        words.set_i64(slot(i), v);
        total += w;
        if v > best_weight {
            best = Some(i);
            best_weight = v;
        }
    }
    let best = best?;
    words.set_i64(slot(best), best_weight - total);
    Some(best)
}

impl Balance for RoundRobin {
    fn pick(
        &self,
        shard: usize,
        _key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        let words = self.cells.shard(shard);
        match &self.shape {
            Shape::Uniform => self.next_uniform(words, usable),
            Shape::Smooth => self.next_smooth(words, usable),
            Shape::Edf(edf) => edf.pick(words, usable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(rr: &RoundRobin, n: usize, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
        (0..n)
            .map(|_| Balance::pick(rr, 0, None, usable).unwrap())
            .collect()
    }

    #[test]
    fn smooth_weighted_sequence_matches_nginx() {
        let rr = RoundRobin::new(&[5, 1, 1], 1);
        let picks: Vec<usize> = (0..7)
            .map(|_| rr.pick(0, None, &|_| true).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
        let again: Vec<usize> = (0..7)
            .map(|_| rr.pick(0, None, &|_| true).unwrap())
            .collect();
        assert_eq!(again, picks);
    }

    #[test]
    fn uniform_cycles_per_shard() {
        let rr = RoundRobin::new(&[1, 1, 1], 2);
        assert_eq!(
            (0..4)
                .map(|_| rr.pick(0, None, &|_| true).unwrap())
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 0]
        );
        assert_eq!(rr.pick(1, None, &|_| true), Some(0));
        assert_eq!(RoundRobin::new(&[], 1).pick(0, None, &|_| true), None);
    }

    #[test]
    fn uniform_passes_over_unusable_targets() {
        let rr = RoundRobin::new(&[1, 1, 1, 1], 1);
        assert_eq!(picks(&rr, 6, &|i| i != 1 && i != 2), [0, 3, 0, 3, 0, 3]);
        assert_eq!(picks(&rr, 4, &|_| true), [0, 1, 2, 3]);
    }

    #[test]
    fn smooth_sequence_among_the_usable_ones() {
        // With target 1 out, 5:1:1 behaves as 5:1 between targets 0 and 2, then as before
        // once it is back.
        let rr = RoundRobin::new(&[5, 1, 1], 1);
        let five_one = RoundRobin::new(&[5, 1], 1);
        let expect: Vec<usize> = picks(&five_one, 12, &|_| true)
            .into_iter()
            .map(|i| if i == 1 { 2 } else { i })
            .collect();
        assert_eq!(picks(&rr, 12, &|i| i != 1), expect);
        let mut count = [0; 3];
        for i in picks(&rr, 7_000, &|_| true) {
            count[i] += 1;
        }
        assert_eq!(count, [5_000, 1_000, 1_000]);
    }

    #[test]
    fn large_weighted_sets_use_edf() {
        let weights: Vec<u32> = (0..100).map(|i| 1 + i % 3).collect();
        let rr = RoundRobin::new(&weights, 1);
        assert!(matches!(rr.shape, Shape::Edf(_)));
        let usable = |i: usize| i % 10 != 0;
        let total: u32 = (0..100).filter(|&i| usable(i)).map(|i| weights[i]).sum();
        let mut count = vec![0u32; 100];
        for i in picks(&rr, total as usize * 10, &usable) {
            count[i] += 1;
        }
        // Every usable target gets its share of each full cycle (give or take the one pick a
        // cycle boundary can shift, as 2^32 / 3 is not exact).
        for (i, &c) in count.iter().enumerate() {
            let want = if usable(i) { weights[i] * 10 } else { 0 };
            assert!(c.abs_diff(want) <= 1, "target {i}: {c} picks, want {want}");
        }
    }
}
