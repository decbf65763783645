//! Listening addresses as they travel in `LISTEN:` and `PEERS:` lines.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::error::ProtocolError;

/// A normalised `host:port` listening address.
///
/// Normalisation makes aliases compare equal where that is possible without
/// DNS: the host is lowercased, `localhost` becomes `127.0.0.1`, IPv6 hosts
/// are bracketed and written in canonical form. (The reference treats
/// `localhost:9300` and `127.0.0.1:9300` as two peers.)
//
// The host's IP is parsed once, at construction: the sharing rules ask for
// it for every address of every `PEERS` line. It is a function of the text,
// so the derived comparisons order and equate exactly as the text alone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(String, Option<IpAddr>);

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Addr").field(&self.0).finish()
    }
}

impl Serialize for Addr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Addr {
    /// Longest address text we accept from the wire.
    pub const MAX_LEN: usize = 262;

    /// Parses and normalises `host:port` (IPv6 as `[v6]:port`).
    pub fn parse(s: &str) -> Result<Addr, ProtocolError> {
        let bad = || ProtocolError::InvalidAddr {
            addr: crate::truncate_for_report(s),
        };
        let s = s.trim();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(bad());
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            if sa.port() == 0 {
                return Err(bad());
            }
            // An IPv4 text the parser took is canonical (it refuses leading
            // zeros in octets) unless its port has some: keep the text and
            // skip the formatting, the bulk of parsing a `PEERS` line.
            if let (SocketAddr::V4(v4), Some((_, port))) = (sa, s.rsplit_once(':')) {
                if !port.starts_with('0') {
                    return Ok(Addr(s.to_owned(), Some(IpAddr::V4(*v4.ip()))));
                }
            }
            return Ok(Addr::from_socket(sa));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 || host.is_empty() {
            return Err(bad());
        }
        let host = host.to_ascii_lowercase();
        let valid_host = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid_host {
            return Err(bad());
        }
        if host == "localhost" {
            return Ok(Addr(
                format!("127.0.0.1:{port}"),
                Some(IpAddr::from([127, 0, 0, 1])),
            ));
        }
        // Not an IP (that parsed as a socket address above): a host name.
        Ok(Addr(format!("{host}:{port}"), None))
    }

