//! `codec`: the incremental decoder on three streams (256 KiB bytes frames,
//! 64-byte chat lines, mixed traffic), fed in the driver's 64 KiB reads and
//! in 1-byte reads, against the physical baseline of copying the same bytes.
//!
//! Two groups: `codec` reports bytes per second (to compare with memcpy),
//! `codec_frames` frames per second (what the node's dispatch sees).
//!
//! Run: `cargo bench -p p2p-benches --bench codec`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use p2p_benches::{
    bytes_stream, chat_stream, check_codec_stream, decode_bytewise, decode_reads, memcpy_bytewise,
    memcpy_reads, mixed_stream, reads, READ_SIZE,
};

/// One workload: the stream for 64 KiB reads, and a smaller one of the same
/// shape for 1-byte reads (which are ~100x slower per byte; the small one
/// keeps an iteration in the milliseconds).
struct Stream {
    name: &'static str,
    big: Bytes,
    small: Bytes,
}

fn streams() -> Vec<Stream> {
    vec![
        Stream {
            name: "bytes256k",
            big: bytes_stream(32, 256 * 1024),
            small: bytes_stream(2, 256 * 1024),
        },
        Stream {
            name: "chat64",
            big: chat_stream(64 * 1024),
            small: chat_stream(4 * 1024),
        },
        Stream {
            name: "mixed",
            big: mixed_stream(16),
            small: mixed_stream(1),
        },
    ]
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for s in streams() {
        let big_reads = reads(&s.big, READ_SIZE);
        // Same frames whatever the reads: checked once here, outside timing.
        check_codec_stream(&s.big, &s.small);

        g.throughput(Throughput::Bytes(s.big.len() as u64));
        g.bench_function(BenchmarkId::new("decode_64k_reads", s.name), |b| {
            b.iter(|| decode_reads(black_box(&big_reads)))
        });
        let mut dst = Vec::with_capacity(s.big.len());
        g.bench_function(BenchmarkId::new("memcpy_64k_reads", s.name), |b| {
            b.iter(|| memcpy_reads(black_box(&big_reads), &mut dst))
        });
        g.throughput(Throughput::Bytes(s.small.len() as u64));
        g.bench_function(BenchmarkId::new("decode_1b_reads", s.name), |b| {
            b.iter(|| decode_bytewise(black_box(&s.small)))
        });
        // The physical cost of 1-byte reads alone: one shared `Bytes` per
        // byte handed over and appended, as the driver would hand them.
        let mut dst = Vec::with_capacity(s.small.len());
        g.bench_function(BenchmarkId::new("memcpy_1b_reads", s.name), |b| {
            b.iter(|| memcpy_bytewise(black_box(&s.small), &mut dst))
        });
    }
    g.finish();
}

fn codec_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_frames");
    for s in streams() {
        let big_reads = reads(&s.big, READ_SIZE);
        let frames = decode_reads(&big_reads).frames as u64;
        g.throughput(Throughput::Elements(frames));
        g.bench_function(BenchmarkId::new("decode_64k_reads", s.name), |b| {
            b.iter(|| decode_reads(black_box(&big_reads)))
        });
        let frames = decode_reads(std::slice::from_ref(&s.small)).frames as u64;
        g.throughput(Throughput::Elements(frames));
        g.bench_function(BenchmarkId::new("decode_1b_reads", s.name), |b| {
            b.iter(|| decode_bytewise(black_box(&s.small)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short warm-up and measurement keep the group near a minute on a busy
    // 2-core machine; the baseline runs in the same process, so a noisy
    // neighbour moves both sides of each ratio alike.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = codec, codec_frames
}
criterion_main!(benches);
