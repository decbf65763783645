//! The `intruders` scenario's attackers and what the world checks about
//! them. A private mesh forms while four intruder hosts keep trying to get
//! in, each a scripted raw client over turmoil's TCP (no node of its own):
//!
//! - `no-key`: speaks the plaintext line protocol (hello, `LISTEN:`, a
//!   chat line); an honest node must refuse it with `plaintext_peer`;
//! - `wrong-key`: a real Noise initiator ([`p2p_core::session::Session`])
//!   with another network key; refused at message 1 with
//!   `wrong_key_or_not_private`;
//! - `replay`: replays the bytes an honest dialer sent on one of its
//!   connections (recorded from the tap: message 1, message 3, its hello)
//!   to any honest node; message 1 authenticates (psk0 binds only the
//!   key), message 3 does not (it is bound to the recorded run's
//!   ephemeral keys): `wrong_key_or_not_private`;
//! - `stolen-id`: an insider gone rogue, with the network key and a key
//!   pair of its own: it completes the handshake, then claims an honest
//!   node's id in its hello (and sends a chat line behind it); refused
//!   with `impersonation` (the id of an established peer) or
//!   `id_mismatch`.
//!
//! Checks (see [`crate::invariants`]): no intruder's connection or id
//! enters an honest peer table ([`INTRUDER_KEPT_OUT`]); nothing an
//! intruder sent reaches an honest application
//! ([`INTRUDER_NOTHING_DELIVERED`]: by connection, and by the
//! [`INTRUDER_PREFIX`] of every intruder chat line); every intruder
//! connection an honest node handles is refused with its kind's typed
//! reason, and every kind was attempted and refused ([`INTRUDER_REFUSED`];
//! counters `intruder_*_refused`). Everything an intruder does derives
//! from the seed ([`crate::SimConfig`]'s intruder streams).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_core::session::{Keys, Session};
use p2p_core::{ConnId, Event, PeerId, ProtocolError, SessionError};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{psk_of, Sabotage, SimConfig, PORT};
use crate::invariants::{INTRUDER_KEPT_OUT, INTRUDER_NOTHING_DELIVERED, INTRUDER_REFUSED};
use crate::world::{lock, Shared, World};

/// Prefix of every chat line an intruder sends.
pub(crate) const INTRUDER_PREFIX: &str = "intruder-chat ";

/// The kinds of intruder, one host each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    NoKey,
    WrongKey,
    Replay,
    StolenId,
}

/// Every kind, in host order.
pub(crate) const KINDS: [Kind; 4] = [Kind::NoKey, Kind::WrongKey, Kind::Replay, Kind::StolenId];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NoKey => "no-key",
            Kind::WrongKey => "wrong-key",
            Kind::Replay => "replay",
            Kind::StolenId => "stolen-id",
        }
    }

    /// The turmoil host name of this intruder.
    pub(crate) fn host_name(self) -> String {
        format!("x-{}", self.name())
    }

    /// The coverage counter of its refusals.
    fn counter(self) -> &'static str {
        match self {
            Kind::NoKey => "intruder_no_key_refused",
            Kind::WrongKey => "intruder_wrong_key_refused",
            Kind::Replay => "intruder_replay_refused",
            Kind::StolenId => "intruder_stolen_id_refused",
        }
    }

    /// Whether `e` is the reason an honest node must give it.
    fn expected(self, e: &SessionError) -> bool {
        match self {
            Kind::NoKey => matches!(e, SessionError::PlaintextPeer),
            Kind::WrongKey | Kind::Replay => matches!(e, SessionError::WrongKeyOrNotPrivate),
            Kind::StolenId => matches!(
                e,
                SessionError::Impersonation { .. } | SessionError::IdMismatch { .. }
            ),
        }
    }

    fn expected_text(self) -> &'static str {
        match self {
            Kind::NoKey => "plaintext_peer",
            Kind::WrongKey | Kind::Replay => "wrong_key_or_not_private",
            Kind::StolenId => "impersonation or id_mismatch",
        }
    }
}

/// The world's record of the intruders.
#[derive(Debug, Default)]
pub(crate) struct Intruders {
    /// Intruder index by IP.
    ips: BTreeMap<IpAddr, usize>,
    /// Ids intruders showed or claimed as their own (the rogue's key id).
    own_ids: BTreeSet<PeerId>,
    /// Attempts (connections opened) per intruder.
    pub(crate) attempts: [u64; 4],
    /// Refusals with the expected reason per intruder.
    pub(crate) refused: [u64; 4],
    /// An honest dialer's first chunks on an established connection, and
    /// the host it dialed.
    recording: Option<(Vec<Bytes>, usize)>,
    /// The scenario is over: no new attempts.
    pub(crate) stopped: bool,
    /// The simulator's own IPs of the intruder hosts, for a planted bug.
    pub(crate) ip_set: Arc<BTreeSet<IpAddr>>,
}

impl Intruders {
    /// Registers intruder `k` at `ip`.
    pub(crate) fn add(&mut self, k: usize, ip: IpAddr) {
        self.ips.insert(ip, k);
        self.ip_set = Arc::new(self.ips.keys().copied().collect());
    }

