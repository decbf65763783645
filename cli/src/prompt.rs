//! The interactive prompt of `p2p-node`, used when stdin and stdout are a
//! terminal: line editing, history kept between runs, Tab completion of
//! commands, peers, content ids and paths, and the node's output printed
//! above the line being typed.
//!
//! rustyline's `readline` blocks, so the editor runs on a thread of its
//! own and sends each line over a channel to the node's async loop, as the
//! plain stdin reader does. All output while the prompt runs goes through
//! [`PrinterSink`] (rustyline's external printer), which clears the line
//! being typed, prints, and draws the line again.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustyline::completion::{unescape, Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use p2p_core::{ContentId, DownloadInfo, Event, Listing};

use crate::command::{self, Command, COMMANDS};
use crate::output::Sink;

/// The peers the completer offers after `/msg ` and `/sendto `, as
/// `(name, id)`; the node's loop keeps it up to date.
pub type SharedPeers = Arc<Mutex<Vec<(String, String)>>>;

/// The content the completer offers after `/get`, `/accept`, `/decline`,
/// `/unshare` and `/cancel`; the node's loop keeps it up to date.
pub type SharedContent = Arc<Mutex<ContentList>>;

/// One content id the node learned of, with what it may be completed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownContent {
    /// The id.
    pub id: ContentId,
    /// File or directory name (from the network: shown made printable).
    pub name: String,
    /// Shared by this node (`/unshare`).
    pub ours: bool,
    /// Held by a peer (`/get`).
    pub in_mesh: bool,
    /// Offered to us and not answered (`/accept`, `/decline`).
    pub offered: bool,
    /// Being downloaded (`/cancel`).
    pub downloading: bool,
}

/// What the node last learned of content, from its events and from the
/// answers to `/files` and `/downloads`, as the peer list is kept from
/// connect and disconnect events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentList(Vec<KnownContent>);

impl ContentList {
    /// The entries, in the order they were learned.
    pub fn entries(&self) -> &[KnownContent] {
        &self.0
    }

    /// The entry of `id`, added with no flags and `name` if missing.
    fn entry(&mut self, id: &ContentId, name: &str) -> &mut KnownContent {
        let at = match self.0.iter().position(|c| c.id == *id) {
            Some(at) => at,
            None => {
                self.0.push(KnownContent {
                    id: *id,
                    name: String::new(),
                    ours: false,
                    in_mesh: false,
                    offered: false,
                    downloading: false,
                });
                self.0.len() - 1
            }
        };
        let e = &mut self.0[at];
        if !name.is_empty() {
            e.name = name.to_owned();
        }
        e
    }

    /// Entries that nothing can be completed for any more go.
    fn prune(&mut self) {
        self.0
            .retain(|c| c.ours || c.in_mesh || c.offered || c.downloading);
    }

    /// Follows an event of the node.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Shared { id, name, .. } => self.entry(id, name).ours = true,
            Event::Unshared { id, .. } => self.entry(id, "").ours = false,
            Event::Offer {
                id, name, accepted, ..
            } => {
                let c = self.entry(id, name);
                c.in_mesh = true;
                c.offered = !accepted;
            }
            Event::DownloadStarted { id, name, .. } => {
                let c = self.entry(id, name);
                c.downloading = true;
                c.offered = false;
            }
            Event::DownloadComplete { id, name, .. } => {
                let c = self.entry(id, name);
                c.downloading = false;
                c.ours = true;
            }
            Event::DownloadFailed { id, .. } => self.entry(id, "").downloading = false,
            _ => return,
        }
        self.prune();
    }

    /// `/decline` of `id` was taken.
    pub fn declined(&mut self, id: &ContentId) {
        self.entry(id, "").offered = false;
        self.prune();
    }

    /// The answer to `/files`: all the mesh offers and what we share, so
    /// what it does not list is neither.
    pub fn files(&mut self, files: &[Listing]) {
        for c in &mut self.0 {
            c.ours = false;
            c.in_mesh = false;
        }
        for f in files {
            let c = self.entry(&f.id, &f.name);
            c.ours = f.ours;
            c.in_mesh = f.complete + f.partial > 0;
        }
        self.prune();
    }

    /// The answer to `/downloads`: all the downloads in progress.
    pub fn downloads(&mut self, downloads: &[DownloadInfo]) {
        for c in &mut self.0 {
            c.downloading = false;
        }
        for d in downloads {
            self.entry(&d.id, &d.name).downloading = true;
        }
        self.prune();
    }
}

