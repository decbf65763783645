//! What `p2p-node` prints: lines in the reference's style
//! (`[15:04:35] [NETWORK] Peer bob connected ...`), or one JSON object per
//! event with a stable `type` field, plus progress bars on a terminal.
//!
//! Everything goes through a [`Sink`]: stdout by default, the interactive
//! prompt's printer (which prints above the line being typed) when stdin is
//! a terminal, a buffer in tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use p2p_core::{
    CloseReason, ContentId, DisconnectReason, DownloadFailure, DownloadInfo, DownloadPhase, Event,
    FileFailure, Listing, PeerId, RejectReason, TransferId, UnshareReason,
};
use p2p_net::NetEvent;
use serde::Serialize;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// JSON lines instead of text.
    pub json: bool,
    /// Show heartbeats and peer-list traffic.
    pub debug: bool,
    /// Draw progress bars (stdout is a terminal and not JSON).
    pub bars: bool,
    /// For "(3/64 peers)".
    pub max_peers: usize,
}

/// Where the console's output goes.
pub trait Sink: Send {
    /// Prints `text`, one or more lines, without the final newline.
    fn print(&self, text: &str);
}

/// Standard output, flushed after each print.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl Sink for Stdout {
    fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Turns events into output lines, remembering peer names for display and
/// following the transfers and downloads in progress for `/status` and
/// `/downloads`.
pub struct Console {
    style: Style,
    sink: Box<dyn Sink>,
    names: BTreeMap<PeerId, String>,
    multi: MultiProgress,
    bars: BTreeMap<Tracked, ProgressBar>,
    /// Last printed tenth of progress per transfer or download, when not
    /// drawing bars.
    tenths: BTreeMap<Tracked, u64>,
    /// Transfers in progress (`true`: incoming).
    transfers: BTreeMap<(bool, TransferId), Transfer>,
    /// Downloads of content in progress, as their events told them.
    fetching: BTreeMap<ContentId, Fetch>,
    /// What this node shares, by `Shared` and `DownloadComplete` events
    /// (for the names of declined offers).
    shared: BTreeMap<ContentId, String>,
    /// Our address, id and name, from the `Listening` event.
    me: Option<(SocketAddr, PeerId, String)>,
}

/// What a progress bar or the progress lines follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tracked {
    /// A file transfer (`true`: incoming).
    File(bool, TransferId),
    /// A download of content.
    Download(ContentId),
}

/// A download of content in progress: its name and size once known, and
/// two samples of its verified bytes with the wall-clock time they were
/// seen, the first and the last, for its rate.
#[derive(Debug, Clone)]
struct Fetch {
    name: String,
    size: u64,
    first: (Instant, u64),
    last: (Instant, u64),
}

impl Fetch {
    /// Average verified bytes per second between the first and the last
    /// sample; `None` before two samples apart in time and bytes (bytes
    /// an earlier run left on disk are in the first, so they do not
    /// count).
    fn rate(&self) -> Option<f64> {
        let secs = self
            .last
            .0
            .saturating_duration_since(self.first.0)
            .as_secs_f64();
        let bytes = self.last.1.saturating_sub(self.first.1);
        (secs > 0.0 && bytes > 0).then(|| bytes as f64 / secs)
    }
}

/// Seconds to fetch `left` bytes at `rate`; only with a rate above 0.
fn eta(rate: Option<f64>, left: u64) -> Option<u64> {
    rate.filter(|r| *r > 0.0)
        .map(|r| (left as f64 / r).ceil() as u64)
}

/// A file transfer in progress, as its events told it.
#[derive(Debug, Clone)]
struct Transfer {
    name: String,
    /// The sender of an incoming file.
    from: Option<PeerId>,
    /// How many peers an outgoing file goes to.
    peers: Option<usize>,
    size: u64,
    /// Bytes received (incoming) or queued (outgoing) so far.
    done: u64,
    /// When its first event arrived.
    since: Instant,
}

/// What `/status` prints about one transfer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferStatus {
    /// `"in"` (receiving) or `"out"` (sending).
    pub direction: &'static str,
    /// The transfer's handle in this node.
    pub transfer: TransferId,
    /// The file name.
    pub name: String,
    /// Who sends it (incoming only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PeerId>,
    /// How many peers it goes to (outgoing only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<usize>,
    /// Its size in bytes.
    pub size: u64,
    /// Bytes received (incoming) or queued for the peers (outgoing) so far.
    pub bytes: u64,
    /// Average bytes per second since it started; `None` before any byte.
    pub rate_bps: Option<u64>,
    /// Seconds left at that rate; `None` without a rate.
    pub eta_s: Option<u64>,
}

/// What `/downloads` prints about one download: the core's account of it,
/// with the rate and ETA this console saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadStatus<'a> {
    /// The core's account (id, name, size, bytes, phase, peers, holders,
    /// bytes_from).
    #[serde(flatten)]
    pub info: &'a DownloadInfo,
    /// Verified bytes per second between the first and the last progress
    /// event of this run; `None` before there are two.
    pub rate_bps: Option<u64>,
    /// Seconds left at that rate; `None` without a rate.
    pub eta_s: Option<u64>,
}

/// What `/status` sums up of the downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DownloadTotals {
    /// Downloads in progress.
    pub count: usize,
    /// Bytes they hold, verified.
    pub bytes: u64,
    /// Bytes they will hold (sizes known so far).
    pub size: u64,
}

impl DownloadTotals {
    /// The totals of `downloads`.
    pub fn of(downloads: &[DownloadInfo]) -> DownloadTotals {
        DownloadTotals {
            count: downloads.len(),
            bytes: downloads.iter().map(|d| d.bytes).sum(),
            size: downloads.iter().map(|d| d.size).sum(),
        }
    }
}

/// What `/status` prints about one peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStatus<'a> {
    /// Its id.
    pub id: &'a PeerId,
    /// Its display name.
    pub name: &'a str,
    /// Its listening address, if known.
    pub addr: Option<&'a p2p_core::Addr>,
    /// `"out"` if we dialed it, `"in"` if it dialed us.
    pub direction: &'static str,
    /// The last heartbeat round trip, in milliseconds.
    pub rtt_ms: Option<u64>,
    /// Bytes received on its connection.
    pub bytes_in: u64,
    /// Bytes written on its connection.
    pub bytes_out: u64,
}

/// `1.5 MiB`, `512 B`: sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1 file`, `300 files`.
fn files_text(n: u32) -> String {
    if n == 1 {
        "1 file".to_owned()
    } else {
        format!("{n} files")
    }
}

/// `42 s`, `3 m 05 s`, `2 h 07 m`: durations for people.
fn human_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} m", s / 3600, s / 60 % 60),
    }
}

/// `HH:MM:SS` (UTC) of the wall clock.
pub fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// Longest line printed for people, in characters.
const MAX_PRINTED: usize = 2048;

/// What is printed for people: text from the network may carry terminal
/// escapes or be huge, so control characters become `\u{fffd}` and the
/// line is cut at [`MAX_PRINTED`] characters. (JSON output escapes them.)
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_PRINTED)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(MAX_PRINTED).is_some() {
        out.push('…');
    }
    out
}

fn close_text(r: &CloseReason) -> String {
    match r {
        CloseReason::Eof => "connection closed".into(),
        CloseReason::Io { error } => error.to_string(),
        CloseReason::SlowReader { queued } => format!("not reading ({queued} bytes queued)"),
        other => other.to_string(),
    }
}

