//! The `session` target: the Noise session layer
//! ([`p2p_core::session::Session`], PROTOCOL.md section 7.4) fed an honest
//! private stream that the input edits (bits flipped, bytes inserted or
//! deleted, segments replayed or swapped: messages in any order) and cuts
//! into any read splits, in either role.
//!
//! An honest initiator and responder (fixed keys and seeds) first run a
//! whole exchange: the handshake, then the input's plaintext messages from
//! the honest side. The victim is a fresh session of the other role with
//! the same seed as its honest twin, so the unedited stream is valid for
//! it. Checks, for every input:
//! - nothing reaches the decoder (`poll_plain`) before the handshake
//!   completes, and the peer's key is not taken before then either;
//! - what is delivered is always whole honest messages, in order: a
//!   tampered, replayed or reordered message is never delivered;
//! - an unedited stream, in any split, delivers every message and no error;
//! - once a read fails, every later read fails and delivers nothing;
//! - the bytes held never exceed one Noise message plus the read.

use bytes::Bytes;
use p2p_core::session::{Keys, Session, MAX_MESSAGE};
use p2p_core::SessionError;

use crate::common::{Reader, Writer};

const PSK: [u8; 32] = [0x5a; 32];
const INITIATOR_KEY: [u8; 32] = [1; 32];
const RESPONDER_KEY: [u8; 32] = [2; 32];
const INITIATOR_SEED: [u8; 32] = [3; 32];
const RESPONDER_SEED: [u8; 32] = [4; 32];

/// One edit of the honest stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Flips bit `bit % 8` of the byte at `at` (modulo the stream length).
    Flip {
        /// Where.
        at: u16,
        /// Which bit.
        bit: u8,
    },
    /// Inserts bytes at `at`.
    Insert {
        /// Where.
        at: u16,
        /// What.
        data: Vec<u8>,
    },
    /// Deletes `len` bytes at `at`.
    Delete {
        /// Where.
        at: u16,
        /// How many.
        len: u16,
    },
    /// Copies `len` bytes from `from` to `at` (a replay).
    Replay {
        /// Source.
        from: u16,
        /// Length.
        len: u16,
        /// Destination.
        at: u16,
    },
}

impl Edit {
    fn read(r: &mut Reader) -> Edit {
        match r.u8() % 4 {
            0 => Edit::Flip {
                at: r.u16(),
                bit: r.u8(),
            },
            1 => Edit::Insert {
                at: r.u16(),
                data: r.short_bytes(),
            },
            2 => Edit::Delete {
                at: r.u16(),
                len: r.u16(),
            },
            _ => Edit::Replay {
                from: r.u16(),
                len: r.u16(),
                at: r.u16(),
            },
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Edit::Flip { at, bit } => w.u8(0).u16(*at).u8(*bit),
            Edit::Insert { at, data } => w.u8(1).u16(*at).short_bytes(data),
            Edit::Delete { at, len } => w.u8(2).u16(*at).u16(*len),
            Edit::Replay { from, len, at } => w.u8(3).u16(*from).u16(*len).u16(*at),
        };
    }

    /// Applies the edit; false if it left the stream as it was.
    fn apply(&self, s: &mut Vec<u8>) -> bool {
        let pos = |at: u16, n: usize| usize::from(at) % (n + 1);
        match self {
            Edit::Flip { at, bit } => {
                if s.is_empty() {
                    return false;
                }
                let i = usize::from(*at) % s.len();
                s[i] ^= 1 << (bit % 8);
                true
            }
            Edit::Insert { at, data } => {
                let i = pos(*at, s.len());
                s.splice(i..i, data.iter().copied());
                !data.is_empty()
            }
            Edit::Delete { at, len } => {
                let i = pos(*at, s.len());
                let end = (i + usize::from(*len)).min(s.len());
                s.drain(i..end);
                end > i
            }
            Edit::Replay { from, len, at } => {
                let i = pos(*from, s.len());
                let end = (i + usize::from(*len)).min(s.len());
                let seg: Vec<u8> = s[i..end].to_vec();
                let j = pos(*at, s.len());
                s.splice(j..j, seg);
                end > i
            }
        }
    }
}

/// One `session` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInput {
    /// Bit 0: the victim is the initiator (it reads the responder's
    /// stream); else the responder.
    pub setup: u8,
    /// Sizes of the honest side's plaintext messages (each `size * 37`
    /// bytes, so that one reaches past a Noise message).
    pub messages: Vec<u16>,
    /// Read sizes, used in turn (0 is an empty read).
    pub reads: Vec<u8>,
    /// Edits of the honest stream, in order.
    pub edits: Vec<Edit>,
}

impl SessionInput {
    fn read(data: &[u8]) -> SessionInput {
        let mut r = Reader::new(data);
        let setup = r.u8();
        let n = usize::from(r.u8() % 5);
        let messages = (0..n).map(|_| r.u16() % 4000).collect();
        let reads = r.short_bytes();
        let mut edits = Vec::new();
        while !r.is_empty() && edits.len() < 16 {
            edits.push(Edit::read(&mut r));
        }
        SessionInput {
            setup,
            messages,
            reads,
            edits,
        }
    }

    /// The raw bytes that [`check_session`] reads as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.setup).u8(self.messages.len() as u8);
        for m in &self.messages {
            w.u16(*m);
        }
        w.short_bytes(&self.reads);
        for e in &self.edits {
            e.encode(&mut w);
        }
        w.out
    }
}

