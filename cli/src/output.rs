//! What `p2p-node` prints: lines in the reference's style
//! (`[15:04:35] [NETWORK] Peer bob connected ...`), or one JSON object per
//! event with a stable `type` field, plus progress bars on a terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Turns events into output lines, remembering peer names for display.
pub struct Console {
    style: Style,
    names: BTreeMap<PeerId, String>,
    multi: MultiProgress,
    bars: BTreeMap<(bool, TransferId), ProgressBar>,
    /// Last printed tenth of progress per transfer, when not drawing bars.
    tenths: BTreeMap<(bool, TransferId), u64>,
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
}

impl Console {
    /// A console printing in `style`.
    pub fn new(style: Style) -> Self {
        let multi = if style.bars {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Console {
            style,
            names: BTreeMap::new(),
            multi,
            bars: BTreeMap::new(),
            tenths: BTreeMap::new(),
        }
    }

    fn name(&self, id: &PeerId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    fn line(&self, category: &str, text: &str) {
        let line = format!("[{}] [{category}] {}", clock(), printable(text));
        if self.bars.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn json_line(&self, value: &impl Serialize) {
        if let Ok(s) = serde_json::to_string(value) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
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
            println!("  {:<16} {:<34} {:<22} {dir}", p.name, p.id, addr);
        }
    }

    /// A command could not be carried out.
    pub fn error(&self, text: &str) {
        if self.style.json {
            return self.json_line(&Reply::CommandError { error: text });
        }
        self.line("ERROR", text);
    }

    /// A plain informational line.
    pub fn info(&self, text: &str) {
        if self.style.json {
            return self.json_line(&Reply::Info { message: text });
        }
        self.line("SYSTEM", text);
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
        if let NetEvent::Core(Event::PeerConnected { peer, name, .. }) = event {
            self.names.insert(peer.clone(), name.clone());
        }
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
                _ => {}
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
