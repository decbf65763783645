//! Known listening addresses and the dial policy's per-address state:
//! one dial in flight per address, exponential backoff after failures,
//! forgetting dead addresses so that they stop circulating.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::{Addr, ConnId, PeerId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddrState {
    /// Not connected; may be dialed once `retry_at` has passed.
    Idle,
    /// A dial is in flight on this connection.
    Dialing(ConnId),
    /// This address reaches an established peer.
    Connected(PeerId),
    /// One of our own addresses.
    Ours,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) state: AddrState,
    /// Consecutive failed dials.
    pub(crate) failures: u32,
    /// Earliest next dial.
    pub(crate) retry_at: Option<Instant>,
    /// Given to `bootstrap` or `connect`: never forgotten, only backed off.
    pub(crate) sticky: bool,
    /// We dialed it and a node answered (a handshake, or `DUPLICATE`): only
    /// such addresses are passed on beyond our peers' own, so that a full
    /// node, which dials nothing, does not spread what it cannot vouch for.
    pub(crate) verified: bool,
    /// `MAX_PEERS` answers in a row: the node is alive but full.
    pub(crate) full_refusals: u32,
}

#[derive(Debug)]
pub(crate) struct AddrBook {
    entries: BTreeMap<Addr, Entry>,
    max: usize,
}

/// What a failed dial did to an address.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Back off until then.
    RetryAt(Instant),
    /// Too many failures: forgotten.
    Forgotten,
}

