//! `p2p-node` arguments.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use p2p_core::{AcceptOffers, PeerId};

/// p2p-node: a peer of a small peer-to-peer mesh: chat, binary messages and
/// files with verified integrity, with the peers it finds.
///
/// Type a line to chat with every peer; `/help` lists the commands. On a
/// terminal the prompt edits lines, keeps their history beside the
/// identity file and completes commands, peers and paths with Tab.
// `about` and `long_about` come from this comment (clap's bare `about`
// would take the package's description, which is about both programs).
#[derive(Debug, Clone, Parser)]
#[command(name = "p2p-node", version)]
pub struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(required_unless_present = "show_id")]
    pub port: Option<u16>,
    /// A peer to join through, as host:port.
    pub bootstrap: Option<String>,
    /// Display name sent to peers (default: the node's id).
    #[arg(long)]
    pub name: Option<String>,
    /// Also show heartbeats and peer-list traffic.
    #[arg(long)]
    pub debug: bool,
    /// Most peers to hold at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_peers: u16,
    /// Where received files and downloads go; unfinished downloads wait
    /// in its `.p2p/partial/` for the next run.
    #[arg(long, default_value = "downloads")]
    pub downloads: PathBuf,
    /// Share this file or directory tree from the start (repeatable).
    #[arg(long = "share", value_name = "PATH")]
    pub share: Vec<PathBuf>,
    /// Download offers without asking: `all`, or only those of the peers
    /// listed (ids, comma-separated). Default: each offer waits for
    /// /accept or /decline.
    #[arg(long, value_name = "all|PEER,...", value_parser = parse_accept_offers)]
    pub accept_offers: Option<AcceptOffers>,
    /// Print every event as one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Host or IP to advertise to peers (default: the local IP of each
    /// outgoing connection).
    #[arg(long)]
    pub advertise: Option<String>,
    /// IP address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Seconds without a frame after which a peer is dropped.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub peer_timeout: u64,
    /// Private mode: the network key (a passphrase shared by the mesh).
    /// Better from the environment, P2P_NETWORK_KEY: a flag is visible to
    /// every user in `ps`. The flag wins if both are set.
    #[arg(long, value_name = "KEY")]
    pub network_key: Option<String>,
    /// Private mode: only the node ids listed in FILE (one per line, `#`
    /// comments) may connect. Needs a network key.
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// This node's key file (private mode), created with mode 0600 if
    /// missing. Never share one between two nodes.
    #[arg(long, value_name = "FILE", default_value = crate::identity::DEFAULT_IDENTITY)]
    pub identity: PathBuf,
    /// Print this node's private-mode id (from --identity, created if
    /// missing) and exit.
    #[arg(long)]
    pub show_id: bool,
    /// Find peers on the local network (mDNS): announce this node and dial
    /// the members of its mesh that announce themselves. Off by default:
    /// multicast leaves this machine and tells the LAN a node runs here.
    #[arg(long)]
    pub lan: bool,
}

/// `--accept-offers`: `all`, or peer ids separated by commas.
fn parse_accept_offers(s: &str) -> Result<AcceptOffers, String> {
    if s == "all" {
        return Ok(AcceptOffers::All);
    }
    let mut ids = std::collections::BTreeSet::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("expected `all` or peer ids separated by commas".into());
        }
        ids.insert(PeerId::parse(part).map_err(|e| e.to_string())?);
    }
    Ok(AcceptOffers::From(ids))
}

/// Parses arguments; on a usage error returns the one line to print and the
/// exit code (help and version are printed by clap and exit 0).
pub fn parse<I, T>(args: I) -> Result<Args, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    parse_with_env(args, std::env::var("P2P_NETWORK_KEY").ok())
}

