//! What the node tells the application and the driver.

use bytes::Bytes;
use serde::{Serialize, Serializer};

use std::collections::BTreeMap;

use crate::swarm::{ContentId, DownloadFailure, UnshareReason};
use crate::{Addr, ConnId, DialFailure, IoError, PeerId, ProtocolError, SendFailure, TransferId};

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A handshake completed: the peer is established.
    PeerConnected {
        /// Its id.
        peer: PeerId,
        /// Its display name.
        name: String,
        /// Its listening address, if known.
        addr: Option<Addr>,
        /// Whether we dialed it.
        outbound: bool,
        /// Established peers now.
        peers: usize,
    },
    /// An established peer went away.
    PeerDisconnected {
        /// Its id.
        peer: PeerId,
        /// Its display name.
        name: String,
        /// Why.
        reason: DisconnectReason,
        /// Established peers now.
        peers: usize,
    },
    /// A connection was refused during the handshake (by us or by them).
    Rejected {
        /// The connection.
        conn: ConnId,
        /// The address we dialed, or the remote's advertised address.
        addr: Option<Addr>,
        /// The peer, if its hello arrived.
        peer: Option<PeerId>,
        /// Whether the remote refused us (`true`) or we refused it.
        by_remote: bool,
        /// Why.
        reason: RejectReason,
    },
    /// A dial failed or its handshake did not complete.
    DialFailed {
        /// The address.
        addr: Addr,
        /// What the driver or the handshake reported.
        reason: DialFailure,
        /// Consecutive failures of this address.
        failures: u32,
    },
    /// A bootstrap address accepted us.
    BootstrapSucceeded {
        /// The address.
        addr: Addr,
        /// Which try it was (1-based).
        attempt: u32,
    },
    /// Every bootstrap try failed.
    BootstrapFailed {
        /// The address.
        addr: Addr,
        /// Tries made.
        attempts: u32,
    },
    /// A `PEERS` line taught us addresses we did not know.
    PeersDiscovered {
        /// Who sent it (`None`: a node that refused us with `MAX_PEERS`
        /// and pointed us elsewhere).
        from: Option<PeerId>,
        /// The new addresses.
        new: Vec<Addr>,
        /// Addresses known now.
        known: usize,
    },
    /// A chat line from a peer.
    Chat {
        /// Sender id.
        from: PeerId,
        /// Sender name.
        name: String,
        /// The text.
        text: String,
    },
    /// A binary message that is not a file frame.
    Bytes {
        /// Sender id.
        from: PeerId,
        /// The payload; shown as its length in JSON.
        #[serde(serialize_with = "ser_len")]
        data: Bytes,
    },
    /// A peer started sending us a file.
    FileStarted {
        /// The transfer.
        transfer: TransferId,
        /// Sender.
        from: PeerId,
        /// Sanitised file name.
        name: String,
        /// Declared size.
        size: u64,
    },
    /// Bytes of an incoming file arrived (at most one event per percent).
    FileProgress {
        /// The transfer.
        transfer: TransferId,
        /// Sender.
        from: PeerId,
        /// File name.
        name: String,
        /// Bytes received so far.
        received: u64,
        /// Declared size.
        size: u64,
    },
    /// An incoming file was verified and committed.
    FileReceived {
        /// The transfer.
        transfer: TransferId,
        /// Sender.
        from: PeerId,
        /// File name as sent.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Lowercase hex SHA-256.
        sha256: String,
        /// Where the driver stored it.
        saved_as: String,
    },
    /// An incoming file was aborted; its part file is discarded.
    FileFailed {
        /// The transfer, if one was started.
        transfer: Option<TransferId>,
        /// Sender.
        from: PeerId,
        /// File name (shortened if hostile).
        name: String,
        /// Why.
        failure: FileFailure,
    },
    /// Sending a file began: its checksum is known and `FILESTART` went out.
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
    /// Chunks of an outgoing file were queued (at most one event per percent).
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
    /// An outgoing file was handed to every target (`FILEEND` queued).
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
    /// Sending a file failed or was aborted.
    FileSendFailed {
        /// The transfer.
        transfer: TransferId,
        /// File name.
        name: String,
        /// Why.
        error: SendFailure,
    },
    /// Content is shared (hashed, or its cached manifest still matched):
    /// peers that speak `swarm/1` are told.
    Shared {
        /// The content id.
        id: ContentId,
        /// File or directory name.
        name: String,
        /// Total bytes.
        size: u64,
        /// Files in it.
        files: u32,
        /// Where it is on this machine.
        path: String,
    },
    /// A `/share` (or `/offer` of a path) could not be hashed.
    ShareFailed {
        /// The path given.
        path: String,
        /// Why.
        error: IoError,
    },
    /// Content is no longer shared.
    Unshared {
        /// The content id.
        id: ContentId,
        /// Its name.
        name: String,
        /// Why.
        reason: UnshareReason,
    },
    /// A peer offers us content: `/accept <id>` or `/decline <id>`.
    Offer {
        /// The content id.
        id: ContentId,
        /// Who offers it.
        from: PeerId,
        /// File or directory name.
        name: String,
        /// Total bytes.
        size: u64,
        /// Files in it.
        files: u32,
        /// Whether `swarm.accept_offers` accepted it already.
        accepted: bool,
    },
    /// A peer declined our offer.
    OfferDeclined {
        /// The content id.
        id: ContentId,
        /// Who.
        by: PeerId,
    },
    /// A download started (or resumed: `have` bytes were verified on disk).
    DownloadStarted {
        /// The content id.
        id: ContentId,
        /// File or directory name.
        name: String,
        /// Total bytes.
        size: u64,
        /// Files in it.
        files: u32,
        /// Bytes already held and verified.
        have: u64,
    },
    /// Verified bytes of a download (at most one event per percent).
    DownloadProgress {
        /// The content id.
        id: ContentId,
        /// Bytes verified so far.
        bytes: u64,
        /// Total bytes.
        size: u64,
        /// Peers sending to us now.
        peers: usize,
    },
    /// A download is verified and under its final name.
    DownloadComplete {
        /// The content id.
        id: ContentId,
        /// File or directory name as shared.
        name: String,
        /// Where it was stored (never over an existing file).
        path: String,
        /// Total bytes.
        size: u64,
        /// Verified bytes each peer sent in this run of the download.
        bytes_from: BTreeMap<PeerId, u64>,
    },
    /// A download ended without its content.
    DownloadFailed {
        /// The content id.
        id: ContentId,
        /// Why.
        error: DownloadFailure,
    },
    /// A peer sent a chunk that does not match the manifest: it is not
    /// asked for this content again.
    ChunkRejected {
        /// The content id.
        id: ContentId,
        /// The peer.
        peer: PeerId,
        /// The chunk.
        chunk: u32,
    },
    /// Debug: a peer's index of what it offers arrived.
    IndexReceived {
        /// From whom.
        peer: PeerId,
        /// Entries in it.
        entries: usize,
    },
    /// A connection broke the protocol and was closed.
    ProtocolError {
        /// The connection.
        conn: ConnId,
        /// The peer, if handshaked.
        peer: Option<PeerId>,
        /// Its address, if known.
        addr: Option<Addr>,
        /// What it did.
        error: ProtocolError,
    },
    /// Debug: two connections reached one peer (a simultaneous connect);
    /// both sides keep the one dialed by the smaller id. Nothing more is sent
    /// on `retired`, which is half-closed once `kept` is proven.
    DuplicateRetired {
        /// The peer.
        peer: PeerId,
        /// The connection that carries it from now on.
        kept: ConnId,
        /// The duplicate being retired.
        retired: ConnId,
    },
    /// Debug: a peer's caps frame said which extensions it speaks
    /// (docs/PROTOCOL.md §7.3).
    PeerExtensions {
        /// The peer.
        peer: PeerId,
        /// `name/version` tokens.
        extensions: Vec<String>,
    },
    /// Debug: an extension frame was ignored (malformed, not announced,
    /// not spoken here); the connection goes on.
    ExtensionIgnored {
        /// The sender.
        peer: PeerId,
        /// Why.
        why: String,
    },
    /// Debug: we sent `PING`.
    PingSent {
        /// To whom.
        peer: PeerId,
    },
    /// Debug: a `PONG` arrived.
    PongReceived {
        /// From whom.
        peer: PeerId,
        /// The round trip it closed, if it answered a timed `PING`.
        rtt_ms: Option<u64>,
    },
    /// Debug: a peer asked for addresses.
    PeersRequested {
        /// Who.
        peer: PeerId,
    },
    /// Debug: a `PEERS` line was received.
    PeersReceived {
        /// From whom.
        peer: PeerId,
        /// The addresses as listed.
        addrs: Vec<String>,
    },
}

