//! File transfer over bytes frames (PROTOCOL.md section 5): frame parsing and
//! encoding, name sanitising, the sending side's framing and the receiving
//! side's [`Assembler`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::{
    truncate_for_report, CommandError, Event, FileFailure, Output, PeerId, StorageOp, TransferId,
};

/// Chunk size the reference uses.
pub const CHUNK_SIZE: usize = 256 * 1024;

const START_TAG: &[u8] = b"FILESTART:";
const CHUNK_TAG: &[u8] = b"FILECHUNK:";
const END_TAG: &[u8] = b"FILEEND:";

/// Suffix of our part files; names ending in it are refused.
const PART_SUFFIX: &str = ".part";

/// Longest file name accepted, in bytes.
const MAX_NAME_LEN: usize = 255;

/// Checks that an untrusted name is a plain file name: not empty, not `.` or
/// `..`, no `/` or `\`, no NUL or control character, at most 255 bytes, and
/// not ending in `.part` (such names could collide with the receiver's part
/// files). Names starting with `.` (hidden files) are fine.
/// Returns why not.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == "." || name == ".." {
        return Err("name is a directory reference");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return Err("name contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return Err("name contains a control character");
    }
    if name.ends_with(PART_SUFFIX) {
        return Err("name ends in .part");
    }
    Ok(())
}

/// The part file of an incoming transfer: `.<name>.<id>.part`, hidden and
/// unique per transfer. Names are cut to 200 bytes (at a character
/// boundary) so that the part name stays within the 255 bytes a file name
/// may have; the final name is not affected.
pub fn part_name(name: &str, transfer: TransferId) -> String {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.{}.part", &name[..end], transfer.0)
}

/// Lowercase hex of a SHA-256.
pub fn to_hex(sha: &[u8; 32]) -> String {
    hex::encode(sha)
}

/// Parses 64 hex digits (either case).
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Plain decimal `u64`: ASCII digits only (no sign, no spaces).
fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `BYTES:<len>\n`.
fn bytes_header(len: usize) -> Bytes {
    crate::codec::bytes_header(len)
}

/// A file frame: the payload of a bytes frame that starts with `FILESTART:`,
/// `FILECHUNK:` or `FILEEND:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFrame {
    /// `FILESTART:<name>|<size>|<sha256-hex>\n`
    Start {
        /// Name as sent (validate with [`check_name`]).
        name: String,
        /// Declared size.
        size: u64,
        /// Declared checksum.
        sha256: [u8; 32],
    },
    /// `FILECHUNK:<name>\n<raw bytes>`
    Chunk {
        /// Name as sent.
        name: String,
        /// The bytes, a slice of the frame (no copy).
        data: Bytes,
    },
    /// `FILEEND:<name>|<sha256-hex>\n`
    End {
        /// Name as sent.
        name: String,
        /// Checksum repeated.
        sha256: [u8; 32],
    },
}

/// A payload that starts like a file frame but is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedFileFrame {
    /// The name, if one could be read (shortened).
    pub name: String,
    /// What is wrong.
    pub failure: FileFailure,
}

fn malformed(name: &str, why: &str) -> MalformedFileFrame {
    MalformedFileFrame {
        name: truncate_for_report(name),
        failure: FileFailure::Malformed {
            why: why.to_owned(),
        },
    }
}

/// The text of a one-line frame after its tag: UTF-8, with one trailing `\n`
/// (optional) and then one trailing `\r` (optional) removed.
fn line_body(rest: &[u8]) -> Result<&str, MalformedFileFrame> {
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    std::str::from_utf8(rest)
        .map_err(|_| malformed(&String::from_utf8_lossy(rest), "frame is not UTF-8"))
}

fn parse_start(rest: &[u8]) -> Result<FileFrame, MalformedFileFrame> {
    let body = line_body(rest)?;
    let mut parts = body.rsplitn(3, '|');
    let (Some(sha), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(body, "expected FILESTART:<name>|<size>|<sha256>"));
    };
    let size = parse_size(size).ok_or_else(|| malformed(name, "size is not a decimal u64"))?;
    let sha256 = from_hex(sha).ok_or_else(|| malformed(name, "checksum is not 64 hex digits"))?;
    Ok(FileFrame::Start {
        name: name.to_owned(),
        size,
        sha256,
    })
}

fn parse_end(rest: &[u8]) -> Result<FileFrame, MalformedFileFrame> {
    let body = line_body(rest)?;
    let mut parts = body.rsplitn(2, '|');
    let (Some(sha), Some(name)) = (parts.next(), parts.next()) else {
        return Err(malformed(body, "expected FILEEND:<name>|<sha256>"));
    };
    let sha256 = from_hex(sha).ok_or_else(|| malformed(name, "checksum is not 64 hex digits"))?;
    Ok(FileFrame::End {
        name: name.to_owned(),
        sha256,
    })
}

fn parse_chunk(payload: &Bytes) -> Result<FileFrame, MalformedFileFrame> {
    let start = CHUNK_TAG.len();
    let rest = payload.get(start..).unwrap_or_default();
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return Err(malformed(
            &String::from_utf8_lossy(rest),
            "FILECHUNK without a newline after the name",
        ));
    };
    let name_bytes = &rest[..nl];
    let name = std::str::from_utf8(name_bytes).map_err(|_| {
        malformed(
            &String::from_utf8_lossy(name_bytes),
            "chunk name is not UTF-8",
        )
    })?;
    Ok(FileFrame::Chunk {
        name: name.to_owned(),
        data: payload.slice(start + nl + 1..),
    })
}

impl FileFrame {
    /// `None` if the payload is not a file frame (an opaque binary message).
    pub fn parse(payload: &Bytes) -> Option<Result<FileFrame, MalformedFileFrame>> {
        if let Some(rest) = payload.strip_prefix(START_TAG) {
            Some(parse_start(rest))
        } else if payload.starts_with(CHUNK_TAG) {
            Some(parse_chunk(payload))
        } else {
            payload.strip_prefix(END_TAG).map(parse_end)
        }
    }

    /// The payload (not the `BYTES:` header) of `FILESTART`.
    pub fn start_payload(name: &str, size: u64, sha256: &[u8; 32]) -> Bytes {
        Bytes::from(format!("FILESTART:{name}|{size}|{}\n", to_hex(sha256)))
    }

    /// The payload of `FILEEND`.
    pub fn end_payload(name: &str, sha256: &[u8; 32]) -> Bytes {
        Bytes::from(format!("FILEEND:{name}|{}\n", to_hex(sha256)))
    }

