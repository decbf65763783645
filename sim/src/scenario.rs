//! The scenarios: small state machines the outer loop steps once per
//! turmoil tick. Each waits for the mesh to form, injects its faults on a
//! schedule drawn from the seed, stops them, and then checks liveness after
//! a quiet period. Every decision comes from one seeded ChaCha8 generator
//! and from the (deterministic) state of the simulation.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{Scenario, SimConfig, Timers};
use crate::faults::Faults;
use crate::invariants::{
    CONVERGED_WITHIN_BOUND, CONVERGED_WITHOUT_BOOTSTRAP, INTRUDER_REFUSED, MESH_FORMED,
    MESH_REFORMED, SWARM_DOWNLOADS_COMPLETE, TRANSFERS_COMPLETE,
};
use crate::swarm::Role;
use crate::world::{lock, HostCmd, Shared, World, CHAT_PREFIX};

/// What a scenario step can touch.
pub(crate) struct Cx<'r, 'a> {
    pub(crate) sim: &'r mut turmoil::Sim<'a>,
    pub(crate) world: &'r Shared,
    pub(crate) faults: &'r mut Faults,
    pub(crate) rng: &'r mut ChaCha8Rng,
    pub(crate) cfg: &'r SimConfig,
    pub(crate) timers: Timers,
    /// Simulated time now.
    pub(crate) now: Duration,
    /// When the last host's first life starts.
    pub(crate) last_start: Duration,
}

/// Whether to go on.
pub(crate) enum Flow {
    Continue,
    /// The scenario ended; whether the final mesh held.
    Done {
        converged: bool,
    },
}

/// A scenario.
pub(crate) trait Script {
    /// Called before every turmoil step.
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow;
}

/// The script of `scenario`.
pub(crate) fn script(scenario: Scenario) -> Box<dyn Script> {
    match scenario {
        Scenario::Mesh => Box::new(MeshScript),
        Scenario::Partition => Box::new(PartitionScript::Forming),
        Scenario::Churn => Box::new(ChurnScript::default()),
        Scenario::Latency => Box::new(LatencyScript::Setup),
        Scenario::File => Box::new(FileScript::default()),
        Scenario::Chat => Box::new(ChatScript::Forming),
        Scenario::Intruders => Box::new(IntrudersScript::default()),
        Scenario::Lan => Box::new(LanScript::default()),
        Scenario::Swarm => Box::new(SwarmScript::default()),
    }
}

// ----- seeded helpers -----

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (rng.next_u64() % n as u64) as usize
}

fn between(rng: &mut ChaCha8Rng, lo: Duration, hi: Duration) -> Duration {
    let (lo_ms, hi_ms) = (lo.as_millis() as u64, hi.as_millis() as u64);
    if hi_ms <= lo_ms {
        return lo;
    }
    Duration::from_millis(lo_ms + rng.next_u64() % (hi_ms - lo_ms + 1))
}

fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    rng.next_u64() % 100 < percent
}

pub(crate) fn shuffle<T>(rng: &mut ChaCha8Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Past the mesh deadline without the mesh: reports `check` (`what`, the
/// deadline, who is missing) and says so.
fn mesh_overdue(cx: &Cx<'_, '_>, w: &mut World, check: &'static str, what: &str) -> bool {
    if cx.now <= cx.last_start + cx.cfg.mesh_deadline {
        return false;
    }
    let detail = format!(
        "{what} {} ms after the last peer started: {}",
        cx.cfg.mesh_deadline.as_millis(),
        w.mesh_gaps()
    );
    w.violate(check, cx.now, None, detail);
    true
}

/// Waits for the first full mesh: `Some(true)` once it holds,
/// `Some(false)` (with a violation) past the deadline.
fn forming(cx: &mut Cx<'_, '_>) -> Option<bool> {
    let mut w = lock(cx.world);
    if w.mesh_full {
        return Some(true);
    }
    if mesh_overdue(cx, &mut w, MESH_FORMED, "no full mesh") {
        return Some(false);
    }
    None
}

/// Faults are over: waits until `earliest` (so that connections stalled by
/// a fault have timed out and cannot pass for live ones) and then for the
/// full mesh and `ready`, failing with a violation past `deadline` (of
/// `unready` if `ready` still fails).
fn healing(
    cx: &mut Cx<'_, '_>,
    earliest: Duration,
    deadline: Duration,
    unready: &'static str,
    ready: impl Fn(&crate::world::World) -> Result<(), String>,
) -> Option<bool> {
    let mut w = lock(cx.world);
    if cx.now >= earliest && w.mesh_full && ready(&w).is_ok() {
        return Some(true);
    }
    if cx.now > deadline {
        let bound = deadline.saturating_sub(earliest) + cx.timers.peer_timeout;
        if !w.mesh_full {
            let detail = format!(
                "the full mesh did not re-form within {} ms of the faults stopping: {}",
                bound.as_millis(),
                w.mesh_gaps()
            );
            w.violate(MESH_REFORMED, cx.now, None, detail);
        }
        if let Err(why) = ready(&w) {
            w.violate(unready, cx.now, None, why);
        }
        return Some(false);
    }
    None
}

/// When a fault-free check may start, and the bound on it.
fn quiet_window(t: &Timers, from: Duration) -> (Duration, Duration) {
    let earliest = from + t.peer_timeout + ms(500);
    (earliest, from + t.heal_bound())
}

fn transfers_settled(w: &crate::world::World) -> Result<(), String> {
    if !w.sends_settled() {
        return Err("a file send did not finish".into());
    }
    match w.part_files() {
        0 => Ok(()),
        n => Err(format!("{n} part files were never cleaned up")),
    }
}

// ----- mesh -----

struct MeshScript;

impl Script for MeshScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        match forming(cx) {
            None => Flow::Continue,
            Some(converged) => Flow::Done { converged },
        }
    }
}

