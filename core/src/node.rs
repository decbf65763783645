//! The mesh node: connections, the peer table, discovery, heartbeats,
//! timeouts and application commands.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::addrbook::{AddrBook, AddrState, Failure};
use crate::codec::{self, Frame, Limits, Message, Phase};
use crate::event::{CloseReason, DisconnectReason, Event, PeerInfo, StorageOp};
use crate::file::{Assembler, AssemblerLimits, FileFrame, Outgoing};
use crate::handshake::{Conn, ConnState};
use crate::timer::{Timer, TimerTable};
use crate::{Addr, CommandError, Config, ConnId, PeerId, ProtocolError, TransferId};

/// Something that happened outside the node: reported by the driver.
#[derive(Debug, Clone)]
pub enum Input {
    /// A dial from [`Output::Dial`] connected. `local` is our end of the
    /// socket, used to advertise a reachable address.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Our local socket address, if known.
        local: Option<SocketAddr>,
    },
    /// A dial from [`Output::Dial`] failed.
    DialFailed {
        /// The connection.
        conn: ConnId,
        /// What went wrong.
        reason: String,
    },
    /// Bytes arrived on a connection.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// A connection's read side ended, or the connection broke.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// A [`StorageOp::Commit`] succeeded.
    Committed {
        /// The transfer.
        transfer: TransferId,
        /// Where the file was stored (display form).
        saved_as: String,
    },
    /// A [`StorageOp`] for this transfer failed.
    StorageFailed {
        /// The transfer.
        transfer: TransferId,
        /// The error text.
        error: String,
    },
}

/// Something the driver must do, drained with [`Node::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Write `data` on `conn`, after everything queued before it.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes; a broadcast shares one buffer across connections.
        data: Bytes,
    },
    /// Open a connection to `addr`, then report [`Input::Connected`] or
    /// [`Input::DialFailed`] for `conn`.
    Dial {
        /// The handle the node gave this connection.
        conn: ConnId,
        /// Where to.
        addr: Addr,
    },
    /// Flush what is queued on `conn`, shut its write side, keep feeding
    /// what still arrives until the remote closes, then report
    /// [`Input::Closed`] (late data matters when two simultaneous
    /// connections are merged into one).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A file operation in the downloads directory.
    Storage(StorageOp),
    /// Something for the application.
    Event(crate::Event),
}

/// Who a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every established peer.
    All,
    /// One peer.
    Peer(PeerId),
}

/// An established peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) conn: ConnId,
    pub(crate) name: String,
    pub(crate) addr: Option<Addr>,
    pub(crate) outbound: bool,
    /// `PeerConnected` was emitted.
    pub(crate) announced: bool,
}

#[derive(Debug)]
struct Bootstrap {
    attempt: u32,
}

#[derive(Debug)]
struct Sending {
    file: Outgoing,
    to: Vec<PeerId>,
}

/// The sans-IO mesh node. See the [crate docs](crate) for the driving loop.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) id: PeerId,
    pub(crate) name: String,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) limits: Limits,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) peers: BTreeMap<PeerId, Peer>,
    pub(crate) addrs: AddrBook,
    pub(crate) timers: TimerTable,
    pub(crate) out: VecDeque<Output>,
    pub(crate) assembler: Assembler,
    bootstraps: BTreeMap<Addr, Bootstrap>,
    sending: BTreeMap<TransferId, Sending>,
    next_conn: u64,
    next_transfer: u64,
    shut_down: bool,
}

impl Node {
    /// A node with this configuration, its randomness drawn from `seed`.
    pub fn new(config: Config, seed: u64, now: Instant) -> Node {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let id = config.id.clone().unwrap_or_else(|| {
            let mut raw = [0u8; 16];
            rng.fill_bytes(&mut raw);
            // Invariant: 32 hex digits are a valid id.
            PeerId::parse(&crate::hex(&raw)).expect("hex id is valid")
        });
        let name = match &config.name {
            Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
            _ => id.to_string(),
        };
        let limits = Limits {
            max_line_len: config.max_line_len,
            max_bytes_per_message: config.max_bytes_per_message,
        };
        let assembler = Assembler::new(AssemblerLimits {
            max_file_size: config.max_file_size,
            max_transfers_per_peer: config.max_transfers_per_peer,
            idle_timeout: config.peer_timeout,
        });
        let mut node = Node {
            addrs: AddrBook::new(config.max_known_addrs),
            config,
            id,
            name,
            rng,
            limits,
            conns: BTreeMap::new(),
            peers: BTreeMap::new(),
            timers: TimerTable::default(),
            out: VecDeque::new(),
            assembler,
            bootstraps: BTreeMap::new(),
            sending: BTreeMap::new(),
            next_conn: 0,
            next_transfer: 0,
            shut_down: false,
        };
        let port = node.config.listen_port;
        for host in ["127.0.0.1", "0.0.0.0", "[::1]"] {
            if let Ok(a) = Addr::from_host_port(host, port) {
                node.addrs.mark_ours(&a);
            }
        }
        if let Some(h) = node.config.advertise_host.clone() {
            if let Ok(a) = Addr::from_host_port(&h, port) {
                node.addrs.mark_ours(&a);
            }
        }
        node.timers
            .set(Timer::Ping, now + node.config.ping_interval);
        node.timers
            .set(Timer::Discovery, now + node.config.discovery_interval);
        node
    }

