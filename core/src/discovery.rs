//! The discovery component: `REQUEST_PEERS` every discovery interval, what
//! we share in `PEERS` and with whom, the unsolicited gossip of a newly
//! connected address, and what a received `PEERS` line teaches the dialer
//! (docs/PROTOCOL.md §3.2).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::codec;
use crate::connections::Connections;
use crate::dialer::Dialer;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{Addr, ConnId, Event, PeerId};

/// Most extra (not established) addresses shared in one `PEERS` line.
const EXTRA_SHARED: usize = 5;

/// Of the established peers shared in one `PEERS` line when there are more
/// than `max_shared_peers`, how many are the most recently established
/// (the rest is a random sample): new peers spread at once.
const NEWEST_SHARED: usize = 8;

/// Most addresses of a received `PEERS` line shown in a debug event.
const REPORTED: usize = 32;

/// Discovery's timer and rules.
#[derive(Debug)]
pub(crate) struct Discovery {
    interval: Duration,
    max_shared_peers: usize,
    max_known_addrs: usize,
    next: Option<Instant>,
    pub(crate) out: Outbox,
}

impl Discovery {
    pub(crate) fn new(
        now: Instant,
        interval: Duration,
        max_shared_peers: usize,
        max_known_addrs: usize,
    ) -> Self {
        Discovery {
            interval,
            max_shared_peers,
            max_known_addrs,
            next: Some(now + interval),
            out: Outbox::default(),
        }
    }

    /// Asks every peer for addresses now, and has the dialer schedule what
    /// is due (`/discover`, and each discovery interval).
    pub(crate) fn discover(
        &mut self,
        now: Instant,
        peers: &Peers,
        dialer: &mut Dialer,
        rng: &mut ChaCha8Rng,
    ) {
        for conn in peers.conns() {
            self.out
                .transmit(conn, Bytes::from_static(codec::REQUEST_PEERS_LINE));
        }
        dialer.dial_due(now, peers.len(), rng);
    }

    /// Sends `REQUEST_PEERS` on one connection (a dialer, after its handshake).
    pub(crate) fn request(&mut self, conn: ConnId) {
        self.out
            .transmit(conn, Bytes::from_static(codec::REQUEST_PEERS_LINE));
    }

    /// What we share in `PEERS` with `to` (`None`: a dialer we refuse) on
    /// `conn`: established peers' addresses except its own (at most
    /// `max_shared_peers`: the newest and a random sample), plus up to 5
    /// healthy known ones; never `[::1]`, and no loopback address over a
    /// connection from another machine.
    pub(crate) fn shareable(
        &self,
        to: Option<&PeerId>,
        conn: ConnId,
        peers: &Peers,
        conns: &Connections,
        dialer: &Dialer,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Addr> {
        let to_peer = to.and_then(|t| peers.get(t));
        // By sequence number: unique per peer, and cheaper than comparing
        // ids for every peer of a large table.
        let to_seq = to_peer.map(|p| p.seq);
        let to_addr = to_peer.and_then(|p| p.addr.clone());
        let remote_local = conns.is_local(conn);
        let ok = |a: &Addr| {
            !a.is_ipv6_loopback()
                && Some(a) != to_addr.as_ref()
                && (remote_local || !a.is_local_only())
        };
        let mut shared: Vec<(u64, &Addr)> = peers
            .iter()
            .filter(|(_, p)| Some(p.seq) != to_seq)
            .filter_map(|(_, p)| p.addr.as_ref().map(|a| (p.seq, a)))
            .filter(|(_, a)| ok(a))
            .collect();
        if shared.len() > self.max_shared_peers {
            // Newest first, then a partial shuffle of the rest: the first
            // `max_shared_peers` are the newest plus a uniform sample.
            shared.sort_unstable_by_key(|&(seq, _)| std::cmp::Reverse(seq));
            let newest = NEWEST_SHARED.min(self.max_shared_peers);
            for i in newest..self.max_shared_peers {
                let span = (shared.len() - i) as u64;
                let j = i + (rng.next_u64() % span) as usize;
                shared.swap(i, j);
            }
            shared.truncate(self.max_shared_peers);
        }
        let mut list: BTreeSet<Addr> = shared.into_iter().map(|(_, a)| a.clone()).collect();
        // References: only the few picked are cloned.
        let mut extra: Vec<&Addr> = dialer.book.healthy_idle().filter(|a| ok(a)).collect();
        for _ in 0..EXTRA_SHARED {
            if extra.is_empty() {
                break;
            }
            let i = (rng.next_u64() % extra.len() as u64) as usize;
            list.insert(extra.swap_remove(i).clone());
        }
        list.into_iter().collect()
    }

    /// Sends `to` what we share, if anything.
    pub(crate) fn send_peers(&mut self, conn: ConnId, list: &[Addr]) {
        if !list.is_empty() {
            self.out.transmit(conn, codec::peers_line(list));
        }
    }

    /// Tells every other peer about a newly connected address, so that the
    /// mesh closes in one round trip instead of one discovery interval.
    pub(crate) fn gossip(
        &mut self,
        about: &PeerId,
        addr: &Addr,
        peers: &Peers,
        conns: &Connections,
    ) {
        let line = codec::peers_line(std::slice::from_ref(addr));
        for (id, p) in peers.iter() {
            if id != about && (conns.is_local(p.conn) || !addr.is_local_only()) {
                self.out.transmit(p.conn, line.clone());
            }
        }
    }

    /// A `PEERS` line arrived (`from`: `None` for the redirect of a node
    /// that refused us with `MAX_PEERS`): new addresses go to the dialer.
    pub(crate) fn on_peers(
        &mut self,
        now: Instant,
        from: Option<&PeerId>,
        list: Vec<String>,
        peers: usize,
        dialer: &mut Dialer,
        rng: &mut ChaCha8Rng,
    ) {
        if let Some(peer) = from {
            self.out.event(Event::PeersReceived {
                peer: peer.clone(),
                addrs: list
                    .iter()
                    .take(REPORTED)
                    .map(|s| crate::truncate_for_report(s))
                    .collect(),
            });
        }
        let mut new = Vec::new();
        for text in list.iter().take(self.max_known_addrs) {
            let Ok(addr) = Addr::parse(text) else {
                continue;
            };
            if dialer.book.learn(&addr) {
                new.push(addr.clone());
            }
            // `schedule` checks that it is dialable.
            dialer.schedule(now, &addr, peers, rng);
        }
        if !new.is_empty() {
            self.out.event(Event::PeersDiscovered {
                from: from.cloned(),
                new,
                known: dialer.book.len(),
            });
        }
    }

    /// A peer asked for addresses.
    pub(crate) fn on_request(&mut self, peer: &PeerId) {
        self.out.event(Event::PeersRequested { peer: peer.clone() });
    }

    pub(crate) fn shutdown(&mut self) {
        self.next = None;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The discovery interval passed: discover, and re-arm.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        peers: &Peers,
        dialer: &mut Dialer,
        rng: &mut ChaCha8Rng,
    ) {
        if self.next.is_some_and(|t| t <= now) {
            self.discover(now, peers, dialer, rng);
            self.next = Some(now + self.interval);
        }
    }
}
