//! Scenario tests of whole meshes on the discrete-event harness.

mod addrbook;
mod chat;
mod connections;
mod dialer;
mod discovery;
mod extensions;
mod files;
mod heartbeat;
mod lan;
mod session;
mod swarm;
mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::codec::DecodeError;
use crate::{DisconnectReason, Event, FileFailure, PeerId, ProtocolError, RejectReason, Target};
use util::{addr_of, Mesh};

const SEC: Duration = Duration::from_secs(1);

/// `n` default nodes, all bootstrapped to node 0 at once.
fn star(n: usize) -> Mesh {
    let mut m = Mesh::new(n, |_, _| {});
    for i in 1..n {
        m.bootstrap(i, 0);
    }
    m
}

fn converge(m: &mut Mesh, limit: Duration) -> Duration {
    m.run_until(limit, Mesh::full_mesh).unwrap_or_else(|| {
        let counts: Vec<usize> = m.nodes.iter().map(|n| n.node.peer_count()).collect();
        panic!("no full mesh within {limit:?}; peer counts {counts:?}")
    })
}

/// After things settle, each node has exactly one connection per peer.
fn assert_one_conn_per_peer(m: &Mesh) {
    for (i, n) in m.nodes.iter().enumerate().filter(|(_, n)| !n.crashed) {
        assert_eq!(
            n.node.conn_count(),
            n.node.peer_count(),
            "node {i} has extra connections"
        );
    }
}

