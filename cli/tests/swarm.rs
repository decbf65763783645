//! `p2p-node` processes sharing content by id on loopback: two holders
//! serving one download, a directory tree, a download resumed after its
//! node was killed, shares kept across a restart, offers declined and
//! accepted, and the commands' errors.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{random_file, sha256_file, Proc};

const MIB: usize = 1 << 20;
/// The chunk size of the manifests nodes build (`SwarmConfig::chunk_size`).
const CHUNK: u64 = 256 * 1024;

/// Sends `line` and waits for the next answer of type `kind`, not one seen
/// before it.
fn ask(p: &mut Proc, line: &str, kind: &str) -> Value {
    let before = p.count(|e| e["type"] == kind);
    p.send(line);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.count(|e| e["type"] == kind) == before {
        assert!(
            Instant::now() < deadline,
            "no {kind} answer to {line:?}; events so far: {:#?}",
            p.seen
        );
        p.drain(50);
    }
    p.seen
        .iter()
        .rfind(|e| e["type"] == kind)
        .cloned()
        .expect("counted")
}

/// Waits until `/files` on `p` lists `id` with at least `holders` peers
/// holding all of it: their indexes arrived, so `/get` finds them all (and
/// they know `p` speaks `swarm/1`, so they can offer to it).
fn wait_listed(p: &mut Proc, id: &str, holders: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = ask(p, "/files", "files");
        let listed = files["files"]
            .as_array()
            .expect("a list of files")
            .iter()
            .find(|f| f["id"] == id && f["complete"].as_u64() >= Some(holders))
            .cloned();
        if let Some(f) = listed {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "{id} is not listed with {holders} holders after 20 s: {files}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the `shared` event of `name` (or any `share_failed`, which
/// fails the test) and returns the content id.
fn shared_id(p: &mut Proc, name: &str) -> String {
    let e = p.wait(30, |e| {
        (e["type"] == "shared" && e["name"] == name) || e["type"] == "share_failed"
    });
    assert_eq!(e["type"], "shared", "{e}");
    let id = e["id"].as_str().expect("an id").to_owned();
    assert_eq!(id.len(), 64, "{e}");
    id
}

/// Shares `path` on `p` with `/share` and returns the content id.
fn share(p: &mut Proc, path: &Path) -> String {
    p.send(&format!("/share {}", path.display()));
    let name = path.file_name().expect("a name").to_string_lossy();
    shared_id(p, &name)
}

/// Waits for the end of download `id` on `p`, which must be a success.
fn completed(p: &mut Proc, id: &str, secs: u64) -> Value {
    let e = p.wait(secs, |e| {
        (e["type"] == "download_complete" || e["type"] == "download_failed") && e["id"] == id
    });
    assert_eq!(e["type"], "download_complete", "{e}");
    e
}

/// The verified bytes each peer sent, from a `download_complete` event.
fn bytes_from(done: &Value) -> Vec<(String, u64)> {
    done["bytes_from"]
        .as_object()
        .expect("bytes_from is an object")
        .iter()
        .map(|(p, b)| (p.clone(), b.as_u64().expect("a byte count")))
        .collect()
}

#[test]
fn two_holders_of_the_same_bytes_both_serve_one_download() {
    let dir = tempfile::tempdir().unwrap();
    let [mut a, mut b, mut c] = util::three_in_a_mesh(dir.path());
    let size = 24 * MIB;
    let (src_a, src_b) = (dir.path().join("src-a"), dir.path().join("src-b"));
    for d in [&src_a, &src_b] {
        std::fs::create_dir(d).unwrap();
    }
    random_file(&src_a.join("big.bin"), size, 11);
    std::fs::copy(src_a.join("big.bin"), src_b.join("big.bin")).unwrap();
    let want = sha256_file(&src_a.join("big.bin"));

    let id = share(&mut a, &src_a.join("big.bin"));
    let id_b = share(&mut b, &src_b.join("big.bin"));
    assert_eq!(
        id, id_b,
        "the same bytes under the same name are one content"
    );
    wait_listed(&mut c, &id, 2);

    // A unique prefix is enough; the core resolves it.
    c.send(&format!("/get {}", &id[..12]));
    let done = completed(&mut c, &id, 50);
    assert_eq!(done["size"].as_u64(), Some(size as u64));
    assert!(
        done["path"].as_str().unwrap().ends_with("big.bin"),
        "{done}"
    );
    let from = bytes_from(&done);
    for (p, name) in [(&a, "alice"), (&b, "bob")] {
        let sent = from.iter().find(|(id, _)| *id == p.id).map(|(_, n)| *n);
        assert!(sent > Some(0), "{name} sent nothing: {done}");
    }
    // Each chunk counts once, for the peer whose copy was verified first.
    assert_eq!(
        from.iter().map(|(_, n)| n).sum::<u64>(),
        size as u64,
        "{done}"
    );
    assert_eq!(sha256_file(&c.downloads.join("big.bin")), want);
}

/// Writes `n` small files of assorted sizes (one empty, one over a chunk)
/// in nested folders under `root`; returns their relative paths.
fn make_tree(root: &Path, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let rel = match i % 4 {
            0 => format!("f{i}.txt"),
            1 => format!("a{}/f{i}.bin", i % 5),
            2 => format!("a{}/b{}/f{i}.dat", i % 5, i % 3),
            _ => format!("a{}/b{}/c{}/f{i}", i % 5, i % 3, i % 2),
        };
        let len = match i {
            0 => 0,
            1 => 600 * 1024,
            _ => (i * 379) % 9000 + 1,
        };
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        random_file(&path, len, i as u64 + 1);
        out.push(rel);
    }
    out.sort();
    out
}

#[test]
fn a_directory_tree_arrives_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    let src = dir.path().join("tree");
    let names = make_tree(&src, 300);
    assert_eq!(util::files_under(&src), names);

    let id = share(&mut a, &src);
    let listed = wait_listed(&mut b, &id, 1);
    assert_eq!(listed["files"].as_u64(), Some(300), "{listed}");
    b.send(&format!("/get {id}"));
    completed(&mut b, &id, 50);

    let got = b.downloads.join("tree");
    assert_eq!(util::files_under(&got), names);
    for rel in &names {
        assert_eq!(
            std::fs::read(got.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{rel} differs"
        );
    }
}

/// The chunks a partial download claims are durable: the bits set in its
/// `record` (`p2p-record/1\n<id>\n<chunks>\n` and a bitfield, see
/// net/src/swarm_disk.rs), 0 before there is one. It is replaced whole, so
/// a read sees one version or the other.
fn claimed(partial: &Path) -> u64 {
    let Ok(record) = std::fs::read(partial.join("record")) else {
        return 0;
    };
    let bits = record
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(2)
        .map_or(&[][..], |(at, _)| &record[at + 1..]);
    bits.iter().map(|b| u64::from(b.count_ones())).sum()
}

#[test]
fn a_killed_download_continues_where_it_was_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    random_file(&src.join("big.bin"), size, 23);
    let want = sha256_file(&src.join("big.bin"));
    let share = src.join("big.bin").display().to_string();
    // --share shares at start.
    let mut a = Proc::start("alice", dir.path(), None, &["--share", &share]);
    let id = shared_id(&mut a, "big.bin");

    let mut c = Proc::start("carol", dir.path(), Some(a.port), &[]);
    wait_listed(&mut c, &id, 1);
    c.send(&format!("/get {id}"));
    let half = (size / 2) as u64;
    let seen = c.wait(50, |e| {
        e["type"] == "download_progress" && e["bytes"].as_u64() >= Some(half)
    });
    // alice stopped sends nothing more, so that carol dies in the middle
    // however fast loopback is; and carol's disk catches up until a
    // checkpoint is durable (under load its writes lag the network by
    // more than a checkpoint), so that the kill leaves chunks to keep.
    a.signal("STOP");
    let partial = c.downloads.join(".p2p").join("partial").join(&id);
    let deadline = Instant::now() + Duration::from_secs(20);
    while claimed(&partial) == 0 {
        assert!(
            Instant::now() < deadline,
            "no chunk of {} is durable 20 s after {seen}",
            partial.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill();
    a.signal("CONT");
    assert_eq!(
        c.count(|e| e["type"] == "download_complete"),
        0,
        "the download ended before the kill: {seen}"
    );
    let durable = claimed(&partial);
    assert!(durable * CHUNK < size as u64, "{durable} chunks claimed");

    // The same downloads folder: the partial is found and continued
    // without a /get.
    let mut c = Proc::start("carol", dir.path(), Some(a.port), &[]);
    let started = c.wait(30, |e| e["type"] == "download_started" && e["id"] == id);
    let have = started["have"].as_u64().expect("have");
    let done = completed(&mut c, &id, 50);
    let fetched: u64 = bytes_from(&done).iter().map(|(_, n)| n).sum();
    // Every chunk counts once: read back from the partial and verified, or
    // fetched (`bytes_from`; a second copy is not counted). A kill loses
    // no written byte, so exactly the chunks the record claimed are kept
    // and not fetched again. `have` is no measure of that alone: fetching
    // starts while the partial is verified, and `have` also counts what
    // arrived meanwhile (up to 19 chunks in 8 runs here), so
    // `size - have` plus the requests in flight does not bound `fetched`.
    assert_eq!(
        size as u64 - fetched,
        durable * CHUNK,
        "{durable} chunks were durable, {have} bytes held at the start: {done}"
    );
    assert!(have >= durable * CHUNK, "{started}");
    assert_eq!(sha256_file(&c.downloads.join("big.bin")), want);
    assert!(!partial.exists(), "the partial outlived the commit");
}

#[test]
fn a_share_made_at_the_prompt_is_shared_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.bin"), dir.path().join("two.bin"));
    random_file(&one, MIB, 31);
    random_file(&two, MIB, 32);
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let id = share(&mut a, &one);
    // Killed: nothing is written at the stop, the list was kept at the share.
    a.kill();

    let mut a = Proc::start("alice", dir.path(), None, &[]);
    assert_eq!(shared_id(&mut a, "one.bin"), id, "shared again, same id");
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    wait_listed(&mut b, &id, 1);
    ask(&mut a, &format!("/unshare {id}"), "unshared");
    a.kill();

    // Unshared: not shared at the next start. Storage answers in order, so
    // a share of another file ends after whatever the start shared again.
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    share(&mut a, &two);
    assert_eq!(
        a.count(|e| e["type"] == "shared" && e["id"] == id),
        0,
        "{:#?}",
        a.seen
    );
}

#[test]
fn offers_are_declined_or_accepted_by_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    let first = dir.path().join("first.bin");
    random_file(&first, MIB, 5);
    let id = share(&mut a, &first);
    wait_listed(&mut b, &id, 1);

    a.send(&format!("/offer {} bob", first.display()));
    let offer = b.wait(15, |e| e["type"] == "offer" && e["id"] == id);
    assert_eq!(offer["from"], a.id.as_str());
    assert_eq!(offer["name"], "first.bin");
    assert_eq!(offer["size"].as_u64(), Some(MIB as u64));
    assert_eq!(offer["accepted"], false);
    b.send(&format!("/decline {}", &id[..12]));
    let declined = a.wait(15, |e| e["type"] == "offer_declined");
    assert_eq!(declined["id"], id.as_str());
    assert_eq!(declined["by"], b.id.as_str());
    b.drain(300);
    assert_eq!(b.count(|e| e["type"] == "download_started"), 0);
    assert!(b.terminate().success());

    // bob again, taking every offer; carol, taking alice's.
    let mut b = Proc::start("bob", dir.path(), Some(a.port), &["--accept-offers", "all"]);
    let mut c = Proc::start(
        "carol",
        dir.path(),
        Some(a.port),
        &["--accept-offers", a.id.as_str()],
    );
    for p in [&mut b, &mut c] {
        wait_listed(p, &id, 1);
    }
    let second = dir.path().join("second.bin");
    random_file(&second, 2 * MIB, 6);
    let want = sha256_file(&second);
    // Not shared yet: hashed, then offered to every peer.
    a.send(&format!("/offer {}", second.display()));
    let id2 = shared_id(&mut a, "second.bin");
    for p in [&mut b, &mut c] {
        let offer = p.wait(15, |e| e["type"] == "offer" && e["id"] == id2);
        assert_eq!(offer["accepted"], true, "{offer}");
        completed(p, &id2, 30);
        assert_eq!(sha256_file(&p.downloads.join("second.bin")), want);
    }
}

