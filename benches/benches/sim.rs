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
use p2p_benches::sim::{idle_turmoil, mesh_config, rerun, run_passing};

const PEERS: usize = 50;
const SEED: u64 = 1;

fn sim(c: &mut Criterion) {
    let cfg = mesh_config(PEERS, SEED);
    // The run is deterministic: the simulated span is the same every time,
    // so it is measured once here and used as the throughput.
    let sim_ms = run_passing(&cfg);

    let mut g = c.benchmark_group("sim");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(sim_ms));
    g.bench_function("mesh50", |b| b.iter(|| rerun(black_box(&cfg), sim_ms)));
    g.bench_function("idle_turmoil50", |b| {
        b.iter(|| idle_turmoil(PEERS, SEED, Duration::from_millis(sim_ms), cfg.tick))
    });
    g.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
