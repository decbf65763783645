//! Seed sweeps over many cores and many machines: [`ordered`] runs seeds
//! on several threads and hands the results back in seed order as they
//! become available; [`Shard`] picks every N-th seed of a range, so that
//! a CI matrix or a job array splits a sweep; [`merge`] reads the `--json`
//! lines of several shards back into the [`Totals`] one sweep prints.
//!
//! Threads are safe here: a run ([`crate::run`]) shares nothing with
//! another. turmoil keeps its current simulation in a thread-local, every
//! host runs on its own current-thread tokio runtime inside the calling
//! thread, the panic capture is a thread-local of the simulation's thread
//! (the hook, installed once, only looks at the panicking thread's
//! capture), and the world, the sabotage switches and the RNGs belong to
//! the run. The one process-wide counter a run touches, tokio's task ids,
//! only orders the tasks of a crashed host among themselves, and the
//! simulator cuts a crashed host off before dropping them (see the crate
//! docs), so a seed's trace is the same on any thread and beside any
//! other run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde_json::Value;

/// Stack of each sweep thread: as much as the main thread usually has.
const STACK: usize = 8 << 20;

/// Runs `work` on every item with up to `jobs` threads and calls `each`
/// with the results in the items' order, each as soon as it and all
/// before it are done. `each` returning `false` stops the sweep: no new
/// item starts, and the call returns once the running ones finish. With
/// `jobs <= 1` everything runs on the calling thread.
pub fn ordered<T, R, W, E>(items: Vec<T>, jobs: usize, work: W, mut each: E)
where
    T: Send,
    R: Send,
    W: Fn(T) -> R + Sync,
    E: FnMut(R) -> bool,
{
    if jobs <= 1 || items.len() <= 1 {
        for item in items {
            if !each(work(item)) {
                return;
            }
        }
        return;
    }
    let n = items.len();
    let slots: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|t| std::sync::Mutex::new(Some(t)))
        .collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n) {
            let tx = tx.clone();
            let (slots, next, stop, work) = (&slots, &next, &stop, &work);
            let spawned = std::thread::Builder::new()
                .name("p2p-sim sweep".into())
                .stack_size(STACK)
                .spawn_scoped(scope, move || loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = slots.get(i).and_then(|s| lock(s).take()) else {
                        return;
                    };
                    if tx.send((i, work(item))).is_err() {
                        return;
                    }
                });
            if spawned.is_err() {
                // Fewer threads than asked: the others take the work.
                continue;
            }
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx.iter() {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                want += 1;
                if !each(r) {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        // Left over when threads could not be spawned (or one panicked,
        // which the scope then re-raises): finish here, in order.
        for (i, slot) in slots.iter().enumerate().skip(want) {
            let r = match pending.remove(&i) {
                Some(r) => r,
                None => match lock(slot).take() {
                    Some(item) => work(item),
                    None => continue,
                },
            };
            if !each(r) {
                return;
            }
        }
    });
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking `work` poisons nothing we read half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `--shard K/N`: the K-th of N interleaved parts of a seed range (K is
/// 1-based). Seed `s` of range `A..B` belongs to shard `K` when
/// `(s - A) % N == K - 1`, so shards 1/N..N/N together cover the range
/// exactly once and each gets an even mix of early and late seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index of this shard.
    pub k: u64,
    /// Number of shards.
    pub n: u64,
}

