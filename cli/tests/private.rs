//! Private meshes between `p2p-node` processes: chat and a file through a
//! recording proxy that sees nothing in clear, a node with another key and
//! a node without one kept out with a clear reason on both sides.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use util::{random_file, sha256_file, Proc};

/// A TCP proxy on a free loopback port to `target`, recording every byte
/// of both directions. Its threads end with the test process.
fn recording_proxy(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (port, seen)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A private node: network key from the environment, its own identity file.
fn private(name: &str, dir: &Path, bootstrap: Option<u16>, key: &str) -> Proc {
    let identity = dir.join(format!("{name}.key"));
    let identity = identity.to_str().unwrap();
    Proc::start_env(
        name,
        dir,
        bootstrap,
        &["--identity", identity],
        true,
        &[("P2P_NETWORK_KEY", key)],
    )
}

fn message(e: &Value) -> String {
    e["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_private_mesh_hides_everything_from_the_wire_and_keeps_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = private("alice", dir.path(), None, "our secret mesh");
    let private_line = a.wait(5, |e| e["type"] == "private");
    assert_eq!(private_line["id"], a.id.as_str());
    assert!(!private_line.to_string().contains("our secret mesh"));
    // The id is the identity's, as --show-id prints it.
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
        .arg("--show-id")
        .arg("--identity")
        .arg(dir.path().join("alice.key"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), a.id);

    let (proxy, recording) = recording_proxy(a.port);
    let mut b = private("bob", dir.path(), Some(proxy), "our secret mesh");
    b.wait(10, |e| e["type"] == "peer_connected");
    a.wait(10, |e| e["type"] == "peer_connected");

    b.send("meet at the usual place");
    a.wait(10, |e| {
        e["type"] == "chat" && e["text"] == "meet at the usual place"
    });
    let path = dir.path().join("quarterly-secrets.bin");
    random_file(&path, 1 << 20, 7);
    let want = sha256_file(&path);
    b.send(&format!("/send {}", path.display()));
    let got = a.wait(20, |e| e["type"] == "file_received");
    assert_eq!(got["name"], "quarterly-secrets.bin");
    assert_eq!(got["sha256"], want.as_str());

    // Another key: refused at alice's first read, carol never joins.
    let mut c = private("carol", dir.path(), Some(a.port), "another mesh");
    let refused = a.wait(10, |e| {
        e["type"] == "protocol_error" && e["error"]["detail"]["kind"] == "wrong_key_or_not_private"
    });
    assert!(
        message(&refused).contains("another network key"),
        "{refused}"
    );
    let failed = c.wait(10, |e| e["type"] == "dial_failed");
    assert!(message(&failed).contains("another network key"), "{failed}");

    // No key at all: a clear reason on both sides.
    let mut d = Proc::start("dave", dir.path(), Some(a.port), &[]);
    let at_alice = a.wait(10, |e| {
        e["type"] == "protocol_error" && e["error"]["detail"]["kind"] == "plaintext_peer"
    });
    assert!(message(&at_alice).contains("plaintext"), "{at_alice}");
    let at_dave = d.wait(10, |e| {
        e["type"] == "dial_failed" || e["type"] == "protocol_error"
    });
    assert!(
        message(&at_dave).contains("this node has no network key"),
        "{at_dave}"
    );

    a.drain(300);
    c.drain(100);
    d.drain(100);
    for outsider in [&c, &d] {
        assert_eq!(outsider.count(|e| e["type"] == "peer_connected"), 0);
        let id = outsider.id.as_str();
        assert_eq!(
            a.count(|e| e["type"] == "peer_connected" && e["peer"] == id),
            0
        );
    }
    assert_eq!(a.count(|e| e["type"] == "peer_connected"), 1);

    // The file went through the proxy, and nothing of it in clear.
    let wire = recording.lock().unwrap().clone();
    assert!(wire.len() > 1 << 20, "{} bytes recorded", wire.len());
    for clear in [
        &b"meet at the usual place"[..],
        b"BYTES:",
        b"quarterly-secrets",
        b"LISTEN:",
        a.id.as_bytes(),
    ] {
        assert!(
            !contains(&wire, clear),
            "{:?} on the wire",
            String::from_utf8_lossy(clear)
        );
    }
    for p in [&mut a, &mut b, &mut c, &mut d] {
        assert!(p.terminate().success());
    }
}

#[test]
fn a_trust_file_admits_only_the_listed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let key = "trusted mesh";
    let bob_key = dir.path().join("bob.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
        .arg("--show-id")
        .arg("--identity")
        .arg(&bob_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let bob_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let trust = dir.path().join("trust");
    std::fs::write(&trust, format!("# the mesh\n{bob_id}\n")).unwrap();
    let identity = dir.path().join("alice.key");
    let mut a = Proc::start_env(
        "alice",
        dir.path(),
        None,
        &[
            "--identity",
            identity.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ],
        true,
        &[("P2P_NETWORK_KEY", key)],
    );
    assert_eq!(a.wait(5, |e| e["type"] == "private")["trusted"], 1);
    let mut b = private("bob", dir.path(), Some(a.port), key);
    assert_eq!(b.id, bob_id);
    a.wait(10, |e| {
        e["type"] == "peer_connected" && e["peer"] == bob_id.as_str()
    });
    let c = private("carol", dir.path(), Some(a.port), key);
    let refused = a.wait(10, |e| {
        e["type"] == "protocol_error" && e["error"]["detail"]["kind"] == "not_trusted"
    });
    assert!(
        message(&refused).contains("not on the trust list"),
        "{refused}"
    );
    assert!(message(&refused).contains(&c.id), "{refused}");
    b.drain(200);
    assert_eq!(a.count(|e| e["type"] == "peer_connected"), 1);
    assert!(b.terminate().success());
}

#[test]
fn bad_private_mode_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
            .args(["--bind", "127.0.0.1"])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let corrupt = dir.path().join("corrupt.key");
    std::fs::write(&corrupt, b"not a key\n").unwrap();
    let bad_trust = dir.path().join("trust");
    std::fs::write(&bad_trust, b"# ok\n\nnonsense\n").unwrap();
    let c = corrupt.to_str().unwrap();
    let t = bad_trust.to_str().unwrap();
    let key = [("P2P_NETWORK_KEY", "k")];
    assert!(run(&["--identity", c, "0"], &key).contains("corrupt"));
    assert!(run(&["--show-id", "--identity", c], &[]).contains("corrupt"));
    assert_eq!(std::fs::read(&corrupt).unwrap(), b"not a key\n");
    assert!(run(&["--trust", t, "0"], &key).contains("line 3"));
    assert!(run(&["--trust", t, "0"], &[]).contains("needs a network key"));
    assert!(run(&["0"], &[("P2P_NETWORK_KEY", "")]).contains("empty"));
    assert!(run(&["--network-key", "", "0"], &[]).contains("empty"));
    // The default identity is under the current directory, created there.
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-node"))
        .arg("--show-id")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(dir.path().join(".p2p/identity").is_file());
}
