//! The simulator's own tests: determinism, every scenario at a small size,
//! seed sweeps of partition and churn, and deliberately broken runs that
//! show the checks can fail.
//!
//! One test binary (one link) whose tests the harness runs in parallel.

use p2p_sim::{run, Report, Sabotage, Scenario, SimConfig};

fn sim(scenario: Scenario, peers: usize, seed: u64) -> Report {
    let cfg = SimConfig::new(scenario, peers, seed);
    run(&cfg).expect("valid configuration")
}

/// Fails with every failing seed's first violation and replay command.
fn assert_all_pass(reports: &[Report]) {
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let first = r
                .violations
                .first()
                .map_or_else(|| "did not converge".to_owned(), ToString::to_string);
            format!("seed {}: {first}\n  replay: {}", r.seed, r.replay_command())
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `scenario` as a private mesh (`--network-key`).
fn private(scenario: Scenario, peers: usize, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(scenario, peers, seed);
    cfg.network_key = Some("sim test key".into());
    cfg
}

fn sweep(scenario: Scenario, peers: usize, seeds: std::ops::Range<u64>) -> Vec<Report> {
    seeds.map(|seed| sim(scenario, peers, seed)).collect()
}

// ----- determinism -----

fn assert_replays_exactly(cfg: &SimConfig) {
    let a = run(cfg).expect("valid configuration");
    let b = run(cfg).expect("valid configuration");
    assert_eq!(a.trace_hash, b.trace_hash, "{} diverged", cfg.replay_args());
    // The whole report, not only the hash, is identical.
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert!(a.trace_events > 100);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [1, 2, 3] {
        assert_replays_exactly(&SimConfig::new(Scenario::Mesh, 8, seed));
    }
    // Crashes, restarts (new runtimes, new ids) and file transfers too.
    assert_replays_exactly(&SimConfig::new(Scenario::Churn, 8, 5));
    assert_replays_exactly(&SimConfig::new(Scenario::File, 6, 2));
}

#[test]
fn runs_on_other_threads_do_not_disturb_a_run() {
    // tokio's task ids are global to the process; nothing may depend on
    // them (a crash drops a host's tasks in an id-dependent order).
    let cfg = SimConfig::new(Scenario::Churn, 6, 11);
    let alone = run(&cfg).unwrap().trace_hash;
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || run(&cfg).unwrap().trace_hash)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), alone);
    }
}

/// Private mode: the same seed and key give the same trace; another key
/// gives another run.
#[test]
fn the_same_seed_and_key_give_the_same_trace() {
    assert_replays_exactly(&private(Scenario::Mesh, 6, 3));
    assert_replays_exactly(&private(Scenario::Intruders, 5, 2));
    let a = run(&private(Scenario::Mesh, 6, 3)).unwrap();
    let mut other = private(Scenario::Mesh, 6, 3);
    other.network_key = Some("another key".into());
    let b = run(&other).unwrap();
    let plain = sim(Scenario::Mesh, 6, 3);
    assert!(a.passed() && b.passed(), "{}\n{}", a.summary(), b.summary());
    assert_ne!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, plain.trace_hash);
}

#[test]
fn different_seeds_give_different_runs() {
    let a = sim(Scenario::Mesh, 6, 1);
    let b = sim(Scenario::Mesh, 6, 2);
    assert_ne!(a.trace_hash, b.trace_hash);
}

// ----- each scenario at a small size -----

#[test]
fn mesh_forms() {
    let reports = sweep(Scenario::Mesh, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        let at = r.converged_at_ms.expect("converged");
        assert!(at < 5_000, "seed {}: full mesh only at {at} ms", r.seed);
    }
}

/// A cut holds segments, as TCP's retransmissions do: a partition shorter
/// than the peer timeout loses no connection (the mesh never breaks), a
/// longer one times the peers out, and they find each other again after
/// the repair. Seeds 1..4 at 8 peers give both (seed 1 long, 2 and 3 short).
#[test]
fn partition_heals() {
    let reports = sweep(Scenario::Partition, 8, 1..4);
    assert_all_pass(&reports);
    let (mut short, mut long) = (0, 0);
    for r in &reports {
        assert!(r.faults.links_cut >= 16, "seed {}: {:?}", r.seed, r.faults);
        let timed_out = r.coverage.get("peer_timed_out");
        if timed_out == 0 {
            // Nothing lost: the first mesh is the final one.
            short += 1;
            assert_eq!(r.first_mesh_at_ms, r.converged_at_ms, "seed {}", r.seed);
            assert_eq!(
                r.coverage.get("peer_connection_closed"),
                0,
                "seed {}",
                r.seed
            );
        } else {
            long += 1;
            assert!(
                r.coverage.get("peer_rediscovered_after_partition") > 0,
                "seed {}",
                r.seed
            );
        }
    }
    assert!(short > 0 && long > 0, "short {short}, long {long}");
}

