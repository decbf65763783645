//! `p2p-sim`: seeded, deterministic runs of whole meshes under faults.
//!
//! `p2p-sim --peers 50 --seed 7` runs the `mesh` scenario with 50 peers and
//! prints a short summary; `--json` prints one JSON object instead. The
//! same arguments always print the same stdout (wall-clock time goes to
//! stderr). A failed check prints the command that replays it and exits 1.
//!
//! Sweeps: `--seeds A..B -j N` runs N seeds at a time on N threads (each
//! simulation stays single-threaded; output is the same as `-j 1`, in seed
//! order); `--shard K/N` runs every N-th seed, and `--merge FILE` adds up
//! the `--json` lines of several shards. `--compare BASELINE.json` compares
//! the metrics with a previous `--json` output and exits 3 on a regression.
//!
//! Exit codes: 0 all passed; 1 a check failed (or a determinism rerun
//! differed, or `--merge` found a failing seed); 2 bad arguments or input;
//! 3 (`--compare`, every check held) a metric regressed past its threshold.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use p2p_sim::compare::{self, BaselineRun, Thresholds};
use p2p_sim::sweep::{self, Shard, Totals};
use p2p_sim::{
    coverage::COUNTERS, invariants::CHECKS, Report, Sabotage, Scenario, SimConfig, SimError,
};

/// Exit code of `--compare` when a metric regressed past its threshold.
const EXIT_REGRESSION: u8 = 3;

/// Deterministic simulator of p2p meshes: seeded scenario runs with faults,
/// invariants and exact replay.
#[derive(Debug, Parser)]
#[command(name = "p2p-sim", version)]
struct Args {
    /// Scenario: mesh, partition, churn, latency, file, chat, intruders
    /// (needs --network-key), lan (no bootstrap: a simulated LAN only) or
    /// swarm (content-addressed sharing: holders, a liar, resumed
    /// downloads; 6 peers or more, a file of 16 chunks or more).
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
    /// Run this many seeds at a time, each on its own thread (0: one per
    /// core). Output is identical to -j 1, in seed order.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// With --seeds: run only shard K of N, the seeds S with
    /// (S - A) % N == K - 1, to spread a sweep over machines (merge their
    /// --json outputs with --merge).
    #[arg(long, value_name = "K/N", requires = "seeds", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Run nothing: read the --json lines of sweeps or shards from FILE
    /// ("-": stdin) and print the total line one sweep over all of them
    /// prints (JSON with --json), after the failing seeds' replay commands
    /// (on stderr with --json). Exits 1 if a seed failed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seeds", "compare", "plot", "check_determinism"])]
    merge: Option<PathBuf>,
    /// Compare each seed's metrics with BASELINE.json (a previous --json
    /// output: one object or the lines of a sweep) and exit 3 if one got
    /// worse past its threshold (1 still wins if a check failed). The
    /// comparison goes to stdout, or to stderr with --json.
    #[arg(long, value_name = "BASELINE.json")]
    compare: Option<PathBuf>,
    /// --compare: the largest allowed increase of any metric, percent of
    /// the baseline.
    #[arg(long, default_value_t = 10.0, value_name = "PCT")]
    max_regression_pct: f64,
    /// --compare: the same for converge_ms [default: --max-regression-pct].
    #[arg(long, value_name = "PCT")]
    max_converge_regression_pct: Option<f64>,
    /// --compare: the same for the chat_latency_* metrics [default:
    /// --max-regression-pct].
    #[arg(long, value_name = "PCT")]
    max_latency_regression_pct: Option<f64>,
    /// Run each seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Print one JSON object (per seed when sweeping) instead of a summary.
    #[arg(long)]
    json: bool,
    /// Write an SVG of established connections across peers (min, median,
    /// max) and of the mesh's writes and bytes per second over simulated time.
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
    /// A deliberate bug that makes one check fail, or a slowdown that only
    /// makes a metric worse (see --list for each one's check and scenario).
    #[arg(long, value_parser = parse_sabotage)]
    sabotage: Option<Sabotage>,
    /// Print every node event (heartbeats excepted) and fault to stderr,
    /// with simulated time: the way to follow a replayed failure (implies
    /// -j 1).
    #[arg(long)]
    log: bool,
    /// Private mode: every node runs the Noise session layer with the
    /// network key derived from KEY (SHA-256 of a domain-separated string,
    /// not the real CLI's slow KDF: cheap per host, same 32-byte PSK shape).
    #[arg(long, value_name = "KEY")]
    network_key: Option<String>,
    /// lan: the probability that one LAN announcement to one listener is
    /// lost, 0 to 1 [default: 0.2].
    #[arg(long, value_name = "P")]
    lan_loss: Option<f64>,
    /// swarm: size in bytes of the shared file [default: 3145728].
    #[arg(long, value_name = "BYTES")]
    swarm_size: Option<usize>,
    /// swarm: files in the shared directory tree, 0 for none [default: 40].
    #[arg(long, value_name = "N")]
    swarm_files: Option<usize>,
    /// Chunk size of the manifests the nodes build (swarm), 4096 to
    /// 16777216 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<u32>,
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

fn parse_shard(s: &str) -> Result<Shard, String> {
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
        c.network_key = self.network_key.clone();
        if let Some(v) = self.lan_loss {
            c.lan_loss = v;
        }
        if let Some(v) = self.swarm_size {
            c.swarm_size = v;
        }
        if let Some(v) = self.swarm_files {
            c.swarm_files = v;
        }
        if let Some(v) = self.chunk_size {
            c.chunk_size = v;
        }
        c
    }
}

