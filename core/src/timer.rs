//! A component's keyed deadlines in one table. Every component with more
//! than one deadline keeps them in a `TimerTable`; the node's next wake-up
//! is the earliest over its components.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Deadlines keyed by `K`, ordered by time then key so that expiry order
/// is deterministic.
#[derive(Debug)]
pub(crate) struct TimerTable<K> {
    by_key: BTreeMap<K, Instant>,
    by_time: BTreeSet<(Instant, K)>,
}

impl<K> Default for TimerTable<K> {
    fn default() -> Self {
        TimerTable {
            by_key: BTreeMap::new(),
            by_time: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> TimerTable<K> {
    /// Sets (or moves) a deadline.
    pub(crate) fn set(&mut self, timer: K, at: Instant) {
        if let Some(old) = self.by_key.insert(timer.clone(), at) {
            self.by_time.remove(&(old, timer.clone()));
        }
        self.by_time.insert((at, timer));
    }

    /// Sets a deadline unless an earlier one is already set.
    pub(crate) fn set_earliest(&mut self, timer: K, at: Instant) {
        match self.by_key.get(&timer) {
            Some(&old) if old <= at => {}
            _ => self.set(timer, at),
        }
    }

    /// Removes a deadline.
    pub(crate) fn cancel(&mut self, timer: &K) {
        if let Some(old) = self.by_key.remove(timer) {
            self.by_time.remove(&(old, timer.clone()));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns the earliest deadline that is due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<K> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, timer) = self.by_time.pop_first()?;
        self.by_key.remove(&timer);
        Some(timer)
    }

    /// Number of deadlines set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Timer {
        Ping,
        Discovery,
        Conn(u64),
    }

    #[test]
    fn expires_in_time_then_key_order_and_moves() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::Discovery, t0 + Duration::from_secs(2));
        t.set(Timer::Ping, t0 + Duration::from_secs(2));
        t.set(Timer::Conn(1), t0 + Duration::from_secs(1));
        t.set(Timer::Conn(1), t0 + Duration::from_secs(3));
        t.set_earliest(Timer::Ping, t0 + Duration::from_secs(5));
        assert_eq!(t.len(), 3);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(1)), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(t.pop_expired(now), Some(Timer::Ping));
        assert_eq!(t.pop_expired(now), Some(Timer::Discovery));
        assert_eq!(t.pop_expired(now), None);
        t.cancel(&Timer::Conn(1));
        assert_eq!(t.next(), None);
    }
}
