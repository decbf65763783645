//! Deliberate bugs behind a switch ([`crate::Sabotage`]): they show that the
//! checks can fail. Each acts until it has done its damage once (a
//! corrupted file committed, a corrupted line sent), then behaves like the
//! real piece it wraps.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use p2p_core::{Addr, TransferId};
use p2p_net::{MemStorage, Storage, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::{TurmoilListener, TurmoilTransport};
use crate::world::CHAT_PREFIX;

/// Memory storage that flips one byte of every transfer it writes until one
/// such transfer is committed, so that a file whose content differs from
/// what the core verified gets committed whatever the schedule (a transfer
/// aborted by a flapping link does not defuse it).
#[derive(Debug, Clone)]
pub(crate) struct CorruptingStorage {
    mem: MemStorage,
    /// Shared by every host: cleared by the first corrupted commit.
    armed: Arc<AtomicBool>,
    /// Transfers of this host with a flipped byte.
    tainted: Arc<Mutex<BTreeSet<TransferId>>>,
}

impl CorruptingStorage {
    pub(crate) fn new(mem: MemStorage, armed: Arc<AtomicBool>) -> Self {
        CorruptingStorage {
            mem,
            armed,
            tainted: Arc::default(),
        }
    }

    fn tainted(&self) -> std::sync::MutexGuard<'_, BTreeSet<TransferId>> {
        // Poison cannot leave a set half-updated.
        self.tainted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for CorruptingStorage {
    fn create(&self, transfer: TransferId, part: &str) -> io::Result<()> {
        self.mem.create(transfer, part)
    }

    fn write(&self, transfer: TransferId, data: &[u8]) -> io::Result<()> {
        if !data.is_empty() && self.armed.load(Ordering::Relaxed) && self.tainted().insert(transfer)
        {
            let mut bad = data.to_vec();
            bad[0] ^= 0x01;
            return self.mem.write(transfer, &bad);
        }
        self.mem.write(transfer, data)
    }

    fn commit(&self, transfer: TransferId, name: &str) -> io::Result<String> {
        let result = self.mem.commit(transfer, name);
        if result.is_ok() && self.tainted().remove(&transfer) {
            self.armed.store(false, Ordering::Relaxed);
        }
        result
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

    fn read(&self, transfer: TransferId, offset: u64, len: usize) -> io::Result<bytes::Bytes> {
        self.mem.read(transfer, offset, len)
    }

    fn close_source(&self, transfer: TransferId) {
        self.mem.close_source(transfer)
    }
}

/// turmoil transport whose first write containing a simulator chat line
/// flips a byte of that line on the wire.
#[derive(Debug, Clone)]
pub(crate) struct CorruptingTransport {
    armed: Arc<AtomicBool>,
}

impl CorruptingTransport {
    pub(crate) fn new(armed: Arc<AtomicBool>) -> Self {
        CorruptingTransport { armed }
    }
}

/// A turmoil stream that may corrupt one write.
pub(crate) struct CorruptingStream {
    inner: turmoil::net::TcpStream,
    armed: Arc<AtomicBool>,
}

/// A listener handing out [`CorruptingStream`]s.
pub(crate) struct CorruptingListener {
    inner: TurmoilListener,
    armed: Arc<AtomicBool>,
}

impl Transport for CorruptingTransport {
    type Stream = CorruptingStream;
    type Listener = CorruptingListener;

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        let inner = TurmoilTransport.bind(port).await?;
        Ok(CorruptingListener {
            inner,
            armed: self.armed.clone(),
        })
    }

    async fn connect(
        &self,
        addr: &Addr,
    ) -> io::Result<(Self::Stream, Option<std::net::SocketAddr>)> {
        let (inner, local) = TurmoilTransport.connect(addr).await?;
        let armed = self.armed.clone();
        Ok((CorruptingStream { inner, armed }, local))
    }
}

impl p2p_net::Listener for CorruptingListener {
    type Stream = CorruptingStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, std::net::SocketAddr)> {
        let (inner, remote) = self.inner.accept().await?;
        let armed = self.armed.clone();
        Ok((CorruptingStream { inner, armed }, remote))
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for CorruptingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CorruptingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let prefix = CHAT_PREFIX.as_bytes();
        let found = if self.armed.load(Ordering::Relaxed) {
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
                self.armed.store(false, Ordering::Relaxed);
            }
            return r;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
