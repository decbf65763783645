//! Fixtures shared by the criterion benchmarks in `benches/benches/`: wire
//! streams, a [`Node`] with handshaked raw connections ([`Rig`]), and a
//! sink that consumes the node's outputs the way a driver would.
//!
//! They live in the library (not in the bench files) so that `cargo test`
//! checks them: a benchmark that silently measured a failing decode or a
//! refused file would report a meaningless number.
//!
//! See `BENCHMARKS.md` at the top of the workspace for the results and how
//! to reproduce them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

pub mod file;
pub mod loopback;
pub mod sim;
use p2p_core::codec::{bytes_header, Decoder, Frame, Limits};
use p2p_core::file::{FileFrame, Outgoing, CHUNK_SIZE};
use p2p_core::{Config, ConnId, Event, Input, Node, Output, PeerId, StorageOp, TransferId};

/// One KiB.
pub const KIB: usize = 1024;
/// One MiB.
pub const MIB: usize = 1024 * KIB;
/// The size of one socket read in the tokio driver (`net/src/conn.rs`), so
/// that "realistic reads" here are the ones the deployed code sees.
pub const READ_SIZE: usize = 64 * KIB;
/// Length of a chat line on the wire, `\n` included.
pub const CHAT_LINE_LEN: usize = 64;

/// Deterministic, incompressible-looking filler (xorshift64*). Content does
/// not matter to memcpy or SHA-256, but a constant buffer could hide a bug
/// (a frame boundary found inside a payload, say) behind a lucky pattern.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    // Odd and distinct for distinct seeds (xorshift needs a non-zero state).
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `i`-th chat line: exactly [`CHAT_LINE_LEN`] bytes with its `\n`,
/// valid chat (not a control word, no surrounding whitespace).
pub fn chat_line(i: usize) -> String {
    let mut s = format!("chat message {i:08} ");
    while s.len() < CHAT_LINE_LEN - 1 {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s
}

/// `lines` chat lines of [`CHAT_LINE_LEN`] bytes each.
pub fn chat_stream(lines: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(lines * CHAT_LINE_LEN);
    for i in 0..lines {
        out.put_slice(chat_line(i).as_bytes());
        out.put_u8(b'\n');
    }
    out.freeze()
}

/// `frames` bytes frames of `size` bytes of payload each.
pub fn bytes_stream(frames: usize, size: usize) -> Bytes {
    let payload = filler(size, 7);
    let mut out = BytesMut::with_capacity(frames * (size + 16));
    for _ in 0..frames {
        out.put_slice(&bytes_header(size));
        out.put_slice(&payload);
    }
    out.freeze()
}

/// What an established peer receives while a file goes by: per round, one
/// 256 KiB `FILECHUNK` frame, 8 chat lines, 4 binary messages of 1 KiB,
/// `PING`, `PONG`, `REQUEST_PEERS` and a `PEERS` line of 5 addresses.
/// By bytes it is 98 % file chunk; by frames it is mostly small ones, which
/// is what makes it a different workload from either pure stream.
pub fn mixed_stream(rounds: usize) -> Bytes {
    let chunk = {
        let mut p = FileFrame::chunk_prefix("movie.mkv").to_vec();
        p.extend_from_slice(&filler(CHUNK_SIZE, 11));
        p
    };
    let small = filler(KIB, 13);
    let peers = b"PEERS:10.0.0.1:9000,10.0.0.2:9000,10.0.0.3:9000,10.0.0.4:9000,10.0.0.5:9000\n";
    let mut out = BytesMut::new();
    for r in 0..rounds {
        out.put_slice(&bytes_header(chunk.len()));
        out.put_slice(&chunk);
        for i in 0..8 {
            out.put_slice(chat_line(r * 8 + i).as_bytes());
            out.put_u8(b'\n');
            if i % 2 == 0 {
                out.put_slice(&bytes_header(small.len()));
                out.put_slice(&small);
            }
        }
        out.put_slice(b"PING\nPONG\nREQUEST_PEERS\n");
        out.put_slice(peers);
    }
    out.freeze()
}

/// `wire` cut into reads of `size` bytes (the last one shorter), sharing
/// its buffer: what a socket reader hands to the core.
pub fn reads(wire: &Bytes, size: usize) -> Vec<Bytes> {
    (0..wire.len())
        .step_by(size)
        .map(|i| wire.slice(i..(i + size).min(wire.len())))
        .collect()
}

/// Counts of what a decode produced, so that the work cannot be optimised
/// away and a bench can check it decoded everything.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Frames decoded.
    pub frames: usize,
    /// Line bytes plus payload bytes (headers and `\n` excluded).
    pub bytes: usize,
}

