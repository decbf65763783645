//! The connections component: every open connection, its decoder and its
//! handshake state (docs/PROTOCOL.md §2), one deadline per connection
//! (handshake, first-frame probation, idle timeout, end of a drain), and
//! the merge of simultaneous connects. It writes the shared peer table when
//! a handshake completes or a peer is lost; what that means for the other
//! components, the node decides.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{Decoder, Limits, Message, Phase};
use crate::io::{Outbox, Output};
use crate::peers::{Peer, Peers};
use crate::session::{Keys, Session, SessionError};
use crate::timer::TimerTable;
use crate::{Addr, ConnId, DisconnectReason, Event, PeerId, ProtocolError, RejectReason};

/// Where a connection is.
#[derive(Debug, Clone)]
pub(crate) enum ConnState {
    /// We asked the driver to dial `addr`.
    Dialing { addr: Addr },
    /// We sent hello and `LISTEN:`; waiting for the hello back.
    AwaitHelloReply { addr: Addr },
    /// Accepted; waiting for the dialer's hello.
    AwaitHello,
    /// The listener answered `MAX_PEERS`; we read the `PEERS:` line it may
    /// add before closing, to find nodes with free slots.
    Refused,
    /// Handshake done.
    Established {
        peer: PeerId,
        /// Listener side: the next frame may be the dialer's `LISTEN:`.
        await_listen: bool,
        /// The peer has sent a frame since the handshake.
        proven: bool,
    },
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) state: ConnState,
    decoder: Decoder,
    /// The address we dialed, or the one the remote advertised.
    pub(crate) addr: Option<Addr>,
    remote: Option<SocketAddr>,
    /// When it opened, then when the handshake completed.
    opened_at: Instant,
    last_seen: Instant,
    /// The id from the hello, once received.
    pub(crate) hello_id: Option<PeerId>,
    pub(crate) name: Option<String>,
    /// A duplicate being closed: frames still count, nothing is sent on it.
    draining: bool,
    /// The connection kept instead of this draining one; this one is
    /// half-closed once the kept one is proven (see [`Connections::drain`]).
    drain_for: Option<ConnId>,
    /// Private mode: the Noise session under the line protocol.
    session: Option<Session>,
    /// Plaintext mode: whether any byte arrived yet (the first tells a
    /// Noise peer apart).
    fed: bool,
    /// Bytes received and written on the socket (ciphertext in private
    /// mode): what `/status` shows.
    bytes_in: u64,
    bytes_out: u64,
}

