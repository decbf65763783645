//! Inputs the fuzzers found, kept as regression tests (each also lives in
//! the corpus, so the replay test runs it too; here it is readable).

use p2p_fuzz_checks::{check_node, Cmd, NodeOp, Wire};

/// `discover` after `shutdown` scheduled dials of known addresses: the
/// node had a timer again although shutdown "stops all timers", and a
/// driver would keep waking it. Fixed in `Node::schedule_dial`
/// (core/src/node.rs). Found by the `node` target; raw input
/// `ff 19 02 64 19`.
#[test]
fn no_timer_after_shutdown_and_discover() {
    let raw = [0xff, 0x19, 0x02, 0x64, 0x19];
    let ops = vec![
        NodeOp::Command(Cmd::Shutdown),
        NodeOp::Bootstrap { addr: 100 },
        NodeOp::Command(Cmd::Discover),
    ];
    assert_eq!(NodeOp::decode_all(&raw), ops);
    check_node(&raw);
    check_node(&NodeOp::encode_all(&ops));
}

/// `shutdown` left a peer in the table when it was established but not
/// announced yet (a listener waiting for the dialer's `LISTEN:` line): the
/// peer table then held a peer on a closed connection. Fixed in
/// `Node::shutdown` (core/src/node.rs). Found by the `node` target; raw
/// input `00 01 05 00 02 f9 f9 f9`: accept, the hello line
/// `LISTEN:10.0.0.7:9004` (id `LISTEN`), shutdown.
#[test]
fn shutdown_removes_unannounced_peers() {
    let raw = [0x00, 0x01, 0x05, 0x00, 0x02, 0xf9, 0xf9, 0xf9];
    let ops = vec![
        NodeOp::Accept { remote: 1 },
        NodeOp::Receive {
            conn: 0,
            wire: Wire::Listen { addr: 249 },
        },
        NodeOp::Command(Cmd::Shutdown),
    ];
    assert_eq!(NodeOp::decode_all(&raw), ops);
    check_node(&raw);
}
