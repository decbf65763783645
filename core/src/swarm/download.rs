//! One download: the chunks held and missing, who holds what, the requests
//! in flight per peer, and the picking policy (docs/PROTOCOL.md §9.4):
//! rarest first within a window after a seeded random start, several
//! requests in flight per peer, an endgame that asks a second peer for the
//! last chunks, every chunk verified on arrival. A peer that sends a chunk
//! that does not verify is banned from this download; one that stops
//! answering has its requests moved to the others and rests for a while.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::config::SwarmConfig;
use crate::PeerId;

use super::manifest::{ContentId, Manifest};
use super::wire::Msg;

/// How many chunks after the start point are compared for rarity per pick:
/// bounded work per request, and reads stay mostly sequential on disk.
const PICK_WINDOW: u32 = 256;

/// What one peer is to this download.
#[derive(Debug, Default)]
pub(crate) struct Holder {
    /// Holds every chunk (its index says complete).
    pub(crate) complete: bool,
    /// The chunks it said it holds (`have`), for a partial holder.
    bits: Option<Vec<u8>>,
    /// Requests in flight to it.
    inflight: BTreeSet<u32>,
    /// It sent a chunk that failed verification, or a bad manifest.
    pub(crate) banned: bool,
    /// It timed out or was busy: not asked again before this.
    resting: Option<Instant>,
    /// Verified bytes it sent in this run.
    pub(crate) bytes: u64,
    /// The manifest was asked of it at this time.
    manifest_asked: Option<Instant>,
    /// It answered `none` for the whole content.
    gone: bool,
}

impl Holder {
    fn has(&self, k: u32) -> bool {
        if self.complete {
            return true;
        }
        self.bits
            .as_ref()
            .and_then(|b| b.get((k / 8) as usize))
            .is_some_and(|byte| byte & (0x80 >> (k % 8)) != 0)
    }

    fn usable(&self, now: Instant) -> bool {
        !self.banned && !self.gone && self.resting.is_none_or(|t| t <= now)
    }
}

/// Where the download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for a manifest from a holder.
    Manifest,
    /// Waiting for the storage to open the partial.
    Opening,
    /// Fetching (and verifying chunks an earlier run left).
    Fetching,
    /// Every chunk held; the storage is committing it.
    Committing,
}

/// What a call asks the component to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send `msg` to `peer`.
    Send(PeerId, Msg),
    /// Write a verified chunk.
    Write(u32, Bytes),
    /// Make what is written durable.
    Checkpoint,
    /// Everything is here: commit.
    Commit,
    /// Read chunk `k` back to verify what the record claims.
    Verify(u32),
    /// The manifest arrived and checked out: open the partial.
    Open,
    /// `peer` sent a chunk that does not verify.
    Rejected(PeerId, u32),
    /// The first verification pass is over: `have` bytes were on disk.
    Started,
}

/// One download.
#[derive(Debug)]
pub(crate) struct Download {
    pub(crate) id: ContentId,
    pub(crate) dir: Option<String>,
    pub(crate) phase: Phase,
    pub(crate) manifest: Option<Arc<Manifest>>,
    pub(crate) manifest_bytes: Bytes,
    /// Verified and written chunks.
    have: Vec<u8>,
    have_count: u32,
    pub(crate) bytes: u64,
    /// Bytes an earlier run left that verified (what `DownloadStarted`
    /// reports; fetching goes on while they are checked).
    pub(crate) resumed: u64,
    /// Claimed by the record, being read back and verified.
    verifying: BTreeSet<u32>,
    /// Claimed chunks whose read is not asked yet.
    to_verify: Vec<u32>,
    /// Requests in flight: chunk to the peers asked and when.
    inflight: BTreeMap<u32, BTreeMap<PeerId, Instant>>,
    pub(crate) holders: BTreeMap<PeerId, Holder>,
    /// Verified bytes sent in this run by peers that stopped being holders
    /// (gone, or no longer listing the content).
    departed: BTreeMap<PeerId, u64>,
    /// Where picking starts (drawn once, from the node's generator).
    start: u32,
    since_checkpoint: u32,
    last_percent: u64,
    /// When partial holders were last asked what they have.
    pub(crate) have_asked: Option<Instant>,
    /// `DownloadStarted` was reported.
    pub(crate) started: bool,
}

/// Reads of claimed chunks in flight at once.
const VERIFY_READS: usize = 8;

