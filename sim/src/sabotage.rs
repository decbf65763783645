//! Deliberate bugs behind a switch ([`crate::Sabotage`]): they show that
//! every check can fail. Each wraps a real piece of a simulated host (its
//! transport, storage, tap or command loop), never the core or the driver.
//! Most act once (a corrupted file committed, a corrupted line sent, a
//! chat line lost) and then behave like the piece they wrap.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use p2p_core::{Addr, ContentId, TransferId};
use p2p_net::{MemStorage, ReadError, Storage, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::{Sabotage, PORT};
use crate::transport::{SimStream, TurmoilListener, TurmoilTransport};
use crate::world::CHAT_PREFIX;

/// The host most deliberate bugs single out (every mesh has an `n1`).
pub(crate) const TARGET: usize = 1;

/// Memory storage with one planted bug:
/// - `corrupt-commit` flips one byte of every transfer it writes until one
///   such transfer is committed, so that a file whose content differs from
///   what the core verified gets committed whatever the schedule (a
///   transfer aborted by a flapping link does not defuse it);
/// - `escape-downloads` saves committed files one directory up;
/// - `failing-commit` fails every commit;
/// - `panic-write` panics on the first write;
/// - `swarm-flip-write` flips a byte of the chunk that completes a partial
///   download, once in the run, after the core verified it;
/// - `swarm-failing-commit` fails every commit of a download;
/// - `swarm-lost-record` opens every partial download claiming nothing.
///
/// Every other operation, the swarm ones included, goes to the memory
/// storage as it is.
#[derive(Debug, Clone)]
pub(crate) struct BuggyStorage {
    mem: MemStorage,
    bug: Sabotage,
    /// Shared by every host: cleared once the bug did its harm.
    armed: Arc<AtomicBool>,
    /// `corrupt-commit`: transfers of this host with a flipped byte.
    tainted: Arc<Mutex<BTreeSet<TransferId>>>,
    /// `swarm-flip-write`: per open partial, its chunk count and the
    /// chunks claimed or written.
    held: Arc<Mutex<Held>>,
}

/// Per open partial: its chunk count and the chunks claimed or written.
type Held = BTreeMap<ContentId, (u32, BTreeSet<u32>)>;

impl BuggyStorage {
    pub(crate) fn new(mem: MemStorage, bug: Sabotage, armed: Arc<AtomicBool>) -> Self {
        BuggyStorage {
            mem,
            bug,
            armed,
            tainted: Arc::default(),
            held: Arc::default(),
        }
    }

    fn tainted(&self) -> std::sync::MutexGuard<'_, BTreeSet<TransferId>> {
        // Poison cannot leave a set half-updated.
        self.tainted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for BuggyStorage {
    fn create(&self, transfer: TransferId, part: &str) -> io::Result<()> {
        self.mem.create(transfer, part)
    }

    fn write(&self, transfer: TransferId, data: &[u8]) -> io::Result<()> {
        match self.bug {
            Sabotage::PanicWrite if self.armed.swap(false, Ordering::Relaxed) => {
                panic!("planted bug (panic-write): storage write of {transfer:?}");
            }
            Sabotage::CorruptCommit
                if !data.is_empty()
                    && self.armed.load(Ordering::Relaxed)
                    && self.tainted().insert(transfer) =>
            {
                let mut bad = data.to_vec();
                bad[0] ^= 0x01;
                self.mem.write(transfer, &bad)
            }
            _ => self.mem.write(transfer, data),
        }
    }

    fn commit(&self, transfer: TransferId, name: &str) -> io::Result<String> {
        if self.bug == Sabotage::FailingCommit {
            return Err(io::Error::other("planted bug (failing-commit)"));
        }
        let saved = self.mem.commit(transfer, name)?;
        if self.bug == Sabotage::CorruptCommit && self.tainted().remove(&transfer) {
            self.armed.store(false, Ordering::Relaxed);
        }
        if self.bug == Sabotage::EscapeDownloads {
            // The bug: joins the name to the parent of the downloads.
            return Ok(format!("../{saved}"));
        }
        Ok(saved)
    }

    fn discard(&self, transfer: TransferId) -> io::Result<()> {
        self.tainted().remove(&transfer);
        self.mem.discard(transfer)
    }

    fn discard_all(&self) {
        self.tainted().clear();
        self.mem.discard_all()
    }

    fn blocking(&self) -> bool {
        self.mem.blocking()
    }

    fn open_source(&self, transfer: TransferId, path: &Path) -> io::Result<u64> {
        self.mem.open_source(transfer, path)
    }

    fn read(&self, transfer: TransferId, offset: u64, len: usize) -> io::Result<Bytes> {
        self.mem.read(transfer, offset, len)
    }

    fn close_source(&self, transfer: TransferId) {
        self.mem.close_source(transfer)
    }

    fn share(&self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        self.mem.share(path, chunk_size)
    }

    fn unshare(&self, content: ContentId) {
        self.mem.unshare(content)
    }

    fn open_partial(
        &self,
        content: ContentId,
        manifest: Bytes,
        dir: Option<String>,
    ) -> io::Result<Vec<u32>> {
        let chunks = p2p_core::Manifest::parse(&manifest).map(|m| m.chunks());
        let claimed = self.mem.open_partial(content, manifest, dir)?;
        match self.bug {
            Sabotage::SwarmLostRecord => Ok(Vec::new()),
            Sabotage::SwarmFlipWrite => {
                if let Ok(n) = chunks {
                    let have = claimed.iter().copied().collect();
                    self.held().insert(content, (n, have));
                }
                Ok(claimed)
            }
            _ => Ok(claimed),
        }
    }

    fn read_chunk(&self, content: ContentId, chunk: u32) -> Result<Bytes, ReadError> {
        self.mem.read_chunk(content, chunk)
    }

    fn write_chunk(&self, content: ContentId, chunk: u32, data: &[u8]) -> io::Result<()> {
        if self.bug == Sabotage::SwarmFlipWrite && !data.is_empty() {
            let last = self.held().get_mut(&content).is_some_and(|(n, have)| {
                have.insert(chunk);
                have.len() as u32 == *n
            });
            if last && self.armed.swap(false, Ordering::Relaxed) {
                let mut bad = data.to_vec();
                bad[data.len() / 2] ^= 0x01;
                return self.mem.write_chunk(content, chunk, &bad);
            }
        }
        self.mem.write_chunk(content, chunk, data)
    }

    fn checkpoint(&self, content: ContentId) -> io::Result<()> {
        self.mem.checkpoint(content)
    }

    fn commit_download(&self, content: ContentId) -> io::Result<String> {
        if self.bug == Sabotage::SwarmFailingCommit {
            return Err(io::Error::other("planted bug (swarm-failing-commit)"));
        }
        self.held().remove(&content);
        self.mem.commit_download(content)
    }

    fn close_partial(&self, content: ContentId) {
        self.held().remove(&content);
        self.mem.close_partial(content)
    }

    fn discard_partial(&self, content: ContentId) -> io::Result<()> {
        self.held().remove(&content);
        self.mem.discard_partial(content)
    }

    fn scan_partials(&self) -> Vec<(Bytes, Option<String>)> {
        self.mem.scan_partials()
    }
}

/// What one host's [`BuggyTransport`] does wrong.
#[derive(Debug, Clone)]
pub(crate) struct TransportBug {
    pub(crate) bug: Sabotage,
    /// The host it runs on.
    pub(crate) host: usize,
    /// Shared by every host: the bug has yet to act (`corrupt-wire`).
    pub(crate) armed: Arc<AtomicBool>,
    /// Set once the full mesh first held.
    pub(crate) meshed: Arc<AtomicBool>,
    /// `sticky-blacklist`: hosts this node will never dial again.
    pub(crate) blacklist: Arc<Mutex<BTreeSet<IpAddr>>>,
    /// `deaf-to-intruders`: the intruder hosts' IPs.
    pub(crate) intruders: Arc<BTreeSet<IpAddr>>,
}

impl TransportBug {
    fn muted(&self) -> bool {
        self.bug == Sabotage::MuteAfterMesh
            && self.host == TARGET
            && self.meshed.load(Ordering::Relaxed)
    }

    fn blacklist(&self) -> std::sync::MutexGuard<'_, BTreeSet<IpAddr>> {
        self.blacklist.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `sticky-blacklist`: a connection to `ip` was lost (or could not be
    /// made) after the mesh formed.
    fn lost(&self, ip: Option<IpAddr>) {
        if self.bug == Sabotage::StickyBlacklist && self.meshed.load(Ordering::Relaxed) {
            if let Some(ip) = ip {
                self.blacklist().insert(ip);
            }
        }
    }
}

/// turmoil's transport with one planted bug: `corrupt-wire` flips a byte
/// of the first chat line written, `wrong-local-addr` reports the
/// listening port as a dialed connection's local address, `mute-after-mesh`
/// discards every write of one host once the mesh formed, `deaf-listener`
/// never accepts on `n0`, `sticky-blacklist` never dials again a host whose
/// connection was lost after the mesh formed.
#[derive(Debug, Clone)]
pub(crate) struct BuggyTransport {
    net: TurmoilTransport,
    bug: TransportBug,
}

impl BuggyTransport {
    pub(crate) fn new(net: TurmoilTransport, bug: TransportBug) -> Self {
        BuggyTransport { net, bug }
    }
}

/// A turmoil stream with the transport's bug.
pub(crate) struct BuggyStream {
    inner: SimStream,
    bug: TransportBug,
    remote: Option<IpAddr>,
}

/// A listener handing out [`BuggyStream`]s.
pub(crate) struct BuggyListener {
    inner: TurmoilListener,
    bug: TransportBug,
}

impl Transport for BuggyTransport {
    type Stream = BuggyStream;
    type Listener = BuggyListener;

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        let inner = self.net.bind(port).await?;
        Ok(BuggyListener {
            inner,
            bug: self.bug.clone(),
        })
    }

    async fn connect(&self, addr: &Addr) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let remote = addr.as_str().parse::<SocketAddr>().ok().map(|a| a.ip());
        if self.bug.bug == Sabotage::StickyBlacklist
            && remote.is_some_and(|ip| self.bug.blacklist().contains(&ip))
        {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "blacklisted (planted bug)",
            ));
        }
        let (inner, mut local) = match self.net.connect(addr).await {
            Ok(c) => c,
            Err(e) => {
                self.bug.lost(remote);
                return Err(e);
            }
        };
        if self.bug.bug == Sabotage::WrongLocalAddr {
            local = local.map(|l| SocketAddr::new(l.ip(), PORT));
        }
        let stream = BuggyStream {
            inner,
            bug: self.bug.clone(),
            remote,
        };
        Ok((stream, local))
    }
}

