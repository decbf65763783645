//! The driver's [`Transport`] over turmoil's simulated TCP, so that every
//! simulated host runs the deployed `p2p-net` driver unchanged.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use p2p_core::Addr;
use p2p_net::{Listener, Transport};

/// Binds and dials through turmoil's network. Only usable inside a
/// simulated host (turmoil panics elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilTransport;

/// A turmoil listener. A newtype because neither [`Listener`] nor turmoil's
/// `TcpListener` is ours (orphan rule).
pub struct TurmoilListener(turmoil::net::TcpListener);

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl Transport for TurmoilTransport {
    type Stream = turmoil::net::TcpStream;
    type Listener = TurmoilListener;

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        // turmoil binds only unspecified or loopback addresses; peers reach
        // the host by its simulated IP.
        let listener =
            turmoil::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                .await?;
        Ok(TurmoilListener(listener))
    }

    async fn connect(&self, addr: &Addr) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let stream = turmoil::net::TcpStream::connect(addr.as_str()).await?;
        let local = stream.local_addr().ok();
        Ok((stream, local))
    }
}

impl Listener for TurmoilListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
