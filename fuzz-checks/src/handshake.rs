//! The `handshake` target: arbitrary bytes, in arbitrary read splits, to a
//! listener (a connection from [`Node::handle_accept`]) and to a dialer (a
//! node that ran `connect(now, "127.0.0.1:9")`, then got
//! `Input::Connected`), each a fresh node that may already have peers and
//! be at `max_peers`.
//!
//! The bytes are decoded independently of the node, and the outcome of the
//! handshake (PROTOCOL.md section 2) is predicted from the first frame:
//! established (with the hello, `LISTEN:` and announcement as specified),
//! refused with `DUPLICATE`, `MAX_PEERS` or as a self-connection, or closed
//! for a protocol error, with exactly the replies and events each implies.
//! After the handshake, each frame gets its reply (`PING` → `PONG`) or
//! event (chat, binary). Then time passes: an unfinished handshake and a
//! silent new peer are closed at `connect_timeout`, and whatever the bytes
//! were, the connection is closed once the peer timeout has passed.

use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use p2p_core::codec::{Decoder, Frame, Limits};
use p2p_core::file::FileFrame;
use p2p_core::{Addr, ConnId, Event, Input, Node, Output, PeerId, ProtocolError, RejectReason};

use crate::common::{pick, Reader, Writer};
use crate::node::{config, OUR_ID, PORT};

/// Ids of the peers a node may already have: one after [`OUR_ID`] and one
/// before it, so that a dialer meeting them again exercises both outcomes
/// of the simultaneous-connect merge.
const PRE_IDS: [&str; 2] = ["p", "a"];
const REMOTES: [&str; 4] = [
    "127.0.0.1:40001",
    "10.0.0.9:40002",
    "[::1]:40003",
    "[2001:db8::9]:40004",
];
const LOCALS: [Option<&str>; 4] = [
    None,
    Some("127.0.0.1:50000"),
    Some("10.0.0.1:50001"),
    Some("0.0.0.0:50002"),
];
/// The address the dialer dials.
const DIALED: &str = "127.0.0.1:9";

/// One `handshake` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInput {
    /// Bits 0-1: peers already established (at most 2 and `max_peers`);
    /// bits 2-3: `max_peers` - 1 (modulo 3); bits 4-5: the listener's
    /// remote address; bits 6-7: the dialer's local address.
    pub setup: u8,
    /// Read sizes, used in turn (low 7 bits; 0 is an empty read).
    pub reads: Vec<u8>,
    /// The bytes the remote sends.
    pub data: Vec<u8>,
}

impl HandshakeInput {
    fn read(data: &[u8]) -> HandshakeInput {
        let mut r = Reader::new(data);
        let setup = r.u8();
        let reads = r.short_bytes();
        HandshakeInput {
            setup,
            reads,
            data: r.rest(),
        }
    }

    /// The raw bytes that [`check_handshake`] reads as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.setup).short_bytes(&self.reads).raw(&self.data);
        w.out
    }

    fn max_peers(&self) -> usize {
        1 + usize::from((self.setup >> 2) & 3) % 3
    }

    fn pre(&self) -> usize {
        usize::from(self.setup & 3).min(2).min(self.max_peers())
    }

    fn remote(&self) -> SocketAddr {
        pick(&REMOTES, self.setup >> 4 & 3).parse().expect("valid")
    }

    fn local(&self) -> Option<SocketAddr> {
        pick(&LOCALS, self.setup >> 6).map(|s| s.parse().expect("valid"))
    }

    /// The data cut as the read sizes say.
    fn chunks(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = &self.data[..];
        let cycle = self.reads.iter().any(|r| r & 0x7f != 0);
        let mut next = 0;
        while !rest.is_empty() {
            let n = if next < self.reads.len() || cycle {
                let spec = self.reads[next % self.reads.len()];
                next += 1;
                usize::from(spec & 0x7f).min(rest.len())
            } else {
                rest.len()
            };
            let (chunk, tail) = rest.split_at(n);
            out.push(chunk);
            rest = tail;
        }
        out
    }
}

/// How a handshake ended, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Still waiting for more bytes.
    Open,
    /// Closed for a protocol error.
    Error,
    /// Refused (by us as listener, or by the remote as dialer).
    Rejected(RejectReason),
    /// Established.
    Established,
}

/// What a `handshake` input reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// The listener's outcome.
    pub listener: Ending,
    /// The dialer's outcome.
    pub dialer: Ending,
}

