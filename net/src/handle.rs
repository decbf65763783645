//! The embedding API: start a node, command it through a [`NodeHandle`],
//! read its [`NetEvent`]s.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use p2p_core::{CommandError, Event, PeerId, PeerInfo, Target, TransferId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::driver::{spawn_listener, Driver};
use crate::storage::Storage;
use crate::transport::{Listener, Transport};

use crate::{NetConfig, NetError};

pub(crate) enum Command {
    Connect(String, oneshot::Sender<Result<(), CommandError>>),
    Bootstrap(String, oneshot::Sender<Result<(), CommandError>>),
    Discover,
    Chat(Target, String, oneshot::Sender<Result<usize, CommandError>>),
    Bytes(Target, Bytes, oneshot::Sender<Result<usize, CommandError>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    StartFile {
        target: Target,
        name: String,
        size: u64,
        sha256: [u8; 32],
        reply: oneshot::Sender<Result<(TransferId, usize), CommandError>>,
    },
    FileChunk {
        id: TransferId,
        data: Bytes,
        reply: oneshot::Sender<Result<usize, CommandError>>,
    },
    FinishFile {
        id: TransferId,
        reply: oneshot::Sender<Result<usize, CommandError>>,
    },
    AbortFile(TransferId),
    WaitCapacity(TransferId, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// What a running node reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetEvent {
    /// The listener is up.
    Listening {
        /// Where.
        addr: std::net::SocketAddr,
        /// Our id.
        id: PeerId,
        /// Our name.
        name: String,
    },
    /// An event of the protocol core.
    Core(Event),
    /// Sending a file began (`FILESTART` went out).
    FileSendStarted {
        /// The transfer.
        transfer: TransferId,
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Peers it goes to.
        peers: usize,
    },
    /// Bytes of an outgoing file were queued (about one event per percent).
    FileSendProgress {
        /// The transfer.
        transfer: TransferId,
        /// File name.
        name: String,
        /// Bytes queued so far.
        sent: u64,
        /// Size in bytes.
        size: u64,
    },
    /// An outgoing file was handed to every peer (`FILEEND` queued).
    FileSent {
        /// The transfer.
        transfer: TransferId,
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Peers that got all of it.
        peers: usize,
    },
    /// Sending a file failed.
    FileSendFailed {
        /// File name.
        name: String,
        /// Why.
        error: String,
    },
    /// The node stopped.
    Stopped,
}

/// The events of a node, in order. Never drops one: if nobody reads them
/// they accumulate.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<NetEvent>);

impl Events {
    /// The next event; `None` once the node stopped and all were read.
    pub async fn next(&mut self) -> Option<NetEvent> {
        self.0.recv().await
    }

    /// An event if one is ready.
    pub fn try_next(&mut self) -> Option<NetEvent> {
        self.0.try_recv().ok()
    }
}

/// Commands a running node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedSender<NetEvent>,
    storage_open: Opener,
    id: PeerId,
    name: String,
    local_addr: std::net::SocketAddr,
    chunk_size: usize,
}

/// Opens files to send through the node's [`Storage`].
#[derive(Clone)]
struct Opener(Arc<OpenFn>);

type OpenFn = dyn Fn(&Path) -> std::io::Result<crate::storage::Source> + Send + Sync;

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

/// Starts a node: binds its listener, then runs the driver in a task.
/// Bootstrap addresses in `config.bootstrap` are dialed with retries.
pub async fn start<T: Transport, S: Storage>(
    mut config: NetConfig,
    transport: T,
    storage: S,
) -> Result<(NodeHandle, Events), NetError> {
    let listener = transport
        .bind(config.core.listen_port)
        .await
        .map_err(|e| NetError::Bind {
            port: config.core.listen_port,
            error: e.to_string(),
        })?;
    let local_addr = listener.local_addr().map_err(|e| NetError::Bind {
        port: config.core.listen_port,
        error: e.to_string(),
    })?;
    config.core.listen_port = local_addr.port();
    let now = tokio::time::Instant::now().into_std();
    let mut node = p2p_core::Node::new(config.core.clone(), config.seed, now);
    for addr in &config.bootstrap {
        node.bootstrap(now, addr).map_err(NetError::Command)?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(256);
    let listener_task = spawn_listener(listener, in_tx.clone());
    let _ = ev_tx.send(NetEvent::Listening {
        addr: local_addr,
        id: node.id().clone(),
        name: node.name().to_owned(),
    });
    let handle = NodeHandle {
        commands: cmd_tx,
        events: ev_tx.clone(),
        storage_open: {
            let s = storage.clone();
            Opener(Arc::new(move |p: &Path| s.open(p)))
        },
        id: node.id().clone(),
        name: node.name().to_owned(),
        local_addr,
        chunk_size: config.core.chunk_size.max(1),
    };
    let driver = Driver {
        node,
        transport,
        storage,
        config,
        conns: Default::default(),
        dials: Default::default(),
        incoming_tx: in_tx,
        incoming_rx: in_rx,
        commands: cmd_rx,
        events: ev_tx,
        drained: Arc::new(Notify::new()),
        waiters: Vec::new(),
        failed: Default::default(),
        listener: listener_task,
    };
    tokio::spawn(driver.run());
    Ok((handle, Events(ev_rx)))
}

impl NodeHandle {
    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Our id.
    pub fn id(&self) -> &PeerId {
        &self.id
    }

    /// Our name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listener's address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// Dials `addr` once.
    pub async fn connect(&self, addr: &str) -> Result<(), NetError> {
        let addr = addr.to_owned();
        self.ask(|r| Command::Connect(addr, r))
            .await?
            .map_err(NetError::Command)
    }

    /// Dials `addr` with the bootstrap retry schedule.
    pub async fn bootstrap(&self, addr: &str) -> Result<(), NetError> {
        let addr = addr.to_owned();
        self.ask(|r| Command::Bootstrap(addr, r))
            .await?
            .map_err(NetError::Command)
    }

    /// Asks every peer for addresses now.
    pub async fn discover(&self) -> Result<(), NetError> {
        self.commands
            .send(Command::Discover)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Broadcasts a chat line; returns how many peers it went to.
    pub async fn chat(&self, text: &str) -> Result<usize, NetError> {
        let text = text.to_owned();
        self.ask(|r| Command::Chat(Target::All, text, r))
            .await?
            .map_err(NetError::Command)
    }

    /// Sends a chat line to one peer.
    pub async fn chat_to(&self, peer: &PeerId, text: &str) -> Result<(), NetError> {
        let (peer, text) = (peer.clone(), text.to_owned());
        self.ask(|r| Command::Chat(Target::Peer(peer), text, r))
            .await?
            .map(|_| ())
            .map_err(NetError::Command)
    }

    /// Broadcasts a binary message (one shared buffer for all peers).
    pub async fn broadcast_bytes(&self, data: Bytes) -> Result<usize, NetError> {
        self.ask(|r| Command::Bytes(Target::All, data, r))
            .await?
            .map_err(NetError::Command)
    }

    /// Sends a binary message to one peer.
    pub async fn send_bytes(&self, peer: &PeerId, data: Bytes) -> Result<(), NetError> {
        let peer = peer.clone();
        self.ask(|r| Command::Bytes(Target::Peer(peer), data, r))
            .await?
            .map(|_| ())
            .map_err(NetError::Command)
    }

    /// Established peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Sends a file to every peer or one. Reads it twice (once to hash, as
    /// `FILESTART` carries the checksum, once to send), one chunk at a time,
    /// so memory does not grow with the file. Paced by the slowest target's
    /// send queue. Returns how many peers got all of it.
    pub async fn send_file(&self, path: &Path, target: Target) -> Result<usize, NetError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| NetError::File(format!("{}: no usable file name", path.display())))?
            .to_owned();
        let result = self.send_file_inner(path, &name, target).await;
        if let Err(e) = &result {
            let _ = self.events.send(NetEvent::FileSendFailed {
                name,
                error: e.to_string(),
            });
        }
        result
    }

    async fn send_file_inner(
        &self,
        path: &Path,
        name: &str,
        target: Target,
    ) -> Result<usize, NetError> {
        let io_err = |e: std::io::Error| NetError::File(format!("{}: {e}", path.display()));
        // Pass 1: the checksum.
        let (size, mut reader) = (self.storage_open.0)(path).map_err(io_err)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; self.chunk_size];
        let mut total = 0u64;
        loop {
            let n = read_full(&mut reader, &mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            tokio::task::yield_now().await;
        }
        if total != size {
            return Err(NetError::File(format!(
                "{}: changed while hashing",
                path.display()
            )));
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        drop(buf);

        // Pass 2: the frames.
        let (id, peers) = self
            .ask(|reply| Command::StartFile {
                target,
                name: name.to_owned(),
                size,
                sha256,
                reply,
            })
            .await?
            .map_err(NetError::Command)?;
        let _ = self.events.send(NetEvent::FileSendStarted {
            transfer: id,
            name: name.to_owned(),
            size,
            peers,
        });
        let (_, mut reader) = (self.storage_open.0)(path).map_err(io_err)?;
        let mut sent = 0u64;
        let mut last_percent = 0;
        while sent < size {
            let want = (size - sent).min(self.chunk_size as u64) as usize;
            let mut chunk = BytesMut::zeroed(want);
            let n = read_full(&mut reader, &mut chunk).map_err(io_err)?;
            if n != want {
                self.commands.send(Command::AbortFile(id)).await.ok();
                return Err(NetError::File(format!(
                    "{}: shrank while sending",
                    path.display()
                )));
            }
            self.ask(|r| Command::WaitCapacity(id, r)).await?;
            let reached = self
                .ask(|reply| Command::FileChunk {
                    id,
                    data: chunk.freeze(),
                    reply,
                })
                .await?
                .map_err(NetError::Command)?;
            sent += n as u64;
            if reached == 0 {
                self.commands.send(Command::AbortFile(id)).await.ok();
                return Err(NetError::File("every receiving peer disconnected".into()));
            }
            let percent = sent * 100 / size.max(1);
            if percent > last_percent {
                last_percent = percent;
                let _ = self.events.send(NetEvent::FileSendProgress {
                    transfer: id,
                    name: name.to_owned(),
                    sent,
                    size,
                });
            }
        }
        let peers = self
            .ask(|reply| Command::FinishFile { id, reply })
            .await?
            .map_err(NetError::Command)?;
        let _ = self.events.send(NetEvent::FileSent {
            transfer: id,
            name: name.to_owned(),
            size,
            peers,
        });
        Ok(peers)
    }

    /// Closes every connection, removes unfinished part files, stops.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.ask(Command::Shutdown).await
    }
}

fn read_full(r: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
