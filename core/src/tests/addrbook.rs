//! The address book as the node uses it: failure counts, backoff and
//! hold times, what is due at a discovery, what is worth sharing.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::util::accepted;
use super::{duplicate_dial, SEC};
use crate::{CloseReason, Config, ConnId, Event, Input, Node, Output};

const MS: Duration = Duration::from_millis(1);

fn refused() -> crate::IoError {
    crate::IoError::new(std::io::ErrorKind::ConnectionRefused, "refused")
}

/// Drains `node`: the dials it asks for and the events it reports.
fn drain(node: &mut Node) -> (Vec<(ConnId, String)>, Vec<Event>) {
    let mut dials = Vec::new();
    let mut events = Vec::new();
    while let Some(o) = node.poll_output() {
        match o {
            Output::Dial { conn, addr } => dials.push((conn, addr.to_string())),
            Output::Event(e) => events.push(e),
            _ => {}
        }
    }
    (dials, events)
}

/// Runs `node`'s deadlines up to `until`, failing every dial at once;
/// returns the dials with their times and the events.
fn run_refusing(node: &mut Node, until: Instant) -> (Vec<(Instant, String)>, Vec<Event>) {
    let mut dials = Vec::new();
    let mut events = Vec::new();
    while let Some(t) = node.poll_timeout().filter(|t| *t <= until) {
        node.handle_timeout(t);
        loop {
            let (d, e) = drain(node);
            events.extend(e);
            if d.is_empty() {
                break;
            }
            for (conn, addr) in d {
                dials.push((t, addr));
                node.handle_input(
                    t,
                    Input::DialFailed {
                        conn,
                        error: refused(),
                    },
                );
            }
        }
    }
    (dials, events)
}

#[test]
fn a_refused_address_is_retried_after_a_doubling_backoff_plus_jitter() {
    let mut jittered = false;
    for seed in 0..10 {
        let t0 = Instant::now();
        let mut node = Node::new(Config::new(9000), seed, t0);
        node.connect(t0, "127.0.0.1:9001").unwrap();
        let (d, _) = drain(&mut node);
        node.handle_input(
            t0,
            Input::DialFailed {
                conn: d[0].0,
                error: refused(),
            },
        );
        let (_, first) = drain(&mut node);
        let (dials, events) = run_refusing(&mut node, t0 + 8 * SEC);
        let failures: Vec<u32> = first
            .iter()
            .chain(&events)
            .filter_map(|e| match e {
                Event::DialFailed { failures, .. } => Some(*failures),
                _ => None,
            })
            .collect();
        assert_eq!(failures, [1, 2, 3, 4], "seed {seed}");
        // Retries 1, 2 then 4 s after each failure (dial_backoff 1 s,
        // dial_jitter 200 ms).
        let mut last = t0;
        for ((t, addr), base) in dials.iter().zip([1u32, 2, 4]) {
            assert_eq!(addr, "127.0.0.1:9001");
            let wait = *t - last;
            assert!(
                wait >= base * SEC && wait <= base * SEC + 200 * MS,
                "seed {seed}: {wait:?} after failure {base}"
            );
            jittered |= wait > base * SEC;
            last = *t;
        }
        assert_eq!(dials.len(), 3, "seed {seed}: {dials:?}");
    }
    assert!(jittered, "no retry was jittered");
}

#[test]
fn a_lost_peers_address_waits_its_delay_even_when_asked_to_discover() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    let conn = accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\n");
    let t1 = t0 + SEC;
    node.handle_input(
        t1,
        Input::Closed {
            conn,
            reason: CloseReason::Eof,
        },
    );
    // Asked at once, and again when another peer mentions the address.
    node.discover(t1);
    accepted(
        &mut node,
        t1,
        None,
        "q:q\nLISTEN:127.0.0.1:9002\nPEERS:127.0.0.1:9001\n",
    );
    assert!(drain(&mut node).0.is_empty());
    let (dials, _) = run_refusing(&mut node, t1 + 2 * SEC);
    let to_9001: Vec<Duration> = dials
        .iter()
        .filter(|(_, a)| a == "127.0.0.1:9001")
        .map(|(t, _)| *t - t1)
        .collect();
    assert_eq!(to_9001.len(), 1, "{dials:?}");
    assert!(to_9001[0] >= SEC, "{to_9001:?}");
}

#[test]
fn an_address_that_answered_duplicate_rests_for_the_peer_timeout() {
    // Node 0 dials its peer at an address it does not know as the
    // peer's: DUPLICATE.
    let mut m = duplicate_dial();
    // peer_timeout 60 s from about 1 s: not at the discoveries at 30 and
    // 60 s, but at the one at 90 s.
    m.run_for(85 * SEC - m.elapsed());
    assert_eq!(m.dials_to(0, 1), 1);
    m.run_for(10 * SEC);
    assert_eq!(m.dials_to(0, 1), 2);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
}

#[test]
fn a_max_peers_redirect_shares_idle_addresses_we_reached_that_never_failed() {
    let mut config = Config::new(9000);
    config.connections.max_peers = 1;
    let t0 = Instant::now();
    let mut node = Node::new(config, 7, t0);
    // 9003 failed once; 9004 answered DUPLICATE (a node is there); 9002
    // was only heard of (we are full: not dialed).
    node.connect(t0, "127.0.0.1:9003").unwrap();
    node.connect(t0, "127.0.0.1:9004").unwrap();
    let (d, _) = drain(&mut node);
    node.handle_input(
        t0,
        Input::DialFailed {
            conn: d[0].0,
            error: refused(),
        },
    );
    let alive = d[1].0;
    node.handle_input(
        t0,
        Input::Connected {
            conn: alive,
            local: None,
        },
    );
    node.handle_input(
        t0,
        Input::Received {
            conn: alive,
            data: Bytes::from_static(b"DUPLICATE\n"),
        },
    );
    accepted(
        &mut node,
        t0,
        None,
        "p:p\nLISTEN:127.0.0.1:9001\nPEERS:127.0.0.1:9002\n",
    );
    assert_eq!(node.peer_count(), 1);
    while node.poll_output().is_some() {}
    let q = accepted(&mut node, t0, None, "q:q\n");
    let mut sent = String::new();
    while let Some(o) = node.poll_output() {
        if let Output::Transmit { conn, data } = o {
            if conn == q {
                sent.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
    let peers_line = sent
        .lines()
        .find(|l| l.starts_with("PEERS:"))
        .unwrap_or_else(|| panic!("no PEERS in {sent:?}"));
    assert!(sent.starts_with("MAX_PEERS\n"), "{sent:?}");
    assert!(peers_line.contains("127.0.0.1:9001"), "{peers_line:?}");
    assert!(peers_line.contains("127.0.0.1:9004"), "{peers_line:?}");
    assert!(!peers_line.contains("127.0.0.1:9002"), "{peers_line:?}");
    assert!(!peers_line.contains("127.0.0.1:9003"), "{peers_line:?}");
}
