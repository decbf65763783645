//! What a run is: the scenario, the mesh size, the seed and the knobs, and
//! everything that is derived from the seed (turmoil's RNG and epoch, node
//! seeds, start times, bootstrap choices).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The port every simulated node listens on (each host has its own IP).
pub const PORT: u16 = 9000;

/// How many hosts act as bootstrap seeds (at most; fewer in tiny meshes).
pub const SEED_HOSTS: usize = 3;

/// A named scenario (`--scenario NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Peers start at seeded times and bootstrap to a few seeds; the run
    /// ends when the full mesh holds.
    Mesh,
    /// Once meshed, links between two halves are cut one by one, held cut,
    /// repaired one by one; the full mesh must come back within a bound.
    Partition,
    /// Seeded peers crash (some silently, behind a partition) and restart
    /// with a new id; dead ids must leave every table within the peer
    /// timeout and the restarted peers must rejoin. One file broadcast's
    /// sender is crashed while its frames are in flight. `max_peers`
    /// defaults to `peers - 1` here, so that the stale entry of a crashed
    /// peer makes nodes refuse its restarted self with `MAX_PEERS` until
    /// the entry times out.
    Churn,
    /// Seeded per-link latency and jitter, plus short link stalls: the mesh
    /// forms and no heartbeat times out.
    Latency,
    /// One peer broadcasts files while links flap (held or cut): everyone
    /// that stayed connected ends with identical bytes.
    File,
    /// Every peer broadcasts chat lines: each reaches every peer connected
    /// to its sender exactly once.
    Chat,
    /// A private mesh (needs `--network-key`) forms while four intruder
    /// hosts keep trying to get in: one without the key (plaintext), one
    /// with a wrong key, one replaying a handshake recorded from an honest
    /// dialer, and a rogue insider with the key claiming an honest node's
    /// id. Each must be refused with its typed reason, none may enter a
    /// peer table or reach an application (`intruder.rs`).
    Intruders,
    /// Peers start at seeded times with no bootstrap address at all and
    /// find each other only through a simulated LAN segment
    /// ([`crate::lan`]: mDNS-like announcements, a seeded share of them
    /// lost, `--lan-loss`), while a few hosts of another network announce
    /// on the same segment (`outsider.rs`). The mesh must form before the
    /// deadline and within [`SimConfig::lan_bound`] of the last start, and
    /// no member may dial or be dialed by an outsider.
    Lan,
    /// Content-addressed sharing (`swarm.rs`): a few holders share a
    /// seeded file and a directory tree of small files, one lying holder
    /// shares the same ids with corrupted chunks, partial holders start
    /// downloading first and are cut off from the complete holders for a
    /// while, and the other peers download both at seeded times while
    /// holders crash and restart, downloaders crash mid-download and
    /// resume from their partials (storage survives a restart here), and
    /// links flap. Every commit must hash to its id, the liar must be
    /// caught and never believed, every download must complete, some must
    /// draw from several peers, and a resumed download must fetch only
    /// what it lacked.
    Swarm,
}

