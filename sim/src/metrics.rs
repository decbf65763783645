//! What `--compare` compares: the per-run [`Metrics`] of a report (time to
//! converge, chat delivery latency, duplicate and missed deliveries, bytes
//! on the wire per delivered message, dials per peer), the counters the
//! world keeps for them, and the traffic time series of `--plot`.
//!
//! Every metric is "lower is better", and is `None` (absent from the
//! JSON) when the run has nothing to measure (no chat line in a `mesh`
//! run, no convergence). All of it is simulated time and counts: the same
//! seed gives the same metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use p2p_core::Output;
use p2p_net::TapEvent;
use serde::{Deserialize, Serialize};

use crate::world::World;

/// Width of one traffic bucket of the plot's time series, simulated ms.
pub const TRAFFIC_BUCKET_MS: u64 = 10;

/// Per-run metrics (the `metrics` object of `--json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Simulated ms at which the mesh reached its final state
    /// (`converged_at_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converge_ms: Option<u64>,
    /// Median chat delivery latency, simulated µs: from the scenario's send
    /// command to each receiver's delivery, over every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_latency_p50_us: Option<u64>,
    /// 99th percentile (nearest rank) of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_latency_p99_us: Option<u64>,
    /// Largest of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_latency_max_us: Option<u64>,
    /// Deliveries of a chat line to a receiver (host life) that already had
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_duplicates: Option<u64>,
    /// Receivers (host lives) that should have had a chat line (connected
    /// to its sender when it was sent, or transmitted it) and did not get
    /// it. Includes receivers whose connection dropped, which the
    /// `chat_delivered` check excuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_missed: Option<u64>,
    /// Every byte written by every node (`bytes`) divided by the messages
    /// delivered to applications: chat deliveries plus committed files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_delivered: Option<f64>,
    /// `Output::Dial`s in the tap divided by the number of peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dials_per_peer: Option<f64>,
}

impl Metrics {
    /// Every metric by name, in a fixed order (all lower-is-better).
    pub fn values(&self) -> Vec<(&'static str, Option<f64>)> {
        let f = |v: Option<u64>| v.map(|v| v as f64);
        vec![
            ("converge_ms", f(self.converge_ms)),
            ("chat_latency_p50_us", f(self.chat_latency_p50_us)),
            ("chat_latency_p99_us", f(self.chat_latency_p99_us)),
            ("chat_latency_max_us", f(self.chat_latency_max_us)),
            ("chat_duplicates", f(self.chat_duplicates)),
            ("chat_missed", f(self.chat_missed)),
            ("bytes_per_delivered", self.bytes_per_delivered),
            ("dials_per_peer", self.dials_per_peer),
        ]
    }

    /// The metrics of a finished run.
    pub(crate) fn of(w: &World, peers: usize, converged_at: Option<Duration>) -> Metrics {
        let c = &w.metrics;
        let mut lat = c.latencies_us.clone();
        lat.sort_unstable();
        let chats = !w.chats.is_empty();
        let (mut duplicates, mut missed) = (0u64, 0u64);
        for msg in w.chats.values() {
            duplicates += msg
                .delivered
                .values()
                .map(|&n| u64::from(n.saturating_sub(1)))
                .sum::<u64>();
            let mut expected: Vec<(usize, u32)> =
                msg.expected.iter().map(|&(h, life, _)| (h, life)).collect();
            expected.sort_unstable();
            expected.dedup();
            missed += expected
                .iter()
                .filter(|r| !msg.delivered.contains_key(r))
                .count() as u64;
        }
        let chat_deliveries: u64 = w
            .chats
            .values()
            .flat_map(|m| m.delivered.values())
            .map(|&n| u64::from(n))
            .sum();
        let delivered = chat_deliveries + w.received_files.len() as u64;
        Metrics {
            converge_ms: converged_at.map(|d| d.as_millis() as u64),
            chat_latency_p50_us: percentile(&lat, 50.0),
            chat_latency_p99_us: percentile(&lat, 99.0),
            chat_latency_max_us: lat.last().copied(),
            chat_duplicates: chats.then_some(duplicates),
            chat_missed: chats.then_some(missed),
            bytes_per_delivered: (delivered > 0).then(|| round3(w.bytes as f64 / delivered as f64)),
            dials_per_peer: (peers > 0).then(|| round3(c.dials as f64 / peers as f64)),
        }
    }
}

