//! The state shared between the simulated hosts and the outer loop.
//!
//! Every host's driver calls its tap synchronously with each core input and
//! output; the tap lands in [`World::on_tap`], which hashes the event into
//! the trace, follows connections ([`crate::track`]), keeps each node's peer
//! table as its events describe it, counts coverage and runs the safety
//! checks that can be decided at once. The outer loop calls
//! [`World::end_step`] after every turmoil step for the checks that look at
//! the whole mesh.
//!
//! All hosts run on turmoil's per-host current-thread runtimes inside one OS
//! thread, so the mutex is never contended and the order of events is the
//! simulation's order: deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use p2p_core::codec::{Frame, Limits};
use p2p_core::{
    CloseReason, ConnId, DialFailure, DisconnectReason, Event, Input, Output, PeerId, PeerInfo,
    ProtocolError, RejectReason, StorageOp, TransferId,
};
use p2p_net::{MemStorage, TapEvent};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::{SimConfig, Timers, PORT};
use crate::coverage::Coverage;
use crate::graph::{self, Graph};
use crate::invariants::*;
use crate::trace::Trace;
use crate::track::{ConnTrack, Pair, PairKey, DIALER, LISTENER};

/// The world, shared by every host's tap and the outer loop.
pub(crate) type Shared = Arc<Mutex<World>>;

/// Locks the world. A panic while it was held is already reported as a
/// violation by the panic hook; the state is still usable for the report.
pub(crate) fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prefix of every chat line the simulator sends.
pub(crate) const CHAT_PREFIX: &str = "sim-chat ";

/// What the outer loop asks a host's software to do.
#[derive(Debug)]
pub(crate) enum HostCmd {
    /// Broadcast a chat line.
    Chat(String),
    /// Broadcast a file registered with [`World::add_file`].
    SendFile(String),
    /// Report the node's peer table.
    Snapshot,
    /// Share a file or tree of the host's storage (swarm).
    Share(String),
    /// Download content by id, asking again until the node takes it
    /// (swarm: it knows no holder until an index arrives).
    Get(p2p_core::ContentId),
}

/// One simulated host across its lives.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    /// Lives begun (the current life is `lives - 1`).
    pub(crate) lives: u32,
    /// The current life's node is running.
    pub(crate) alive: bool,
    pub(crate) id: Option<PeerId>,
    pub(crate) conns: BTreeMap<ConnId, ConnTrack>,
    /// Established connections by remote id (more than one is a violation
    /// once the node finished reacting).
    pub(crate) est: BTreeMap<PeerId, BTreeSet<ConnId>>,
    /// The peer table as the node's events describe it.
    pub(crate) peers: BTreeSet<PeerId>,
    pub(crate) storage: Option<MemStorage>,
    cmds: Option<mpsc::UnboundedSender<HostCmd>>,
    pub(crate) snapshot: Option<Vec<PeerInfo>>,
    /// File name of each commit in flight.
    commit_names: BTreeMap<TransferId, String>,
}

impl Host {
    /// The current life.
    pub(crate) fn life(&self) -> u32 {
        self.lives.saturating_sub(1)
    }
}

/// A crashed node's id.
#[derive(Debug, Clone)]
struct Dead {
    silent: bool,
}

/// A file the simulation broadcasts.
#[derive(Debug)]
pub(crate) struct FileSource {
    pub(crate) sha256: [u8; 32],
    pub(crate) data: Arc<Vec<u8>>,
    pub(crate) sender: usize,
    pub(crate) sender_life: u32,
    /// Peers reached, or why the send failed; `None` while running.
    pub(crate) done: Option<Result<usize, String>>,
}

/// `host` in `life` must hold `name` if the connection `key` to the sender
/// stays up: it was established with the sender when the send started, or
/// the sender transmitted `FILEEND` to it on `key`.
#[derive(Debug)]
pub(crate) struct FileExpect {
    pub(crate) name: String,
    pub(crate) host: usize,
    pub(crate) life: u32,
    pub(crate) key: Option<PairKey>,
}

/// A chat line the simulation sent.
#[derive(Debug, Default)]
pub(crate) struct ChatMsg {
    pub(crate) sender_id: Option<PeerId>,
    /// Receivers that must get it while the connection stays up: those
    /// established with the sender when it was sent, and those it was
    /// transmitted to: (host, life, connection).
    pub(crate) expected: Vec<(usize, u32, Option<PairKey>)>,
    /// Transmissions of the line to peers.
    pub(crate) transmitted: usize,
    pub(crate) delivered: BTreeMap<(usize, u32), u32>,
}

/// Peer-table counts over time, for the plot.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Per host: (simulated ms, established peers).
    pub hosts: Vec<Vec<(u64, u32)>>,
    /// Messages and bytes written by the whole mesh over time.
    pub traffic: crate::metrics::Traffic,
}

/// Pairs of (host, peer id) that a partition separated, to count
/// rediscoveries after the repair.
#[derive(Debug, Default)]
pub(crate) struct PartitionWatch {
    pub(crate) repaired: bool,
    lost: BTreeSet<(usize, PeerId)>,
}

