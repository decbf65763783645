//! The `swarm` scenario's content, roles and checks (content-addressed
//! sharing, `core/src/swarm/`).
//!
//! The content is seeded: one file of [`SimConfig::swarm_size`] bytes and,
//! unless [`SimConfig::swarm_files`] is 0, a directory tree of that many
//! small files (some empty, some in subdirectories). The simulator builds
//! their manifests itself ([`Content::build`]), independently of the
//! storage that hashes them on the holders, so that it can judge every id
//! a holder reports and every download a node commits.
//!
//! Roles ([`Role`], from the seed): a few complete holders share both; one
//! liar shares them too, then has some chunks of its copy corrupted under
//! it (same manifests, same ids, wrong bytes served); partial holders
//! start downloading first and are then cut off from every complete holder
//! for a while, so that they hold part of the content when the others
//! start; every other peer downloads both at a seeded time. Each host's
//! storage survives its crashes here ([`World::swarm_disk`]): a restarted
//! holder shares the same files again, a restarted downloader resumes its
//! partial.
//!
//! What the world checks, from the tap (see [`crate::invariants`]):
//! - [`SWARM_COMMIT_VERIFIED`]: every `Shared` id is the simulator's id for
//!   that path; every chunk a node writes into a download is the content's
//!   chunk; every committed download re-hashes to its manifest (the same
//!   files and sizes, every chunk verifying);
//! - [`SWARM_LIAR_DETECTED`]: no `ChunkRejected` names an honest peer, and
//!   every wrong chunk of the liar that reaches a downloader with its
//!   request outstanding (by the `get` and `cancel` frames the downloader
//!   sent the liar; a rejection bans the liar from that download, which
//!   drops the rest of its requests) is rejected, naming the liar, within
//!   the step it arrived in;
//! - [`SWARM_DOWNLOADS_COMPLETE`]: no download fails, and every one the
//!   scenario started is committed after the faults stop;
//! - [`SWARM_MULTI_PEER`]: some completed download's `bytes_from` lists two
//!   peers or more;
//! - [`SWARM_RESUME_BOUNDED`]: a download's `DownloadStarted` claims at
//!   least what its host checkpointed before it crashed, and the run
//!   fetches at most `size - have` plus one chunk per request in flight
//!   per peer (by its `bytes_from`, and by the chunks it wrote).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use p2p_core::codec::Frame;
use p2p_core::{
    chunk_hash, ContentId, DownloadFailure, Event, Input, Manifest, ManifestFile, PeerId, StorageOp,
};
use p2p_net::MemStorage;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use crate::config::SimConfig;
use crate::invariants::{
    SWARM_COMMIT_VERIFIED, SWARM_DOWNLOADS_COMPLETE, SWARM_LIAR_DETECTED, SWARM_MULTI_PEER,
    SWARM_RESUME_BOUNDED,
};
use crate::world::World;

/// The smallest mesh with every role: two holders, the liar, a partial
/// holder and two downloaders (with one, a seed in a few has none of its
/// downloads draw from two peers: a holder down, the liar banned).
pub(crate) const MIN_PEERS: usize = 6;

/// The fewest chunks the file may have: enough for a download to draw
/// from several peers and to ask the liar for some.
pub(crate) const MIN_CHUNKS: usize = 16;

/// Where a holder's storage keeps the shared content.
const SHARE_DIR: &str = "/share";

/// What a host does in the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// Shares both contents, honestly.
    Holder,
    /// Shares both, then serves corrupted chunks of them.
    Liar,
    /// Downloads first, and is then cut off from the complete holders for
    /// a while.
    Partial,
    /// Downloads both at a seeded time.
    Downloader,
}

impl Role {
    /// Whether the scenario has it download the content.
    pub(crate) fn downloads(self) -> bool {
        matches!(self, Role::Partial | Role::Downloader)
    }

    /// Whether it shares the content from the start.
    pub(crate) fn shares(self) -> bool {
        matches!(self, Role::Holder | Role::Liar)
    }
}

/// The roles of a run's hosts, by index: from the seed only, so that a
/// host knows its role before the scenario's generator draws anything.
pub(crate) fn roles(cfg: &SimConfig) -> Vec<Role> {
    let n = cfg.peers;
    let holders = (n / 4).max(2);
    let partial = (n / 6).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.swarm_seed(0));
    crate::scenario::shuffle(&mut rng, &mut order);
    let mut out = vec![Role::Downloader; n];
    for (i, &h) in order.iter().enumerate() {
        out[h] = if i < holders {
            Role::Holder
        } else if i == holders {
            Role::Liar
        } else if i <= holders + partial {
            Role::Partial
        } else {
            Role::Downloader
        };
    }
    out
}