// ----- partition -----

enum PartitionScript {
    Forming,
    Cutting {
        plan: Vec<(Duration, usize, usize)>,
        next: usize,
        window: usize,
    },
    Holding {
        until: Duration,
        links: Vec<(usize, usize)>,
        window: usize,
    },
    Repairing {
        plan: Vec<(Duration, usize, usize)>,
        next: usize,
        window: usize,
    },
    Healing {
        earliest: Duration,
        deadline: Duration,
    },
}

/// Spreads `links` evenly over `span` from `start`, in the given order.
fn spread(
    links: &[(usize, usize)],
    start: Duration,
    span: Duration,
) -> Vec<(Duration, usize, usize)> {
    let n = links.len().max(1) as u32;
    links
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| (start + span * i as u32 / n, a, b))
        .collect()
}

impl Script for PartitionScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        match self {
            PartitionScript::Forming => match forming(cx) {
                None => {}
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    // Two halves; every link across is cut, one at a time in
                    // a seeded order (swizzle-clog style), within a second.
                    let mut hosts: Vec<usize> = (0..cx.cfg.peers).collect();
                    shuffle(cx.rng, &mut hosts);
                    let (a, b) = hosts.split_at(cx.cfg.peers / 2);
                    let mut links: Vec<(usize, usize)> = a
                        .iter()
                        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
                        .collect();
                    shuffle(cx.rng, &mut links);
                    let start = cx.now + ms(100);
                    let window = cx.faults.open_window("partition", start);
                    lock(cx.world).watch_partition();
                    *self = PartitionScript::Cutting {
                        plan: spread(&links, start, ms(1000)),
                        next: 0,
                        window,
                    };
                }
            },
            PartitionScript::Cutting { plan, next, window } => {
                while let Some(&(_, a, b)) = plan.get(*next).filter(|p| p.0 <= cx.now) {
                    cx.faults.cut(cx.sim, cx.world, cx.now, a, b);
                    *next += 1;
                }
                if *next == plan.len() {
                    let hold = between(
                        cx.rng,
                        cx.timers.peer_timeout / 2,
                        cx.timers.peer_timeout * 2,
                    );
                    let links = plan.iter().map(|&(_, a, b)| (a, b)).collect();
                    *self = PartitionScript::Holding {
                        until: cx.now + hold,
                        links,
                        window: *window,
                    };
                }
            }
            PartitionScript::Holding {
                until,
                links,
                window,
            } => {
                if cx.now >= *until {
                    let mut links = std::mem::take(links);
                    shuffle(cx.rng, &mut links);
                    lock(cx.world).partition_repairing();
                    *self = PartitionScript::Repairing {
                        plan: spread(&links, cx.now, ms(1000)),
                        next: 0,
                        window: *window,
                    };
                }
            }
            PartitionScript::Repairing { plan, next, window } => {
                while let Some(&(_, a, b)) = plan.get(*next).filter(|p| p.0 <= cx.now) {
                    cx.faults.uncut(cx.sim, cx.world, cx.now, a, b);
                    *next += 1;
                }
                if *next == plan.len() {
                    cx.faults.close_window(*window, cx.now);
                    let (earliest, deadline) = quiet_window(&cx.timers, cx.now);
                    *self = PartitionScript::Healing { earliest, deadline };
                }
            }
            PartitionScript::Healing { earliest, deadline } => {
                if let Some(converged) =
                    healing(cx, *earliest, *deadline, TRANSFERS_COMPLETE, |_| Ok(()))
                {
                    return Flow::Done { converged };
                }
            }
        }
        Flow::Continue
    }
}

// ----- churn -----

#[derive(Debug, Clone, Copy)]
enum ChurnEvent {
    /// Crash a seeded running host.
    Crash,
    /// Restart a host.
    Restart(usize),
    /// A running host broadcasts a file.
    SendFile,
    /// Silently crash the file's sender while its frames are in flight.
    CrashSender(usize),
}

#[derive(Default)]
struct ChurnScript {
    started: bool,
    /// (time, sequence) -> event; the sequence keeps equal times in order.
    events: std::collections::BTreeMap<(Duration, u64), ChurnEvent>,
    seq: u64,
    heal: Option<(Duration, Duration)>,
}

impl ChurnScript {
    fn at(&mut self, t: Duration, e: ChurnEvent) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    fn plan(&mut self, cx: &mut Cx<'_, '_>) {
        let rounds = (cx.cfg.peers / 3).clamp(3, 10);
        let mut t = cx.now + ms(200);
        for _ in 0..rounds {
            t += between(cx.rng, ms(300), ms(1500));
            self.at(t, ChurnEvent::Crash);
        }
        let file_at = cx.now + between(cx.rng, ms(100), ms(800));
        self.at(file_at, ChurnEvent::SendFile);
    }

