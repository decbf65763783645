//! `p2p-node`: a peer of the mesh for people and scripts.
//!
//! `p2p-node 8001 localhost:8000` listens on 8001 and joins through 8000.
//! Lines typed on stdin are chat; `/help` lists the commands. On a
//! terminal they are read with an editing prompt (`p2p_cli::prompt`), the
//! node's output printed above it; otherwise plain lines are read. Works
//! with stdin closed or piped: the node then runs until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use p2p_cli::command::{self, Command, HELP};
use p2p_cli::output::{Console, DownloadTotals, Style};
use p2p_cli::prompt::{history_path, Prompt, SharedContent, SharedPeers};
use p2p_core::{Event, SessionConfig, Target};
use p2p_net::{start, DiskStorage, NetConfig, NetEvent, NodeHandle, TcpTransport};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

fn main() -> ExitCode {
    let args = match p2p_cli::args::parse(std::env::args_os()) {
        Ok(a) => a,
        Err((msg, code)) => {
            if code == 0 {
                print!("{msg}");
            } else {
                eprintln!("{msg}");
            }
            return ExitCode::from(code as u8);
        }
    };
    if args.show_id {
        return match p2p_cli::identity::load_or_create(&args.identity) {
            Ok(key) => {
                println!("{}", p2p_core::session_id_of_private(&key));
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("p2p-node: {msg}");
                ExitCode::from(2)
            }
        };
    }
    let session = match private_mode(&args) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("p2p-node: {msg}");
            return ExitCode::from(2);
        }
    };
    p2p_net::tune_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("p2p-node: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(args, session));
    // The stdin reader sits in a blocking read that nothing can cancel;
    // waiting for it would keep the process alive after SIGTERM.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("p2p-node: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The session settings of private mode, `None` without a network key:
/// the identity loaded (or created), the passphrase stretched, the trust
/// file read. Errors are the user's (exit 2).
fn private_mode(args: &p2p_cli::args::Args) -> Result<Option<SessionConfig>, String> {
    let Some(passphrase) = &args.network_key else {
        return Ok(None);
    };
    let mut session = SessionConfig::default();
    session.network_key = Some(p2p_cli::identity::network_key(passphrase)?);
    session.static_key = Some(p2p_cli::identity::load_or_create(&args.identity)?);
    if let Some(path) = &args.trust {
        session.trust = Some(p2p_cli::identity::read_trust(path)?);
    }
    // 256 bits for the connections' ephemeral keys (the node's seed is 64).
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|e| format!("no randomness from the OS: {e}"))?;
    session.entropy = Some(entropy);
    Ok(Some(session))
}

