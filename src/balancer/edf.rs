//! Earliest deadline first: weighted round robin in O(log n) per pick, for upstreams too large
//! for smooth weighted round robin's O(n) pass (Envoy schedules weighted hosts the same way).
//!
//! Every target has a deadline; a pick takes the earliest and moves it on by 1/weight, so over
//! any stretch each target is picked in proportion to its weight. The deadlines live in a
//! binary min-heap in the shard's words, two words per entry (deadline, target index).
//!
//! Deadlines are 64-bit fixed point (1 = 2^-32 of a weight-1 target's period) and wrap; they
//! are compared by the sign of their difference, as TCP compares sequence numbers. That is a
//! consistent order because every deadline in the heap lies within one period of the earliest
//! (at most 2^32 apart), far inside the 2^63 window.

use super::cells::Words;

const PERIOD: u64 = 1 << 32;

pub(crate) struct Edf {
    /// Per target: how far a pick moves its deadline.
    step: Box<[u64]>,
}

impl Edf {
    /// Weights below 1 count as 1. The heap takes the shard's first `2 × weights.len()` words.
    pub(crate) fn new(weights: &[u32]) -> Edf {
        Edf {
            step: weights
                .iter()
                .map(|&w| PERIOD / u64::from(w.max(1)))
                .collect(),
        }
    }

    pub(crate) fn words(&self) -> usize {
        2 * self.step.len()
    }

    /// Fills one shard's heap: every target starts one step in, so the heaviest go first.
    pub(crate) fn init(&self, words: Words<'_>) {
        let mut entries: Vec<(u64, usize)> = self.step.iter().copied().zip(0..).collect();
        // A sorted array is a valid min-heap.
        entries.sort_unstable();
        for (slot, (deadline, target)) in entries.into_iter().enumerate() {
            self.set(words, slot, deadline, target);
        }
    }

    /// The next usable target in deadline order. An unusable target's turn passes (its deadline
    /// moves on as if picked) so the usable ones keep their relative shares. O(log n) per
    /// entry looked at; None after every target was looked at once.
    #[inline]
    pub(crate) fn pick(&self, words: Words<'_>, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        for _ in 0..self.step.len() {
            let (deadline, target) = self.get(words, 0);
            self.sift_down(words, deadline.wrapping_add(self.step[target]), target);
            if usable(target) {
                return Some(target);
            }
        }
        None
    }

    /// Puts (deadline, target) at the root and moves it down to its place.
    #[inline]
    fn sift_down(&self, words: Words<'_>, deadline: u64, target: usize) {
        let n = self.step.len();
        let mut slot = 0;
        loop {
            let left = 2 * slot + 1;
            if left >= n {
                break;
            }
            let mut child = left;
            let mut child_entry = self.get(words, left);
            if left + 1 < n {
                let right_entry = self.get(words, left + 1);
                if earlier(right_entry, child_entry) {
                    child = left + 1;
                    child_entry = right_entry;
                }
            }
            if !earlier(child_entry, (deadline, target)) {
                break;
            }
            self.set(words, slot, child_entry.0, child_entry.1);
            slot = child;
        }
        self.set(words, slot, deadline, target);
    }

    #[inline]
    fn get(&self, words: Words<'_>, slot: usize) -> (u64, usize) {
        let at = 2 * slot;
        (words.get(at), words.get(at + 1) as usize)
    }

    #[inline]
    fn set(&self, words: Words<'_>, slot: usize, deadline: u64, target: usize) {
        let at = 2 * slot;
        words.set(at, deadline);
        words.set(at + 1, target as u64);
    }
}

/// Deadline order with wrap-around; equal deadlines go to the lower index, so the order is
/// total and the sequence deterministic.
#[inline]
fn earlier(a: (u64, usize), b: (u64, usize)) -> bool {
    let d = a.0.wrapping_sub(b.0) as i64;
    d < 0 || (d == 0 && a.1 < b.1)
}

#[cfg(test)]
mod tests {
    use super::super::cells::ShardCells;
    use super::*;

    #[test]
    fn picks_in_proportion_to_weight() {
        let weights = [5, 3, 1];
        let edf = Edf::new(&weights);
        let cells = ShardCells::new(1, edf.words());
        edf.init(cells.shard(0));
        let mut count = [0; 3];
        for _ in 0..9_000 {
            count[edf.pick(cells.shard(0), &|_| true).unwrap()] += 1;
        }
        assert_eq!(count, [5_000, 3_000, 1_000]);
    }

    #[test]
    fn deadlines_survive_wrapping() {
        let weights = [2, 1];
        let edf = Edf::new(&weights);
        let cells = ShardCells::new(1, edf.words());
        let w = cells.shard(0);
        // Just before the wrap: weight 2's deadline, then weight 1's.
        edf.set(w, 0, u64::MAX - PERIOD / 2, 0);
        edf.set(w, 1, u64::MAX, 1);
        let mut count = [0; 2];
        for _ in 0..3_000 {
            count[edf.pick(w, &|_| true).unwrap()] += 1;
        }
        assert_eq!(count, [2_000, 1_000]);
    }

    #[test]
    fn unusable_turns_pass() {
        let edf = Edf::new(&[1, 1, 1, 1]);
        let cells = ShardCells::new(1, edf.words());
        edf.init(cells.shard(0));
        let picks: Vec<_> = (0..6)
            .map(|_| edf.pick(cells.shard(0), &|i| i != 1).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
        assert_eq!(edf.pick(cells.shard(0), &|_| false), None);
    }
}