    fn fire(&mut self, cx: &mut Cx<'_, '_>, e: ChurnEvent) {
        let p = cx.timers.peer_timeout;
        match e {
            ChurnEvent::Crash => {
                let (up, down) = {
                    let w = lock(cx.world);
                    (w.alive_hosts(), w.down.len())
                };
                // Keep most of the mesh up: at most a quarter down at once;
                // otherwise try again once someone is back.
                if up.is_empty() || down >= (cx.cfg.peers / 4).max(1) {
                    let later = cx.now + between(cx.rng, ms(300), ms(1000));
                    self.at(later, ChurnEvent::Crash);
                    return;
                }
                let h = up[below(cx.rng, up.len())];
                let silent = chance(cx.rng, 50);
                let downtime = between(cx.rng, p * 3 / 10, p * 3 / 2);
                cx.faults.crash(cx.sim, cx.world, cx.now, h, silent);
                self.at(cx.now + downtime, ChurnEvent::Restart(h));
            }
            ChurnEvent::Restart(h) => cx.faults.restart(cx.sim, cx.world, cx.now, h),
            ChurnEvent::SendFile => {
                let up = lock(cx.world).alive_hosts();
                if up.is_empty() {
                    return;
                }
                let h = up[below(cx.rng, up.len())];
                let name = "churn-0.bin".to_owned();
                let data = file_content(cx.cfg, 0);
                let mut w = lock(cx.world);
                w.add_file(&name, data, h);
                w.command(h, HostCmd::SendFile(name), cx.now);
                drop(w);
                // The host sends within the next tick; its frames then sit on
                // the links for at least a tick of latency.
                let after = cx.cfg.tick * (2 + below(cx.rng, 3) as u32);
                self.at(cx.now + after, ChurnEvent::CrashSender(h));
            }
            ChurnEvent::CrashSender(h) => {
                if lock(cx.world).hosts[h].alive {
                    // Silent: the in-flight frames are lost, so receivers
                    // hold a partial file until they notice the sender died.
                    cx.faults.crash(cx.sim, cx.world, cx.now, h, true);
                    let downtime = between(cx.rng, p * 3 / 10, p);
                    self.at(cx.now + downtime, ChurnEvent::Restart(h));
                }
            }
        }
    }
}

impl Script for ChurnScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        if !self.started {
            match forming(cx) {
                None => return Flow::Continue,
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    self.started = true;
                    self.plan(cx);
                }
            }
        }
        while let Some((&key, &e)) = self.events.first_key_value() {
            if key.0 > cx.now {
                break;
            }
            self.events.remove(&key);
            self.fire(cx, e);
        }
        if self.events.is_empty() {
            let (earliest, deadline) = *self
                .heal
                .get_or_insert_with(|| quiet_window(&cx.timers, cx.now));
            if let Some(converged) = healing(
                cx,
                earliest,
                deadline,
                TRANSFERS_COMPLETE,
                transfers_settled,
            ) {
                lock(cx.world).check_files(cx.now);
                return Flow::Done { converged };
            }
        }
        Flow::Continue
    }
}

// ----- latency -----

enum LatencyScript {
    Setup,
    Forming,
    Observing {
        until: Duration,
        next_stall: Duration,
        stalls: Vec<(Duration, usize, usize)>,
        /// Per link: when it may be stalled again.
        cooldown: std::collections::BTreeMap<(usize, usize), Duration>,
        window: usize,
    },
}

impl Script for LatencyScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        match self {
            LatencyScript::Setup => {
                // Per-link latency, a tenth of the links slow, each with
                // jitter; turmoil draws each segment's delay in the range.
                let n = cx.cfg.peers;
                let ips = cx.faults.ips().to_vec();
                for a in 0..n {
                    for b in a + 1..n {
                        let base = if chance(cx.rng, 10) {
                            between(cx.rng, ms(60), ms(250))
                        } else {
                            between(cx.rng, ms(1), ms(60))
                        };
                        let jitter = between(cx.rng, ms(0), ms(50));
                        cx.sim.set_link_latency(ips[a], ips[b], base);
                        cx.sim
                            .set_link_max_message_latency(ips[a], ips[b], base + jitter);
                    }
                }
                let mut w = lock(cx.world);
                w.strict_timeouts = true;
                w.trace.note(cx.now, format_args!("latency set"));
                drop(w);
                *self = LatencyScript::Forming;
            }
            LatencyScript::Forming => match forming(cx) {
                None => {}
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    // Two peer timeouts and a heartbeat: every pair pings
                    // several times over the slow links and through stalls.
                    // Stalls start once the handshakes of the last
                    // (simultaneous) connects are over: a stall inside a
                    // handshake may rightly outlast its deadline.
                    let t = cx.timers;
                    let first_stall = cx.now + t.connect + ms(500);
                    let window = cx.faults.open_window("stalls", first_stall);
                    *self = LatencyScript::Observing {
                        until: first_stall + t.peer_timeout * 2 + t.ping,
                        next_stall: first_stall,
                        stalls: Vec::new(),
                        cooldown: std::collections::BTreeMap::new(),
                        window,
                    };
                }
            },
            LatencyScript::Observing {
                until,
                next_stall,
                stalls,
                cooldown,
                window,
            } => {
                let now = cx.now;
                stalls.retain(|&(end, a, b)| {
                    if end <= now {
                        cx.faults.release(cx.sim, cx.world, now, a, b);
                        false
                    } else {
                        true
                    }
                });
                if now >= *until {
                    for (_, a, b) in stalls.drain(..) {
                        cx.faults.release(cx.sim, cx.world, now, a, b);
                    }
                    cx.faults.close_window(*window, now);
                    let mut w = lock(cx.world);
                    let held = w.mesh_full;
                    if !held {
                        let detail =
                            format!("the mesh did not hold under latency: {}", w.mesh_gaps());
                        w.violate(MESH_REFORMED, now, None, detail);
                    }
                    return Flow::Done { converged: held };
                }
                if now >= *next_stall {
                    // A stall far shorter than the peer timeout: frames
                    // arrive late but arrive; nobody may time out. A link
                    // rests for a peer timeout after a stall, so that stalls
                    // never add up to a silence that rightly times out.
                    let n = cx.cfg.peers;
                    let a = below(cx.rng, n);
                    let b = (a + 1 + below(cx.rng, n - 1)) % n;
                    let link = (a.min(b), a.max(b));
                    if cooldown.get(&link).is_none_or(|&t| t <= now) {
                        let p = cx.timers.peer_timeout;
                        let len = between(cx.rng, ms(50), p / 4);
                        cx.faults.hold(cx.sim, cx.world, now, a, b);
                        stalls.push((now + len, a, b));
                        cooldown.insert(link, now + len + p);
                    }
                    *next_stall = now + between(cx.rng, ms(200), ms(1000));
                }
            }
        }
        Flow::Continue
    }
}

