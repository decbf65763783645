//! Processes killed in the middle of a transfer leave no final file.

mod util;

use std::path::Path;

use util::Proc;

/// Size of the file sent, and the progress waited for before the kill.
const MIB: usize = 1 << 20;
const SIZE_MIB: usize = 256;
const PROGRESS: u64 = 16 << 20;

/// The data in flight lives in one part file with real content, and the
/// final name does not exist yet.
fn assert_only_a_part_file(downloads: &Path) -> String {
    let parts = util::part_files(downloads);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let (part, len) = &parts[0];
    assert!(part.starts_with(".big.bin."), "{part}");
    assert!(*len > 0, "{part} is empty after {PROGRESS} bytes arrived");
    assert!(!downloads.join("big.bin").exists());
    assert_eq!(util::files_under(downloads), std::slice::from_ref(part));
    part.clone()
}

/// `/peers` lists exactly the peers named `names`.
fn assert_peers(p: &mut Proc, names: &[&str]) {
    let before = p.count(|e| e["type"] == "peers");
    p.send("/peers");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.count(|e| e["type"] == "peers") == before {
        assert!(std::time::Instant::now() < deadline, "no answer to /peers");
        p.drain(50);
    }
    let reply = p.seen.iter().rfind(|e| e["type"] == "peers").unwrap();
    let mut got: Vec<&str> = reply["peers"]
        .as_array()
        .expect("a list of peers")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    got.sort();
    assert_eq!(got, names, "{reply}");
}

#[test]
fn a_receiver_killed_mid_transfer_leaves_no_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = util::mid_transfer(dir.path(), SIZE_MIB, 7);
    b.wait_progress(60, PROGRESS);
    let part = assert_only_a_part_file(&b.downloads);
    assert_peers(&mut a, &["bob"]);
    b.kill();
    // The sender notices and goes on.
    a.wait(30, |e| {
        e["type"] == "file_send_failed" || (e["type"] == "file_sent" && e["peers"] == 0)
    });
    a.wait(10, |e| {
        e["type"] == "peer_disconnected" && e["name"] == "bob"
    });
    assert_peers(&mut a, &[]);
    // Nobody finished the file under its final name: SIGKILL leaves only
    // the part file as it was.
    let files = util::files_under(&b.downloads);
    assert_eq!(files, [part], "{files:?}");
    assert!(util::part_files(&b.downloads)[0].1 < (SIZE_MIB * MIB) as u64);
}

#[test]
fn a_sender_killed_mid_transfer_leaves_the_receiver_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = util::mid_transfer(dir.path(), SIZE_MIB, 8);
    b.wait_progress(60, PROGRESS);
    assert_only_a_part_file(&b.downloads);
    a.kill();
    // The socket closes with the process: noticed at once, not after the
    // 60 s peer timeout.
    b.wait(10, |e| {
        e["type"] == "file_failed" && e["failure"]["kind"] == "peer_gone"
    });
    b.wait(5, |e| {
        e["type"] == "peer_disconnected" && e["name"] == "alice"
    });
    // The part file is deleted by the storage worker, right after the
    // event that reports the abort.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !util::files_under(&b.downloads).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
    assert_peers(&mut b, &[]);
}

#[test]
fn a_graceful_stop_mid_transfer_removes_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, mut b) = util::mid_transfer(dir.path(), SIZE_MIB, 9);
    b.wait_progress(60, PROGRESS);
    assert_only_a_part_file(&b.downloads);
    assert!(b.terminate().success());
    assert_eq!(util::files_under(&b.downloads), Vec::<String>::new());
}