impl Shard {
    /// The seeds of `first..end` that belong to this shard.
    pub fn seeds(self, first: u64, end: u64) -> impl Iterator<Item = u64> {
        (first..end).filter(move |s| (s - first) % self.n == self.k - 1)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a shard like 1/4 (K of N, 1 <= K <= N)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The total line of a sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that passed (every check held, the mesh converged, and with
    /// `--check-determinism` the rerun gave the same trace).
    pub passed: u64,
    /// Seeds that did not.
    pub failed: u64,
    /// Simulated ms over all seeds.
    pub sim_duration_ms: u64,
}

impl Totals {
    /// Counts one seed.
    pub fn add(&mut self, passed: bool, sim_duration_ms: u64) {
        self.seeds += 1;
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        self.sim_duration_ms += sim_duration_ms;
    }

    /// The line a `--json` sweep ends with.
    pub fn json_line(&self) -> String {
        serde_json::json!({
            "total": { "seeds": self.seeds, "passed": self.passed, "failed": self.failed,
                       "sim_duration_ms": self.sim_duration_ms }
        })
        .to_string()
    }

    /// The line a sweep ends with.
    pub fn text_line(&self) -> String {
        format!(
            "total: {} seeds, {} passed, {} failed, {} ms simulated",
            self.seeds, self.passed, self.failed, self.sim_duration_ms
        )
    }
}

/// `--merge`: the totals of several shards' `--json` lines, and their
/// failing seeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// As one sweep over all of them would print.
    pub totals: Totals,
    /// (seed, replay arguments) of every failing run, by seed.
    pub failing: Vec<(u64, String)>,
}

/// Merges the `--json` output of sweeps (any number of shards, in any
/// order, concatenated): one report object per line; `total` lines and
/// blank lines are skipped. A run that appears twice (same replay
/// arguments) is an error, as is a line that is not a report.
pub fn merge(text: &str) -> Result<Merged, String> {
    let mut runs: BTreeMap<(u64, String), (bool, u64)> = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", no + 1))?;
        if v.get("total").is_some() {
            continue;
        }
        let (seed, replay, passed, sim_ms) =
            run_line(&v).ok_or_else(|| format!("line {}: not a p2p-sim --json report", no + 1))?;
        if runs
            .insert((seed, replay.clone()), (passed, sim_ms))
            .is_some()
        {
            return Err(format!(
                "line {}: run `{replay}` appears twice (overlapping shards?)",
                no + 1
            ));
        }
    }
    let mut m = Merged::default();
    for ((seed, replay), (passed, sim_ms)) in runs {
        m.totals.add(passed, sim_ms);
        if !passed {
            m.failing.push((seed, replay));
        }
    }
    Ok(m)
}

/// (seed, replay, passed, simulated ms) of one report line, judged as the
/// sweep judged it.
fn run_line(v: &Value) -> Option<(u64, String, bool, u64)> {
    let seed = v.get("seed")?.as_u64()?;
    let replay = v.get("replay")?.as_str()?.to_owned();
    let clean = v.get("violations")?.as_array()?.is_empty();
    let converged = v.get("converged")?.as_bool()?;
    let deterministic = v
        .get("deterministic")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let sim_ms = v.get("sim_duration_ms")?.as_u64()?;
    Some((seed, replay, clean && converged && deterministic, sim_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_hands_results_back_in_order_whatever_finishes_first() {
        for jobs in [1, 2, 3, 8] {
            let mut got = Vec::new();
            ordered(
                (0..20u64).collect(),
                jobs,
                |i| {
                    // Early items take longest.
                    std::thread::sleep(std::time::Duration::from_micros((20 - i) * 200));
                    i * 10
                },
                |r| {
                    got.push(r);
                    true
                },
            );
            assert_eq!(
                got,
                (0..20).map(|i| i * 10).collect::<Vec<_>>(),
                "jobs {jobs}"
            );
        }
    }

    #[test]
    fn ordered_stops_when_asked() {
        let mut got = Vec::new();
        ordered(
            (0..50u64).collect(),
            3,
            |i| i,
            |r| {
                got.push(r);
                r < 4
            },
        );
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn shards_cover_a_range_exactly_once() {
        let mut all: Vec<u64> = (1..=3)
            .flat_map(|k| Shard { k, n: 3 }.seeds(5, 17))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (5..17).collect::<Vec<_>>());
        assert_eq!(
            Shard { k: 2, n: 3 }.seeds(5, 17).collect::<Vec<_>>(),
            vec![6, 9, 12, 15]
        );
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "1/0", "x", "1/"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn merge_counts_runs_once_and_lists_failures() {
        let line = |seed: u64, ok: bool| {
            format!(
                r#"{{"seed":{seed},"replay":"--seed {seed}","violations":{},"converged":true,"sim_duration_ms":10}}"#,
                if ok { "[]" } else { r#"[{"check":"x"}]"# }
            )
        };
        let text = format!(
            "{}\n{}\n{{\"total\":{{}}}}\n\n{}\n",
            line(3, true),
            line(1, false),
            line(2, true)
        );
        let m = merge(&text).unwrap();
        assert_eq!(
            m.totals,
            Totals {
                seeds: 3,
                passed: 2,
                failed: 1,
                sim_duration_ms: 30
            }
        );
        assert_eq!(m.failing, vec![(1, "--seed 1".to_owned())]);
        let twice = format!("{}\n{}\n", line(1, true), line(1, true));
        assert!(merge(&twice).unwrap_err().contains("twice"));
        assert!(merge("{\"seed\":1}\n").is_err());
    }
}