async fn run(args: p2p_cli::args::Args, session: Option<SessionConfig>) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("P2P_LOG"))
        .try_init();
    // Invariant: parse() requires the port unless --show-id, handled above.
    let mut cfg = NetConfig::new(args.port.unwrap_or(0));
    cfg.debug_events = args.debug;
    cfg.core.name = args.name.clone();
    cfg.core.connections.max_peers = args.max_peers as usize;
    cfg.core.advertise_host = args.advertise.clone();
    cfg.core.heartbeat.peer_timeout = std::time::Duration::from_secs(args.peer_timeout);
    cfg.bootstrap.extend(args.bootstrap.clone());
    if let Some(accept) = &args.accept_offers {
        cfg.core.swarm.accept_offers = accept.clone();
    }
    if args.lan {
        cfg.lan = Some(std::sync::Arc::new(p2p_net::MdnsLan::default()));
    }
    let private = session.as_ref().map(|s| {
        let id = s.static_key.as_ref().map(p2p_core::session_id_of_private);
        (id, s.trust.as_ref().map(|t| t.len()))
    });
    if let Some(session) = session {
        // The Noise ephemerals come from the node's generator: seed it from
        // the OS rather than the clock.
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
        cfg.seed = u64::from_le_bytes(seed);
        cfg.core.session = session;
    }
    let storage = DiskStorage::new(&args.downloads).map_err(|e| {
        format!(
            "cannot use downloads directory {}: {e}",
            args.downloads.display()
        )
    })?;
    let transport = TcpTransport { bind_ip: args.bind };
    let (node, mut events) = start(cfg, transport, storage)
        .await
        .map_err(|e| e.to_string())?;

    let mut style = Style {
        json: args.json,
        debug: args.debug,
        bars: !args.json && std::io::stdout().is_terminal(),
        max_peers: args.max_peers as usize,
    };
    // The peers the prompt completes after /msg and /sendto, and the
    // content ids after /get, /accept, /decline, /unshare and /cancel.
    let peer_list = SharedPeers::default();
    let content_list = SharedContent::default();
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // rustyline puts back the SIGINT handler it found when it is done with
    // a line: tokio's must be installed before the prompt starts, or a
    // later SIGINT would find the default one (and end the process
    // without a shutdown).
    #[cfg(unix)]
    let _sigint = interactive
        .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()));
    let prompt = if interactive {
        match Prompt::start(
            history_path(&args.identity),
            peer_list.clone(),
            content_list.clone(),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("p2p-node: no line editing ({e}): reading plain lines");
                None
            }
        }
    } else {
        None
    };
    let (mut prompt, mut console, mut lines) = match prompt {
        Some((prompt, printer, lines)) => {
            // Progress bars would be drawn over the prompt: in prompt mode
            // progress is printed above it as lines (a line per tenth), as
            // when stdout is not a terminal.
            style.bars = false;
            let console = Console::with_sink(style, Box::new(printer));
            (Some(prompt), console, lines)
        }
        None => (None, Console::new(style), plain_lines()),
    };

    if let Some((Some(id), trusted)) = &private {
        console.private(id, *trusted);
    }
    // --share: hashed in the background; `Shared` (or `ShareFailed`)
    // events tell each result.
    for path in &args.share {
        if let Err(e) = node.share(path).await {
            console.error(&format!("--share {}: {e}", path.display()));
        }
    }
    let lists = Lists {
        peers: peer_list,
        content: content_list,
        prompt: prompt.is_some(),
    };

    let mut stdin_open = true;
    let mut terminate = signal_terminate();
    // One listener for the whole run: a `ctrl_c()` made anew in every turn
    // of the loop misses a SIGINT that arrives while a turn is busy (an
    // event printed, a command carried out).
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // The prompt's list of peers follows the events, and is read again
    // from the node now and then.
    let mut refresh = tokio::time::interval(Duration::from_secs(5));

    loop {
        tokio::select! {
            biased;
            _ = &mut ctrl_c => break,
            _ = terminate.recv() => break,
            ev = events.next() => match ev {
                Some(ev) => {
                    // Before it is shown: a peer seen connected completes,
                    // and so does an id just shared or offered.
                    lists.follow(&ev);
                    console.event(&ev);
                }
                None => return Ok(()),
            },
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    if !handle_line(&node, &console, &lists, &line).await {
                        break;
                    }
                }
                // Ctrl-D at the prompt: leave, as /quit. Plain stdin
                // closed: go on without it.
                None if prompt.is_some() => break,
                None => stdin_open = false,
            },
            _ = refresh.tick(), if prompt.is_some() => lists.refresh(&node).await,
        }
    }
    if let Some(p) = &mut prompt {
        p.close();
    }
    let _ = node.shutdown().await;
    while let Some(ev) = events.next().await {
        let stopped = ev == NetEvent::Stopped;
        console.event(&ev);
        if stopped {
            break;
        }
    }
    Ok(())
}

/// Lines from stdin read as they are (stdin is not a terminal: a pipe, a
/// file, closed).
fn plain_lines() -> mpsc::Receiver<String> {
    let (lines_tx, lines) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if lines_tx.send(line).await.is_err() {
                return;
            }
        }
    });
    lines
}

/// What the prompt completes, kept up to date by the loop (only with a
/// prompt: without one nobody reads them).
struct Lists {
    peers: SharedPeers,
    content: SharedContent,
    prompt: bool,
}

/// The lock, poisoned or not (the lists are plain data).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(l) => l,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Lists {
    /// Reads the lists again from the node.
    async fn refresh(&self, node: &NodeHandle) {
        if let Ok(peers) = node.peers().await {
            *lock(&self.peers) = peers
                .iter()
                .map(|p| (p.name.clone(), p.id.to_string()))
                .collect();
        }
        if let Ok(files) = node.files().await {
            lock(&self.content).files(&files);
        }
        if let Ok(downloads) = node.downloads().await {
            lock(&self.content).downloads(&downloads);
        }
    }

    /// Adds or removes the peer or content an event is about.
    fn follow(&self, ev: &NetEvent) {
        if !self.prompt {
            return;
        }
        let NetEvent::Core(e) = ev else { return };
        lock(&self.content).event(e);
        let mut l = lock(&self.peers);
        match e {
            Event::PeerConnected { peer, name, .. } => {
                let id = peer.to_string();
                l.retain(|(_, i)| *i != id);
                l.push((name.clone(), id));
            }
            Event::PeerDisconnected { peer, .. } => {
                let id = peer.to_string();
                l.retain(|(_, i)| *i != id);
            }
            _ => {}
        }
    }

    /// A `/files` answer.
    fn files(&self, files: &[p2p_core::Listing]) {
        if self.prompt {
            lock(&self.content).files(files);
        }
    }

    /// A `/downloads` answer.
    fn downloads(&self, downloads: &[p2p_core::DownloadInfo]) {
        if self.prompt {
            lock(&self.content).downloads(downloads);
        }
    }

    /// A `/decline` taken.
    fn declined(&self, id: &p2p_core::ContentId) {
        if self.prompt {
            lock(&self.content).declined(id);
        }
    }
}

