//! Byte-level interop with the reference Go node: scripted peers that send
//! exactly the reference's sequences (PROTOCOL.md sections 2, 3 and 5),
//! against our driver over real loopback TCP.

use std::time::Duration;

mod common;

use p2p_core::{Event, Target};
use p2p_net::{start, DiskStorage, Events, NetConfig, NodeHandle, TcpTransport};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const REF_ID: &str = "0123456789abcdef0123456789abcdef";

async fn our_node(dir: &std::path::Path) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    cfg.core.name = Some("ours".into());
    start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir).unwrap(),
    )
    .await
    .unwrap()
}

struct Script {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    /// Extension frames seen (the caps frame).
    opaque: usize,
}

impl Script {
    fn new(s: TcpStream) -> Self {
        let (r, w) = s.into_split();
        Script {
            rd: BufReader::new(r),
            wr: w,
            opaque: 0,
        }
    }

    /// The next frame as the reference reads it: `Ok(line)` or
    /// `Err(payload)` of a bytes frame. Our extension frames (`P2PX/`,
    /// which the reference shows as `<binary data: N bytes>`) are counted
    /// and skipped; there may be one per connection.
    async fn frame(&mut self) -> Result<String, Vec<u8>> {
        loop {
            let mut l = String::new();
            tokio::time::timeout(Duration::from_secs(10), self.rd.read_line(&mut l))
                .await
                .expect("a line in time")
                .expect("readable");
            let l = l.trim_end().to_owned();
            let Some(len) = l.strip_prefix("BYTES:") else {
                return Ok(l);
            };
            let payload = self.payload(len.parse().expect("a length")).await;
            if !payload.starts_with(b"P2PX/") {
                return Err(payload);
            }
            self.opaque += 1;
            assert!(
                self.opaque <= 1,
                "more than one opaque frame on a connection"
            );
        }
    }

    async fn line(&mut self) -> String {
        match self.frame().await {
            Ok(l) => l,
            Err(b) => panic!("a bytes frame of {} bytes where a line was due", b.len()),
        }
    }

    async fn payload(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        tokio::time::timeout(Duration::from_secs(10), self.rd.read_exact(&mut buf))
            .await
            .expect("a payload in time")
            .expect("readable");
        buf
    }

