//! The dialing component: the address book, the dial policy (jitter,
//! at most one dial in flight per address and `max_dials_in_flight` in all,
//! exponential backoff, forgetting; docs/PROTOCOL.md §4.2) and the bootstrap
//! schedule. It decides when an address is dialed; the connections
//! component opens the connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::addrbook::{AddrBook, AddrState, Failure};
use crate::io::Outbox;
use crate::timer::TimerTable;
use crate::{Addr, CommandError, Config, ConnId, DialFailure, Event, PeerId};

/// A random delay in `0..=max`, in whole milliseconds.
pub(crate) fn jitter(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let ms = max.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rng.next_u64() % (ms + 1))
}

/// The dialer's deadlines; dials before bootstrap tries at equal times.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum DialTimer {
    /// An address may be dialed (after jitter or backoff).
    Dial(Addr),
    /// The next bootstrap try for an address.
    Bootstrap(Addr),
}

/// What a dialer deadline asks of the node.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing more to do.
    Handled,
    /// Open a connection to this address now.
    Dial(Addr),
}

/// The dial policy's settings, copied from [`Config`].
#[derive(Debug, Clone)]
struct Policy {
    max_peers: usize,
    max_dials_in_flight: usize,
    jitter: Duration,
    backoff: Duration,
    backoff_max: Duration,
    max_failures: u32,
    bootstrap_attempts: u32,
    bootstrap_backoff: Duration,
    peer_timeout: Duration,
    discovery_interval: Duration,
}

/// Known addresses and when to dial them.
#[derive(Debug)]
pub(crate) struct Dialer {
    pub(crate) book: AddrBook,
    timers: TimerTable<DialTimer>,
    /// Bootstrap addresses and the tries made.
    bootstraps: BTreeMap<Addr, u32>,
    policy: Policy,
    shut_down: bool,
    pub(crate) out: Outbox,
}

impl Dialer {
    pub(crate) fn new(config: &Config) -> Self {
        Dialer {
            book: AddrBook::new(config.dialer.max_known_addrs),
            timers: TimerTable::default(),
            bootstraps: BTreeMap::new(),
            policy: Policy {
                max_peers: config.connections.max_peers,
                max_dials_in_flight: config.dialer.max_in_flight,
                jitter: config.dialer.jitter,
                backoff: config.dialer.backoff,
                backoff_max: config.dialer.backoff_max,
                max_failures: config.dialer.max_failures,
                bootstrap_attempts: config.dialer.bootstrap_attempts,
                bootstrap_backoff: config.dialer.bootstrap_backoff,
                peer_timeout: config.heartbeat.peer_timeout,
                discovery_interval: config.discovery.interval,
            },
            shut_down: false,
            out: Outbox::default(),
        }
    }

    /// A command's address: valid and not our own.
    fn command_addr(&self, addr: &str) -> Result<Addr, CommandError> {
        let a = Addr::parse(addr).map_err(|_| CommandError::InvalidAddr(addr.to_owned()))?;
        if self.book.is_ours(&a) {
            return Err(CommandError::SelfAddr(a.to_string()));
        }
        Ok(a)
    }

    /// `/connect`: dial `addr` once, now if the policy allows.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        addr: &str,
        in_flight: usize,
        peers: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Step, CommandError> {
        let addr = self.command_addr(addr)?;
        self.book.set_sticky(&addr);
        Ok(self.try_dial(now, &addr, in_flight, peers, rng))
    }

    /// Dial `addr` with the bootstrap schedule: `bootstrap_attempts` tries,
    /// waiting `bootstrap_backoff` then doubling.
    pub(crate) fn bootstrap(&mut self, addr: &str, peers: usize) -> Result<Step, CommandError> {
        let addr = self.command_addr(addr)?;
        self.book.set_sticky(&addr);
        self.bootstraps.insert(addr.clone(), 0);
        Ok(self.bootstrap_try(&addr, peers))
    }

    /// Dials `addr` after a random delay, unless something already decided
    /// it (connected, in flight, backing off).
    pub(crate) fn schedule(
        &mut self,
        now: Instant,
        addr: &Addr,
        peers: usize,
        rng: &mut ChaCha8Rng,
    ) {
        // The book lookup last: a full node skips it.
        if self.shut_down || peers >= self.policy.max_peers || !self.book.dialable(addr, now) {
            return;
        }
        let at = now + jitter(rng, self.policy.jitter);
        self.timers.set_earliest(DialTimer::Dial(addr.clone()), at);
    }

    /// Schedules every idle address whose backoff has passed.
    pub(crate) fn dial_due(&mut self, now: Instant, peers: usize, rng: &mut ChaCha8Rng) {
        for addr in self.book.due(now) {
            self.schedule(now, &addr, peers, rng);
        }
    }

    fn try_dial(
        &mut self,
        now: Instant,
        addr: &Addr,
        in_flight: usize,
        peers: usize,
        rng: &mut ChaCha8Rng,
    ) -> Step {
        if self.shut_down || !self.book.dialable(addr, now) || peers >= self.policy.max_peers {
            return Step::Handled;
        }
        if in_flight >= self.policy.max_dials_in_flight {
            let later = now + Duration::from_millis(50) + jitter(rng, self.policy.jitter);
            self.timers.set(DialTimer::Dial(addr.clone()), later);
            return Step::Handled;
        }
        Step::Dial(addr.clone())
    }

    /// The connections component opened `conn` to `addr`.
    pub(crate) fn on_dial(&mut self, addr: &Addr, conn: ConnId) {
        self.timers.cancel(&DialTimer::Dial(addr.clone()));
        self.book.on_dial(addr, conn);
    }

