//! The chat and bytes component: chat lines and opaque binary messages,
//! to every peer or one (docs/PROTOCOL.md §3.3). Sending validates what the
//! wire can carry; receiving reports it. A broadcast shares one buffer
//! across all connections.

use bytes::Bytes;

use crate::codec::{self, Message};
use crate::extensions::RESERVED_PREFIXES;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{CommandError, Event, PeerId};

/// Chat and bytes.
#[derive(Debug)]
pub(crate) struct Chat {
    max_line_len: usize,
    max_bytes_per_message: usize,
    pub(crate) out: Outbox,
}

impl Chat {
    pub(crate) fn new(max_line_len: usize, max_bytes_per_message: usize) -> Self {
        Chat {
            max_line_len,
            max_bytes_per_message,
            out: Outbox::default(),
        }
    }

    fn chat_line(&self, text: &str) -> Result<Bytes, CommandError> {
        codec::check_chat(text).map_err(|why| CommandError::InvalidChat {
            text: crate::truncate_for_report(text),
            why,
        })?;
        if text.len() > self.max_line_len {
            return Err(CommandError::InvalidChat {
                text: crate::truncate_for_report(text),
                why: "longer than the line limit",
            });
        }
        Ok(Message::Chat(text.to_owned()).to_bytes())
    }

    fn bytes_header(&self, data: &[u8]) -> Result<Bytes, CommandError> {
        if let Some(prefix) = RESERVED_PREFIXES
            .into_iter()
            .find(|p| data.starts_with(p.as_bytes()))
        {
            return Err(CommandError::ReservedPrefix { prefix });
        }
        let len = data.len();
        if len > self.max_bytes_per_message {
            return Err(CommandError::TooLarge {
                len,
                limit: self.max_bytes_per_message,
            });
        }
        Ok(codec::bytes_header(len))
    }

    fn transmit_all(&mut self, peers: &Peers, frames: &[Bytes]) -> usize {
        let conns = peers.conns();
        for &conn in &conns {
            for f in frames {
                self.out.transmit(conn, f.clone());
            }
        }
        conns.len()
    }

    fn conn_of(peers: &Peers, peer: &PeerId) -> Result<crate::ConnId, CommandError> {
        peers
            .conn_of(peer)
            .ok_or_else(|| CommandError::UnknownPeer(peer.to_string()))
    }

    pub(crate) fn broadcast_chat(
        &mut self,
        peers: &Peers,
        text: &str,
    ) -> Result<usize, CommandError> {
        let line = self.chat_line(text)?;
        Ok(self.transmit_all(peers, &[line]))
    }

    pub(crate) fn send_chat(
        &mut self,
        peers: &Peers,
        peer: &PeerId,
        text: &str,
    ) -> Result<(), CommandError> {
        let conn = Self::conn_of(peers, peer)?;
        let line = self.chat_line(text)?;
        self.out.transmit(conn, line);
        Ok(())
    }

    pub(crate) fn broadcast_bytes(
        &mut self,
        peers: &Peers,
        data: Bytes,
    ) -> Result<usize, CommandError> {
        let header = self.bytes_header(&data)?;
        Ok(self.transmit_all(peers, &[header, data]))
    }

    pub(crate) fn send_bytes(
        &mut self,
        peers: &Peers,
        peer: &PeerId,
        data: Bytes,
    ) -> Result<(), CommandError> {
        let conn = Self::conn_of(peers, peer)?;
        let header = self.bytes_header(&data)?;
        self.out.transmit(conn, header);
        self.out.transmit(conn, data);
        Ok(())
    }

    /// A chat line from an established peer; empty lines are dropped.
    pub(crate) fn on_chat(&mut self, peers: &Peers, from: PeerId, text: String) {
        if text.is_empty() {
            return;
        }
        let name = peers
            .get(&from)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| from.to_string());
        self.out.event(Event::Chat { from, name, text });
    }

    /// A binary message that no protocol of ours claimed.
    pub(crate) fn on_bytes(&mut self, from: PeerId, data: Bytes) {
        self.out.event(Event::Bytes { from, data });
    }
}
