//! Following every connection from the tap: both ends of each simulated TCP
//! connection are paired by their socket addresses, the bytes and frames
//! one end transmitted are compared with what the other end received, and
//! the handshake is read off the first frame in each direction so that the
//! checker knows which connections a node considers established.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use p2p_core::codec::{Decoder, Frame, Limits};
use p2p_core::{ConnId, PeerId};

/// Both ends' socket addresses: (dialer's local socket, listener's socket).
pub(crate) type PairKey = (SocketAddr, SocketAddr);

/// Which end of a connection a host is.
pub(crate) const DIALER: usize = 0;
/// The accepting end.
pub(crate) const LISTENER: usize = 1;

/// The first frame seen in one direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum First {
    /// Nothing yet.
    Pending,
    /// A hello line carrying this id.
    Hello(String),
    /// Anything else (`DUPLICATE`, `MAX_PEERS`, garbage).
    Other,
}

impl First {
    fn of(frame: &Frame) -> First {
        match frame {
            Frame::Line(line) => match line.split_once(':') {
                // A hello is `<id>:<name>`; refusals have no colon.
                Some((id, _)) if !id.is_empty() && id != "BYTES" => First::Hello(id.to_owned()),
                _ => First::Other,
            },
            Frame::Bytes(_) => First::Other,
        }
    }
}

/// Splits one direction of a private connection into Noise messages
/// (a 2-byte big-endian length, then that many bytes: docs/PROTOCOL.md
/// §7.4). The simulator cannot read the plaintext (that is the point), but
/// it can count messages: the handshake's are fixed in number and length.
#[derive(Debug, Default)]
pub(crate) struct NoiseSplit {
    /// Bytes of a message not yet complete (its length prefix included).
    partial: Vec<u8>,
    /// Complete messages so far.
    pub(crate) messages: usize,
}

impl NoiseSplit {
    /// Feeds bytes; returns the lengths of the messages they completed.
    fn feed(&mut self, mut data: &[u8]) -> Vec<usize> {
        let mut done = Vec::new();
        while !data.is_empty() {
            if self.partial.len() < 2 {
                let take = (2 - self.partial.len()).min(data.len());
                self.partial.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
            if self.partial.len() < 2 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([self.partial[0], self.partial[1]]));
            let have = self.partial.len() - 2;
            let take = (len - have).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() - 2 == len {
                self.partial.clear();
                self.messages += 1;
                done.push(len);
            }
        }
        done
    }
}

/// Both directions of a private connection, as Noise messages.
#[derive(Debug, Default)]
pub(crate) struct NoiseTrack {
    tx: NoiseSplit,
    rx: NoiseSplit,
    /// The id the node established on this connection, by its own events
    /// (`PeerConnected` while handling an input on it, or the kept end of
    /// `DuplicateRetired`): the plaintext hello cannot be read here.
    pub(crate) claimed: Option<PeerId>,
}

/// Handshake messages a side sends: the dialer `psk, e` and `s, se`, the
/// listener `e, ee, s, es`.
fn handshake_sent(side: usize) -> usize {
    if side == DIALER {
        2
    } else {
        1
    }
}

/// One host's view of one of its connections.
#[derive(Debug)]
pub(crate) struct ConnTrack {
    /// [`DIALER`] or [`LISTENER`].
    pub(crate) side: usize,
    /// Dialer: the address dialed, as a socket address.
    pub(crate) dialed: Option<SocketAddr>,
    /// The pairing key, once both socket addresses are known.
    pub(crate) key: Option<PairKey>,
    /// The host at the other end, from its IP.
    pub(crate) remote_host: Option<usize>,
    /// Decodes what this host transmitted.
    tx: Decoder,
    /// Decodes what this host received.
    rx: Decoder,
    pub(crate) tx_first: First,
    pub(crate) rx_first: First,
    /// The node asked for the close, or retired it as a merged duplicate
    /// (`Event::DuplicateRetired`): it no longer carries the peer.
    pub(crate) closing: bool,
    /// The remote id, while this host considers the connection established.
    pub(crate) established: Option<PeerId>,
    /// Private mode: Noise messages instead of frames.
    pub(crate) noise: Option<NoiseTrack>,
    /// Intruders scenario: the intruder at the other end, if one.
    pub(crate) intruder: Option<usize>,
    /// The node refused it (a protocol error was reported on it).
    pub(crate) refused: bool,
    /// Private dialer: what it transmitted, in order (the first chunks
    /// only), which the replaying intruder may replay.
    pub(crate) sent_log: Vec<Bytes>,
}