impl Download {
    /// A download of `id` whose manifest is still to be fetched.
    pub(crate) fn new(id: ContentId, dir: Option<String>) -> Download {
        Download {
            id,
            dir,
            phase: Phase::Manifest,
            manifest: None,
            manifest_bytes: Bytes::new(),
            have: Vec::new(),
            have_count: 0,
            bytes: 0,
            resumed: 0,
            verifying: BTreeSet::new(),
            to_verify: Vec::new(),
            inflight: BTreeMap::new(),
            holders: BTreeMap::new(),
            departed: BTreeMap::new(),
            start: 0,
            since_checkpoint: 0,
            last_percent: 0,
            have_asked: None,
            started: false,
        }
    }

    /// A download whose manifest is known (resumed from an earlier run).
    pub(crate) fn resumed(
        manifest: Manifest,
        bytes: Bytes,
        dir: Option<String>,
        rng: &mut ChaCha8Rng,
    ) -> Download {
        let mut d = Download::new(manifest.id(), dir);
        d.set_manifest(manifest, bytes, rng);
        d
    }

    fn set_manifest(&mut self, manifest: Manifest, bytes: Bytes, rng: &mut ChaCha8Rng) {
        let n = manifest.chunks();
        self.have = vec![0; n.div_ceil(8) as usize];
        self.start = if n == 0 { 0 } else { rng.next_u32() % n };
        self.manifest = Some(Arc::new(manifest));
        self.manifest_bytes = bytes;
        self.phase = Phase::Opening;
    }

    pub(crate) fn size(&self) -> u64 {
        self.manifest.as_ref().map_or(0, |m| m.size())
    }

    pub(crate) fn name(&self) -> &str {
        self.manifest.as_ref().map_or("", |m| m.name())
    }

    pub(crate) fn has(&self, k: u32) -> bool {
        self.have
            .get((k / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (k % 8)) != 0)
    }

    fn set_have(&mut self, k: u32) {
        if let Some(b) = self.have.get_mut((k / 8) as usize) {
            *b |= 0x80 >> (k % 8);
        }
    }

    /// The bitfield of verified chunks, as `have` sends it.
    pub(crate) fn bitfield(&self) -> Bytes {
        Bytes::copy_from_slice(&self.have)
    }

    /// Chunks verified.
    pub(crate) fn have_count(&self) -> u32 {
        self.have_count
    }

    /// Verified bytes each peer sent in this run, peers that left since
    /// included (`DownloadComplete`'s and `/downloads`' `bytes_from`).
    pub(crate) fn bytes_from(&self) -> BTreeMap<PeerId, u64> {
        let mut out = self.departed.clone();
        for (p, h) in &self.holders {
            if h.bytes > 0 {
                *out.entry(p.clone()).or_default() += h.bytes;
            }
        }
        out
    }

    /// Peers with requests in flight.
    pub(crate) fn serving_peers(&self) -> usize {
        self.holders
            .values()
            .filter(|h| !h.inflight.is_empty())
            .count()
    }

    /// Requests in flight (an endgame duplicate counts twice).
    pub(crate) fn requests(&self) -> usize {
        self.inflight.values().map(BTreeMap::len).sum()
    }

    /// Peers that may be asked.
    pub(crate) fn usable_holders(&self, now: Instant) -> usize {
        self.holders.values().filter(|h| h.usable(now)).count()
    }

    /// A peer's index lists this content (complete or partial).
    pub(crate) fn add_holder(&mut self, peer: &PeerId, complete: bool) {
        let h = self.holders.entry(peer.clone()).or_default();
        if h.complete != complete {
            h.complete = complete;
            h.gone = false;
        }
    }

    /// A peer is gone, or no longer lists this content: its requests go
    /// back to the pool. A banned peer stays banned for the download's
    /// life: listing the content again, or coming back, does not lift it.
    pub(crate) fn remove_holder(&mut self, peer: &PeerId) {
        if let Some(h) = self.holders.get_mut(peer).filter(|h| h.banned) {
            // The ban took its requests; it holds nothing usable now.
            h.complete = false;
            h.bits = None;
            return;
        }
        if let Some(h) = self.holders.remove(peer) {
            if h.bytes > 0 {
                *self.departed.entry(peer.clone()).or_default() += h.bytes;
            }
            for k in h.inflight {
                self.drop_request(k, peer);
            }
        }
    }

