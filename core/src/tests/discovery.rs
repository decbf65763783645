//! The discovery component: what a `PEERS` reply holds for whom, and the
//! events of `REQUEST_PEERS` and `PEERS`.

use std::time::Instant;

use bytes::Bytes;

use super::util::accepted;
use crate::{Config, ConnId, Event, Input, Node, Output};

fn send(node: &mut Node, now: Instant, conn: ConnId, text: &str) {
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::copy_from_slice(text.as_bytes()),
        },
    );
}

/// Drains `node`: what it sent on `conn`, as text, and every event.
fn drain(node: &mut Node, conn: ConnId) -> (String, Vec<Event>) {
    let mut sent = String::new();
    let mut events = Vec::new();
    while let Some(o) = node.poll_output() {
        match o {
            Output::Transmit { conn: c, data } if c == conn => {
                sent.push_str(&String::from_utf8_lossy(&data));
            }
            Output::Event(e) => events.push(e),
            _ => {}
        }
    }
    (sent, events)
}

/// The addresses of the `PEERS:` line `node` sends on `conn` when asked.
fn asked(node: &mut Node, now: Instant, conn: ConnId) -> (Vec<String>, Vec<Event>) {
    drain(node, conn);
    send(node, now, conn, "REQUEST_PEERS\n");
    let (sent, events) = drain(node, conn);
    let line = sent
        .lines()
        .find_map(|l| l.strip_prefix("PEERS:"))
        .unwrap_or_else(|| panic!("no PEERS in {sent:?}"));
    (line.split(',').map(str::to_owned).collect(), events)
}

#[test]
fn an_ipv6_loopback_listen_address_is_never_shared() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    accepted(&mut node, t0, None, "six:six\nLISTEN:[::1]:9001\n");
    accepted(&mut node, t0, None, "four:four\nLISTEN:127.0.0.1:9003\n");
    let q = accepted(&mut node, t0, None, "q:q\nLISTEN:127.0.0.1:9002\n");
    let (list, _) = asked(&mut node, t0, q);
    assert_eq!(list, ["127.0.0.1:9003"]);
}

#[test]
fn a_remote_peer_is_sent_routable_addresses_and_no_loopback_one() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    accepted(&mut node, t0, None, "near:near\nLISTEN:127.0.0.1:9001\n");
    accepted(
        &mut node,
        t0,
        Some("10.0.0.7:40000"),
        "other:other\nLISTEN:10.0.0.7:9004\n",
    );
    let far = accepted(
        &mut node,
        t0,
        Some("10.1.2.3:40001"),
        "far:far\nLISTEN:10.1.2.3:9000\n",
    );
    let (list, _) = asked(&mut node, t0, far);
    assert_eq!(list, ["10.0.0.7:9004"]);
    // A peer on this machine is sent both.
    let near2 = accepted(&mut node, t0, None, "near2:near2\nLISTEN:127.0.0.1:9005\n");
    let (list, _) = asked(&mut node, t0, near2);
    assert_eq!(list, ["10.0.0.7:9004", "10.1.2.3:9000", "127.0.0.1:9001"]);
}

#[test]
fn a_request_for_peers_is_reported() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    accepted(&mut node, t0, None, "a:a\nLISTEN:127.0.0.1:9001\n");
    let b = accepted(&mut node, t0, None, "b:b\nLISTEN:127.0.0.1:9002\n");
    let (_, events) = asked(&mut node, t0, b);
    let requested: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::PeersRequested { peer } => Some(peer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(requested, ["b"]);
}

#[test]
fn peers_discovered_is_reported_only_when_a_peers_line_teaches_something() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    let p = accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\n");
    drain(&mut node, p);
    let known = node.known_addrs();
    send(&mut node, t0, p, "PEERS:127.0.0.1:9002,127.0.0.1:9001\n");
    let (_, events) = drain(&mut node, p);
    let discovered: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::PeersDiscovered { from, new, known } => {
                Some((from.clone(), new.clone(), *known))
            }
            _ => None,
        })
        .collect();
    assert_eq!(discovered.len(), 1, "{events:?}");
    let (from, new, now_known) = &discovered[0];
    assert_eq!(from.as_ref().map(|f| f.as_str()), Some("p"));
    let new: Vec<&str> = new.iter().map(|a| a.as_str()).collect();
    assert_eq!(new, ["127.0.0.1:9002"]);
    assert_eq!(*now_known, known + 1);
    // The same line again teaches nothing: no event.
    send(&mut node, t0, p, "PEERS:127.0.0.1:9002,127.0.0.1:9001\n");
    let (_, events) = drain(&mut node, p);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PeersDiscovered { .. })),
        "{events:?}"
    );
}

/// A node sharing at most 12 peers, with `n` peers established in order
/// p00, p01, ... (listening on 10000, 10001, ...), then the asker `q`.
fn node_with_peers(t0: Instant, n: u16) -> (Node, ConnId) {
    let mut config = Config::new(9000);
    config.discovery.max_shared_peers = 12;
    config.connections.max_peers = 100;
    let mut node = Node::new(config, 7, t0);
    for i in 0..n {
        let hello = format!("p{i:02}:p{i:02}\nLISTEN:127.0.0.1:{}\n", 10000 + i);
        accepted(&mut node, t0, None, &hello);
    }
    let asker = accepted(&mut node, t0, None, "q:q\nLISTEN:127.0.0.1:9999\n");
    (node, asker)
}

#[test]
fn a_large_table_is_shared_as_its_newest_peers_plus_a_sample() {
    let t0 = Instant::now();
    let (mut node, asker) = node_with_peers(t0, 40);
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..6 {
        let (list, _) = asked(&mut node, t0, asker);
        // No idle known addresses exist, so the line is exactly the bound.
        assert_eq!(list.len(), 12, "round {round}: {list:?}");
        // The 8 newest peers (p32..p39; the asker itself excluded) are in
        // every line.
        for i in 32..40 {
            let a = format!("127.0.0.1:{}", 10000 + i);
            assert!(
                list.contains(&a),
                "round {round}: newest {a} missing from {list:?}"
            );
        }
        assert!(!list.contains(&"127.0.0.1:9999".to_owned()));
        seen.extend(list);
    }
    // The other 4 places are a random sample: over 6 rounds they vary.
    assert!(seen.len() > 16, "the sample never varied: {seen:?}");
}

#[test]
fn a_table_within_the_bound_is_shared_whole() {
    let t0 = Instant::now();
    let (mut node, asker) = node_with_peers(t0, 12);
    let (list, _) = asked(&mut node, t0, asker);
    assert_eq!(list.len(), 12);
}
