//! The mesh node: a dispatcher over its components. Inputs from the
//! driver and commands from the application are routed to the component
//! that owns them; what one component's work means for another (a completed
//! handshake for discovery and the heartbeat, a lost peer for files and the
//! dialer) is decided here, in one place. After every call into a
//! component its outbox is drained into the node's, so outputs keep the
//! order they were caused in.
//!
//! | component | file | owns |
//! | --- | --- | --- |
//! | connections | `connections.rs` | connections, decoders, handshake, per-connection deadlines |
//! | dialer | `dialer.rs` | address book, dial policy, bootstrap |
//! | discovery | `discovery.rs` | `REQUEST_PEERS`/`PEERS`, gossip |
//! | heartbeat | `heartbeat.rs` | `PING`/`PONG` |
//! | chat | `chat.rs` | chat lines and binary messages |
//! | extensions | `extensions.rs` | `P2PX/` frames, capability exchange |
//! | files | `files/` | file transfers (legacy push) |
//! | swarm | `swarm/` | content-addressed sharing: shares, index, downloads |

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::chat::Chat;
use crate::codec::{self, Limits, Message, Phase};
use crate::connections::{ConnState, Connections, Ended, Expiry, Next};
use crate::dialer::{Dialer, Step};
use crate::discovery::Discovery;
use crate::event::{CloseReason, DisconnectReason, Event, PeerInfo};
use crate::extensions::Frame;
use crate::extensions::{Extensions, EXT_PREFIX};
use crate::files::Files;
use crate::heartbeat::Heartbeat;
use crate::io::{Input, Output, Target};
use crate::peers::Peers;
use crate::session::{self, Keys, SessionError};
use crate::swarm::{ContentId, DownloadInfo, Listing, Swarm};
use crate::{
    Addr, CommandError, Config, ConnId, DialFailure, PeerId, ProtocolError, RejectReason,
    TransferId,
};

/// The sans-IO mesh node. See the [crate docs](crate) for the driving loop.
#[derive(Debug)]
pub struct Node {
    config: Config,
    id: PeerId,
    name: String,
    /// Our hello line, `<id>:<name>\n`.
    hello: Bytes,
    /// The one source of randomness; components borrow it in call order.
    rng: ChaCha8Rng,
    /// Keyed with `config.session.entropy`, if given: mixed into every
    /// connection's session seed.
    entropy: Option<rand_chacha::ChaCha20Rng>,
    peers: Peers,
    conns: Connections,
    dialer: Dialer,
    discovery: Discovery,
    heartbeat: Heartbeat,
    chat: Chat,
    ext: Extensions,
    files: Files,
    swarm: Swarm,
    out: VecDeque<Output>,
    /// Bytes handed out for each connection and not reported flushed.
    queued: BTreeMap<ConnId, u64>,
    shut_down: bool,
}

impl Node {
    /// A node with this configuration, its randomness drawn from `seed`.
    pub fn new(config: Config, seed: u64, now: Instant) -> Node {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Private mode: the static key (given, or drawn from the seed)
        // decides the id; plaintext draws nothing here, as before.
        let keys = config.session.network_key.map(|psk| {
            let private = config
                .session
                .static_key
                .unwrap_or_else(|| session::draw_seed(&mut rng));
            Keys::new(psk, private, config.session.trust.clone())
        });
        let key_id = keys.as_ref().map(|k| k.id());
        let entropy = config
            .session
            .entropy
            .map(rand_chacha::ChaCha20Rng::from_seed);
        let id = key_id.or_else(|| config.id.clone()).unwrap_or_else(|| {
            let mut raw = [0u8; 16];
            rng.fill_bytes(&mut raw);
            // Invariant: 32 hex digits are a valid id.
            PeerId::parse(&hex::encode(raw)).expect("hex id is valid")
        });
        let name = match &config.name {
            Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
            _ => id.to_string(),
        };
        let limits = Limits {
            max_line_len: config.connections.max_line_len,
            max_bytes_per_message: config.connections.max_bytes_per_message,
        };
        let hello = Message::Hello {
            id: id.clone(),
            name: name.clone(),
        }
        .to_bytes();
        let mut dialer = Dialer::new(&config);
        let port = config.listen_port;
        for host in ["127.0.0.1", "0.0.0.0", "[::1]"] {
            if let Ok(a) = Addr::from_host_port(host, port) {
                dialer.book.mark_ours(&a);
            }
        }
        if let Some(h) = &config.advertise_host {
            if let Ok(a) = Addr::from_host_port(h, port) {
                dialer.book.mark_ours(&a);
            }
        }
        let mut swarm = Swarm::new(&config.swarm);
        swarm.start();
        Node {
            conns: Connections::new(
                id.clone(),
                limits,
                config.connections.connect_timeout,
                config.heartbeat.peer_timeout,
                keys,
            ),
            discovery: Discovery::new(
                now,
                config.discovery.interval,
                config.discovery.max_shared_peers,
                config.dialer.max_known_addrs,
            ),
            heartbeat: Heartbeat::new(now, config.heartbeat.ping_interval),
            chat: Chat::new(
                config.connections.max_line_len,
                config.connections.max_bytes_per_message,
            ),
            files: Files::new(&config),
            ext: Extensions::new(config.swarm.enabled),
            swarm,
            dialer,
            peers: Peers::default(),
            config,
            id,
            name,
            hello,
            rng,
            entropy,
            out: VecDeque::new(),
            queued: BTreeMap::new(),
            shut_down: false,
        }
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
        self.peers.info().map(|mut p| {
            p.extensions = self.ext.of(&p.id);
            p.rtt_ms = self.heartbeat.rtt(&p.id).map(|d| d.as_millis() as u64);
            (p.bytes_in, p.bytes_out) = self.conns.traffic(p.conn);
            p
        })
    }

