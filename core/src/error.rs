//! Typed errors of the core.

use std::fmt;
use std::io;

use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::codec::DecodeError;
use crate::session::SessionError;
use crate::CloseReason;

/// An I/O failure as the driver saw it: its kind, to match on, and the
/// operating system's words, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoError {
    /// The kind (`connection_refused`, `timed_out`, ... in JSON).
    #[serde(serialize_with = "ser_kind")]
    pub kind: io::ErrorKind,
    /// The error text.
    pub detail: String,
}

impl IoError {
    /// An error of `kind` with its text.
    pub fn new(kind: io::ErrorKind, detail: impl Into<String>) -> Self {
        IoError {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<&io::Error> for IoError {
    fn from(e: &io::Error) -> Self {
        IoError::new(e.kind(), e.to_string())
    }
}

impl From<io::Error> for IoError {
    fn from(e: io::Error) -> Self {
        IoError::from(&e)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// `ConnectionRefused` as `connection_refused`.
fn ser_kind<S: Serializer>(kind: &io::ErrorKind, s: S) -> Result<S::Ok, S::Error> {
    let mut out = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    s.serialize_str(&out)
}

/// Why a dial did not reach a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DialFailure {
    /// The socket did not connect.
    #[error("{0}")]
    Io(IoError),
    /// The connection ended before the handshake completed.
    #[error("closed during the handshake: {0}")]
    Closed(CloseReason),
    /// The handshake broke the protocol.
    #[error("{0}")]
    Protocol(ProtocolError),
    /// The listener is at its peer limit.
    #[error("MAX_PEERS")]
    MaxPeers,
    /// The address turned out to be our own.
    #[error("this is our own address")]
    OwnAddress,
}

/// Why sending a file failed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SendFailure {
    /// The source could not be opened or read.
    #[error("{0}")]
    Storage(IoError),
    /// The source changed between the hash pass and the send.
    #[error("the file {0}")]
    Changed(&'static str),
    /// Storage answered out of turn (a driver bug).
    #[error("storage answered out of turn: {0}")]
    OutOfTurn(String),
    /// The core refused the file (name, size).
    #[error("{0}")]
    Refused(CommandError),
    /// Every target disconnected.
    #[error("every receiving peer disconnected")]
    TargetsGone,
    /// The application aborted it.
    #[error("aborted")]
    Aborted,
    /// The node shut down.
    #[error("the node shut down")]
    Shutdown,
}

/// Why a connection was closed for misbehaving. Every one of these closes
/// exactly that connection; the node and its other peers go on.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
// Adjacent tagging: `Decode` wraps an enum that is itself tagged by `kind`.
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProtocolError {
    /// The byte stream could not be decoded into frames.
    #[error("bad framing: {0}")]
    Decode(#[from] DecodeError),
    /// The hello line is not `<id>:<name>` with a valid id.
    #[error("invalid hello line {line:?}")]
    InvalidHello {
        /// The offending line, shortened.
        line: String,
    },
    /// A peer id that is empty, too long, or contains `:` or whitespace.
    #[error("invalid peer id {id:?}")]
    InvalidPeerId {
        /// The offending id, shortened.
        id: String,
    },
    /// An address that is not `host:port`.
    #[error("invalid address {addr:?}")]
    InvalidAddr {
        /// The offending address, shortened.
        addr: String,
    },
    /// A bytes frame arrived before the handshake completed.
    #[error("bytes frame before the handshake completed")]
    BytesBeforeHandshake,
    /// The handshake did not complete within `connect_timeout`.
    #[error("handshake not completed within {timeout_ms} ms")]
    HandshakeTimeout {
        /// The deadline that passed.
        timeout_ms: u64,
    },
    /// A freshly handshaked peer sent nothing, not even a PONG, within
    /// `connect_timeout`: it would only hold a slot.
    #[error("peer sent nothing within {timeout_ms} ms of its handshake")]
    Unresponsive {
        /// The deadline that passed.
        timeout_ms: u64,
    },
    /// The Noise session layer refused the connection (private mode and
    /// its mismatches, docs/PROTOCOL.md §7.4).
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// Why an application command was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CommandError {
    /// Chat text that the wire cannot carry as chat.
    #[error("cannot send {text:?} as chat: {why}")]
    InvalidChat {
        /// The refused text, shortened.
        text: String,
        /// Why.
        why: &'static str,
    },
    /// No established peer with that id.
    #[error("no connected peer {0}")]
    UnknownPeer(String),
    /// An address that is not `host:port`.
    #[error("invalid address {0:?}")]
    InvalidAddr(String),
    /// The address is our own.
    #[error("{0} is this node's own address")]
    SelfAddr(String),
    /// A binary message larger than `max_bytes_per_message`.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A binary message starting with a prefix only the node itself sends
    /// (docs/PROTOCOL.md §7.1): the receiver would misread it.
    #[error("a binary message may not start with {prefix:?}")]
    ReservedPrefix {
        /// The prefix.
        prefix: &'static str,
    },
    /// A file name that the receivers would refuse.
    #[error("invalid file name {0:?}")]
    InvalidFileName(String),
    /// No outgoing transfer with that id.
    #[error("no outgoing transfer {0}")]
    UnknownTransfer(crate::TransferId),
    /// The chunks handed in do not add up to the declared size.
    #[error("transfer {transfer}: {why}")]
    FileSize {
        /// The transfer.
        transfer: crate::TransferId,
        /// What went wrong.
        why: String,
    },
    /// The command needs at least one connected peer.
    #[error("no connected peers")]
    NoPeers,
    /// The node was shut down and takes no more dials.
    #[error("the node is shut down")]
    ShutDown,
    /// No content with that id (or id prefix) is known here or in the mesh.
    #[error("no content {0} is known (/files lists what the mesh offers)")]
    UnknownContent(String),
    /// An id prefix that matches more than one content.
    #[error("id prefix {0} matches several contents; type more of it")]
    AmbiguousContent(String),
    /// Not a content id or a prefix of at least 8 hex digits.
    #[error("{0:?} is not a content id (64 hex digits, or a unique prefix of 8 or more)")]
    InvalidContentId(String),
    /// Content that is shared here already (complete).
    #[error("{0} is shared here already")]
    AlreadyHave(String),
    /// `swarm.max_downloads` downloads are running.
    #[error("{0} downloads are running already")]
    TooManyDownloads(usize),
    /// Swarm sharing is disabled in this node's configuration.
    #[error("content sharing is disabled")]
    SwarmDisabled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_kind() {
        let e = IoError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(e.kind, io::ErrorKind::ConnectionRefused);
        let json = serde_json::to_string(&DialFailure::Io(IoError::new(
            io::ErrorKind::TimedOut,
            "connect timed out",
        )))
        .unwrap();
        assert_eq!(
            json,
            r#"{"kind":"io","detail":{"kind":"timed_out","detail":"connect timed out"}}"#
        );
    }

    #[test]
    fn errors_serialize_to_valid_json_with_one_kind_per_level() {
        let e = ProtocolError::Decode(DecodeError::BytesTooLarge {
            len: "9".into(),
            limit: 1,
        });
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"decode","detail":{"kind":"bytes_too_large","len":"9","limit":1}}"#
        );
        let e = ProtocolError::HandshakeTimeout { timeout_ms: 10 };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"handshake_timeout","detail":{"timeout_ms":10}}"#
        );
        let e = CommandError::UnknownPeer("bob".into());
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"unknown_peer","detail":"bob"}"#
        );
        assert_eq!(
            serde_json::to_string(&CommandError::NoPeers).unwrap(),
            r#"{"kind":"no_peers"}"#
        );
    }
}
