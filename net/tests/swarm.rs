//! Content-addressed sharing through the driver and the disk, over real
//! loopback TCP: two holders serve one downloader, a tree arrives whole, and
//! a downloader stopped half way continues from its record when it starts
//! again (docs/PROTOCOL.md §9).

use std::path::Path;
use std::time::Duration;

mod common;

use p2p_core::{ContentId, Event};
use p2p_net::{start, DiskStorage, Events, NetConfig, NodeHandle, TcpTransport};

async fn node(name: &str, dir: &Path, boot: Option<std::net::SocketAddr>) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    cfg.core.name = Some(name.into());
    // Distinct seeds: the id is drawn from it.
    cfg.seed = name.bytes().map(u64::from).sum();
    cfg.debug_events = true;
    if let Some(b) = boot {
        cfg.bootstrap.push(b.to_string());
    }
    start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir).unwrap(),
    )
    .await
    .unwrap()
}

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

async fn shared(h: &NodeHandle, events: &mut Events, path: &Path) -> ContentId {
    h.share(path).await.unwrap();
    common::wait_core(events, 20, |e| match e {
        Event::Shared { id, .. } => Some(*id),
        Event::ShareFailed { error, .. } => panic!("share failed: {error}"),
        _ => None,
    })
    .await
}

/// Waits until `events` reported an index from `n` peers listing something.
async fn indexes(events: &mut Events, n: usize) {
    let mut seen = 0;
    common::wait_core(events, 20, |e| {
        if matches!(e, Event::IndexReceived { entries, .. } if *entries > 0) {
            seen += 1;
        }
        (seen >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holders_serve_one_downloader_and_a_tree_arrives_whole() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let data = bytes(12 << 20, 1);
    for d in [&da, &db] {
        std::fs::write(d.path().join("big.bin"), &data).unwrap();
    }
    let (a, mut ae) = node("a", da.path(), None).await;
    let (b, mut be) = node("b", db.path(), Some(a.local_addr())).await;
    let id = shared(&a, &mut ae, &da.path().join("big.bin")).await;
    assert_eq!(shared(&b, &mut be, &db.path().join("big.bin")).await, id);
    // A tree of a few hundred small files on a.
    let tree = da.path().join("tree");
    let mut files = Vec::new();
    for k in 0..300u32 {
        let rel = format!("d{}/s{}/f{k}.txt", k % 5, k % 3);
        let p = tree.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = bytes(50 + k as usize * 13, k + 7);
        std::fs::write(&p, &body).unwrap();
        files.push((rel, body));
    }
    let tree_id = shared(&a, &mut ae, &tree).await;
    let (c, mut ce) = node("c", dc.path(), Some(a.local_addr())).await;
    indexes(&mut ce, 2).await;
    c.get(&id.to_hex(), None).await.unwrap();
    c.get(&tree_id.to_hex()[..16], None).await.unwrap();
    let mut done = std::collections::BTreeMap::new();
    common::wait_core(&mut ce, 60, |e| {
        match e {
            Event::DownloadComplete {
                id,
                path,
                bytes_from,
                ..
            } => {
                done.insert(*id, (path.clone(), bytes_from.clone()));
            }
            Event::DownloadFailed { error, .. } => panic!("download failed: {error}"),
            _ => {}
        }
        (done.len() == 2).then_some(())
    })
    .await;
    let (path, from) = &done[&id];
    assert_eq!(std::fs::read(dc.path().join(path)).unwrap(), data);
    assert_eq!(from.len(), 2, "both holders sent chunks: {from:?}");
    assert!(from.values().all(|&b| b > 0), "{from:?}");
    assert_eq!(from.values().sum::<u64>(), data.len() as u64);
    let (tpath, _) = &done[&tree_id];
    assert_eq!(Path::new(tpath), dc.path().join("tree"));
    for (rel, body) in &files {
        assert_eq!(
            &std::fs::read(Path::new(tpath).join(rel)).unwrap(),
            body,
            "{rel}"
        );
    }
    // Nothing is left in the hidden folder.
    let partial = dc.path().join(".p2p/partial");
    let left = std::fs::read_dir(&partial).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
    for h in [c, b, a] {
        h.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloader_stopped_half_way_continues_from_its_record() {
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = bytes(48 << 20, 2);
    std::fs::write(da.path().join("big.bin"), &data).unwrap();
    let (a, mut ae) = node("a", da.path(), None).await;
    let id = shared(&a, &mut ae, &da.path().join("big.bin")).await;
    let (c, mut ce) = node("c", dc.path(), Some(a.local_addr())).await;
    indexes(&mut ce, 1).await;
    c.get(&id.to_hex(), None).await.unwrap();
    let half = data.len() as u64 / 2;
    common::wait_core(&mut ce, 60, |e| {
        matches!(e, Event::DownloadProgress { bytes, .. } if *bytes >= half).then_some(())
    })
    .await;
    c.shutdown().await.unwrap();
    drop(ce);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The same downloads directory, a new process's worth of node.
    let (c, mut ce) = node("c", dc.path(), Some(a.local_addr())).await;
    let mut have = None;
    let (path, from) = common::wait_core(&mut ce, 60, |e| match e {
        Event::DownloadStarted { have: h, .. } => {
            have = Some(*h);
            None
        }
        Event::DownloadComplete {
            path, bytes_from, ..
        } => Some((path.clone(), bytes_from.clone())),
        Event::DownloadFailed { error, .. } => panic!("download failed: {error}"),
        _ => None,
    })
    .await;
    let have = have.expect("DownloadStarted");
    // A graceful stop checkpoints: everything verified before it counts.
    assert!(have >= half, "have {have} of {half}");
    let fetched: u64 = from.values().sum();
    assert_eq!(fetched, data.len() as u64 - have, "{from:?}");
    assert_eq!(std::fs::read(dc.path().join(&path)).unwrap(), data);
    c.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
