//! A discrete-event harness in the spirit of quinn-proto's `tests/util.rs`:
//! several nodes exchange their `Transmit`s through in-memory links on one
//! shared virtual clock. Links can be delayed or cut, nodes frozen (alive
//! but silent) or crashed, and raw scripted peers can inject any bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::{
    chunk_hash, CloseReason, Config, ConnId, ContentId, Event, Input, Manifest, ManifestFile, Node,
    Output, StorageOp, TransferId,
};

/// One end of an in-memory connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Node(usize, ConnId),
    Raw(usize),
}

#[derive(Debug)]
enum Delivery {
    Data(End, Bytes),
    Eof(End),
    Accept {
        node: usize,
        dialer: usize,
        conn: ConnId,
        remote: Option<SocketAddr>,
    },
    DialFailed(usize, ConnId, &'static str),
    /// The sender's writer took `n` bytes off its queue.
    Flushed(usize, ConnId, u64),
}

/// In-memory downloads directory of one node.
#[derive(Debug, Default)]
pub struct MemStorage {
    pub parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Every name ever created or committed, to check confinement.
    pub touched: Vec<String>,
    /// Files the node may send, by path.
    pub sources: BTreeMap<String, Bytes>,
    /// Sources opened, by outgoing transfer.
    pub open: BTreeMap<TransferId, Bytes>,
    /// Storage ops answered later (a slow or silent disk) instead of at once.
    pub hold_reads: bool,
    /// Read ops not answered yet (with `hold_reads`).
    pub held: Vec<StorageOp>,
    /// Content-addressed sharing.
    pub swarm: SwarmStore,
}

/// The swarm side of the in-memory storage: what may be shared, what is,
/// partial downloads with their records, and what was committed.
#[derive(Debug, Default)]
pub struct SwarmStore {
    /// Paths the node may share: the files under it as (manifest path,
    /// bytes); one file is shared under its own name.
    pub trees: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// Shared content: its manifest and the concatenation of its files.
    pub shared: BTreeMap<ContentId, (Manifest, Vec<u8>)>,
    pub partials: BTreeMap<ContentId, Partial>,
    /// Committed files by path (a tree's files under `dir/...`).
    pub committed: BTreeMap<String, Vec<u8>>,
    /// Chunks this node serves with a flipped byte (a lying peer).
    pub corrupt: BTreeSet<u32>,
    /// Chunks a partial's record claims on the next open, whatever was
    /// written (a record that lies).
    pub lying_record: Option<Vec<u32>>,
    /// Chunk reads answered.
    pub reads: usize,
    /// Paths an earlier run shared, as `ScanPartials` reports them.
    pub listed: Vec<String>,
}

/// One partial download in memory.
#[derive(Debug)]
pub struct Partial {
    pub manifest: Manifest,
    pub data: Vec<u8>,
    pub written: BTreeSet<u32>,
    /// Chunks the record claims: what was written at the last checkpoint.
    pub record: BTreeSet<u32>,
    pub dir: Option<String>,
}

/// The manifest of `files` (manifest path, bytes) in chunks of `cs`.
pub fn build_manifest(cs: u32, files: &[(String, Vec<u8>)]) -> (Manifest, Vec<u8>) {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let stream: Vec<u8> = sorted.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let hashes = stream.chunks(cs as usize).map(chunk_hash).collect();
    let files = sorted
        .iter()
        .map(|(p, b)| ManifestFile {
            path: p.clone(),
            size: b.len() as u64,
        })
        .collect();
    // Invariant: tests hand in valid trees.
    (
        Manifest::new(cs, files, hashes).expect("valid test tree"),
        stream,
    )
}

pub struct TestNode {
    pub node: Node,
    /// What it was made with, for a restart.
    pub config: Config,
    pub events: Vec<(Instant, Event)>,
    pub storage: MemStorage,
    /// Alive but neither sending nor receiving (a hung process).
    pub frozen: bool,
    pub crashed: bool,
}

/// A raw scripted peer: its received bytes are kept for inspection.
#[derive(Debug, Default)]
pub struct RawPeer {
    pub peer: Option<End>,
    pub received: BytesMut,
    pub closed: bool,
}

pub struct Mesh {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<TestNode>,
    pub raws: Vec<RawPeer>,
    pub latency: Duration,
    /// Extra one-way latency per unordered node pair.
    pub extra_latency: BTreeMap<(usize, usize), Duration>,
    /// Cut pairs: traffic silently vanishes, dials fail.
    pub cut: BTreeSet<(usize, usize)>,
    /// Extra latency of what a node sends on connections it accepted (to
    /// reorder one connection against another between the same nodes).
    pub slow_accepted: BTreeMap<usize, Duration>,
    accepted: BTreeSet<End>,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    /// Connection ends and their other side.
    wires: BTreeMap<End, End>,
    /// Latest delivery time per direction, so that a link never reorders.
    fifo: BTreeMap<End, Instant>,
    /// Everything every node output, in order: the replay fingerprint.
    pub trace: String,
    /// Every `Output::Dial`: the dialing node and the address, in order.
    pub dials: Vec<(usize, String)>,
}

pub const BASE_PORT: u16 = 7000;

pub fn addr_of(i: usize) -> String {
    format!("127.0.0.1:{}", BASE_PORT as usize + i)
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Mesh {
    pub fn new(n: usize, tweak: impl Fn(usize, &mut Config)) -> Mesh {
        let start = Instant::now();
        let mut m = Mesh {
            start,
            now: start,
            nodes: Vec::new(),
            raws: Vec::new(),
            latency: Duration::from_millis(5),
            extra_latency: BTreeMap::new(),
            cut: BTreeSet::new(),
            slow_accepted: BTreeMap::new(),
            accepted: BTreeSet::new(),
            queue: BTreeMap::new(),
            seq: 0,
            wires: BTreeMap::new(),
            fifo: BTreeMap::new(),
            trace: String::new(),
            dials: Vec::new(),
        };
        for _ in 0..n {
            m.add_node(&tweak);
        }
        m
    }

    pub fn add_node(&mut self, tweak: &dyn Fn(usize, &mut Config)) -> usize {
        let i = self.nodes.len();
        let port = BASE_PORT + i as u16;
        let mut cfg = Config::new(port);
        cfg.name = Some(format!("n{i}"));
        tweak(i, &mut cfg);
        let node = Node::new(cfg.clone(), 1000 + i as u64, self.now);
        self.nodes.push(TestNode {
            node,
            config: cfg,
            events: Vec::new(),
            storage: MemStorage::default(),
            frozen: false,
            crashed: false,
        });
        i
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn push(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn node_of(&self, end: End) -> Option<usize> {
        match end {
            End::Node(i, _) => Some(i),
            End::Raw(_) => None,
        }
    }

    fn one_way(&self, from: End, to: End) -> Option<Duration> {
        match (self.node_of(from), self.node_of(to)) {
            (Some(a), Some(b)) => {
                if self.cut.contains(&pair(a, b)) {
                    return None;
                }
                Some(
                    self.latency
                        + self
                            .extra_latency
                            .get(&pair(a, b))
                            .copied()
                            .unwrap_or_default(),
                )
            }
            _ => Some(self.latency),
        }
    }

    /// Sends along a wire, keeping per-direction order.
    fn send(&mut self, from: End, d: impl FnOnce(End) -> Delivery) {
        let Some(&to) = self.wires.get(&from) else {
            return;
        };
        let Some(mut lat) = self.one_way(from, to) else {
            return;
        };
        if let (Some(i), true) = (self.node_of(from), self.accepted.contains(&from)) {
            lat += self.slow_accepted.get(&i).copied().unwrap_or_default();
        }
        let at = (self.now + lat).max(self.fifo.get(&from).copied().unwrap_or(self.now));
        self.fifo.insert(from, at);
        self.push(at, d(to));
    }

    /// Moves every node's outputs onto the wires.
    pub fn flush(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].node.poll_output() {
                    any = true;
                    self.on_output(i, out);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn on_output(&mut self, i: usize, out: Output) {
        let now = self.now;
        match &out {
            Output::Transmit { conn, data } => {
                let _ = writeln!(self.trace, "{i} tx {conn} {:?}", data);
            }
            Output::Event(e) => {
                let _ = writeln!(self.trace, "{i} ev {e:?}");
            }
            other => {
                let _ = writeln!(self.trace, "{i} {other:?}");
            }
        }
        if self.nodes[i].frozen || self.nodes[i].crashed {
            if let Output::Event(e) = out {
                self.nodes[i].events.push((now, e));
            }
            return;
        }
        match out {
            Output::Transmit { conn, data } => {
                let n = data.len() as u64;
                self.send(End::Node(i, conn), |to| Delivery::Data(to, data));
                // The writer's queue drains as the link carries it.
                let lat = self.latency;
                self.push(now + lat, Delivery::Flushed(i, conn, n));
            }
            Output::Close { conn } => self.send(End::Node(i, conn), Delivery::Eof),
            Output::Dial { conn, addr } => {
                self.dials.push((i, addr.to_string()));
                let target = (addr.port() as usize).checked_sub(BASE_PORT as usize);
                let lat = self.latency;
                // Both spellings of loopback reach the node, as a resolver
                // would have it: telling them apart is the node's job.
                let loopback = matches!(
                    addr.host().to_ascii_lowercase().as_str(),
                    "127.0.0.1" | "localhost"
                );
                match target.filter(|&j| j < self.nodes.len() && loopback) {
                    Some(j) if !self.nodes[j].crashed && !self.cut.contains(&pair(i, j)) => {
                        let remote = None;
                        self.push(
                            now + lat,
                            Delivery::Accept {
                                node: j,
                                dialer: i,
                                conn,
                                remote,
                            },
                        );
                    }
                    _ => self.push(
                        now + lat,
                        Delivery::DialFailed(i, conn, "connection refused"),
                    ),
                }
            }
            Output::Storage(op) => self.on_storage(i, op),
            Output::Event(e) => self.nodes[i].events.push((now, e)),
        }
    }

    fn on_storage(&mut self, i: usize, op: StorageOp) {
        let now = self.now;
        let st = &mut self.nodes[i].storage;
        match op {
            StorageOp::Create { transfer, part } => {
                st.touched.push(part.clone());
                st.parts.insert(transfer, (part, Vec::new()));
            }
            StorageOp::Write { transfer, data } => {
                if let Some((_, buf)) = st.parts.get_mut(&transfer) {
                    buf.extend_from_slice(&data);
                }
            }
            StorageOp::Commit { transfer, name } => {
                let Some((_, buf)) = st.parts.remove(&transfer) else {
                    return;
                };
                let mut saved = name.clone();
                let mut k = 1;
                while st.files.contains_key(&saved) {
                    saved = match name.rsplit_once('.') {
                        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-({k}).{ext}"),
                        _ => format!("{name}-({k})"),
                    };
                    k += 1;
                }
                st.touched.push(saved.clone());
                st.files.insert(saved.clone(), buf);
                self.nodes[i].node.handle_input(
                    now,
                    Input::Committed {
                        transfer,
                        saved_as: saved,
                    },
                );
            }
            StorageOp::Discard { transfer } => {
                st.parts.remove(&transfer);
            }
            StorageOp::Read { .. } if st.hold_reads => st.held.push(op),
            StorageOp::Open { transfer, path } => {
                let input = match st.sources.get(&path) {
                    Some(data) => {
                        st.open.insert(transfer, data.clone());
                        Input::Opened {
                            transfer,
                            size: data.len() as u64,
                        }
                    }
                    None => Input::StorageFailed {
                        transfer,
                        error: crate::IoError::new(
                            std::io::ErrorKind::NotFound,
                            format!("{path}: no such file"),
                        ),
                    },
                };
                self.nodes[i].node.handle_input(now, input);
            }
            StorageOp::Read {
                transfer,
                offset,
                len,
            } => {
                let Some(data) = st.open.get(&transfer) else {
                    return;
                };
                let start = (offset as usize).min(data.len());
                let end = (start + len).min(data.len());
                let data = data.slice(start..end);
                let input = Input::Read {
                    transfer,
                    offset,
                    data,
                };
                self.nodes[i].node.handle_input(now, input);
            }
            StorageOp::Close { transfer } => {
                st.open.remove(&transfer);
            }
            op => self.on_swarm_storage(i, op),
        }
    }

    fn on_swarm_storage(&mut self, i: usize, op: StorageOp) {
        let now = self.now;
        let st = &mut self.nodes[i].storage.swarm;
        let notfound = |what: &str| crate::IoError::new(std::io::ErrorKind::NotFound, what);
        let input = match op {
            StorageOp::Share { path, chunk_size } => match st.trees.get(&path) {
                Some(files) => {
                    let (m, stream) = build_manifest(chunk_size, files);
                    let manifest = m.encode();
                    st.shared.insert(m.id(), (m, stream));
                    Some(Input::Shared { path, manifest })
                }
                None => Some(Input::ShareFailed {
                    path,
                    error: notfound("no such file"),
                }),
            },
            StorageOp::Unshare { content } => {
                st.shared.remove(&content);
                None
            }
            StorageOp::OpenPartial {
                content,
                manifest,
                dir,
            } => {
                let m = Manifest::parse(&manifest).expect("the core checked it");
                let p = st.partials.entry(content).or_insert_with(|| Partial {
                    data: vec![0; m.size() as usize],
                    manifest: m,
                    written: BTreeSet::new(),
                    record: BTreeSet::new(),
                    dir,
                });
                let claimed = match st.lying_record.take() {
                    Some(lie) => lie,
                    None => p.record.iter().copied().collect(),
                };
                Some(Input::PartialOpened { content, claimed })
            }
            StorageOp::ReadChunk {
                read,
                content,
                chunk,
            } => {
                st.reads += 1;
                let data = if let Some((m, stream)) = st.shared.get(&content) {
                    let r = m.chunk_range(chunk);
                    let mut d = stream[r.start as usize..r.end as usize].to_vec();
                    if st.corrupt.contains(&chunk) {
                        if let Some(b) = d.first_mut() {
                            *b ^= 0x55;
                        }
                    }
                    Some(d)
                } else {
                    st.partials.get(&content).map(|p| {
                        let r = p.manifest.chunk_range(chunk);
                        p.data[r.start as usize..r.end as usize].to_vec()
                    })
                };
                Some(match data {
                    Some(d) => Input::ChunkRead {
                        read,
                        data: Bytes::from(d),
                    },
                    None => Input::ChunkReadFailed {
                        read,
                        error: notfound("no such content"),
                        changed: false,
                    },
                })
            }
            StorageOp::WriteChunk {
                content,
                chunk,
                data,
            } => {
                if let Some(p) = st.partials.get_mut(&content) {
                    let r = p.manifest.chunk_range(chunk);
                    p.data[r.start as usize..r.end as usize].copy_from_slice(&data);
                    p.written.insert(chunk);
                }
                None
            }
            StorageOp::Checkpoint { content } => {
                if let Some(p) = st.partials.get_mut(&content) {
                    p.record = p.written.clone();
                }
                None
            }
            StorageOp::CommitDownload { content } => {
                let p = st.partials.remove(&content).expect("committed once");
                let name = p.manifest.name().to_owned();
                let mut k = 0;
                let mut saved = name.clone();
                while st
                    .committed
                    .keys()
                    .any(|c| c == &saved || c.starts_with(&format!("{saved}/")))
                {
                    k += 1;
                    saved = format!("{name}-({k})");
                }
                let mut at = 0usize;
                for f in p.manifest.files() {
                    let rel = f.path.strip_prefix(&name).unwrap_or("");
                    let bytes = p.data[at..at + f.size as usize].to_vec();
                    at += f.size as usize;
                    st.committed.insert(format!("{saved}{rel}"), bytes);
                }
                st.shared.insert(content, (p.manifest, p.data));
                Some(Input::DownloadCommitted {
                    content,
                    path: saved,
                })
            }
            StorageOp::ClosePartial { .. } => None,
            StorageOp::DiscardPartial { content } => {
                st.partials.remove(&content);
                None
            }
            StorageOp::ScanPartials => {
                let partials = st
                    .partials
                    .values()
                    .map(|p| (p.manifest.encode(), p.dir.clone()))
                    .collect();
                Some(Input::PartialsFound {
                    partials,
                    shares: st.listed.clone(),
                })
            }
            other => unreachable!("not a swarm op: {other:?}"),
        };
        if let Some(input) = input {
            self.nodes[i].node.handle_input(now, input);
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::Data(End::Node(i, conn), data) => {
                if !self.nodes[i].frozen && !self.nodes[i].crashed {
                    self.nodes[i]
                        .node
                        .handle_input(now, Input::Received { conn, data });
                }
            }
            Delivery::Data(End::Raw(r), data) => self.raws[r].received.extend_from_slice(&data),
            Delivery::Flushed(i, conn, bytes) => {
                if !self.nodes[i].crashed {
                    let input = Input::Flushed { conn, bytes };
                    self.nodes[i].node.handle_input(now, input);
                }
            }
            Delivery::Eof(End::Node(i, conn)) => {
                if self.nodes[i].crashed {
                    return;
                }
                self.nodes[i].node.handle_input(
                    now,
                    Input::Closed {
                        conn,
                        reason: CloseReason::Eof,
                    },
                );
                self.close_end(End::Node(i, conn));
            }
            Delivery::Eof(End::Raw(r)) => {
                self.raws[r].closed = true;
                self.close_end(End::Raw(r));
            }
            Delivery::Accept {
                node,
                dialer,
                conn,
                remote,
            } => {
                if self.nodes[node].crashed {
                    let lat = self.latency;
                    self.push(
                        now + lat,
                        Delivery::DialFailed(dialer, conn, "connection refused"),
                    );
                    return;
                }
                let accepted = self.nodes[node].node.handle_accept(now, remote);
                let a = End::Node(dialer, conn);
                let b = End::Node(node, accepted);
                self.wires.insert(a, b);
                self.wires.insert(b, a);
                self.accepted.insert(b);
                let _ = writeln!(self.trace, "{node} accept {accepted} from {dialer}/{conn}");
                self.nodes[dialer]
                    .node
                    .handle_input(now, Input::Connected { conn, local: None });
            }
            Delivery::DialFailed(i, conn, why) => {
                if !self.nodes[i].crashed {
                    self.nodes[i].node.handle_input(
                        now,
                        Input::DialFailed {
                            conn,
                            error: crate::IoError::new(std::io::ErrorKind::ConnectionRefused, why),
                        },
                    );
                }
            }
        }
    }

    /// The remote closed `end`: its driver closes its side too, so the
    /// other end sees EOF unless it closed first.
    fn close_end(&mut self, end: End) {
        if let Some(&other) = self.wires.get(&end) {
            if self.wires.contains_key(&other) {
                self.send(end, Delivery::Eof);
            }
            self.wires.remove(&end);
        }
    }

    /// The next instant anything happens.
    fn next_time(&self) -> Option<Instant> {
        let q = self.queue.keys().next().map(|(t, _)| *t);
        let timers = self
            .nodes
            .iter()
            .filter(|n| !n.crashed && !n.frozen)
            .filter_map(|n| n.node.poll_timeout())
            .min();
        match (q, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One step: advance to the next event time, deliver, fire timers.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(t) = self.next_time() else {
            return false;
        };
        self.now = self.now.max(t);
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let d = entry.remove();
            self.deliver(d);
            self.flush();
        }
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| !n.crashed && !n.frozen) {
            if n.node.poll_timeout().is_some_and(|t| t <= now) {
                n.node.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.flush();
        let end = self.now + d;
        while self.next_time().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Runs until `done` holds (checked after each step), at most `limit`
    /// of simulated time; returns the simulated time it took.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Mesh) -> bool) -> Option<Duration> {
        let end = self.now + limit;
        loop {
            self.flush();
            if done(self) {
                return Some(self.elapsed());
            }
            match self.next_time() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => return None,
            }
        }
    }

    pub fn bootstrap(&mut self, i: usize, j: usize) {
        let now = self.now;
        self.nodes[i]
            .node
            .bootstrap(now, &addr_of(j))
            .expect("valid bootstrap address");
        self.flush();
    }

    /// Every live node is connected to every other live node, once.
    pub fn full_mesh(&self) -> bool {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].crashed)
            .collect();
        live.iter().all(|&i| {
            let ids: BTreeSet<_> = self.nodes[i].node.peers().map(|p| p.id).collect();
            ids.len() == live.len() - 1
                && live
                    .iter()
                    .filter(|&&j| j != i)
                    .all(|&j| ids.contains(self.nodes[j].node.id()))
        })
    }

    /// Opens a raw scripted connection to node `j`; returns its index.
    pub fn raw_connect(&mut self, j: usize, remote: Option<SocketAddr>) -> usize {
        let r = self.raws.len();
        self.raws.push(RawPeer::default());
        let conn = self.nodes[j].node.handle_accept(self.now, remote);
        let a = End::Raw(r);
        let b = End::Node(j, conn);
        self.wires.insert(a, b);
        self.wires.insert(b, a);
        self.raws[r].peer = Some(b);
        r
    }

    pub fn raw_send(&mut self, r: usize, data: &[u8]) {
        let data = Bytes::copy_from_slice(data);
        self.send(End::Raw(r), |to| Delivery::Data(to, data));
    }

    pub fn raw_close(&mut self, r: usize) {
        self.send(End::Raw(r), Delivery::Eof);
    }

    /// The lines a raw peer received so far.
    /// The line frames a raw peer received, trimmed; bytes frames (the
    /// caps frame, files) are skipped.
    pub fn raw_lines(&self, r: usize) -> Vec<String> {
        let mut d = crate::codec::Decoder::new(crate::codec::Limits::default());
        d.feed(Bytes::copy_from_slice(&self.raws[r].received));
        let mut lines = Vec::new();
        while let Ok(Some(frame)) = d.next_frame() {
            if let crate::codec::Frame::Line(l) = frame {
                lines.push(l.trim().to_owned());
            }
        }
        lines
    }

    /// Starts a crashed node again with its storage as the crash left it
    /// (open handles are gone; records and data stay) and a new seed.
    pub fn restart(&mut self, i: usize) {
        let seed = 5000 + i as u64 + self.seq;
        let cfg = self.nodes[i].config.clone();
        self.nodes[i].node = Node::new(cfg, seed, self.now);
        self.nodes[i].crashed = false;
    }

    /// Crashes a node: every connection resets.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].crashed = true;
        let ends: Vec<End> = self
            .wires
            .keys()
            .copied()
            .filter(|e| self.node_of(*e) == Some(i))
            .collect();
        for e in ends {
            self.send(e, Delivery::Eof);
            self.wires.remove(&e);
        }
    }

    /// How many times node `i` dialed node `j` (by port, whatever the
    /// spelling of the host).
    pub fn dials_to(&self, i: usize, j: usize) -> usize {
        let port = format!(":{}", BASE_PORT as usize + j);
        self.dials
            .iter()
            .filter(|(from, addr)| *from == i && addr.ends_with(&port))
            .count()
    }

    pub fn events(&self, i: usize) -> impl Iterator<Item = &Event> {
        self.nodes[i].events.iter().map(|(_, e)| e)
    }
}

/// A connection `node` accepted (from `remote`, if given) on which `text`
/// then arrived: a scripted peer for tests that drive one node by hand.
pub fn accepted(node: &mut Node, now: Instant, remote: Option<&str>, text: &str) -> ConnId {
    // Invariant: callers pass socket address literals.
    let remote = remote.map(|r| r.parse::<SocketAddr>().expect("a socket address"));
    let conn = node.handle_accept(now, remote);
    node.handle_input(
        now,
        Input::Received {
            conn,
            data: Bytes::copy_from_slice(text.as_bytes()),
        },
    );
    conn
}