    /// Reads lines until one satisfies `f` (the reference ignores the rest).
    async fn line_where(&mut self, f: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "connection closed");
            if f(&l) {
                return l;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    /// One bytes frame, as the reference writes it.
    async fn bytes_frame(&mut self, payload: &[u8]) {
        let mut f = format!("BYTES:{}\n", payload.len()).into_bytes();
        f.extend_from_slice(payload);
        self.send(&f).await;
    }

    /// Reads one bytes frame (skipping control lines).
    async fn read_bytes_frame(&mut self) -> Vec<u8> {
        loop {
            if let Err(payload) = self.frame().await {
                return payload;
            }
        }
    }
}

fn hex(d: &[u8]) -> String {
    hex::encode(d)
}

#[tokio::test]
async fn reference_dialer_handshakes_chats_and_sends_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (node, mut events) = our_node(dir.path()).await;
    let mut r = Script::new(TcpStream::connect(node.local_addr()).await.unwrap());
    // The reference dialer: hello, then always LISTEN:localhost:<port>.
    r.send(format!("{REF_ID}:gopher\nLISTEN:localhost:9300\n").as_bytes())
        .await;
    let hello = r.line().await;
    assert_eq!(hello, format!("{}:ours", node.id()));
    let addr = common::wait_core(&mut events, 10, |e| match e {
        Event::PeerConnected { addr, name, .. } if name == "gopher" => Some(addr.clone()),
        _ => None,
    })
    .await;
    assert_eq!(addr.unwrap().as_str(), "127.0.0.1:9300");
    // The reference asks for peers, answers our PING, chats.
    r.send(b"REQUEST_PEERS\n").await;
    r.line_where(|l| l == "PING").await;
    r.send(b"PONG\r\nhello from go\r\n").await;
    let text = common::wait_core(&mut events, 10, |e| match e {
        Event::Chat { text, .. } => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "hello from go");
    node.chat("hello from rust").await.unwrap();
    r.line_where(|l| l == "hello from rust").await;
    r.send(b"PING\n").await;
    r.line_where(|l| l == "PONG").await;

    // A file exactly as the reference CLI sends it: START, 256 KiB chunks, END.
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex(&Sha256::digest(&data));
    r.bytes_frame(format!("FILESTART:go.bin|{}|{sha}\n", data.len()).as_bytes())
        .await;
    for chunk in data.chunks(256 * 1024) {
        let mut p = b"FILECHUNK:go.bin\n".to_vec();
        p.extend_from_slice(chunk);
        r.bytes_frame(&p).await;
    }
    r.bytes_frame(format!("FILEEND:go.bin|{sha}\n").as_bytes())
        .await;
    let got = common::wait_core(&mut events, 10, |e| match e {
        Event::FileReceived { sha256, .. } => Some(sha256.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, sha);
    assert_eq!(std::fs::read(dir.path().join("go.bin")).unwrap(), data);
    // An opaque binary message.
    r.bytes_frame(b"\x00\x01custom").await;
    let n = common::wait_core(&mut events, 10, |e| match e {
        Event::Bytes { data, .. } => Some(data.len()),
        _ => None,
    })
    .await;
    assert_eq!(n, 8);
}

#[tokio::test]
async fn our_dialer_against_a_reference_listener_and_a_file_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (node, mut events) = our_node(dir.path()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ref_addr = listener.local_addr().unwrap();
    node.connect(&format!("localhost:{}", ref_addr.port()))
        .await
        .unwrap();
    let (s, _) = listener.accept().await.unwrap();
    let mut r = Script::new(s);
    // We send hello then LISTEN with a reachable address (not a quirk).
    assert_eq!(r.line().await, format!("{}:ours", node.id()));
    assert_eq!(
        r.line().await,
        format!("LISTEN:127.0.0.1:{}", node.local_addr().port())
    );
    // The reference listener answers its hello, then PEERS.
    r.send(format!("{REF_ID}:gopher\nPEERS:127.0.0.1:1,localhost:9301\n").as_bytes())
        .await;
    common::wait_core(&mut events, 10, |e| {
        matches!(e, Event::PeerConnected { name, outbound: true, .. } if name == "gopher")
            .then_some(())
    })
    .await;
    let new = common::wait_core(&mut events, 10, |e| match e {
        Event::PeersDiscovered { new, .. } => Some(new.clone()),
        _ => None,
    })
    .await;
    assert_eq!(new.len(), 2);
    r.line_where(|l| l == "REQUEST_PEERS").await;

    // A file from us, read back as the reference would parse it.
    let path = dir.path().join("to-go.txt");
    let data = b"file content for the reference node".repeat(10_000);
    std::fs::write(&path, &data).unwrap();
    let sender = node.clone();
    let send = tokio::spawn(async move { sender.send_file(&path, Target::All).await });
    let start = String::from_utf8(r.read_bytes_frame().await).unwrap();
    let sha = hex(&Sha256::digest(&data));
    assert_eq!(start, format!("FILESTART:to-go.txt|{}|{sha}\n", data.len()));
    let mut got = Vec::new();
    loop {
        let f = r.read_bytes_frame().await;
        if let Some(rest) = f.strip_prefix(b"FILECHUNK:to-go.txt\n") {
            assert!(rest.len() <= 256 * 1024);
            got.extend_from_slice(rest);
        } else {
            assert_eq!(
                String::from_utf8(f).unwrap(),
                format!("FILEEND:to-go.txt|{sha}\n")
            );
            break;
        }
    }
    assert_eq!(got, data);
    assert_eq!(send.await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn a_full_node_refuses_a_reference_dialer_with_max_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new(0);
    cfg.core.connections.max_peers = 1;
    let (node, _events) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir.path()).unwrap(),
    )
    .await
    .unwrap();
    let mut first = Script::new(TcpStream::connect(node.local_addr()).await.unwrap());
    first.send(b"aaaa:first\nLISTEN:localhost:9400\n").await;
    first.line().await;
    let mut second = Script::new(TcpStream::connect(node.local_addr()).await.unwrap());
    second.send(b"bbbb:second\nLISTEN:localhost:9401\n").await;
    // The reference reads this one line and closes.
    assert_eq!(second.line().await, "MAX_PEERS");
    // Same id again: DUPLICATE.
    let mut dup = Script::new(TcpStream::connect(node.local_addr()).await.unwrap());
    dup.send(b"aaaa:again\n").await;
    // DUPLICATE is checked before MAX_PEERS, as the reference does.
    assert_eq!(dup.line().await, "DUPLICATE");
}

/// Content-addressed sharing between two of our nodes, with a reference
/// dialer connected to the holder the whole time: the reference sees its
/// one opaque frame (caps) and nothing of the swarm traffic, and a legacy
/// file from it still arrives (docs/PROTOCOL.md §9.7).
#[tokio::test]
async fn a_reference_peer_sees_nothing_of_swarm_traffic_and_send_still_works() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, mut a_events) = our_node(dir_a.path()).await;
    let mut r = Script::new(TcpStream::connect(a.local_addr()).await.unwrap());
    r.send(format!("{REF_ID}:gopher\nLISTEN:localhost:9302\n").as_bytes())
        .await;
    assert_eq!(r.line().await, format!("{}:ours", a.id()));
    common::wait_core(&mut a_events, 10, |e| {
        matches!(e, Event::PeerConnected { name, .. } if name == "gopher").then_some(())
    })
    .await;
    // A shares a file; B (ours) fetches it by id.
    let src = dir_a.path().join("shared.bin");
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    a.share(&src).await.unwrap();
    let id = common::wait_core(&mut a_events, 10, |e| match e {
        Event::Shared { id, .. } => Some(*id),
        _ => None,
    })
    .await;
    let mut cfg = NetConfig::new(0);
    cfg.core.name = Some("b".into());
    cfg.debug_events = true;
    cfg.bootstrap.push(a.local_addr().to_string());
    let (b, mut b_events) = start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir_b.path()).unwrap(),
    )
    .await
    .unwrap();
    common::wait_core(&mut b_events, 10, |e| {
        matches!(e, Event::IndexReceived { entries: 1, .. }).then_some(())
    })
    .await;
    b.get(&id.to_hex()[..12], None).await.unwrap();
    let path = common::wait_core(&mut b_events, 20, |e| match e {
        Event::DownloadComplete { path, .. } => Some(path.clone()),
        Event::DownloadFailed { error, .. } => panic!("download failed: {error}"),
        _ => None,
    })
    .await;
    assert_eq!(std::fs::read(dir_b.path().join(&path)).unwrap(), data);
    // The reference, meanwhile: lines and at most the one opaque frame
    // (`Script::frame` fails on a second). A file from it still arrives.
    r.send(b"PING\n").await;
    r.line_where(|l| l == "PONG").await;
    let small = b"legacy push".to_vec();
    let sha = hex(&Sha256::digest(&small));
    r.bytes_frame(format!("FILESTART:legacy.txt|{}|{sha}\n", small.len()).as_bytes())
        .await;
    let mut chunk = b"FILECHUNK:legacy.txt\n".to_vec();
    chunk.extend_from_slice(&small);
    r.bytes_frame(&chunk).await;
    r.bytes_frame(format!("FILEEND:legacy.txt|{sha}\n").as_bytes())
        .await;
    common::wait_core(&mut a_events, 10, |e| {
        matches!(e, Event::FileReceived { name, .. } if name == "legacy.txt").then_some(())
    })
    .await;
    r.send(b"PING\n").await;
    r.line_where(|l| l == "PONG").await;
    assert_eq!(r.opaque, 1, "the caps frame and nothing else");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
