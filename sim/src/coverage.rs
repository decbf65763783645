//! Coverage counters in the spirit of Antithesis "sometimes" assertions:
//! interesting situations that a scenario should reach at least sometimes.
//! The report lists every known counter, zeros included, so that a
//! scenario that never reaches a situation shows it.

use std::collections::BTreeMap;

use serde::Serialize;

/// Every counter the simulator knows, with what it means.
pub const COUNTERS: &[(&str, &str)] = &[
    (
        "simultaneous_connect_resolved",
        "a node established a second connection to a peer and kept one",
    ),
    (
        "duplicate_refused",
        "a hello was answered DUPLICATE (the peer was already connected)",
    ),
    (
        "max_peers_refused",
        "a hello was refused because a node was at max_peers",
    ),
    (
        "self_connection_detected",
        "a node dialed its own address and recognised itself",
    ),
    (
        "bootstrap_retried",
        "a bootstrap succeeded after its first try",
    ),
    ("bootstrap_failed", "every try of a bootstrap failed"),
    ("dial_failed", "a dial or its handshake failed"),
    ("handshake_timeout", "a handshake did not finish in time"),
    ("peer_timed_out", "a peer was dropped for silence"),
    (
        "dead_peer_removed_by_timeout",
        "a peer whose host had crashed silently was dropped for silence",
    ),
    (
        "peer_connection_closed",
        "a peer was dropped because its connection closed",
    ),
    (
        "peer_dropped_and_back",
        "a live peer was dropped on a closed connection and re-established within the connect timeout (a duplicate's FIN overtook the winner's hello)",
    ),
    (
        "peer_rediscovered_after_partition",
        "a peer lost in a partition was connected again after the repair",
    ),
    (
        "restarted_peer_rejoined",
        "a restarted host's new id entered another node's peer table",
    ),
    (
        "slow_reader_disconnected",
        "a peer was dropped for not reading",
    ),
    (
        "protocol_error",
        "a connection was closed for breaking the protocol",
    ),
    (
        "file_committed",
        "a received file was verified and committed",
    ),
    (
        "file_saved_as_numbered_copy",
        "a received file was saved under a numbered name (never overwriting)",
    ),
    ("transfer_aborted", "an incoming transfer was aborted"),
    (
        "transfer_aborted_by_crash",
        "an incoming transfer was aborted because its sender had crashed",
    ),
    ("chat_delivered", "a chat line was delivered"),
    ("link_cut", "the simulator cut a link (partition; segments wait)"),
    ("link_held", "the simulator stalled a link (latency; segments wait)"),
    ("connection_reset", "the simulator reset the connections between two hosts"),
    (
        "host_crashed_loudly",
        "a host's process died; its machine answers with resets",
    ),
    (
        "host_crashed_silently",
        "a host crashed behind a partition; nobody was told",
    ),
    ("host_restarted", "a crashed host was started again"),
    (
        "intruder_attempted",
        "an intruder host opened a connection to an honest node",
    ),
    (
        "intruder_no_key_refused",
        "an honest node refused a plaintext intruder (plaintext_peer)",
    ),
    (
        "intruder_wrong_key_refused",
        "an honest node refused an intruder with another network key (wrong_key_or_not_private)",
    ),
    (
        "intruder_replay_refused",
        "an honest node refused a replayed recorded handshake (wrong_key_or_not_private at message 3)",
    ),
    (
        "intruder_stolen_id_refused",
        "an honest node refused a keyed insider claiming another node's id (impersonation or id_mismatch)",
    ),
    (
        "lan_peer_heard",
        "a node was handed a LAN announcement of its own network (Input::LanPeer)",
    ),
    (
        "lan_announcement_lost",
        "the simulated LAN lost an announcement to one listener",
    ),
    (
        "lan_other_network_heard",
        "the simulated LAN delivered an announcement to a listener of another network (its driver ignores it)",
    ),
    (
        "lan_other_network_peered",
        "a host of another network on the segment established a peer of its own network (it found one through the LAN)",
    ),
    ("swarm_shared", "a holder shared content (Event::Shared)"),
    ("swarm_download_started", "a download started or resumed (Event::DownloadStarted)"),
    (
        "swarm_download_resumed",
        "a download resumed with chunks an earlier life left (DownloadStarted with have > 0)",
    ),
    ("swarm_download_completed", "a download was committed (Event::DownloadComplete)"),
    (
        "swarm_tree_committed",
        "a download of the directory tree was committed",
    ),
    (
        "swarm_multi_peer_download",
        "a completed download drew verified bytes from two peers or more",
    ),
    (
        "swarm_chunk_rejected",
        "a downloader rejected a chunk that did not verify (Event::ChunkRejected)",
    ),
    (
        "swarm_served_from_partial",
        "a node sent a chunk of content it was still downloading",
    ),
    (
        "swarm_partial_holder_cut",
        "a partial holder was cut off from the complete holders while holding part of the content",
    ),
    (
        "swarm_crashed_mid_download",
        "a downloader was crashed after checkpointing part of a download",
    ),
    (
        "swarm_holder_crashed",
        "a complete holder was crashed while downloads ran",
    ),
    (
        "swarm_bytes_from_short",
        "a completed download's bytes_from added up to less than the bytes it fetched in that run (a peer that sent some left before the end)",
    ),
];

/// How often each counter fired.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Coverage(BTreeMap<String, u64>);

impl Default for Coverage {
    fn default() -> Self {
        Coverage(
            COUNTERS
                .iter()
                .map(|(name, _)| ((*name).to_owned(), 0))
                .collect(),
        )
    }
}

impl Coverage {
    /// Counts one occurrence of `name`.
    pub(crate) fn hit(&mut self, name: &'static str) {
        self.add(name, 1);
    }

    /// Counts `n` occurrences of `name`.
    pub(crate) fn add(&mut self, name: &'static str, n: u64) {
        debug_assert!(
            COUNTERS.iter().any(|(k, _)| *k == name),
            "unknown counter {name}"
        );
        *self.0.entry(name.to_owned()).or_default() += n;
    }

    /// How often `name` fired.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Every counter and its count, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}