impl p2p_net::Listener for BuggyListener {
    type Stream = BuggyStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, std::net::SocketAddr)> {
        if self.bug.bug == Sabotage::DeafListener && self.bug.host == 0 {
            std::future::pending::<()>().await;
        }
        let (inner, remote) = loop {
            let (inner, remote) = self.inner.accept().await?;
            if self.bug.bug == Sabotage::DeafToIntruders
                && self.bug.intruders.contains(&remote.ip())
            {
                // The planted bug: dropped before the node sees it.
                continue;
            }
            break (inner, remote);
        };
        let stream = BuggyStream {
            inner,
            bug: self.bug.clone(),
            remote: Some(remote.ip()),
        };
        Ok((stream, remote))
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

impl Drop for BuggyStream {
    fn drop(&mut self) {
        self.bug.lost(self.remote);
    }
}

impl AsyncRead for BuggyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Err(_)) => self.bug.lost(self.remote),
            Poll::Ready(Ok(())) if buf.filled().len() == before => self.bug.lost(self.remote),
            _ => {}
        }
        r
    }
}

impl AsyncWrite for BuggyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.bug.muted() {
            return Poll::Ready(Ok(buf.len()));
        }
        let prefix = CHAT_PREFIX.as_bytes();
        let found =
            if self.bug.bug == Sabotage::CorruptWire && self.bug.armed.load(Ordering::Relaxed) {
                buf.windows(prefix.len()).position(|w| w == prefix)
            } else {
                None
            };
        if let Some(i) = found {
            let mut bad = buf.to_vec();
            // Flip a letter of the line's text (after the prefix), keeping
            // it a valid line so that only the content differs.
            let at = (i + prefix.len()).min(bad.len() - 1);
            bad[at] ^= 0x01;
            let r = Pin::new(&mut self.inner).poll_write(cx, &bad);
            if matches!(r, Poll::Ready(Ok(_))) {
                self.bug.armed.store(false, Ordering::Relaxed);
            }
            return r;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bug.lost(self.remote);
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