    fn drop_request(&mut self, k: u32, peer: &PeerId) {
        if let Some(asked) = self.inflight.get_mut(&k) {
            asked.remove(peer);
            if asked.is_empty() {
                self.inflight.remove(&k);
            }
        }
        if let Some(h) = self.holders.get_mut(peer) {
            h.inflight.remove(&k);
        }
    }

    /// Manifest phase: ask the next holder not asked yet (or whose ask
    /// timed out), one at a time.
    pub(crate) fn ask_manifest(&mut self, now: Instant, cfg: &SwarmConfig, steps: &mut Vec<Step>) {
        if self.phase != Phase::Manifest {
            return;
        }
        let waiting = self.holders.values().any(|h| {
            h.manifest_asked
                .is_some_and(|t| now < t + cfg.request_timeout)
        });
        if waiting {
            return;
        }
        // Complete holders first; the least recently asked.
        let pick = self
            .holders
            .iter()
            .filter(|(_, h)| !h.banned && !h.gone)
            .min_by_key(|(_, h)| (!h.complete, h.manifest_asked))
            .map(|(p, _)| p.clone());
        if let Some(p) = pick {
            if let Some(h) = self.holders.get_mut(&p) {
                h.manifest_asked = Some(now);
            }
            steps.push(Step::Send(p, Msg::ManifestGet(self.id)));
        }
    }

    /// A manifest arrived from `peer`: checked against the id (and the
    /// size limit) before anything else.
    pub(crate) fn on_manifest(
        &mut self,
        now: Instant,
        peer: &PeerId,
        bytes: Bytes,
        cfg: &SwarmConfig,
        rng: &mut ChaCha8Rng,
        steps: &mut Vec<Step>,
    ) -> Result<(), String> {
        if self.phase != Phase::Manifest {
            return Ok(());
        }
        let checked = if bytes.len() > cfg.max_manifest {
            Err(format!("manifest over {} bytes", cfg.max_manifest))
        } else if ContentId::of(&bytes) != self.id {
            Err("manifest does not hash to the content id".to_owned())
        } else {
            Manifest::parse(&bytes).map_err(|e| e.to_string())
        };
        match checked {
            Ok(m) => {
                self.set_manifest(m, bytes, rng);
                steps.push(Step::Open);
                Ok(())
            }
            Err(why) => {
                if let Some(h) = self.holders.get_mut(peer) {
                    h.banned = true;
                    h.manifest_asked = None;
                }
                self.ask_manifest(now, cfg, steps);
                Err(why)
            }
        }
    }

    /// `peer` has no such content.
    pub(crate) fn on_none_content(
        &mut self,
        now: Instant,
        peer: &PeerId,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        let inflight: Vec<u32> = match self.holders.get_mut(peer) {
            Some(h) => {
                h.gone = true;
                h.manifest_asked = None;
                h.inflight.iter().copied().collect()
            }
            None => return,
        };
        for k in inflight {
            self.drop_request(k, peer);
        }
        self.ask_manifest(now, cfg, steps);
        self.pick(now, cfg, steps);
    }

    /// The storage opened the partial; `claimed` chunks are read back and
    /// verified before they count.
    pub(crate) fn on_opened(
        &mut self,
        now: Instant,
        claimed: Vec<u32>,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        if self.phase != Phase::Opening {
            return;
        }
        self.phase = Phase::Fetching;
        let n = self.manifest.as_ref().map_or(0, |m| m.chunks());
        let claimed: BTreeSet<u32> = claimed.into_iter().filter(|&k| k < n).collect();
        self.verifying = claimed.clone();
        self.to_verify = claimed.into_iter().rev().collect();
        self.verify_more(steps);
        self.progress_done(steps);
        self.pick(now, cfg, steps);
    }

    fn verify_more(&mut self, steps: &mut Vec<Step>) {
        let asked = self.verifying.len() - self.to_verify.len();
        for _ in asked..VERIFY_READS {
            match self.to_verify.pop() {
                Some(k) => steps.push(Step::Verify(k)),
                None => break,
            }
        }
    }