impl AddrBook {
    pub(crate) fn new(max: usize) -> Self {
        AddrBook {
            entries: BTreeMap::new(),
            max: max.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, addr: &Addr) -> Option<&Entry> {
        self.entries.get(addr)
    }

    /// Remembers an address. Returns whether it was new. When the book is
    /// full, the idle non-sticky entry with the most failures makes room; if
    /// there is none, the address is not remembered.
    pub(crate) fn learn(&mut self, addr: &Addr) -> bool {
        if self.entries.contains_key(addr) {
            return false;
        }
        if self.entries.len() >= self.max {
            let victim = self
                .entries
                .iter()
                .filter(|(_, e)| e.state == AddrState::Idle && !e.sticky)
                .max_by_key(|(_, e)| e.failures)
                .map(|(a, _)| a.clone());
            match victim {
                Some(v) => {
                    self.entries.remove(&v);
                }
                None => return false,
            }
        }
        self.entries.insert(
            addr.clone(),
            Entry {
                state: AddrState::Idle,
                failures: 0,
                retry_at: None,
                sticky: false,
                verified: false,
                full_refusals: 0,
            },
        );
        true
    }

    pub(crate) fn set_sticky(&mut self, addr: &Addr) {
        self.learn(addr);
        if let Some(e) = self.entries.get_mut(addr) {
            e.sticky = true;
            e.retry_at = None;
        }
    }

    pub(crate) fn mark_ours(&mut self, addr: &Addr) {
        self.learn(addr);
        if let Some(e) = self.entries.get_mut(addr) {
            e.state = AddrState::Ours;
        }
    }

    /// Whether a dial to `addr` may start now.
    pub(crate) fn dialable(&self, addr: &Addr, now: Instant) -> bool {
        match self.entries.get(addr) {
            Some(e) => e.state == AddrState::Idle && e.retry_at.is_none_or(|t| t <= now),
            None => false,
        }
    }

    pub(crate) fn on_dial(&mut self, addr: &Addr, conn: ConnId) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.state = AddrState::Dialing(conn);
        }
    }

    /// The address reaches `peer`.
    /// `peer` is on `addr`: we dialed it (`dialed`), or it said it
    /// listens there.
    pub(crate) fn on_connected(&mut self, addr: &Addr, peer: &PeerId, dialed: bool) {
        self.learn(addr);
        if let Some(e) = self.entries.get_mut(addr) {
            if e.state != AddrState::Ours {
                e.state = AddrState::Connected(peer.clone());
                e.failures = 0;
                e.retry_at = None;
                e.verified |= dialed;
            }
        }
    }

    /// A dial ended without a peer but the address is alive (it answered
    /// `DUPLICATE`): wait `hold` before trying it again.
    pub(crate) fn on_alive(&mut self, addr: &Addr, now: Instant, hold: Duration) {
        if let Some(e) = self.entries.get_mut(addr) {
            if matches!(e.state, AddrState::Dialing(_)) {
                e.state = AddrState::Idle;
            }
            e.failures = 0;
            e.full_refusals = 0;
            e.verified = true;
            e.retry_at = Some(now + hold);
        }
    }

    /// The entry of an address whose dial just ended, idle again.
    fn dial_ended(&mut self, addr: &Addr) -> Option<&mut Entry> {
        let e = self.entries.get_mut(addr)?;
        if matches!(e.state, AddrState::Dialing(_)) {
            e.state = AddrState::Idle;
        }
        Some(e)
    }

    /// A node answered `MAX_PEERS`: it is alive but full. Not a failure
    /// (the address is not forgotten for it, so a redirect or `PEERS` line
    /// naming it again does not make it new); it rests `base`, doubling
    /// per refusal in a row, up to `cap`. Without this, a capped mesh
    /// keeps dialing: every refusal's redirect names other full nodes, and
    /// an address forgotten after its failures was dialed again as new as
    /// soon as a `PEERS` line named it.
    pub(crate) fn on_refused_full(
        &mut self,
        addr: &Addr,
        now: Instant,
        base: Duration,
        cap: Duration,
        jitter: Duration,
    ) -> Failure {
        let Some(e) = self.dial_ended(addr) else {
            return Failure::Forgotten;
        };
        e.full_refusals = e.full_refusals.saturating_add(1);
        let rest = base
            .saturating_mul(1u32 << (e.full_refusals - 1).min(16))
            .min(cap.max(base))
            + jitter;
        let at = now + rest;
        e.retry_at = Some(at);
        Failure::RetryAt(at)
    }

    /// A dial failed: back off exponentially, or forget the address after
    /// `max_failures` in a row (sticky addresses are only backed off).
    pub(crate) fn on_failure(
        &mut self,
        addr: &Addr,
        now: Instant,
        base: Duration,
        cap: Duration,
        max_failures: u32,
        jitter: Duration,
    ) -> Failure {
        let Some(e) = self.dial_ended(addr) else {
            return Failure::Forgotten;
        };
        e.failures = e.failures.saturating_add(1);
        if e.failures >= max_failures && !e.sticky {
            self.entries.remove(addr);
            return Failure::Forgotten;
        }
        let backoff = base
            .saturating_mul(1u32 << (e.failures - 1).min(16))
            .min(cap)
            + jitter;
        let at = now + backoff;
        e.retry_at = Some(at);
        Failure::RetryAt(at)
    }

    /// `peer` went away: its addresses become dialable after `delay`.
    pub(crate) fn on_peer_gone(
        &mut self,
        peer: &PeerId,
        now: Instant,
        delay: Duration,
    ) -> Vec<Addr> {
        let mut freed = Vec::new();
        for (a, e) in self.entries.iter_mut() {
            if e.state == AddrState::Connected(peer.clone()) {
                e.state = AddrState::Idle;
                e.retry_at = Some(now + delay);
                freed.push(a.clone());
            }
        }
        freed
    }

    /// Idle addresses whose backoff has passed, in address order.
    pub(crate) fn due(&self, now: Instant) -> Vec<Addr> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == AddrState::Idle && e.retry_at.is_none_or(|t| t <= now))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Idle addresses we reached and that have not failed since: worth
    /// sharing.
    pub(crate) fn healthy_idle(&self) -> impl Iterator<Item = &Addr> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == AddrState::Idle && e.failures == 0 && e.verified)
            .map(|(a, _)| a)
    }

    pub(crate) fn is_ours(&self, addr: &Addr) -> bool {
        matches!(self.entries.get(addr), Some(e) if e.state == AddrState::Ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        Addr::parse(s).unwrap()
    }

    #[test]
    fn backoff_doubles_then_forgets() {
        let now = Instant::now();
        let mut b = AddrBook::new(10);
        assert!(b.learn(&a("h:1")));
        assert!(!b.learn(&a("h:1")));
        let s = Duration::from_secs(1);
        let cap = Duration::from_secs(5);
        let z = Duration::ZERO;
        assert_eq!(
            b.on_failure(&a("h:1"), now, s, cap, 4, z),
            Failure::RetryAt(now + s)
        );
        assert!(!b.dialable(&a("h:1"), now));
        assert!(b.dialable(&a("h:1"), now + s));
        assert_eq!(
            b.on_failure(&a("h:1"), now, s, cap, 4, z),
            Failure::RetryAt(now + 2 * s)
        );
        assert_eq!(
            b.on_failure(&a("h:1"), now, s, cap, 4, z),
            Failure::RetryAt(now + 4 * s)
        );
        assert_eq!(
            b.on_failure(&a("h:1"), now, s, cap, 4, z),
            Failure::Forgotten
        );
        assert_eq!(b.len(), 0);
        b.set_sticky(&a("h:2"));
        for _ in 0..10 {
            assert!(
                matches!(b.on_failure(&a("h:2"), now, s, cap, 4, z), Failure::RetryAt(t) if t <= now + cap)
            );
        }
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn full_book_evicts_the_worst_idle_entry() {
        let now = Instant::now();
        let mut b = AddrBook::new(2);
        b.learn(&a("h:1"));
        b.learn(&a("h:2"));
        b.on_failure(
            &a("h:2"),
            now,
            Duration::from_secs(1),
            Duration::from_secs(1),
            9,
            Duration::ZERO,
        );
        assert!(b.learn(&a("h:3")));
        assert!(b.get(&a("h:2")).is_none());
        b.on_connected(&a("h:1"), &PeerId::parse("p").unwrap(), true);
        b.mark_ours(&a("h:3"));
        assert!(!b.learn(&a("h:4")), "nothing evictable");
    }

    #[test]
    fn only_addresses_we_reached_are_shared() {
        let now = Instant::now();
        let hold = Duration::from_secs(1);
        let mut b = AddrBook::new(10);
        let p = PeerId::parse("p").unwrap();
        let q = PeerId::parse("q").unwrap();
        for s in ["h:1", "h:2", "h:3", "h:4"] {
            b.learn(&a(s));
        }
        // h:1 only heard of; h:2 dialed and reached; h:3 claimed by an
        // inbound peer's LISTEN; h:4 answered DUPLICATE to our dial.
        b.on_connected(&a("h:2"), &p, true);
        b.on_connected(&a("h:3"), &q, false);
        b.on_dial(&a("h:4"), ConnId(9));
        b.on_alive(&a("h:4"), now, hold);
        b.on_peer_gone(&p, now, hold);
        b.on_peer_gone(&q, now, hold);
        let shared: Vec<String> = b.healthy_idle().map(|a| a.to_string()).collect();
        assert_eq!(shared, ["h:2", "h:4"]);
        // A reached address that then fails is no longer shared.
        b.on_failure(&a("h:2"), now, hold, hold, 9, Duration::ZERO);
        let shared: Vec<String> = b.healthy_idle().map(|a| a.to_string()).collect();
        assert_eq!(shared, ["h:4"]);
    }
}
