//! Per-connection state and the handshake (PROTOCOL.md section 2), for both
//! roles, with DUPLICATE, MAX_PEERS, self-connections, advertised-address
//! correction and the deterministic merge of simultaneous connects.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::codec::{Decoder, Limits, Message, Phase};
use crate::node::{Node, Output, Peer};
use crate::timer::Timer;
use crate::{Addr, ConnId, Event, PeerId, RejectReason};

/// Where a connection is.
#[derive(Debug, Clone)]
pub(crate) enum ConnState {
    /// We asked the driver to dial `addr`.
    Dialing { addr: Addr },
    /// We sent hello and `LISTEN:`; waiting for the hello back.
    AwaitHelloReply { addr: Addr },
    /// Accepted; waiting for the dialer's hello.
    AwaitHello,
    /// The listener answered `MAX_PEERS`; we read the `PEERS:` line it may
    /// add before closing, to find nodes with free slots.
    Refused,
    /// Handshake done.
    Established {
        peer: PeerId,
        /// Listener side: the next frame may be the dialer's `LISTEN:`.
        await_listen: bool,
        /// The peer has sent a frame since the handshake.
        proven: bool,
    },
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) state: ConnState,
    pub(crate) decoder: Decoder,
    /// The address we dialed, or the one the remote advertised.
    pub(crate) addr: Option<Addr>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    /// When it opened, then when the handshake completed.
    pub(crate) opened_at: Instant,
    pub(crate) last_seen: Instant,
    /// The id from the hello, once received.
    pub(crate) hello_id: Option<PeerId>,
    pub(crate) name: Option<String>,
    /// A duplicate being closed: frames still count, nothing is sent on it.
    pub(crate) draining: bool,
    /// The connection kept instead of this draining one; this one is
    /// half-closed once the kept one is proven (see `Node::drain`).
    pub(crate) drain_for: Option<ConnId>,
}

impl Conn {
    pub(crate) fn accepted(now: Instant, remote: Option<SocketAddr>, limits: Limits) -> Conn {
        Conn::new(now, ConnState::AwaitHello, None, remote, limits)
    }

    pub(crate) fn dialing(now: Instant, addr: Addr, limits: Limits) -> Conn {
        Conn::new(
            now,
            ConnState::Dialing { addr: addr.clone() },
            Some(addr),
            None,
            limits,
        )
    }

    fn new(
        now: Instant,
        state: ConnState,
        addr: Option<Addr>,
        remote: Option<SocketAddr>,
        limits: Limits,
    ) -> Conn {
        Conn {
            state,
            decoder: Decoder::new(limits),
            addr,
            remote,
            local: None,
            opened_at: now,
            last_seen: now,
            hello_id: None,
            name: None,
            draining: false,
            drain_for: None,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        match &self.state {
            ConnState::Dialing { .. } | ConnState::AwaitHelloReply { .. } => Phase::AwaitHelloReply,
            ConnState::AwaitHello => Phase::AwaitHello,
            ConnState::Refused => Phase::Established,
            ConnState::Established {
                await_listen: true, ..
            } => Phase::AwaitListen,
            ConnState::Established { .. } => Phase::Established,
        }
    }

    /// Frames before `Connected` are a driver bug; ignore them.
    pub(crate) fn accepts_frames(&self) -> bool {
        !matches!(self.state, ConnState::Dialing { .. })
    }

    pub(crate) fn is_dialing(&self) -> bool {
        matches!(
            self.state,
            ConnState::Dialing { .. } | ConnState::AwaitHelloReply { .. }
        )
    }

    /// Whether the remote is on this machine (unknown counts as yes, so
    /// that loopback-only setups still share their addresses).
    pub(crate) fn remote_is_loopback(&self) -> bool {
        if let Some(r) = self.remote {
            return r.ip().is_loopback();
        }
        match self.addr.as_ref().and_then(|a| a.ip()) {
            Some(ip) => ip.is_loopback(),
            None => self.addr.is_none(),
        }
    }
}

impl Node {
    fn hello_bytes(&self) -> Bytes {
        Message::Hello {
            id: self.id.clone(),
            name: self.name.clone(),
        }
        .to_bytes()
    }

