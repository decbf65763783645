//! A simulated LAN segment: the simulator's [`p2p_net::LanDiscovery`],
//! seeded and single-threaded, modelled on mDNS (RFC 6762).
//!
//! One [`LanSegment`] is one broadcast domain. Each host that runs a node
//! on it gets its own [`SimLan`] ([`LanSegment::member`]: its IP and its
//! seed); the driver calls [`LanDiscovery::start`] once the listener is
//! up. From then on:
//!
//! - at start the member announces itself to every member already there
//!   and queries: every member already there answers with its own
//!   announcement (mDNS: an unsolicited response on start, answers to a
//!   browser's query);
//! - it announces itself again at [`ANNOUNCE_AT`] (1 s, 3 s and 7 s after
//!   its start: RFC 6762 §8.3 asks for at least two unsolicited responses
//!   one second apart and allows up to eight with the interval at least
//!   doubling each time; we send four, 1, 2 and 4 s apart), then every
//!   [`REFRESH_EVERY`] (120 s: the TTL of host records, RFC 6762 §10,
//!   before which a browser re-queries and the responder answers);
//! - every delivery of one announcement to one listener is lost with the
//!   segment's `loss` probability, or arrives after a delay drawn in
//!   `delay_min..=delay_max`, as a [`Heard`] on the listener's channel
//!   (`try_send`: a full channel drops it, like a lost packet);
//! - [`LanSession::stop`], or the session's drop (the node's runtime died
//!   with its host), withdraws the member: it announces and answers no
//!   more, and what is still in flight from or to it is dropped.
//!
//! The `network` fingerprint of the announcement travels in the
//! [`Heard`]; the driver ignores other networks' announcements.
//!
//! Determinism: every draw comes from the member's own ChaCha8 generator,
//! seeded by [`LanSegment::member`]'s caller (the simulator derives one
//! per host and life from the scenario seed); timers are `tokio::time` sleeps in tasks spawned on the host
//! that sends (turmoil's simulated time); members live in a `BTreeMap` in
//! join order; no thread, no real clock, no OS randomness. turmoil runs
//! one host at a time on one thread, so the mutex around the segment is
//! never contended.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use p2p_net::{Announcement, Heard, LanDiscovery, LanError, LanSession};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When a member announces itself, counted from its start (RFC 6762 §8.3:
/// the interval between unsolicited responses doubles, starting at 1 s).
pub const ANNOUNCE_AT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(7),
];

/// After the last of [`ANNOUNCE_AT`], how often a member announces itself
/// again (the 120 s TTL of mDNS host records, RFC 6762 §10).
pub const REFRESH_EVERY: Duration = Duration::from_secs(120);

/// How a segment delivers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanParams {
    /// Probability that one announcement to one listener is lost (0 to 1).
    pub loss: f64,
    /// Shortest delivery delay.
    pub delay_min: Duration,
    /// Longest delivery delay.
    pub delay_max: Duration,
}

impl LanParams {
    /// A segment losing `loss` of its deliveries, each delayed 1–100 ms.
    pub fn with_loss(loss: f64) -> Self {
        LanParams {
            loss,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(100),
        }
    }
}

/// A planted bug of the segment (see `Sabotage`): it shows that the lan
/// scenario's checks can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LanBug {
    /// Every announcement is lost.
    Deaf,
    /// Every delivery arrives this much later.
    Slow(Duration),
    /// Every announcement is handed over with the listener's own network
    /// fingerprint.
    Blind,
}

/// What a segment did, counted per delivery of one announcement to one
/// listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LanStats {
    /// Members that joined.
    pub joined: u64,
    /// Deliveries attempted (an announcement or answer, to one listener).
    pub sent: u64,
    /// Handed to the listener's channel.
    pub delivered: u64,
    /// Lost on the segment.
    pub lost: u64,
    /// Dropped because the listener's channel was full.
    pub dropped: u64,
    /// Delivered to a listener of another network (which must ignore it).
    pub other_network: u64,
}

/// One simulated LAN segment. Cheap to clone: clones share the segment.
#[derive(Debug, Clone)]
pub struct LanSegment(Arc<Mutex<Segment>>);

/// The LAN discovery of one host's node on a [`LanSegment`].
#[derive(Debug, Clone)]
pub struct SimLan {
    segment: LanSegment,
    ip: IpAddr,
    seed: u64,
}

#[derive(Debug)]
struct Segment {
    params: LanParams,
    bug: Option<LanBug>,
    /// Members by join number.
    members: BTreeMap<u64, Member>,
    stats: LanStats,
}

#[derive(Debug)]
struct Member {
    ip: IpAddr,
    me: Announcement,
    heard: mpsc::Sender<Heard>,
}

/// Deliveries of one announcement round: (delay, from, to), by delay.
type Plan = Vec<(Duration, u64, u64)>;

impl LanSegment {
    /// An empty segment.
    pub fn new(params: LanParams) -> Self {
        Self::with_bug(params, None)
    }

    pub(crate) fn with_bug(params: LanParams, bug: Option<LanBug>) -> Self {
        LanSegment(Arc::new(Mutex::new(Segment {
            params,
            bug,
            members: BTreeMap::new(),
            stats: LanStats::default(),
        })))
    }

    /// The LAN discovery of the host at `ip`, whose draws (losses, delays)
    /// come from `seed`. Give each host and each of its lives its own.
    pub fn member(&self, ip: IpAddr, seed: u64) -> SimLan {
        SimLan {
            segment: self.clone(),
            ip,
            seed,
        }
    }

