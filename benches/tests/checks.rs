//! The checks each benchmark makes before and while it measures, run by
//! `cargo test` on small sizes: bench targets are not tests, so without
//! this a bench that measured a broken path would only be noticed by
//! someone running `cargo bench`. The functions are the benches' own.

use std::time::Duration;

use bytes::Bytes;
use p2p_benches::file::{receive_core, receive_node, send_core, send_node, sha256_chunks, NAME};
use p2p_benches::{
    broadcast_messages, bytes_stream, chat_line, chat_stream, check_broadcast_shares_buffers,
    check_codec_stream, check_frames_become_events, file_wire, filler, mixed_stream, reads,
    FrameKind, Rig, KIB, MIB, READ_SIZE,
};
use p2p_core::PeerId;

/// `codec`: the three workloads, each a fraction of the bench's size.
#[test]
fn codec_streams_decode_alike_in_every_read_size() {
    let streams = [
        (bytes_stream(4, 256 * KIB), bytes_stream(1, 256 * KIB), 4),
        (chat_stream(4 * 1024), chat_stream(256), 4 * 1024),
        (mixed_stream(2), mixed_stream(1), 2 * (1 + 8 + 4 + 4)),
    ];
    for (big, small, frames) in streams {
        assert_eq!(check_codec_stream(&big, &small).frames, frames);
    }
}

/// `node`: the receive check for both kinds at 1 and 49 peers, the
/// broadcast loops, and the buffer-sharing check of the bench's setup.
#[test]
fn node_frames_become_events_and_broadcasts_reach_everyone_sharing_buffers() {
    for peers in [1, 49] {
        check_broadcast_shares_buffers(peers);
        for kind in [FrameKind::Chat, FrameKind::Bytes] {
            let frames = kind.frames(10);
            let mut rig = Rig::new(peers);
            check_frames_become_events(&mut rig, kind, &frames, 2 * peers + 3);
            let texts: Vec<String> = (0..10).map(chat_line).collect();
            let payloads: Vec<Bytes> = (0..10).map(|i| Bytes::from(filler(64, i))).collect();
            let mut rig = Rig::new(peers);
            broadcast_messages(&mut rig, kind, &texts, &payloads, 7);
            // A chat line is one buffer; a binary message its header and
            // its payload.
            let per_message = match kind {
                FrameKind::Chat => 1,
                FrameKind::Bytes => 2,
            };
            assert_eq!(rig.sink.transmits, 7 * peers * per_message);
        }
    }
}

/// `file`: both ends in the core and through a node, on a 1 MiB file.
#[test]
fn file_paths_carry_a_whole_file() {
    let size = MIB + 12_345;
    let data = Bytes::from(filler(size, 21));
    let wire = file_wire(NAME, &data, sha256_chunks(&data));
    let wire_reads = reads(&wire, READ_SIZE);
    let from = PeerId::parse("bench-sender").unwrap();
    assert_eq!(receive_core(&wire_reads, &from), size as u64);
    let mut rig = Rig::new(1);
    let conn = rig.conns[0];
    for _ in 0..2 {
        receive_node(&mut rig, conn, &wire_reads);
    }
    assert_eq!(rig.node.incoming_transfers(), 0);
    assert_eq!(send_core(&data), wire.len());
    let mut rig = Rig::new(1);
    assert_eq!(send_node(&mut rig, &data), wire.len());
}

/// `file`: the receive check refuses a file that does not verify.
#[test]
#[should_panic(expected = "transfer failed")]
fn file_receive_check_catches_a_bad_checksum() {
    let data = Bytes::from(filler(3 * KIB, 1));
    let wire = file_wire(NAME, &data, [0; 32]);
    receive_core(&reads(&wire, READ_SIZE), &PeerId::parse("s").unwrap());
}

/// `loopback`: one transfer between two `p2p-net` nodes and one plain
/// copy, with the bench's own checks (size received, then removed).
#[test]
fn loopback_transfer_and_plain_copy_move_the_whole_file() {
    use p2p_benches::loopback::{pair, plain_copy, transfer};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("payload.bin");
    let size = 2 * MIB + 7;
    std::fs::write(&src, filler(size, 99)).unwrap();
    rt.block_on(async {
        let mut p = pair(root.path()).await;
        for _ in 0..2 {
            let took = transfer(&mut p, &src, size as u64).await;
            assert!(took < Duration::from_secs(60));
        }
        assert_eq!(
            std::fs::read_dir(&p.receiver_dir).unwrap().count(),
            0,
            "the bench removes what it received"
        );
        let listener =
            std::sync::Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let dst = root.path().join("copy.bin");
        plain_copy(&listener, &src, &dst).await;
        assert!(!dst.exists());
        p.sender.shutdown().await.unwrap();
        p.receiver.shutdown().await.unwrap();
    });
}

/// `private`: a private pair moves a file, and a private dialer connects
/// again and again to one listener (fresh ids each time).
#[test]
fn private_transfer_and_repeated_connects_work() {
    use p2p_benches::loopback::{connect_once, node_private, pair_private, transfer};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("payload.bin");
    let size = 2 * MIB + 7;
    std::fs::write(&src, filler(size, 99)).unwrap();
    rt.block_on(async {
        let mut p = pair_private(root.path(), true).await;
        transfer(&mut p, &src, size as u64).await;
        p.sender.shutdown().await.unwrap();
        p.receiver.shutdown().await.unwrap();
        let (listener, _events) =
            node_private("listener", &root.path().join("l"), None, true).await;
        for _ in 0..3 {
            let took = connect_once(listener.local_addr(), &root.path().join("d"), true).await;
            assert!(took < Duration::from_secs(10));
        }
        listener.shutdown().await.unwrap();
    });
}

/// `sim`: a small mesh passes, twice alike, and the idle floor steps.
#[test]
fn sim_mesh_passes_deterministically() {
    let cfg = p2p_benches::sim::mesh_config(5, 1);
    let sim_ms = p2p_benches::sim::run_passing(&cfg);
    assert!(sim_ms > 0);
    p2p_benches::sim::rerun(&cfg, sim_ms);
    let span = Duration::from_secs(2);
    assert!(p2p_benches::sim::idle_turmoil(5, 1, span, cfg.tick) >= span);
}
