//! What goes into a [`Node`](crate::Node) and what comes out of it: the
//! driver's contract. Components queue their outputs in an [`Outbox`]; the
//! node drains every component's outbox right after calling it, so outputs
//! leave in the order they were caused (a hello before the `PEERS` line that
//! follows it, a `PONG` between the two chat lines around its `PING`).

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::event::{CloseReason, StorageOp};
use crate::swarm::ContentId;
use crate::{Addr, ConnId, Event, IoError, PeerId, TransferId};

/// Something that happened outside the node: reported by the driver.
#[derive(Debug, Clone)]
pub enum Input {
    /// A dial from [`Output::Dial`] connected. `local` is our end of the
    /// socket, used to advertise a reachable address.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Our local socket address, if known.
        local: Option<SocketAddr>,
    },
    /// A dial from [`Output::Dial`] failed.
    DialFailed {
        /// The connection.
        conn: ConnId,
        /// What went wrong.
        error: IoError,
    },
    /// Bytes arrived on a connection.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// A connection's read side ended, or the connection broke.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// A [`StorageOp::Commit`] succeeded.
    Committed {
        /// The transfer.
        transfer: TransferId,
        /// Where the file was stored (display form).
        saved_as: String,
    },
    /// A [`StorageOp::Open`] succeeded: the file has `size` bytes.
    Opened {
        /// The outgoing transfer.
        transfer: TransferId,
        /// Its size.
        size: u64,
    },
    /// A [`StorageOp::Read`] completed.
    Read {
        /// The outgoing transfer.
        transfer: TransferId,
        /// The offset asked.
        offset: u64,
        /// The bytes (shorter than asked only if the file shrank).
        data: Bytes,
    },
    /// `bytes` of what was transmitted on `conn` left the driver's send
    /// queue. The node paces file sends by what is still queued.
    Flushed {
        /// The connection.
        conn: ConnId,
        /// Bytes written since the last report.
        bytes: u64,
    },
    /// A peer announced itself on the local network (mDNS, or the
    /// simulator's LAN). Its address is dialed under the same policy,
    /// backoff and self-detection as an address from `PEERS`; an id that
    /// is ours or an established peer's is not dialed.
    LanPeer {
        /// Where it listens (`host:port`).
        addr: String,
        /// The id it announced, if any.
        peer: Option<String>,
    },
    /// [`StorageOp::Share`] hashed `path`: its canonical manifest.
    Shared {
        /// The path as given.
        path: String,
        /// The canonical manifest ([`Manifest::encode`](crate::Manifest::encode)).
        manifest: Bytes,
    },
    /// [`StorageOp::Share`] failed.
    ShareFailed {
        /// The path as given.
        path: String,
        /// Why.
        error: IoError,
    },
    /// [`StorageOp::OpenPartial`] succeeded: the chunks the partial's record
    /// claims (the core reads and verifies them before counting them).
    PartialOpened {
        /// The content.
        content: ContentId,
        /// Chunk indices the record lists.
        claimed: Vec<u32>,
    },
    /// [`StorageOp::ScanPartials`]: what an earlier run left: partial
    /// downloads to resume and the paths it shared, to share again.
    PartialsFound {
        /// Each one's manifest and target directory.
        partials: Vec<(Bytes, Option<String>)>,
        /// Paths shared when the earlier run ended (by `share` or as a
        /// committed download); each is shared again, hashed only if its
        /// files changed.
        shares: Vec<String>,
    },
    /// A [`StorageOp::ReadChunk`] completed.
    ChunkRead {
        /// The read it answers.
        read: u64,
        /// The bytes (shorter than the chunk only if a file shrank).
        data: Bytes,
    },
    /// A [`StorageOp::ReadChunk`] failed.
    ChunkReadFailed {
        /// The read it answers.
        read: u64,
        /// Why.
        error: IoError,
        /// A shared file changed or vanished since it was hashed.
        changed: bool,
    },
    /// A storage operation of a download failed (open, write, checkpoint,
    /// commit): the download fails, its verified chunks stay on disk.
    SwarmStorageFailed {
        /// The content.
        content: ContentId,
        /// Why.
        error: IoError,
    },
    /// [`StorageOp::CommitDownload`] succeeded.
    DownloadCommitted {
        /// The content.
        content: ContentId,
        /// Where it is now (display form).
        path: String,
    },
    /// A [`StorageOp`] for this transfer failed.
    StorageFailed {
        /// The transfer.
        transfer: TransferId,
        /// The error.
        error: IoError,
    },
}

/// Something the driver must do, drained with [`Node::poll_output`](crate::Node::poll_output).
#[derive(Debug, Clone)]
pub enum Output {
    /// Write `data` on `conn`, after everything queued before it.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes; a broadcast shares one buffer across connections.
        data: Bytes,
    },
    /// Open a connection to `addr`, then report [`Input::Connected`] or
    /// [`Input::DialFailed`] for `conn`.
    Dial {
        /// The handle the node gave this connection.
        conn: ConnId,
        /// Where to.
        addr: Addr,
    },
    /// Flush what is queued on `conn`, shut its write side, keep feeding
    /// what still arrives until the remote closes, then report
    /// [`Input::Closed`] (late data matters when two simultaneous
    /// connections are merged into one).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A file operation in the downloads directory.
    Storage(StorageOp),
    /// Something for the application.
    Event(Event),
}

/// Who a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every established peer.
    All,
    /// One peer.
    Peer(PeerId),
}

/// A component's queue of outputs.
#[derive(Debug, Default)]
pub(crate) struct Outbox(VecDeque<Output>);

impl Outbox {
    pub(crate) fn push(&mut self, out: Output) {
        self.0.push_back(out);
    }

    pub(crate) fn transmit(&mut self, conn: ConnId, data: Bytes) {
        self.0.push_back(Output::Transmit { conn, data });
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.0.push_back(Output::Event(event));
    }

    pub(crate) fn close(&mut self, conn: ConnId) {
        self.0.push_back(Output::Close { conn });
    }

    /// The queue itself, for parts that push into a `VecDeque`.
    pub(crate) fn queue(&mut self) -> &mut VecDeque<Output> {
        &mut self.0
    }

    /// Moves everything queued to the end of `to`.
    pub(crate) fn drain_into(&mut self, to: &mut VecDeque<Output>) {
        to.append(&mut self.0);
    }
}
