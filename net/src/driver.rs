//! The driver: owns the listener, the connections, the timer and the disk,
//! and pumps the core. Drain outputs, then wait for whichever comes first:
//! a command, a socket event, or the core's next deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use p2p_core::{CloseReason, ConnId, Input, Node, Output, StorageOp, Target, TransferId};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::conn::{ConnHandle, SocketEvent};
use crate::handle::{Command, NetEvent};
use crate::storage::Storage;
use crate::transport::{Listener, Transport};
use crate::{NetConfig, TapEvent};

/// Things that happen on sockets, funnelled into one bounded channel: when
/// the driver is busy, readers wait and TCP pushes back on the senders.
pub(crate) enum Incoming<St> {
    Accepted(St, std::net::SocketAddr),
    Dialed(ConnId, std::io::Result<(St, Option<std::net::SocketAddr>)>),
    Socket(SocketEvent),
}

pub(crate) struct Driver<T: Transport, S: Storage> {
    pub(crate) node: Node,
    pub(crate) transport: T,
    pub(crate) storage: S,
    pub(crate) config: NetConfig,
    pub(crate) conns: BTreeMap<ConnId, ConnHandle>,
    pub(crate) dials: BTreeMap<ConnId, AbortHandle>,
    pub(crate) incoming_tx: mpsc::Sender<Incoming<T::Stream>>,
    pub(crate) incoming_rx: mpsc::Receiver<Incoming<T::Stream>>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::UnboundedSender<NetEvent>,
    pub(crate) drained: Arc<Notify>,
    /// File senders waiting for their peers' queues to drain.
    pub(crate) waiters: Vec<(TransferId, oneshot::Sender<()>)>,
    /// Incoming transfers whose storage failed: skip their remaining ops.
    pub(crate) failed: std::collections::BTreeSet<TransferId>,
    pub(crate) listener: AbortHandle,
}

impl<St> From<SocketEvent> for Incoming<St> {
    fn from(e: SocketEvent) -> Self {
        Incoming::Socket(e)
    }
}

/// The core's clock is `std::time::Instant`; ours is tokio's (which the
/// simulator controls).
pub(crate) fn now_std(now: Instant) -> std::time::Instant {
    now.into_std()
}