/// What a command completes content for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// `/get`: held by a peer or offered, not ours.
    Get,
    /// `/unshare`.
    Ours,
    /// `/accept`, `/decline`.
    Offered,
    /// `/cancel`.
    Downloading,
}

impl Wanted {
    fn of(word: &str) -> Option<Wanted> {
        match word {
            "/get" => Some(Wanted::Get),
            "/unshare" => Some(Wanted::Ours),
            "/accept" | "/decline" => Some(Wanted::Offered),
            "/cancel" => Some(Wanted::Downloading),
            _ => None,
        }
    }

    fn takes(self, c: &KnownContent) -> bool {
        match self {
            Wanted::Get => (c.in_mesh || c.offered) && !c.ours && !c.downloading,
            Wanted::Ours => c.ours,
            Wanted::Offered => c.offered,
            Wanted::Downloading => c.downloading,
        }
    }
}

/// What the prompt shows.
pub const PROMPT: &str = "> ";

/// Lines of history kept.
const HISTORY_LINES: usize = 1000;

/// Where the history lives: `history` beside the identity file (by default
/// `.p2p/history`), so that each node folder keeps its own.
pub fn history_path(identity: &Path) -> PathBuf {
    match identity.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("history"),
        _ => PathBuf::from("history"),
    }
}

/// The completer and hinter of the prompt.
pub struct NodeHelper {
    peers: SharedPeers,
    content: SharedContent,
    files: FilenameCompleter,
}

/// A hint after the cursor: the rest of a command word and its usage; only
/// the word is inserted when the hint is accepted (Right arrow), never the
/// `<placeholders>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHint {
    display: String,
    /// How many bytes of `display` are the word (and its space).
    word: usize,
}

impl Hint for CommandHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        (self.word > 0).then(|| &self.display[..self.word])
    }
}

/// The argument of a command as `(start, text up to the cursor)`: after the
/// command word and its spaces. `None` while the word is being typed.
fn argument(before: &str) -> Option<(&str, usize)> {
    let word_end = before.find(char::is_whitespace)?;
    let rest = &before[word_end..];
    let start = word_end + (rest.len() - rest.trim_start().len());
    Some((&before[..word_end], start))
}