impl Conn {
    fn new(
        now: Instant,
        state: ConnState,
        addr: Option<Addr>,
        remote: Option<SocketAddr>,
        limits: Limits,
        session: Option<Session>,
    ) -> Conn {
        Conn {
            state,
            decoder: Decoder::new(limits),
            addr,
            remote,
            opened_at: now,
            last_seen: now,
            hello_id: None,
            name: None,
            draining: false,
            drain_for: None,
            session,
            fed: false,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn phase(&self) -> Phase {
        match &self.state {
            ConnState::Dialing { .. } | ConnState::AwaitHelloReply { .. } => Phase::AwaitHelloReply,
            ConnState::AwaitHello => Phase::AwaitHello,
            ConnState::Refused => Phase::Established,
            ConnState::Established {
                await_listen: true, ..
            } => Phase::AwaitListen,
            ConnState::Established { .. } => Phase::Established,
        }
    }

    /// Frames before `Connected` are a driver bug; ignore them.
    fn accepts_frames(&self) -> bool {
        !matches!(self.state, ConnState::Dialing { .. })
    }

    fn is_dialing(&self) -> bool {
        matches!(
            self.state,
            ConnState::Dialing { .. } | ConnState::AwaitHelloReply { .. }
        )
    }

    /// Whether the remote is on this machine (unknown counts as yes, so
    /// that loopback-only setups still share their addresses).
    pub(crate) fn remote_is_loopback(&self) -> bool {
        if let Some(r) = self.remote {
            return r.ip().is_loopback();
        }
        match self.addr.as_ref().and_then(|a| a.ip()) {
            Some(ip) => ip.is_loopback(),
            None => self.addr.is_none(),
        }
    }

    /// The peer this connection carried, or the dial it was.
    pub(crate) fn ended(self) -> Ended {
        match self.state {
            ConnState::Established { peer, .. } => Ended::Peer {
                peer,
                name: self.name,
            },
            ConnState::Dialing { addr } | ConnState::AwaitHelloReply { addr } => {
                Ended::Dial { addr }
            }
            ConnState::AwaitHello | ConnState::Refused => Ended::Nothing,
        }
    }
}

/// What a closed connection leaves for the other components.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It carried `peer` (maybe as a retired duplicate).
    Peer { peer: PeerId, name: Option<String> },
    /// It was a dial to `addr` that never completed its handshake.
    Dial { addr: Addr },
    /// A listener-side connection that never handshaked.
    Nothing,
}

/// The next thing a connection's bytes say.
#[derive(Debug)]
pub(crate) enum Next {
    /// A message, in the phase it arrived in.
    Message { phase: Phase, msg: Message },
    /// A `PEERS:` line on a connection refused with `MAX_PEERS`.
    Redirect(Vec<String>),
    /// Undecodable: the connection must be closed for it.
    Error(ProtocolError),
    /// Anything else on a refused connection: ignored.
    Ignored,
}

/// What a connection's deadline asks of the node.
#[derive(Debug)]
pub(crate) enum Expiry {
    /// Dealt with inside the component (a drain ended, a deadline moved).
    Handled,
    /// Close it for this error.
    Protocol(ConnId, ProtocolError),
    /// An established peer was silent for the peer timeout; the connection
    /// is closed already.
    Idle {
        conn: ConnId,
        peer: PeerId,
        name: Option<String>,
        silent_ms: u64,
    },
}

/// A handshake that completed.
#[derive(Debug)]
pub(crate) struct Established {
    /// Whether this connection now carries the peer (false: it is a
    /// duplicate being retired).
    pub(crate) kept: bool,
    /// Whether the peer was already established on another connection.
    pub(crate) merged: bool,
    /// The address the connection was dialed at, if any.
    pub(crate) addr: Option<Addr>,
}

/// Every open connection.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Our id, for the merge rule.
    me: PeerId,
    conns: BTreeMap<ConnId, Conn>,
    timers: TimerTable<ConnId>,
    next_conn: u64,
    limits: Limits,
    connect_timeout: Duration,
    peer_timeout: Duration,
    /// Private mode: the keys every session is built with.
    keys: Option<Arc<Keys>>,
    pub(crate) out: Outbox,
    /// Ciphertext the sessions produced on their own (handshake messages,
    /// held plaintext sealed at the handshake's end), ready for the wire:
    /// the node drains it before `out`, and does not seal it again.
    pub(crate) sealed: Outbox,
}

/// Longest peer name kept, in bytes (docs/PROTOCOL.md §2.2).
pub(crate) const MAX_NAME_LEN: usize = 64;

