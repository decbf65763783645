//! The files component: the legacy file protocol over bytes frames
//! (docs/PROTOCOL.md §5), receiving through the [`Assembler`] and sending
//! through [`Outgoing`] framing.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use crate::file::{Assembler, AssemblerLimits, FileFrame, Outgoing};
use crate::io::Outbox;
use crate::peers::Peers;
use crate::{CommandError, Config, PeerId, Target, TransferId};

#[derive(Debug)]
struct Sending {
    file: Outgoing,
    to: Vec<PeerId>,
}

/// Incoming and outgoing file transfers.
#[derive(Debug)]
pub(crate) struct Files {
    assembler: Assembler,
    sending: BTreeMap<TransferId, Sending>,
    next_transfer: u64,
    pub(crate) out: Outbox,
}

impl Files {
    pub(crate) fn new(config: &Config) -> Self {
        Files {
            assembler: Assembler::new(AssemblerLimits {
                max_file_size: config.max_file_size,
                max_transfers_per_peer: config.max_transfers_per_peer,
                idle_timeout: config.peer_timeout,
            }),
            sending: BTreeMap::new(),
            next_transfer: 0,
            out: Outbox::default(),
        }
    }

    /// Incoming transfers in progress.
    pub(crate) fn incoming(&self) -> usize {
        self.assembler.active()
    }

    /// A bytes frame from an established peer: a file frame is taken,
    /// anything else is handed back.
    pub(crate) fn on_bytes(&mut self, now: Instant, from: &PeerId, data: Bytes) -> Option<Bytes> {
        match FileFrame::parse(&data) {
            Some(frame) => {
                self.assembler
                    .handle_frame(now, from, frame, self.out.queue());
                None
            }
            None => Some(data),
        }
    }

    pub(crate) fn on_committed(&mut self, transfer: TransferId, saved_as: String) {
        self.assembler
            .handle_committed(transfer, saved_as, self.out.queue());
    }

    pub(crate) fn on_storage_failed(&mut self, transfer: TransferId, error: String) {
        self.assembler
            .handle_storage_failed(transfer, error, self.out.queue());
    }

    /// The sender went away: abort its incoming transfers.
    pub(crate) fn on_peer_gone(&mut self, peer: &PeerId) {
        self.assembler.handle_peer_gone(peer, self.out.queue());
    }

    pub(crate) fn start(
        &mut self,
        peers: &Peers,
        target: Target,
        name: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<TransferId, CommandError> {
        let file = Outgoing::new(name, size, sha256)?;
        let to: Vec<PeerId> = match target {
            Target::All => peers.ids().cloned().collect(),
            Target::Peer(p) => {
                if !peers.contains(&p) {
                    return Err(CommandError::UnknownPeer(p.to_string()));
                }
                vec![p]
            }
        };
        if to.is_empty() {
            return Err(CommandError::NoPeers);
        }
        self.next_transfer += 1;
        let id = TransferId(self.next_transfer * 2);
        let frame = file.start_frame();
        self.transmit_to(peers, &to, &[frame]);
        self.sending.insert(id, Sending { file, to });
        Ok(id)
    }

    pub(crate) fn chunk(
        &mut self,
        peers: &Peers,
        id: TransferId,
        data: Bytes,
    ) -> Result<usize, CommandError> {
        let s = self
            .sending
            .get_mut(&id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let frames = s.file.chunk_frame(id, data)?;
        s.to.retain(|p| peers.contains(p));
        let to = std::mem::take(&mut s.to);
        let n = self.transmit_to(peers, &to, &frames);
        if let Some(s) = self.sending.get_mut(&id) {
            s.to = to;
        }
        Ok(n)
    }

    pub(crate) fn finish(&mut self, peers: &Peers, id: TransferId) -> Result<usize, CommandError> {
        let s = self
            .sending
            .get(&id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let frame = s.file.end_frame(id)?;
        let Some(mut s) = self.sending.remove(&id) else {
            return Err(CommandError::UnknownTransfer(id));
        };
        s.to.retain(|p| peers.contains(p));
        Ok(self.transmit_to(peers, &s.to, &[frame]))
    }

    pub(crate) fn abort(&mut self, id: TransferId) -> bool {
        self.sending.remove(&id).is_some()
    }

    pub(crate) fn targets(&self, id: TransferId) -> Option<&[PeerId]> {
        self.sending.get(&id).map(|s| s.to.as_slice())
    }

    fn transmit_to(&mut self, peers: &Peers, to: &[PeerId], frames: &[Bytes]) -> usize {
        let mut n = 0;
        for p in to {
            if let Some(conn) = peers.conn_of(p) {
                n += 1;
                for f in frames {
                    self.out.transmit(conn, f.clone());
                }
            }
        }
        n
    }

    pub(crate) fn shutdown(&mut self) {
        self.assembler.shutdown(self.out.queue());
        self.sending.clear();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.assembler.next_deadline()
    }

    /// Aborts incoming transfers idle for longer than the limit.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.assembler.handle_timeout(now, self.out.queue());
    }
}
