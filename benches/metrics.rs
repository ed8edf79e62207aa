//! What metrics cost a request: the `record*` calls a shard makes per request (one route
//! record, one target record, connection open and close), and what a scrape costs the admin
//! thread with a realistic number of series.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shardgate::metrics::{Metrics, ProcessInfo, UpstreamErrorKind};

fn record(c: &mut Criterion) {
    let metrics = Metrics::new(4);
    let route = metrics.route("api");
    let target = metrics.target("users", "127.0.0.1:8080".parse().unwrap());
    // Spread over the buckets as a real latency mix would be.
    let durations: Vec<Duration> = (0..64u64)
        .map(|i| Duration::from_micros(100 + i * i * i * 7))
        .collect();

    let mut group = c.benchmark_group("metrics");
    let mut i = 0usize;
    group.bench_function("route_record", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let d = durations[i % durations.len()];
            route.record(
                black_box(1),
                black_box(200),
                d,
                black_box(512),
                black_box(4096),
            );
        })
    });
    group.bench_function("target_record", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            target.record(black_box(1), durations[i % durations.len()]);
        })
    });
    group.bench_function("target_error", |b| {
        b.iter(|| target.error(black_box(1), black_box(UpstreamErrorKind::Timeout)))
    });
    group.bench_function("pool_checkout_and_return", |b| {
        b.iter(|| {
            target.pool_idle(black_box(1), -1);
            target.pool_active(black_box(1), 1);
            target.pool_active(black_box(1), -1);
            target.pool_idle(black_box(1), 1);
        })
    });
    group.bench_function("connection_open_close", |b| {
        let shard = metrics.shard(1);
        b.iter(|| {
            black_box(shard).connection_opened();
            black_box(shard).connection_closed();
        })
    });
    // Everything one proxied request records.
    group.bench_function("per_request", |b| {
        let shard = metrics.shard(1);
        b.iter(|| {
            i = i.wrapping_add(1);
            let d = durations[i % durations.len()];
            shard.connection_opened();
            target.pool_active(1, 1);
            target.record(1, d / 2);
            target.pool_active(1, -1);
            route.record(1, 200, d, 512, 4096);
            shard.connection_closed();
        })
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    // 50 routes and 100 targets on 8 shards: about 4,000 series.
    let metrics = Metrics::new(8);
    for r in 0..50 {
        let route = metrics.route(&format!("route-{r}"));
        for shard in 0..8 {
            route.record(shard, 200, Duration::from_millis(r), 100, 1000);
        }
    }
    for t in 0..100u16 {
        let target = metrics.target(
            &format!("upstream-{}", t / 4),
            format!("10.0.{}.{}:8080", t / 250, t % 250)
                .parse()
                .unwrap(),
        );
        target.record(0, Duration::from_millis(3));
    }
    let info = ProcessInfo {
        version: "0.1.0",
        config_hash: "00112233aabbccdd",
        config_loaded_at: std::time::SystemTime::now(),
        access_log_dropped: 0,
        draining: false,
    };
    let mut out = String::new();
    c.bench_function("metrics/render_4k_series", |b| {
        b.iter(|| {
            metrics.render(&mut out, &info);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, record, render);
criterion_main!(benches);