/// One shared content: its files, and the manifest the simulator built.
#[derive(Debug)]
pub(crate) struct Content {
    /// File or directory name.
    pub(crate) name: String,
    /// Where holders keep it, and the path they share.
    pub(crate) path: String,
    /// Manifest paths (the name first) and bytes, in path order.
    pub(crate) files: Vec<(String, Arc<Vec<u8>>)>,
    pub(crate) manifest: Manifest,
    pub(crate) id: ContentId,
}

impl Content {
    /// The content of `files` (manifest paths and bytes), chunked by
    /// `chunk_size`.
    fn build(name: &str, mut files: Vec<(String, Vec<u8>)>, chunk_size: u32) -> Content {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let all: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let hashes = all.chunks(chunk_size as usize).map(chunk_hash).collect();
        let listed = files
            .iter()
            .map(|(p, d)| ManifestFile {
                path: p.clone(),
                size: d.len() as u64,
            })
            .collect();
        // Invariant: the names below are plain and the chunk size was
        // validated, so the manifest is valid.
        let manifest = Manifest::new(chunk_size, listed, hashes)
            .unwrap_or_else(|e| panic!("the simulator's manifest of {name}: {e}"));
        Content {
            name: name.to_owned(),
            path: format!("{SHARE_DIR}/{name}"),
            files: files.into_iter().map(|(p, d)| (p, Arc::new(d))).collect(),
            id: manifest.id(),
            manifest,
        }
    }

    /// Whether it is the directory tree.
    pub(crate) fn is_tree(&self) -> bool {
        self.manifest.is_dir()
    }

    /// Chunk `k`'s bytes.
    pub(crate) fn chunk(&self, k: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.manifest.chunk_len(k));
        for (i, at, range) in self.manifest.segments(k) {
            let f = &self.files[i].1;
            let start = at as usize;
            out.extend_from_slice(&f[start..start + range.len()]);
        }
        out
    }

    /// Judges a committed copy (manifest paths and bytes, any order)
    /// against the manifest: the same files with the same sizes, and every
    /// chunk of their concatenation verifying.
    pub(crate) fn verify(&self, got: &[(String, Vec<u8>)]) -> Result<(), String> {
        let mut got: Vec<&(String, Vec<u8>)> = got.iter().collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want = self.manifest.files();
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        let wanted: Vec<&str> = want.iter().map(|f| f.path.as_str()).collect();
        if names != wanted {
            return Err(format!(
                "{} files committed, {} in the manifest (first difference: {:?} against {:?})",
                names.len(),
                wanted.len(),
                names.iter().zip(&wanted).find(|(a, b)| a != b),
                (names.len() != wanted.len()).then_some("count")
            ));
        }
        for ((p, d), f) in got.iter().zip(want) {
            if d.len() as u64 != f.size {
                return Err(format!(
                    "{p} has {} bytes, the manifest says {}",
                    d.len(),
                    f.size
                ));
            }
        }
        let all: Vec<u8> = got.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let cs = self.manifest.chunk_size() as usize;
        for (k, chunk) in all.chunks(cs).enumerate() {
            if !self.manifest.verify(k as u32, chunk) {
                return Err(format!("chunk {k} does not verify"));
            }
        }
        Ok(())
    }
}

/// The run's contents: the file, then the tree (if any).
pub(crate) fn contents(cfg: &SimConfig) -> Vec<Content> {
    let mut out = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.swarm_seed(1));
    let mut data = vec![0u8; cfg.swarm_size];
    rng.fill_bytes(&mut data);
    let name = "swarm-file.bin";
    out.push(Content::build(
        name,
        vec![(name.to_owned(), data)],
        cfg.chunk_size,
    ));
    if cfg.swarm_files > 0 {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.swarm_seed(2));
        let name = "swarm-tree";
        let files = (0..cfg.swarm_files)
            .map(|i| {
                // A few at the top, the rest in four subdirectories (one
                // nested); the first file is empty.
                let dir = match i % 5 {
                    0 => String::new(),
                    4 => "docs/old/".to_owned(),
                    d => format!("part-{d}/"),
                };
                let size = if i == 0 {
                    0
                } else {
                    (rng.next_u32() % (12 * 1024 + 1)) as usize
                };
                let mut d = vec![0u8; size];
                rng.fill_bytes(&mut d);
                (format!("{name}/{dir}f{i:03}.dat"), d)
            })
            .collect();
        out.push(Content::build(name, files, cfg.chunk_size));
    }
    out
}

/// Puts `c` in a holder's storage at its path.
fn stock(disk: &MemStorage, c: &Content) {
    if !c.is_tree() {
        disk.add_source(&c.path, c.files[0].1.as_ref().clone());
        return;
    }
    // `swarm-tree/a/b` is `a/b` in the directory `/share/swarm-tree`.
    let below = format!("{}/", c.name);
    let files = c
        .files
        .iter()
        .map(|(p, d)| {
            let rel = p.strip_prefix(&below).unwrap_or(p);
            (rel.to_owned(), d.as_ref().clone())
        })
        .collect();
    disk.add_source_dir(&c.path, files);
}

