//! `p2p-node` stopped the ways its users stop it (`/quit`, Ctrl-C, SIGTERM)
//! while a peer is sending it a large file: it exits cleanly and promptly,
//! leaves no part file, and the peer sees it go at once, as a goodbye (not
//! after the 60 s peer timeout). With stdin closed it keeps running until a signal.

mod util;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use util::Proc;

const SIZE: usize = 256 << 20;
/// Received before the stop, so that the download is well under way.
const PROGRESS: u64 = 8 << 20;
/// "Promptly": far below the 60 s peer timeout and the 10 s deadlines.
const PROMPT: Duration = Duration::from_secs(5);

/// One 256 MiB file for every test of this binary.
fn big_file() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        util::random_file(&path, SIZE, 11);
        (dir, path)
    });
    path
}

/// alice sending big.bin to bob, and bob part-way through receiving it.
fn downloading(dir: &Path, bob_stdin: bool) -> (Proc, Proc) {
    let mut a = Proc::start("alice", dir, None, &[]);
    let mut b = Proc::start_with("bob", dir, Some(a.port), &[], bob_stdin);
    a.wait(15, |e| e["type"] == "peer_connected");
    b.wait(15, |e| e["type"] == "peer_connected");
    a.send(&format!("/send {}", big_file().display()));
    b.wait_progress(60, PROGRESS);
    let parts = util::part_files(&b.downloads);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(parts[0].1 > 0, "{parts:?}");
    (a, b)
}

/// After bob was told to stop at `stopped`: it exits with success within
/// [`PROMPT`], its downloads folder is empty, and alice sees it disconnect
/// within [`PROMPT`] too.
fn stops_cleanly(a: &mut Proc, b: &mut Proc, stopped: Instant) {
    stops_leaving(a, b, stopped, true);
}

/// [`stops_cleanly`], where `mid_download` says whether the download must
/// still have been running (otherwise it may have completed: only part
/// files must be gone).
fn stops_leaving(a: &mut Proc, b: &mut Proc, stopped: Instant, mid_download: bool) {
    let status = b.exit_within(PROMPT.as_millis() as u64);
    let status = status.unwrap_or_else(|| {
        panic!(
            "bob still running {PROMPT:?} after being stopped; events: {:#?}",
            b.seen
        )
    });
    assert!(status.success(), "bob exited with {status}");
    b.drain(100);
    if mid_download {
        assert_eq!(b.count(|e| e["type"] == "file_received"), 0);
        assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
    } else {
        assert_eq!(util::part_files(&b.downloads), Vec::new());
    }
    let left = PROMPT.saturating_sub(stopped.elapsed()).as_secs().max(1);
    let gone = a.wait(left, |e| {
        e["type"] == "peer_disconnected" && e["name"] == "bob"
    });
    assert!(
        stopped.elapsed() < PROMPT,
        "seen after {:?}",
        stopped.elapsed()
    );
    // bob said goodbye as it stopped (leave/1): alice sees it leave, not
    // a connection that happened to close.
    assert_eq!(gone["reason"]["kind"], "left", "{gone}");
}

#[test]
fn quit_mid_download() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = downloading(dir.path(), true);
    let t = Instant::now();
    b.send("/quit");
    stops_cleanly(&mut a, &mut b, t);
}

#[test]
fn sigint_mid_download() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = downloading(dir.path(), true);
    let t = Instant::now();
    b.signal("INT");
    stops_cleanly(&mut a, &mut b, t);
}

#[test]
fn sigterm_mid_download() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = downloading(dir.path(), true);
    let t = Instant::now();
    b.signal("TERM");
    stops_cleanly(&mut a, &mut b, t);
}

/// A signal while the node is busy with typed commands: one that arrives
/// while a command is being carried out still stops it.
fn signal_while_busy_with_commands(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    // Commands keep coming until the node is gone (the write then fails).
    let mut stdin = b.stdin.take().unwrap();
    let typist = std::thread::spawn(move || {
        let lines = "/peers\n".repeat(500);
        while std::io::Write::write_all(&mut stdin, lines.as_bytes()).is_ok() {}
    });
    b.wait(10, |e| e["type"] == "peers");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    b.signal(sig);
    let status = b.exit_within(PROMPT.as_millis() as u64);
    assert!(
        status.is_some_and(|s| s.success()),
        "bob did not stop on SIG{sig} while busy: {status:?}"
    );
    a.wait(5, |e| {
        e["type"] == "peer_disconnected" && e["name"] == "bob"
    });
    assert!(t.elapsed() < PROMPT);
    typist.join().unwrap();
}

#[test]
fn sigint_while_busy_with_commands() {
    signal_while_busy_with_commands("INT");
}

#[test]
fn sigterm_while_busy_with_commands() {
    signal_while_busy_with_commands("TERM");
}

#[test]
fn stdin_closed_keeps_running_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = downloading(dir.path(), false);
    // stdin was at EOF from the start: the node runs on, and keeps
    // receiving and answering.
    std::thread::sleep(Duration::from_millis(500));
    assert!(b.exit_within(0).is_none(), "bob exited with stdin closed");
    let before = b.count(|e| e["type"] == "file_progress");
    b.wait_progress(60, 2 * PROGRESS);
    assert!(b.count(|e| e["type"] == "file_progress") > before);
    a.send("/msg bob are you there");
    b.wait(10, |e| e["type"] == "chat" && e["text"] == "are you there");
    assert!(b.exit_within(0).is_none(), "bob exited with stdin closed");
    let t = Instant::now();
    b.signal("TERM");
    // 256 MiB can arrive within the second this test takes.
    stops_leaving(&mut a, &mut b, t, false);
}