impl Scenario {
    /// Every scenario, in the order the documentation lists them.
    pub const ALL: [Scenario; 9] = [
        Scenario::Mesh,
        Scenario::Partition,
        Scenario::Churn,
        Scenario::Latency,
        Scenario::File,
        Scenario::Chat,
        Scenario::Intruders,
        Scenario::Lan,
        Scenario::Swarm,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mesh => "mesh",
            Scenario::Partition => "partition",
            Scenario::Churn => "churn",
            Scenario::Latency => "latency",
            Scenario::File => "file",
            Scenario::Chat => "chat",
            Scenario::Intruders => "intruders",
            Scenario::Lan => "lan",
            Scenario::Swarm => "swarm",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// Deliberate bugs, only for showing that every check can fail (tests and
/// `--sabotage`). Never enabled by default. Each lives in the simulator
/// (a wrapped transport, storage, tap or host command loop), never in the
/// core or the driver, and fires one named check in one scenario: see
/// [`Sabotage::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sabotage {
    /// Every host's storage flips a byte of the transfers it writes until
    /// one of them is committed: a file is committed whose content does
    /// not match the file sent.
    CorruptCommit,
    /// The transport flips a byte of the first chat line it writes: a frame
    /// is received differently from how it was sent.
    CorruptWire,
    /// The transport reports the listening port as the local address of
    /// every dialed connection, so the two ends of a connection do not
    /// name the same socket pair.
    WrongLocalAddr,
    /// The tap loses every `DuplicateRetired` event: as a node that merges a
    /// simultaneous connect but keeps both connections established would
    /// look.
    LostRetire,
    /// One host reports its peer table with the connections of its peers
    /// rotated: every peer appears carried by another peer's connection.
    SwappedSnapshot,
    /// Every host's storage saves committed files one directory up.
    EscapeDownloads,
    /// One host sends its first chat line twice.
    ChatTwice,
    /// The tap loses every peer removal for silence, as a node that keeps
    /// timed-out peers in its table would look.
    HiddenTimeout,
    /// One host's transport silently discards everything it writes once
    /// the mesh has formed.
    MuteAfterMesh,
    /// The first seed host's (`n0`) listener never accepts a connection.
    DeafListener,
    /// Once a connection to a host is lost after the mesh formed, the
    /// transport refuses to dial that host again.
    StickyBlacklist,
    /// Storage `commit` fails for every received file.
    FailingCommit,
    /// One host's command loop loses its first chat line.
    LostChat,
    /// One host's peer table report leaves out its last peer.
    ShortSnapshot,
    /// Storage panics on the first write of a received file.
    PanicWrite,
    /// One host stops answering peer-table requests.
    MuteSnapshot,
    /// Every host's command loop waits 100 ms before sending each chat
    /// line: a slowdown that fails no check, only the chat latency metrics
    /// (one of [`Sabotage::SLOWDOWNS`], for `--compare`).
    SlowChat,
    /// The network key leaked to the wrong-key intruder: it completes the
    /// handshake with its own key pair and says a valid hello, so honest
    /// nodes admit it (an outsider in the peer tables).
    LeakedKey,
    /// One honest host (`n1`) relays an intruder's chat line to the mesh,
    /// as a node that let an intruder's frames reach its application and
    /// forwarded them would.
    RelayedIntruderChat,
    /// Honest listeners drop connections from intruder hosts before the
    /// node sees them: no intruder attempt is ever refused with a reason.
    DeafToIntruders,
    /// The simulated LAN loses every announcement: with no bootstrap, no
    /// node ever learns of another.
    DeafLan,
    /// The simulated LAN delivers every announcement a second after the
    /// lan scenario's bound: the mesh forms, but late.
    SlowLan,
    /// The simulated LAN hands every announcement over with the
    /// listener's own network fingerprint, so that members take the
    /// outsiders for their own network and dial them.
    BlindLan,
    /// Every host's storage flips a byte of the last chunk it writes into
    /// a partial download, once: the chunk verified on arrival, but the
    /// committed content no longer hashes to its id.
    SwarmFlipWrite,
    /// The tap loses every `ChunkRejected`: as a node that throws a bad
    /// chunk away without saying who sent it would look.
    SwarmHiddenReject,
    /// One downloader's storage fails every commit of a download.
    SwarmFailingCommit,
    /// Storage forgets the record of its partial downloads when it opens
    /// them again after a restart: what the previous life checkpointed is
    /// not claimed, so the resumed download starts from nothing.
    SwarmLostRecord,
    /// The tap keeps only the largest sender of every
    /// `DownloadComplete`'s `bytes_from`: as downloads that each drew from
    /// one peer would look.
    SwarmSingleSource,
}

impl Sabotage {
    /// Every planted bug, in the order `--list` shows them.
    pub const ALL: [Sabotage; 27] = [
        Sabotage::WrongLocalAddr,
        Sabotage::LostRetire,
        Sabotage::SwappedSnapshot,
        Sabotage::CorruptWire,
        Sabotage::CorruptCommit,
        Sabotage::EscapeDownloads,
        Sabotage::ChatTwice,
        Sabotage::HiddenTimeout,
        Sabotage::MuteAfterMesh,
        Sabotage::PanicWrite,
        Sabotage::MuteSnapshot,
        Sabotage::DeafListener,
        Sabotage::StickyBlacklist,
        Sabotage::FailingCommit,
        Sabotage::LostChat,
        Sabotage::ShortSnapshot,
        Sabotage::LeakedKey,
        Sabotage::RelayedIntruderChat,
        Sabotage::DeafToIntruders,
        Sabotage::DeafLan,
        Sabotage::SlowLan,
        Sabotage::BlindLan,
        Sabotage::SwarmFlipWrite,
        Sabotage::SwarmHiddenReject,
        Sabotage::SwarmFailingCommit,
        Sabotage::SwarmLostRecord,
        Sabotage::SwarmSingleSource,
    ];