/// Flips the byte at `offset` of the source file at `path`, keeping its
/// size (and whatever the storage takes for its modification time): the
/// lying holder's copy.
fn flip(disk: &MemStorage, path: &str, offset: u64) -> bool {
    disk.corrupt_source_at(path, offset)
}

/// What the storage holds at `path` after a commit: the file (an empty
/// relative path) or every file under the directory (paths relative to
/// it), with their bytes.
fn committed(disk: &MemStorage, path: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let below = format!("{path}/");
    let files: Vec<(String, Vec<u8>)> = disk
        .swarm_files()
        .into_iter()
        .filter_map(|(k, d)| {
            let rel = if k == path {
                Some(String::new())
            } else {
                k.strip_prefix(&below).map(str::to_owned)
            };
            rel.map(|r| (r, d.to_vec()))
        })
        .collect();
    (!files.is_empty()).then_some(files)
}

/// The swarm frames the world follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Cancel,
    Chunk,
}

/// A `get`, `cancel` or `chunk` frame: its kind, content and chunk.
fn swarm_frame(f: &Frame) -> Option<(Kind, ContentId, u32)> {
    let Frame::Bytes(b) = f else {
        return None;
    };
    let rest = b.strip_prefix(b"P2PX/swarm\n")?;
    let (kind, rest) = [
        (Kind::Get, &b"get "[..]),
        (Kind::Cancel, b"cancel "),
        (Kind::Chunk, b"chunk "),
    ]
    .into_iter()
    .find_map(|(kind, head)| rest.strip_prefix(head).map(|r| (kind, r)))?;
    let id = ContentId::parse(std::str::from_utf8(rest.get(..64)?).ok()?)?;
    let rest = rest.get(65..)?;
    let end = rest.iter().position(|&c| c == b'\n')?;
    let k = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((kind, id, k))
}

/// The chunks of `c` the liar's copy gets wrong: every third one (seeded
/// phase), and at least one.
pub(crate) fn lies(c: &Content, phase: u32) -> Vec<u32> {
    let n = c.manifest.chunks();
    let mut v: Vec<u32> = (0..n).filter(|k| k % 3 == phase % 3).collect();
    if v.is_empty() && n > 0 {
        v.push(0);
    }
    v
}

/// One download on one host in one life.
#[derive(Debug, Default)]
struct Run {
    /// `DownloadStarted`'s `have`.
    have: Option<u64>,
    /// Bytes its host checkpointed for it before this life (the record a
    /// resumed download must claim).
    recorded: u64,
    /// Bytes written into the partial in this run (each a new chunk).
    written: u64,
    /// Checkpoints made in this run.
    checkpoints: u32,
    /// `DownloadComplete`'s `bytes_from`, once complete.
    bytes_from: Option<BTreeMap<PeerId, u64>>,
}

/// What the storage of a host holds of one partial download, by its ops.
#[derive(Debug, Default)]
struct Partial {
    /// Written since the last checkpoint.
    pending: BTreeSet<u32>,
    /// Written and recorded by a checkpoint: claimed when reopened.
    record: BTreeSet<u32>,
}

/// A resumed download, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Resumed {
    /// The host.
    pub host: String,
    /// Its life (0: the first).
    pub life: u32,
    /// The content's name.
    pub content: String,
    /// Total bytes.
    pub size: u64,
    /// Bytes verified from the earlier life's partial.
    pub have: u64,
    /// Bytes that life had checkpointed.
    pub recorded: u64,
    /// Bytes its `bytes_from` adds up to (`None`: not complete).
    pub fetched: Option<u64>,
    /// Bytes it wrote into the partial in this life.
    pub written: u64,
}

/// The scenario's numbers (the `swarm` object of `--json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwarmSummary {
    /// Each content: name, id, size, files, chunks.
    pub contents: Vec<ContentSummary>,
    /// Hosts by role.
    pub roles: BTreeMap<String, Vec<String>>,
    /// `Shared` events.
    pub shares: u64,
    /// `DownloadStarted` events.
    pub downloads_started: u64,
    /// `DownloadComplete` events.
    pub downloads_completed: u64,
    /// `DownloadFailed` events.
    pub downloads_failed: u64,
    /// Downloads (host, content) the scenario asked for.
    pub downloads_wanted: u64,
    /// Of them, committed by the end.
    pub downloads_committed: u64,
    /// Bytes every completed download's `bytes_from` adds up to.
    pub bytes_fetched: u64,
    /// Bytes written into partials.
    pub bytes_written: u64,
    /// `ChunkRejected` events naming the liar.
    pub chunks_rejected_liar: u64,
    /// `ChunkRejected` events naming anyone else.
    pub chunks_rejected_honest: u64,
    /// Wrong chunks of the liar that reached a downloader that had asked
    /// for them (each must be rejected).
    pub liar_chunks_received: u64,
    /// Downloaders that rejected a chunk of the liar.
    pub liar_caught_by: u64,
    /// Completed downloads whose `bytes_from` lists two peers or more.
    pub multi_peer_downloads: u64,
    /// Most peers in one completed download's `bytes_from`.
    pub max_peers_per_download: u64,
    /// Chunks sent by nodes still downloading that content.
    pub served_from_partial: u64,
    /// Downloads that resumed from an earlier life's partial.
    pub resumed: Vec<Resumed>,
}