    /// The payload prefix `FILECHUNK:<name>\n` that precedes chunk bytes.
    pub fn chunk_prefix(name: &str) -> Bytes {
        Bytes::from(format!("FILECHUNK:{name}\n"))
    }
}

/// `BYTES:<len>\n` followed by `payload`, in one buffer.
fn framed(payload: &[u8], extra_len: usize) -> Bytes {
    let header = bytes_header(payload.len() + extra_len);
    let mut buf = BytesMut::with_capacity(header.len() + payload.len());
    buf.put_slice(&header);
    buf.put_slice(payload);
    buf.freeze()
}

/// The sending side of one file: frames in order, with the declared size
/// enforced. The checksum is computed by the caller before `FILESTART`,
/// since the protocol needs it up front.
#[derive(Debug)]
pub struct Outgoing {
    name: String,
    size: u64,
    sha256: [u8; 32],
    sent: u64,
    chunk_prefix: Bytes,
}

impl Outgoing {
    /// Starts a transfer; fails on a name receivers would refuse
    /// ([`CommandError::InvalidFileName`]).
    pub fn new(name: &str, size: u64, sha256: [u8; 32]) -> Result<Outgoing, CommandError> {
        check_name(name).map_err(|_| CommandError::InvalidFileName(truncate_for_report(name)))?;
        Ok(Outgoing {
            name: name.to_owned(),
            size,
            sha256,
            sent: 0,
            chunk_prefix: FileFrame::chunk_prefix(name),
        })
    }

    /// The whole `FILESTART` frame, `BYTES:` header included.
    pub fn start_frame(&self) -> Bytes {
        framed(
            &FileFrame::start_payload(&self.name, self.size, &self.sha256),
            0,
        )
    }

    /// The frame for the next chunk, as two buffers to write in order: the
    /// `BYTES:` header with the `FILECHUNK:` prefix, then `data` itself
    /// (shared, not copied). Fails if it would pass the declared size.
    pub fn chunk_frame(&mut self, id: TransferId, data: Bytes) -> Result<[Bytes; 2], CommandError> {
        let len = data.len() as u64;
        let total = self.sent.checked_add(len).filter(|&t| t <= self.size);
        let Some(total) = total else {
            return Err(CommandError::FileSize {
                transfer: id,
                why: format!(
                    "a chunk of {len} bytes after {} bytes passes the declared size of {} bytes",
                    self.sent, self.size
                ),
            });
        };
        let head = framed(&self.chunk_prefix, data.len());
        self.sent = total;
        Ok([head, data])
    }

    /// The whole `FILEEND` frame; fails unless exactly `size` bytes were sent.
    pub fn end_frame(&self, id: TransferId) -> Result<Bytes, CommandError> {
        if self.sent != self.size {
            return Err(CommandError::FileSize {
                transfer: id,
                why: format!("{} bytes sent but {} bytes declared", self.sent, self.size),
            });
        }
        Ok(framed(&FileFrame::end_payload(&self.name, &self.sha256), 0))
    }

    /// The checksum `FILESTART` and `FILEEND` carry.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Bytes framed into chunks so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Limits of the receiving side.
#[derive(Debug, Clone, Copy)]
pub struct AssemblerLimits {
    /// Largest declared size accepted.
    pub max_file_size: u64,
    /// Most concurrent incoming transfers per peer.
    pub max_transfers_per_peer: usize,
    /// A transfer with no frame for this long is aborted.
    pub idle_timeout: Duration,
}

/// The receiving side of all incoming transfers, keyed by (sender, name).
///
/// It validates and sanitises, hashes chunks as they arrive, and pushes
/// [`Output::Storage`] ops (what to write where, commit or discard) and
/// [`Output::Event`]s into the node's output queue.
#[derive(Debug)]
pub struct Assembler {
    limits: AssemblerLimits,
    next_id: u64,
    transfers: BTreeMap<TransferId, Incoming>,
    by_key: BTreeMap<(PeerId, String), TransferId>,
    /// Transfers aborted before their `FILEEND`: their remaining frames are
    /// dropped quietly instead of each raising `UnknownTransfer`.
    aborted: BTreeSet<(PeerId, String)>,
}

#[derive(Debug)]
struct Incoming {
    from: PeerId,
    name: String,
    size: u64,
    sha256: [u8; 32],
    received: u64,
    hasher: Sha256,
    last_activity: Instant,
    last_percent: u64,
    /// FILEEND verified; waiting for the driver's `Committed`.
    committing: bool,
}

/// Integer percent of `received` out of `size`; an empty file is 100 %.
fn percent(received: u64, size: u64) -> u64 {
    if size == 0 {
        return 100;
    }
    let p = u128::from(received) * 100 / u128::from(size);
    u64::try_from(p).unwrap_or(u64::MAX)
}

impl Assembler {
    /// An assembler with no transfers. Incoming transfer ids are the odd
    /// numbers 1, 3, 5, ... so that they never collide with the node's
    /// outgoing ones, which are even.
    pub fn new(limits: AssemblerLimits) -> Self {
        Assembler {
            limits,
            next_id: 1,
            transfers: BTreeMap::new(),
            by_key: BTreeMap::new(),
            aborted: BTreeSet::new(),
        }
    }

    /// Handles a file frame (or a malformed one) from an established peer.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        from: &PeerId,
        frame: Result<FileFrame, MalformedFileFrame>,
        out: &mut VecDeque<Output>,
    ) {
        match frame {
            Err(MalformedFileFrame { name, failure }) => {
                refuse(from, &name, failure, out);
            }
            Ok(FileFrame::Start { name, size, sha256 }) => {
                self.on_start(now, from, name, size, sha256, out);
            }
            Ok(FileFrame::Chunk { name, data }) => self.on_chunk(now, from, &name, data, out),
            Ok(FileFrame::End { name, sha256 }) => self.on_end(now, from, &name, &sha256, out),
        }
    }

    fn on_start(
        &mut self,
        now: Instant,
        from: &PeerId,
        name: String,
        size: u64,
        sha256: [u8; 32],
        out: &mut VecDeque<Output>,
    ) {
        if let Err(why) = check_name(&name) {
            return refuse(from, &name, FileFailure::InvalidName { why }, out);
        }
        let limit = self.limits.max_file_size;
        if size > limit {
            return refuse(from, &name, FileFailure::TooLarge { size, limit }, out);
        }
        let key = (from.clone(), name);
        if let Some(&old) = self.by_key.get(&key) {
            self.abort(old, FileFailure::Restarted, out);
        }
        self.aborted.remove(&key);
        let running = self
            .by_key
            .range((from.clone(), String::new())..)
            .take_while(|((peer, _), _)| peer == from)
            .count();
        let limit = self.limits.max_transfers_per_peer;
        if running >= limit {
            return refuse(from, &key.1, FileFailure::TooManyTransfers { limit }, out);
        }
        let transfer = TransferId(self.next_id);
        self.next_id = self.next_id.wrapping_add(2);
        let name = key.1.clone();
        out.push_back(Output::Storage(StorageOp::Create {
            transfer,
            part: part_name(&name, transfer),
        }));
        out.push_back(Output::Event(Event::FileStarted {
            transfer,
            from: from.clone(),
            name: name.clone(),
            size,
        }));
        self.by_key.insert(key, transfer);
        self.transfers.insert(
            transfer,
            Incoming {
                from: from.clone(),
                name,
                size,
                sha256,
                received: 0,
                hasher: Sha256::new(),
                last_activity: now,
                last_percent: 0,
                committing: false,
            },
        );
    }

