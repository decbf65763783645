//! The driver's side of LAN discovery, with a scripted `LanDiscovery`
//! (no mDNS, no multicast: the announcements are handed in by the test;
//! real mDNS is tested in `cli/tests/lan.rs`, inside a network namespace).

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{connected, wait_core};
use p2p_core::Event;
use p2p_net::{
    start, Announcement, Heard, LanDiscovery, LanError, LanSession, MemStorage, NetConfig,
    NetError, TcpTransport,
};
use tokio::sync::mpsc;

/// What the scripted LAN saw, and the way to speak to the node.
#[derive(Default)]
struct Seen {
    announced: Option<Announcement>,
    heard: Option<mpsc::Sender<Heard>>,
    stopped: bool,
}

#[derive(Clone, Default)]
struct Scripted {
    fail: bool,
    seen: Arc<Mutex<Seen>>,
}

struct ScriptedSession(Arc<Mutex<Seen>>);

impl LanSession for ScriptedSession {
    fn stop(self: Box<Self>) {
        self.0.lock().unwrap().stopped = true;
    }
}

impl LanDiscovery for Scripted {
    fn start(
        &self,
        me: Announcement,
        heard: mpsc::Sender<Heard>,
    ) -> Result<Box<dyn LanSession>, LanError> {
        if self.fail {
            return Err(LanError("no multicast route".into()));
        }
        let mut seen = self.seen.lock().unwrap();
        seen.announced = Some(me);
        seen.heard = Some(heard);
        Ok(Box::new(ScriptedSession(self.seen.clone())))
    }
}

impl Scripted {
    async fn hear(&self, addr: std::net::SocketAddr, id: &str, network: Option<&str>) {
        let tx = self.seen.lock().unwrap().heard.clone().expect("started");
        tx.send(Heard {
            addrs: vec![addr.to_string()],
            id: Some(id.to_owned()),
            network: network.map(str::to_owned),
        })
        .await
        .expect("the driver listens");
    }
}

fn config(lan: Option<Scripted>, key: Option<[u8; 32]>) -> NetConfig {
    let mut cfg = NetConfig::new(0);
    cfg.lan = lan.map(|l| Arc::new(l) as Arc<dyn LanDiscovery>);
    if let Some(k) = key {
        cfg.core.session.network_key = Some(k);
        cfg.core.session.static_key = Some([7; 32]);
        cfg.core.session.entropy = Some([9; 32]);
    }
    cfg
}

#[tokio::test]
async fn a_lan_that_cannot_start_is_a_typed_error_from_start() {
    let lan = Scripted {
        fail: true,
        ..Default::default()
    };
    let err = start(
        config(Some(lan), None),
        TcpTransport::loopback(),
        MemStorage::default(),
    )
    .await
    .expect_err("the LAN failed");
    assert!(matches!(err, NetError::Lan(_)), "{err:?}");
    assert_eq!(err.to_string(), "LAN discovery: no multicast route");
}

#[tokio::test]
async fn only_announcements_of_our_own_network_are_dialed_and_the_announcement_is_withdrawn() {
    let (other, mut other_events) = start(
        config(None, None),
        TcpTransport::loopback(),
        MemStorage::default(),
    )
    .await
    .unwrap();
    let lan = Scripted::default();
    let (node, mut events) = start(
        config(Some(lan.clone()), None),
        TcpTransport::loopback(),
        MemStorage::default(),
    )
    .await
    .unwrap();
    let me = lan
        .seen
        .lock()
        .unwrap()
        .announced
        .clone()
        .expect("announced");
    assert_eq!(me.id, node.id().as_str());
    assert_eq!(me.port, node.local_addr().port());
    assert_eq!(me.network, None, "a public node shows no fingerprint");

    // A private network's announcement (and our own) are not dialed.
    lan.hear(
        other.local_addr(),
        other.id().as_str(),
        Some("00112233aabbccdd"),
    )
    .await;
    lan.hear(node.local_addr(), node.id().as_str(), None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(node.peers().await.unwrap().is_empty());
    assert!(other.peers().await.unwrap().is_empty());

    // The same announcement from our network is.
    lan.hear(other.local_addr(), other.id().as_str(), None)
        .await;
    connected(&mut events).await;
    connected(&mut other_events).await;
    assert_eq!(node.peers().await.unwrap()[0].id, *other.id());

    assert!(!lan.seen.lock().unwrap().stopped);
    node.shutdown().await.unwrap();
    assert!(lan.seen.lock().unwrap().stopped, "withdrawn on shutdown");
    let reason = wait_core(&mut other_events, 5, |e| match e {
        Event::PeerDisconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, p2p_core::DisconnectReason::Left);
}

#[tokio::test]
async fn a_private_node_announces_its_fingerprint_and_ignores_public_nodes() {
    let key = [5; 32];
    let (public, _public_events) = start(
        config(None, None),
        TcpTransport::loopback(),
        MemStorage::default(),
    )
    .await
    .unwrap();
    let lan = Scripted::default();
    let (node, mut events) = start(
        config(Some(lan.clone()), Some(key)),
        TcpTransport::loopback(),
        MemStorage::default(),
    )
    .await
    .unwrap();
    let me = lan
        .seen
        .lock()
        .unwrap()
        .announced
        .clone()
        .expect("announced");
    assert_eq!(me.network, Some(p2p_core::network_fingerprint(&key)));
    lan.hear(public.local_addr(), public.id().as_str(), None)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(node.peers().await.unwrap().is_empty());
    assert!(public.peers().await.unwrap().is_empty());
    // Not even tried: no dial that failed in the handshake.
    while let Some(e) = events.try_next() {
        assert!(
            !matches!(
                e,
                p2p_net::NetEvent::Core(Event::DialFailed { .. } | Event::ProtocolError { .. })
            ),
            "{e:?}"
        );
    }
}