fn ser_len<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(b.len() as u64)
}

/// What an [`Event`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Concern {
    /// Peers joining, leaving, refused; dials, bootstrap, discovery,
    /// protocol errors.
    Peer,
    /// Chat lines.
    Chat,
    /// Binary messages.
    Bytes,
    /// File transfers, both directions.
    File,
    /// Content-addressed sharing: shares, offers, downloads.
    Swarm,
    /// Debug-level: heartbeats, peer lists, merges, extension exchange.
    Diagnostic,
}

impl Event {
    /// The concern this event belongs to, for applications that route or
    /// filter events by kind without matching every variant.
    pub fn concern(&self) -> Concern {
        match self {
            Event::PeerConnected { .. }
            | Event::PeerDisconnected { .. }
            | Event::Rejected { .. }
            | Event::DialFailed { .. }
            | Event::BootstrapSucceeded { .. }
            | Event::BootstrapFailed { .. }
            | Event::PeersDiscovered { .. }
            | Event::ProtocolError { .. } => Concern::Peer,
            Event::Chat { .. } => Concern::Chat,
            Event::Bytes { .. } => Concern::Bytes,
            Event::FileStarted { .. }
            | Event::FileProgress { .. }
            | Event::FileReceived { .. }
            | Event::FileFailed { .. }
            | Event::FileSendStarted { .. }
            | Event::FileSendProgress { .. }
            | Event::FileSent { .. }
            | Event::FileSendFailed { .. } => Concern::File,
            Event::Shared { .. }
            | Event::ShareFailed { .. }
            | Event::Unshared { .. }
            | Event::Offer { .. }
            | Event::OfferDeclined { .. }
            | Event::DownloadStarted { .. }
            | Event::DownloadProgress { .. }
            | Event::DownloadComplete { .. }
            | Event::DownloadFailed { .. }
            | Event::ChunkRejected { .. } => Concern::Swarm,
            Event::PingSent { .. }
            | Event::DuplicateRetired { .. }
            | Event::PeerExtensions { .. }
            | Event::ExtensionIgnored { .. }
            | Event::PongReceived { .. }
            | Event::PeersRequested { .. }
            | Event::PeersReceived { .. }
            | Event::IndexReceived { .. } => Concern::Diagnostic,
        }
    }