/// Regression: turmoil's partition lost the segments in flight, so every
/// connection that carried data across a cut stalled for good and was
/// dropped after the repair even when the cut was shorter than the peer
/// timeout (`--scenario partition --peers 20 --seed 3` lost all 19
/// connections of every peer). Cuts now hold segments and deliver them on
/// repair.
#[test]
fn a_cut_shorter_than_the_peer_timeout_loses_no_connection() {
    let r = run(&SimConfig::new(Scenario::Partition, 8, 2)).unwrap();
    assert!(r.passed(), "{}", r.summary());
    assert!(r.faults.links_cut >= 16);
    assert_eq!(r.coverage.get("peer_timed_out"), 0);
    assert_eq!(r.coverage.get("peer_connection_closed"), 0);
    assert_eq!(r.first_mesh_at_ms, r.converged_at_ms);
}

#[test]
fn churn_rejoins_and_drops_the_dead() {
    let reports = sweep(Scenario::Churn, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.faults.crashes >= 3 && r.faults.restarts == r.faults.crashes);
        assert!(r.coverage.get("restarted_peer_rejoined") > 0);
    }
    let silent: u64 = reports
        .iter()
        .map(|r| r.coverage.get("dead_peer_removed_by_timeout"))
        .sum();
    assert!(silent > 0, "no silent crash was detected by timeout");
}

#[test]
fn latency_causes_no_false_timeouts() {
    let reports = sweep(Scenario::Latency, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.faults.links_held > 0);
        assert_eq!(r.coverage.get("peer_timed_out"), 0);
    }
}

#[test]
fn files_arrive_intact_under_flapping_links() {
    let reports = sweep(Scenario::File, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.coverage.get("file_committed") > 0, "seed {}", r.seed);
        // Every transfer's victim had its connection reset under it.
        assert!(r.faults.resets > 0, "seed {}: {:?}", r.seed, r.faults);
    }
    let aborted: u64 = reports
        .iter()
        .map(|r| r.coverage.get("transfer_aborted"))
        .sum();
    assert!(aborted > 0, "no reset ever caught a transfer in flight");
}

#[test]
fn chat_is_delivered_exactly_once() {
    let reports = sweep(Scenario::Chat, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        let c = r.chat.as_ref().expect("chat totals");
        assert_eq!(c.sent, 8 * 3);
        assert_eq!(c.transmitted, 8 * 3 * 7, "every line went to every peer");
        assert_eq!(c.delivered, c.transmitted as u64);
    }
}

#[test]
fn the_deployed_timers_work_too() {
    let mut cfg = SimConfig::new(Scenario::Mesh, 6, 4);
    cfg.time_scale = 1;
    let r = run(&cfg).unwrap();
    assert!(r.passed(), "{}", r.summary());
    assert_eq!(r.settings.peer_timeout_ms, 60_000);
}

// ----- private meshes -----

/// Every connection runs the Noise session layer: the mesh forms, heals
/// after a partition, chats and moves files, on a few seeds.
#[test]
fn private_meshes_form_heal_chat_and_move_files() {
    let mut reports = Vec::new();
    for seed in 1..3 {
        for (scenario, peers) in [
            (Scenario::Mesh, 6),
            (Scenario::Partition, 6),
            (Scenario::Chat, 5),
            (Scenario::File, 5),
        ] {
            reports.push(run(&private(scenario, peers, seed)).unwrap());
        }
    }
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.replay.contains("--network-key"), "{}", r.replay);
        match r.scenario {
            Scenario::Chat => {
                let c = r.chat.as_ref().expect("chat totals");
                // Lines cannot be read off the wire here: every delivery
                // expected at send time happened (nothing failed).
                assert_eq!(c.delivered, (c.sent * 4) as u64, "seed {}", r.seed);
            }
            Scenario::File => {
                assert!(r.coverage.get("file_committed") > 0, "seed {}", r.seed)
            }
            _ => {}
        }
    }
}

/// The intruders never get in, each is refused with its reason, and the
/// honest mesh forms.
#[test]
fn intruders_are_refused_and_kept_out() {
    let reports: Vec<Report> = (1..4)
        .map(|seed| run(&private(Scenario::Intruders, 6, seed)).unwrap())
        .collect();
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.converged, "seed {}", r.seed);
        for kind in ["no_key", "wrong_key", "replay", "stolen_id"] {
            let n = r.coverage.get(&format!("intruder_{kind}_refused"));
            assert!(n > 0, "seed {}: {kind} never refused", r.seed);
        }
        assert!(r.coverage.get("intruder_attempted") >= 4);
    }
}

#[test]
fn the_intruders_scenario_needs_a_key() {
    assert!(run(&SimConfig::new(Scenario::Intruders, 6, 1)).is_err());
}

