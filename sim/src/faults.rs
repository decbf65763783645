//! Fault injection on turmoil's network and hosts, with bookkeeping.
//!
//! Faults are modelled as TCP experiences them. A cut link (a partition)
//! and a stalled one (a latency spike) are both turmoil holds: segments,
//! SYNs included, wait and are delivered on repair, as TCP's
//! retransmissions would deliver them, so a stream never loses a segment in
//! its middle and a connection ends only by the nodes' own timeouts or by a
//! reset. A cut that lasts longer than the kernel keeps retrying
//! ([`TCP_GIVE_UP`]) resets the connections across it on repair instead. A
//! connection that dies (a middlebox or a peer that lost its state answers
//! with RST) is the explicit [`Faults::reset`]. Only a crashed host is cut
//! off for real (turmoil `partition`): nothing it sends while dying leaves,
//! and what peers send it meanwhile is lost, as it is to a dead machine.
//!
//! Several scenario steps may hold one link at once, so each link counts its
//! reasons and turmoil is told only about state changes. Every fault is
//! noted in the trace and kept as a window for the plot.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::host_name;
use crate::world::{lock, Shared};

/// How long Linux keeps retransmitting on an established connection before
/// it gives up and resets it (`tcp_retries2` = 15: about 924.6 s).
pub const TCP_GIVE_UP: Duration = Duration::from_millis(924_600);

/// What a link is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Healthy,
    /// Segments wait (a cut or a stall).
    Held,
    /// Segments are lost (a crashed host's links).
    Down,
}

#[derive(Debug, Default, Clone, Copy)]
struct Link {
    /// Reasons to lose segments: the crash of an end.
    downs: u32,
    /// Reasons to hold segments: cuts and stalls.
    holds: u32,
    /// Since when segments have been waiting.
    held_since: Option<Duration>,
}

impl Link {
    fn state(self) -> LinkState {
        if self.downs > 0 {
            LinkState::Down
        } else if self.holds > 0 {
            LinkState::Held
        } else {
            LinkState::Healthy
        }
    }
}

/// A stretch of simulated time with a fault, for the plot.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// `partition`, `down`, `cut` or `hold`.
    pub kind: &'static str,
    /// The host concerned (for `down`), if one.
    pub host: Option<usize>,
    /// Start, simulated ms.
    pub start_ms: u64,
    /// End, simulated ms (`None`: until the end of the run).
    pub end_ms: Option<u64>,
}

/// Counts of injected faults.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FaultSummary {
    /// Link cuts (each link counted each time).
    pub links_cut: u64,
    /// Link holds.
    pub links_held: u64,
    /// Host crashes.
    pub crashes: u64,
    /// Host restarts.
    pub restarts: u64,
    /// Connection ends reset (by a `reset` fault, or by a cut longer than
    /// [`TCP_GIVE_UP`]).
    pub resets: u64,
}

/// The fault injector of one run.
pub(crate) struct Faults {
    ips: Vec<IpAddr>,
    links: BTreeMap<(usize, usize), Link>,
    /// Hosts crashed behind a partition, to reconnect at restart.
    silent: BTreeMap<usize, ()>,
    pub(crate) windows: Vec<Window>,
    pub(crate) summary: FaultSummary,
    /// When the last fault was lifted or injected.
    pub(crate) last_change: Duration,
}

