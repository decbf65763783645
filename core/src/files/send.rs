//! The sending side of one file (docs/PROTOCOL.md §5.2), as a state
//! machine over storage completions: open the source, read it once to hash
//! it (`FILESTART` carries the checksum), then read it again chunk by chunk
//! and send each chunk once every target's send queue is below the window,
//! then `FILEEND`. At most one read is in flight and one chunk waits, so
//! memory does not grow with the file.
//!
//! The sending pass is hashed too: a source that changed after the hash
//! pass fails the send before its last chunk instead of going out under a
//! checksum its chunks do not match. Each target is bound to the connection
//! its `FILESTART` went on, and dropped if it moves to another one.

use std::collections::BTreeMap;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::event::StorageOp;
use crate::file::Outgoing;
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{ConnId, Event, PeerId, SendFailure, TransferId};

/// Where a send is.
#[derive(Debug)]
enum Phase {
    /// Waiting for the source to open.
    Opening,
    /// Reading the whole source once for the checksum.
    Hashing { hasher: Sha256, offset: u64 },
    /// `FILESTART` is out; chunks follow.
    Sending {
        file: Outgoing,
        /// The targets `FILESTART` went to.
        to: Targets,
        /// The checksum of what the sending pass read so far.
        check: Sha256,
        /// Offset of the next read.
        read_at: u64,
        /// A read is in flight.
        reading: bool,
        /// A chunk read but not sent yet (a target's queue is full).
        parked: Option<Bytes>,
    },
}

/// Why a send ended early.
#[derive(Debug)]
pub(crate) enum SendEnd {
    /// Every chunk and `FILEEND` went out to `peers` targets.
    Done { peers: usize },
    /// It failed; the source must be closed.
    Failed(SendFailure),
}

/// The targets of a file, each bound to the connection its `FILESTART`
/// went on. A peer that moves to another connection (a simultaneous
/// connect merged onto the other one) is dropped: that connection never
/// carried `FILESTART`, and nothing orders the two (docs/PROTOCOL.md §5.2).
#[derive(Debug, Default)]
pub(crate) struct Targets(Vec<(PeerId, ConnId)>);

impl Targets {
    /// Binds each of `to` that is connected now.
    pub(crate) fn bind(peers: &Peers, to: &[PeerId]) -> Targets {
        Targets(
            to.iter()
                .filter_map(|p| peers.conn_of(p).map(|c| (p.clone(), c)))
                .collect(),
        )
    }

    /// Drops the targets that left or moved to another connection.
    pub(crate) fn retain_live(&mut self, peers: &Peers) {
        self.0.retain(|(p, c)| peers.is_current(p, *c));
    }

    /// Sends `frames` to each target; returns how many it went to.
    pub(crate) fn transmit(&self, frames: &[Bytes], out: &mut Outbox) -> usize {
        for (_, conn) in &self.0 {
            for f in frames {
                out.transmit(*conn, f.clone());
            }
        }
        self.0.len()
    }

    pub(crate) fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.0.iter().map(|(_, c)| *c)
    }

    pub(crate) fn ids(&self) -> Vec<PeerId> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// One outgoing file.
#[derive(Debug)]
pub(crate) struct Send {
    id: TransferId,
    name: String,
    /// The targets asked for; bound to connections at `FILESTART`.
    to: Vec<PeerId>,
    size: u64,
    chunk_size: usize,
    last_percent: u64,
    phase: Phase,
}

/// Integer percent; an empty file is 100 %.
fn percent(done: u64, size: u64) -> u64 {
    if size == 0 {
        return 100;
    }
    u64::try_from(u128::from(done) * 100 / u128::from(size)).unwrap_or(100)
}

impl Send {
    /// A send of the source at `path` under `name` to `to`; asks the
    /// driver to open it.
    pub(crate) fn start(
        id: TransferId,
        path: String,
        name: String,
        to: Vec<PeerId>,
        chunk_size: usize,
        out: &mut Outbox,
    ) -> Send {
        out.push(crate::Output::Storage(StorageOp::Open {
            transfer: id,
            path,
        }));
        Send {
            id,
            name,
            to,
            size: 0,
            chunk_size: chunk_size.max(1),
            last_percent: 0,
            phase: Phase::Opening,
        }
    }

    /// The targets still in the send.
    pub(crate) fn targets(&self) -> Vec<PeerId> {
        match &self.phase {
            Phase::Sending { to, .. } => to.ids(),
            _ => self.to.clone(),
        }
    }

    fn read(&self, offset: u64, out: &mut Outbox) {
        let len = (self.size - offset).min(self.chunk_size as u64) as usize;
        out.push(crate::Output::Storage(StorageOp::Read {
            transfer: self.id,
            offset,
            len,
        }));
    }

    /// The source opened with `size` bytes: the hash pass starts.
    pub(crate) fn on_opened(
        &mut self,
        size: u64,
        peers: &Peers,
        out: &mut Outbox,
    ) -> Option<SendEnd> {
        if !matches!(self.phase, Phase::Opening) {
            return Some(SendEnd::Failed(SendFailure::OutOfTurn(
                "an open answered twice".into(),
            )));
        }
        self.size = size;
        self.phase = Phase::Hashing {
            hasher: Sha256::new(),
            offset: 0,
        };
        if size == 0 {
            return self.hashed(peers, out);
        }
        self.read(0, out);
        None
    }

