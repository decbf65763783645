//! The swarm component: content-addressed sharing (docs/PROTOCOL.md §9).
//! What this node shares, the mesh-wide index of what its peers offer,
//! downloads that fetch verified chunks from every holder, serving chunks
//! to others, and offers.
//!
//! | part | file |
//! | --- | --- |
//! | manifests, content ids, path checks | `manifest.rs` |
//! | the `swarm/1` frames | `wire.rs` |
//! | one download: picking, pipelining, endgame, verification | `download.rs` |

mod manifest;
mod wire;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::PeerId;

pub use manifest::{
    check_path, chunk_hash, ContentId, Manifest, ManifestError, ManifestFile, CHUNK_SIZE,
};

/// Why content stopped being shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnshareReason {
    /// The application asked (`/unshare`).
    Command,
    /// A file of it changed or vanished since it was hashed (it is hashed
    /// again if it is still there).
    Changed,
}

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadFailure {
    /// The manifest peers sent is not valid.
    BadManifest(String),
    /// The disk failed.
    Storage(crate::IoError),
    /// The application cancelled it.
    Cancelled,
    /// The node shut down (the partial stays for the next run).
    Shutdown,
}

impl fmt::Display for DownloadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadFailure::BadManifest(why) => write!(f, "bad manifest: {why}"),
            DownloadFailure::Storage(e) => write!(f, "storage: {e}"),
            DownloadFailure::Cancelled => f.write_str("cancelled"),
            DownloadFailure::Shutdown => f.write_str("node shut down (partial kept)"),
        }
    }
}

impl Serialize for DownloadFailure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One content the mesh offers (what `/files` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The content id.
    pub id: ContentId,
    /// File or directory name.
    pub name: String,
    /// Total bytes.
    pub size: u64,
    /// Files in it.
    pub files: u32,
    /// Peers holding all of it.
    pub complete: usize,
    /// Peers holding part of it (downloading it).
    pub partial: usize,
    /// Shared by this node.
    pub ours: bool,
}

/// Where a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DownloadPhase {
    /// Asking holders for the manifest.
    Manifest,
    /// Re-reading and verifying what an earlier run left on disk.
    Verifying,
    /// Fetching chunks.
    Fetching,
    /// Every chunk is held; being made durable and moved to its name.
    Committing,
}

/// A download in progress (what `/downloads` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadInfo {
    /// The content id.
    pub id: ContentId,
    /// File or directory name (empty until the manifest arrived).
    pub name: String,
    /// Total bytes (0 until the manifest arrived).
    pub size: u64,
    /// Bytes verified.
    pub bytes: u64,
    /// Where it is.
    pub phase: DownloadPhase,
    /// Peers with requests in flight now.
    pub peers: usize,
    /// Chunk requests in flight now.
    pub requests: usize,
    /// Peers known to hold some of it.
    pub holders: usize,
    /// Verified bytes each peer sent in this run.
    pub bytes_from: BTreeMap<PeerId, u64>,
}

mod download;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;

use crate::config::{AcceptOffers, SwarmConfig};
use crate::event::{Event, StorageOp};
use crate::io::{Outbox, Output, Target};
use crate::peers::Peers;
use crate::{CommandError, ConnId, IoError};
use download::{Download, Phase, Step};
use wire::{Entry, Msg};

/// Complete content held here: shared, or a finished download.
#[derive(Debug)]
struct Share {
    manifest: Arc<Manifest>,
    bytes: Bytes,
    path: String,
}

/// What a storage read is for.
#[derive(Debug)]
enum Read {
    /// A chunk a peer asked for.
    Serve {
        peer: PeerId,
        content: ContentId,
        chunk: u32,
    },
    /// A chunk an earlier run's record claims, to verify.
    Verify { content: ContentId, chunk: u32 },
}

/// An offer a peer made us, waiting for `/accept` or `/decline`.
#[derive(Debug, Clone)]
struct OfferIn {
    from: PeerId,
    entry: Entry,
    /// When it came, in arrival order: the oldest is dropped first.
    seq: u64,
}

/// Requests of one peer waiting to be served.
#[derive(Debug, Default)]
struct Serving {
    queue: VecDeque<(ContentId, u32)>,
    /// Reads at the storage for this peer.
    reading: usize,
}

/// Reads at the storage per peer being served: enough to hide the disk's
/// latency, few enough that a cancel still saves most of the work.
/// (Served reads also wait while the peer's send queue holds 16 chunks,
/// half of the driver's slow-reader limit.)
const READS_PER_PEER: usize = 8;

