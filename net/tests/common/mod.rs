//! Helpers shared by the driver's integration tests.

#![allow(dead_code)]

use std::time::Duration;

use p2p_core::Event;
use p2p_net::{Events, NetEvent};

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