/// One content in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ContentSummary {
    /// File or directory name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Total bytes.
    pub size: u64,
    /// Files in it.
    pub files: usize,
    /// Chunks.
    pub chunks: u32,
}

/// One chunk of one download: (host, life, content, chunk).
type Fetch = (usize, u32, usize, u32);

/// The world's record of the swarm scenario.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    /// Whether this run is the swarm scenario.
    pub(crate) on: bool,
    /// Private mode: frames cannot be read off the wire, so the liar's
    /// wrong chunks are not followed one by one (it must be caught once).
    private: bool,
    pub(crate) contents: Vec<Content>,
    by_id: BTreeMap<ContentId, usize>,
    pub(crate) roles: Vec<Role>,
    /// `swarm.requests_per_peer` of every node (the fetch bound's slack).
    requests_per_peer: u64,
    /// Each host's storage, kept across its lives.
    disks: BTreeMap<usize, MemStorage>,
    /// (host, content): what its storage holds of the partial.
    partials: BTreeMap<(usize, usize), Partial>,
    /// (host, life, content): one run of a download.
    runs: BTreeMap<(usize, u32, usize), Run>,
    /// (host, content) -> where it was committed.
    pub(crate) committed: BTreeMap<(usize, usize), String>,
    /// Downloads the scenario started: (host, content).
    pub(crate) wanted: BTreeSet<(usize, usize)>,
    /// (host, life, content): shared, by its `Shared` event.
    shared: BTreeSet<(usize, u32, usize)>,
    /// The liar's ids (it is never crashed: one).
    liar_ids: BTreeSet<PeerId>,
    /// Downloaders (host) that rejected a chunk of the liar.
    caught_by: BTreeSet<usize>,
    /// Per content, the chunks the liar's copy gets wrong.
    lies: Vec<BTreeSet<u32>>,
    /// Chunk requests to the liar outstanding, by the frames the
    /// downloaders sent it: (host, life, content, chunk).
    asked: BTreeSet<Fetch>,
    /// Wrong chunks of the liar that arrived with their request
    /// outstanding: the downloader must have rejected them by the end of
    /// the step. With when, the read they came in (a sequence number) and
    /// their place in it.
    owed: BTreeMap<Fetch, (Duration, u64, usize)>,
    /// Reads of the liar's frames so far.
    reads: u64,
    /// The last failure of each (host, content), for the report.
    failures: BTreeMap<(usize, usize), String>,
    stats: SwarmSummary,
}

impl Swarm {
    /// The scenario's record, if `cfg` runs it.
    pub(crate) fn new(cfg: &SimConfig) -> Swarm {
        if cfg.scenario != crate::Scenario::Swarm {
            return Swarm::default();
        }
        let contents = contents(cfg);
        let by_id = contents
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        Swarm {
            on: true,
            private: cfg.network_key.is_some(),
            contents,
            by_id,
            roles: roles(cfg),
            requests_per_peer: cfg.node_config(0).swarm.requests_per_peer as u64,
            ..Swarm::default()
        }
    }

    fn content_at(&self, path: &str) -> Option<usize> {
        self.contents.iter().position(|c| c.path == path)
    }

    /// The hosts in `role`.
    pub(crate) fn hosts(&self, role: Role) -> Vec<usize> {
        (0..self.roles.len())
            .filter(|&h| self.roles[h] == role)
            .collect()
    }

    /// The host the deliberate bugs that need one single out: the first
    /// downloader.
    pub(crate) fn target(&self) -> usize {
        self.hosts(Role::Downloader).first().copied().unwrap_or(0)
    }

    /// Chunks host `h` wrote into its partial of content `c` and has not
    /// committed (over its lives).
    pub(crate) fn held(&self, h: usize, c: usize) -> usize {
        self.partials
            .get(&(h, c))
            .map_or(0, |p| p.pending.len() + p.record.len())
    }

    /// Checkpoints of a download of `h` in `life` not yet committed.
    pub(crate) fn checkpoints(&self, h: usize, life: u32) -> u32 {
        self.runs
            .range((h, life, 0)..=(h, life, usize::MAX))
            .filter(|((_, _, c), r)| {
                r.bytes_from.is_none() && !self.committed.contains_key(&(h, *c))
            })
            .map(|(_, r)| r.checkpoints)
            .max()
            .unwrap_or(0)
    }

    /// Whether `h` was asked to download and committed all of it.
    pub(crate) fn done(&self, h: usize) -> bool {
        let mut wanted = self.wanted.range((h, 0)..=(h, usize::MAX)).peekable();
        wanted.peek().is_some() && wanted.all(|k| self.committed.contains_key(k))
    }

