//! Content-addressed sharing on the harness (docs/PROTOCOL.md §9): two or
//! more holders, downloaders, a lying peer, a stalled one, resume from a
//! record (and from one that lies), hostile manifests, offers, and what a
//! reference peer sees.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::util::{build_manifest, Mesh};
use super::{content, converge, raw_peer, SEC};
use crate::{AcceptOffers, ContentId, Event, Manifest, ManifestFile, PeerId, Target};

/// Small chunks, so that a few hundred KiB are many chunks.
const CS: u32 = 4096;

fn mesh(n: usize) -> Mesh {
    let mut m = Mesh::new(n, |_, c| c.swarm.chunk_size = CS);
    for i in 1..n {
        m.bootstrap(i, 0);
    }
    converge(&mut m, 5 * SEC);
    m.run_for(SEC);
    m
}

/// Node `i` may share `path` holding `files`; it shares it now.
fn share(m: &mut Mesh, i: usize, path: &str, files: &[(String, Vec<u8>)]) -> ContentId {
    m.nodes[i]
        .storage
        .swarm
        .trees
        .insert(path.to_owned(), files.to_vec());
    m.nodes[i].node.share(path).unwrap();
    m.run_for(Duration::from_millis(100));
    m.events(i)
        .filter_map(|e| match e {
            Event::Shared { id, path: p, .. } if p == path => Some(*id),
            _ => None,
        })
        .last()
        .expect("shared")
}

fn one_file(len: usize, seed: u8) -> Vec<(String, Vec<u8>)> {
    vec![("data.bin".to_owned(), content(len, seed))]
}

fn get(m: &mut Mesh, i: usize, id: ContentId) {
    let now = m.now;
    m.nodes[i].node.get(now, &id.to_hex(), None).unwrap();
}

fn completed(
    m: &Mesh,
    i: usize,
    id: ContentId,
) -> Option<(String, std::collections::BTreeMap<PeerId, u64>)> {
    m.events(i).find_map(|e| match e {
        Event::DownloadComplete {
            id: d,
            path,
            bytes_from,
            ..
        } if *d == id => Some((path.clone(), bytes_from.clone())),
        _ => None,
    })
}

fn run_until_complete(m: &mut Mesh, i: usize, id: ContentId, limit: Duration) -> Duration {
    let start = m.elapsed();
    m.run_until(limit, |m| completed(m, i, id).is_some())
        .unwrap_or_else(|| {
            let evs: Vec<_> = m
                .events(i)
                .filter(|e| e.concern() == crate::Concern::Swarm)
                .collect();
            panic!("node {i}: no download_complete within {limit:?}: {evs:?}")
        });
    m.elapsed() - start
}

