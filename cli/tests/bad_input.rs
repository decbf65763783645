//! A scripted raw-socket peer sends each bad input of PROTOCOL.md section 6
//! to a `p2p-node` process: the node reports it, closes that connection
//! only, keeps serving its other peers and writes nothing outside its
//! downloads directory.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::Proc;

fn raw(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// A raw peer that completed the handshake as the reference dialer does.
fn handshaked(port: u16, id: &str) -> TcpStream {
    let mut s = raw(port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{id}:{id}\nLISTEN:localhost:9999\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    s
}

/// How a connection ended, as seen by reading it until a deadline.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// EOF or a reset: the node closed it.
    Closed,
    /// Still open at the deadline.
    Open,
}

/// Reads and discards from `s` until the node closes it (EOF or reset), or
/// until `within` has passed with the connection still open. A read timeout
/// is a timeout, never a close.
fn closed_within(s: &mut TcpStream, within: Duration) -> Seen {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Seen::Open;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Seen::Closed,
            Ok(_) => {}
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => return Seen::Open,
                ErrorKind::Interrupted => {}
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => return Seen::Closed,
                _ => panic!("unexpected read error: {e}"),
            },
        }
    }
}

fn bytes_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = format!("BYTES:{}\n", payload.len()).into_bytes();
    f.extend_from_slice(payload);
    f
}

#[test]
fn every_bad_input_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    a.wait(15, |e| e["type"] == "peer_connected");
    b.wait(15, |e| e["type"] == "peer_connected");

    // Frames that must close the connection with a typed error.
    let long_line = vec![b'x'; 1 << 20];
    let mut huge_frame = b"BYTES:268435456\n".to_vec();
    huge_frame.extend(std::iter::repeat_n(0u8, 1 << 16));
    let cases: [(&str, &[u8], &str); 4] = [
        ("huge", b"BYTES:999999999999\n", "bytes_too_large"),
        ("negative", b"BYTES:-1\n", "bad_bytes_length"),
        ("endless", &long_line, "line_too_long"),
        ("oversized", &huge_frame, "bytes_too_large"),
    ];
    for (id, bytes, kind) in cases {
        let mut s = handshaked(a.port, id);
        let _ = s.write_all(bytes);
        a.wait(10, |e| {
            e["type"] == "protocol_error"
                && e["peer"] == id
                && e["error"]["kind"] == "decode"
                && e["error"]["detail"]["kind"] == kind
        });
        // The error is reported before the close: the close follows at once.
        assert_eq!(
            closed_within(&mut s, Duration::from_secs(3)),
            Seen::Closed,
            "{id}: still open"
        );
    }

    // File frames that must abort only the transfer.
    let mut s = handshaked(a.port, "traversal");
    // The helper tells an open connection from a closed one.
    assert_eq!(
        closed_within(&mut s, Duration::from_millis(300)),
        Seen::Open
    );
    let sha = "0".repeat(64);
    for name in ["../evil.txt", "../../../../x", "/tmp/abs"] {
        s.write_all(&bytes_frame(
            format!("FILESTART:{name}|5|{sha}\n").as_bytes(),
        ))
        .unwrap();
        s.write_all(&bytes_frame(format!("FILECHUNK:{name}\nevil!").as_bytes()))
            .unwrap();
    }
    s.write_all(&bytes_frame(
        format!("FILESTART:ok.txt|3|{sha}\n").as_bytes(),
    ))
    .unwrap();
    s.write_all(&bytes_frame(b"FILECHUNK:ok.txt\ntoo long"))
        .unwrap();
    a.wait(10, |e| {
        e["type"] == "file_failed" && e["failure"]["kind"] == "overflow"
    });
    assert_eq!(
        a.count(|e| e["type"] == "file_failed" && e["failure"]["kind"] == "invalid_name"),
        3
    );
    s.write_all(b"still talking\n").unwrap();
    a.wait(10, |e| e["type"] == "chat" && e["text"] == "still talking");

    // 500 idle connections and an unfinished hello: closed at the 10 s
    // handshake deadline, while the real peer keeps chatting.
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..500).map(|_| raw(a.port)).collect();
    idle[0].write_all(b"half-a-hel").unwrap();
    b.send("during the flood");
    a.wait(10, |e| {
        e["type"] == "chat" && e["text"] == "during the flood"
    });
    // Still open well before the deadline...
    assert_eq!(
        closed_within(&mut idle[0], Duration::from_secs(5)),
        Seen::Open
    );
    assert_eq!(
        closed_within(&mut idle[499], Duration::from_millis(10)),
        Seen::Open
    );
    // ... and closed by it, well before the 60 s peer timeout.
    for (k, s) in idle.iter_mut().enumerate() {
        let left = (opened + Duration::from_secs(15)).saturating_duration_since(Instant::now());
        assert_eq!(closed_within(s, left), Seen::Closed, "idle connection {k}");
    }
    assert!(
        opened.elapsed() >= Duration::from_secs(9),
        "closed before the deadline"
    );
    a.drain(500);
    assert!(
        a.count(|e| e["type"] == "protocol_error" && e["error"]["kind"] == "handshake_timeout")
            >= 500
    );

    // The real peer never noticed.
    a.send("after all that");
    b.wait(10, |e| e["type"] == "chat" && e["text"] == "after all that");
    assert_eq!(b.count(|e| e["type"] == "peer_disconnected"), 0);
    // Nothing written anywhere but the (still empty) downloads directories.
    assert_eq!(util::files_under(dir.path()), Vec::<String>::new());
}