    /// Planted slowdowns: they fail no check but make a metric worse, to
    /// show that `--compare` catches a regression.
    pub const SLOWDOWNS: [Sabotage; 1] = [Sabotage::SlowChat];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        self.about().0
    }

    /// The check it makes fail (one of [`crate::invariants::CHECKS`]), or
    /// `"none"` for a slowdown.
    pub fn check(self) -> &'static str {
        self.about().1
    }

    /// The scenario it fires in.
    pub fn scenario(self) -> Scenario {
        self.about().2
    }

    /// What the bug does.
    pub fn description(self) -> &'static str {
        self.about().3
    }

    fn about(self) -> (&'static str, &'static str, Scenario, &'static str) {
        use crate::invariants::*;
        match self {
            Sabotage::WrongLocalAddr => (
                "wrong-local-addr",
                ONE_CONNECTION_PER_PAIR,
                Scenario::Mesh,
                "the transport reports the listening port as a dialed connection's local address",
            ),
            Sabotage::LostRetire => (
                "lost-retire",
                ONE_CONNECTION_PER_PAIR,
                Scenario::Mesh,
                "the tap loses DuplicateRetired: both connections of a merge stay established (simultaneous connects need --peers 12 or more)",
            ),
            Sabotage::SwappedSnapshot => (
                "swapped-snapshot",
                PEER_TABLE_HANDSHAKED,
                Scenario::Mesh,
                "n1 reports each peer on another peer's connection",
            ),
            Sabotage::CorruptWire => (
                "corrupt-wire",
                FRAME_INTEGRITY,
                Scenario::Chat,
                "the transport flips a byte of the first chat line it writes",
            ),
            Sabotage::CorruptCommit => (
                "corrupt-commit",
                FILE_HASH,
                Scenario::File,
                "storage flips a byte of each transfer until one is committed",
            ),
            Sabotage::EscapeDownloads => (
                "escape-downloads",
                INSIDE_DOWNLOADS,
                Scenario::File,
                "storage saves committed files one directory up (../name)",
            ),
            Sabotage::ChatTwice => (
                "chat-twice",
                CHAT_EXACTLY_ONCE,
                Scenario::Chat,
                "n1 sends its first chat line twice",
            ),
            Sabotage::HiddenTimeout => (
                "hidden-timeout",
                STALE_PEER_REMOVED,
                Scenario::Churn,
                "the tap loses peer removals for silence (dead peers seem kept)",
            ),
            Sabotage::MuteAfterMesh => (
                "mute-after-mesh",
                NO_FALSE_TIMEOUT,
                Scenario::Latency,
                "n1's transport discards all it writes once the mesh formed",
            ),
            Sabotage::PanicWrite => (
                "panic-write",
                NO_PANIC,
                Scenario::File,
                "storage panics on the first write of a received file",
            ),
            Sabotage::MuteSnapshot => (
                "mute-snapshot",
                NO_PANIC,
                Scenario::Mesh,
                "n1 stops answering peer-table requests",
            ),
            Sabotage::DeafListener => (
                "deaf-listener",
                MESH_FORMED,
                Scenario::Mesh,
                "the first seed host's (n0) listener never accepts a connection",
            ),
            Sabotage::StickyBlacklist => (
                "sticky-blacklist",
                MESH_REFORMED,
                Scenario::Partition,
                "once the mesh formed, a host whose connection was lost is never dialed again",
            ),
            Sabotage::FailingCommit => (
                "failing-commit",
                TRANSFERS_COMPLETE,
                Scenario::File,
                "storage commit fails for every received file, so none arrives",
            ),
            Sabotage::LostChat => (
                "lost-chat",
                CHAT_DELIVERED,
                Scenario::Chat,
                "n1's command loop loses its first chat line",
            ),
            Sabotage::ShortSnapshot => (
                "short-snapshot",
                PEER_TABLE_MATCHES,
                Scenario::Mesh,
                "n1's peer-table report leaves out its last peer",
            ),
            Sabotage::LeakedKey => (
                "leaked-key",
                INTRUDER_KEPT_OUT,
                Scenario::Intruders,
                "the wrong-key intruder has the network key: honest nodes admit it",
            ),
            Sabotage::RelayedIntruderChat => (
                "relayed-intruder-chat",
                INTRUDER_NOTHING_DELIVERED,
                Scenario::Intruders,
                "n1 relays an intruder's chat line to the mesh",
            ),
            Sabotage::DeafToIntruders => (
                "deaf-to-intruders",
                INTRUDER_REFUSED,
                Scenario::Intruders,
                "honest listeners drop intruder connections unseen: none is refused with a reason",
            ),
            Sabotage::DeafLan => (
                "deaf-lan",
                CONVERGED_WITHOUT_BOOTSTRAP,
                Scenario::Lan,
                "the simulated LAN loses every announcement: nobody hears of anybody",
            ),
            Sabotage::SlowLan => (
                "slow-lan",
                CONVERGED_WITHIN_BOUND,
                Scenario::Lan,
                "the simulated LAN delivers every announcement 1 s after the bound",
            ),
            Sabotage::BlindLan => (
                "blind-lan",
                OTHER_NETWORK_NEVER_DIALED,
                Scenario::Lan,
                "the simulated LAN gives every announcement the listener's own network",
            ),
            Sabotage::SwarmFlipWrite => (
                "swarm-flip-write",
                SWARM_COMMIT_VERIFIED,
                Scenario::Swarm,
                "storage flips a byte of the last chunk written into a download, once",
            ),
            Sabotage::SwarmHiddenReject => (
                "swarm-hidden-reject",
                SWARM_LIAR_DETECTED,
                Scenario::Swarm,
                "the tap loses ChunkRejected: bad chunks are dropped without naming their sender",
            ),
            Sabotage::SwarmFailingCommit => (
                "swarm-failing-commit",
                SWARM_DOWNLOADS_COMPLETE,
                Scenario::Swarm,
                "one downloader's storage fails every commit of a download",
            ),
            Sabotage::SwarmLostRecord => (
                "swarm-lost-record",
                SWARM_RESUME_BOUNDED,
                Scenario::Swarm,
                "storage reopens partials without their record: a resumed download claims nothing",
            ),
            Sabotage::SwarmSingleSource => (
                "swarm-single-source",
                SWARM_MULTI_PEER,
                Scenario::Swarm,
                "the tap keeps only the largest sender of each DownloadComplete's bytes_from",
            ),
            Sabotage::SlowChat => (
                "slow-chat",
                "none",
                Scenario::Chat,
                "every host waits 100 ms before sending each chat line (chat latency metrics)",
            ),
        }
    }
}

