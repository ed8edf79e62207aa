//! What every algorithm promises, checked on each: shares follow weights, unusable targets are
//! never picked, shards do not disturb each other, and a pick allocates nothing.

use std::time::Duration;

use super::*;
use crate::router::no_alloc_tests::allocations_during;

const SEED: u64 = 0x5EED;
const PICKS: u32 = 90_000;

/// The key a request would carry, for consistent_hash (the others ignore it).
fn key(n: u32) -> Option<u64> {
    Some(hash_key(format!("client-{n}").as_bytes()))
}

/// Picks `PICKS` times on shard 0, each request finishing before the next starts (so the
/// load-aware algorithms see an idle upstream), and counts picks per target.
///
/// ewma is told nothing: it follows weights only while it cannot tell targets apart. Once
/// latencies are reported it prefers the cheaper target, as it should, and with equal
/// latencies the one it heard from longest ago (its estimate has decayed the most); see
/// `ewma_with_equal_latencies_starves_no_target`.
fn shares(algorithm: Algorithm, weights: &[u32], usable: &dyn Fn(usize) -> bool) -> Vec<u32> {
    let b = build(algorithm, weights, 2, SEED);
    let mut count = vec![0u32; weights.len()];
    for n in 0..PICKS {
        let i = b.pick(0, key(n), usable).expect("a usable target");
        if algorithm != Algorithm::Ewma {
            b.started(0, i);
            b.finished(0, i, Duration::from_millis(5), true);
        }
        count[i] += 1;
    }
    count
}

/// Tolerance: each target's share within 1 percentage point of its weight's share (900 of
/// 90,000 picks). For the random draws that is over 6 standard deviations (the widest, p = 5/9,
/// has σ = 149 picks); the deterministic ones are exact.
fn assert_shares(algorithm: Algorithm, count: &[u32], weights: &[u32]) {
    let total: u32 = weights.iter().sum();
    for (i, (&c, &w)) in count.iter().zip(weights).enumerate() {
        let got = f64::from(c) / f64::from(PICKS);
        let want = f64::from(w) / f64::from(total);
        assert!(
            (got - want).abs() <= 0.01,
            "{}: target {i} got {c} of {PICKS} picks ({got:.4}), weight share {want:.4}; {count:?}",
            algorithm.name()
        );
    }
}

#[test]
fn shares_follow_weights() {
    let weights = [5, 3, 1];
    for algorithm in Algorithm::ALL {
        let count = shares(algorithm, &weights, &|_| true);
        assert_shares(algorithm, &count, &weights);
        eprintln!("{:>16} 5:3:1 over {PICKS}: {count:?}", algorithm.name());
    }
}

#[test]
fn ewma_with_equal_latencies_starves_no_target() {
    let b = build(Algorithm::Ewma, &[5, 3, 1], 1, SEED);
    let mut count = [0u32; 3];
    for _ in 0..PICKS {
        let i = b.pick(0, None, &|_| true).unwrap();
        b.started(0, i);
        b.finished(0, i, Duration::from_millis(5), true);
        count[i] += 1;
    }
    eprintln!("ewma 5:3:1, equal 5 ms latencies, over {PICKS}: {count:?}");
    assert!(count.iter().all(|&c| c >= PICKS / 20), "{count:?}");
}

#[test]
fn exact_shares_for_the_deterministic_ones() {
    for algorithm in [Algorithm::RoundRobin, Algorithm::LeastConn] {
        assert_eq!(
            shares(algorithm, &[5, 3, 1], &|_| true),
            [50_000, 30_000, 10_000],
            "{}",
            algorithm.name()
        );
    }
}

#[test]
fn shares_among_usable_targets_follow_their_weights() {
    // Target 1 (weight 3) unusable: the rest split 5:1.
    for algorithm in Algorithm::ALL {
        let count = shares(algorithm, &[5, 3, 1], &|i| i != 1);
        assert_eq!(
            count[1],
            0,
            "{} picked an unusable target",
            algorithm.name()
        );
        if algorithm != Algorithm::ConsistentHash {
            assert_shares(algorithm, &[count[0], count[2]], &[5, 1]);
        }
    }
}

