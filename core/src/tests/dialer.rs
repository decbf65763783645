//! The dialing component: when addresses are dialed, deferred, retried,
//! and what ends a bootstrap.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::util::{accepted, addr_of, Mesh};
use super::{duplicate_dial, SEC};
use crate::{CloseReason, Config, ConnId, Event, Input, Node, Output, RejectReason};

const MS: Duration = Duration::from_millis(1);

/// The addresses `node` asks to dial, with their connections, until its
/// output queue is empty.
fn dials(node: &mut Node) -> Vec<(ConnId, String)> {
    let mut v = Vec::new();
    while let Some(o) = node.poll_output() {
        if let Output::Dial { conn, addr } = o {
            v.push((conn, addr.to_string()));
        }
    }
    v
}

/// Runs `node`'s deadlines up to `until`; returns every dial with the time
/// it was asked for.
fn dials_until(node: &mut Node, until: Instant) -> Vec<(Instant, String)> {
    let mut v: Vec<(Instant, String)> = Vec::new();
    while let Some(t) = node.poll_timeout().filter(|t| *t <= until) {
        node.handle_timeout(t);
        v.extend(dials(node).into_iter().map(|(_, a)| (t, a)));
    }
    v
}

#[test]
fn jitter_covers_zero_to_the_maximum_inclusive() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let max = 3 * MS;
    let mut seen = [0usize; 4];
    for _ in 0..1000 {
        let j = crate::dialer::jitter(&mut rng, max);
        assert!(j <= max, "{j:?}");
        seen[j.as_millis() as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    assert_eq!(
        crate::dialer::jitter(&mut rng, Duration::ZERO),
        Duration::ZERO
    );
}

#[test]
fn a_dial_over_the_in_flight_limit_waits_50_ms_plus_jitter_then_goes() {
    let mut waits = Vec::new();
    for seed in 0..10 {
        let mut config = Config::new(9000);
        config.dialer.max_in_flight = 1;
        let t0 = Instant::now();
        let mut node = Node::new(config, seed, t0);
        node.connect(t0, "127.0.0.1:9001").unwrap();
        let first = dials(&mut node);
        assert_eq!(first.len(), 1);
        node.connect(t0, "127.0.0.1:9002").unwrap();
        assert!(dials(&mut node).is_empty(), "over the limit");
        let at = node.poll_timeout().unwrap();
        assert!(at >= t0 + 50 * MS && at <= t0 + 250 * MS, "{:?}", at - t0);
        waits.push(at - t0);
        // Still over the limit then: deferred again, not dialed.
        node.handle_timeout(at);
        assert!(dials(&mut node).is_empty());
        let again = node.poll_timeout().unwrap();
        assert!(again >= at + 50 * MS && again <= at + 250 * MS);
        // The first dial fails: the second address goes at its deadline.
        node.handle_input(
            at,
            Input::DialFailed {
                conn: first[0].0,
                error: crate::IoError::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            },
        );
        let went = dials_until(&mut node, again);
        assert_eq!(went, [(again, "127.0.0.1:9002".to_owned())]);
    }
    assert!(waits.iter().any(|w| *w > 50 * MS), "no jitter: {waits:?}");
}

#[test]
fn a_lost_peer_is_redialed_after_the_backoff_plus_jitter() {
    let mut waits = Vec::new();
    for seed in 0..10 {
        let t0 = Instant::now();
        let mut node = Node::new(Config::new(9000), seed, t0);
        let conn = accepted(&mut node, t0, None, "p:p\nLISTEN:127.0.0.1:9001\n");
        assert_eq!(node.peer_count(), 1);
        let t1 = t0 + SEC;
        node.handle_input(
            t1,
            Input::Closed {
                conn,
                reason: CloseReason::Eof,
            },
        );
        assert_eq!(node.peer_count(), 0);
        let went = dials_until(&mut node, t1 + 2 * SEC);
        assert_eq!(went.len(), 1, "{went:?}");
        assert_eq!(went[0].1, "127.0.0.1:9001");
        let wait = went[0].0 - t1;
        // dial_backoff 1 s, dial_jitter 200 ms.
        assert!(wait >= SEC && wait <= SEC + 200 * MS, "{wait:?}");
        waits.push(wait);
    }
    assert!(waits.iter().any(|w| *w > SEC), "no jitter: {waits:?}");
}

#[test]
fn after_shutdown_nothing_is_dialed_or_scheduled() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    node.connect(t0, "127.0.0.1:9001").unwrap();
    let d = dials(&mut node);
    node.handle_input(
        t0,
        Input::DialFailed {
            conn: d[0].0,
            error: crate::IoError::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        },
    );
    // A retry is pending when the node shuts down.
    assert!(node.poll_timeout().unwrap() <= t0 + 2 * SEC);
    node.shutdown(t0);
    assert_eq!(node.poll_timeout(), None);
    // The address is due by now; asking to discover dials nothing.
    let t1 = t0 + 5 * SEC;
    node.discover(t1);
    assert_eq!(node.poll_timeout(), None);
    node.handle_timeout(t1 + 60 * SEC);
    assert!(dials(&mut node).is_empty());
}

