//! The sending side of the `node` target: the driver's storage completions
//! for [`p2p_core::Node::send_file`] (in any order, right or wrong, or never)
//! and a model of every outgoing transfer and of the file frames the node
//! sends on each connection, against which `node.rs` checks the send
//! invariants (listed in its module documentation).

use std::collections::BTreeMap;

use p2p_core::{ConnId, TransferId};
use sha2::{Digest, Sha256};

use crate::common::{content_bytes, Reader, Writer};

/// What the driver answers to the node's current `StorageOp::Read` of a
/// transfer (or, when none is in flight, to offset 0 with one chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The asked bytes of the source.
    Honest,
    /// The asked bytes less the last `n` (at least one).
    Short(u16),
    /// The asked bytes and these after them.
    Long(Vec<u8>),
    /// The asked bytes with the byte at `pos` (modulo their length) flipped:
    /// the same lie at the same offset in both passes is a consistent lie.
    Flip(u16),
    /// The asked bytes, reported at the asked offset plus `delta` (at least 1).
    Offset(u16),
    /// Any bytes at the asked offset.
    Data(Vec<u8>),
    /// The source's bytes at any offset and length (a read never asked).
    At {
        /// Offset.
        offset: u16,
        /// Length.
        len: u16,
    },
    /// The last completion delivered for this transfer, again.
    Replay,
    /// As many bytes at the asked offset, from another source (a file that
    /// changed between or during the passes).
    Other(u8),
}

impl Answer {
    fn read(r: &mut Reader) -> Answer {
        match r.u8() % 8 {
            0 => Answer::Short(r.u16()),
            1 => Answer::Long(r.short_bytes()),
            2 => Answer::Flip(r.u16()),
            3 => Answer::Offset(r.u16()),
            4 => Answer::Data(r.short_bytes()),
            5 => Answer::At {
                offset: r.u16(),
                len: r.u16(),
            },
            6 => Answer::Replay,
            _ => Answer::Other(r.u8()),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Answer::Honest => w.u8(1),
            Answer::Short(n) => w.u8(2).u8(0).u16(*n),
            Answer::Long(b) => w.u8(2).u8(1).short_bytes(b),
            Answer::Flip(p) => w.u8(2).u8(2).u16(*p),
            Answer::Offset(d) => w.u8(2).u8(3).u16(*d),
            Answer::Data(b) => w.u8(2).u8(4).short_bytes(b),
            Answer::At { offset, len } => w.u8(2).u8(5).u16(*offset).u16(*len),
            Answer::Replay => w.u8(2).u8(6),
            Answer::Other(c) => w.u8(2).u8(7).u8(*c),
        };
    }
}

/// A storage completion (or command) for an outgoing transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOp {
    /// `Input::Opened` with a size: `mode` 0 the source's true size, 1
    /// `arg`, 2 the true size plus `arg` as a signed delta, 3 one of a few
    /// extreme sizes.
    Opened {
        /// How the size is chosen.
        mode: u8,
        /// Its argument.
        arg: u16,
    },
    /// `Input::Read`.
    Read(Answer),
    /// `Input::StorageFailed`.
    Failed,
    /// Honest completions for every transfer (opens, reads) and full
    /// `Flushed` reports for every connection, repeated for up to
    /// `8 * (rounds % 16 + 1)` rounds or until nothing is pending; it reads
    /// at most 128 KiB for the whole input.
    Drive {
        /// Round selector.
        rounds: u8,
    },
    /// `Node::abort_file`.
    Abort,
}