impl FromStr for Sabotage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let every = || Sabotage::ALL.into_iter().chain(Sabotage::SLOWDOWNS);
        every().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<_> = every().map(|b| b.name()).collect();
            format!("unknown sabotage {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// One run: everything else derives from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// Number of simulated peers (hosts `n0`, `n1`, ...).
    pub peers: usize,
    /// The seed of everything.
    pub seed: u64,
    /// Every node timer (heartbeat, peer timeout, discovery, connect
    /// timeout, backoffs) is divided by this; 1 runs the deployed defaults.
    pub time_scale: u32,
    /// turmoil's tick: the granularity of simulated time.
    pub tick: Duration,
    /// `max_peers` of every node; `None`: the default (64), raised to
    /// `peers - 1` for larger meshes so that a full mesh is possible
    /// (exactly `peers - 1` in the churn scenario).
    pub max_peers: Option<usize>,
    /// Size of each file of the `file` and `churn` scenarios.
    pub file_size: usize,
    /// Chat lines each peer sends in the `chat` scenario.
    pub messages: usize,
    /// Peers start at seeded times within this window.
    pub start_window: Duration,
    /// The mesh must form within this long after the last peer started.
    pub mesh_deadline: Duration,
    /// Collect per-peer connection counts over time for a plot.
    pub plot: bool,
    /// A deliberate bug (tests only).
    pub sabotage: Option<Sabotage>,
    /// Print every node event (heartbeats excepted) and fault to stderr.
    pub log: bool,
    /// Private mode (`--network-key`): every node gets the PSK
    /// [`SimConfig::psk`] derives from this string, so every connection
    /// runs the Noise session layer and ids derive from each node's
    /// seeded static key. `None`: plaintext.
    pub network_key: Option<String>,
    /// `lan` scenario: the probability that one LAN announcement to one
    /// listener is lost.
    pub lan_loss: f64,
    /// `swarm` scenario: size in bytes of the shared file.
    pub swarm_size: usize,
    /// `swarm` scenario: files in the shared directory tree (0: no tree).
    pub swarm_files: usize,
    /// Chunk size of the manifests the nodes build (`swarm.chunk_size`;
    /// the deployed default is 256 KiB: smaller chunks make a download
    /// many requests, so that faults land inside downloads).
    pub chunk_size: u32,
}