/// Escapes what a double-quoted word needs escaped for rustyline's
/// filename completer (the inverse of its `unescape` with `\`).
fn escape_in_quotes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    out.push('"');
    for c in raw.chars() {
        if matches!(c, '"' | '$' | '\\' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl NodeHelper {
    /// A helper completing peers from `peers` and content ids from
    /// `content`.
    pub fn new(peers: SharedPeers, content: SharedContent) -> Self {
        NodeHelper {
            peers,
            content,
            files: FilenameCompleter::new(),
        }
    }

    /// The completions of `line` with the cursor at `pos` (a byte offset):
    /// where the replaced text starts, and the candidates.
    pub fn complete_at(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let none = (pos, Vec::new());
        let Some(before) = line.get(..pos) else {
            return none;
        };
        if !before.starts_with('/') {
            return none; // chat: nothing to complete
        }
        let Some((word, arg)) = argument(before) else {
            let pairs = COMMANDS
                .iter()
                .filter(|(w, _)| w.starts_with(before))
                .map(|(w, usage)| Pair {
                    display: (*w).to_owned(),
                    replacement: if usage.is_empty() {
                        (*w).to_owned()
                    } else {
                        format!("{w} ")
                    },
                })
                .collect();
            return (0, pairs);
        };
        let typed = &before[arg..];
        match word {
            "/msg" | "/sendto" => match argument(typed) {
                None => (arg, self.peer_candidates(typed)),
                Some((_, path)) if word == "/sendto" => self.complete_path(before, arg + path),
                Some(_) => none, // the text of /msg
            },
            "/send" | "/share" | "/offer" => self.complete_path(before, arg),
            "/get" => match argument(typed) {
                None => (arg, self.content_candidates(typed, Wanted::Get, " ")),
                Some((_, dir)) => self.complete_path(before, arg + dir),
            },
            w => match Wanted::of(w) {
                // One id and nothing after it.
                Some(want) if argument(typed).is_none() => {
                    (arg, self.content_candidates(typed, want, ""))
                }
                _ => none,
            },
        }
    }

    /// Content ids for `want` whose id starts with `prefix` (either case),
    /// or whose name does; the full id is inserted, then `after`. Shown as
    /// the 12 digits `/files` prints and the name.
    fn content_candidates(&self, prefix: &str, want: Wanted, after: &str) -> Vec<Pair> {
        let list = match self.content.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let hex = prefix.to_ascii_lowercase();
        let mut out: Vec<Pair> = list
            .entries()
            .iter()
            .filter(|c| want.takes(c))
            .filter(|c| {
                c.id.to_hex().starts_with(&hex)
                    || (!prefix.is_empty() && c.name.starts_with(prefix))
            })
            .map(|c| {
                let name: String = c
                    .name
                    .chars()
                    .map(|ch| if ch.is_control() { '\u{fffd}' } else { ch })
                    .collect();
                Pair {
                    display: format!("{} {name}", c.id.short()),
                    replacement: format!("{}{after}", c.id.to_hex()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.display.cmp(&b.display));
        out
    }

    /// Peers whose name or id starts with `prefix`. Names come from the
    /// network: one that could not be typed back as a single word, or
    /// that holds control characters, is left out (its id is offered).
    fn peer_candidates(&self, prefix: &str) -> Vec<Pair> {
        let peers = match self.peers.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut words: Vec<String> = Vec::new();
        for (name, id) in &peers {
            let typable =
                !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            // A name two peers share finds neither: offer only the ids.
            let unique = peers.iter().filter(|(n, _)| n == name).count() == 1;
            if typable && unique {
                words.push(name.clone());
            }
            words.push(id.clone());
        }
        words.sort();
        words.dedup();
        words
            .into_iter()
            .filter(|w| w.starts_with(prefix))
            .map(|w| Pair {
                replacement: format!("{w} "),
                display: w,
            })
            .collect()
    }

    /// Paths completing `line[start..]`, a path as the command language
    /// reads it: the rest of the line, raw (spaces included, no quotes or
    /// escapes). rustyline's filename completer is given it as one
    /// double-quoted word, and its answers are unescaped back.
    fn complete_path(&self, line: &str, start: usize) -> (usize, Vec<Pair>) {
        let quoted = escape_in_quotes(&line[start..]);
        match self.files.complete_path(&quoted, quoted.len()) {
            // The replaced text starts right after the opening quote.
            Ok((1, pairs)) => (
                start,
                pairs
                    .into_iter()
                    .map(|p| Pair {
                        replacement: unescape(&p.replacement, Some('\\')).into_owned(),
                        display: p.display,
                    })
                    .collect(),
            ),
            _ => (line.len(), Vec::new()),
        }
    }

    /// The hint for `line` with the cursor at `pos`: the rest of the one
    /// command a `/prefix` can be, then its usage; or the usage alone right
    /// after a command word and a space.
    pub fn hint_at(&self, line: &str, pos: usize) -> Option<CommandHint> {
        if pos != line.len() || !line.starts_with('/') {
            return None;
        }
        match argument(line) {
            None => {
                let mut found = COMMANDS.iter().filter(|(w, _)| w.starts_with(line));
                let (w, usage) = found.next()?;
                if found.next().is_some() {
                    return None;
                }
                let rest = &w[line.len()..];
                if usage.is_empty() {
                    return (!rest.is_empty()).then(|| CommandHint {
                        display: rest.to_owned(),
                        word: rest.len(),
                    });
                }
                Some(CommandHint {
                    display: format!("{rest} {usage}"),
                    word: rest.len() + 1,
                })
            }
            Some((word, arg)) if arg == line.len() => {
                let (_, usage) = COMMANDS.iter().find(|(w, _)| *w == word)?;
                (!usage.is_empty()).then(|| CommandHint {
                    display: (*usage).to_owned(),
                    word: 0,
                })
            }
            Some(_) => None,
        }
    }
}

impl Completer for NodeHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.complete_at(line, pos))
    }
}

impl Hinter for NodeHelper {
    type Hint = CommandHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<CommandHint> {
        self.hint_at(line, pos)
    }
}

impl Highlighter for NodeHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dim, so that a hint does not read as typed text.
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for NodeHelper {}

impl Helper for NodeHelper {}

/// The console's output while the prompt runs: printed above the line
/// being typed, which is then drawn again as it was. Once the prompt is
/// closed ([`Prompt::close`]), straight to stdout.
pub struct PrinterSink {
    printer: Mutex<Box<dyn ExternalPrinter + Send>>,
    closed: Arc<AtomicBool>,
}

impl Sink for PrinterSink {
    fn print(&self, text: &str) {
        if self.closed.load(Ordering::SeqCst) {
            // The editor may never draw again: what it was handed would be
            // lost when the process exits.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
            return;
        }
        let mut printer = match self.printer.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = printer.print(format!("{text}\n"));
    }
}

/// The running prompt: its editor thread.
pub struct Prompt {
    thread: std::thread::JoinHandle<()>,
    closed: Arc<AtomicBool>,
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
}

impl Prompt {
    /// Starts the editor on its own thread, with its history loaded from
    /// `history` (whose folder is created if missing). Returns the prompt,
    /// the sink the console must print through from now on, and the lines
    /// typed. The channel closes when the user leaves: Ctrl-D on an empty
    /// line, or after a `/quit` line (which is sent). Ctrl-C clears the
    /// line being typed.
    ///
    /// Fails (and the caller falls back to plain lines) when the terminal
    /// cannot do it, e.g. `TERM=dumb`.
    pub fn start(
        history: PathBuf,
        peers: SharedPeers,
        content: SharedContent,
    ) -> Result<(Prompt, PrinterSink, mpsc::Receiver<String>), String> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .max_history_size(HISTORY_LINES)
            .map_err(|e| e.to_string())?
            .history_ignore_dups(true)
            .map_err(|e| e.to_string())?
            .auto_add_history(false)
            .build();
        let mut editor: Editor<NodeHelper, DefaultHistory> =
            Editor::with_config(config).map_err(|e| e.to_string())?;
        editor.set_helper(Some(NodeHelper::new(peers, content)));
        let printer = editor
            .create_external_printer()
            .map_err(|e| format!("no external printer: {e}"))?;
        if let Some(dir) = history.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        match editor.load_history(&history) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", history.display())),
        }
        #[cfg(unix)]
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
        let (tx, rx) = mpsc::channel(16);
        let thread = std::thread::Builder::new()
            .name("prompt".into())
            .spawn(move || edit(editor, &history, &tx))
            .map_err(|e| format!("cannot start the prompt: {e}"))?;
        let closed = Arc::new(AtomicBool::new(false));
        Ok((
            Prompt {
                thread,
                closed: closed.clone(),
                #[cfg(unix)]
                saved,
            },
            PrinterSink {
                printer: Mutex::new(Box::new(printer)),
                closed,
            },
            rx,
        ))
    }

    /// Ends prompt mode when the node stops: if the editor still waits for
    /// a line (the node was stopped by a signal, or stopped by itself),
    /// puts the terminal back as it was before the prompt started and
    /// moves to a fresh line; from then on the console prints straight to
    /// stdout. Dropping the prompt does the same.
    pub fn close(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) || self.thread.is_finished() {
            return; // readline returned: the terminal is as it was
        }
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
        // Bracketed paste off (rustyline turned it on), and a fresh line
        // below the one that was being typed.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?2004l\n");
        let _ = out.flush();
    }
}

