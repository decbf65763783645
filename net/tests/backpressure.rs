//! A peer that stops reading slows only its own connection, and is dropped
//! with a reported reason once its queue stays over the limit.

use std::time::Duration;

mod common;

use common::wait_for as wait;
use p2p_core::{CloseReason, DisconnectReason, Event, Target};
use p2p_net::{start, DiskStorage, NetConfig, NetEvent, TcpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_dropped_and_the_others_get_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new(0);
    cfg.send_queue_limit = 1 << 20;
    cfg.slow_reader_timeout = Duration::from_secs(2);
    let (a, mut ae) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir.path().join("a")).unwrap(),
    )
    .await
    .unwrap();
    let (_b, mut be) = common::joined(a.local_addr(), &dir.path().join("b")).await;

    // A peer that handshakes, answers once, then never reads again.
    let mut stalled = tokio::net::TcpStream::connect(a.local_addr())
        .await
        .unwrap();
    stalled
        .write_all(b"staller:staller\nLISTEN:localhost:9999\nPONG\n")
        .await
        .unwrap();
    let mut hello = [0u8; 8];
    stalled.read_exact(&mut hello).await.unwrap();
    wait(&mut ae, 10, |e| match e {
        NetEvent::Core(Event::PeerConnected { peers: 2, .. }) => Some(()),
        _ => None,
    })
    .await;

    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..48u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let sender = a.clone();
    let send = tokio::spawn(async move { sender.send_file(&path, Target::All).await });

    let reason = wait(&mut ae, 30, |e| match e {
        NetEvent::Core(Event::PeerDisconnected { peer, reason, .. })
            if peer.as_str() == "staller" =>
        {
            Some(reason.clone())
        }
        _ => None,
    })
    .await;
    assert!(
        matches!(reason, DisconnectReason::Closed { reason: CloseReason::SlowReader { queued } } if queued > 1 << 20),
        "{reason:?}"
    );
    let received = wait(&mut be, 60, |e| match e {
        NetEvent::Core(Event::FileReceived { size, .. }) => Some(*size),
        _ => None,
    })
    .await;
    assert_eq!(received, data.len() as u64);
    assert_eq!(
        send.await.unwrap().unwrap(),
        1,
        "only the reading peer got all of it"
    );
    assert_eq!(
        std::fs::read(dir.path().join("b").join("big.bin")).unwrap(),
        data
    );
    drop(stalled);
}