#[test]
fn a_full_node_that_hears_of_an_address_sets_no_dial_deadline() {
    let mut config = Config::new(9000);
    config.connections.max_peers = 1;
    let t0 = Instant::now();
    let mut node = Node::new(config, 7, t0);
    let known = node.known_addrs();
    accepted(
        &mut node,
        t0,
        None,
        "p:p\nLISTEN:127.0.0.1:9001\nPEERS:127.0.0.1:9002\n",
    );
    assert_eq!(node.peer_count(), 1);
    assert_eq!(node.known_addrs(), known + 2);
    assert!(dials(&mut node).is_empty());
    // The next deadline is the connection's, seconds away, not a dial.
    let next = node.poll_timeout().unwrap();
    assert!(next >= t0 + 5 * SEC, "{:?}", next - t0);
}

#[test]
fn an_address_that_connects_to_us_loses_its_pending_dial_deadline() {
    let t0 = Instant::now();
    let mut node = Node::new(Config::new(9000), 7, t0);
    accepted(
        &mut node,
        t0,
        None,
        "p:p\nLISTEN:127.0.0.1:9001\nPEERS:127.0.0.1:9002\n",
    );
    // 9002 is to be dialed within the jitter.
    assert!(node.poll_timeout().unwrap() <= t0 + 200 * MS);
    // Before that, the node at 9002 dials us.
    accepted(&mut node, t0, None, "q:q\nLISTEN:127.0.0.1:9002\n");
    assert_eq!(node.peer_count(), 2);
    let next = node.poll_timeout().unwrap();
    assert!(next >= t0 + 5 * SEC, "{:?}", next - t0);
    assert!(dials_until(&mut node, t0 + 5 * SEC).is_empty());
}

#[test]
fn an_address_heard_while_full_is_dialed_at_the_next_discovery_once_there_is_room() {
    let mut config = Config::new(9000);
    config.connections.max_peers = 1;
    let t0 = Instant::now();
    let mut node = Node::new(config, 7, t0);
    let conn = accepted(
        &mut node,
        t0,
        None,
        "p:p\nLISTEN:127.0.0.1:9001\nPEERS:127.0.0.1:9002\n",
    );
    node.handle_input(
        t0,
        Input::Closed {
            conn,
            reason: CloseReason::Eof,
        },
    );
    let went = dials_until(&mut node, t0 + 31 * SEC);
    let to_9002: Vec<Duration> = went
        .iter()
        .filter(|(_, a)| a == "127.0.0.1:9002")
        .map(|(t, _)| *t - t0)
        .collect();
    // discovery_interval 30 s, then the jitter.
    assert_eq!(to_9002.len(), 1, "{went:?}");
    assert!(
        to_9002[0] >= 30 * SEC && to_9002[0] <= 30 * SEC + 200 * MS,
        "{to_9002:?}"
    );
}

#[test]
fn bootstrapping_an_address_already_being_dialed_waits_for_that_dial() {
    let mut m = Mesh::new(2, |_, _| {});
    let now = m.now;
    m.nodes[0].node.connect(now, &addr_of(1)).unwrap();
    m.bootstrap(0, 1);
    m.run_for(5 * SEC);
    assert_eq!(m.dials_to(0, 1), 1);
    assert!(m.full_mesh());
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::BootstrapSucceeded { attempt: 1, .. })));
}

/// Three nodes; node 0 holds at most one peer and holds node 2.
fn node_0_full_of_node_2() -> Mesh {
    let mut m = Mesh::new(3, |i, c| {
        if i == 0 {
            c.connections.max_peers = 1;
        }
    });
    m.bootstrap(2, 0);
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    m
}

