//! The interactive command language read from stdin.

use std::path::PathBuf;

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
  /help                  this text (also /?)
  /quit                  leave (also /exit; Ctrl-D at the prompt)";

/// Parses one input line; the error says what is wrong.
pub fn parse(line: &str) -> Result<Command, String> {
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
    match word {
        "peers" => Ok(Command::Peers),
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
