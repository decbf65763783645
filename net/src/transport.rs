//! The transport the driver runs on: tokio TCP here, turmoil's simulated
//! TCP in `p2p-sim`, so that the simulated code is the deployed code.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use p2p_core::Addr;
use tokio::io::{AsyncRead, AsyncWrite};

/// Binds listeners and opens connections.
pub trait Transport: Clone + Send + Sync + 'static {
    /// A connected byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound listener.
    type Listener: Listener<Stream = Self::Stream>;

    /// Binds the listening socket (`port` 0 picks a free one).
    fn bind(&self, port: u16) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Connects to `addr`; returns the stream and our local address.
    fn connect(
        &self,
        addr: &Addr,
    ) -> impl Future<Output = io::Result<(Self::Stream, Option<SocketAddr>)>> + Send;
}

/// A bound listener.
pub trait Listener: Send + 'static {
    /// The streams it accepts.
    type Stream;

    /// The next connection and its remote address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Real TCP through tokio.
#[derive(Debug, Clone, Copy)]
pub struct TcpTransport {
    /// The IP the listener binds to: `0.0.0.0` to serve the network,
    /// `127.0.0.1` for tests.
    pub bind_ip: IpAddr,
}

impl TcpTransport {
    /// Listens on every interface.
    pub fn any() -> Self {
        TcpTransport {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// Listens on loopback only.
    pub fn loopback() -> Self {
        TcpTransport {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl Transport for TcpTransport {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(SocketAddr::new(self.bind_ip, port)).await
    }

    async fn connect(&self, addr: &Addr) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr().ok();
        Ok((stream, local))
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, remote) = tokio::net::TcpListener::accept(self).await?;
        s.set_nodelay(true)?;
        Ok((s, remote))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}