/// The `lan` scenario's default announcement loss (`--lan-loss`).
pub const DEFAULT_LAN_LOSS: f64 = 0.2;

impl SimConfig {
    /// Defaults for `scenario` with `peers` peers and `seed`.
    pub fn new(scenario: Scenario, peers: usize, seed: u64) -> Self {
        SimConfig {
            scenario,
            peers,
            seed,
            time_scale: 6,
            tick: Duration::from_millis(2),
            max_peers: None,
            file_size: 256 * 1024,
            messages: 3,
            start_window: Duration::from_millis(1000),
            mesh_deadline: Duration::from_secs(30),
            plot: false,
            sabotage: None,
            log: false,
            network_key: None,
            lan_loss: DEFAULT_LAN_LOSS,
            swarm_size: 3 * 1024 * 1024,
            swarm_files: 40,
            chunk_size: 64 * 1024,
        }
    }

    /// The 32-byte network key (Noise PSK) of `--network-key`, if set:
    /// SHA-256 of a domain-separated string. The real CLI stretches its
    /// key with a slow KDF; the simulator derives it once per run, cheaply,
    /// so that a private mesh costs no more to simulate than a plaintext
    /// one (the core takes the 32 bytes as they are either way).
    pub fn psk(&self) -> Option<[u8; 32]> {
        self.network_key.as_deref().map(psk_of)
    }

    /// `max_peers` in force.
    pub fn effective_max_peers(&self) -> usize {
        let full = self.peers.saturating_sub(1);
        self.max_peers.unwrap_or(match self.scenario {
            Scenario::Churn => full,
            _ => 64.max(full),
        })
    }

    /// The `p2p-sim` arguments that replay this run exactly.
    pub fn replay_args(&self) -> String {
        let d = SimConfig::new(self.scenario, self.peers, self.seed);
        let mut s = format!(
            "--scenario {} --peers {} --seed {}",
            self.scenario, self.peers, self.seed
        );
        if self.time_scale != d.time_scale {
            s += &format!(" --time-scale {}", self.time_scale);
        }
        if self.tick != d.tick {
            s += &format!(" --tick-ms {}", self.tick.as_millis());
        }
        if let Some(m) = self.max_peers {
            s += &format!(" --max-peers {m}");
        }
        if self.file_size != d.file_size {
            s += &format!(" --file-size {}", self.file_size);
        }
        if self.messages != d.messages {
            s += &format!(" --messages {}", self.messages);
        }
        if self.start_window != d.start_window {
            s += &format!(" --start-window-ms {}", self.start_window.as_millis());
        }
        if self.mesh_deadline != d.mesh_deadline {
            s += &format!(" --mesh-deadline-ms {}", self.mesh_deadline.as_millis());
        }
        if let Some(k) = &self.network_key {
            s += &format!(" --network-key {}", shell_word(k));
        }
        if self.lan_loss != d.lan_loss {
            s += &format!(" --lan-loss {}", self.lan_loss);
        }
        if self.swarm_size != d.swarm_size {
            s += &format!(" --swarm-size {}", self.swarm_size);
        }
        if self.swarm_files != d.swarm_files {
            s += &format!(" --swarm-files {}", self.swarm_files);
        }
        if self.chunk_size != d.chunk_size {
            s += &format!(" --chunk-size {}", self.chunk_size);
        }
        if let Some(sab) = self.sabotage {
            s += &format!(" --sabotage {}", sab.name());
        }
        s
    }