fn rejected(m: &Mesh, i: usize) -> Vec<PeerId> {
    m.events(i)
        .filter_map(|e| match e {
            Event::ChunkRejected { peer, .. } => Some(peer.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_download_draws_from_both_holders_and_commits_identical_bytes() {
    let mut m = mesh(3);
    let files = one_file(400 * 1024 + 77, 1);
    let a = share(&mut m, 0, "/srv/data.bin", &files);
    let b = share(&mut m, 1, "/home/me/data.bin", &files);
    assert_eq!(a, b, "same bytes, same id");
    m.run_for(SEC);
    let listing = m.nodes[2].node.files();
    assert_eq!(listing.len(), 1, "{listing:?}");
    assert_eq!((listing[0].complete, listing[0].partial), (2, 0));
    get(&mut m, 2, a);
    run_until_complete(&mut m, 2, a, 30 * SEC);
    let (path, from) = completed(&m, 2, a).unwrap();
    assert_eq!(path, "data.bin");
    assert_eq!(m.nodes[2].storage.swarm.committed["data.bin"], files[0].1);
    assert_eq!(from.len(), 2, "both holders sent chunks: {from:?}");
    assert_eq!(from.values().sum::<u64>(), files[0].1.len() as u64);
    // Done: it is shared from here now, complete.
    m.run_for(SEC);
    let l = &m.nodes[0].node.files()[0];
    assert_eq!((l.complete, l.ours), (2, true), "node 1 and now node 2");
    assert!(m.nodes[2].node.downloads(m.now).is_empty());
}

#[test]
fn three_holders_share_the_download_s_requests() {
    let mut m = mesh(4);
    m.latency = Duration::from_millis(50);
    let files = one_file(200 * CS as usize, 3);
    let id = share(&mut m, 0, "f", &files);
    share(&mut m, 1, "f", &files);
    share(&mut m, 2, "f", &files);
    m.run_for(SEC);
    get(&mut m, 3, id);
    let mut most = 0;
    for _ in 0..600 {
        m.run_for(Duration::from_millis(10));
        if let Some(d) = m.nodes[3].node.downloads(m.now).first() {
            most = most.max(d.requests);
        }
        if completed(&m, 3, id).is_some() {
            break;
        }
    }
    // 16 each (48 shared by 3), not 32 each: more only costs memory.
    assert_eq!(most, 48, "requests_per_download in flight at once");
    let (_, from) = completed(&m, 3, id).expect("completes");
    assert_eq!(from.len(), 3, "every holder served: {from:?}");
}

#[test]
fn requests_are_pipelined_per_peer() {
    let mut m = mesh(2);
    m.latency = Duration::from_millis(50);
    let id = share(&mut m, 0, "f", &one_file(100 * CS as usize, 2));
    get(&mut m, 1, id);
    let mut most = 0;
    for _ in 0..400 {
        m.run_for(Duration::from_millis(10));
        if let Some(d) = m.nodes[1].node.downloads(m.now).first() {
            most = most.max(d.requests);
        }
        if completed(&m, 1, id).is_some() {
            break;
        }
    }
    assert_eq!(most, 32, "requests_per_peer in flight at once");
    // 100 chunks at 32 per 100 ms round trip: well under 100 round trips.
    assert!(completed(&m, 1, id).is_some());
    assert!(m.elapsed() < 12 * SEC, "{:?}", m.elapsed());
}

#[test]
fn the_endgame_asks_a_second_peer_for_the_last_chunks() {
    let mut m = mesh(3);
    let files = one_file(64 * CS as usize, 3);
    let id = share(&mut m, 0, "f", &files);
    share(&mut m, 1, "f", &files);
    m.run_for(SEC);
    // Node 1 answers 3 s late: without an endgame the download waits for it.
    m.extra_latency.insert((1, 2), 3 * SEC);
    get(&mut m, 2, id);
    let took = run_until_complete(&mut m, 2, id, 30 * SEC);
    assert!(
        took < 3 * SEC,
        "the slow peer's chunks were not re-asked: {took:?}"
    );
    assert_eq!(m.nodes[2].storage.swarm.committed["data.bin"], files[0].1);
    // The late copies, when they come, are not counted twice.
    m.run_for(10 * SEC);
    let (_, from) = completed(&m, 2, id).unwrap();
    assert_eq!(
        from.values().sum::<u64>(),
        files[0].1.len() as u64,
        "{from:?}"
    );
}

#[test]
fn a_lying_peer_is_detected_and_never_causes_a_wrong_commit() {
    let mut m = mesh(3);
    let files = one_file(80 * CS as usize, 4);
    let id = share(&mut m, 0, "f", &files);
    share(&mut m, 1, "f", &files);
    // Node 1 serves every chunk with a flipped byte.
    m.nodes[1].storage.swarm.corrupt = (0..80).collect();
    m.run_for(SEC);
    get(&mut m, 2, id);
    run_until_complete(&mut m, 2, id, 30 * SEC);
    assert_eq!(m.nodes[2].storage.swarm.committed["data.bin"], files[0].1);
    let liar = m.nodes[1].node.id().clone();
    assert_eq!(
        rejected(&m, 2),
        std::slice::from_ref(&liar),
        "rejected once, then not asked again"
    );
    let (_, from) = completed(&m, 2, id).unwrap();
    assert!(!from.contains_key(&liar), "{from:?}");
}

#[test]
fn a_stalled_peer_has_its_requests_moved_to_the_others() {
    let mut m = mesh(3);
    let files = one_file(200 * CS as usize, 5);
    let id = share(&mut m, 0, "f", &files);
    share(&mut m, 1, "f", &files);
    m.latency = Duration::from_millis(20);
    m.run_for(SEC);
    get(&mut m, 2, id);
    m.run_for(Duration::from_millis(100));
    // Alive (its connection stays up) but silent.
    m.nodes[1].frozen = true;
    let took = run_until_complete(&mut m, 2, id, 60 * SEC);
    // One request timeout (10 s) plus the transfer.
    assert!(took < 15 * SEC, "{took:?}");
    assert_eq!(m.nodes[2].storage.swarm.committed["data.bin"], files[0].1);
}

#[test]
fn a_restarted_downloader_fetches_only_what_it_lacked() {
    let mut m = mesh(2);
    m.latency = Duration::from_millis(20);
    let files = one_file(640 * CS as usize, 6);
    let size = files[0].1.len() as u64;
    let id = share(&mut m, 0, "f", &files);
    get(&mut m, 1, id);
    m.run_until(30 * SEC, |m| {
        m.nodes[1]
            .node
            .downloads(m.now)
            .first()
            .is_some_and(|d| d.bytes > size / 2)
    })
    .expect("half way");
    m.crash(1);
    m.run_for(SEC);
    m.restart(1);
    m.bootstrap(1, 0);
    run_until_complete(&mut m, 1, id, 60 * SEC);
    let have = m
        .events(1)
        .find_map(|e| match e {
            Event::DownloadStarted { id: d, have, .. } if *d == id && *have > 0 => Some(*have),
            _ => None,
        })
        .expect("the restart resumed from the record");
    // The record lags by at most one checkpoint (64 chunks); what was
    // written since is fetched again.
    assert!(have >= size / 2 - 64 * u64::from(CS), "have {have}");
    let (_, from) = completed(&m, 1, id).unwrap();
    let fetched: u64 = from.values().sum();
    assert_eq!(fetched, size - have, "only the missing chunks: {from:?}");
    assert_eq!(m.nodes[1].storage.swarm.committed["data.bin"], files[0].1);
}

#[test]
fn a_restarted_holder_shares_again_what_its_storage_kept() {
    let mut m = mesh(2);
    let files = one_file(20 * CS as usize, 8);
    let id = share(&mut m, 0, "/srv/f", &files);
    m.crash(0);
    m.run_for(SEC);
    // The storage kept the list of shared paths; one of them is gone now.
    m.nodes[0].storage.swarm.listed = vec!["/srv/f".into(), "/srv/gone".into()];
    m.restart(0);
    m.bootstrap(1, 0);
    m.run_for(2 * SEC);
    let shared = m
        .events(0)
        .filter(|e| matches!(e, Event::Shared { id: s, .. } if *s == id))
        .count();
    assert_eq!(shared, 2, "once by hand, once on restart");
    assert!(
        m.events(0)
            .any(|e| matches!(e, Event::ShareFailed { path, .. } if path == "/srv/gone")),
        "a listed path that is gone is reported"
    );
    // The mesh sees it again and can fetch it.
    let l = m.nodes[1].node.files();
    assert_eq!((l.len(), l[0].id, l[0].complete), (1, id, 1), "{l:?}");
    get(&mut m, 1, id);
    run_until_complete(&mut m, 1, id, 30 * SEC);
    assert_eq!(m.nodes[1].storage.swarm.committed["data.bin"], files[0].1);
}

#[test]
fn a_record_that_lies_is_caught_by_verification() {
    let mut m = mesh(2);
    let files = one_file(50 * CS as usize, 7);
    let id = share(&mut m, 0, "f", &files);
    // A partial left by a "crash": nothing written, but its record says
    // every chunk is there.
    let (manifest, _) = build_manifest(CS, &files);
    m.nodes[1].storage.swarm.partials.insert(
        id,
        super::util::Partial {
            data: vec![0; manifest.size() as usize],
            manifest,
            written: BTreeSet::new(),
            record: BTreeSet::new(),
            dir: None,
        },
    );
    m.nodes[1].storage.swarm.lying_record = Some((0..50).collect());
    m.crash(1);
    m.restart(1);
    m.bootstrap(1, 0);
    run_until_complete(&mut m, 1, id, 30 * SEC);
    let have = m.events(1).find_map(|e| match e {
        Event::DownloadStarted { have, .. } => Some(*have),
        _ => None,
    });
    assert_eq!(have, Some(0), "no claimed chunk verified");
    assert_eq!(m.nodes[1].storage.swarm.committed["data.bin"], files[0].1);
}

#[test]
fn a_directory_tree_arrives_identical_beside_what_is_there() {
    let mut m = mesh(2);
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|k| {
            let path = format!("tree/d{}/sub{}/f{k}.txt", k % 7, k % 3);
            (path, content(100 + k * 37, k as u8))
        })
        .chain([("tree/empty".to_owned(), Vec::new())])
        .collect();
    let id = share(&mut m, 0, "/srv/tree", &files);
    // Something called "tree" is there already: never overwritten.
    m.nodes[1]
        .storage
        .swarm
        .committed
        .insert("tree".to_owned(), b"mine".to_vec());
    get(&mut m, 1, id);
    run_until_complete(&mut m, 1, id, 30 * SEC);
    let (path, _) = completed(&m, 1, id).unwrap();
    assert_eq!(path, "tree-(1)");
    let got = &m.nodes[1].storage.swarm.committed;
    assert_eq!(got["tree"], b"mine");
    for (p, bytes) in &files {
        let at = p.replacen("tree", "tree-(1)", 1);
        assert_eq!(got.get(&at), Some(bytes), "{at}");
    }
}

/// A manifest as bytes, whatever it lists (the canonical form, unchecked).
fn raw_manifest(files: &[(&str, u64)], hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut v = format!("p2p-manifest/1\nchunk-size {CS}\nfiles {}\n", files.len()).into_bytes();
    for (p, s) in files {
        v.extend_from_slice(format!("{s} {p}\n").as_bytes());
    }
    v.extend_from_slice(format!("chunks {}\n", hashes.len()).as_bytes());
    for h in hashes {
        v.extend_from_slice(h);
    }
    v
}

fn ext_frame(body: &[u8]) -> Vec<u8> {
    let mut w = format!("BYTES:{}\n", body.len()).into_bytes();
    w.extend_from_slice(body);
    w
}

#[test]
fn hostile_manifest_paths_are_refused_before_anything_is_written() {
    for path in [
        "../escape",
        "d/../../x",
        "/etc/passwd",
        "d/CON",
        "d/a\\b",
        "d/x.part",
        "d//x",
    ] {
        let mut m = mesh(1);
        let r = raw_peer(&mut m, 0, "evil", 9400);
        m.raw_send(r, &ext_frame(b"P2PX/caps\nswarm/1"));
        let bad = raw_manifest(&[(path, 10)], &[crate::chunk_hash(&[0; 10])]);
        let id = ContentId::of(&bad);
        let entry = format!("P2PX/swarm\nindex\n{id} 10 1 c x\n");
        m.raw_send(r, &ext_frame(entry.as_bytes()));
        m.run_for(SEC);
        get(&mut m, 0, id);
        m.run_for(SEC);
        let mut mani = format!("P2PX/swarm\nmani {id}\n").into_bytes();
        mani.extend_from_slice(&bad);
        m.raw_send(r, &ext_frame(&mani));
        m.run_for(SEC);
        let refused = m
            .events(0)
            .any(|e| matches!(e, Event::ExtensionIgnored { why, .. } if why.contains("manifest")));
        assert!(refused, "{path}: not refused");
        assert!(
            m.nodes[0].storage.swarm.partials.is_empty(),
            "{path}: opened"
        );
        // The connection goes on.
        assert_eq!(m.nodes[0].node.peer_count(), 1, "{path}");
    }
}

#[test]
fn a_reference_peer_sees_no_swarm_traffic() {
    let mut m = mesh(2);
    let r = raw_peer(&mut m, 0, "reference", 9401);
    let id = share(&mut m, 0, "f", &one_file(10 * CS as usize, 8));
    get(&mut m, 1, id);
    run_until_complete(&mut m, 1, id, 30 * SEC);
    let received = &m.raws[r].received;
    assert!(
        !received.windows(10).any(|w| w == b"P2PX/swarm"),
        "a reference peer got swarm frames"
    );
    // And a get, a chunk or an index from it is not taken (not announced).
    let body = format!("P2PX/swarm\nget {id} 0\n");
    m.raw_send(r, &ext_frame(body.as_bytes()));
    m.run_for(SEC);
    assert!(!m.raws[r].received.windows(10).any(|w| w == b"P2PX/swarm"));
}

#[test]
fn offers_are_declined_with_word_back_or_accepted_unattended() {
    let mut m = Mesh::new(3, |i, c| {
        c.swarm.chunk_size = CS;
        if i == 2 {
            c.swarm.accept_offers = AcceptOffers::All;
        }
    });
    for i in 1..3 {
        m.bootstrap(i, 0);
    }
    converge(&mut m, 5 * SEC);
    m.run_for(SEC);
    let files = one_file(20 * CS as usize, 9);
    m.nodes[0]
        .storage
        .swarm
        .trees
        .insert("f".into(), files.clone());
    m.nodes[0].node.offer("f", Target::All).unwrap();
    m.run_for(SEC);
    let offer_at_1 = m.events(1).find_map(|e| match e {
        Event::Offer { id, accepted, .. } => Some((*id, *accepted)),
        _ => None,
    });
    let (id, accepted) = offer_at_1.expect("node 1 saw the offer");
    assert!(!accepted);
    m.nodes[1].node.decline(&id.to_hex()[..10]).unwrap();
    m.run_for(SEC);
    let by = m.nodes[1].node.id().clone();
    assert!(m
        .events(0)
        .any(|e| matches!(e, Event::OfferDeclined { id: d, by: b } if *d == id && *b == by)));
    // Node 2 accepts on its own.
    run_until_complete(&mut m, 2, id, 30 * SEC);
    assert_eq!(m.nodes[2].storage.swarm.committed["data.bin"], files[0].1);
    assert!(m.nodes[1].storage.swarm.committed.is_empty());
}

#[test]
fn the_oldest_pending_offer_is_dropped_first() {
    let mut m = Mesh::new(2, |i, c| {
        c.swarm.chunk_size = CS;
        if i == 1 {
            c.swarm.max_offers = 2;
        }
    });
    m.bootstrap(1, 0);
    converge(&mut m, 5 * SEC);
    let mut ids: Vec<(ContentId, String)> = (0..3)
        .map(|k| {
            let path = format!("f{k}");
            let id = share(&mut m, 0, &path, &one_file(1000 + k, 20 + k as u8));
            (id, path)
        })
        .collect();
    // Offered from the largest id down, so that age and id order disagree.
    ids.sort();
    ids.reverse();
    for (_, path) in &ids {
        m.nodes[0].node.offer(path, Target::All).unwrap();
        m.run_for(SEC);
    }
    let n = &mut m.nodes[1].node;

    assert!(
        n.decline(&ids[0].0.to_hex()).is_err(),
        "the first offer was dropped"
    );
    n.decline(&ids[1].0.to_hex()).unwrap();
    n.decline(&ids[2].0.to_hex()).unwrap();
}

#[test]
fn ids_are_typed_as_unique_prefixes() {
    let mut m = mesh(2);
    let id = share(&mut m, 0, "f", &one_file(1000, 10));
    m.run_for(SEC);
    let n = &mut m.nodes[1].node;
    let now = m.now;
    assert!(matches!(
        n.get(now, "abc", None),
        Err(crate::CommandError::InvalidContentId(_))
    ));
    assert!(matches!(
        n.get(now, "zzzzzzzzzz", None),
        Err(crate::CommandError::InvalidContentId(_))
    ));
    let other = if id.to_hex().starts_with('0') {
        "11111111"
    } else {
        "00000000"
    };
    assert!(matches!(
        n.get(now, other, None),
        Err(crate::CommandError::UnknownContent(_))
    ));
    assert_eq!(
        n.get(now, &id.to_hex()[..8].to_uppercase(), None).unwrap(),
        id
    );
    // Twice is one download.
    assert_eq!(n.get(now, &id.to_hex(), None).unwrap(), id);
    assert_eq!(n.downloads(now).len(), 1);
    // Sharing it again reports it again (the id is shown) and hashes nothing.
    let shares = m.nodes[0].storage.swarm.shared.len();
    m.nodes[0].node.share("f").unwrap();
    m.run_for(SEC);
    let said = m
        .events(0)
        .filter(|e| matches!(e, Event::Shared { .. }))
        .count();
    assert_eq!((said, m.nodes[0].storage.swarm.shared.len()), (2, shares));
    assert_eq!(
        m.trace.matches("0 Storage(Share {").count(),
        1,
        "hashed twice"
    );
    // What we share is not downloaded again.
    let n0 = &mut m.nodes[0].node;
    assert!(matches!(
        n0.get(now, &id.to_hex(), None),
        Err(crate::CommandError::AlreadyHave(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_manifest_round_trips(
        files in proptest::collection::btree_map("[a-z]{1,6}(/[a-z0-9]{1,4}){0,2}", 0u64..100_000, 1..12),
        cs in prop_oneof![Just(4096u32), Just(65536), Just(262144)],
    ) {
        let files: Vec<ManifestFile> = files
            .into_iter()
            .map(|(p, size)| ManifestFile { path: format!("top/{p}"), size })
            .collect();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let n = total.div_ceil(u64::from(cs)) as usize;
        let hashes: Vec<[u8; 32]> = (0..n).map(|k| crate::chunk_hash(&k.to_le_bytes())).collect();
        // Some generated trees are invalid (a file that is also a
        // directory): those must be refused, never half-accepted.
        match Manifest::new(cs, files, hashes) {
            Ok(m) => {
                let bytes = m.encode();
                let back = Manifest::parse(&bytes).unwrap();
                prop_assert_eq!(&back, &m);
                prop_assert_eq!(back.id(), ContentId::of(&bytes));
                // Segments tile every chunk exactly.
                for k in 0..m.chunks() {
                    let covered: usize = m.segments(k).iter().map(|(_, _, r)| r.len()).sum();
                    prop_assert_eq!(covered, m.chunk_len(k));
                }
            }
            // A file that is also a directory, or a device name (`con`).
            Err(e) => prop_assert!(
                matches!(e, crate::ManifestError::Malformed(_) | crate::ManifestError::UnsafePath { .. }),
                "{e}"
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any set of holders (complete or partial), any latencies (so any
    /// order of arrivals), one lying or not: the same bytes are committed.
    #[test]
    fn any_order_of_arrivals_from_any_holders_assembles_the_same_bytes(
        holders in 1usize..4,
        partial_mask in 0u8..8,
        lats in proptest::collection::vec(0u64..200, 4),
        liar in proptest::option::of(0usize..3),
        len in 1usize..(60 * CS as usize),
    ) {
        let n = holders + 1;
        let mut m = mesh(n);
        let files = one_file(len, 11);
        let mut id = None;
        for h in 0..holders {
            id = Some(share(&mut m, h, "f", &files));
        }
        let id = id.unwrap();
        let chunks = len.div_ceil(CS as usize) as u32;
        #[allow(clippy::needless_range_loop)]
        for h in 0..holders {
            if partial_mask & (1 << h) != 0 && h > 0 {
                // A partial holder: it lost its copy and downloads it.
                m.nodes[h].node.unshare(&id.to_hex()).unwrap();
                m.run_for(Duration::from_millis(50));
                get(&mut m, h, id);
            }
            m.extra_latency.insert((h, n - 1), Duration::from_millis(lats[h]));
        }
        let complete = |h: usize| h == 0 || partial_mask & (1 << h) == 0;
        // A liar only where an honest complete holder is left.
        let liar = liar.filter(|&l| l < holders && (0..holders).any(|h| h != l && complete(h)));
        if let Some(l) = liar {
            m.nodes[l].storage.swarm.corrupt = (0..chunks).step_by(2).collect();
        }
        m.run_for(Duration::from_millis(100));
        get(&mut m, n - 1, id);
        run_until_complete(&mut m, n - 1, id, 120 * SEC);
        prop_assert!(m.nodes[n - 1].storage.swarm.committed["data.bin"] == files[0].1);
        let _ = Bytes::new();
    }
}

/// Regression: a partial holder that said it holds nothing (or rests)
/// kept the `have` refresh deadline in the past, and `handle_timeout`
/// found it due forever (the node hung).
#[test]
fn a_partial_holder_that_holds_nothing_does_not_hang_the_node() {
    let mut m = mesh(1);
    m.latency = Duration::from_millis(30);
    let files = one_file(300 * CS as usize, 12);
    let id = share(&mut m, 0, "f", &files);
    let mut m2 = Mesh::new(2, |_, c| c.swarm.chunk_size = CS);
    std::mem::swap(&mut m, &mut m2);
    drop(m2);
    m.latency = Duration::from_millis(30);
    m.bootstrap(1, 0);
    converge(&mut m, 5 * SEC);
    m.nodes[0]
        .storage
        .swarm
        .trees
        .insert("f".into(), files.clone());
    m.nodes[0].node.share("f").unwrap();
    m.run_for(SEC);
    // A raw peer lists it as partial and answers every `hget` with `none`.
    let r = raw_peer(&mut m, 1, "partial", 9402);
    m.raw_send(r, &ext_frame(b"P2PX/caps\nswarm/1"));
    let entry = format!(
        "P2PX/swarm\nindex\n{id} {} 1 p data.bin\n",
        files[0].1.len()
    );
    m.raw_send(r, &ext_frame(entry.as_bytes()));
    m.run_for(Duration::from_millis(100));
    get(&mut m, 1, id);
    for _ in 0..100 {
        m.run_for(Duration::from_millis(100));
        let none = format!("P2PX/swarm\nnone {id}\n");
        m.raw_send(r, &ext_frame(none.as_bytes()));
        if completed(&m, 1, id).is_some() {
            break;
        }
    }
    run_until_complete(&mut m, 1, id, 30 * SEC);
    assert_eq!(m.nodes[1].storage.swarm.committed["data.bin"], files[0].1);
}
