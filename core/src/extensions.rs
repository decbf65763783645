//! The extensions component: the extension frames of docs/PROTOCOL.md §7
//! (`P2PX/<tag>\n<body>` bytes frames), the registry of the tags we speak,
//! and the capability exchange that tells us which peers speak them. Only
//! peers that announced an extension get its traffic, so a reference node
//! sees one opaque frame per connection from all our extensions together:
//! the caps frame.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{ConnId, Event, PeerId};

/// Prefix of every extension payload.
pub(crate) const EXT_PREFIX: &[u8] = b"P2PX/";

/// Payload prefixes only the node itself may send (docs/PROTOCOL.md §7.1):
/// an application binary message starting with one would be misread.
pub(crate) const RESERVED_PREFIXES: [&str; 4] = ["P2PX/", "FILESTART:", "FILECHUNK:", "FILEEND:"];

/// The tag of the capability exchange.
const CAPS: &str = "caps";

/// The tag of the goodbye a node sends before it closes on shutdown
/// (docs/PROTOCOL.md §7.5): peers see "left" at once instead of a close
/// they cannot tell from a crash.
const LEAVE: &str = "leave";

/// The tag of content-addressed sharing (docs/PROTOCOL.md §9), spoken
/// unless `swarm.enabled` is off.
pub(crate) const SWARM: &str = "swarm";

/// The registry (docs/PROTOCOL.md §7.2): what we speak, with versions.
const OURS: &[(&str, u32)] = &[(CAPS, 1), (LEAVE, 1), (SWARM, 1)];

/// Longest caps body accepted.
const MAX_CAPS_BODY: usize = 1024;

/// Longest tag.
const MAX_TAG: usize = 32;

/// What a peer announced.
#[derive(Debug, Default)]
struct Caps {
    /// Extension name to version.
    speaks: BTreeMap<String, u32>,
    /// Connections of this peer whose caps frame arrived.
    from: BTreeSet<ConnId>,
}

/// What an extension frame asks of the node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Dealt with here (or ignored, with an event).
    Handled,
    /// The peer is leaving: end it with [`DisconnectReason::Left`](crate::DisconnectReason::Left).
    Leave,
    /// Its caps frame arrived: it may speak extensions with handlers.
    Caps,
    /// A `swarm` frame from a peer that announced it: its body.
    Swarm(Bytes),
}

/// Extension frames and who speaks what.
#[derive(Debug, Default)]
pub(crate) struct Extensions {
    peers: BTreeMap<PeerId, Caps>,
    /// `swarm/1` is off in this node's configuration.
    no_swarm: bool,
    pub(crate) out: Outbox,
}

/// `P2PX/<tag>\n<body>` as a whole bytes frame.
fn frame(tag: &str, body: &[u8]) -> Bytes {
    let payload_len = EXT_PREFIX.len() + tag.len() + 1 + body.len();
    let header = codec::bytes_header(payload_len);
    let mut b = BytesMut::with_capacity(header.len() + payload_len);
    b.put_slice(&header);
    b.put_slice(EXT_PREFIX);
    b.put_slice(tag.as_bytes());
    b.put_u8(b'\n');
    b.put_slice(body);
    b.freeze()
}

/// The tag and body of an extension payload, or why not.
fn split(payload: &Bytes) -> Result<(&str, Bytes), &'static str> {
    let rest = &payload[EXT_PREFIX.len()..];
    let end = rest
        .iter()
        .take(MAX_TAG + 1)
        .position(|&b| b == b'\n')
        .ok_or("no tag line")?;
    let tag = &rest[..end];
    if tag.is_empty()
        || !tag
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("invalid tag");
    }
    // Invariant: checked ASCII just above.
    let tag = std::str::from_utf8(tag).map_err(|_| "invalid tag")?;
    let body = payload.slice(EXT_PREFIX.len() + end + 1..);
    Ok((tag, body))
}

/// Parses a caps body: tokens `name/version`; malformed and empty ones are
/// skipped, the higher version of a repeated name counts.
fn parse_caps(body: &[u8]) -> Result<BTreeMap<String, u32>, &'static str> {
    if body.len() > MAX_CAPS_BODY {
        return Err("caps body over 1024 bytes");
    }
    let text = std::str::from_utf8(body).map_err(|_| "caps body is not UTF-8")?;
    let mut speaks = BTreeMap::new();
    for token in text.split(' ') {
        let Some((name, version)) = token.split_once('/') else {
            continue;
        };
        let name_ok = !name.is_empty()
            && name.len() <= MAX_TAG
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let version = (version.len() <= 9 && version.bytes().all(|b| b.is_ascii_digit()))
            .then(|| version.parse::<u32>().ok())
            .flatten();
        if let (true, Some(v)) = (name_ok, version) {
            let e = speaks.entry(name.to_owned()).or_insert(v);
            *e = (*e).max(v);
        }
    }
    Ok(speaks)
}

