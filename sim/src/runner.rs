//! The outer loop: builds the turmoil simulation from the seed, registers
//! one host per peer, then alternates scenario steps, turmoil steps and the
//! whole-mesh checks until the scenario ends or a check fails, and finally
//! asks every node for its peer table.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{host_name, Sabotage, Scenario, SimConfig, PORT, SEED_HOSTS};
use crate::faults::Faults;
use crate::host::{self, HostPlan};
use crate::intruder;
use crate::invariants::{MESH_REFORMED, NO_PANIC};
use crate::lan::{LanBug, LanParams, LanSegment};
use crate::outsider;
use crate::report::{Report, Settings};
use crate::scenario::{self, Cx, Flow};
use crate::world::{lock, HostCmd, Shared, World};

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Runs one seeded scenario to its end and reports. The same
/// configuration always gives the same report, byte for byte.
pub fn run(cfg: &SimConfig) -> Result<Report, SimError> {
    cfg.validate().map_err(SimError::Config)?;
    install_panic_hook();
    let capture = PanicCapture::start();

    let mut sim = turmoil::Builder::new()
        .rng_seed(cfg.turmoil_seed())
        .epoch(cfg.epoch())
        // Only hosts, no clients: turmoil never ends the run by itself;
        // the scenario does.
        .simulation_duration(Duration::from_secs(365 * 24 * 3600))
        .tick_duration(cfg.tick)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();

    let world: Shared = Arc::new(Mutex::new(World::new(cfg)));
    let ips: Vec<IpAddr> = (0..cfg.peers).map(|i| sim.lookup(host_name(i))).collect();
    {
        let mut w = lock(&world);
        for (i, ip) in ips.iter().enumerate() {
            w.add_host(host_name(i), *ip);
        }
    }
    // The lan scenario's segment, with its planted bug if one.
    let lan = (cfg.scenario == Scenario::Lan).then(|| {
        let bug = match cfg.sabotage {
            Some(Sabotage::DeafLan) => Some(LanBug::Deaf),
            Some(Sabotage::SlowLan) => Some(LanBug::Slow(cfg.lan_bound() + Duration::from_secs(1))),
            Some(Sabotage::BlindLan) => Some(LanBug::Blind),
            _ => None,
        };
        LanSegment::with_bug(LanParams::with_loss(cfg.lan_loss), bug)
    });
    let (plans, last_start) = layout(cfg, &ips, lan.as_ref());
    let shared_cfg = Arc::new(cfg.clone());
    for plan in plans {
        let (world, cfg) = (world.clone(), shared_cfg.clone());
        sim.host(host_name(plan.idx), move || {
            host::run(world.clone(), cfg.clone(), plan.clone())
        });
    }
    if cfg.scenario == Scenario::Intruders {
        // After the honest hosts, so that their IPs are those of any other
        // scenario.
        for (k, kind) in intruder::KINDS.iter().enumerate() {
            let name = kind.host_name();
            let (w, cfg) = (world.clone(), shared_cfg.clone());
            sim.host(name.clone(), move || {
                intruder::run(w.clone(), cfg.clone(), k)
            });
            let ip = sim.lookup(name);
            lock(&world).intruders.add(k, ip);
        }
    }
    if let Some(segment) = &lan {
        // After the members too, for the same reason.
        for k in 0..outsider::OUTSIDERS {
            let name = outsider::host_name(k);
            let (w, cfg, seg) = (world.clone(), shared_cfg.clone(), segment.clone());
            sim.host(name.clone(), move || {
                outsider::run(w.clone(), cfg.clone(), k, seg.clone())
            });
            let ip = sim.lookup(name);
            lock(&world).outsiders.add(k, ip);
        }
    }

    let timers = cfg.timers();
    let mut faults = Faults::new(ips);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.scenario_seed());
    let mut script = scenario::script(cfg.scenario);
    // A safety net against a scenario that never ends.
    let hard_stop =
        last_start + cfg.mesh_deadline + timers.heal_bound() * 4 + Duration::from_secs(120);
    let mut converged_at = None;
    loop {
        let now = sim.elapsed();
        lock(&world).now = now;
        let flow = script.step(&mut Cx {
            sim: &mut sim,
            world: &world,
            faults: &mut faults,
            rng: &mut rng,
            cfg,
            timers,
            now,
            last_start,
        });
        if let Flow::Done { converged } = flow {
            // The mesh reached its final state at its last change.
            converged_at = converged.then(|| lock(&world).last_peer_change);
            break;
        }
        if !lock(&world).violations.is_empty() {
            break;
        }
        if !step(&mut sim, &world, &capture) {
            break;
        }
        if sim.elapsed() > hard_stop {
            let mut w = lock(&world);
            let at = w.now;
            w.violate(
                MESH_REFORMED,
                at,
                None,
                "the scenario did not finish".into(),
            );
            break;
        }
    }

    // The end: once connections are quiet, every running node reports its
    // peer table, which must match what its events said.
    if lock(&world).violations.is_empty() {
        end_game(&mut sim, &world, &capture);
    }

    let sim_duration = sim.elapsed();
    // Dropping the simulation drops every host's runtime (and taps) first.
    drop(sim);
    let mut w = lock(&world);
    let lan = lan.map(|segment| (segment.stats(), last_start));
    if let Some((stats, _)) = &lan {
        w.coverage.add("lan_announcement_lost", stats.lost);
        w.coverage
            .add("lan_other_network_heard", stats.other_network);
    }
    Ok(Report::build(
        cfg,
        &w,
        converged_at,
        sim_duration,
        faults,
        Settings::of(cfg),
        lan,
    ))
}