// ----- file -----

#[derive(Default)]
struct FileScript {
    started: Option<Duration>,
    sender: usize,
    sends: Vec<(Duration, String)>,
    next_send: usize,
    flaps: Vec<(Duration, usize, usize, bool)>,
    /// Resets aimed at a transfer in flight: (when, receiver).
    targeted: Vec<(Duration, usize)>,
    next_flap: Duration,
    flapping: bool,
    window: usize,
    heal: Option<(Duration, Duration)>,
}

/// Seeded content of file `k`.
fn file_content(cfg: &SimConfig, k: usize) -> Arc<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.file_seed(k));
    let mut data = vec![0u8; cfg.file_size];
    rng.fill_bytes(&mut data);
    Arc::new(data)
}

impl Script for FileScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        let Some(t0) = self.started else {
            match forming(cx) {
                None => return Flow::Continue,
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    self.started = Some(cx.now);
                    self.sender = below(cx.rng, cx.cfg.peers);
                    let first = cx.now + ms(300);
                    self.sends = vec![
                        (first, "file-0.bin".into()),
                        (
                            first + between(cx.rng, ms(200), ms(800)),
                            "file-1.bin".into(),
                        ),
                    ];
                    self.next_flap = cx.now + ms(100);
                    self.flapping = true;
                    self.window = cx.faults.open_window("flaps", self.next_flap);
                    return Flow::Continue;
                }
            }
        };
        let now = cx.now;
        while let Some((at, name)) = self.sends.get(self.next_send).cloned() {
            if at > now {
                break;
            }
            let data = file_content(cx.cfg, self.next_send);
            let mut w = lock(cx.world);
            w.add_file(&name, data, self.sender);
            w.command(self.sender, HostCmd::SendFile(name), now);
            drop(w);
            self.next_send += 1;
            // One receiver's connections to the sender are reset while the
            // file's segments are on them: some arrived, so that receiver
            // holds a partial transfer when its connection dies.
            let n = cx.cfg.peers;
            let victim = (self.sender + 1 + below(cx.rng, n - 1)) % n;
            let after = cx.cfg.tick * (2 + below(cx.rng, 3) as u32);
            self.targeted.push((now + after, victim));
        }
        let mut i = 0;
        while i < self.targeted.len() {
            let (at, victim) = self.targeted[i];
            if at <= now {
                cx.faults.reset(cx.world, now, self.sender, victim);
                self.targeted.swap_remove(i);
            } else {
                i += 1;
            }
        }
        // End flaps that are due.
        let mut i = 0;
        while i < self.flaps.len() {
            let (end, a, b, cut) = self.flaps[i];
            if end <= now {
                if cut {
                    cx.faults.uncut(cx.sim, cx.world, now, a, b);
                } else {
                    cx.faults.release(cx.sim, cx.world, now, a, b);
                }
                self.flaps.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if self.flapping {
            let sends_done = self.next_send == self.sends.len() && lock(cx.world).sends_settled();
            let last_send = self.sends.last().map_or(t0, |s| s.0);
            if (sends_done && now >= last_send + ms(300)) || now > t0 + ms(20_000) {
                self.flapping = false;
                cx.faults.close_window(self.window, now);
            } else if now >= self.next_flap {
                let n = cx.cfg.peers;
                // Mostly the sender's own links: that is where transfers run.
                let a = if chance(cx.rng, 60) {
                    self.sender
                } else {
                    below(cx.rng, n)
                };
                let b = (a + 1 + below(cx.rng, n - 1)) % n;
                // One flap in eight kills the pair's connections; the
                // others delay their segments.
                if chance(cx.rng, 12) {
                    cx.faults.reset(cx.world, now, a, b);
                    self.next_flap = now + between(cx.rng, ms(20), ms(150));
                    return Flow::Continue;
                }
                let cut = chance(cx.rng, 50);
                let len = if cut {
                    between(cx.rng, ms(20), ms(300))
                } else {
                    between(cx.rng, ms(20), ms(600))
                };
                if cut {
                    cx.faults.cut(cx.sim, cx.world, now, a, b);
                } else {
                    cx.faults.hold(cx.sim, cx.world, now, a, b);
                }
                self.flaps.push((now + len, a, b, cut));
                self.next_flap = now + between(cx.rng, ms(20), ms(150));
            }
            return Flow::Continue;
        }
        if !self.flaps.is_empty() || !self.targeted.is_empty() {
            return Flow::Continue;
        }
        let (earliest, deadline) = *self
            .heal
            .get_or_insert_with(|| quiet_window(&cx.timers, now));
        match healing(
            cx,
            earliest,
            deadline,
            TRANSFERS_COMPLETE,
            transfers_settled,
        ) {
            None => Flow::Continue,
            Some(converged) => {
                lock(cx.world).check_files(now);
                Flow::Done { converged }
            }
        }
    }
}

