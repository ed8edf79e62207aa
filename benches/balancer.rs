//! What choosing a target costs a request: `pick` for each algorithm, with 3 targets (a small
//! upstream, where every algorithm may scan) and 100 (above the 64 where round robin switches
//! to its EDF heap and where least_conn's O(n) scan shows).
//!
//! `cargo bench --bench balancer`. Weights differ (1..=5) so round robin takes its weighted
//! paths; every target is usable except in the `one_third_down` group, where every third
//! target is unusable and the rejection and probing paths run. Load-aware algorithms see
//! started/finished between picks, as on the request path, in the `cycle` group.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shardgate::balancer::{build, hash_key, Algorithm};

fn weights(n: u32) -> Vec<u32> {
    (0..n).map(|i| 1 + i % 5).collect()
}

/// Request keys as consistent_hash would get them (the others ignore the key).
fn keys() -> Vec<Option<u64>> {
    (0..1024)
        .map(|i| Some(hash_key(format!("10.1.{}.{}", i / 256, i % 256).as_bytes())))
        .collect()
}

fn bench_pick(c: &mut Criterion) {
    let keys = keys();
    for (group_name, down) in [("pick", false), ("pick/one_third_down", true)] {
        let mut group = c.benchmark_group(group_name);
        for n in [3u32, 100] {
            for algorithm in Algorithm::ALL {
                let b = build(algorithm, &weights(n), 1, 1);
                let usable = |i: usize| !down || i % 3 != 2;
                let mut k = 0;
                group.bench_with_input(BenchmarkId::new(algorithm.name(), n), &n, |bench, _| {
                    bench.iter(|| {
                        k = (k + 1) & 1023;
                        black_box(b.pick(black_box(0), keys[k], &usable))
                    })
                });
            }
        }
        group.finish();
    }
}

fn bench_cycle(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("cycle");
    for n in [3u32, 100] {
        for algorithm in [Algorithm::LeastConn, Algorithm::P2c, Algorithm::Ewma] {
            let b = build(algorithm, &weights(n), 1, 1);
            let mut k = 0;
            group.bench_with_input(BenchmarkId::new(algorithm.name(), n), &n, |bench, _| {
                bench.iter(|| {
                    k = (k + 1) & 1023;
                    let i = b.pick(0, keys[k], &|_| true).unwrap();
                    b.started(0, i);
                    b.finished(0, i, Duration::from_micros(300 + k as u64), true);
                })
            });
        }
    }
    group.finish();
}

fn bench_hash_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash_key");
    for len in [16usize, 64] {
        let bytes = vec![b'k'; len];
        group.bench_with_input(BenchmarkId::from_parameter(len), &bytes, |bench, bytes| {
            bench.iter(|| hash_key(black_box(bytes)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_pick, bench_cycle, bench_hash_key
}
criterion_main!(benches);