fn limits() -> Limits {
    let c = config();
    Limits {
        max_line_len: c.connections.max_line_len,
        max_bytes_per_message: c.connections.max_bytes_per_message,
    }
}

/// Frames of the whole input and the error that stopped decoding.
fn frames_of(data: &[u8]) -> (Vec<Frame>, bool) {
    let mut dec = Decoder::new(limits());
    dec.feed_slice(data);
    let mut frames = Vec::new();
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// The id of a hello line, checked as PROTOCOL.md section 2 and
/// [`PeerId`] specify, independently of the codec.
fn hello_id(frame: &Frame) -> Option<&str> {
    let Frame::Line(line) = frame else {
        return None;
    };
    let (id, _) = line.split_once(':')?;
    let valid = !id.is_empty()
        && id != "BYTES"
        && id.len() <= PeerId::MAX_LEN
        && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(id)
}

fn line(frame: &Frame) -> Option<&str> {
    match frame {
        Frame::Line(l) => Some(l),
        Frame::Bytes(_) => None,
    }
}

/// Replies and events expected from frames after the handshake.
#[derive(Debug, Default, PartialEq, Eq)]
struct After {
    pongs: usize,
    chats: usize,
    binaries: usize,
}

/// `frames` on an established connection (the first, on a listener, may
/// be `LISTEN:`).
fn after(frames: &[Frame], listener: bool) -> After {
    let mut a = After::default();
    for (i, f) in frames.iter().enumerate() {
        match f {
            Frame::Line(l) if listener && i == 0 && l.starts_with("LISTEN:") => {}
            Frame::Line(l) => match l.as_str() {
                "PING" => a.pongs += 1,
                "PONG" | "REQUEST_PEERS" | "" => {}
                l if l.starts_with("PEERS:") => {}
                _ => a.chats += 1,
            },
            Frame::Bytes(b) => {
                if FileFrame::parse(b).is_none() {
                    a.binaries += 1;
                }
            }
        }
    }
    a
}

/// What crossed between the node and the harness in one phase.
#[derive(Debug, Default)]
struct Log {
    /// Transmits on the connection under test, concatenated.
    sent: Vec<u8>,
    /// `PONG` lines sent on any connection.
    pongs: usize,
    closed: bool,
    events: Vec<Event>,
}

impl Log {
    fn drain(&mut self, node: &mut Node, conn: ConnId) {
        while let Some(out) = node.poll_output() {
            match out {
                Output::Transmit { conn: c, data } => {
                    assert!(
                        !(c == conn && self.closed),
                        "Transmit on {conn} after its Close"
                    );
                    self.pongs += data
                        .split(|&b| b == b'\n')
                        .filter(|l| *l == b"PONG")
                        .count();
                    if c == conn {
                        self.sent.extend_from_slice(&data);
                    }
                }
                Output::Close { conn: c } if c == conn => self.closed = true,
                Output::Event(e) => self.events.push(e),
                _ => {}
            }
        }
    }

    fn protocol_error(&self, conn: ConnId) -> Option<&ProtocolError> {
        self.events.iter().find_map(|e| match e {
            Event::ProtocolError { conn: c, error, .. } if *c == conn => Some(error),
            _ => None,
        })
    }

    fn rejected(&self, conn: ConnId) -> Option<(RejectReason, bool)> {
        self.events.iter().find_map(|e| match e {
            Event::Rejected {
                conn: c,
                reason,
                by_remote,
                ..
            } if *c == conn => Some((*reason, *by_remote)),
            _ => None,
        })
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

/// A node with `pre` peers established through scripted handshakes
/// (accepted, each sent its hello and `LISTEN:`).
fn node_with_peers(input: &HandshakeInput, pre: usize, now: Instant) -> Node {
    let mut c = config();
    c.connections.max_peers = input.max_peers();
    let mut node = Node::new(c, 11, now);
    for (i, id) in PRE_IDS.iter().take(pre).enumerate() {
        let remote = format!("127.0.0.1:{}", 41000 + i).parse().ok();
        let conn = node.handle_accept(now, remote);
        let data = format!("{id}:\nLISTEN:127.0.0.1:{}\n", 9100 + i);
        node.handle_input(
            now,
            Input::Received {
                conn,
                data: Bytes::from(data),
            },
        );
        while node.poll_output().is_some() {}
        assert_eq!(node.peer_of(conn).map(PeerId::as_str), Some(*id));
    }
    assert_eq!(node.peer_count(), pre);
    node
}

fn our_hello() -> String {
    format!("{OUR_ID}:node m\n")
}

fn is_ours(a: &Addr) -> bool {
    [
        format!("127.0.0.1:{PORT}"),
        format!("0.0.0.0:{PORT}"),
        format!("[::1]:{PORT}"),
    ]
    .contains(&a.to_string())
}

/// Feeds the input and checks the outcome up to the end of the bytes.
fn feed(node: &mut Node, conn: ConnId, input: &HandshakeInput, now: Instant, log: &mut Log) {
    for chunk in input.chunks() {
        node.handle_input(
            now,
            Input::Received {
                conn,
                data: Bytes::copy_from_slice(chunk),
            },
        );
        log.drain(node, conn);
    }
}

/// Lets time pass: to just after `connect_timeout`, then past the peer
/// timeout. Returns the logs of both phases.
fn expire(node: &mut Node, conn: ConnId, start: Instant) -> (Log, Log) {
    let c = config();
    let mut first = Log::default();
    node.handle_timeout(start + c.connections.connect_timeout + Duration::from_millis(1));
    first.drain(node, conn);
    let mut second = Log::default();
    let end =
        start + c.connections.connect_timeout + c.heartbeat.peer_timeout + Duration::from_secs(1);
    // Step through every deadline up to the end, as a driver would.
    while let Some(t) = node.poll_timeout().filter(|t| *t <= end) {
        node.handle_timeout(t);
        second.drain(node, conn);
    }
    node.handle_timeout(end);
    second.drain(node, conn);
    (first, second)
}

fn check_listener(input: &HandshakeInput) -> Ending {
    let now = Instant::now();
    let mut node = node_with_peers(input, input.pre(), now);
    let remote = input.remote();
    let conn = node.handle_accept(now, Some(remote));
    let mut log = Log::default();
    feed(&mut node, conn, input, now, &mut log);

    let (frames, failed) = frames_of(&input.data);
    let pre: Vec<&str> = PRE_IDS[..input.pre()].to_vec();
    let closed_for_error = |log: &Log, what: &str| {
        assert!(
            log.protocol_error(conn).is_some(),
            "{what}: no ProtocolError"
        );
        assert!(log.closed, "{what}: connection not closed");
    };
    let ending = match frames.first() {
        None if failed => {
            closed_for_error(&log, "framing error before the hello");
            assert!(log.sent.is_empty(), "reply to a framing error");
            Ending::Error
        }
        None => {
            assert!(log.sent.is_empty() && !log.closed && log.events.is_empty());
            Ending::Open
        }
        Some(first) => match hello_id(first) {
            None => {
                closed_for_error(&log, "invalid hello");
                assert!(log.sent.is_empty(), "reply to an invalid hello");
                Ending::Error
            }
            Some(id) => {
                let refusal = if id == OUR_ID {
                    Some((RejectReason::SelfConnection, our_hello()))
                } else if pre.contains(&id) {
                    Some((RejectReason::Duplicate, "DUPLICATE\n".to_owned()))
                } else if pre.len() >= input.max_peers() {
                    Some((RejectReason::MaxPeers, "MAX_PEERS\n".to_owned()))
                } else {
                    None
                };
                match refusal {
                    Some((reason, reply)) => {
                        assert_eq!(
                            log.rejected(conn),
                            Some((reason, false)),
                            "listener refusal"
                        );
                        assert!(
                            log.sent.starts_with(reply.as_bytes()),
                            "refused with {:?}",
                            String::from_utf8_lossy(&log.sent)
                        );
                        assert!(log.closed, "refused connection not closed");
                        assert_eq!(node.peer_count(), pre.len());
                        Ending::Rejected(reason)
                    }
                    None => {
                        listener_established(&node, conn, remote, id, &frames, failed, &log);
                        Ending::Established
                    }
                }
            }
        },
    };

    let (first, second) = expire(&mut node, conn, now);
    let listen_first = frames
        .get(1)
        .and_then(line)
        .is_some_and(|l| l.starts_with("LISTEN:"));
    let proven = frames.len() > 2 || (frames.len() == 2 && !listen_first);
    match ending {
        Ending::Open => {
            assert!(
                matches!(
                    first.protocol_error(conn),
                    Some(ProtocolError::HandshakeTimeout { .. })
                ),
                "no handshake timeout: {:?}",
                first.events
            );
        }
        Ending::Established if !failed && !proven => {
            assert!(
                matches!(
                    first.protocol_error(conn),
                    Some(ProtocolError::Unresponsive { .. })
                ),
                "a silent new peer was kept: {:?}",
                first.events
            );
        }
        _ => {}
    }
    let closed = log.closed || first.closed || second.closed;
    assert!(closed, "the connection outlived the peer timeout");
    assert_eq!(node.peer_of(conn), None);
    ending
}

fn listener_established(
    node: &Node,
    conn: ConnId,
    remote: SocketAddr,
    id: &str,
    frames: &[Frame],
    failed: bool,
    log: &Log,
) {
    assert!(
        log.sent.starts_with(our_hello().as_bytes()),
        "listener did not answer with its hello: {:?}",
        String::from_utf8_lossy(&log.sent)
    );
    let announced: Vec<&Event> = log
        .events
        .iter()
        .filter(|e| matches!(e, Event::PeerConnected { .. }))
        .collect();
    if frames.len() >= 2 {
        let expected_addr = line(&frames[1])
            .and_then(|l| l.strip_prefix("LISTEN:"))
            .and_then(|a| Addr::parse(a.trim()).ok())
            .map(|a| {
                if a.is_local_only() && !remote.ip().is_loopback() {
                    Addr::from_socket(SocketAddr::new(remote.ip(), a.port()))
                } else {
                    a
                }
            })
            .filter(|a| !is_ours(a));
        match announced[..] {
            [Event::PeerConnected {
                peer,
                addr,
                outbound,
                ..
            }] => {
                assert_eq!(peer.as_str(), id);
                assert!(!outbound);
                assert_eq!(*addr, expected_addr, "announced address");
            }
            _ => panic!("expected one PeerConnected, got {:?}", log.events),
        }
    } else {
        assert!(announced.is_empty(), "announced before its LISTEN line");
    }
    if failed {
        assert!(
            log.protocol_error(conn).is_some(),
            "framing error not reported"
        );
        assert!(log.closed);
        assert_eq!(node.peer_of(conn), None, "peer kept after a framing error");
    } else {
        assert_eq!(
            node.peer_of(conn).map(PeerId::as_str),
            Some(id),
            "peer not established"
        );
        assert!(!log.closed);
    }
    check_after(&frames[1..], true, log);
}

fn check_after(frames: &[Frame], listener: bool, log: &Log) {
    let expected = after(frames, listener);
    let got = After {
        pongs: log.pongs,
        chats: log.count(|e| matches!(e, Event::Chat { .. })),
        binaries: log.count(|e| matches!(e, Event::Bytes { .. })),
    };
    assert_eq!(got, expected, "replies and events after the handshake");
}

fn check_dialer(input: &HandshakeInput) -> Ending {
    let now = Instant::now();
    // A node at max_peers does not dial at all: keep one slot free.
    let pre_count = input.pre().min(input.max_peers() - 1);
    let mut node = node_with_peers(input, pre_count, now);
    let pre: Vec<&str> = PRE_IDS[..pre_count].to_vec();
    node.connect(now, DIALED).expect("connect");
    let mut dials = Vec::new();
    while let Some(out) = node.poll_output() {
        if let Output::Dial { conn, addr } = out {
            dials.push((conn, addr));
        }
    }
    let [(conn, ref addr)] = dials[..] else {
        panic!("connect gave dials {dials:?}");
    };
    assert_eq!(addr.as_str(), DIALED);
    let local = input.local();
    node.handle_input(now, Input::Connected { conn, local });
    let mut log = Log::default();
    log.drain(&mut node, conn);
    let listen_ip = local
        .filter(|l| !l.ip().is_unspecified())
        .map_or("127.0.0.1".to_owned(), |l| l.ip().to_string());
    let greeting = format!("{}LISTEN:{listen_ip}:{PORT}\n", our_hello());
    assert_eq!(
        String::from_utf8_lossy(&log.sent),
        greeting,
        "the dialer's hello and LISTEN"
    );
    let mut log = Log::default();
    feed(&mut node, conn, input, now, &mut log);

    let (frames, failed) = frames_of(&input.data);
    let closed_for_error = |log: &Log, what: &str| {
        assert!(
            log.protocol_error(conn).is_some(),
            "{what}: no ProtocolError"
        );
        assert!(log.closed, "{what}: connection not closed");
    };
    let mut kept = false;
    let ending = match frames.first() {
        None if failed => {
            closed_for_error(&log, "framing error before the hello");
            Ending::Error
        }
        None => {
            assert!(!log.closed && log.events.is_empty());
            Ending::Open
        }
        Some(first) => match (line(first), hello_id(first)) {
            (Some("DUPLICATE"), _) => {
                assert_eq!(log.rejected(conn), Some((RejectReason::Duplicate, true)));
                assert!(log.closed);
                Ending::Rejected(RejectReason::Duplicate)
            }
            (Some("MAX_PEERS"), _) => {
                assert_eq!(log.rejected(conn), Some((RejectReason::MaxPeers, true)));
                // It stays open to read the PEERS line that may follow,
                // unless the framing breaks.
                assert_eq!(log.closed, failed);
                assert_eq!(log.count(|e| matches!(e, Event::Chat { .. })), 0);
                Ending::Rejected(RejectReason::MaxPeers)
            }
            (_, Some(OUR_ID)) => {
                assert_eq!(
                    log.rejected(conn),
                    Some((RejectReason::SelfConnection, true))
                );
                assert!(log.closed);
                Ending::Rejected(RejectReason::SelfConnection)
            }
            (_, Some(id)) if pre.contains(&id) => {
                // A second connection to a peer we have: both sides keep the
                // one dialed by the smaller id.
                kept = OUR_ID < id;
                let holder = node.peers().find(|p| p.id.as_str() == id).map(|p| p.conn);
                if failed {
                    assert!(log.closed);
                } else if kept {
                    assert_eq!(holder, Some(conn), "merge kept the wrong connection");
                    assert!(!log.closed);
                } else {
                    assert_ne!(holder, Some(conn), "merge kept the wrong connection");
                    // The loser no longer carries the peer and nothing more is
                    // sent on it; it is half-closed once the kept connection
                    // is proven, at the latest at the connect timeout (the
                    // deadline checks below see it closed).
                    assert_eq!(
                        node.peer_of(conn),
                        None,
                        "the losing duplicate still carries the peer"
                    );
                    assert!(
                        log.sent.is_empty(),
                        "sent on the losing duplicate: {:?}",
                        log.sent
                    );
                }
                check_after(&frames[1..], false, &log);
                Ending::Established
            }
            (_, Some(id)) if pre.len() >= input.max_peers() => {
                assert_eq!(log.rejected(conn), Some((RejectReason::MaxPeers, false)));
                assert!(log.closed);
                assert!(node.peers().all(|p| p.id.as_str() != id));
                Ending::Rejected(RejectReason::MaxPeers)
            }
            (_, Some(id)) => {
                kept = true;
                let connected = log.count(|e| {
                    matches!(e, Event::PeerConnected { peer, outbound: true, .. } if peer.as_str() == id)
                });
                assert_eq!(
                    connected, 1,
                    "dialer did not announce {id}: {:?}",
                    log.events
                );
                if failed {
                    assert!(log.closed);
                    assert_eq!(node.peer_of(conn), None);
                } else {
                    assert_eq!(node.peer_of(conn).map(PeerId::as_str), Some(id));
                    assert!(!log.closed);
                }
                check_after(&frames[1..], false, &log);
                Ending::Established
            }
            (_, None) => {
                closed_for_error(&log, "invalid hello reply");
                Ending::Error
            }
        },
    };

    let (first, second) = expire(&mut node, conn, now);
    match ending {
        Ending::Open => assert!(
            matches!(
                first.protocol_error(conn),
                Some(ProtocolError::HandshakeTimeout { .. })
            ),
            "no handshake timeout: {:?}",
            first.events
        ),
        Ending::Established if kept && !failed && frames.len() == 1 => assert!(
            matches!(
                first.protocol_error(conn),
                Some(ProtocolError::Unresponsive { .. })
            ),
            "a silent new peer was kept: {:?}",
            first.events
        ),
        _ => {}
    }
    let closed = log.closed || first.closed || second.closed;
    assert!(closed, "the connection outlived the peer timeout");
    assert!(node.peers().all(|p| p.conn != conn));
    ending
}

/// Runs the `handshake` checks on fuzzer bytes. Panics on a broken
/// invariant.
pub fn check_handshake(data: &[u8]) -> HandshakeSummary {
    let input = HandshakeInput::read(data);
    HandshakeSummary {
        listener: check_listener(&input),
        dialer: check_dialer(&input),
    }
}