/// One seed's run (and rerun), timed: wall time is only measured here, and
/// only printed to stderr.
struct Outcome {
    seed: u64,
    report: Result<Report, SimError>,
    /// `--check-determinism`: the rerun's trace hash.
    rerun: Option<Result<String, SimError>>,
    took: Duration,
}

/// What the sweep adds up while the results come in.
#[derive(Default)]
struct Tally {
    totals: Totals,
    /// Metrics worse than the baseline past their thresholds.
    regressions: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        print_list();
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &args.merge {
        return merge(&args, path);
    }
    let (first, end) = args.seeds.unwrap_or((args.seed, args.seed + 1));
    if let Err(e) = args.config(first).validate() {
        eprintln!("p2p-sim: {e}");
        return ExitCode::from(2);
    }
    let baseline = match &args.compare {
        None => None,
        Some(path) => match read_input(path).and_then(|t| compare::load_baseline(&t)) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("p2p-sim: baseline {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let seeds: Vec<u64> = match args.shard {
        Some(shard) => shard.seeds(first, end).collect(),
        None => (first..end).collect(),
    };
    if seeds.is_empty() {
        eprintln!(
            "p2p-sim: shard {} of seeds {first}..{end} holds no seed",
            args.shard.map(|s| s.to_string()).unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    let mut jobs = match args.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if args.log && jobs > 1 {
        // Every run's events would interleave on stderr.
        eprintln!("p2p-sim: --log runs one seed at a time (-j 1)");
        jobs = 1;
    }
    let sweep = args.seeds.is_some();
    let wall = Instant::now();
    let mut tally = Tally::default();
    let mut fatal = None;
    sweep::ordered(
        seeds,
        jobs,
        |seed| run_seed(&args, seed),
        |outcome| match handle(&args, outcome, sweep, baseline.as_ref(), &mut tally) {
            Ok(()) => true,
            Err(code) => {
                fatal = Some(code);
                false
            }
        },
    );
    if let Some(code) = fatal {
        return code;
    }
    if sweep {
        if args.json {
            println!("{}", tally.totals.json_line());
        } else {
            println!("{}", tally.totals.text_line());
        }
        eprintln!(
            "p2p-sim: sweep wall time {:.3} s ({jobs} job{})",
            wall.elapsed().as_secs_f64(),
            if jobs == 1 { "" } else { "s" }
        );
    }
    if baseline.is_some() {
        let line = format!(
            "compare: {} metric(s) worse than the baseline past their thresholds",
            tally.regressions
        );
        if args.json {
            eprintln!("p2p-sim: {line}");
        } else {
            println!("{line}");
        }
    }
    if tally.totals.failed > 0 {
        ExitCode::from(1)
    } else if tally.regressions > 0 {
        ExitCode::from(EXIT_REGRESSION)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one seed (twice with `--check-determinism`); any thread.
fn run_seed(args: &Args, seed: u64) -> Outcome {
    let cfg = args.config(seed);
    let started = Instant::now();
    let report = p2p_sim::run(&cfg);
    let took = started.elapsed();
    let rerun = (args.check_determinism && report.is_ok())
        .then(|| p2p_sim::run(&cfg).map(|r| r.trace_hash));
    Outcome {
        seed,
        report,
        rerun,
        took,
    }
}

/// Prints one seed's outcome (on the main thread, in seed order) and
/// counts it; `Err` stops the sweep with that exit code.
fn handle(
    args: &Args,
    o: Outcome,
    sweep: bool,
    baseline: Option<&BTreeMap<u64, BaselineRun>>,
    tally: &mut Tally,
) -> Result<(), ExitCode> {
    let seed = o.seed;
    let report = o.report.map_err(|e| {
        eprintln!("p2p-sim: {e}");
        ExitCode::from(2)
    })?;
    let rerun = o.rerun.transpose().map_err(|e| {
        eprintln!("p2p-sim: {e}");
        ExitCode::from(2)
    })?;
    let mut ok = report.passed();
    let deterministic = rerun.as_ref().map(|h| *h == report.trace_hash);
    if deterministic == Some(false) {
        ok = false;
    }
    tally.totals.add(ok, report.sim_duration_ms);
    print_report(args, &report, sweep, deterministic, rerun.as_deref());
    if let Some(base) = baseline {
        let (text, worse) = comparison(args, base, &report);
        tally.regressions += worse;
        if args.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    eprintln!(
        "p2p-sim: seed {seed}: wall time {:.3} s for {} ms simulated{}",
        o.took.as_secs_f64(),
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
                    return Err(ExitCode::from(2));
                }
                eprintln!("p2p-sim: plot written to {}", path.display());
            }
            None => eprintln!("p2p-sim: no plot data"),
        }
    }
    Ok(())
}

/// The `--compare` lines of one report, and how many metrics regressed.
fn comparison(
    args: &Args,
    baseline: &BTreeMap<u64, BaselineRun>,
    report: &Report,
) -> (String, usize) {
    let seed = report.seed;
    let Some(base) = baseline.get(&seed) else {
        return (
            format!("compare seed {seed:<6} not in the baseline, skipped\n"),
            0,
        );
    };
    let mut text = String::new();
    if base.replay != report.replay {
        text += &format!(
            "compare seed {seed:<6} note: the configuration differs (baseline: {}; now: {})\n",
            base.replay, report.replay
        );
    }
    let Some(metrics) = &base.metrics else {
        text += &format!("compare seed {seed:<6} the baseline has no metrics, skipped\n");
        return (text, 0);
    };
    let thresholds = Thresholds {
        default_pct: args.max_regression_pct,
        converge_pct: args.max_converge_regression_pct,
        latency_pct: args.max_latency_regression_pct,
    };
    let rows = compare::compare(metrics, &report.metrics, &thresholds);
    text += &compare::render(seed, &rows);
    (text, rows.iter().filter(|r| r.regressed).count())
}

/// `--merge FILE`: the total of several sweeps' `--json` lines.
fn merge(args: &Args, path: &std::path::Path) -> ExitCode {
    let merged = match read_input(path).and_then(|t| sweep::merge(&t)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("p2p-sim: --merge {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    for (seed, replay) in &merged.failing {
        let replay = format!("cargo run --release --bin p2p-sim -- {replay}");
        if args.json {
            eprintln!("p2p-sim: seed {seed} failed; replay: {replay}");
        } else {
            println!("seed {seed:<6} FAIL  replay: {replay}");
        }
    }
    if args.json {
        println!("{}", merged.totals.json_line());
    } else {
        println!("{}", merged.totals.text_line());
    }
    if merged.totals.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The text of FILE, or of stdin for "-".
fn read_input(path: &std::path::Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))
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
            "  {:<21} {:<24} {:<9} {}",
            b.name(),
            b.check(),
            b.scenario().name(),
            b.description()
        );
    }
    println!("slowdowns (--sabotage, fail no check, make a metric worse for --compare):");
    for b in Sabotage::SLOWDOWNS {
        println!(
            "  {:<21} {:<9} {}",
            b.name(),
            b.scenario().name(),
            b.description()
        );
    }
    println!("coverage counters:");
    for (name, what) in COUNTERS {
        println!("  {name:<34} {what}");
    }
}