/// Feeds `reads` to a fresh decoder with the default limits, taking every
/// frame as soon as it is complete. Panics on a decode error: the streams
/// here are valid.
pub fn decode_reads(reads: &[Bytes]) -> Decoded {
    let mut dec = Decoder::new(Limits::default());
    let mut d = Decoded::default();
    for r in reads {
        dec.feed(r.clone());
        drain_decoder(&mut dec, &mut d);
    }
    assert_eq!(dec.buffered(), 0, "stream ended inside a frame");
    d
}

/// Feeds `wire` one byte per read: the worst case of a peer that trickles.
pub fn decode_bytewise(wire: &Bytes) -> Decoded {
    let mut dec = Decoder::new(Limits::default());
    let mut d = Decoded::default();
    for i in 0..wire.len() {
        dec.feed(wire.slice(i..i + 1));
        drain_decoder(&mut dec, &mut d);
    }
    assert_eq!(dec.buffered(), 0, "stream ended inside a frame");
    d
}

fn drain_decoder(dec: &mut Decoder, d: &mut Decoded) {
    loop {
        match dec.next_frame() {
            Ok(Some(Frame::Line(l))) => {
                d.frames += 1;
                d.bytes += l.len();
            }
            Ok(Some(Frame::Bytes(b))) => {
                d.frames += 1;
                d.bytes += b.len();
            }
            Ok(None) => return,
            Err(e) => panic!("benchmark stream failed to decode: {e}"),
        }
    }
}

/// The checks of the `codec` bench on one workload: `big` decodes to the
/// same frames in one read and in [`READ_SIZE`] reads, and `small` (the
/// stream for 1-byte reads) to the same frames bytewise and whole. Returns
/// what `big` decoded to.
pub fn check_codec_stream(big: &Bytes, small: &Bytes) -> Decoded {
    let expect = decode_reads(std::slice::from_ref(big));
    assert_eq!(decode_reads(&reads(big, READ_SIZE)), expect);
    assert_eq!(
        decode_bytewise(small),
        decode_reads(std::slice::from_ref(small))
    );
    expect
}

/// The physical baseline of a decode: copying the same bytes, in the same
/// reads, into one buffer. `dst` is reused across iterations so that the
/// baseline pays no allocation (the decoder does, which is part of its cost).
pub fn memcpy_reads(reads: &[Bytes], dst: &mut Vec<u8>) -> usize {
    dst.clear();
    for r in reads {
        dst.extend_from_slice(r);
    }
    dst.len()
}

/// The baseline of [`decode_bytewise`]: the same 1-byte `Bytes` reads,
/// appended to `dst` and nothing else.
pub fn memcpy_bytewise(wire: &Bytes, dst: &mut Vec<u8>) -> usize {
    dst.clear();
    for i in 0..wire.len() {
        let read = wire.slice(i..i + 1);
        dst.extend_from_slice(&read);
    }
    dst.len()
}

/// The whole wire form of sending `data` as file `name` in [`CHUNK_SIZE`]
/// chunks: `FILESTART`, the `FILECHUNK`s, `FILEEND`.
pub fn file_wire(name: &str, data: &Bytes, sha256: [u8; 32]) -> Bytes {
    let mut out = Outgoing::new(name, data.len() as u64, sha256).expect("valid file name");
    let mut wire = BytesMut::with_capacity(data.len() + data.len() / CHUNK_SIZE * 64 + 256);
    wire.put_slice(&out.start_frame());
    for i in (0..data.len()).step_by(CHUNK_SIZE) {
        let chunk = data.slice(i..(i + CHUNK_SIZE).min(data.len()));
        for part in out.chunk_frame(TransferId(0), chunk).expect("within size") {
            wire.put_slice(&part);
        }
    }
    wire.put_slice(&out.end_frame(TransferId(0)).expect("all sent"));
    wire.freeze()
}

