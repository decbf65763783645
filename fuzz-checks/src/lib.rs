//! Checking code for the fuzz targets of `p2p-core`, shared by the
//! cargo-fuzz crate in `fuzz/` and by this crate's corpus replay test, so
//! that CI exercises every target on the committed seed corpus without
//! running a fuzzer.
//!
//! Each `check_*` function takes the raw bytes a fuzzer produced, reads them
//! as a sequence of operations (through [`arbitrary::Unstructured`], with a
//! byte format simple enough to be written by hand: see [`Writer`] and the
//! `encode` methods of the op types), runs them against the core, and panics
//! with a description on any broken invariant. Each also returns a small
//! summary of what the input reached, so that tests can assert that the
//! seed corpus is meaningful (handshakes completed, files committed, ...).
//!
//! | target | function | what it checks beyond "no panic" |
//! | --- | --- | --- |
//! | `decode` | [`check_decode`] | split invariance, an independent reference decoder, re-encoding, buffer bounds |
//! | `node` | [`check_node`] | peer table holds only handshaked peers on live connections, one connection per peer, bounded memory, storage confinement and verified commits; the send side: one read in flight, reads within the reported size, one close, chunks exactly the bytes read under a matching checksum, the send window |
//! | `file` | [`check_file`] | a reference model of the receiver: exact storage ops, confinement, commits only of verified content |
//! | `handshake` | [`check_handshake`] | listener and dialer outcome for any first frame, per-frame replies, deadlines |
//! | `session` | [`check_session`] | Noise session layer: nothing decoded before the handshake completes, only whole honest messages in order (never a tampered, replayed or reordered one), honest streams in any split, bounded buffering |
//! | `swarm` | [`check_swarm`] | content-addressed sharing with fake peers and a model of the storage: only chunks that verify against the manifest of their id are written, a commit only once every chunk was written or read back verified, served chunks are exactly the bytes read, replies answer requests, nothing to a peer that did not announce `swarm/1`, bans hold, accepted manifests have safe paths, bounded downloads, offers and outputs |
//! | `manifest` | [`check_manifest`] | the manifest parser: what parses re-encodes to the input, has safe paths (by the core's check and the spec's rule read independently), consistent sizes and hashes, and segments that tile every chunk exactly |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod common;
pub mod decode;
pub mod file;
pub mod handshake;
pub mod manifest;
pub mod node;
pub mod seeds;
mod send;
pub mod session;
pub mod swarm;

pub use common::{is_part_name, is_plain_name, Writer};
pub use decode::{check_decode, DecodeInput, DecodeSummary};
pub use file::{check_file, FileOp, FileSummary};
pub use handshake::{check_handshake, HandshakeInput, HandshakeSummary};
pub use manifest::{check_manifest, ManifestInput, ManifestSummary};
pub use node::{check_node, Answer, Cmd, NodeOp, NodeSummary, SourceOp, Wire};
pub use session::{check_session, Edit, SessionInput, SessionSummary};
pub use swarm::{check_swarm, SwarmOp, SwarmSummary};

/// The fuzz targets, by the name of their corpus directory.
pub const TARGETS: [&str; 7] = [
    "decode",
    "node",
    "file",
    "handshake",
    "session",
    "swarm",
    "manifest",
];

/// Runs the check of `target` (one of [`TARGETS`]) on `data`.
///
/// # Panics
/// On an unknown target, and wherever the check itself fails.
pub fn check_target(target: &str, data: &[u8]) {
    match target {
        "decode" => {
            check_decode(data);
        }
        "node" => {
            check_node(data);
        }
        "file" => {
            check_file(data);
        }
        "handshake" => {
            check_handshake(data);
        }
        "session" => {
            check_session(data);
        }
        "swarm" => {
            check_swarm(data);
        }
        "manifest" => {
            check_manifest(data);
        }
        other => panic!("unknown fuzz target {other:?}"),
    }
}