#[test]
fn unusable_targets_are_never_picked_and_none_when_all_are() {
    for algorithm in Algorithm::ALL {
        for n in [3, 100] {
            let weights: Vec<u32> = (0..n).map(|i| 1 + i % 4).collect();
            let b = build(algorithm, &weights, 1, SEED);
            let usable = |i: usize| i % 3 == 1;
            for k in 0..2_000 {
                let i = b.pick(0, key(k), &usable).unwrap();
                assert!(usable(i), "{} picked {i}", algorithm.name());
                b.started(0, i);
            }
            for k in 0..10 {
                assert_eq!(b.pick(0, key(k), &|_| false), None, "{}", algorithm.name());
                assert_eq!(b.pick(0, None, &|_| false), None, "{}", algorithm.name());
            }
            let only = |i: usize| i == n as usize - 1;
            assert_eq!(b.pick(0, key(1), &only), Some(n as usize - 1));
        }
        let empty = build(algorithm, &[], 1, SEED);
        assert_eq!(empty.pick(0, key(1), &|_| true), None);
        assert_eq!(empty.pick(0, None, &|_| true), None);
    }
}

#[test]
fn shards_do_not_disturb_each_other() {
    // Shard 0's sequence is the same whether or not shard 1 is busy meanwhile (picking,
    // holding requests, reporting latencies).
    let weights = [4, 2, 1, 1];
    for algorithm in Algorithm::ALL {
        let run = |shard_one_busy: bool| {
            let b = build(algorithm, &weights, 2, SEED);
            let mut seq = Vec::new();
            for n in 0..200 {
                let i = b.pick(0, key(n), &|_| true).unwrap();
                b.started(0, i);
                seq.push(i);
                if shard_one_busy {
                    for m in 0..3 {
                        let j = b.pick(1, key(n * 3 + m), &|_| true).unwrap();
                        b.started(1, j);
                        if m != 0 {
                            b.finished(1, j, Duration::from_millis(u64::from(m) * 40), m == 1);
                        }
                    }
                }
            }
            seq
        };
        assert_eq!(run(false), run(true), "{}", algorithm.name());
    }
}

#[test]
fn shards_draw_different_sequences() {
    for algorithm in [Algorithm::Random, Algorithm::P2c, Algorithm::Ewma] {
        let b = build(algorithm, &[1; 8], 2, SEED);
        let seq = |shard| {
            (0..64)
                .map(|_| b.pick(shard, None, &|_| true).unwrap())
                .collect::<Vec<_>>()
        };
        assert_ne!(seq(0), seq(1), "{}", algorithm.name());
    }
}

#[test]
fn least_conn_and_p2c_prefer_the_less_loaded() {
    for algorithm in [Algorithm::LeastConn, Algorithm::P2c, Algorithm::Ewma] {
        let b = build(algorithm, &[1, 1], 1, SEED);
        // Target 0 holds five requests; target 1 has finished all of its.
        for _ in 0..5 {
            b.started(0, 0);
            b.started(0, 1);
        }
        for _ in 0..5 {
            b.finished(0, 1, Duration::from_millis(5), true);
        }
        for _ in 0..5 {
            b.finished(0, 0, Duration::from_millis(5), true);
            b.started(0, 0);
        }
        for _ in 0..100 {
            assert_eq!(b.pick(0, None, &|_| true), Some(1), "{}", algorithm.name());
        }
    }
}

#[test]
fn a_pick_allocates_nothing() {
    for algorithm in Algorithm::ALL {
        for n in [3u32, 100] {
            let weights: Vec<u32> = (0..n).map(|i| 1 + i % 5).collect();
            let b = build(algorithm, &weights, 2, SEED);
            let keys: Vec<Option<u64>> = (0..1_000).map(key).collect();
            let down = 1;
            let count = allocations_during(|| {
                for (k, key) in keys.iter().enumerate() {
                    let usable = |i: usize| i != down || k % 2 == 0;
                    let i = b.pick(k % 2, *key, &usable).unwrap();
                    b.started(k % 2, i);
                    b.finished(k % 2, i, Duration::from_micros(300), k % 7 != 0);
                    std::hint::black_box(b.pick(0, None, &|_| true));
                    std::hint::black_box(b.pick(0, *key, &|_| false));
                }
            });
            assert_eq!(count, 0, "{} with {n} targets", algorithm.name());
        }
    }
}

#[test]
fn algorithm_names_round_trip() {
    for algorithm in Algorithm::ALL {
        assert_eq!(Algorithm::parse(algorithm.name()), Some(algorithm));
    }
    assert_eq!(Algorithm::parse("least_connections"), None);
    assert_eq!(
        Algorithm::ALL.map(Algorithm::name),
        [
            "round_robin",
            "least_conn",
            "random",
            "p2c",
            "ewma",
            "consistent_hash"
        ]
    );
}

#[test]
fn hash_key_is_fnv1a_64() {
    // The published FNV-1a 64 test vectors: this function must never change.
    assert_eq!(hash_key(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(hash_key(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(hash_key(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn smooth_round_robin_interleaves_weights() {
    let rr = RoundRobin::new(&[2, 1], 1);
    let picks: Vec<_> = (0..3)
        .map(|_| rr.pick(0, None, &|_| true).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 0]);
}