/// The shared state. See the module docs.
pub(crate) struct World {
    /// `max_peers` of every node.
    max_peers: usize,
    /// Every host's streams, for the `reset` fault.
    pub(crate) resets: crate::transport::Resets,
    pub(crate) timers: Timers,
    limits: Limits,
    tick: Duration,
    pub(crate) hosts: Vec<Host>,
    by_ip: BTreeMap<IpAddr, usize>,
    /// Ids of running nodes.
    live_ids: BTreeMap<PeerId, usize>,
    /// Every id ever: (host, life).
    id_owner: BTreeMap<PeerId, (usize, u32)>,
    dead: BTreeMap<PeerId, Dead>,
    /// (deadline, id): the id must have left every table by then.
    stale_watch: BTreeSet<(Duration, PeerId)>,
    pub(crate) pairs: BTreeMap<PairKey, Pair>,
    pub(crate) trace: Trace,
    pub(crate) coverage: Coverage,
    pub(crate) violations: Vec<Violation>,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    entries_total: usize,
    entries_good: usize,
    /// Hosts the scenario crashed and has not restarted.
    pub(crate) down: BTreeSet<usize>,
    est_dirty: BTreeSet<usize>,
    cross_dirty: BTreeSet<(usize, usize)>,
    /// Host pairs whose ends keep different connections, since when.
    disagree: BTreeMap<(usize, usize), Duration>,
    /// Simulated time of the outer loop (for events outside hosts).
    pub(crate) now: Duration,
    /// Last change of any peer table.
    pub(crate) last_peer_change: Duration,
    /// Last change of any peer table or connection state.
    pub(crate) last_conn_change: Duration,
    /// Whether the full mesh held at the end of the last step.
    pub(crate) mesh_full: bool,
    /// When the full mesh first held.
    pub(crate) first_mesh_at: Option<Duration>,
    pub(crate) chats: BTreeMap<String, ChatMsg>,
    pub(crate) files: BTreeMap<String, FileSource>,
    pub(crate) file_expect: Vec<FileExpect>,
    /// (host, life, name) -> saved as.
    pub(crate) received_files: BTreeMap<(usize, u32, String), String>,
    pub(crate) series: Option<Series>,
    /// Any timeout between live peers is a violation (latency scenario).
    pub(crate) strict_timeouts: bool,
    pub(crate) partition: Option<PartitionWatch>,
    /// Hosts whose input being processed carried bytes found corrupted:
    /// what the node makes of them is already a violation.
    corrupt_input: BTreeSet<usize>,
    /// Live peers dropped on a closed connection: (host, peer) -> when.
    recent_drops: BTreeMap<(usize, PeerId), Duration>,
    /// Armed deliberate bug (see [`crate::Sabotage`]).
    pub(crate) sabotage: Arc<AtomicBool>,
    /// Set once the full mesh first held (some deliberate bugs wait for it).
    pub(crate) meshed: Arc<AtomicBool>,
    /// Print events to stderr.
    log: bool,
    /// Counters for the report's metrics (see `metrics.rs`).
    pub(crate) metrics: crate::metrics::Counters,
    /// Private mode: connections are tracked as Noise messages.
    private: bool,
    /// Per host: the connection of the input its node is handling (events
    /// a node emits while handling `Received` belong to that connection).
    last_input: Vec<Option<ConnId>>,
    /// The intruders scenario's intruder hosts (see `intruder.rs`).
    pub(crate) intruders: crate::intruder::Intruders,
    /// The lan scenario's hosts of another network (see `outsider.rs`).
    pub(crate) outsiders: crate::outsider::Outsiders,
    /// The swarm scenario's content, roles and record (see `swarm.rs`).
    pub(crate) swarm: crate::swarm::Swarm,
}

impl World {
    pub(crate) fn new(cfg: &SimConfig) -> Self {
        let node = cfg.node_config(0);
        World {
            timers: cfg.timers(),
            limits: Limits {
                max_line_len: node.connections.max_line_len,
                max_bytes_per_message: node.connections.max_bytes_per_message,
            },
            tick: cfg.tick,
            hosts: Vec::new(),
            by_ip: BTreeMap::new(),
            live_ids: BTreeMap::new(),
            id_owner: BTreeMap::new(),
            dead: BTreeMap::new(),
            stale_watch: BTreeSet::new(),
            pairs: BTreeMap::new(),
            trace: Trace::new(cfg.log),
            coverage: Coverage::default(),
            violations: Vec::new(),
            messages: 0,
            bytes: 0,
            entries_total: 0,
            entries_good: 0,
            down: BTreeSet::new(),
            est_dirty: BTreeSet::new(),
            cross_dirty: BTreeSet::new(),
            disagree: BTreeMap::new(),
            now: Duration::ZERO,
            last_peer_change: Duration::ZERO,
            last_conn_change: Duration::ZERO,
            mesh_full: false,
            first_mesh_at: None,
            chats: BTreeMap::new(),
            files: BTreeMap::new(),
            file_expect: Vec::new(),
            received_files: BTreeMap::new(),
            series: cfg.plot.then(Series::default),
            strict_timeouts: false,
            partition: None,
            resets: Default::default(),
            max_peers: cfg.effective_max_peers(),
            corrupt_input: BTreeSet::new(),
            recent_drops: BTreeMap::new(),
            sabotage: Arc::new(AtomicBool::new(cfg.sabotage.is_some())),
            meshed: Arc::new(AtomicBool::new(false)),
            log: cfg.log,
            metrics: crate::metrics::Counters::default(),
            private: cfg.network_key.is_some(),
            last_input: Vec::new(),
            intruders: crate::intruder::Intruders::default(),
            outsiders: crate::outsider::Outsiders::default(),
            swarm: crate::swarm::Swarm::new(cfg),
        }
    }

    /// The connection of the input `h`'s node is handling, if one.
    pub(crate) fn input_conn(&self, h: usize) -> Option<ConnId> {
        self.last_input.get(h).copied().flatten()
    }

    /// A new connection's tracker.
    fn new_track(&self, side: usize) -> ConnTrack {
        if self.private {
            ConnTrack::private(side, self.limits)
        } else {
            ConnTrack::new(side, self.limits)
        }
    }

    // ----- hosts -----

    pub(crate) fn add_host(&mut self, name: String, ip: IpAddr) -> usize {
        let idx = self.hosts.len();
        self.by_ip.insert(ip, idx);
        self.hosts.push(Host {
            name,
            ip,
            lives: 0,
            alive: false,
            id: None,
            conns: BTreeMap::new(),
            est: BTreeMap::new(),
            peers: BTreeSet::new(),
            storage: None,
            cmds: None,
            snapshot: None,
            commit_names: BTreeMap::new(),
        });
        self.last_input.push(None);
        if let Some(s) = &mut self.series {
            s.hosts.push(Vec::new());
        }
        idx
    }

    /// The host at `ip`, if one of the simulated peers.
    pub(crate) fn host_at(&self, ip: IpAddr) -> Option<usize> {
        self.by_ip.get(&ip).copied()
    }

    pub(crate) fn host_name(&self, h: usize) -> String {
        self.hosts
            .get(h)
            .map_or_else(|| format!("host {h}"), |x| x.name.clone())
    }

    /// A host's software starts a new life; returns its number.
    pub(crate) fn begin_life(&mut self, h: usize) -> u32 {
        let host = &mut self.hosts[h];
        host.lives += 1;
        host.alive = false;
        host.life()
    }

