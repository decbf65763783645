//! The measured functions of the `loopback` bench (two `p2p-net` nodes on
//! loopback TCP, and the plain socket copy they are compared with), here so
//! that `cargo test` runs their checks (`benches/tests/checks.rs`) on a
//! small file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_core::{Event, Target};
use p2p_net::{start, DiskStorage, Events, NetConfig, NetEvent, NodeHandle, TcpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Buffer of the baseline copy: the protocol's chunk size, so both sides
/// move data in the same pieces.
pub const COPY_BUF: usize = 256 * 1024;

pub struct Pair {
    /// The sending node.
    pub sender: NodeHandle,
    /// Its events.
    pub sender_events: Events,
    /// The receiving node.
    pub receiver: NodeHandle,
    /// Its events.
    pub receiver_events: Events,
    /// Its downloads directory.
    pub receiver_dir: PathBuf,
}

/// A node with its downloads in `dir`, optionally bootstrapped.
pub async fn node(
    name: &str,
    dir: &Path,
    bootstrap: Option<std::net::SocketAddr>,
) -> (NodeHandle, Events) {
    node_with(name, dir, bootstrap, None, name.len() as u64).await
}

/// The network key of the private benches (any 32 bytes: the CLI's KDF is
/// not what is measured).
pub const BENCH_NETWORK_KEY: [u8; 32] = [0x42; 32];

/// [`node`], private with [`BENCH_NETWORK_KEY`] if `private` (its static
/// key drawn from its seed).
pub async fn node_private(
    name: &str,
    dir: &Path,
    bootstrap: Option<std::net::SocketAddr>,
    private: bool,
) -> (NodeHandle, Events) {
    let session = private.then(|| {
        let mut s = p2p_core::SessionConfig::default();
        s.network_key = Some(BENCH_NETWORK_KEY);
        s
    });
    node_with(name, dir, bootstrap, session, name.len() as u64).await
}

async fn node_with(
    name: &str,
    dir: &Path,
    bootstrap: Option<std::net::SocketAddr>,
    session: Option<p2p_core::SessionConfig>,
    seed: u64,
) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    if let Some(s) = session {
        cfg.core.session = s;
    }
    cfg.core.name = Some(name.into());
    cfg.seed = seed;
    if let Some(b) = bootstrap {
        cfg.bootstrap.push(b.to_string());
    }
    let storage = DiskStorage::new(dir).expect("downloads dir");
    start(cfg, TcpTransport::loopback(), storage)
        .await
        .expect("node starts")
}