    /// Whether every holder and the liar shared everything in its life.
    pub(crate) fn all_shared(&self, lives: &[(usize, u32)]) -> bool {
        lives
            .iter()
            .all(|&(h, life)| (0..self.contents.len()).all(|c| self.shared.contains(&(h, life, c))))
    }
}

impl World {
    /// Host `h`'s storage: one for all its lives in the swarm scenario
    /// (holders get the content in it when it is made), a fresh one per
    /// life in every other.
    pub(crate) fn swarm_disk(&mut self, h: usize) -> MemStorage {
        if !self.swarm.on {
            return MemStorage::default();
        }
        let s = &mut self.swarm;
        if let Some(d) = s.disks.get(&h) {
            return d.clone();
        }
        let disk = MemStorage::default();
        if s.roles.get(h).is_some_and(|r| r.shares()) {
            for c in &s.contents {
                stock(&disk, c);
            }
        }
        s.disks.insert(h, disk.clone());
        disk
    }

    /// The liar's copy is corrupted under it: seeded chunks of each
    /// content get one byte flipped, in place, after it shared them.
    pub(crate) fn swarm_corrupt_liar(&mut self, phase: u32, at: Duration) {
        let Some(&liar) = self.swarm.hosts(Role::Liar).first() else {
            return;
        };
        let Some(disk) = self.swarm.disks.get(&liar).cloned() else {
            return;
        };
        let mut total = 0;
        let mut all = Vec::new();
        for c in &self.swarm.contents {
            let mut wrong = BTreeSet::new();
            for k in lies(c, phase) {
                // The chunk's first byte, in whichever file holds it.
                if let Some((i, off, _)) = c.manifest.segments(k).first().cloned() {
                    let path = format!("{SHARE_DIR}/{}", c.files[i].0);
                    if flip(&disk, &path, off) {
                        total += 1;
                        wrong.insert(k);
                    }
                }
            }
            all.push(wrong);
        }
        self.swarm.lies = all;
        self.trace.note(
            at,
            format_args!("swarm liar {liar} corrupted {total} chunks"),
        );
    }

    /// The commands a host of the swarm scenario is given at every start:
    /// holders share again, downloaders ask again for what they still
    /// lack (a resumed partial makes that a no-op).
    pub(crate) fn swarm_standing(&self, h: usize) -> Vec<crate::world::HostCmd> {
        use crate::world::HostCmd;
        if !self.swarm.on {
            return Vec::new();
        }
        let s = &self.swarm;
        let mut out = Vec::new();
        if s.roles.get(h).is_some_and(|r| r.shares()) && !s.shared.is_empty() {
            out.extend(s.contents.iter().map(|c| HostCmd::Share(c.path.clone())));
        }
        for &(_, c) in s.wanted.range((h, 0)..=(h, usize::MAX)) {
            if !s.committed.contains_key(&(h, c)) {
                out.push(HostCmd::Get(s.contents[c].id));
            }
        }
        out
    }

    /// The scenario asks `h` to download content `c`.
    pub(crate) fn swarm_want(&mut self, h: usize, c: usize) {
        self.swarm.wanted.insert((h, c));
    }

    /// A crash of `h`: what its partials wrote since their last
    /// checkpoint is not claimed any more.
    pub(crate) fn swarm_crashed(&mut self, h: usize) {
        if let Some(disk) = self.swarm.disks.get(&h) {
            // The process dies: open partials and the share registry go,
            // what is "on disk" stays.
            disk.crash();
        }
        for ((_, _), p) in self.swarm.partials.range_mut((h, 0)..=(h, usize::MAX)) {
            p.pending.clear();
        }
    }

    /// A storage op of host `h`.
    pub(crate) fn swarm_storage(&mut self, h: usize, op: &StorageOp, at: std::time::Duration) {
        if !self.swarm.on {
            return;
        }
        let life = self.hosts[h].life();
        match op {
            StorageOp::WriteChunk {
                content,
                chunk,
                data,
            } => {
                let Some(&c) = self.swarm.by_id.get(content) else {
                    return;
                };
                let expected = self.swarm.contents[c].chunk(*chunk);
                if data.as_ref() != expected.as_slice() {
                    let detail = format!(
                        "wrote chunk {chunk} of {} that is not the content's ({} bytes)",
                        self.swarm.contents[c].name,
                        data.len()
                    );
                    self.violate(SWARM_COMMIT_VERIFIED, at, Some(h), detail);
                }
                self.swarm.stats.bytes_written += data.len() as u64;
                self.swarm
                    .partials
                    .entry((h, c))
                    .or_default()
                    .pending
                    .insert(*chunk);
                self.swarm.runs.entry((h, life, c)).or_default().written += data.len() as u64;
            }
            StorageOp::Checkpoint { content } => {
                let Some(&c) = self.swarm.by_id.get(content) else {
                    return;
                };
                let p = self.swarm.partials.entry((h, c)).or_default();
                let pending = std::mem::take(&mut p.pending);
                p.record.extend(pending);
                self.swarm.runs.entry((h, life, c)).or_default().checkpoints += 1;
            }
            StorageOp::DiscardPartial { content } => {
                if let Some(&c) = self.swarm.by_id.get(content) {
                    self.swarm.partials.remove(&(h, c));
                }
            }
            _ => {}
        }
    }

