//! `p2p-sim`: seeded, deterministic runs of whole meshes under faults.
//!
//! `p2p-sim --peers 50 --seed 7` runs the `mesh` scenario with 50 peers and
//! prints a short summary; `--json` prints one JSON object instead. The
//! same arguments always print the same stdout (wall-clock time goes to
//! stderr). A failed check prints the command that replays it and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use p2p_sim::{coverage::COUNTERS, invariants::CHECKS, Report, Sabotage, Scenario, SimConfig};

/// Deterministic simulator of p2p meshes: seeded scenario runs with faults,
/// invariants and exact replay.
#[derive(Debug, Parser)]
#[command(name = "p2p-sim", version)]
struct Args {
    /// Scenario: mesh, partition, churn, latency, file or chat.
    #[arg(long, default_value = "mesh", value_parser = parse_scenario)]
    scenario: Scenario,
    /// Number of simulated peers.
    #[arg(long, default_value_t = 50)]
    peers: usize,
    /// The seed every decision derives from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sweep seeds A..B (B excluded; A..=B includes it): one line per seed
    /// and a total.
    #[arg(long, value_name = "A..B", conflicts_with = "seed", value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Run each seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Print one JSON object (per seed when sweeping) instead of a summary.
    #[arg(long)]
    json: bool,
    /// Write an SVG of established connections per peer over simulated time.
    #[arg(long, value_name = "FILE.svg", conflicts_with = "seeds")]
    plot: Option<PathBuf>,
    /// Divide every node timer by this; 1 runs the deployed defaults [default: 6].
    #[arg(long)]
    time_scale: Option<u32>,
    /// turmoil tick in ms: the granularity of simulated time; larger runs faster [default: 2].
    #[arg(long)]
    tick_ms: Option<u64>,
    /// max_peers of every node [default: 64, or peers - 1 if larger; peers - 1 for churn].
    #[arg(long)]
    max_peers: Option<usize>,
    /// Size in bytes of each broadcast file (file and churn) [default: 262144].
    #[arg(long)]
    file_size: Option<usize>,
    /// Chat lines per peer (chat) [default: 3].
    #[arg(long)]
    messages: Option<usize>,
    /// Peers start at seeded times within this many ms [default: 1000].
    #[arg(long)]
    start_window_ms: Option<u64>,
    /// The mesh must form within this many simulated ms of the last start
    /// [default: 30000].
    #[arg(long)]
    mesh_deadline_ms: Option<u64>,
    /// A deliberate bug that makes one check fail (see --list for each bug's
    /// check and scenario).
    #[arg(long, value_parser = parse_sabotage)]
    sabotage: Option<Sabotage>,
    /// Print every node event (heartbeats excepted) and fault to stderr,
    /// with simulated time: the way to follow a replayed failure.
    #[arg(long)]
    log: bool,
    /// List the scenarios, checks, planted bugs and coverage counters, then exit.
    #[arg(long)]
    list: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse()
}

fn parse_sabotage(s: &str) -> Result<Sabotage, String> {
    s.parse()
}

/// `A..B` (B excluded) or `A..=B` (B included).
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?} is not a seed range like 1..21 or 1..=20");
    let (a, b, inclusive) = match s.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = s.split_once("..").ok_or_else(bad)?;
            (a, b, false)
        }
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        b.checked_add(1).ok_or_else(bad)?
    } else {
        b
    };
    if end <= a {
        return Err(format!("{s:?} is an empty seed range"));
    }
    Ok((a, end))
}