    /// The intruder at `ip`, if one.
    pub(crate) fn by_ip(&self, ip: IpAddr) -> Option<usize> {
        self.ips.get(&ip).copied()
    }

    /// Keeps the first recording of an honest dialer's connection.
    pub(crate) fn record(&mut self, chunks: Vec<Bytes>, target: usize) {
        if self.recording.is_none() && chunks.len() >= 2 {
            self.recording = Some((chunks, target));
        }
    }

    /// Kinds never refused (with what was attempted), for the report.
    pub(crate) fn missing(&self) -> Vec<String> {
        KINDS
            .iter()
            .enumerate()
            .filter(|(k, _)| self.refused[*k] == 0)
            .map(|(k, kind)| {
                format!(
                    "the {} intruder was never refused ({} attempts)",
                    kind.name(),
                    self.attempts[k]
                )
            })
            .collect()
    }
}

/// The world's intruder checks, from honest nodes' taps.
impl World {
    /// A protocol error or delivery on one of `h`'s connections.
    pub(crate) fn intruder_event(&mut self, h: usize, e: &Event, at: Duration) {
        match e {
            Event::ProtocolError { conn, error, .. } => {
                let Some(t) = self.hosts[h].conns.get_mut(conn) else {
                    return;
                };
                let Some(k) = t.intruder else { return };
                let kind = KINDS[k];
                match error {
                    ProtocolError::Session(s) if kind.expected(s) => {
                        t.refused = true;
                        self.intruders.refused[k] += 1;
                        self.coverage.hit(kind.counter());
                    }
                    other => {
                        t.refused = true;
                        let detail = format!(
                            "{conn} from the {} intruder refused with \"{other}\", not {}",
                            kind.name(),
                            kind.expected_text()
                        );
                        self.violate(INTRUDER_REFUSED, at, Some(h), detail);
                    }
                }
            }
            Event::Chat { text, .. } if text.starts_with(INTRUDER_PREFIX) => {
                let detail = format!("an intruder's chat line {text:?} was delivered");
                self.violate(INTRUDER_NOTHING_DELIVERED, at, Some(h), detail);
            }
            Event::Chat { .. }
            | Event::Bytes { .. }
            | Event::FileStarted { .. }
            | Event::FileReceived { .. } => {
                let Some(conn) = self.input_conn(h) else {
                    return;
                };
                let from = self.hosts[h].conns.get(&conn).and_then(|t| t.intruder);
                if let Some(k) = from {
                    let detail = format!(
                        "{conn} from the {} intruder delivered {}",
                        KINDS[k].name(),
                        match e {
                            Event::Chat { .. } => "a chat line",
                            Event::Bytes { .. } => "a bytes frame",
                            _ => "a file",
                        }
                    );
                    self.violate(INTRUDER_NOTHING_DELIVERED, at, Some(h), detail);
                }
            }
            _ => {}
        }
    }

    /// `peer` entered `h`'s table: not over an intruder's connection, and
    /// not an id an intruder holds. Returns whether it was an intruder.
    pub(crate) fn intruder_peer_added(&mut self, h: usize, peer: &PeerId, at: Duration) -> bool {
        let host = &self.hosts[h];
        let via = host
            .est
            .get(peer)
            .into_iter()
            .flatten()
            .find_map(|c| host.conns.get(c).and_then(|t| t.intruder));
        let problem = match via {
            Some(k) => Some(format!(
                "peer {peer} entered the table over a connection from the {} intruder",
                KINDS[k].name()
            )),
            None if self.intruders.own_ids.contains(peer) => {
                Some(format!("intruder id {peer} entered the table"))
            }
            None => None,
        };
        let found = problem.is_some();
        if let Some(p) = problem {
            self.violate(INTRUDER_KEPT_OUT, at, Some(h), p);
        }
        found
    }

    /// One of `h`'s connections ended: an intruder's must have been
    /// refused first.
    pub(crate) fn intruder_conn_ended(&mut self, h: usize, conn: ConnId, at: Duration) {
        let Some(t) = self.hosts[h].conns.get(&conn) else {
            return;
        };
        if let (Some(k), false) = (t.intruder, t.refused) {
            if !self.intruders.stopped {
                let detail = format!(
                    "{conn} from the {} intruder ended without being refused",
                    KINDS[k].name()
                );
                self.violate(INTRUDER_REFUSED, at, Some(h), detail);
            }
        }
    }
}

// ----- the intruders' software -----

/// How long an intruder waits for a node's answer or its close.
const PATIENCE: Duration = Duration::from_millis(1500);

