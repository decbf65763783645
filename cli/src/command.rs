//! The interactive command language read from stdin.

use std::path::{Path, PathBuf};

/// One line typed by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A chat line for every peer.
    Chat(String),
    /// `/msg <peer> <text>`
    Msg {
        /// Peer by name, id or address.
        peer: String,
        /// The text.
        text: String,
    },
    /// `/peers`
    Peers,
    /// `/status`: peers with their traffic, transfers in progress.
    Status,
    /// `/connect host:port`
    Connect(String),
    /// `/discover`
    Discover,
    /// `/send <path>`
    Send(PathBuf),
    /// `/sendto <peer> <path>`
    SendTo {
        /// Peer by name, id or address.
        peer: String,
        /// The file.
        path: PathBuf,
    },
    /// `/share <path>`: share a file or a directory tree.
    Share(PathBuf),
    /// `/unshare <id>`: stop sharing content.
    Unshare(String),
    /// `/files`: what the mesh offers.
    Files,
    /// `/get <id> [dir]`: download content from every peer that holds it.
    Get {
        /// The content id as typed (64 hex digits or a unique prefix of 8
        /// or more; the core resolves it).
        id: String,
        /// Where to put it instead of the downloads directory.
        dir: Option<PathBuf>,
    },
    /// `/offer <path> [peer]`: offer a file or tree to one peer or all.
    Offer {
        /// The file or tree (shared first if it is not).
        path: PathBuf,
        /// Peer by name, id or address; `None`: every peer.
        peer: Option<String>,
    },
    /// `/accept <id>`: download what a peer offered.
    Accept(String),
    /// `/decline <id>`: refuse an offer (the offerer is told).
    Decline(String),
    /// `/downloads`: downloads in progress.
    Downloads,
    /// `/cancel <id>`: stop a download and delete what it fetched.
    Cancel(String),
    /// `/help`
    Help,
    /// `/quit`
    Quit,
    /// An empty line.
    Nothing,
}

/// The commands, as typed (`/word`), with what follows them (empty: no
/// arguments). The prompt completes these; [`HELP`] describes each.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/msg", "<peer> <text>"),
    ("/send", "<path>"),
    ("/sendto", "<peer> <path>"),
    ("/peers", ""),
    ("/status", ""),
    ("/connect", "<host:port>"),
    ("/discover", ""),
    ("/share", "<path>"),
    ("/unshare", "<id>"),
    ("/files", ""),
    ("/get", "<id> [dir]"),
    ("/offer", "<path> [peer]"),
    ("/accept", "<id>"),
    ("/decline", "<id>"),
    ("/downloads", ""),
    ("/cancel", "<id>"),
    ("/help", ""),
    ("/quit", ""),
];

/// The help text: one line per command.
pub const HELP: &str = "\
commands:
  <text>                 chat with every peer
  /msg <peer> <text>     chat with one peer (by name, id or address)
  /send <path>           send a file to every peer
  /sendto <peer> <path>  send a file to one peer (by name, id or address)
  /peers                 list connected peers
  /status                peers (address, direction, round trip, bytes), transfers in progress
  /connect <host:port>   connect to a peer
  /discover              ask peers for more peers now
  /share <path>          share a file or directory tree with the mesh (by content id)
  /unshare <id>          stop sharing content
  /files                 what the mesh offers: id, name, size, files, holders
  /get <id> [dir]        download content from every peer holding it (to [dir], else --downloads)
  /offer <path> [peer]   offer a file or tree to one peer or every peer
  /accept <id>           download what a peer offered
  /decline <id>          refuse an offer (the offerer is told)
  /downloads             downloads in progress: bytes, rate, ETA, peers
  /cancel <id>           stop a download and delete what it fetched
  /help                  this text (also /?)
  /quit                  leave (also /exit; Ctrl-D at the prompt)
ids: 64 hex digits, or a unique prefix of 8 or more (/files shows 12)";

/// Parses one input line; the error says what is wrong.
pub fn parse(line: &str) -> Result<Command, String> {
    parse_with(line, Path::exists)
}