impl Extensions {
    /// The registry, with `swarm` only if `swarm` is on.
    pub(crate) fn new(swarm: bool) -> Extensions {
        Extensions {
            no_swarm: !swarm,
            ..Extensions::default()
        }
    }

    /// Our caps frame, sent once on every kept connection after its PING.
    pub(crate) fn greet(&mut self, conn: ConnId) {
        let body: Vec<String> = OURS
            .iter()
            .filter(|(n, _)| !(self.no_swarm && *n == SWARM))
            .map(|(n, v)| format!("{n}/{v}"))
            .collect();
        self.out
            .transmit(conn, frame(CAPS, body.join(" ").as_bytes()));
    }

    /// What `peer` announced, as `name/version` tokens (none until its caps
    /// frame arrived, and never for a reference node).
    pub(crate) fn of(&self, peer: &PeerId) -> Vec<String> {
        self.peers
            .get(peer)
            .map(|c| c.speaks.iter().map(|(n, v)| format!("{n}/{v}")).collect())
            .unwrap_or_default()
    }

    fn ignore(&mut self, peer: &PeerId, why: impl Into<String>) {
        self.out.event(Event::ExtensionIgnored {
            peer: peer.clone(),
            why: why.into(),
        });
    }

    /// Shutdown is near: a goodbye to every peer that speaks `leave`
    /// (a reference node gets nothing new: it sees the close).
    pub(crate) fn leave(&mut self, peers: &Peers) {
        for (id, p) in peers.iter() {
            if self.speaks(id, LEAVE) {
                self.out.transmit(p.conn, frame(LEAVE, b""));
            }
        }
    }

    /// Whether `peer` announced `tag`.
    pub(crate) fn speaks(&self, peer: &PeerId, tag: &str) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|c| c.speaks.contains_key(tag))
    }

    /// An extension frame from an established peer on `conn`. Returns
    /// [`Frame::Leave`] when the peer said goodbye: the caller ends it.
    pub(crate) fn on_frame(&mut self, conn: ConnId, peer: &PeerId, payload: Bytes) -> Frame {
        let (tag, body) = match split(&payload) {
            Ok(t) => t,
            Err(why) => {
                self.ignore(peer, why);
                return Frame::Handled;
            }
        };
        // A goodbye needs no announcement first: a peer may leave before
        // its caps frame arrived (a body, reserved for later, is ignored).
        if tag == LEAVE {
            return Frame::Leave;
        }
        if tag != CAPS {
            let announced = self
                .peers
                .get(peer)
                .is_some_and(|c| c.speaks.contains_key(tag));
            if announced && tag == SWARM && !self.no_swarm {
                return Frame::Swarm(body);
            }
            let why = if announced {
                format!("no handler for extension {tag:?}")
            } else {
                format!("extension {tag:?} was not announced")
            };
            self.ignore(peer, why);
            return Frame::Handled;
        }
        if self.peers.get(peer).is_some_and(|c| c.from.contains(&conn)) {
            self.ignore(peer, "a second caps frame on one connection");
            return Frame::Handled;
        }
        let speaks = match parse_caps(&body) {
            Ok(s) => s,
            Err(why) => {
                self.ignore(peer, why);
                return Frame::Handled;
            }
        };
        let caps = self.peers.entry(peer.clone()).or_default();
        caps.from.insert(conn);
        caps.speaks = speaks;
        let extensions = self.of(peer);
        self.out.event(Event::PeerExtensions {
            peer: peer.clone(),
            extensions,
        });
        Frame::Caps
    }

    /// `peer` is gone: what it announced is forgotten.
    pub(crate) fn on_peer_lost(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Shutdown: nobody is left.
    pub(crate) fn shutdown(&mut self) {
        self.peers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_frame_round_trips_and_tolerates_junk() {
        let f = frame(CAPS, b"caps/1");
        assert_eq!(&f[..], b"BYTES:16\nP2PX/caps\ncaps/1");
        let payload = f.slice(9..);
        let (tag, body) = split(&payload).unwrap();
        assert_eq!((tag, &body[..]), ("caps", &b"caps/1"[..]));
        let speaks = parse_caps(b"swarm/2  junk caps/1 swarm/7 UP/1 x/ /3 big/9999999999").unwrap();
        assert_eq!(
            speaks.into_iter().collect::<Vec<_>>(),
            [("caps".to_owned(), 1), ("swarm".to_owned(), 7)]
        );
        assert!(parse_caps(&[0xff]).is_err());
        assert!(parse_caps(&[b'a'; 1025]).is_err());
        for bad in [&b"P2PX/"[..], b"P2PX/\n", b"P2PX/Caps\n", b"P2PX/a b\n"] {
            assert!(split(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        let long = format!("P2PX/{}\n", "a".repeat(33));
        assert!(split(&Bytes::from(long)).is_err());
    }
}