    /// A storage completion of host `h`.
    pub(crate) fn swarm_input(&mut self, h: usize, input: &Input, at: Duration) {
        if !self.swarm.on {
            return;
        }
        let Input::DownloadCommitted { content, path } = input else {
            return;
        };
        let Some(&c) = self.swarm.by_id.get(content) else {
            let detail = format!("committed {content:?} at {path}, content nobody shares");
            return self.violate(SWARM_COMMIT_VERIFIED, at, Some(h), detail);
        };
        let disk = self.swarm.disks.get(&h).cloned();
        let got = disk.and_then(|d| committed(&d, path));
        let content_ = &self.swarm.contents[c];
        let verdict = match got {
            None => Err(format!("nothing stored at {path}")),
            Some(files) => {
                // The storage names files by their place; the manifest by
                // the content's name: `<path>/rest` is `<name>/rest`.
                let renamed: Vec<(String, Vec<u8>)> = files
                    .into_iter()
                    .map(|(rel, d)| {
                        let p = if rel.is_empty() {
                            content_.name.clone()
                        } else {
                            format!("{}/{rel}", content_.name)
                        };
                        (p, d)
                    })
                    .collect();
                content_.verify(&renamed)
            }
        };
        let (name, short, tree) = (
            content_.name.clone(),
            content_.id.short(),
            content_.is_tree(),
        );
        if let Err(why) = verdict {
            let detail = format!("committed {name} ({short}) at {path}: {why}");
            self.violate(SWARM_COMMIT_VERIFIED, at, Some(h), detail);
        }
        if tree {
            self.coverage.hit("swarm_tree_committed");
        }
        self.swarm.partials.remove(&(h, c));
        self.swarm
            .committed
            .entry((h, c))
            .or_insert_with(|| path.clone());
    }