impl SourceOp {
    pub(crate) fn read(r: &mut Reader) -> SourceOp {
        match r.u8() % 8 {
            0 => SourceOp::Opened {
                mode: r.u8(),
                arg: r.u16(),
            },
            1 => SourceOp::Read(Answer::Honest),
            2 => SourceOp::Read(Answer::read(r)),
            3 => SourceOp::Failed,
            4 | 5 => SourceOp::Drive { rounds: r.u8() },
            _ => SourceOp::Abort,
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        match self {
            SourceOp::Opened { mode, arg } => {
                w.u8(0).u8(*mode).u16(*arg);
            }
            SourceOp::Read(a) => a.write(w),
            SourceOp::Failed => {
                w.u8(3);
            }
            SourceOp::Drive { rounds } => {
                w.u8(4).u8(*rounds);
            }
            SourceOp::Abort => {
                w.u8(6);
            }
        }
    }
}

/// The size an `Opened` reports for a source of `true_size` bytes.
pub(crate) fn opened_size(true_size: u64, mode: u8, arg: u16) -> u64 {
    match mode % 4 {
        0 => true_size,
        1 => u64::from(arg),
        2 => true_size.saturating_add_signed(i64::from(arg as i16)),
        _ => [
            0,
            1,
            1 << 20,
            (1 << 20) + 1,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ][usize::from(arg) % 7],
    }
}

/// Byte `i` of source `content`: the fixed content, then a pattern, so that
/// an `Opened` with any size still has honest bytes to read.
pub(crate) fn source_bytes(content: u8, offset: u64, len: usize) -> Vec<u8> {
    let body = content_bytes(content);
    (0..len as u64)
        .map(|k| {
            let i = offset.saturating_add(k);
            match usize::try_from(i) {
                Ok(i) if i < body.len() => body[i],
                _ => (i.wrapping_mul(7).wrapping_add(u64::from(content)) as u8) ^ 0xa5,
            }
        })
        .collect()
}

/// The harness's model of one `send_file` transfer.
#[derive(Debug)]
pub(crate) struct SendModel {
    pub(crate) name: String,
    pub(crate) content: u8,
    pub(crate) path: String,
    /// The node asked `Open`.
    pub(crate) open_seen: bool,
    /// `Opened` completions delivered.
    pub(crate) opens_answered: u32,
    /// The size of the first `Opened` (the one the node takes).
    pub(crate) size: Option<u64>,
    /// The `Read` asked and not answered: `(offset, len)`.
    pub(crate) in_flight: Option<(u64, usize)>,
    /// The last `Read` completion delivered.
    pub(crate) last_read: Option<(u64, Vec<u8>)>,
    /// `FileSendStarted` came: reads now belong to the sending pass.
    pub(crate) started: bool,
    /// What the driver supplied for the asked reads of the hash pass.
    pub(crate) hashed: Sha256,
    /// What the driver supplied for the asked reads of the sending pass:
    /// exactly what the chunks must carry.
    pub(crate) supplied: Vec<u8>,
    /// `Close` ops asked before or with its end.
    pub(crate) closes: u32,
    /// `Some(true)` after `FileSent`, `Some(false)` after `FileSendFailed`.
    pub(crate) ended: Option<bool>,
    /// It shared a file name with another live transfer on a connection:
    /// its frames cannot be told apart there, so content is not checked.
    pub(crate) mixed: bool,
    /// The connections whose stream of `name` was bound to it at its
    /// `FileSendStarted` (the only streams it can own).
    pub(crate) streams: Vec<ConnId>,
}

impl SendModel {
    pub(crate) fn new(name: String, content: u8, path: String) -> SendModel {
        SendModel {
            name,
            content,
            path,
            open_seen: false,
            opens_answered: 0,
            size: None,
            in_flight: None,
            last_read: None,
            started: false,
            hashed: Sha256::new(),
            supplied: Vec::new(),
            closes: 0,
            ended: None,
            mixed: false,
            streams: Vec::new(),
        }
    }

    pub(crate) fn live(&self) -> bool {
        self.ended.is_none()
    }

    /// The source's true size.
    pub(crate) fn true_size(&self) -> u64 {
        content_bytes(self.content).len() as u64
    }

    /// The completion `answer` stands for: `(offset, data)`.
    pub(crate) fn answer(&self, answer: &Answer, chunk: usize) -> (u64, Vec<u8>) {
        let (at, len) = self.in_flight.unwrap_or((0, chunk));
        let honest = || source_bytes(self.content, at, len);
        match answer {
            Answer::Honest => (at, honest()),
            Answer::Short(n) => {
                let mut d = honest();
                let cut = usize::from(*n).max(1).min(d.len());
                d.truncate(d.len() - cut);
                (at, d)
            }
            Answer::Long(extra) => {
                let mut d = honest();
                d.extend_from_slice(if extra.is_empty() { &[0] } else { extra });
                (at, d)
            }
            Answer::Flip(pos) => {
                let mut d = honest();
                if !d.is_empty() {
                    let i = usize::from(*pos) % d.len();
                    d[i] ^= 0x01;
                }
                (at, d)
            }
            Answer::Offset(delta) => (at.saturating_add(u64::from(*delta).max(1)), honest()),
            Answer::Data(d) => (at, d.clone()),
            Answer::At { offset, len } => (
                u64::from(*offset),
                source_bytes(self.content, u64::from(*offset), usize::from(*len)),
            ),
            Answer::Replay => self.last_read.clone().unwrap_or_else(|| (at, honest())),
            Answer::Other(c) => (
                at,
                source_bytes(self.content.wrapping_add(1 + c % 3), at, len),
            ),
        }
    }
}

/// Who sent the frames of one outgoing file stream on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A `FILESTART` whose transfer is not known yet (a `FileSendStarted`
    /// follows in the same drain).
    Unbound,
    /// The caller-driven `start_file`.
    Legacy(TransferId),
    /// A `send_file` transfer.
    Send(TransferId),
}

/// The node's outgoing `FILESTART`/`FILECHUNK`/`FILEEND` frames of one
/// name on one connection, from its `FILESTART` on.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub(crate) owner: Owner,
    pub(crate) size: u64,
    pub(crate) sha: [u8; 32],
    pub(crate) hasher: Sha256,
    pub(crate) len: u64,
    pub(crate) ended: bool,
    pub(crate) mixed: bool,
    /// Started in the current drain.
    pub(crate) fresh: bool,
}

impl OutStream {
    pub(crate) fn new(owner: Owner, size: u64, sha: [u8; 32]) -> OutStream {
        OutStream {
            owner,
            size,
            sha,
            hasher: Sha256::new(),
            len: 0,
            ended: false,
            mixed: false,
            fresh: true,
        }
    }
}

/// The current stream of each name on one connection.
pub(crate) type Streams = BTreeMap<String, OutStream>;
