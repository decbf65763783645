//! The connections component: what it holds, which connections count as
//! dials, which take frames, and which see loopback addresses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::util::Mesh;
use super::{listen_kept_from_remote, protocol_errors, raw_peer, SEC};
use crate::{Config, ConnId, DisconnectReason, Event, Input, Node, Output};

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
    config.dialer.max_in_flight = 2;
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

/// Transmits of `outs` on `conn`, as text.
fn sent_on(outs: &[Output], conn: ConnId) -> String {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit { conn: c, data } if *c == conn => {
                Some(String::from_utf8_lossy(data).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// A node `me` that has peer `bbb` on an accepted connection, then dials
/// it at another address and gets its hello back: the merge of the two.
/// Returns the node, the accepted and the dialed connection, and what the
/// node output on the dial's hello reply.
fn merge_as(me: &str) -> (Node, ConnId, ConnId, Vec<Output>) {
    let mut config = Config::new(9000);
    config.id = Some(crate::PeerId::parse(me).unwrap());
    let now = Instant::now();
    let mut node = Node::new(config, 7, now);
    let accepted = node.handle_accept(now, None);
    node.handle_input(
        now,
        Input::Received {
            conn: accepted,
            data: Bytes::from_static(b"bbb:bbb\nLISTEN:127.0.0.1:9002\nPONG\n"),
        },
    );
    drain(&mut node);
    assert_eq!(node.peer_of(accepted).map(|p| p.as_str()), Some("bbb"));
    node.connect(now, "127.0.0.2:9002").unwrap();
    let (_, dials) = drain(&mut node);
    let dialed = dials[0];
    node.handle_input(
        now,
        Input::Connected {
            conn: dialed,
            local: None,
        },
    );
    drain(&mut node);
    node.handle_input(
        now,
        Input::Received {
            conn: dialed,
            data: Bytes::from_static(b"bbb:bbb\n"),
        },
    );
    let (outs, _) = drain(&mut node);
    // No deadline is left in the past by the handshake.
    assert!(node.poll_timeout().is_some_and(|t| t > now));
    (node, accepted, dialed, outs)
}

#[test]
fn a_merge_keeps_the_connection_dialed_by_the_smaller_id() {
    // We are the smaller id: our dial is kept and greeted like a new peer
    // (REQUEST_PEERS and a PING); the accepted one is retired.
    let (node, accepted, dialed, outs) = merge_as("aaa");
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Event(Event::DuplicateRetired { kept, retired, .. })
                if *kept == dialed && *retired == accepted
        )),
        "{outs:?}"
    );
    assert_eq!(node.peer_of(dialed).map(|p| p.as_str()), Some("bbb"));
    assert_eq!(node.peer_of(accepted), None);
    let greeting = sent_on(&outs, dialed);
    assert!(greeting.contains("REQUEST_PEERS\n"), "{greeting:?}");
    assert!(greeting.contains("PING\n"), "{greeting:?}");
    assert_eq!(node.peer_count(), 1);
    // The retired connection is closed once the kept one is proven by a
    // frame from the peer, not before.
    let closed = |outs: &[Output], conn: ConnId| {
        outs.iter()
            .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
    };
    assert!(!closed(&outs, accepted));
    let mut node = node;
    node.handle_input(
        Instant::now(),
        Input::Received {
            conn: dialed,
            data: Bytes::from_static(b"PONG\n"),
        },
    );
    let (outs, _) = drain(&mut node);
    assert!(closed(&outs, accepted), "{outs:?}");
    assert!(!closed(&outs, dialed), "{outs:?}");

    // We are the bigger id: the accepted connection stays, and nothing is
    // sent on the retired dial.
    let (node, accepted, dialed, outs) = merge_as("ccc");
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Event(Event::DuplicateRetired { kept, retired, .. })
                if *kept == accepted && *retired == dialed
        )),
        "{outs:?}"
    );
    assert_eq!(node.peer_of(accepted).map(|p| p.as_str()), Some("bbb"));
    assert_eq!(node.peer_of(dialed), None);
    assert_eq!(sent_on(&outs, dialed), "");
    assert_eq!(node.peer_count(), 1);
    // The kept connection was proven already (its PONG): the dial is
    // closed at once.
    assert!(closed(&outs, dialed), "{outs:?}");
    assert!(!closed(&outs, accepted), "{outs:?}");
}