/// A peer's name cut to [`MAX_NAME_LEN`] bytes at a character boundary.
fn cap_name(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Connections {
    pub(crate) fn new(
        me: PeerId,
        limits: Limits,
        connect_timeout: Duration,
        peer_timeout: Duration,
        keys: Option<Arc<Keys>>,
    ) -> Self {
        Connections {
            me,
            conns: BTreeMap::new(),
            timers: TimerTable::default(),
            next_conn: 0,
            limits,
            connect_timeout,
            peer_timeout,
            keys,
            out: Outbox::default(),
            sealed: Outbox::default(),
        }
    }

    /// Whether connections are private (Noise sessions).
    pub(crate) fn is_private(&self) -> bool {
        self.keys.is_some()
    }

    /// A session for a new connection in private mode, from `seed`.
    fn session(&self, initiator: bool, seed: Option<[u8; 32]>) -> Option<Session> {
        let keys = self.keys.clone()?;
        // Invariant: Session::new fails only for an invalid pattern name or
        // a resolver without its primitives, both fixed at compile time.
        Some(Session::new(initiator, keys, seed.unwrap_or_default()).expect("valid Noise setup"))
    }

    /// Moves what `conn`'s session has for the wire to [`Connections::sealed`].
    fn drain_wire(sealed: &mut Outbox, conn: ConnId, session: &mut Session) {
        while let Some(data) = session.poll_wire() {
            sealed.transmit(conn, data);
        }
    }

    /// Private mode: seals `data` for `conn` and appends the ciphertext to
    /// `to` (nothing if the handshake is still running: it is held until
    /// then). Returns false, leaving `data` to the caller, for a plaintext
    /// connection.
    pub(crate) fn seal(&mut self, conn: ConnId, data: Bytes, to: &mut VecDeque<Output>) -> bool {
        if self.keys.is_none() {
            return false;
        }
        if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session.as_mut()) {
            s.send(data);
            while let Some(data) = s.poll_wire() {
                to.push_back(Output::Transmit { conn, data });
            }
        }
        // A connection already gone: nothing to send it on.
        true
    }

    /// `bytes` of `conn`'s wire bytes were flushed: the plaintext bytes
    /// they carried (the same number on a plaintext connection).
    pub(crate) fn flushed(&mut self, conn: ConnId, bytes: u64) -> u64 {
        let Some(c) = self.conns.get_mut(&conn) else {
            return bytes;
        };
        // Saturating: a driver may report any count (the fuzzers send u64::MAX).
        c.bytes_out = c.bytes_out.saturating_add(bytes);
        match c.session.as_mut() {
            Some(s) => s.flushed(bytes),
            None => bytes,
        }
    }

    /// Bytes received and written on `conn` so far, as on the socket.
    pub(crate) fn traffic(&self, conn: ConnId) -> (u64, u64) {
        self.conns
            .get(&conn)
            .map_or((0, 0), |c| (c.bytes_in, c.bytes_out))
    }

    /// Whether `conn` is a private connection whose Noise handshake has
    /// not completed.
    pub(crate) fn in_noise_handshake(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| c.session.as_ref())
            .is_some_and(|s| !s.is_transport())
    }

    /// Private mode: checks a hello's id against the id of the key the
    /// peer showed in the Noise handshake.
    pub(crate) fn check_hello(
        &self,
        conn: ConnId,
        claimed: &PeerId,
        peers: &Peers,
    ) -> Option<SessionError> {
        let actual = self.conns.get(&conn)?.session.as_ref()?.remote_id()?;
        if actual == claimed {
            return None;
        }
        if peers.contains(claimed) || *claimed == self.me {
            return Some(SessionError::Impersonation {
                claimed: claimed.clone(),
                actual: actual.clone(),
            });
        }
        Some(SessionError::IdMismatch {
            claimed: crate::truncate_for_report(claimed.as_str()),
            actual: actual.clone(),
        })
    }

    pub(crate) fn get(&self, conn: ConnId) -> Option<&Conn> {
        self.conns.get(&conn)
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held by connection decoders (bounded by the limits).
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.conns
            .values()
            .map(|c| c.decoder.buffered() + c.session.as_ref().map_or(0, Session::buffered))
            .sum()
    }

    pub(crate) fn dials_in_flight(&self) -> usize {
        self.conns.values().filter(|c| c.is_dialing()).count()
    }

    /// Whether the remote of `conn` is on this machine (see
    /// [`Conn::remote_is_loopback`]); an unknown connection counts as yes.
    pub(crate) fn is_local(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(|c| c.remote_is_loopback())
    }

    /// The peer carried by `conn`, if it is that peer's current connection.
    pub(crate) fn peer_of<'a>(&'a self, conn: ConnId, peers: &Peers) -> Option<&'a PeerId> {
        match &self.conns.get(&conn)?.state {
            ConnState::Established { peer, .. } if peers.is_current(peer, conn) => Some(peer),
            _ => None,
        }
    }

    fn alloc(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    /// A handle for a socket accepted after shutdown: closed at once.
    pub(crate) fn refuse_accept(&mut self) -> ConnId {
        let conn = self.alloc();
        self.out.close(conn);
        conn
    }

    /// A socket was accepted: it must send its hello within the deadline
    /// (in private mode, the Noise handshake too). `seed` is the session's
    /// randomness in private mode.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        remote: Option<SocketAddr>,
        seed: Option<[u8; 32]>,
    ) -> ConnId {
        let conn = self.alloc();
        let session = self.session(false, seed);
        let c = Conn::new(
            now,
            ConnState::AwaitHello,
            None,
            remote,
            self.limits,
            session,
        );
        self.conns.insert(conn, c);
        self.timers.set(conn, now + self.connect_timeout);
        conn
    }

    /// Opens a dial to `addr` (the driver is told with [`Output::Dial`]);
    /// `seed` is the session's randomness in private mode.
    pub(crate) fn dial(&mut self, now: Instant, addr: &Addr, seed: Option<[u8; 32]>) -> ConnId {
        let conn = self.alloc();
        let state = ConnState::Dialing { addr: addr.clone() };
        let session = self.session(true, seed);
        let c = Conn::new(now, state, Some(addr.clone()), None, self.limits, session);
        self.conns.insert(conn, c);
        self.timers.set(conn, now + self.connect_timeout);
        self.out.push(Output::Dial {
            conn,
            addr: addr.clone(),
        });
        conn
    }

    /// A dial connected: the hello goes out next. Returns the address.
    pub(crate) fn connected(&mut self, conn: ConnId) -> Option<Addr> {
        let c = self.conns.get_mut(&conn)?;
        let ConnState::Dialing { addr } = &c.state else {
            return None;
        };
        let addr = addr.clone();
        c.state = ConnState::AwaitHelloReply { addr: addr.clone() };
        // Private mode: the Noise handshake's first message goes first.
        if let Some(s) = c.session.as_mut() {
            Self::drain_wire(&mut self.sealed, conn, s);
        }
        Some(addr)
    }

    /// Hands received bytes to the connection's decoder (in private mode,
    /// through its session: only authenticated plaintext reaches the
    /// decoder); false if the connection takes none, an error if the
    /// session layer refuses them.
    pub(crate) fn feed(&mut self, conn: ConnId, data: Bytes) -> Result<bool, ProtocolError> {
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.accepts_frames()) else {
            return Ok(false);
        };
        c.bytes_in = c.bytes_in.saturating_add(data.len() as u64);
        let Some(s) = c.session.as_mut() else {
            // A Noise message starts with its 2-byte length, < 256 in the
            // handshake: a first byte 0x00, never valid line protocol.
            if !c.fed && !data.is_empty() {
                c.fed = true;
                if data[0] == 0 {
                    return Err(SessionError::NoisePeer.into());
                }
            }
            c.decoder.feed(data);
            return Ok(true);
        };
        let r = s.receive(&data);
        Self::drain_wire(&mut self.sealed, conn, s);
        r?;
        while let Some(p) = s.poll_plain() {
            c.decoder.feed(p);
        }
        Ok(true)
    }

    /// The next message decoded on `conn`, if a whole frame is buffered.
    pub(crate) fn next(&mut self, now: Instant, conn: ConnId) -> Option<Next> {
        let c = self.conns.get_mut(&conn)?;
        if !c.accepts_frames() {
            return None;
        }
        let frame = match c.decoder.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => return Some(Next::Error(e.into())),
        };
        c.last_seen = now;
        let phase = c.phase();
        let msg = match Message::from_frame(frame, phase) {
            Ok(m) => m,
            Err(e) => return Some(Next::Error(e)),
        };
        if let ConnState::Refused = c.state {
            return match msg {
                Message::Peers(list) => Some(Next::Redirect(list)),
                _ => Some(Next::Ignored),
            };
        }
        Some(Next::Message { phase, msg })
    }

    /// Queues a handshake line on `conn`.
    pub(crate) fn transmit(&mut self, conn: ConnId, data: Bytes) {
        self.out.transmit(conn, data);
    }

    /// Reports something about a connection.
    pub(crate) fn report(&mut self, event: Event) {
        self.out.event(event);
    }

    pub(crate) fn set_hello_id(&mut self, conn: ConnId, id: &PeerId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.hello_id = Some(id.clone());
        }
    }

    /// The dialer side was refused with `MAX_PEERS`: keep reading for the
    /// redirect line until the remote closes.
    pub(crate) fn set_refused(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Refused;
        }
    }

    /// Refuses a hello: sends `line` (the refusal, maybe with a redirect),
    /// closes, and reports it.
    pub(crate) fn refuse(&mut self, conn: ConnId, peer: PeerId, reason: RejectReason, line: Bytes) {
        self.out.transmit(conn, line);
        self.close(conn);
        self.out.event(Event::Rejected {
            conn,
            addr: None,
            peer: Some(peer),
            by_remote: false,
            reason,
        });
    }

    /// Marks `conn` established for `id`. With a second connection to the
    /// same peer, keeps the one dialed by the smaller id (both sides decide
    /// alike, docs/PROTOCOL.md §2.6) and drains the other.
    pub(crate) fn establish(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: PeerId,
        name: String,
        outbound: bool,
        peers: &mut Peers,
    ) -> Option<Established> {
        let name = match name.trim() {
            "" => id.to_string(),
            n => cap_name(n),
        };
        let c = self.conns.get_mut(&conn)?;
        c.state = ConnState::Established {
            peer: id.clone(),
            await_listen: !outbound,
            proven: false,
        };
        c.hello_id = Some(id.clone());
        c.name = Some(name.clone());
        c.opened_at = now;
        c.last_seen = now;
        let addr = c.addr.clone();
        self.timers.set(conn, now + self.connect_timeout);

        if let Some(existing) = peers.conn_of(&id) {
            let dialed_by_smaller = if outbound { self.me < id } else { id < self.me };
            let loser = if dialed_by_smaller {
                if let Some(p) = peers.get_mut(&id) {
                    p.conn = conn;
                    p.outbound = outbound;
                    if addr.is_some() {
                        p.addr = addr.clone();
                    }
                }
                existing
            } else {
                conn
            };
            let keeper = if loser == conn { existing } else { conn };
            self.drain(now, loser, keeper);
            self.out.event(Event::DuplicateRetired {
                peer: id.clone(),
                kept: keeper,
                retired: loser,
            });
            return Some(Established {
                kept: loser != conn,
                merged: true,
                addr,
            });
        }

        peers.insert(
            id.clone(),
            Peer {
                conn,
                name,
                addr: addr.clone(),
                outbound,
                announced: false,
                seq: 0, // numbered by `Peers::insert`
            },
        );
        // A listener announces the peer once its LISTEN line (or whatever
        // comes instead) arrived, so that the event carries its address.
        if outbound {
            self.announce(&id, peers);
        }
        Some(Established {
            kept: true,
            merged: false,
            addr,
        })
    }

    /// Emits `PeerConnected` once per established peer.
    pub(crate) fn announce(&mut self, id: &PeerId, peers: &mut Peers) {
        let count = peers.len();
        let Some(p) = peers.get_mut(id) else {
            return;
        };
        if std::mem::replace(&mut p.announced, true) {
            return;
        }
        self.out.event(Event::PeerConnected {
            peer: id.clone(),
            name: p.name.clone(),
            addr: p.addr.clone(),
            outbound: p.outbound,
            peers: count,
        });
    }

    /// An established connection's frame arrived. Returns the peer and
    /// whether this is the listener's first frame after the hello (which
    /// may be `LISTEN:`), or `None` if the frame must be ignored (a drained
    /// duplicate whose peer is gone).
    pub(crate) fn on_established_frame(
        &mut self,
        conn: ConnId,
        is_listen: bool,
        peers: &Peers,
    ) -> Option<(PeerId, bool)> {
        let c = self.conns.get_mut(&conn)?;
        let ConnState::Established {
            peer,
            await_listen,
            proven,
        } = &mut c.state
        else {
            return None;
        };
        let peer = peer.clone();
        // A drained duplicate can outlive its peer's kept connection; what
        // still arrives on it must not act for a peer that is gone.
        if !peers.contains(&peer) {
            return None;
        }
        let first = std::mem::take(await_listen);
        // The LISTEN line is part of the handshake: it does not show that
        // the peer is alive beyond it.
        let proves = !(first && is_listen);
        if proves && !*proven {
            *proven = true;
            self.keeper_proven(conn);
        }
        Some((peer, first))
    }

    /// Retires a superseded duplicate without losing what is in flight on
    /// it: nothing more is sent on it, frames arriving on it still count,
    /// and it is half-closed only once the kept connection is proven (the
    /// remote sent a frame after the handshake on it, which it does only
    /// after establishing it and switching to it). Closing earlier can
    /// reach the remote before the kept connection's hello does, and it
    /// would see its only connection to us end. `connect_timeout` bounds
    /// the wait.
    fn drain(&mut self, now: Instant, conn: ConnId, keeper: ConnId) {
        let keeper_proven = matches!(
            self.conns.get(&keeper).map(|k| &k.state),
            Some(ConnState::Established { proven: true, .. })
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.draining = true;
            if keeper_proven {
                self.out.close(conn);
            } else {
                c.drain_for = Some(keeper);
            }
            self.timers.set(conn, now + self.connect_timeout);
        }
    }

    /// `keeper` was just proven: half-close the duplicates waiting for it.
    fn keeper_proven(&mut self, keeper: ConnId) {
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.drain_for == Some(keeper))
            .map(|(&id, _)| id)
            .collect();
        for conn in waiting {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.drain_for = None;
            }
            self.out.close(conn);
        }
    }

    /// The address in a listener's `LISTEN:` line. A loopback, `localhost`
    /// or unspecified host over a connection from another machine is
    /// replaced by the connection's remote IP, with the advertised port
    /// (docs/PROTOCOL.md §2.3).
    pub(crate) fn listen_addr(&self, conn: ConnId, text: &str) -> Option<Addr> {
        let c = self.conns.get(&conn)?;
        let mut addr = Addr::parse(text).ok()?;
        if let Some(remote) = c.remote {
            if addr.is_local_only() && !remote.ip().is_loopback() {
                addr = Addr::from_socket(SocketAddr::new(remote.ip(), addr.port()));
            }
        }
        Some(addr)
    }

    /// Records the peer's listening address; returns whether `conn` is the
    /// peer's current connection.
    pub(crate) fn set_listen_addr(
        &mut self,
        conn: ConnId,
        peer: &PeerId,
        addr: &Addr,
        peers: &mut Peers,
    ) -> bool {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.addr = Some(addr.clone());
        }
        let current = peers.is_current(peer, conn);
        if current {
            if let Some(p) = peers.get_mut(peer) {
                p.addr = Some(addr.clone());
            }
        }
        current
    }

    /// Removes `peer` if `conn` is its current connection, reporting it.
    /// Returns whether it was removed.
    pub(crate) fn peer_lost(
        &mut self,
        conn: ConnId,
        peer: &PeerId,
        name: &Option<String>,
        reason: DisconnectReason,
        peers: &mut Peers,
    ) -> bool {
        if !peers.is_current(peer, conn) {
            return false;
        }
        let announced = peers.remove(peer).is_some_and(|p| p.announced);
        let name = name.clone().unwrap_or_else(|| peer.to_string());
        if announced {
            self.out.event(Event::PeerDisconnected {
                peer: peer.clone(),
                name,
                reason,
                peers: peers.len(),
            });
        }
        true
    }

    /// Reports a connection that broke the protocol and closes it; returns
    /// what it leaves behind.
    pub(crate) fn protocol_error(&mut self, conn: ConnId, error: &ProtocolError) -> Option<Ended> {
        let c = self.conns.get(&conn)?;
        let peer = match &c.state {
            ConnState::Established { peer, .. } => Some(peer.clone()),
            _ => c.hello_id.clone(),
        };
        self.out.event(Event::ProtocolError {
            conn,
            peer,
            addr: c.addr.clone(),
            error: error.clone(),
        });
        self.close(conn).map(Conn::ended)
    }

    /// Forgets a connection the driver reported closed.
    pub(crate) fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        self.timers.cancel(&conn);
        Some(c)
    }

    /// Forgets a connection and tells the driver to close it.
    pub(crate) fn close(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.remove(conn)?;
        self.out.close(conn);
        Some(c)
    }

    /// Closes everything (shutdown): every established peer that was
    /// announced is reported gone.
    pub(crate) fn shutdown(&mut self, peers: &mut Peers) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let Some(c) = self.conns.remove(&conn) else {
                continue;
            };
            if let ConnState::Established { peer, .. } = c.state {
                // A peer not announced yet (a listener still waiting for its
                // LISTEN line) leaves the table silently.
                let current = peers.is_current(&peer, conn);
                if current && peers.remove(&peer).is_some_and(|p| p.announced) {
                    let name = c.name.clone().unwrap_or_else(|| peer.to_string());
                    self.out.event(Event::PeerDisconnected {
                        peer,
                        name,
                        reason: DisconnectReason::Shutdown,
                        peers: peers.len(),
                    });
                }
            }
            self.out.close(conn);
        }
        self.timers = TimerTable::default();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the earliest connection deadline due at `now`, if any. One
    /// deadline covers the handshake, the first frame of a new peer, the
    /// idle timeout and the end of a drain; it is moved lazily rather than
    /// on every frame.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Expiry> {
        let conn = self.timers.pop_expired(now)?;
        let Some(c) = self.conns.get(&conn) else {
            return Some(Expiry::Handled);
        };
        let expiry = match &c.state {
            ConnState::Established { peer, proven, .. } => {
                let peer = peer.clone();
                if c.draining {
                    if c.drain_for.is_some() {
                        self.out.close(conn);
                    }
                    self.conns.remove(&conn);
                    return Some(Expiry::Handled);
                }
                let idle_at = c.last_seen + self.peer_timeout;
                let probation_at = (!proven).then(|| c.opened_at + self.connect_timeout);
                if probation_at.is_some_and(|t| t <= now) {
                    let timeout_ms = ms(self.connect_timeout);
                    return Some(Expiry::Protocol(
                        conn,
                        ProtocolError::Unresponsive { timeout_ms },
                    ));
                }
                if idle_at <= now {
                    let silent_ms = ms(now - c.last_seen);
                    let name = self.close(conn).and_then(|c| c.name);
                    return Some(Expiry::Idle {
                        conn,
                        peer,
                        name,
                        silent_ms,
                    });
                }
                let next = probation_at.map_or(idle_at, |p| p.min(idle_at));
                self.timers.set(conn, next);
                Expiry::Handled
            }
            ConnState::Refused => {
                self.close(conn);
                Expiry::Handled
            }
            _ => Expiry::Protocol(
                conn,
                ProtocolError::HandshakeTimeout {
                    timeout_ms: ms(self.connect_timeout),
                },
            ),
        };
        Some(expiry)
    }
}