#[test]
fn bad_sharing_commands_are_reported_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::start("alice", dir.path(), None, &[]);
    for (line, says) in [
        ("/get", "usage: /get <id> [dir]"),
        ("/accept", "usage: /accept <id>"),
        ("/cancel 0123456789ab extra", "usage: /cancel <id>"),
        ("/get 0123", "is not a content id"),
        ("/get 0123456789ab", "no content 0123456789ab is known"),
        ("/unshare 0123456789abcdef", "no content"),
        ("/decline 0123456789abcdef", "no content"),
        ("/offer nothing.bin nobody", "no connected peer \"nobody\""),
        ("/offer nothing.bin", "no connected peers"),
    ] {
        let e = ask(&mut a, line, "command_error");
        let error = e["error"].as_str().expect("an error text");
        assert!(error.contains(says), "{line:?}: {error:?}");
    }
    let files = ask(&mut a, "/files", "files");
    assert_eq!(files["files"], serde_json::json!([]));
    let downloads = ask(&mut a, "/downloads", "downloads");
    assert_eq!(downloads["downloads"], serde_json::json!([]));
    let status = ask(&mut a, "/status", "status");
    assert_eq!(status["shared"], 0);
    assert_eq!(status["downloads"]["count"], 0);
    assert!(a.exit_within(100).is_none(), "the node stopped");
    assert!(a.terminate().success());
}