/// [`parse`] with the value of `P2P_NETWORK_KEY` given (`None`: unset); the
/// flag wins over it.
pub fn parse_with_env<I, T>(args: I, env_key: Option<String>) -> Result<Args, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Args::try_parse_from(args).map(|mut a| {
        if a.network_key.is_none() {
            a.network_key = env_key;
        }
        a
    }) {
        Ok(a) => {
            if a.trust.is_some() && a.network_key.is_none() {
                return Err((
                    "p2p-node: --trust needs a network key (--network-key or P2P_NETWORK_KEY)"
                        .into(),
                    2,
                ));
            }
            if let Some(b) = &a.bootstrap {
                if p2p_core::Addr::parse(b).is_err() {
                    return Err((
                        format!("p2p-node: bootstrap address {b:?} is not host:port"),
                        2,
                    ));
                }
            }
            Ok(a)
        }
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                return Err((e.to_string(), 0));
            }
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            Err((format!("p2p-node: {first} (see p2p-node --help)"), 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_positional_form() {
        let a = parse(["p2p-node", "8001", "localhost:8000"]).unwrap();
        assert_eq!(a.port, Some(8001));
        assert_eq!(a.bootstrap.as_deref(), Some("localhost:8000"));
        assert_eq!(a.max_peers, 64);
        let a = parse([
            "p2p-node",
            "--name",
            "alice",
            "--json",
            "--max-peers",
            "10",
            "8002",
        ])
        .unwrap();
        assert_eq!(
            (a.name.as_deref(), a.json, a.max_peers),
            (Some("alice"), true, 10)
        );
    }

    #[test]
    fn the_network_key_comes_from_the_flag_or_else_the_environment() {
        let a = parse_with_env(["p2p-node", "8001"], Some("env".into())).unwrap();
        assert_eq!(a.network_key.as_deref(), Some("env"));
        let a = parse_with_env(
            ["p2p-node", "--network-key", "flag", "8001"],
            Some("env".into()),
        )
        .unwrap();
        assert_eq!(a.network_key.as_deref(), Some("flag"));
        let a = parse_with_env(["p2p-node", "8001"], None).unwrap();
        assert_eq!(a.network_key, None);
        assert_eq!(a.identity, PathBuf::from(".p2p/identity"));
        let a = parse_with_env(["p2p-node", "--show-id"], None).unwrap();
        assert!(a.show_id && a.port.is_none());
        let (msg, code) = parse_with_env(["p2p-node", "--trust", "t", "8001"], None).unwrap_err();
        assert_eq!(code, 2);
        assert!(msg.contains("needs a network key"), "{msg}");
        assert!(parse_with_env(["p2p-node", "--trust", "t", "8001"], Some("k".into())).is_ok());
    }

    #[test]
    fn sharing_flags() {
        let a = parse(["p2p-node", "8001"]).unwrap();
        assert!(a.share.is_empty());
        assert_eq!(a.accept_offers, None);
        let a = parse([
            "p2p-node",
            "--share",
            "a.iso",
            "--share",
            "photos dir",
            "--accept-offers",
            "all",
            "8001",
        ])
        .unwrap();
        assert_eq!(
            a.share,
            [PathBuf::from("a.iso"), PathBuf::from("photos dir")]
        );
        assert_eq!(a.accept_offers, Some(AcceptOffers::All));
        let a = parse(["p2p-node", "--accept-offers", "b0b, ca12", "8001"]).unwrap();
        let want = ["b0b", "ca12"].map(|s| PeerId::parse(s).unwrap());
        assert_eq!(a.accept_offers, Some(AcceptOffers::From(want.into())));
        for bad in ["", "b0b,,ca12", "b0b,x:1"] {
            let (msg, code) = parse(["p2p-node", "--accept-offers", bad, "8001"]).unwrap_err();
            assert_eq!(code, 2, "{bad:?}");
            assert!(msg.contains("--accept-offers"), "{msg}");
        }
    }

    #[test]
    fn help_starts_by_saying_what_p2p_node_is() {
        let (help, code) = parse(["p2p-node", "--help"]).unwrap_err();
        assert_eq!(code, 0);
        assert!(
            help.starts_with("p2p-node: a peer of a small peer-to-peer mesh: chat, binary messages and files with verified integrity, with the peers it finds"),
            "{help}"
        );
        let (short, _) = parse(["p2p-node", "-h"]).unwrap_err();
        assert!(short.starts_with("p2p-node: a peer of"), "{short}");
    }

    #[test]
    fn bad_arguments_give_one_line() {
        for bad in [
            vec!["p2p-node"],
            vec!["p2p-node", "70000"],
            vec!["p2p-node", "abc"],
            vec!["p2p-node", "8001", "nonsense"],
            vec!["p2p-node", "--max-peers", "0", "8001"],
            vec!["p2p-node", "--frobnicate", "8001"],
        ] {
            let (msg, code) = parse(bad.clone()).unwrap_err();
            assert_eq!(code, 2, "{bad:?}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
            assert!(msg.starts_with("p2p-node: "), "{msg}");
        }
    }
}