    /// Listener: the dialer's hello.
    pub(crate) fn on_hello(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Message::Hello { id, name } = msg else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.hello_id = Some(id.clone());
        }
        let reject = if id == self.id {
            // Answer with our own hello so that our dialing side recognises
            // itself and never dials this address again.
            Some((RejectReason::SelfConnection, self.hello_bytes()))
        } else if self.peers.contains_key(&id) {
            Some((RejectReason::Duplicate, Bytes::from_static(b"DUPLICATE\n")))
        } else if self.peers.len() >= self.config.max_peers {
            // Extension (docs/PROTOCOL.md): after MAX_PEERS, point the dialer
            // at other nodes. A reference dialer stops reading at MAX_PEERS.
            let mut refusal = b"MAX_PEERS\n".to_vec();
            let list = self.shareable_addrs(None);
            if !list.is_empty() {
                refusal.extend_from_slice(&crate::codec::peers_line(&list));
            }
            Some((RejectReason::MaxPeers, Bytes::from(refusal)))
        } else {
            None
        };
        if let Some((reason, line)) = reject {
            self.transmit(conn, line);
            self.close_conn(conn);
            self.event(Event::Rejected {
                conn,
                addr: None,
                peer: Some(id),
                by_remote: false,
                reason,
            });
            return;
        }
        let hello = self.hello_bytes();
        self.transmit(conn, hello);
        if self.establish(now, conn, id.clone(), name, false) {
            self.send_peers(conn, &id);
            self.transmit(conn, Bytes::from_static(b"PING\n"));
        }
    }

