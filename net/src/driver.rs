//! The driver: owns the listener, the connections, the timer and the disk,
//! and pumps the core. Drain outputs, then wait for whichever comes first:
//! a command, a socket event, or the core's next deadline.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use p2p_core::{CloseReason, ConnId, Event, Input, Node, Output, Target, TransferId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::conn::{ConnHandle, SocketEvent};
use crate::disk::{Disk, Done};
use crate::handle::{Command, NetEvent, SwarmCommand};
use crate::storage::Storage;
use crate::transport::{Listener, Transport};
use crate::{NetConfig, NetError, TapEvent};

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
    pub(crate) disk: Disk<S>,
    pub(crate) disk_done: mpsc::UnboundedReceiver<Done>,
    pub(crate) config: NetConfig,
    pub(crate) conns: BTreeMap<ConnId, ConnHandle>,
    pub(crate) dials: BTreeMap<ConnId, AbortHandle>,
    pub(crate) incoming_tx: mpsc::Sender<Incoming<T::Stream>>,
    pub(crate) incoming_rx: mpsc::Receiver<Incoming<T::Stream>>,
    pub(crate) commands: mpsc::Receiver<Command>,
    /// Bounded: when the application reads slowly, events wait in
    /// `backlog` and the connections that caused them stop being read.
    pub(crate) events: mpsc::Sender<NetEvent>,
    pub(crate) backlog: VecDeque<NetEvent>,
    /// Connections whose reading is paused until the backlog and the disk
    /// queue are short again.
    pub(crate) paused: BTreeSet<ConnId>,
    pub(crate) drained: Arc<crate::conn::Drained>,
    /// `send_file` callers waiting for their transfer's end.
    pub(crate) file_waiters: BTreeMap<TransferId, oneshot::Sender<Result<usize, NetError>>>,
    pub(crate) listener: AbortHandle,
    /// When the connections were last scanned for slow readers and
    /// lingering closes, and whether one needs watching.
    pub(crate) swept: Option<(Instant, bool)>,
    /// The running LAN announcement, withdrawn on shutdown.
    pub(crate) lan: Option<Box<dyn crate::LanSession>>,
    /// What the LAN discovery heard.
    pub(crate) lan_rx: mpsc::Receiver<crate::Heard>,
    /// Our network's fingerprint, as announced (`None`: a public mesh).
    pub(crate) lan_network: Option<String>,
}