/// Content-addressed sharing: shares, the mesh index, downloads, serving,
/// offers.
#[derive(Debug)]
pub(crate) struct Swarm {
    cfg: SwarmConfig,
    shares: BTreeMap<ContentId, Share>,
    /// Paths being hashed, and the offer to send once they are.
    hashing: BTreeMap<String, Option<Target>>,
    /// What each peer offers (its last index).
    index: BTreeMap<PeerId, BTreeMap<ContentId, Entry>>,
    /// Peers that speak `swarm/1`.
    speakers: BTreeSet<PeerId>,
    downloads: BTreeMap<ContentId, Download>,
    reads: BTreeMap<u64, Read>,
    next_read: u64,
    serving: BTreeMap<PeerId, Serving>,
    offers: BTreeMap<ContentId, OfferIn>,
    /// Offers received so far (their arrival order).
    offer_seq: u64,
    /// Offers we made, so that a decline is only reported for those.
    offered: BTreeSet<(ContentId, PeerId)>,
    /// The node shut down: a late storage answer starts nothing.
    shut_down: bool,
    pub(crate) out: Outbox,
}

fn send(out: &mut Outbox, peers: &Peers, peer: &PeerId, msg: &Msg) -> bool {
    let Some(conn) = peers.conn_of(peer) else {
        return false;
    };
    for b in msg.encode() {
        out.transmit(conn, b);
    }
    true
}

impl Swarm {
    pub(crate) fn new(cfg: &SwarmConfig) -> Swarm {
        Swarm {
            cfg: cfg.clone(),
            shares: BTreeMap::new(),
            hashing: BTreeMap::new(),
            index: BTreeMap::new(),
            speakers: BTreeSet::new(),
            downloads: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            serving: BTreeMap::new(),
            offers: BTreeMap::new(),
            offer_seq: 0,
            offered: BTreeSet::new(),
            shut_down: false,
            out: Outbox::default(),
        }
    }

    /// The node starts: partial downloads of an earlier run are listed.
    pub(crate) fn start(&mut self) {
        if self.cfg.enabled {
            self.out.push(Output::Storage(StorageOp::ScanPartials));
        }
    }

    fn check_enabled(&self) -> Result<(), CommandError> {
        if self.cfg.enabled {
            Ok(())
        } else {
            Err(CommandError::SwarmDisabled)
        }
    }

    // ----- what we offer -----

    fn our_entries(&self) -> Vec<Entry> {
        let complete = self.shares.iter().map(|(id, s)| Entry {
            id: *id,
            size: s.manifest.size(),
            files: s.manifest.files().len() as u32,
            complete: true,
            name: s.manifest.name().to_owned(),
        });
        let partial = self
            .downloads
            .values()
            .filter(|d| d.have_count() > 0 && !self.shares.contains_key(&d.id))
            .filter_map(|d| {
                let m = d.manifest.as_ref()?;
                Some(Entry {
                    id: d.id,
                    size: m.size(),
                    files: m.files().len() as u32,
                    complete: false,
                    name: m.name().to_owned(),
                })
            });
        complete.chain(partial).take(wire::MAX_INDEX).collect()
    }

    /// Our index to one peer, or to every speaker.
    fn announce(&mut self, peers: &Peers, to: Option<&PeerId>) {
        let msg = Msg::Index(self.our_entries());
        match to {
            Some(p) => {
                send(&mut self.out, peers, p, &msg);
            }
            None => {
                // One encoding shared by every speaker's connection.
                let frames = msg.encode();
                for p in &self.speakers {
                    if let Some(conn) = peers.conn_of(p) {
                        for b in &frames {
                            self.out.transmit(conn, b.clone());
                        }
                    }
                }
            }
        }
    }

    /// `peer`'s caps frame said it speaks `swarm/1`: it gets our index.
    pub(crate) fn on_speaker(&mut self, peer: &PeerId, peers: &Peers) {
        if !self.cfg.enabled || !self.speakers.insert(peer.clone()) {
            return;
        }
        self.announce(peers, Some(peer));
    }

