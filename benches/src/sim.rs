//! The measured functions of the `sim` bench, here so that `cargo test`
//! runs their checks (`benches/tests/checks.rs`) on a small mesh.

use std::time::Duration;

use p2p_sim::{run, Scenario, SimConfig};

/// The `mesh` scenario with `peers` peers.
pub fn mesh_config(peers: usize, seed: u64) -> SimConfig {
    SimConfig::new(Scenario::Mesh, peers, seed)
}

/// Runs `cfg`, which must pass; returns its simulated duration in ms.
pub fn run_passing(cfg: &SimConfig) -> u64 {
    let report = run(cfg).expect("valid configuration");
    assert!(
        report.passed(),
        "the benchmark scenario must pass:\n{}",
        report.summary()
    );
    report.sim_duration_ms
}

/// Runs `cfg` again: the run is deterministic, so it lasts `sim_ms` of
/// simulated time like the first one.
pub fn rerun(cfg: &SimConfig, sim_ms: u64) {
    let r = run(cfg).expect("valid configuration");
    assert_eq!(r.sim_duration_ms, sim_ms, "same seed, same run");
}

/// turmoil with `peers` hosts that only sleep, stepped for `span`: the
/// floor of the simulator itself. Returns the simulated time stepped.
pub fn idle_turmoil(peers: usize, seed: u64, span: Duration, tick: Duration) -> Duration {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(span + Duration::from_secs(60))
        .tick_duration(tick)
        .build();
    for i in 0..peers {
        sim.host(format!("n{i}"), || async {
            loop {
                // A timer per host, like a node's heartbeat.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    while sim.elapsed() < span {
        sim.step().expect("idle hosts do not fail");
    }
    sim.elapsed()
}