/// [`parse`], with `exists` saying whether a path is there: paths are the
/// rest of the line, spaces included, so `/offer a b` is the path `a b` if
/// that exists, else the path `a` for the peer `b`.
pub fn parse_with(line: &str, exists: impl Fn(&Path) -> bool) -> Result<Command, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Command::Nothing);
    }
    let Some(rest) = trimmed.strip_prefix('/') else {
        return Ok(Command::Chat(trimmed.to_owned()));
    };
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    let need = |what: &str| -> Result<(), String> {
        if args.is_empty() {
            Err(format!("usage: /{word} {what}"))
        } else {
            Ok(())
        }
    };
    // One word (a content id), nothing after it.
    let one = |what: &str| -> Result<String, String> {
        if args.is_empty() || args.contains(char::is_whitespace) {
            Err(format!("usage: /{word} {what}"))
        } else {
            Ok(args.to_owned())
        }
    };
    match word {
        "peers" => Ok(Command::Peers),
        "files" => Ok(Command::Files),
        "downloads" => Ok(Command::Downloads),
        "share" => {
            need("<path>")?;
            Ok(Command::Share(PathBuf::from(args)))
        }
        "unshare" => one("<id>").map(Command::Unshare),
        "accept" => one("<id>").map(Command::Accept),
        "decline" => one("<id>").map(Command::Decline),
        "cancel" => one("<id>").map(Command::Cancel),
        "get" => {
            need("<id> [dir]")?;
            Ok(match args.split_once(char::is_whitespace) {
                Some((id, dir)) => Command::Get {
                    id: id.to_owned(),
                    dir: Some(PathBuf::from(dir.trim_start())),
                },
                None => Command::Get {
                    id: args.to_owned(),
                    dir: None,
                },
            })
        }
        "offer" => {
            need("<path> [peer]")?;
            let whole = Command::Offer {
                path: PathBuf::from(args),
                peer: None,
            };
            match args.rsplit_once(char::is_whitespace) {
                Some((path, peer)) if !exists(Path::new(args)) => Ok(Command::Offer {
                    path: PathBuf::from(path.trim_end()),
                    peer: Some(peer.to_owned()),
                }),
                _ => Ok(whole),
            }
        }
        "status" => Ok(Command::Status),
        "discover" => Ok(Command::Discover),
        "help" | "?" => Ok(Command::Help),
        "quit" | "exit" => Ok(Command::Quit),
        "connect" => {
            need("<host:port>")?;
            Ok(Command::Connect(args.to_owned()))
        }
        "send" => {
            need("<path>")?;
            Ok(Command::Send(PathBuf::from(args)))
        }
        "msg" | "sendto" => {
            let usage = if word == "msg" {
                "<peer> <text>"
            } else {
                "<peer> <path>"
            };
            let Some((peer, tail)) = args.split_once(char::is_whitespace) else {
                return Err(format!("usage: /{word} {usage}"));
            };
            let tail = tail.trim();
            if tail.is_empty() {
                return Err(format!("usage: /{word} {usage}"));
            }
            Ok(if word == "msg" {
                Command::Msg {
                    peer: peer.to_owned(),
                    text: tail.to_owned(),
                }
            } else {
                Command::SendTo {
                    peer: peer.to_owned(),
                    path: PathBuf::from(tail),
                }
            })
        }
        other => Err(format!("unknown command /{other} (try /help)")),
    }
}

