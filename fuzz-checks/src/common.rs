//! Byte-level input format shared by the targets, and the storage tracker
//! that checks every [`StorageOp`] the receiving side asks for.

use std::collections::BTreeMap;

use arbitrary::Unstructured;
use p2p_core::{StorageOp, TransferId};
use sha2::{Digest, Sha256};

/// Reads fuzzer bytes. Every read succeeds: past the end, integers read as
/// zero and byte strings come out short, so that any input is a valid
/// (possibly truncated) sequence of operations.
pub(crate) struct Reader<'a> {
    u: Unstructured<'a>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader {
            u: Unstructured::new(data),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.u.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.u.arbitrary().unwrap_or(0)
    }

    /// Little-endian, as [`Writer::u16`] writes it.
    pub(crate) fn u16(&mut self) -> u16 {
        self.u.arbitrary().unwrap_or(0)
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.u.len());
        self.u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// A byte string with a one-byte length prefix.
    pub(crate) fn short_bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// A byte string with a two-byte length prefix.
    pub(crate) fn long_bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16());
        self.bytes(n)
    }

    /// Everything left.
    pub(crate) fn rest(self) -> Vec<u8> {
        self.u.take_rest().to_vec()
    }
}

/// Writes inputs in the format the checks read: the inverse of their
/// readers, used to build the seed corpus and regression tests.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    /// The bytes written so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// An empty input.
    pub fn new() -> Self {
        Writer::default()
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A boolean as one byte.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// Raw bytes, no length.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }

    /// Bytes with a one-byte length prefix (at most 255 bytes are kept).
    pub fn short_bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(255)];
        self.u8(b.len() as u8).raw(b)
    }

    /// Bytes with a two-byte length prefix (at most 65535 bytes are kept).
    pub fn long_bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(65535)];
        self.u16(b.len() as u16).raw(b)
    }
}

/// Picks from a non-empty list by a selector byte.
pub(crate) fn pick<T>(items: &[T], sel: u8) -> &T {
    &items[usize::from(sel) % items.len()]
}

/// Picks from a non-empty list of texts by a selector byte.
pub(crate) fn pick_str(items: &[&'static str], sel: u8) -> &'static str {
    items[usize::from(sel) % items.len()]
}

/// The SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Deterministic file contents of a few sizes, so that inputs can refer to
/// "content k" and the fuzzer can build valid transfers from small numbers.
pub(crate) fn contents() -> &'static [Vec<u8>] {
    use std::sync::OnceLock;
    static CONTENTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CONTENTS.get_or_init(|| {
        let pattern = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
                .collect()
        };
        vec![
            Vec::new(),
            b"hello world\n".to_vec(),
            pattern(700),
            pattern(3000),
        ]
    })
}

/// Fixed content number `sel` (modulo their count).
pub(crate) fn content_bytes(sel: u8) -> &'static [u8] {
    pick(contents(), sel).as_slice()
}

/// The SHA-256 of [`content_bytes`]`(sel)`, computed once per content.
pub(crate) fn content_sha(sel: u8) -> [u8; 32] {
    use std::sync::OnceLock;
    static SHAS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    *pick(
        SHAS.get_or_init(|| contents().iter().map(|c| sha256(c)).collect()),
        sel,
    )
}

/// Whether `part` is one safe file name inside the downloads directory, in
/// the receiver's part-file form `.<name>.<id>.part` for `transfer`: no
/// separator, NUL or control character, not `.`/`..`, at most 255 bytes.
pub fn is_part_name(part: &str, transfer: TransferId) -> bool {
    let suffix = format!(".{}.part", transfer.0);
    let Some(inner) = part
        .strip_prefix('.')
        .and_then(|p| p.strip_suffix(suffix.as_str()))
    else {
        return false;
    };
    !inner.is_empty()
        && part.len() <= 255
        && !part
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Whether `name` is a plain file name the receiver may save under, by
/// PROTOCOL.md's rule, written here independently of the core's own
/// `check_name` so that the checks do not grade the core by itself: not
/// empty, not `.` or `..`, no `/`, `\`, NUL or other control character, at
/// most 255 bytes, and not ending in `.part`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.ends_with(".part")
        && name
            .chars()
            .all(|c| c != '/' && c != '\\' && c != '\0' && !c.is_control())
}

/// Whether `part` is the part file of final name `name` for `transfer`:
/// `.<name>.<id>.part`, with the name cut (at a character boundary) to its
/// first 200 bytes so that the part name stays a valid file name.
fn is_part_of(part: &str, name: &str, transfer: TransferId) -> bool {
    let suffix = format!(".{}.part", transfer.0);
    let Some(inner) = part
        .strip_prefix('.')
        .and_then(|p| p.strip_suffix(suffix.as_str()))
    else {
        return false;
    };
    if name.len() <= 200 {
        inner == name
    } else {
        // The longest prefix within 200 bytes: 197 at least (a character
        // is at most 4 bytes).
        name.starts_with(inner) && inner.len() <= 200 && inner.len() > 196
    }
}

/// What a committed transfer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) sha: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// `Commit` was asked; waiting for the driver's answer.
    Committing,
    /// The driver reported the commit; nothing more may happen.
    Done,
    Discarded,
}

#[derive(Debug)]
struct Tracked {
    /// The part file name it was created with.
    part: String,
    hasher: Sha256,
    len: u64,
    phase: Phase,
    /// The driver reported a failed op: a `Discard` may follow a `Commit`.
    storage_failed: bool,
    written: Option<Written>,
}