    /// A swarm event of host `h`.
    pub(crate) fn swarm_event(&mut self, h: usize, e: &Event, at: Duration) {
        if !self.swarm.on {
            return;
        }
        let life = self.hosts[h].life();
        let name_of = |w: &World, id: &ContentId| w.swarm.by_id.get(id).copied();
        match e {
            Event::Shared { id, path, .. } => {
                self.coverage.hit("swarm_shared");
                self.swarm.stats.shares += 1;
                match self.swarm.content_at(path) {
                    Some(c) if self.swarm.contents[c].id == *id => {
                        self.swarm.shared.insert((h, life, c));
                        if self.swarm.roles[h] == Role::Liar {
                            if let Some(own) = self.hosts[h].id.clone() {
                                self.swarm.liar_ids.insert(own);
                            }
                        }
                    }
                    Some(c) => {
                        let detail = format!(
                            "shared {path} as {}, the simulator's id is {}",
                            id.short(),
                            self.swarm.contents[c].id.short()
                        );
                        self.violate(SWARM_COMMIT_VERIFIED, at, Some(h), detail);
                    }
                    None => {}
                }
            }
            Event::ShareFailed { path, error } => {
                let detail = format!("sharing {path} failed: {error}");
                self.violate(SWARM_DOWNLOADS_COMPLETE, at, Some(h), detail);
            }
            Event::DownloadStarted { id, have, .. } => {
                self.coverage.hit("swarm_download_started");
                self.swarm.stats.downloads_started += 1;
                let Some(c) = name_of(self, id) else { return };
                let cs = &self.swarm.contents[c];
                let recorded: u64 = self.swarm.partials.get(&(h, c)).map_or(0, |p| {
                    p.record
                        .iter()
                        .map(|&k| cs.manifest.chunk_len(k) as u64)
                        .sum()
                });
                if *have > 0 {
                    self.coverage.hit("swarm_download_resumed");
                }
                if *have < recorded {
                    let detail = format!(
                        "resumed {} with {have} bytes, but {recorded} bytes were checkpointed before",
                        cs.name
                    );
                    self.violate(SWARM_RESUME_BOUNDED, at, Some(h), detail);
                }
                let run = self.swarm.runs.entry((h, life, c)).or_default();
                run.have = Some(*have);
                run.recorded = recorded;
            }
            Event::DownloadComplete {
                id,
                size,
                bytes_from,
                ..
            } => {
                self.coverage.hit("swarm_download_completed");
                self.swarm.stats.downloads_completed += 1;
                let Some(c) = name_of(self, id) else { return };
                let fetched: u64 = bytes_from.values().sum();
                self.swarm.stats.bytes_fetched += fetched;
                let senders = bytes_from.len() as u64;
                if senders >= 2 {
                    self.coverage.hit("swarm_multi_peer_download");
                    self.swarm.stats.multi_peer_downloads += 1;
                }
                let s = &mut self.swarm.stats;
                s.max_peers_per_download = s.max_peers_per_download.max(senders);
                let chunk = u64::from(self.swarm.contents[c].manifest.chunk_size());
                let slack = chunk * self.swarm.requests_per_peer * senders.max(1);
                let run = self.swarm.runs.entry((h, life, c)).or_default();
                run.bytes_from = Some(bytes_from.clone());
                let have = run.have.unwrap_or(0);
                let written = run.written;
                let bound = size.saturating_sub(have) + slack;
                if fetched < written {
                    self.coverage.hit("swarm_bytes_from_short");
                }
                let name = self.swarm.contents[c].name.clone();
                for (what, n) in [
                    ("its bytes_from adds up to", fetched),
                    ("it wrote", written),
                ] {
                    if n > bound {
                        let detail = format!(
                            "{name}: {what} {n} bytes, more than size {size} - have {have} + {slack} bytes in flight"
                        );
                        self.violate(SWARM_RESUME_BOUNDED, at, Some(h), detail);
                    }
                }
            }
            Event::DownloadFailed { id, error } => {
                self.swarm.stats.downloads_failed += 1;
                let c = name_of(self, id);
                let what = c.map_or_else(|| id.short(), |c| self.swarm.contents[c].name.clone());
                if let Some(c) = c {
                    self.swarm.failures.insert((h, c), error.to_string());
                }
                if !matches!(error, DownloadFailure::Shutdown) {
                    let detail = format!("the download of {what} failed: {error}");
                    self.violate(SWARM_DOWNLOADS_COMPLETE, at, Some(h), detail);
                }
            }
            Event::ChunkRejected { id, peer, chunk } => {
                self.coverage.hit("swarm_chunk_rejected");
                let what = name_of(self, id)
                    .map_or_else(|| id.short(), |c| self.swarm.contents[c].name.clone());
                if self.swarm.liar_ids.contains(peer) {
                    self.swarm.stats.chunks_rejected_liar += 1;
                    self.swarm.caught_by.insert(h);
                    if let Some(c) = name_of(self, id) {
                        // Banned from this download: what is still asked
                        // of it is dropped without a cancel, and so are
                        // its chunks after this one in the same read.
                        let dl = (h, life, c);
                        if let Some((_, read, at)) = self.swarm.owed.remove(&(h, life, c, *chunk)) {
                            self.swarm.owed.retain(|&(x, l, y, _), &mut (_, r, i)| {
                                (x, l, y) != dl || r != read || i < at
                            });
                        }
                        self.swarm.asked.retain(|&(x, l, y, _)| (x, l, y) != dl);
                    }
                } else {
                    self.swarm.stats.chunks_rejected_honest += 1;
                    let who = self
                        .hosts
                        .iter()
                        .position(|x| x.id.as_ref() == Some(peer))
                        .map_or_else(|| peer.to_string(), |r| self.host_name(r));
                    let detail = format!("rejected chunk {chunk} of {what} from honest peer {who}");
                    self.violate(SWARM_LIAR_DETECTED, at, Some(h), detail);
                }
            }
            _ => {}
        }
    }

    /// The host that lies, if any.
    fn liar(&self) -> Option<usize> {
        self.swarm.roles.iter().position(|r| *r == Role::Liar)
    }

    /// Frames host `h` transmitted to host `remote`: chunks it serves of
    /// content it is still downloading count as served from a partial;
    /// chunk requests to the liar and their cancels are followed.
    pub(crate) fn swarm_sent(&mut self, h: usize, remote: Option<usize>, frames: &[Frame]) {
        if !self.swarm.on {
            return;
        }
        let life = self.hosts[h].life();
        let to_liar = remote.is_some() && remote == self.liar();
        for f in frames {
            let Some((kind, id, k)) = swarm_frame(f) else {
                continue;
            };
            let Some(&c) = self.swarm.by_id.get(&id) else {
                continue;
            };
            match kind {
                Kind::Get if to_liar => {
                    self.swarm.asked.insert((h, life, c, k));
                    continue;
                }
                Kind::Cancel if to_liar => {
                    self.swarm.asked.remove(&(h, life, c, k));
                    continue;
                }
                Kind::Chunk => {}
                _ => continue,
            }
            let downloading = self
                .swarm
                .runs
                .get(&(h, life, c))
                .is_some_and(|r| r.bytes_from.is_none())
                && !self.swarm.committed.contains_key(&(h, c));
            if downloading {
                self.coverage.hit("swarm_served_from_partial");
                self.swarm.stats.served_from_partial += 1;
            }
        }
    }

