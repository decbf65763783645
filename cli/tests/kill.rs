//! Processes killed in the middle of a transfer leave no final file.

mod util;

use util::{random_file, Proc};

#[test]
fn a_receiver_killed_mid_transfer_leaves_no_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    a.wait(15, |e| e["type"] == "peer_connected");
    let path = dir.path().join("big.bin");
    random_file(&path, 256 << 20, 7);
    a.send(&format!("/send {}", path.display()));
    b.wait(60, |e| e["type"] == "file_progress");
    b.kill();
    let files = util::files_under(&b.downloads);
    assert!(!files.contains(&"big.bin".to_owned()), "{files:?}");
    // The sender notices and goes on.
    a.wait(30, |e| {
        e["type"] == "file_send_failed" || (e["type"] == "file_sent" && e["peers"] == 0)
    });
    a.wait(10, |e| e["type"] == "peer_disconnected");
    a.send("/peers");
    a.wait(10, |e| e["type"] == "peers");
}

#[test]
fn a_sender_killed_mid_transfer_leaves_the_receiver_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    let path = dir.path().join("big.bin");
    random_file(&path, 256 << 20, 8);
    a.send(&format!("/send {}", path.display()));
    b.wait(60, |e| e["type"] == "file_progress");
    a.kill();
    b.wait(70, |e| {
        e["type"] == "file_failed" && e["failure"]["kind"] == "peer_gone"
    });
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
}

#[test]
fn a_graceful_stop_mid_transfer_removes_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    let path = dir.path().join("big.bin");
    random_file(&path, 256 << 20, 9);
    a.send(&format!("/send {}", path.display()));
    b.wait(60, |e| e["type"] == "file_progress");
    assert!(b.terminate().success());
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
}