/// Lets connections settle (no state change for a while, within a bound:
/// a mesh that never settles is a violation), decides the watches still
/// pending (pairs whose ends disagree, crashed peers that must leave every
/// table), then checks every node's own peer table against the tracked
/// one. A snapshot can straddle an input the driver processed in the same
/// tick, so a mismatch must show in two snapshots to count; a running host
/// that does not answer is a violation.
fn end_game(sim: &mut turmoil::Sim<'_>, world: &Shared, capture: &PanicCapture) {
    let quiet = Duration::from_millis(300);
    let give_up = sim.elapsed() + Duration::from_secs(3);
    while sim.elapsed() < lock(world).last_conn_change + quiet {
        if sim.elapsed() >= give_up {
            let mut w = lock(world);
            let (at, last) = (w.now, w.last_conn_change);
            let detail = format!(
                "connections still changing 3000 ms after the scenario ended (last change at {} ms)",
                last.as_millis()
            );
            w.violate(MESH_REFORMED, at, None, detail);
            return;
        }
        if !step(sim, world, capture) {
            return;
        }
    }
    // Every pending watch is decided by its deadline (end_step reports
    // the ones that fail); a disagreement that resolves ends its watch.
    let bound = sim.elapsed() + Duration::from_secs(60);
    loop {
        let by = lock(world).watches_decided_by();
        if by.is_none_or(|by| sim.elapsed() > by) || sim.elapsed() > bound {
            break;
        }
        if !step(sim, world, capture) {
            return;
        }
    }
    for attempt in 0..2 {
        {
            let now = sim.elapsed();
            let mut w = lock(world);
            w.clear_snapshots();
            for h in w.alive_hosts() {
                w.command(h, HostCmd::Snapshot, now);
            }
        }
        for _ in 0..50 {
            if !step(sim, world, capture) {
                return;
            }
            if lock(world).snapshots_in() {
                break;
            }
        }
        let now = sim.elapsed();
        let mut w = lock(world);
        let missing = w.snapshots_missing();
        if !missing.is_empty() {
            for h in missing {
                let detail = "did not answer a peer-table request within 50 steps".to_owned();
                w.violate(NO_PANIC, now, Some(h), detail);
            }
            return;
        }
        let found = w.snapshot_problems();
        if found.is_empty() {
            return;
        }
        if attempt == 1 {
            for (check, h, detail) in found {
                w.violate(check, now, Some(h), detail);
            }
            return;
        }
        drop(w);
        for _ in 0..20 {
            if !step(sim, world, capture) {
                return;
            }
        }
    }
}