/// One intruder host: attempts, one after another, at seeded times and
/// targets, until the scenario stops them.
pub(crate) async fn run(world: Shared, cfg: Arc<SimConfig>, k: usize) -> turmoil::Result {
    let kind = KINDS[k];
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.intruder_seed(k));
    let right = cfg.psk().unwrap_or_default();
    let leaked = cfg.sabotage == Some(Sabotage::LeakedKey) && kind == Kind::WrongKey;
    let psk = match kind {
        Kind::WrongKey if !leaked => psk_of(&format!(
            "not {}",
            cfg.network_key.as_deref().unwrap_or_default()
        )),
        _ => right,
    };
    let mut private = [0u8; 32];
    rng.fill_bytes(&mut private);
    let keys = Keys::new(psk, private, None);
    if matches!(kind, Kind::StolenId) || leaked {
        lock(&world).intruders.own_ids.insert(keys.id());
    }
    tokio::time::sleep(Duration::from_millis(100 + rng.next_u64() % 400)).await;
    let mut n = 0u64;
    loop {
        let plan = {
            let w = lock(&world);
            if w.intruders.stopped {
                None
            } else {
                Some(w.alive_hosts())
            }
        };
        let Some(targets) = plan else {
            // Done: idle until the run ends.
            std::future::pending::<()>().await;
            return Ok(());
        };
        if !targets.is_empty() {
            let target = targets[(rng.next_u64() % targets.len() as u64) as usize];
            attempt(&world, kind, k, target, &keys, &mut rng, n).await;
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.next_u64() % 300)).await;
    }
}

/// What one attempt sends, decided before connecting.
enum Script {
    /// Plaintext bytes.
    Plain(Vec<u8>),
    /// A Noise initiator, and the plaintext it says once in transport.
    Noise(Vec<u8>),
    /// Recorded chunks: the first, then (after the answer) the rest.
    Replay(Vec<Bytes>),
}

async fn attempt(
    world: &Shared,
    kind: Kind,
    k: usize,
    target: usize,
    keys: &Arc<Keys>,
    rng: &mut ChaCha8Rng,
    n: u64,
) {
    let fake_listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 99, 0, k as u8)), PORT);
    let chat = format!("{INTRUDER_PREFIX}{}-{n}\n", kind.name());
    let (ip, script) = {
        let w = lock(world);
        let ip = w.hosts[target].ip;
        let script = match kind {
            Kind::NoKey => {
                let mut id = [0u8; 16];
                rng.fill_bytes(&mut id);
                let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
                Script::Plain(format!("{id}:intruder\nLISTEN:{fake_listen}\n{chat}").into_bytes())
            }
            Kind::WrongKey => Script::Noise(
                // Only sent with a leaked key: a valid hello of its own.
                format!("{}:intruder\nLISTEN:{fake_listen}\n", keys.id()).into_bytes(),
            ),
            Kind::Replay => match &w.intruders.recording {
                Some((chunks, _)) => Script::Replay(chunks.clone()),
                None => return,
            },
            Kind::StolenId => {
                // Prefer an id the target holds as a peer: an impersonation.
                let held: Vec<PeerId> = w.hosts[target].peers.iter().cloned().collect();
                let others: Vec<PeerId> = w
                    .alive_hosts()
                    .into_iter()
                    .filter(|&h| h != target)
                    .filter_map(|h| w.hosts[h].id.clone())
                    .collect();
                let pool = if held.is_empty() { others } else { held };
                let Some(victim) = pool.get((rng.next_u64() % pool.len().max(1) as u64) as usize)
                else {
                    return;
                };
                Script::Noise(
                    format!("{victim}:intruder\nLISTEN:{fake_listen}\n{chat}").into_bytes(),
                )
            }
        };
        (ip, script)
    };
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let Ok(mut stream) = turmoil::net::TcpStream::connect(SocketAddr::new(ip, PORT)).await else {
        return;
    };
    {
        let mut w = lock(world);
        w.intruders.attempts[k] += 1;
        w.coverage.hit("intruder_attempted");
        let at = turmoil::sim_elapsed().unwrap_or_default();
        w.trace.note(
            at,
            format_args!("intruder {} attempt {n} on {target}", kind.name()),
        );
    }
    let mut buf = vec![0u8; 4096];
    match script {
        Script::Plain(bytes) => {
            let _ = stream.write_all(&bytes).await;
            drain(&mut stream, &mut buf).await;
        }
        Script::Replay(chunks) => {
            if stream.write_all(&chunks[0]).await.is_err() {
                return;
            }
            // Message 2 (2 + 96 bytes), or whatever comes first.
            let _ = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
            for c in &chunks[1..] {
                if stream.write_all(c).await.is_err() {
                    return;
                }
            }
            drain(&mut stream, &mut buf).await;
        }
        Script::Noise(hello) => {
            let Ok(mut s) = Session::new(true, keys.clone(), seed) else {
                return;
            };
            let mut said = false;
            loop {
                while let Some(w) = s.poll_wire() {
                    if stream.write_all(&w).await.is_err() {
                        return;
                    }
                }
                if s.is_transport() && !said {
                    said = true;
                    s.send(Bytes::from(hello.clone()));
                    continue;
                }
                match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        if s.receive(&buf[..n]).is_err() {
                            return;
                        }
                        while s.poll_plain().is_some() {}
                    }
                    _ => return,
                }
            }
        }
    }
}

/// Reads until the node closes, or patience runs out.
async fn drain(stream: &mut turmoil::net::TcpStream, buf: &mut [u8]) {
    while let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, stream.read(buf)).await {
        if n == 0 {
            return;
        }
    }
}
