//! The outcome of a run: a serialisable [`Report`] (what `--json` prints),
//! its short human summary, and one-line forms for seed sweeps. Nothing in
//! it depends on the wall clock, so identical seeds print identical output.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Scenario, SimConfig};
use crate::coverage::{Coverage, COUNTERS};
use crate::faults::{FaultSummary, Faults, Window};
use crate::graph::GraphSummary;
use crate::invariants::{Violation, CHECKS};
use crate::metrics::Metrics;
use crate::world::{Series, World};

/// The knobs a run used (beyond scenario, peers and seed).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Node timers divided by this.
    pub time_scale: u32,
    /// turmoil tick, ms.
    pub tick_ms: u64,
    /// `max_peers` of every node.
    pub max_peers: usize,
    /// Scaled heartbeat interval, ms.
    pub ping_interval_ms: u64,
    /// Scaled peer timeout, ms.
    pub peer_timeout_ms: u64,
    /// Scaled discovery interval, ms.
    pub discovery_interval_ms: u64,
    /// Scaled connect timeout, ms.
    pub connect_timeout_ms: u64,
}

impl Settings {
    pub(crate) fn of(cfg: &SimConfig) -> Self {
        let t = cfg.timers();
        let ms = |d: Duration| d.as_millis() as u64;
        Settings {
            time_scale: cfg.time_scale,
            tick_ms: ms(cfg.tick),
            max_peers: cfg.effective_max_peers(),
            ping_interval_ms: ms(t.ping),
            peer_timeout_ms: ms(t.peer_timeout),
            discovery_interval_ms: ms(t.discovery),
            connect_timeout_ms: ms(t.connect),
        }
    }
}

/// Chat totals (chat scenario).
#[derive(Debug, Clone, Serialize)]
pub struct ChatSummary {
    /// Lines broadcast.
    pub sent: usize,
    /// Transmissions of those lines to peers.
    pub transmitted: usize,
    /// Deliveries to applications.
    pub delivered: u64,
}

/// The simulated LAN (lan scenario).
#[derive(Debug, Clone, Serialize)]
pub struct LanSummary {
    /// Probability that one announcement to one listener was lost.
    pub loss: f64,
    /// The convergence bound after the last start, ms
    /// ([`SimConfig::lan_bound`]).
    pub bound_ms: u64,
    /// The last member's start, ms.
    pub last_start_ms: u64,
    /// What the segment did.
    #[serde(flatten)]
    pub stats: crate::lan::LanStats,
}

/// What the per-peer connection plot needs.
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    /// Established peers of each host over simulated time.
    pub series: Series,
    /// Fault windows.
    pub windows: Vec<Window>,
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The scenario.
    pub scenario: Scenario,
    /// Number of peers.
    pub peers: usize,
    /// Whether the scenario's final mesh held (formed, or re-formed after
    /// the faults).
    pub converged: bool,
    /// Simulated ms at which the mesh reached that final state.
    pub converged_at_ms: Option<u64>,
    /// Simulated ms at which the full mesh first held.
    pub first_mesh_at_ms: Option<u64>,
    /// Simulated length of the run, ms.
    pub sim_duration_ms: u64,
    /// Writes the nodes asked for (`Output::Transmit`).
    pub messages: u64,
    /// Bytes in those writes.
    pub bytes: u64,
    /// Failed checks; empty when all held.
    pub violations: Vec<Violation>,
    /// How often each coverage counter fired.
    pub coverage: Coverage,
    /// SHA-256 of every tap event and fault, in order.
    pub trace_hash: String,
    /// Events hashed.
    pub trace_events: u64,
    /// Injected faults.
    pub faults: FaultSummary,
    /// The peer graph at the end: degrees, components, diameter.
    pub graph: GraphSummary,
    /// What `--compare` compares.
    pub metrics: Metrics,
    /// Chat totals, for the chat scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatSummary>,
    /// The simulated LAN, for the lan scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lan: Option<LanSummary>,
    /// Shares, downloads, the liar and resumes, for the swarm scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::swarm::SwarmSummary>,
    /// The knobs.
    pub settings: Settings,
    /// Arguments of `p2p-sim` that replay this run.
    pub replay: String,
    /// Data for `--plot` (not serialised).
    #[serde(skip)]
    pub plot: Option<PlotData>,
}