fn protocol_errors(m: &Mesh, i: usize) -> Vec<ProtocolError> {
    m.events(i)
        .filter_map(|e| match e {
            Event::ProtocolError { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// A raw scripted peer that completes the handshake with node `j` as the
/// reference dialer does; returns its index.
fn raw_peer(m: &mut Mesh, j: usize, id: &str, port: u16) -> usize {
    let r = m.raw_connect(j, None);
    m.raw_send(
        r,
        format!("{id}:{id}\nLISTEN:localhost:{port}\n").as_bytes(),
    );
    m.run_for(Duration::from_millis(50));
    r
}

/// Two nodes, 1 bootstrapped to 0, where node 1 advertises another host:
/// to node 0, `addr_of(1)` is not its peer's address, so node 0 dials it
/// (now) and node 1 answers `DUPLICATE`. Runs a second after the dial.
fn duplicate_dial() -> Mesh {
    let mut m = Mesh::new(2, |i, c| {
        if i == 1 {
            c.advertise_host = Some("10.0.0.5".to_owned());
        }
    });
    m.bootstrap(1, 0);
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    let now = m.now;
    m.nodes[0].node.connect(now, &util::addr_of(1)).unwrap();
    m.run_for(SEC);
    assert_eq!(m.dials_to(0, 1), 1);
    m
}

/// The address node 0 keeps for a peer on a connection from 10.1.2.3
/// whose `LISTEN:` line names `listen`.
fn listen_kept_from_remote(listen: &str) -> String {
    let mut m = Mesh::new(1, |_, _| {});
    let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let r = m.raw_connect(0, Some(remote));
    m.raw_send(r, format!("far:far\nLISTEN:{listen}\n").as_bytes());
    m.run_for(SEC);
    let peer = m.nodes[0].node.peers().next().expect("established");
    peer.addr.expect("an address").as_str().to_owned()
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push((x >> 24) as u8);
    }
    v
}

fn send_file(m: &mut Mesh, from: usize, target: Target, name: &str, data: &[u8]) {
    let sha: [u8; 32] = Sha256::digest(data).into();
    let node = &mut m.nodes[from].node;
    let id = node
        .start_file(target, name, data.len() as u64, sha)
        .unwrap();
    let data = Bytes::copy_from_slice(data);
    for start in (0..data.len()).step_by(crate::file::CHUNK_SIZE) {
        let end = (start + crate::file::CHUNK_SIZE).min(data.len());
        node.send_file_chunk(id, data.slice(start..end)).unwrap();
    }
    node.finish_file(id).unwrap();
}

#[test]
fn three_nodes_bootstrapped_to_one_form_a_full_mesh() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    m.run_for(SEC);
    assert_one_conn_per_peer(&m);
    for i in 1..3 {
        assert!(m
            .events(i)
            .any(|e| matches!(e, Event::BootstrapSucceeded { attempt: 1, .. })));
    }
}

#[test]
fn ten_nodes_form_a_full_mesh_in_under_five_simulated_seconds() {
    let mut m = star(10);
    let took = converge(&mut m, 30 * SEC);
    println!("10-node full mesh after {took:?} (simulated)");
    assert!(took < 5 * SEC, "took {took:?}");
    m.run_for(20 * SEC);
    assert!(m.full_mesh());
    assert_one_conn_per_peer(&m);
}

#[test]
fn chat_reaches_every_peer_exactly_once() {
    let mut m = star(6);
    converge(&mut m, 10 * SEC);
    for i in 0..6 {
        let sent = m.nodes[i]
            .node
            .broadcast_chat(&format!("hello from {i}"))
            .unwrap();
        assert_eq!(sent, 5);
    }
    m.run_for(SEC);
    for i in 0..6 {
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for e in m.events(i) {
            if let Event::Chat { text, name, from } = e {
                assert_eq!(text, &format!("hello from {}", &name[1..]));
                assert_ne!(from, m.nodes[i].node.id());
                *got.entry(text.clone()).or_default() += 1;
            }
        }
        assert_eq!(got.len(), 5, "node {i} got {got:?}");
        assert!(got.values().all(|&n| n == 1), "node {i} got {got:?}");
    }
}

#[test]
fn chat_to_one_peer_and_refused_control_words() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let to = m.nodes[2].node.id().clone();
    m.nodes[0].node.send_chat(&to, "just you").unwrap();
    for bad in ["PING", "PEERS:1.2.3.4:5", "BYTES:-1", "", "two\nlines"] {
        assert!(
            m.nodes[0].node.broadcast_chat(bad).is_err(),
            "{bad:?} was sent"
        );
    }
    m.run_for(SEC);
    assert_eq!(
        m.events(2)
            .filter(|e| matches!(e, Event::Chat { .. }))
            .count(),
        1
    );
    assert_eq!(
        m.events(1)
            .filter(|e| matches!(e, Event::Chat { .. }))
            .count(),
        0
    );
}

#[test]
fn file_broadcast_arrives_byte_identical_and_never_overwrites() {
    let mut m = star(4);
    converge(&mut m, 5 * SEC);
    let data = content(3 * crate::file::CHUNK_SIZE + 12345, 1);
    send_file(&mut m, 0, Target::All, "data.bin", &data);
    m.run_for(SEC);
    send_file(&mut m, 0, Target::All, "data.bin", &data[..1000]);
    m.run_for(SEC);
    for i in 1..4 {
        let files = &m.nodes[i].storage.files;
        assert_eq!(
            files.get("data.bin").map(Vec::as_slice),
            Some(&data[..]),
            "node {i}"
        );
        assert_eq!(
            files.get("data-(1).bin").map(Vec::as_slice),
            Some(&data[..1000]),
            "node {i}"
        );
        assert!(m.nodes[i].storage.parts.is_empty());
        let received: Vec<String> = m
            .events(i)
            .filter_map(|e| match e {
                Event::FileReceived { saved_as, .. } => Some(saved_as.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(received, ["data.bin", "data-(1).bin"]);
    }
}

#[test]
fn a_64_mib_file_completes() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let data = content(64 << 20, 2);
    send_file(&mut m, 0, Target::All, "big.bin", &data);
    m.run_for(SEC);
    let got = &m.nodes[1].storage.files["big.bin"];
    assert!(got == &data, "64 MiB file differs");
}

#[test]
fn a_silent_peer_is_removed_after_the_peer_timeout() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    // Just after a PING/PONG round at 15 s: node 2's last frame is then.
    let until = 15 * SEC + Duration::from_millis(100) - m.elapsed();
    m.run_for(until);
    let frozen_at = m.elapsed();
    m.nodes[2].frozen = true;
    let silent = m.nodes[2].node.id().clone();
    m.run_for(59 * SEC);
    assert_eq!(
        m.nodes[0].node.peer_count(),
        2,
        "removed before the peer timeout"
    );
    m.run_for(2 * SEC);
    for i in 0..2 {
        assert_eq!(m.nodes[i].node.peer_count(), 1);
        let (at, reason) = m.nodes[i]
            .events
            .iter()
            .find_map(|(t, e)| match e {
                Event::PeerDisconnected { peer, reason, .. } if *peer == silent => {
                    Some((*t, reason.clone()))
                }
                _ => None,
            })
            .expect("disconnect reported");
        assert!(matches!(reason, DisconnectReason::Timeout { silent_ms } if silent_ms >= 60_000));
        let after = at - m.start - frozen_at;
        assert!(after >= 59 * SEC && after <= 61 * SEC, "after {after:?}");
    }
}

#[test]
fn simultaneous_connects_end_with_one_connection_per_pair_and_lose_nothing() {
    let mut m = Mesh::new(6, |_, _| {});
    for i in 0..6 {
        for j in 0..6 {
            if i != j {
                let now = m.now;
                m.nodes[i].node.connect(now, &addr_of(j)).unwrap();
            }
        }
    }
    m.flush();
    converge(&mut m, 5 * SEC);
    // Chat sent the moment the mesh holds, while duplicates still drain.
    for i in 0..6 {
        m.nodes[i].node.broadcast_chat(&format!("x{i}")).unwrap();
    }
    m.run_for(12 * SEC);
    assert!(m.full_mesh());
    assert_one_conn_per_peer(&m);
    for i in 0..6 {
        let chats = m
            .events(i)
            .filter(|e| matches!(e, Event::Chat { .. }))
            .count();
        assert_eq!(chats, 5, "node {i}");
        assert_eq!(
            m.events(i)
                .filter(|e| matches!(e, Event::PeerConnected { .. }))
                .count(),
            5
        );
        assert_eq!(
            m.events(i)
                .filter(|e| matches!(e, Event::PeerDisconnected { .. }))
                .count(),
            0
        );
    }
}

#[test]
fn a_node_at_max_peers_answers_max_peers() {
    let mut m = Mesh::new(4, |i, c| {
        if i == 0 {
            c.connections.max_peers = 2;
        }
    });
    for i in 1..4 {
        let now = m.now;
        m.nodes[i].node.connect(now, &addr_of(0)).unwrap();
        m.flush();
        m.run_for(Duration::from_millis(100));
    }
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    assert!(m.events(3).any(|e| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::MaxPeers,
            by_remote: true,
            ..
        }
    )));
    let r = m.raw_connect(0, None);
    m.raw_send(r, b"abc:abc\nLISTEN:localhost:9999\n");
    m.run_for(SEC);
    assert_eq!(m.raw_lines(r)[0], "MAX_PEERS");
    assert!(m.raws[r].closed);
}

