//! The simulated LAN ([`p2p_sim::lan`]) on its own, and the `lan`
//! scenario: no bootstrap anywhere, nodes meet through announcements only,
//! a seeded share of them lost, next to hosts of another network.
//!
//! No multicast here, and no socket at all: the LAN is `SimLan`, in memory
//! inside turmoil's simulated network. Real mDNS (`p2p_net::MdnsLan`) is
//! only used by `cli/tests/lan.rs`, inside a network namespace it creates.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_net::{Announcement, Heard, LanDiscovery};
use p2p_sim::lan::{LanParams, LanSegment, ANNOUNCE_AT};
use p2p_sim::{run, Report, Sabotage, Scenario, SimConfig};
use tokio::sync::mpsc;

// ----- the segment on its own -----

/// What each host heard: (simulated ms, what).
type Heards = BTreeMap<usize, Vec<(u64, Heard)>>;
type Log = Arc<Mutex<Heards>>;

/// How a host of [`segment_run`] behaves.
#[derive(Clone, Copy)]
struct Member {
    /// Joins this long after the start.
    start: Duration,
    /// Withdraws this long after the start, if ever.
    stop: Option<Duration>,
    /// Its network fingerprint.
    network: Option<&'static str>,
}

fn member(start_ms: u64) -> Member {
    Member {
        start: Duration::from_millis(start_ms),
        stop: None,
        network: None,
    }
}