impl Report {
    pub(crate) fn build(
        cfg: &SimConfig,
        w: &World,
        converged_at: Option<Duration>,
        sim_duration: Duration,
        faults: Faults,
        settings: Settings,
        lan: Option<(crate::lan::LanStats, Duration)>,
    ) -> Report {
        let ms = |d: Duration| d.as_millis() as u64;
        let chat = (cfg.scenario == Scenario::Chat).then(|| {
            let (sent, transmitted, delivered) = w.chat_totals();
            ChatSummary {
                sent,
                transmitted,
                delivered,
            }
        });
        Report {
            seed: cfg.seed,
            scenario: cfg.scenario,
            peers: cfg.peers,
            converged: converged_at.is_some(),
            converged_at_ms: converged_at.map(ms),
            first_mesh_at_ms: w.first_mesh_at.map(ms),
            sim_duration_ms: ms(sim_duration),
            messages: w.messages,
            bytes: w.bytes,
            violations: w.violations.clone(),
            coverage: w.coverage.clone(),
            trace_hash: w.trace.hex(),
            trace_events: w.trace.events(),
            faults: faults.summary.clone(),
            graph: w.peer_graph().summary(),
            metrics: Metrics::of(w, cfg.peers, converged_at),
            chat,
            lan: lan.map(|(stats, last_start)| LanSummary {
                loss: cfg.lan_loss,
                bound_ms: ms(cfg.lan_bound()),
                last_start_ms: ms(last_start),
                stats,
            }),
            swarm: w.swarm_summary(),
            settings,
            replay: cfg.replay_args(),
            plot: w.series.clone().map(|series| PlotData {
                series,
                windows: faults.windows,
            }),
        }
    }

    /// Whether every check held and the mesh converged.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.converged
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!("cargo run --release --bin p2p-sim -- {}", self.replay)
    }

    /// A short human summary (several lines, no trailing newline).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "p2p-sim: scenario {}, {} peers, seed {}",
            self.scenario, self.peers, self.seed
        );
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let stopped = !self.violations.is_empty() && self.converged_at_ms.is_none();
        let full = if self.settings.max_peers + 1 >= self.peers {
            "full mesh".to_owned()
        } else {
            format!(
                "mesh (capped at {}: connected, everyone with {}+ peers)",
                self.settings.max_peers,
                crate::graph::min_degree(self.settings.max_peers, self.peers)
            )
        };
        let mesh = match (self.converged_at_ms, self.first_mesh_at_ms) {
            (None, first) if stopped => match first {
                Some(f) => {
                    format!("stopped at the first violation ({full} had formed at {f} ms)")
                }
                None => format!("stopped at the first violation, before a {full} formed"),
            },
            (Some(at), Some(first)) if first != at => {
                format!("{full} at {at} ms simulated (first formed at {first} ms)")
            }
            (Some(at), _) => format!("{full} at {at} ms simulated"),
            (None, Some(first)) => {
                format!("mesh formed at {first} ms but did not hold at the end")
            }
            (None, None) => format!("no {full}"),
        };
        let _ = writeln!(
            s,
            "  result    {verdict}: {mesh}; ran {} ms simulated",
            self.sim_duration_ms
        );
        let _ = writeln!(
            s,
            "  traffic   {} writes, {}",
            self.messages,
            human_bytes(self.bytes)
        );
        let g = &self.graph;
        let _ = writeln!(
            s,
            "  graph     {} peers, {} links, degree min {} median {} max {}, {}",
            g.nodes,
            g.edges,
            g.degree_min,
            g.degree_median,
            g.degree_max,
            match g.diameter {
                Some(d) => format!("diameter {d}"),
                None => format!("{} components", g.components),
            }
        );
        let f = &self.faults;
        if f.links_cut + f.links_held + f.crashes + f.resets > 0 {
            let _ = writeln!(
                s,
                "  faults    {} link cuts, {} link stalls, {} connection ends reset, {} crashes, {} restarts",
                f.links_cut, f.links_held, f.resets, f.crashes, f.restarts
            );
        }
        if let Some(c) = &self.chat {
            let _ = writeln!(
                s,
                "  chat      {} lines, {} transmissions, {} deliveries",
                c.sent, c.transmitted, c.delivered
            );
        }
        if let Some(l) = &self.lan {
            let _ = writeln!(
                s,
                "  lan       {} announcements: {} delivered, {} lost (loss {}), {} dropped; {} to another network; bound {} ms after the last start at {} ms",
                l.stats.sent,
                l.stats.delivered,
                l.stats.lost,
                l.loss,
                l.stats.dropped,
                l.stats.other_network,
                l.bound_ms,
                l.last_start_ms
            );
        }
        if let Some(sw) = &self.swarm {
            swarm_lines(&mut s, sw);
        }
        if self.violations.is_empty() {
            let _ = writeln!(s, "  checks    all {} held", CHECKS.len());
        } else {
            let _ = writeln!(s, "  checks    {} violated:", self.violations.len());
            for v in self.violations.iter().take(10) {
                let _ = writeln!(s, "    {v}");
            }
            if self.violations.len() > 10 {
                let _ = writeln!(s, "    ... and {} more", self.violations.len() - 10);
            }
        }
        let fired: Vec<String> = self
            .coverage
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let never: Vec<&str> = COUNTERS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.coverage.get(k) == 0)
            .collect();
        let _ = writeln!(s, "  coverage  {}", wrap(&fired, 14));
        if !never.is_empty() {
            let never: Vec<String> = never.iter().map(|s| (*s).to_owned()).collect();
            let _ = writeln!(s, "  never     {}", wrap(&never, 14));
        }
        let _ = write!(s, "  trace     sha256 {}", self.trace_hash);
        if !self.passed() {
            let _ = write!(s, "\n  replay    {}", self.replay_command());
        }
        s
    }

    /// One line for a seed sweep.
    pub fn sweep_line(&self) -> String {
        let at = self
            .converged_at_ms
            .map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        let mut s = format!(
            "seed {:<6} {} converged {:<9} sim {:>7} ms  writes {:>8}  trace {}",
            self.seed,
            if self.passed() { "ok  " } else { "FAIL" },
            at,
            self.sim_duration_ms,
            self.messages,
            &self.trace_hash[..16],
        );
        if let Some(v) = self.violations.first() {
            let _ = write!(s, "\n    {v}\n    replay: {}", self.replay_command());
        } else if !self.passed() {
            let _ = write!(s, "\n    replay: {}", self.replay_command());
        }
        s
    }
}

