//! The heartbeat component: `PING` to every peer each ping interval and
//! right after each handshake, `PONG` to every `PING` (docs/PROTOCOL.md
//! §3.1). Silence is judged by the connections component, which sees every
//! frame. Round trips are measured here: from our `PING` to the next
//! `PONG` on the same connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{ConnId, Event, PeerId};

/// The ping timer and the round trips it measures.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next: Option<Instant>,
    /// Our oldest unanswered `PING` per connection. A `PONG` answers the
    /// oldest one (the reference answers in order); pings sent while one is
    /// outstanding are not timed, so a slow peer's round trip is not
    /// understated.
    pinged: BTreeMap<ConnId, Instant>,
    /// The last measured round trip per peer.
    rtt: BTreeMap<PeerId, Duration>,
    pub(crate) out: Outbox,
}

impl Heartbeat {
    pub(crate) fn new(now: Instant, interval: Duration) -> Self {
        Heartbeat {
            interval,
            next: Some(now + interval),
            pinged: BTreeMap::new(),
            rtt: BTreeMap::new(),
            out: Outbox::default(),
        }
    }

    /// Pings a freshly established connection: a peer must answer within
    /// the connect timeout to keep its slot.
    pub(crate) fn greet(&mut self, now: Instant, conn: ConnId) {
        self.ping(now, conn);
    }

    fn ping(&mut self, now: Instant, conn: ConnId) {
        self.out
            .transmit(conn, Bytes::from_static(codec::PING_LINE));
        self.pinged.entry(conn).or_insert(now);
    }

    #[cfg(test)]
    pub(crate) fn timed(&self) -> usize {
        self.pinged.len()
    }

    /// The last round trip measured to `peer`.
    pub(crate) fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        self.rtt.get(peer).copied()
    }

    /// A `PING` arrived; the answer goes on the peer's current connection.
    pub(crate) fn on_ping(&mut self, reply_on: Option<ConnId>) {
        if let Some(conn) = reply_on {
            self.out
                .transmit(conn, Bytes::from_static(codec::PONG_LINE));
        }
    }

    /// A `PONG` arrived on `conn`.
    pub(crate) fn on_pong(&mut self, now: Instant, conn: ConnId, peer: PeerId) {
        let rtt = self.pinged.remove(&conn).map(|sent| now - sent);
        if let Some(rtt) = rtt {
            self.rtt.insert(peer.clone(), rtt);
        }
        self.out.event(Event::PongReceived {
            peer,
            rtt_ms: rtt.map(|d| d.as_millis() as u64),
        });
    }

    /// `conn` closed; `peer`, if given, is gone with it.
    pub(crate) fn on_closed(&mut self, conn: ConnId, peer: Option<&PeerId>) {
        self.pinged.remove(&conn);
        if let Some(peer) = peer {
            self.rtt.remove(peer);
        }
    }

    pub(crate) fn shutdown(&mut self) {
        self.next = None;
        self.pinged.clear();
        self.rtt.clear();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The ping interval passed: ping every peer, and re-arm.
    pub(crate) fn handle_timeout(&mut self, now: Instant, peers: &Peers) {
        if self.next.is_none_or(|t| t > now) {
            return;
        }
        // A timer whose connection no longer carries a peer (a retired
        // duplicate whose close the driver never reported) goes: the map
        // holds at most one entry per peer.
        let current: std::collections::BTreeSet<ConnId> =
            peers.iter().map(|(_, p)| p.conn).collect();
        self.pinged.retain(|c, _| current.contains(c));
        for (peer, p) in peers.iter() {
            self.ping(now, p.conn);
            self.out.event(Event::PingSent { peer: peer.clone() });
        }
        self.next = Some(now + self.interval);
    }
}