    /// The running (not committing) transfer of `(from, name)`.
    fn running(&self, from: &PeerId, name: &str) -> Option<TransferId> {
        // Avoid cloning for the lookup of a name that cannot be running.
        if check_name(name).is_err() {
            return None;
        }
        self.by_key.get(&(from.clone(), name.to_owned())).copied()
    }

    fn on_chunk(
        &mut self,
        now: Instant,
        from: &PeerId,
        name: &str,
        data: Bytes,
        out: &mut VecDeque<Output>,
    ) {
        let Some(transfer) = self.running(from, name) else {
            if self.aborted.contains(&(from.clone(), name.to_owned())) {
                return;
            }
            return refuse(from, name, FileFailure::UnknownTransfer, out);
        };
        let Some(inc) = self.transfers.get_mut(&transfer) else {
            return refuse(from, name, FileFailure::UnknownTransfer, out);
        };
        let len = data.len() as u64;
        let reached = inc.received.saturating_add(len);
        if reached > inc.size {
            let size = inc.size;
            return self.abort(
                transfer,
                FileFailure::Overflow {
                    size,
                    received: reached,
                },
                out,
            );
        }
        inc.hasher.update(&data);
        inc.received = reached;
        inc.last_activity = now;
        out.push_back(Output::Storage(StorageOp::Write { transfer, data }));
        let pct = percent(inc.received, inc.size);
        if pct > inc.last_percent {
            inc.last_percent = pct;
            out.push_back(Output::Event(Event::FileProgress {
                transfer,
                from: inc.from.clone(),
                name: inc.name.clone(),
                received: inc.received,
                size: inc.size,
            }));
        }
    }

    fn on_end(
        &mut self,
        now: Instant,
        from: &PeerId,
        name: &str,
        end_sha: &[u8; 32],
        out: &mut VecDeque<Output>,
    ) {
        let Some(transfer) = self.running(from, name) else {
            if self.aborted.remove(&(from.clone(), name.to_owned())) {
                return;
            }
            return refuse(from, name, FileFailure::UnknownTransfer, out);
        };
        let Some(inc) = self.transfers.get_mut(&transfer) else {
            return refuse(from, name, FileFailure::UnknownTransfer, out);
        };
        inc.last_activity = now;
        if inc.received != inc.size {
            let failure = FileFailure::SizeMismatch {
                size: inc.size,
                received: inc.received,
            };
            return self.abort(transfer, failure, out);
        }
        let actual: [u8; 32] = std::mem::take(&mut inc.hasher).finalize().into();
        // Planted: the content is not checked against the declared checksum.
        #[cfg(p2p_planted = "file-unverified-commit")]
        let actual = inc.sha256;
        let failure = if actual != inc.sha256 {
            Some(FileFailure::HashMismatch {
                expected: to_hex(&inc.sha256),
                actual: to_hex(&actual),
            })
        } else if *end_sha != inc.sha256 {
            Some(FileFailure::HashMismatch {
                expected: to_hex(end_sha),
                actual: to_hex(&actual),
            })
        } else {
            None
        };
        if let Some(failure) = failure {
            return self.abort(transfer, failure, out);
        }
        inc.committing = true;
        out.push_back(Output::Storage(StorageOp::Commit {
            transfer,
            name: inc.name.clone(),
        }));
        self.by_key.remove(&(from.clone(), name.to_owned()));
    }

    /// Removes a transfer, pushing `Discard` then `FileFailed`.
    fn abort(&mut self, transfer: TransferId, failure: FileFailure, out: &mut VecDeque<Output>) {
        let Some(inc) = self.transfers.remove(&transfer) else {
            return;
        };
        let key = (inc.from, inc.name);
        if self.by_key.get(&key) == Some(&transfer) {
            self.by_key.remove(&key);
            self.remember_aborted(key.clone());
        }
        let (from, name) = key;
        out.push_back(Output::Storage(StorageOp::Discard { transfer }));
        out.push_back(Output::Event(Event::FileFailed {
            transfer: Some(transfer),
            from,
            name,
            failure,
        }));
    }

    /// Bounded per peer: a sender that starts and abandons many names cannot
    /// grow this set.
    fn remember_aborted(&mut self, key: (PeerId, String)) {
        let cap = self.limits.max_transfers_per_peer.saturating_mul(4).max(1);
        let of_peer: Vec<(PeerId, String)> = self
            .aborted
            .range((key.0.clone(), String::new())..)
            .take_while(|(p, _)| *p == key.0)
            .cloned()
            .collect();
        if of_peer.len() >= cap {
            if let Some(oldest) = of_peer.first() {
                self.aborted.remove(oldest);
            }
        }
        self.aborted.insert(key);
    }

    /// Aborts every non-committing transfer that `pick` selects, in id order.
    fn abort_where(
        &mut self,
        out: &mut VecDeque<Output>,
        mut pick: impl FnMut(&Incoming) -> Option<FileFailure>,
    ) {
        let doomed: Vec<(TransferId, FileFailure)> = self
            .transfers
            .iter()
            .filter(|(_, inc)| !inc.committing)
            .filter_map(|(&id, inc)| pick(inc).map(|f| (id, f)))
            .collect();
        for (id, failure) in doomed {
            self.abort(id, failure, out);
        }
    }

    /// The driver renamed the part file to `saved_as`.
    pub fn handle_committed(
        &mut self,
        transfer: TransferId,
        saved_as: String,
        out: &mut VecDeque<Output>,
    ) {
        if !self.transfers.get(&transfer).is_some_and(|t| t.committing) {
            return;
        }
        let Some(inc) = self.transfers.remove(&transfer) else {
            return;
        };
        out.push_back(Output::Event(Event::FileReceived {
            transfer,
            from: inc.from,
            name: inc.name,
            size: inc.size,
            sha256: to_hex(&inc.sha256),
            saved_as,
        }));
    }

