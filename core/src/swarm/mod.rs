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
    /// Peers known to hold some of it.
    pub holders: usize,
    /// Verified bytes each peer sent in this run.
    pub bytes_from: BTreeMap<PeerId, u64>,
}