/// How often the connections are scanned for slow readers and lingering
/// closes: their deadlines are seconds, and a scan per loop turn costs a
/// visit of every connection per received frame (a 200-peer mesh).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

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
            if self.swept.is_none_or(|(at, _)| now >= at + SWEEP_EVERY) {
                self.housekeeping(now);
            }
            let wake = self.next_wake(now);
            let events = self.events.clone();
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
                Some(done) = self.disk_done.recv() => self.on_disk_done(done),
                permit = events.reserve(), if !self.backlog.is_empty() => {
                    if let (Ok(permit), Some(e)) = (permit, self.backlog.pop_front()) {
                        permit.send(e);
                    }
                    self.flush_backlog();
                }
                Some(inc) = self.incoming_rx.recv() => self.on_incoming(inc),
                Some(heard) = self.lan_rx.recv(), if self.lan.is_some() => self.on_heard(heard),
                _ = self.drained.notified() => self.report_flushed(),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// A connection went over its send queue limit or is closing: sweep
    /// every `SWEEP_EVERY` until none is.
    fn watch_conns(&mut self) {
        if let Some((_, watch)) = &mut self.swept {
            *watch = true;
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let core = self
            .node
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(now + Duration::from_secs(3600));
        match self.swept {
            Some((at, true)) => core.min((at + SWEEP_EVERY).max(now)),
            _ => core,
        }
    }

    /// An announcement from the LAN: members of our mesh are handed to the
    /// core (which applies the dial policy), others are ignored, so a
    /// private node never dials outside its network.
    fn on_heard(&mut self, heard: crate::Heard) {
        if !heard.same_network(self.lan_network.as_deref()) {
            tracing::debug!("LAN: ignored {:?}: another network", heard.addrs);
            return;
        }
        let now = Instant::now();
        for addr in heard.addrs {
            let peer = heard.id.clone();
            self.input(now, Input::LanPeer { addr, peer });
        }
    }

    /// Hands an input to the core, showing it to the tap first.
    pub(crate) fn input(&mut self, now: Instant, input: Input) {
        if let Some(tap) = &self.config.tap {
            tap(&TapEvent::Input(&input));
        }
        self.node.handle_input(now_std(now), input);
    }

    /// Hands an event to the application, or to the backlog when its
    /// queue is full (never dropped while the application listens).
    pub(crate) fn emit(&mut self, e: NetEvent) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(e);
            return;
        }
        match self.events.try_send(e) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => self.backlog.push_back(e),
            // Nobody listens any more: nothing to keep.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Moves what fits from the backlog to the application's queue, and
    /// resumes paused connections once there is room again.
    fn flush_backlog(&mut self) {
        while let Some(e) = self.backlog.pop_front() {
            match self.events.try_send(e) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(e)) => {
                    self.backlog.push_front(e);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.backlog.clear(),
            }
        }
        self.resume_if_room();
    }

    /// Whether the event backlog or the disk queue is long: then the
    /// connection whose input made it so is paused.
    fn congested(&self) -> bool {
        !self.backlog.is_empty() || self.disk.pending() > self.config.disk_queue_limit
    }

    /// Resumes paused connections once the shared queues have room and
    /// their own send queue is back under the limit.
    fn resume_if_room(&mut self) {
        if self.paused.is_empty() || self.congested() {
            return;
        }
        let limit = self.config.send_queue_limit;
        let conns = &self.conns;
        self.paused.retain(|conn| match conns.get(conn) {
            Some(c) if c.queued() <= limit => {
                c.resume();
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// Tells the core what the writers flushed, so that file sends pace.
    fn report_flushed(&mut self) {
        let now = Instant::now();
        let flushed: Vec<(ConnId, u64)> = self
            .drained
            .take()
            .into_iter()
            .filter_map(|conn| {
                let c = self.conns.get_mut(&conn)?;
                c.take_flushed().map(|n| (conn, n))
            })
            .collect();
        for (conn, bytes) in flushed {
            self.input(now, Input::Flushed { conn, bytes });
        }
        self.resume_if_room();
    }

    fn on_disk_done(&mut self, done: Done) {
        match done {
            Done::Input(input, bytes) => {
                self.disk.done(bytes);
                self.input(Instant::now(), input);
            }
            Done::Quiet(bytes) => self.disk.done(bytes),
            Done::DiscardedAll => {}
        }
        self.resume_if_room();
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
                        if c.queued() > self.config.send_queue_limit {
                            self.watch_conns();
                        }
                    }
                }
                Output::Dial { conn, addr } => self.dial(conn, addr),
                Output::Close { conn } => {
                    if let Some(d) = self.dials.remove(&conn) {
                        d.abort();
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.close(Instant::now());
                        self.watch_conns();
                    }
                }
                Output::Storage(op) => {
                    if let Some(input) = self.disk.submit(op) {
                        self.input(Instant::now(), input);
                    }
                }
                Output::Event(e) => {
                    self.settle_waiter(&e);
                    if self.config.debug_events || !e.is_debug() {
                        self.emit(NetEvent::Core(e));
                    }
                }
            }
        }
    }

    fn dial(&mut self, conn: ConnId, addr: p2p_core::Addr) {
        let transport = self.transport.clone();
        let tx = self.incoming_tx.clone();
        let timeout = self.node.config().connections.connect_timeout;
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
                            error: e.into(),
                        },
                    ),
                }
            }
            Incoming::Socket(SocketEvent::Received(conn, data)) => {
                if let Some(c) = self.conns.get(&conn) {
                    c.consumed();
                    let (events, disk) = (self.backlog.len(), self.disk.pending());
                    self.input(now, Input::Received { conn, data });
                    self.drain_outputs();
                    // What this connection sent added to a full application
                    // queue or a long disk queue, or it does not read what
                    // we answer (a PING flood from a peer that reads no
                    // PONG): read no more from it until they drain. TCP then
                    // slows that sender, and only it; a peer that only pings
                    // and reads its answers is never held up.
                    let more_events = self.backlog.len() > events;
                    let more_disk = self.disk.pending() > disk
                        && self.disk.pending() > self.config.disk_queue_limit;
                    let unread = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.queued() > self.config.send_queue_limit);
                    if more_events || more_disk || unread {
                        if let Some(c) = self.conns.get(&conn) {
                            c.pause();
                            self.paused.insert(conn);
                        }
                    }
                }
            }
            Incoming::Socket(SocketEvent::Closed(conn, reason)) => {
                // Dropping the handle lets the writer flush and shut down.
                self.paused.remove(&conn);
                if let Some(mut c) = self.conns.remove(&conn) {
                    // The first failure is the one to report.
                    let reason = c.write_failed.take().unwrap_or(reason);
                    self.input(now, Input::Closed { conn, reason });
                }
            }
            Incoming::Socket(SocketEvent::WriteFailed(conn, reason)) => {
                // A peer that closed while we were sending (it quit in the
                // middle of a file) makes our writes fail before its last
                // frames, its goodbye among them, are read: the core hears
                // of the failure when the reader is done, or after the
                // linger if it never is.
                if let Some(c) = self.conns.get_mut(&conn) {
                    if !c.is_closing() {
                        c.write_failed = Some(reason);
                    }
                    c.closing_since.get_or_insert(now);
                    self.watch_conns();
                }
            }
        }
    }

    fn attach(&mut self, conn: ConnId, stream: T::Stream) {
        let handle =
            ConnHandle::spawn(conn, stream, self.incoming_tx.clone(), self.drained.clone());
        self.conns.insert(conn, handle);
    }

    /// A `send_file` caller learns how its transfer ended.
    fn settle_waiter(&mut self, e: &Event) {
        let (transfer, result) = match e {
            Event::FileSent {
                transfer, peers, ..
            } => (*transfer, Ok(*peers)),
            Event::FileSendFailed {
                transfer, error, ..
            } => (*transfer, Err(NetError::Send(error.clone()))),
            _ => return,
        };
        if let Some(w) = self.file_waiters.remove(&transfer) {
            let _ = w.send(result);
        }
    }

    /// Slow readers, lingering closes and waiting file senders.
    fn housekeeping(&mut self, now: Instant) {
        let limit = self.config.send_queue_limit;
        let linger = self.node.config().connections.connect_timeout;
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
        let watch = self
            .conns
            .values()
            .any(|c| c.over_since.is_some() || c.closing_since.is_some());
        self.swept = Some((now, watch));
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
            if let Some(mut c) = self.conns.remove(&conn) {
                c.abort();
                if let Some(reason) = c.write_failed.take() {
                    self.input(now, Input::Closed { conn, reason });
                }
            }
        }
        self.drain_outputs();
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
            Command::SendFile {
                target,
                path,
                name,
                reply,
            } => match self.node.send_file(target, &path, &name) {
                Ok(id) => {
                    self.file_waiters.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(NetError::Command(e)));
                }
            },
            Command::Swarm(cmd, reply) => {
                let node = &mut self.node;
                let r = match cmd {
                    SwarmCommand::Share(path) => node.share(&path).map(|()| None),
                    SwarmCommand::Unshare(id) => node.unshare(&id).map(Some),
                    SwarmCommand::Get(id, dir) => node.get(now, &id, dir).map(Some),
                    SwarmCommand::Offer(path, target) => node.offer(&path, target).map(|()| None),
                    SwarmCommand::Accept(id) => node.accept(now, &id).map(Some),
                    SwarmCommand::Decline(id) => node.decline(&id).map(Some),
                    SwarmCommand::Cancel(id) => node.cancel_download(&id).map(Some),
                };
                let _ = reply.send(r);
            }
            Command::Files(reply) => {
                let _ = reply.send(self.node.files());
            }
            Command::Downloads(reply) => {
                let _ = reply.send(self.node.downloads(now));
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    /// Closes everything gracefully: the core says goodbye, queued bytes
    /// get a short while to flush, part files are removed.
    async fn shutdown(&mut self) {
        // Withdrawn first: nobody should dial a node that is leaving.
        if let Some(lan) = self.lan.take() {
            lan.stop();
        }
        let now = Instant::now();
        self.node.shutdown(now_std(now));
        self.drain_outputs();
        if !self.disk.discard_all() {
            // Everything queued before it runs first; then the part files go.
            while let Some(done) = self.disk_done.recv().await {
                if let Done::DiscardedAll = done {
                    break;
                }
                self.on_disk_done(done);
            }
            self.drain_outputs();
        }
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
        // The application may not be reading: hand it the rest from a task
        // of its own, so that shutdown returns.
        let rest = std::mem::take(&mut self.backlog);
        if !rest.is_empty() {
            let events = self.events.clone();
            tokio::spawn(async move {
                for e in rest {
                    if events.send(e).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}