impl Drop for Prompt {
    fn drop(&mut self) {
        self.close();
    }
}

/// The editor thread: reads lines until Ctrl-D, `/quit` or an error.
fn edit(mut editor: Editor<NodeHelper, DefaultHistory>, history: &Path, tx: &mpsc::Sender<String>) {
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    // Written at once: a node stopped by a signal keeps it.
                    let _ = editor.append_history(history);
                }
                let quit = matches!(command::parse(&line), Ok(Command::Quit));
                if tx.blocking_send(line).is_err() || quit {
                    return;
                }
            }
            // Ctrl-C: the line is cleared, the prompt comes back.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => return,
            Err(e) => {
                eprintln!("p2p-node: the prompt stopped: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(peers: &[(&str, &str)]) -> NodeHelper {
        let list = peers
            .iter()
            .map(|(n, i)| ((*n).to_owned(), (*i).to_owned()))
            .collect();
        NodeHelper::new(Arc::new(Mutex::new(list)), SharedContent::default())
    }

    /// The line after Tab with a single candidate, or the candidates.
    fn complete(h: &NodeHelper, line: &str) -> (String, Vec<String>) {
        let (start, pairs) = h.complete_at(line, line.len());
        let shown: Vec<String> = pairs.iter().map(|p| p.display.clone()).collect();
        let done = match pairs.as_slice() {
            [one] => format!("{}{}", &line[..start], one.replacement),
            _ => line.to_owned(),
        };
        (done, shown)
    }

    #[test]
    fn commands_complete_with_a_space_when_they_take_arguments() {
        let h = helper(&[]);
        assert_eq!(complete(&h, "/co").0, "/connect ");
        assert_eq!(complete(&h, "/pe").0, "/peers");
        assert_eq!(complete(&h, "/st").0, "/status");
        assert_eq!(
            complete(&h, "/s").1,
            ["/send", "/sendto", "/status", "/share"].map(String::from)
        );
        assert_eq!(complete(&h, "/g").0, "/get ");
        assert_eq!(complete(&h, "/f").0, "/files");
        assert_eq!(
            complete(&h, "/d").1,
            ["/discover", "/decline", "/downloads"]
        );
        assert_eq!(complete(&h, "/un").0, "/unshare ");
        assert_eq!(complete(&h, "/ca").0, "/cancel ");
        assert_eq!(complete(&h, "/").1.len(), COMMANDS.len());
        assert!(complete(&h, "/zz").1.is_empty());
        // Chat text is not completed.
        assert!(complete(&h, "co").1.is_empty());
        // Only what is before the cursor counts.
        let (start, pairs) = h.complete_at("/coXYZ", 3);
        assert_eq!((start, pairs.len()), (0, 1));
    }

    #[test]
    fn peers_complete_by_name_and_id_after_msg_and_sendto() {
        let h = helper(&[
            ("bob", "b0b1"),
            ("carol", "ca12"),
            ("eve", "e1"),
            ("eve", "e2"),
            ("bad\x1b[2Jname", "d4"),
            ("two words", "f5"),
        ]);
        assert_eq!(complete(&h, "/msg b").1, ["b0b1", "bob"]);
        assert_eq!(complete(&h, "/msg bo").0, "/msg bob ");
        assert_eq!(complete(&h, "/msg ca").1, ["ca12", "carol"]);
        assert_eq!(complete(&h, "/msg  car").0, "/msg  carol ");
        assert_eq!(complete(&h, "/msg ca1").0, "/msg ca12 ");
        assert_eq!(complete(&h, "/sendto car").0, "/sendto carol ");
        // Two peers named eve: only their ids, which find one each.
        assert_eq!(complete(&h, "/msg e").1, ["e1", "e2"]);
        // A name with escapes or spaces is offered as its id only.
        assert_eq!(complete(&h, "/msg d").1, ["d4"]);
        assert_eq!(complete(&h, "/msg f").1, ["f5"]);
        assert_eq!(complete(&h, "/msg ").1.len(), 8);
        // The text of /msg and other commands' arguments are not peers.
        assert!(complete(&h, "/msg bob b").1.is_empty());
        assert!(complete(&h, "/connect b").1.is_empty());
    }

    #[test]
    fn the_list_is_read_when_completing() {
        let peers: SharedPeers = Arc::default();
        let h = NodeHelper::new(peers.clone(), SharedContent::default());
        assert!(complete(&h, "/msg b").1.is_empty());
        peers
            .lock()
            .expect("not poisoned")
            .push(("bob".into(), "b0b1".into()));
        assert_eq!(complete(&h, "/msg bo").0, "/msg bob ");
    }

    fn cid(b: u8) -> ContentId {
        ContentId([b; 32])
    }

    fn listing(id: ContentId, name: &str, complete: usize, ours: bool) -> Listing {
        Listing {
            id,
            name: name.into(),
            size: 10,
            files: 1,
            complete,
            partial: 0,
            ours,
        }
    }

    /// Ours (aa), offered to us (bb), in the mesh (cc), downloading (dd).
    fn content() -> SharedContent {
        let content = SharedContent::default();
        let mut l = content.lock().expect("not poisoned");
        l.event(&Event::Shared {
            id: cid(0xaa),
            name: "ours.iso".into(),
            size: 10,
            files: 1,
            path: "/x/ours.iso".into(),
        });
        l.event(&Event::Offer {
            id: cid(0xbb),
            from: p2p_core::PeerId::parse("b0b").expect("valid id"),
            name: "offered.txt".into(),
            size: 10,
            files: 1,
            accepted: false,
        });
        l.files(&[
            listing(cid(0xaa), "ours.iso", 0, true),
            listing(cid(0xbb), "offered.txt", 1, false),
            listing(cid(0xcc), "mesh.bin", 2, false),
        ]);
        l.event(&Event::DownloadStarted {
            id: cid(0xdd),
            name: "coming.tar".into(),
            size: 10,
            files: 3,
            have: 0,
        });
        drop(l);
        content
    }

    #[test]
    fn content_ids_complete_for_what_each_command_takes() {
        let content = content();
        let h = NodeHelper::new(Arc::default(), content.clone());
        let hex = |b: u8| cid(b).to_hex();
        assert_eq!(complete(&h, "/unshare ").1, ["aaaaaaaaaaaa ours.iso"]);
        assert_eq!(
            complete(&h, "/unshare a").0,
            format!("/unshare {}", hex(0xaa))
        );
        // Not what we share, not what is being downloaded.
        assert_eq!(
            complete(&h, "/get ").1,
            ["bbbbbbbbbbbb offered.txt", "cccccccccccc mesh.bin"]
        );
        // By name too, and by id in either case; /get takes a folder next.
        assert_eq!(complete(&h, "/get me").0, format!("/get {} ", hex(0xcc)));
        assert_eq!(complete(&h, "/get CCCC").0, format!("/get {} ", hex(0xcc)));
        assert_eq!(complete(&h, "/accept ").1, ["bbbbbbbbbbbb offered.txt"]);
        assert_eq!(
            complete(&h, "/decline b").0,
            format!("/decline {}", hex(0xbb))
        );
        assert_eq!(complete(&h, "/cancel ").1, ["dddddddddddd coming.tar"]);
        // One id only.
        assert!(complete(&h, "/accept bbbb b").1.is_empty());
        assert!(complete(&h, "/get zz").1.is_empty());

        {
            let mut l = content.lock().expect("not poisoned");
            l.event(&Event::DownloadComplete {
                id: cid(0xdd),
                name: "coming.tar".into(),
                path: "/d/coming.tar".into(),
                size: 10,
                bytes_from: Default::default(),
            });
            l.declined(&cid(0xbb));
        }
        assert!(complete(&h, "/cancel ").1.is_empty());
        assert_eq!(complete(&h, "/unshare ").1.len(), 2);
        assert!(complete(&h, "/accept ").1.is_empty());
        // Still held in the mesh: /get offers it.
        assert_eq!(complete(&h, "/get b").0, format!("/get {} ", hex(0xbb)));
    }

    #[test]
    fn the_content_list_follows_files_and_downloads_answers() {
        let content = content();
        let mut l = content.lock().expect("not poisoned").clone();
        // A /files answer is the whole truth of what is ours and held:
        // cc is gone from the mesh, aa is no longer ours.
        l.files(&[listing(cid(0xbb), "offered.txt", 1, false)]);
        l.downloads(&[]);
        let ids: Vec<u8> = l.entries().iter().map(|c| c.id.0[0]).collect();
        assert_eq!(ids, [0xbb]);
        assert!(l.entries()[0].offered && l.entries()[0].in_mesh);
    }

    #[test]
    fn paths_complete_after_share_offer_and_a_get_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("my photos")).expect("mkdir");
        let d = dir.path().display();
        let h = NodeHelper::new(Arc::default(), content());
        assert_eq!(
            complete(&h, &format!("/share {d}/my")).0,
            format!("/share {d}/my photos/")
        );
        assert_eq!(
            complete(&h, &format!("/offer {d}/my")).0,
            format!("/offer {d}/my photos/")
        );
        let id = cid(0xcc).to_hex();
        assert_eq!(
            complete(&h, &format!("/get {id} {d}/my")).0,
            format!("/get {id} {d}/my photos/")
        );
    }

    #[test]
    fn paths_complete_after_send_and_sendto_spaces_included() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("my report.pdf"), b"x").expect("write");
        std::fs::write(dir.path().join("a$b.txt"), b"x").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let d = dir.path().display();
        let h = helper(&[("bob", "b0b1")]);
        assert_eq!(
            complete(&h, &format!("/send {d}/my")).0,
            format!("/send {d}/my report.pdf")
        );
        assert_eq!(
            complete(&h, &format!("/send {d}/my rep")).0,
            format!("/send {d}/my report.pdf")
        );
        assert_eq!(
            complete(&h, &format!("/sendto bob {d}/a")).0,
            format!("/sendto bob {d}/a$b.txt")
        );
        assert_eq!(
            complete(&h, &format!("/send {d}/s")).0,
            format!("/send {d}/sub/")
        );
        assert_eq!(complete(&h, &format!("/send {d}/")).1.len(), 3);
        assert!(complete(&h, &format!("/send {d}/nothing")).1.is_empty());
        // What is completed parses as the path it names.
        let line = complete(&h, &format!("/send {d}/my")).0;
        assert_eq!(
            command::parse(&line),
            Ok(Command::Send(dir.path().join("my report.pdf")))
        );
    }

    #[test]
    fn hints_show_the_rest_and_the_usage_but_insert_only_the_word() {
        let h = helper(&[]);
        let hint = h.hint_at("/co", 3).expect("a hint");
        assert_eq!(hint.display(), "nnect <host:port>");
        assert_eq!(hint.completion(), Some("nnect "));
        let hint = h.hint_at("/msg ", 5).expect("a hint");
        assert_eq!(hint.display(), "<peer> <text>");
        assert_eq!(hint.completion(), None);
        assert_eq!(h.hint_at("/pe", 3).expect("a hint").display(), "ers");
        // Ambiguous, complete, typed on, or chat: no hint.
        assert!(h.hint_at("/s", 2).is_none());
        assert!(h.hint_at("/peers", 6).is_none());
        assert!(h.hint_at("/msg bob", 8).is_none());
        assert!(h.hint_at("hello", 5).is_none());
        assert!(h.hint_at("/co", 2).is_none());
    }

    #[test]
    fn history_sits_beside_the_identity_file() {
        assert_eq!(
            history_path(Path::new(".p2p/identity")),
            PathBuf::from(".p2p/history")
        );
        assert_eq!(
            history_path(Path::new("/tmp/n1/.p2p/identity")),
            PathBuf::from("/tmp/n1/.p2p/history")
        );
        assert_eq!(
            history_path(Path::new("identity")),
            PathBuf::from("history")
        );
    }
}