    /// A read completed.
    pub(crate) fn on_read(
        &mut self,
        offset: u64,
        data: Bytes,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
        window: u64,
        out: &mut Outbox,
    ) -> Option<SendEnd> {
        let want = (self.size.saturating_sub(offset)).min(self.chunk_size as u64);
        match &mut self.phase {
            Phase::Hashing { hasher, offset: at } if *at == offset => {
                if data.len() as u64 != want {
                    return Some(SendEnd::Failed(SendFailure::Changed(
                        "changed while hashing",
                    )));
                }
                hasher.update(&data);
                *at += want;
                let next = *at;
                if next < self.size {
                    self.read(next, out);
                    return None;
                }
                self.hashed(peers, out)
            }
            Phase::Sending {
                file,
                check,
                read_at,
                reading,
                parked,
                ..
            } if *reading && *read_at == offset && parked.is_none() => {
                if data.len() as u64 != want {
                    return Some(SendEnd::Failed(SendFailure::Changed(
                        "shrank while sending",
                    )));
                }
                check.update(&data);
                *reading = false;
                *read_at += want;
                // The last chunk waits until the pass is known to match
                // the checksum `FILESTART` announced.
                if *read_at == self.size {
                    let sent: [u8; 32] = std::mem::take(check).finalize().into();
                    if sent != file.sha256() {
                        return Some(SendEnd::Failed(SendFailure::Changed(
                            "changed after hashing",
                        )));
                    }
                }
                *parked = Some(data);
                self.pump(peers, queued, &mut BTreeMap::new(), window, out)
            }
            _ => Some(SendEnd::Failed(SendFailure::OutOfTurn(format!(
                "a read at {offset} that was not asked"
            )))),
        }
    }

    /// The checksum is known: `FILESTART` goes out.
    fn hashed(&mut self, peers: &Peers, out: &mut Outbox) -> Option<SendEnd> {
        let Phase::Hashing { hasher, .. } = std::mem::replace(&mut self.phase, Phase::Opening)
        else {
            return Some(SendEnd::Failed(SendFailure::OutOfTurn(
                "hash pass out of order".into(),
            )));
        };
        let sha256: [u8; 32] = hasher.finalize().into();
        let file = match Outgoing::new(&self.name, self.size, sha256) {
            Ok(f) => f,
            Err(e) => return Some(SendEnd::Failed(SendFailure::Refused(e))),
        };
        let to = Targets::bind(peers, &self.to);
        if to.is_empty() {
            return Some(SendEnd::Failed(SendFailure::TargetsGone));
        }
        to.transmit(&[file.start_frame()], out);
        out.event(Event::FileSendStarted {
            transfer: self.id,
            name: self.name.clone(),
            size: self.size,
            peers: to.len(),
        });
        self.phase = Phase::Sending {
            file,
            to,
            check: Sha256::new(),
            read_at: 0,
            reading: false,
            parked: None,
        };
        self.advance(out)
    }

    /// Starts the next read, or ends the file when everything was sent.
    fn advance(&mut self, out: &mut Outbox) -> Option<SendEnd> {
        let Phase::Sending {
            file,
            to,
            read_at,
            reading,
            parked,
            ..
        } = &mut self.phase
        else {
            return None;
        };
        if *reading || parked.is_some() {
            return None;
        }
        if *read_at < self.size {
            *reading = true;
            let at = *read_at;
            self.read(at, out);
            return None;
        }
        // Everything was read and sent (an empty file gets here at once).
        let end = match file.end_frame(self.id) {
            Ok(f) => f,
            Err(e) => return Some(SendEnd::Failed(SendFailure::Refused(e))),
        };
        if self.size == 0 {
            out.event(Event::FileSendProgress {
                transfer: self.id,
                name: self.name.clone(),
                sent: 0,
                size: 0,
            });
        }
        Some(SendEnd::Done {
            peers: to.transmit(&[end], out),
        })
    }

    /// Sends the parked chunk if every target has room, then reads on.
    /// Call it whenever a queue drained or a target left.
    /// `sent` holds what earlier sends transmitted in the same call, not
    /// yet in `queued`; this one adds its chunk to it.
    pub(crate) fn pump(
        &mut self,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
        sent: &mut BTreeMap<ConnId, u64>,
        window: u64,
        out: &mut Outbox,
    ) -> Option<SendEnd> {
        let Phase::Sending {
            file, to, parked, ..
        } = &mut self.phase
        else {
            return None;
        };
        to.retain_live(peers);
        if to.is_empty() {
            return Some(SendEnd::Failed(SendFailure::TargetsGone));
        }
        let chunk = parked.as_ref()?;
        // Every target at or below the window: the chunk then takes a
        // stalled one above it, where the driver's slow-reader check sees it.
        let level =
            |c: ConnId| queued.get(&c).copied().unwrap_or(0) + sent.get(&c).copied().unwrap_or(0);
        let full = to.conns().any(|c| level(c) > window);
        if full {
            return None;
        }
        let chunk = chunk.clone();
        let frames = match file.chunk_frame(self.id, chunk) {
            Ok(f) => f,
            Err(e) => return Some(SendEnd::Failed(SendFailure::Refused(e))),
        };
        *parked = None;
        to.transmit(&frames, out);
        let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
        for conn in to.conns() {
            *sent.entry(conn).or_default() += bytes;
        }
        let done = file.sent();
        let pct = percent(done, self.size);
        if pct > self.last_percent {
            self.last_percent = pct;
            out.event(Event::FileSendProgress {
                transfer: self.id,
                name: self.name.clone(),
                sent: done,
                size: self.size,
            });
        }
        self.advance(out)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}
