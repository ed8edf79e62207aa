//! The access log's cost on a shard, per request: formatting a line, and `log()` as a whole
//! (take a spare buffer, format, `try_send` to the writer), with the writer thread draining
//! into `/dev/null`: in bursts of back-to-back lines (`log/json`, `log/combined`), and 100 us
//! apart (`log/json_sparse`: a shard between requests, where a writer blocked on the queue
//! would have to be woken by every line); and `log()` while the log is off.
//!
//! `cargo bench --bench access_log`. The writer shares the machine with the bench thread, as
//! it shares a node with the shards.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use shardgate::access_log::{format, AccessLog, Entry};
use shardgate::config::{AccessLogFormat, AccessLogPath};

const FORMATS: [(&str, AccessLogFormat); 2] = [
    ("json", AccessLogFormat::Json),
    ("combined", AccessLogFormat::Combined),
];

/// A browser's API call, proxied: every field present, nothing to escape but the quotes a
/// user agent may carry.
fn entry() -> Entry<'static> {
    Entry {
        time: SystemTime::now(),
        client: b"203.0.113.7",
        method: b"GET",
        target: b"/api/v1/users/12345/orders?limit=20&sort=desc",
        version: b"HTTP/1.1",
        host: b"api.example.com",
        status: 200,
        bytes_sent: 1_843,
        bytes_received: 912,
        duration: Duration::from_micros(3_042),
        upstream_duration: Some(Duration::from_micros(2_517)),
        upstream_target: Some(SocketAddr::from((Ipv4Addr::new(10, 0, 3, 17), 8080))),
        upstream_tries: 1,
        route: "users-api",
        request_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
        referer: b"https://app.example.com/dashboard",
        user_agent: b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/120.0 Safari/537.36",
    }
}

fn bench_format(c: &mut Criterion) {
    let entry = entry();
    let mut out = Vec::with_capacity(1024);
    for (name, f) in FORMATS {
        c.bench_function(&format!("access_log/format/{name}"), |b| {
            b.iter(|| {
                out.clear();
                format::line(f, black_box(&entry), &mut out);
                black_box(out.len())
            })
        });
    }
}

/// Lines in a timed burst: well under the queue's 8192, so none is dropped whatever else
/// runs on the machine, and the writer drains the queue (untimed) between bursts.
const BURST: u64 = 1024;

fn bench_log(c: &mut Criterion) {
    let entry = entry();
    let log = AccessLog::start().expect("writer thread");
    let null = AccessLogPath::File(PathBuf::from("/dev/null"));
    log.configure(Some(&null)).expect("/dev/null opens");
    for (name, f) in FORMATS {
        c.bench_function(&format!("access_log/log/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let burst = left.min(BURST);
                    let start = Instant::now();
                    for _ in 0..burst {
                        log.log(f, black_box(&entry));
                    }
                    total += start.elapsed();
                    log.flush();
                    left -= burst;
                }
                total
            })
        });
    }
    assert_eq!(log.dropped(), 0, "the queue never fills between flushes");

    log.configure(None).expect("off");
    c.bench_function("access_log/log/off", |b| {
        b.iter(|| log.log(AccessLogFormat::Json, black_box(&entry)))
    });
}

/// One line every 100 us, timing only the `log()` call: the cache is cooler than back to
/// back, and the writer has gone back to waiting in between.
fn bench_sparse(c: &mut Criterion) {
    let entry = entry();
    let log = AccessLog::start().expect("writer thread");
    let null = AccessLogPath::File(PathBuf::from("/dev/null"));
    log.configure(Some(&null)).expect("/dev/null opens");
    let mut group = c.benchmark_group("access_log/log");
    group.sample_size(20);
    group.bench_function("json_sparse", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_micros(100));
                let start = Instant::now();
                log.log(AccessLogFormat::Json, black_box(&entry));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_format, bench_log, bench_sparse);
criterion_main!(benches);
