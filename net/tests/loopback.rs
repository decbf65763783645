//! The driver over real loopback TCP: chat, files, shutdown.

mod common;

use common::wait_for;
use p2p_core::{Event, Target};
use p2p_net::{start, DiskStorage, Events, NetConfig, NetEvent, NodeHandle, TcpTransport};

async fn node(
    name: &str,
    dir: &std::path::Path,
    bootstrap: Option<std::net::SocketAddr>,
) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    cfg.core.name = Some(name.into());
    cfg.seed = name.bytes().map(u64::from).sum();
    if let Some(b) = bootstrap {
        cfg.bootstrap.push(b.to_string());
    }
    let storage = DiskStorage::new(dir.join(name)).unwrap();
    start(cfg, TcpTransport::loopback(), storage).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_chat_and_move_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut ae) = node("alice", dir.path(), None).await;
    let (b, mut be) = node("bob", dir.path(), Some(a.local_addr())).await;
    wait_for(&mut be, 10, |e| {
        matches!(e, NetEvent::Core(Event::PeerConnected { .. })).then_some(())
    })
    .await;
    wait_for(&mut ae, 10, |e| {
        matches!(e, NetEvent::Core(Event::PeerConnected { .. })).then_some(())
    })
    .await;

    b.chat("hi alice").await.unwrap();
    let text = wait_for(&mut ae, 10, |e| match e {
        NetEvent::Core(Event::Chat { text, name, .. }) if name == "bob" => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "hi alice");

    let path = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    assert_eq!(a.send_file(&path, Target::All).await.unwrap(), 1);
    let saved = wait_for(&mut be, 20, |e| match e {
        NetEvent::Core(Event::FileReceived { saved_as, .. }) => Some(saved_as.clone()),
        _ => None,
    })
    .await;
    assert!(saved.ends_with("payload.bin"), "{saved}");
    assert_eq!(
        std::fs::read(dir.path().join("bob").join("payload.bin")).unwrap(),
        data
    );

    a.shutdown().await.unwrap();
    wait_for(&mut be, 10, |e| {
        matches!(e, NetEvent::Core(Event::PeerDisconnected { .. })).then_some(())
    })
    .await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _ae) = node("first", dir.path(), None).await;
    let mut cfg = NetConfig::new(a.local_addr().port());
    cfg.core.name = Some("second".into());
    let err = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir.path().join("s")).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot listen on port"), "{err}");
}