/// Consumes a node's outputs as a driver would, without doing IO: counts
/// transmits and events, drops file writes (a sink), and answers every
/// `Commit` with `Committed` so that finished transfers leave the node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sink {
    /// `Output::Transmit`s seen.
    pub transmits: usize,
    /// Bytes in them.
    pub transmitted: usize,
    /// `Event::Chat`s seen.
    pub chats: usize,
    /// `Event::Bytes` seen (binary messages that are not file frames).
    pub binaries: usize,
    /// Bytes in `StorageOp::Write`s.
    pub written: u64,
    /// `Event::FileReceived`s seen.
    pub files: usize,
    /// Events of any other kind.
    pub other_events: usize,
}

impl Sink {
    /// Drains `node` until it has nothing more to say.
    pub fn drain(&mut self, node: &mut Node, now: Instant) {
        loop {
            let mut committed = Vec::new();
            while let Some(out) = node.poll_output() {
                match out {
                    Output::Transmit { data, .. } => {
                        self.transmits += 1;
                        self.transmitted += data.len();
                    }
                    Output::Storage(StorageOp::Write { data, .. }) => {
                        self.written += data.len() as u64;
                    }
                    Output::Storage(StorageOp::Commit { transfer, name }) => {
                        committed.push((transfer, name));
                    }
                    Output::Storage(_) | Output::Dial { .. } | Output::Close { .. } => {}
                    Output::Event(Event::Chat { .. }) => self.chats += 1,
                    Output::Event(Event::Bytes { .. }) => self.binaries += 1,
                    Output::Event(Event::FileReceived { .. }) => self.files += 1,
                    Output::Event(Event::FileFailed { failure, name, .. }) => {
                        panic!("benchmark transfer of {name} failed: {failure:?}")
                    }
                    Output::Event(Event::ProtocolError { error, .. }) => {
                        panic!("benchmark stream broke the protocol: {error}")
                    }
                    Output::Event(_) => self.other_events += 1,
                }
            }
            if committed.is_empty() {
                return;
            }
            for (transfer, saved_as) in committed {
                node.handle_input(now, Input::Committed { transfer, saved_as });
            }
        }
    }
}

/// A node with `n` established peers on raw connections: the bench plays
/// the peers by feeding their bytes straight into `handle_input`, so that
/// the whole receive path of the core (decoder, handshake state, dispatch,
/// file assembly, output queue) is measured and nothing else.
#[derive(Debug)]
pub struct Rig {
    /// The node under test.
    pub node: Node,
    /// The time passed to every call. It never advances, so no timer fires
    /// inside a measurement.
    pub now: Instant,
    /// The connection of each peer, in the order of [`Rig::peers`].
    pub conns: Vec<ConnId>,
    /// The peers' ids.
    pub peers: Vec<PeerId>,
    /// What the node produced.
    pub sink: Sink,
}

impl Rig {
    /// A node with `n` peers that each completed the handshake (hello and
    /// `LISTEN:`) as dialers.
    pub fn new(n: usize) -> Rig {
        let now = Instant::now();
        let mut config = Config::new(9000);
        config.name = Some("bench".into());
        config.connections.max_peers = config.connections.max_peers.max(n);
        let mut rig = Rig {
            node: Node::new(config, 1, now),
            now,
            conns: Vec::with_capacity(n),
            peers: Vec::with_capacity(n),
            sink: Sink::default(),
        };
        for i in 0..n {
            let port = 10_000 + i as u16;
            let remote = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000 + i as u16);
            let conn = rig.node.handle_accept(now, Some(remote));
            // Random-looking 32 hex digits like the reference's ids: a
            // shared prefix would make every id comparison in the node's
            // peer table artificially long.
            let id: String = filler(16, 1000 + i as u64)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let hello = format!("{id}:peer{i}\nLISTEN:127.0.0.1:{port}\n");
            rig.feed(conn, Bytes::from(hello));
            rig.conns.push(conn);
            rig.peers.push(PeerId::parse(&id).expect("valid id"));
        }
        rig.drain();
        assert_eq!(rig.node.peer_count(), n, "every bench peer is established");
        rig.sink = Sink::default();
        rig
    }

    /// Bytes arrived from a peer.
    pub fn feed(&mut self, conn: ConnId, data: Bytes) {
        self.node
            .handle_input(self.now, Input::Received { conn, data });
    }

    /// Drains the node into [`Rig::sink`].
    pub fn drain(&mut self) {
        self.sink.drain(&mut self.node, self.now);
    }
}