// ----- sweeps -----

#[test]
fn partition_sweep_twenty_seeds() {
    assert_all_pass(&sweep(Scenario::Partition, 12, 1..21));
}

#[test]
fn churn_sweep_twenty_seeds() {
    let reports = sweep(Scenario::Churn, 12, 1..21);
    assert_all_pass(&reports);
    let total = |k: &str| reports.iter().map(|r| r.coverage.get(k)).sum::<u64>();
    // The situations churn exists for are reached across the sweep.
    assert!(total("transfer_aborted_by_crash") > 0);
    assert!(total("max_peers_refused") > 0);
    assert!(total("host_crashed_silently") > 0 && total("host_crashed_loudly") > 0);
}

// ----- swarm -----

/// Holders share a 3 MiB file and a tree of 40 small files, a liar shares
/// them with every third chunk wrong, partial holders are cut off, holders
/// and downloaders crash, links flap: every download completes, from
/// several peers, the liar is caught and never believed, and a resumed
/// download fetches exactly what it lacked.
#[test]
fn swarm_downloads_complete_and_catch_the_liar() {
    let reports = sweep(Scenario::Swarm, 8, 1..4);
    assert_all_pass(&reports);
    let total = |k: &str| reports.iter().map(|r| r.coverage.get(k)).sum::<u64>();
    for r in &reports {
        let s = r.swarm.as_ref().expect("swarm numbers");
        assert_eq!(s.contents.len(), 2, "seed {}", r.seed);
        assert_eq!(s.contents[0].size, 3 << 20);
        assert_eq!(s.contents[1].files, 40);
        let fetchers = s.roles["partial"].len() + s.roles["downloader"].len();
        assert_eq!(s.downloads_wanted as usize, 2 * fetchers, "seed {}", r.seed);
        assert_eq!(s.downloads_committed, s.downloads_wanted, "seed {}", r.seed);
        assert_eq!(s.roles["liar"].len(), 1);
        assert!(s.chunks_rejected_liar > 0, "seed {}", r.seed);
        assert!(
            s.liar_chunks_received >= s.chunks_rejected_liar,
            "seed {}",
            r.seed
        );
        assert_eq!(s.chunks_rejected_honest, 0, "seed {}", r.seed);
        assert!(s.multi_peer_downloads > 0, "seed {}", r.seed);
        assert!(
            !s.resumed.is_empty(),
            "seed {}: no download resumed",
            r.seed
        );
        for x in &s.resumed {
            // Storage runs inline here, so nothing is fetched while the
            // record is verified: exactly what it lacked, to the byte.
            assert!(x.have > 0 && x.have >= x.recorded, "seed {}: {x:?}", r.seed);
            if let Some(fetched) = x.fetched {
                assert_eq!(fetched, x.size - x.have, "seed {}: {x:?}", r.seed);
                assert_eq!(x.written, fetched, "seed {}: {x:?}", r.seed);
            }
        }
        assert_eq!(
            r.coverage.get("swarm_bytes_from_short"),
            0,
            "seed {}",
            r.seed
        );
        assert!(r.faults.crashes > 0 && r.faults.restarts == r.faults.crashes);
    }
    for k in [
        "swarm_partial_holder_cut",
        "swarm_served_from_partial",
        "swarm_crashed_mid_download",
        "swarm_holder_crashed",
        "swarm_download_resumed",
        "swarm_tree_committed",
        "connection_reset",
        "link_cut",
        "link_held",
    ] {
        assert!(total(k) > 0, "{k} never reached");
    }
}

#[test]
fn the_same_seed_gives_the_same_swarm_run() {
    let mut cfg = SimConfig::new(Scenario::Swarm, 6, 2);
    cfg.swarm_size = 1 << 20;
    cfg.chunk_size = 16 * 1024;
    assert_replays_exactly(&cfg);
    // Restarts reuse a storage and crash it: nothing of that may depend
    // on tokio's process-wide task ids either.
    let alone = run(&cfg).unwrap().trace_hash;
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let cfg = cfg.clone();
            std::thread::spawn(move || run(&cfg).unwrap().trace_hash)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), alone);
    }
    cfg.seed = 3;
    assert_ne!(run(&cfg).unwrap().trace_hash, alone);
}

