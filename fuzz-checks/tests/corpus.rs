//! Replays every file of the committed fuzz corpus (`fuzz/corpus/<target>/`)
//! through the same checks the fuzz targets run, so that CI exercises the
//! targets without a fuzzer; and keeps the hand-made seeds in sync with
//! `p2p_fuzz_checks::seeds` (`P2P_WRITE_SEEDS=1 cargo test -p
//! p2p-fuzz-checks --test corpus` rewrites them).

use std::fs;
use std::path::{Path, PathBuf};

use p2p_core::RejectReason;
use p2p_core::SessionError;
use p2p_fuzz_checks::handshake::Ending;
use p2p_fuzz_checks::{
    check_decode, check_file, check_handshake, check_manifest, check_node, check_session,
    check_swarm, check_target, seeds, TARGETS,
};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The corpus files of a target, in name order (hidden files skipped).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let data = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, data)
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let files = corpus(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for (name, data) in files {
        // A failing file names itself before the check's own panic message.
        eprintln!("replaying {target}/{name}");
        check_target(target, &data);
    }
}

#[test]
fn replay_decode_corpus() {
    replay("decode");
}

#[test]
fn replay_node_corpus() {
    replay("node");
}

#[test]
fn replay_file_corpus() {
    replay("file");
}

#[test]
fn replay_handshake_corpus() {
    replay("handshake");
}

#[test]
fn replay_session_corpus() {
    replay("session");
}

#[test]
fn replay_swarm_corpus() {
    replay("swarm");
}

#[test]
fn replay_manifest_corpus() {
    replay("manifest");
}

#[test]
fn committed_seeds_match_their_definitions() {
    let write = std::env::var_os("P2P_WRITE_SEEDS").is_some();
    for seed in seeds::all() {
        assert!(TARGETS.contains(&seed.target));
        let path = corpus_dir(seed.target).join(format!("seed-{}", seed.name));
        if write {
            fs::create_dir_all(corpus_dir(seed.target)).expect("create corpus dir");
            fs::write(&path, &seed.data).expect("write seed");
        }
        let on_disk = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with P2P_WRITE_SEEDS=1 to write the seeds)",
                path.display()
            )
        });
        assert_eq!(
            on_disk,
            seed.data,
            "{} is stale (run with P2P_WRITE_SEEDS=1)",
            path.display()
        );
    }
}

#[test]
fn corpus_files_are_small() {
    for target in TARGETS {
        let files = corpus(target);
        assert!(files.len() <= 40, "{target}: {} corpus files", files.len());
        for (name, data) in files {
            assert!(
                data.len() <= 4096,
                "{target}/{name} is {} bytes",
                data.len()
            );
        }
    }
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    seeds::all()
        .into_iter()
        .find(|s| s.target == target && s.name == name)
        .unwrap_or_else(|| panic!("no seed {target}/{name}"))
        .data
}