/// The two kinds of frames the `node` bench sends through a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// 64-byte chat lines.
    Chat,
    /// Binary messages of 64 bytes.
    Bytes,
}

impl FrameKind {
    /// The bench's name for it.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Chat => "chat64",
            FrameKind::Bytes => "bytes64",
        }
    }

    /// `distinct` wire frames of this kind, each 64 bytes of content.
    pub fn frames(self, distinct: usize) -> Vec<Bytes> {
        (0..distinct)
            .map(|i| match self {
                FrameKind::Chat => Bytes::from(format!("{}\n", chat_line(i))),
                FrameKind::Bytes => {
                    let mut f = bytes_header(64).to_vec();
                    f.extend_from_slice(&filler(64, i as u64));
                    Bytes::from(f)
                }
            })
            .collect()
    }
}

/// Feeds `count` frames, one per read, round-robin over the rig's peers
/// and cycling through `frames`, draining after every read as the driver
/// does.
pub fn feed_frames(rig: &mut Rig, frames: &[Bytes], count: usize) {
    let peers = rig.conns.len();
    for f in 0..count {
        let conn = rig.conns[f % peers];
        rig.feed(conn, frames[f % frames.len()].clone());
        rig.drain();
    }
}

/// The check of the `node` bench's receive path: [`feed_frames`] turns
/// every frame into exactly one event of its kind and nothing else.
pub fn check_frames_become_events(rig: &mut Rig, kind: FrameKind, frames: &[Bytes], count: usize) {
    let before = rig.sink.clone();
    feed_frames(rig, frames, count);
    let s = &rig.sink;
    let (chats, binaries) = (s.chats - before.chats, s.binaries - before.binaries);
    let got = match kind {
        FrameKind::Chat => (chats, binaries),
        FrameKind::Bytes => (binaries, chats),
    };
    assert_eq!(got, (count, 0), "every frame became one event");
    assert_eq!(s.other_events, before.other_events, "no other event");
}

/// `messages` broadcasts of `kind`, cycling through `texts` (chat) or
/// `payloads` (binary), each reaching every peer, drained after each.
pub fn broadcast_messages(
    rig: &mut Rig,
    kind: FrameKind,
    texts: &[String],
    payloads: &[Bytes],
    messages: usize,
) {
    let peers = rig.conns.len();
    for m in 0..messages {
        let n = match kind {
            FrameKind::Chat => rig.node.broadcast_chat(&texts[m % texts.len()]),
            FrameKind::Bytes => rig
                .node
                .broadcast_bytes(payloads[m % payloads.len()].clone()),
        };
        assert_eq!(n, Ok(peers));
        rig.drain();
    }
}

/// The `Output::Transmit` payloads of one command, grouped by connection,
/// in order. For checking that a broadcast shares its buffers.
pub fn transmits_by_conn(node: &mut Node) -> Vec<(ConnId, Vec<Bytes>)> {
    let mut by_conn: Vec<(ConnId, Vec<Bytes>)> = Vec::new();
    while let Some(out) = node.poll_output() {
        if let Output::Transmit { conn, data } = out {
            match by_conn.iter_mut().find(|(c, _)| *c == conn) {
                Some((_, v)) => v.push(data),
                None => by_conn.push((conn, vec![data])),
            }
        }
    }
    by_conn
}

/// Asserts that every connection got the same sequence of buffers, by
/// pointer: a broadcast to many peers must not copy the payload per peer
/// (DESIGN.md: "one buffer with 49 references, not 49 copies").
pub fn assert_shared(by_conn: &[(ConnId, Vec<Bytes>)], peers: usize) {
    assert_eq!(by_conn.len(), peers, "one transmit sequence per peer");
    let (_, first) = &by_conn[0];
    for (conn, bufs) in by_conn {
        assert_eq!(bufs.len(), first.len(), "{conn}: same number of buffers");
        for (a, b) in bufs.iter().zip(first) {
            assert_eq!(a, b, "{conn}: same bytes");
            assert_eq!(
                a.as_ptr(),
                b.as_ptr(),
                "{conn}: a broadcast buffer was copied for this peer"
            );
        }
    }
}