    /// Frames host `h` received from host `remote`: a wrong chunk of the
    /// liar that arrives with its request outstanding is owed a rejection.
    pub(crate) fn swarm_received(
        &mut self,
        h: usize,
        remote: Option<usize>,
        frames: &[Frame],
        at: Duration,
    ) {
        if !self.swarm.on || remote.is_none() || remote != self.liar() {
            return;
        }
        let life = self.hosts[h].life();
        self.swarm.reads += 1;
        let read = self.swarm.reads;
        for (i, f) in frames.iter().enumerate() {
            let Some((Kind::Chunk, id, k)) = swarm_frame(f) else {
                continue;
            };
            let Some(&c) = self.swarm.by_id.get(&id) else {
                continue;
            };
            let key = (h, life, c, k);
            if self.swarm.asked.remove(&key) && self.swarm.lies[c].contains(&k) {
                self.swarm.stats.liar_chunks_received += 1;
                self.swarm.owed.insert(key, (at, read, i));
            }
        }
    }

    /// After every step: each node handled what it received, so every
    /// wrong chunk of the liar it had asked for must have been rejected.
    pub(crate) fn swarm_end_step(&mut self, now: Duration) {
        if self.swarm.owed.is_empty() {
            return;
        }
        for ((h, _, c, k), (at, _, _)) in std::mem::take(&mut self.swarm.owed) {
            let detail = format!(
                "received chunk {k} of {} from the liar at {} ms, asked for and wrong, and did not reject it",
                self.swarm.contents[c].name,
                at.as_millis()
            );
            self.violate(SWARM_LIAR_DETECTED, now, Some(h), detail);
        }
    }

    /// The downloads not committed yet, for [`SWARM_DOWNLOADS_COMPLETE`].
    pub(crate) fn swarm_downloads_done(&self) -> Result<(), String> {
        let s = &self.swarm;
        let missing: Vec<String> = s
            .wanted
            .iter()
            .filter(|k| !s.committed.contains_key(k))
            .map(|&(h, c)| {
                let mut m = format!("{} lacks {}", self.host_name(h), s.contents[c].name);
                if let Some(why) = s.failures.get(&(h, c)) {
                    m += &format!(" (failed: {why})");
                }
                let n = s.contents[c].manifest.chunks();
                m += &format!(" ({} of {n} chunks written)", s.held(h, c));
                m
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let shown = missing.len().min(5);
        let mut why = format!(
            "{} of {} downloads not committed: {}",
            missing.len(),
            s.wanted.len(),
            missing[..shown].join("; ")
        );
        if missing.len() > shown {
            why += &format!("; and {} more", missing.len() - shown);
        }
        Err(why)
    }

    /// The checks at the end of the run.
    pub(crate) fn swarm_final(&mut self, at: Duration) {
        if !self.swarm.on {
            return;
        }
        let s = &self.swarm.stats;
        if self.swarm.caught_by.is_empty() && (s.liar_chunks_received > 0 || self.swarm.private) {
            let detail = format!(
                "no downloader rejected a chunk of the liar ({} of its wrong chunks arrived asked for)",
                s.liar_chunks_received
            );
            self.violate(SWARM_LIAR_DETECTED, at, None, detail);
        }
        if self.swarm.stats.multi_peer_downloads == 0 {
            let detail = format!(
                "none of {} completed downloads drew from two peers or more",
                self.swarm.stats.downloads_completed
            );
            self.violate(SWARM_MULTI_PEER, at, None, detail);
        }
    }

    /// The scenario's numbers for the report.
    pub(crate) fn swarm_summary(&self) -> Option<SwarmSummary> {
        let s = &self.swarm;
        if !s.on {
            return None;
        }
        let mut out = s.stats.clone();
        out.contents = s
            .contents
            .iter()
            .map(|c| ContentSummary {
                name: c.name.clone(),
                id: c.id.to_hex(),
                size: c.manifest.size(),
                files: c.files.len(),
                chunks: c.manifest.chunks(),
            })
            .collect();
        for (h, r) in s.roles.iter().enumerate() {
            let key = serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.roles.entry(key).or_default().push(self.host_name(h));
        }
        out.downloads_wanted = s.wanted.len() as u64;
        out.downloads_committed = s
            .wanted
            .iter()
            .filter(|k| s.committed.contains_key(k))
            .count() as u64;
        out.liar_caught_by = s.caught_by.len() as u64;
        out.resumed = s
            .runs
            .iter()
            .filter(|(_, r)| r.have.is_some_and(|h| h > 0) || r.recorded > 0)
            .map(|(&(h, life, c), r)| Resumed {
                host: self.host_name(h),
                life,
                content: s.contents[c].name.clone(),
                size: s.contents[c].manifest.size(),
                have: r.have.unwrap_or(0),
                recorded: r.recorded,
                fetched: r.bytes_from.as_ref().map(|b| b.values().sum()),
                written: r.written,
            })
            .collect();
        Some(out)
    }
}