    /// The node of `h`'s life `life` is up with `id`.
    pub(crate) fn host_started(
        &mut self,
        h: usize,
        life: u32,
        id: PeerId,
        storage: MemStorage,
        cmds: mpsc::UnboundedSender<HostCmd>,
        at: Duration,
    ) {
        if self.hosts[h].life() != life {
            return;
        }
        if let Some(&(other, _)) = self.id_owner.get(&id) {
            let detail = format!("node id {id} drawn twice (also host {other})");
            self.violate(PEER_TABLE_HANDSHAKED, at, Some(h), detail);
        }
        self.trace.note(at, format_args!("start {h}.{life} {id}"));
        self.live_ids.insert(id.clone(), h);
        self.id_owner.insert(id.clone(), (h, life));
        let host = &mut self.hosts[h];
        host.alive = true;
        host.id = Some(id);
        host.conns.clear();
        host.est.clear();
        host.peers.clear();
        host.storage = Some(storage);
        host.cmds = Some(cmds);
        host.snapshot = None;
        host.commit_names.clear();
        // Incremental (a full recount per start was 4 % of a 200-peer run):
        // h starts with no peers, and only entries naming the new id turn
        // good; the full recount stays for crashes.
        let id = self.hosts[h].id.clone();
        let newly_good = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(o, host)| *o != h && host.alive)
            .filter(|(_, host)| id.as_ref().is_some_and(|id| host.peers.contains(id)))
            .count();
        self.entries_good += newly_good;
        for cmd in self.swarm_standing(h) {
            self.command(h, cmd, at);
        }
        debug_assert!({
            let (total, good) = (self.entries_total, self.entries_good);
            self.recount_mesh();
            (total, good) == (self.entries_total, self.entries_good)
        });
        self.plot_point(h, at, 0);
    }

    /// The outer loop crashes `h` (its runtime is dropped right after).
    pub(crate) fn host_crashed(&mut self, h: usize, at: Duration, silent: bool) {
        self.down.insert(h);
        if !self.hosts[h].alive {
            return;
        }
        self.swarm_crashed(h);
        let host = &mut self.hosts[h];
        host.alive = false;
        host.cmds = None;
        host.storage = None;
        host.snapshot = None;
        host.peers.clear();
        host.est.clear();
        let conns: Vec<ConnId> = host.conns.keys().copied().collect();
        if let Some(id) = host.id.take() {
            self.live_ids.remove(&id);
            self.dead.insert(id.clone(), Dead { silent });
            // The node's last frame left at the latest now; every peer's
            // timer fires by its last_seen plus the peer timeout. The slack
            // covers frames still in flight and tick rounding.
            let slack = Duration::from_millis(250) + self.tick * 2;
            self.stale_watch
                .insert((at + self.timers.peer_timeout + slack, id));
        }
        for conn in conns {
            self.untrack(h, conn);
        }
        self.recount_mesh();
        self.plot_point(h, at, 0);
        // Every pair involving h may have changed.
        for other in 0..self.hosts.len() {
            if other != h {
                self.cross_dirty.insert((h.min(other), h.max(other)));
            }
        }
    }

    /// The outer loop restarts `h`.
    pub(crate) fn host_restarting(&mut self, h: usize) {
        self.down.remove(&h);
    }

    /// Sends a command to a running host; returns whether it was delivered.
    pub(crate) fn command(&mut self, h: usize, cmd: HostCmd, at: Duration) -> bool {
        let Some(host) = self.hosts.get(h) else {
            return false;
        };
        if !host.alive {
            return false;
        }
        self.trace
            .note(at, format_args!("command {h}.{} {cmd:?}", host.life()));
        let sender_id = host.id.clone();
        match &cmd {
            HostCmd::Chat(text) => {
                self.metrics_chat_sent(text, at);
                let linked = self.established_with(h);
                let msg = self.chats.entry(text.clone()).or_default();
                msg.sender_id = sender_id;
                msg.expected.extend(linked);
            }
            HostCmd::SendFile(name) => {
                let linked = self.established_with(h);
                self.file_expect
                    .extend(linked.into_iter().map(|(host, life, key)| FileExpect {
                        name: name.clone(),
                        host,
                        life,
                        key,
                    }));
            }
            HostCmd::Snapshot | HostCmd::Share(_) | HostCmd::Get(_) => {}
        }
        self.hosts[h]
            .cmds
            .as_ref()
            .is_some_and(|c| c.send(cmd).is_ok())
    }

    /// The running hosts `h` has an established connection with, by the
    /// tap: (host, life, connection).
    fn established_with(&self, h: usize) -> Vec<(usize, u32, Option<PairKey>)> {
        let mut out = Vec::new();
        for t in self.hosts[h].conns.values() {
            let Some(id) = &t.established else { continue };
            let Some(&r) = self.live_ids.get(id) else {
                continue;
            };
            if r != h {
                out.push((r, self.hosts[r].life(), t.key));
            }
        }
        out
    }

    /// Running hosts, in index order.
    pub(crate) fn alive_hosts(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&h| self.hosts[h].alive)
            .collect()
    }

    // ----- files and chat -----

    /// Registers a file that `sender` will broadcast.
    pub(crate) fn add_file(&mut self, name: &str, data: Arc<Vec<u8>>, sender: usize) {
        let sha256: [u8; 32] = Sha256::digest(data.as_slice()).into();
        let sender_life = self.hosts[sender].life();
        self.files.insert(
            name.to_owned(),
            FileSource {
                sha256,
                data,
                sender,
                sender_life,
                done: None,
            },
        );
    }

    /// A host's `send_file` returned. A live sender's send must not fail.
    pub(crate) fn file_send_done(&mut self, name: &str, result: Result<usize, String>) {
        let Some(f) = self.files.get_mut(name) else {
            return;
        };
        if f.done.is_some() {
            return;
        }
        f.done = Some(result.clone());
        let sender = f.sender;
        let lived = self.hosts[sender].alive && self.hosts[sender].life() == f.sender_life;
        if let (Err(e), true) = (result, lived) {
            let at = turmoil::sim_elapsed().unwrap_or(self.now);
            let detail = format!("sending {name} failed: {e}");
            self.violate(TRANSFERS_COMPLETE, at, Some(sender), detail);
        }
    }

    /// Host `h`'s software in life `life` failed to do what it was asked.
    pub(crate) fn host_failed(&mut self, h: usize, life: u32, detail: String) {
        let host = &self.hosts[h];
        if host.alive && host.life() == life {
            let at = turmoil::sim_elapsed().unwrap_or(self.now);
            self.violate(NO_PANIC, at, Some(h), detail);
        }
    }

    /// Whether every file send returned, or its sender died.
    pub(crate) fn sends_settled(&self) -> bool {
        self.files.values().all(|f| {
            f.done.is_some()
                || !self.hosts[f.sender].alive
                || self.hosts[f.sender].life() != f.sender_life
        })
    }

    /// Part files still present on running hosts.
    pub(crate) fn part_files(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.alive)
            .filter_map(|h| h.storage.as_ref())
            .map(|s| s.parts().len())
            .sum()
    }

    // ----- the tap -----

    /// Every input and output of host `h`'s node in life `life`.
    pub(crate) fn on_tap(&mut self, h: usize, life: u32, ev: &TapEvent<'_>) {
        let at = turmoil::sim_elapsed().unwrap_or(self.now);
        self.trace.tap(h, life, at, ev);
        let Some(host) = self.hosts.get(h) else {
            return;
        };
        if !host.alive || host.life() != life {
            return;
        }
        if self.log {
            log_lifecycle(&host.name, at, ev);
        }
        if matches!(
            ev,
            TapEvent::Accepted { .. }
                | TapEvent::Input(
                    Input::Connected { .. } | Input::Closed { .. } | Input::DialFailed { .. }
                )
                | TapEvent::Output(Output::Dial { .. } | Output::Close { .. })
        ) {
            self.last_conn_change = at;
        }
        if matches!(ev, TapEvent::Input(_)) {
            self.corrupt_input.remove(&h);
        }
        self.last_input[h] = match ev {
            TapEvent::Input(Input::Received { conn, .. } | Input::Connected { conn, .. }) => {
                Some(*conn)
            }
            TapEvent::Input(_) | TapEvent::Accepted { .. } => None,
            TapEvent::Output(_) => self.last_input[h],
        };
        self.metrics_on_tap(at, ev);
        match ev {
            TapEvent::Accepted { conn, remote } => {
                self.member_touched(h, *remote, false, at);
                self.on_accept(h, *conn, *remote)
            }
            TapEvent::Input(input) => match input {
                Input::Connected { conn, local } => self.on_connected(h, *conn, *local),
                Input::DialFailed { conn, .. } | Input::Closed { conn, .. } => {
                    self.intruder_conn_ended(h, *conn, at);
                    self.untrack(h, *conn)
                }
                Input::Received { conn, data } => self.on_received(h, *conn, data, at),
                Input::Committed { transfer, saved_as } => {
                    self.on_committed(h, *transfer, saved_as, at)
                }
                Input::StorageFailed { .. }
                | Input::Opened { .. }
                | Input::Read { .. }
                | Input::Flushed { .. } => {}
                Input::Shared { .. }
                | Input::ShareFailed { .. }
                | Input::PartialOpened { .. }
                | Input::PartialsFound { .. }
                | Input::ChunkRead { .. }
                | Input::ChunkReadFailed { .. }
                | Input::SwarmStorageFailed { .. }
                | Input::DownloadCommitted { .. } => self.swarm_input(h, input, at),
                Input::LanPeer { .. } => self.coverage.hit("lan_peer_heard"),
            },
            TapEvent::Output(output) => match output {
                Output::Transmit { conn, data } => {
                    self.messages += 1;
                    self.bytes += data.len() as u64;
                    self.on_transmit(h, *conn, data, at);
                }
                Output::Dial { conn, addr } => {
                    let mut t = self.new_track(DIALER);
                    t.dialed = addr.as_str().parse::<SocketAddr>().ok();
                    if let Some(a) = t.dialed {
                        self.member_touched(h, a, true, at);
                    }
                    t.remote_host = t.dialed.and_then(|a| self.by_ip.get(&a.ip()).copied());
                    t.intruder = t.dialed.and_then(|a| self.intruders.by_ip(a.ip()));
                    self.hosts[h].conns.insert(*conn, t);
                }
                Output::Close { conn } => self.on_close(h, *conn),
                Output::Storage(op) => self.on_storage(h, op, at),
                Output::Event(e) => self.on_event(h, e, at),
            },
        }
    }

    fn on_accept(&mut self, h: usize, conn: ConnId, remote: SocketAddr) {
        let mut t = self.new_track(LISTENER);
        let key = (remote, SocketAddr::new(self.hosts[h].ip, PORT));
        t.key = Some(key);
        t.remote_host = self.by_ip.get(&remote.ip()).copied();
        t.intruder = self.intruders.by_ip(remote.ip());
        self.hosts[h].conns.insert(conn, t);
        self.attach(key, LISTENER, h, conn);
    }

    fn on_connected(&mut self, h: usize, conn: ConnId, local: Option<SocketAddr>) {
        let Some(t) = self.hosts[h].conns.get_mut(&conn) else {
            return;
        };
        if let (Some(l), Some(d)) = (local, t.dialed) {
            let key = (l, d);
            t.key = Some(key);
            self.attach(key, DIALER, h, conn);
        }
    }

    fn attach(&mut self, key: PairKey, side: usize, h: usize, conn: ConnId) {
        let life = self.hosts[h].life();
        let pair = self.pairs.entry(key).or_default();
        pair.ends[side] = Some((h, life, conn));
        pair.ever[side] = true;
    }

    /// Forgets a connection of `h` (closed, failed, or its host crashed).
    fn untrack(&mut self, h: usize, conn: ConnId) {
        let Some(t) = self.hosts[h].conns.remove(&conn) else {
            return;
        };
        if let Some(id) = &t.established {
            self.unestablish(h, conn, id);
        }
        if let Some(key) = t.key {
            if let Some(pair) = self.pairs.get_mut(&key) {
                pair.closed = true;
                pair.ends[t.side] = None;
                if pair.ends.iter().all(Option::is_none) {
                    self.pairs.remove(&key);
                }
            }
        }
    }

    fn on_close(&mut self, h: usize, conn: ConnId) {
        let Some(t) = self.hosts[h].conns.get_mut(&conn) else {
            return;
        };
        t.closing = true;
        if let Some(pair) = t.key.and_then(|k| self.pairs.get_mut(&k)) {
            pair.closed = true;
        }
        self.refresh_established(h, conn);
    }

    fn on_transmit(&mut self, h: usize, conn: ConnId, data: &Bytes, at: Duration) {
        let Some(t) = self.hosts[h].conns.get_mut(&conn) else {
            return;
        };
        let frames = match t.decode_tx(data) {
            Ok(f) => f,
            Err(e) => {
                let detail = format!("{conn}: transmitted bytes that do not decode: {e}");
                self.violate(FRAME_INTEGRITY, at, Some(h), detail);
                return;
            }
        };
        if t.noise.is_some() && t.side == DIALER && t.sent_log.len() < 8 {
            t.sent_log.push(data.clone());
        }
        let (key, side, remote, established) =
            (t.key, t.side, t.remote_host, t.established.is_some());
        self.swarm_sent(h, remote, &frames);
        if established {
            if let Some(r) = remote {
                self.note_sent_payloads(r, key, &frames);
            }
        }
        if let Some(pair) = key.and_then(|k| self.pairs.get_mut(&k)) {
            pair.flows[side].sent(data, frames);
        }
        self.refresh_established(h, conn);
    }

    /// Chat lines and file ends transmitted to host `r`.
    fn note_sent_payloads(&mut self, r: usize, key: Option<PairKey>, frames: &[Frame]) {
        let life = self.hosts[r].life();
        for f in frames {
            match f {
                Frame::Line(line) if line.starts_with(CHAT_PREFIX) => {
                    if let Some(msg) = self.chats.get_mut(line.as_str()) {
                        msg.expected.push((r, life, key));
                        msg.transmitted += 1;
                    }
                }
                Frame::Bytes(b) if b.starts_with(b"FILEEND:") => {
                    let rest = &b[b"FILEEND:".len()..];
                    let end = rest.iter().position(|&c| c == b'|').unwrap_or(rest.len());
                    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
                    self.file_expect.push(FileExpect {
                        name,
                        host: r,
                        life,
                        key,
                    });
                }
                _ => {}
            }
        }
    }

    fn on_received(&mut self, h: usize, conn: ConnId, data: &Bytes, at: Duration) {
        let Some(t) = self.hosts[h].conns.get_mut(&conn) else {
            return;
        };
        let (frames, decode_err) = match t.decode_rx(data) {
            Ok(f) => (f, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let (key, side, remote) = (t.key, t.side, t.remote_host);
        self.swarm_received(h, remote, &frames, at);
        let sender = 1 - side;
        let mut problem = None;
        if let Some(pair) = key.and_then(|k| self.pairs.get_mut(&k)) {
            // Compare only what a watched sender sent from the start.
            if pair.ever[sender] {
                if let Err(e) = pair.flows[sender].received(data, &frames) {
                    problem = Some(e);
                } else if let Some(e) = decode_err {
                    // The bytes match what was sent, which decoded: the
                    // decoder depends on how the stream was split.
                    pair.flows[sender].broken = true;
                    problem = Some(format!("received bytes fail to decode ({e}) though the same bytes decoded when sent"));
                }
            }
        }
        if let Some(p) = problem {
            self.corrupt_input.insert(h);
            self.violate(FRAME_INTEGRITY, at, Some(h), format!("{conn}: {p}"));
        }
        self.refresh_established(h, conn);
    }

    /// Re-derives whether `conn` is established for `h` and maintains the
    /// per-remote sets.
    fn refresh_established(&mut self, h: usize, conn: ConnId) {
        let host = &mut self.hosts[h];
        let Some(own) = host.id.clone() else {
            return;
        };
        let Some(t) = host.conns.get_mut(&conn) else {
            return;
        };
        let now_est = t.handshaked(&own);
        if now_est == t.established {
            return;
        }
        // A recording of an honest dialer's handshake and hello, for the
        // replaying intruder.
        let recording = (now_est.is_some() && t.side == DIALER && t.noise.is_some())
            .then(|| t.remote_host.map(|r| (t.sent_log.clone(), r)))
            .flatten();
        let old = std::mem::replace(&mut t.established, now_est.clone());
        if let Some((chunks, r)) = recording {
            self.intruders.record(chunks, r);
        }
        if let Some(old) = old {
            self.unestablish(h, conn, &old);
        }
        if let Some(new) = now_est {
            let set = self.hosts[h].est.entry(new.clone()).or_default();
            if !set.is_empty() {
                self.coverage.hit("simultaneous_connect_resolved");
            }
            set.insert(conn);
            self.est_dirty.insert(h);
            if let Some(&r) = self.live_ids.get(&new) {
                self.cross_dirty.insert((h.min(r), h.max(r)));
            }
        }
    }

    fn unestablish(&mut self, h: usize, conn: ConnId, id: &PeerId) {
        let est = &mut self.hosts[h].est;
        if let Some(set) = est.get_mut(id) {
            set.remove(&conn);
            if set.is_empty() {
                est.remove(id);
            }
        }
        self.est_dirty.insert(h);
        if let Some(&r) = self.live_ids.get(id) {
            self.cross_dirty.insert((h.min(r), h.max(r)));
        }
    }

    fn on_storage(&mut self, h: usize, op: &StorageOp, at: Duration) {
        match op {
            StorageOp::Create { part, .. } if !plain_name(part) => {
                let detail = format!("part file {part:?} is not a plain name");
                self.violate(INSIDE_DOWNLOADS, at, Some(h), detail);
            }
            StorageOp::Commit { transfer, name } => {
                // Judged by the simulator's own rule, not the core's.
                if !plain_name(name) {
                    let detail = format!("commit to {name:?}, not a plain name");
                    self.violate(INSIDE_DOWNLOADS, at, Some(h), detail);
                }
                self.hosts[h].commit_names.insert(*transfer, name.clone());
            }
            _ => self.swarm_storage(h, op, at),
        }
    }

    fn on_committed(&mut self, h: usize, transfer: TransferId, saved_as: &str, at: Duration) {
        let host = &mut self.hosts[h];
        let name = host.commit_names.remove(&transfer);
        if !plain_name(saved_as) {
            // Outside the downloads: its content is not there to judge.
            let detail = format!("file saved as {saved_as:?}, outside the downloads");
            return self.violate(INSIDE_DOWNLOADS, at, Some(h), detail);
        }
        let data = host
            .storage
            .as_ref()
            .and_then(|s| s.files().get(saved_as).cloned());
        let problem = match (name.as_deref().and_then(|n| self.files.get(n)), data) {
            (_, None) => Some(format!("{saved_as} reported committed but not stored")),
            (None, Some(_)) => Some(format!("{saved_as}: a file the simulation never sent")),
            (Some(src), Some(data)) => {
                let sha: [u8; 32] = Sha256::digest(data.as_slice()).into();
                (sha != src.sha256).then(|| {
                    format!(
                        "{saved_as} committed with sha256 {} but the file sent has {}",
                        p2p_core::file::to_hex(&sha),
                        p2p_core::file::to_hex(&src.sha256)
                    )
                })
            }
        };
        if let Some(p) = problem {
            self.violate(FILE_HASH, at, Some(h), p);
        }
    }

    fn on_event(&mut self, h: usize, e: &Event, at: Duration) {
        if let Event::DuplicateRetired {
            retired,
            kept,
            peer,
        } = e
        {
            // Still open for what is in flight, but no longer established.
            if let Some(t) = self.hosts[h].conns.get_mut(retired) {
                t.closing = true;
            }
            self.refresh_established(h, *retired);
            // Private: the kept connection carries the peer from now on.
            self.claim(h, *kept, peer);
        }
        if let Event::PeerConnected { peer, .. } = e {
            // Private: announced while handling an input on its connection
            // (unless that one was retired meanwhile: then the kept one
            // was claimed by DuplicateRetired).
            if let Some(conn) = self.last_input[h] {
                self.claim(h, conn, peer);
            }
        }
        self.intruder_event(h, e, at);
        self.swarm_event(h, e, at);
        if self.log && !e.is_debug() {
            eprintln!(
                "{:>9.3} s  {:<5} {e:?}",
                at.as_secs_f64(),
                self.hosts[h].name
            );
        }
        match e {
            Event::PeerConnected { peer, peers, .. } => {
                self.peer_added(h, peer, at);
                self.plot_point(h, at, *peers);
            }
            Event::PeerDisconnected {
                peer,
                reason,
                peers,
                ..
            } => {
                self.peer_removed(h, peer, reason, at);
                self.plot_point(h, at, *peers);
            }
            Event::Rejected {
                reason, by_remote, ..
            } => match (reason, by_remote) {
                (RejectReason::Duplicate, false) => self.coverage.hit("duplicate_refused"),
                (RejectReason::MaxPeers, false) => self.coverage.hit("max_peers_refused"),
                (RejectReason::SelfConnection, true) => {
                    self.coverage.hit("self_connection_detected")
                }
                _ => {}
            },
            Event::DialFailed { addr, reason, .. } => {
                self.coverage.hit("dial_failed");
                let timed_out = matches!(
                    reason,
                    DialFailure::Io(e) if e.kind == std::io::ErrorKind::TimedOut
                );
                if self.strict_timeouts && timed_out {
                    let detail = format!("dial to {addr} timed out");
                    self.violate(NO_FALSE_TIMEOUT, at, Some(h), detail);
                }
            }
            Event::BootstrapSucceeded { attempt, .. } if *attempt > 1 => {
                self.coverage.hit("bootstrap_retried")
            }
            Event::BootstrapFailed { .. } => self.coverage.hit("bootstrap_failed"),
            Event::ProtocolError { error, addr, .. } => {
                self.coverage.hit("protocol_error");
                let timeout = matches!(
                    error,
                    ProtocolError::HandshakeTimeout { .. } | ProtocolError::Unresponsive { .. }
                );
                if matches!(error, ProtocolError::HandshakeTimeout { .. }) {
                    self.coverage.hit("handshake_timeout");
                }
                if self.strict_timeouts && timeout {
                    let detail = format!("{error} (address {addr:?})");
                    self.violate(NO_FALSE_TIMEOUT, at, Some(h), detail);
                }
            }
            Event::Chat { from, text, .. } => self.chat_received(h, from, text, at),
            Event::FileReceived { name, saved_as, .. } => {
                self.coverage.hit("file_committed");
                if saved_as != name {
                    self.coverage.hit("file_saved_as_numbered_copy");
                }
                let life = self.hosts[h].life();
                self.received_files
                    .insert((h, life, name.clone()), saved_as.clone());
            }
            Event::FileFailed { from, .. } => {
                self.coverage.hit("transfer_aborted");
                if self.dead.contains_key(from) {
                    self.coverage.hit("transfer_aborted_by_crash");
                }
            }
            _ => {}
        }
    }

    /// Private mode: `h`'s node established `peer` on `conn`, by its events.
    fn claim(&mut self, h: usize, conn: ConnId, peer: &PeerId) {
        let Some(t) = self.hosts[h].conns.get_mut(&conn) else {
            return;
        };
        let Some(n) = t.noise.as_mut().filter(|_| !t.closing) else {
            return;
        };
        n.claimed = Some(peer.clone());
        self.refresh_established(h, conn);
    }

    fn peer_added(&mut self, h: usize, peer: &PeerId, at: Duration) {
        self.last_peer_change = at;
        self.last_conn_change = at;
        let intruder = self.intruder_peer_added(h, peer, at);
        let host = &self.hosts[h];
        let conns = host.est.get(peer);
        let owner = self.id_owner.get(peer).copied();
        let problem = match (conns, owner) {
            // Already reported as intruder_kept_out.
            _ if intruder => None,
            (None, _) => Some(format!(
                "peer {peer} entered the table without a completed handshake"
            )),
            (_, None) => Some(format!("peer {peer} is no simulated node's id")),
            (Some(set), Some((r, _))) => {
                let from_r = set
                    .iter()
                    .any(|c| host.conns.get(c).and_then(|t| t.remote_host) == Some(r));
                (!from_r).then(|| {
                    format!(
                        "peer {peer} (id of {}) entered the table over a connection to another host",
                        self.host_name(r)
                    )
                })
            }
        };
        if let Some(p) = problem {
            self.violate(PEER_TABLE_HANDSHAKED, at, Some(h), p);
        }
        if let Some((r, life)) = owner {
            if life > 0 && r != h {
                self.coverage.hit("restarted_peer_rejoined");
            }
        }
        if let Some(w) = &mut self.partition {
            if w.repaired && w.lost.remove(&(h, peer.clone())) {
                self.coverage.hit("peer_rediscovered_after_partition");
            }
        }
        if let Some(t) = self.recent_drops.remove(&(h, peer.clone())) {
            if at.saturating_sub(t) <= self.timers.connect {
                self.coverage.hit("peer_dropped_and_back");
            }
        }
        if self.hosts[h].peers.insert(peer.clone()) {
            self.entries_total += 1;
            if self.live_ids.get(peer).is_some_and(|&r| r != h) {
                self.entries_good += 1;
            }
        }
    }

    fn peer_removed(&mut self, h: usize, peer: &PeerId, reason: &DisconnectReason, at: Duration) {
        self.last_peer_change = at;
        self.last_conn_change = at;
        if self.hosts[h].peers.remove(peer) {
            self.entries_total -= 1;
            if self.live_ids.get(peer).is_some_and(|&r| r != h) {
                self.entries_good -= 1;
            }
        }
        match reason {
            DisconnectReason::Timeout { silent_ms } => {
                self.coverage.hit("peer_timed_out");
                if self.dead.get(peer).is_some_and(|d| d.silent) {
                    self.coverage.hit("dead_peer_removed_by_timeout");
                }
                if self.strict_timeouts && self.live_ids.contains_key(peer) {
                    let detail =
                        format!("live peer {peer} timed out after {silent_ms} ms of silence");
                    self.violate(NO_FALSE_TIMEOUT, at, Some(h), detail);
                }
            }
            DisconnectReason::Closed {
                reason: CloseReason::SlowReader { .. },
            } => self.coverage.hit("slow_reader_disconnected"),
            DisconnectReason::Closed { .. } => {
                self.coverage.hit("peer_connection_closed");
                if self.live_ids.contains_key(peer) {
                    self.recent_drops.insert((h, peer.clone()), at);
                }
            }
            _ => {}
        }
        // Lost during the partition, or after the repair because its
        // connection had stalled during the partition.
        if let Some(w) = &mut self.partition {
            w.lost.insert((h, peer.clone()));
        }
    }

    fn chat_received(&mut self, h: usize, from: &PeerId, text: &str, at: Duration) {
        if text.starts_with(crate::intruder::INTRUDER_PREFIX) {
            // Reported as intruder_nothing_delivered.
            return;
        }
        if self.corrupt_input.contains(&h) {
            // Decoded from corrupted bytes: reported as frame_integrity.
            return;
        }
        self.coverage.hit("chat_delivered");
        self.metrics_chat_delivered(text, at);
        let life = self.hosts[h].life();
        let Some(msg) = self.chats.get_mut(text) else {
            let detail = format!("chat line {text:?} that nobody sent");
            return self.violate(CHAT_EXACTLY_ONCE, at, Some(h), detail);
        };
        let n = msg.delivered.entry((h, life)).or_default();
        *n += 1;
        let problem = if *n == 2 {
            Some(format!("chat line {text:?} delivered twice"))
        } else if msg.sender_id.as_ref() != Some(from) {
            Some(format!("chat line {text:?} attributed to {from}"))
        } else {
            None
        };
        if let Some(p) = problem {
            self.violate(CHAT_EXACTLY_ONCE, at, Some(h), p);
        }
    }

    // ----- whole-mesh checks -----

    fn recount_mesh(&mut self) {
        let mut total = 0;
        let mut good = 0;
        for (h, host) in self.hosts.iter().enumerate() {
            if !host.alive {
                continue;
            }
            total += host.peers.len();
            good += host
                .peers
                .iter()
                .filter(|p| self.live_ids.get(*p).is_some_and(|&r| r != h))
                .count();
        }
        self.entries_total = total;
        self.entries_good = good;
    }

    /// Every host the scenario did not crash is running, every running
    /// node's table holds only other running nodes' current ids, and: when
    /// `max_peers` allows a full mesh, every such id; when it does not,
    /// at least [`graph::min_degree`] of them, with the peer graph
    /// connected.
    pub(crate) fn full_mesh(&self) -> bool {
        let live = self.live_ids.len();
        if live + self.down.len() != self.hosts.len() || self.entries_total != self.entries_good {
            return false;
        }
        if self.max_peers + 1 >= live {
            return self.entries_good == live * live.saturating_sub(1);
        }
        let need = graph::min_degree(self.max_peers, live);
        self.hosts
            .iter()
            .enumerate()
            .filter(|(h, host)| host.alive && !self.down.contains(h))
            .all(|(_, host)| host.peers.len() >= need)
            && self.peer_graph().connected()
    }

    /// The graph of running hosts (renumbered `0..`) and their tables.
    pub(crate) fn peer_graph(&self) -> Graph {
        let running: Vec<usize> = (0..self.hosts.len())
            .filter(|h| self.hosts[*h].alive && !self.down.contains(h))
            .collect();
        let index: BTreeMap<usize, usize> =
            running.iter().enumerate().map(|(i, &h)| (h, i)).collect();
        let edges = running.iter().flat_map(|&h| {
            let index = &index;
            self.hosts[h].peers.iter().filter_map(move |id| {
                let r = self.live_ids.get(id)?;
                Some((index[&h], *index.get(r)?))
            })
        });
        Graph::new(running.len(), edges)
    }

    /// Hosts whose table misses a live id or holds a stale one, for reports.
    pub(crate) fn mesh_gaps(&self) -> String {
        let live = self.live_ids.len();
        let partial = self.max_peers + 1 < live;
        let need = graph::min_degree(self.max_peers, live);
        let mut out = Vec::new();
        if partial {
            let g = self.peer_graph().summary();
            if g.components > 1 {
                out.push(format!("the peer graph has {} components", g.components));
            }
        }
        for (h, host) in self.hosts.iter().enumerate() {
            if self.down.contains(&h) {
                continue;
            }
            if !host.alive {
                out.push(format!("{} not running", host.name));
                continue;
            }
            let missing = if partial {
                need.saturating_sub(host.peers.len())
            } else {
                self.live_ids
                    .iter()
                    .filter(|(id, &r)| r != h && !host.peers.contains(*id))
                    .count()
            };
            let stale = host
                .peers
                .iter()
                .filter(|p| !self.live_ids.contains_key(*p))
                .count();
            if missing + stale > 0 {
                out.push(format!(
                    "{} has {} peers ({missing} missing, {stale} stale)",
                    host.name,
                    host.peers.len()
                ));
            }
        }
        let shown = out.len().min(5);
        let mut s = out[..shown].join("; ");
        if out.len() > shown {
            s += &format!("; and {} more", out.len() - shown);
        }
        s
    }

    /// The checks that look at the whole mesh, after every step.
    pub(crate) fn end_step(&mut self, now: Duration) {
        self.now = now;
        for h in std::mem::take(&mut self.est_dirty) {
            let host = &self.hosts[h];
            if !host.alive {
                continue;
            }
            let doubled: Vec<(PeerId, usize)> = host
                .est
                .iter()
                .filter(|(_, s)| s.len() > 1)
                .map(|(id, s)| (id.clone(), s.len()))
                .collect();
            for (id, n) in doubled {
                let detail =
                    format!("{n} established connections to peer {id} after the node reacted");
                self.violate(ONE_CONNECTION_PER_PAIR, now, Some(h), detail);
            }
        }
        for (a, b) in std::mem::take(&mut self.cross_dirty) {
            let split = match (self.kept(a, b), self.kept(b, a)) {
                (Some(ka), Some(kb)) => ka != kb,
                _ => false,
            };
            if split {
                self.disagree.entry((a, b)).or_insert(now);
            } else {
                self.disagree.remove(&(a, b));
            }
        }
        let grace = self.disagree_grace();
        let late: Vec<(usize, usize, Duration)> = self
            .disagree
            .iter()
            .filter(|(_, &since)| now.saturating_sub(since) > grace)
            .map(|(&(a, b), &since)| (a, b, since))
            .collect();
        for (a, b, since) in late {
            self.disagree.remove(&(a, b));
            let detail = format!(
                "{} and {} each keep a different connection to the other since {} ms",
                self.host_name(a),
                self.host_name(b),
                since.as_millis()
            );
            self.violate(ONE_CONNECTION_PER_PAIR, now, Some(a), detail);
        }
        while let Some((deadline, id)) = self.stale_watch.first().cloned() {
            if deadline > now {
                break;
            }
            self.stale_watch.pop_first();
            let holders: Vec<usize> = (0..self.hosts.len())
                .filter(|&h| self.hosts[h].alive && self.hosts[h].peers.contains(&id))
                .collect();
            for h in holders {
                let detail = format!(
                    "crashed peer {id} still in the table {} ms after the peer timeout",
                    (deadline - self.timers.peer_timeout).as_millis()
                );
                self.violate(STALE_PEER_REMOVED, now, Some(h), detail);
            }
        }
        self.swarm_end_step(now);
        self.mesh_full = self.full_mesh();
        if self.mesh_full && self.first_mesh_at.is_none() {
            self.first_mesh_at = Some(self.last_peer_change);
            self.meshed.store(true, Ordering::Relaxed);
        }
    }

    /// The connection `a` keeps for `b`'s current id, if exactly one.
    fn kept(&self, a: usize, b: usize) -> Option<PairKey> {
        let ha = &self.hosts[a];
        let id_b = self.hosts[b].id.as_ref()?;
        if !ha.alive || !self.hosts[b].alive {
            return None;
        }
        let set = ha.est.get(id_b)?;
        if set.len() != 1 {
            return None;
        }
        let conn = set.iter().next()?;
        ha.conns.get(conn)?.key
    }

    // ----- end-of-run checks -----

    /// A host reported its peer table (after the scenario ended).
    pub(crate) fn snapshot(&mut self, h: usize, life: u32, peers: Vec<PeerInfo>) {
        let host = &mut self.hosts[h];
        if host.alive && host.life() == life {
            host.snapshot = Some(peers);
        }
    }

    /// Whether every running host answered the snapshot request.
    pub(crate) fn snapshots_in(&self) -> bool {
        self.hosts
            .iter()
            .filter(|h| h.alive)
            .all(|h| h.snapshot.is_some())
    }

    /// Running hosts that did not answer the snapshot request.
    pub(crate) fn snapshots_missing(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&h| self.hosts[h].alive && self.hosts[h].snapshot.is_none())
            .collect()
    }

    /// When the last pending watch (a pair whose ends disagree, a crashed
    /// peer that must leave every table) is decided, if any is pending.
    pub(crate) fn watches_decided_by(&self) -> Option<Duration> {
        let stale = self.stale_watch.last().map(|(d, _)| *d);
        let split = self
            .disagree
            .values()
            .max()
            .map(|&since| since + self.disagree_grace() + self.tick);
        stale.max(split)
    }

    /// How long the two ends of a pair may keep different connections.
    fn disagree_grace(&self) -> Duration {
        self.timers.peer_timeout + self.timers.connect + Duration::from_secs(1)
    }

    /// Forgets the snapshots, before asking again.
    pub(crate) fn clear_snapshots(&mut self) {
        for h in &mut self.hosts {
            h.snapshot = None;
        }
    }

    /// How many chat lines were sent, and deliveries expected and made.
    pub(crate) fn chat_totals(&self) -> (usize, usize, u64) {
        let sent = self.chats.len();
        let expected = self.chats.values().map(|m| m.transmitted).sum();
        let delivered = self
            .chats
            .values()
            .flat_map(|m| m.delivered.values())
            .map(|&n| u64::from(n))
            .sum();
        (sent, expected, delivered)
    }

    // ----- helpers -----

    pub(crate) fn violate(
        &mut self,
        check: &'static str,
        at: Duration,
        h: Option<usize>,
        detail: String,
    ) {
        let host = h.map(|h| self.host_name(h));
        if self.log {
            eprintln!("{:>9.3} s  VIOLATION {check}: {detail}", at.as_secs_f64());
        }
        self.violations
            .push(Violation::new(check, at, host, detail));
    }

    fn plot_point(&mut self, h: usize, at: Duration, peers: usize) {
        let Some(s) = &mut self.series else {
            return;
        };
        let Some(points) = s.hosts.get_mut(h) else {
            return;
        };
        let ms = at.as_millis() as u64;
        let n = peers as u32;
        match points.last_mut() {
            Some(last) if last.0 == ms => last.1 = n,
            _ => points.push((ms, n)),
        }
    }

    /// Starts counting rediscoveries across a partition.
    pub(crate) fn watch_partition(&mut self) {
        self.partition = Some(PartitionWatch::default());
    }

    /// The partition is being repaired: reconnections count from now.
    pub(crate) fn partition_repairing(&mut self) {
        if let Some(w) = &mut self.partition {
            w.repaired = true;
        }
    }
}

/// Prints connection lifecycle events (`--log`).
fn log_lifecycle(host: &str, at: Duration, ev: &TapEvent<'_>) {
    let what = match ev {
        TapEvent::Accepted { conn, remote } => format!("accepted {conn} from {remote}"),
        TapEvent::Input(Input::Connected { conn, local }) => {
            format!("connected {conn} local {local:?}")
        }
        TapEvent::Input(Input::DialFailed { conn, error }) => {
            format!("dial {conn} failed: {error}")
        }
        TapEvent::Input(Input::Closed { conn, reason }) => format!("closed {conn}: {reason:?}"),
        TapEvent::Output(Output::Dial { conn, addr }) => format!("dial {conn} to {addr}"),
        TapEvent::Output(Output::Close { conn }) => format!("close {conn}"),
        _ => return,
    };
    eprintln!("{:>9.3} s  {host:<5} {what}", at.as_secs_f64());
}

/// A file name inside the downloads directory, by the simulator's own rule
/// (independent of `p2p_core::file::check_name`, which it judges): not
/// empty, not `.` or `..`, no `/`, `\\`, NUL or other control character.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}