    /// A claimed chunk was read back (`None`: the read failed).
    pub(crate) fn on_verify_read(
        &mut self,
        now: Instant,
        k: u32,
        data: Option<Bytes>,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        if !self.verifying.remove(&k) {
            return;
        }
        let ok = match (&self.manifest, &data) {
            (Some(m), Some(d)) => m.verify(k, d),
            _ => false,
        };
        if ok && !self.has(k) {
            let len = data.map_or(0, |d| d.len() as u64);
            self.set_have(k);
            self.have_count += 1;
            self.bytes += len;
            self.resumed += len;
        }
        self.verify_more(steps);
        self.progress_done(steps);
        self.pick(now, cfg, steps);
    }

    /// Reports the start once verification is over, and the commit once
    /// everything is here.
    fn progress_done(&mut self, steps: &mut Vec<Step>) {
        if self.phase != Phase::Fetching || !self.verifying.is_empty() {
            return;
        }
        if !self.started {
            self.started = true;
            steps.push(Step::Started);
        }
        let n = self.manifest.as_ref().map_or(0, |m| m.chunks());
        if self.have_count == n {
            self.phase = Phase::Committing;
            for (k, asked) in std::mem::take(&mut self.inflight) {
                for p in asked.keys() {
                    steps.push(Step::Send(p.clone(), Msg::Cancel(self.id, k)));
                }
            }
            for h in self.holders.values_mut() {
                h.inflight.clear();
            }
            steps.push(Step::Commit);
        }
    }

    /// A partial holder's bitfield.
    pub(crate) fn on_have(
        &mut self,
        now: Instant,
        peer: &PeerId,
        bits: Bytes,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        let n = self.manifest.as_ref().map_or(0, |m| m.chunks());
        if bits.len() != n.div_ceil(8) as usize {
            return;
        }
        if let Some(h) = self.holders.get_mut(peer) {
            h.bits = Some(bits.to_vec());
        }
        self.pick(now, cfg, steps);
    }

    /// The partial holders to ask what they hold now: every usable one,
    /// once `have_refresh` passed since the last ask (or at once the first
    /// time). A refresh that is due is re-armed even when no partial holder
    /// is usable (all resting), so that its deadline never stays in the
    /// past: [`Download::poll_timeout`] would keep returning it and the
    /// driver would spin.
    pub(crate) fn refresh(&mut self, now: Instant, cfg: &SwarmConfig) -> Vec<PeerId> {
        if self.phase != Phase::Fetching {
            return Vec::new();
        }
        let due = self.have_asked.is_none_or(|t| now >= t + cfg.have_refresh);
        if !due {
            return Vec::new();
        }
        let partial = self.partial_holders(now);
        if !partial.is_empty() || self.have_asked.is_some() {
            self.have_asked = Some(now);
        }
        partial
    }

