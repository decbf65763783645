//! Node configuration.

use std::time::Duration;

use crate::PeerId;

/// Everything a [`Node`](crate::Node) can be tuned with. Defaults follow the
/// reference node, except `max_peers` (64, so that 50-peer meshes are full).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Our id; `None` draws 16 random bytes (32 hex characters) from the seed.
    pub id: Option<PeerId>,
    /// Display name sent in the hello; `None` means "same as id".
    pub name: Option<String>,
    /// The port we listen on, advertised in `LISTEN:`.
    pub listen_port: u16,
    /// Host to advertise in `LISTEN:`; `None` uses the local IP of each
    /// outgoing socket (as reported by the driver), else `localhost`.
    pub advertise_host: Option<String>,
    /// Most established peers; a hello beyond it is answered `MAX_PEERS`.
    pub max_peers: usize,
    /// Longest line accepted without `\n`.
    pub max_line_len: usize,
    /// Largest `BYTES:` payload accepted or sent.
    pub max_bytes_per_message: usize,
    /// How often every peer is sent `PING`.
    pub ping_interval: Duration,
    /// A peer with no frame for this long is closed.
    pub peer_timeout: Duration,
    /// How often every peer is sent `REQUEST_PEERS` and idle addresses dialed.
    pub discovery_interval: Duration,
    /// Deadline for a dial plus handshake, and for a new peer's first frame.
    pub connect_timeout: Duration,
    /// Tries for [`Node::bootstrap`](crate::Node::bootstrap).
    pub bootstrap_attempts: u32,
    /// Wait before the second bootstrap try; doubles each time.
    pub bootstrap_backoff: Duration,
    /// Most dials in flight at once, across all addresses.
    pub max_dials_in_flight: usize,
    /// Upper bound of the random delay before dialing a discovered address.
    pub dial_jitter: Duration,
    /// Backoff after the first failed dial of an address; doubles per failure.
    pub dial_backoff: Duration,
    /// Cap on the per-address backoff.
    pub dial_backoff_max: Duration,
    /// Consecutive failures after which an address is forgotten.
    pub max_dial_failures: u32,
    /// Most addresses remembered.
    pub max_known_addrs: usize,
    /// Largest file size accepted in a `FILESTART`.
    pub max_file_size: u64,
    /// Most concurrent incoming transfers per peer.
    pub max_transfers_per_peer: usize,
    /// Size of `FILECHUNK` payloads when sending.
    pub chunk_size: usize,
    /// A file's next chunk waits while any target has more than this many
    /// bytes transmitted and not yet reported [`Input::Flushed`](crate::Input::Flushed).
    pub send_window: u64,
}

impl Config {
    /// Defaults, listening on `listen_port`.
    pub fn new(listen_port: u16) -> Self {
        Config {
            id: None,
            name: None,
            listen_port,
            advertise_host: None,
            max_peers: 64,
            max_line_len: 64 * 1024,
            max_bytes_per_message: 16 * 1024 * 1024,
            ping_interval: Duration::from_secs(15),
            peer_timeout: Duration::from_secs(60),
            discovery_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            bootstrap_attempts: 5,
            bootstrap_backoff: Duration::from_secs(1),
            max_dials_in_flight: 16,
            dial_jitter: Duration::from_millis(200),
            dial_backoff: Duration::from_secs(1),
            dial_backoff_max: Duration::from_secs(60),
            max_dial_failures: 6,
            max_known_addrs: 1024,
            max_file_size: 64 * 1024 * 1024 * 1024,
            max_transfers_per_peer: 8,
            chunk_size: 256 * 1024,
            send_window: 8 * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(8001)
    }
}