#[test]
fn a_first_frame_other_than_listen_proves_the_peer() {
    // A dialer that sends no LISTEN line: its first frame after the hello
    // shows it is alive, so it is not dropped at the end of the probation
    // (connect_timeout, 10 s) while it stays quiet within the peer timeout.
    let mut m = Mesh::new(1, |_, _| {});
    let r = m.raw_connect(0, None);
    m.raw_send(r, b"quiet:quiet\nPONG\n");
    m.run_for(15 * SEC);
    assert_eq!(protocol_errors(&m, 0), []);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    assert!(!m.raws[r].closed);
}

#[test]
fn a_routable_listen_address_over_a_remote_connection_is_kept() {
    // Only loopback, localhost or unspecified hosts are replaced by the
    // connection's remote IP (docs/PROTOCOL.md §2.3).
    assert_eq!(listen_kept_from_remote("10.9.9.9:9000"), "10.9.9.9:9000");
}

#[test]
fn shutdown_reports_only_announced_peers_and_forgets_them_all() {
    let mut m = Mesh::new(1, |_, _| {});
    raw_peer(&mut m, 0, "shown", 9001);
    // A dialer whose LISTEN line (or first frame) has not come yet: in the
    // table but not announced.
    let r = m.raw_connect(0, None);
    m.raw_send(r, b"hidden:hidden\n");
    m.run_for(Duration::from_millis(50));
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    let now = m.now;
    m.nodes[0].node.shutdown(now);
    m.run_for(SEC);
    let gone: Vec<(String, DisconnectReason)> = m
        .events(0)
        .filter_map(|e| match e {
            Event::PeerDisconnected { peer, reason, .. } => {
                Some((peer.to_string(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(gone, [("shown".to_owned(), DisconnectReason::Shutdown)]);
    assert_eq!(m.nodes[0].node.peer_count(), 0);
    assert_eq!(m.nodes[0].node.conn_count(), 0);
}

#[test]
fn a_refused_dial_that_stays_open_is_closed_quietly_at_the_connect_timeout() {
    // The listener answered MAX_PEERS but never closed: we stop waiting for
    // its redirect line after connect_timeout, without a protocol error.
    let config = Config::new(9000);
    let timeout = config.connections.connect_timeout;
    let now = Instant::now();
    let mut node = Node::new(config, 7, now);
    node.connect(now, "127.0.0.1:9001").unwrap();
    let (_, dials) = drain(&mut node);
    let conn = dials[0];
    node.handle_input(now, Input::Connected { conn, local: None });
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::from_static(b"MAX_PEERS\n"),
        },
    );
    drain(&mut node);
    let later = now + timeout;
    node.handle_timeout(later);
    let (outs, _) = drain(&mut node);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Close { conn: c } if *c == conn)),
        "{outs:?}"
    );
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Event(Event::ProtocolError { .. }))),
        "{outs:?}"
    );
}

/// The redirect after `MAX_PEERS` goes to a dialer we have not accepted:
/// the loopback rule judges the dialer's own connection, so a dialer from
/// another machine is not pointed at `localhost`, and one on this machine is.
#[test]
fn a_redirect_names_loopback_addresses_only_to_a_dialer_on_this_machine() {
    let mut m = Mesh::new(1, |_, c| c.connections.max_peers = 1);
    let near_ip: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let near = m.raw_connect(0, Some(near_ip));
    m.raw_send(near, b"near:near\nLISTEN:localhost:9001\n");
    m.run_for(Duration::from_millis(100));
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    let redirect_to = |m: &mut Mesh, from: &str, id: &str| {
        let r = m.raw_connect(0, Some(from.parse().unwrap()));
        m.raw_send(r, format!("{id}:{id}\n").as_bytes());
        m.run_for(Duration::from_millis(100));
        m.raw_lines(r)
    };
    let far = redirect_to(&mut m, "10.1.2.3:40000", "far");
    assert_eq!(
        far.first().map(String::as_str),
        Some("MAX_PEERS"),
        "{far:?}"
    );
    assert!(!far.iter().any(|l| l.contains(":9001")), "{far:?}");
    let local = redirect_to(&mut m, "127.0.0.1:40002", "local");
    assert_eq!(local, ["MAX_PEERS", "PEERS:127.0.0.1:9001"]);
}
