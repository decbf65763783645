//! The heartbeat component: `PONG` events and the ping timer.

use std::time::Instant;

use super::util::accepted;
use super::SEC;
use crate::{Config, ConnId, Event, Node, Output};

/// Drains `node`: the `PING`s it sent, by connection, and its events.
fn drain(node: &mut Node) -> (Vec<ConnId>, Vec<Event>) {
    let mut pings = Vec::new();
    let mut events = Vec::new();
    while let Some(o) = node.poll_output() {
        match o {
            Output::Transmit { conn, data } if &data[..] == b"PING\n" => pings.push(conn),
            Output::Event(e) => events.push(e),
            _ => {}
        }
    }
    (pings, events)
}

#[test]
fn a_pong_is_reported_with_its_peer() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\nPONG\n");
    let (_, events) = drain(&mut node);
    let pongs: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::PongReceived { peer } => Some(peer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(pongs, ["p"]);
}

#[test]
fn a_late_wake_up_still_pings_every_peer_and_rearms_from_then() {
    let t0 = Instant::now();
    let mut config = Config::new(9000);
    // Long enough that no connection deadline comes first.
    config.connections.connect_timeout = 100 * SEC;
    config.heartbeat.peer_timeout = 100 * SEC;
    config.discovery.interval = 100 * SEC;
    let mut node = Node::new(config, 7, t0);
    let a = accepted(&mut node, t0, None, "a:a\nLISTEN:127.0.0.1:9001\n");
    let b = accepted(&mut node, t0, None, "b:b\nLISTEN:127.0.0.1:9002\n");
    drain(&mut node);
    // ping_interval 15 s; the driver wakes the node 5 s late.
    assert_eq!(node.poll_timeout(), Some(t0 + 15 * SEC));
    let late = t0 + 20 * SEC;
    node.handle_timeout(late);
    let (mut pings, events) = drain(&mut node);
    pings.sort();
    let mut expect = vec![a, b];
    expect.sort();
    assert_eq!(pings, expect);
    let sent = events
        .iter()
        .filter(|e| matches!(e, Event::PingSent { .. }))
        .count();
    assert_eq!(sent, 2);
    assert_eq!(node.poll_timeout(), Some(late + 15 * SEC));
}