/// Runs `members` on one segment for `secs` simulated seconds; returns
/// what each heard, the hosts' IPs and the segment.
fn segment_run(
    params: LanParams,
    members: &[Member],
    secs: u64,
    seed: u64,
) -> (Heards, Vec<IpAddr>, LanSegment) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(secs + 10))
        .build();
    let segment = LanSegment::new(params);
    let log: Log = Arc::default();
    let mut ips = Vec::new();
    for (i, m) in members.iter().copied().enumerate() {
        let name = format!("h{i}");
        let ip = sim.lookup(name.clone());
        ips.push(ip);
        let (segment, log) = (segment.clone(), log.clone());
        sim.host(name, move || {
            let (segment, log) = (segment.clone(), log.clone());
            async move {
                tokio::time::sleep(m.start).await;
                let lan = segment.member(ip, seed * 1000 + i as u64);
                let (tx, mut rx) = mpsc::channel(64);
                let me = Announcement {
                    id: format!("id{i}"),
                    name: format!("h{i}"),
                    port: 9000,
                    network: m.network.map(str::to_owned),
                };
                let session = lan.start(me, tx)?;
                let stop_at = m.stop.map(|s| tokio::time::Instant::now() + (s - m.start));
                let mut session = Some(session);
                loop {
                    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
                    tokio::select! {
                        biased;
                        heard = rx.recv() => {
                            let Some(heard) = heard else { break };
                            let at = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
                            log.lock().unwrap().entry(i).or_default().push((at, heard));
                        }
                        _ = tokio::time::sleep_until(stop_at.unwrap_or(far)), if session.is_some() && stop_at.is_some() => {
                            if let Some(s) = session.take() {
                                s.stop();
                            }
                        }
                    }
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    while sim.elapsed() < Duration::from_secs(secs) {
        sim.step().expect("the hosts run");
    }
    let heard = log.lock().unwrap().clone();
    (heard, ips, segment)
}

/// The ids each host heard.
fn ids_heard(log: &Heards, n: usize) -> Vec<BTreeSet<String>> {
    (0..n)
        .map(|i| {
            log.get(&i)
                .into_iter()
                .flatten()
                .filter_map(|(_, h)| h.id.clone())
                .collect()
        })
        .collect()
}

#[test]
fn with_no_loss_everyone_hears_everyone() {
    let members: Vec<Member> = (0..6).map(|i| member(i * 150)).collect();
    let (log, ips, segment) = segment_run(LanParams::with_loss(0.0), &members, 10, 1);
    for (i, ids) in ids_heard(&log, 6).iter().enumerate() {
        let others: BTreeSet<String> = (0..6)
            .filter(|&j| j != i)
            .map(|j| format!("id{j}"))
            .collect();
        assert_eq!(ids, &others, "h{i}");
    }
    // Where each listens, and no network (a public mesh).
    for entries in log.values() {
        for (_, h) in entries {
            let j: usize = h.id.as_deref().unwrap()[2..].parse().unwrap();
            assert_eq!(h.addrs, vec![format!("{}:9000", ips[j])]);
            assert_eq!(h.network, None);
        }
    }
    let s = segment.stats();
    assert_eq!((s.joined, s.lost, s.dropped), (6, 0, 0));
    assert_eq!(s.delivered, s.sent);
    // Each of the 15 pairs: the later one's announcement and the answer
    // to its query at start, then both sides' repeats at 1, 3 and 7 s
    // (all within 10 s): 2 + 2 * 3 = 8 deliveries per pair.
    assert_eq!(s.sent, 15 * (2 + 2 * (ANNOUNCE_AT.len() as u64 - 1)));
    // Delays within 1..=100 ms: the first answers arrive by then.
    let first = log[&5].iter().map(|(at, _)| *at).min().unwrap();
    assert!((750..=851).contains(&first), "h5 first heard at {first} ms");
}

#[test]
fn with_total_loss_nobody_hears_anything() {
    let members: Vec<Member> = (0..6).map(|i| member(i * 150)).collect();
    let (log, _, segment) = segment_run(LanParams::with_loss(1.0), &members, 10, 1);
    assert!(log.values().all(Vec::is_empty), "{log:?}");
    let s = segment.stats();
    assert!(s.sent > 0);
    assert_eq!((s.delivered, s.lost), (0, s.sent));
}

/// Losses are seeded: the same seed hears the same at the same times,
/// another seed does not; some of the announcements are lost and the
/// repeats make up for them.
#[test]
fn losses_are_seeded_and_repeats_recover_them() {
    let members: Vec<Member> = (0..8).map(|i| member(i * 100)).collect();
    let (a, _, sa) = segment_run(LanParams::with_loss(0.4), &members, 10, 3);
    let (b, _, _) = segment_run(LanParams::with_loss(0.4), &members, 10, 3);
    let (c, _, _) = segment_run(LanParams::with_loss(0.4), &members, 10, 4);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let s = sa.stats();
    assert!(s.lost > 0 && s.delivered > 0, "{s:?}");
    for (i, ids) in ids_heard(&a, 8).iter().enumerate() {
        assert_eq!(ids.len(), 7, "h{i} heard only {ids:?}");
    }
}

/// A withdrawn member is heard no more, and a member that joins after it
/// left never hears it; the network fingerprint travels as announced.
#[test]
fn a_stopped_member_is_heard_no_more_and_networks_travel() {
    let mut members = vec![member(0), member(100), member(5000)];
    members[0].stop = Some(Duration::from_millis(2000));
    members[1].network = Some("fp-1");
    let (log, _, _) = segment_run(LanParams::with_loss(0.0), &members, 12, 1);
    let late: Vec<&Heard> = log[&2].iter().map(|(_, h)| h).collect();
    assert!(
        late.iter().all(|h| h.id.as_deref() == Some("id1")),
        "{late:?}"
    );
    assert!(late.iter().all(|h| h.network.as_deref() == Some("fp-1")));
    // h1 heard h0 only before h0 left (its start and its 1 s repeat).
    let from_h0: Vec<u64> = log[&1]
        .iter()
        .filter(|(_, h)| h.id.as_deref() == Some("id0"))
        .map(|(at, _)| *at)
        .collect();
    assert!(
        !from_h0.is_empty() && from_h0.iter().all(|&at| at < 2000),
        "{from_h0:?}"
    );
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let segment = LanSegment::new(LanParams::with_loss(0.0));
    let lan = segment.member(IpAddr::from([10, 0, 0, 1]), 1);
    let (tx, _rx) = mpsc::channel(1);
    let me = Announcement {
        id: "x".into(),
        name: "x".into(),
        port: 1,
        network: None,
    };
    assert!(lan.start(me, tx).is_err());
}

// ----- the lan scenario -----

fn lan(peers: usize, seed: u64) -> SimConfig {
    SimConfig::new(Scenario::Lan, peers, seed)
}

fn assert_passes_within_its_bound(r: &Report) {
    assert!(r.passed(), "{}", r.summary());
    let l = r.lan.as_ref().expect("a lan summary");
    let at = r.converged_at_ms.expect("converged");
    assert!(at <= l.last_start_ms + l.bound_ms, "{}", r.summary());
    // Found through the LAN, with losses, next to another network that
    // also found itself there; nobody bootstrapped.
    for counter in [
        "lan_peer_heard",
        "lan_announcement_lost",
        "lan_other_network_heard",
        "lan_other_network_peered",
    ] {
        assert!(r.coverage.get(counter) > 0, "{counter}: {}", r.summary());
    }
    assert_eq!(r.coverage.get("bootstrap_failed"), 0);
    assert!(r.lan.as_ref().is_some_and(|l| l.stats.lost > 0));
}

#[test]
fn the_lan_scenario_converges_without_bootstrap() {
    for (peers, seed) in [(10, 1), (12, 2), (20, 3)] {
        let r = run(&lan(peers, seed)).unwrap();
        assert_passes_within_its_bound(&r);
        assert_eq!(r.graph.edges, peers * (peers - 1) / 2);
    }
}

/// Private mode: the members' fingerprint is their key's, the outsiders'
/// another one; the mesh forms all the same.
#[test]
fn a_private_lan_mesh_converges_too() {
    let mut cfg = lan(10, 4);
    cfg.network_key = Some("lan key".into());
    let r = run(&cfg).unwrap();
    assert_passes_within_its_bound(&r);
    assert!(r.replay.contains("--network-key"));
}

#[test]
fn the_same_seed_gives_the_same_lan_run_and_another_seed_another() {
    let a = run(&lan(10, 5)).unwrap();
    let b = run(&lan(10, 5)).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let c = run(&lan(10, 6)).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
    // The loss rate is part of the run (and of its replay line).
    let mut lossless = lan(10, 5);
    lossless.lan_loss = 0.0;
    let d = run(&lossless).unwrap();
    assert!(d.passed(), "{}", d.summary());
    assert_ne!(a.trace_hash, d.trace_hash);
    assert_eq!(d.coverage.get("lan_announcement_lost"), 0);
    assert!(d.replay.ends_with("--lan-loss 0"), "{}", d.replay);
}

/// With every announcement lost nobody ever hears of anybody: the check
/// that the mesh forms without bootstrap fails (and only it).
#[test]
fn a_deaf_lan_fails_converged_without_bootstrap() {
    let mut cfg = lan(6, 1);
    cfg.sabotage = Some(Sabotage::DeafLan);
    cfg.mesh_deadline = Duration::from_secs(5);
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    let checks: BTreeSet<&str> = r.violations.iter().map(|v| v.check).collect();
    assert_eq!(
        checks,
        BTreeSet::from(["converged_without_bootstrap"]),
        "{}",
        r.summary()
    );
    assert_eq!(r.coverage.get("lan_peer_heard"), 0);
    assert_eq!(r.messages, 0, "nobody ever dialed anybody");
}

#[test]
fn bad_lan_loss_is_refused() {
    for loss in [-0.1, 1.5, f64::NAN] {
        let mut cfg = lan(4, 1);
        cfg.lan_loss = loss;
        assert!(run(&cfg).is_err(), "{loss}");
    }
}
