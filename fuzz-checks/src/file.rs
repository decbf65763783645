//! The `file` target: arbitrary `FILESTART` / `FILECHUNK` / `FILEEND`
//! sequences and names against [`p2p_core::file::Assembler`], the receiving
//! side of file transfers.
//!
//! Every frame goes through [`FileFrame::parse`] as it would off the wire,
//! then to the assembler. A reference model written from PROTOCOL.md
//! section 5 predicts, for each step, which transfer is created, written,
//! committed or discarded, and the check compares. On top of that, every
//! storage op is checked on its own (see `StorageTracker`): part and final
//! names stay plain names inside the downloads directory, and a `Commit`
//! happens only when what was written has exactly the size and SHA-256 that
//! the transfer's `FILESTART` declared (and its `FILEEND` repeated).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_core::file::{to_hex, Assembler, AssemblerLimits, FileFrame, MalformedFileFrame};
use p2p_core::{Event, FileFailure, Output, PeerId, StorageOp, TransferId};

use crate::common::{
    content_bytes, is_plain_name, pick, pick_str, sha256, Reader, StorageTracker, Writer,
};

/// Senders the inputs choose from.
const SENDERS: [&str; 3] = ["alice", "bob", "carol"];

/// File names the inputs choose from: good ones and the hostile ones
/// PROTOCOL.md section 5 lists.
fn names() -> &'static [String] {
    use std::sync::OnceLock;
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        [
            "a.txt",
            "b",
            ".hidden",
            "dots..",
            "é ✓.bin",
            "a|b",
            "..",
            ".",
            "",
            "../evil.txt",
            "../../../../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "C:\\x",
            "nul\0x",
            "tab\tx",
            "x.part",
            ".a.txt.1.part",
            "line\nbreak",
            "cr\r",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["n".repeat(255), "n".repeat(256), "é".repeat(128)])
        .collect()
    })
}

/// Most ops read from one input: longer inputs are not more interesting.
const MAX_OPS: usize = 2000;

/// Largest declared size the assembler accepts in this target.
const MAX_FILE_SIZE: u64 = 4096;
/// Concurrent transfers per sender.
const MAX_PER_PEER: usize = 2;
/// Idle timeout of a transfer.
const IDLE: Duration = Duration::from_secs(60);

/// A file name: one of a fixed list, or any text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// Index into the built-in list (good and hostile names).
    Listed(u8),
    /// Any bytes, read as UTF-8 with replacement.
    Custom(Vec<u8>),
}

impl Name {
    fn read(r: &mut Reader) -> Name {
        match r.u8() {
            255 => Name::Custom(r.short_bytes()),
            i => Name::Listed(i),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Name::Listed(i) => w.u8(*i),
            Name::Custom(b) => w.u8(255).short_bytes(b),
        };
    }