/// The first event `f` maps to something (5 minutes at most).
pub async fn wait_for<T>(events: &mut Events, mut f: impl FnMut(NetEvent) -> Option<T>) -> T {
    let wait = async {
        loop {
            let e = events.next().await.expect("node stopped");
            if let Some(t) = f(e) {
                return t;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .expect("timed out waiting for an event")
}

/// Two connected nodes with their downloads under `root`.
pub async fn pair(root: &Path) -> Pair {
    pair_private(root, false).await
}

/// [`pair`], both nodes private (same key) if `private`.
pub async fn pair_private(root: &Path, private: bool) -> Pair {
    let receiver_dir = root.join("receiver");
    let (sender, mut sender_events) =
        node_private("sender", &root.join("sender"), None, private).await;
    let (receiver, mut receiver_events) = node_private(
        "receiver",
        &receiver_dir,
        Some(sender.local_addr()),
        private,
    )
    .await;
    for events in [&mut sender_events, &mut receiver_events] {
        wait_for(events, |e| {
            matches!(e, NetEvent::Core(Event::PeerConnected { .. })).then_some(())
        })
        .await;
    }
    Pair {
        sender,
        sender_events,
        receiver,
        receiver_events,
        receiver_dir,
    }
}

/// One transfer through the nodes; returns its duration. The received file
/// is checked by size and then deleted (outside the timing).
/// `iters` transfers one after the other (criterion's `iter_custom`):
/// their summed time.
pub async fn transfers(p: &mut Pair, path: &Path, size: u64, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += transfer(p, path, size).await;
    }
    total
}

pub async fn transfer(p: &mut Pair, path: &Path, size: u64) -> Duration {
    let t0 = Instant::now();
    let peers = p.sender.send_file(path, Target::All).await.expect("sent");
    assert_eq!(peers, 1);
    let saved = wait_for(&mut p.receiver_events, |e| match e {
        NetEvent::Core(Event::FileReceived { saved_as, size, .. }) => Some((saved_as, size)),
        NetEvent::Core(Event::FileFailed { failure, .. }) => panic!("transfer failed: {failure:?}"),
        _ => None,
    })
    .await;
    let elapsed = t0.elapsed();
    assert_eq!(saved.1, size);
    std::fs::remove_file(p.receiver_dir.join(&saved.0)).expect("remove received file");
    // Progress events pile up otherwise: nobody else reads them.
    while p.sender_events.try_next().is_some() {}
    elapsed
}

/// The baseline: read the file, write it to a loopback socket; the other
/// end reads the socket and writes a file, then fsyncs it.
pub async fn plain_copy(listener: &Arc<TcpListener>, src: &Path, dst: &Path) -> Duration {
    let t0 = Instant::now();
    let addr = listener.local_addr().expect("bound");
    let dst_owned = dst.to_owned();
    let listener = listener.clone();
    // The receiver runs as its own task, like the receiving node's driver,
    // so that its blocking file writes do not stall the sender.
    let receive = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut out = File::create(&dst_owned).expect("create");
        let mut buf = vec![0u8; COPY_BUF];
        let mut n = 0u64;
        loop {
            let k = sock.read(&mut buf).await.expect("read");
            if k == 0 {
                break;
            }
            // Blocking write in the task, as the node's DiskStorage does.
            out.write_all(&buf[..k]).expect("write");
            n += k as u64;
        }
        out.sync_all().expect("fsync");
        n
    });
    let send = async {
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        let mut file = File::open(src).expect("open");
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let k = file.read(&mut buf).expect("read file");
            if k == 0 {
                break;
            }
            sock.write_all(&buf[..k]).await.expect("send");
        }
        sock.shutdown().await.expect("shutdown");
    };
    send.await;
    let received = receive.await.expect("receiver task");
    let elapsed = t0.elapsed();
    assert_eq!(received, std::fs::metadata(src).expect("src").len());
    std::fs::remove_file(dst).expect("remove copy");
    elapsed
}

/// One connection set up from scratch: a fresh dialer node (not timed)
/// connects to `listener`; timed from `connect` to the dialer's
/// `PeerConnected` (TCP connect, the Noise handshake if private, the line
/// handshake). The dialer is then shut down (not timed).
pub async fn connect_once(listener: std::net::SocketAddr, dir: &Path, private: bool) -> Duration {
    // A new seed each time: a new id (and static key), so that the
    // listener never takes it for the previous dialer still closing.
    let session = private.then(|| {
        let mut s = p2p_core::SessionConfig::default();
        s.network_key = Some(BENCH_NETWORK_KEY);
        s
    });
    let (dialer, mut events) = node_with("dialer", dir, None, session, p2p_net::fresh_seed()).await;
    // Drain the Listening event first.
    while events.try_next().is_some() {}
    let t0 = Instant::now();
    dialer
        .connect(&listener.to_string())
        .await
        .expect("dial accepted");
    wait_for(&mut events, |e| match e {
        NetEvent::Core(Event::PeerConnected { .. }) => Some(()),
        NetEvent::Core(Event::DialFailed { reason, .. }) => panic!("dial failed: {reason}"),
        _ => None,
    })
    .await;
    let elapsed = t0.elapsed();
    dialer.shutdown().await.ok();
    while let Some(e) = events.next().await {
        if e == NetEvent::Stopped {
            break;
        }
    }
    elapsed
}
