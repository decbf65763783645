//! The named checks. Safety checks run while the simulation goes (from the
//! tap, and at the end of every step); liveness checks run at the end of a
//! scenario, after its faults stopped. Any failure is a [`Violation`] that
//! carries the simulated time; the report adds the seed and the command
//! that replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use p2p_core::PeerId;
use serde::Serialize;

use crate::world::{plain_name, World};

/// Every check, with what it asserts.
pub const CHECKS: &[(&str, &str)] = &[
    (
        ONE_CONNECTION_PER_PAIR,
        "at most one established connection per peer pair, and both ends agree on it",
    ),
    (
        PEER_TABLE_HANDSHAKED,
        "a peer table only holds peers whose handshake completed on a live connection",
    ),
    (
        FRAME_INTEGRITY,
        "every byte and frame is received as it was sent, and every sent frame decodes",
    ),
    (
        FILE_HASH,
        "no node commits a file whose content does not match the sent file",
    ),
    (
        INSIDE_DOWNLOADS,
        "nothing is written outside a node's downloads (plain names by the simulator's own rule)",
    ),
    (
        CHAT_EXACTLY_ONCE,
        "no chat line is delivered twice, or from the wrong sender",
    ),
    (
        STALE_PEER_REMOVED,
        "a crashed peer leaves every peer table within the peer timeout",
    ),
    (
        NO_FALSE_TIMEOUT,
        "(latency) no heartbeat or handshake between live, reachable peers times out",
    ),
    (
        NO_PANIC,
        "no simulated host panics, stops, or fails to answer a peer-table request",
    ),
    (MESH_FORMED, "the full mesh forms before the deadline"),
    (
        MESH_REFORMED,
        "after the faults stop, the full mesh (re)forms within the bound and connections settle",
    ),
    (
        TRANSFERS_COMPLETE,
        "a live sender's sends finish without error; every peer established with it when a send started, or sent the file's end, and still connected at the end holds the exact file; no part file is left",
    ),
    (
        CHAT_DELIVERED,
        "every chat line reaches every peer established with its sender when it was sent, or transmitted to, over a connection that stayed up",
    ),
    (
        PEER_TABLE_MATCHES,
        "at the end, each node's peer table is what its events said",
    ),
    (
        INTRUDER_KEPT_OUT,
        "(intruders) no intruder's connection or id ever enters an honest node's peer table",
    ),
    (
        INTRUDER_NOTHING_DELIVERED,
        "(intruders) nothing an intruder sent reaches an honest node's application (chat, bytes, files)",
    ),
    (
        INTRUDER_REFUSED,
        "(intruders) every intruder attempt is refused with its expected typed session error, and every kind was attempted and refused",
    ),
    (
        CONVERGED_WITHOUT_BOOTSTRAP,
        "(lan) with no bootstrap address anywhere, the nodes find each other through LAN announcements alone and the mesh forms before the deadline",
    ),
    (
        CONVERGED_WITHIN_BOUND,
        "(lan) the mesh forms within the bound after the last start (SimConfig::lan_bound: the fourth announcement at 7 s, delivery delay, dial jitter, a connect timeout, 1 s) and holds through every member's announcements",
    ),
    (
        OTHER_NETWORK_NEVER_DIALED,
        "(lan) no member dials, or is dialed by, a host of another network announcing on the same segment",
    ),
    (
        SWARM_COMMIT_VERIFIED,
        "(swarm) every shared id is the one the simulator computes for the content, and every committed download re-hashes to its manifest: the same files and sizes, every chunk verifying",
    ),
    (
        SWARM_LIAR_DETECTED,
        "(swarm) a ChunkRejected never names an honest peer, and every wrong chunk of the lying holder that reaches a downloader with its request outstanding is rejected, naming the liar, before the step ends (in private mode, where frames are unreadable: the liar is named once at least)",
    ),
    (
        SWARM_DOWNLOADS_COMPLETE,
        "(swarm) every download (each downloader and partial holder, both contents) is committed once the faults stop, within the heal bound; none fails",
    ),
    (
        SWARM_MULTI_PEER,
        "(swarm) some completed download drew verified bytes from two peers or more (its bytes_from)",
    ),
    (
        SWARM_RESUME_BOUNDED,
        "(swarm) a resumed download holds at least what its earlier life checkpointed (DownloadStarted's have), and fetches at most size - have plus one chunk per request in flight per peer (bytes_from, and the chunks written)",
    ),
];