fn failure_text(f: &FileFailure) -> String {
    match f {
        FileFailure::InvalidName { why } => format!("refused file name: {why}"),
        FileFailure::Malformed { why } => format!("malformed file frame: {why}"),
        FileFailure::TooLarge { size, limit } => {
            format!("{size} bytes is over the {limit}-byte limit")
        }
        FileFailure::TooManyTransfers { limit } => format!("more than {limit} transfers at once"),
        FileFailure::UnknownTransfer => "data for a transfer that is not running".into(),
        FileFailure::Overflow { size, received } => {
            format!("{received} bytes sent for a {size}-byte file")
        }
        FileFailure::SizeMismatch { size, received } => {
            format!("ended at {received} of {size} bytes")
        }
        FileFailure::HashMismatch { expected, actual } => {
            format!("checksum mismatch (expected {expected}, got {actual})")
        }
        FileFailure::Restarted => "restarted by the sender".into(),
        FileFailure::Idle { idle_ms } => format!("no data for {} s", idle_ms / 1000),
        FileFailure::PeerGone => "sender disconnected".into(),
        FileFailure::Storage { error } => format!("disk error: {error}"),
        FileFailure::Shutdown => "node shutting down".into(),
        other => format!("{other:?}"),
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply<'a> {
    Peers {
        peers: &'a [p2p_core::PeerInfo],
    },
    ChatSent {
        peers: usize,
    },
    CommandError {
        error: &'a str,
    },
    Info {
        message: &'a str,
    },
    /// Private mode is on (never the key, only the id it gives).
    Private {
        id: &'a PeerId,
        trusted: Option<usize>,
    },
    /// The answer to `/status`.
    Status {
        id: Option<&'a PeerId>,
        name: Option<&'a str>,
        listen: Option<String>,
        max_peers: usize,
        peers: Vec<PeerStatus<'a>>,
        transfers: Vec<TransferStatus>,
        /// Contents this node shares.
        shared: usize,
        downloads: DownloadTotals,
    },
    /// The answer to `/files`.
    Files {
        files: &'a [Listing],
    },
    /// The answer to `/downloads`.
    Downloads {
        downloads: Vec<DownloadStatus<'a>>,
    },
}

impl Console {
    /// A console printing in `style` on stdout.
    pub fn new(style: Style) -> Self {
        Console::with_sink(style, Box::new(Stdout))
    }

    /// A console printing in `style` to `sink`. Progress bars, if
    /// `style.bars`, are drawn by indicatif on the terminal itself: give a
    /// sink other than [`Stdout`] a style without them.
    pub fn with_sink(style: Style, sink: Box<dyn Sink>) -> Self {
        let multi = if style.bars {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Console {
            style,
            sink,
            names: BTreeMap::new(),
            multi,
            bars: BTreeMap::new(),
            tenths: BTreeMap::new(),
            transfers: BTreeMap::new(),
            fetching: BTreeMap::new(),
            shared: BTreeMap::new(),
            me: None,
        }
    }

    fn name(&self, id: &PeerId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    fn line(&self, category: &str, text: &str) {
        self.raw(&format!("[{}] [{category}] {}", clock(), printable(text)));
    }

    /// Prints `line` as it is: above the progress bars if there are some.
    fn raw(&self, line: &str) {
        if self.bars.is_empty() {
            self.sink.print(line);
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn json_line(&self, value: &impl Serialize) {
        if let Ok(s) = serde_json::to_string(value) {
            self.sink.print(&s);
        }
    }

    /// Prints the answer to `/peers`.
    pub fn peers(&self, peers: &[p2p_core::PeerInfo]) {
        if self.style.json {
            return self.json_line(&Reply::Peers { peers });
        }
        self.line(
            "SYSTEM",
            &format!("{}/{} peers", peers.len(), self.style.max_peers),
        );
        for p in peers {
            let addr = p.addr.as_ref().map_or("-".to_owned(), ToString::to_string);
            let dir = if p.outbound { "outbound" } else { "inbound" };
            let name = printable(&p.name);
            self.raw(&format!("  {name:<16} {:<34} {addr:<22} {dir}", p.id));
        }
    }

    /// The transfers in progress at `now`, incoming first, each in the
    /// order it started.
    pub fn transfers_at(&self, now: Instant) -> Vec<TransferStatus> {
        let incoming = self.transfers.iter().filter(|((i, _), _)| *i);
        let outgoing = self.transfers.iter().filter(|((i, _), _)| !*i);
        incoming
            .chain(outgoing)
            .map(|(&(incoming, id), t)| {
                let secs = now.saturating_duration_since(t.since).as_secs_f64();
                let rate = (t.done > 0 && secs > 0.0).then(|| t.done as f64 / secs);
                TransferStatus {
                    direction: if incoming { "in" } else { "out" },
                    transfer: id,
                    name: t.name.clone(),
                    from: t.from.clone(),
                    peers: t.peers,
                    size: t.size,
                    bytes: t.done,
                    rate_bps: rate.map(|r| r as u64),
                    eta_s: rate.map(|r| (t.size.saturating_sub(t.done) as f64 / r).ceil() as u64),
                }
            })
            .collect()
    }

    /// Prints the answer to `/status`: who we are, the peers with their
    /// traffic, the transfers in progress, how many contents we share
    /// and the downloads.
    pub fn status(&self, peers: &[p2p_core::PeerInfo], shared: usize, downloads: DownloadTotals) {
        self.status_at(peers, shared, downloads, Instant::now());
    }

    /// [`Console::status`] with the rates and ETAs of transfers taken at
    /// `now`.
    pub fn status_at(
        &self,
        peers: &[p2p_core::PeerInfo],
        shared: usize,
        downloads: DownloadTotals,
        now: Instant,
    ) {
        let transfers = self.transfers_at(now);
        let rows: Vec<PeerStatus<'_>> = peers
            .iter()
            .map(|p| PeerStatus {
                id: &p.id,
                name: &p.name,
                addr: p.addr.as_ref(),
                direction: if p.outbound { "out" } else { "in" },
                rtt_ms: p.rtt_ms,
                bytes_in: p.bytes_in,
                bytes_out: p.bytes_out,
            })
            .collect();
        let max = self.style.max_peers;
        if self.style.json {
            let me = self.me.as_ref();
            return self.json_line(&Reply::Status {
                id: me.map(|m| &m.1),
                name: me.map(|m| m.2.as_str()),
                listen: me.map(|m| m.0.to_string()),
                max_peers: max,
                peers: rows,
                transfers,
                shared,
                downloads,
            });
        }
        let head = match &self.me {
            Some((addr, id, name)) => format!("Node {name} ({id}) on {addr}"),
            None => "Node".to_owned(),
        };
        self.line("SYSTEM", &format!("{head}: {}/{max} peers", rows.len()));
        for p in &rows {
            let addr = p.addr.map_or("-".to_owned(), ToString::to_string);
            let rtt = p.rtt_ms.map_or("-".to_owned(), |ms| format!("{ms} ms"));
            self.raw(&format!(
                "  {:<16} {:<34} {addr:<22} {:<3} rtt {rtt:<7} in {:<10} out {}",
                printable(p.name),
                p.id,
                p.direction,
                human_bytes(p.bytes_in),
                human_bytes(p.bytes_out),
            ));
        }
        let mut swarm = Vec::new();
        if shared > 0 {
            let s = if shared == 1 { "" } else { "s" };
            swarm.push(format!("sharing {shared} content{s}"));
        }
        if downloads.count > 0 {
            swarm.push(format!(
                "downloads in progress: {} ({} of {})",
                downloads.count,
                human_bytes(downloads.bytes),
                human_bytes(downloads.size),
            ));
        }
        if !swarm.is_empty() {
            self.raw(&format!("  {}", swarm.join("; ")));
        }
        if transfers.is_empty() {
            return;
        }
        self.raw(&format!("  transfers in progress: {}", transfers.len()));
        for t in &transfers {
            let (arrow, who) = match (&t.from, t.peers) {
                (Some(from), _) => ("<-", format!("from {}", printable(&self.name(from)))),
                (None, Some(n)) => ("->", format!("to {n} peers")),
                (None, None) => ("->", String::new()),
            };
            let pct = t.bytes as f64 * 100.0 / t.size.max(1) as f64;
            let rate = t
                .rate_bps
                .map_or("-".to_owned(), |r| format!("{}/s", human_bytes(r)));
            let eta = t.eta_s.map_or("-".to_owned(), human_secs);
            self.raw(&format!(
                "  {arrow} {} {who}: {} of {} ({pct:.0}%), {rate}, eta {eta}",
                printable(&t.name),
                human_bytes(t.bytes),
                human_bytes(t.size),
            ));
        }
    }

    /// Prints the answer to `/files`: a row per content the mesh offers.
    pub fn files(&self, files: &[Listing]) {
        if self.style.json {
            return self.json_line(&Reply::Files { files });
        }
        if files.is_empty() {
            return self.line(
                "SWARM",
                "nothing is shared in the mesh yet (/share <path> shares)",
            );
        }
        let n = files.len();
        let s = if n == 1 { "" } else { "s" };
        self.line("SWARM", &format!("{n} content{s} in the mesh"));
        self.raw(&format!(
            "  {:<12}  {:<24} {:>10} {:>6} {:>9} {:>8}",
            "id", "name", "size", "files", "complete", "partial"
        ));
        for f in files {
            let ours = if f.ours { "  (ours)" } else { "" };
            self.raw(&format!(
                "  {}  {:<24} {:>10} {:>6} {:>9} {:>8}{ours}",
                f.id.short(),
                printable(&f.name),
                human_bytes(f.size),
                f.files,
                f.complete,
                f.partial,
            ));
        }
    }

    /// The downloads of `list` with the rates and ETAs this console saw.
    pub fn download_statuses<'a>(&self, list: &'a [DownloadInfo]) -> Vec<DownloadStatus<'a>> {
        list.iter()
            .map(|info| {
                let rate = self.fetching.get(&info.id).and_then(Fetch::rate);
                DownloadStatus {
                    info,
                    rate_bps: rate.map(|r| r as u64),
                    eta_s: eta(rate, info.size.saturating_sub(info.bytes)),
                }
            })
            .collect()
    }

    /// Prints the answer to `/downloads`: each download's name, id, phase,
    /// bytes, rate and ETA, and peers serving it now out of its holders.
    pub fn downloads(&self, list: &[DownloadInfo]) {
        let rows = self.download_statuses(list);
        if self.style.json {
            return self.json_line(&Reply::Downloads { downloads: rows });
        }
        if rows.is_empty() {
            return self.line("SWARM", "no downloads in progress");
        }
        let n = rows.len();
        let s = if n == 1 { "" } else { "s" };
        self.line("SWARM", &format!("{n} download{s} in progress"));
        for r in &rows {
            let d = r.info;
            let name = if d.name.is_empty() {
                "(name not known yet)".to_owned()
            } else {
                printable(&d.name)
            };
            let phase = match d.phase {
                DownloadPhase::Manifest => "asking for the manifest",
                DownloadPhase::Verifying => "verifying what is on disk",
                DownloadPhase::Fetching => "fetching",
                DownloadPhase::Committing => "committing",
                _ => "running",
            };
            let pct = d.bytes as f64 * 100.0 / d.size.max(1) as f64;
            let rate = r
                .rate_bps
                .map_or("-".to_owned(), |b| format!("{}/s", human_bytes(b)));
            let eta = r.eta_s.map_or("-".to_owned(), human_secs);
            self.raw(&format!(
                "  {name} {}… {phase}: {} of {} ({pct:.0}%), {rate}, eta {eta}, {} peers serving / {} holders",
                d.id.short(),
                human_bytes(d.bytes),
                human_bytes(d.size),
                d.peers,
                d.holders,
            ));
        }
    }

    /// `/get` was taken: the download is under way (its events follow).
    /// Text only: in JSON `download_started` says it.
    pub fn getting(&self, id: &ContentId) {
        if !self.style.json {
            self.line(
                "SWARM",
                &format!("Getting {}… from the peers that hold it", id.short()),
            );
        }
    }

    /// `/offer` was taken: `path` goes to `to` (a peer's name), or to every
    /// peer, once it is hashed. Text only: nothing comes back to the
    /// offerer but a decline.
    pub fn offering(&self, path: &std::path::Path, to: Option<&str>) {
        if !self.style.json {
            let to = to.map_or("every peer".to_owned(), |p| format!("peer {p}"));
            self.line("SWARM", &format!("Offering {} to {to}", path.display()));
        }
    }

    /// `/decline` was taken (the offerer is told). Text only.
    pub fn declined(&self, id: &ContentId) {
        if !self.style.json {
            self.line("SWARM", &format!("Declined the offer of {}…", id.short()));
        }
    }

    /// A command could not be carried out.
    pub fn error(&self, text: &str) {
        if self.style.json {
            return self.json_line(&Reply::CommandError { error: text });
        }
        self.line("ERROR", text);
    }

    /// A plain informational text: its first line with the time and
    /// category, the others as they are (each made printable).
    pub fn info(&self, text: &str) {
        if self.style.json {
            return self.json_line(&Reply::Info { message: text });
        }
        let mut lines = text.lines();
        self.line("SYSTEM", lines.next().unwrap_or_default());
        for l in lines {
            self.raw(&printable(l));
        }
    }

    /// The startup line of private mode: our key-derived id, and how many
    /// ids the trust file lists (`None`: no trust file).
    pub fn private(&self, id: &PeerId, trusted: Option<usize>) {
        if self.style.json {
            return self.json_line(&Reply::Private { id, trusted });
        }
        let trust = trusted.map_or(String::new(), |n| {
            format!(", only {n} trusted ids may connect")
        });
        self.line(
            "SYSTEM",
            &format!("Private mesh (encrypted, network key set): node id {id}{trust}"),
        );
    }

    /// A chat line went out to `peers` peers.
    pub fn chat_sent(&self, peers: usize) {
        if self.style.json {
            return self.json_line(&Reply::ChatSent { peers });
        }
        if peers == 0 {
            self.line("SYSTEM", "no peers connected: message not sent");
        }
    }

    /// Shows one event.
    pub fn event(&mut self, event: &NetEvent) {
        self.event_at(event, Instant::now());
    }

    /// [`Console::event`] for an event that arrived at `now` (the start of
    /// a transfer, for its rate).
    pub fn event_at(&mut self, event: &NetEvent, now: Instant) {
        if let NetEvent::Core(Event::PeerConnected { peer, name, .. }) = event {
            self.names.insert(peer.clone(), name.clone());
        }
        if let NetEvent::Listening { addr, id, name } = event {
            self.me = Some((*addr, id.clone(), name.clone()));
        }
        self.follow(event, now);
        let debug_only = matches!(event, NetEvent::Core(e) if e.is_debug());
        if debug_only && !self.style.debug {
            return;
        }
        if self.style.json {
            match event {
                NetEvent::Core(e) => self.json_event(e),
                other => self.json_line(other),
            }
        } else {
            self.human(event);
        }
        self.progress(event);
        match event {
            NetEvent::Core(Event::PeerDisconnected { peer, .. }) => {
                self.names.remove(peer);
            }
            // After it was shown, with its name.
            NetEvent::Core(
                Event::DownloadComplete { id, .. } | Event::DownloadFailed { id, .. },
            ) => {
                self.fetching.remove(id);
            }
            _ => {}
        }
    }

    /// A core event as JSON; failures also get their sentence, `message`,
    /// since their typed `kind`s (`{"kind":"session","detail":...}`) are
    /// for programs, not for people.
    fn json_event(&self, e: &Event) {
        let message = match e {
            Event::ProtocolError { error, .. } => error.to_string(),
            Event::DialFailed { reason, .. } => reason.to_string(),
            _ => return self.json_line(e),
        };
        match serde_json::to_value(e) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("message".into(), message.into());
                self.json_line(&map)
            }
            _ => self.json_line(e),
        }
    }

    /// Keeps `transfers` up to date.
    fn follow(&mut self, event: &NetEvent, now: Instant) {
        let NetEvent::Core(e) = event else { return };
        let new = |name: &str, from: Option<&PeerId>, peers: Option<usize>, size: u64| Transfer {
            name: name.to_owned(),
            from: from.cloned(),
            peers,
            size,
            done: 0,
            since: now,
        };
        match e {
            Event::FileStarted {
                transfer,
                from,
                name,
                size,
            } => {
                self.transfers
                    .insert((true, *transfer), new(name, Some(from), None, *size));
            }
            Event::FileSendStarted {
                transfer,
                name,
                size,
                peers,
            } => {
                self.transfers
                    .insert((false, *transfer), new(name, None, Some(*peers), *size));
            }
            Event::FileProgress {
                transfer,
                from,
                name,
                received,
                size,
            } => {
                self.transfers
                    .entry((true, *transfer))
                    .or_insert_with(|| new(name, Some(from), None, *size))
                    .done = *received;
            }
            Event::FileSendProgress {
                transfer,
                name,
                sent,
                size,
            } => {
                self.transfers
                    .entry((false, *transfer))
                    .or_insert_with(|| new(name, None, None, *size))
                    .done = *sent;
            }
            Event::FileReceived { transfer, .. }
            | Event::FileFailed {
                transfer: Some(transfer),
                ..
            } => {
                self.transfers.remove(&(true, *transfer));
            }
            Event::FileSent { transfer, .. } | Event::FileSendFailed { transfer, .. } => {
                self.transfers.remove(&(false, *transfer));
            }
            Event::Shared { id, name, .. } => {
                self.shared.insert(*id, name.clone());
            }
            Event::Unshared { id, .. } => {
                self.shared.remove(id);
            }
            Event::DownloadStarted {
                id,
                name,
                size,
                have,
                ..
            } => {
                // Bytes an earlier run left are the first sample: only
                // what arrives from now on makes the rate.
                self.fetching.insert(
                    *id,
                    Fetch {
                        name: name.clone(),
                        size: *size,
                        first: (now, *have),
                        last: (now, *have),
                    },
                );
            }
            Event::DownloadProgress {
                id, bytes, size, ..
            } => {
                let f = self.fetching.entry(*id).or_insert_with(|| Fetch {
                    name: String::new(),
                    size: *size,
                    first: (now, *bytes),
                    last: (now, *bytes),
                });
                f.last = (now, *bytes);
                f.size = *size;
            }
            Event::DownloadComplete { id, name, .. } => {
                self.shared.insert(*id, name.clone());
            }
            _ => {}
        }
    }

    fn progress(&mut self, event: &NetEvent) {
        let NetEvent::Core(e) = event else { return };
        let (key, name, done, size) = match e {
            Event::FileProgress {
                transfer,
                name,
                received,
                size,
                ..
            } => (Tracked::File(true, *transfer), name, *received, *size),
            Event::FileSendProgress {
                transfer,
                name,
                sent,
                size,
            } => (Tracked::File(false, *transfer), name, *sent, *size),
            Event::DownloadStarted {
                id,
                name,
                size,
                have,
                ..
            } => {
                // A resumed download reports the partial's verification
                // before it starts, under its id: its bar gets the name.
                let key = Tracked::Download(*id);
                if let Some(bar) = self.bars.get(&key) {
                    bar.set_prefix(format!("<- {}", printable(name)));
                }
                if *have == 0 {
                    return;
                }
                // What is on disk already: a bar that starts there, and no
                // progress lines for the tenths behind it.
                let tenth = have * 10 / (*size).max(1);
                let last = self.tenths.entry(key).or_insert(0);
                *last = tenth.max(*last);
                if self.style.bars && !self.style.json {
                    let bar = self.bar(key, name, *size);
                    bar.set_position(*have);
                    // The estimator has seen `have`: its rate starts
                    // from here, not from the bytes that were on disk.
                    bar.tick();
                    bar.reset_eta();
                }
                return;
            }
            Event::DownloadProgress {
                id, bytes, size, ..
            } => {
                let name = self.content_name(id);
                return self.show_progress(Tracked::Download(*id), &name, *bytes, *size);
            }
            Event::FileReceived { transfer, .. }
            | Event::FileFailed {
                transfer: Some(transfer),
                ..
            } => return self.end_progress(Tracked::File(true, *transfer)),
            Event::FileSent { transfer, .. } | Event::FileSendFailed { transfer, .. } => {
                return self.end_progress(Tracked::File(false, *transfer))
            }
            Event::DownloadComplete { id, .. } | Event::DownloadFailed { id, .. } => {
                return self.end_progress(Tracked::Download(*id))
            }
            _ => return,
        };
        let name = name.clone();
        self.show_progress(key, &name, done, size);
    }

    /// The bar of `key`, added if it has none.
    fn bar(&mut self, key: Tracked, name: &str, size: u64) -> &ProgressBar {
        self.bars.entry(key).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(size));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            let arrow = match key {
                Tracked::File(false, _) => "->",
                Tracked::File(true, _) | Tracked::Download(_) => "<-",
            };
            b.set_prefix(format!("{arrow} {}", printable(name)));
            b
        })
    }

    /// `done` of `size` bytes: a bar on a terminal, else a line per tenth.
    fn show_progress(&mut self, key: Tracked, name: &str, done: u64, size: u64) {
        if self.style.json {
            return;
        }
        if self.style.bars {
            self.bar(key, name, size).set_position(done);
        } else {
            let tenth = done * 10 / size.max(1);
            let last = self.tenths.entry(key).or_insert(0);
            if tenth > *last {
                *last = tenth;
                let pct = done as f64 * 100.0 / size.max(1) as f64;
                let category = match key {
                    Tracked::File(..) => "FILE",
                    Tracked::Download(_) => "SWARM",
                };
                self.line(
                    category,
                    &format!("{name} progress: {pct:.1}% ({done}/{size} bytes)"),
                );
            }
        }
    }

    /// A transfer or download ended: its bar goes.
    fn end_progress(&mut self, key: Tracked) {
        if let Some(b) = self.bars.remove(&key) {
            b.finish_and_clear();
        }
        self.tenths.remove(&key);
    }

    fn human(&self, event: &NetEvent) {
        let max = self.style.max_peers;
        match event {
            NetEvent::Listening { addr, id, name } => {
                self.line("SYSTEM", &format!("Node {name} ({id}) listening on {addr}"))
            }
            NetEvent::Stopped => self.line("SYSTEM", "Node stopped"),
            NetEvent::Core(e) => self.core(e, max),
        }
    }

    fn core(&self, e: &Event, max: usize) {
        match e {
            Event::FileSendStarted {
                name, size, peers, ..
            } => self.line(
                "SYSTEM",
                &format!("Starting file transfer: {name} ({size} bytes) to {peers} peers"),
            ),
            Event::FileSendProgress { .. } => {}
            Event::FileSent {
                name, size, peers, ..
            } => self.line(
                "FILE",
                &format!("Sent {name} ({size} bytes) to {peers} peers"),
            ),
            Event::FileSendFailed { name, error, .. } => {
                self.line("ERROR", &format!("Sending {name} failed: {error}"))
            }
            Event::PeerConnected {
                name,
                addr,
                outbound,
                peers,
                ..
            } => {
                let at = addr
                    .as_ref()
                    .map_or("unknown address".into(), ToString::to_string);
                let text = if *outbound {
                    format!("Connected to peer {name} at {at} ({peers}/{max} peers)")
                } else {
                    format!("Peer {name} connected from {at} ({peers}/{max} peers)")
                };
                self.line("NETWORK", &text);
            }
            Event::PeerDisconnected {
                name,
                reason,
                peers,
                ..
            } => match reason {
                DisconnectReason::Timeout { silent_ms } => self.line(
                    "MAINTENANCE",
                    &format!(
                        "Removed stale peer {name} (timeout, silent {} s) ({peers}/{max} peers)",
                        silent_ms / 1000
                    ),
                ),
                DisconnectReason::Closed { reason } => self.line(
                    "NETWORK",
                    &format!(
                        "Peer {name} disconnected: {} ({peers}/{max} peers)",
                        close_text(reason)
                    ),
                ),
                DisconnectReason::Protocol { error } => self.line(
                    "NETWORK",
                    &format!("Peer {name} dropped: {error} ({peers}/{max} peers)"),
                ),
                DisconnectReason::Left => self.line(
                    "NETWORK",
                    &format!("Peer {name} left ({peers}/{max} peers)"),
                ),
                // Our own shutdown: "Node stopped" says it.
                DisconnectReason::Shutdown => {}
                other => self.line(
                    "NETWORK",
                    &format!("Peer {name} disconnected: {other:?} ({peers}/{max} peers)"),
                ),
            },
            Event::Rejected {
                addr,
                peer,
                by_remote,
                reason,
                ..
            } => {
                let who = addr
                    .as_ref()
                    .map(ToString::to_string)
                    .or_else(|| peer.as_ref().map(ToString::to_string))
                    .unwrap_or_default();
                match (by_remote, reason) {
                    (true, RejectReason::MaxPeers) => {
                        self.line("NETWORK", &format!("{who} is full (MAX_PEERS)"))
                    }
                    (false, RejectReason::MaxPeers) => self.line(
                        "NETWORK",
                        &format!("Refused {who}: at {max} peers (MAX_PEERS)"),
                    ),
                    _ if self.style.debug => self.line("DEBUG", &format!("{who}: {reason:?}")),
                    _ => {}
                }
            }
            Event::DialFailed {
                addr,
                reason,
                failures,
            } if self.style.debug || *failures <= 1 => {
                self.line("NETWORK", &format!("Connection to {addr} failed: {reason}"));
            }
            Event::BootstrapSucceeded { addr, attempt } => self.line(
                "SYSTEM",
                &format!("Bootstrap via {addr} succeeded (try {attempt})"),
            ),
            Event::BootstrapFailed { addr, attempts } => self.line(
                "ERROR",
                &format!("Bootstrap via {addr} failed after {attempts} tries"),
            ),
            Event::PeersDiscovered { from, new, known } => {
                let via = from.as_ref().map_or("a full node".into(), |f| self.name(f));
                self.line(
                    "DISCOVERY",
                    &format!("Found {} peers via {via} (total known: {known})", new.len()),
                );
            }
            Event::Chat { name, text, .. } => self.line(name, text),
            Event::Bytes { from, data } => self.line(
                "BYTES",
                &format!("from {} ({} bytes)", self.name(from), data.len()),
            ),
            Event::FileStarted {
                from, name, size, ..
            } => self.line(
                "FILE",
                &format!("{} is sending {name} ({size} bytes)", self.name(from)),
            ),
            Event::FileProgress { .. } => {}
            Event::FileReceived {
                from,
                name,
                size,
                saved_as,
                ..
            } => self.line(
                "FILE",
                &format!(
                    "{} sent file: {name} ({size} bytes) -> {saved_as}",
                    self.name(from)
                ),
            ),
            Event::FileFailed {
                from,
                name,
                failure,
                ..
            } => self.line(
                "ERROR",
                &format!(
                    "File {name} from {} failed: {}",
                    self.name(from),
                    failure_text(failure)
                ),
            ),
            Event::ProtocolError {
                conn,
                peer,
                addr,
                error,
            } => {
                let who = peer
                    .as_ref()
                    .map(|p| self.name(p))
                    .or_else(|| addr.as_ref().map(ToString::to_string))
                    .unwrap_or_else(|| conn.to_string());
                self.line("ERROR", &format!("Closed connection {who}: {error}"));
            }
            Event::DuplicateRetired {
                peer,
                kept,
                retired,
            } => self.line(
                "DEBUG",
                &format!(
                    "Two connections to {}: keeping {kept}, retiring {retired}",
                    self.name(peer)
                ),
            ),
            Event::PingSent { peer } => {
                self.line("DEBUG", &format!("Sent PING to {}", self.name(peer)))
            }
            Event::PeerExtensions { peer, extensions } => self.line(
                "DEBUG",
                &format!("{} speaks {}", self.name(peer), extensions.join(" ")),
            ),
            Event::ExtensionIgnored { peer, why } => self.line(
                "DEBUG",
                &format!("Ignored an extension frame from {}: {why}", self.name(peer)),
            ),
            Event::PongReceived { peer, .. } => {
                self.line("DEBUG", &format!("Received PONG from {}", self.name(peer)))
            }
            Event::PeersRequested { peer } => {
                self.line("DEBUG", &format!("{} asked for peers", self.name(peer)))
            }
            Event::PeersReceived { peer, addrs } => self.line(
                "DEBUG",
                &format!(
                    "Received PEERS: {} from {}",
                    addrs.join(","),
                    self.name(peer)
                ),
            ),
            e if e.concern() == p2p_core::Concern::Swarm => self.swarm(e),
            Event::IndexReceived { peer, entries } => self.line(
                "DEBUG",
                &format!("{} offers {entries} contents", self.name(peer)),
            ),
            _ => {}
        }
    }

    /// The name of content being downloaded or shared here, else its short
    /// id.
    fn content_name(&self, id: &ContentId) -> String {
        self.fetching
            .get(id)
            .map(|f| f.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| self.shared.get(id).cloned())
            .unwrap_or_else(|| format!("{}…", id.short()))
    }

    /// The text of a swarm event (`Concern::Swarm`).
    fn swarm(&self, e: &Event) {
        match e {
            Event::Shared {
                id,
                name,
                size,
                files,
                ..
            } => self.line(
                "SWARM",
                &format!(
                    "Shared {name} ({}, {}) as {}… — full id {id}",
                    human_bytes(*size),
                    files_text(*files),
                    id.short(),
                ),
            ),
            Event::ShareFailed { path, error } => {
                self.line("ERROR", &format!("Cannot share {path}: {error}"))
            }
            Event::Unshared { id, name, reason } => {
                let why = match reason {
                    UnshareReason::Command => String::new(),
                    UnshareReason::Changed => {
                        ": a file of it changed or vanished (shared again if it is still there)"
                            .to_owned()
                    }
                    other => format!(": {other:?}"),
                };
                self.line(
                    "SWARM",
                    &format!("No longer sharing {name} ({}…){why}", id.short()),
                )
            }
            Event::Offer {
                id,
                from,
                name,
                size,
                files,
                accepted,
            } => {
                let what = format!(
                    "Peer {} offers {name} ({}, {})",
                    self.name(from),
                    human_bytes(*size),
                    files_text(*files)
                );
                let short = id.short();
                let text = if *accepted {
                    format!("{what}: accepted (--accept-offers), downloading")
                } else {
                    format!("{what}: /accept {short} or /decline {short}")
                };
                self.line("SWARM", &text)
            }
            Event::OfferDeclined { id, by } => self.line(
                "SWARM",
                &format!(
                    "Peer {} declined {} ({}…)",
                    self.name(by),
                    self.content_name(id),
                    id.short()
                ),
            ),
            Event::DownloadStarted {
                id,
                name,
                size,
                files,
                have,
            } => {
                let resuming = if *have > 0 {
                    format!(", resuming, {have} bytes already here")
                } else {
                    String::new()
                };
                self.line(
                    "SWARM",
                    &format!(
                        "Downloading {name} ({}, {}) {}…{resuming}",
                        human_bytes(*size),
                        files_text(*files),
                        id.short()
                    ),
                )
            }
            Event::DownloadProgress { .. } => {}
            Event::DownloadComplete {
                name,
                path,
                size,
                bytes_from,
                ..
            } => {
                let from = if bytes_from.is_empty() {
                    " (all of it was here already)".to_owned()
                } else {
                    let parts: Vec<String> = bytes_from
                        .iter()
                        .map(|(p, b)| format!("from {}: {}", self.name(p), human_bytes(*b)))
                        .collect();
                    format!(", {}", parts.join(", "))
                };
                self.line(
                    "SWARM",
                    &format!("Downloaded {name} ({}) -> {path}{from}", human_bytes(*size)),
                )
            }
            Event::DownloadFailed { id, error } => {
                let what = format!("Download of {} ({}…)", self.content_name(id), id.short());
                match error {
                    DownloadFailure::Cancelled => self.line(
                        "SWARM",
                        &format!("{what} cancelled; what it fetched is deleted"),
                    ),
                    DownloadFailure::Shutdown => self.line(
                        "SWARM",
                        &format!("{what} stopped with the node: the next run continues it"),
                    ),
                    other => self.line("ERROR", &format!("{what} failed: {other}")),
                }
            }
            Event::ChunkRejected { id, peer, chunk } => self.line(
                "SWARM",
                &format!(
                    "Peer {} sent a corrupt chunk ({chunk}) of {}: it is no longer asked for it",
                    self.name(peer),
                    self.content_name(id)
                ),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn network_text_cannot_drive_the_terminal() {
        assert_eq!(
            printable("hi \x1b[2J\x07there"),
            "hi \u{fffd}[2J\u{fffd}there"
        );
        assert_eq!(printable("a\rb\nc"), "a\u{fffd}b\u{fffd}c");
        let long = "x".repeat(5000);
        let p = printable(&long);
        assert_eq!(p.chars().count(), 2049);
        assert!(p.ends_with('…'));
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }
}

#[cfg(test)]
mod console_tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use p2p_core::{Addr, ConnId, DisconnectReason, Event, PeerId, PeerInfo, TransferId};
    use p2p_net::NetEvent;
    use serde_json::Value;

    use super::{Console, DownloadTotals, Sink, Style};

    /// Keeps what the console printed.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Sink for Capture {
        fn print(&self, text: &str) {
            self.0.lock().expect("not poisoned").push(text.to_owned());
        }
    }

    impl Capture {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().expect("not poisoned"))
        }
    }

    fn console(json: bool) -> (Console, Capture) {
        let cap = Capture::default();
        let style = Style {
            json,
            debug: false,
            bars: false,
            max_peers: 64,
        };
        (Console::with_sink(style, Box::new(cap.clone())), cap)
    }

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).expect("valid id")
    }

    fn bob() -> PeerInfo {
        PeerInfo {
            id: id("b0b"),
            name: "bob".into(),
            addr: Some(Addr::parse("127.0.0.1:8002").expect("valid addr")),
            outbound: true,
            conn: ConnId(1),
            extensions: Vec::new(),
            rtt_ms: Some(12),
            bytes_in: 2048,
            bytes_out: 300,
        }
    }

    /// alice listening, bob connected, a 1000-byte file coming from bob
    /// (400 bytes in) and a 50-byte one going out to 1 peer, all at `t0`.
    fn busy(c: &mut Console, t0: Instant) {
        let events = [
            NetEvent::Listening {
                addr: "127.0.0.1:8001".parse().expect("valid socket address"),
                id: id("a11ce"),
                name: "alice".into(),
            },
            NetEvent::Core(Event::PeerConnected {
                peer: id("b0b"),
                name: "bob".into(),
                addr: bob().addr,
                outbound: true,
                peers: 1,
            }),
            NetEvent::Core(Event::FileStarted {
                transfer: TransferId(7),
                from: id("b0b"),
                name: "big.bin".into(),
                size: 1000,
            }),
            NetEvent::Core(Event::FileProgress {
                transfer: TransferId(7),
                from: id("b0b"),
                name: "big.bin".into(),
                received: 400,
                size: 1000,
            }),
            NetEvent::Core(Event::FileSendStarted {
                transfer: TransferId(8),
                name: "note.txt".into(),
                size: 50,
                peers: 1,
            }),
        ];
        for e in &events {
            c.event_at(e, t0);
        }
    }

    #[test]
    fn status_json_is_one_object_with_peers_and_transfers() {
        let (mut c, cap) = console(true);
        let t0 = Instant::now();
        busy(&mut c, t0);
        cap.take();
        c.status_at(
            &[bob()],
            0,
            DownloadTotals::of(&[]),
            t0 + Duration::from_secs(2),
        );
        let out = cap.take();
        assert_eq!(out.len(), 1, "{out:?}");
        let v: Value = serde_json::from_str(&out[0]).expect("JSON");
        assert_eq!(v["type"], "status");
        assert_eq!(v["id"], "a11ce");
        assert_eq!(v["name"], "alice");
        assert_eq!(v["listen"], "127.0.0.1:8001");
        assert_eq!(v["max_peers"], 64);
        let peer = &v["peers"][0];
        let mut keys: Vec<_> = peer.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "addr",
                "bytes_in",
                "bytes_out",
                "direction",
                "id",
                "name",
                "rtt_ms"
            ]
        );
        assert_eq!(peer["id"], "b0b");
        assert_eq!(peer["name"], "bob");
        assert_eq!(peer["addr"], "127.0.0.1:8002");
        assert_eq!(peer["direction"], "out");
        assert_eq!(peer["rtt_ms"], 12);
        assert_eq!(
            (peer["bytes_in"].as_u64(), peer["bytes_out"].as_u64()),
            (Some(2048), Some(300))
        );
        let t = v["transfers"].as_array().expect("array");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["direction"], "in");
        assert_eq!(t[0]["transfer"], 7);
        assert_eq!(t[0]["name"], "big.bin");
        assert_eq!(t[0]["from"], "b0b");
        assert_eq!(
            (t[0]["bytes"].as_u64(), t[0]["size"].as_u64()),
            (Some(400), Some(1000))
        );
        // 400 bytes in 2 s, 600 to go.
        assert_eq!(t[0]["rate_bps"], 200);
        assert_eq!(t[0]["eta_s"], 3);
        assert_eq!(t[1]["direction"], "out");
        assert_eq!(t[1]["peers"], 1);
        assert!(t[1].get("from").is_none());
        // Nothing queued yet: no rate, no ETA.
        assert!(t[1]["rate_bps"].is_null() && t[1]["eta_s"].is_null());
        // Nothing shared or downloading: zeros, present all the same.
        assert_eq!(v["shared"], 0);
        assert_eq!(
            v["downloads"],
            serde_json::json!({"count": 0, "bytes": 0, "size": 0})
        );
    }

    #[test]
    fn status_text_lists_peers_then_transfers_until_they_end() {
        let (mut c, cap) = console(false);
        let t0 = Instant::now();
        busy(&mut c, t0);
        cap.take();
        c.status_at(
            &[bob()],
            0,
            DownloadTotals::of(&[]),
            t0 + Duration::from_secs(2),
        );
        let out = cap.take();
        assert_eq!(out.len(), 5, "{out:#?}");
        assert!(
            out[0].ends_with("[SYSTEM] Node alice (a11ce) on 127.0.0.1:8001: 1/64 peers"),
            "{}",
            out[0]
        );
        let row = &out[1];
        for part in [
            "bob",
            "b0b",
            "127.0.0.1:8002",
            " out ",
            "rtt 12 ms",
            "in 2.0 KiB",
            "out 300 B",
        ] {
            assert!(row.contains(part), "{part:?} not in {row:?}");
        }
        assert_eq!(out[2], "  transfers in progress: 2");
        assert_eq!(
            out[3],
            "  <- big.bin from bob: 400 B of 1000 B (40%), 200 B/s, eta 3 s"
        );
        assert_eq!(
            out[4],
            "  -> note.txt to 1 peers: 0 B of 50 B (0%), -, eta -"
        );

        for e in [
            Event::FileReceived {
                transfer: TransferId(7),
                from: id("b0b"),
                name: "big.bin".into(),
                size: 1000,
                sha256: "00".into(),
                saved_as: "big.bin".into(),
            },
            Event::FileSent {
                transfer: TransferId(8),
                name: "note.txt".into(),
                size: 50,
                peers: 1,
            },
        ] {
            c.event(&NetEvent::Core(e));
        }
        cap.take();
        c.status(&[], 0, DownloadTotals::of(&[]));
        let out = cap.take();
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(out[0].ends_with(": 0/64 peers"), "{}", out[0]);
    }

    #[test]
    fn a_peer_that_left_says_so_in_text_and_json() {
        let left = NetEvent::Core(Event::PeerDisconnected {
            peer: id("b0b"),
            name: "bob".into(),
            reason: DisconnectReason::Left,
            peers: 0,
        });
        let (mut c, cap) = console(false);
        c.event(&left);
        let out = cap.take();
        assert_eq!(out.len(), 1);
        assert!(
            out[0].ends_with("[NETWORK] Peer bob left (0/64 peers)"),
            "{}",
            out[0]
        );

        let (mut c, cap) = console(true);
        c.event(&left);
        let v: Value = serde_json::from_str(&cap.take()[0]).expect("JSON");
        assert_eq!(v["type"], "peer_disconnected");
        assert_eq!(v["reason"]["kind"], "left");
        assert_eq!(v["name"], "bob");
    }

    #[test]
    fn help_is_printed_one_line_per_command() {
        let (c, cap) = console(false);
        c.info(crate::command::HELP);
        let out = cap.take();
        assert_eq!(out.len(), crate::command::HELP.lines().count());
        assert!(out[0].ends_with("[SYSTEM] commands:"), "{}", out[0]);
        assert!(out.iter().all(|l| !l.contains('\u{fffd}')), "{out:#?}");
        assert!(out.iter().any(|l| l.starts_with("  /status ")));
    }

    // ----- content-addressed sharing -----

    fn cid(b: u8) -> p2p_core::ContentId {
        p2p_core::ContentId([b; 32])
    }

    fn core(c: &mut Console, e: Event, at: Instant) {
        c.event_at(&NetEvent::Core(e), at);
    }

    fn info(content: u8, bytes: u64, size: u64) -> p2p_core::DownloadInfo {
        p2p_core::DownloadInfo {
            id: cid(content),
            name: "big.iso".into(),
            size,
            bytes,
            phase: p2p_core::DownloadPhase::Fetching,
            peers: 2,
            requests: 8,
            holders: 3,
            bytes_from: [(id("b0b"), bytes)].into(),
        }
    }

    /// The download of `fetching` starts at `t0` with 100 bytes on disk.
    fn started(c: &mut Console, t0: Instant) {
        core(
            c,
            Event::DownloadStarted {
                id: cid(0xab),
                name: "big.iso".into(),
                size: 1000,
                files: 1,
                have: 100,
            },
            t0,
        );
    }

    /// A download of 1000 bytes that started with 100 on disk at `t0`,
    /// then reported 300 at t0 + 1 s and 500 at t0 + 2 s.
    fn fetching(c: &mut Console, t0: Instant) {
        started(c, t0);
        for (s, bytes) in [(1, 300), (2, 500)] {
            core(
                c,
                Event::DownloadProgress {
                    id: cid(0xab),
                    bytes,
                    size: 1000,
                    peers: 2,
                },
                t0 + Duration::from_secs(s),
            );
        }
    }

    #[test]
    fn the_rate_is_from_the_first_and_last_samples_and_an_eta_needs_one() {
        let (mut c, _cap) = console(true);
        let t0 = Instant::now();
        let infos = [info(0xab, 500, 1000), info(0xcd, 0, 1000)];
        assert!(c.download_statuses(&infos)[0].rate_bps.is_none());
        // Started: one sample, no rate.
        started(&mut c, t0);
        let st = c.download_statuses(&infos);
        assert_eq!((st[0].rate_bps, st[0].eta_s), (None, None));
        let (mut c, _cap) = console(true);
        fetching(&mut c, t0);
        let st = c.download_statuses(&infos);
        // 400 bytes in 2 s (the 100 from disk do not count); 500 to go.
        assert_eq!(st[0].rate_bps, Some(200));
        assert_eq!(st[0].eta_s, Some(3));
        // Never seen: no rate, no ETA.
        assert_eq!((st[1].rate_bps, st[1].eta_s), (None, None));
        // Stalled samples (no bytes between them): no rate, no ETA.
        let (mut c, _cap) = console(true);
        for s in [0, 5] {
            core(
                &mut c,
                Event::DownloadProgress {
                    id: cid(0xab),
                    bytes: 300,
                    size: 1000,
                    peers: 0,
                },
                t0 + Duration::from_secs(s),
            );
        }
        let st = c.download_statuses(&infos);
        assert_eq!((st[0].rate_bps, st[0].eta_s), (None, None));
        // A finished download is forgotten.
        let (mut c, _cap) = console(true);
        fetching(&mut c, t0);
        core(
            &mut c,
            Event::DownloadFailed {
                id: cid(0xab),
                error: p2p_core::DownloadFailure::Cancelled,
            },
            t0,
        );
        assert!(c.download_statuses(&infos)[0].rate_bps.is_none());
    }

    /// The text line (after the time and category) each event prints.
    fn text_of(c: &mut Console, cap: &Capture, e: Event) -> Vec<String> {
        core(c, e, Instant::now());
        cap.take()
            .into_iter()
            .map(|l| l.split_once("] ").map_or(l.clone(), |(_, r)| r.to_owned()))
            .collect()
    }

    #[test]
    fn swarm_events_in_text() {
        let (mut c, cap) = console(false);
        core(
            &mut c,
            Event::PeerConnected {
                peer: id("b0b"),
                name: "bob".into(),
                addr: bob().addr,
                outbound: true,
                peers: 1,
            },
            Instant::now(),
        );
        cap.take();
        let full = cid(0xab).to_hex();
        let shared = Event::Shared {
            id: cid(0xab),
            name: "big.iso".into(),
            size: 3 << 20,
            files: 1,
            path: "/data/big.iso".into(),
        };
        assert_eq!(
            text_of(&mut c, &cap, shared),
            [format!(
                "[SWARM] Shared big.iso (3.0 MiB, 1 file) as abababababab… — full id {full}"
            )]
        );
        let offer = |accepted| Event::Offer {
            id: cid(0xcd),
            from: id("b0b"),
            name: "photos".into(),
            size: 2048,
            files: 300,
            accepted,
        };
        assert_eq!(
            text_of(&mut c, &cap, offer(false)),
            ["[SWARM] Peer bob offers photos (2.0 KiB, 300 files): /accept cdcdcdcdcdcd or /decline cdcdcdcdcdcd"]
        );
        assert_eq!(
            text_of(&mut c, &cap, offer(true)),
            ["[SWARM] Peer bob offers photos (2.0 KiB, 300 files): accepted (--accept-offers), downloading"]
        );
        assert_eq!(
            text_of(
                &mut c,
                &cap,
                Event::OfferDeclined {
                    id: cid(0xab),
                    by: id("b0b")
                }
            ),
            ["[SWARM] Peer bob declined big.iso (abababababab…)"]
        );
        let started = |have| Event::DownloadStarted {
            id: cid(0xcd),
            name: "photos".into(),
            size: 2048,
            files: 300,
            have,
        };
        assert_eq!(
            text_of(&mut c, &cap, started(0)),
            ["[SWARM] Downloading photos (2.0 KiB, 300 files) cdcdcdcdcdcd…"]
        );
        assert_eq!(
            text_of(&mut c, &cap, started(1024)),
            ["[SWARM] Downloading photos (2.0 KiB, 300 files) cdcdcdcdcdcd…, resuming, 1024 bytes already here"]
        );
        // Progress: a line per tenth, from where it resumed.
        let progress = |bytes| Event::DownloadProgress {
            id: cid(0xcd),
            bytes,
            size: 2048,
            peers: 1,
        };
        assert!(text_of(&mut c, &cap, progress(1100)).is_empty());
        assert_eq!(
            text_of(&mut c, &cap, progress(1300)),
            ["[SWARM] photos progress: 63.5% (1300/2048 bytes)"]
        );
        let complete = Event::DownloadComplete {
            id: cid(0xcd),
            name: "photos".into(),
            path: "/dl/photos-(1)".into(),
            size: 2048,
            bytes_from: [(id("b0b"), 1024), (id("ca12"), 1024)].into(),
        };
        assert_eq!(
            text_of(&mut c, &cap, complete),
            ["[SWARM] Downloaded photos (2.0 KiB) -> /dl/photos-(1), from bob: 1.0 KiB, from ca12: 1.0 KiB"]
        );
        let failed = |error| Event::DownloadFailed {
            id: cid(0xef),
            error,
        };
        assert_eq!(
            text_of(
                &mut c,
                &cap,
                failed(p2p_core::DownloadFailure::BadManifest("too big".into()))
            ),
            ["[ERROR] Download of efefefefefef… (efefefefefef…) failed: bad manifest: too big"]
        );
        assert_eq!(
            text_of(&mut c, &cap, failed(p2p_core::DownloadFailure::Shutdown)),
            ["[SWARM] Download of efefefefefef… (efefefefefef…) stopped with the node: the next run continues it"]
        );
        assert_eq!(
            text_of(
                &mut c,
                &cap,
                Event::ChunkRejected {
                    id: cid(0xab),
                    peer: id("b0b"),
                    chunk: 7
                }
            ),
            ["[SWARM] Peer bob sent a corrupt chunk (7) of big.iso: it is no longer asked for it"]
        );
        assert_eq!(
            text_of(
                &mut c,
                &cap,
                Event::ShareFailed {
                    path: "/nope".into(),
                    error: p2p_core::IoError::new(
                        std::io::ErrorKind::NotFound,
                        "No such file or directory (os error 2)"
                    ),
                }
            ),
            ["[ERROR] Cannot share /nope: No such file or directory (os error 2)"]
        );
        assert_eq!(
            text_of(
                &mut c,
                &cap,
                Event::Unshared {
                    id: cid(0xab),
                    name: "big.iso".into(),
                    reason: p2p_core::UnshareReason::Changed
                }
            ),
            ["[SWARM] No longer sharing big.iso (abababababab…): a file of it changed or vanished (shared again if it is still there)"]
        );
        // Debug only.
        assert!(text_of(
            &mut c,
            &cap,
            Event::IndexReceived {
                peer: id("b0b"),
                entries: 3
            }
        )
        .is_empty());
    }

    #[test]
    fn a_resumed_download_verifies_under_its_id_then_goes_on_by_name() {
        let (mut c, cap) = console(false);
        let progress = |bytes| Event::DownloadProgress {
            id: cid(0xab),
            bytes,
            size: 1000,
            peers: 0,
        };
        // The partial is read back and verified before the start.
        assert_eq!(
            text_of(&mut c, &cap, progress(300)),
            ["[SWARM] abababababab… progress: 30.0% (300/1000 bytes)"]
        );
        let started = Event::DownloadStarted {
            id: cid(0xab),
            name: "big.iso".into(),
            size: 1000,
            files: 1,
            have: 400,
        };
        assert_eq!(
            text_of(&mut c, &cap, started),
            ["[SWARM] Downloading big.iso (1000 B, 1 file) abababababab…, resuming, 400 bytes already here"]
        );
        assert!(text_of(&mut c, &cap, progress(450)).is_empty());
        assert_eq!(
            text_of(&mut c, &cap, progress(500)),
            ["[SWARM] big.iso progress: 50.0% (500/1000 bytes)"]
        );
    }

    #[test]
    fn swarm_events_in_json_are_the_core_events_as_they_are() {
        let (mut c, cap) = console(true);
        let mut json = |e: Event| -> Value {
            let want = serde_json::to_value(&e).expect("serializes");
            core(&mut c, e, Instant::now());
            let out = cap.take();
            assert_eq!(out.len(), 1, "{out:?}");
            let v: Value = serde_json::from_str(&out[0]).expect("JSON");
            assert_eq!(v, want);
            v
        };
        let full = cid(0xab).to_hex();
        let v = json(Event::Shared {
            id: cid(0xab),
            name: "big.iso".into(),
            size: 10,
            files: 1,
            path: "/data/big.iso".into(),
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "shared", "id": full, "name": "big.iso",
                "size": 10, "files": 1, "path": "/data/big.iso"})
        );
        let v = json(Event::Offer {
            id: cid(0xab),
            from: id("b0b"),
            name: "big.iso".into(),
            size: 10,
            files: 1,
            accepted: false,
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "offer", "id": full, "from": "b0b",
                "name": "big.iso", "size": 10, "files": 1, "accepted": false})
        );
        let v = json(Event::OfferDeclined {
            id: cid(0xab),
            by: id("b0b"),
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "offer_declined", "id": full, "by": "b0b"})
        );
        let v = json(Event::DownloadStarted {
            id: cid(0xab),
            name: "big.iso".into(),
            size: 10,
            files: 1,
            have: 4,
        });
        assert_eq!(v["type"], "download_started");
        assert_eq!(v["have"], 4);
        let v = json(Event::DownloadProgress {
            id: cid(0xab),
            bytes: 5,
            size: 10,
            peers: 2,
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "download_progress", "id": full,
                "bytes": 5, "size": 10, "peers": 2})
        );
        let v = json(Event::DownloadComplete {
            id: cid(0xab),
            name: "big.iso".into(),
            path: "/dl/big.iso".into(),
            size: 10,
            bytes_from: [(id("b0b"), 6), (id("ca12"), 4)].into(),
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "download_complete", "id": full,
                "name": "big.iso", "path": "/dl/big.iso", "size": 10,
                "bytes_from": {"b0b": 6, "ca12": 4}})
        );
        let v = json(Event::DownloadFailed {
            id: cid(0xab),
            error: p2p_core::DownloadFailure::Cancelled,
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "download_failed", "id": full, "error": "cancelled"})
        );
        let v = json(Event::ChunkRejected {
            id: cid(0xab),
            peer: id("b0b"),
            chunk: 3,
        });
        assert_eq!(v["type"], "chunk_rejected");
        let v = json(Event::ShareFailed {
            path: "/nope".into(),
            error: p2p_core::IoError::new(std::io::ErrorKind::NotFound, "gone"),
        });
        assert_eq!(
            v,
            serde_json::json!({"type": "share_failed", "path": "/nope",
                "error": {"kind": "not_found", "detail": "gone"}})
        );
        let v = json(Event::Unshared {
            id: cid(0xab),
            name: "big.iso".into(),
            reason: p2p_core::UnshareReason::Command,
        });
        assert_eq!(v["reason"], "command");
        // Debug-level: only with --debug (`json` is done with `c`).
        core(
            &mut c,
            Event::IndexReceived {
                peer: id("b0b"),
                entries: 3,
            },
            Instant::now(),
        );
        assert!(cap.take().is_empty());
    }

    fn listings() -> Vec<p2p_core::Listing> {
        vec![
            p2p_core::Listing {
                id: cid(0xab),
                name: "big.iso".into(),
                size: 3 << 20,
                files: 1,
                complete: 0,
                partial: 0,
                ours: true,
            },
            p2p_core::Listing {
                id: cid(0xcd),
                name: "photos".into(),
                size: 2048,
                files: 300,
                complete: 2,
                partial: 1,
                ours: false,
            },
        ]
    }

    #[test]
    fn command_acknowledgements_are_text_only() {
        let (c, cap) = console(false);
        c.getting(&cid(0xab));
        c.offering(std::path::Path::new("/data/big.iso"), Some("bob"));
        c.offering(std::path::Path::new("/data/big.iso"), None);
        c.declined(&cid(0xab));
        let out: Vec<String> = cap
            .take()
            .into_iter()
            .map(|l| l.split_once("] ").map(|(_, r)| r.to_owned()).unwrap_or(l))
            .collect();
        assert_eq!(
            out,
            [
                "[SWARM] Getting abababababab… from the peers that hold it",
                "[SWARM] Offering /data/big.iso to peer bob",
                "[SWARM] Offering /data/big.iso to every peer",
                "[SWARM] Declined the offer of abababababab…",
            ]
        );
        // In JSON the events that follow say it.
        let (c, cap) = console(true);
        c.getting(&cid(0xab));
        c.offering(std::path::Path::new("/data/big.iso"), None);
        c.declined(&cid(0xab));
        assert!(cap.take().is_empty());
    }

    #[test]
    fn files_is_a_table_or_one_object() {
        let (c, cap) = console(false);
        c.files(&listings());
        let out = cap.take();
        assert_eq!(out.len(), 4, "{out:#?}");
        assert!(
            out[0].ends_with("[SWARM] 2 contents in the mesh"),
            "{}",
            out[0]
        );
        let cols: Vec<&str> = out[1].split_whitespace().collect();
        assert_eq!(cols, ["id", "name", "size", "files", "complete", "partial"]);
        let row: Vec<&str> = out[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "abababababab",
                "big.iso",
                "3.0",
                "MiB",
                "1",
                "0",
                "0",
                "(ours)"
            ]
        );
        let row: Vec<&str> = out[3].split_whitespace().collect();
        assert_eq!(
            row,
            ["cdcdcdcdcdcd", "photos", "2.0", "KiB", "300", "2", "1"]
        );
        c.files(&[]);
        assert!(cap.take()[0].contains("nothing is shared in the mesh yet"));

        let (c, cap) = console(true);
        c.files(&listings());
        let out = cap.take();
        assert_eq!(out.len(), 1);
        let v: Value = serde_json::from_str(&out[0]).expect("JSON");
        assert_eq!(v["type"], "files");
        let f = &v["files"];
        assert_eq!(f.as_array().map(Vec::len), Some(2));
        assert_eq!(
            f[1],
            serde_json::json!({"id": cid(0xcd).to_hex(), "name": "photos",
                "size": 2048, "files": 300, "complete": 2, "partial": 1, "ours": false})
        );
    }

    #[test]
    fn downloads_show_phase_bytes_rate_eta_and_peers() {
        let t0 = Instant::now();
        let list = [info(0xab, 500, 1000)];
        let (mut c, cap) = console(false);
        fetching(&mut c, t0);
        cap.take();
        c.downloads(&list);
        let out = cap.take();
        assert_eq!(out.len(), 2, "{out:#?}");
        assert!(
            out[0].ends_with("[SWARM] 1 download in progress"),
            "{}",
            out[0]
        );
        assert_eq!(
            out[1],
            "  big.iso abababababab… fetching: 500 B of 1000 B (50%), 200 B/s, eta 3 s, 2 peers serving / 3 holders"
        );
        c.downloads(&[]);
        assert!(cap.take()[0].ends_with("no downloads in progress"));

        let (mut c, cap) = console(true);
        fetching(&mut c, t0);
        cap.take();
        c.downloads(&list);
        let v: Value = serde_json::from_str(&cap.take()[0]).expect("JSON");
        assert_eq!(v["type"], "downloads");
        assert_eq!(
            v["downloads"][0],
            serde_json::json!({"id": cid(0xab).to_hex(), "name": "big.iso",
                "size": 1000, "bytes": 500, "phase": "fetching", "peers": 2, "requests": 8,
                "holders": 3, "bytes_from": {"b0b": 500}, "rate_bps": 200, "eta_s": 3})
        );
    }

    #[test]
    fn status_counts_shared_content_and_downloads() {
        let list = [info(0xab, 500, 1000), info(0xcd, 0, 3 << 20)];
        let totals = DownloadTotals::of(&list);
        assert_eq!(
            (totals.count, totals.bytes, totals.size),
            (2, 500, 1000 + (3 << 20))
        );
        let (c, cap) = console(false);
        c.status(&[bob()], 3, totals);
        let out = cap.take();
        assert_eq!(out.len(), 3, "{out:#?}");
        assert_eq!(
            out[2],
            "  sharing 3 contents; downloads in progress: 2 (500 B of 3.0 MiB)"
        );
        c.status(&[], 1, DownloadTotals::of(&[]));
        assert_eq!(cap.take()[1], "  sharing 1 content");
        c.status(&[], 0, DownloadTotals::of(&list[..1]));
        assert_eq!(
            cap.take()[1],
            "  downloads in progress: 1 (500 B of 1000 B)"
        );
        let (c, cap) = console(true);
        c.status(&[bob()], 3, totals);
        let v: Value = serde_json::from_str(&cap.take()[0]).expect("JSON");
        assert_eq!(v["shared"], 3);
        assert_eq!(
            v["downloads"],
            serde_json::json!({"count": 2, "bytes": 500, "size": 1000 + (3 << 20)})
        );
    }
}