// ----- PROTOCOL.md section 6, one test per row -----

/// Runs `attack` bytes from a handshaked raw peer against node 0 of a
/// 3-node mesh; checks the typed error, that only that connection closed,
/// and that the mesh still chats.
fn attack(bytes: &[u8], expect: impl Fn(&ProtocolError) -> bool) -> Mesh {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "attacker", 9999);
    assert_eq!(m.nodes[0].node.peer_count(), 3);
    for piece in bytes.chunks(64 * 1024) {
        m.raw_send(r, piece);
        m.run_for(Duration::from_millis(1));
        assert!(m.nodes[0].node.buffered_bytes() <= 64 * 1024 + 1 + 64 * 1024 + 32);
    }
    m.run_for(SEC);
    let errors = protocol_errors(&m, 0);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(expect(&errors[0]), "{:?}", errors[0]);
    assert!(m.raws[r].closed, "attacker still connected");
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    assert!(m.full_mesh());
    m.nodes[1].node.broadcast_chat("still here").unwrap();
    m.run_for(SEC);
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::Chat { text, .. } if text == "still here")));
    m
}

#[test]
fn bad_input_huge_bytes_length() {
    attack(b"BYTES:999999999999\n", |e| {
        matches!(e, ProtocolError::Decode(DecodeError::BytesTooLarge { .. }))
    });
}