/// SIGTERM as a channel (scripts stop nodes with it).
fn signal_terminate() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            s.recv().await;
            let _ = tx.send(()).await;
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Carries out one typed line; returns false to quit. A command that
/// fails prints why, and the node goes on.
async fn handle_line(node: &NodeHandle, console: &Console, lists: &Lists, line: &str) -> bool {
    let cmd = match command::parse(line) {
        Ok(c) => c,
        Err(e) => {
            console.error(&e);
            return true;
        }
    };
    match cmd {
        Command::Nothing => {}
        Command::Quit => return false,
        Command::Help => console.info(HELP),
        Command::Chat(text) => match node.chat(&text).await {
            Ok(n) => console.chat_sent(n),
            Err(e) => console.error(&e.to_string()),
        },
        Command::Msg { peer, text } => match find(node, &peer).await {
            Ok(id) => match node.chat_to(&id, &text).await {
                Ok(()) => console.chat_sent(1),
                Err(e) => console.error(&e.to_string()),
            },
            Err(e) => console.error(&e),
        },
        Command::Peers => match node.peers().await {
            Ok(p) => console.peers(&p),
            Err(e) => console.error(&e.to_string()),
        },
        Command::Status => {
            let (peers, files, downloads) =
                tokio::join!(node.peers(), node.files(), node.downloads());
            match (peers, files, downloads) {
                (Ok(p), Ok(f), Ok(d)) => {
                    let shared = f.iter().filter(|l| l.ours).count();
                    console.status(&p, shared, DownloadTotals::of(&d));
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => console.error(&e.to_string()),
            }
        }
        Command::Connect(addr) => {
            if let Err(e) = node.connect(&addr).await {
                console.error(&e.to_string());
            }
        }
        Command::Discover => {
            if let Err(e) = node.discover().await {
                console.error(&e.to_string());
            }
        }
        Command::Send(path) => spawn_send(node, path, Target::All),
        Command::SendTo { peer, path } => match find(node, &peer).await {
            Ok(id) => spawn_send(node, path, Target::Peer(id)),
            Err(e) => console.error(&e),
        },
        Command::Share(path) => {
            // The result arrives as `Shared` or `ShareFailed`.
            if let Err(e) = node.share(&path).await {
                console.error(&e.to_string());
            }
        }
        Command::Unshare(id) => {
            if let Err(e) = node.unshare(&id).await {
                console.error(&e.to_string());
            }
        }
        Command::Files => match node.files().await {
            Ok(f) => {
                lists.files(&f);
                console.files(&f);
            }
            Err(e) => console.error(&e.to_string()),
        },
        Command::Get { id, dir } => match node.get(&id, dir.as_deref()).await {
            Ok(id) => console.getting(&id),
            Err(e) => console.error(&e.to_string()),
        },
        Command::Offer { path, peer } => {
            let (target, to) = match peer {
                Some(p) => match find_peer(node, &p).await {
                    Ok(peer) => (Target::Peer(peer.id), Some(peer.name)),
                    Err(e) => {
                        console.error(&e);
                        return true;
                    }
                },
                None => (Target::All, None),
            };
            match node.offer(&path, target).await {
                Ok(()) => console.offering(&path, to.as_deref()),
                Err(e) => console.error(&e.to_string()),
            }
        }
        Command::Accept(id) => match node.accept(&id).await {
            Ok(id) => console.getting(&id),
            Err(e) => console.error(&e.to_string()),
        },
        Command::Decline(id) => match node.decline(&id).await {
            Ok(id) => {
                lists.declined(&id);
                console.declined(&id);
            }
            Err(e) => console.error(&e.to_string()),
        },
        Command::Downloads => match node.downloads().await {
            Ok(d) => {
                lists.downloads(&d);
                console.downloads(&d);
            }
            Err(e) => console.error(&e.to_string()),
        },
        Command::Cancel(id) => {
            // `DownloadFailed` (cancelled) says it.
            if let Err(e) = node.cancel_download(&id).await {
                console.error(&e.to_string());
            }
        }
    }
    true
}

async fn find(node: &NodeHandle, who: &str) -> Result<p2p_core::PeerId, String> {
    find_peer(node, who).await.map(|p| p.id)
}

async fn find_peer(node: &NodeHandle, who: &str) -> Result<p2p_core::PeerInfo, String> {
    let peers = node.peers().await.map_err(|e| e.to_string())?;
    command::resolve_peer(&peers, who).cloned()
}

/// Sends in the background so that the prompt stays responsive; the result
/// arrives as FileSent or FileSendFailed events.
fn spawn_send(node: &NodeHandle, path: std::path::PathBuf, target: Target) {
    let node = node.clone();
    tokio::spawn(async move {
        let _ = node.send_file(&path, target).await;
    });
}