    /// Our id.
    pub fn id(&self) -> &PeerId {
        &self.id
    }

    /// Our display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Established peers, in id order.
    pub fn peers(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        self.peers.iter().map(|(id, p)| PeerInfo {
            id: id.clone(),
            name: p.name.clone(),
            addr: p.addr.clone(),
            outbound: p.outbound,
            conn: p.conn,
        })
    }

    /// Number of established peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The peer carried by `conn`: established and that peer's current
    /// connection (a duplicate being retired carries none).
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        match &self.conns.get(&conn)?.state {
            ConnState::Established { peer, .. }
                if self.peers.get(peer).is_some_and(|p| p.conn == conn) =>
            {
                Some(peer)
            }
            _ => None,
        }
    }

    /// Number of addresses known.
    pub fn known_addrs(&self) -> usize {
        self.addrs.len()
    }

    /// Connections open (handshaking, established or closing).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held by connection decoders (bounded by the limits).
    pub fn buffered_bytes(&self) -> usize {
        self.conns.values().map(|c| c.decoder.buffered()).sum()
    }

    /// Incoming file transfers in progress.
    pub fn incoming_transfers(&self) -> usize {
        self.assembler.active()
    }

    // ----- inputs -----

    /// A socket was accepted on the listener; returns its handle. `remote`
    /// is the peer's socket address, used to correct loopback `LISTEN:`
    /// addresses.
    pub fn handle_accept(&mut self, now: Instant, remote: Option<SocketAddr>) -> ConnId {
        let conn = self.alloc_conn();
        if self.shut_down {
            self.out.push_back(Output::Close { conn });
            return conn;
        }
        self.conns
            .insert(conn, Conn::accepted(now, remote, self.limits));
        self.timers
            .set(Timer::Conn(conn), now + self.config.connect_timeout);
        conn
    }

    /// Something happened on a connection or on disk.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected { conn, local } => self.on_connected(now, conn, local),
            Input::DialFailed { conn, reason } => self.on_dial_failed(now, conn, reason),
            Input::Received { conn, data } => self.on_received(now, conn, data),
            Input::Closed { conn, reason } => self.on_closed(now, conn, reason),
            Input::Committed { transfer, saved_as } => {
                self.assembler
                    .handle_committed(transfer, saved_as, &mut self.out);
                self.sync_transfer_timer();
            }
            Input::StorageFailed { transfer, error } => {
                self.assembler
                    .handle_storage_failed(transfer, error, &mut self.out);
                self.sync_transfer_timer();
            }
        }
    }

    /// Runs every deadline due at `now`. Calling it again with the same
    /// `now` does nothing more.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Ping => self.on_ping_timer(now),
                Timer::Discovery => self.on_discovery_timer(now),
                Timer::Conn(conn) => self.on_conn_timer(now, conn),
                Timer::Dial(addr) => self.try_dial(now, &addr),
                Timer::Bootstrap(addr) => self.bootstrap_try(now, &addr),
                Timer::Transfers => {
                    self.assembler.handle_timeout(now, &mut self.out);
                    self.sync_transfer_timer();
                }
            }
        }
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Node::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- application commands -----

    /// Dials `addr` once now (the `/connect` command). Does nothing if it is
    /// already connected or being dialed.
    pub fn connect(&mut self, now: Instant, addr: &str) -> Result<(), CommandError> {
        let addr = self.command_addr(addr)?;
        self.addrs.set_sticky(&addr);
        self.try_dial(now, &addr);
        Ok(())
    }

    /// Dials `addr` with retries (`bootstrap_attempts`, waiting
    /// `bootstrap_backoff` then doubling) and reports
    /// [`Event::BootstrapSucceeded`] or [`Event::BootstrapFailed`].
    pub fn bootstrap(&mut self, now: Instant, addr: &str) -> Result<(), CommandError> {
        let addr = self.command_addr(addr)?;
        self.addrs.set_sticky(&addr);
        self.bootstraps
            .insert(addr.clone(), Bootstrap { attempt: 0 });
        self.bootstrap_try(now, &addr);
        Ok(())
    }

    /// Asks every peer for addresses now and dials what is due (`/discover`).
    pub fn discover(&mut self, now: Instant) {
        self.request_peers_all();
        self.dial_due(now);
    }

    /// Sends a chat line to every peer; returns how many.
    pub fn broadcast_chat(&mut self, text: &str) -> Result<usize, CommandError> {
        let line = self.chat_line(text)?;
        Ok(self.transmit_all(&[line]))
    }

    /// Sends a chat line to one peer.
    pub fn send_chat(&mut self, peer: &PeerId, text: &str) -> Result<(), CommandError> {
        let conn = self.conn_of(peer)?;
        let line = self.chat_line(text)?;
        self.transmit(conn, line);
        Ok(())
    }

    /// Sends a binary message to every peer (one shared buffer); returns how many.
    pub fn broadcast_bytes(&mut self, data: Bytes) -> Result<usize, CommandError> {
        let header = self.bytes_header(data.len())?;
        Ok(self.transmit_all(&[header, data]))
    }

    /// Sends a binary message to one peer.
    pub fn send_bytes(&mut self, peer: &PeerId, data: Bytes) -> Result<(), CommandError> {
        let conn = self.conn_of(peer)?;
        let header = self.bytes_header(data.len())?;
        self.transmit(conn, header);
        self.transmit(conn, data);
        Ok(())
    }

    /// Starts sending a file of `size` bytes whose SHA-256 is `sha256`
    /// (computed by the caller, since `FILESTART` carries it) and sends
    /// `FILESTART`. Follow with [`Node::send_file_chunk`] for the content in
    /// order, then [`Node::finish_file`].
    pub fn start_file(
        &mut self,
        target: Target,
        name: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<TransferId, CommandError> {
        let file = Outgoing::new(name, size, sha256)?;
        let to: Vec<PeerId> = match target {
            Target::All => self.peers.keys().cloned().collect(),
            Target::Peer(p) => {
                self.conn_of(&p)?;
                vec![p]
            }
        };
        if to.is_empty() {
            return Err(CommandError::NoPeers);
        }
        self.next_transfer += 1;
        let id = TransferId(self.next_transfer * 2);
        let frame = file.start_frame();
        let sending = Sending { file, to };
        self.transmit_to(&sending.to, &[frame]);
        self.sending.insert(id, sending);
        Ok(id)
    }

    /// Sends the next chunk of an outgoing file to its peers that are still
    /// connected; returns how many that is.
    pub fn send_file_chunk(&mut self, id: TransferId, data: Bytes) -> Result<usize, CommandError> {
        let s = self
            .sending
            .get_mut(&id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let frames = s.file.chunk_frame(id, data)?;
        let to = std::mem::take(&mut s.to);
        let to = self.retain_connected(to);
        let n = self.transmit_to(&to, &frames);
        if let Some(s) = self.sending.get_mut(&id) {
            s.to = to;
        }
        Ok(n)
    }

    /// Sends `FILEEND` and forgets the outgoing transfer; returns how many
    /// peers got the whole file.
    pub fn finish_file(&mut self, id: TransferId) -> Result<usize, CommandError> {
        let s = self
            .sending
            .get(&id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let frame = s.file.end_frame(id)?;
        let Some(s) = self.sending.remove(&id) else {
            return Err(CommandError::UnknownTransfer(id));
        };
        let to = self.retain_connected(s.to);
        Ok(self.transmit_to(&to, &[frame]))
    }

    /// Forgets an outgoing transfer without sending `FILEEND` (the receivers
    /// discard it after their idle timeout).
    pub fn abort_file(&mut self, id: TransferId) -> bool {
        self.sending.remove(&id).is_some()
    }

    /// Peers an outgoing transfer is still going to.
    pub fn file_targets(&self, id: TransferId) -> Option<&[PeerId]> {
        self.sending.get(&id).map(|s| s.to.as_slice())
    }

    /// Closes every connection, aborts incoming transfers and stops all
    /// timers. The node does nothing afterwards.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(c) = self.conns.remove(&conn) {
                if let ConnState::Established { peer, .. } = c.state {
                    // A peer not announced yet (a listener still waiting
                    // for its LISTEN line) leaves the table silently.
                    let current = self.peers.get(&peer).is_some_and(|p| p.conn == conn);
                    if current && self.peers.remove(&peer).is_some_and(|p| p.announced) {
                        let name = self.peer_name_or(&peer, &c.name);
                        self.event(Event::PeerDisconnected {
                            peer,
                            name,
                            reason: DisconnectReason::Shutdown,
                            peers: self.peers.len(),
                        });
                    }
                }
                self.out.push_back(Output::Close { conn });
            }
        }
        self.assembler.shutdown(&mut self.out);
        self.sending.clear();
        self.timers = TimerTable::default();
    }

    // ----- internals shared with the handshake -----

    pub(crate) fn alloc_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    pub(crate) fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    pub(crate) fn transmit(&mut self, conn: ConnId, data: Bytes) {
        self.out.push_back(Output::Transmit { conn, data });
    }

    fn transmit_all(&mut self, frames: &[Bytes]) -> usize {
        let conns: Vec<ConnId> = self.peers.values().map(|p| p.conn).collect();
        for &conn in &conns {
            for f in frames {
                self.transmit(conn, f.clone());
            }
        }
        conns.len()
    }

    fn transmit_to(&mut self, to: &[PeerId], frames: &[Bytes]) -> usize {
        let mut n = 0;
        for p in to {
            if let Some(conn) = self.peers.get(p).map(|p| p.conn) {
                n += 1;
                for f in frames {
                    self.transmit(conn, f.clone());
                }
            }
        }
        n
    }

    fn retain_connected(&self, mut to: Vec<PeerId>) -> Vec<PeerId> {
        to.retain(|p| self.peers.contains_key(p));
        to
    }

    fn conn_of(&self, peer: &PeerId) -> Result<ConnId, CommandError> {
        self.peers
            .get(peer)
            .map(|p| p.conn)
            .ok_or_else(|| CommandError::UnknownPeer(peer.to_string()))
    }

    fn chat_line(&self, text: &str) -> Result<Bytes, CommandError> {
        codec::check_chat(text).map_err(|why| CommandError::InvalidChat {
            text: crate::truncate_for_report(text),
            why,
        })?;
        if text.len() > self.config.max_line_len {
            return Err(CommandError::InvalidChat {
                text: crate::truncate_for_report(text),
                why: "longer than the line limit",
            });
        }
        Ok(Message::Chat(text.to_owned()).to_bytes())
    }

    fn bytes_header(&self, len: usize) -> Result<Bytes, CommandError> {
        if len > self.config.max_bytes_per_message {
            return Err(CommandError::TooLarge {
                len,
                limit: self.config.max_bytes_per_message,
            });
        }
        Ok(codec::bytes_header(len))
    }

    fn command_addr(&self, addr: &str) -> Result<Addr, CommandError> {
        let a = Addr::parse(addr).map_err(|_| CommandError::InvalidAddr(addr.to_owned()))?;
        if self.addrs.is_ours(&a) {
            return Err(CommandError::SelfAddr(a.to_string()));
        }
        Ok(a)
    }

    pub(crate) fn peer_name_or(&self, peer: &PeerId, fallback: &Option<String>) -> String {
        fallback.clone().unwrap_or_else(|| peer.to_string())
    }

    pub(crate) fn sync_transfer_timer(&mut self) {
        match self.assembler.next_deadline() {
            Some(t) => self.timers.set(Timer::Transfers, t),
            None => self.timers.cancel(&Timer::Transfers),
        }
    }

    pub(crate) fn jitter(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis() as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.next_u64() % (ms + 1))
    }

    // ----- connection lifecycle -----

    fn on_received(&mut self, now: Instant, conn: ConnId, data: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.accepts_frames() {
            return;
        }
        c.decoder.feed(data);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if !c.accepts_frames() {
                return;
            }
            match c.decoder.next_frame() {
                Ok(Some(frame)) => {
                    c.last_seen = now;
                    self.on_frame(now, conn, frame);
                }
                Ok(None) => return,
                Err(e) => {
                    self.protocol_error(now, conn, e.into());
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let phase = c.phase();
        let msg = match Message::from_frame(frame, phase) {
            Ok(m) => m,
            Err(e) => return self.protocol_error(now, conn, e),
        };
        if let Some(ConnState::Refused) = self.conns.get(&conn).map(|c| &c.state) {
            if let Message::Peers(list) = msg {
                self.on_peers(now, None, list);
            }
            return;
        }
        match phase {
            Phase::AwaitHello => self.on_hello(now, conn, msg),
            Phase::AwaitHelloReply => self.on_hello_reply(now, conn, msg),
            Phase::AwaitListen | Phase::Established => self.on_established(now, conn, msg),
        }
    }

    fn on_established(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnState::Established {
            peer,
            await_listen,
            proven,
        } = &mut c.state
        else {
            return;
        };
        let peer = peer.clone();
        // A drained duplicate can outlive its peer's kept connection; what
        // still arrives on it must not act for a peer that is gone.
        if !self.peers.contains_key(&peer) {
            return;
        }
        let first = std::mem::take(await_listen);
        let is_listen = matches!(msg, Message::Listen(_));
        // The LISTEN line is part of the handshake: it does not show that
        // the peer is alive beyond it.
        let proves = !(first && is_listen);
        let newly_proven = proves && !*proven;
        if newly_proven {
            *proven = true;
            self.keeper_proven(conn);
        }
        if first {
            if let Message::Listen(text) = &msg {
                self.on_listen(now, conn, &peer, text);
                self.announce(&peer);
                return;
            }
            self.announce(&peer);
        }
        // Replies go on the peer's current connection (a merged duplicate may
        // still be draining on this one).
        let reply_conn = self.peers.get(&peer).map(|p| p.conn);
        match msg {
            Message::Ping => {
                if let Some(rc) = reply_conn {
                    self.transmit(rc, Bytes::from_static(b"PONG\n"));
                }
            }
            Message::Pong => self.event(Event::PongReceived { peer }),
            Message::RequestPeers => {
                self.event(Event::PeersRequested { peer: peer.clone() });
                if let Some(rc) = reply_conn {
                    self.send_peers(rc, &peer);
                }
            }
            Message::Peers(list) => self.on_peers(now, Some(&peer), list),
            Message::Chat(text) => {
                if text.is_empty() {
                    return;
                }
                let name = self
                    .peers
                    .get(&peer)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| peer.to_string());
                self.event(Event::Chat {
                    from: peer,
                    name,
                    text,
                });
            }
            Message::Bytes(data) => match FileFrame::parse(&data) {
                Some(frame) => {
                    self.assembler
                        .handle_frame(now, &peer, frame, &mut self.out);
                    self.sync_transfer_timer();
                }
                None => self.event(Event::Bytes { from: peer, data }),
            },
            // Outside the handshake these lines are chat to the reference;
            // from_frame already maps them so, but stay total.
            Message::Listen(_) | Message::Hello { .. } | Message::Duplicate | Message::MaxPeers => {
            }
        }
    }

    fn on_peers(&mut self, now: Instant, from: Option<&PeerId>, list: Vec<String>) {
        if let Some(peer) = from {
            self.event(Event::PeersReceived {
                peer: peer.clone(),
                addrs: list
                    .iter()
                    .take(32)
                    .map(|s| crate::truncate_for_report(s))
                    .collect(),
            });
        }
        let mut new = Vec::new();
        for text in list.iter().take(self.config.max_known_addrs) {
            let Ok(addr) = Addr::parse(text) else {
                continue;
            };
            if self.addrs.learn(&addr) {
                new.push(addr.clone());
            }
            if self.addrs.dialable(&addr, now) {
                self.schedule_dial(now, &addr);
            }
        }
        if !new.is_empty() {
            self.event(Event::PeersDiscovered {
                from: from.cloned(),
                new,
                known: self.addrs.len(),
            });
        }
    }

    /// What we share in `PEERS` with `to`: established peers' addresses
    /// except its own, plus up to 5 healthy known ones; never `[::1]`, and
    /// no loopback address to a peer that is not on this machine.
    pub(crate) fn shareable_addrs(&mut self, to: Option<&PeerId>) -> Vec<Addr> {
        let to_peer = to.and_then(|t| self.peers.get(t));
        let to_addr = to_peer.and_then(|p| p.addr.clone());
        let remote_local = to_peer
            .and_then(|p| self.conns.get(&p.conn))
            .map(|c| c.remote_is_loopback())
            .unwrap_or(true);
        let ok = |a: &Addr| {
            !a.is_ipv6_loopback()
                && Some(a) != to_addr.as_ref()
                && (remote_local || !a.is_local_only())
        };
        let mut list: BTreeSet<Addr> = self
            .peers
            .iter()
            .filter(|(id, _)| Some(*id) != to)
            .filter_map(|(_, p)| p.addr.clone())
            .filter(|a| ok(a))
            .collect();
        let extra: Vec<Addr> = self
            .addrs
            .healthy_idle()
            .filter(|a| ok(a))
            .cloned()
            .collect();
        let mut extra = extra;
        for _ in 0..5 {
            if extra.is_empty() {
                break;
            }
            let i = (self.rng.next_u64() % extra.len() as u64) as usize;
            list.insert(extra.swap_remove(i));
        }
        list.into_iter().collect()
    }

    pub(crate) fn send_peers(&mut self, conn: ConnId, to: &PeerId) {
        let list = self.shareable_addrs(Some(to));
        if !list.is_empty() {
            self.transmit(conn, codec::peers_line(&list));
        }
    }

    /// Tells every other peer about a newly connected address, so that the
    /// mesh closes in one round trip instead of one discovery interval.
    pub(crate) fn gossip_addr(&mut self, about: &PeerId, addr: &Addr) {
        let line = codec::peers_line(std::slice::from_ref(addr));
        let targets: Vec<(ConnId, bool)> = self
            .peers
            .iter()
            .filter(|(id, _)| *id != about)
            .map(|(_, p)| {
                (
                    p.conn,
                    self.conns
                        .get(&p.conn)
                        .is_none_or(|c| c.remote_is_loopback()),
                )
            })
            .collect();
        for (conn, local) in targets {
            if local || !addr.is_local_only() {
                self.transmit(conn, line.clone());
            }
        }
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.timers.cancel(&Timer::Conn(conn));
        let why = match &reason {
            CloseReason::Eof => "closed during the handshake".to_owned(),
            CloseReason::Io { error } => error.clone(),
            other => format!("{other:?}"),
        };
        self.conn_ended(now, conn, c, DisconnectReason::Closed { reason }, why);
    }

    /// A connection is gone: an established peer is lost, a dial failed.
    fn conn_ended(
        &mut self,
        now: Instant,
        conn: ConnId,
        c: Conn,
        reason: DisconnectReason,
        dial_error: String,
    ) {
        match c.state {
            ConnState::Established { peer, .. } => {
                self.peer_lost(now, conn, &peer, &c.name, reason)
            }
            ConnState::Dialing { addr } | ConnState::AwaitHelloReply { addr } => {
                self.dial_ended(now, &addr, Err(dial_error))
            }
            ConnState::AwaitHello | ConnState::Refused => {}
        }
    }

    /// Removes `peer` if `conn` is its current connection.
    pub(crate) fn peer_lost(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: &PeerId,
        name: &Option<String>,
        reason: DisconnectReason,
    ) {
        if self.peers.get(peer).is_none_or(|p| p.conn != conn) {
            return;
        }
        let announced = self.peers.remove(peer).is_some_and(|p| p.announced);
        let name = self.peer_name_or(peer, name);
        if announced {
            self.event(Event::PeerDisconnected {
                peer: peer.clone(),
                name,
                reason,
                peers: self.peers.len(),
            });
        }
        self.assembler.handle_peer_gone(peer, &mut self.out);
        self.sync_transfer_timer();
        let delay = self.config.dial_backoff + self.jitter(self.config.dial_jitter);
        for addr in self.addrs.on_peer_gone(peer, now, delay) {
            self.timers.set(Timer::Dial(addr), now + delay);
        }
    }

    /// Closes a connection that broke the protocol, reporting it.
    pub(crate) fn protocol_error(&mut self, now: Instant, conn: ConnId, error: ProtocolError) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let peer = match &c.state {
            ConnState::Established { peer, .. } => Some(peer.clone()),
            _ => c.hello_id.clone(),
        };
        let addr = c.addr.clone();
        self.event(Event::ProtocolError {
            conn,
            peer: peer.clone(),
            addr: addr.clone(),
            error: error.clone(),
        });
        let Some(c) = self.close_conn(conn) else {
            return;
        };
        let dial_error = error.to_string();
        self.conn_ended(
            now,
            conn,
            c,
            DisconnectReason::Protocol { error },
            dial_error,
        );
    }

    /// Forgets a connection and tells the driver to close it.
    pub(crate) fn close_conn(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        self.timers.cancel(&Timer::Conn(conn));
        self.out.push_back(Output::Close { conn });
        Some(c)
    }

    // ----- timers -----

    fn on_ping_timer(&mut self, now: Instant) {
        let peers: Vec<(PeerId, ConnId)> = self
            .peers
            .iter()
            .map(|(id, p)| (id.clone(), p.conn))
            .collect();
        for (peer, conn) in peers {
            self.transmit(conn, Bytes::from_static(b"PING\n"));
            self.event(Event::PingSent { peer });
        }
        self.timers
            .set(Timer::Ping, now + self.config.ping_interval);
    }

    fn on_discovery_timer(&mut self, now: Instant) {
        self.discover(now);
        self.timers
            .set(Timer::Discovery, now + self.config.discovery_interval);
    }

    fn request_peers_all(&mut self) {
        for conn in self.peers.values().map(|p| p.conn).collect::<Vec<_>>() {
            self.transmit(conn, Bytes::from_static(b"REQUEST_PEERS\n"));
        }
    }

    /// One timer per connection covers the handshake deadline, the first
    /// frame deadline of a new peer, the idle timeout and the end of a
    /// draining duplicate; it is moved lazily rather than on every frame.
    fn on_conn_timer(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let timeout_ms = |d: Duration| d.as_millis() as u64;
        match &c.state {
            ConnState::Established { peer, proven, .. } => {
                let peer = peer.clone();
                if c.draining {
                    if c.drain_for.is_some() {
                        self.out.push_back(Output::Close { conn });
                    }
                    self.conns.remove(&conn);
                    return;
                }
                let idle_at = c.last_seen + self.config.peer_timeout;
                let probation_at = (!proven).then(|| c.opened_at + self.config.connect_timeout);
                if let Some(t) = probation_at.filter(|t| *t <= now) {
                    let _ = t;
                    let error = ProtocolError::Unresponsive {
                        timeout_ms: timeout_ms(self.config.connect_timeout),
                    };
                    return self.protocol_error(now, conn, error);
                }
                if idle_at <= now {
                    let silent_ms = timeout_ms(now - c.last_seen);
                    if let Some(c) = self.close_conn(conn) {
                        self.peer_lost(
                            now,
                            conn,
                            &peer,
                            &c.name,
                            DisconnectReason::Timeout { silent_ms },
                        );
                    }
                    return;
                }
                let next = probation_at.map_or(idle_at, |p| p.min(idle_at));
                self.timers.set(Timer::Conn(conn), next);
            }
            ConnState::Refused => {
                self.close_conn(conn);
            }
            _ => {
                let error = ProtocolError::HandshakeTimeout {
                    timeout_ms: timeout_ms(self.config.connect_timeout),
                };
                self.protocol_error(now, conn, error);
            }
        }
    }

    // ----- dialing -----

    fn dials_in_flight(&self) -> usize {
        self.conns.values().filter(|c| c.is_dialing()).count()
    }

    /// Dials `addr` after a random delay, unless something already decided
    /// it (connected, in flight, backing off).
    pub(crate) fn schedule_dial(&mut self, now: Instant, addr: &Addr) {
        if self.shut_down
            || !self.addrs.dialable(addr, now)
            || self.peers.len() >= self.config.max_peers
        {
            return;
        }
        let at = now + self.jitter(self.config.dial_jitter);
        self.timers.set_earliest(Timer::Dial(addr.clone()), at);
    }

    fn dial_due(&mut self, now: Instant) {
        for addr in self.addrs.due(now) {
            self.schedule_dial(now, &addr);
        }
    }

    fn try_dial(&mut self, now: Instant, addr: &Addr) {
        if self.shut_down
            || !self.addrs.dialable(addr, now)
            || self.peers.len() >= self.config.max_peers
        {
            return;
        }
        if self.dials_in_flight() >= self.config.max_dials_in_flight {
            let later = now + Duration::from_millis(50) + self.jitter(self.config.dial_jitter);
            self.timers.set(Timer::Dial(addr.clone()), later);
            return;
        }
        self.dial(now, addr);
    }

    fn dial(&mut self, now: Instant, addr: &Addr) {
        let conn = self.alloc_conn();
        self.timers.cancel(&Timer::Dial(addr.clone()));
        self.conns
            .insert(conn, Conn::dialing(now, addr.clone(), self.limits));
        self.addrs.on_dial(addr, conn);
        self.timers
            .set(Timer::Conn(conn), now + self.config.connect_timeout);
        self.out.push_back(Output::Dial {
            conn,
            addr: addr.clone(),
        });
    }

    fn on_connected(&mut self, now: Instant, conn: ConnId, local: Option<SocketAddr>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnState::Dialing { addr } = &c.state else {
            return;
        };
        c.state = ConnState::AwaitHelloReply { addr: addr.clone() };
        c.local = local;
        let listen = self.listen_addr(local);
        self.addrs.mark_ours(&listen);
        let hello = Message::Hello {
            id: self.id.clone(),
            name: self.name.clone(),
        };
        self.transmit(conn, hello.to_bytes());
        self.transmit(conn, Message::Listen(listen.to_string()).to_bytes());
        let _ = now;
    }

    /// The address we advertise on a connection whose local end is `local`.
    fn listen_addr(&self, local: Option<SocketAddr>) -> Addr {
        let port = self.config.listen_port;
        let configured = self
            .config
            .advertise_host
            .as_deref()
            .and_then(|h| Addr::from_host_port(h, port).ok());
        let from_socket = local
            .filter(|l| !l.ip().is_unspecified())
            .map(|l| Addr::from_socket(SocketAddr::new(l.ip(), port)));
        configured
            .or(from_socket)
            // Invariant: a valid port on 127.0.0.1 always parses.
            .unwrap_or_else(|| {
                Addr::from_host_port("127.0.0.1", port.max(1)).expect("loopback addr")
            })
    }

    fn on_dial_failed(&mut self, now: Instant, conn: ConnId, reason: String) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.timers.cancel(&Timer::Conn(conn));
        if let ConnState::Dialing { addr } | ConnState::AwaitHelloReply { addr } = c.state {
            self.dial_ended(now, &addr, Err(reason));
        }
    }

    /// A dial to `addr` ended: `Ok` when it reached a peer (or a live
    /// duplicate), `Err` with the reason otherwise.
    pub(crate) fn dial_ended(&mut self, now: Instant, addr: &Addr, result: Result<(), String>) {
        let bootstrap = self.bootstraps.get(addr).map(|b| b.attempt);
        match result {
            Ok(()) => {
                if let Some(attempt) = bootstrap {
                    self.bootstraps.remove(addr);
                    self.timers.cancel(&Timer::Bootstrap(addr.clone()));
                    self.event(Event::BootstrapSucceeded {
                        addr: addr.clone(),
                        attempt,
                    });
                }
            }
            Err(reason) => {
                let jitter = self.jitter(self.config.dial_jitter);
                let c = &self.config;
                let failure = self.addrs.on_failure(
                    addr,
                    now,
                    c.dial_backoff,
                    c.dial_backoff_max,
                    c.max_dial_failures,
                    jitter,
                );
                let failures = self
                    .addrs
                    .get(addr)
                    .map_or(c.max_dial_failures, |e| e.failures);
                self.event(Event::DialFailed {
                    addr: addr.clone(),
                    reason,
                    failures,
                });
                if let Some(attempt) = bootstrap {
                    self.timers.cancel(&Timer::Dial(addr.clone()));
                    // Retrying an address that answered with our own id is pointless.
                    if attempt >= self.config.bootstrap_attempts || self.addrs.is_ours(addr) {
                        self.bootstraps.remove(addr);
                        self.event(Event::BootstrapFailed {
                            addr: addr.clone(),
                            attempts: attempt,
                        });
                    } else {
                        let wait = self
                            .config
                            .bootstrap_backoff
                            .saturating_mul(1 << (attempt - 1).min(16));
                        self.timers.set(Timer::Bootstrap(addr.clone()), now + wait);
                    }
                } else if let Failure::RetryAt(t) = failure {
                    self.timers.set(Timer::Dial(addr.clone()), t);
                }
            }
        }
    }

    fn bootstrap_try(&mut self, now: Instant, addr: &Addr) {
        let Some(b) = self.bootstraps.get_mut(addr) else {
            return;
        };
        b.attempt += 1;
        match self.addrs.get(addr).map(|e| e.state.clone()) {
            Some(AddrState::Connected(_)) => self.dial_ended(now, addr, Ok(())),
            // Refused with MAX_PEERS but joined the mesh through the nodes it
            // pointed us to: the bootstrap did its job.
            _ if !self.peers.is_empty() => self.dial_ended(now, addr, Ok(())),
            Some(AddrState::Dialing(_)) => {}
            _ => {
                // A bootstrap try ignores the address's backoff: the
                // bootstrap schedule is its own.
                self.addrs.set_sticky(addr);
                if self.shut_down {
                    return;
                }
                self.dial(now, addr);
            }
        }
    }
}