// ----- chat -----

enum ChatScript {
    Forming,
    Sending {
        plan: Vec<(Duration, usize, String)>,
        next: usize,
    },
    Draining {
        until: Duration,
    },
}

impl Script for ChatScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        match self {
            ChatScript::Forming => match forming(cx) {
                None => {}
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    let mut plan = Vec::new();
                    for h in 0..cx.cfg.peers {
                        for k in 0..cx.cfg.messages {
                            let at = cx.now + ms(100) + between(cx.rng, ms(0), ms(2000));
                            let tag = cx.rng.next_u32();
                            plan.push((at, h, format!("{CHAT_PREFIX}{h}-{k}-{tag:08x}")));
                        }
                    }
                    plan.sort();
                    *self = ChatScript::Sending { plan, next: 0 };
                }
            },
            ChatScript::Sending { plan, next } => {
                while let Some((at, h, text)) = plan.get(*next).cloned() {
                    if at > cx.now {
                        break;
                    }
                    lock(cx.world).command(h, HostCmd::Chat(text), cx.now);
                    *next += 1;
                }
                if *next == plan.len() {
                    *self = ChatScript::Draining {
                        until: cx.now + ms(1000),
                    };
                }
            }
            ChatScript::Draining { until } => {
                if cx.now >= *until {
                    let mut w = lock(cx.world);
                    w.check_chats(cx.now);
                    return Flow::Done {
                        converged: w.mesh_full,
                    };
                }
            }
        }
        Flow::Continue
    }
}

// ----- intruders -----

/// The honest mesh forms while the intruders attack (`intruder.rs`); once
/// it held for a while and every kind of intruder was refused at least
/// once, the intruders stop and the mesh must still be full.
#[derive(Default)]
struct IntrudersScript {
    meshed_at: Option<Duration>,
    relayed: bool,
}

impl Script for IntrudersScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        let Some(t0) = self.meshed_at else {
            match forming(cx) {
                None => return Flow::Continue,
                Some(false) => {
                    lock(cx.world).intruders.stopped = true;
                    return Flow::Done { converged: false };
                }
                Some(true) => {
                    self.meshed_at = Some(cx.now);
                    return Flow::Continue;
                }
            }
        };
        if cx.cfg.sabotage == Some(crate::Sabotage::RelayedIntruderChat) && !self.relayed {
            self.relayed = true;
            let line = format!("{}relayed-by-n1", crate::intruder::INTRUDER_PREFIX);
            lock(cx.world).command(crate::sabotage::TARGET, HostCmd::Chat(line), cx.now);
        }
        let mut w = lock(cx.world);
        // Attacks go on against the formed mesh for a while.
        let hold = ms(2000);
        let missing = w.intruders.missing();
        if cx.now >= t0 + hold && missing.is_empty() {
            w.intruders.stopped = true;
            let full = w.mesh_full;
            if !full {
                let detail = format!(
                    "the honest mesh did not hold under the intruders: {}",
                    w.mesh_gaps()
                );
                w.violate(MESH_REFORMED, cx.now, None, detail);
            }
            return Flow::Done { converged: full };
        }
        if cx.now > t0 + hold + ms(10_000) {
            w.intruders.stopped = true;
            for detail in missing {
                w.violate(INTRUDER_REFUSED, cx.now, None, detail);
            }
            return Flow::Done { converged: false };
        }
        Flow::Continue
    }
}

// ----- lan -----

/// No bootstrap anywhere: the mesh must form through the simulated LAN
/// alone before the deadline (`converged_without_bootstrap`), within
/// [`SimConfig::lan_bound`] of the last start (`converged_within_bound`,
/// which says why that bound), and then hold until every member's and
/// outsider's announcements of RFC 6762 §8.3 were heard and handled, so
/// that each had every chance to dial an outsider (it must not:
/// `other_network_never_dialed`, checked on every dial).
#[derive(Default)]
struct LanScript {
    /// When the mesh formed.
    formed: Option<Duration>,
}

