//! The session layer of private meshes (docs/PROTOCOL.md §7.4): a Noise
//! `XXpsk0` handshake before the first byte of the line protocol, then
//! every byte of it inside Noise transport messages. One [`Session`] per
//! connection sits between the bytes the driver reports and the line
//! decoder, and between the node's `Transmit`s and the wire. snow does no
//! I/O; every key, ephemeral and nonce comes from the seed a session is
//! built with (drawn from the node's generator), so replay by seed stays
//! exact.
//!
//! Wire framing is standard Noise framing: a 2-byte big-endian length, then
//! that many bytes of one Noise message (at most [`MAX_MESSAGE`]).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, TransportState};
use thiserror::Error;

use crate::PeerId;

/// The Noise protocol name (docs/PROTOCOL.md §7.4 says why psk0).
pub const PATTERN: &str = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message, tag included (the Noise spec's limit).
pub const MAX_MESSAGE: usize = 65535;
/// Authentication tag of every encrypted Noise payload.
const TAG: usize = 16;
/// Largest plaintext of one transport message.
pub const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG;
/// Lengths of the three handshake messages (empty payloads): `psk, e`
/// (32 + tag, since psk0 keys the payload), `e, ee, s, es` (32 + 48 + tag),
/// `s, se` (48 + tag).
const MSG1_LEN: usize = 48;
const MSG2_LEN: usize = 96;
const MSG3_LEN: usize = 64;

/// Why the session layer closed a connection. Each closes exactly that
/// connection; it is reported as [`ProtocolError::Session`](crate::ProtocolError::Session).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionError {
    /// A handshake message did not authenticate: the peer has another
    /// network key, or is not a private node.
    #[error("Noise handshake failed: the peer has another network key or is not a private node")]
    WrongKeyOrNotPrivate,
    /// The remote closed during the Noise handshake, before it completed:
    /// what a listener with another network key (or a plaintext node) does.
    #[error(
        "the peer closed during the Noise handshake: it has another network key or no network key"
    )]
    ClosedInHandshake,
    /// A private node received the line protocol instead of a Noise
    /// handshake.
    #[error("peer speaks the plaintext protocol; this node is private (has a network key)")]
    PlaintextPeer,
    /// A plaintext node received a Noise handshake.
    #[error("peer speaks the private-mesh protocol; this node has no network key")]
    NoisePeer,
    /// A transport message did not authenticate: it was altered, replayed
    /// or reordered in transit.
    #[error("a transport message failed authentication (tampered)")]
    Tampered,
    /// The hello's id is not the one derived from the peer's static key.
    #[error("hello id {claimed:?} is not the id {actual} of the peer's key")]
    IdMismatch {
        /// The id in the hello (shortened).
        claimed: String,
        /// The id derived from the peer's static key.
        actual: PeerId,
    },
    /// The hello claimed the id of a peer we know under another key.
    #[error("impersonation attempt: hello claims the id of known peer {claimed} with another key {actual}")]
    Impersonation {
        /// The known peer's id.
        claimed: PeerId,
        /// The id of the key actually shown.
        actual: PeerId,
    },
    /// The peer's key-derived id is not on the trust list.
    #[error("peer {id} is not on the trust list")]
    NotTrusted {
        /// The peer's key-derived id.
        id: PeerId,
    },
    /// A Noise message longer or shorter than its place allows.
    #[error("Noise message of {len} bytes where {expected} are allowed")]
    Oversized {
        /// Its length.
        len: usize,
        /// What was allowed there.
        expected: String,
    },
    /// Bytes that are not Noise framing (nor the line protocol).
    #[error("malformed Noise framing")]
    Malformed,
}

/// The keys a private node runs with, shared by its sessions.
#[derive(Clone)]
pub struct Keys {
    /// The network key (already stretched), as the Noise PSK.
    psk: [u8; 32],
    /// Our static x25519 private key.
    private: [u8; 32],
    /// Only these key-derived ids may connect, if set (and our own, so
    /// that a self-connection is still recognised as one).
    trust: Option<BTreeSet<PeerId>>,
    /// Our key-derived id.
    id: PeerId,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("id", &self.id)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from a network key, our static private key and a trust list.
    pub fn new(psk: [u8; 32], private: [u8; 32], trust: Option<BTreeSet<PeerId>>) -> Arc<Keys> {
        Arc::new(Keys {
            psk,
            private,
            trust,
            id: peer_id_of_private(&private),
        })
    }