fn ordered(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Faults {
    pub(crate) fn new(ips: Vec<IpAddr>) -> Self {
        Faults {
            ips,
            links: BTreeMap::new(),
            silent: BTreeMap::new(),
            windows: Vec::new(),
            summary: FaultSummary::default(),
            last_change: Duration::ZERO,
        }
    }

    fn change(
        &mut self,
        sim: &turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        (a, b): (usize, usize),
        f: impl FnOnce(&mut Link),
    ) {
        if a == b {
            return;
        }
        let key = ordered(a, b);
        let link = self.links.entry(key).or_default();
        let before = link.state();
        f(link);
        let after = link.state();
        let held_for = match (before, after) {
            (LinkState::Held, LinkState::Held) => None,
            (LinkState::Held, _) => link.held_since.take().map(|t| at.saturating_sub(t)),
            (_, LinkState::Held) => {
                link.held_since = Some(at);
                None
            }
            _ => None,
        };
        if link.downs == 0 && link.holds == 0 {
            self.links.remove(&key);
        }
        if before == after {
            return;
        }
        self.last_change = at;
        let (ia, ib) = (self.ips[key.0], self.ips[key.1]);
        if held_for.is_some_and(|d| d >= TCP_GIVE_UP) {
            // The kernels gave up retransmitting long ago.
            self.reset_pair(world, at, key, "gave up");
        }
        match (before, after) {
            (_, LinkState::Down) => sim.partition(ia, ib),
            (LinkState::Down, LinkState::Held) => {
                sim.repair(ia, ib);
                sim.hold(ia, ib);
            }
            (LinkState::Healthy, LinkState::Held) => sim.hold(ia, ib),
            (LinkState::Down, LinkState::Healthy) => sim.repair(ia, ib),
            (LinkState::Held, LinkState::Healthy) => sim.release(ia, ib),
            _ => {}
        }
        let what = match after {
            LinkState::Down => "down",
            LinkState::Held => "hold",
            LinkState::Healthy => "heal",
        };
        lock(world)
            .trace
            .note(at, format_args!("link {what} {} {}", key.0, key.1));
    }

    /// Resets every connection between hosts `a` and `b`: both ends' reads
    /// and writes fail with `ConnectionReset`.
    pub(crate) fn reset(&mut self, world: &Shared, at: Duration, a: usize, b: usize) {
        if a != b {
            self.reset_pair(world, at, ordered(a, b), "fault");
        }
    }

    fn reset_pair(&mut self, world: &Shared, at: Duration, key: (usize, usize), why: &str) {
        let mut w = lock(world);
        let n = w.resets.reset(self.ips[key.0], self.ips[key.1]);
        self.summary.resets += n as u64;
        w.coverage.hit("connection_reset");
        w.trace.note(
            at,
            format_args!("reset {} {} ({why}): {n} ends", key.0, key.1),
        );
        self.last_change = at;
    }

    /// Cuts the link between hosts `a` and `b` (adds one reason): its
    /// segments wait until the last reason is removed.
    pub(crate) fn cut(
        &mut self,
        sim: &turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        a: usize,
        b: usize,
    ) {
        self.summary.links_cut += 1;
        lock(world).coverage.hit("link_cut");
        self.change(sim, world, at, (a, b), |l| l.holds += 1);
    }

    /// Removes one reason for the cut.
    pub(crate) fn uncut(
        &mut self,
        sim: &turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        a: usize,
        b: usize,
    ) {
        self.change(sim, world, at, (a, b), |l| {
            l.holds = l.holds.saturating_sub(1)
        });
    }

    /// Stalls the link between `a` and `b` (adds one reason).
    pub(crate) fn hold(
        &mut self,
        sim: &turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        a: usize,
        b: usize,
    ) {
        self.summary.links_held += 1;
        lock(world).coverage.hit("link_held");
        self.change(sim, world, at, (a, b), |l| l.holds += 1);
    }

    /// Removes one reason for the stall.
    pub(crate) fn release(
        &mut self,
        sim: &turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        a: usize,
        b: usize,
    ) {
        self.change(sim, world, at, (a, b), |l| {
            l.holds = l.holds.saturating_sub(1)
        });
    }

    /// Crashes host `h`.
    ///
    /// The host is always cut off first, so that nothing its dying sockets
    /// send (FIN, RST) reaches the network. Those messages are sent in the
    /// order tokio drops the host's tasks, which follows tokio's global task
    /// ids: it differs between two runs in one process (a `--seeds` sweep,
    /// the tests), and the latency turmoil draws for each would make the
    /// runs diverge. A loud crash (a process that died on a live machine)
    /// then reconnects the host at once, so every peer's next frame to it
    /// is answered with a reset; a silent crash (a machine that lost power)
    /// keeps it cut off until the restart, so peers notice only by timeout.
    pub(crate) fn crash(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        h: usize,
        silent: bool,
    ) {
        for other in 0..self.ips.len() {
            if other != h {
                self.change(sim, world, at, (h, other), |l| l.downs += 1);
            }
        }
        self.summary.crashes += 1;
        {
            let mut w = lock(world);
            w.coverage.hit(if silent {
                "host_crashed_silently"
            } else {
                "host_crashed_loudly"
            });
            w.trace.note(at, format_args!("crash {h} silent={silent}"));
            w.host_crashed(h, at, silent);
        }
        self.last_change = at;
        self.windows.push(Window {
            kind: "down",
            host: Some(h),
            start_ms: at.as_millis() as u64,
            end_ms: None,
        });
        // The lock is released: dropping the host's runtime drops its tap.
        sim.crash(host_name(h));
        if silent {
            self.silent.insert(h, ());
        } else {
            self.reconnect(sim, world, at, h);
        }
    }

    fn reconnect(&mut self, sim: &turmoil::Sim<'_>, world: &Shared, at: Duration, h: usize) {
        for other in 0..self.ips.len() {
            if other != h {
                self.change(sim, world, at, (h, other), |l| {
                    l.downs = l.downs.saturating_sub(1)
                });
            }
        }
    }

    /// Restarts host `h` from its factory (a new life, a new id).
    pub(crate) fn restart(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        world: &Shared,
        at: Duration,
        h: usize,
    ) {
        if self.silent.remove(&h).is_some() {
            self.reconnect(sim, world, at, h);
        }
        self.summary.restarts += 1;
        {
            let mut w = lock(world);
            w.coverage.hit("host_restarted");
            w.trace.note(at, format_args!("restart {h}"));
            w.host_restarting(h);
        }
        self.last_change = at;
        if let Some(win) = self
            .windows
            .iter_mut()
            .rev()
            .find(|w| w.kind == "down" && w.host == Some(h) && w.end_ms.is_none())
        {
            win.end_ms = Some(at.as_millis() as u64);
        }
        sim.bounce(host_name(h));
    }

    /// Opens a window of `kind` (closed with [`Faults::close_window`]).
    pub(crate) fn open_window(&mut self, kind: &'static str, at: Duration) -> usize {
        self.windows.push(Window {
            kind,
            host: None,
            start_ms: at.as_millis() as u64,
            end_ms: None,
        });
        self.windows.len() - 1
    }

    /// Closes a window opened with [`Faults::open_window`].
    pub(crate) fn close_window(&mut self, i: usize, at: Duration) {
        if let Some(w) = self.windows.get_mut(i) {
            w.end_ms = Some(at.as_millis() as u64);
        }
    }

    /// Each host's IP, by index.
    pub(crate) fn ips(&self) -> &[IpAddr] {
        &self.ips
    }
}
