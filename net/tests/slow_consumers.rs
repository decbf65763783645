//! Backpressure that reaches the sockets: an application that stops
//! reading events, and a disk that takes seconds, slow down only the peer
//! whose traffic needs them; pings and other peers keep flowing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_core::{Event, Target, TransferId};
use p2p_net::{start, DiskStorage, MemStorage, NetConfig, NetEvent, Storage, TcpTransport};

/// A raw reference-style peer: handshakes with `to` under `id` and reads
/// up to the node's caps frame (the last thing it sends after the hello),
/// so that what follows is lines only.
fn raw_peer(to: SocketAddr, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{id}:{id}\nLISTEN:127.0.0.1:1\n").unwrap();
    loop {
        // Byte by byte: nothing past the caps frame may be swallowed.
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while b[0] != b'\n' {
            s.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
        if let Some(len) = std::str::from_utf8(&line)
            .unwrap()
            .trim()
            .strip_prefix("BYTES:")
        {
            let mut payload = vec![0; len.parse().unwrap()];
            s.read_exact(&mut payload).unwrap();
            assert!(payload.starts_with(b"P2PX/caps\n"));
            return s;
        }
    }
}

/// Sends `PING` every 100 ms for `run` and returns the slowest `PONG`.
fn ping_worst(s: TcpStream, run: Duration) -> Duration {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < run {
        let sent = Instant::now();
        w.write_all(b"PING\n").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "closed");
            if line.trim() == "PONG" {
                break;
            }
        }
        worst = worst.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    worst
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_stops_reading_slows_only_the_flooding_peer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new(0);
    cfg.event_queue = 64;
    let (a, mut events) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir.path()).unwrap(),
    )
    .await
    .unwrap();
    let addr = a.local_addr();
    let pinger_conn = raw_peer(addr, "pinger");
    let flooder_conn = raw_peer(addr, "flooder");
    common::wait_core(&mut events, 5, |e| {
        matches!(e, Event::PeerConnected { peers: 2, .. }).then_some(())
    })
    .await;
    // From here on nobody reads `events`.
    let flooded = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (flooded, stop) = (flooded.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = flooder_conn;
            s.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let line = format!("{}\n", "x".repeat(99));
            let block = line.repeat(100);
            while !stop.load(Ordering::Relaxed) {
                match s.write(block.as_bytes()) {
                    Ok(n) => {
                        flooded.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let pinger = std::thread::spawn(move || ping_worst(pinger_conn, Duration::from_secs(4)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (bytes_1s, rss_1s) = (flooded.load(Ordering::Relaxed), rss_kib());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (bytes_4s, rss_4s) = (flooded.load(Ordering::Relaxed), rss_kib());
    stop.store(true, Ordering::Relaxed);
    let worst = tokio::task::spawn_blocking(move || pinger.join().unwrap())
        .await
        .unwrap();
    flooder.join().unwrap();
    eprintln!(
        "flooder wrote {bytes_1s} bytes by 1 s, {bytes_4s} by 4 s; RSS {rss_1s} KiB then {rss_4s} KiB; slowest PONG {worst:?}"
    );
    // TCP pushed back: after the first second the flooder got almost nothing
    // more through (socket buffers are a few MB at most).
    assert!(
        bytes_4s - bytes_1s < 16 * 1024 * 1024,
        "{bytes_1s} -> {bytes_4s}"
    );
    // Memory flat while the flood went on.
    assert!(rss_4s < rss_1s + 16 * 1024, "RSS {rss_1s} -> {rss_4s} KiB");
    // The other peer's pings were answered promptly throughout.
    assert!(worst < Duration::from_millis(500), "slowest PONG {worst:?}");
    drop(events);
    a.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_floods_pings_and_reads_no_pong_is_not_read_either() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new(0);
    cfg.send_queue_limit = 1024 * 1024;
    let (a, _events) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir.path()).unwrap(),
    )
    .await
    .unwrap();
    let addr = a.local_addr();
    let pinger_conn = raw_peer(addr, "pinger");
    let mut flooder = raw_peer(addr, "flooder");
    let written = tokio::task::spawn_blocking(move || {
        flooder
            .set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let block = "PING\n".repeat(20_000);
        let (mut total, start) = (0u64, Instant::now());
        let mut at_1s = None;
        while start.elapsed() < Duration::from_secs(3) {
            if at_1s.is_none() && start.elapsed() >= Duration::from_secs(1) {
                at_1s = Some(total);
            }
            match flooder.write(block.as_bytes()) {
                Ok(n) => total += n as u64,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        (at_1s.unwrap_or(total), total)
    });
    let worst =
        tokio::task::spawn_blocking(move || ping_worst(pinger_conn, Duration::from_secs(3)))
            .await
            .unwrap();
    let (at_1s, total) = written.await.unwrap();
    eprintln!(
        "PING flood: {at_1s} bytes by 1 s, {total} by 3 s; other peer's slowest PONG {worst:?}"
    );
    // Our PONGs to it stay queued (it reads none): once its queue passed
    // the limit we stopped reading its PINGs, so it wrote almost nothing
    // more (kernel buffers on both sides hold a few MB).
    assert!(total - at_1s < 8 * 1024 * 1024, "{at_1s} -> {total}");
    assert!(worst < Duration::from_millis(500), "slowest PONG {worst:?}");
    a.shutdown().await.ok();
}

/// Memory, but every write of a part file takes `delay` (on the storage
/// worker, since it blocks).
#[derive(Clone)]
struct SlowDisk {
    inner: MemStorage,
    delay: Duration,
}

impl Storage for SlowDisk {
    fn blocking(&self) -> bool {
        true
    }
    fn create(&self, t: TransferId, part: &str) -> std::io::Result<()> {
        self.inner.create(t, part)
    }
    fn write(&self, t: TransferId, data: &[u8]) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write(t, data)
    }
    fn commit(&self, t: TransferId, name: &str) -> std::io::Result<String> {
        self.inner.commit(t, name)
    }
    fn discard(&self, t: TransferId) -> std::io::Result<()> {
        self.inner.discard(t)
    }
    fn discard_all(&self) {
        self.inner.discard_all()
    }
    fn open_source(&self, t: TransferId, path: &Path) -> std::io::Result<u64> {
        self.inner.open_source(t, path)
    }
    fn read(&self, t: TransferId, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        self.inner.read(t, offset, len)
    }
    fn close_source(&self, t: TransferId) {
        self.inner.close_source(t)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_takes_seconds_stalls_neither_pings_nor_other_peers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SlowDisk {
        inner: MemStorage::default(),
        delay: Duration::from_secs(2),
    };
    let files = disk.inner.clone();
    let (a, mut ae) = start(NetConfig::new(0), TcpTransport::loopback(), disk)
        .await
        .unwrap();
    let (sender, _se) = common::joined(a.local_addr(), &dir.path().join("s")).await;
    common::connected(&mut ae).await;
    let (chatter, _ce) = common::joined(a.local_addr(), &dir.path().join("c")).await;
    common::wait_core(&mut ae, 10, |e| {
        matches!(e, Event::PeerConnected { peers: 2, .. }).then_some(())
    })
    .await;
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![5u8; 600_000]).unwrap();
    let send = tokio::spawn(async move { sender.send_file(&path, Target::All).await });
    common::wait_core(&mut ae, 10, |e| {
        matches!(e, Event::FileStarted { .. }).then_some(())
    })
    .await;
    // The first chunk's write now holds the disk for 2 s, then the next.
    let addr = a.local_addr();
    let pinger =
        std::thread::spawn(move || ping_worst(raw_peer(addr, "pinger"), Duration::from_secs(2)));
    for k in 0..5 {
        let sent = Instant::now();
        chatter.chat(&format!("line {k}")).await.unwrap();
        let text = format!("line {k}");
        common::wait_core(&mut ae, 5, |e| {
            matches!(e, Event::Chat { text: t, .. } if *t == text).then_some(())
        })
        .await;
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "chat {k} took {:?}",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let worst = tokio::task::spawn_blocking(move || pinger.join().unwrap())
        .await
        .unwrap();
    assert!(worst < Duration::from_millis(500), "slowest PONG {worst:?}");
    assert!(files.files().is_empty(), "the slow disk cannot be done yet");
    // And the file still lands, once the disk has done its writes.
    common::wait_core(&mut ae, 30, |e| {
        matches!(e, Event::FileReceived { .. }).then_some(())
    })
    .await;
    assert_eq!(files.files().len(), 1);
    send.await.unwrap().unwrap();
    let _ = NetEvent::Stopped;
}