    /// Partial holders whose bitfield should be asked for now.
    pub(crate) fn partial_holders(&self, now: Instant) -> Vec<PeerId> {
        self.holders
            .iter()
            .filter(|(_, h)| !h.complete && h.usable(now))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A chunk from `peer`. Verified before anything: a chunk that does
    /// not match bans the peer from this download.
    pub(crate) fn on_chunk(
        &mut self,
        now: Instant,
        peer: &PeerId,
        k: u32,
        data: Bytes,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        if self.phase != Phase::Fetching {
            return;
        }
        let asked = self.inflight.get(&k).is_some_and(|a| a.contains_key(peer));
        if !asked {
            // Unsolicited, or cancelled and sent anyway: not counted.
            return;
        }
        self.drop_request(k, peer);
        let Some(m) = self.manifest.clone() else {
            return;
        };
        let verified = m.verify(k, &data);
        // Planted: any chunk that was asked for is taken as it came.
        #[cfg(p2p_planted = "swarm-unverified-write")]
        let verified = true;
        if !verified {
            self.ban(peer);
            steps.push(Step::Rejected(peer.clone(), k));
            self.pick(now, cfg, steps);
            return;
        }
        if self.has(k) || self.verifying.contains(&k) {
            self.pick(now, cfg, steps);
            return;
        }
        // The endgame's other copies are not needed any more.
        if let Some(others) = self.inflight.remove(&k) {
            for p in others.keys() {
                if let Some(h) = self.holders.get_mut(p) {
                    h.inflight.remove(&k);
                }
                steps.push(Step::Send(p.clone(), Msg::Cancel(self.id, k)));
            }
        }
        self.set_have(k);
        self.have_count += 1;
        let len = data.len() as u64;
        self.bytes += len;
        if let Some(h) = self.holders.get_mut(peer) {
            h.bytes += len;
        }
        steps.push(Step::Write(k, data));
        self.since_checkpoint += 1;
        if self.since_checkpoint >= cfg.checkpoint_every {
            self.since_checkpoint = 0;
            steps.push(Step::Checkpoint);
        }
        self.progress_done(steps);
        self.pick(now, cfg, steps);
    }

    fn ban(&mut self, peer: &PeerId) {
        let inflight: Vec<u32> = match self.holders.get_mut(peer) {
            Some(h) => {
                h.banned = true;
                h.inflight.iter().copied().collect()
            }
            None => return,
        };
        for k in inflight {
            self.drop_request(k, peer);
        }
    }

    /// `peer` will not send chunk `k` (busy, or does not hold it).
    pub(crate) fn on_none_chunk(
        &mut self,
        now: Instant,
        peer: &PeerId,
        k: u32,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        let asked = self.inflight.get(&k).is_some_and(|a| a.contains_key(peer));
        if !asked {
            return;
        }
        self.drop_request(k, peer);
        if let Some(h) = self.holders.get_mut(peer) {
            match &mut h.bits {
                Some(bits) if !h.complete => {
                    if let Some(b) = bits.get_mut((k / 8) as usize) {
                        *b &= !(0x80 >> (k % 8));
                    }
                }
                // A complete holder that says no is busy: let it rest.
                _ => h.resting = Some(now + cfg.request_timeout / 10),
            }
        }
        self.pick(now, cfg, steps);
    }

    /// Fills every usable peer's pipeline.
    pub(crate) fn pick(&mut self, now: Instant, cfg: &SwarmConfig, steps: &mut Vec<Step>) {
        if self.phase != Phase::Fetching {
            return;
        }
        let Some(m) = self.manifest.clone() else {
            return;
        };
        let n = m.chunks();
        if n == 0 {
            return;
        }
        // The download's requests are shared among the peers it can ask:
        // more in flight than a loopback link needs only costs memory and
        // cache (3 holders at 32 each were slower than at 16 each).
        let usable = self.holders.values().filter(|h| h.usable(now)).count();
        let depth = cfg
            .requests_per_peer
            .min(cfg.requests_per_download.div_ceil(usable.max(1)))
            .max(1);
        let peers: Vec<PeerId> = self
            .holders
            .iter()
            .filter(|(_, h)| h.usable(now) && h.inflight.len() < depth)
            .map(|(p, _)| p.clone())
            .collect();
        for p in peers {
            loop {
                let full = self
                    .holders
                    .get(&p)
                    .is_none_or(|h| h.inflight.len() >= depth);
                if full {
                    break;
                }
                let Some(k) = self.next_for(&p, n).or_else(|| self.endgame_for(&p)) else {
                    break;
                };
                self.inflight
                    .entry(k)
                    .or_default()
                    .insert(p.clone(), now + cfg.request_timeout);
                if let Some(h) = self.holders.get_mut(&p) {
                    h.inflight.insert(k);
                }
                steps.push(Step::Send(p.clone(), Msg::Get(self.id, k)));
            }
        }
    }

    /// The rarest missing, unrequested chunk `peer` holds, within the window
    /// after the first candidate from the start point.
    fn next_for(&mut self, peer: &PeerId, n: u32) -> Option<u32> {
        let h = self.holders.get(peer)?;
        let counted = |o: &&Holder| !o.banned && !o.gone;
        // No chunk is rarer than the complete holders make it: the first
        // candidate that rare is the pick (later ones cannot be rarer), so
        // a mesh of complete holders does not scan the window per request.
        let floor = self
            .holders
            .values()
            .filter(counted)
            .filter(|o| o.complete)
            .count()
            .max(1);
        let mut best: Option<(usize, u32)> = None;
        let mut seen = 0;
        for i in 0..n {
            let k = (self.start + i) % n;
            if self.has(k)
                || self.verifying.contains(&k)
                || self.inflight.contains_key(&k)
                || !h.has(k)
            {
                continue;
            }
            let avail = self
                .holders
                .values()
                .filter(counted)
                .filter(|o| o.has(k))
                .count();
            if best.is_none_or(|(a, _)| avail < a) {
                best = Some((avail, k));
            }
            seen += 1;
            if seen >= PICK_WINDOW || avail <= floor {
                break;
            }
        }
        let k = best.map(|(_, k)| k)?;
        // The next pick starts after this one: requests stay sequential.
        self.start = (k + 1) % n;
        Some(k)
    }

    /// Endgame: every missing chunk is requested; ask `peer` too for one
    /// that only one other peer is fetching.
    fn endgame_for(&self, peer: &PeerId) -> Option<u32> {
        let h = self.holders.get(peer)?;
        self.inflight
            .iter()
            .find(|(k, asked)| asked.len() == 1 && !asked.contains_key(peer) && h.has(**k))
            .map(|(k, _)| *k)
    }

    /// The earliest request deadline, or the manifest ask's, or a rest's
    /// end, or the next `have` refresh.
    pub(crate) fn poll_timeout(&self, cfg: &SwarmConfig) -> Option<Instant> {
        let requests = self.inflight.values().flat_map(|a| a.values().copied());
        // Only the latest ask is outstanding: an earlier one that timed
        // out was followed by an ask of the next holder (its time stays,
        // to order the next pick, but it is not a deadline any more).
        let manifest = self
            .holders
            .values()
            .filter(|_| self.phase == Phase::Manifest)
            .filter_map(|h| h.manifest_asked)
            .max()
            .map(|t| t + cfg.request_timeout);
        let rests = self.holders.values().filter_map(|h| h.resting);
        let refresh = (self.phase == Phase::Fetching
            && self
                .holders
                .values()
                .any(|h| !h.complete && !h.banned && !h.gone))
        .then(|| self.have_asked.map(|t| t + cfg.have_refresh))
        .flatten();
        requests.chain(manifest).chain(rests).chain(refresh).min()
    }

    /// Requests past their deadline: the peer rests, its other requests go
    /// to others; rests that ended let the peer be asked again.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        cfg: &SwarmConfig,
        steps: &mut Vec<Step>,
    ) {
        let late: BTreeSet<PeerId> = self
            .inflight
            .values()
            .flat_map(|a| a.iter())
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in late {
            let inflight: Vec<u32> = match self.holders.get_mut(&p) {
                Some(h) => {
                    h.resting = Some(now + cfg.request_timeout);
                    h.inflight.iter().copied().collect()
                }
                None => continue,
            };
            for k in inflight {
                self.drop_request(k, &p);
                steps.push(Step::Send(p.clone(), Msg::Cancel(self.id, k)));
            }
        }
        for h in self.holders.values_mut() {
            if h.resting.is_some_and(|t| t <= now) {
                h.resting = None;
            }
        }
        self.ask_manifest(now, cfg, steps);
        self.pick(now, cfg, steps);
    }

