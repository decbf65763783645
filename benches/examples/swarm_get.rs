//! `/get` of one file from `HOLDERS` in-process nodes over loopback TCP, timed
//! from the command to `DownloadComplete`; for profiling the receive path
//! (`perf record`). The process-level figures with memory are
//! `benches/scripts/swarmget.py`.
//!
//! `cargo run --release -p p2p-benches --example swarm_get -- DIR SIZE_MIB HOLDERS`
//! (env: `TRACE=1` prints progress, `REQS=N` / `TOTAL=N` set the requests in
//! flight per peer / per download, `NO_TUNE=1` leaves the allocator untuned)

use std::time::Instant;

use p2p_core::Event;
use p2p_net::{start, DiskStorage, Events, NetConfig, NetEvent, NodeHandle, TcpTransport};

async fn node(
    name: &str,
    dir: &std::path::Path,
    boot: Option<std::net::SocketAddr>,
) -> (NodeHandle, Events) {
    let mut cfg = NetConfig::new(0);
    cfg.core.name = Some(name.into());
    cfg.seed = name.bytes().map(u64::from).sum();
    cfg.debug_events = true;
    // REQS=N: chunk requests in flight per peer (SwarmConfig's default
    // otherwise), for trying the pipeline depth.
    if let Some(n) = std::env::var("REQS").ok().and_then(|v| v.parse().ok()) {
        cfg.core.swarm.requests_per_peer = n;
    }
    // TOTAL=N: requests in flight per download.
    if let Some(n) = std::env::var("TOTAL").ok().and_then(|v| v.parse().ok()) {
        cfg.core.swarm.requests_per_download = n;
    }
    if let Some(b) = boot {
        cfg.bootstrap.push(b.to_string());
    }
    start(
        cfg,
        TcpTransport::loopback(),
        DiskStorage::new(dir).expect("dir"),
    )
    .await
    .expect("node")
}

async fn until(events: &mut Events, mut f: impl FnMut(&Event) -> bool) {
    while let Some(e) = events.next().await {
        if let NetEvent::Core(e) = e {
            if f(&e) {
                return;
            }
        }
    }
    panic!("node stopped");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // As p2p-node does (NO_TUNE=1 measures without it).
    if std::env::var_os("NO_TUNE").is_none() {
        p2p_net::tune_allocator();
    }
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::PathBuf::from(&args[1]);
    let mib: usize = args[2].parse().expect("size");
    let holders: usize = args[3].parse().expect("holders");
    let src = root.join(format!("src-{mib}.bin"));
    if std::fs::metadata(&src).map(|m| m.len()).ok() != Some((mib as u64) << 20) {
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut all = Vec::with_capacity(mib << 20);
        for k in 0..mib {
            all.extend_from_slice(&block[k % 97..]);
            all.extend_from_slice(&block[..k % 97]);
        }
        std::fs::write(&src, all).expect("write");
    }
    let mut hs = Vec::new();
    let mut id = None;
    for h in 0..holders {
        let dir = root.join(format!("h{h}"));
        let boot = hs
            .first()
            .map(|(a, _): &(NodeHandle, Events)| a.local_addr());
        let (a, mut ae) = node(&format!("h{h}"), &dir, boot).await;
        a.share(&src).await.expect("share");
        let mut got = None;
        until(&mut ae, |e| match e {
            Event::Shared { id, .. } => {
                got = Some(*id);
                true
            }
            _ => false,
        })
        .await;
        id = got;
        hs.push((a, ae));
    }
    let id = id.expect("an id");
    let dl = root.join("d");
    let _ = std::fs::remove_dir_all(&dl);
    let (d, mut de) = node("d", &dl, Some(hs[0].0.local_addr())).await;
    let mut seen = 0;
    until(&mut de, |e| {
        seen += matches!(e, Event::IndexReceived { entries, .. } if *entries > 0) as usize;
        seen >= holders
    })
    .await;
    let t = Instant::now();
    d.get(&id.to_hex(), None).await.expect("get");
    let mut from = Default::default();
    until(&mut de, |e| match e {
        Event::DownloadComplete { bytes_from, .. } => {
            from = bytes_from.clone();
            true
        }
        Event::DownloadFailed { error, .. } => panic!("{error}"),
        Event::DownloadProgress { bytes, .. } => {
            if std::env::var_os("TRACE").is_some() {
                eprintln!("{:>8.3} {bytes}", t.elapsed().as_secs_f64());
            }
            false
        }
        _ => false,
    })
    .await;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{mib} MiB from {holders} holder(s): {s:.3} s, {:.2} GB/s; from {:?}",
        (mib << 20) as f64 / s / 1e9,
        from.values().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dl);
}
