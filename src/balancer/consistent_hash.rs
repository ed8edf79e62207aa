//! Consistent hashing with Maglev's lookup table (Eisenbud et al., "Maglev: A Fast and
//! Reliable Software Network Load Balancer", NSDI 2016).
//!
//! Why Maglev rather than a ketama ring: a pick is one hash and one table load, O(1), where a
//! ring needs a binary search over ~100–200 points per target; and the table gives each target
//! its weight's share of keys to within a fraction of a percent, where a ring's shares wander
//! by several percent unless it has many more points.
//!
//! Each target has a permutation of the table's slots, derived from the target's key (a stable
//! identity such as its address, never its position in the config); targets take turns
//! claiming their next preferred free slot until the table is full. A target of weight w gets
//! w turns for every `max weight` turns of the heaviest, so slots follow weights. The fill
//! visits targets sorted by key, so listing the same targets in another order changes nothing.
//!
//! **Table size**: a prime, so every permutation step is coprime with it and visits every
//! slot. 65,537 (the paper's choice, as Envoy's default) for up to 655 targets, otherwise the
//! smallest prime ≥ 100 × targets: with at least 100 slots per target, each target's share of
//! slots is within about 1% of its weight share, and removing a target disturbs other targets'
//! slots only slightly (the paper's measure). 256 KiB per upstream at 65,537 slots of `u32`;
//! built once per snapshot, shared read-only by every shard.
//!
//! **Unusable targets**: the table is not rebuilt when health changes (it is per snapshot). A
//! key whose slot holds an unusable target walks a fixed probe sequence derived from the key
//! alone: up to [`PROBES`] further slots chosen by rehashing, then the targets in order from
//! one the key names. Only keys of unusable targets move, each to a target decided by the key,
//! spread over the others by weight; when the target comes back they return.
//!
//! Requests with no key go round robin among usable targets ([`super::RoundRobin`]).

use super::round_robin::RoundRobin;
use super::{rng, Balance};

/// The table size for up to [`SMALL_TARGETS`] targets.
pub const SMALL_TABLE: usize = 65_537;
const SMALL_TARGETS: usize = SMALL_TABLE / 100;
/// Slots rehashed before the scan when the key's own slot is unusable. With half the slots
/// unusable, 1 key in 2^33 scans.
const PROBES: u64 = 32;

const EMPTY: u32 = u32::MAX;

pub struct ConsistentHash {
    table: Box<[u32]>,
    targets: usize,
    no_key: RoundRobin,
}

impl ConsistentHash {
    /// `target_keys[i]` identifies target `i` across snapshots (the same target must get the
    /// same key in the next snapshot for its keys to stay put). Weights below 1 count as 1.
    pub fn new(weights: &[u32], target_keys: &[u64], shards: usize) -> ConsistentHash {
        assert_eq!(weights.len(), target_keys.len(), "one key per target");
        ConsistentHash {
            table: populate(weights, target_keys),
            targets: weights.len(),
            no_key: RoundRobin::new(weights, shards),
        }
    }

    /// The table size for `targets` targets.
    pub fn table_size(targets: usize) -> usize {
        if targets <= SMALL_TARGETS {
            SMALL_TABLE
        } else {
            (100 * targets..)
                .find(|&m| is_prime(m))
                .expect("a prime above")
        }
    }

    /// The target a key maps to with every target usable.
    #[cfg(test)]
    pub(crate) fn lookup(&self, key: u64) -> usize {
        self.table[slot(rng::mix(key), self.table.len())] as usize
    }
}

fn is_prime(m: usize) -> bool {
    m >= 2 && (2..).take_while(|d| d * d <= m).all(|d| m % d != 0)
}

#[inline]
fn slot(h: u64, size: usize) -> usize {
    (h % size as u64) as usize
}

/// Maglev's population, weighted.
fn populate(weights: &[u32], target_keys: &[u64]) -> Box<[u32]> {
    if weights.is_empty() {
        return Box::new([]);
    }
    let m = ConsistentHash::table_size(weights.len()) as u64;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (target_keys[i], i));
    struct Turn {
        target: u32,
        weight: u64,
        credit: u64,
        next: u64,
        skip: u64,
    }
    let mut turns: Vec<Turn> = order
        .into_iter()
        .map(|i| {
            let h = rng::mix(target_keys[i]);
            Turn {
                target: i as u32,
                weight: u64::from(weights[i].max(1)),
                credit: 0,
                next: h % m,
                skip: rng::mix(h ^ 0x5851_F42D_4C95_7F2D) % (m - 1) + 1,
            }
        })
        .collect();
    let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);
    let mut table = vec![EMPTY; m as usize];
    let mut filled = 0;
    loop {
        for t in &mut turns {
            t.credit += t.weight;
            if t.credit < max_weight {
                continue;
            }
            t.credit -= max_weight;
            while table[t.next as usize] != EMPTY {
                t.next = (t.next + t.skip) % m;
            }
            table[t.next as usize] = t.target;
            filled += 1;
            if filled == m {
                return table.into_boxed_slice();
            }
        }
    }
}