    /// At most one progress event per percent: the percent to report.
    pub(crate) fn progress(&mut self) -> Option<u64> {
        let size = self.size();
        if size == 0 {
            return None;
        }
        let pct = self.bytes.saturating_mul(100) / size;
        (pct > self.last_percent).then(|| {
            self.last_percent = pct;
            pct
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand_core::SeedableRng;

    use super::*;
    use crate::swarm::manifest::{chunk_hash, ManifestFile};

    fn peer(c: char) -> PeerId {
        PeerId::parse(&c.to_string().repeat(32)).unwrap()
    }

    /// A two-chunk file of 4 KiB chunks, resumed with nothing on disk:
    /// fetching.
    fn fetching(now: Instant, cfg: &SwarmConfig) -> Download {
        let data = vec![7u8; 8192];
        let hashes = data.chunks(4096).map(chunk_hash).collect();
        let files = vec![ManifestFile {
            path: "f.bin".into(),
            size: 8192,
        }];
        let m = Manifest::new(4096, files, hashes).unwrap();
        let bytes = m.encode();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut d = Download::resumed(m, bytes, None, &mut rng);
        let mut steps = Vec::new();
        d.on_opened(now, Vec::new(), cfg, &mut steps);
        assert_eq!(d.phase, Phase::Fetching);
        d
    }

    /// What the component does when a download's deadline is due
    /// (`Swarm::handle_timeout`, then `Swarm::run`); the deadline must
    /// then be in the future, or the driver, which calls it again while
    /// `poll_timeout` is not after now, spins.
    fn timeout_moves_on(d: &mut Download, now: Instant, cfg: &SwarmConfig) {
        assert!(d.poll_timeout(cfg).is_some_and(|t| t <= now), "not due");
        let mut steps = Vec::new();
        d.handle_timeout(now, cfg, &mut steps);
        d.refresh(now, cfg);
        let next = d.poll_timeout(cfg);
        assert!(
            next.is_none_or(|t| t > now),
            "{next:?} is not after {now:?}"
        );
    }

    /// Regression: once a manifest request timed out and the next holder
    /// was asked, the first ask's deadline stayed in `poll_timeout`, in the
    /// past, until the second one was answered or timed out: the driver
    /// spun (the simulator, whose clock only moves between steps, hung).
    #[test]
    fn a_timed_out_manifest_ask_is_no_deadline_any_more() {
        let cfg = SwarmConfig::default();
        let t0 = Instant::now();
        let mut d = Download::new(ContentId([1; 32]), None);
        d.add_holder(&peer('a'), true);
        d.add_holder(&peer('b'), true);
        let mut steps = Vec::new();
        d.ask_manifest(t0, &cfg, &mut steps);
        assert_eq!(steps.len(), 1);
        let t1 = t0 + cfg.request_timeout;
        timeout_moves_on(&mut d, t1, &cfg);
        assert_eq!(d.poll_timeout(&cfg), Some(t1 + cfg.request_timeout));
    }

    /// Regression: a `have` refresh that fell due while no partial holder
    /// could be asked (all resting after a timeout) was not re-armed, so
    /// its deadline stayed in the past until a rest ended: the driver spun
    /// (`p2p-sim --scenario swarm --peers 8 --seed 4 --swarm-size 524288
    /// --swarm-files 24 --chunk-size 16384` hung at 6.8 s simulated).
    #[test]
    fn a_refresh_with_every_partial_holder_resting_is_re_armed() {
        let cfg = SwarmConfig {
            have_refresh: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            ..SwarmConfig::default()
        };
        let t0 = Instant::now();
        let mut d = fetching(t0, &cfg);
        let p = peer('p');
        d.add_holder(&p, false);
        assert_eq!(d.refresh(t0, &cfg), vec![p.clone()]);
        let mut steps = Vec::new();
        d.on_have(t0, &p, Bytes::from_static(&[0xc0]), &cfg, &mut steps);
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::Send(_, Msg::Get(..)))));
        // Its requests time out: it rests for a request timeout, and the
        // refresh, due since t0 + 2 s, finds nobody to ask.
        let t1 = t0 + cfg.request_timeout;
        timeout_moves_on(&mut d, t1, &cfg);
        assert_eq!(d.poll_timeout(&cfg), Some(t1 + cfg.have_refresh));
    }