    /// Debug-level events (heartbeats and peer-list traffic).
    pub fn is_debug(&self) -> bool {
        self.concern() == Concern::Diagnostic
    }
}

/// Why an established peer went away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The connection closed under us.
    Closed {
        /// What the driver saw.
        reason: CloseReason,
    },
    /// No frame for longer than the peer timeout.
    Timeout {
        /// How long it was silent.
        silent_ms: u64,
    },
    /// It broke the protocol.
    Protocol {
        /// How.
        error: ProtocolError,
    },
    /// We are shutting down.
    Shutdown,
    /// It said it was leaving (its node is shutting down:
    /// docs/PROTOCOL.md §7.5).
    Left,
}

/// Why the driver reports a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CloseReason {
    /// The remote closed it.
    Eof,
    /// A read or write failed.
    Io {
        /// The error.
        error: IoError,
    },
    /// The peer did not drain its send queue in time.
    SlowReader {
        /// Bytes queued when we gave up.
        queued: u64,
    },
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("closed by the remote"),
            CloseReason::Io { error } => write!(f, "{error}"),
            CloseReason::SlowReader { queued } => {
                write!(f, "not reading: {queued} bytes queued")
            }
        }
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// That id is already an established peer.
    Duplicate,
    /// The node is at `max_peers`.
    MaxPeers,
    /// The remote is this node itself.
    SelfConnection,
}

/// Why an incoming file transfer failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileFailure {
    /// The name is not a plain file name.
    InvalidName {
        /// Why.
        why: &'static str,
    },
    /// The frame could not be parsed.
    Malformed {
        /// Why.
        why: String,
    },
    /// The declared size exceeds `max_file_size`.
    TooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The peer already has `max_transfers_per_peer` transfers running.
    TooManyTransfers {
        /// The limit.
        limit: usize,
    },
    /// A chunk or end for a transfer that is not running.
    UnknownTransfer,
    /// More bytes than declared.
    Overflow {
        /// Declared size.
        size: u64,
        /// Bytes it would have reached.
        received: u64,
    },
    /// `FILEEND` arrived before all declared bytes.
    SizeMismatch {
        /// Declared size.
        size: u64,
        /// Bytes received.
        received: u64,
    },
    /// The content does not hash to the declared checksum.
    HashMismatch {
        /// Declared checksum.
        expected: String,
        /// Checksum of what arrived.
        actual: String,
    },
    /// A new `FILESTART` for the same name replaced this transfer.
    Restarted,
    /// No chunk for longer than the peer timeout.
    Idle {
        /// How long it was idle.
        idle_ms: u64,
    },
    /// The sender disconnected mid-transfer.
    PeerGone,
    /// The driver could not write or commit it.
    Storage {
        /// The error.
        error: IoError,
    },
    /// The node shut down mid-transfer.
    Shutdown,
}