    /// The driver failed to create, write or commit the transfer's file.
    pub fn handle_storage_failed(
        &mut self,
        transfer: TransferId,
        error: crate::IoError,
        out: &mut VecDeque<Output>,
    ) {
        self.abort(transfer, FileFailure::Storage { error }, out);
    }

    /// The sender went away: abort its transfers.
    pub fn handle_peer_gone(&mut self, peer: &PeerId, out: &mut VecDeque<Output>) {
        self.abort_where(out, |inc| {
            (inc.from == *peer).then_some(FileFailure::PeerGone)
        });
        self.aborted.retain(|(p, _)| p != peer);
    }

    /// Aborts transfers idle longer than the limit.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<Output>) {
        let limit = self.limits.idle_timeout;
        self.abort_where(out, |inc| {
            let idle = now.saturating_duration_since(inc.last_activity);
            (idle >= limit).then(|| FileFailure::Idle {
                idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            })
        });
    }

    /// Aborts everything (node shutdown).
    pub fn shutdown(&mut self, out: &mut VecDeque<Output>) {
        self.abort_where(out, |_| Some(FileFailure::Shutdown));
        self.aborted.clear();
    }

    /// When [`Assembler::handle_timeout`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.transfers
            .values()
            .filter(|inc| !inc.committing)
            .filter_map(|inc| inc.last_activity.checked_add(self.limits.idle_timeout))
            .min()
    }

    /// Transfers in progress.
    pub fn active(&self) -> usize {
        self.transfers.len()
    }
}