impl Args {
    fn config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::new(self.scenario, self.peers, seed);
        if let Some(v) = self.time_scale {
            c.time_scale = v;
        }
        if let Some(v) = self.tick_ms {
            c.tick = Duration::from_millis(v);
        }
        c.max_peers = self.max_peers;
        if let Some(v) = self.file_size {
            c.file_size = v;
        }
        if let Some(v) = self.messages {
            c.messages = v;
        }
        if let Some(v) = self.start_window_ms {
            c.start_window = Duration::from_millis(v);
        }
        if let Some(v) = self.mesh_deadline_ms {
            c.mesh_deadline = Duration::from_millis(v);
        }
        c.plot = self.plot.is_some();
        c.sabotage = self.sabotage;
        c.log = self.log;
        c
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        print_list();
        return ExitCode::SUCCESS;
    }
    let (first, end) = args.seeds.unwrap_or((args.seed, args.seed + 1));
    if let Err(e) = args.config(first).validate() {
        eprintln!("p2p-sim: {e}");
        return ExitCode::from(2);
    }
    let sweep = args.seeds.is_some();
    let wall = Instant::now();
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut sim_total_ms = 0u64;
    for seed in first..end {
        let cfg = args.config(seed);
        let started = Instant::now();
        let report = match p2p_sim::run(&cfg) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("p2p-sim: {e}");
                return ExitCode::from(2);
            }
        };
        let took = started.elapsed();
        let mut ok = report.passed();
        let rerun = if args.check_determinism {
            match p2p_sim::run(&cfg) {
                Ok(r) => Some(r.trace_hash),
                Err(e) => {
                    eprintln!("p2p-sim: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            None
        };
        let deterministic = rerun.as_ref().map(|h| *h == report.trace_hash);
        if deterministic == Some(false) {
            ok = false;
        }
        sim_total_ms += report.sim_duration_ms;
        print_report(&args, &report, sweep, deterministic, rerun.as_deref());
        eprintln!(
            "p2p-sim: seed {seed}: wall time {:.3} s for {} ms simulated{}",
            took.as_secs_f64(),
            report.sim_duration_ms,
            if args.check_determinism {
                " (first of two runs)"
            } else {
                ""
            }
        );
        if !ok {
            eprintln!("p2p-sim: replay: {}", report.replay_command());
        }
        if let Some(path) = &args.plot {
            match p2p_sim::plot::svg(&report) {
                Some(svg) => {
                    if let Err(e) = std::fs::write(path, svg) {
                        eprintln!("p2p-sim: cannot write {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                    eprintln!("p2p-sim: plot written to {}", path.display());
                }
                None => eprintln!("p2p-sim: no plot data"),
            }
        }
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    if sweep {
        if args.json {
            let total = serde_json::json!({
                "total": { "seeds": passed + failed, "passed": passed, "failed": failed,
                           "sim_duration_ms": sim_total_ms }
            });
            println!("{total}");
        } else {
            println!(
                "total: {} seeds, {passed} passed, {failed} failed, {sim_total_ms} ms simulated",
                passed + failed
            );
        }
        eprintln!(
            "p2p-sim: sweep wall time {:.3} s",
            wall.elapsed().as_secs_f64()
        );
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_report(
    args: &Args,
    report: &Report,
    sweep: bool,
    deterministic: Option<bool>,
    rerun: Option<&str>,
) {
    if args.json {
        let mut v = match serde_json::to_value(report) {
            Ok(v) => v,
            Err(e) => {
                // Every field is plain data; this cannot happen.
                eprintln!("p2p-sim: cannot render the report: {e}");
                return;
            }
        };
        if let (Some(d), Some(obj)) = (deterministic, v.as_object_mut()) {
            obj.insert("deterministic".into(), d.into());
            obj.insert("rerun_trace_hash".into(), rerun.unwrap_or_default().into());
        }
        println!("{v}");
        return;
    }
    if sweep {
        println!("{}", report.sweep_line());
    } else {
        println!("{}", report.summary());
    }
    match (deterministic, rerun) {
        (Some(true), _) => println!("  determinism: seed {} ran twice, same trace", report.seed),
        (Some(false), Some(h)) => println!(
            "  determinism: FAILED for seed {}: trace {} then {h}",
            report.seed, report.trace_hash
        ),
        _ => {}
    }
}

fn print_list() {
    println!("scenarios:");
    for s in Scenario::ALL {
        println!("  {s}");
    }
    println!("checks:");
    for (name, what) in CHECKS {
        println!("  {name:<34} {what}");
    }
    println!("sabotages:");
    for b in Sabotage::ALL {
        println!(
            "  {:<18} {:<24} {:<9} {}",
            b.name(),
            b.check(),
            b.scenario().name(),
            b.description()
        );
    }
    println!("coverage counters:");
    for (name, what) in COUNTERS {
        println!("  {name:<34} {what}");
    }
}