/// What the driver must do on disk. Ops for one incoming transfer come in
/// order: `Create`, any number of `Write`s, then exactly one of `Commit` or
/// `Discard`. Ops for one outgoing transfer: `Open`, any number of `Read`s
/// (one at a time), then `Close`. Every failure is reported with
/// [`Input::StorageFailed`](crate::Input::StorageFailed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Open the file to send at `path` (as the application named it) and
    /// report its size with [`Input::Opened`](crate::Input::Opened).
    Open {
        /// The outgoing transfer.
        transfer: TransferId,
        /// The path given to the send command.
        path: String,
    },
    /// Read `len` bytes at `offset` of an opened file and report them with
    /// [`Input::Read`](crate::Input::Read).
    Read {
        /// The outgoing transfer.
        transfer: TransferId,
        /// Where.
        offset: u64,
        /// How many bytes (fewer only at the end of the file).
        len: usize,
    },
    /// The outgoing transfer is over: close its file.
    Close {
        /// The outgoing transfer.
        transfer: TransferId,
    },
    /// Create (truncate) the part file `part` inside the downloads directory.
    /// `part` is a plain file name, already validated.
    Create {
        /// The transfer.
        transfer: TransferId,
        /// Part file name.
        part: String,
    },
    /// Append `data` to the transfer's part file.
    Write {
        /// The transfer.
        transfer: TransferId,
        /// The bytes, shared with the received frame.
        data: Bytes,
    },
    /// The content is verified: rename the part file to `name`, or to
    /// `name-(1).ext`, `name-(2).ext`, ... without ever overwriting, then
    /// report [`Input::Committed`](crate::Input::Committed).
    Commit {
        /// The transfer.
        transfer: TransferId,
        /// Final file name, a plain validated name.
        name: String,
    },
    /// Delete the part file.
    Discard {
        /// The transfer.
        transfer: TransferId,
    },
    /// Hash the file or directory tree at `path` (as the application named
    /// it; symlinks are not followed) into a manifest of `chunk_size`
    /// chunks, reusing the manifest kept from an earlier run if every file
    /// has the same size and modification time; report
    /// [`Input::Shared`](crate::Input::Shared). From then on the storage
    /// serves [`StorageOp::ReadChunk`] of the content from those files.
    Share {
        /// The path given to the share command.
        path: String,
        /// Chunk size of the manifest.
        chunk_size: u32,
    },
    /// Forget the files of shared content.
    Unshare {
        /// The content.
        content: ContentId,
    },
    /// Open (creating if new) the partial download of `content` in the
    /// hidden folder of the downloads directory, keeping `manifest` and
    /// `dir` beside it for a later run; report
    /// [`Input::PartialOpened`](crate::Input::PartialOpened) with the
    /// chunks its record claims.
    OpenPartial {
        /// The content.
        content: ContentId,
        /// Its canonical manifest.
        manifest: Bytes,
        /// Where to put it when complete (`None`: the downloads directory).
        dir: Option<String>,
    },
    /// Read chunk `chunk` of shared content or of a partial download;
    /// report [`Input::ChunkRead`](crate::Input::ChunkRead) or
    /// [`Input::ChunkReadFailed`](crate::Input::ChunkReadFailed).
    ReadChunk {
        /// Echoed in the completion.
        read: u64,
        /// The content.
        content: ContentId,
        /// The chunk.
        chunk: u32,
    },
    /// Write a verified chunk into the partial download (no completion;
    /// a failure is [`Input::SwarmStorageFailed`](crate::Input::SwarmStorageFailed)).
    WriteChunk {
        /// The content.
        content: ContentId,
        /// The chunk.
        chunk: u32,
        /// Its bytes, shared with the received frame.
        data: Bytes,
    },
    /// Make every chunk written so far durable, then record them as held
    /// (data first, then the record that claims it).
    Checkpoint {
        /// The content.
        content: ContentId,
    },
    /// Every chunk is written and verified: make it durable, move it to
    /// its final name (`name-(1).ext` and so on, never over anything),
    /// serve it from there, report
    /// [`Input::DownloadCommitted`](crate::Input::DownloadCommitted).
    CommitDownload {
        /// The content.
        content: ContentId,
    },
    /// Close the partial download, keeping it for a later run.
    ClosePartial {
        /// The content.
        content: ContentId,
    },
    /// Delete the partial download.
    DiscardPartial {
        /// The content.
        content: ContentId,
    },
    /// List the partial downloads kept by an earlier run; report
    /// [`Input::PartialsFound`](crate::Input::PartialsFound).
    ScanPartials,
}

/// A snapshot of one established peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// Its id.
    pub id: PeerId,
    /// Its display name.
    pub name: String,
    /// Its listening address, if known.
    pub addr: Option<Addr>,
    /// Whether we dialed it.
    pub outbound: bool,
    /// The connection carrying it.
    pub conn: ConnId,
    /// The extensions it announced, as `name/version` (empty for a
    /// reference node).
    pub extensions: Vec<String>,
    /// The last round trip measured by the heartbeat (`PING` to `PONG`),
    /// in milliseconds; `None` until the first answer.
    pub rtt_ms: Option<u64>,
    /// Bytes received on its connection, as on the socket.
    pub bytes_in: u64,
    /// Bytes written on its connection, as on the socket.
    pub bytes_out: u64,
}
