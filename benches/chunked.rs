//! Chunked body decoding: a 64 KiB body as a well-behaved upstream sends it
//! (8 KiB chunks) and as a chatty streaming client does (16-byte chunks,
//! where framing is over a quarter of the bytes), both in one buffer and in
//! the 4 KiB pieces a socket read hands over.

use std::io::Write;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardgate::http::chunked::{
    encode_chunk_header, ChunkedDecoder, CHUNK_TRAILER_CRLF, LAST_CHUNK,
};

const BODY: usize = 64 * 1024;

fn chunked_body(chunk: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut written = 0;
    while written < BODY {
        let len = chunk.min(BODY - written);
        encode_chunk_header(len, &mut wire);
        wire.extend((written..written + len).map(|i| i as u8));
        wire.extend_from_slice(CHUNK_TRAILER_CRLF);
        written += len;
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire
}

/// Decodes `wire` in reads of `read` bytes; returns the data bytes seen.
fn decode(wire: &[u8], read: usize) -> usize {
    let mut decoder = ChunkedDecoder::new();
    let mut data = 0;
    for piece in wire.chunks(read) {
        match decoder.decode(piece, &mut |range| data += range.len()) {
            Ok(progress) if progress.done => break,
            Ok(_) => {}
            Err(err) => panic!("bench body rejected: {err}"),
        }
    }
    data
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked_decode_64KiB");
    // Throughput is the payload, what the client or upstream meant to send.
    group.throughput(Throughput::Bytes(BODY as u64));
    for (name, chunk) in [("8KiB_chunks", 8 * 1024), ("16B_chunks", 16)] {
        let wire = chunked_body(chunk);
        assert_eq!(decode(&wire, wire.len()), BODY);
        for (reads, read) in [("one_buffer", wire.len()), ("4KiB_reads", 4096)] {
            group.bench_with_input(BenchmarkId::new(name, reads), &wire, |b, wire| {
                b.iter(|| decode(black_box(wire), read))
            });
        }
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked_encode_headers_64KiB");
    group.throughput(Throughput::Bytes(BODY as u64));
    let mut out = Vec::with_capacity(64);
    group.bench_function("16B_chunks", |b| {
        b.iter(|| {
            for _ in 0..BODY / 16 {
                out.clear();
                encode_chunk_header(black_box(16), &mut out);
            }
            out.len()
        })
    });
    // The formatting machinery `encode_chunk_header` avoids, for the ratio.
    group.bench_function("16B_chunks_write_fmt_baseline", |b| {
        b.iter(|| {
            for _ in 0..BODY / 16 {
                out.clear();
                write!(out, "{:x}\r\n", black_box(16usize)).expect("Vec write");
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
