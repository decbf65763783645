//! The heartbeat component: `PING` to every peer each ping interval and
//! right after each handshake, `PONG` to every `PING` (docs/PROTOCOL.md
//! §3.1). Silence is judged by the connections component, which sees every
//! frame.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{ConnId, Event, PeerId};

/// The ping timer.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next: Option<Instant>,
    pub(crate) out: Outbox,
}

impl Heartbeat {
    pub(crate) fn new(now: Instant, interval: Duration) -> Self {
        Heartbeat {
            interval,
            next: Some(now + interval),
            out: Outbox::default(),
        }
    }

    /// Pings a freshly established connection: a peer must answer within
    /// the connect timeout to keep its slot.
    pub(crate) fn greet(&mut self, conn: ConnId) {
        self.out
            .transmit(conn, Bytes::from_static(codec::PING_LINE));
    }

    /// A `PING` arrived; the answer goes on the peer's current connection.
    pub(crate) fn on_ping(&mut self, reply_on: Option<ConnId>) {
        if let Some(conn) = reply_on {
            self.out
                .transmit(conn, Bytes::from_static(codec::PONG_LINE));
        }
    }

    /// A `PONG` arrived.
    pub(crate) fn on_pong(&mut self, peer: PeerId) {
        self.out.event(Event::PongReceived { peer });
    }

    pub(crate) fn shutdown(&mut self) {
        self.next = None;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The ping interval passed: ping every peer, and re-arm.
    pub(crate) fn handle_timeout(&mut self, now: Instant, peers: &Peers) {
        if self.next.is_none_or(|t| t > now) {
            return;
        }
        for (peer, p) in peers.iter() {
            self.out
                .transmit(p.conn, Bytes::from_static(codec::PING_LINE));
            self.out.event(Event::PingSent { peer: peer.clone() });
        }
        self.next = Some(now + self.interval);
    }
}