    /// Regression: a peer that sent verified chunks and then left (its
    /// connection closed, or its index stopped listing the content) was
    /// missing from `bytes_from`, which then added up to less than what
    /// was fetched (seen by p2p-sim's swarm scenario on seeds 4 and 6 at
    /// 8 peers).
    #[test]
    fn bytes_from_keeps_the_peers_that_left() {
        let cfg = SwarmConfig::default();
        let t0 = Instant::now();
        let mut d = fetching(t0, &cfg);
        let (a, b) = (peer('a'), peer('b'));
        d.add_holder(&a, true);
        let mut steps = Vec::new();
        d.pick(t0, &cfg, &mut steps);
        d.on_chunk(t0, &a, 0, Bytes::from(vec![7u8; 4096]), &cfg, &mut steps);
        d.remove_holder(&a);
        d.add_holder(&b, true);
        d.add_holder(&a, true);
        d.pick(t0, &cfg, &mut steps);
        d.on_chunk(t0, &a, 1, Bytes::from(vec![7u8; 4096]), &cfg, &mut steps);
        assert_eq!(d.bytes, 8192);
        assert_eq!(d.bytes_from(), BTreeMap::from([(a, 8192)]));
        assert_eq!(d.phase, Phase::Committing);
    }

    /// A partial holder that said it holds none of the content is not
    /// asked again, and is no reason for a refresh deadline.
    #[test]
    fn a_gone_partial_holder_sets_no_refresh_deadline() {
        let cfg = SwarmConfig::default();
        let t0 = Instant::now();
        let mut d = fetching(t0, &cfg);
        let p = peer('p');
        d.add_holder(&p, false);
        assert_eq!(d.refresh(t0, &cfg), vec![p.clone()]);
        let mut steps = Vec::new();
        d.on_none_content(t0, &p, &cfg, &mut steps);
        assert_eq!(d.poll_timeout(&cfg), None);
        assert!(d.refresh(t0 + cfg.have_refresh, &cfg).is_empty());
    }
}