impl Balance for ConsistentHash {
    fn pick(
        &self,
        shard: usize,
        key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let Some(key) = key else {
            return Balance::pick(&self.no_key, shard, None, usable);
        };
        if self.targets == 0 {
            return None;
        }
        let h = rng::mix(key);
        let size = self.table.len();
        let first = self.table[slot(h, size)] as usize;
        if usable(first) {
            return Some(first);
        }
        for probe in 1..=PROBES {
            let i = self.table[slot(rng::mix(h.wrapping_add(probe)), size)] as usize;
            if usable(i) {
                return Some(i);
            }
        }
        // Nearly everything is unusable: the first usable target from one the key names.
        let start = slot(h, self.targets);
        (start..self.targets).chain(0..start).find(|&i| usable(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::hash_key;

    fn keys() -> impl Iterator<Item = u64> {
        (0..10_000u32).map(|k| hash_key(format!("user-{k}").as_bytes()))
    }

    /// Ten targets identified by their addresses, as the snapshot would key them.
    fn addresses(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| hash_key(format!("10.0.0.{}:8080", i + 1).as_bytes()))
            .collect()
    }

    #[test]
    fn the_same_key_maps_to_the_same_target() {
        let ids = addresses(10);
        let a = ConsistentHash::new(&[1; 10], &ids, 2);
        let b = ConsistentHash::new(&[1; 10], &ids, 4);
        for key in keys().take(1_000) {
            let t = a.pick(0, Some(key), &|_| true);
            assert_eq!(a.pick(1, Some(key), &|_| true), t, "another shard");
            assert_eq!(a.pick(0, Some(key), &|_| true), t, "again");
            assert_eq!(b.pick(3, Some(key), &|_| true), t, "another build");
        }
    }

    #[test]
    fn removing_one_of_ten_moves_about_a_tenth() {
        let ids = addresses(10);
        let all = ConsistentHash::new(&[1; 10], &ids, 1);
        let removed = 3;
        let rest_ids: Vec<u64> = (0..10).filter(|&i| i != removed).map(|i| ids[i]).collect();
        let rest = ConsistentHash::new(&[1; 9], &rest_ids, 1);
        let index_in_rest = |i: usize| if i > removed { i - 1 } else { i };
        let (mut moved, mut on_removed, mut others_moved) = (0, 0, 0);
        for key in keys() {
            let before = all.lookup(key);
            let after = rest.lookup(key);
            if before == removed {
                on_removed += 1;
                moved += 1;
            } else if index_in_rest(before) != after {
                moved += 1;
                others_moved += 1;
            }
        }
        eprintln!("removing 1 of 10: {moved} of 10,000 keys moved ({on_removed} were on it, {others_moved} on others)");
        let share = moved as f64 / 10_000.0;
        assert!(
            (0.05..=0.15).contains(&share),
            "{moved} of 10,000 keys moved"
        );
        assert_eq!(moved, on_removed + others_moved);
        // Maglev promises minimal, not zero, disruption for keys of the remaining targets:
        // the freed slots change the order in which the others claim theirs.
        assert!(
            others_moved <= 100,
            "{others_moved} keys of remaining targets moved"
        );
    }

    #[test]
    fn an_unusable_target_gives_up_only_its_own_keys() {
        let ids = addresses(10);
        let ch = ConsistentHash::new(&[1; 10], &ids, 1);
        let down = 6;
        let mut went_to = [0u32; 10];
        for key in keys() {
            let before = ch.pick(0, Some(key), &|_| true).unwrap();
            let after = ch.pick(0, Some(key), &|i| i != down).unwrap();
            if before == down {
                went_to[after] += 1;
            } else {
                assert_eq!(after, before, "a key of a usable target moved");
            }
            assert_eq!(ch.pick(0, Some(key), &|_| true), Some(before), "and back");
        }
        assert_eq!(went_to[down], 0);
        let displaced: u32 = went_to.iter().sum();
        for (i, &n) in went_to.iter().enumerate() {
            if i != down {
                // About displaced / 9 each.
                assert!(n > displaced / 18 && n < displaced / 5, "{went_to:?}");
            }
        }
    }

    #[test]
    fn order_in_the_config_does_not_matter() {
        let ids = addresses(5);
        let weights = [1, 2, 3, 4, 5];
        let a = ConsistentHash::new(&weights, &ids, 1);
        let reversed_ids: Vec<u64> = ids.iter().rev().copied().collect();
        let reversed_weights: Vec<u32> = weights.iter().rev().copied().collect();
        let b = ConsistentHash::new(&reversed_weights, &reversed_ids, 1);
        for key in keys() {
            assert_eq!(a.lookup(key), 4 - b.lookup(key));
        }
    }

    #[test]
    fn slots_follow_weights() {
        let ch = ConsistentHash::new(&[5, 3, 1], &addresses(3), 1);
        let mut slots = [0u32; 3];
        for &t in ch.table.iter() {
            slots[t as usize] += 1;
        }
        let m = SMALL_TABLE as f64;
        for (i, share) in [5.0 / 9.0, 3.0 / 9.0, 1.0 / 9.0].into_iter().enumerate() {
            assert!((f64::from(slots[i]) / m - share).abs() < 0.001, "{slots:?}");
        }
    }

    #[test]
    fn table_size_is_a_prime_with_room() {
        assert_eq!(ConsistentHash::table_size(1), 65_537);
        assert_eq!(ConsistentHash::table_size(655), 65_537);
        let m = ConsistentHash::table_size(656);
        assert!(m >= 65_600 && is_prime(m), "{m}");
        assert_eq!(m, 65_609);
        assert!(is_prime(65_537));
    }

    #[test]
    fn no_key_goes_round_robin_and_no_target_is_none() {
        let ch = ConsistentHash::new(&[1, 1, 1], &addresses(3), 1);
        let picks: Vec<_> = (0..4)
            .map(|_| ch.pick(0, None, &|i| i != 1).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert_eq!(
            ConsistentHash::new(&[], &[], 1).pick(0, Some(1), &|_| true),
            None
        );
        assert_eq!(ch.pick(0, Some(1), &|_| false), None);
    }
}