/// Finds a peer by id, name or address among `peers`; the error says why not.
pub fn resolve_peer<'a>(
    peers: &'a [p2p_core::PeerInfo],
    who: &str,
) -> Result<&'a p2p_core::PeerInfo, String> {
    if let Some(p) = peers.iter().find(|p| p.id.as_str() == who) {
        return Ok(p);
    }
    let by_name: Vec<_> = peers.iter().filter(|p| p.name == who).collect();
    match by_name.len() {
        1 => return Ok(by_name[0]),
        n if n > 1 => return Err(format!("{n} peers are named {who:?}: use the id")),
        _ => {}
    }
    let norm = p2p_core::Addr::parse(who).ok();
    peers
        .iter()
        .find(|p| p.addr.is_some() && p.addr == norm)
        .ok_or_else(|| format!("no connected peer {who:?} (see /peers)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse("hello there\n"),
            Ok(Command::Chat("hello there".into()))
        );
        assert_eq!(parse("  "), Ok(Command::Nothing));
        assert_eq!(parse("/peers"), Ok(Command::Peers));
        assert_eq!(
            parse("/connect localhost:8000"),
            Ok(Command::Connect("localhost:8000".into()))
        );
        assert_eq!(
            parse("/send my file.txt"),
            Ok(Command::Send("my file.txt".into()))
        );
        assert_eq!(
            parse("/msg bob hi  there"),
            Ok(Command::Msg {
                peer: "bob".into(),
                text: "hi  there".into()
            })
        );
        assert_eq!(
            parse("/sendto bob ./a b.bin"),
            Ok(Command::SendTo {
                peer: "bob".into(),
                path: "./a b.bin".into()
            })
        );
        assert_eq!(parse("/quit"), Ok(Command::Quit));
        assert_eq!(parse("/status"), Ok(Command::Status));
        assert_eq!(parse("  /status  \n"), Ok(Command::Status));
        // Extra words after a command without arguments are ignored, as
        // for /peers.
        assert_eq!(parse("/status now"), Ok(Command::Status));
        assert!(parse("/msg bob").unwrap_err().contains("usage"));
        assert!(parse("/send").unwrap_err().contains("usage"));
        assert!(parse("/frob").unwrap_err().contains("unknown command"));
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_sharing_commands() {
        assert_eq!(
            parse("/share ./my photos"),
            Ok(Command::Share("./my photos".into()))
        );
        assert_eq!(parse("/files"), Ok(Command::Files));
        assert_eq!(parse("/downloads"), Ok(Command::Downloads));
        // Ids are passed through as typed: the core resolves prefixes.
        assert_eq!(
            parse(&format!("/unshare {ID}")),
            Ok(Command::Unshare(ID.into()))
        );
        assert_eq!(
            parse("/accept 0123456789ab"),
            Ok(Command::Accept("0123456789ab".into()))
        );
        assert_eq!(
            parse("/decline  0123abcd "),
            Ok(Command::Decline("0123abcd".into()))
        );
        assert_eq!(parse("/cancel xyz"), Ok(Command::Cancel("xyz".into())));
        assert_eq!(
            parse("/get 0123456789ab"),
            Ok(Command::Get {
                id: "0123456789ab".into(),
                dir: None
            })
        );
        assert_eq!(
            parse("/get 0123456789ab  /tmp/new folder"),
            Ok(Command::Get {
                id: "0123456789ab".into(),
                dir: Some("/tmp/new folder".into())
            })
        );
    }

    #[test]
    fn offer_takes_a_last_word_as_the_peer_unless_the_whole_is_a_path() {
        let none = |_: &Path| false;
        assert_eq!(
            parse_with("/offer big.iso", none),
            Ok(Command::Offer {
                path: "big.iso".into(),
                peer: None
            })
        );
        assert_eq!(
            parse_with("/offer ./my file.txt  bob", none),
            Ok(Command::Offer {
                path: "./my file.txt".into(),
                peer: Some("bob".into())
            })
        );
        let there = |p: &Path| p == Path::new("my file.txt");
        assert_eq!(
            parse_with("/offer my file.txt", there),
            Ok(Command::Offer {
                path: "my file.txt".into(),
                peer: None
            })
        );
        assert_eq!(
            parse_with("/offer my file.txt bob", there),
            Ok(Command::Offer {
                path: "my file.txt".into(),
                peer: Some("bob".into())
            })
        );
    }

    #[test]
    fn sharing_commands_refuse_missing_and_extra_arguments() {
        for (line, usage) in [
            ("/share", "usage: /share <path>"),
            ("/share   ", "usage: /share <path>"),
            ("/unshare", "usage: /unshare <id>"),
            ("/get", "usage: /get <id> [dir]"),
            ("/offer", "usage: /offer <path> [peer]"),
            ("/accept", "usage: /accept <id>"),
            ("/decline", "usage: /decline <id>"),
            ("/cancel", "usage: /cancel <id>"),
            // One id, nothing after it.
            ("/unshare 0123456789ab extra", "usage: /unshare <id>"),
            ("/accept 0123456789ab 0123456789ac", "usage: /accept <id>"),
            ("/decline 0123456789ab x", "usage: /decline <id>"),
            ("/cancel 0123456789ab x", "usage: /cancel <id>"),
        ] {
            assert_eq!(parse(line), Err(usage.to_owned()), "{line:?}");
        }
        // Extra words after a command without arguments are ignored, as for
        // /peers and /status.
        assert_eq!(parse("/files all"), Ok(Command::Files));
        assert_eq!(parse("/downloads now"), Ok(Command::Downloads));
        assert!(parse("/shar x").unwrap_err().contains("unknown command"));
    }

    #[test]
    fn every_command_is_known_and_has_a_line_of_help() {
        for (word, usage) in COMMANDS {
            let line = format!("{word} {}", usage.replace(['<', '>'], ""));
            let parsed = parse(&line);
            assert!(
                parsed.as_ref().is_ok_and(|c| *c != Command::Nothing),
                "{line:?}: {parsed:?}"
            );
            let help = HELP
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{word} ")))
                .unwrap_or_else(|| panic!("{word} is not in HELP"));
            // A usage column, then a description.
            let described = help.trim_start()[word.len()..].trim_start();
            assert!(described.len() > usage.len(), "{help:?}");
        }
        // Every command HELP lists is in COMMANDS (what the prompt completes).
        for l in HELP.lines().filter(|l| l.trim_start().starts_with('/')) {
            let word = l.split_whitespace().next().unwrap_or_default();
            assert!(COMMANDS.iter().any(|(w, _)| *w == word), "{word}");
        }
    }

    #[test]
    fn resolves_peers_by_id_name_and_address() {
        let p = |id: &str, name: &str, addr: &str| p2p_core::PeerInfo {
            id: p2p_core::PeerId::parse(id).unwrap(),
            name: name.into(),
            addr: Some(p2p_core::Addr::parse(addr).unwrap()),
            outbound: true,
            conn: p2p_core::ConnId(1),
            extensions: Vec::new(),
            rtt_ms: None,
            bytes_in: 0,
            bytes_out: 0,
        };
        let peers = [
            p("a1", "bob", "10.0.0.1:1"),
            p("b2", "eve", "10.0.0.2:1"),
            p("c3", "eve", "10.0.0.3:1"),
        ];
        assert_eq!(resolve_peer(&peers, "bob").unwrap().id.as_str(), "a1");
        assert_eq!(resolve_peer(&peers, "c3").unwrap().id.as_str(), "c3");
        assert_eq!(
            resolve_peer(&peers, "10.0.0.2:1").unwrap().id.as_str(),
            "b2"
        );
        assert!(resolve_peer(&peers, "eve").unwrap_err().contains("2 peers"));
        assert!(resolve_peer(&peers, "zed").is_err());
    }
}