impl ConnTrack {
    pub(crate) fn new(side: usize, limits: Limits) -> Self {
        ConnTrack {
            side,
            dialed: None,
            key: None,
            remote_host: None,
            tx: Decoder::new(limits),
            rx: Decoder::new(limits),
            tx_first: First::Pending,
            rx_first: First::Pending,
            closing: false,
            established: None,
            noise: None,
            intruder: None,
            refused: false,
            sent_log: Vec::new(),
        }
    }

    /// A connection of a private node.
    pub(crate) fn private(side: usize, limits: Limits) -> Self {
        let mut t = ConnTrack::new(side, limits);
        t.noise = Some(NoiseTrack::default());
        t
    }

    /// Whether the handshake completed on this connection, from this
    /// host's side: it sent its own hello, got another id's hello, and has
    /// not asked to close it.
    pub(crate) fn handshaked(&self, own: &PeerId) -> Option<PeerId> {
        if self.closing {
            return None;
        }
        if let Some(n) = &self.noise {
            // Private: the Noise handshake's messages went both ways, then
            // at least one transport message came in (the remote's hello;
            // ours may be output after the node's event), and the node
            // says which id it established here.
            let ours = handshake_sent(self.side);
            let theirs = handshake_sent(1 - self.side);
            let done = n.tx.messages >= ours && n.rx.messages > theirs;
            return n.claimed.clone().filter(|id| done && id != own);
        }
        match (&self.tx_first, &self.rx_first) {
            (First::Hello(ours), First::Hello(theirs))
                if ours == own.as_str() && theirs != own.as_str() =>
            {
                PeerId::parse(theirs).ok()
            }
            _ => None,
        }
    }

    /// Decodes transmitted bytes; returns the frames, or the decode error
    /// text if the node sent something that is not a valid frame sequence.
    pub(crate) fn decode_tx(&mut self, data: &Bytes) -> Result<Vec<Frame>, String> {
        let side = self.side;
        if let Some(n) = &mut self.noise {
            // Private: the node's own framing must be Noise framing, its
            // handshake messages of their fixed lengths (an empty record
            // is what a listener answers a plaintext dialer with).
            let before = n.tx.messages;
            for (i, len) in n.tx.feed(data).into_iter().enumerate() {
                let idx = before + i;
                let want = match (side, idx) {
                    (DIALER, 0) => Some(48..=48),
                    (DIALER, 1) => Some(64..=64),
                    (_, 0) => Some(if len == 0 { 0..=0 } else { 96..=96 }),
                    _ => Some(16..=65535),
                };
                if want.is_some_and(|w| !w.contains(&len)) {
                    return Err(format!("Noise message {idx} of {len} bytes"));
                }
            }
            return Ok(Vec::new());
        }
        let frames = drain(&mut self.tx, data)?;
        if self.tx_first == First::Pending {
            if let Some(f) = frames.first() {
                self.tx_first = First::of(f);
            }
        }
        Ok(frames)
    }

    /// Decodes received bytes.
    pub(crate) fn decode_rx(&mut self, data: &Bytes) -> Result<Vec<Frame>, String> {
        if let Some(n) = &mut self.noise {
            // Whatever arrived is compared byte for byte with what the
            // other end sent (when it is watched); only counted here.
            n.rx.feed(data);
            return Ok(Vec::new());
        }
        let frames = drain(&mut self.rx, data)?;
        if self.rx_first == First::Pending {
            if let Some(f) = frames.first() {
                self.rx_first = First::of(f);
            }
        }
        Ok(frames)
    }
}

fn drain(dec: &mut Decoder, data: &Bytes) -> Result<Vec<Frame>, String> {
    dec.feed(data.clone());
    let mut out = Vec::new();
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// One direction of a paired connection: what was sent and not yet
/// matched by what arrived.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    bytes: VecDeque<Bytes>,
    /// Bytes of the front chunk already matched.
    offset: usize,
    frames: VecDeque<Frame>,
    /// A mismatch was reported; stop comparing this direction.
    pub(crate) broken: bool,
}

