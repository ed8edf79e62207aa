//! Drawing a target in proportion to its weight in O(1): Walker's alias method, built with
//! Vose's linear-time construction ("A linear algorithm for generating random numbers with a
//! given distribution", IEEE TSE 1991) in exact integer arithmetic.
//!
//! Each of the n columns holds one target's probability mass up to 1/n and lends the rest of
//! the column to one other target, its alias. A draw picks a column and flips one biased coin:
//! one random number, two loads, whatever n is.
//!
//! Unusable targets are handled by rejection: redraw while the drawn target is unusable. Each
//! accepted draw is distributed exactly as the weights restricted to the usable targets, so the
//! shares among usable targets stay exact. When most of the weight is unusable rejection could
//! spin, so after [`TRIES`] misses an O(n) scan draws exactly from the usable ones instead (and
//! tells that none is left).

use super::cells::Words;
use super::rng;

/// Draws before falling back to the scan. With half the weight unusable, 1 pick in 256 scans.
const TRIES: usize = 8;

pub(crate) struct AliasTable {
    /// Per column: the coin's threshold in 32-bit fixed point (draw the column's own target
    /// below it, the alias at or above it), and the alias. A full column is its own alias.
    columns: Box<[(u32, u32)]>,
    weights: Box<[u32]>,
}

impl AliasTable {
    /// Weights below 1 count as 1.
    pub(crate) fn new(weights: &[u32]) -> AliasTable {
        let weights: Box<[u32]> = weights.iter().map(|&w| w.max(1)).collect();
        let n = weights.len() as u128;
        let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        // Scaled so that a column holds exactly `total`.
        let mut mass: Vec<u128> = weights.iter().map(|&w| u128::from(w) * n).collect();
        let mut columns: Vec<(u32, u32)> =
            (0..weights.len() as u32).map(|i| (u32::MAX, i)).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..weights.len()).partition(|&i| mass[i] < total);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            // mass[s] < total, so the threshold is below 2^32.
            columns[s] = (((mass[s] << 32) / total) as u32, l as u32);
            mass[l] -= total - mass[s];
            if mass[l] < total {
                large.pop();
                small.push(l);
            }
        }
        // Exact arithmetic leaves only full columns in either list; they keep (MAX, self).
        AliasTable {
            columns: columns.into_boxed_slice(),
            weights,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.weights.len()
    }

    pub(crate) fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// A target drawn in proportion to weight from the uniform `r`. The table must not be empty.
    #[inline]
    pub(crate) fn draw(&self, r: u64) -> usize {
        // The high half picks the column, the low half flips the coin.
        let column = rng::below(r >> 32 << 32, self.columns.len() as u64) as usize;
        let (threshold, alias) = self.columns[column];
        if (r as u32) < threshold {
            column
        } else {
            alias as usize
        }
    }

    /// Power of two choices: two different usable targets drawn by weight, and the second
    /// is taken only when `second_wins(first, second)`, so ties go to the first draw. With a
    /// single usable target, that one.
    #[inline]
    pub(crate) fn pick_of_two(
        &self,
        words: Words<'_>,
        rng_at: usize,
        usable: &dyn Fn(usize) -> bool,
        second_wins: impl Fn(usize, usize) -> bool,
    ) -> Option<usize> {
        let first = self.draw_usable(words, rng_at, usable, None)?;
        match self.draw_usable(words, rng_at, usable, Some(first)) {
            Some(second) if second_wins(first, second) => Some(second),
            _ => Some(first),
        }
    }

    /// A target drawn in proportion to weight among those that are `usable` and not `skip`,
    /// using the generator in word `rng_at` of `words`; None when there is none.
    #[inline]
    pub(crate) fn draw_usable(
        &self,
        words: Words<'_>,
        rng_at: usize,
        usable: &dyn Fn(usize) -> bool,
        skip: Option<usize>,
    ) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        for _ in 0..TRIES {
            let i = self.draw(rng::next(words, rng_at));
            if Some(i) != skip && usable(i) {
                return Some(i);
            }
        }
        self.scan_usable(rng::next(words, rng_at), usable, skip)
    }

    /// The exact draw among the eligible targets, in O(n).
    #[cold]
    fn scan_usable(
        &self,
        r: u64,
        usable: &dyn Fn(usize) -> bool,
        skip: Option<usize>,
    ) -> Option<usize> {
        let eligible = |i: usize| Some(i) != skip && usable(i);
        let total: u64 = (0..self.weights.len())
            .filter(|&i| eligible(i))
            .map(|i| u64::from(self.weights[i]))
            .sum();
        if total == 0 {
            return None;
        }
        let mut left = rng::below(r, total);
        let mut last = None;
        for (i, &w) in self.weights.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            if left < u64::from(w) {
                return Some(i);
            }
            left -= u64::from(w);
            last = Some(i);
        }
        // `usable` changed its answer between the two passes (health flipped meanwhile).
        last
    }
}

#[cfg(test)]
mod tests {
    use super::super::cells::ShardCells;
    use super::*;

    /// The mass each target gets over all columns and coin outcomes, in 2^-32 units per column.
    fn masses(table: &AliasTable) -> Vec<u64> {
        let mut mass = vec![0u64; table.len()];
        for (c, &(threshold, alias)) in table.columns.iter().enumerate() {
            if alias as usize == c {
                mass[c] += 1 << 32;
            } else {
                mass[c] += u64::from(threshold);
                mass[alias as usize] += (1 << 32) - u64::from(threshold);
            }
        }
        mass
    }

    #[test]
    fn columns_hold_the_weights_exactly() {
        for weights in [&[5, 3, 1][..], &[1], &[1, 1, 1, 1], &[7, 0, 1000, 3, 3]] {
            let table = AliasTable::new(weights);
            let mass = masses(&table);
            let total: f64 = weights.iter().map(|&w| f64::from(w.max(1))).sum();
            let all = (table.len() as f64) * 4_294_967_296.0;
            for (i, &w) in weights.iter().enumerate() {
                let want = f64::from(w.max(1)) / total;
                let got = mass[i] as f64 / all;
                assert!(
                    (got - want).abs() < 1e-8,
                    "{weights:?}[{i}]: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn draw_usable_skips_and_reports_none() {
        let table = AliasTable::new(&[100, 1, 1]);
        let cells = ShardCells::new(1, 1);
        let w = cells.shard(0);
        for _ in 0..1000 {
            let i = table.draw_usable(w, 0, &|i| i != 0, None).unwrap();
            assert!(i == 1 || i == 2);
            assert_eq!(table.draw_usable(w, 0, &|i| i != 0, Some(1)), Some(2));
        }
        assert_eq!(table.draw_usable(w, 0, &|_| false, None), None);
        assert_eq!(table.draw_usable(w, 0, &|i| i == 1, Some(1)), None);
        assert_eq!(
            AliasTable::new(&[]).draw_usable(w, 0, &|_| true, None),
            None
        );
    }
}
