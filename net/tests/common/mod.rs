//! Helpers shared by the driver's integration tests.

#![allow(dead_code)]

use std::time::Duration;

use p2p_core::Event;
use p2p_net::{start, DiskStorage, Events, NetConfig, NetEvent, NodeHandle, TcpTransport};

/// Waits up to `secs` for an event for which `f` returns `Some`.
pub async fn wait_for<T>(
    events: &mut Events,
    secs: u64,
    mut f: impl FnMut(&NetEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            let e = events.next().await.expect("node stopped");
            if let Some(t) = f(&e) {
                return t;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}

/// Waits up to `secs` for a core event for which `f` returns `Some`.
pub async fn wait_core<T>(
    events: &mut Events,
    secs: u64,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    wait_for(events, secs, |e| match e {
        NetEvent::Core(e) => f(e),
        _ => None,
    })
    .await
}

/// A node with default settings and `dir` as its downloads, bootstrapped
/// to `to`, once it has connected.
pub async fn joined(to: std::net::SocketAddr, dir: &std::path::Path) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    cfg.bootstrap.push(to.to_string());
    let (node, mut events) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir).unwrap(),
    )
    .await
    .unwrap();
    connected(&mut events).await;
    (node, events)
}

/// Waits until a peer is connected.
pub async fn connected(events: &mut Events) {
    wait_core(events, 10, |e| {
        matches!(e, Event::PeerConnected { .. }).then_some(())
    })
    .await
}