impl Script for LanScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        let mut w = lock(cx.world);
        let bound = cx.last_start + cx.cfg.lan_bound();
        let Some(formed) = self.formed else {
            if w.mesh_full {
                let at = w.last_peer_change;
                if at > bound {
                    let detail = format!(
                        "the mesh formed at {} ms, {} ms past the bound ({} ms after the last start at {} ms)",
                        at.as_millis(),
                        (at - bound).as_millis(),
                        cx.cfg.lan_bound().as_millis(),
                        cx.last_start.as_millis()
                    );
                    w.violate(CONVERGED_WITHIN_BOUND, cx.now, None, detail);
                    return Flow::Done { converged: true };
                }
                self.formed = Some(at);
                return Flow::Continue;
            }
            let what = "no mesh with LAN discovery alone";
            if mesh_overdue(cx, &mut w, CONVERGED_WITHOUT_BOOTSTRAP, what) {
                return Flow::Done { converged: false };
            }
            return Flow::Continue;
        };
        // Members and outsiders start within the start window; the last
        // of their first announcements goes out 7 s later, and is heard
        // and dialed (or ignored) within a delivery delay and a connect.
        let last = cx.last_start.max(cx.cfg.start_window);
        let hold = (last
            + crate::lan::ANNOUNCE_AT[crate::lan::ANNOUNCE_AT.len() - 1]
            + crate::lan::LanParams::with_loss(cx.cfg.lan_loss).delay_max
            + cx.timers.connect)
            .max(formed + ms(500));
        if cx.now < hold {
            return Flow::Continue;
        }
        let full = w.mesh_full;
        if !full {
            let detail = format!(
                "the mesh formed at {} ms but did not hold until {} ms: {}",
                formed.as_millis(),
                hold.as_millis(),
                w.mesh_gaps()
            );
            w.violate(CONVERGED_WITHIN_BOUND, cx.now, None, detail);
        }
        Flow::Done { converged: full }
    }
}

// ----- swarm -----

/// Something the swarm script does at a set time.
#[derive(Debug, Clone)]
enum SwarmEvent {
    /// A host starts downloading every content.
    Get(usize),
    /// A partial holder's cut from the complete holders ends.
    Uncut(usize, Vec<usize>),
    /// Crash a seeded complete holder (never the last one up).
    CrashHolder,
    /// Restart a host.
    Restart(usize),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SwarmStage {
    /// Seeded per-link latencies.
    #[default]
    Setup,
    Forming,
    /// Holders share; the downloads start once every share is reported
    /// (or fail at the deadline).
    Sharing {
        deadline: Duration,
    },
    /// Downloads, crashes and flaps.
    Running,
    /// The faults stopped; restarts and the end of cuts still to come.
    Stopping,
    /// Every download must complete within the heal bound.
    Healing {
        earliest: Duration,
        deadline: Duration,
    },
}

/// The mesh forms with seeded per-link latencies; the holders and the
/// liar share the content, the liar's copy is then corrupted under it;
/// partial holders start downloading first and, once they hold part of
/// the file, are cut off from every complete holder for a while; the other
/// downloaders start at seeded times. Meanwhile complete holders crash and
/// restart (one at a time, never the last one up), seeded downloaders are
/// crashed right after a seeded number of checkpoints and restarted (their
/// partial must resume), and links flap (stalls, cuts, resets). Once every
/// download is committed, or after a bound, the faults stop; every
/// download must then complete within the heal bound (see `swarm.rs` for
/// the checks).
#[derive(Default)]
struct SwarmScript {
    stage: SwarmStage,
    /// (time, sequence) -> event; the sequence keeps equal times in order.
    events: std::collections::BTreeMap<(Duration, u64), SwarmEvent>,
    seq: u64,
    /// Partial holders to cut once they hold this many chunks of the file.
    cut_at: std::collections::BTreeMap<usize, usize>,
    /// Downloaders to crash once a download of theirs made this many
    /// checkpoints in their current life.
    crash_at: std::collections::BTreeMap<usize, u32>,
    /// Complete holders down now.
    holders_down: std::collections::BTreeSet<usize>,
    /// Link flaps in force: (end, a, b, cut).
    flaps: Vec<(Duration, usize, usize, bool)>,
    next_flap: Duration,
    /// Flaps and crashes stop by then at the latest.
    until: Duration,
    window: usize,
}

impl SwarmScript {
    fn at(&mut self, t: Duration, e: SwarmEvent) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    fn fire_due(&mut self, cx: &mut Cx<'_, '_>) {
        while let Some((&key, _)) = self.events.first_key_value() {
            if key.0 > cx.now {
                break;
            }
            if let Some(e) = self.events.remove(&key) {
                self.fire(cx, e);
            }
        }
    }

