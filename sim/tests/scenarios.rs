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

#[test]
fn partition_heals() {
    let reports = sweep(Scenario::Partition, 8, 1..4);
    assert_all_pass(&reports);
    for r in &reports {
        assert!(r.faults.links_cut >= 16, "seed {}: {:?}", r.seed, r.faults);
        assert!(r.coverage.get("peer_rediscovered_after_partition") > 0);
    }
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
    }
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
