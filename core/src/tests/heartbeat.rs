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
            Event::PongReceived { peer, .. } => Some(peer.as_str()),
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

fn pong(node: &mut Node, at: Instant, conn: ConnId) {
    let data = bytes::Bytes::from_static(b"PONG\n");
    node.handle_input(at, crate::Input::Received { conn, data });
}

#[test]
fn round_trips_are_timed_from_the_oldest_unanswered_ping() {
    let t0 = Instant::now();
    let mut cfg = Config::new(9000);
    // Inside the first-frame probation, so that the peer is still there.
    cfg.heartbeat.ping_interval = 2 * SEC;
    let mut node = Node::new(cfg, 7, t0);
    let conn = accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\n");
    let (pings, _) = drain(&mut node);
    assert_eq!(pings, [conn], "the greeting ping");
    let p = crate::PeerId::parse("p").unwrap();
    let rtt = |node: &Node| node.peers().find(|i| i.id == p).and_then(|i| i.rtt_ms);
    assert_eq!(rtt(&node), None, "nothing measured before a PONG");
    // The interval's ping goes out while the first is unanswered: the PONG
    // that comes is timed from the first.
    let t1 = t0 + 2 * SEC;
    node.handle_timeout(t1);
    let (pings, _) = drain(&mut node);
    assert_eq!(pings, [conn], "the interval's ping");
    let pong_at = t1 + std::time::Duration::from_millis(40);
    pong(&mut node, pong_at, conn);
    let (_, events) = drain(&mut node);
    let want = (pong_at - t0).as_millis() as u64;
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::PongReceived { rtt_ms: Some(ms), .. } if *ms == want)));
    assert_eq!(rtt(&node), Some(want));
    // A second PONG with nothing outstanding is not timed.
    pong(&mut node, pong_at, conn);
    let (_, events) = drain(&mut node);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::PongReceived { rtt_ms: None, .. })));
    assert_eq!(rtt(&node), Some(want), "the last measurement stays");
    let info = node.peers().find(|i| i.id == p).unwrap();
    assert!(info.bytes_in > 0, "bytes in are counted as they arrive");
}

/// Regression (found by the `node` corpus replay): a driver reporting
/// `u64::MAX` bytes flushed overflowed the per-connection byte counter.
#[test]
fn byte_counters_saturate_whatever_the_driver_reports() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    let conn = accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\n");
    for _ in 0..2 {
        node.handle_input(
            t0,
            crate::Input::Flushed {
                conn,
                bytes: u64::MAX,
            },
        );
    }
    let info = node.peers().next().unwrap();
    assert_eq!(info.bytes_out, u64::MAX);
}