    /// What the segment did so far.
    pub fn stats(&self) -> LanStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, Segment> {
        // Nothing panics while holding it; a poisoned segment is still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A uniform draw in `[0, 1)`.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Segment {
    /// One delivery to one listener: lost (`None`) or after a delay. Both
    /// draws are made either way, so that the loss rate changes which
    /// deliveries are lost, not the delays of the others.
    fn roll(&mut self, rng: &mut ChaCha8Rng) -> Option<Duration> {
        self.stats.sent += 1;
        let lost = unit(rng) < self.params.loss || self.bug == Some(LanBug::Deaf);
        let lo = self.params.delay_min;
        let span = self.params.delay_max.saturating_sub(lo).as_micros() as u64;
        let mut delay = lo + Duration::from_micros(rng.next_u64() % (span + 1));
        if let Some(LanBug::Slow(extra)) = self.bug {
            delay += extra;
        }
        if lost {
            self.stats.lost += 1;
            return None;
        }
        Some(delay)
    }

    /// Forgets members whose node is gone without a stop (its runtime was
    /// dropped with its host): they answer nobody.
    fn prune(&mut self) {
        self.members.retain(|_, m| !m.heard.is_closed());
    }

    /// `from`'s announcement reaches `to`, if both are still members.
    fn deliver(&mut self, from: u64, to: u64) {
        let (Some(f), Some(t)) = (self.members.get(&from), self.members.get(&to)) else {
            return;
        };
        let network = match self.bug {
            Some(LanBug::Blind) => t.me.network.clone(),
            _ => f.me.network.clone(),
        };
        let other = network != t.me.network;
        let heard = Heard {
            addrs: vec![SocketAddr::new(f.ip, f.me.port).to_string()],
            id: Some(f.me.id.clone()),
            network,
        };
        match t.heard.try_send(heard) {
            Ok(()) => {
                self.stats.delivered += 1;
                if other {
                    self.stats.other_network += 1;
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.stats.dropped += 1,
            // The listener's node is gone; it is pruned on the next round.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// `key` announces itself to every other member.
    fn announce(&mut self, key: u64, rng: &mut ChaCha8Rng, plan: &mut Plan) {
        let others: Vec<u64> = self.members.keys().copied().filter(|&k| k != key).collect();
        for to in others {
            if let Some(d) = self.roll(rng) {
                plan.push((d, key, to));
            }
        }
    }
}

/// Delivers `plan` from `t0` on, in a task of the current host.
fn spawn_deliveries(segment: LanSegment, t0: Instant, mut plan: Plan) {
    if plan.is_empty() {
        return;
    }
    plan.sort();
    tokio::spawn(async move {
        for (delay, from, to) in plan {
            tokio::time::sleep_until(t0 + delay).await;
            segment.lock().deliver(from, to);
        }
    });
}

/// The member's announcements after the first, until it leaves.
async fn announce_loop(segment: LanSegment, key: u64, mut rng: ChaCha8Rng, t0: Instant) {
    let last = ANNOUNCE_AT[ANNOUNCE_AT.len() - 1];
    for round in 1u32.. {
        let at = match ANNOUNCE_AT.get(round as usize) {
            Some(&at) => at,
            None => last + REFRESH_EVERY * (round + 1 - ANNOUNCE_AT.len() as u32),
        };
        tokio::time::sleep_until(t0 + at).await;
        let mut plan = Plan::new();
        {
            let mut seg = segment.lock();
            seg.prune();
            if !seg.members.contains_key(&key) {
                return;
            }
            seg.announce(key, &mut rng, &mut plan);
        }
        spawn_deliveries(segment.clone(), Instant::now(), plan);
    }
}

impl LanDiscovery for SimLan {
    fn start(
        &self,
        me: Announcement,
        heard: mpsc::Sender<Heard>,
    ) -> Result<Box<dyn LanSession>, LanError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LanError(
                "the simulated LAN runs inside a simulated host".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut plan = Plan::new();
        let key = {
            let mut seg = self.segment.lock();
            seg.prune();
            let key = seg.stats.joined;
            seg.stats.joined += 1;
            // Our first announcement to everyone there, then their answers
            // to our query.
            let others: Vec<u64> = seg.members.keys().copied().collect();
            for &to in &others {
                if let Some(d) = seg.roll(&mut rng) {
                    plan.push((d, key, to));
                }
            }
            for &from in &others {
                if let Some(d) = seg.roll(&mut rng) {
                    plan.push((d, from, key));
                }
            }
            seg.members.insert(
                key,
                Member {
                    ip: self.ip,
                    me,
                    heard,
                },
            );
            key
        };
        let t0 = Instant::now();
        spawn_deliveries(self.segment.clone(), t0, plan);
        let task = tokio::spawn(announce_loop(self.segment.clone(), key, rng, t0));
        Ok(Box::new(Session {
            segment: self.segment.clone(),
            key,
            task: task.abort_handle(),
        }))
    }
}

/// A member's presence on the segment; withdrawn on stop or drop.
struct Session {
    segment: LanSegment,
    key: u64,
    task: tokio::task::AbortHandle,
}

impl LanSession for Session {
    fn stop(self: Box<Self>) {
        drop(self);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
        self.segment.lock().members.remove(&self.key);
    }
}