/// Reports a file frame refused before any transfer exists for it.
fn refuse(from: &PeerId, name: &str, failure: FileFailure, out: &mut VecDeque<Output>) {
    out.push_back(Output::Event(Event::FileFailed {
        transfer: None,
        from: from.clone(),
        name: truncate_for_report(name),
        failure,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `Output` restricted to what the assembler emits, comparable in tests.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum O {
        S(StorageOp),
        E(Event),
    }

    fn drain(out: &mut VecDeque<Output>) -> Vec<O> {
        out.drain(..)
            .map(|o| match o {
                Output::Storage(op) => O::S(op),
                Output::Event(ev) => O::E(ev),
                _ => panic!("the assembler only emits storage ops and events"),
            })
            .collect()
    }

    fn io_err(s: &str) -> crate::IoError {
        crate::IoError::new(std::io::ErrorKind::Other, s)
    }

    fn peer(s: &str) -> PeerId {
        PeerId::parse(s).expect("valid peer id")
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn limits() -> AssemblerLimits {
        AssemblerLimits {
            max_file_size: 1000,
            max_transfers_per_peer: 2,
            idle_timeout: Duration::from_secs(60),
        }
    }

    struct Rig {
        asm: Assembler,
        now: Instant,
        out: VecDeque<Output>,
    }

    impl Rig {
        fn new() -> Self {
            Rig {
                asm: Assembler::new(limits()),
                now: Instant::now(),
                out: VecDeque::new(),
            }
        }

        fn feed(&mut self, from: &PeerId, payload: &[u8]) -> Vec<O> {
            let payload = Bytes::copy_from_slice(payload);
            let frame = FileFrame::parse(&payload).expect("a file frame");
            self.asm.handle_frame(self.now, from, frame, &mut self.out);
            drain(&mut self.out)
        }

        fn start(&mut self, from: &PeerId, name: &str, content: &[u8]) -> Vec<O> {
            let p = FileFrame::start_payload(name, content.len() as u64, &sha(content));
            self.feed(from, &p)
        }

        fn chunk(&mut self, from: &PeerId, name: &str, data: &[u8]) -> Vec<O> {
            let mut p = FileFrame::chunk_prefix(name).to_vec();
            p.extend_from_slice(data);
            self.feed(from, &p)
        }

        fn end(&mut self, from: &PeerId, name: &str, content: &[u8]) -> Vec<O> {
            self.feed(from, &FileFrame::end_payload(name, &sha(content)))
        }
    }

    fn failed(t: Option<u64>, from: &PeerId, name: &str, failure: FileFailure) -> O {
        O::E(Event::FileFailed {
            transfer: t.map(TransferId),
            from: from.clone(),
            name: name.to_owned(),
            failure,
        })
    }

    fn discard(t: u64) -> O {
        O::S(StorageOp::Discard {
            transfer: TransferId(t),
        })
    }

    fn started(t: u64, from: &PeerId, name: &str, size: u64) -> Vec<O> {
        vec![
            O::S(StorageOp::Create {
                transfer: TransferId(t),
                part: part_name(name, TransferId(t)),
            }),
            O::E(Event::FileStarted {
                transfer: TransferId(t),
                from: from.clone(),
                name: name.to_owned(),
                size,
            }),
        ]
    }

    /// Strips the `BYTES:<len>\n` header, checking the length it announces.
    fn payload_of(frame: &[u8]) -> Vec<u8> {
        let nl = frame.iter().position(|&b| b == b'\n').expect("header");
        let header = std::str::from_utf8(&frame[..nl]).expect("utf-8 header");
        let len: usize = header
            .strip_prefix("BYTES:")
            .expect("BYTES: header")
            .parse()
            .expect("length");
        assert_eq!(len, frame.len() - nl - 1);
        frame[nl + 1..].to_vec()
    }

    #[test]
    fn check_name_table() {
        let long = "a".repeat(256);
        for bad in [
            "../evil.txt",
            "../../../../x",
            "a/b",
            "a\\b",
            ".",
            "..",
            "",
            "a\0b",
            "a\nb",
            "tab\there",
            "del\u{7f}",
            long.as_str(),
            "x.part",
            ".x.1.part",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        let max = "b".repeat(255);
        for good in [
            "report.pdf",
            ".hidden",
            "a|b.txt",
            "résumé 日本語.txt",
            "..dots",
            "part",
            "x.part.txt",
            max.as_str(),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?} refused");
        }
    }

    #[test]
    fn hex_round_trip() {
        let h = sha(b"abc");
        let hex = to_hex(&h);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(from_hex(&hex), Some(h));
        assert_eq!(from_hex(&hex.to_uppercase()), Some(h));
        assert_eq!(from_hex(&hex[..63]), None);
        assert_eq!(from_hex(&format!("{hex}0")), None);
        assert_eq!(from_hex(&hex.replace('b', "g")), None);
        assert_eq!(from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn parse_encode_round_trips() {
        let h = sha(b"hello");
        for name in ["report.pdf", "a|b.txt", "||", "日本.txt"] {
            let p = FileFrame::start_payload(name, 12345, &h);
            assert_eq!(
                FileFrame::parse(&p),
                Some(Ok(FileFrame::Start {
                    name: name.into(),
                    size: 12345,
                    sha256: h
                }))
            );
            let p = FileFrame::end_payload(name, &h);
            assert_eq!(
                FileFrame::parse(&p),
                Some(Ok(FileFrame::End {
                    name: name.into(),
                    sha256: h
                }))
            );
            let mut p = FileFrame::chunk_prefix(name).to_vec();
            p.extend_from_slice(b"raw\n|bytes\0\xff");
            assert_eq!(
                FileFrame::parse(&Bytes::from(p)),
                Some(Ok(FileFrame::Chunk {
                    name: name.into(),
                    data: Bytes::from_static(b"raw\n|bytes\0\xff"),
                }))
            );
        }
        assert_eq!(
            &FileFrame::start_payload("a", 5, &h)[..],
            format!("FILESTART:a|5|{}\n", to_hex(&h)).as_bytes()
        );
        assert_eq!(
            &FileFrame::end_payload("a", &h)[..],
            format!("FILEEND:a|{}\n", to_hex(&h)).as_bytes()
        );
        assert_eq!(&FileFrame::chunk_prefix("a")[..], b"FILECHUNK:a\n");
    }

    #[test]
    fn parse_tolerates_line_endings_and_upper_case() {
        let h = sha(b"x");
        let upper = to_hex(&h).to_uppercase();
        for tail in ["", "\n", "\r\n", "\r"] {
            let p = Bytes::from(format!("FILESTART:f|7|{upper}{tail}"));
            assert_eq!(
                FileFrame::parse(&p),
                Some(Ok(FileFrame::Start {
                    name: "f".into(),
                    size: 7,
                    sha256: h
                }))
            );
            let p = Bytes::from(format!("FILEEND:f|{upper}{tail}"));
            assert_eq!(
                FileFrame::parse(&p),
                Some(Ok(FileFrame::End {
                    name: "f".into(),
                    sha256: h
                }))
            );
        }
        // An empty chunk.
        assert_eq!(
            FileFrame::parse(&Bytes::from_static(b"FILECHUNK:f\n")),
            Some(Ok(FileFrame::Chunk {
                name: "f".into(),
                data: Bytes::new()
            }))
        );
    }

    #[test]
    fn parse_not_a_file_frame() {
        for p in [
            &b""[..],
            b"hello",
            b"FILESTAR",
            b"filestart:a|1|x",
            b"\xff\x00",
        ] {
            assert_eq!(FileFrame::parse(&Bytes::copy_from_slice(p)), None);
        }
    }

    #[test]
    fn parse_malformed() {
        let hex = to_hex(&sha(b"x"));
        let cases = [
            (format!("FILESTART:a|{hex}\n"), ""),
            (format!("FILESTART:a|-1|{hex}\n"), "a"),
            (format!("FILESTART:a|+1|{hex}\n"), "a"),
            (format!("FILESTART:a| 1|{hex}\n"), "a"),
            (format!("FILESTART:a||{hex}\n"), "a"),
            (format!("FILESTART:a|99999999999999999999|{hex}\n"), "a"),
            ("FILESTART:a|1|abc\n".to_owned(), "a"),
            (format!("FILESTART:a|1|{hex}\n\n"), "a"),
            ("FILEEND:a\n".to_owned(), ""),
            ("FILEEND:a|xyz\n".to_owned(), "a"),
            ("FILECHUNK:a".to_owned(), ""),
        ];
        for (payload, name) in cases {
            let got = FileFrame::parse(&Bytes::from(payload.clone()));
            let Some(Err(m)) = got else {
                panic!("{payload:?} parsed as {got:?}");
            };
            assert!(
                matches!(m.failure, FileFailure::Malformed { .. }),
                "{payload:?}: {m:?}"
            );
            if !name.is_empty() {
                assert_eq!(m.name, name, "{payload:?}");
            }
        }
        // Invalid UTF-8 and a hostile long name: reported shortened.
        let long = format!("FILESTART:{}|1|zz", "n".repeat(10_000));
        let Some(Err(m)) = FileFrame::parse(&Bytes::from(long)) else {
            panic!("long start parsed");
        };
        assert!(m.name.len() < 100);
        let Some(Err(m)) = FileFrame::parse(&Bytes::from_static(b"FILECHUNK:\xff\xfe\ndata"))
        else {
            panic!("non-UTF-8 chunk name parsed");
        };
        assert!(matches!(m.failure, FileFailure::Malformed { .. }));
    }

    #[test]
    fn full_transfer() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let content: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let h = sha(&content);
        assert_eq!(
            rig.start(&a, "f.bin", &content),
            started(1, &a, "f.bin", 700)
        );
        assert_eq!(rig.asm.active(), 1);

        let mut written = Vec::new();
        let mut progress = Vec::new();
        for piece in content.chunks(300) {
            for o in rig.chunk(&a, "f.bin", piece) {
                match o {
                    O::S(StorageOp::Write { transfer, data }) => {
                        assert_eq!(transfer, TransferId(1));
                        written.extend_from_slice(&data);
                    }
                    O::E(Event::FileProgress { received, size, .. }) => {
                        assert_eq!(size, 700);
                        progress.push(received);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(written, content);
        assert_eq!(progress, vec![300, 600, 700]);

        assert_eq!(
            rig.end(&a, "f.bin", &content),
            vec![O::S(StorageOp::Commit {
                transfer: TransferId(1),
                name: "f.bin".into()
            })]
        );
        // Committing: still tracked, but exempt from timeouts and peer loss.
        assert_eq!(rig.asm.active(), 1);
        assert_eq!(rig.asm.next_deadline(), None);
        rig.asm
            .handle_timeout(rig.now + Duration::from_secs(3600), &mut rig.out);
        rig.asm.handle_peer_gone(&a, &mut rig.out);
        rig.asm.shutdown(&mut rig.out);
        assert_eq!(drain(&mut rig.out), vec![]);

        // The same name may start again while the first one commits.
        assert_eq!(rig.start(&a, "f.bin", b""), started(3, &a, "f.bin", 0));

        rig.asm
            .handle_committed(TransferId(1), "f-(1).bin".into(), &mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![O::E(Event::FileReceived {
                transfer: TransferId(1),
                from: a.clone(),
                name: "f.bin".into(),
                size: 700,
                sha256: to_hex(&h),
                saved_as: "f-(1).bin".into(),
            })]
        );
        assert_eq!(rig.asm.active(), 1);
        // A second Committed for it is ignored.
        rig.asm
            .handle_committed(TransferId(1), "again".into(), &mut rig.out);
        assert_eq!(drain(&mut rig.out), vec![]);

        // The empty file: no chunk needed.
        assert_eq!(
            rig.end(&a, "f.bin", b""),
            vec![O::S(StorageOp::Commit {
                transfer: TransferId(3),
                name: "f.bin".into()
            })]
        );
    }

    #[test]
    fn progress_at_most_once_per_percent() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let content = vec![7u8; 1000];
        rig.start(&a, "f", &content);
        let mut events = 0;
        for piece in content.chunks(3) {
            events += rig
                .chunk(&a, "f", piece)
                .iter()
                .filter(|o| matches!(o, O::E(Event::FileProgress { .. })))
                .count();
        }
        assert_eq!(events, 100);
    }

    #[test]
    fn write_is_zero_copy() {
        let mut rig = Rig::new();
        let a = peer("alice");
        rig.start(&a, "f", b"0123456789");
        let payload = Bytes::from_static(b"FILECHUNK:f\n0123456789");
        let frame = FileFrame::parse(&payload).expect("file frame");
        rig.asm.handle_frame(rig.now, &a, frame, &mut rig.out);
        let range = payload.as_ptr_range();
        let writes: Vec<Bytes> = drain(&mut rig.out)
            .into_iter()
            .filter_map(|o| match o {
                O::S(StorageOp::Write { data, .. }) => Some(data),
                _ => None,
            })
            .collect();
        assert_eq!(writes.len(), 1);
        assert_eq!(&writes[0][..], b"0123456789");
        assert_eq!(writes[0].as_ptr(), range.start.wrapping_add(12));
        assert!(range.contains(&writes[0].as_ptr()));
    }

    #[test]
    fn overflow_aborts() {
        let mut rig = Rig::new();
        let a = peer("alice");
        rig.start(&a, "f", b"abcd");
        assert_eq!(rig.chunk(&a, "f", b"abc").len(), 2);
        assert_eq!(
            rig.chunk(&a, "f", b"de"),
            vec![
                discard(1),
                failed(
                    Some(1),
                    &a,
                    "f",
                    FileFailure::Overflow {
                        size: 4,
                        received: 5
                    }
                )
            ]
        );
        assert_eq!(rig.asm.active(), 0);
        // The rest of an aborted transfer is dropped quietly (one report,
        // not one per chunk), up to and including its FILEEND...
        assert_eq!(rig.chunk(&a, "f", b"d"), vec![]);
        assert_eq!(rig.end(&a, "f", b"abcd"), vec![]);
        // ...after which frames for that name are unknown again.
        assert_eq!(
            rig.chunk(&a, "f", b"d"),
            vec![failed(None, &a, "f", FileFailure::UnknownTransfer)]
        );
    }

    #[test]
    fn part_names_fit_in_a_file_name() {
        // 85 three-byte characters: 255 bytes, the longest valid name.
        let name = "é€".repeat(51);
        let name = &name[..name.char_indices().nth(100).map_or(name.len(), |(i, _)| i)];
        for n in [name, &"n".repeat(255), "a.txt"] {
            assert_eq!(check_name(n), Ok(()));
            let part = part_name(n, TransferId(u64::MAX));
            assert!(part.len() <= 255, "{} bytes", part.len());
            assert!(part.starts_with('.') && part.ends_with(&format!(".{}.part", u64::MAX)));
        }
        assert_eq!(part_name("a.txt", TransferId(3)), ".a.txt.3.part");
        // A two-byte character across the 200-byte cut is left out whole.
        let name = format!("{}é{}", "a".repeat(199), "b".repeat(50));
        assert_eq!(check_name(&name), Ok(()));
        assert_eq!(
            part_name(&name, TransferId(7)),
            format!(".{}.7.part", "a".repeat(199))
        );
    }

    #[test]
    fn the_default_chunk_size_is_the_reference_one() {
        // docs/PROTOCOL.md §5.2: 256 KiB, as the reference; the default
        // configuration uses the constant.
        assert_eq!(CHUNK_SIZE, 262_144);
        assert_eq!(crate::Config::new(9000).files.chunk_size, CHUNK_SIZE);
    }

    #[test]
    fn remembered_aborts_are_bounded_per_peer() {
        let mut rig = Rig::new();
        let a = peer("alice");
        for i in 0..1000 {
            let name = format!("f{i}");
            rig.start(&a, &name, b"ab");
            rig.chunk(&a, &name, b"abc");
        }
        let cap = rig.asm.limits.max_transfers_per_peer * 4;
        assert!(rig.asm.aborted.len() <= cap, "{}", rig.asm.aborted.len());
    }

    #[test]
    fn every_recent_abort_of_a_peer_is_remembered() {
        // Below the bound (4 per allowed transfer), each aborted name's
        // remaining frames are dropped quietly, the oldest as well.
        let mut rig = Rig::new();
        let a = peer("alice");
        let cap = rig.asm.limits.max_transfers_per_peer * 4;
        let names: Vec<String> = (0..cap).map(|i| format!("f{i}")).collect();
        for name in &names {
            rig.start(&a, name, b"ab");
            assert_eq!(rig.chunk(&a, name, b"abc").len(), 2, "{name} aborted");
        }
        for name in &names {
            assert_eq!(rig.chunk(&a, name, b"x"), vec![], "{name}");
        }
    }

    #[test]
    fn a_peer_going_away_forgets_only_its_own_aborts() {
        let mut rig = Rig::new();
        let (a, b) = (peer("alice"), peer("bob"));
        for p in [&a, &b] {
            rig.start(p, "f", b"ab");
            assert_eq!(rig.chunk(p, "f", b"abc").len(), 2);
        }
        rig.asm.handle_peer_gone(&b, &mut rig.out);
        assert_eq!(drain(&mut rig.out), vec![]);
        // Alice's aborted transfer still swallows its late frames; Bob's
        // is forgotten, so a late frame from a Bob that is back is unknown.
        assert_eq!(rig.chunk(&a, "f", b"x"), vec![]);
        assert_eq!(
            rig.chunk(&b, "f", b"x"),
            vec![failed(None, &b, "f", FileFailure::UnknownTransfer)]
        );
    }

    #[test]
    fn size_mismatch_aborts() {
        let mut rig = Rig::new();
        let a = peer("alice");
        rig.start(&a, "f", b"abcd");
        rig.chunk(&a, "f", b"abc");
        assert_eq!(
            rig.end(&a, "f", b"abcd"),
            vec![
                discard(1),
                failed(
                    Some(1),
                    &a,
                    "f",
                    FileFailure::SizeMismatch {
                        size: 4,
                        received: 3
                    }
                )
            ]
        );
        assert_eq!(rig.asm.active(), 0);
    }

    #[test]
    fn hash_mismatch_aborts() {
        let mut rig = Rig::new();
        let a = peer("alice");
        rig.start(&a, "f", b"abcd");
        rig.chunk(&a, "f", b"abce");
        assert_eq!(
            rig.end(&a, "f", b"abcd"),
            vec![
                discard(1),
                failed(
                    Some(1),
                    &a,
                    "f",
                    FileFailure::HashMismatch {
                        expected: to_hex(&sha(b"abcd")),
                        actual: to_hex(&sha(b"abce")),
                    }
                )
            ]
        );

        // Right content, but FILEEND repeats a different checksum.
        rig.start(&a, "g", b"abcd");
        rig.chunk(&a, "g", b"abcd");
        assert_eq!(
            rig.end(&a, "g", b"other"),
            vec![
                discard(3),
                failed(
                    Some(3),
                    &a,
                    "g",
                    FileFailure::HashMismatch {
                        expected: to_hex(&sha(b"other")),
                        actual: to_hex(&sha(b"abcd")),
                    }
                )
            ]
        );
        assert_eq!(rig.asm.active(), 0);
    }

    #[test]
    fn restart_aborts_the_old_transfer() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let b = peer("bob");
        rig.start(&a, "f", b"abcd");
        // Same name from another peer is a different transfer.
        assert_eq!(rig.start(&b, "f", b"xy"), started(3, &b, "f", 2));
        rig.chunk(&a, "f", b"ab");
        let mut want = vec![discard(1), failed(Some(1), &a, "f", FileFailure::Restarted)];
        want.extend(started(5, &a, "f", 4));
        assert_eq!(rig.start(&a, "f", b"abcd"), want);
        // The new one starts from zero.
        assert_eq!(rig.chunk(&a, "f", b"abcd").len(), 2);
        assert_eq!(rig.end(&a, "f", b"abcd").len(), 1);
    }

    #[test]
    fn too_many_and_too_large() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let b = peer("bob");
        rig.start(&a, "one", b"1");
        rig.start(&a, "two", b"2");
        assert_eq!(
            rig.start(&a, "three", b"3"),
            vec![failed(
                None,
                &a,
                "three",
                FileFailure::TooManyTransfers { limit: 2 }
            )]
        );
        // Other peers have their own budget.
        assert_eq!(rig.start(&b, "three", b"3"), started(5, &b, "three", 1));
        // A restart of a running one still fits.
        assert_eq!(rig.start(&a, "two", b"2").len(), 4);

        let big = FileFrame::start_payload("big", 1001, &sha(b""));
        assert_eq!(
            rig.feed(&b, &big),
            vec![failed(
                None,
                &b,
                "big",
                FileFailure::TooLarge {
                    size: 1001,
                    limit: 1000
                }
            )]
        );
        let max = FileFrame::start_payload("max", 1000, &sha(b""));
        assert_eq!(rig.feed(&b, &max), started(9, &b, "max", 1000));
    }

    #[test]
    fn invalid_name_and_malformed_start() {
        let mut rig = Rig::new();
        let a = peer("alice");
        assert_eq!(
            rig.start(&a, "../evil", b""),
            vec![failed(
                None,
                &a,
                "../evil",
                FileFailure::InvalidName {
                    why: "name contains a path separator"
                }
            )]
        );
        let long = "x".repeat(1000);
        let outs = rig.start(&a, &long, b"");
        let [O::E(Event::FileFailed {
            transfer: None,
            name,
            failure: FileFailure::InvalidName { .. },
            ..
        })] = &outs[..]
        else {
            panic!("unexpected {outs:?}");
        };
        assert!(name.len() < 100);
        let outs = rig.feed(&a, b"FILESTART:f|x|y\n");
        assert!(
            matches!(
                &outs[..],
                [O::E(Event::FileFailed {
                    transfer: None,
                    failure: FileFailure::Malformed { .. },
                    ..
                })]
            ),
            "{outs:?}"
        );
        assert_eq!(rig.asm.active(), 0);
    }

    #[test]
    fn unknown_chunk() {
        let mut rig = Rig::new();
        let a = peer("alice");
        assert_eq!(
            rig.chunk(&a, "nope", b"data"),
            vec![failed(None, &a, "nope", FileFailure::UnknownTransfer)]
        );
        // Another peer's transfer of that name is not ours to feed.
        rig.start(&peer("bob"), "f", b"data");
        assert_eq!(
            rig.chunk(&a, "f", b"data"),
            vec![failed(None, &a, "f", FileFailure::UnknownTransfer)]
        );
    }

    #[test]
    fn idle_timeout_and_next_deadline() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let t0 = rig.now;
        assert_eq!(rig.asm.next_deadline(), None);
        rig.start(&a, "f", b"abcd");
        rig.now = t0 + Duration::from_secs(10);
        rig.start(&a, "g", b"abcd");
        assert_eq!(rig.asm.next_deadline(), Some(t0 + Duration::from_secs(60)));
        rig.now = t0 + Duration::from_secs(20);
        rig.chunk(&a, "f", b"ab");
        assert_eq!(rig.asm.next_deadline(), Some(t0 + Duration::from_secs(70)));

        rig.asm
            .handle_timeout(t0 + Duration::from_secs(69), &mut rig.out);
        assert_eq!(drain(&mut rig.out), vec![]);
        rig.asm
            .handle_timeout(t0 + Duration::from_secs(70), &mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![
                discard(3),
                failed(Some(3), &a, "g", FileFailure::Idle { idle_ms: 60_000 })
            ]
        );
        assert_eq!(rig.asm.next_deadline(), Some(t0 + Duration::from_secs(80)));
        rig.asm
            .handle_timeout(t0 + Duration::from_secs(100), &mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![
                discard(1),
                failed(Some(1), &a, "f", FileFailure::Idle { idle_ms: 80_000 })
            ]
        );
        assert_eq!(rig.asm.next_deadline(), None);
        assert_eq!(rig.asm.active(), 0);
    }

    #[test]
    fn peer_gone_aborts_its_transfers_in_order() {
        let mut rig = Rig::new();
        let a = peer("alice");
        let b = peer("bob");
        rig.start(&a, "z", b"1");
        rig.start(&b, "f", b"1");
        rig.start(&a, "a", b"1");
        rig.asm.handle_peer_gone(&a, &mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![
                discard(1),
                failed(Some(1), &a, "z", FileFailure::PeerGone),
                discard(5),
                failed(Some(5), &a, "a", FileFailure::PeerGone),
            ]
        );
        assert_eq!(rig.asm.active(), 1);
        rig.asm.shutdown(&mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![discard(3), failed(Some(3), &b, "f", FileFailure::Shutdown)]
        );
    }

    #[test]
    fn storage_failed() {
        let mut rig = Rig::new();
        let a = peer("alice");
        rig.start(&a, "f", b"ab");
        rig.start(&a, "g", b"ab");
        rig.chunk(&a, "g", b"ab");
        rig.end(&a, "g", b"ab");
        // Running transfer.
        rig.asm
            .handle_storage_failed(TransferId(1), io_err("disk full"), &mut rig.out);
        let storage = FileFailure::Storage {
            error: io_err("disk full"),
        };
        assert_eq!(
            drain(&mut rig.out),
            vec![discard(1), failed(Some(1), &a, "f", storage.clone())]
        );
        // Committing transfer.
        rig.asm
            .handle_storage_failed(TransferId(3), io_err("disk full"), &mut rig.out);
        assert_eq!(
            drain(&mut rig.out),
            vec![discard(3), failed(Some(3), &a, "g", storage)]
        );
        // Unknown (or already failed) transfers are ignored.
        rig.asm
            .handle_storage_failed(TransferId(1), io_err("again"), &mut rig.out);
        rig.asm
            .handle_storage_failed(TransferId(99), io_err("never"), &mut rig.out);
        rig.asm
            .handle_committed(TransferId(3), "g".into(), &mut rig.out);
        assert_eq!(drain(&mut rig.out), vec![]);
        assert_eq!(rig.asm.active(), 0);
        // The name is free again.
        assert_eq!(rig.start(&a, "f", b"ab"), started(5, &a, "f", 2));
    }

    #[test]
    fn outgoing_framing() {
        assert_eq!(
            Outgoing::new("../x", 1, [0; 32]).unwrap_err(),
            CommandError::InvalidFileName("../x".into())
        );
        assert!(matches!(
            Outgoing::new("x.part", 1, [0; 32]),
            Err(CommandError::InvalidFileName(_))
        ));

        let content = b"hello world";
        let h = sha(content);
        let id = TransferId(2);
        let mut o = Outgoing::new("greet.txt", 11, h).expect("valid");
        assert_eq!(o.name(), "greet.txt");
        let start = o.start_frame();
        let expect = format!("FILESTART:greet.txt|11|{}\n", to_hex(&h));
        assert_eq!(
            &start[..],
            format!("BYTES:{}\n{expect}", expect.len()).as_bytes()
        );

        // END before all bytes is refused.
        assert!(matches!(
            o.end_frame(id),
            Err(CommandError::FileSize { transfer, .. }) if transfer == id
        ));

        let data = Bytes::from_static(b"hello ");
        let [head, body] = o.chunk_frame(id, data.clone()).expect("fits");
        assert_eq!(&head[..], b"BYTES:26\nFILECHUNK:greet.txt\n");
        assert_eq!(body.as_ptr(), data.as_ptr());
        assert_eq!(o.sent(), 6);

        // Past the declared size: refused, nothing counted.
        assert!(matches!(
            o.chunk_frame(id, Bytes::from_static(b"world!")),
            Err(CommandError::FileSize { transfer, .. }) if transfer == id
        ));
        assert_eq!(o.sent(), 6);

        o.chunk_frame(id, Bytes::from_static(b"world"))
            .expect("fits");
        assert_eq!(o.sent(), 11);
        assert!(o.chunk_frame(id, Bytes::new()).is_ok());
        let end = o.end_frame(id).expect("complete");
        let expect = format!("FILEEND:greet.txt|{}\n", to_hex(&h));
        assert_eq!(
            &end[..],
            format!("BYTES:{}\n{expect}", expect.len()).as_bytes()
        );
    }

    /// Sends `content` in `cuts`-sized chunks through `Outgoing`, optionally
    /// flipping one byte of the content in transit, and feeds the payloads
    /// into an assembler.
    fn send_through(content: &[u8], cuts: &[usize], flip: Option<usize>) -> (Vec<u8>, Vec<O>) {
        let a = peer("alice");
        let id = TransferId(0);
        let mut asm = Assembler::new(AssemblerLimits {
            max_file_size: u64::MAX,
            max_transfers_per_peer: 1,
            idle_timeout: Duration::from_secs(1),
        });
        let now = Instant::now();
        let mut out = VecDeque::new();
        let mut feed = |frame: Vec<u8>, out: &mut VecDeque<Output>| {
            let payload = Bytes::from(payload_of(&frame));
            let parsed = FileFrame::parse(&payload).expect("file frame");
            asm.handle_frame(now, &a, parsed, out);
        };
        let mut o = Outgoing::new("data.bin", content.len() as u64, sha(content)).expect("valid");
        feed(o.start_frame().to_vec(), &mut out);
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < content.len() {
            let n = cut
                .next()
                .copied()
                .unwrap_or(1)
                .clamp(1, content.len() - at);
            let mut piece = content[at..at + n].to_vec();
            if let Some(i) = flip.filter(|i| (at..at + n).contains(i)) {
                piece[i - at] ^= 0x01;
            }
            let [head, body] = o.chunk_frame(id, Bytes::from(piece)).expect("fits");
            let mut frame = head.to_vec();
            frame.extend_from_slice(&body);
            feed(frame, &mut out);
            at += n;
        }
        feed(o.end_frame(id).expect("complete").to_vec(), &mut out);
        let outs = drain(&mut out);
        let mut written = Vec::new();
        for o in &outs {
            if let O::S(StorageOp::Write { data, .. }) = o {
                written.extend_from_slice(data);
            }
        }
        (written, outs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_transfer_round_trip(
            content in prop::collection::vec(any::<u8>(), 0..100_000),
            cuts in prop::collection::vec(1usize..40_000, 1..8),
            flip in any::<prop::sample::Index>(),
        ) {
            let (written, outs) = send_through(&content, &cuts, None);
            prop_assert_eq!(&written, &content);
            let commit = O::S(StorageOp::Commit {
                transfer: TransferId(1),
                name: "data.bin".into(),
            });
            prop_assert_eq!(outs.last(), Some(&commit));
            let any_failure = outs.iter().any(|o| matches!(o, O::E(Event::FileFailed { .. })));
            prop_assert!(!any_failure);

            if !content.is_empty() {
                let (_, outs) = send_through(&content, &cuts, Some(flip.index(content.len())));
                prop_assert!(!outs.contains(&commit));
                let hash_mismatch = outs.iter().any(|o| matches!(
                    o,
                    O::E(Event::FileFailed {
                        transfer: Some(TransferId(1)),
                        failure: FileFailure::HashMismatch { .. },
                        ..
                    })
                ));
                prop_assert!(hash_mismatch);
            }
        }
    }
}