#[test]
fn bad_input_negative_bytes_length() {
    attack(b"BYTES:-1\n", |e| {
        matches!(e, ProtocolError::Decode(DecodeError::BadBytesLength { .. }))
    });
}

#[test]
fn bad_input_256_mib_bytes_frame() {
    let mut frame = b"BYTES:268435456\n".to_vec();
    frame.extend(std::iter::repeat_n(b'x', 1 << 20));
    attack(&frame, |e| {
        matches!(e, ProtocolError::Decode(DecodeError::BytesTooLarge { .. }))
    });
}

#[test]
fn bad_input_endless_line() {
    // 100 MB in the reference's measurement; 4 MiB is plenty past the limit.
    let line = vec![b'a'; 4 << 20];
    attack(&line, |e| {
        matches!(e, ProtocolError::Decode(DecodeError::LineTooLong { .. }))
    });
}

#[test]
fn bad_input_file_names_outside_downloads() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "evil", 9999);
    let sha = hex::encode(Sha256::digest(b"pwned"));
    for name in [
        "../evil.txt",
        "../../../../x",
        "/etc/passwd",
        "a/b",
        "..",
        "c:\\x",
    ] {
        let start = format!("FILESTART:{name}|5|{sha}\n");
        let chunk = format!("FILECHUNK:{name}\npwned");
        let end = format!("FILEEND:{name}|{sha}\n");
        for p in [start, chunk, end] {
            m.raw_send(r, format!("BYTES:{}\n{p}", p.len()).as_bytes());
        }
    }
    m.run_for(SEC);
    let st = &m.nodes[0].storage;
    assert!(st.touched.is_empty(), "wrote {:?}", st.touched);
    let invalid = m
        .events(0)
        .filter(|e| {
            matches!(
                e,
                Event::FileFailed {
                    failure: FileFailure::InvalidName { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(invalid, 6);
    // A bad file name aborts only that transfer: the peer stays.
    assert!(!m.raws[r].closed);
    assert_eq!(m.nodes[0].node.peer_count(), 2);
}

#[test]
fn bad_input_chunk_past_declared_size_aborts_only_that_transfer() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "sloppy", 9999);
    let sha = hex::encode(Sha256::digest(b"12345"));
    for p in [
        format!("FILESTART:f.txt|5|{sha}\n"),
        "FILECHUNK:f.txt\n123456".to_owned(),
    ] {
        m.raw_send(r, format!("BYTES:{}\n{p}", p.len()).as_bytes());
    }
    m.run_for(SEC);
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::FileFailed {
            failure: FileFailure::Overflow { .. },
            ..
        }
    )));
    assert!(m.nodes[0].storage.parts.is_empty() && m.nodes[0].storage.files.is_empty());
    assert!(!m.raws[r].closed);
}

#[test]
fn bad_input_thirty_concurrent_hellos_against_max_peers_ten() {
    let mut m = Mesh::new(1, |_, c| c.connections.max_peers = 10);
    let raws: Vec<usize> = (0..30).map(|_| m.raw_connect(0, None)).collect();
    for (k, &r) in raws.iter().enumerate() {
        m.raw_send(
            r,
            format!("p{k}:p{k}\nLISTEN:localhost:{}\n", 9000 + k).as_bytes(),
        );
    }
    m.run_for(Duration::from_millis(100));
    assert_eq!(m.nodes[0].node.peer_count(), 10);
    let refused = raws
        .iter()
        .filter(|&&r| m.raw_lines(r).first().map(String::as_str) == Some("MAX_PEERS"))
        .count();
    assert_eq!(refused, 20);
}