pub(crate) fn spawn_listener<L, St>(mut listener: L, tx: mpsc::Sender<Incoming<St>>) -> AbortHandle
where
    L: Listener<Stream = St>,
    St: Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((s, remote)) => {
                    if tx.send(Incoming::Accepted(s, remote)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .abort_handle()
}

impl<T: Transport, S: Storage> Driver<T, S> {
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            if self.node.poll_timeout().is_some_and(|t| t <= now_std(now)) {
                self.node.handle_timeout(now_std(now));
            }
            self.drain_outputs();
            self.housekeeping(now);
            let wake = self.next_wake(now);
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(inc) = self.incoming_rx.recv() => self.on_incoming(inc),
                _ = self.drained.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let core = self
            .node
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(now + Duration::from_secs(3600));
        let busy = !self.waiters.is_empty()
            || self
                .conns
                .values()
                .any(|c| c.over_since.is_some() || c.closing_since.is_some());
        if busy {
            core.min(now + Duration::from_millis(250))
        } else {
            core
        }
    }

    /// Hands an input to the core, showing it to the tap first.
    pub(crate) fn input(&mut self, now: Instant, input: Input) {
        if let Some(tap) = &self.config.tap {
            tap(&TapEvent::Input(&input));
        }
        self.node.handle_input(now_std(now), input);
    }

    pub(crate) fn emit(&self, e: NetEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn drain_outputs(&mut self) {
        while let Some(out) = self.node.poll_output() {
            if let Some(tap) = &self.config.tap {
                tap(&TapEvent::Output(&out));
            }
            match out {
                Output::Transmit { conn, data } => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.send(data);
                    }
                }
                Output::Dial { conn, addr } => self.dial(conn, addr),
                Output::Close { conn } => {
                    if let Some(d) = self.dials.remove(&conn) {
                        d.abort();
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.close(Instant::now());
                    }
                }
                Output::Storage(op) => self.on_storage(op),
                Output::Event(e) => self.emit(NetEvent::Core(e)),
            }
        }
    }

    fn dial(&mut self, conn: ConnId, addr: p2p_core::Addr) {
        let transport = self.transport.clone();
        let tx = self.incoming_tx.clone();
        let timeout = self.node.config().connect_timeout;
        let task = tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, transport.connect(&addr)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )),
            };
            let _ = tx.send(Incoming::Dialed(conn, result)).await;
        });
        self.dials.insert(conn, task.abort_handle());
    }

    fn on_incoming(&mut self, inc: Incoming<T::Stream>) {
        let now = Instant::now();
        match inc {
            Incoming::Accepted(stream, remote) => {
                let conn = self.node.handle_accept(now_std(now), Some(remote));
                if let Some(tap) = &self.config.tap {
                    tap(&TapEvent::Accepted { conn, remote });
                }
                self.attach(conn, stream);
            }
            Incoming::Dialed(conn, result) => {
                if self.dials.remove(&conn).is_none() {
                    return; // Given up on meanwhile.
                }
                match result {
                    Ok((stream, local)) => {
                        self.attach(conn, stream);
                        self.input(now, Input::Connected { conn, local });
                    }
                    Err(e) => self.input(
                        now,
                        Input::DialFailed {
                            conn,
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            Incoming::Socket(SocketEvent::Received(conn, data)) => {
                if self.conns.contains_key(&conn) {
                    self.input(now, Input::Received { conn, data });
                }
            }
            Incoming::Socket(SocketEvent::Closed(conn, reason)) => {
                // Dropping the handle lets the writer flush and shut down.
                if self.conns.remove(&conn).is_some() {
                    self.input(now, Input::Closed { conn, reason });
                }
            }
        }
    }

    fn attach(&mut self, conn: ConnId, stream: T::Stream) {
        let handle =
            ConnHandle::spawn(conn, stream, self.incoming_tx.clone(), self.drained.clone());
        self.conns.insert(conn, handle);
    }

    fn on_storage(&mut self, op: StorageOp) {
        let now = Instant::now();
        let (transfer, result) = match op {
            StorageOp::Create { transfer, part } => {
                self.failed.remove(&transfer);
                (
                    transfer,
                    self.storage.create(transfer, &part).map(|()| None),
                )
            }
            StorageOp::Write { transfer, data } => {
                if self.failed.contains(&transfer) {
                    return;
                }
                (transfer, self.storage.write(transfer, &data).map(|()| None))
            }
            StorageOp::Commit { transfer, name } => {
                if self.failed.contains(&transfer) {
                    return;
                }
                (transfer, self.storage.commit(transfer, &name).map(Some))
            }
            StorageOp::Discard { transfer } => {
                self.failed.remove(&transfer);
                if let Err(e) = self.storage.discard(transfer) {
                    tracing::warn!("could not delete the part file of {transfer}: {e}");
                }
                return;
            }
        };
        match result {
            Ok(None) => {}
            Ok(Some(saved_as)) => self.input(now, Input::Committed { transfer, saved_as }),
            Err(e) => {
                self.failed.insert(transfer);
                self.input(
                    now,
                    Input::StorageFailed {
                        transfer,
                        error: e.to_string(),
                    },
                );
            }
        }
    }

    /// Slow readers, lingering closes and waiting file senders.
    fn housekeeping(&mut self, now: Instant) {
        let limit = self.config.send_queue_limit;
        let linger = self.node.config().connect_timeout;
        let mut slow = Vec::new();
        let mut gone = Vec::new();
        for (&conn, c) in self.conns.iter_mut() {
            let queued = c.queued();
            if queued > limit && !c.is_closing() {
                let since = *c.over_since.get_or_insert(now);
                if now - since >= self.config.slow_reader_timeout {
                    slow.push((conn, queued));
                }
            } else {
                c.over_since = None;
            }
            if c.closing_since.is_some_and(|t| now - t >= linger) {
                gone.push(conn);
            }
        }
        for (conn, queued) in slow {
            if let Some(c) = self.conns.remove(&conn) {
                c.abort();
                tracing::warn!("{conn}: peer not reading, {queued} bytes queued; disconnecting");
                let reason = CloseReason::SlowReader {
                    queued: queued as u64,
                };
                self.input(now, Input::Closed { conn, reason });
            }
        }
        for conn in gone {
            if let Some(c) = self.conns.remove(&conn) {
                c.abort();
            }
        }
        if !self.waiters.is_empty() {
            let waiters = std::mem::take(&mut self.waiters);
            for (id, reply) in waiters {
                if self.has_capacity(id) {
                    let _ = reply.send(());
                } else {
                    self.waiters.push((id, reply));
                }
            }
        }
        self.drain_outputs();
    }

    /// Whether every peer a file goes to is at or below the high-water mark.
    /// The next chunk then takes a stalled peer above it, where the slow
    /// reader check sees it: the two use one threshold so that a stalled
    /// peer cannot park a send forever in between.
    pub(crate) fn has_capacity(&self, id: TransferId) -> bool {
        let Some(targets) = self.node.file_targets(id) else {
            return true;
        };
        let limit = self.config.send_queue_limit;
        let peers: BTreeMap<_, _> = self.node.peers().map(|p| (p.id, p.conn)).collect();
        targets
            .iter()
            .filter_map(|p| peers.get(p))
            .filter_map(|conn| self.conns.get(conn))
            .all(|c| c.queued() <= limit)
    }

    fn on_command(&mut self, cmd: Command) {
        let now = now_std(Instant::now());
        match cmd {
            Command::Connect(addr, reply) => {
                let _ = reply.send(self.node.connect(now, &addr));
            }
            Command::Bootstrap(addr, reply) => {
                let _ = reply.send(self.node.bootstrap(now, &addr));
            }
            Command::Discover => self.node.discover(now),
            Command::Chat(target, text, reply) => {
                let r = match target {
                    Target::All => self.node.broadcast_chat(&text),
                    Target::Peer(p) => self.node.send_chat(&p, &text).map(|()| 1),
                };
                let _ = reply.send(r);
            }
            Command::Bytes(target, data, reply) => {
                let r = match target {
                    Target::All => self.node.broadcast_bytes(data),
                    Target::Peer(p) => self.node.send_bytes(&p, data).map(|()| 1),
                };
                let _ = reply.send(r);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.node.peers().collect());
            }
            Command::StartFile {
                target,
                name,
                size,
                sha256,
                reply,
            } => {
                let r = self.node.start_file(target, &name, size, sha256).map(|id| {
                    let n = self.node.file_targets(id).map_or(0, <[_]>::len);
                    (id, n)
                });
                let _ = reply.send(r);
            }
            Command::FileChunk { id, data, reply } => {
                let _ = reply.send(self.node.send_file_chunk(id, data));
            }
            Command::FinishFile { id, reply } => {
                let _ = reply.send(self.node.finish_file(id));
            }
            Command::AbortFile(id) => {
                self.node.abort_file(id);
            }
            Command::WaitCapacity(id, reply) => {
                if self.has_capacity(id) {
                    let _ = reply.send(());
                } else {
                    self.waiters.push((id, reply));
                }
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    /// Closes everything gracefully: the core says goodbye, queued bytes
    /// get a short while to flush, part files are removed.
    async fn shutdown(&mut self) {
        let now = Instant::now();
        self.node.shutdown(now_std(now));
        self.drain_outputs();
        self.storage.discard_all();
        self.listener.abort();
        let deadline = now + Duration::from_secs(2);
        while Instant::now() < deadline && self.conns.values().any(|c| c.queued() > 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (_, d) in std::mem::take(&mut self.dials) {
            d.abort();
        }
        for (_, c) in std::mem::take(&mut self.conns) {
            c.abort();
        }
        self.emit(NetEvent::Stopped);
    }
}
