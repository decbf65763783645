//! The files component: the legacy file protocol over bytes frames
//! (docs/PROTOCOL.md §5), receiving through the [`Assembler`] and sending
//! through [`Send`] state machines driven by storage completions (or, at
//! the lower level, chunks handed in by the caller).

mod send;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use crate::event::StorageOp;
use crate::file::{check_name, Assembler, AssemblerLimits, FileFrame, Outgoing};
use crate::io::{Outbox, Output};
use crate::peers::Peers;
use crate::{
    truncate_for_report, CommandError, Config, ConnId, Event, IoError, PeerId, SendFailure, Target,
    TransferId,
};
use send::{Send, SendEnd, Targets};

#[derive(Debug)]
struct Sending {
    file: Outgoing,
    to: Targets,
}

/// Incoming and outgoing file transfers.
#[derive(Debug)]
pub(crate) struct Files {
    assembler: Assembler,
    sending: BTreeMap<TransferId, Sending>,
    /// Whole-file sends driven by storage reads.
    sends: BTreeMap<TransferId, Send>,
    next_transfer: u64,
    chunk_size: usize,
    window: u64,
    pub(crate) out: Outbox,
}

impl Files {
    pub(crate) fn new(config: &Config) -> Self {
        Files {
            assembler: Assembler::new(AssemblerLimits {
                max_file_size: config.files.max_file_size,
                max_transfers_per_peer: config.files.max_transfers_per_peer,
                idle_timeout: config.heartbeat.peer_timeout,
            }),
            sending: BTreeMap::new(),
            sends: BTreeMap::new(),
            next_transfer: 0,
            // Each chunk must fit in one bytes frame with its prefix.
            chunk_size: config
                .files
                .chunk_size
                .min(config.connections.max_bytes_per_message / 2)
                .max(1),
            window: config.files.send_window,
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

    pub(crate) fn on_storage_failed(&mut self, transfer: TransferId, error: IoError) {
        if self.sends.contains_key(&transfer) {
            return self.end_send(transfer, SendEnd::Failed(SendFailure::Storage(error)));
        }
        self.assembler
            .handle_storage_failed(transfer, error, self.out.queue());
    }

    /// The sender went away: abort its incoming transfers; sends to it go
    /// on to the others.
    pub(crate) fn on_peer_gone(
        &mut self,
        peer: &PeerId,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
    ) {
        self.assembler.handle_peer_gone(peer, self.out.queue());
        self.pump(peers, queued);
    }

    fn next_id(&mut self) -> TransferId {
        self.next_transfer += 1;
        TransferId(self.next_transfer * 2)
    }

    fn targets_of(peers: &Peers, target: Target) -> Result<Vec<PeerId>, CommandError> {
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
        Ok(to)
    }

    /// Sends the file the driver knows as `path` under `name`: the driver
    /// is asked to open it, and everything else follows from completions.
    pub(crate) fn send_file(
        &mut self,
        peers: &Peers,
        target: Target,
        path: &str,
        name: &str,
    ) -> Result<TransferId, CommandError> {
        check_name(name).map_err(|_| CommandError::InvalidFileName(truncate_for_report(name)))?;
        let to = Self::targets_of(peers, target)?;
        let id = self.next_id();
        let send = Send::start(
            id,
            path.to_owned(),
            name.to_owned(),
            to,
            self.chunk_size,
            &mut self.out,
        );
        self.sends.insert(id, send);
        Ok(id)
    }

    /// A source opened for a send.
    pub(crate) fn on_opened(&mut self, transfer: TransferId, size: u64, peers: &Peers) {
        let Some(s) = self.sends.get_mut(&transfer) else {
            // Aborted meanwhile: let the driver close it.
            return self
                .out
                .push(Output::Storage(StorageOp::Close { transfer }));
        };
        if let Some(end) = s.on_opened(size, peers, &mut self.out) {
            self.end_send(transfer, end);
        }
    }

    /// A read for a send completed.
    pub(crate) fn on_read(
        &mut self,
        transfer: TransferId,
        offset: u64,
        data: Bytes,
        peers: &Peers,
        queued: &BTreeMap<ConnId, u64>,
    ) {
        let Some(s) = self.sends.get_mut(&transfer) else {
            return;
        };
        if let Some(end) = s.on_read(offset, data, peers, queued, self.window, &mut self.out) {
            self.end_send(transfer, end);
        }
    }

    /// Send queues drained or targets left: parked chunks may go now.
    pub(crate) fn pump(&mut self, peers: &Peers, queued: &BTreeMap<ConnId, u64>) {
        let ids: Vec<TransferId> = self.sends.keys().copied().collect();
        // Chunks this call transmits count against the window of the sends
        // after them (the node counts them only once this call returns).
        let mut sent = BTreeMap::new();
        for id in ids {
            let Some(s) = self.sends.get_mut(&id) else {
                continue;
            };
            if let Some(end) = s.pump(peers, queued, &mut sent, self.window, &mut self.out) {
                self.end_send(id, end);
            }
        }
    }

    /// Stops a send (the application's abort).
    pub(crate) fn abort_send(&mut self, transfer: TransferId) -> bool {
        if !self.sends.contains_key(&transfer) {
            return false;
        }
        self.end_send(transfer, SendEnd::Failed(SendFailure::Aborted));
        true
    }

    fn end_send(&mut self, transfer: TransferId, end: SendEnd) {
        let Some(s) = self.sends.remove(&transfer) else {
            return;
        };
        self.out
            .push(Output::Storage(StorageOp::Close { transfer }));
        let name = s.name().to_owned();
        self.out.event(match end {
            SendEnd::Done { peers } => Event::FileSent {
                transfer,
                name,
                size: s.size(),
                peers,
            },
            SendEnd::Failed(error) => Event::FileSendFailed {
                transfer,
                name,
                error,
            },
        });
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
        let to = Self::targets_of(peers, target)?;
        let id = self.next_id();
        let to = Targets::bind(peers, &to);
        to.transmit(&[file.start_frame()], &mut self.out);
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
        s.to.retain_live(peers);
        Ok(s.to.transmit(&frames, &mut self.out))
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
        s.to.retain_live(peers);
        Ok(s.to.transmit(&[frame], &mut self.out))
    }

    pub(crate) fn abort(&mut self, id: TransferId) -> bool {
        self.sending.remove(&id).is_some()
    }

    pub(crate) fn targets(&self, id: TransferId) -> Option<Vec<PeerId>> {
        match self.sends.get(&id) {
            Some(s) => Some(s.targets()),
            None => self.sending.get(&id).map(|s| s.to.ids()),
        }
    }

    pub(crate) fn shutdown(&mut self) {
        self.assembler.shutdown(self.out.queue());
        self.sending.clear();
        let ids: Vec<TransferId> = self.sends.keys().copied().collect();
        for id in ids {
            self.end_send(id, SendEnd::Failed(SendFailure::Shutdown));
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.assembler.next_deadline()
    }

    /// Aborts incoming transfers idle for longer than the limit.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.assembler.handle_timeout(now, self.out.queue());
    }
}