/// The seeds reach what they were written for, so that replaying them
/// exercises the checks on meaningful paths, not only on refusals.
#[test]
fn seeds_reach_what_they_are_for() {
    let d = check_decode(&seed("decode", "frames"));
    assert_eq!((d.lines, d.bytes_frames, d.error), (4, 2, None));
    assert!(check_decode(&seed("decode", "line_too_long"))
        .error
        .is_some());
    assert!(check_decode(&seed("decode", "bad_length")).error.is_some());
    let d = check_decode(&seed("decode", "at_the_limits"));
    assert_eq!((d.lines, d.bytes_frames, &d.error), (2, 1, &None), "{d:?}");

    let n = check_node(&seed("node", "file_transfer"));
    assert_eq!(n.committed, 1, "{n:?}");
    assert!(check_node(&seed("node", "inbound_chat")).chats >= 1);
    assert!(check_node(&seed("node", "outbound")).connected >= 1);
    assert_eq!(check_node(&seed("node", "max_peers")).max_peers, 3);
    assert!(check_node(&seed("node", "garbage")).protocol_errors >= 2);
    let n = check_node(&seed("node", "send_file"));
    assert_eq!(
        (n.files_sent, n.sends_failed, n.chunks_sent),
        (3, 0, 7),
        "{n:?}"
    );
    let n = check_node(&seed("node", "send_paced"));
    assert_eq!((n.files_sent, n.chunks_sent), (1, 12), "{n:?}");
    // Every wrong completion fails its send; the consistent lie is sent.
    let n = check_node(&seed("node", "send_lies"));
    assert_eq!((n.files_sent, n.sends_failed), (1, 10), "{n:?}");

    let f = check_file(&seed("file", "good"));
    assert_eq!((f.created, f.committed), (3, 3), "{f:?}");
    // Every hostile name is refused; the only one created is the longest
    // valid name (255 bytes).
    let f = check_file(&seed("file", "hostile_names"));
    assert_eq!(f.created, 1, "{f:?}");
    assert!(check_file(&seed("file", "failures")).discarded >= 4);
    let f = check_file(&seed("file", "wrong_content"));
    assert_eq!((f.created, f.committed, f.discarded), (1, 0, 1), "{f:?}");

    let h = |name| check_handshake(&seed("handshake", name));
    let both = |e| p2p_fuzz_checks::HandshakeSummary {
        listener: e,
        dialer: e,
    };
    assert_eq!(h("hello"), both(Ending::Established));
    assert_eq!(h("hello_split"), both(Ending::Established));
    assert_eq!(h("partial"), both(Ending::Open));
    assert_eq!(h("bytes_first"), both(Ending::Error));
    assert_eq!(
        h("self"),
        both(Ending::Rejected(RejectReason::SelfConnection))
    );
    assert_eq!(
        h("duplicate").dialer,
        Ending::Rejected(RejectReason::Duplicate)
    );
    assert_eq!(
        h("max_peers").dialer,
        Ending::Rejected(RejectReason::MaxPeers)
    );
    assert_eq!(
        h("known_peer_p").listener,
        Ending::Rejected(RejectReason::Duplicate)
    );
    assert_eq!(h("known_peer_p").dialer, Ending::Established);
    assert_eq!(h("known_peer_a").dialer, Ending::Established);

    let s = |name| check_session(&seed("session", name));
    let honest = s("honest");
    assert!(honest.completed && !honest.edited, "{honest:?}");
    assert_eq!((honest.delivered, honest.error), (3, None));
    assert_eq!(s("honest_initiator").delivered, 2);
    let big = s("split_big");
    assert_eq!((big.delivered, big.sent), (3, 2), "{big:?}");
    let flip = s("bit_flip");
    assert_eq!(
        (flip.delivered, flip.error),
        (0, Some(SessionError::Tampered))
    );
    let replay = s("replayed_message");
    assert_eq!(
        (replay.delivered, replay.error),
        (1, Some(SessionError::Tampered))
    );
    let plain = s("plaintext_peer");
    assert_eq!(
        (plain.completed, plain.error),
        (false, Some(SessionError::PlaintextPeer))
    );
    let cut = s("handshake_cut");
    assert!(!cut.completed && cut.delivered == 0, "{cut:?}");

    let w = |name| check_swarm(&seed("swarm", name));
    // Every chunk verified and written, from both holders.
    let two = w("two_peers");
    assert_eq!(
        (two.chunks_written, two.completed, two.completed_from_two),
        (3, 1, 1),
        "{two:?}"
    );
    // `a`'s corrupt chunk is rejected once (then it is banned); `b`'s
    // right ones complete it.
    let rej = w("rejected_chunk");
    assert_eq!(
        (rej.rejected, rej.chunks_written, rej.completed),
        (1, 10, 1),
        "{rej:?}"
    );
    // The record claims all 10: the five that read back right count, the
    // five that read back zeros are fetched again.
    let lie = w("lying_record");
    assert_eq!(
        (lie.claims_verified, lie.claims_refetched, lie.completed),
        (5, 5, 1),
        "{lie:?}"
    );
    let resumed = w("resumed");
    assert_eq!(
        (
            resumed.claims_verified,
            resumed.chunks_written,
            resumed.completed
        ),
        (3, 0, 1),
        "{resumed:?}"
    );
    // Refused: six found partials (four hostile, one not a manifest, one
    // id of nothing), two peer manifests with unsafe paths, one over the
    // limit, one of other content, and a hostile share; nothing opened.
    let hostile = w("hostile_manifests");
    assert_eq!(
        (hostile.manifests_refused, hostile.opened),
        (11, 0),
        "{hostile:?}"
    );
    // `a`'s offer declined (frame sent), ours declined by `b` (event);
    // `b`'s accepted unasked and completed.
    let offers = w("offers");
    assert_eq!(
        (
            offers.offers,
            offers.declined,
            offers.offers_sent,
            offers.completed
        ),
        (2, 2, 2, 1),
        "{offers:?}"
    );
    assert_eq!(w("serving").chunks_served, 3);
    assert_eq!(w("timeouts").completed, 1);
    assert_eq!(w("empty_file").completed, 1);

    let m = |name| check_manifest(&seed("manifest", name));
    assert_eq!((m("file").parsed, m("file").chunks), (true, 3));
    assert_eq!((m("tree").parsed, m("tree").files), (true, 4));
    assert!(m("raw").parsed);
    for refused in [
        "unsorted",
        "colon",
        "dotdot",
        "device",
        "file_and_dir",
        "count",
    ] {
        assert!(!m(refused).parsed, "{refused}");
    }
}
