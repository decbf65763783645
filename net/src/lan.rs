//! LAN discovery behind a trait: the driver announces its node and hears
//! others' announcements through a [`LanDiscovery`], and feeds what it
//! hears to the core as [`Input::LanPeer`](p2p_core::Input::LanPeer).
//!
//! mDNS ([`crate::MdnsLan`]) runs a thread of its own and sends multicast,
//! so it is opt-in (`p2p-node --lan`) and never on a simulated path: the
//! simulator implements this trait with a seeded, single-threaded LAN.

use std::fmt;

use tokio::sync::mpsc;

/// The mDNS service type of the mesh.
pub const SERVICE_TYPE: &str = "_p2p-mesh._tcp.local.";

/// What a node announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// Its peer id (TXT `id`).
    pub id: String,
    /// Its display name (the instance name, where the mechanism has one).
    pub name: String,
    /// The port it listens on.
    pub port: u16,
    /// Private mode: [`p2p_core::network_fingerprint`] of the network key
    /// (TXT `net`), never the key; `None` for a public mesh.
    pub network: Option<String>,
}

/// An announcement heard from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Where it listens, `host:port`, one per address it announced.
    pub addrs: Vec<String>,
    /// The id it announced, if any.
    pub id: Option<String>,
    /// Its network fingerprint (`None`: a public mesh).
    pub network: Option<String>,
}

impl Heard {
    /// Whether a node announcing `ours` should dial it: the same mesh,
    /// public with public or the same private network.
    pub fn same_network(&self, ours: Option<&str>) -> bool {
        self.network.as_deref() == ours
    }
}

/// Why LAN discovery could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanError(pub String);

impl fmt::Display for LanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LAN discovery: {}", self.0)
    }
}

impl std::error::Error for LanError {}

/// A way of announcing a node on the local network and hearing others.
pub trait LanDiscovery: Send + Sync + 'static {
    /// Starts announcing `me` and browsing; every announcement heard goes
    /// to `heard` (repeats are fine: the core dedups). Must not block the
    /// driver task for long.
    fn start(
        &self,
        me: Announcement,
        heard: mpsc::Sender<Heard>,
    ) -> Result<Box<dyn LanSession>, LanError>;
}

/// A running announcement: [`LanSession::stop`] withdraws it.
pub trait LanSession: Send {
    /// Withdraws the announcement (a goodbye where the mechanism has one)
    /// and stops browsing.
    fn stop(self: Box<Self>);
}
