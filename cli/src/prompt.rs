//! The interactive prompt of `p2p-node`, used when stdin and stdout are a
//! terminal: line editing, history kept between runs, Tab completion of
//! commands, peers and paths, and the node's output printed above the line
//! being typed.
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

use crate::command::{self, Command, COMMANDS};
use crate::output::Sink;

/// The peers the completer offers after `/msg ` and `/sendto `, as
/// `(name, id)`; the node's loop keeps it up to date.
pub type SharedPeers = Arc<Mutex<Vec<(String, String)>>>;

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
    /// A helper completing peers from `peers`.
    pub fn new(peers: SharedPeers) -> Self {
        NodeHelper {
            peers,
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
            "/send" => self.complete_path(before, arg),
            _ => none,
        }
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
        editor.set_helper(Some(NodeHelper::new(peers)));
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
        NodeHelper::new(Arc::new(Mutex::new(list)))
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
        let h = NodeHelper::new(peers.clone());
        assert!(complete(&h, "/msg b").1.is_empty());
        peers
            .lock()
            .expect("not poisoned")
            .push(("bob".into(), "b0b1".into()));
        assert_eq!(complete(&h, "/msg bo").0, "/msg bob ");
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
