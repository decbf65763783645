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
    CloseReason, DisconnectReason, Event, FileFailure, PeerId, RejectReason, TransferId,
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
/// following the transfers in progress for `/status`.
pub struct Console {
    style: Style,
    sink: Box<dyn Sink>,
    names: BTreeMap<PeerId, String>,
    multi: MultiProgress,
    bars: BTreeMap<(bool, TransferId), ProgressBar>,
    /// Last printed tenth of progress per transfer, when not drawing bars.
    tenths: BTreeMap<(bool, TransferId), u64>,
    /// Transfers in progress, keyed like `bars` (`true`: incoming).
    transfers: BTreeMap<(bool, TransferId), Transfer>,
    /// Our address, id and name, from the `Listening` event.
    me: Option<(SocketAddr, PeerId, String)>,
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
    /// traffic, the transfers in progress.
    pub fn status(&self, peers: &[p2p_core::PeerInfo]) {
        self.status_at(peers, Instant::now());
    }

    /// [`Console::status`] with the rates and ETAs of transfers taken at
    /// `now`.
    pub fn status_at(&self, peers: &[p2p_core::PeerInfo], now: Instant) {
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
        if let NetEvent::Core(Event::PeerDisconnected { peer, .. }) = event {
            self.names.remove(peer);
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
            _ => {}
        }
    }

    fn progress(&mut self, event: &NetEvent) {
        let (key, name, done, size) = match event {
            NetEvent::Core(Event::FileProgress {
                transfer,
                name,
                received,
                size,
                ..
            }) => ((true, *transfer), name, *received, *size),
            NetEvent::Core(Event::FileSendProgress {
                transfer,
                name,
                sent,
                size,
            }) => ((false, *transfer), name, *sent, *size),
            NetEvent::Core(
                Event::FileReceived { transfer, .. }
                | Event::FileFailed {
                    transfer: Some(transfer),
                    ..
                },
            ) => {
                if let Some(b) = self.bars.remove(&(true, *transfer)) {
                    b.finish_and_clear();
                }
                self.tenths.remove(&(true, *transfer));
                return;
            }
            NetEvent::Core(
                Event::FileSent { transfer, .. } | Event::FileSendFailed { transfer, .. },
            ) => {
                if let Some(b) = self.bars.remove(&(false, *transfer)) {
                    b.finish_and_clear();
                }
                self.tenths.remove(&(false, *transfer));
                return;
            }
            _ => return,
        };
        if self.style.json {
            return;
        }
        if self.style.bars {
            let bar = self.bars.entry(key).or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(size));
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                b.set_style(style);
                b.set_prefix(format!("{} {name}", if key.0 { "<-" } else { "->" }));
                b
            });
            bar.set_position(done);
        } else {
            let tenth = done * 10 / size.max(1);
            let last = self.tenths.entry(key).or_insert(0);
            if tenth > *last {
                *last = tenth;
                let pct = done as f64 * 100.0 / size.max(1) as f64;
                self.line(
                    "FILE",
                    &format!("{name} progress: {pct:.1}% ({done}/{size} bytes)"),
                );
            }
        }
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

    use super::{Console, Sink, Style};

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
        c.status_at(&[bob()], t0 + Duration::from_secs(2));
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
        // Nothing is shared in this codebase: no such section.
        assert!(v.get("shared").is_none());
    }

    #[test]
    fn status_text_lists_peers_then_transfers_until_they_end() {
        let (mut c, cap) = console(false);
        let t0 = Instant::now();
        busy(&mut c, t0);
        cap.take();
        c.status_at(&[bob()], t0 + Duration::from_secs(2));
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
        c.status(&[]);
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
}
