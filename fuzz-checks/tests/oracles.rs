//! The checks' own oracles on inputs written to reach them: a commit is
//! judged per connection, memory per connection. Each input passes on the
//! core as it is; each would make the check panic on a core that broke the
//! rule (see the comments).

use p2p_fuzz_checks::{check_node, NodeOp, Wire};

// Selectors into the lists of fuzz-checks/src/node.rs.
const ID_A: u8 = 0;
const ID_B: u8 = 1;

fn inbound(id: u8, conn: u8) -> Vec<NodeOp> {
    vec![
        NodeOp::Accept { remote: 1 },
        NodeOp::Receive {
            conn,
            wire: Wire::Hello { id, name: 1 },
        },
        NodeOp::Receive {
            conn,
            wire: Wire::Listen { addr: conn },
        },
    ]
}

fn recv(conn: u8, wire: Wire) -> NodeOp {
    NodeOp::Receive { conn, wire }
}

/// Peer `a` (first connection) starts a file and sends all of it; peer `b`
/// (second connection) sends the matching `FILEEND`. Only `a`'s own
/// `FILEEND` may complete it. A core that matched transfers by name alone
/// would commit on `b`'s frame, which the old, global oracle accepted
/// (the content was declared and ended by *someone*); the per-connection
/// oracle panics ("Commit of ... while reading").
#[test]
fn a_fileend_from_another_peer_commits_nothing() {
    let mut ops = inbound(ID_A, 0);
    ops.extend(inbound(ID_B, 1));
    let (name, content) = (0, 1);
    ops.extend([
        recv(
            0,
            Wire::FileStart {
                name,
                content,
                corrupt: false,
            },
        ),
        recv(
            0,
            Wire::FileChunk {
                name,
                content,
                offset: 0,
                len: 100,
            },
        ),
        recv(
            1,
            Wire::FileEnd {
                name,
                content,
                corrupt: false,
            },
        ),
    ]);
    let s = check_node(&NodeOp::encode_all(&ops));
    assert_eq!((s.max_peers, s.committed), (2, 0), "{s:?}");
    // Its own FILEEND does.
    ops.extend([
        recv(
            0,
            Wire::FileEnd {
                name,
                content,
                corrupt: false,
            },
        ),
        NodeOp::Storage { pick: 0, ok: true },
    ]);
    let s = check_node(&NodeOp::encode_all(&ops));
    assert_eq!(s.committed, 1, "{s:?}");
}

/// One of two peers sends the start of a bytes frame longer than
/// `max_bytes_per_message` (4096 in the target), in pieces. The node must
/// refuse it rather than buffer it: holding 6000 bytes for one connection
/// is within the old aggregate bound (4096 per connection times two
/// connections) but over the per-connection one, which the check now
/// derives from `Node::buffered_bytes` and asserts.
#[test]
fn one_connection_over_its_buffer_bound_is_caught_per_connection() {
    let mut ops = inbound(ID_A, 0);
    ops.extend(inbound(ID_B, 1));
    let mut frame = b"BYTES:6000\n".to_vec();
    frame.extend(std::iter::repeat_n(b'x', 5000));
    ops.push(recv(0, Wire::Raw(frame)));
    ops.push(recv(0, Wire::Raw(vec![b'y'; 1000])));
    let s = check_node(&NodeOp::encode_all(&ops));
    assert_eq!(s.max_peers, 2, "{s:?}");
    assert!(
        s.protocol_errors >= 1,
        "the oversized frame was refused: {s:?}"
    );

    // Just under the bound, held for a while in pieces: fine.
    let mut ops = inbound(ID_A, 0);
    ops.extend(inbound(ID_B, 1));
    let mut frame = b"BYTES:4000\n".to_vec();
    frame.extend(std::iter::repeat_n(b'x', 2000));
    ops.push(recv(0, Wire::Raw(frame)));
    ops.push(recv(0, Wire::Raw(vec![b'y'; 1990])));
    ops.push(recv(1, Wire::Raw(b"BYTES:4000\n".to_vec())));
    ops.push(NodeOp::Advance { centis: 100 });
    let s = check_node(&NodeOp::encode_all(&ops));
    assert_eq!(s.protocol_errors, 0, "{s:?}");
}