/// The swarm scenario's lines of the summary.
fn swarm_lines(s: &mut String, sw: &crate::swarm::SwarmSummary) {
    let content: Vec<String> = sw
        .contents
        .iter()
        .map(|c| {
            format!(
                "{} {} ({}, {} files, {} chunks)",
                c.name,
                &c.id[..12],
                human_bytes(c.size),
                c.files,
                c.chunks
            )
        })
        .collect();
    let _ = writeln!(s, "  swarm     {}", content.join("; "));
    let roles: Vec<String> = sw
        .roles
        .iter()
        .map(|(r, hs)| format!("{r} {}", hs.join(" ")))
        .collect();
    let _ = writeln!(s, "  roles     {}", roles.join("; "));
    let _ = writeln!(
        s,
        "  downloads {} wanted, {} committed; {} started, {} completed, {} failed; {} fetched, {} written",
        sw.downloads_wanted,
        sw.downloads_committed,
        sw.downloads_started,
        sw.downloads_completed,
        sw.downloads_failed,
        human_bytes(sw.bytes_fetched),
        human_bytes(sw.bytes_written)
    );
    let _ = writeln!(
        s,
        "  sources   {} multi-peer downloads (up to {} peers), {} chunks served from partials; liar: {} chunks rejected by {} downloaders ({} from honest peers)",
        sw.multi_peer_downloads,
        sw.max_peers_per_download,
        sw.served_from_partial,
        sw.chunks_rejected_liar,
        sw.liar_caught_by,
        sw.chunks_rejected_honest
    );
    for r in &sw.resumed {
        let fetched = r.fetched.map_or_else(|| "-".to_owned(), human_bytes);
        let _ = writeln!(
            s,
            "  resumed   {} life {}: {} had {} of {} (checkpointed {}), fetched {}, wrote {}",
            r.host,
            r.life,
            r.content,
            human_bytes(r.have),
            human_bytes(r.size),
            human_bytes(r.recorded),
            fetched,
            human_bytes(r.written)
        );
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Joins items into lines of at most ~90 columns, continuation lines
/// indented by `indent`.
fn wrap(items: &[String], indent: usize) -> String {
    let mut out = String::new();
    let mut col = indent;
    for (i, item) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if col + sep.len() + item.len() > 90 && i > 0 {
            out.push_str(",\n");
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else {
            out.push_str(sep);
            col += sep.len();
        }
        out.push_str(item);
        col += item.len();
    }
    if items.is_empty() {
        out.push_str("(none)");
    }
    out
}
