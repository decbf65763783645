//! `--compare BASELINE.json`: the [`Metrics`] of this run against those of
//! a previous `--json` output, seed by seed, and whether any got worse
//! past its threshold ([`Thresholds`]). Every metric is lower-is-better;
//! a metric absent on either side is skipped with a note.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::metrics::Metrics;

/// How much worse (in percent of the baseline) a metric may get.
///
/// One default for every metric, and two overrides for the metrics that a
/// protocol change moves on purpose more often than the others: time to
/// converge (timers, dial strategy) and chat latency (batching, flushing).
/// Counts that are zero in the baseline (duplicates, missed deliveries)
/// regress on any increase whatever the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// For every metric without an override (default 10).
    pub default_pct: f64,
    /// For `converge_ms`.
    pub converge_pct: Option<f64>,
    /// For the `chat_latency_*` metrics.
    pub latency_pct: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            default_pct: 10.0,
            converge_pct: None,
            latency_pct: None,
        }
    }
}

impl Thresholds {
    /// The threshold of one metric, percent.
    pub fn limit(&self, metric: &str) -> f64 {
        let over = if metric == "converge_ms" {
            self.converge_pct
        } else if metric.starts_with("chat_latency") {
            self.latency_pct
        } else {
            None
        };
        over.unwrap_or(self.default_pct)
    }
}

/// One seed of a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRun {
    /// Its replay arguments (to note a configuration that differs).
    pub replay: String,
    /// Its metrics; `None` for a baseline from before metrics existed.
    pub metrics: Option<Metrics>,
}

/// Reads a baseline: one `--json` report object (possibly pretty-printed),
/// or the lines of a `--json` sweep (`total` lines are skipped). Keyed by
/// seed; a seed that appears twice is an error.
pub fn load_baseline(text: &str) -> Result<BTreeMap<u64, BaselineRun>, String> {
    let objects: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(no, l)| {
                serde_json::from_str(l).map_err(|e| format!("line {}: not JSON ({e})", no + 1))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out = BTreeMap::new();
    for v in objects {
        if v.get("total").is_some() {
            continue;
        }
        let seed = v
            .get("seed")
            .and_then(Value::as_u64)
            .ok_or("a baseline object without a seed: not p2p-sim --json output")?;
        let replay = v
            .get("replay")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let metrics = match v.get("metrics") {
            Some(m) => Some(
                serde_json::from_value(m.clone())
                    .map_err(|e| format!("seed {seed}: unreadable metrics ({e})"))?,
            ),
            None => None,
        };
        if out.insert(seed, BaselineRun { replay, metrics }).is_some() {
            return Err(format!("seed {seed} appears twice in the baseline"));
        }
    }
    if out.is_empty() {
        return Err("the baseline holds no report".into());
    }
    Ok(out)
}

/// One metric of one seed, baseline against now.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The metric's name (see [`Metrics::values`]).
    pub metric: &'static str,
    /// Baseline value.
    pub base: Option<f64>,
    /// This run's value.
    pub now: Option<f64>,
    /// Relative change, percent of the baseline (positive: worse);
    /// infinite when the baseline is 0 and now is not; `None` when a side
    /// is absent.
    pub change_pct: Option<f64>,
    /// The threshold that applied, percent.
    pub limit_pct: f64,
    /// Worse than the baseline past the threshold.
    pub regressed: bool,
}

/// Compares every metric of one seed.
pub fn compare(base: &Metrics, now: &Metrics, th: &Thresholds) -> Vec<Row> {
    base.values()
        .into_iter()
        .zip(now.values())
        .map(|((metric, b), (_, n))| {
            let change_pct = match (b, n) {
                (Some(b), Some(n)) => Some(relative_change(b, n)),
                _ => None,
            };
            let limit_pct = th.limit(metric);
            Row {
                metric,
                base: b,
                now: n,
                change_pct,
                limit_pct,
                regressed: change_pct.is_some_and(|c| c > limit_pct),
            }
        })
        .collect()
}

