//! The driver's [`Transport`] over turmoil's simulated TCP, so that every
//! simulated host runs the deployed `p2p-net` driver unchanged, plus the one
//! TCP behaviour turmoil lacks: a connection reset by the network
//! ([`Resets`]), the way a connection dies for real (a middlebox or a peer
//! that lost its state answers with RST). Cuts and stalls are turmoil holds
//! (`faults.rs`): segments wait and arrive late, as TCP's retransmissions
//! deliver them; a stream never loses a segment in its middle.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use p2p_core::Addr;
use p2p_net::{Listener, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Binds and dials through turmoil's network. Only usable inside a
/// simulated host (turmoil panics elsewhere).
#[derive(Debug, Clone, Default)]
pub struct TurmoilTransport {
    resets: Resets,
}

impl TurmoilTransport {
    /// A transport whose streams die when `resets` resets their host pair.
    pub fn new(resets: Resets) -> Self {
        TurmoilTransport { resets }
    }
}

/// A turmoil listener. A newtype because neither [`Listener`] nor turmoil's
/// `TcpListener` is ours (orphan rule).
pub struct TurmoilListener {
    inner: turmoil::net::TcpListener,
    resets: Resets,
}

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilListener")
            .field(&self.inner.local_addr().ok())
            .finish()
    }
}

impl Transport for TurmoilTransport {
    type Stream = SimStream;
    type Listener = TurmoilListener;

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        // turmoil binds only unspecified or loopback addresses; peers reach
        // the host by its simulated IP.
        let inner =
            turmoil::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                .await?;
        Ok(TurmoilListener {
            inner,
            resets: self.resets.clone(),
        })
    }

    async fn connect(&self, addr: &Addr) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let stream = turmoil::net::TcpStream::connect(addr.as_str()).await?;
        let local = stream.local_addr().ok();
        Ok((self.resets.wrap(stream), local))
    }
}

impl Listener for TurmoilListener {
    type Stream = SimStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, remote) = self.inner.accept().await?;
        Ok((self.resets.wrap(stream), remote))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// What a reset tells a stream: that it is dead, and whom to wake.
#[derive(Debug, Default)]
struct Fate {
    reset: AtomicBool,
    wakers: Mutex<[Option<Waker>; 2]>,
}

const READ: usize = 0;
const WRITE: usize = 1;

impl Fate {
    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }

    fn park(&self, side: usize, cx: &Context<'_>) {
        let mut w = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        match &w[side] {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => w[side] = Some(cx.waker().clone()),
        }
    }

    fn kill(&self) {
        self.reset.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }
}

/// The streams of each pair of hosts, so that a fault can reset them.
/// Shared by every host of one run; the simulation is single-threaded, the
/// mutex only makes it `Send` for tokio.
#[derive(Debug, Clone, Default)]
pub struct Resets(Arc<Mutex<Streams>>);

/// The live streams of each host pair, in registration order.
type Streams = BTreeMap<(IpAddr, IpAddr), Vec<Weak<Fate>>>;

fn pair(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    (a.min(b), a.max(b))
}

impl Resets {
    fn wrap(&self, inner: turmoil::net::TcpStream) -> SimStream {
        let fate = Arc::new(Fate::default());
        if let (Ok(l), Ok(r)) = (inner.local_addr(), inner.peer_addr()) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let list = map.entry(pair(l.ip(), r.ip())).or_default();
            list.retain(|f| f.strong_count() > 0);
            list.push(Arc::downgrade(&fate));
        }
        SimStream { inner, fate }
    }

    /// Resets every open connection between `a` and `b`, both ends: their
    /// reads and writes fail with `ConnectionReset` from now on. Returns
    /// how many connection ends were reset.
    pub fn reset(&self, a: IpAddr, b: IpAddr) -> usize {
        let list = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pair(a, b))
            .unwrap_or_default();
        let mut n = 0;
        // Registration order: the same on every run of a seed.
        for fate in list.iter().filter_map(Weak::upgrade) {
            if !fate.is_reset() {
                fate.kill();
                n += 1;
            }
        }
        n
    }
}

/// A turmoil TCP stream that a [`Resets`] fault can kill.
#[derive(Debug)]
pub struct SimStream {
    inner: turmoil::net::TcpStream,
    fate: Arc<Fate>,
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection reset (fault)")
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fate.is_reset() {
            return Poll::Ready(Err(reset_error()));
        }
        self.fate.park(READ, cx);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.fate.is_reset() {
            return Poll::Ready(Err(reset_error()));
        }
        self.fate.park(WRITE, cx);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fate.is_reset() {
            return Poll::Ready(Err(reset_error()));
        }
        self.fate.park(WRITE, cx);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fate.is_reset() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
