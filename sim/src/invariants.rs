//! The named checks. Safety checks run while the simulation goes (from the
//! tap, and at the end of every step); liveness checks run at the end of a
//! scenario, after its faults stopped. Any failure is a [`Violation`] that
//! carries the simulated time; the report adds the seed and the command
//! that replays it.

use std::time::Duration;

use serde::Serialize;

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
        "nothing is written outside a node's downloads (plain names only)",
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
    (NO_PANIC, "no simulated host panics or stops"),
    (MESH_FORMED, "the full mesh forms before the deadline"),
    (
        MESH_REFORMED,
        "after the faults stop, the full mesh (re)forms within the bound",
    ),
    (
        TRANSFERS_COMPLETE,
        "sends finish, every peer that stayed connected holds the exact file, no part file is left",
    ),
    (
        CHAT_DELIVERED,
        "every chat line reaches every peer it was sent to over a connection that stayed up",
    ),
    (
        PEER_TABLE_MATCHES,
        "at the end, each node's peer table is what its events said",
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
