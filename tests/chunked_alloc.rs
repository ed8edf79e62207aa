//! The chunked decoder runs once per read on every chunked body, so it must
//! not allocate. This lives in its own test binary because proving that takes
//! a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shardgate::http::chunked::{encode_chunk_header, ChunkedDecoder, CHUNK_TRAILER_CRLF};

struct CountingAlloc;

thread_local! {
    // Per thread, so the test harness's own threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
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
        let before = allocations();
        for read in wire.chunks(read_size) {
            let progress = decoder
                .decode(read, &mut |range| data += range.len())
                .expect("valid body");
            done = progress.done;
        }
        let after = allocations();
        assert_eq!(after, before, "decode allocated with reads of {read_size}");
        assert!(done);
        assert_eq!(data, 1 + 16 + 300 + 8192);
    }
}

#[test]
fn encode_chunk_header_allocates_only_to_grow_out() {
    let mut out = Vec::with_capacity(64);
    let before = allocations();
    for len in [0, 1, 0x1a2b, usize::MAX] {
        out.clear();
        encode_chunk_header(len, &mut out);
    }
    assert_eq!(allocations(), before);
}
