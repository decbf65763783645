//! `private`: the cost of private mode (docs/PROTOCOL.md §7.4) on loopback.
//!
//! - `private/transfer/{plaintext,private}/256MiB`: one file between two
//!   `p2p-net` nodes, as in `--bench loopback` (hashing, fsync), once in
//!   plaintext and once with both nodes private (Noise ChaChaPoly on every
//!   byte), side by side. 256 MiB with `Throughput::Bytes` rather than
//!   1 GiB: a 1 GiB sample takes ~4–8 s each, too long for 10 samples of
//!   both rows in a run on a shared 2-core machine; the throughput is what
//!   compares.
//! - `private/connect/{plaintext,private}`: a fresh dialer's `connect` to
//!   its `PeerConnected` (TCP connect + line handshake, + the Noise XXpsk0
//!   handshake when private); the difference is the handshake's cost.
//!
//! Run: `cargo bench -p p2p-benches --bench private -- --sample-size 10`

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use p2p_benches::loopback::{connect_once, node_private, pair_private, transfers};
use p2p_benches::{filler, MIB};
use tokio::runtime::Runtime;

fn private(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let root = tempfile::tempdir().expect("temp dir");
    let size = 256 * MIB;
    let label = "256MiB";
    let src = root.path().join("payload.bin");
    std::fs::write(&src, filler(size, 99)).expect("write source file");

    let mut g = c.benchmark_group("private/transfer");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(size as u64));
    g.measurement_time(Duration::from_secs(10));
    for (mode, is_private) in [("plaintext", false), ("private", true)] {
        let mut p = rt.block_on(pair_private(&root.path().join(mode), is_private));
        g.bench_function(BenchmarkId::new(mode, label), |b| {
            b.iter_custom(|iters| rt.block_on(transfers(&mut p, &src, size as u64, iters)))
        });
        rt.block_on(async {
            p.sender.shutdown().await.ok();
            p.receiver.shutdown().await.ok();
        });
    }
    g.finish();
    std::fs::remove_file(&src).expect("remove source file");

    let mut g = c.benchmark_group("private/connect");
    g.sample_size(20);
    for (mode, is_private) in [("plaintext", false), ("private", true)] {
        let dir = root.path().join(format!("connect-{mode}"));
        let (listener, mut events) =
            rt.block_on(node_private("listener", &dir.join("l"), None, is_private));
        let addr = listener.local_addr();
        g.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += connect_once(addr, &dir.join("d"), is_private).await;
                        while events.try_next().is_some() {}
                    }
                    total
                })
            })
        });
        rt.block_on(async {
            listener.shutdown().await.ok();
        });
    }
    g.finish();
}

criterion_group!(benches, private);
criterion_main!(benches);