    fn bootstrap_try(&mut self, addr: &Addr, peers: usize) -> Step {
        let Some(attempt) = self.bootstraps.get_mut(addr) else {
            return Step::Handled;
        };
        *attempt += 1;
        match self.book.get(addr).map(|e| e.state.clone()) {
            Some(AddrState::Connected(_)) => self.dial_ended_ok(addr),
            // Refused with MAX_PEERS but joined the mesh through the nodes it
            // pointed us to: the bootstrap did its job.
            _ if peers > 0 => self.dial_ended_ok(addr),
            Some(AddrState::Dialing(_)) => {}
            _ => {
                // A bootstrap try ignores the address's backoff: the
                // bootstrap schedule is its own.
                self.book.set_sticky(addr);
                if !self.shut_down {
                    return Step::Dial(addr.clone());
                }
            }
        }
        Step::Handled
    }

    /// A dial to `addr` reached a peer (or a live duplicate).
    pub(crate) fn dial_ended_ok(&mut self, addr: &Addr) {
        if let Some(attempt) = self.bootstraps.remove(addr) {
            self.timers.cancel(&DialTimer::Bootstrap(addr.clone()));
            self.out.event(Event::BootstrapSucceeded {
                addr: addr.clone(),
                attempt,
            });
        }
    }

    /// A dial to `addr` failed: back off, retry or give up.
    pub(crate) fn dial_failed(
        &mut self,
        now: Instant,
        addr: &Addr,
        reason: DialFailure,
        rng: &mut ChaCha8Rng,
    ) {
        let bootstrap = self.bootstraps.get(addr).copied();
        let p = &self.policy;
        let jitter = jitter(rng, p.jitter);
        let failure = if reason == DialFailure::MaxPeers {
            self.book
                .on_refused_full(addr, now, p.discovery_interval, p.backoff_max, jitter)
        } else {
            self.book
                .on_failure(addr, now, p.backoff, p.backoff_max, p.max_failures, jitter)
        };
        let failures = self.book.get(addr).map_or(p.max_failures, |e| e.failures);
        self.out.event(Event::DialFailed {
            addr: addr.clone(),
            reason,
            failures,
        });
        if let Some(attempt) = bootstrap {
            self.timers.cancel(&DialTimer::Dial(addr.clone()));
            // Retrying an address that answered with our own id is pointless.
            if attempt >= self.policy.bootstrap_attempts || self.book.is_ours(addr) {
                self.bootstraps.remove(addr);
                self.out.event(Event::BootstrapFailed {
                    addr: addr.clone(),
                    attempts: attempt,
                });
            } else {
                let wait = self
                    .policy
                    .bootstrap_backoff
                    .saturating_mul(1 << (attempt - 1).min(16));
                self.timers
                    .set(DialTimer::Bootstrap(addr.clone()), now + wait);
            }
        } else if let Failure::RetryAt(t) = failure {
            self.timers.set(DialTimer::Dial(addr.clone()), t);
        }
    }

    /// `addr` answered `DUPLICATE`: alive, and reaching a peer we have.
    pub(crate) fn on_duplicate(&mut self, now: Instant, addr: &Addr) {
        self.book.on_alive(addr, now, self.policy.peer_timeout);
        self.dial_ended_ok(addr);
    }

    /// `addr` reached a new peer while we were full: try it again later.
    pub(crate) fn on_full(&mut self, now: Instant, addr: &Addr) {
        self.book
            .on_alive(addr, now, self.policy.discovery_interval);
        self.dial_ended_ok(addr);
    }

    /// `addr` turned out to be our own.
    pub(crate) fn on_self(&mut self, addr: &Addr) {
        self.book.mark_ours(addr);
        self.timers.cancel(&DialTimer::Dial(addr.clone()));
    }

    /// `addr` reaches `peer`; a pending dial of it is moot unless `merged`.
    /// A dial to `addr` reached `peer`.
    pub(crate) fn on_connected(&mut self, addr: &Addr, peer: &PeerId, merged: bool) {
        self.book.on_connected(addr, peer, true);
        if !merged {
            self.timers.cancel(&DialTimer::Dial(addr.clone()));
        }
    }

    /// A peer's listening address arrived; returns whether it was new.
    pub(crate) fn on_listen(&mut self, addr: &Addr, peer: &PeerId) -> bool {
        let new = self.book.learn(addr);
        self.book.on_connected(addr, peer, false);
        self.timers.cancel(&DialTimer::Dial(addr.clone()));
        new
    }

    /// `peer` went away: its addresses may be dialed again after a delay.
    pub(crate) fn on_peer_gone(&mut self, now: Instant, peer: &PeerId, rng: &mut ChaCha8Rng) {
        let delay = self.policy.backoff + jitter(rng, self.policy.jitter);
        for addr in self.book.on_peer_gone(peer, now, delay) {
            self.timers.set(DialTimer::Dial(addr), now + delay);
        }
    }

    /// Stops every timer; nothing is dialed afterwards.
    pub(crate) fn shutdown(&mut self) {
        self.shut_down = true;
        self.timers = TimerTable::default();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the earliest dialer deadline due at `now`, if any.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        in_flight: usize,
        peers: usize,
        rng: &mut ChaCha8Rng,
    ) -> Option<Step> {
        Some(match self.timers.pop_expired(now)? {
            DialTimer::Dial(addr) => self.try_dial(now, &addr, in_flight, peers, rng),
            DialTimer::Bootstrap(addr) => self.bootstrap_try(&addr, peers),
        })
    }
}