    /// Our key-derived id.
    pub fn id(&self) -> PeerId {
        self.id.clone()
    }
}

/// The x25519 public key of `private` (clamped as x25519 does).
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Invariant: the default resolver is built with curve25519.
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(private);
        out.copy_from_slice(dh.pubkey());
    }
    out
}

/// The peer id of a static public key in private mode: the first 16 bytes
/// of its SHA-256, as 32 lowercase hex characters (the shape of the
/// reference's random ids).
pub fn peer_id_of(public: &[u8; 32]) -> PeerId {
    let digest = Sha256::digest(public);
    // Invariant: 32 hex digits are a valid id.
    PeerId::parse(&hex::encode(&digest[..16])).expect("hex id is valid")
}

/// The peer id that the static private key `private` has in private mode.
pub fn peer_id_of_private(private: &[u8; 32]) -> PeerId {
    peer_id_of(&public_key(private))
}

/// What a private node shows of its network key on the LAN, so that only
/// members dial each other: 16 hex characters of a domain-separated
/// SHA-256 of the (already Argon2id-stretched) key. It reveals nothing
/// usable: guessing a passphrase from it costs the stretching per guess.
pub fn network_fingerprint(network_key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"p2p-mesh lan fingerprint v1\0");
    h.update(network_key);
    hex::encode(&h.finalize()[..8])
}

/// snow's default primitives, with an RNG seeded by the node (never the OS).
struct SeededResolver {
    seed: [u8; 32],
}

struct SeededRng(ChaCha20Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

enum State {
    Handshake(Box<HandshakeState>),
    Transport(Box<TransportState>),
    /// Broken; takes nothing more.
    Failed,
}

/// One connection's Noise session: handshaking, then transport.
pub struct Session {
    state: State,
    initiator: bool,
    keys: Arc<Keys>,
    /// Received bytes not yet a whole Noise message.
    inbuf: BytesMut,
    /// Handshake messages received so far.
    received: usize,
    /// Plaintext handed to [`Session::send`] before the handshake completed.
    held: Vec<Bytes>,
    /// Framed ciphertext to transmit, with the plaintext bytes it carries.
    wire: VecDeque<(Bytes, u64)>,
    /// Decrypted plaintext for the line decoder.
    plain: VecDeque<Bytes>,
    /// The peer's key-derived id, once its static key is known.
    remote_id: Option<PeerId>,
    /// Ciphertext transmitted and not yet reported flushed: (cipher bytes,
    /// plaintext bytes, cipher bytes of it flushed, plaintext reported).
    inflight: VecDeque<(u64, u64, u64, u64)>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Handshake(_) => "handshake",
            State::Transport(_) => "transport",
            State::Failed => "failed",
        };
        f.debug_struct("Session")
            .field("state", &state)
            .field("initiator", &self.initiator)
            .field("remote_id", &self.remote_id)
            .field("buffered", &self.inbuf.len())
            .finish_non_exhaustive()
    }
}

