//! Sans-IO protocol core of the p2p mesh.
//!
//! Pure state machines for the wire codec, the handshake, the mesh [`Node`]
//! (one component per concern: connections, dialer, discovery, heartbeat,
//! chat, extensions, files; see `docs/ARCHITECTURE.md`) and file transfer.
//! The codec and file framing are internal; the `internals` feature exposes
//! them for the simulator, benchmarks and fuzzers. The core never touches a socket, a file, a clock, a thread or
//! the OS's randomness: time is passed in on every call and randomness comes
//! from the seed given to [`Node::new`]. Same seed and same inputs give the
//! same outputs, byte for byte.
//!
//! Private mode (`config.session.network_key`, see [`SessionConfig`]) runs
//! every connection through a Noise session (`docs/PROTOCOL.md` §7.4); the
//! node's id is then [`session_id_of_private`] of its static key.
//!
//! The shape follows quinn-proto and str0m: inputs go in through `handle_*`
//! methods, outputs are drained with [`Node::poll_output`] until it returns
//! `None`, and [`Node::poll_timeout`] says when to call
//! [`Node::handle_timeout`] next.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use p2p_core::{Config, Input, Node, Output};
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config::new(8001), 7, now);
//! node.connect(now, "localhost:8000").unwrap();
//! while let Some(out) = node.poll_output() {
//!     match out {
//!         Output::Dial { conn, addr } => {
//!             assert_eq!(addr.as_str(), "127.0.0.1:8000");
//!             // A driver opens a socket here; pretend the dial failed.
//!             let error = p2p_core::IoError::new(std::io::ErrorKind::ConnectionRefused, "refused");
//!             node.handle_input(now, Input::DialFailed { conn, error });
//!         }
//!         Output::Transmit { .. } | Output::Close { .. } | Output::Storage(_) => {}
//!         Output::Event(event) => println!("{event:?}"),
//!     }
//! }
//! assert!(node.poll_timeout().unwrap() <= now + Duration::from_secs(30));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addr;
mod addrbook;
mod chat;
#[cfg(feature = "internals")]
pub mod codec;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
mod codec;
mod config;
mod connections;
mod dialer;
mod discovery;
mod error;
mod event;
mod extensions;
#[cfg(feature = "internals")]
pub mod file;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
mod file;
mod files;
mod heartbeat;
mod io;
mod node;
mod peers;
#[cfg(feature = "internals")]
pub mod session;
#[cfg(not(feature = "internals"))]
mod session;
mod swarm;
mod timer;

#[cfg(test)]
mod tests;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use addr::Addr;
pub use codec::DecodeError;
pub use config::{
    AcceptOffers, Config, ConnectionsConfig, DialerConfig, DiscoveryConfig, FilesConfig,
    HeartbeatConfig, SessionConfig, SwarmConfig,
};
pub use error::{CommandError, DialFailure, IoError, ProtocolError, SendFailure};
pub use event::{
    CloseReason, Concern, DisconnectReason, Event, FileFailure, PeerInfo, RejectReason, StorageOp,
};
pub use file::check_name as check_file_name;
pub use io::{Input, Output, Target};
pub use node::Node;
pub use session::{
    network_fingerprint, peer_id_of as session_id_of, peer_id_of_private as session_id_of_private,
    public_key as session_public_key, SessionError,
};
pub use swarm::{
    check_path, chunk_hash, ContentId, DownloadFailure, DownloadInfo, DownloadPhase, Listing,
    Manifest, ManifestError, ManifestFile, UnshareReason, CHUNK_SIZE,
};

use std::fmt;

use serde::Serialize;

/// Handle of one connection, allocated by the [`Node`] (for dials and for
/// accepted sockets alike). Never reused within one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Handle of one file transfer (incoming or outgoing), unique within a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TransferId(pub u64);

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A peer's identity as sent in its hello line: non-empty, no `:`, no
/// whitespace, not `BYTES`, at most [`PeerId::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PeerId(String);

impl PeerId {
    /// Longest id we accept; the reference uses 32 hex characters.
    pub const MAX_LEN: usize = 256;

    /// Validates an id received from the wire or given in a [`Config`].
    pub fn parse(s: &str) -> Result<Self, ProtocolError> {
        // `BYTES` would make the hello `BYTES:<name>` read as a bytes header.
        if s.is_empty()
            || s == "BYTES"
            || s.len() > Self::MAX_LEN
            || s.contains(':')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ProtocolError::InvalidPeerId {
                id: truncate_for_report(s),
            });
        }
        Ok(PeerId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shortens untrusted text before it goes into an error or event, so that a
/// hostile peer cannot make reports arbitrarily large.
pub(crate) fn truncate_for_report(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
