//! Private meshes: the Noise session layer (docs/PROTOCOL.md §7.4) on the
//! harness, with scripted Noise peers for what no honest node sends.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::util::{addr_of, Mesh};
use super::{content, converge, protocol_errors, send_file, SEC};
use crate::session::{Keys, Session};
use crate::{
    session_id_of_private, Config, DialFailure, Event, PeerId, ProtocolError, SessionError, Target,
};

const KEY: [u8; 32] = [0x42; 32];
const OTHER_KEY: [u8; 32] = [0x43; 32];
const MS: Duration = Duration::from_millis(1);

fn private(c: &mut Config, key: [u8; 32]) {
    c.session.network_key = Some(key);
}

/// `n` private nodes (one key), bootstrapped to node 0.
fn private_star(n: usize) -> Mesh {
    let mut m = Mesh::new(n, |_, c| private(c, KEY));
    for i in 1..n {
        m.bootstrap(i, 0);
    }
    m
}

fn session_errors(m: &Mesh, i: usize) -> Vec<SessionError> {
    protocol_errors(m, i)
        .into_iter()
        .filter_map(|e| match e {
            ProtocolError::Session(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn dial_failures(m: &Mesh, i: usize) -> Vec<DialFailure> {
    m.events(i)
        .filter_map(|e| match e {
            Event::DialFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn chats(m: &Mesh, i: usize) -> Vec<String> {
    m.events(i)
        .filter_map(|e| match e {
            Event::Chat { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// A scripted private dialer on a raw connection to a node: a real
/// session, driven by hand, so that it can say what honest nodes never do.
struct RawNoise {
    r: usize,
    s: Session,
    /// Bytes of the raw peer's input already fed to the session.
    seen: usize,
    /// Every wire chunk it sent, in order.
    sent: Vec<Bytes>,
}

impl RawNoise {
    fn connect(m: &mut Mesh, j: usize, key: [u8; 32], private: [u8; 32]) -> RawNoise {
        let r = m.raw_connect(j, None);
        let s = Session::new(true, Keys::new(key, private, None), [7; 32]).unwrap();
        let mut raw = RawNoise {
            r,
            s,
            seen: 0,
            sent: Vec::new(),
        };
        raw.pump(m).unwrap();
        raw
    }

    /// Feeds what arrived to the session and sends what it has.
    fn pump(&mut self, m: &mut Mesh) -> Result<(), SessionError> {
        let got = m.raws[self.r].received[self.seen..].to_vec();
        self.seen += got.len();
        let res = self.s.receive(&got);
        while let Some(w) = self.s.poll_wire() {
            m.raw_send(self.r, &w);
            self.sent.push(w);
        }
        res
    }

    fn run(&mut self, m: &mut Mesh, d: Duration) -> Result<(), SessionError> {
        for _ in 0..10 {
            m.run_for(d / 10);
            self.pump(m)?;
        }
        Ok(())
    }

    fn send(&mut self, m: &mut Mesh, text: &str) {
        self.s.send(Bytes::copy_from_slice(text.as_bytes()));
        self.pump(m).unwrap();
    }

    /// Plaintext the node sent it, as text.
    fn plain(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(p) = self.s.poll_plain() {
            out.extend_from_slice(&p);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[test]
fn a_private_mesh_forms_chats_and_moves_a_file_with_nothing_plain_on_the_wire() {
    let mut m = private_star(4);
    converge(&mut m, 5 * SEC);
    for i in 0..4 {
        m.nodes[i]
            .node
            .broadcast_chat(&format!("hi from {i}"))
            .unwrap();
    }
    let data = content(3 * crate::file::CHUNK_SIZE + 777, 3);
    send_file(&mut m, 2, Target::All, "p.bin", &data);
    m.run_for(2 * SEC);
    for i in 0..4 {
        let mut got = chats(&m, i);
        got.sort();
        let want: Vec<String> = (0..4)
            .filter(|&j| j != i)
            .map(|j| format!("hi from {j}"))
            .collect();
        assert_eq!(got, want, "node {i}");
        if i != 2 {
            assert_eq!(
                m.nodes[i].storage.files.get("p.bin"),
                Some(&data),
                "node {i}"
            );
        }
        // The id is the key's: 32 lowercase hex digits.
        let id = m.nodes[i].node.id().as_str().to_owned();
        assert!(
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
    assert!(session_errors(&m, 0).is_empty());
    // No line of the protocol ever left in the clear.
    for needle in ["LISTEN:", "PING", "REQUEST_PEERS", "hi from", "FILESTART"] {
        let leaked = m
            .trace
            .lines()
            .filter(|l| l.contains(" tx "))
            .any(|l| l.contains(needle));
        assert!(!leaked, "{needle} went out in plaintext");
    }
}

#[test]
fn the_id_is_derived_from_the_static_key() {
    let mut c = Config::new(9000);
    c.id = Some(PeerId::parse("ignored").unwrap());
    private(&mut c, KEY);
    c.session.static_key = Some([5; 32]);
    let node = crate::Node::new(c, 1, std::time::Instant::now());
    assert_eq!(node.id(), &session_id_of_private(&[5; 32]));
    assert_ne!(
        session_id_of_private(&[5; 32]),
        session_id_of_private(&[6; 32])
    );
}

#[test]
fn a_node_with_another_key_fails_within_one_round_trip_and_others_are_unaffected() {
    let mut m = Mesh::new(3, |i, c| private(c, if i == 1 { OTHER_KEY } else { KEY }));
    m.bootstrap(2, 0);
    m.bootstrap(1, 0);
    m.run_for(30 * MS);
    // Node 0 refused node 1's first message: one round trip.
    assert_eq!(session_errors(&m, 0), [SessionError::WrongKeyOrNotPrivate]);
    assert!(dial_failures(&m, 1).contains(&DialFailure::Protocol(
        SessionError::ClosedInHandshake.into()
    )));
    m.run_for(SEC);
    assert_eq!(m.nodes[0].node.peer_count(), 1, "node 2 still connects");
    assert_eq!(m.nodes[1].node.peer_count(), 0);
    // Node 0 never sent node 1 a byte: neither its id nor anything else.
    let accepted: Vec<String> = m
        .trace
        .lines()
        .filter_map(|l| l.strip_prefix("0 accept "))
        .filter(|l| l.contains(" from 1/"))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert!(!accepted.is_empty());
    for conn in accepted {
        let prefix = format!("0 tx {conn} ");
        assert!(
            !m.trace.lines().any(|l| l.starts_with(&prefix)),
            "{}",
            m.trace
        );
    }
}

#[test]
fn a_plaintext_node_dialing_a_private_one_each_get_a_clear_reason() {
    let mut m = Mesh::new(2, |i, c| {
        if i == 0 {
            private(c, KEY)
        }
    });
    m.bootstrap(1, 0);
    m.run_for(500 * MS);
    assert_eq!(session_errors(&m, 0), [SessionError::PlaintextPeer]);
    assert_eq!(session_errors(&m, 1), [SessionError::NoisePeer]);
    assert!(dial_failures(&m, 1).contains(&DialFailure::Protocol(SessionError::NoisePeer.into())));
    assert_eq!(
        m.nodes[0].node.peer_count() + m.nodes[1].node.peer_count(),
        0
    );
    let msg = SessionError::NoisePeer.to_string();
    assert_eq!(
        msg,
        "peer speaks the private-mesh protocol; this node has no network key"
    );
}

#[test]
fn a_private_node_dialing_a_plaintext_one_each_get_a_clear_reason() {
    let mut m = Mesh::new(2, |i, c| {
        if i == 1 {
            private(c, KEY)
        }
    });
    m.bootstrap(1, 0);
    m.run_for(500 * MS);
    assert_eq!(session_errors(&m, 0), [SessionError::NoisePeer]);
    assert!(dial_failures(&m, 1).contains(&DialFailure::Protocol(
        SessionError::ClosedInHandshake.into()
    )));
    assert_eq!(
        m.nodes[0].node.peer_count() + m.nodes[1].node.peer_count(),
        0
    );
}

#[test]
fn a_replayed_handshake_is_not_established() {
    let mut m = private_star(2);
    converge(&mut m, SEC);
    // A legitimate private dialer, recorded.
    let mut legit = RawNoise::connect(&mut m, 0, KEY, [9; 32]);
    legit.run(&mut m, 100 * MS).unwrap();
    assert!(legit.s.is_transport());
    let id = session_id_of_private(&[9; 32]);
    legit.send(&mut m, &format!("{id}:legit\nLISTEN:localhost:9999\n"));
    legit.run(&mut m, 100 * MS).unwrap();
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    let recorded = legit.sent.clone();
    // The recording replayed on a new connection: message 1 is answered
    // (it is authentic), message 3 is bound to the first run's ephemeral
    // keys and fails, and the replayed hello is never read.
    let r = m.raw_connect(0, None);
    for chunk in &recorded {
        m.raw_send(r, chunk);
        m.run_for(20 * MS);
    }
    m.run_for(SEC);
    assert_eq!(session_errors(&m, 0), [SessionError::WrongKeyOrNotPrivate]);
    assert!(m.raws[r].closed);
    assert_eq!(m.nodes[0].node.peer_count(), 2, "the legitimate peers stay");
    assert_eq!(m.raws[r].received.len(), 2 + 96, "only message 2");
}

#[test]
fn a_hello_claiming_another_id_is_refused_and_a_known_one_is_an_impersonation() {
    let mut m = private_star(2);
    converge(&mut m, SEC);
    let victim = m.nodes[1].node.id().clone();
    // Claims node 1's id with its own key.
    let mut liar = RawNoise::connect(&mut m, 0, KEY, [9; 32]);
    liar.run(&mut m, 100 * MS).unwrap();
    liar.send(&mut m, &format!("{victim}:liar\nLISTEN:localhost:9999\n"));
    liar.run(&mut m, 100 * MS).unwrap();
    // Claims an id nobody has.
    let mut other = RawNoise::connect(&mut m, 0, KEY, [10; 32]);
    other.run(&mut m, 100 * MS).unwrap();
    other.send(&mut m, "nobody:x\nLISTEN:localhost:9998\n");
    other.run(&mut m, 100 * MS).unwrap();
    m.run_for(SEC);
    let errors = session_errors(&m, 0);
    assert_eq!(
        errors,
        [
            SessionError::Impersonation {
                claimed: victim.clone(),
                actual: session_id_of_private(&[9; 32]),
            },
            SessionError::IdMismatch {
                claimed: "nobody".into(),
                actual: session_id_of_private(&[10; 32]),
            },
        ]
    );
    // Refused before any reply: no hello back.
    assert_eq!(liar.plain(), "");
    assert_eq!(other.plain(), "");
    let peers: Vec<PeerId> = m.nodes[0].node.peers().map(|p| p.id).collect();
    assert_eq!(peers, [victim], "the real node 1 stays");
}

#[test]
fn a_flipped_bit_in_a_transport_message_cuts_the_connection_and_delivers_nothing() {
    let mut m = private_star(2);
    converge(&mut m, SEC);
    let mut raw = RawNoise::connect(&mut m, 0, KEY, [11; 32]);
    raw.run(&mut m, 100 * MS).unwrap();
    let id = session_id_of_private(&[11; 32]);
    raw.send(&mut m, &format!("{id}:raw\nLISTEN:localhost:9999\n"));
    raw.run(&mut m, 100 * MS).unwrap();
    assert_eq!(m.nodes[0].node.peer_count(), 2);
    assert!(raw
        .plain()
        .starts_with(&format!("{}:", m.nodes[0].node.id())));
    raw.send(&mut m, "honest line\n");
    m.run_for(50 * MS);
    raw.s.send(Bytes::from_static(b"tampered line\n"));
    let mut w = raw.s.poll_wire().unwrap().to_vec();
    w[5] ^= 0x10;
    m.raw_send(raw.r, &w);
    m.run_for(SEC);
    assert_eq!(session_errors(&m, 0), [SessionError::Tampered]);
    assert_eq!(chats(&m, 0), ["honest line"]);
    assert!(m.raws[raw.r].closed);
    assert_eq!(m.nodes[0].node.peer_count(), 1, "node 1 unaffected");
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::PeerDisconnected { peer, .. } if *peer == id)));
}

#[test]
fn a_peer_not_on_the_trust_list_is_cut_right_after_the_handshake() {
    let keys = [[1u8; 32], [2; 32], [3; 32]];
    let trusted: BTreeSet<PeerId> = [session_id_of_private(&keys[1])].into();
    let mut m = Mesh::new(3, |i, c| {
        private(c, KEY);
        c.session.static_key = Some(keys[i]);
        if i == 0 {
            c.session.trust = Some(trusted.clone());
        }
    });
    m.bootstrap(1, 0);
    m.bootstrap(2, 0);
    m.run_for(SEC);
    let ids: Vec<PeerId> = m.nodes[0].node.peers().map(|p| p.id).collect();
    assert_eq!(ids, [session_id_of_private(&keys[1])]);
    // Once per dial attempt of node 2, and only for it.
    let errors = session_errors(&m, 0);
    let untrusted = SessionError::NotTrusted {
        id: session_id_of_private(&keys[2]),
    };
    assert!(
        !errors.is_empty() && errors.iter().all(|e| *e == untrusted),
        "{errors:?}"
    );
    // Nothing of the line protocol reached node 0 from node 2.
    assert!(chats(&m, 0).is_empty());
    // A connection showing node 0's own key is still a self-connection,
    // not an untrusted peer.
    let mut me = RawNoise::connect(&mut m, 0, KEY, keys[0]);
    me.run(&mut m, 100 * MS).unwrap();
    assert!(me.s.is_transport());
    let id0 = m.nodes[0].node.id().clone();
    me.send(&mut m, &format!("{id0}:me\n"));
    me.run(&mut m, 100 * MS).unwrap();
    assert!(m.events(0).any(|e| matches!(
        e,
        Event::Rejected {
            reason: crate::RejectReason::SelfConnection,
            ..
        }
    )));
}

#[test]
fn a_silent_peer_is_cut_by_the_handshake_deadline() {
    let mut m = private_star(1);
    let r = m.raw_connect(0, None);
    m.run_for(11 * SEC);
    assert!(m.raws[r].closed);
    assert!(matches!(
        protocol_errors(&m, 0).as_slice(),
        [ProtocolError::HandshakeTimeout { .. }]
    ));
    // Half a handshake message is no better.
    let r = m.raw_connect(0, None);
    m.raw_send(r, &[0, 48, 1, 2, 3]);
    m.run_for(11 * SEC);
    assert!(m.raws[r].closed);
    assert_eq!(m.nodes[0].node.conn_count(), 0);
}

#[test]
fn flushed_reports_keep_a_paced_file_send_exact() {
    let mut m = Mesh::new(2, |_, c| {
        private(c, KEY);
        c.files.send_window = 64 * 1024;
        c.files.chunk_size = 100_000;
    });
    m.bootstrap(1, 0);
    converge(&mut m, SEC);
    let data = content(2_000_000, 4);
    m.nodes[0]
        .storage
        .sources
        .insert("f".into(), Bytes::copy_from_slice(&data));
    m.nodes[0]
        .node
        .send_file(Target::All, "f", "f.bin")
        .unwrap();
    let conn = m.nodes[0].node.peers().next().unwrap().conn;
    let mut max_queued = 0;
    for _ in 0..2000 {
        m.step();
        max_queued = max_queued.max(m.nodes[0].node.queued_on(conn));
        if m.nodes[1].storage.files.contains_key("f.bin") {
            break;
        }
    }
    assert_eq!(m.nodes[1].storage.files.get("f.bin"), Some(&data));
    // A chunk is decided only under the window, so what is queued stays
    // under the window plus one chunk frame (plaintext counted).
    assert!(max_queued <= 64 * 1024 + 100_000 + 200, "{max_queued}");
    m.run_for(100 * MS);
    // Every plaintext byte handed out was reported flushed, no more.
    assert_eq!(m.nodes[0].node.queued_on(conn), 0);
}

#[test]
fn same_seed_same_bytes_out_in_private_mode() {
    fn run(key: [u8; 32]) -> String {
        let mut m = Mesh::new(3, |_, c| private(c, key));
        m.bootstrap(1, 0);
        m.bootstrap(2, 0);
        converge(&mut m, 5 * SEC);
        m.nodes[1].node.broadcast_chat("x").unwrap();
        send_file(&mut m, 2, Target::All, "f.bin", &content(200_000, 1));
        m.run_for(20 * SEC);
        m.trace
    }
    let (a, b) = (run(KEY), run(KEY));
    assert!(a.len() > 10_000);
    assert!(a == b, "two runs of one seed differ");
    assert!(a != run(OTHER_KEY), "the key is in the bytes");
}

#[test]
fn a_private_dialer_sends_its_hello_only_after_the_handshake() {
    let mut m = private_star(2);
    m.run_for(SEC);
    // The dialer's first transmit is message 1 alone (2 + 48 bytes).
    let first = m
        .trace
        .lines()
        .find(|l| l.starts_with("1 tx "))
        .unwrap()
        .to_owned();
    assert!(first.starts_with("1 tx c1 b\"\\0"), "{first}");
    assert!(m.full_mesh());
    let _ = addr_of(0);
}

/// A private stream (initiator to responder) and the plaintext in it.
fn recorded_stream(messages: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let keys_i = Keys::new(KEY, [1; 32], None);
    let keys_r = Keys::new(KEY, [2; 32], None);
    let mut i = Session::new(true, keys_i, [3; 32]).unwrap();
    let mut r = Session::new(false, keys_r, [4; 32]).unwrap();
    let mut stream = Vec::new();
    let mut plain = Vec::new();
    for msg in messages {
        i.send(Bytes::copy_from_slice(msg));
        plain.extend_from_slice(msg);
    }
    for _ in 0..3 {
        while let Some(w) = i.poll_wire() {
            stream.extend_from_slice(&w);
            r.receive(&w).unwrap();
        }
        while let Some(w) = r.poll_wire() {
            i.receive(&w).unwrap();
        }
    }
    (stream, plain)
}

fn responder() -> Session {
    Session::new(false, Keys::new(KEY, [2; 32], None), [4; 32]).unwrap()
}

#[test]
fn big_plaintext_is_split_into_noise_messages_and_joined_again() {
    let big = content(200_000, 5);
    let (stream, plain) = recorded_stream(&[b"a:b\n".to_vec(), big.clone()]);
    let mut r = responder();
    r.receive(&stream).unwrap();
    let mut got = Vec::new();
    while let Some(p) = r.poll_plain() {
        assert!(p.len() <= crate::session::MAX_PLAINTEXT);
        got.extend_from_slice(&p);
    }
    assert_eq!(got, plain);
    // 50 + 66 handshake bytes, then 4 + 16 + 2 for the hello and four
    // messages (2 + 16 overhead each) for 200 000 bytes.
    assert_eq!(stream.len(), 50 + 66 + 22 + 200_000 + 4 * 18);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_any_split_of_a_private_stream_gives_the_same_plaintext(
        cuts in proptest::collection::vec(0usize..140_000, 0..40),
    ) {
        let (stream, plain) =
            recorded_stream(&[b"id:name\nLISTEN:x:1\n".to_vec(), content(70_000, 6), b"PING\n".to_vec()]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort();
        let mut r = responder();
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            r.receive(&stream[w[0]..w[1]]).unwrap();
            // Bounded: at most one message plus the read, never more.
            prop_assert!(r.buffered() <= 2 + 65535 + (w[1] - w[0]));
            while let Some(p) = r.poll_plain() {
                got.extend_from_slice(&p);
            }
        }
        prop_assert!(r.is_transport());
        prop_assert_eq!(got, plain);
    }

    #[test]
    fn prop_flushed_reports_add_up_to_the_plaintext(
        sizes in proptest::collection::vec(0usize..150_000, 1..6),
        parts in proptest::collection::vec(1u64..80_000, 1..60),
    ) {
        let msgs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![7u8; n]).collect();
        let keys_i = Keys::new(KEY, [1; 32], None);
        let mut i = Session::new(true, keys_i, [3; 32]).unwrap();
        let mut r = responder();
        for m in &msgs {
            i.send(Bytes::from(m.clone()));
        }
        let mut wire_total = 0u64;
        for _ in 0..3 {
            while let Some(w) = i.poll_wire() {
                wire_total += w.len() as u64;
                r.receive(&w).unwrap();
            }
            while let Some(w) = r.poll_wire() {
                i.receive(&w).unwrap();
            }
        }
        let plain_total: u64 = sizes.iter().map(|&n| n as u64).sum();
        let mut reported = 0;
        let mut flushed = 0;
        for p in parts.iter().cycle() {
            if flushed >= wire_total {
                break;
            }
            let p = (*p).min(wire_total - flushed);
            flushed += p;
            reported += i.flushed(p);
            prop_assert!(reported <= plain_total);
        }
        prop_assert_eq!(reported, plain_total);
    }
}

/// With `session.entropy` set, two nodes with the same seed draw different
/// connection keys (the seed alone has 64 bits); without it, the same.
#[test]
fn entropy_makes_connection_keys_unguessable_from_the_seed() {
    let t0 = std::time::Instant::now();
    let first = |entropy: Option<[u8; 32]>| {
        let mut c = crate::Config::new(9000);
        c.session.network_key = Some([1; 32]);
        c.session.static_key = Some([2; 32]);
        c.session.entropy = entropy;
        let mut n = crate::Node::new(c, 5, t0);
        n.connect(t0, "127.0.0.1:9001").unwrap();
        let conn = loop {
            match n.poll_output() {
                Some(crate::Output::Dial { conn, .. }) => break conn,
                Some(_) => {}
                None => panic!("no dial"),
            }
        };
        n.handle_input(t0, crate::Input::Connected { conn, local: None });
        let mut sent = Vec::new();
        while let Some(o) = n.poll_output() {
            if let crate::Output::Transmit { data, .. } = o {
                sent.extend_from_slice(&data);
            }
        }
        assert!(!sent.is_empty(), "the dialer's first Noise message");
        sent
    };
    assert_eq!(first(None), first(None), "replay by seed");
    assert_ne!(first(Some([3; 32])), first(Some([4; 32])));
    assert_ne!(first(None), first(Some([3; 32])));
}

#[test]
fn the_lan_fingerprint_tells_networks_apart_and_is_not_the_key() {
    let a = crate::network_fingerprint(&[1; 32]);
    let b = crate::network_fingerprint(&[2; 32]);
    assert_eq!(a.len(), 16);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    assert_eq!(a, crate::network_fingerprint(&[1; 32]), "stable");
    assert!(!a.contains(&hex::encode([1u8; 8])));
}
