//! Promises of the request path that take a counting global allocator to prove, hence a test
//! binary of their own: every metrics `record*` call allocates nothing, and neither does the
//! chunked decoder, which runs once per read on every chunked body.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use shardgate::http::chunked::{encode_chunk_header, ChunkedDecoder, CHUNK_TRAILER_CRLF};
use shardgate::metrics::{Metrics, UpstreamErrorKind};

struct CountingAlloc;

thread_local! {
    // Per thread, so the test harness's own threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to `System` unchanged; the counter is a const-initialised
// thread-local, so bumping it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn recording_does_not_allocate() {
    // Building the series allocates; that happens at snapshot build time.
    let metrics = Metrics::new(4);
    let route = metrics.route("api");
    let no_route = metrics.route("-");
    let target = metrics.target("users", "127.0.0.1:8080".parse().unwrap());

    let durations = [
        Duration::ZERO,
        Duration::from_micros(700),
        Duration::from_millis(40),
        Duration::from_secs(3),
        Duration::from_secs(3600),
        Duration::MAX,
    ];
    let allocations = allocations_during(|| {
        for shard in 0..4 {
            let connections = metrics.shard(shard);
            connections.connection_opened();
            for (i, d) in durations.iter().enumerate() {
                for status in [101, 200, 304, 404, 502, 999] {
                    route.record(shard, status, *d, i as u64 * 100, u64::MAX / 8);
                }
                no_route.record(shard, 400, *d, 10, 20);
                target.record(shard, *d);
            }
            for kind in UpstreamErrorKind::ALL {
                target.error(shard, kind);
            }
            target.pool_active(shard, 1);
            target.pool_idle(shard, 1);
            target.pool_active(shard, -1);
            target.pool_idle(shard, -1);
            connections.connection_closed();
        }
    });
    assert_eq!(allocations, 0, "the record path allocated");

    // The scrape may allocate, and sees everything recorded above.
    let mut text = String::new();
    metrics.render(
        &mut text,
        &shardgate::metrics::ProcessInfo {
            version: "test",
            config_hash: "0",
            config_loaded_at: std::time::SystemTime::now(),
            access_log_dropped: 0,
            draining: false,
        },
    );
    assert!(text.contains("shardgate_requests_total{route=\"api\",class=\"2xx\"} 24\n"));
    assert!(text.contains("shardgate_connections_total{shard=\"3\"} 1\n"));
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(n, 1);
}

#[test]
fn decode_does_not_allocate() {
    let mut wire = Vec::new();
    for len in [1usize, 16, 300, 8192] {
        encode_chunk_header(len, &mut wire);
        wire.resize(wire.len() + len, b'd');
        wire.extend_from_slice(CHUNK_TRAILER_CRLF);
    }
    wire.extend_from_slice(b"0;ext=\"v\"\r\nX-Checksum: abc\r\n\r\n");

    for read_size in [1, 7, 64, 4096, wire.len()] {
        let mut decoder = ChunkedDecoder::new();
        let mut data = 0;
        let mut done = false;
        let before = ALLOCATIONS.with(Cell::get);
        for read in wire.chunks(read_size) {
            let progress = decoder
                .decode(read, &mut |range| data += range.len())
                .expect("valid body");
            done = progress.done;
        }
        let after = ALLOCATIONS.with(Cell::get);
        assert_eq!(after, before, "decode allocated with reads of {read_size}");
        assert!(done);
        assert_eq!(data, 1 + 16 + 300 + 8192);
    }
}

#[test]
fn encode_chunk_header_allocates_only_to_grow_out() {
    let mut out = Vec::with_capacity(64);
    let before = ALLOCATIONS.with(Cell::get);
    for len in [0, 1, 0x1a2b, usize::MAX] {
        out.clear();
        encode_chunk_header(len, &mut out);
    }
    assert_eq!(ALLOCATIONS.with(Cell::get), before);
}