    /// Checks the knobs; returns why they cannot run.
    pub fn validate(&self) -> Result<(), String> {
        if self.peers < 2 {
            return Err("--peers must be at least 2".into());
        }
        if self.peers > 2000 {
            return Err("--peers above 2000 is not supported (a full mesh's connections grow with the square of the host count)".into());
        }
        if self.time_scale == 0 {
            return Err("--time-scale must be at least 1".into());
        }
        if self.tick.is_zero() || self.tick > Duration::from_millis(100) {
            return Err("--tick-ms must be between 1 and 100".into());
        }
        if self.effective_max_peers() == 0 {
            return Err("--max-peers must be at least 1".into());
        }
        if self.file_size == 0 {
            return Err("--file-size must be at least 1".into());
        }
        if self.scenario == Scenario::Intruders && self.network_key.is_none() {
            return Err("--scenario intruders needs --network-key (a private mesh)".into());
        }
        if self.network_key.as_deref() == Some("") {
            return Err("--network-key must not be empty".into());
        }
        if !(0.0..=1.0).contains(&self.lan_loss) {
            return Err("--lan-loss must be between 0 and 1".into());
        }
        if !(4096..=16 * 1024 * 1024).contains(&self.chunk_size) {
            return Err("--chunk-size must be between 4096 and 16777216".into());
        }
        if self.scenario == Scenario::Swarm {
            if self.peers < crate::swarm::MIN_PEERS {
                return Err(format!(
                    "--scenario swarm needs --peers {} or more (two holders, a liar, a partial holder, two downloaders)",
                    crate::swarm::MIN_PEERS
                ));
            }
            let least = crate::swarm::MIN_CHUNKS * self.chunk_size as usize;
            if self.swarm_size < least {
                return Err(format!(
                    "--swarm-size must be at least {} chunks ({least} bytes at --chunk-size {}): downloads must be able to draw from several peers and ask the liar",
                    crate::swarm::MIN_CHUNKS,
                    self.chunk_size
                ));
            }
            if self.swarm_files > 10_000 {
                return Err("--swarm-files above 10000 is not supported".into());
            }
        }
        Ok(())
    }