    /// Everything after the shares: the liar lies, downloads, crashes and
    /// flaps are planned.
    fn plan(&mut self, cx: &mut Cx<'_, '_>) {
        let now = cx.now;
        let (partials, downloaders, holders, file_chunks) = {
            let w = lock(cx.world);
            let s = &w.swarm;
            (
                s.hosts(Role::Partial),
                s.hosts(Role::Downloader),
                s.hosts(Role::Holder),
                s.contents[0].manifest.chunks() as usize,
            )
        };
        let phase = cx.rng.next_u32();
        lock(cx.world).swarm_corrupt_liar(phase, now);
        for &p in &partials {
            self.at(now + ms(50), SwarmEvent::Get(p));
            // A fifth to three fifths of the file before the cut.
            let lo = (file_chunks / 5).max(1);
            let hi = (file_chunks * 3 / 5).max(lo);
            self.cut_at.insert(p, lo + below(cx.rng, hi - lo + 1));
        }
        for &d in &downloaders {
            let t = now + between(cx.rng, ms(300), ms(3000));
            self.at(t, SwarmEvent::Get(d));
        }
        // Half the downloaders and partial holders (one at least) crash
        // mid-download, after one to three checkpoints.
        let mut fetchers: Vec<usize> = partials.iter().chain(&downloaders).copied().collect();
        shuffle(cx.rng, &mut fetchers);
        let crashing = fetchers.len().div_ceil(2).max(1);
        for &d in &fetchers[..crashing] {
            self.crash_at.insert(d, 1 + below(cx.rng, 3) as u32);
        }
        let rounds = holders.len().min(3);
        for _ in 0..rounds {
            let t = now + between(cx.rng, ms(200), ms(4000));
            self.at(t, SwarmEvent::CrashHolder);
        }
        self.until = now + ms(15_000);
        self.next_flap = now + ms(100);
        self.window = cx.faults.open_window("flaps", self.next_flap);
    }

    fn fire(&mut self, cx: &mut Cx<'_, '_>, e: SwarmEvent) {
        let p = cx.timers.peer_timeout;
        match e {
            SwarmEvent::Get(h) => {
                let mut w = lock(cx.world);
                for c in 0..w.swarm.contents.len() {
                    w.swarm_want(h, c);
                    let id = w.swarm.contents[c].id;
                    w.command(h, HostCmd::Get(id), cx.now);
                }
            }
            SwarmEvent::Uncut(h, from) => {
                for o in from {
                    cx.faults.uncut(cx.sim, cx.world, cx.now, h, o);
                }
            }
            SwarmEvent::CrashHolder => {
                let up: Vec<usize> = {
                    let w = lock(cx.world);
                    w.swarm
                        .hosts(Role::Holder)
                        .into_iter()
                        .filter(|h| w.hosts[*h].alive)
                        .collect()
                };
                if up.len() < 2 || !self.holders_down.is_empty() {
                    // One down at a time, never the last honest copy.
                    let later = cx.now + between(cx.rng, ms(300), ms(1000));
                    if later < self.until {
                        self.at(later, SwarmEvent::CrashHolder);
                    }
                    return;
                }
                let h = up[below(cx.rng, up.len())];
                let silent = chance(cx.rng, 50);
                lock(cx.world).coverage.hit("swarm_holder_crashed");
                cx.faults.crash(cx.sim, cx.world, cx.now, h, silent);
                self.holders_down.insert(h);
                let downtime = between(cx.rng, ms(500), p / 5);
                self.at(cx.now + downtime, SwarmEvent::Restart(h));
            }
            SwarmEvent::Restart(h) => {
                self.holders_down.remove(&h);
                cx.faults.restart(cx.sim, cx.world, cx.now, h);
            }
        }
    }

    /// Partial holders that hold enough are cut off; downloaders that
    /// checkpointed enough are crashed.
    fn triggers(&mut self, cx: &mut Cx<'_, '_>) {
        let p = cx.timers.peer_timeout;
        let due: Vec<(usize, bool, Vec<usize>)> = {
            let w = lock(cx.world);
            let s = &w.swarm;
            let mut v = Vec::new();
            for (&h, &need) in &self.cut_at {
                if s.done(h) || s.held(h, 0) >= need {
                    // Cut off from every complete holder and the liar.
                    let from = s
                        .hosts(Role::Holder)
                        .into_iter()
                        .chain(s.hosts(Role::Liar))
                        .collect();
                    v.push((h, !s.done(h) && w.hosts[h].alive, from));
                }
            }
            v
        };
        for (h, cut, from) in due {
            self.cut_at.remove(&h);
            if !cut {
                continue;
            }
            lock(cx.world).coverage.hit("swarm_partial_holder_cut");
            for &o in &from {
                cx.faults.cut(cx.sim, cx.world, cx.now, h, o);
            }
            let len = between(cx.rng, ms(1500), ms(3000));
            self.at(cx.now + len, SwarmEvent::Uncut(h, from));
        }
        let crash: Vec<(usize, bool)> = {
            let w = lock(cx.world);
            self.crash_at
                .iter()
                .filter_map(|(&h, &need)| {
                    let host = &w.hosts[h];
                    if w.swarm.done(h) {
                        return Some((h, false));
                    }
                    let ready = host.alive && w.swarm.checkpoints(h, host.life()) >= need;
                    ready.then_some((h, true))
                })
                .collect()
        };
        for (h, now) in crash {
            self.crash_at.remove(&h);
            if !now {
                continue;
            }
            let silent = chance(cx.rng, 50);
            lock(cx.world).coverage.hit("swarm_crashed_mid_download");
            cx.faults.crash(cx.sim, cx.world, cx.now, h, silent);
            let downtime = between(cx.rng, ms(300), p / 6);
            self.at(cx.now + downtime, SwarmEvent::Restart(h));
        }
    }