#[test]
fn bad_input_silent_peers_hold_slots_only_for_the_connect_timeout() {
    let mut m = Mesh::new(2, |i, c| {
        if i == 0 {
            c.connections.max_peers = 10;
        }
    });
    for k in 0..10 {
        raw_peer(&mut m, 0, &format!("squatter{k}"), 9000 + k);
    }
    assert_eq!(m.nodes[0].node.peer_count(), 10);
    m.bootstrap(1, 0);
    m.run_for(SEC);
    assert_eq!(m.nodes[1].node.peer_count(), 0, "admitted past max_peers");
    // Squatters never answered our PING: gone after connect_timeout (10 s),
    // not after the 60 s peer timeout; the bootstrap retry then gets in.
    let took = m
        .run_until(30 * SEC, |m| m.nodes[1].node.peer_count() == 1)
        .expect("real peer admitted");
    assert!(took < 20 * SEC, "took {took:?}");
    let unresponsive = protocol_errors(&m, 0)
        .iter()
        .filter(|e| matches!(e, ProtocolError::Unresponsive { .. }))
        .count();
    assert_eq!(unresponsive, 10);
}

#[test]
fn bad_input_dialer_without_listen_is_answered_at_once_and_not_advertised() {
    // Three nodes, so that node 0 has an address to share with node 1 and
    // its answer is a PEERS list that could carry the ephemeral port.
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let r = m.raw_connect(0, Some("127.0.0.1:45678".parse().unwrap()));
    m.raw_send(r, b"nolisten:nolisten\n");
    m.run_for(Duration::from_millis(20));
    assert!(
        m.raw_lines(r)[0].starts_with(m.nodes[0].node.id().as_str()),
        "no hello back"
    );
    m.raw_send(r, b"PING\n");
    m.run_for(Duration::from_millis(20));
    assert!(m.raw_lines(r).contains(&"PONG".to_owned()));
    // Its ephemeral port is never shared.
    m.nodes[1].node.discover(m.now);
    m.run_for(SEC);
    let from0 = m.nodes[0].node.id().clone();
    let lists: Vec<&Vec<String>> = m
        .events(1)
        .filter_map(|e| match e {
            Event::PeersReceived { addrs, peer } if *peer == from0 => Some(addrs),
            _ => None,
        })
        .collect();
    // Node 0 answered, listing what it shares (node 2) ...
    assert!(
        lists.iter().any(|addrs| addrs.contains(&addr_of(2))),
        "node 1 got no PEERS list from node 0 to check: {lists:?}"
    );
    // ... and never the dialer's port.
    let shared = lists
        .iter()
        .any(|addrs| addrs.iter().any(|a| a.ends_with(":45678")));
    assert!(!shared, "{lists:?}");
}

#[test]
fn bad_input_unfinished_hello_and_idle_connections_time_out() {
    let mut m = Mesh::new(1, |_, _| {});
    let idle: Vec<usize> = (0..500).map(|_| m.raw_connect(0, None)).collect();
    m.raw_send(idle[0], b"half-a-hel");
    m.run_for(9 * SEC);
    assert_eq!(m.nodes[0].node.conn_count(), 500);
    m.run_for(2 * SEC);
    assert_eq!(m.nodes[0].node.conn_count(), 0);
    assert!(idle.iter().all(|&r| m.raws[r].closed));
    let timeouts = protocol_errors(&m, 0)
        .iter()
        .filter(|e| matches!(e, ProtocolError::HandshakeTimeout { .. }))
        .count();
    assert_eq!(timeouts, 500);
}

#[test]
fn bad_input_twenty_nodes_bootstrapped_to_one_with_max_peers_ten() {
    let mut m = Mesh::new(20, |_, c| c.connections.max_peers = 10);
    for i in 1..20 {
        m.bootstrap(i, 0);
    }
    m.run_for(60 * SEC);
    let counts: Vec<usize> = m.nodes.iter().map(|n| n.node.peer_count()).collect();
    println!("peer counts: {counts:?}");
    assert!(counts.iter().all(|&c| (1..=10).contains(&c)), "{counts:?}");
    let total: usize = counts.iter().sum();
    assert!(total >= 20 * 8, "mesh too sparse: {counts:?}");
    assert_one_conn_per_peer(&m);
}