/// `(now - base) / base` in percent; 0 when both are 0, infinite when only
/// the baseline is 0.
pub fn relative_change(base: f64, now: f64) -> f64 {
    if base == now {
        0.0
    } else if base == 0.0 {
        f64::INFINITY.copysign(now)
    } else {
        (now - base) / base.abs() * 100.0
    }
}

/// The rows of one seed as text: one line per metric.
pub fn render(seed: u64, rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        let _ = write!(s, "compare seed {seed:<6} {:<22}", r.metric);
        match (r.base, r.now, r.change_pct) {
            (Some(b), Some(n), Some(c)) => {
                let change = if c.is_infinite() {
                    "new (baseline 0)".to_owned()
                } else {
                    format!("{c:+.1}%")
                };
                let verdict = if r.regressed {
                    format!("  REGRESSION (limit +{}%)", r.limit_pct)
                } else {
                    String::new()
                };
                let _ = write!(s, " {} -> {}  {change}{verdict}", num(b), num(n));
            }
            (b, n, _) => {
                let side = match (b, n) {
                    (None, None) => "in neither",
                    (None, Some(_)) => "not in the baseline",
                    _ => "not in this run",
                };
                let _ = write!(s, " skipped: {side}");
            }
        }
        s.push('\n');
    }
    s
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_change_handles_zero_baselines() {
        assert_eq!(relative_change(100.0, 110.0), 10.0);
        assert_eq!(relative_change(100.0, 90.0), -10.0);
        assert_eq!(relative_change(0.0, 0.0), 0.0);
        assert_eq!(relative_change(0.0, 2.0), f64::INFINITY);
    }

    #[test]
    fn a_metric_worse_past_its_limit_regresses() {
        let base = Metrics {
            converge_ms: Some(1000),
            chat_latency_p50_us: Some(1000),
            chat_duplicates: Some(0),
            dials_per_peer: Some(2.0),
            ..Metrics::default()
        };
        let now = Metrics {
            converge_ms: Some(1150),
            chat_latency_p50_us: Some(1050),
            chat_duplicates: Some(1),
            bytes_per_delivered: Some(5.0),
            dials_per_peer: Some(2.0),
            ..Metrics::default()
        };
        let th = Thresholds {
            converge_pct: Some(20.0),
            ..Thresholds::default()
        };
        let rows = compare(&base, &now, &th);
        let by = |m: &str| rows.iter().find(|r| r.metric == m).unwrap().clone();
        assert!(!by("converge_ms").regressed, "15% is within 20%");
        assert!(!by("chat_latency_p50_us").regressed);
        assert!(by("chat_duplicates").regressed, "0 -> 1 always regresses");
        assert_eq!(by("bytes_per_delivered").change_pct, None);
        assert!(!by("bytes_per_delivered").regressed);
        assert_eq!(by("dials_per_peer").change_pct, Some(0.0));
        let strict = Thresholds::default();
        assert!(compare(&base, &now, &strict)[0].regressed, "15% > 10%");
        assert!(compare(&base, &base, &strict).iter().all(|r| !r.regressed));
        let text = render(4, &rows);
        assert!(text.contains("skipped: not in the baseline"), "{text}");
        assert!(text.contains("REGRESSION"), "{text}");
    }

    #[test]
    fn baselines_are_one_object_or_sweep_lines() {
        let one = r#"{
  "seed": 3, "replay": "--seed 3", "metrics": {"converge_ms": 5}
}"#;
        let b = load_baseline(one).unwrap();
        assert_eq!(b[&3].metrics.as_ref().unwrap().converge_ms, Some(5));
        let lines = "{\"seed\":1,\"replay\":\"a\"}\n{\"seed\":2,\"replay\":\"b\",\"metrics\":{}}\n{\"total\":{}}\n";
        let b = load_baseline(lines).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[&1].metrics, None);
        assert_eq!(b[&2].metrics, Some(Metrics::default()));
        assert!(load_baseline("{\"seed\":1}\n{\"seed\":1}\n").is_err());
        assert!(load_baseline("{\"total\":{}}").is_err());
    }
}
