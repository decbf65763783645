//! `sim`: simulated seconds per wall second of a 50-peer `mesh` scenario of
//! `p2p-sim` (turmoil hosts running the deployed driver over simulated TCP,
//! with every invariant checked while it runs), against the floor of the
//! simulator itself: turmoil stepping 50 idle hosts through the same span
//! of simulated time at the same tick.
//!
//! Criterion's throughput is in elements = simulated milliseconds, so its
//! `Kelem/s` reads directly as simulated seconds per wall second.
//!
//! Run: `cargo bench -p p2p-benches --bench sim`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use p2p_sim::{run, Scenario, SimConfig};

const PEERS: usize = 50;
const SEED: u64 = 1;

fn mesh_config() -> SimConfig {
    SimConfig::new(Scenario::Mesh, PEERS, SEED)
}

/// turmoil with `PEERS` hosts that only sleep, stepped for `span`.
fn idle_turmoil(span: Duration, tick: Duration) -> Duration {
    let mut sim = turmoil::Builder::new()
        .rng_seed(SEED)
        .simulation_duration(span + Duration::from_secs(60))
        .tick_duration(tick)
        .build();
    for i in 0..PEERS {
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

fn sim(c: &mut Criterion) {
    let cfg = mesh_config();
    // The run is deterministic: the simulated span is the same every time,
    // so it is measured once here and used as the throughput.
    let report = run(&cfg).expect("valid configuration");
    assert!(
        report.passed(),
        "the benchmark scenario must pass:\n{}",
        report.summary()
    );
    let sim_ms = report.sim_duration_ms;

    let mut g = c.benchmark_group("sim");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(sim_ms));
    g.bench_function("mesh50", |b| {
        b.iter(|| {
            let r = run(black_box(&cfg)).expect("valid configuration");
            assert_eq!(r.sim_duration_ms, sim_ms, "same seed, same run");
        })
    });
    g.bench_function("idle_turmoil50", |b| {
        b.iter(|| idle_turmoil(Duration::from_millis(sim_ms), cfg.tick))
    });
    g.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