    /// A peer is gone: what it offered, its requests and its part in our
    /// downloads are forgotten.
    pub(crate) fn on_peer_gone(
        &mut self,
        now: Instant,
        peer: &PeerId,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) {
        self.speakers.remove(peer);
        self.index.remove(peer);
        self.serving.remove(peer);
        // Its reads at the storage are answered into the void: a chunk it
        // asked on this connection is not sent on its next one, and does
        // not count against that one's reads.
        self.reads
            .retain(|_, r| !matches!(r, Read::Serve { peer: p, .. } if p == peer));
        self.offers.retain(|_, o| &o.from != peer);
        self.offered.retain(|(_, p)| p != peer);
        let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
        for id in ids {
            if let Some(d) = self.downloads.get_mut(&id) {
                d.remove_holder(peer);
            }
            self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                d.ask_manifest(now, cfg, steps);
                d.pick(now, cfg, steps);
            });
        }
    }

    // ----- commands -----

    /// Resolves a typed id: 64 hex digits, or a unique prefix of 8 or more
    /// among everything known here.
    pub(crate) fn resolve(&self, typed: &str) -> Result<ContentId, CommandError> {
        let t = typed.trim().to_ascii_lowercase();
        if let Some(id) = ContentId::parse(&t) {
            return Ok(id);
        }
        if t.len() < 8 || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CommandError::InvalidContentId(crate::truncate_for_report(
                typed,
            )));
        }
        let known = self
            .shares
            .keys()
            .chain(self.downloads.keys())
            .chain(self.offers.keys())
            .chain(self.index.values().flat_map(|m| m.keys()));
        let matches: BTreeSet<ContentId> = known
            .filter(|id| id.to_hex().starts_with(&t))
            .copied()
            .collect();
        match matches.len() {
            0 => Err(CommandError::UnknownContent(t)),
            1 => Ok(*matches.iter().next().unwrap_or(&ContentId([0; 32]))),
            _ => Err(CommandError::AmbiguousContent(t)),
        }
    }

    /// Hashes `path` (the storage does) and shares it; `offer`: offer it
    /// once hashed.
    pub(crate) fn share(
        &mut self,
        path: &str,
        offer: Option<Target>,
        peers: &Peers,
    ) -> Result<(), CommandError> {
        self.check_enabled()?;
        if let Some((id, s)) = self.shares.iter().find(|(_, s)| s.path == path) {
            // Shared already: nothing to hash; said again, so that the
            // application shows the id.
            let id = *id;
            let event = Event::Shared {
                id,
                name: s.manifest.name().to_owned(),
                size: s.manifest.size(),
                files: s.manifest.files().len() as u32,
                path: s.path.clone(),
            };
            match offer {
                Some(t) => {
                    self.send_offer(id, t, peers)?;
                }
                None => self.out.event(event),
            }
            return Ok(());
        }
        let first = !self.hashing.contains_key(path);
        let slot = self.hashing.entry(path.to_owned()).or_default();
        if offer.is_some() {
            *slot = offer;
        }
        if first {
            self.out.push(Output::Storage(StorageOp::Share {
                path: path.to_owned(),
                chunk_size: self.cfg.chunk_size,
            }));
        }
        Ok(())
    }

    pub(crate) fn on_shared(&mut self, path: String, bytes: Bytes, peers: &Peers) {
        let offer = self.hashing.remove(&path).flatten();
        let manifest = match Manifest::parse(&bytes) {
            Ok(m) => m,
            Err(e) => {
                self.out.event(Event::ShareFailed {
                    path,
                    error: IoError::new(std::io::ErrorKind::InvalidData, e.to_string()),
                });
                return;
            }
        };
        let id = ContentId::of(&bytes);
        self.out.event(Event::Shared {
            id,
            name: manifest.name().to_owned(),
            size: manifest.size(),
            files: manifest.files().len() as u32,
            path: path.clone(),
        });
        self.shares.insert(
            id,
            Share {
                manifest: Arc::new(manifest),
                bytes,
                path,
            },
        );
        self.announce(peers, None);
        if let Some(t) = offer {
            let _ = self.send_offer(id, t, peers);
        }
    }

    pub(crate) fn on_share_failed(&mut self, path: String, error: IoError) {
        self.hashing.remove(&path);
        self.out.event(Event::ShareFailed { path, error });
    }

    /// Stops sharing `id`.
    pub(crate) fn unshare(
        &mut self,
        typed: &str,
        peers: &Peers,
    ) -> Result<ContentId, CommandError> {
        let id = self.resolve(typed)?;
        if !self.shares.contains_key(&id) {
            return Err(CommandError::UnknownContent(id.to_hex()));
        }
        self.drop_share(id, UnshareReason::Command, peers);
        Ok(id)
    }

    fn drop_share(
        &mut self,
        id: ContentId,
        reason: UnshareReason,
        peers: &Peers,
    ) -> Option<String> {
        let s = self.shares.remove(&id)?;
        self.out
            .push(Output::Storage(StorageOp::Unshare { content: id }));
        self.out.event(Event::Unshared {
            id,
            name: s.manifest.name().to_owned(),
            reason,
        });
        for q in self.serving.values_mut() {
            q.queue.retain(|(c, _)| *c != id);
        }
        self.announce(peers, None);
        Some(s.path)
    }

    fn send_offer(
        &mut self,
        id: ContentId,
        target: Target,
        peers: &Peers,
    ) -> Result<usize, CommandError> {
        let s = self
            .shares
            .get(&id)
            .ok_or(CommandError::UnknownContent(id.to_hex()))?;
        let entry = Entry {
            id,
            size: s.manifest.size(),
            files: s.manifest.files().len() as u32,
            complete: true,
            name: s.manifest.name().to_owned(),
        };
        let to: Vec<PeerId> = match target {
            Target::All => self.speakers.iter().cloned().collect(),
            Target::Peer(p) => {
                if !self.speakers.contains(&p) {
                    return Err(CommandError::UnknownPeer(p.to_string()));
                }
                vec![p]
            }
        };
        let msg = Msg::Offer(entry);
        let mut n = 0;
        for p in to {
            if send(&mut self.out, peers, &p, &msg) {
                self.offered.insert((id, p));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Offers `path` (shared first if it is not) to a peer or every peer
    /// that speaks `swarm/1`.
    pub(crate) fn offer(
        &mut self,
        path: &str,
        target: Target,
        peers: &Peers,
    ) -> Result<(), CommandError> {
        self.check_enabled()?;
        if let Target::Peer(p) = &target {
            if !self.speakers.contains(p) {
                return Err(CommandError::UnknownPeer(p.to_string()));
            }
        } else if self.speakers.is_empty() {
            return Err(CommandError::NoPeers);
        }
        self.share(path, Some(target), peers)
    }

    /// Downloads `typed` from every peer that holds it.
    pub(crate) fn get(
        &mut self,
        now: Instant,
        typed: &str,
        dir: Option<String>,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) -> Result<ContentId, CommandError> {
        self.check_enabled()?;
        let id = self.resolve(typed)?;
        if let Some(s) = self.shares.get(&id) {
            return Err(CommandError::AlreadyHave(format!(
                "{} ({})",
                s.manifest.name(),
                s.path
            )));
        }
        if self.downloads.contains_key(&id) {
            return Ok(id);
        }
        if self.downloads.len() >= self.cfg.max_downloads {
            return Err(CommandError::TooManyDownloads(self.downloads.len()));
        }
        let mut d = Download::new(id, dir);
        for (p, entries) in &self.index {
            if let Some(e) = entries.get(&id) {
                d.add_holder(p, e.complete);
            }
        }
        if let Some(o) = self.offers.remove(&id) {
            d.add_holder(&o.from, true);
        }
        if d.holders.is_empty() {
            return Err(CommandError::UnknownContent(id.to_hex()));
        }
        self.downloads.insert(id, d);
        self.drive(now, id, peers, rng, |d, now, cfg, steps| {
            d.ask_manifest(now, cfg, steps)
        });
        Ok(id)
    }

    /// Accepts an offer: a download from the offerer and every other holder.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        typed: &str,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) -> Result<ContentId, CommandError> {
        let id = self.resolve(typed)?;
        if !self.offers.contains_key(&id) {
            return Err(CommandError::UnknownContent(id.to_hex()));
        }
        self.get(now, &id.to_hex(), None, peers, rng)
    }

    /// Declines an offer; the offerer is told.
    pub(crate) fn decline(
        &mut self,
        typed: &str,
        peers: &Peers,
    ) -> Result<ContentId, CommandError> {
        let id = self.resolve(typed)?;
        let o = self
            .offers
            .remove(&id)
            .ok_or(CommandError::UnknownContent(id.to_hex()))?;
        send(&mut self.out, peers, &o.from, &Msg::Decline(id));
        Ok(id)
    }

    /// Cancels a download and deletes its partial.
    pub(crate) fn cancel(&mut self, typed: &str, peers: &Peers) -> Result<ContentId, CommandError> {
        let id = self.resolve(typed)?;
        let d = self
            .downloads
            .remove(&id)
            .ok_or(CommandError::UnknownContent(id.to_hex()))?;
        self.end_download(d, peers);
        self.out
            .push(Output::Storage(StorageOp::DiscardPartial { content: id }));
        self.out.event(Event::DownloadFailed {
            id,
            error: DownloadFailure::Cancelled,
        });
        self.announce(peers, None);
        Ok(id)
    }

    /// Withdraws a finished or abandoned download's requests.
    fn end_download(&mut self, d: Download, peers: &Peers) {
        self.reads
            .retain(|_, r| !matches!(r, Read::Verify { content, .. } if *content == d.id));
        let _ = (d, peers);
    }

    /// Everything the mesh offers, and what we share.
    pub(crate) fn files(&self) -> Vec<Listing> {
        let mut all: BTreeMap<ContentId, Listing> = BTreeMap::new();
        for (id, s) in &self.shares {
            all.insert(
                *id,
                Listing {
                    id: *id,
                    name: s.manifest.name().to_owned(),
                    size: s.manifest.size(),
                    files: s.manifest.files().len() as u32,
                    complete: 0,
                    partial: 0,
                    ours: true,
                },
            );
        }
        for entries in self.index.values() {
            for e in entries.values() {
                let l = all.entry(e.id).or_insert_with(|| Listing {
                    id: e.id,
                    name: e.name.clone(),
                    size: e.size,
                    files: e.files,
                    complete: 0,
                    partial: 0,
                    ours: false,
                });
                if e.complete {
                    l.complete += 1;
                } else {
                    l.partial += 1;
                }
            }
        }
        // An offer is listed even before the offerer's index says so.
        for o in self.offers.values() {
            all.entry(o.entry.id).or_insert_with(|| Listing {
                id: o.entry.id,
                name: o.entry.name.clone(),
                size: o.entry.size,
                files: o.entry.files,
                complete: 1,
                partial: 0,
                ours: false,
            });
        }
        all.into_values().collect()
    }

    /// Offers waiting for an answer.
    #[cfg(feature = "internals")]
    pub(crate) fn pending_offers(&self) -> usize {
        self.offers.len()
    }

    /// Downloads in progress.
    pub(crate) fn downloads(&self, now: Instant) -> Vec<DownloadInfo> {
        self.downloads
            .values()
            .map(|d| DownloadInfo {
                id: d.id,
                name: d.name().to_owned(),
                size: d.size(),
                bytes: d.bytes,
                phase: match d.phase {
                    Phase::Manifest => DownloadPhase::Manifest,
                    Phase::Opening => DownloadPhase::Verifying,
                    Phase::Fetching if !d.started => DownloadPhase::Verifying,
                    Phase::Fetching => DownloadPhase::Fetching,
                    Phase::Committing => DownloadPhase::Committing,
                },
                peers: d.serving_peers(),
                requests: d.requests(),
                holders: d.usable_holders(now),
                bytes_from: d.bytes_from(),
            })
            .collect()
    }

    // ----- frames -----

    /// A `P2PX/swarm` frame from `peer` (who announced `swarm/1`).
    pub(crate) fn on_frame(
        &mut self,
        now: Instant,
        peer: &PeerId,
        body: Bytes,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
        rng: &mut ChaCha8Rng,
    ) {
        let msg = match Msg::parse(body) {
            Ok(m) => m,
            Err(why) => {
                self.out.event(Event::ExtensionIgnored {
                    peer: peer.clone(),
                    why: format!("swarm: {why}"),
                });
                return;
            }
        };
        match msg {
            Msg::Index(entries) => self.on_index(now, peer, entries, peers, rng),
            Msg::ManifestGet(id) => {
                let reply = match self.shares.get(&id) {
                    Some(s) => Msg::Manifest(id, s.bytes.clone()),
                    None => match self.downloads.get(&id) {
                        Some(d) if d.manifest.is_some() => {
                            Msg::Manifest(id, d.manifest_bytes.clone())
                        }
                        _ => Msg::None(id, None),
                    },
                };
                send(&mut self.out, peers, peer, &reply);
            }
            Msg::Manifest(id, bytes) => {
                let cfg = self.cfg.clone();
                let Some(d) = self.downloads.get_mut(&id) else {
                    return;
                };
                let mut steps = Vec::new();
                if let Err(why) = d.on_manifest(now, peer, bytes, &cfg, rng, &mut steps) {
                    self.out.event(Event::ExtensionIgnored {
                        peer: peer.clone(),
                        why: format!("swarm: manifest of {}: {why}", id.short()),
                    });
                }
                self.run(now, id, steps, peers);
            }
            Msg::HaveGet(id) => {
                let reply = match self.downloads.get(&id) {
                    Some(d) if d.manifest.is_some() && !self.shares.contains_key(&id) => {
                        Msg::Have(id, d.bitfield())
                    }
                    _ if self.shares.contains_key(&id) => {
                        let n = self.shares[&id].manifest.chunks();
                        let mut bits = vec![0xffu8; n.div_ceil(8) as usize];
                        if n % 8 != 0 {
                            if let Some(last) = bits.last_mut() {
                                *last = 0xff << (8 - n % 8);
                            }
                        }
                        Msg::Have(id, Bytes::from(bits))
                    }
                    _ => Msg::None(id, None),
                };
                send(&mut self.out, peers, peer, &reply);
            }
            Msg::Have(id, bits) => {
                self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                    d.on_have(now, peer, bits, cfg, steps)
                });
            }
            Msg::Get(id, k) => self.on_get(peer, id, k, peers, queued),
            Msg::Chunk(id, k, data) => {
                self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                    d.on_chunk(now, peer, k, data, cfg, steps)
                });
            }
            Msg::None(id, Some(k)) => {
                self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                    d.on_none_chunk(now, peer, k, cfg, steps)
                });
            }
            Msg::None(id, None) => {
                self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                    d.on_none_content(now, peer, cfg, steps)
                });
            }
            Msg::Cancel(id, k) => {
                if let Some(s) = self.serving.get_mut(peer) {
                    s.queue.retain(|q| *q != (id, k));
                }
                for r in self.reads.values_mut() {
                    if let Read::Serve {
                        peer: p,
                        content,
                        chunk,
                    } = r
                    {
                        if p == peer && *content == id && *chunk == k {
                            // Read anyway (it is at the storage); not sent.
                            *chunk = u32::MAX;
                        }
                    }
                }
            }
            Msg::Offer(entry) => self.on_offer(now, peer, entry, peers, rng),
            Msg::Decline(id) => {
                if self.offered.remove(&(id, peer.clone())) {
                    self.out.event(Event::OfferDeclined {
                        id,
                        by: peer.clone(),
                    });
                }
            }
        }
    }

    fn on_index(
        &mut self,
        now: Instant,
        peer: &PeerId,
        entries: Vec<Entry>,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) {
        self.out.event(Event::IndexReceived {
            peer: peer.clone(),
            entries: entries.len(),
        });
        let new: BTreeMap<ContentId, Entry> = entries.into_iter().map(|e| (e.id, e)).collect();
        let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
        for id in ids {
            let holding = new.get(&id).map(|e| e.complete);
            if let Some(d) = self.downloads.get_mut(&id) {
                match holding {
                    Some(complete) => d.add_holder(peer, complete),
                    // It unshared it (an offerer's index always lists what it
                    // offers: it is announced before the offer is sent).
                    None => d.remove_holder(peer),
                }
            }
            self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                d.ask_manifest(now, cfg, steps);
                d.pick(now, cfg, steps);
            });
        }
        self.index.insert(peer.clone(), new);
    }

    fn on_offer(
        &mut self,
        now: Instant,
        peer: &PeerId,
        entry: Entry,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) {
        let id = entry.id;
        if self.shares.contains_key(&id) || self.downloads.contains_key(&id) {
            return;
        }
        let accepted = match &self.cfg.accept_offers {
            AcceptOffers::Ask => false,
            AcceptOffers::All => true,
            AcceptOffers::From(set) => set.contains(peer),
        };
        // The same content offered again replaces its offer, as the newest.
        self.offers.remove(&id);
        while self.offers.len() >= self.cfg.max_offers.max(1) {
            let Some(oldest) = self
                .offers
                .iter()
                .min_by_key(|(_, o)| o.seq)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.offers.remove(&oldest);
        }
        self.offer_seq += 1;
        self.out.event(Event::Offer {
            id,
            from: peer.clone(),
            name: entry.name.clone(),
            size: entry.size,
            files: entry.files,
            accepted,
        });
        self.offers.insert(
            id,
            OfferIn {
                from: peer.clone(),
                entry,
                seq: self.offer_seq,
            },
        );
        if accepted {
            if let Err(e) = self.get(now, &id.to_hex(), None, peers, rng) {
                self.offers.remove(&id);
                self.out.event(Event::ExtensionIgnored {
                    peer: peer.clone(),
                    why: format!("swarm: offer of {} not accepted: {e}", id.short()),
                });
            }
        }
    }

    fn on_get(
        &mut self,
        peer: &PeerId,
        id: ContentId,
        k: u32,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
    ) {
        let holds = match self.shares.get(&id) {
            Some(s) => k < s.manifest.chunks(),
            None => self.downloads.get(&id).is_some_and(|d| d.has(k)),
        };
        let s = self.serving.entry(peer.clone()).or_default();
        if !holds || s.queue.len() + s.reading >= self.cfg.max_serving_per_peer {
            send(&mut self.out, peers, peer, &Msg::None(id, Some(k)));
            return;
        }
        s.queue.push_back((id, k));
        self.pump(peers, queued);
    }

    /// Sends queued requests to the storage while each peer's send queue
    /// has room (the window the legacy file sends use too).
    pub(crate) fn pump(&mut self, peers: &Peers, queued: &BTreeMap<ConnId, u64>) {
        let window = 16 * u64::from(self.cfg.chunk_size);
        for (peer, s) in self.serving.iter_mut() {
            let Some(conn) = peers.conn_of(peer) else {
                continue;
            };
            let q = queued.get(&conn).copied().unwrap_or(0);
            while s.reading < READS_PER_PEER
                && q + (s.reading as u64) * u64::from(self.cfg.chunk_size) < window
            {
                let Some((content, chunk)) = s.queue.pop_front() else {
                    break;
                };
                self.next_read += 1;
                let read = self.next_read;
                self.reads.insert(
                    read,
                    Read::Serve {
                        peer: peer.clone(),
                        content,
                        chunk,
                    },
                );
                s.reading += 1;
                self.out.push(Output::Storage(StorageOp::ReadChunk {
                    read,
                    content,
                    chunk,
                }));
            }
        }
    }

    // ----- storage completions -----

    pub(crate) fn on_chunk_read(
        &mut self,
        now: Instant,
        read: u64,
        data: Bytes,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
        rng: &mut ChaCha8Rng,
    ) {
        match self.reads.remove(&read) {
            Some(Read::Serve {
                peer,
                content,
                chunk,
            }) => {
                if let Some(s) = self.serving.get_mut(&peer) {
                    s.reading = s.reading.saturating_sub(1);
                }
                if chunk != u32::MAX {
                    send(
                        &mut self.out,
                        peers,
                        &peer,
                        &Msg::Chunk(content, chunk, data),
                    );
                }
                self.pump(peers, queued);
            }
            Some(Read::Verify { content, chunk }) => {
                self.drive(now, content, peers, rng, |d, now, cfg, steps| {
                    d.on_verify_read(now, chunk, Some(data), cfg, steps)
                });
            }
            None => {}
        }
    }

    pub(crate) fn on_chunk_read_failed(
        &mut self,
        now: Instant,
        read: u64,
        changed: bool,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
        rng: &mut ChaCha8Rng,
    ) {
        match self.reads.remove(&read) {
            Some(Read::Serve {
                peer,
                content,
                chunk,
            }) => {
                if let Some(s) = self.serving.get_mut(&peer) {
                    s.reading = s.reading.saturating_sub(1);
                }
                // A cancelled request (`u32::MAX`) gets no answer; `none`
                // without a chunk would say that we hold none of it.
                if chunk != u32::MAX {
                    send(
                        &mut self.out,
                        peers,
                        &peer,
                        &Msg::None(content, Some(chunk)),
                    );
                }
                if changed {
                    // Hashed again if it is still there: a new id.
                    if let Some(path) = self.drop_share(content, UnshareReason::Changed, peers) {
                        let _ = self.share(&path, None, peers);
                    }
                }
                self.pump(peers, queued);
            }
            Some(Read::Verify { content, chunk }) => {
                self.drive(now, content, peers, rng, |d, now, cfg, steps| {
                    d.on_verify_read(now, chunk, None, cfg, steps)
                });
            }
            None => {}
        }
    }

    pub(crate) fn on_partial_opened(
        &mut self,
        now: Instant,
        content: ContentId,
        claimed: Vec<u32>,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) {
        self.drive(now, content, peers, rng, |d, now, cfg, steps| {
            d.on_opened(now, claimed, cfg, steps)
        });
    }

    pub(crate) fn on_partials_found(
        &mut self,
        now: Instant,
        partials: Vec<(Bytes, Option<String>)>,
        shares: Vec<String>,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
    ) {
        if self.shut_down {
            return;
        }
        for path in shares {
            // As if shared again by hand: a path also given at start
            // (`--share`) is hashed once, and one that is gone is reported
            // by a `ShareFailed` (the storage then forgets it).
            let _ = self.share(&path, None, peers);
        }
        for (bytes, dir) in partials {
            if self.downloads.len() >= self.cfg.max_downloads {
                // The rest stay on disk: the next start, or a `/get` of
                // the id (whose open finds the partial), resumes them.
                break;
            }
            let Ok(m) = Manifest::parse(&bytes) else {
                continue;
            };
            let id = ContentId::of(&bytes);
            if self.downloads.contains_key(&id) || self.shares.contains_key(&id) {
                continue;
            }
            let mut d = Download::resumed(m, bytes.clone(), dir.clone(), rng);
            for (p, entries) in &self.index {
                if let Some(e) = entries.get(&id) {
                    d.add_holder(p, e.complete);
                }
            }
            self.downloads.insert(id, d);
            self.out.push(Output::Storage(StorageOp::OpenPartial {
                content: id,
                manifest: bytes,
                dir,
            }));
        }
        let _ = (now, peers);
    }

    pub(crate) fn on_storage_failed(&mut self, content: ContentId, error: IoError, peers: &Peers) {
        let Some(d) = self.downloads.remove(&content) else {
            return;
        };
        self.end_download(d, peers);
        self.out
            .push(Output::Storage(StorageOp::ClosePartial { content }));
        self.out.event(Event::DownloadFailed {
            id: content,
            error: DownloadFailure::Storage(error),
        });
        self.announce(peers, None);
    }

    pub(crate) fn on_committed(&mut self, content: ContentId, path: String, peers: &Peers) {
        if self
            .downloads
            .get(&content)
            .is_none_or(|d| d.phase != Phase::Committing)
        {
            // A late answer: the download it was for failed or was
            // cancelled since, and this one (if any) did not ask.
            return;
        }
        let Some(d) = self.downloads.remove(&content) else {
            return;
        };
        let Some(manifest) = d.manifest.clone() else {
            return;
        };
        let bytes_from = d.bytes_from();
        self.out.event(Event::DownloadComplete {
            id: content,
            name: manifest.name().to_owned(),
            path: path.clone(),
            size: manifest.size(),
            bytes_from,
        });
        self.shares.insert(
            content,
            Share {
                manifest,
                bytes: d.manifest_bytes.clone(),
                path,
            },
        );
        self.end_download(d, peers);
        self.announce(peers, None);
    }

    // ----- driving downloads -----

    /// Calls `f` on download `id`, then carries out the steps it asked for.
    fn drive(
        &mut self,
        now: Instant,
        id: ContentId,
        peers: &Peers,
        rng: &mut ChaCha8Rng,
        f: impl FnOnce(&mut Download, Instant, &SwarmConfig, &mut Vec<Step>),
    ) {
        let Some(d) = self.downloads.get_mut(&id) else {
            return;
        };
        let mut steps = Vec::new();
        f(d, now, &self.cfg, &mut steps);
        let _ = rng;
        self.run(now, id, steps, peers);
    }

    fn run(&mut self, now: Instant, id: ContentId, steps: Vec<Step>, peers: &Peers) {
        let mut reannounce = false;
        for step in steps {
            match step {
                Step::Send(p, msg) => {
                    send(&mut self.out, peers, &p, &msg);
                }
                Step::Write(chunk, data) => {
                    let first = self.downloads.get(&id).is_some_and(|d| d.have_count() == 1);
                    reannounce |= first;
                    self.out.push(Output::Storage(StorageOp::WriteChunk {
                        content: id,
                        chunk,
                        data,
                    }));
                }
                Step::Checkpoint => self
                    .out
                    .push(Output::Storage(StorageOp::Checkpoint { content: id })),
                Step::Commit => self
                    .out
                    .push(Output::Storage(StorageOp::CommitDownload { content: id })),
                Step::Verify(chunk) => {
                    self.next_read += 1;
                    let read = self.next_read;
                    self.reads.insert(read, Read::Verify { content: id, chunk });
                    self.out.push(Output::Storage(StorageOp::ReadChunk {
                        read,
                        content: id,
                        chunk,
                    }));
                }
                Step::Open => {
                    if let Some(d) = self.downloads.get(&id) {
                        self.out.push(Output::Storage(StorageOp::OpenPartial {
                            content: id,
                            manifest: d.manifest_bytes.clone(),
                            dir: d.dir.clone(),
                        }));
                    }
                }
                Step::Rejected(peer, chunk) => {
                    self.out.event(Event::ChunkRejected { id, peer, chunk })
                }
                Step::Started => {
                    if let Some(d) = self.downloads.get(&id) {
                        let m = d.manifest.as_ref();
                        self.out.event(Event::DownloadStarted {
                            id,
                            name: d.name().to_owned(),
                            size: d.size(),
                            files: m.map_or(0, |m| m.files().len() as u32),
                            have: d.resumed,
                        });
                        reannounce |= d.have_count() > 0;
                    }
                }
            }
        }
        if let Some(d) = self.downloads.get_mut(&id) {
            if d.phase == Phase::Fetching {
                // Partial holders: ask what they have, now and then.
                for p in d.refresh(now, &self.cfg) {
                    send(&mut self.out, peers, &p, &Msg::HaveGet(id));
                }
                if let Some(pct) = d.progress() {
                    let _ = pct;
                    self.out.event(Event::DownloadProgress {
                        id,
                        bytes: d.bytes,
                        size: d.size(),
                        peers: d.serving_peers(),
                    });
                }
            }
        }
        if reannounce {
            self.announce(peers, None);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.downloads
            .values()
            .filter_map(|d| d.poll_timeout(&self.cfg))
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, peers: &Peers, rng: &mut ChaCha8Rng) {
        let due: Vec<ContentId> = self
            .downloads
            .values()
            .filter(|d| d.poll_timeout(&self.cfg).is_some_and(|t| t <= now))
            .map(|d| d.id)
            .collect();
        for id in due {
            self.drive(now, id, peers, rng, |d, now, cfg, steps| {
                d.handle_timeout(now, cfg, steps)
            });
        }
    }

    /// Shutdown: partials are kept for the next run.
    pub(crate) fn shutdown(&mut self) {
        self.shut_down = true;
        for (id, d) in std::mem::take(&mut self.downloads) {
            // What was fetched since the last checkpoint is kept too. Only
            // an open partial has any: one still opening has fetched
            // nothing, and one committing is the storage's (its commit is
            // queued ahead; a checkpoint or close after it finds nothing).
            match d.phase {
                Phase::Fetching => {
                    self.out
                        .push(Output::Storage(StorageOp::Checkpoint { content: id }));
                    self.out
                        .push(Output::Storage(StorageOp::ClosePartial { content: id }));
                }
                Phase::Opening => self
                    .out
                    .push(Output::Storage(StorageOp::ClosePartial { content: id })),
                Phase::Manifest | Phase::Committing => {}
            }
            self.out.event(Event::DownloadFailed {
                id,
                error: DownloadFailure::Shutdown,
            });
        }
        self.reads.clear();
        self.serving.clear();
        self.speakers.clear();
        self.index.clear();
    }
}