#[test]
fn bad_input_peers_lists_are_pruned_and_exclude_the_receiver() {
    let mut m = star(4);
    converge(&mut m, 5 * SEC);
    m.crash(3);
    m.run_for(120 * SEC);
    let dead = addr_of(3);
    // Everyone asks everyone; nobody lists the crashed node or the asker.
    for i in 0..3 {
        m.nodes[i].node.discover(m.now);
    }
    let mark = m.now;
    m.run_for(SEC);
    for i in 0..3 {
        let me = addr_of(i);
        let mut lists = 0;
        for (t, e) in &m.nodes[i].events {
            if let Event::PeersReceived { addrs, .. } = e {
                if *t >= mark {
                    lists += 1;
                    assert!(!addrs.contains(&dead), "node {i} was sent dead {dead}");
                    assert!(!addrs.contains(&me), "node {i} was sent its own address");
                }
            }
        }
        // One answer from each of its two live peers, at least.
        assert!(lists >= 2, "node {i} got {lists} PEERS lists");
    }
    // localhost and 127.0.0.1 are one peer: no second dial of node 1.
    let dials = m.dials_to(0, 1);
    let now = m.now;
    m.nodes[0]
        .node
        .connect(now, &format!("localhost:{}", util::BASE_PORT + 1))
        .unwrap();
    m.run_for(SEC);
    assert_eq!(m.dials_to(0, 1), dials, "{:?}", m.dials);
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    assert_one_conn_per_peer(&m);
}

#[test]
fn aliases_of_one_address_are_dialed_once() {
    let mut m = Mesh::new(3, |_, _| {});
    let now = m.now;
    let port = util::BASE_PORT + 1;
    for spelling in ["localhost", "127.0.0.1", "LOCALHOST", "LocalHost"] {
        m.nodes[0]
            .node
            .connect(now, &format!("{spelling}:{port}"))
            .unwrap();
    }
    // Learned from a peer in both spellings too.
    let r = raw_peer(&mut m, 0, "gossip", 9999);
    let p2 = util::BASE_PORT + 2;
    m.raw_send(
        r,
        format!("PEERS:localhost:{p2},127.0.0.1:{p2},LOCALHOST:{p2}\n").as_bytes(),
    );
    m.run_for(5 * SEC);
    assert_eq!(m.dials_to(0, 1), 1, "{:?}", m.dials);
    assert_eq!(m.dials_to(0, 2), 1, "{:?}", m.dials);
    // Two real peers and the raw one, each once.
    assert_eq!(m.nodes[0].node.peer_count(), 3);
    assert_one_conn_per_peer(&m);
    let refused = m
        .events(0)
        .filter(|e| matches!(e, Event::Rejected { .. } | Event::DialFailed { .. }))
        .count();
    assert_eq!(refused, 0);
}

#[test]
fn listen_from_loopback_over_a_remote_connection_is_corrected() {
    assert_eq!(listen_kept_from_remote("localhost:9000"), "10.1.2.3:9000");
}

#[test]
fn a_node_recognises_itself() {
    let mut m = Mesh::new(1, |_, _| {});
    let now = m.now;
    assert!(m.nodes[0].node.connect(now, &addr_of(0)).is_err());
    let id = m.nodes[0].node.id().clone();
    let r = m.raw_connect(0, None);
    m.raw_send(r, format!("{id}:me\n").as_bytes());
    m.run_for(SEC);
    assert!(m.raws[r].closed);
    assert_eq!(m.nodes[0].node.peer_count(), 0);
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::SelfConnection,
            ..
        }
    )));
}