/// Rounded to 3 decimals, so the JSON stays short and reads back equal.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The nearest-rank `p`th percentile (0 < p <= 100) of ascending `sorted`
/// values: the smallest value with at least p% of the values at or below
/// it. `None` for no values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Messages and bytes the mesh wrote per [`TRAFFIC_BUCKET_MS`] of simulated
/// time (the plot's second panel).
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Writes (`Output::Transmit`) in bucket i, i.e. simulated ms
    /// `[i * TRAFFIC_BUCKET_MS, (i + 1) * TRAFFIC_BUCKET_MS)`.
    pub messages: Vec<u64>,
    /// Bytes in those writes.
    pub bytes: Vec<u64>,
}

impl Traffic {
    fn add(&mut self, at: Duration, bytes: usize) {
        let i = (at.as_millis() as u64 / TRAFFIC_BUCKET_MS) as usize;
        if self.messages.len() <= i {
            self.messages.resize(i + 1, 0);
            self.bytes.resize(i + 1, 0);
        }
        self.messages[i] += 1;
        self.bytes[i] += bytes as u64;
    }
}

/// What the world counts for the metrics while the run goes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `Output::Dial`s seen in the tap.
    dials: u64,
    /// Chat line -> when the scenario asked its sender to send it.
    chat_sent_at: BTreeMap<String, Duration>,
    /// Latency of every chat delivery, µs.
    latencies_us: Vec<u64>,
}

// The world's hooks for the metrics, kept here so that world.rs only
// calls them (one line each).
impl World {
    /// Every tap event of a live host (called by `on_tap`).
    pub(crate) fn metrics_on_tap(&mut self, at: Duration, ev: &TapEvent<'_>) {
        match ev {
            TapEvent::Output(Output::Dial { .. }) => self.metrics.dials += 1,
            TapEvent::Output(Output::Transmit { data, .. }) => {
                if let Some(s) = &mut self.series {
                    s.traffic.add(at, data.len());
                }
            }
            _ => {}
        }
    }

    /// The scenario asked for chat line `text` to be sent at `at`.
    pub(crate) fn metrics_chat_sent(&mut self, text: &str, at: Duration) {
        self.metrics
            .chat_sent_at
            .entry(text.to_owned())
            .or_insert(at);
    }

    /// Chat line `text` was delivered to an application at `at`.
    pub(crate) fn metrics_chat_delivered(&mut self, text: &str, at: Duration) {
        if let Some(sent) = self.metrics.chat_sent_at.get(text) {
            let us = at.saturating_sub(*sent).as_micros() as u64;
            self.metrics.latencies_us.push(us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        // Four values: p50 is the 2nd, p99 the 4th.
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile(&[10, 20, 30, 40], 99.0), Some(40));
        assert_eq!(percentile(&[10, 20, 30, 40], 75.0), Some(30));
        assert_eq!(percentile(&[10, 20, 30, 40], 76.0), Some(40));
    }

    #[test]
    fn traffic_buckets_by_simulated_time() {
        let mut t = Traffic::default();
        let b = TRAFFIC_BUCKET_MS;
        t.add(Duration::from_millis(0), 10);
        t.add(Duration::from_millis(b - 1), 1);
        t.add(Duration::from_millis(2 * b + b / 2), 4);
        assert_eq!(t.messages, vec![2, 0, 1]);
        assert_eq!(t.bytes, vec![11, 0, 4]);
    }

    #[test]
    fn metrics_round_trip_and_skip_absent_values() {
        let m = Metrics {
            converge_ms: Some(12),
            dials_per_peer: Some(1.5),
            ..Metrics::default()
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"converge_ms":12,"dials_per_peer":1.5}"#);
        let back: Metrics = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
    }
}