impl Flow {
    /// Queues what the sending end transmitted.
    pub(crate) fn sent(&mut self, data: &Bytes, frames: Vec<Frame>) {
        if self.broken {
            return;
        }
        self.bytes.push_back(data.clone());
        self.frames.extend(frames);
    }

    /// Matches what the receiving end got against what was sent. Returns a
    /// description of the first difference.
    pub(crate) fn received(&mut self, data: &[u8], frames: &[Frame]) -> Result<(), String> {
        if self.broken {
            return Ok(());
        }
        let mut rest = data;
        let mut at = 0usize;
        while !rest.is_empty() {
            let Some(front) = self.bytes.front() else {
                self.broken = true;
                return Err(format!("received {} bytes more than were sent", rest.len()));
            };
            let avail = &front[self.offset..];
            let n = avail.len().min(rest.len());
            if avail[..n] != rest[..n] {
                let i = avail[..n]
                    .iter()
                    .zip(&rest[..n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.broken = true;
                return Err(format!(
                    "byte {} of this read differs: sent {:#04x}, received {:#04x}",
                    at + i,
                    avail[i],
                    rest[i]
                ));
            }
            rest = &rest[n..];
            at += n;
            self.offset += n;
            if self.offset == front.len() {
                self.bytes.pop_front();
                self.offset = 0;
            }
        }
        for f in frames {
            match self.frames.pop_front() {
                Some(sent) if sent == *f => {}
                Some(sent) => {
                    self.broken = true;
                    return Err(format!(
                        "frame decoded as {} but sent as {}",
                        show(f),
                        show(&sent)
                    ));
                }
                None => {
                    self.broken = true;
                    return Err(format!("frame {} decoded but never sent", show(f)));
                }
            }
        }
        Ok(())
    }
}

/// A short rendering of a frame for reports.
fn show(f: &Frame) -> String {
    match f {
        Frame::Line(l) => {
            let mut s: String = l.chars().take(60).collect();
            if l.chars().count() > 60 {
                s.push('…');
            }
            format!("line {s:?}")
        }
        Frame::Bytes(b) => format!("{} payload bytes", b.len()),
    }
}

/// Both ends of one simulated TCP connection.
#[derive(Debug, Default)]
pub(crate) struct Pair {
    /// (host, life, conn) of each end while attached; index [`DIALER`] or
    /// [`LISTENER`].
    pub(crate) ends: [Option<(usize, u32, ConnId)>; 2],
    /// Whether each end was ever attached (received bytes are only
    /// compared when the sending end was watched from the start).
    pub(crate) ever: [bool; 2],
    /// Flows, indexed by the sending end.
    pub(crate) flows: [Flow; 2],
    /// Either end closed or asked to close.
    pub(crate) closed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_accepts_any_split_and_rejects_a_flipped_byte() {
        let limits = Limits::default();
        let mut sender = ConnTrack::new(DIALER, limits);
        let mut receiver = ConnTrack::new(LISTENER, limits);
        let mut flow = Flow::default();
        let sent = Bytes::from_static(b"abc:n\nPING\nBYTES:3\nxyz");
        flow.sent(&sent, sender.decode_tx(&sent).unwrap());
        for part in [&b"abc:"[..], b"n\nPI", b"NG\nBYTES:3\nx", b"yz"] {
            let part = Bytes::copy_from_slice(part);
            let frames = receiver.decode_rx(&part).unwrap();
            flow.received(&part, &frames).unwrap();
        }
        assert_eq!(sender.tx_first, First::Hello("abc".into()));
        assert_eq!(receiver.rx_first, First::Hello("abc".into()));

        let more = Bytes::from_static(b"hello\n");
        flow.sent(&more, sender.decode_tx(&more).unwrap());
        let bad = Bytes::from_static(b"hellp\n");
        let frames = receiver.decode_rx(&bad).unwrap();
        assert!(flow
            .received(&bad, &frames)
            .unwrap_err()
            .contains("differs"));
        assert!(flow.broken);
    }

    #[test]
    fn refusals_are_not_hellos() {
        assert_eq!(First::of(&Frame::Line("DUPLICATE".into())), First::Other);
        assert_eq!(First::of(&Frame::Line("MAX_PEERS".into())), First::Other);
        assert_eq!(
            First::of(&Frame::Line("ab:c:d".into())),
            First::Hello("ab".into())
        );
    }
}