    fn text(&self) -> String {
        match self {
            Name::Listed(i) => pick(names(), *i).clone(),
            Name::Custom(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }
}

/// One step of a `file` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `FILESTART` for content `content` (an index into fixed contents).
    /// `size`: 0 declares the true size, 1 one more, 2 one less, 3
    /// `u64::MAX`, 4 just over the limit. `sha`: 0 the true checksum, 1
    /// another content's, 2 zeros.
    Start {
        /// Sender index.
        from: u8,
        /// File name.
        name: Name,
        /// Content index.
        content: u8,
        /// Size mode.
        size: u8,
        /// Checksum mode.
        sha: u8,
    },
    /// `FILECHUNK` with `len` bytes of content `content` from `offset`.
    Chunk {
        /// Sender index.
        from: u8,
        /// File name.
        name: Name,
        /// Content index.
        content: u8,
        /// Start in the content.
        offset: u16,
        /// Length.
        len: u16,
    },
    /// `FILEEND` with content `content`'s checksum (`corrupt`: flipped).
    End {
        /// Sender index.
        from: u8,
        /// File name.
        name: Name,
        /// Content index.
        content: u8,
        /// Send a wrong checksum.
        corrupt: bool,
    },
    /// A raw payload after a tag (`FILESTART:`, `FILECHUNK:`, `FILEEND:` or
    /// none, by `tag` modulo 4).
    Raw {
        /// Sender index.
        from: u8,
        /// Which tag.
        tag: u8,
        /// The rest of the payload.
        payload: Vec<u8>,
    },
    /// The driver reports a commit done (`pick` among those pending, or a
    /// made-up transfer id when there is none).
    Committed {
        /// Selector.
        pick: u8,
    },
    /// The driver reports a failed storage op (`pick` among open and
    /// committing transfers).
    StorageFailed {
        /// Selector.
        pick: u8,
    },
    /// The sender disconnected.
    PeerGone {
        /// Sender index.
        from: u8,
    },
    /// Time passes (`secs` seconds) and the assembler's timeout runs.
    Advance {
        /// Seconds.
        secs: u8,
    },
    /// Node shutdown.
    Shutdown,
}

impl FileOp {
    fn read(r: &mut Reader) -> FileOp {
        match r.u8() % 10 {
            0 => FileOp::Start {
                from: r.u8(),
                name: Name::read(r),
                content: r.u8(),
                size: r.u8(),
                sha: r.u8(),
            },
            1 => FileOp::Chunk {
                from: r.u8(),
                name: Name::read(r),
                content: r.u8(),
                offset: r.u16(),
                len: r.u16(),
            },
            2 => FileOp::End {
                from: r.u8(),
                name: Name::read(r),
                content: r.u8(),
                corrupt: r.bool(),
            },
            3 => FileOp::Raw {
                from: r.u8(),
                tag: r.u8(),
                payload: r.long_bytes(),
            },
            4 => FileOp::Committed { pick: r.u8() },
            5 => FileOp::StorageFailed { pick: r.u8() },
            6 => FileOp::PeerGone { from: r.u8() },
            7 | 8 => FileOp::Advance { secs: r.u8() },
            _ => FileOp::Shutdown,
        }
    }

    /// Appends the raw form that [`check_file`] reads as this op.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            FileOp::Start {
                from,
                name,
                content,
                size,
                sha,
            } => {
                w.u8(0).u8(*from);
                name.write(w);
                w.u8(*content).u8(*size).u8(*sha);
            }
            FileOp::Chunk {
                from,
                name,
                content,
                offset,
                len,
            } => {
                w.u8(1).u8(*from);
                name.write(w);
                w.u8(*content).u16(*offset).u16(*len);
            }
            FileOp::End {
                from,
                name,
                content,
                corrupt,
            } => {
                w.u8(2).u8(*from);
                name.write(w);
                w.u8(*content).bool(*corrupt);
            }
            FileOp::Raw { from, tag, payload } => {
                w.u8(3).u8(*from).u8(*tag).long_bytes(payload);
            }
            FileOp::Committed { pick } => {
                w.u8(4).u8(*pick);
            }
            FileOp::StorageFailed { pick } => {
                w.u8(5).u8(*pick);
            }
            FileOp::PeerGone { from } => {
                w.u8(6).u8(*from);
            }
            FileOp::Advance { secs } => {
                w.u8(7).u8(*secs);
            }
            FileOp::Shutdown => {
                w.u8(9);
            }
        }
    }

    /// The ops [`check_file`] reads from raw bytes.
    pub fn decode_all(data: &[u8]) -> Vec<FileOp> {
        let mut r = Reader::new(data);
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_OPS {
            ops.push(FileOp::read(&mut r));
        }
        ops
    }

    /// The raw form of a whole sequence.
    pub fn encode_all(ops: &[FileOp]) -> Vec<u8> {
        let mut w = Writer::new();
        for op in ops {
            op.encode(&mut w);
        }
        w.out
    }
}

/// What a `file` input reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Transfers created.
    pub created: usize,
    /// Transfers committed (verified).
    pub committed: usize,
    /// Transfers discarded.
    pub discarded: usize,
    /// Frames refused before a transfer existed.
    pub refused: usize,
}

/// The model's view of one transfer.
#[derive(Debug, Clone)]
struct Model {
    from: PeerId,
    name: String,
    size: u64,
    sha: [u8; 32],
    last_activity: Instant,
    /// `Commit` was asked; it only leaves by `Committed` or `StorageFailed`.
    committing: bool,
}