/// One turmoil step and the whole-mesh checks; false when the run must stop.
fn step(sim: &mut turmoil::Sim<'_>, world: &Shared, capture: &PanicCapture) -> bool {
    let result = sim.step();
    let now = sim.elapsed();
    let mut w = lock(world);
    if let Err(e) = result {
        w.violate(
            NO_PANIC,
            now,
            None,
            format!("a host's software failed: {e}"),
        );
    }
    w.end_step(now);
    for p in capture.take() {
        w.violate(NO_PANIC, now, None, p);
    }
    w.violations.is_empty()
}

/// Start times and bootstrap addresses, from the seed: a few seed hosts
/// start first; every other peer starts at a seeded time within the start
/// window and bootstraps to one or two of them. On a LAN (the `lan`
/// scenario) every peer starts at a seeded time within the window and
/// nobody has a bootstrap address.
fn layout(cfg: &SimConfig, ips: &[IpAddr], lan: Option<&LanSegment>) -> (Vec<HostPlan>, Duration) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.layout_seed());
    if let Some(segment) = lan {
        let window_ms = cfg.start_window.as_millis() as u64;
        let plans: Vec<HostPlan> = (0..cfg.peers)
            .map(|idx| HostPlan {
                idx,
                start_delay: Duration::from_millis(rng.next_u64() % (window_ms + 1)),
                bootstrap: Vec::new(),
                lan: Some(segment.clone()),
            })
            .collect();
        let last = plans
            .iter()
            .map(|p| p.start_delay)
            .max()
            .unwrap_or_default();
        return (plans, last);
    }
    let seeds = SEED_HOSTS.min(cfg.peers);
    let window_ms = cfg.start_window.as_millis() as u64;
    let addr = |i: usize| format!("{}:{PORT}", ips[i]);
    let mut plans = Vec::with_capacity(cfg.peers);
    let mut last = Duration::ZERO;
    for idx in 0..cfg.peers {
        let (start_delay, bootstrap) = if idx == 0 {
            (Duration::ZERO, Vec::new())
        } else if idx < seeds {
            let d = Duration::from_millis(rng.next_u64() % 100);
            (d, vec![addr(0)])
        } else {
            let d = Duration::from_millis(rng.next_u64() % (window_ms + 1));
            let first = (rng.next_u64() % seeds as u64) as usize;
            let mut b = vec![addr(first)];
            if seeds > 1 && rng.next_u64() % 100 < 30 {
                let second = (first + 1 + (rng.next_u64() % (seeds as u64 - 1)) as usize) % seeds;
                b.push(addr(second));
            }
            (d, b)
        };
        last = last.max(start_delay);
        plans.push(HostPlan {
            idx,
            start_delay,
            bootstrap,
            lan: None,
        });
    }
    (plans, last)
}

// ----- panics -----

thread_local! {
    /// Panic messages of the simulation running on this thread.
    static PANICS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that also records panics of a
/// simulation running on the current thread. Without `--cfg tokio_unstable`
/// a panic in a spawned task (the driver's) would only end that task; this
/// turns it into a failed run.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    if let Some(v) = p.as_mut() {
                        v.push(format!("panic: {info}"));
                    }
                }
            });
            previous(info);
        }));
    });
}

/// Records panics on this thread while alive.
struct PanicCapture;

impl PanicCapture {
    fn start() -> Self {
        PANICS.with(|p| *p.borrow_mut() = Some(Vec::new()));
        PanicCapture
    }

    fn take(&self) -> Vec<String> {
        PANICS.with(|p| {
            p.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        })
    }
}

impl Drop for PanicCapture {
    fn drop(&mut self) {
        PANICS.with(|p| *p.borrow_mut() = None);
    }
}
