//! The table of established peers, shared by every component: the
//! connections component writes it (handshake, merge, loss), the others
//! read it to know whom to send to.

use std::collections::BTreeMap;

use crate::{Addr, ConnId, PeerId, PeerInfo};

/// An established peer.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Its current connection (a retired duplicate may still drain).
    pub(crate) conn: ConnId,
    pub(crate) name: String,
    pub(crate) addr: Option<Addr>,
    pub(crate) outbound: bool,
    /// `PeerConnected` was emitted.
    pub(crate) announced: bool,
    /// Order of establishment (set by [`Peers::insert`]); larger is newer.
    pub(crate) seq: u64,
}

/// Established peers by id, iterated in id order.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    map: BTreeMap<PeerId, Peer>,
    inserted: u64,
}

impl Peers {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, id: &PeerId) -> bool {
        self.map.contains_key(id)
    }

    pub(crate) fn get(&self, id: &PeerId) -> Option<&Peer> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &PeerId) -> Option<&mut Peer> {
        self.map.get_mut(id)
    }

    /// Adds an established peer, numbering it after every earlier one.
    pub(crate) fn insert(&mut self, id: PeerId, mut peer: Peer) {
        self.inserted += 1;
        peer.seq = self.inserted;
        self.map.insert(id, peer);
    }

    pub(crate) fn remove(&mut self, id: &PeerId) -> Option<Peer> {
        // Planted: a lost peer stays in the table (with its closed connection).
        #[cfg(p2p_planted = "node-stale-peer")]
        return self.map.get(id).map(|p| Peer {
            name: p.name.clone(),
            addr: p.addr.clone(),
            ..*p
        });
        #[cfg(not(p2p_planted = "node-stale-peer"))]
        self.map.remove(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PeerId, &Peer)> {
        self.map.iter()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &PeerId> {
        self.map.keys()
    }

    /// The current connection of `id`.
    pub(crate) fn conn_of(&self, id: &PeerId) -> Option<ConnId> {
        self.map.get(id).map(|p| p.conn)
    }

    /// Whether `conn` is the current connection of `id`.
    pub(crate) fn is_current(&self, id: &PeerId, conn: ConnId) -> bool {
        self.map.get(id).is_some_and(|p| p.conn == conn)
    }

    /// Every peer's current connection, in id order.
    pub(crate) fn conns(&self) -> Vec<ConnId> {
        self.map.values().map(|p| p.conn).collect()
    }

    /// Snapshots; `extensions` is filled in by the node.
    pub(crate) fn info(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        self.map.iter().map(|(id, p)| PeerInfo {
            id: id.clone(),
            name: p.name.clone(),
            addr: p.addr.clone(),
            outbound: p.outbound,
            conn: p.conn,
            extensions: Vec::new(),
            rtt_ms: None,
            bytes_in: 0,
            bytes_out: 0,
        })
    }
}