/// Checks, on a rig with `n` peers, that chat, binary and file-chunk
/// broadcasts share one buffer across all peers. Bench setups call it so
/// that the `node` numbers are only ever reported for a copy-free fan-out.
pub fn check_broadcast_shares_buffers(n: usize) {
    let mut rig = Rig::new(n);
    assert_eq!(rig.node.broadcast_chat(&chat_line(0)), Ok(n));
    assert_shared(&transmits_by_conn(&mut rig.node), n);
    let payload = Bytes::from(filler(64 * KIB, 3));
    assert_eq!(rig.node.broadcast_bytes(payload), Ok(n));
    assert_shared(&transmits_by_conn(&mut rig.node), n);
    let data = Bytes::from(filler(CHUNK_SIZE, 5));
    let id = rig
        .node
        .start_file(p2p_core::Target::All, "f.bin", data.len() as u64, [0; 32])
        .expect("file starts");
    assert_shared(&transmits_by_conn(&mut rig.node), n);
    assert_eq!(rig.node.send_file_chunk(id, data), Ok(n));
    let chunk = transmits_by_conn(&mut rig.node);
    assert_shared(&chunk, n);
    assert_eq!(
        chunk[0].1.len(),
        2,
        "header and chunk travel as two buffers"
    );
    assert_eq!(rig.node.finish_file(id), Ok(n));
    assert_shared(&transmits_by_conn(&mut rig.node), n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn chat_lines_have_the_stated_length_and_are_valid_chat() {
        for i in [0, 1, 99_999_999] {
            let l = chat_line(i);
            assert_eq!(l.len() + 1, CHAT_LINE_LEN);
            assert_eq!(p2p_core::codec::check_chat(&l), Ok(()));
        }
    }

    #[test]
    fn streams_decode_whole_in_any_read_size() {
        let streams = [
            (chat_stream(100), 100),
            (bytes_stream(3, 1000), 3),
            (mixed_stream(2), 2 * (1 + 8 + 4 + 4)),
        ];
        for (wire, frames) in streams {
            let whole = decode_reads(std::slice::from_ref(&wire));
            assert_eq!(whole.frames, frames);
            assert_eq!(decode_reads(&reads(&wire, READ_SIZE)), whole);
            assert_eq!(decode_reads(&reads(&wire, 7)), whole);
            assert_eq!(decode_bytewise(&wire), whole);
            let mut dst = Vec::new();
            assert_eq!(memcpy_reads(&reads(&wire, 100), &mut dst), wire.len());
            assert_eq!(dst, wire);
            assert_eq!(memcpy_bytewise(&wire, &mut dst), wire.len());
            assert_eq!(dst, wire);
        }
    }

    #[test]
    fn rig_receives_chat_and_binary_from_every_peer() {
        let mut rig = Rig::new(3);
        for (i, &conn) in rig.conns.clone().iter().enumerate() {
            rig.feed(conn, Bytes::from(format!("{}\n", chat_line(i))));
            rig.feed(conn, bytes_stream(2, 64));
        }
        rig.drain();
        assert_eq!(rig.sink.chats, 3);
        assert_eq!(rig.sink.binaries, 6);
    }

    #[test]
    fn rig_receives_a_file_again_and_again() {
        let mut rig = Rig::new(1);
        let data = Bytes::from(filler(3 * CHUNK_SIZE + 123, 9));
        let wire = file_wire("f.bin", &data, Sha256::digest(&data).into());
        let conn = rig.conns[0];
        for round in 1..=3 {
            for r in reads(&wire, READ_SIZE) {
                rig.feed(conn, r);
                rig.drain();
            }
            assert_eq!(rig.sink.files, round);
            assert_eq!(rig.sink.written, round as u64 * data.len() as u64);
            assert_eq!(rig.node.incoming_transfers(), 0);
        }
    }

    #[test]
    fn broadcasts_share_one_buffer_across_49_peers() {
        check_broadcast_shares_buffers(1);
        check_broadcast_shares_buffers(49);
    }

    #[test]
    #[should_panic(expected = "copied")]
    fn assert_shared_catches_a_copy() {
        let a = Bytes::from_static(b"payload");
        let b = Bytes::copy_from_slice(b"payload");
        assert_shared(&[(ConnId(1), vec![a]), (ConnId(2), vec![b])], 2);
    }
}