fn frame(msg: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + msg.len());
    // Invariant: callers pass at most MAX_MESSAGE bytes.
    out.extend_from_slice(&u16::try_from(msg.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(msg);
    out.freeze()
}

impl Session {
    /// A session in `initiator` (dialer) or responder role, its randomness
    /// from `seed`. The initiator's first message is queued at once.
    pub fn new(initiator: bool, keys: Arc<Keys>, seed: [u8; 32]) -> Result<Session, SessionError> {
        // Invariant: PATTERN is a valid name and the resolver has its
        // primitives; the errors are mapped anyway rather than unwrapped.
        let params: NoiseParams = PATTERN.parse().map_err(|_| SessionError::Malformed)?;
        let builder = snow::Builder::with_resolver(params, Box::new(SeededResolver { seed }))
            .local_private_key(&keys.private)
            .and_then(|b| b.psk(0, &keys.psk))
            .map_err(|_| SessionError::Malformed)?;
        let hs = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(|_| SessionError::Malformed)?;
        let mut s = Session {
            state: State::Handshake(Box::new(hs)),
            initiator,
            keys,
            inbuf: BytesMut::new(),
            received: 0,
            held: Vec::new(),
            wire: VecDeque::new(),
            plain: VecDeque::new(),
            remote_id: None,
            inflight: VecDeque::new(),
        };
        if initiator {
            s.write_handshake()?;
        }
        Ok(s)
    }

    /// Whether the handshake completed.
    pub fn is_transport(&self) -> bool {
        matches!(self.state, State::Transport(_))
    }

    /// The peer's key-derived id, once its static key arrived.
    pub fn remote_id(&self) -> Option<&PeerId> {
        self.remote_id.as_ref()
    }

    /// Received bytes held for an incomplete message.
    pub fn buffered(&self) -> usize {
        self.inbuf.len() + self.plain.iter().map(Bytes::len).sum::<usize>()
    }

    fn write_handshake(&mut self) -> Result<(), SessionError> {
        let State::Handshake(hs) = &mut self.state else {
            return Ok(());
        };
        let mut buf = [0u8; 128];
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|_| SessionError::Malformed)?;
        self.wire.push_back((frame(&buf[..n]), 0));
        Ok(())
    }

    /// Plaintext to send: sealed now, or held until the handshake completes.
    pub fn send(&mut self, data: Bytes) {
        match &self.state {
            State::Transport(_) => self.seal(&data),
            State::Handshake(_) => self.held.push(data),
            State::Failed => {}
        }
    }

    /// Seals `data` into one wire chunk of as many transport messages as
    /// it needs (each at most [`MAX_PLAINTEXT`] of plaintext).
    fn seal(&mut self, data: &[u8]) {
        let State::Transport(ts) = &mut self.state else {
            return;
        };
        let pieces = data.len().div_ceil(MAX_PLAINTEXT).max(1);
        let mut out = BytesMut::with_capacity(data.len() + pieces * (2 + TAG));
        let mut buf = vec![0u8; data.len().min(MAX_PLAINTEXT) + TAG];
        let mut chunks = data.chunks(MAX_PLAINTEXT);
        let empty: &[u8] = &[];
        for _ in 0..pieces {
            let piece = chunks.next().unwrap_or(empty);
            match ts.write_message(piece, &mut buf) {
                Ok(n) => {
                    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
                    out.extend_from_slice(&buf[..n]);
                }
                // Only a nonce overflow (2^64 messages) can fail here.
                Err(_) => {
                    self.state = State::Failed;
                    return;
                }
            }
        }
        self.wire.push_back((out.freeze(), data.len() as u64));
    }

    /// The next framed ciphertext to transmit and the plaintext bytes in it.
    /// Counted for [`Session::flushed`] from here on.
    pub fn poll_wire(&mut self) -> Option<Bytes> {
        let (data, plain) = self.wire.pop_front()?;
        self.inflight.push_back((data.len() as u64, plain, 0, 0));
        Some(data)
    }

    /// The next decrypted plaintext for the line decoder.
    pub fn poll_plain(&mut self) -> Option<Bytes> {
        self.plain.pop_front()
    }

    /// Translates `cipher` bytes reported flushed into the plaintext bytes
    /// they carried. Reports over a whole transmission add up to its
    /// plaintext exactly; a partial flush reports its share rounded down.
    pub fn flushed(&mut self, mut cipher: u64) -> u64 {
        let mut plain = 0;
        while cipher > 0 {
            let Some((c, p, done, reported)) = self.inflight.front_mut() else {
                break;
            };
            let take = cipher.min(*c - *done);
            *done += take;
            cipher -= take;
            let due = if *done == *c {
                *p
            } else {
                // u128: no overflow for any lengths.
                (u128::from(*p) * u128::from(*done) / u128::from(*c)) as u64
            };
            plain += due - *reported;
            *reported = due;
            if *done == *c {
                self.inflight.pop_front();
            }
        }
        plain
    }

    /// Takes received bytes, in any split. Complete messages are processed
    /// in order; the first that fails breaks the session for good, and
    /// nothing of that read (or after it) is delivered.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if matches!(self.state, State::Failed) {
            return Err(SessionError::Malformed);
        }
        // Recognise the wrong protocol from the first byte: a Noise message
        // here is at most 96 bytes, so its length starts with 0x00, which
        // no line-protocol byte stream does.
        if self.received == 0 && self.inbuf.is_empty() {
            if let Some(&b) = data.first() {
                if b != 0 {
                    self.state = State::Failed;
                    if !(b.is_ascii_graphic() || b == b' ') {
                        return Err(SessionError::Malformed);
                    }
                    // A plaintext dialer's hello: answer with an empty
                    // Noise-framed record (`00 00`), which reveals neither
                    // key nor id, so that it too reports a clear reason
                    // (its first byte 0x00 reads as `NoisePeer`).
                    if !self.initiator {
                        self.wire.push_back((Bytes::from_static(&[0, 0]), 0));
                    }
                    return Err(SessionError::PlaintextPeer);
                }
            }
        }
        let r = self.receive_inner(data);
        if r.is_err() {
            // Nothing of a failing read is delivered, not even the
            // messages before the bad one.
            self.state = State::Failed;
            self.inbuf.clear();
            self.plain.clear();
        }
        r
    }

    fn receive_inner(&mut self, mut data: &[u8]) -> Result<(), SessionError> {
        loop {
            // Never hold more than one message plus one read: take from
            // `data` only what completes the message being assembled.
            if self.inbuf.len() < 2 {
                let need = (2 - self.inbuf.len()).min(data.len());
                self.inbuf.extend_from_slice(&data[..need]);
                data = &data[need..];
                if self.inbuf.len() < 2 {
                    return Ok(());
                }
                self.check_len()?;
            }
            let len = usize::from(u16::from_be_bytes([self.inbuf[0], self.inbuf[1]]));
            let need = (2 + len - self.inbuf.len()).min(data.len());
            self.inbuf.extend_from_slice(&data[..need]);
            data = &data[need..];
            if self.inbuf.len() < 2 + len {
                return Ok(());
            }
            let msg = self.inbuf.split().freeze();
            self.on_message(&msg[2..])?;
        }
    }

    /// Checks a message's length as soon as it is known.
    fn check_len(&self) -> Result<(), SessionError> {
        let len = usize::from(u16::from_be_bytes([self.inbuf[0], self.inbuf[1]]));
        let (ok, expected) = match self.state {
            State::Handshake(_) if !self.initiator && self.received == 0 => {
                (len == MSG1_LEN, MSG1_LEN.to_string())
            }
            State::Handshake(_) if self.initiator => (len == MSG2_LEN, MSG2_LEN.to_string()),
            State::Handshake(_) => (len == MSG3_LEN, MSG3_LEN.to_string()),
            _ => (len >= TAG, format!("{TAG} to {MAX_MESSAGE}")),
        };
        if ok {
            Ok(())
        } else {
            Err(SessionError::Oversized { len, expected })
        }
    }

    fn on_message(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        match &mut self.state {
            State::Handshake(hs) => {
                let mut payload = [0u8; 128];
                hs.read_message(msg, &mut payload)
                    .map_err(|_| SessionError::WrongKeyOrNotPrivate)?;
                self.received += 1;
                if let Some(rs) = hs.get_remote_static() {
                    let mut key = [0u8; 32];
                    if rs.len() == 32 {
                        key.copy_from_slice(rs);
                        self.remote_id = Some(peer_id_of(&key));
                    }
                }
                if let Some(id) = &self.remote_id {
                    if let Some(trust) = &self.keys.trust {
                        if !trust.contains(id) && *id != self.keys.id {
                            return Err(SessionError::NotTrusted { id: id.clone() });
                        }
                    }
                }
                if !hs.is_handshake_finished() && hs.is_my_turn() {
                    self.write_handshake()?;
                }
                self.maybe_finish()
            }
            State::Transport(ts) => {
                let mut buf = vec![0u8; msg.len()];
                let n = ts
                    .read_message(msg, &mut buf)
                    .map_err(|_| SessionError::Tampered)?;
                buf.truncate(n);
                if n > 0 {
                    self.plain.push_back(Bytes::from(buf));
                }
                Ok(())
            }
            State::Failed => Err(SessionError::Malformed),
        }
    }

    fn maybe_finish(&mut self) -> Result<(), SessionError> {
        let State::Handshake(hs) = &self.state else {
            return Ok(());
        };
        if !hs.is_handshake_finished() {
            return Ok(());
        }
        let State::Handshake(hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Ok(());
        };
        let ts = hs
            .into_transport_mode()
            .map_err(|_| SessionError::Malformed)?;
        self.state = State::Transport(Box::new(ts));
        for data in std::mem::take(&mut self.held) {
            self.seal(&data);
        }
        Ok(())
    }
}

/// A 32-byte seed from the node's generator.
pub(crate) fn draw_seed(rng: &mut impl RngCore) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}
