//! `loopback`: end-to-end file transfer between two `p2p-net` nodes over
//! real loopback TCP, hashing on both ends and writing (then fsyncing, as
//! `DiskStorage::commit` does) into a temp dir; against the physical
//! baseline of a plain tokio socket copy of the same file into a file,
//! fsync included.
//!
//! Timed from `send_file` to the receiver's `FileReceived`, which includes
//! the sender's hashing pass (the protocol needs the checksum before the
//! first chunk), the receiver's hashing and the commit.
//!
//! Sizes: 256 MiB (the target) and 32 MiB (a quicker look). Slow: about
//! two minutes per size on a 2-core machine.
//!
//! Run: `cargo bench -p p2p-benches --bench loopback`
//! (only the small size: `... --bench loopback -- 32MiB`).

use std::sync::Arc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use p2p_benches::loopback::{pair, plain_copy, transfers};
use p2p_benches::{filler, MIB};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

fn loopback(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let root = tempfile::tempdir().expect("temp dir");
    let mut p = rt.block_on(pair(root.path()));
    let listener = Arc::new(
        rt.block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("baseline listener"),
    );

    let mut g = c.benchmark_group("loopback");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (label, size, secs) in [("32MiB", 32 * MIB, 10), ("256MiB", 256 * MIB, 40)] {
        let src = root.path().join(format!("payload-{label}.bin"));
        std::fs::write(&src, filler(size, 99)).expect("write source file");
        g.throughput(Throughput::Bytes(size as u64));
        g.measurement_time(Duration::from_secs(secs));
        g.bench_function(BenchmarkId::new("p2p_net", label), |b| {
            b.iter_custom(|iters| rt.block_on(transfers(&mut p, &src, size as u64, iters)))
        });
        let dst = root.path().join("copy.bin");
        g.bench_function(BenchmarkId::new("plain_copy", label), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += plain_copy(&listener, &src, &dst).await;
                    }
                    total
                })
            })
        });
        std::fs::remove_file(&src).expect("remove source file");
    }
    g.finish();
    rt.block_on(async {
        p.sender.shutdown().await.ok();
        p.receiver.shutdown().await.ok();
    });
}

criterion_group!(benches, loopback);
criterion_main!(benches);
