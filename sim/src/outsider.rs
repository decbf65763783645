//! The `lan` scenario's outsiders: a few hosts of another network (another
//! network key; any key at all when the members are plaintext) that run
//! the deployed node on the same simulated LAN segment as the members,
//! with no bootstrap either. They hear the members' announcements and the
//! members hear theirs; each driver must ignore the other network's
//! ([`p2p_net::Heard::same_network`]), so no member ever dials an outsider
//! and no outsider ever dials a member
//! ([`OTHER_NETWORK_NEVER_DIALED`], judged from both sides' taps: a
//! member's dial or accepted connection, an outsider's dial). The
//! outsiders do find each other through the segment (counter
//! `lan_other_network_peered`), which shows that they hear it.
//!
//! Outsiders are not hosts of the [`World`]: the mesh checks never count
//! them; their taps go into the trace hash only.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use p2p_core::{Event, Output};
use p2p_net::{start, MemStorage, TapEvent};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{psk_of, SimConfig, PORT};
use crate::invariants::OTHER_NETWORK_NEVER_DIALED;
use crate::lan::LanSegment;
use crate::transport::TurmoilTransport;
use crate::world::{lock, Shared, World};

/// How many outsiders announce on the segment.
pub(crate) const OUTSIDERS: usize = 3;

/// The turmoil host name of outsider `k`.
pub(crate) fn host_name(k: usize) -> String {
    format!("other-{k}")
}

/// The world's record of the outsiders.
#[derive(Debug, Default)]
pub(crate) struct Outsiders {
    /// Outsider index by IP.
    ips: BTreeMap<IpAddr, usize>,
}

impl Outsiders {
    /// Registers outsider `k` at `ip`.
    pub(crate) fn add(&mut self, k: usize, ip: IpAddr) {
        self.ips.insert(ip, k);
    }

    /// The outsider at `ip`, if one.
    pub(crate) fn by_ip(&self, ip: IpAddr) -> Option<usize> {
        self.ips.get(&ip).copied()
    }

    /// Outsider `k`'s IP.
    fn ip(&self, k: usize) -> Option<IpAddr> {
        self.ips.iter().find(|(_, &v)| v == k).map(|(ip, _)| *ip)
    }
}

/// The outsiders' PSK: never the members' (their key, or none).
fn other_psk(cfg: &SimConfig) -> [u8; 32] {
    psk_of(&format!(
        "another network than {:?}",
        cfg.network_key.as_deref()
    ))
}

impl World {
    /// Member `h`'s node dialed `addr` or accepted a connection from it.
    pub(crate) fn member_touched(
        &mut self,
        h: usize,
        addr: SocketAddr,
        dialed: bool,
        at: Duration,
    ) {
        let Some(k) = self.outsiders.by_ip(addr.ip()) else {
            return;
        };
        let detail = if dialed {
            format!(
                "dialed {addr}, where {} of another network listens",
                host_name(k)
            )
        } else {
            format!(
                "accepted a connection from {} of another network ({addr})",
                host_name(k)
            )
        };
        self.violate(OTHER_NETWORK_NEVER_DIALED, at, Some(h), detail);
    }

    /// Every input and output of outsider `k`'s node.
    pub(crate) fn outsider_tap(&mut self, k: usize, ev: &TapEvent<'_>) {
        let at = turmoil::sim_elapsed().unwrap_or(self.now);
        // Numbered after the members in the trace.
        let tag = self.hosts.len() + k;
        self.trace.tap(tag, 0, at, ev);
        match ev {
            TapEvent::Output(Output::Dial { addr, .. }) => {
                let member = addr
                    .as_str()
                    .parse::<SocketAddr>()
                    .ok()
                    .and_then(|a| self.host_at(a.ip()));
                if let Some(h) = member {
                    let detail = format!("{} of another network dialed it at {addr}", host_name(k));
                    self.violate(OTHER_NETWORK_NEVER_DIALED, at, Some(h), detail);
                }
            }
            TapEvent::Output(Output::Event(Event::PeerConnected { .. })) => {
                self.coverage.hit("lan_other_network_peered");
            }
            _ => {}
        }
    }
}

/// One outsider host: starts at a seeded time within the start window and
/// runs a node of the other network on the segment until the run ends.
pub(crate) async fn run(
    world: Shared,
    cfg: Arc<SimConfig>,
    k: usize,
    segment: LanSegment,
) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.outsider_seed(k));
    let window = cfg.start_window.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(rng.next_u64() % (window + 1))).await;
    let (ip, resets) = {
        let w = lock(&world);
        (w.outsiders.ip(k), w.resets.clone())
    };
    let ip = ip.ok_or_else(|| format!("{}: not registered", host_name(k)))?;
    let mut net = p2p_net::NetConfig::new(PORT);
    net.core = cfg.node_config(0);
    net.core.name = Some(host_name(k));
    net.core.session.network_key = Some(other_psk(&cfg));
    net.seed = rng.next_u64();
    net.slow_reader_timeout = cfg.scaled(net.slow_reader_timeout);
    net.lan = Some(Arc::new(segment.member(ip, rng.next_u64())));
    let tap_world = world.clone();
    net.tap = Some(Arc::new(move |ev| lock(&tap_world).outsider_tap(k, ev)));
    let (_node, mut events) = start(net, TurmoilTransport::new(resets), MemStorage::default())
        .await
        .map_err(|e| format!("{}: the node did not start: {e}", host_name(k)))?;
    // Read its events (the tap already saw them) so that it never stops
    // reading its peers; then idle until the run ends.
    while events.next().await.is_some() {}
    std::future::pending::<()>().await;
    Ok(())
}
