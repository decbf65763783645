//! `file`: both ends of a file transfer inside the core, against the
//! physical baseline of SHA-256 over the same bytes (each side must hash
//! every byte once; the receiver also gets it through the decoder).
//!
//! - `receive_node`: the wire form of a 16 MiB file (`FILESTART`, 64
//!   `FILECHUNK`s of 256 KiB, `FILEEND`) fed in 64 KiB reads to a node's
//!   `handle_input` on a handshaked connection; outputs drained into a sink
//!   (writes dropped, commits acknowledged). The whole receive path.
//! - `receive_core`: the same stream through `Decoder`, `FileFrame::parse`
//!   and `Assembler` directly, without the node around them.
//! - `send_core`: the sender's hashing pass plus `Outgoing` framing.
//! - `send_node`: the hashing pass plus `start_file` / `send_file_chunk` /
//!   `finish_file` on a node with one peer, transmits drained.
//! - `sha256`: the baseline.
//!
//! Run: `cargo bench -p p2p-benches --bench file`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use p2p_benches::file::{receive_core, receive_node, send_core, send_node, sha256_chunks, NAME};
use p2p_benches::{file_wire, filler, reads, Rig, MIB, READ_SIZE};
use p2p_core::PeerId;

const FILE_SIZE: usize = 16 * MIB;

fn file(c: &mut Criterion) {
    let data = Bytes::from(filler(FILE_SIZE, 21));
    let sha = sha256_chunks(&data);
    let wire = file_wire(NAME, &data, sha);
    let wire_reads = reads(&wire, READ_SIZE);
    let from = PeerId::parse("bench-sender").expect("valid id");

    let mut g = c.benchmark_group("file");
    g.throughput(Throughput::Bytes(FILE_SIZE as u64));

    assert_eq!(receive_core(&wire_reads, &from), FILE_SIZE as u64);
    g.bench_function("receive_core", |b| {
        b.iter(|| receive_core(black_box(&wire_reads), &from))
    });

    let mut rig = Rig::new(1);
    let conn = rig.conns[0];
    g.bench_function("receive_node", |b| {
        b.iter(|| receive_node(&mut rig, conn, &wire_reads))
    });
    assert_eq!(rig.node.incoming_transfers(), 0);

    // The baseline runs between the receive and the send functions, so that
    // a neighbour's load drifting during the group skews both ratios less.
    g.bench_function("sha256", |b| b.iter(|| sha256_chunks(black_box(&data))));

    assert_eq!(send_core(&data), wire.len());
    g.bench_function("send_core", |b| b.iter(|| send_core(black_box(&data))));

    let mut rig = Rig::new(1);
    assert_eq!(send_node(&mut rig, &data), wire.len());
    g.bench_function("send_node", |b| {
        b.iter(|| send_node(&mut rig, black_box(&data)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = file
}
criterion_main!(benches);