#[test]
fn a_bootstrap_refused_with_max_peers_succeeds_once_its_redirect_gave_us_a_peer() {
    let mut m = node_0_full_of_node_2();
    // Node 0 is full: it refuses node 1 and points it at node 2.
    m.bootstrap(1, 0);
    m.run_for(10 * SEC);
    assert_eq!(m.dials_to(1, 0), 1, "{:?}", m.dials);
    assert_eq!(m.nodes[1].node.peer_count(), 1);
    assert!(m.events(1).any(|e| matches!(
        e,
        Event::BootstrapSucceeded { addr, .. } if addr.as_str() == addr_of(0)
    )));
    assert!(!m
        .events(1)
        .any(|e| matches!(e, Event::BootstrapFailed { .. })));
}

#[test]
fn an_address_that_answered_duplicate_can_be_dialed_again() {
    // Node 0 dials its peer at an address it does not know as the
    // peer's, and node 1 answers DUPLICATE.
    let mut m = duplicate_dial();
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::Duplicate,
            by_remote: true,
            ..
        }
    )));
    // The dial is over: the address is not stuck as being dialed.
    let now = m.now;
    m.nodes[0].node.connect(now, &addr_of(1)).unwrap();
    m.run_for(SEC);
    assert_eq!(m.dials_to(0, 1), 2);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
}

#[test]
fn both_bootstraps_of_a_node_that_fills_up_at_once_are_reported() {
    let mut m = Mesh::new(3, |i, c| {
        if i == 0 {
            c.connections.max_peers = 1;
        }
    });
    m.bootstrap(0, 1);
    m.bootstrap(0, 2);
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    let ok: Vec<String> = m
        .events(0)
        .filter_map(|e| match e {
            Event::BootstrapSucceeded { addr, .. } => Some(addr.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ok.len(), 2, "{ok:?}");
    assert!(
        ok.contains(&addr_of(1)) && ok.contains(&addr_of(2)),
        "{ok:?}"
    );
}

/// Found by mutation testing (dialer.rs:181:13): the address book keeps
/// `Connected` states through shutdown while the peers are forgotten, so a
/// bootstrap after shutdown to a former peer's address reported success
/// without any dial or peer. Fixed: after shutdown `bootstrap` and
/// `connect` are refused with `CommandError::ShutDown`.
#[test]
fn a_bootstrap_after_shutdown_reports_no_success() {
    let mut m = Mesh::new(2, |_, _| {});
    m.bootstrap(1, 0);
    m.run_for(SEC);
    assert_eq!(m.nodes[1].node.peer_count(), 1);
    let now = m.now;
    m.nodes[1].node.shutdown(now);
    m.run_for(SEC);
    assert_eq!(m.nodes[1].node.peer_count(), 0);
    let before = m.nodes[1].events.len();
    let now = m.now;
    assert_eq!(
        m.nodes[1].node.bootstrap(now, &addr_of(0)),
        Err(crate::CommandError::ShutDown)
    );
    assert_eq!(
        m.nodes[1].node.connect(now, &addr_of(0)),
        Err(crate::CommandError::ShutDown)
    );
    m.run_for(SEC);
    let after: Vec<&Event> = m.nodes[1].events[before..].iter().map(|(_, e)| e).collect();
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, Event::BootstrapSucceeded { .. })),
        "{after:?}"
    );
}

/// Regression: `MAX_PEERS` counted as a failed dial, so after
/// `max_failures` refusals the full node's address was forgotten, and the
/// next `PEERS` line naming it made it new and dialed at once: a capped
/// mesh never stopped dialing (200 peers at `max_peers` 16: 31,136
/// refusals in 5 simulated seconds). A full node now rests
/// `discovery.interval`, doubling up to `dialer.backoff_max`, and stays
/// known.
#[test]
fn a_full_node_is_redialed_at_the_discovery_pace_and_never_forgotten() {
    let mut m = node_0_full_of_node_2();
    // Node 1 hears of node 0 from node 2, in every PEERS reply.
    m.bootstrap(1, 2);
    m.run_for(300 * SEC);
    let dials = m.dials_to(1, 0);
    // The first dial, then one after 30 s, then every 60 s (the cap):
    // 30, 90, 150, 210, 270 s.
    assert!((2..=7).contains(&dials), "{dials} dials to the full node");
    assert!(m.events(1).any(|e| matches!(
        e,
        Event::DialFailed {
            reason: crate::DialFailure::MaxPeers,
            failures: 0,
            ..
        }
    )));
}