    /// A node timer of the deployed defaults, scaled.
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        d / self.time_scale.max(1)
    }

    /// The protocol configuration of host `idx`.
    pub(crate) fn node_config(&self, idx: usize) -> p2p_core::Config {
        let mut c = p2p_core::Config::new(PORT);
        c.name = Some(host_name(idx));
        c.connections.max_peers = self.effective_max_peers();
        c.heartbeat.ping_interval = self.scaled(c.heartbeat.ping_interval);
        c.heartbeat.peer_timeout = self.scaled(c.heartbeat.peer_timeout);
        c.discovery.interval = self.scaled(c.discovery.interval);
        c.connections.connect_timeout = self.scaled(c.connections.connect_timeout);
        c.dialer.bootstrap_backoff = self.scaled(c.dialer.bootstrap_backoff);
        c.dialer.backoff = self.scaled(c.dialer.backoff);
        c.dialer.backoff_max = self.scaled(c.dialer.backoff_max);
        // Small chunks make a file many frames, so that faults land inside
        // transfers rather than between them.
        c.files.chunk_size = 16 * 1024;
        // Private mode: the static key is left to the node, which draws it
        // from its seed (so its id derives from the seed too).
        c.session.network_key = self.psk();
        // Swarm: its timers scaled like the others; small chunks, two
        // requests in flight per peer instead of 16 (turmoil's links have
        // no bandwidth: a download lasts as many round trips as it needs),
        // and a checkpoint every few chunks, so that a download is many
        // rounds of requests and a crash in its middle leaves a record to
        // resume.
        c.swarm.request_timeout = self.scaled(c.swarm.request_timeout);
        c.swarm.have_refresh = self.scaled(c.swarm.have_refresh);
        c.swarm.chunk_size = self.chunk_size;
        c.swarm.requests_per_peer = 2;
        c.swarm.checkpoint_every = 4;
        c
    }

    /// The driver configuration of host `idx` in its `boot`-th life.
    pub(crate) fn net_config(&self, idx: usize, boot: u32) -> p2p_net::NetConfig {
        let mut c = p2p_net::NetConfig::new(PORT);
        c.core = self.node_config(idx);
        c.seed = self.node_seed(idx, boot);
        c.slow_reader_timeout = self.scaled(c.slow_reader_timeout);
        c
    }

    /// Timers every scenario reasons with.
    pub(crate) fn timers(&self) -> Timers {
        let c = self.node_config(0);
        Timers {
            ping: c.heartbeat.ping_interval,
            peer_timeout: c.heartbeat.peer_timeout,
            discovery: c.discovery.interval,
            connect: c.connections.connect_timeout,
            backoff_max: c.dialer.backoff_max,
            dial_jitter: c.dialer.jitter,
        }
    }

    // ----- seed derivation: one independent stream per purpose -----

    /// turmoil's RNG (link latencies).
    pub(crate) fn turmoil_seed(&self) -> u64 {
        derive(self.seed, &[1])
    }

    /// turmoil's wall-clock epoch (never the real clock).
    pub(crate) fn epoch(&self) -> SystemTime {
        let offset = derive(self.seed, &[2]) % (20 * 365 * 24 * 3600);
        UNIX_EPOCH + Duration::from_secs(1_500_000_000 + offset)
    }

    /// Host `idx`'s node seed in its `boot`-th life: a restarted host gets a
    /// new id, as a restarted real node would.
    pub(crate) fn node_seed(&self, idx: usize, boot: u32) -> u64 {
        derive(self.seed, &[3, idx as u64, u64::from(boot)])
    }

    /// The scenario's own decisions (fault schedule).
    pub(crate) fn scenario_seed(&self) -> u64 {
        derive(self.seed, &[4])
    }

    /// Start times and bootstrap choices.
    pub(crate) fn layout_seed(&self) -> u64 {
        derive(self.seed, &[5])
    }

    /// Content of file `k`.
    pub(crate) fn file_seed(&self, k: usize) -> u64 {
        derive(self.seed, &[7, k as u64])
    }

    /// Intruder `k`'s decisions, keys and session randomness.
    pub(crate) fn intruder_seed(&self, k: usize) -> u64 {
        derive(self.seed, &[8, k as u64])
    }

    /// The simulated LAN's draws (losses, delays) for host `idx`'s
    /// announcements and queries in its `boot`-th life.
    pub(crate) fn lan_seed(&self, idx: usize, boot: u32) -> u64 {
        derive(self.seed, &[9, idx as u64, u64::from(boot)])
    }

    /// Outsider `k`'s (lan scenario) start time, node seed and LAN draws.
    pub(crate) fn outsider_seed(&self, k: usize) -> u64 {
        derive(self.seed, &[10, k as u64])
    }

    /// The swarm scenario's roles and the content of its shares (`k`: 0
    /// roles, 1 the file, 2 the tree).
    pub(crate) fn swarm_seed(&self, k: u64) -> u64 {
        derive(self.seed, &[11, k])
    }

    /// How long after the last member's start the `lan` scenario's mesh
    /// must have formed: the last starter's fourth announcement
    /// ([`crate::lan::ANNOUNCE_AT`], 7 s), the longest delivery delay
    /// (100 ms), the dial jitter (200 ms), one connect timeout (a dial and
    /// its handshake; 1.67 s at the default time scale) and 1 s of slack
    /// (ticks, a simultaneous connect resolved): 9.97 s by default.
    ///
    /// Why that suffices: a member joins the mesh once any one delivery
    /// between it and any other member gets through (its first
    /// announcement to each and their answers to its query: 2(n-1) at its
    /// start; n-1 more at each repeat); the peer it connects to then
    /// gossips its address to all of its own peers at once
    /// (docs/PROTOCOL.md §3.2), which dial it, and the rest follows
    /// through `PEERS`. By its fourth announcement a member had 5(n-1)
    /// independent chances, so it is still unheard with probability
    /// `loss^(5(n-1))`: 3.2e-4 for two peers at the default 0.2, below
    /// 1e-60 for twenty. Measured (20 peers, seeds 1..=10): the mesh forms
    /// 98–152 ms after the last start at losses 0 and 0.2, within 230 ms
    /// at 0.8 and 7.2 s at 0.95; at loss 1 nothing is ever heard.
    pub fn lan_bound(&self) -> Duration {
        let t = self.timers();
        let last = crate::lan::ANNOUNCE_AT[crate::lan::ANNOUNCE_AT.len() - 1];
        last + crate::lan::LanParams::with_loss(self.lan_loss).delay_max
            + t.dial_jitter
            + t.connect
            + Duration::from_secs(1)
    }
}

