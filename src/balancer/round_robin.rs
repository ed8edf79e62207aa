//! Round robin; smooth weighted round robin (as nginx does it) when weights differ.
//!
//! State is per shard, so each shard cycles independently and no cache line is shared: each
//! shard only touches its own slot, with relaxed atomics standing in for `Cell` because the
//! snapshot that owns this must be `Sync`.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

pub struct RoundRobin {
    weights: Box<[i64]>,
    total: i64,
    uniform: bool,
    shards: Box<[CachePadded<ShardState>]>,
}

struct ShardState {
    next: AtomicUsize,
    current: Box<[AtomicI64]>,
}

impl RoundRobin {
    pub fn new(weights: &[u32], shards: usize) -> RoundRobin {
        let weights: Box<[i64]> = weights.iter().map(|&w| i64::from(w.max(1))).collect();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let shards = (0..shards.max(1))
            .map(|_| {
                CachePadded::new(ShardState {
                    next: AtomicUsize::new(0),
                    current: weights.iter().map(|_| AtomicI64::new(0)).collect(),
                })
            })
            .collect();
        RoundRobin {
            total: weights.iter().sum(),
            weights,
            uniform,
            shards,
        }
    }

    /// The index of the next target for `shard`, or None when there are no targets.
    pub fn pick(&self, shard: usize) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let state = &self.shards[shard % self.shards.len()];
        if self.uniform {
            let i = state.next.load(Relaxed);
            state
                .next
                .store(if i + 1 >= n { 0 } else { i + 1 }, Relaxed);
            return Some(i % n);
        }
        // Smooth weighted round robin: every target gains its weight, the richest is chosen
        // and pays the total. Spreads picks evenly instead of in bursts (5:1:1 gives
        // a a b a c a a, not a a a a a b c).
        let mut best = 0;
        let mut best_weight = i64::MIN;
        for (i, (w, cur)) in self.weights.iter().zip(state.current.iter()).enumerate() {
            let v = cur.load(Relaxed) + w;
            cur.store(v, Relaxed);
            if v > best_weight {
                best = i;
                best_weight = v;
            }
        }
        state.current[best].store(best_weight - self.total, Relaxed);
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_sequence_matches_nginx() {
        let rr = RoundRobin::new(&[5, 1, 1], 1);
        let picks: Vec<usize> = (0..7).map(|_| rr.pick(0).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
        let again: Vec<usize> = (0..7).map(|_| rr.pick(0).unwrap()).collect();
        assert_eq!(again, picks);
    }

    #[test]
    fn uniform_cycles_per_shard() {
        let rr = RoundRobin::new(&[1, 1, 1], 2);
        assert_eq!(
            (0..4).map(|_| rr.pick(0).unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 2, 0]
        );
        assert_eq!(rr.pick(1), Some(0));
        assert_eq!(RoundRobin::new(&[], 1).pick(0), None);
    }
}
