//! Node configuration, one group per component.
//!
//! Every struct is `#[non_exhaustive]`: start from [`Config::new`] (or a
//! group's `Default`) and set the fields you need, so that a setting added
//! later does not break your code.
//!
//! ```
//! use std::time::Duration;
//! use p2p_core::Config;
//!
//! let mut config = Config::new(9000);
//! config.connections.max_peers = 8;
//! config.heartbeat.ping_interval = Duration::from_secs(5);
//! config.files.chunk_size = 64 * 1024;
//! assert_eq!(config.dialer.max_in_flight, 16);
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::PeerId;

/// Everything a [`Node`](crate::Node) can be tuned with. Defaults follow the
/// reference node, except `connections.max_peers` (64, so that 50-peer
/// meshes are full).
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
    /// Connections, handshakes and the wire limits (connections.rs).
    pub connections: ConnectionsConfig,
    /// Liveness of established peers (heartbeat.rs).
    pub heartbeat: HeartbeatConfig,
    /// Asking peers for addresses (discovery.rs).
    pub discovery: DiscoveryConfig,
    /// Which addresses are dialed, when, and how many at once (dialer.rs).
    pub dialer: DialerConfig,
    /// File transfers, both ways (files/).
    pub files: FilesConfig,
    /// Private mode: the Noise session layer (session.rs). The default
    /// is plaintext, the reference's protocol.
    pub session: SessionConfig,
    /// Content-addressed sharing: shares, the mesh index, downloads
    /// (swarm/).
    pub swarm: SwarmConfig,
}

/// Which offers are accepted without asking (`p2p-node --accept-offers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptOffers {
    /// None: each offer is shown and waits for `/accept` or `/decline`.
    #[default]
    Ask,
    /// Every offer.
    All,
    /// Offers from these peers.
    From(BTreeSet<PeerId>),
}

/// Content-addressed sharing (docs/PROTOCOL.md §9).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// Speak `swarm/1` at all (announced in the caps frame).
    pub enabled: bool,
    /// Chunk size of the manifests this node builds.
    pub chunk_size: u32,
    /// Chunk requests in flight per peer and download: 32 x 256 KiB (8 MiB)
    /// keeps a loopback link and the holder's read queue busy.
    pub requests_per_peer: usize,
    /// Chunk requests in flight per download, shared among its peers (each
    /// gets at most `requests_per_peer`): 48 keeps three holders as fast as
    /// one on loopback (BENCHMARKS.md, "swarm").
    pub requests_per_download: usize,
    /// A request unanswered for this long is moved to another peer, and the
    /// peer is not asked again for a while.
    pub request_timeout: Duration,
    /// Chunk requests of one peer served at once; more are answered `none`.
    pub max_serving_per_peer: usize,
    /// Largest manifest accepted from a peer, in bytes.
    pub max_manifest: usize,
    /// Downloads running at once.
    pub max_downloads: usize,
    /// The partial record is made durable every this many chunks.
    pub checkpoint_every: u32,
    /// Pending offers kept; older ones are dropped.
    pub max_offers: usize,
    /// Offers accepted without asking.
    pub accept_offers: AcceptOffers,
    /// How often a download asks partial holders what they have now.
    pub have_refresh: Duration,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            enabled: true,
            chunk_size: 256 * 1024,
            requests_per_peer: 32,
            requests_per_download: 48,
            request_timeout: Duration::from_secs(10),
            max_serving_per_peer: 64,
            max_manifest: 8 * 1024 * 1024,
            max_downloads: 16,
            checkpoint_every: 64,
            max_offers: 64,
            accept_offers: AcceptOffers::Ask,
            have_refresh: Duration::from_secs(2),
        }
    }
}

