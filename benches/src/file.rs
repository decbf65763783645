//! The measured functions of the `file` bench, here so that `cargo test`
//! runs their checks (`benches/tests/checks.rs`) on a small file.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_core::codec::{Decoder, Frame, Limits};
use p2p_core::file::{Assembler, AssemblerLimits, FileFrame, Outgoing, CHUNK_SIZE};
use p2p_core::{Output, PeerId, StorageOp, Target, TransferId};
use sha2::{Digest, Sha256};

use crate::Rig;

/// The file name every transfer of the bench uses.
pub const NAME: &str = "payload.bin";

/// SHA-256 over `data` in chunks of [`CHUNK_SIZE`], as both ends do it.
pub fn sha256_chunks(data: &Bytes) -> [u8; 32] {
    let mut h = Sha256::new();
    for chunk in data.chunks(CHUNK_SIZE) {
        h.update(chunk);
    }
    h.finalize().into()
}

/// Decoder, file-frame parser and assembler, driven by hand. Returns the
/// bytes the assembler asked to write; panics unless the file was
/// committed.
pub fn receive_core(reads: &[Bytes], from: &PeerId) -> u64 {
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

/// The wire of a whole file fed to a node's connection `conn` read by
/// read, drained after each as a driver does; panics unless exactly one
/// more file arrived.
pub fn receive_node(rig: &mut Rig, conn: p2p_core::ConnId, reads: &[Bytes]) {
    let files = rig.sink.files;
    for r in reads {
        rig.feed(conn, r.clone());
        // A driver drains after every read; so does the bench, so the
        // output queue stays as short as in production.
        rig.drain();
    }
    assert_eq!(rig.sink.files, files + 1, "the file arrived whole");
}

/// The sender's side in the core: hash, then frame every chunk. Returns
/// the bytes framed.
pub fn send_core(data: &Bytes) -> usize {
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

/// The sender's side through a node with one peer. Returns the bytes
/// transmitted.
pub fn send_node(rig: &mut Rig, data: &Bytes) -> usize {
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