    /// Number of established peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The peer carried by `conn`: established and that peer's current
    /// connection (a duplicate being retired carries none).
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        self.conns.peer_of(conn, &self.peers)
    }

    /// Number of addresses known.
    pub fn known_addrs(&self) -> usize {
        self.dialer.book.len()
    }

    /// Connections open (handshaking, established or closing).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held by connection decoders (bounded by the limits).
    pub fn buffered_bytes(&self) -> usize {
        self.conns.buffered_bytes()
    }

    /// Bytes (plaintext) handed out on `conn` and not reported flushed.
    #[cfg(test)]
    pub(crate) fn queued_on(&self, conn: ConnId) -> u64 {
        self.queued.get(&conn).copied().unwrap_or(0)
    }

    /// Round trips being timed (one per connection with a `PING` out).
    #[cfg(test)]
    pub(crate) fn timed_pings(&self) -> usize {
        self.heartbeat.timed()
    }

    /// Incoming file transfers in progress.
    pub fn incoming_transfers(&self) -> usize {
        self.files.incoming()
    }

    /// Swarm offers waiting for `/accept` or `/decline` (at most
    /// `swarm.max_offers`): for the fuzz checks' memory bounds.
    #[cfg(feature = "internals")]
    pub fn pending_offers(&self) -> usize {
        self.swarm.pending_offers()
    }

    /// Moves every component's queued outputs to the node's queue, in a
    /// fixed order. Called after each call into a component, so the order
    /// of outputs is the order of causes.
    fn collect(&mut self) {
        if self.conns.is_private() {
            self.collect_private();
            return;
        }
        let start = self.out.len();
        let out = &mut self.out;
        self.conns.out.drain_into(out);
        self.dialer.out.drain_into(out);
        self.discovery.out.drain_into(out);
        self.heartbeat.out.drain_into(out);
        self.chat.out.drain_into(out);
        self.ext.out.drain_into(out);
        self.files.out.drain_into(out);
        self.swarm.out.drain_into(out);
        // What is queued per connection counts from the moment it is
        // decided, so that the next decision (a file chunk) sees it.
        for o in self.out.range(start..) {
            match o {
                Output::Transmit { conn, data } => {
                    *self.queued.entry(*conn).or_default() += data.len() as u64;
                }
                Output::Close { conn } => {
                    self.queued.remove(conn);
                }
                _ => {}
            }
        }
    }

    /// [`Node::collect`] in private mode: the one place where plaintext
    /// `Transmit`s become Noise transport messages (or are held until the
    /// handshake completes). What is queued per connection counts
    /// plaintext, as [`Input::Flushed`] is translated back to plaintext.
    fn collect_private(&mut self) {
        let mut new = std::collections::VecDeque::new();
        self.conns.out.drain_into(&mut new);
        self.dialer.out.drain_into(&mut new);
        self.discovery.out.drain_into(&mut new);
        self.heartbeat.out.drain_into(&mut new);
        self.chat.out.drain_into(&mut new);
        self.ext.out.drain_into(&mut new);
        self.files.out.drain_into(&mut new);
        self.swarm.out.drain_into(&mut new);
        // Already ciphertext, caused before anything in `new`.
        self.conns.sealed.drain_into(&mut self.out);
        for o in new {
            match o {
                Output::Transmit { conn, data } => {
                    *self.queued.entry(conn).or_default() += data.len() as u64;
                    if let Err(data) = self.seal(conn, data) {
                        self.out.push_back(Output::Transmit { conn, data });
                    }
                }
                Output::Close { conn } => {
                    self.queued.remove(&conn);
                    self.out.push_back(o);
                }
                o => self.out.push_back(o),
            }
        }
    }

    fn seal(&mut self, conn: ConnId, data: Bytes) -> Result<(), Bytes> {
        if self.conns.seal(conn, data.clone(), &mut self.out) {
            Ok(())
        } else {
            Err(data)
        }
    }

    /// A session seed for a new connection: drawn only in private mode, so
    /// that plaintext runs draw exactly what they always did.
    fn session_seed(&mut self) -> Option<[u8; 32]> {
        if !self.conns.is_private() {
            return None;
        }
        let mut seed = session::draw_seed(&mut self.rng);
        if let Some(extra) = &mut self.entropy {
            // The node's draw is kept (the same draws with or without
            // entropy); the extra bytes make the seed unguessable.
            for (s, e) in seed.iter_mut().zip(session::draw_seed(extra)) {
                *s ^= e;
            }
        }
        Some(seed)
    }

    // ----- inputs -----

    /// A socket was accepted on the listener; returns its handle. `remote`
    /// is the peer's socket address, used to correct loopback `LISTEN:`
    /// addresses.
    pub fn handle_accept(&mut self, now: Instant, remote: Option<SocketAddr>) -> ConnId {
        let conn = if self.shut_down {
            self.conns.refuse_accept()
        } else {
            let seed = self.session_seed();
            self.conns.accept(now, remote, seed)
        };
        self.collect();
        conn
    }

    /// Something happened on a connection or on disk.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected { conn, local } => self.on_connected(conn, local),
            Input::DialFailed { conn, error } => {
                if let Some(Ended::Dial { addr }) = self.conns.remove(conn).map(|c| c.ended()) {
                    let reason = DialFailure::Io(error);
                    self.dialer.dial_failed(now, &addr, reason, &mut self.rng);
                }
            }
            Input::Received { conn, data } => self.on_received(now, conn, data),
            Input::LanPeer { addr, peer } => self.on_lan_peer(now, addr, peer),
            Input::Closed { conn, reason } => self.on_closed(now, conn, reason),
            Input::Committed { transfer, saved_as } => self.files.on_committed(transfer, saved_as),
            Input::Opened { transfer, size } => self.files.on_opened(transfer, size, &self.peers),
            Input::Read {
                transfer,
                offset,
                data,
            } => self
                .files
                .on_read(transfer, offset, data, &self.peers, &self.queued),
            Input::Flushed { conn, bytes } => {
                let bytes = self.conns.flushed(conn, bytes);
                if let Some(q) = self.queued.get_mut(&conn) {
                    *q = q.saturating_sub(bytes);
                }
                self.files.pump(&self.peers, &self.queued);
                self.collect();
                self.swarm.pump(&self.peers, &self.queued);
            }
            Input::StorageFailed { transfer, error } => {
                self.files.on_storage_failed(transfer, error)
            }
            Input::Shared { path, manifest } => self.swarm.on_shared(path, manifest, &self.peers),
            Input::ShareFailed { path, error } => self.swarm.on_share_failed(path, error),
            Input::PartialOpened { content, claimed } => {
                self.swarm
                    .on_partial_opened(now, content, claimed, &self.peers, &mut self.rng)
            }
            Input::PartialsFound { partials, shares } => {
                self.swarm
                    .on_partials_found(now, partials, shares, &self.peers, &mut self.rng)
            }
            Input::ChunkRead { read, data } => {
                self.swarm
                    .on_chunk_read(now, read, data, &self.peers, &self.queued, &mut self.rng)
            }
            Input::ChunkReadFailed { read, changed, .. } => self.swarm.on_chunk_read_failed(
                now,
                read,
                changed,
                &self.peers,
                &self.queued,
                &mut self.rng,
            ),
            Input::SwarmStorageFailed { content, error } => {
                self.swarm.on_storage_failed(content, error, &self.peers)
            }
            Input::DownloadCommitted { content, path } => {
                self.swarm.on_committed(content, path, &self.peers)
            }
        }
        self.collect();
    }

    /// Runs every deadline due at `now`, earliest first. Calling it again
    /// with the same `now` does nothing more.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(component) = self.due(now) {
            match component {
                Due::Heartbeat => self.heartbeat.handle_timeout(now, &self.peers),
                Due::Discovery => {
                    self.discovery
                        .handle_timeout(now, &self.peers, &mut self.dialer, &mut self.rng)
                }
                Due::Connections => {
                    if let Some(expiry) = self.conns.handle_timeout(now) {
                        self.collect();
                        self.on_expiry(now, expiry);
                    }
                }
                Due::Dialer => {
                    let in_flight = self.conns.dials_in_flight();
                    let step =
                        self.dialer
                            .handle_timeout(now, in_flight, self.peers.len(), &mut self.rng);
                    if let Some(step) = step {
                        self.on_dial_step(now, step);
                    }
                }
                Due::Files => self.files.handle_timeout(now),
                Due::Swarm => self.swarm.handle_timeout(now, &self.peers, &mut self.rng),
            }
            self.collect();
        }
    }

    /// The component with the earliest deadline due at `now`; at equal
    /// times, in the order of [`Due`].
    fn due(&self, now: Instant) -> Option<Due> {
        [
            (self.heartbeat.poll_timeout(), Due::Heartbeat),
            (self.discovery.poll_timeout(), Due::Discovery),
            (self.conns.poll_timeout(), Due::Connections),
            (self.dialer.poll_timeout(), Due::Dialer),
            (self.files.poll_timeout(), Due::Files),
            (self.swarm.poll_timeout(), Due::Swarm),
        ]
        .into_iter()
        .filter_map(|(t, c)| t.filter(|t| *t <= now).map(|t| (t, c)))
        .min()
        .map(|(_, c)| c)
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Node::handle_timeout`] next: the earliest deadline of
    /// any component.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.heartbeat.poll_timeout(),
            self.discovery.poll_timeout(),
            self.conns.poll_timeout(),
            self.dialer.poll_timeout(),
            self.files.poll_timeout(),
            self.swarm.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- application commands -----

    /// Dials `addr` once now (the `/connect` command). Does nothing if it is
    /// already connected or being dialed; refused after [`Node::shutdown`].
    pub fn connect(&mut self, now: Instant, addr: &str) -> Result<(), CommandError> {
        if self.shut_down {
            return Err(CommandError::ShutDown);
        }
        let in_flight = self.conns.dials_in_flight();
        let step = self
            .dialer
            .connect(now, addr, in_flight, self.peers.len(), &mut self.rng)?;
        self.on_dial_step(now, step);
        self.collect();
        Ok(())
    }

    /// Dials `addr` with retries (`bootstrap_attempts`, waiting
    /// `bootstrap_backoff` then doubling) and reports
    /// [`Event::BootstrapSucceeded`] or [`Event::BootstrapFailed`]; refused
    /// after [`Node::shutdown`].
    pub fn bootstrap(&mut self, now: Instant, addr: &str) -> Result<(), CommandError> {
        if self.shut_down {
            return Err(CommandError::ShutDown);
        }
        let step = self.dialer.bootstrap(addr, self.peers.len())?;
        self.collect();
        self.on_dial_step(now, step);
        self.collect();
        Ok(())
    }

    /// Asks every peer for addresses now and dials what is due (`/discover`).
    pub fn discover(&mut self, now: Instant) {
        self.discovery
            .discover(now, &self.peers, &mut self.dialer, &mut self.rng);
        self.collect();
    }

    /// Sends a chat line to every peer; returns how many.
    pub fn broadcast_chat(&mut self, text: &str) -> Result<usize, CommandError> {
        let r = self.chat.broadcast_chat(&self.peers, text);
        self.collect();
        r
    }

    /// Sends a chat line to one peer.
    pub fn send_chat(&mut self, peer: &PeerId, text: &str) -> Result<(), CommandError> {
        let r = self.chat.send_chat(&self.peers, peer, text);
        self.collect();
        r
    }

    /// Sends a binary message to every peer (one shared buffer); returns how many.
    pub fn broadcast_bytes(&mut self, data: Bytes) -> Result<usize, CommandError> {
        let r = self.chat.broadcast_bytes(&self.peers, data);
        self.collect();
        r
    }

    /// Sends a binary message to one peer.
    pub fn send_bytes(&mut self, peer: &PeerId, data: Bytes) -> Result<(), CommandError> {
        let r = self.chat.send_bytes(&self.peers, peer, data);
        self.collect();
        r
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
        let r = self.files.start(&self.peers, target, name, size, sha256);
        self.collect();
        r
    }

    /// Sends the next chunk of an outgoing file to its peers that are still
    /// connected; returns how many that is.
    pub fn send_file_chunk(&mut self, id: TransferId, data: Bytes) -> Result<usize, CommandError> {
        let r = self.files.chunk(&self.peers, id, data);
        self.collect();
        r
    }

    /// Sends `FILEEND` and forgets the outgoing transfer; returns how many
    /// peers got the whole file.
    pub fn finish_file(&mut self, id: TransferId) -> Result<usize, CommandError> {
        let r = self.files.finish(&self.peers, id);
        self.collect();
        r
    }

    /// Sends a whole file to every peer or one: the driver is asked to open
    /// `path` ([`StorageOp::Open`](crate::StorageOp::Open)) and to read it,
    /// once for the checksum and once to send, one chunk at a time; chunks
    /// wait while a target's send queue is over `send_window`. The send
    /// ends with [`Event::FileSent`] or [`Event::FileSendFailed`]; `name` is
    /// what the receivers see.
    pub fn send_file(
        &mut self,
        target: Target,
        path: &str,
        name: &str,
    ) -> Result<TransferId, CommandError> {
        let r = self.files.send_file(&self.peers, target, path, name);
        self.collect();
        r
    }

    // ----- content-addressed sharing (docs/PROTOCOL.md §9) -----

    /// Shares the file or directory tree at `path` (as the driver's
    /// storage names it): the storage hashes it
    /// ([`StorageOp::Share`](crate::StorageOp::Share)), then
    /// [`Event::Shared`] reports its id and every peer that speaks
    /// `swarm/1` is told.
    pub fn share(&mut self, path: &str) -> Result<(), CommandError> {
        self.refuse_if_shut_down()?;
        let r = self.swarm.share(path, None, &self.peers);
        self.collect();
        r
    }

    /// Stops sharing content (`id`: 64 hex digits or a unique prefix of 8
    /// or more). Refused after [`Node::shutdown`], like `share`.
    pub fn unshare(&mut self, id: &str) -> Result<ContentId, CommandError> {
        self.refuse_if_shut_down()?;
        let r = self.swarm.unshare(id, &self.peers);
        self.collect();
        r
    }

    /// Everything the mesh offers (our peers' indexes) and what we share.
    pub fn files(&self) -> Vec<Listing> {
        self.swarm.files()
    }

    /// Downloads content by id from every peer that holds it, into the
    /// downloads directory or `dir`; progress and the end arrive as
    /// `Download*` events. A download of the same id already running is
    /// not started twice.
    pub fn get(
        &mut self,
        now: Instant,
        id: &str,
        dir: Option<String>,
    ) -> Result<ContentId, CommandError> {
        self.refuse_if_shut_down()?;
        let r = self.swarm.get(now, id, dir, &self.peers, &mut self.rng);
        self.collect();
        r
    }

    /// Offers the file or tree at `path` (shared first if it is not) to
    /// one peer or every peer that speaks `swarm/1`.
    pub fn offer(&mut self, path: &str, target: Target) -> Result<(), CommandError> {
        self.refuse_if_shut_down()?;
        let r = self.swarm.offer(path, target, &self.peers);
        self.collect();
        r
    }

    /// Accepts an offer: downloads it from the offerer and every other holder.
    pub fn accept(&mut self, now: Instant, id: &str) -> Result<ContentId, CommandError> {
        self.refuse_if_shut_down()?;
        let r = self.swarm.accept(now, id, &self.peers, &mut self.rng);
        self.collect();
        r
    }

    /// Declines an offer; the offerer is told.
    pub fn decline(&mut self, id: &str) -> Result<ContentId, CommandError> {
        let r = self.swarm.decline(id, &self.peers);
        self.collect();
        r
    }

    /// Cancels a download and deletes what it fetched.
    pub fn cancel_download(&mut self, id: &str) -> Result<ContentId, CommandError> {
        let r = self.swarm.cancel(id, &self.peers);
        self.collect();
        r
    }

    /// Downloads in progress.
    pub fn downloads(&self, now: Instant) -> Vec<DownloadInfo> {
        self.swarm.downloads(now)
    }

    fn refuse_if_shut_down(&self) -> Result<(), CommandError> {
        if self.shut_down {
            Err(CommandError::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Stops an outgoing transfer without sending `FILEEND` (the receivers
    /// discard it after their idle timeout).
    pub fn abort_file(&mut self, id: TransferId) -> bool {
        let aborted = self.files.abort(id) || self.files.abort_send(id);
        self.collect();
        aborted
    }

    /// Peers an outgoing transfer is still going to: once `FILESTART` is
    /// out, those still on the connection it went on.
    pub fn file_targets(&self, id: TransferId) -> Option<Vec<PeerId>> {
        self.files.targets(id)
    }

    /// Closes every connection, aborts incoming transfers and stops all
    /// timers. The node does nothing afterwards.
    pub fn shutdown(&mut self, _now: Instant) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        // The goodbyes go out before the closes (docs/PROTOCOL.md §7.5).
        self.ext.leave(&self.peers);
        self.collect();
        self.conns.shutdown(&mut self.peers);
        self.collect();
        self.files.shutdown();
        self.swarm.shutdown();
        self.ext.shutdown();
        self.dialer.shutdown();
        self.discovery.shutdown();
        self.heartbeat.shutdown();
        self.collect();
    }

    // ----- connection lifecycle -----

    fn on_connected(&mut self, conn: ConnId, local: Option<SocketAddr>) {
        if self.conns.connected(conn).is_none() {
            return;
        }
        let listen = self.listen_addr(local);
        self.dialer.book.mark_ours(&listen);
        self.conns.transmit(conn, self.hello.clone());
        self.conns
            .transmit(conn, Message::Listen(listen.to_string()).to_bytes());
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

    fn on_received(&mut self, now: Instant, conn: ConnId, data: Bytes) {
        match self.conns.feed(conn, data) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.protocol_error(now, conn, e);
                return;
            }
        }
        while let Some(next) = self.conns.next(now, conn) {
            match next {
                Next::Error(e) => {
                    self.protocol_error(now, conn, e);
                    return;
                }
                Next::Ignored => {}
                Next::Redirect(list) => self.discovery.on_peers(
                    now,
                    None,
                    list,
                    self.peers.len(),
                    &mut self.dialer,
                    &mut self.rng,
                ),
                Next::Message {
                    phase: Phase::AwaitHello | Phase::AwaitHelloReply,
                    msg: Message::Hello { id, .. },
                } if self.conns.check_hello(conn, &id, &self.peers).is_some() => {
                    // Private mode: the hello's id is not the key's.
                    if let Some(e) = self.conns.check_hello(conn, &id, &self.peers) {
                        self.protocol_error(now, conn, e.into());
                    }
                    return;
                }
                Next::Message { phase, msg } => match phase {
                    Phase::AwaitHello => self.on_hello(now, conn, msg),
                    Phase::AwaitHelloReply => self.on_hello_reply(now, conn, msg),
                    Phase::AwaitListen | Phase::Established => self.on_message(now, conn, msg),
                },
            }
            self.collect();
        }
    }

    /// Listener: the dialer's hello (docs/PROTOCOL.md §2.1, §2.4, §2.5).
    fn on_hello(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Message::Hello { id, name } = msg else {
            return;
        };
        self.conns.set_hello_id(conn, &id);
        let refusal = if id == self.id {
            // Answer with our own hello so that our dialing side recognises
            // itself and never dials this address again.
            Some((RejectReason::SelfConnection, self.hello.clone()))
        } else if self.peers.contains(&id) {
            let line = Bytes::from_static(codec::DUPLICATE_LINE);
            Some((RejectReason::Duplicate, line))
        } else if self.peers.len() >= self.config.connections.max_peers {
            // Extension (docs/PROTOCOL.md §2.4): after MAX_PEERS, point the
            // dialer at other nodes. A reference dialer stops reading there.
            let mut refusal = codec::MAX_PEERS_LINE.to_vec();
            let list = self.shareable(None, conn);
            if !list.is_empty() {
                refusal.extend_from_slice(&codec::peers_line(&list));
            }
            Some((RejectReason::MaxPeers, Bytes::from(refusal)))
        } else {
            None
        };
        if let Some((reason, line)) = refusal {
            self.conns.refuse(conn, id, reason, line);
            return;
        }
        self.conns.transmit(conn, self.hello.clone());
        self.establish(now, conn, id, name, false);
    }

    /// Dialer: the listener's answer to our hello.
    fn on_hello_reply(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(ConnState::AwaitHelloReply { addr }) = self.conns.get(conn).map(|c| &c.state)
        else {
            return;
        };
        let addr = addr.clone();
        let rejected = |reason| Event::Rejected {
            conn,
            addr: Some(addr.clone()),
            peer: None,
            by_remote: true,
            reason,
        };
        match msg {
            Message::Duplicate => {
                self.conns.close(conn);
                self.conns.report(rejected(RejectReason::Duplicate));
                self.collect();
                self.dialer.on_duplicate(now, &addr);
            }
            Message::MaxPeers => {
                self.conns.set_refused(conn);
                self.conns.report(rejected(RejectReason::MaxPeers));
                self.collect();
                self.dialer
                    .dial_failed(now, &addr, DialFailure::MaxPeers, &mut self.rng);
            }
            Message::Hello { id, .. } if id == self.id => {
                self.conns.close(conn);
                self.dialer.on_self(&addr);
                self.conns.report(rejected(RejectReason::SelfConnection));
                self.collect();
                let reason = DialFailure::OwnAddress;
                self.dialer.dial_failed(now, &addr, reason, &mut self.rng);
            }
            Message::Hello { id, .. }
                if self.peers.len() >= self.config.connections.max_peers
                    && !self.peers.contains(&id) =>
            {
                // Several of our dials completed at once: keep the limit on
                // this side too.
                self.conns.close(conn);
                self.conns.report(Event::Rejected {
                    conn,
                    addr: Some(addr.clone()),
                    peer: Some(id),
                    by_remote: false,
                    reason: RejectReason::MaxPeers,
                });
                self.collect();
                self.dialer.on_full(now, &addr);
            }
            Message::Hello { id, name } => {
                self.establish(now, conn, id, name, true);
                self.dialer.dial_ended_ok(&addr);
            }
            _ => {}
        }
    }

    /// A handshake completed on `conn`; the peer is greeted unless the
    /// connection is a duplicate being retired.
    fn establish(&mut self, now: Instant, conn: ConnId, id: PeerId, name: String, outbound: bool) {
        let Some(est) =
            self.conns
                .establish(now, conn, id.clone(), name, outbound, &mut self.peers)
        else {
            return;
        };
        if let Some(a) = &est.addr {
            self.dialer.on_connected(a, &id, est.merged);
        }
        self.collect();
        if est.kept {
            let list = self.shareable(Some(&id), conn);
            self.discovery.send_peers(conn, &list);
            if outbound {
                self.discovery.request(conn);
            }
            self.collect();
            self.heartbeat.greet(now, conn);
            self.collect();
            self.ext.greet(conn);
        }
        self.collect();
    }

    /// What we share in `PEERS` with `to` on `conn` (docs/PROTOCOL.md §3.4).
    fn shareable(&mut self, to: Option<&PeerId>, conn: ConnId) -> Vec<Addr> {
        self.discovery.shareable(
            to,
            conn,
            &self.peers,
            &self.conns,
            &self.dialer,
            &mut self.rng,
        )
    }

    /// A frame on an established connection (or the listener's first one,
    /// which may be `LISTEN:`), routed to the component it is for.
    fn on_message(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let is_listen = matches!(msg, Message::Listen(_));
        let Some((peer, first)) = self
            .conns
            .on_established_frame(conn, is_listen, &self.peers)
        else {
            return;
        };
        self.collect();
        if first {
            if let Message::Listen(text) = &msg {
                self.on_listen(conn, &peer, text);
                self.conns.announce(&peer, &mut self.peers);
                return;
            }
            self.conns.announce(&peer, &mut self.peers);
            self.collect();
        }
        // Replies go on the peer's current connection (a merged duplicate may
        // still be draining on this one).
        let reply_on = self.peers.conn_of(&peer);
        match msg {
            Message::Ping => self.heartbeat.on_ping(reply_on),
            Message::Pong => self.heartbeat.on_pong(now, conn, peer),
            Message::RequestPeers => {
                self.discovery.on_request(&peer);
                if let Some(rc) = reply_on {
                    let list = self.shareable(Some(&peer), rc);
                    self.discovery.send_peers(rc, &list);
                }
            }
            Message::Peers(list) => self.discovery.on_peers(
                now,
                Some(&peer),
                list,
                self.peers.len(),
                &mut self.dialer,
                &mut self.rng,
            ),
            Message::Chat(text) => self.chat.on_chat(&self.peers, peer, text),
            Message::Bytes(data) if data.starts_with(EXT_PREFIX) => {
                match self.ext.on_frame(conn, &peer, data) {
                    Frame::Leave => self.on_leave(now, conn, &peer),
                    Frame::Caps => {
                        self.collect();
                        if self.ext.speaks(&peer, crate::extensions::SWARM) {
                            self.swarm.on_speaker(&peer, &self.peers);
                        }
                    }
                    Frame::Swarm(body) => {
                        self.collect();
                        self.swarm.on_frame(
                            now,
                            &peer,
                            body,
                            &self.peers,
                            &self.queued,
                            &mut self.rng,
                        );
                    }
                    Frame::Handled => {}
                }
            }
            Message::Bytes(data) => {
                if let Some(data) = self.files.on_bytes(now, &peer, data) {
                    self.chat.on_bytes(peer, data);
                }
            }
            // Outside the handshake these lines are chat to the reference;
            // from_frame already maps them so, but stay total.
            Message::Listen(_) | Message::Hello { .. } | Message::Duplicate | Message::MaxPeers => {
            }
        }
    }

    /// Listener: the dialer's `LISTEN:` line (docs/PROTOCOL.md §2.3).
    fn on_listen(&mut self, conn: ConnId, peer: &PeerId, text: &str) {
        let Some(addr) = self.conns.listen_addr(conn, text) else {
            return;
        };
        if self.dialer.book.is_ours(&addr) {
            return;
        }
        let current = self
            .conns
            .set_listen_addr(conn, peer, &addr, &mut self.peers);
        let new = self.dialer.on_listen(&addr, peer);
        if new && current {
            self.discovery.gossip(peer, &addr, &self.peers, &self.conns);
        }
        self.collect();
    }

    /// An announcement heard on the LAN: our own marks the address ours
    /// (a multi-homed host hears itself on every interface), an established
    /// peer's is nothing new, anything else is learned like a `PEERS` entry.
    fn on_lan_peer(&mut self, now: Instant, addr: String, peer: Option<String>) {
        let peer = peer.and_then(|p| PeerId::parse(&p).ok());
        if peer.as_ref() == Some(&self.id) {
            if let Ok(a) = Addr::parse(&addr) {
                self.dialer.book.mark_ours(&a);
            }
            return;
        }
        if peer.is_some_and(|p| self.peers.contains(&p)) {
            return;
        }
        self.discovery.on_peers(
            now,
            None,
            vec![addr],
            self.peers.len(),
            &mut self.dialer,
            &mut self.rng,
        );
        self.collect();
    }

    /// `peer` said goodbye on `conn`: it is gone now, not after a timeout.
    /// A goodbye on a duplicate being retired changes nothing.
    fn on_leave(&mut self, now: Instant, conn: ConnId, peer: &PeerId) {
        if !self.peers.is_current(peer, conn) {
            return;
        }
        let name = self.conns.close(conn).and_then(|c| c.name);
        self.collect();
        self.peer_lost(now, conn, peer, &name, DisconnectReason::Left);
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        self.heartbeat.on_closed(conn, None);
        // The remote closing during our Noise handshake is how a listener
        // with another network key (or none) answers: say so.
        let why = if self.conns.in_noise_handshake(conn) {
            DialFailure::Protocol(SessionError::ClosedInHandshake.into())
        } else {
            DialFailure::Closed(reason.clone())
        };
        let Some(c) = self.conns.remove(conn) else {
            return;
        };
        self.conn_ended(
            now,
            conn,
            c.ended(),
            DisconnectReason::Closed { reason },
            why,
        );
    }

    fn on_expiry(&mut self, now: Instant, expiry: Expiry) {
        match expiry {
            Expiry::Handled => {}
            Expiry::Protocol(conn, error) => self.protocol_error(now, conn, error),
            Expiry::Idle {
                conn,
                peer,
                name,
                silent_ms,
            } => self.peer_lost(
                now,
                conn,
                &peer,
                &name,
                DisconnectReason::Timeout { silent_ms },
            ),
        }
    }

    fn on_dial_step(&mut self, now: Instant, step: Step) {
        if let Step::Dial(addr) = step {
            let seed = self.session_seed();
            let conn = self.conns.dial(now, &addr, seed);
            self.dialer.on_dial(&addr, conn);
        }
    }

    /// A connection is gone: an established peer is lost, a dial failed.
    fn conn_ended(
        &mut self,
        now: Instant,
        conn: ConnId,
        ended: Ended,
        reason: DisconnectReason,
        dial_error: DialFailure,
    ) {
        match ended {
            Ended::Peer { peer, name } => self.peer_lost(now, conn, &peer, &name, reason),
            Ended::Dial { addr } => self
                .dialer
                .dial_failed(now, &addr, dial_error, &mut self.rng),
            Ended::Nothing => {}
        }
        self.collect();
    }

    /// Removes `peer` if `conn` is its current connection; its incoming
    /// transfers end and its addresses may be dialed again.
    fn peer_lost(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: &PeerId,
        name: &Option<String>,
        reason: DisconnectReason,
    ) {
        if !self
            .conns
            .peer_lost(conn, peer, name, reason, &mut self.peers)
        {
            return;
        }
        self.ext.on_peer_lost(peer);
        self.heartbeat.on_closed(conn, Some(peer));
        self.collect();
        self.files.on_peer_gone(peer, &self.peers, &self.queued);
        self.collect();
        self.swarm
            .on_peer_gone(now, peer, &self.peers, &mut self.rng);
        self.collect();
        self.dialer.on_peer_gone(now, peer, &mut self.rng);
    }

    /// Closes a connection that broke the protocol, reporting it.
    fn protocol_error(&mut self, now: Instant, conn: ConnId, error: ProtocolError) {
        let Some(ended) = self.conns.protocol_error(conn, &error) else {
            return;
        };
        self.collect();
        let dial_error = DialFailure::Protocol(error.clone());
        self.conn_ended(
            now,
            conn,
            ended,
            DisconnectReason::Protocol { error },
            dial_error,
        );
    }
}

/// Components with deadlines, in the order they run at equal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Heartbeat,
    Discovery,
    Connections,
    Dialer,
    Files,
    Swarm,
}