/// Private mode (docs/PROTOCOL.md §7.4). With a `network_key`, every
/// connection starts with a Noise handshake keyed by it and carries the
/// line protocol encrypted; the node's id is then derived from its static
/// key ([`Config::id`] is not used) and it never connects to a plaintext
/// node. Without one (the default) the node speaks plaintext.
///
/// ```
/// use p2p_core::{session_id_of_private, Config, Node};
///
/// let mut config = Config::new(9000);
/// config.session.network_key = Some([7; 32]);
/// config.session.static_key = Some([9; 32]);
/// let node = Node::new(config, 1, std::time::Instant::now());
/// assert_eq!(node.id(), &session_id_of_private(&[9; 32]));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The network key, already stretched to 32 bytes (the Noise PSK).
    /// `None`: plaintext.
    pub network_key: Option<[u8; 32]>,
    /// Our static x25519 private key. `None` in private mode: 32 bytes
    /// drawn from the node's seed (what the simulator uses).
    pub static_key: Option<[u8; 32]>,
    /// If set, only peers whose key-derived id is listed may connect.
    pub trust: Option<BTreeSet<PeerId>>,
    /// Extra randomness for every connection's Noise keys (ephemerals,
    /// nonces' derivation): a node seeded with a `u64` alone would draw its
    /// ephemeral keys from 64 bits of entropy. A deployed node sets 32
    /// bytes from the OS; the simulator leaves it `None`, so that runs
    /// replay from the seed.
    pub entropy: Option<[u8; 32]>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SessionConfig")
            .field("network_key", &self.network_key.map(|_| "set"))
            .field("static_key", &self.static_key.map(|_| "set"))
            .field("entropy", &self.entropy.map(|_| "set"))
            .field("trust", &self.trust)
            .finish()
    }
}

/// Connections, handshakes and what one frame may hold.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionsConfig {
    /// Most established peers; a hello beyond it is answered `MAX_PEERS`.
    pub max_peers: usize,
    /// Longest line accepted without `\n`.
    pub max_line_len: usize,
    /// Largest `BYTES:` payload accepted or sent.
    pub max_bytes_per_message: usize,
    /// Deadline for a dial plus handshake, and for a new peer's first frame.
    pub connect_timeout: Duration,
}

/// `PING` and the idle limit of a peer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// How often every peer is sent `PING`.
    pub ping_interval: Duration,
    /// A peer with no frame for this long is closed; an incoming file with
    /// no frame for this long is dropped.
    pub peer_timeout: Duration,
}

/// The discovery round.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// How often every peer is sent `REQUEST_PEERS` and idle addresses dialed.
    pub interval: Duration,
    /// Most established peers' addresses in one `PEERS` line: the newest
    /// peers plus a random sample of the others (docs/PROTOCOL.md §3.4), so
    /// a line stays small in a large mesh; gossip and later rounds fill in
    /// the rest.
    pub max_shared_peers: usize,
}

/// The dial policy and the address book.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DialerConfig {
    /// Tries for [`Node::bootstrap`](crate::Node::bootstrap).
    pub bootstrap_attempts: u32,
    /// Wait before the second bootstrap try; doubles each time.
    pub bootstrap_backoff: Duration,
    /// Most dials in flight at once, across all addresses.
    pub max_in_flight: usize,
    /// Upper bound of the random delay before dialing a discovered address.
    pub jitter: Duration,
    /// Backoff after the first failed dial of an address; doubles per failure.
    pub backoff: Duration,
    /// Cap on the per-address backoff.
    pub backoff_max: Duration,
    /// Consecutive failures after which an address is forgotten.
    pub max_failures: u32,
    /// Most addresses remembered.
    pub max_known_addrs: usize,
}

/// File transfers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FilesConfig {
    /// Largest file size accepted in a `FILESTART`.
    pub max_file_size: u64,
    /// Most concurrent incoming transfers per peer.
    pub max_transfers_per_peer: usize,
    /// Size of `FILECHUNK` payloads when sending (at most half of
    /// `connections.max_bytes_per_message` is used).
    pub chunk_size: usize,
    /// A file's next chunk waits while any target has more than this many
    /// bytes transmitted and not yet reported [`Input::Flushed`](crate::Input::Flushed).
    pub send_window: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max_peers: 64,
            max_line_len: 64 * 1024,
            max_bytes_per_message: 16 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            ping_interval: Duration::from_secs(15),
            peer_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            interval: Duration::from_secs(30),
            max_shared_peers: 32,
        }
    }
}

impl Default for DialerConfig {
    fn default() -> Self {
        DialerConfig {
            bootstrap_attempts: 5,
            bootstrap_backoff: Duration::from_secs(1),
            max_in_flight: 16,
            jitter: Duration::from_millis(200),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_failures: 6,
            max_known_addrs: 1024,
        }
    }
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_file_size: 64 * 1024 * 1024 * 1024,
            max_transfers_per_peer: 8,
            chunk_size: 256 * 1024,
            send_window: 8 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Defaults, listening on `listen_port`.
    pub fn new(listen_port: u16) -> Self {
        Config {
            id: None,
            name: None,
            listen_port,
            advertise_host: None,
            connections: ConnectionsConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            discovery: DiscoveryConfig::default(),
            dialer: DialerConfig::default(),
            files: FilesConfig::default(),
            session: SessionConfig::default(),
            swarm: SwarmConfig::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(8001)
    }
}
