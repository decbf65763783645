//! The tokio driver of the p2p mesh: it owns the listener, the connections,
//! the timer and the disk, and pumps the sans-IO [`p2p_core::Node`].
//!
//! It is generic over the [`Transport`] (real TCP here, turmoil's simulated
//! TCP in `p2p-sim`) and the [`Storage`] (the disk, or memory), so that the
//! simulator runs exactly the deployed code. Time comes only from
//! `tokio::time`.
//!
//! Backpressure runs end to end: socket readers wait when the driver is
//! busy (TCP then slows the sender), each connection has its own send
//! queue, file sends are paced by their peers' queues, and a peer whose
//! queue stays over `send_queue_limit` for `slow_reader_timeout` is
//! disconnected with a reported reason. Nothing is dropped silently.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_net::NetError> {
//! use p2p_net::{start, DiskStorage, NetConfig, NetEvent, TcpTransport};
//!
//! let mut config = NetConfig::new(8001);
//! config.bootstrap.push("localhost:8000".into());
//! let storage = DiskStorage::new("downloads").map_err(|e| p2p_net::NetError::File(e.to_string()))?;
//! let (node, mut events) = start(config, TcpTransport::any(), storage).await?;
//! node.chat("hello").await.ok();
//! while let Some(event) = events.next().await {
//!     if let NetEvent::Core(p2p_core::Event::Chat { name, text, .. }) = event {
//!         println!("[{name}] {text}");
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod conn;
mod disk;
mod driver;
mod handle;
mod lan;
mod malloc;
mod mdns;
mod storage;
mod swarm_disk;
mod swarm_mem;
mod swarm_store;
mod transport;

use std::time::Duration;

pub use handle::{start, Events, NetEvent, NodeHandle};

/// What a [`Tap`] sees: every input handed to the core and every output it
/// produced, in order.
#[derive(Debug)]
pub enum TapEvent<'a> {
    /// A socket was accepted as this connection, from `remote`.
    Accepted {
        /// The connection.
        conn: p2p_core::ConnId,
        /// The remote socket.
        remote: std::net::SocketAddr,
    },
    /// An input handed to the core.
    Input(&'a p2p_core::Input),
    /// An output of the core.
    Output(&'a p2p_core::Output),
}

/// A hook that observes the driver (the simulator hashes and checks it).
pub type Tap = std::sync::Arc<dyn Fn(&TapEvent<'_>) + Send + Sync>;
pub use lan::{Announcement, Heard, LanDiscovery, LanError, LanSession, SERVICE_TYPE};
pub use malloc::tune_allocator;
pub use mdns::MdnsLan;
pub use storage::{numbered, DiskStorage, MemStorage, ReadError, Storage};
pub use transport::{Listener, TcpTransport, Transport};

/// Configuration of a running node: the core's, plus the driver's own.
#[derive(Clone)]
pub struct NetConfig {
    /// The protocol core's configuration (`listen_port` 0 picks a free port).
    pub core: p2p_core::Config,
    /// Seed of the node's randomness (id, jitter). [`NetConfig::new`] draws
    /// a fresh one, so that every node gets its own id; simulations set it.
    pub seed: u64,
    /// Addresses to bootstrap to at start.
    pub bootstrap: Vec<String>,
    /// High-water mark of one peer's send queue: file sends wait while a
    /// target is above it, and a peer that stays above it for
    /// `slow_reader_timeout` is disconnected.
    pub send_queue_limit: usize,
    /// How long a peer may stay over the limit before it is disconnected.
    pub slow_reader_timeout: Duration,
    /// Events the application's stream holds; beyond it they wait in the
    /// driver and the connections producing them are no longer read.
    pub event_queue: usize,
    /// Bytes of writes queued for the disk beyond which the connection
    /// that sends them is no longer read.
    pub disk_queue_limit: usize,
    /// Whether debug-level events (heartbeats, peer lists; see
    /// `Event::is_debug`) reach the application. Off by default: nobody
    /// reading them must not hold up a peer.
    pub debug_events: bool,
    /// Observes every core input and output (for simulation and tests).
    pub tap: Option<Tap>,
    /// LAN discovery: announce this node and dial the members of its mesh
    /// that announce themselves. Off (`None`) by default: mDNS sends
    /// multicast beyond this machine.
    pub lan: Option<std::sync::Arc<dyn LanDiscovery>>,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("core", &self.core)
            .field("seed", &self.seed)
            .field("bootstrap", &self.bootstrap)
            .field("send_queue_limit", &self.send_queue_limit)
            .field("slow_reader_timeout", &self.slow_reader_timeout)
            .field("event_queue", &self.event_queue)
            .field("disk_queue_limit", &self.disk_queue_limit)
            .field("debug_events", &self.debug_events)
            .field("tap", &self.tap.is_some())
            .field("lan", &self.lan.is_some())
            .finish()
    }
}

impl NetConfig {
    /// Defaults for a node listening on `port`.
    pub fn new(port: u16) -> Self {
        NetConfig {
            core: p2p_core::Config::new(port),
            seed: fresh_seed(),
            bootstrap: Vec::new(),
            send_queue_limit: 8 * 1024 * 1024,
            slow_reader_timeout: Duration::from_secs(30),
            event_queue: 1024,
            disk_queue_limit: 16 * 1024 * 1024,
            debug_events: false,
            tap: None,
            lan: None,
        }
    }
}

/// A seed that differs per call and per process (the wall clock, the
/// process id and a counter): the core itself never reads the OS.
pub fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 of the mix, so that close inputs give unrelated seeds.
    let mut z = t ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Errors of the driver and its handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The listener could not be bound.
    #[error("cannot listen on port {port}: {error}")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        error: String,
    },
    /// The core refused a command.
    #[error(transparent)]
    Command(#[from] p2p_core::CommandError),
    /// A path that cannot be sent (no file name, not UTF-8).
    #[error("{0}")]
    File(String),
    /// Sending a file failed.
    #[error("{0}")]
    Send(p2p_core::SendFailure),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// LAN discovery could not start.
    #[error(transparent)]
    Lan(#[from] LanError),
}