    /// The address of a socket.
    pub fn from_socket(sa: SocketAddr) -> Addr {
        match sa.ip() {
            IpAddr::V4(ip) => Addr(format!("{ip}:{}", sa.port()), Some(ip.into())),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Addr(format!("{v4}:{}", sa.port()), Some(v4.into())),
                None => Addr(format!("[{ip}]:{}", sa.port()), Some(ip.into())),
            },
        }
    }

    /// Builds `host:port` from parts.
    pub fn from_host_port(host: &str, port: u16) -> Result<Addr, ProtocolError> {
        if host.contains(':') && !host.starts_with('[') {
            Addr::parse(&format!("[{host}]:{port}"))
        } else {
            Addr::parse(&format!("{host}:{port}"))
        }
    }

    /// The text form, `host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part (with brackets for IPv6).
    pub fn host(&self) -> &str {
        // Invariant: every Addr is built with a `:port` suffix.
        self.0.rsplit_once(':').map(|(h, _)| h).unwrap_or(&self.0)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.1
    }

    /// Loopback or unspecified host: useless to anyone on another machine.
    pub fn is_local_only(&self) -> bool {
        self.ip()
            .map(|ip| ip.is_loopback() || ip.is_unspecified())
            .unwrap_or(false)
    }

    /// `[::1]:` addresses, which the reference never shares.
    pub fn is_ipv6_loopback(&self) -> bool {
        matches!(self.ip(), Some(IpAddr::V6(ip)) if ip.is_loopback())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached IP is what parsing the host text gives.
    fn parsed_ip(a: &Addr) -> Option<IpAddr> {
        let h = a.host();
        let h = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        h.parse().ok()
    }

    #[test]
    fn the_cached_ip_is_the_hosts() {
        for s in [
            "127.0.0.1:1",
            "localhost:2",
            "LOCALHOST:2",
            "[::1]:3",
            "[::ffff:10.0.0.1]:4",
            "[2001:db8::1]:5",
            "example.org:6",
            "0.0.0.0:7",
            "10.1.2.3:8",
        ] {
            let a = Addr::parse(s).unwrap();
            assert_eq!(a.ip(), parsed_ip(&a), "{s}");
        }
    }

    #[test]
    fn normalises_aliases() {
        assert_eq!(
            Addr::parse("localhost:9300").unwrap().as_str(),
            "127.0.0.1:9300"
        );
        assert_eq!(
            Addr::parse("LocalHost:9300").unwrap(),
            Addr::parse("127.0.0.1:9300").unwrap()
        );
        assert_eq!(Addr::parse("[::1]:80").unwrap().as_str(), "[::1]:80");
        assert_eq!(
            Addr::parse("[::ffff:10.0.0.1]:80").unwrap().as_str(),
            "10.0.0.1:80"
        );
        assert_eq!(Addr::parse("Node-3:8001").unwrap().as_str(), "node-3:8001");
        assert!(Addr::parse("[::1]:80").unwrap().is_ipv6_loopback());
        assert!(Addr::parse("0.0.0.0:1").unwrap().is_local_only());
        assert!(!Addr::parse("10.1.2.3:1").unwrap().is_local_only());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            ":80",
            "host",
            "host:0",
            "host:70000",
            "ho st:1",
            "a/b:1",
            "h:-1",
            "x:1:2",
        ] {
            assert!(Addr::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Addr::parse(&format!("{}:1", "a".repeat(300))).is_err());
    }

    #[test]
    fn the_longest_address_accepted_is_max_len_bytes() {
        let longest = format!("{}:1", "a".repeat(Addr::MAX_LEN - 2));
        assert_eq!(longest.len(), Addr::MAX_LEN);
        assert_eq!(Addr::parse(&longest).unwrap().as_str(), longest);
        let one_more = format!("{}:1", "a".repeat(Addr::MAX_LEN - 1));
        assert!(Addr::parse(&one_more).is_err());
    }

    #[test]
    fn host_names_may_hold_dots_dashes_and_underscores() {
        assert_eq!(
            Addr::parse("Node_3.Lan-A:8001").unwrap().as_str(),
            "node_3.lan-a:8001"
        );
        assert_eq!(Addr::parse("a.b:1").unwrap().host(), "a.b");
        assert_eq!(Addr::parse("a_b:1").unwrap().host(), "a_b");
    }

    #[test]
    fn from_host_port_brackets_a_bare_ipv6_host_once() {
        let v6 = |h: &str| Addr::from_host_port(h, 80).unwrap();
        assert_eq!(v6("::1").as_str(), "[::1]:80");
        assert_eq!(v6("[::1]").as_str(), "[::1]:80");
        assert_eq!(v6("fe80::2").as_str(), "[fe80::2]:80");
        assert_eq!(v6("node-1").as_str(), "node-1:80");
        assert_eq!(v6("10.0.0.1").as_str(), "10.0.0.1:80");
    }

    proptest::proptest! {
        /// The IPv4 fast path of `parse` gives exactly the canonical form
        /// `from_socket` would, whatever the spelling of the port.
        #[test]
        fn ipv4_texts_parse_to_their_canonical_form(
            ip: [u8; 4],
            port in 1u16..,
            zeros in 0usize..3,
        ) {
            let text = format!("{}:{}{port}", std::net::Ipv4Addr::from(ip), "0".repeat(zeros));
            let canonical = Addr::from_socket(text.parse().unwrap());
            let parsed = Addr::parse(&text).unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), canonical.as_str());
            proptest::prop_assert_eq!(parsed.ip(), canonical.ip());
        }
    }
}