/// The scaled node timers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub(crate) ping: Duration,
    pub(crate) peer_timeout: Duration,
    pub(crate) discovery: Duration,
    pub(crate) connect: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) dial_jitter: Duration,
}

impl Timers {
    /// How long after faults stop the mesh may take to re-form: a stalled
    /// connection times out, the address's backoff runs out, a discovery
    /// round passes, a dial and handshake complete, with room to spare.
    pub(crate) fn heal_bound(&self) -> Duration {
        self.peer_timeout * 2 + self.backoff_max + self.discovery + self.connect * 2
    }
}

/// The turmoil host name of host `idx`.
pub fn host_name(idx: usize) -> String {
    format!("n{idx}")
}

/// The PSK of a `--network-key` string (see [`SimConfig::psk`]).
pub(crate) fn psk_of(key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"p2p-sim network key v1\0");
    h.update(key.as_bytes());
    h.finalize().into()
}

/// `s` as one shell word (quoted unless plain).
fn shell_word(s: &str) -> String {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/@%+=".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// splitmix64 over the seed and `parts`: independent, well-mixed streams
/// from one seed without any shared generator state.
pub(crate) fn derive(seed: u64, parts: &[u64]) -> u64 {
    let mut x = splitmix(seed ^ 0x5eed_5eed_5eed_5eed);
    for &p in parts {
        x = splitmix(x ^ splitmix(p.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    x
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_differ_and_repeat() {
        assert_eq!(derive(7, &[3, 1, 0]), derive(7, &[3, 1, 0]));
        assert_ne!(derive(7, &[3, 1, 0]), derive(7, &[3, 1, 1]));
        assert_ne!(derive(7, &[3, 1, 0]), derive(8, &[3, 1, 0]));
        assert_ne!(derive(7, &[1]), derive(7, &[2]));
    }

    #[test]
    fn replay_args_round_trip_the_knobs() {
        let mut c = SimConfig::new(Scenario::Churn, 12, 99);
        assert_eq!(c.replay_args(), "--scenario churn --peers 12 --seed 99");
        c.time_scale = 1;
        c.sabotage = Some(Sabotage::CorruptWire);
        assert_eq!(
            c.replay_args(),
            "--scenario churn --peers 12 --seed 99 --time-scale 1 --sabotage corrupt-wire"
        );
        c.sabotage = None;
        c.time_scale = 6;
        c.network_key = Some("k".into());
        assert_eq!(
            c.replay_args(),
            "--scenario churn --peers 12 --seed 99 --network-key k"
        );
        c.network_key = Some("a b".into());
        assert!(c.replay_args().ends_with("--network-key 'a b'"));
        assert_ne!(psk_of("k"), psk_of("l"));
        assert_eq!(c.node_config(0).session.network_key, Some(psk_of("a b")));
        assert_eq!("file".parse::<Scenario>(), Ok(Scenario::File));
        assert!("nope".parse::<Scenario>().is_err());
    }
}