/// What a `session` input reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The victim completed the handshake.
    pub completed: bool,
    /// Honest messages delivered, of how many sent.
    pub delivered: usize,
    /// Messages the honest side sent.
    pub sent: usize,
    /// Whether the stream was edited at all.
    pub edited: bool,
    /// The error that stopped the victim, if any.
    pub error: Option<SessionError>,
}

fn session(initiator: bool) -> Session {
    let (key, seed) = if initiator {
        (INITIATOR_KEY, INITIATOR_SEED)
    } else {
        (RESPONDER_KEY, RESPONDER_SEED)
    };
    Session::new(initiator, Keys::new(PSK, key, None), seed).expect("valid session")
}

fn payload(i: usize, size: u16) -> Vec<u8> {
    let len = usize::from(size) * 37;
    (0..len)
        .map(|k| (k as u8) ^ (i as u8).wrapping_mul(31))
        .collect()
}

/// The honest stream the victim reads, and its plaintext messages (each
/// split into the pieces the wire carries them in).
fn honest(victim_is_initiator: bool, messages: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut i = session(true);
    let mut r = session(false);
    let mut stream = Vec::new();
    for _ in 0..3 {
        while let Some(w) = i.poll_wire() {
            if !victim_is_initiator {
                stream.extend_from_slice(&w);
            }
            r.receive(&w).expect("honest handshake");
        }
        while let Some(w) = r.poll_wire() {
            if victim_is_initiator {
                stream.extend_from_slice(&w);
            }
            i.receive(&w).expect("honest handshake");
        }
    }
    assert!(
        i.is_transport() && r.is_transport(),
        "honest handshake done"
    );
    let sender = if victim_is_initiator { &mut r } else { &mut i };
    let mut pieces = Vec::new();
    for m in messages {
        sender.send(Bytes::copy_from_slice(m));
        while let Some(w) = sender.poll_wire() {
            stream.extend_from_slice(&w);
        }
        if m.is_empty() {
            pieces.push(Vec::new());
        }
        for chunk in m.chunks(MAX_MESSAGE - 16) {
            pieces.push(chunk.to_vec());
        }
    }
    (stream, pieces)
}

/// Runs the `session` check on fuzzer bytes.
///
/// # Panics
/// When an invariant in the module docs breaks.
pub fn check_session(data: &[u8]) -> SessionSummary {
    let input = SessionInput::read(data);
    let victim_is_initiator = input.setup & 1 == 1;
    let messages: Vec<Vec<u8>> = input
        .messages
        .iter()
        .enumerate()
        .map(|(i, &s)| payload(i, s))
        .collect();
    let (mut stream, pieces) = honest(victim_is_initiator, &messages);
    let original = stream.clone();
    let mut edited = false;
    for e in &input.edits {
        edited |= e.apply(&mut stream);
    }
    let edited = edited && stream != original;

    let mut victim = session(victim_is_initiator);
    // The initiator's own first message is not part of what it reads.
    while victim.poll_wire().is_some() {}
    let mut delivered: Vec<u8> = Vec::new();
    let mut error = None;
    let mut rest = &stream[..];
    let mut next = 0;
    let cycle = input.reads.iter().any(|&r| r != 0);
    let mut reads = 0;
    while !rest.is_empty() || reads == 0 {
        reads += 1;
        let n = if cycle {
            let n = usize::from(input.reads[next % input.reads.len()]);
            next += 1;
            n.min(rest.len())
        } else {
            rest.len()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let r = victim.receive(chunk);
        if error.is_some() {
            assert!(r.is_err(), "a failed session took more bytes");
        }
        if let Err(e) = r {
            error.get_or_insert(e);
        }
        while victim.poll_wire().is_some() {}
        if !victim.is_transport() {
            assert!(
                victim.poll_plain().is_none(),
                "plaintext before the handshake completed"
            );
            assert!(
                victim_is_initiator || error.is_some() || victim.remote_id().is_none(),
                "responder took the peer's key before message 3"
            );
        }
        assert!(
            victim.buffered() <= 2 + MAX_MESSAGE + chunk.len(),
            "{} bytes held after a read of {}",
            victim.buffered(),
            chunk.len()
        );
        while let Some(p) = victim.poll_plain() {
            assert!(error.is_none(), "delivered from a failed read");
            delivered.extend_from_slice(&p);
        }
        if rest.is_empty() {
            break;
        }
    }
    // Whatever was delivered is whole honest pieces, in order.
    let mut at = 0;
    let mut count = 0;
    let honest_plain: Vec<u8> = pieces.concat();
    assert!(
        honest_plain.starts_with(&delivered),
        "delivered plaintext the honest side never sent (or out of order)"
    );
    for p in &pieces {
        if at + p.len() <= delivered.len() {
            at += p.len();
            count += 1;
        }
    }
    assert_eq!(at, delivered.len(), "a partial Noise message was delivered");
    if !edited {
        assert_eq!(error, None, "an honest stream failed");
        assert!(
            victim.is_transport(),
            "an honest handshake did not complete"
        );
        assert_eq!(delivered, honest_plain, "an honest stream lost plaintext");
    }
    SessionSummary {
        completed: victim.is_transport(),
        delivered: count,
        sent: messages.len(),
        edited,
        error,
    }
}