/// Follows the storage ops of every transfer, as a driver would execute
/// them, and checks the contract of [`StorageOp`]: `Create` with a fresh
/// transfer and a plain part name, `Write`s, then one `Commit` (to a plain
/// name) or `Discard`.
#[derive(Debug, Default)]
pub(crate) struct StorageTracker {
    transfers: BTreeMap<TransferId, Tracked>,
    /// How many of `transfers` are in phase `Committing`.
    n_committing: usize,
}

impl StorageTracker {
    /// Applies one op; on `Commit` returns what was written, for the caller
    /// to check against what the sender declared.
    pub(crate) fn apply(&mut self, op: &StorageOp) -> Option<(TransferId, Written)> {
        match op {
            StorageOp::Create { transfer, part } => {
                assert!(
                    !self.transfers.contains_key(transfer),
                    "Create for {transfer} which was created before"
                );
                assert!(
                    is_part_name(part, *transfer),
                    "Create of part {part:?} for {transfer}: not a plain name in the downloads directory"
                );
                self.transfers.insert(
                    *transfer,
                    Tracked {
                        part: part.clone(),
                        hasher: Sha256::new(),
                        len: 0,
                        phase: Phase::Open,
                        storage_failed: false,
                        written: None,
                    },
                );
                None
            }
            StorageOp::Write { transfer, data } => {
                let t = Self::get(&mut self.transfers, *transfer, "Write");
                assert_eq!(t.phase, Phase::Open, "Write to {transfer} after it ended");
                t.hasher.update(data);
                t.len += data.len() as u64;
                None
            }
            StorageOp::Commit { transfer, name } => {
                let t = Self::get(&mut self.transfers, *transfer, "Commit");
                assert_eq!(t.phase, Phase::Open, "Commit of {transfer} after it ended");
                assert!(
                    is_plain_name(name),
                    "Commit of {transfer} to {name:?}: not a plain name in the downloads directory"
                );
                assert!(
                    is_part_of(&t.part, name, *transfer),
                    "Commit of {transfer} to {name:?} from part {:?}: under another name",
                    t.part
                );
                t.phase = Phase::Committing;
                self.n_committing += 1;
                let written = Written {
                    name: name.clone(),
                    len: t.len,
                    sha: t.hasher.clone().finalize().into(),
                };
                t.written = Some(written.clone());
                Some((*transfer, written))
            }
            StorageOp::Discard { transfer } => {
                let t = Self::get(&mut self.transfers, *transfer, "Discard");
                let ok =
                    t.phase == Phase::Open || (t.phase == Phase::Committing && t.storage_failed);
                assert!(ok, "Discard of {transfer} in phase {:?}", t.phase);
                if t.phase == Phase::Committing {
                    self.n_committing -= 1;
                }
                t.phase = Phase::Discarded;
                None
            }
            // The sending side's reads: not part of what is received.
            _ => None,
        }
    }

    fn get<'m>(
        transfers: &'m mut BTreeMap<TransferId, Tracked>,
        transfer: TransferId,
        what: &str,
    ) -> &'m mut Tracked {
        match transfers.get_mut(&transfer) {
            Some(t) => t,
            None => panic!("{what} for {transfer} which was never created"),
        }
    }

    /// The driver will report `Input::StorageFailed` for `transfer`.
    pub(crate) fn storage_failed(&mut self, transfer: TransferId) {
        if let Some(t) = self.transfers.get_mut(&transfer) {
            t.storage_failed = true;
        }
    }

    /// The driver reports `Input::Committed` for `transfer`; returns what
    /// was committed, if it was committing.
    pub(crate) fn committed(&mut self, transfer: TransferId) -> Option<Written> {
        let t = self.transfers.get_mut(&transfer)?;
        if t.phase != Phase::Committing {
            return None;
        }
        t.phase = Phase::Done;
        self.n_committing -= 1;
        t.written.clone()
    }

    /// Transfers waiting for the driver's answer to `Commit`, oldest first.
    pub(crate) fn committing(&self) -> Vec<TransferId> {
        self.ids_in(Phase::Committing)
    }

    /// How many transfers wait for the driver's answer to `Commit`.
    pub(crate) fn committing_count(&self) -> usize {
        self.n_committing
    }

    /// Transfers still receiving data.
    pub(crate) fn open(&self) -> Vec<TransferId> {
        self.ids_in(Phase::Open)
    }

    fn ids_in(&self, phase: Phase) -> Vec<TransferId> {
        self.transfers
            .iter()
            .filter(|(_, t)| t.phase == phase)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Bytes written so far to an open transfer.
    pub(crate) fn written_len(&self, transfer: TransferId) -> Option<u64> {
        self.transfers.get(&transfer).map(|t| t.len)
    }

    /// The SHA-256 of what an open transfer wrote so far.
    pub(crate) fn written_sha(&self, transfer: TransferId) -> Option<[u8; 32]> {
        self.transfers
            .get(&transfer)
            .map(|t| t.hasher.clone().finalize().into())
    }
}

/// Whether the known core bug `bug` is listed in the environment variable
/// `P2P_FUZZ_TOLERATE` (comma-separated), so that a fuzzing run goes on
/// past it to find others. Unset (tests, CI), every check is strict.
pub(crate) fn tolerated(bug: &str) -> bool {
    use std::sync::OnceLock;
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        std::env::var("P2P_FUZZ_TOLERATE")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .iter()
    .any(|b| b == bug)
}