    /// Dialer: the listener's answer to our hello.
    pub(crate) fn on_hello_reply(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(crate::handshake::ConnState::AwaitHelloReply { addr }) =
            self.conns.get(&conn).map(|c| c.state.clone())
        else {
            return;
        };
        let rejected = |reason| Event::Rejected {
            conn,
            addr: Some(addr.clone()),
            peer: None,
            by_remote: true,
            reason,
        };
        match msg {
            Message::Duplicate => {
                self.close_conn(conn);
                self.event(rejected(RejectReason::Duplicate));
                // The address is alive and reaches a peer we already have.
                self.addrs.on_alive(&addr, now, self.config.peer_timeout);
                self.dial_ended(now, &addr, Ok(()));
            }
            Message::MaxPeers => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.state = ConnState::Refused;
                }
                self.event(rejected(RejectReason::MaxPeers));
                self.dial_ended(now, &addr, Err("MAX_PEERS".into()));
            }
            Message::Hello { id, .. } if id == self.id => {
                self.close_conn(conn);
                self.addrs.mark_ours(&addr);
                self.timers.cancel(&Timer::Dial(addr.clone()));
                self.event(rejected(RejectReason::SelfConnection));
                self.dial_ended(now, &addr, Err("this is our own address".into()));
            }
            Message::Hello { id, .. }
                if self.peers.len() >= self.config.max_peers && !self.peers.contains_key(&id) =>
            {
                // Several of our dials completed at once: keep the limit on
                // this side too.
                self.close_conn(conn);
                self.event(Event::Rejected {
                    conn,
                    addr: Some(addr.clone()),
                    peer: Some(id),
                    by_remote: false,
                    reason: RejectReason::MaxPeers,
                });
                self.addrs
                    .on_alive(&addr, now, self.config.discovery_interval);
                self.dial_ended(now, &addr, Ok(()));
            }
            Message::Hello { id, name } => {
                if self.establish(now, conn, id.clone(), name, true) {
                    self.send_peers(conn, &id);
                    self.transmit(conn, Bytes::from_static(b"REQUEST_PEERS\n"));
                    self.transmit(conn, Bytes::from_static(b"PING\n"));
                }
                self.dial_ended(now, &addr, Ok(()));
            }
            _ => {}
        }
    }

    /// Marks `conn` established for `id`. With a second connection to the
    /// same peer, keeps the one dialed by the smaller id (both sides decide
    /// alike) and drains the other. Returns whether `conn` is the one kept.
    fn establish(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: PeerId,
        name: String,
        outbound: bool,
    ) -> bool {
        let name = match name.trim() {
            "" => id.to_string(),
            n => n.to_owned(),
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        c.state = ConnState::Established {
            peer: id.clone(),
            await_listen: !outbound,
            proven: false,
        };
        c.hello_id = Some(id.clone());
        c.name = Some(name.clone());
        c.opened_at = now;
        c.last_seen = now;
        let addr = c.addr.clone();
        self.timers
            .set(Timer::Conn(conn), now + self.config.connect_timeout);

        if let Some(existing) = self.peers.get(&id).map(|p| p.conn) {
            let dialed_by_smaller = if outbound { self.id < id } else { id < self.id };
            let loser = if dialed_by_smaller {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.conn = conn;
                    p.outbound = outbound;
                    if addr.is_some() {
                        p.addr = addr.clone();
                    }
                }
                existing
            } else {
                conn
            };
            let keeper = if loser == conn { existing } else { conn };
            self.drain(now, loser, keeper);
            self.event(Event::DuplicateRetired {
                peer: id.clone(),
                kept: keeper,
                retired: loser,
            });
            if let Some(a) = &addr {
                self.addrs.on_connected(a, &id);
            }
            return loser != conn;
        }

        self.peers.insert(
            id.clone(),
            Peer {
                conn,
                name,
                addr: addr.clone(),
                outbound,
                announced: false,
            },
        );
        if let Some(a) = &addr {
            self.addrs.on_connected(a, &id);
            self.timers.cancel(&Timer::Dial(a.clone()));
        }
        // A listener announces the peer once its LISTEN line (or whatever
        // comes instead) arrived, so that the event carries its address.
        if outbound {
            self.announce(&id);
        }
        true
    }

    /// Emits `PeerConnected` once per established peer.
    pub(crate) fn announce(&mut self, id: &PeerId) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if std::mem::replace(&mut p.announced, true) {
            return;
        }
        let e = Event::PeerConnected {
            peer: id.clone(),
            name: p.name.clone(),
            addr: p.addr.clone(),
            outbound: p.outbound,
            peers: self.peers.len(),
        };
        self.event(e);
    }

    /// Retires a superseded duplicate without losing what is in flight on
    /// it: nothing more is sent on it, frames arriving on it still count,
    /// and it is half-closed only once the kept connection is proven (the
    /// remote sent a frame after the handshake on it, which it does only
    /// after establishing it and switching to it). Closing earlier can
    /// reach the remote before the kept connection's hello does, and it
    /// would see its only connection to us end. `connect_timeout` bounds
    /// the wait.
    fn drain(&mut self, now: Instant, conn: ConnId, keeper: ConnId) {
        let keeper_proven = matches!(
            self.conns.get(&keeper).map(|k| &k.state),
            Some(ConnState::Established { proven: true, .. })
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.draining = true;
            if keeper_proven {
                self.out.push_back(Output::Close { conn });
            } else {
                c.drain_for = Some(keeper);
            }
            self.timers
                .set(Timer::Conn(conn), now + self.config.connect_timeout);
        }
    }

    /// `keeper` was just proven: half-close the duplicates waiting for it.
    pub(crate) fn keeper_proven(&mut self, keeper: ConnId) {
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.drain_for == Some(keeper))
            .map(|(&id, _)| id)
            .collect();
        for conn in waiting {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.drain_for = None;
            }
            self.out.push_back(Output::Close { conn });
        }
    }

    /// Listener: the dialer's `LISTEN:` line. A loopback, `localhost` or
    /// unspecified host over a connection from another machine is replaced
    /// by the connection's remote IP, with the advertised port.
    pub(crate) fn on_listen(&mut self, now: Instant, conn: ConnId, peer: &PeerId, text: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Ok(mut addr) = Addr::parse(text) else {
            return;
        };
        if let Some(remote) = c.remote {
            if addr.is_local_only() && !remote.ip().is_loopback() {
                addr = Addr::from_socket(SocketAddr::new(remote.ip(), addr.port()));
            }
        }
        if self.addrs.is_ours(&addr) {
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.addr = Some(addr.clone());
        }
        let current = self.peers.get(peer).is_some_and(|p| p.conn == conn);
        if current {
            if let Some(p) = self.peers.get_mut(peer) {
                p.addr = Some(addr.clone());
            }
        }
        let new = self.addrs.learn(&addr);
        self.addrs.on_connected(&addr, peer);
        self.timers.cancel(&Timer::Dial(addr.clone()));
        if new && current {
            self.gossip_addr(peer, &addr);
        }
        let _ = now;
    }
}