#[test]
fn duplicate_hello_is_refused() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let id = m.nodes[1].node.id().clone();
    let r = m.raw_connect(0, None);
    m.raw_send(r, format!("{id}:impostor\n").as_bytes());
    m.run_for(SEC);
    assert_eq!(m.raw_lines(r), ["DUPLICATE"]);
    assert!(m.raws[r].closed);
    assert!(m.full_mesh());
}

#[test]
fn bootstrap_retries_then_reports_failure() {
    let mut m = Mesh::new(1, |_, _| {});
    let now = m.now;
    m.nodes[0].node.bootstrap(now, "127.0.0.1:6999").unwrap();
    m.run_for(60 * SEC);
    let fails: Vec<_> = m.nodes[0]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::DialFailed { .. }))
        .map(|(t, _)| (*t - m.start).as_millis() / 100)
        .collect();
    // Tries at 0, 1, 3, 7 and 15 s (each fails one latency later).
    assert_eq!(fails, [0, 10, 30, 70, 150]);
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::BootstrapFailed { attempts: 5, .. })));
}

#[test]
fn crashed_sender_mid_transfer_leaves_no_file() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    let data = content(600_000, 3);
    let sha: [u8; 32] = Sha256::digest(&data).into();
    let id = m.nodes[0]
        .node
        .start_file(Target::All, "half.bin", data.len() as u64, sha)
        .unwrap();
    m.nodes[0]
        .node
        .send_file_chunk(id, Bytes::copy_from_slice(&data[..300_000]))
        .unwrap();
    m.run_for(SEC);
    assert_eq!(m.nodes[1].storage.parts.len(), 1);
    m.crash(0);
    m.run_for(SEC);
    for i in 1..3 {
        assert!(m.nodes[i].storage.parts.is_empty() && m.nodes[i].storage.files.is_empty());
        assert!(m.events(i).any(|e| matches!(
            e,
            Event::FileFailed {
                failure: FileFailure::PeerGone,
                ..
            }
        )));
    }
}

#[test]
fn same_seed_same_bytes_out() {
    fn run() -> String {
        let mut m = star(8);
        m.latency = Duration::from_millis(3);
        converge(&mut m, 10 * SEC);
        for i in 0..8 {
            m.nodes[i].node.broadcast_chat(&format!("c{i}")).unwrap();
        }
        send_file(&mut m, 3, Target::All, "f.bin", &content(300_000, 9));
        m.crash(5);
        m.run_for(90 * SEC);
        m.trace
    }
    let (a, b) = (run(), run());
    assert!(a.len() > 10_000);
    assert!(a == b, "two runs of one seed differ");
}

#[test]
fn handle_timeout_is_idempotent() {
    let mut m = star(3);
    converge(&mut m, 5 * SEC);
    m.run_for(16 * SEC);
    let now = m.now;
    for n in &mut m.nodes {
        n.node.handle_timeout(now);
        while n.node.poll_output().is_some() {}
        n.node.handle_timeout(now);
        assert!(n.node.poll_output().is_none());
        assert!(n.node.poll_timeout().unwrap() > now);
    }
    let _ = PeerId::parse("x").unwrap();
}

