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

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use p2p_benches::{file_wire, filler, reads, Rig, MIB, READ_SIZE};
use p2p_core::codec::{Decoder, Frame, Limits};
use p2p_core::file::{Assembler, AssemblerLimits, FileFrame, Outgoing, CHUNK_SIZE};
use p2p_core::{Output, PeerId, StorageOp, Target, TransferId};
use sha2::{Digest, Sha256};

const FILE_SIZE: usize = 16 * MIB;
const NAME: &str = "payload.bin";

/// SHA-256 over `data` in chunks of [`CHUNK_SIZE`], as both ends do it.
fn sha256_chunks(data: &Bytes) -> [u8; 32] {
    let mut h = Sha256::new();
    for chunk in data.chunks(CHUNK_SIZE) {
        h.update(chunk);
    }
    h.finalize().into()
}

/// Decoder, file-frame parser and assembler, driven by hand. Returns the
/// bytes the assembler asked to write.
fn receive_core(reads: &[Bytes], from: &PeerId) -> u64 {
    let now = Instant::now();
    let mut dec = Decoder::new(Limits::default());
    let mut asm = Assembler::new(AssemblerLimits {
        max_file_size: u64::MAX,
        max_transfers_per_peer: 8,
        idle_timeout: Duration::from_secs(60),
    });
    let mut out = VecDeque::new();
    let mut written = 0;
    let mut committed = false;
    for r in reads {
        dec.feed(r.clone());
        while let Some(frame) = dec.next_frame().expect("valid stream") {
            let Frame::Bytes(payload) = frame else {
                panic!("a file transfer is bytes frames only");
            };
            let parsed = FileFrame::parse(&payload).expect("a file frame");
            asm.handle_frame(now, from, parsed, &mut out);
            for o in out.drain(..) {
                match o {
                    Output::Storage(StorageOp::Write { data, .. }) => written += data.len() as u64,
                    Output::Storage(StorageOp::Commit { .. }) => committed = true,
                    Output::Event(p2p_core::Event::FileFailed { failure, .. }) => {
                        panic!("transfer failed: {failure:?}")
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(committed, "the checksum matched and the file was committed");
    written
}

/// The sender's side in the core: hash, then frame every chunk.
fn send_core(data: &Bytes) -> usize {
    let sha = sha256_chunks(data);
    let mut out = Outgoing::new(NAME, data.len() as u64, sha).expect("valid name");
    let id = TransferId(2);
    let mut framed = out.start_frame().len();
    for i in (0..data.len()).step_by(CHUNK_SIZE) {
        let chunk = data.slice(i..(i + CHUNK_SIZE).min(data.len()));
        for part in out.chunk_frame(id, chunk).expect("within size") {
            framed += black_box(part).len();
        }
    }
    framed + out.end_frame(id).expect("complete").len()
}

/// The sender's side through a node with one peer.
fn send_node(rig: &mut Rig, data: &Bytes) -> usize {
    let sha = sha256_chunks(data);
    let before = rig.sink.transmitted;
    let id = rig
        .node
        .start_file(Target::All, NAME, data.len() as u64, sha)
        .expect("file starts");
    rig.drain();
    for i in (0..data.len()).step_by(CHUNK_SIZE) {
        let chunk = data.slice(i..(i + CHUNK_SIZE).min(data.len()));
        assert_eq!(rig.node.send_file_chunk(id, chunk), Ok(1));
        rig.drain();
    }
    assert_eq!(rig.node.finish_file(id), Ok(1));
    rig.drain();
    rig.sink.transmitted - before
}

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
        b.iter(|| {
            let files = rig.sink.files;
            for r in &wire_reads {
                rig.feed(conn, r.clone());
                // A driver drains after every read; so does the bench, so
                // the output queue stays as short as in production.
                rig.drain();
            }
            assert_eq!(rig.sink.files, files + 1, "the file arrived whole");
        })
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
