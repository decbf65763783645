//! Three `p2p-node` processes on loopback: mesh, chat, a 64 MiB file.

mod util;

use util::{random_file, sha256_file, Proc};

#[test]
fn three_processes_mesh_chat_and_share_a_64_mib_file() {
    let dir = tempfile::tempdir().unwrap();
    let [mut a, mut b, mut c] = util::three_in_a_mesh(dir.path());

    a.send("hello from alice");
    b.send("hello from bob");
    c.send("hello from carol");
    for (p, me) in [(&mut a, "alice"), (&mut b, "bob"), (&mut c, "carol")] {
        for other in ["alice", "bob", "carol"].iter().filter(|o| **o != me) {
            let text = format!("hello from {other}");
            p.wait(10, |e| e["type"] == "chat" && e["text"] == text.as_str());
        }
    }
    // A control word is refused, not sent.
    a.send("PING");
    a.wait(5, |e| {
        e["type"] == "command_error" && e["error"].as_str().unwrap().contains("control word")
    });

    let path = dir.path().join("big.bin");
    random_file(&path, 64 << 20, 42);
    let want = sha256_file(&path);
    a.send(&format!("/send {}", path.display()));
    for p in [&mut b, &mut c] {
        let e = p.wait(120, |e| {
            e["type"] == "file_received" && e["name"] == "big.bin"
        });
        assert_eq!(e["sha256"], want.as_str());
        assert_eq!(sha256_file(&p.downloads.join("big.bin")), want);
    }
    a.wait(30, |e| e["type"] == "file_sent" && e["peers"] == 2);

    // The same name again lands next to it, never over it.
    a.send(&format!("/send {}", path.display()));
    for p in [&mut b, &mut c] {
        p.wait(120, |e| {
            e["type"] == "file_received" && e["saved_as"].as_str().unwrap().ends_with("big-(1).bin")
        });
        assert_eq!(sha256_file(&p.downloads.join("big-(1).bin")), want);
    }
    for p in [&mut a, &mut b, &mut c] {
        p.drain(300);
        // Every chat line arrived exactly once.
        assert_eq!(p.count(|e| e["type"] == "chat"), 2);
        assert!(p.terminate().success());
    }
    assert_eq!(util::files_under(&b.downloads), ["big-(1).bin", "big.bin"]);
}

#[test]
fn msg_and_sendto_reach_one_peer_only() {
    let dir = tempfile::tempdir().unwrap();
    let [mut a, mut b, mut c] = util::three_in_a_mesh(dir.path());
    a.send("/msg bob just for you");
    b.wait(10, |e| e["type"] == "chat" && e["text"] == "just for you");
    let path = dir.path().join("note.txt");
    std::fs::write(&path, b"private").unwrap();
    a.send(&format!("/sendto carol {}", path.display()));
    c.wait(10, |e| {
        e["type"] == "file_received" && e["name"] == "note.txt"
    });
    a.send("/msg nobody hi");
    a.wait(5, |e| {
        e["type"] == "command_error" && e["error"].as_str().unwrap().contains("no connected peer")
    });
    c.drain(300);
    b.drain(300);
    assert_eq!(c.count(|e| e["type"] == "chat"), 0);
    assert_eq!(b.count(|e| e["type"] == "file_started"), 0);
    assert_eq!(
        std::fs::read(c.downloads.join("note.txt")).unwrap(),
        b"private"
    );
}

#[test]
fn a_port_in_use_and_bad_arguments_exit_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = Proc::start("alice", dir.path(), None, &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
        .args(["--bind", "127.0.0.1", "--downloads"])
        .arg(dir.path().join("x"))
        .arg(a.port.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot listen on port"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
        .arg("notaport")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
