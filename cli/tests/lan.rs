//! `--lan`: real `p2p-node` processes find each other by mDNS with no
//! address typed. Multicast must never leave this machine, so every node
//! runs inside a network namespace this test creates (`unshare -n`), whose
//! only interface is its own loopback; where namespaces cannot be made the
//! tests say so and skip.

mod util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::Proc;

/// A network namespace held open by a sleeping process; nodes enter it
/// with `nsenter`. Dropped: the holder is killed and the namespace goes.
struct Netns {
    holder: Child,
    pid: String,
}

impl Netns {
    /// A fresh namespace with loopback up, multicast on, and a route for
    /// 224.0.0.0/4 on it; `None` (with the reason printed) where this
    /// machine does not allow it.
    fn new() -> Option<Netns> {
        let holder = Command::new("unshare")
            .args(["-n", "sleep", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut holder = match holder {
            Ok(h) => h,
            Err(e) => return skip(&format!("cannot run unshare: {e}")),
        };
        let pid = holder.id().to_string();
        let ours = std::fs::read_link("/proc/self/ns/net").ok()?;
        // Until unshare has run, the holder is still in our namespace:
        // never configure (or multicast in) that one.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = holder.try_wait() {
                return skip(&format!("unshare -n failed ({status}): not root?"));
            }
            match std::fs::read_link(format!("/proc/{pid}/ns/net")) {
                Ok(ns) if ns != ours => break,
                _ if Instant::now() > deadline => {
                    let _ = holder.kill();
                    return skip("unshare -n did not take effect within 5 s");
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let ns = Netns { holder, pid };
        for args in [
            &["ip", "link", "set", "lo", "up", "multicast", "on"][..],
            &["ip", "route", "add", "224.0.0.0/4", "dev", "lo"][..],
        ] {
            let ok = Command::new("nsenter")
                .args(["-t", &ns.pid, "-n"])
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return skip(&format!("cannot run {args:?} in the namespace"));
            }
        }
        Some(ns)
    }

    fn wrap(&self) -> [&str; 4] {
        ["nsenter", "-t", &self.pid, "-n"]
    }

    /// A node in the namespace with `--lan` and no bootstrap.
    fn node(&self, name: &str, dir: &Path, extra: &[&str]) -> Proc {
        let identity = dir.join(format!("{name}.identity"));
        let identity = identity.to_str().expect("UTF-8 temp path");
        let mut args = vec!["--lan", "--identity", identity];
        args.extend_from_slice(extra);
        Proc::start_wrapped(&self.wrap(), name, dir, None, &args, true, &[])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn skip<T>(why: &str) -> Option<T> {
    eprintln!(
        "SKIPPED: no network namespace for the LAN test ({why}); multicast is only sent inside one"
    );
    None
}

fn peers_of(p: &mut Proc, n: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while p.peer_count() < n {
        assert!(
            Instant::now() < deadline,
            "{} has {} peers after {secs} s: {:#?}",
            p.id,
            p.peer_count(),
            p.seen
        );
        p.drain(50);
    }
}

/// Whether any event of `p` mentions `port` or `id` (a dial, a refusal, an
/// address learned).
fn mentions(p: &Proc, port: u16, id: &str) -> Vec<Value> {
    let port = format!(":{port}\"");
    p.seen
        .iter()
        .filter(|e| {
            let s = e.to_string();
            s.contains(&port) || s.contains(id)
        })
        .cloned()
        .collect()
}

#[test]
fn three_lan_nodes_mesh_with_no_address_another_network_stays_out_and_leaving_is_seen_at_once() {
    let Some(ns) = Netns::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = ["--network-key", "lan-test-mesh"];
    let started = Instant::now();
    let mut nodes: Vec<Proc> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| ns.node(n, dir.path(), &key))
        .collect();
    for p in &mut nodes {
        peers_of(p, 2, 20);
    }
    eprintln!(
        "three --lan nodes meshed in {} ms",
        started.elapsed().as_millis()
    );

    // Another network on the same LAN: heard, never dialed, never dialing.
    let mut eve = ns.node("eve", dir.path(), &["--network-key", "another-mesh"]);
    // mDNS answers within a second; give it three.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        eve.drain(100);
        for p in &mut nodes {
            p.drain(0);
        }
    }
    for e in &eve.seen {
        let t = e["type"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                t,
                "peer_connected"
                    | "peers_discovered"
                    | "dial_failed"
                    | "rejected"
                    | "protocol_error"
            ),
            "eve dialed or was dialed: {e}"
        );
    }
    for p in &nodes {
        let seen = mentions(p, eve.port, &eve.id);
        assert!(seen.is_empty(), "{} saw eve: {seen:#?}", p.id);
    }

    // Leaving: /quit on alice, SIGTERM on bob; the others see "left" at
    // once (the goodbye frame), not a timeout 60 s later.
    let alice = nodes[0].id.clone();
    let quit_at = Instant::now();
    nodes[0].send("/quit");
    for p in &mut nodes[1..] {
        let e = p.wait(2, |e| {
            e["type"] == "peer_disconnected" && e["peer"] == alice
        });
        assert_eq!(e["reason"]["kind"], "left", "{e}");
    }
    eprintln!(
        "a /quit was seen by both peers in {} ms",
        quit_at.elapsed().as_millis()
    );
    let bob = nodes[1].id.clone();
    nodes[1].signal("TERM");
    let e = nodes[2].wait(2, |e| e["type"] == "peer_disconnected" && e["peer"] == bob);
    assert_eq!(e["reason"]["kind"], "left", "{e}");
    assert!(nodes[0].exit_within(5000).is_some_and(|s| s.success()));
    assert!(nodes[1].exit_within(5000).is_some_and(|s| s.success()));
}

#[test]
fn without_lan_nothing_is_announced_or_heard() {
    let Some(ns) = Netns::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lan = ns.node("lan", dir.path(), &[]);
    let wrap = ns.wrap();
    let mut quiet = Proc::start_wrapped(&wrap, "quiet", dir.path(), None, &[], true, &[]);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        lan.drain(100);
        quiet.drain(0);
    }
    assert_eq!(lan.peer_count(), 0, "{:#?}", lan.seen);
    assert_eq!(quiet.peer_count(), 0, "{:#?}", quiet.seen);
    assert!(mentions(&lan, quiet.port, &quiet.id).is_empty());
}
