//! The connections component: what it holds, which connections count as
//! dials, which take frames, and which see loopback addresses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::raw_peer;
use super::util::Mesh;
use crate::{Config, ConnId, Event, Input, Node, Output};

/// Everything `node` has to say, with the connections it asks to dial.
fn drain(node: &mut Node) -> (Vec<Output>, Vec<ConnId>) {
    let mut outs = Vec::new();
    let mut dials = Vec::new();
    while let Some(o) = node.poll_output() {
        if let Output::Dial { conn, .. } = &o {
            dials.push(*conn);
        }
        outs.push(o);
    }
    (outs, dials)
}

#[test]
fn buffered_bytes_counts_what_connections_hold() {
    let mut m = Mesh::new(1, |_, _| {});
    assert_eq!(m.nodes[0].node.buffered_bytes(), 0);
    let a = m.raw_connect(0, None);
    m.raw_send(a, b"half-a-hel");
    let b = raw_peer(&mut m, 0, "peer", 9001);
    m.raw_send(b, b"unfinished chat");
    m.run_for(Duration::from_millis(50));
    assert_eq!(m.nodes[0].node.buffered_bytes(), 10 + 15);
    m.raw_send(a, b"lo:x\n");
    m.raw_send(b, b" line\n");
    m.run_for(Duration::from_millis(50));
    assert_eq!(m.nodes[0].node.buffered_bytes(), 0);
}

#[test]
fn only_outgoing_handshakes_count_against_max_dials_in_flight() {
    let mut config = Config::new(9000);
    config.max_dials_in_flight = 2;
    let now = Instant::now();
    let mut node = Node::new(config, 7, now);
    // Accepted connections still in their handshake are not dials.
    for _ in 0..3 {
        node.handle_accept(now, None);
    }
    for port in 9101..9104 {
        node.connect(now, &format!("127.0.0.1:{port}")).unwrap();
    }
    let (_, dials) = drain(&mut node);
    assert_eq!(dials.len(), 2, "dials at once with a limit of 2");
    // A dial that connected and sent its hello is still in flight until
    // the hello comes back.
    node.handle_input(
        now,
        Input::Connected {
            conn: dials[0],
            local: None,
        },
    );
    node.connect(now, "127.0.0.1:9104").unwrap();
    assert!(drain(&mut node).1.is_empty());
}

#[test]
fn bytes_on_a_dial_before_it_connected_are_ignored() {
    let now = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, now);
    node.connect(now, "127.0.0.1:9001").unwrap();
    let (_, dials) = drain(&mut node);
    let conn = dials[0];
    // A driver bug: bytes before `Connected`. Not a hello, not an error.
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::from_static(b"PING\n"),
        },
    );
    let (outs, _) = drain(&mut node);
    assert!(outs.is_empty(), "{outs:?}");
    // The dial then completes normally.
    node.handle_input(now, Input::Connected { conn, local: None });
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::from_static(b"other:other\n"),
        },
    );
    let (outs, _) = drain(&mut node);
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Event(Event::PeerConnected { peer, .. }) if peer.as_str() == "other"
        )),
        "{outs:?}"
    );
    assert_eq!(node.peer_count(), 1);
}

#[test]
fn a_loopback_address_is_gossiped_only_over_local_connections() {
    let mut m = Mesh::new(1, |_, _| {});
    let far_ip: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let far = m.raw_connect(0, Some(far_ip));
    m.raw_send(far, b"far:far\nLISTEN:10.1.2.3:9000\n");
    let near_ip: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let near = m.raw_connect(0, Some(near_ip));
    m.raw_send(near, b"near:near\nLISTEN:localhost:9001\n");
    m.run_for(Duration::from_millis(100));
    // A third peer on this machine, listening on a loopback address.
    raw_peer(&mut m, 0, "newbie", 9005);
    m.run_for(Duration::from_millis(100));
    let heard = |r: usize| m.raw_lines(r).iter().any(|l| l.contains(":9005"));
    assert!(heard(near), "{:?}", m.raw_lines(near));
    assert!(!heard(far), "{:?}", m.raw_lines(far));
}
