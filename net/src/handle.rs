//! The embedding API: start a node, command it through a [`NodeHandle`],
//! read its [`NetEvent`]s.

use std::path::Path;

use bytes::Bytes;
use p2p_core::{CommandError, ContentId, DownloadInfo, Event, Listing, PeerId, PeerInfo, Target};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::disk::Disk;
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
    SendFile {
        target: Target,
        path: String,
        name: String,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    Swarm(
        SwarmCommand,
        oneshot::Sender<Result<Option<ContentId>, CommandError>>,
    ),
    Files(oneshot::Sender<Vec<Listing>>),
    Downloads(oneshot::Sender<Vec<DownloadInfo>>),
    Shutdown(oneshot::Sender<()>),
}

/// The swarm commands, each one call of the core.
pub(crate) enum SwarmCommand {
    Share(String),
    Unshare(String),
    Get(String, Option<String>),
    Offer(String, Target),
    Accept(String),
    Decline(String),
    Cancel(String),
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
    /// The node stopped.
    Stopped,
}

/// The events of a node, in order. Bounded (`NetConfig::event_queue`) and
/// never dropping one: when they are not read, the node stops reading from
/// the peers whose traffic produces them, and TCP slows those peers down.
#[derive(Debug)]
pub struct Events(mpsc::Receiver<NetEvent>);

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
    id: PeerId,
    name: String,
    local_addr: std::net::SocketAddr,
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
    // One high-water mark: file sends wait above it, slow readers are
    // judged above it.
    config.core.files.send_window = config.send_queue_limit as u64;
    let now = tokio::time::Instant::now().into_std();
    let mut node = p2p_core::Node::new(config.core.clone(), config.seed, now);
    for addr in &config.bootstrap {
        node.bootstrap(now, addr).map_err(NetError::Command)?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(config.event_queue.max(1));
    let (in_tx, in_rx) = mpsc::channel(256);
    let listener_task = spawn_listener(listener, in_tx.clone());
    let _ = ev_tx.try_send(NetEvent::Listening {
        addr: local_addr,
        id: node.id().clone(),
        name: node.name().to_owned(),
    });
    let handle = NodeHandle {
        commands: cmd_tx,
        id: node.id().clone(),
        name: node.name().to_owned(),
        local_addr,
    };
    let (lan_tx, lan_rx) = mpsc::channel(64);
    let lan_network = config
        .core
        .session
        .network_key
        .as_ref()
        .map(p2p_core::network_fingerprint);
    let lan = match &config.lan {
        Some(lan) => {
            let me = crate::Announcement {
                id: node.id().to_string(),
                name: node.name().to_owned(),
                port: local_addr.port(),
                network: lan_network.clone(),
            };
            Some(lan.start(me, lan_tx)?)
        }
        None => None,
    };
    let (disk, disk_done) = Disk::start(storage);
    let driver = Driver {
        node,
        transport,
        disk,
        disk_done,
        config,
        conns: Default::default(),
        dials: Default::default(),
        incoming_tx: in_tx,
        incoming_rx: in_rx,
        commands: cmd_rx,
        events: ev_tx,
        backlog: Default::default(),
        paused: Default::default(),
        drained: Default::default(),
        file_waiters: Default::default(),
        listener: listener_task,
        swept: None,
        lan,
        lan_rx,
        lan_network,
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

    /// Sends a file to every peer or one, and waits until it was handed to
    /// all of them. The node reads it through its storage (off the driver
    /// task for the disk) twice, once to hash it (`FILESTART` carries the
    /// checksum) and once to send it, one chunk at a time, so memory does
    /// not grow with the file; chunks are paced by the slowest target's
    /// send queue. Progress arrives as `FileSend*` events of the core.
    /// Returns how many peers got all of it.
    pub async fn send_file(&self, path: &Path, target: Target) -> Result<usize, NetError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| NetError::File(format!("{}: no usable file name", path.display())))?
            .to_owned();
        let path = path
            .to_str()
            .ok_or_else(|| NetError::File(format!("{}: not a UTF-8 path", path.display())))?
            .to_owned();
        self.ask(|reply| Command::SendFile {
            target,
            path,
            name,
            reply,
        })
        .await?
    }

    async fn swarm(&self, cmd: SwarmCommand) -> Result<Option<ContentId>, NetError> {
        self.ask(|r| Command::Swarm(cmd, r))
            .await?
            .map_err(NetError::Command)
    }

    /// Shares a file or a directory tree (symlinks are not followed): it is
    /// hashed off the driver task (or its manifest from an earlier run is
    /// reused if no file changed size or time), then
    /// [`Event::Shared`] reports its id and peers that speak `swarm/1` are
    /// told.
    pub async fn share(&self, path: &Path) -> Result<(), NetError> {
        self.swarm(SwarmCommand::Share(utf8(path)?))
            .await
            .map(|_| ())
    }

    /// Stops sharing content (`id`: 64 hex digits or a unique prefix of 8 or more).
    pub async fn unshare(&self, id: &str) -> Result<ContentId, NetError> {
        self.swarm(SwarmCommand::Unshare(id.to_owned()))
            .await
            .map(expect_id)
    }

    /// Everything the mesh offers, with how many peers hold each.
    pub async fn files(&self) -> Result<Vec<Listing>, NetError> {
        self.ask(Command::Files).await
    }

    /// Downloads content by id from every peer that holds it, into the
    /// downloads directory or `dir`. Returns once it started; progress and
    /// the end arrive as `Download*` events.
    pub async fn get(&self, id: &str, dir: Option<&Path>) -> Result<ContentId, NetError> {
        let dir = dir.map(utf8).transpose()?;
        self.swarm(SwarmCommand::Get(id.to_owned(), dir))
            .await
            .map(expect_id)
    }

    /// Offers a file or tree (shared first if it is not) to one peer or all.
    pub async fn offer(&self, path: &Path, target: Target) -> Result<(), NetError> {
        self.swarm(SwarmCommand::Offer(utf8(path)?, target))
            .await
            .map(|_| ())
    }

    /// Accepts an offer (a download from the offerer and every other holder).
    pub async fn accept(&self, id: &str) -> Result<ContentId, NetError> {
        self.swarm(SwarmCommand::Accept(id.to_owned()))
            .await
            .map(expect_id)
    }

    /// Declines an offer; the offerer is told.
    pub async fn decline(&self, id: &str) -> Result<ContentId, NetError> {
        self.swarm(SwarmCommand::Decline(id.to_owned()))
            .await
            .map(expect_id)
    }

    /// Cancels a download and deletes what it fetched.
    pub async fn cancel_download(&self, id: &str) -> Result<ContentId, NetError> {
        self.swarm(SwarmCommand::Cancel(id.to_owned()))
            .await
            .map(expect_id)
    }

    /// Downloads in progress.
    pub async fn downloads(&self) -> Result<Vec<DownloadInfo>, NetError> {
        self.ask(Command::Downloads).await
    }

    /// Closes every connection, removes unfinished part files, stops.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.ask(Command::Shutdown).await
    }
}

fn utf8(path: &Path) -> Result<String, NetError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| NetError::File(format!("{}: not a UTF-8 path", path.display())))
}

/// The commands that name content answer with its id.
fn expect_id(id: Option<ContentId>) -> ContentId {
    // Invariant: the driver answers every id-returning command with Some.
    id.unwrap_or(ContentId([0; 32]))
}