/// The target's state: the assembler under test, the reference model and
/// the storage tracker.
struct Harness {
    asm: Assembler,
    now: Instant,
    models: BTreeMap<TransferId, Model>,
    storage: StorageTracker,
    summary: FileSummary,
}

/// Storage ops and events of one step, separated.
#[derive(Debug, Default)]
struct Step {
    ops: Vec<StorageOp>,
    events: Vec<Event>,
}

impl Step {
    fn creates(&self) -> Vec<TransferId> {
        self.ops
            .iter()
            .filter_map(|o| match o {
                StorageOp::Create { transfer, .. } => Some(*transfer),
                _ => None,
            })
            .collect()
    }

    fn discards(&self) -> Vec<TransferId> {
        self.ops
            .iter()
            .filter_map(|o| match o {
                StorageOp::Discard { transfer } => Some(*transfer),
                _ => None,
            })
            .collect()
    }

    fn commits(&self) -> Vec<TransferId> {
        self.ops
            .iter()
            .filter_map(|o| match o {
                StorageOp::Commit { transfer, .. } => Some(*transfer),
                _ => None,
            })
            .collect()
    }

    fn writes(&self) -> Vec<(TransferId, &Bytes)> {
        self.ops
            .iter()
            .filter_map(|o| match o {
                StorageOp::Write { transfer, data } => Some((*transfer, data)),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<(Option<TransferId>, &FileFailure)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::FileFailed {
                    transfer, failure, ..
                } => Some((*transfer, failure)),
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    fn new() -> Harness {
        Harness {
            asm: Assembler::new(AssemblerLimits {
                max_file_size: MAX_FILE_SIZE,
                max_transfers_per_peer: MAX_PER_PEER,
                idle_timeout: IDLE,
            }),
            now: Instant::now(),
            models: BTreeMap::new(),
            storage: StorageTracker::default(),
            summary: FileSummary::default(),
        }
    }

    /// Collects the outputs of one call, applying storage ops to the
    /// tracker and checking commits against the model.
    fn collect(&mut self, out: &mut VecDeque<Output>) -> Step {
        let mut step = Step::default();
        for o in out.drain(..) {
            match o {
                Output::Storage(op) => {
                    if let Some((transfer, written)) = self.storage.apply(&op) {
                        let m = self
                            .models
                            .get(&transfer)
                            .unwrap_or_else(|| panic!("Commit of {transfer} unknown to the model"));
                        assert_eq!(written.name, m.name, "Commit under another name");
                        assert_eq!(
                            written.len, m.size,
                            "Commit of {transfer}: {} bytes written, {} declared",
                            written.len, m.size
                        );
                        assert_eq!(
                            written.sha, m.sha,
                            "Commit of {transfer}: content does not match the declared SHA-256"
                        );
                    }
                    step.ops.push(op);
                }
                Output::Event(e) => step.events.push(e),
                other => panic!("the assembler emitted {other:?}"),
            }
        }
        for op in &step.ops {
            match op {
                StorageOp::Create { .. } => self.summary.created += 1,
                StorageOp::Commit { .. } => self.summary.committed += 1,
                StorageOp::Discard { .. } => self.summary.discarded += 1,
                _ => {}
            }
        }
        self.summary.refused += step.failures().iter().filter(|(t, _)| t.is_none()).count();
        step
    }

    /// The running (not committing) transfer of `(from, name)`.
    fn running(&self, from: &PeerId, name: &str) -> Option<TransferId> {
        self.models
            .iter()
            .find(|(_, m)| !m.committing && m.from == *from && m.name == name)
            .map(|(&id, _)| id)
    }

    /// Checks that exactly `expected` transfers were discarded (each with a
    /// `FileFailed` event naming it) and forgets them.
    fn expect_discards(&mut self, step: &Step, mut expected: Vec<TransferId>, why: &str) {
        let mut got = step.discards();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "discarded transfers on {why}");
        let failed: Vec<TransferId> = step.failures().iter().filter_map(|(t, _)| *t).collect();
        for t in &expected {
            assert!(
                failed.contains(t),
                "{t} discarded without a FileFailed event"
            );
            self.models.remove(t);
        }
    }

    fn frame(&mut self, from: &PeerId, parsed: Result<FileFrame, MalformedFileFrame>) {
        // What was written before this frame: the model's predictions
        // depend on it, and collecting the step's ops updates the tracker.
        let before: BTreeMap<TransferId, u64> = self
            .models
            .keys()
            .map(|&t| (t, self.storage.written_len(t).unwrap_or(0)))
            .collect();
        let mut out = VecDeque::new();
        self.asm
            .handle_frame(self.now, from, parsed.clone(), &mut out);
        let step = self.collect(&mut out);
        match parsed {
            Err(_) => {
                assert!(step.ops.is_empty(), "a malformed frame touched storage");
                assert!(
                    matches!(step.failures()[..], [(None, FileFailure::Malformed { .. })]),
                    "a malformed frame gave {:?}",
                    step.events
                );
            }
            Ok(FileFrame::Start { name, size, sha256 }) => {
                self.on_start(from, name, size, sha256, &step)
            }
            Ok(FileFrame::Chunk { name, data }) => {
                self.on_chunk(from, &name, &data, &step, &before)
            }
            Ok(FileFrame::End { name, sha256 }) => self.on_end(from, &name, sha256, &step),
        }
    }

    fn on_start(&mut self, from: &PeerId, name: String, size: u64, sha: [u8; 32], step: &Step) {
        let accepted_name = is_plain_name(&name);
        if !accepted_name || size > MAX_FILE_SIZE {
            assert!(
                step.ops.is_empty(),
                "START {name:?} of {size} bytes touched storage"
            );
            assert_eq!(
                step.failures().len(),
                1,
                "START {name:?} refused without one FileFailed"
            );
            return;
        }
        let old = self.running(from, &name);
        self.expect_discards(step, old.into_iter().collect(), "a restarted START");
        let running = self
            .models
            .values()
            .filter(|m| !m.committing && m.from == *from)
            .count();
        let creates = step.creates();
        if running >= MAX_PER_PEER {
            assert!(
                creates.is_empty(),
                "START beyond the per-peer limit was accepted"
            );
            return;
        }
        let [transfer] = creates[..] else {
            panic!("a valid START created {creates:?}");
        };
        assert!(
            step.events.iter().any(|e| matches!(
                e,
                Event::FileStarted { transfer: t, name: n, size: s, from: f }
                    if *t == transfer && *n == name && *s == size && f == from
            )),
            "no matching FileStarted for {transfer}"
        );
        self.models.insert(
            transfer,
            Model {
                from: from.clone(),
                name,
                size,
                sha,
                last_activity: self.now,
                committing: false,
            },
        );
    }

    fn on_chunk(
        &mut self,
        from: &PeerId,
        name: &str,
        data: &Bytes,
        step: &Step,
        before: &BTreeMap<TransferId, u64>,
    ) {
        let Some(transfer) = self.running(from, name) else {
            assert!(
                step.ops.is_empty(),
                "a chunk of no transfer touched storage"
            );
            return;
        };
        let written = before.get(&transfer).copied().unwrap_or(0);
        let size = self.models[&transfer].size;
        if written + data.len() as u64 > size {
            assert!(
                step.writes().is_empty(),
                "a chunk past the declared size was written"
            );
            self.expect_discards(step, vec![transfer], "an overflowing chunk");
            return;
        }
        assert_eq!(
            step.writes(),
            vec![(transfer, data)],
            "a chunk must be written exactly once, as received"
        );
        if let Some(m) = self.models.get_mut(&transfer) {
            m.last_activity = self.now;
        }
    }

    fn on_end(&mut self, from: &PeerId, name: &str, end_sha: [u8; 32], step: &Step) {
        let Some(transfer) = self.running(from, name) else {
            assert!(step.ops.is_empty(), "an END of no transfer touched storage");
            return;
        };
        let m = &self.models[&transfer];
        let written = self.storage.written_len(transfer).unwrap_or(0);
        let actual = self.storage.written_sha(transfer);
        let good = written == m.size && actual == Some(m.sha) && end_sha == m.sha;
        if good {
            assert_eq!(
                step.commits(),
                vec![transfer],
                "a verified transfer was not committed"
            );
            assert!(step.discards().is_empty());
            if let Some(m) = self.models.get_mut(&transfer) {
                m.committing = true;
            }
        } else {
            assert!(
                step.commits().is_empty(),
                "an unverified transfer was committed"
            );
            self.expect_discards(step, vec![transfer], "a failed END");
        }
    }

    fn committed(&mut self, sel: u8) {
        let pending = self.storage.committing();
        let transfer = if pending.is_empty() {
            TransferId(u64::from(sel))
        } else {
            *pick(&pending, sel)
        };
        let mut out = VecDeque::new();
        self.asm
            .handle_committed(transfer, format!("saved-{}", transfer.0), &mut out);
        let step = self.collect(&mut out);
        assert!(step.ops.is_empty(), "Committed caused storage ops");
        let written = self.storage.committed(transfer);
        match (written, self.models.remove(&transfer)) {
            (Some(w), Some(m)) => {
                let received = step.events.iter().any(|e| matches!(
                    e,
                    Event::FileReceived { transfer: t, size, sha256, name, .. }
                        if *t == transfer && *size == w.len && *sha256 == to_hex(&w.sha) && *name == m.name
                ));
                assert!(
                    received,
                    "no matching FileReceived for {transfer}: {:?}",
                    step.events
                );
            }
            (None, m) => {
                assert!(
                    step.events.is_empty(),
                    "Committed for a transfer not committing"
                );
                if let Some(m) = m {
                    self.models.insert(transfer, m);
                }
            }
            (Some(_), None) => panic!("the tracker and the model disagree on {transfer}"),
        }
    }

    fn storage_failed(&mut self, sel: u8) {
        let mut live: Vec<TransferId> = self.models.keys().copied().collect();
        live.push(TransferId(u64::from(sel) | 1 << 40));
        let transfer = *pick(&live, sel);
        self.storage.storage_failed(transfer);
        let mut out = VecDeque::new();
        self.asm.handle_storage_failed(
            transfer,
            p2p_core::IoError::new(std::io::ErrorKind::StorageFull, "disk full ".repeat(50)),
            &mut out,
        );
        let step = self.collect(&mut out);
        let expected = if self.models.contains_key(&transfer) {
            vec![transfer]
        } else {
            vec![]
        };
        self.expect_discards(&step, expected, "a storage failure");
    }

    fn peer_gone(&mut self, from: &PeerId) {
        let mut out = VecDeque::new();
        self.asm.handle_peer_gone(from, &mut out);
        let step = self.collect(&mut out);
        let expected = self
            .models
            .iter()
            .filter(|(_, m)| !m.committing && m.from == *from)
            .map(|(&id, _)| id)
            .collect();
        self.expect_discards(&step, expected, "the sender leaving");
    }

    fn advance(&mut self, secs: u8) {
        self.now += Duration::from_secs(u64::from(secs));
        let mut out = VecDeque::new();
        self.asm.handle_timeout(self.now, &mut out);
        let step = self.collect(&mut out);
        let expected = self
            .models
            .iter()
            .filter(|(_, m)| !m.committing && self.now - m.last_activity >= IDLE)
            .map(|(&id, _)| id)
            .collect();
        self.expect_discards(&step, expected, "a timeout");
        if let Some(t) = self.asm.next_deadline() {
            assert!(
                t > self.now,
                "a deadline at or before now survived the timeout"
            );
        }
    }

    fn shutdown(&mut self) {
        let mut out = VecDeque::new();
        self.asm.shutdown(&mut out);
        let step = self.collect(&mut out);
        let expected = self
            .models
            .iter()
            .filter(|(_, m)| !m.committing)
            .map(|(&id, _)| id)
            .collect();
        self.expect_discards(&step, expected, "shutdown");
    }

    /// Invariants that hold after every step.
    fn check_state(&self) {
        assert_eq!(
            self.asm.active(),
            self.models.len(),
            "the assembler holds {} transfers, the model {}",
            self.asm.active(),
            self.models.len()
        );
        let mut tracked = self.storage.open();
        tracked.extend(self.storage.committing());
        tracked.sort();
        let modelled: Vec<TransferId> = self.models.keys().copied().collect();
        assert_eq!(
            tracked, modelled,
            "storage and model disagree on live transfers"
        );
        for from in SENDERS {
            let running = self
                .models
                .values()
                .filter(|m| !m.committing && m.from.as_str() == from)
                .count();
            assert!(
                running <= MAX_PER_PEER,
                "{from} has {running} transfers running"
            );
        }
        for (&t, m) in &self.models {
            let written = self.storage.written_len(t).unwrap_or(0);
            assert!(
                written <= m.size,
                "{t}: {written} bytes written, {} declared",
                m.size
            );
        }
    }
}

fn sender(sel: u8) -> PeerId {
    PeerId::parse(pick_str(&SENDERS, sel)).expect("valid sender id")
}

fn content(sel: u8) -> &'static [u8] {
    content_bytes(sel)
}

/// Runs the `file` checks on fuzzer bytes. Panics on a broken invariant.
pub fn check_file(data: &[u8]) -> FileSummary {
    let mut r = Reader::new(data);
    let mut h = Harness::new();
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        match FileOp::read(&mut r) {
            FileOp::Start {
                from,
                name,
                content: c,
                size,
                sha,
            } => {
                let body = content(c);
                let name = name.text();
                let true_size = body.len() as u64;
                let size = match size % 8 {
                    1 => true_size + 1,
                    2 => true_size.saturating_sub(1),
                    3 => u64::MAX,
                    4 => MAX_FILE_SIZE + 1,
                    _ => true_size,
                };
                let sha = match sha % 4 {
                    1 => sha256(content(c.wrapping_add(1))),
                    2 => [0; 32],
                    _ => sha256(body),
                };
                let payload = FileFrame::start_payload(&name, size, &sha);
                let parsed = parse(&payload);
                assert_eq!(
                    parsed,
                    Ok(FileFrame::Start {
                        name: name.clone(),
                        size,
                        sha256: sha
                    }),
                    "FILESTART does not survive the wire"
                );
                h.frame(&sender(from), parsed);
            }
            FileOp::Chunk {
                from,
                name,
                content: c,
                offset,
                len,
            } => {
                let body = content(c);
                let start = usize::from(offset).min(body.len());
                let end = (start + usize::from(len)).min(body.len());
                let name = name.text();
                let mut payload = FileFrame::chunk_prefix(&name).to_vec();
                payload.extend_from_slice(&body[start..end]);
                let parsed = parse(&Bytes::from(payload));
                if !name.contains('\n') {
                    assert_eq!(
                        parsed,
                        Ok(FileFrame::Chunk {
                            name: name.clone(),
                            data: Bytes::copy_from_slice(&body[start..end])
                        }),
                        "FILECHUNK does not survive the wire"
                    );
                }
                h.frame(&sender(from), parsed);
            }
            FileOp::End {
                from,
                name,
                content: c,
                corrupt,
            } => {
                let mut sha = sha256(content(c));
                if corrupt {
                    sha[0] ^= 1;
                }
                let name = name.text();
                let payload = FileFrame::end_payload(&name, &sha);
                let parsed = parse(&payload);
                assert_eq!(
                    parsed,
                    Ok(FileFrame::End {
                        name: name.clone(),
                        sha256: sha
                    }),
                    "FILEEND does not survive the wire"
                );
                h.frame(&sender(from), parsed);
            }
            FileOp::Raw { from, tag, payload } => {
                let tag: &[u8] = match tag % 4 {
                    0 => b"FILESTART:",
                    1 => b"FILECHUNK:",
                    2 => b"FILEEND:",
                    _ => b"",
                };
                let payload = Bytes::from([tag, &payload[..]].concat());
                if let Some(parsed) = FileFrame::parse(&payload) {
                    h.frame(&sender(from), parsed);
                }
            }
            FileOp::Committed { pick } => h.committed(pick),
            FileOp::StorageFailed { pick } => h.storage_failed(pick),
            FileOp::PeerGone { from } => h.peer_gone(&sender(from)),
            FileOp::Advance { secs } => h.advance(secs),
            FileOp::Shutdown => h.shutdown(),
        }
        h.check_state();
    }
    h.summary
}

/// Parses a payload that is a file frame by construction.
fn parse(payload: &Bytes) -> Result<FileFrame, MalformedFileFrame> {
    match FileFrame::parse(payload) {
        Some(parsed) => parsed,
        None => panic!("{payload:?} is not recognised as a file frame"),
    }
}