/// Safety: one established connection per pair.
pub const ONE_CONNECTION_PER_PAIR: &str = "one_connection_per_pair";
/// Safety: peer tables hold handshaked peers only.
pub const PEER_TABLE_HANDSHAKED: &str = "peer_table_handshaked";
/// Safety: frames arrive as sent.
pub const FRAME_INTEGRITY: &str = "frame_integrity";
/// Safety: committed files are the files sent.
pub const FILE_HASH: &str = "file_hash";
/// Safety: nothing written outside the downloads.
pub const INSIDE_DOWNLOADS: &str = "inside_downloads";
/// Safety: chat lines are not duplicated.
pub const CHAT_EXACTLY_ONCE: &str = "chat_exactly_once";
/// Safety with a bound: dead peers are dropped in time.
pub const STALE_PEER_REMOVED: &str = "stale_peer_removed";
/// Safety (latency scenario): no false timeouts.
pub const NO_FALSE_TIMEOUT: &str = "no_false_timeout";
/// Safety: nothing panics.
pub const NO_PANIC: &str = "no_panic";
/// Liveness: the mesh forms.
pub const MESH_FORMED: &str = "mesh_formed";
/// Liveness: the mesh re-forms after faults.
pub const MESH_REFORMED: &str = "mesh_reformed";
/// Liveness: transfers complete.
pub const TRANSFERS_COMPLETE: &str = "transfers_complete";
/// Liveness: chat lines arrive.
pub const CHAT_DELIVERED: &str = "chat_delivered";
/// End state: peer tables match the events.
pub const PEER_TABLE_MATCHES: &str = "peer_table_matches";
/// Safety (intruders scenario): no intruder in a peer table.
pub const INTRUDER_KEPT_OUT: &str = "intruder_kept_out";
/// Safety (intruders scenario): nothing of an intruder's reaches an application.
pub const INTRUDER_NOTHING_DELIVERED: &str = "intruder_nothing_delivered";
/// Safety and coverage (intruders scenario): each attempt refused, with its reason.
pub const INTRUDER_REFUSED: &str = "intruder_refused";
/// Liveness (lan scenario): the mesh forms with LAN discovery alone.
pub const CONVERGED_WITHOUT_BOOTSTRAP: &str = "converged_without_bootstrap";
/// Liveness with a bound (lan scenario): and soon enough.
pub const CONVERGED_WITHIN_BOUND: &str = "converged_within_bound";
/// Safety (lan scenario): another network's hosts are never dialed.
pub const OTHER_NETWORK_NEVER_DIALED: &str = "other_network_never_dialed";
/// Safety (swarm scenario): shares and commits hash to their ids.
pub const SWARM_COMMIT_VERIFIED: &str = "swarm_commit_verified";
/// Safety and liveness (swarm scenario): the liar, and only it, is caught.
pub const SWARM_LIAR_DETECTED: &str = "swarm_liar_detected";
/// Liveness (swarm scenario): every download completes.
pub const SWARM_DOWNLOADS_COMPLETE: &str = "swarm_downloads_complete";
/// Coverage as a check (swarm scenario): downloads use several peers.
pub const SWARM_MULTI_PEER: &str = "swarm_multi_peer";
/// Safety (swarm scenario): a resumed download fetches only what it lacked.
pub const SWARM_RESUME_BOUNDED: &str = "swarm_resume_bounded";

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The check's name (see [`CHECKS`]).
    pub check: &'static str,
    /// Simulated time, in milliseconds since the start.
    pub at_ms: u64,
    /// The host it was seen on, if one.
    pub host: Option<String>,
    /// What happened.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(
        check: &'static str,
        at: Duration,
        host: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        debug_assert!(CHECKS.iter().any(|(c, _)| *c == check), "unknown check");
        Violation {
            check,
            at_ms: at.as_millis() as u64,
            host,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {} ms", self.check, self.at_ms)?;
        if let Some(h) = &self.host {
            write!(f, " on {h}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The end-of-run checks, over the state the tap built up.
impl World {
    /// Each node's reported table equals its events' table, and holds only
    /// peers whose connection completed its handshake. A snapshot is taken
    /// by the driver between two of its inputs and read later, so the
    /// caller asks twice and reports only what persists.
    pub(crate) fn snapshot_problems(&self) -> Vec<(&'static str, usize, String)> {
        let mut found = Vec::new();
        for (h, host) in self.hosts.iter().enumerate() {
            let Some(snap) = host.snapshot.as_ref().filter(|_| host.alive) else {
                continue;
            };
            let ids: BTreeSet<PeerId> = snap.iter().map(|p| p.id.clone()).collect();
            if ids != host.peers {
                found.push((
                    PEER_TABLE_MATCHES,
                    h,
                    format!(
                        "the node reports {} peers, its events {}",
                        ids.len(),
                        host.peers.len()
                    ),
                ));
            }
            for p in snap {
                let ok = host
                    .conns
                    .get(&p.conn)
                    .is_some_and(|t| t.established.as_ref() == Some(&p.id));
                if !ok {
                    found.push((
                        PEER_TABLE_HANDSHAKED,
                        h,
                        format!(
                            "peer {} is carried by {}, which is not a handshaked live connection to it",
                            p.id, p.conn
                        ),
                    ));
                }
            }
        }
        found
    }

    /// Liveness of file transfers; see [`TRANSFERS_COMPLETE`].
    pub(crate) fn check_files(&mut self, at: Duration) {
        let mut found: Vec<(&'static str, Option<usize>, String)> = Vec::new();
        for (name, f) in &self.files {
            let sender_lived =
                self.hosts[f.sender].alive && self.hosts[f.sender].life() == f.sender_life;
            if f.done.is_none() && sender_lived {
                found.push((
                    TRANSFERS_COMPLETE,
                    Some(f.sender),
                    format!("sending {name} never finished"),
                ));
            }
        }
        // Per (file, receiver, life): whether any connection it was expected
        // on stayed up.
        let mut expected: BTreeMap<(&str, usize, u32), bool> = BTreeMap::new();
        for e in &self.file_expect {
            let stayed = e
                .key
                .and_then(|k| self.pairs.get(&k))
                .is_some_and(|p| !p.closed);
            *expected.entry((&e.name, e.host, e.life)).or_default() |= stayed;
        }
        for ((name, r, life), stayed) in expected {
            let Some(src) = self.files.get(name) else {
                continue;
            };
            let host = &self.hosts[r];
            if !host.alive || host.life() != life {
                continue;
            }
            match self.received_files.get(&(r, life, name.to_owned())) {
                Some(saved) => {
                    let same = host
                        .storage
                        .as_ref()
                        .and_then(|s| s.files().get(saved).cloned())
                        .is_some_and(|d| d.as_slice() == src.data.as_slice());
                    if !same {
                        found.push((
                            FILE_HASH,
                            Some(r),
                            format!("{saved} differs from the {name} sent"),
                        ));
                    }
                }
                None if stayed => found.push((
                    TRANSFERS_COMPLETE,
                    Some(r),
                    format!("stayed connected to the sender of {name} but never committed it"),
                )),
                None => {}
            }
        }
        for (h, host) in self.hosts.iter().enumerate() {
            let Some(s) = host.storage.as_ref().filter(|_| host.alive) else {
                continue;
            };
            let parts = s.parts();
            if !parts.is_empty() {
                found.push((
                    TRANSFERS_COMPLETE,
                    Some(h),
                    format!("part files left behind: {}", parts.join(", ")),
                ));
            }
            for name in s.files().keys() {
                if !plain_name(name) {
                    found.push((
                        INSIDE_DOWNLOADS,
                        Some(h),
                        format!("stored file {name:?} is not a plain name"),
                    ));
                }
            }
        }
        for (check, h, detail) in found {
            self.violate(check, at, h, detail);
        }
    }

    /// Liveness of chat; see [`CHAT_DELIVERED`].
    pub(crate) fn check_chats(&mut self, at: Duration) {
        let mut found = Vec::new();
        for (text, msg) in &self.chats {
            // Per receiver and life: whether a connection it was expected
            // on stayed up.
            let mut expected: BTreeMap<(usize, u32), bool> = BTreeMap::new();
            for &(r, life, key) in &msg.expected {
                let stayed = key
                    .and_then(|k| self.pairs.get(&k))
                    .is_some_and(|p| !p.closed);
                *expected.entry((r, life)).or_default() |= stayed;
            }
            for ((r, life), stayed) in expected {
                let host = &self.hosts[r];
                if !host.alive || host.life() != life {
                    continue;
                }
                let n = msg.delivered.get(&(r, life)).copied().unwrap_or(0);
                if n == 0 && stayed {
                    found.push((r, format!("chat line {text:?} never arrived")));
                }
            }
        }
        for (h, detail) in found {
            self.violate(CHAT_DELIVERED, at, Some(h), detail);
        }
    }
}
