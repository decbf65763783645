//! Processes killed in the middle of a transfer leave no final file.

mod util;

#[test]
fn a_receiver_killed_mid_transfer_leaves_no_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = util::mid_transfer(dir.path(), 256, 7);
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
    let (mut a, mut b) = util::mid_transfer(dir.path(), 256, 8);
    a.kill();
    b.wait(70, |e| {
        e["type"] == "file_failed" && e["failure"]["kind"] == "peer_gone"
    });
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
}

#[test]
fn a_graceful_stop_mid_transfer_removes_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, mut b) = util::mid_transfer(dir.path(), 256, 9);
    assert!(b.terminate().success());
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
}
