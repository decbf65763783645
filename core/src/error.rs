//! Typed errors of the core.

use serde::Serialize;
use thiserror::Error;

use crate::codec::DecodeError;

/// Why a connection was closed for misbehaving. Every one of these closes
/// exactly that connection; the node and its other peers go on.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
// Adjacent tagging: `Decode` wraps an enum that is itself tagged by `kind`.
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
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
}

/// Why an application command was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