/// The smallest mesh, and a file without a tree.
#[test]
fn swarm_at_six_peers_and_without_a_tree() {
    let mut cfg = SimConfig::new(Scenario::Swarm, 6, 1);
    cfg.swarm_files = 0;
    let r = run(&cfg).unwrap();
    assert!(r.passed(), "{}", r.summary());
    let s = r.swarm.as_ref().unwrap();
    assert_eq!(s.contents.len(), 1);
    assert_eq!(s.downloads_committed, 3);
    assert!(
        r.summary().contains("swarm     swarm-file.bin"),
        "{}",
        r.summary()
    );
    assert!(r.replay.ends_with("--swarm-files 0"), "{}", r.replay);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["swarm"]["downloads_committed"], 3, "{v}");
    assert!(run(&SimConfig::new(Scenario::Swarm, 5, 1)).is_err());
    cfg.chunk_size = 1024;
    assert!(run(&cfg).is_err(), "chunks under 4 KiB");
    cfg.chunk_size = 256 * 1024;
    assert!(run(&cfg).is_err(), "a file of 12 chunks");
}

// ----- the checks can fail -----

#[test]
fn a_corrupted_commit_is_caught() {
    let mut cfg = SimConfig::new(Scenario::File, 6, 3);
    cfg.sabotage = Some(Sabotage::CorruptCommit);
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    let v = &r.violations[0];
    assert_eq!(v.check, "file_hash", "{}", r.summary());
    assert!(v.at_ms > 0 && v.host.is_some());
    assert!(r.replay_command().contains("--sabotage corrupt-commit"));
    assert!(r.summary().contains("replay"));
}

#[test]
fn a_corrupted_frame_is_caught() {
    let mut cfg = SimConfig::new(Scenario::Chat, 6, 3);
    cfg.sabotage = Some(Sabotage::CorruptWire);
    let r = run(&cfg).unwrap();
    assert!(!r.passed());
    assert!(
        r.violations.iter().any(|v| v.check == "frame_integrity"),
        "{}",
        r.summary()
    );
    // The same broken run replays identically.
    assert_eq!(run(&cfg).unwrap().trace_hash, r.trace_hash);
}

// ----- output -----

#[test]
fn the_report_has_the_promised_fields_and_a_plot() {
    let mut cfg = SimConfig::new(Scenario::Churn, 5, 9);
    cfg.plot = true;
    let r = run(&cfg).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "seed",
        "scenario",
        "peers",
        "converged",
        "converged_at_ms",
        "sim_duration_ms",
        "messages",
        "bytes",
        "violations",
        "coverage",
        "trace_hash",
        "metrics",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["scenario"], "churn");
    assert!(v["violations"].as_array().unwrap().is_empty());
    assert_eq!(v["trace_hash"].as_str().unwrap().len(), 64);
    assert!(
        v["metrics"]["dials_per_peer"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    let svg = p2p_sim::plot::svg(&r).expect("plot data");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // The spread band and its median, then writes and bytes per second.
    assert_eq!(svg.matches("<path").count(), 4, "{svg}");
    assert!(svg.contains("<path class=\"median\""), "{svg}");
    assert!(svg.contains("fill=\"#777777\""), "crash windows are shaded");
}

#[test]
fn bad_configurations_are_refused() {
    assert!(run(&SimConfig::new(Scenario::Mesh, 1, 1)).is_err());
    let mut cfg = SimConfig::new(Scenario::Mesh, 4, 1);
    cfg.time_scale = 0;
    assert!(run(&cfg).is_err());
}

/// With `max_peers` below `peers - 1` a full mesh cannot form: the run
/// converges once every peer holds a quarter of the cap and the peer graph
/// is connected (`p2p_sim::graph::min_degree`), and the report says how
/// the graph looks.
#[test]
fn a_capped_mesh_forms_a_connected_graph() {
    for seed in 1..3 {
        let mut cfg = SimConfig::new(Scenario::Mesh, 30, seed);
        cfg.max_peers = Some(6);
        let r = run(&cfg).unwrap();
        assert!(r.passed(), "{}", r.summary());
        let g = &r.graph;
        assert_eq!(g.nodes, 30);
        assert_eq!(g.components, 1, "seed {seed}: {g:?}");
        assert!(g.degree_max <= 6, "seed {seed}: {g:?}");
        assert!(
            g.degree_min >= p2p_sim::graph::min_degree(6, 30),
            "seed {seed}: {g:?}"
        );
        // Six links each at most: a path needs several hops.
        assert!(g.diameter.is_some_and(|d| d >= 3), "seed {seed}: {g:?}");
        // Refused dials back off (MAX_PEERS is not a failure): the run
        // settles instead of dialing full nodes forever.
        let refused = r.coverage.get("max_peers_refused");
        assert!(refused < 30 * 20, "seed {seed}: {refused} refusals");
    }
}

#[test]
fn a_full_mesh_reports_a_complete_graph() {
    let r = run(&SimConfig::new(Scenario::Mesh, 8, 1)).unwrap();
    assert!(r.passed(), "{}", r.summary());
    let g = &r.graph;
    assert_eq!(
        (g.nodes, g.edges, g.degree_min, g.degree_max),
        (8, 28, 7, 7)
    );
    assert_eq!(g.diameter, Some(1));
}