#[test]
fn a_peer_that_closes_is_reported_once_and_redialed() {
    let mut m = star(2);
    converge(&mut m, 5 * SEC);
    let r = raw_peer(&mut m, 0, "leaver", 9999);
    m.raw_send(r, b"PONG\n");
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    m.raw_close(r);
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1);
    let gone: Vec<_> = m
        .events(0)
        .filter_map(|e| match e {
            Event::PeerDisconnected { peer, reason, .. } => {
                Some((peer.to_string(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        gone,
        [(
            "leaver".to_owned(),
            DisconnectReason::Closed {
                reason: crate::CloseReason::Eof
            }
        )]
    );
    // Its advertised address is dialed again (and fails: nobody is there).
    m.run_for(5 * SEC);
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::DialFailed { addr, .. } if addr.as_str() == "127.0.0.1:9999")));
}

#[test]
fn bootstrap_to_a_node_with_our_own_id_stops_at_once() {
    let id = PeerId::parse("same").unwrap();
    let mut m = Mesh::new(2, |_, c| c.id = Some(id.clone()));
    m.bootstrap(1, 0);
    m.run_for(30 * SEC);
    let dials = m
        .events(1)
        .filter(|e| matches!(e, Event::DialFailed { .. }))
        .count();
    assert_eq!(dials, 1);
    assert!(m
        .events(1)
        .any(|e| matches!(e, Event::BootstrapFailed { attempts: 1, .. })));
    // And that address is never dialed again.
    let now = m.now;
    assert!(m.nodes[1].node.connect(now, &addr_of(0)).is_err());
}

/// Regression (found by p2p-sim, seed 7): with two connections between
/// the same nodes, the node that keeps one half-closed the other at once.
/// Its hello on the kept connection could reach the remote after that
/// half-close, so the remote saw its only connection to us end, reported
/// the peer gone, and reconnected a moment later.
#[test]
fn merging_simultaneous_connects_never_drops_the_peer_meanwhile() {
    let ids = ["a", "b"];
    let mut m = Mesh::new(2, |i, c| c.id = Some(PeerId::parse(ids[i]).unwrap()));
    // "b" answers on the connection it accepted 100 ms late.
    m.slow_accepted.insert(1, Duration::from_millis(100));
    let now = m.now;
    m.nodes[0].node.connect(now, &addr_of(1)).unwrap();
    m.nodes[1].node.connect(now, &addr_of(0)).unwrap();
    m.nodes[1].node.broadcast_chat("early").ok();
    m.run_for(SEC);
    for i in 0..2 {
        let connected = m
            .events(i)
            .filter(|e| matches!(e, Event::PeerConnected { .. }))
            .count();
        let gone = m
            .events(i)
            .filter(|e| matches!(e, Event::PeerDisconnected { .. }))
            .count();
        assert_eq!((connected, gone), (1, 0), "node {i}");
    }
    // Both keep the connection dialed by "a", and only it.
    m.run_for(15 * SEC);
    assert_one_conn_per_peer(&m);
    let kept = m.nodes[0].node.peers().next().unwrap();
    assert!(kept.outbound);
    m.nodes[1].node.broadcast_chat("late").unwrap();
    m.run_for(SEC);
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::Chat { text, .. } if text == "late")));
}

#[test]
fn peer_names_are_capped_at_64_bytes() {
    let mut m = util::Mesh::new(1, |_, _| {});
    let long = format!("{}é{}", "n".repeat(63), "x".repeat(500));
    let r = m.raw_connect(0, None);
    m.raw_send(
        r,
        format!("longname:{long}\nLISTEN:localhost:9999\nPONG\n").as_bytes(),
    );
    m.run_for(SEC);
    let peer = m.nodes[0].node.peers().next().expect("established");
    // 63 bytes of "n", and the two-byte "é" would pass 64: cut before it.
    assert_eq!(peer.name, "n".repeat(63));
}

/// Round-trip timers do not outlive the connections they time: a
/// duplicate retired by the merge rule (pinged while it was kept) and a
/// peer that went silent leave none behind.
#[test]
fn round_trip_timers_do_not_outlive_their_connections() {
    let ids = ["a", "b"];
    let mut m = Mesh::new(2, |i, c| c.id = Some(PeerId::parse(ids[i]).unwrap()));
    m.slow_accepted.insert(1, Duration::from_millis(100));
    let now = m.now;
    m.nodes[0].node.connect(now, &addr_of(1)).unwrap();
    m.nodes[1].node.connect(now, &addr_of(0)).unwrap();
    m.run_for(30 * SEC);
    for i in 0..2 {
        let n = &m.nodes[i].node;
        assert!(
            n.timed_pings() <= n.peer_count(),
            "node {i}: {}",
            n.timed_pings()
        );
    }
    m.crash(1);
    m.run_for(90 * SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 0);
    assert_eq!(m.nodes[0].node.timed_pings(), 0);
}