    /// Ends flaps that are due, and starts the next one.
    fn flap(&mut self, cx: &mut Cx<'_, '_>) {
        let now = cx.now;
        let mut i = 0;
        while i < self.flaps.len() {
            let (end, a, b, cut) = self.flaps[i];
            if end <= now {
                if cut {
                    cx.faults.uncut(cx.sim, cx.world, now, a, b);
                } else {
                    cx.faults.release(cx.sim, cx.world, now, a, b);
                }
                self.flaps.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if now < self.next_flap {
            return;
        }
        let n = cx.cfg.peers;
        let a = below(cx.rng, n);
        let b = (a + 1 + below(cx.rng, n - 1)) % n;
        self.next_flap = now + between(cx.rng, ms(30), ms(250));
        if chance(cx.rng, 12) {
            cx.faults.reset(cx.world, now, a, b);
            return;
        }
        let cut = chance(cx.rng, 50);
        let len = between(cx.rng, ms(20), ms(400));
        if cut {
            cx.faults.cut(cx.sim, cx.world, now, a, b);
        } else {
            cx.faults.hold(cx.sim, cx.world, now, a, b);
        }
        self.flaps.push((now + len, a, b, cut));
    }
}

impl Script for SwarmScript {
    fn step(&mut self, cx: &mut Cx<'_, '_>) -> Flow {
        match self.stage {
            SwarmStage::Setup => {
                // Per link 5-40 ms and up to 20 ms of jitter: a download's
                // rounds of requests take time, so that faults land in it.
                let ips = cx.faults.ips().to_vec();
                for a in 0..ips.len() {
                    for b in a + 1..ips.len() {
                        let base = between(cx.rng, ms(5), ms(40));
                        let jitter = between(cx.rng, ms(0), ms(20));
                        cx.sim.set_link_latency(ips[a], ips[b], base);
                        cx.sim
                            .set_link_max_message_latency(ips[a], ips[b], base + jitter);
                    }
                }
                lock(cx.world)
                    .trace
                    .note(cx.now, format_args!("latency set"));
                self.stage = SwarmStage::Forming;
            }
            SwarmStage::Forming => match forming(cx) {
                None => {}
                Some(false) => return Flow::Done { converged: false },
                Some(true) => {
                    let mut w = lock(cx.world);
                    let sharers: Vec<usize> = (0..cx.cfg.peers)
                        .filter(|&h| w.swarm.roles[h].shares())
                        .collect();
                    let paths: Vec<String> =
                        w.swarm.contents.iter().map(|c| c.path.clone()).collect();
                    for h in sharers {
                        for p in &paths {
                            w.command(h, HostCmd::Share(p.clone()), cx.now);
                        }
                    }
                    self.stage = SwarmStage::Sharing {
                        deadline: cx.now + ms(10_000),
                    };
                }
            },
            SwarmStage::Sharing { deadline } => {
                let done = {
                    let w = lock(cx.world);
                    let lives: Vec<(usize, u32)> = (0..cx.cfg.peers)
                        .filter(|&h| w.swarm.roles[h].shares())
                        .map(|h| (h, w.hosts[h].life()))
                        .collect();
                    w.swarm.all_shared(&lives)
                };
                if done {
                    self.plan(cx);
                    self.stage = SwarmStage::Running;
                } else if cx.now > deadline {
                    let mut w = lock(cx.world);
                    let detail = "the holders did not all report their shares within 10 s".into();
                    w.violate(SWARM_DOWNLOADS_COMPLETE, cx.now, None, detail);
                    return Flow::Done { converged: false };
                }
            }
            SwarmStage::Running => {
                self.fire_due(cx);
                self.triggers(cx);
                let active = {
                    let w = lock(cx.world);
                    let all_done = (0..cx.cfg.peers)
                        .filter(|&h| w.swarm.roles[h].downloads())
                        .all(|h| w.swarm.done(h));
                    let gets = self
                        .events
                        .values()
                        .any(|e| matches!(e, SwarmEvent::Get(_)));
                    cx.now < self.until && (gets || !all_done)
                };
                if active {
                    self.flap(cx);
                    return Flow::Continue;
                }
                // The faults stop: flaps end, no more crashes; the cuts
                // and restarts planned still run their course.
                for (_, a, b, cut) in std::mem::take(&mut self.flaps) {
                    if cut {
                        cx.faults.uncut(cx.sim, cx.world, cx.now, a, b);
                    } else {
                        cx.faults.release(cx.sim, cx.world, cx.now, a, b);
                    }
                }
                self.cut_at.clear();
                self.crash_at.clear();
                self.events
                    .retain(|_, e| !matches!(e, SwarmEvent::CrashHolder));
                self.stage = SwarmStage::Stopping;
            }
            SwarmStage::Stopping => {
                self.fire_due(cx);
                if self.events.is_empty() {
                    cx.faults.close_window(self.window, cx.now);
                    let (earliest, deadline) = quiet_window(&cx.timers, cx.now);
                    self.stage = SwarmStage::Healing { earliest, deadline };
                }
            }
            SwarmStage::Healing { earliest, deadline } => {
                let ready = |w: &crate::world::World| w.swarm_downloads_done();
                if let Some(converged) =
                    healing(cx, earliest, deadline, SWARM_DOWNLOADS_COMPLETE, ready)
                {
                    lock(cx.world).swarm_final(cx.now);
                    return Flow::Done { converged };
                }
            }
        }
        Flow::Continue
    }
}
