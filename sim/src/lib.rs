//! Deterministic simulator of whole p2p meshes, replayable by seed.
//!
//! `p2p-sim --peers 50 --seed 7` is how someone who changes the protocol
//! finds out, in seconds, whether a 50-peer mesh still forms, heals and
//! moves files under faults; any failure replays exactly from its seed.
//!
//! # How it works
//!
//! Each peer is a [turmoil] host running the deployed `p2p-net` driver
//! ([`p2p_net::start`]) over turmoil's simulated TCP
//! ([`transport::TurmoilTransport`] implements the driver's
//! [`p2p_net::Transport`]), with an in-memory downloads directory
//! ([`p2p_net::MemStorage`]). The driver's tap reports every input and
//! output of every node, in order; the simulator hashes them into the
//! trace, follows both ends of every connection, and checks:
//!
//! - safety, while the run goes: at most one established connection per
//!   peer pair; peer tables hold handshaked peers only; every frame is
//!   received as sent; no file is committed whose content differs from the
//!   file sent; nothing is written outside the downloads; no chat line is
//!   delivered twice; crashed peers leave every table within the peer
//!   timeout; nothing panics;
//! - liveness, after the scenario's faults stop and a quiet period passes:
//!   the full mesh re-forms, transfers complete, chat lines arrive.
//!
//! [`invariants::CHECKS`] lists them by name; a failure is a
//! [`Violation`] with the simulated time, and the [`Report`] carries the
//! command that replays it. Coverage counters ([`coverage::COUNTERS`])
//! say how often interesting situations were reached (simultaneous
//! connects merged, `MAX_PEERS` refusals, transfers aborted by a crash,
//! peers rediscovered after a partition, ...).
//!
//! Each report also carries [`Metrics`] (time to converge, chat latency,
//! duplicate and missed deliveries, bytes per delivery, dials per peer)
//! that [`compare`] holds against a baseline, and `--plot` draws the
//! spread of connections across peers and the mesh's traffic ([`plot`]).
//!
//! Scenarios ([`Scenario`]): `mesh`, `partition`, `churn`, `latency`,
//! `file`, `chat`, `intruders`, `lan`, `swarm`; see the variants for what
//! each does.
//!
//! # Content-addressed sharing
//!
//! The `swarm` scenario runs the core's swarm component over
//! [`p2p_net::MemStorage`]'s swarm support. There each host keeps one
//! storage across its lives: a crash calls [`p2p_net::MemStorage::crash`]
//! (open partials and the share registry go, what is "on disk" stays), so
//! a restarted holder shares the same files again and a restarted
//! downloader resumes its partial from what it checkpointed. The
//! simulator builds the content's manifests itself and judges every
//! `Shared` id, every chunk written and every commit against them; the
//! lying holder's copy is corrupted under it after it shared
//! ([`p2p_net::MemStorage::corrupt_source_at`]), so it serves the right
//! ids with wrong chunks. turmoil's links have no bandwidth, so the
//! scenario gives its links 5–40 ms of latency and its nodes two requests
//! in flight per peer: a download then lasts rounds of requests, and the
//! crashes, cuts and resets land inside it.
//!
//! # LAN discovery
//!
//! [`lan::SimLan`] is the simulator's [`p2p_net::LanDiscovery`]: one
//! seeded, single-threaded LAN segment on which nodes announce themselves
//! as mDNS would (on start, then at 1, 3 and 7 s, then every 120 s; RFC
//! 6762 §8.3), each delivery delayed 1–100 ms or lost with `--lan-loss`.
//! The `lan` scenario gives nodes no bootstrap at all: they meet only
//! there, next to a few hosts of another network that must never be
//! dialed.
//!
//! # Private meshes
//!
//! With [`SimConfig::network_key`] (`--network-key`) every node runs the
//! core's Noise session layer (docs/PROTOCOL.md §7.4): the 32-byte PSK is
//! SHA-256 of a domain-separated string ([`SimConfig::psk`]; the real CLI's
//! slow KDF would cost every host of every run), each node's static key and
//! every handshake's ephemerals come from its seed, so a seed and a key
//! replay exactly. The tap then shows ciphertext: connections are followed
//! as Noise messages (the handshake's fixed lengths are checked; bytes are
//! still compared end to end), and which peer a connection carries comes
//! from the node's events (`PeerConnected` while handling an input on it,
//! the kept end of `DuplicateRetired`) once the handshake's messages went
//! both ways. Chat lines and file ends cannot be read off the wire, so
//! deliveries are expected from the peers established at send time only.
//! The `intruders` scenario (`intruder.rs`) attacks such a mesh.
//!
//! # Determinism
//!
//! Everything derives from the seed ([`SimConfig::seed`]): turmoil's RNG
//! and epoch, every node's seed (so its id; a restarted host gets a new
//! one), the start times and bootstrap choices, the fault schedule, file
//! contents. No real clock is read on a simulated path (wall time is only
//! measured by the binary, and printed to stderr), no thread is spawned
//! within a run (a `-j` sweep runs whole runs side by side, one per
//! thread: [`sweep`] says why that is safe), no `HashMap` order reaches an
//! output (turmoil's maps are insertion
//! ordered, ours are `BTreeMap`s). The trace hash covers every transmit,
//! input, output and fault; running a seed twice must give the same hash.
//!
//! tokio's `select!` picks among ready branches with its own RNG, which is
//! only seedable under `--cfg tokio_unstable`. We chose `biased;` in every
//! `select!` on a simulated path (the driver's and the host loop's) over
//! that cfg: a plain `cargo build`/`cargo test` then builds a deterministic
//! simulator, with no special `RUSTFLAGS` that would rebuild every crate
//! and that CI and users could forget. The cfg's other benefit, failing on
//! a panic inside a spawned task, is provided by a panic hook that records
//! panics of the simulation thread as `no_panic` violations.
//!
//! Crashes are the one place where tokio's own order leaks: dropping a
//! host's runtime drops its tasks in an order set by tokio's process-wide
//! task ids, and each dying socket sends a FIN or RST. A crash therefore
//! cuts the host off first (nothing it sends while dying leaves), so that a
//! seed replays identically even after other runs in the same process (a
//! `--seeds` sweep, the tests). A loud crash reconnects the host at once
//! (peers get a reset on their next frame); a silent one keeps it cut off
//! until its restart (peers notice by timeout).
//!
//! # Faults as TCP sees them
//!
//! turmoil's TCP does not retransmit: a segment lost on a partitioned link
//! leaves a hole that stalls the stream for good. Real TCP delivers that
//! data late instead, so cut and stalled links hold their segments and
//! deliver them on repair (`faults.rs`); connections end by the nodes'
//! timeouts or by an explicit reset ([`transport::Resets`]; a cut longer
//! than [`TCP_GIVE_UP`] resets on repair), never by a lost segment
//! inside a stream.
//!
//! # Time
//!
//! Node timers are divided by [`SimConfig::time_scale`] (6 by default: a
//! 10 s peer timeout instead of 60 s) because each simulated tick costs a
//! visit of every host (turmoil runs every host's runtime each step; the
//! vendored patch removed the scan of every link): compressing the timers
//! keeps partition and churn runs at seconds. `--time-scale 1` runs the deployed timers. The
//! tick ([`SimConfig::tick`], 2 ms by default) is the granularity of
//! message delivery; timers still fire at their exact time within a tick.
//! Larger ticks run faster at the cost of coarser latencies.
//!
//! ```no_run
//! use p2p_sim::{run, Scenario, SimConfig};
//!
//! let report = run(&SimConfig::new(Scenario::Partition, 20, 7)).unwrap();
//! println!("{}", report.summary());
//! assert!(report.passed(), "replay with: {}", report.replay_command());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compare;
mod config;
pub mod coverage;
mod faults;
pub mod graph;
mod host;
mod intruder;
pub mod invariants;
pub mod lan;
pub mod metrics;
mod outsider;
pub mod plot;
mod report;
mod runner;
mod sabotage;
mod scenario;
mod swarm;
pub mod sweep;
mod trace;
mod track;
pub mod transport;
mod world;

pub use config::{host_name, Sabotage, Scenario, SimConfig};
pub use faults::{FaultSummary, Window, TCP_GIVE_UP};
pub use invariants::Violation;
pub use metrics::Metrics;
pub use report::{ChatSummary, LanSummary, PlotData, Report, Settings};
pub use runner::{run, SimError};
pub use swarm::{ContentSummary, Resumed, SwarmSummary};
pub use world::Series;
