//! The `swarm` target: content-addressed sharing (docs/PROTOCOL.md §9)
//! against one [`Node`] with chunks of 4096 bytes and small limits
//! ([`config`]), three fake peers handshaked before the input starts
//! (`a` and `b` announce `swarm/1` in their caps frame, `r` announces
//! `caps/1 leave/1` only), and a model of the driver's storage.
//!
//! An input is a sequence of [`SwarmOp`]s: swarm frames from a peer built
//! from small selectors ([`PeerFrame`]: indexes with good and hostile
//! entries, manifests of fixed test contents or corrupted, hostile or
//! non-canonical ones, bitfields, chunks right, corrupted, truncated,
//! extended or of another index, `none`, `cancel`, offers, declines), raw
//! `P2PX/swarm` bodies, node commands ([`SwarmCmd`]), completions of the
//! storage ops the node is waiting for ([`SwarmOp::Storage`]: honest,
//! dishonest (wrong bytes, a record that claims what it does not hold, a
//! hostile manifest among the partials found) or failed), time passing,
//! and peers disconnecting, reconnecting and reporting their queue
//! flushed. The driver answers the node's `PING`s, reports the closes the
//! node asks for and fails its dials.
//!
//! The contents are fixed ([`catalog`]): five real ones (a file of three
//! chunks, a tree of three files, a 12-byte file, an empty file, a file
//! of ten chunks), a valid manifest whose chunks nobody holds, one over
//! `swarm.max_manifest`, and hostile or non-canonical manifests (`..`, an
//! absolute path, a device name, `:`, a file that is a directory, unsorted
//! paths, a wrong chunk count, a bad chunk size, a leading zero, `.part`,
//! an empty component, a control character), each under its own id
//! (the BLAKE3 of its bytes), and an id of nothing.
//!
//! After every output and step the check asserts:
//! - nothing is committed that does not match its id: every
//!   `OpenPartial` manifest hashes (BLAKE3, computed here) to its content
//!   id, parses, and passes the manifest checks of the `manifest` target
//!   (every path `check_path` and [`is_safe_path`]); every `WriteChunk`
//!   goes to a partial whose open the driver answered and carries bytes of
//!   chunk k's length whose BLAKE3 is chunk k's hash in that manifest;
//!   `CommitDownload` comes only once every chunk of it was written so or
//!   read back from the storage (a chunk a record claimed) with bytes that
//!   verify, and at most once per partial;
//! - a `chunk` frame the node transmits carries exactly the bytes the
//!   storage returned for a read answered in that step, of that content
//!   and chunk, at most one frame per read, to a peer whose `get` for it
//!   is outstanding (not answered, not cancelled, on this connection);
//!   `none <id> <k>` answers such a `get`; `mani`, `have` and `none <id>`
//!   answer an `mget`/`hget` of that peer in that step; a `mani` hashes to
//!   its id and parses; a `have` is as long as the content's chunks, with
//!   every chunk of shared content set, and for a download only chunks
//!   that verified (and no bit past the last chunk);
//! - no swarm frame goes to `r`; every swarm frame the node sends parses
//!   (by this module's own reading of §9.2); a `get` asks a chunk of a
//!   download whose partial is open, to a peer not banned from it by a
//!   `ChunkRejected` (for the download's whole life: a ban is not lifted
//!   by an index that drops the content and lists it again, nor by a
//!   reconnect); a `cancel` withdraws a `get` sent to that peer; an index
//!   lists complete only content the node holds (shared or committed) and
//!   partial only content with a verified chunk, with the manifest's size,
//!   file count and name; an `offer` is of content held;
//! - `ChunkRejected` only for bytes that do not verify, from the peer and
//!   for the chunk delivered in that step; `Shared` only of the manifest
//!   the driver reported in that step; `Offer` only from the peer whose
//!   `offer` arrived in that step, accepted exactly when it is from `b`
//!   (`swarm.accept_offers`); `OfferDeclined` only for an offer made to
//!   that peer; download progress within the verified bytes;
//!   `DownloadComplete` only in the step the driver reported that
//!   content committed; a download leaves `downloads()` only with a
//!   `DownloadComplete` or `DownloadFailed`;
//! - bounded memory: at most [`MAX_OUTPUTS`] outputs per step, the
//!   node's downloads within `swarm.max_downloads` and offers within
//!   `swarm.max_offers`, requests in flight within `requests_per_peer`
//!   per swarm peer; no deadline at or before now survives
//!   `handle_timeout`; after `shutdown`, no download and no storage op
//!   (a late storage answer starts nothing); no panic.
//!
//! A `handle_timeout` that never returns (a deadline that stays due) is a
//! hang the check cannot report itself: run the fuzzer with `-timeout=10`
//! (two such hangs were found so; see `tests/regressions.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_core::codec::{Decoder, Frame, Limits};
use p2p_core::{
    AcceptOffers, CloseReason, Config, ConnId, ContentId, Event, Input, IoError, Manifest,
    ManifestFile, Node, Output, PeerId, StorageOp, Target,
};

use crate::common::{pick, Reader, Writer};
pub use crate::manifest::is_safe_path;

/// Chunk size of the node's manifests and of the test contents.
pub const CHUNK: u32 = 4096;
/// Our id.
const OUR_ID: &str = "m";
/// Our listening port.
const PORT: u16 = 8001;
/// Most outputs one step may produce.
pub const MAX_OUTPUTS: usize = 512;
/// Most ops read from one input.
const MAX_OPS: usize = 256;

/// The fake peers: id, whether its caps frame lists `swarm/1`, the address
/// it connects from, its `LISTEN:` address.
const PEERS: [(&str, bool, &str, &str); 3] = [
    ("a", true, "127.0.0.1:40001", "127.0.0.1:9001"),
    ("b", true, "127.0.0.1:40002", "127.0.0.1:9002"),
    ("r", false, "127.0.0.1:40003", "127.0.0.1:9003"),
];
/// Peers that speak `swarm/1`.
const SWARM_PEERS: usize = 2;

/// Paths the application shares, and the content (catalog index) each is.
const SHARE_PATHS: [(&str, Option<usize>); 6] = [
    ("/srv/data.bin", Some(0)),
    ("/srv/dir", Some(1)),
    ("/home/hello.txt", Some(2)),
    ("/srv/empty", Some(3)),
    ("/srv/ten.bin", Some(4)),
    ("/nonexistent", None),
];

/// Target directories of `get`.
const DIRS: [Option<&str>; 3] = [None, Some("sub"), Some("a/b")];

/// The node's configuration in this target.
pub fn config() -> Config {
    let mut c = Config::new(PORT);
    c.id = Some(PeerId::parse(OUR_ID).expect("valid id"));
    c.name = Some("node m".into());
    c.connections.max_peers = 4;
    c.connections.max_line_len = 4096;
    c.connections.max_bytes_per_message = 64 * 1024;
    let s = &mut c.swarm;
    s.chunk_size = CHUNK;
    s.requests_per_peer = 4;
    s.max_serving_per_peer = 4;
    s.max_manifest = 4096;
    s.max_downloads = 2;
    s.checkpoint_every = 2;
    s.max_offers = 2;
    s.accept_offers = AcceptOffers::From([PeerId::parse("b").expect("valid id")].into());
    c
}

// ----- the fixed contents -----

/// One content of the catalog.
#[derive(Debug)]
pub struct Item {
    /// What it is (for messages).
    pub label: &'static str,
    /// Its manifest's bytes (for hostile items, whatever they are).
    pub manifest: Bytes,
    /// The BLAKE3 of `manifest`.
    pub id: ContentId,
    /// The concatenation of its files, for the real contents.
    pub data: Option<Vec<u8>>,
    /// Size, file count and name, for index entries.
    size: u64,
    files: u32,
    name: &'static str,
}

/// The fixed test contents (see the module doc), the first five real.
pub fn catalog() -> &'static [Item] {
    static CATALOG: OnceLock<Vec<Item>> = OnceLock::new();
    CATALOG.get_or_init(build_catalog)
}

/// Catalog index of the first hostile (unparsable) manifest.
pub const FIRST_HOSTILE: usize = 7;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i.wrapping_mul(31) ^ (i >> 7)) as u8).wrapping_add(seed))
        .collect()
}

fn blake(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

fn real(label: &'static str, name: &'static str, files: Vec<(&str, Vec<u8>)>) -> Item {
    let mut files = files;
    files.sort_by(|a, b| a.0.cmp(b.0));
    let stream: Vec<u8> = files.iter().flat_map(|f| f.1.iter().copied()).collect();
    let hashes = stream.chunks(CHUNK as usize).map(blake).collect();
    let list = files
        .iter()
        .map(|(p, d)| ManifestFile {
            path: (*p).to_owned(),
            size: d.len() as u64,
        })
        .collect();
    let m = Manifest::new(CHUNK, list, hashes).expect("a valid test content");
    let manifest = m.encode();
    Item {
        label,
        id: ContentId(blake(&manifest)),
        manifest,
        size: stream.len() as u64,
        files: files.len() as u32,
        data: Some(stream),
        name,
    }
}

/// A manifest's text as given, with `hashes` hashes of `[7; 32]`.
fn raw_manifest(cs: &str, files: &[(&str, &str)], hashes: usize) -> Vec<u8> {
    let mut v = format!("p2p-manifest/1\nchunk-size {cs}\nfiles {}\n", files.len()).into_bytes();
    for (size, path) in files {
        v.extend_from_slice(format!("{size} {path}\n").as_bytes());
    }
    v.extend_from_slice(format!("chunks {hashes}\n").as_bytes());
    v.extend(std::iter::repeat_n(7u8, hashes * 32));
    v
}

fn fake(label: &'static str, manifest: Vec<u8>, size: u64, name: &'static str) -> Item {
    Item {
        label,
        id: ContentId(blake(&manifest)),
        manifest: Bytes::from(manifest),
        data: None,
        size,
        files: 1,
        name,
    }
}

fn build_catalog() -> Vec<Item> {
    let c = CHUNK as usize;
    let cs = "4096";
    let mut v = vec![
        real(
            "a file of 3 chunks",
            "data.bin",
            vec![("data.bin", pattern(2 * c + 1000, 1))],
        ),
        real(
            "a tree of 3 files",
            "dir",
            vec![
                ("dir/z.bin", pattern(3000, 2)),
                ("dir/a.txt", pattern(5000, 3)),
                ("dir/b/empty", Vec::new()),
            ],
        ),
        real(
            "a 12-byte file",
            "hello.txt",
            vec![("hello.txt", b"hello world\n".to_vec())],
        ),
        real("an empty file", "empty", vec![("empty", Vec::new())]),
        real(
            "a file of 10 chunks",
            "ten.bin",
            vec![("ten.bin", pattern(10 * c - 5, 4))],
        ),
        fake(
            "a valid manifest nobody holds",
            raw_manifest(cs, &[("12288", "fake.bin")], 3),
            12288,
            "fake.bin",
        ),
        fake(
            "a manifest over max_manifest",
            raw_manifest(cs, &[("819200", "big.bin")], 200),
            819_200,
            "big.bin",
        ),
    ];
    debug_assert_eq!(v.len(), FIRST_HOSTILE);
    let hostile: [(&'static str, Vec<u8>); 14] = [
        ("a `..` path", raw_manifest(cs, &[("10", "../escape")], 1)),
        (
            "an absolute path",
            raw_manifest(cs, &[("10", "/etc/passwd")], 1),
        ),
        ("a device name", raw_manifest(cs, &[("10", "d/CON")], 1)),
        ("`..` inside", raw_manifest(cs, &[("10", "d/../x")], 1)),
        ("a `:`", raw_manifest(cs, &[("10", "x:y")], 1)),
        (
            "a file that is a directory",
            raw_manifest(cs, &[("1", "d/a"), ("1", "d/a/b")], 1),
        ),
        (
            "unsorted paths",
            raw_manifest(cs, &[("1", "d/b"), ("1", "d/a")], 1),
        ),
        ("a wrong chunk count", raw_manifest(cs, &[("10", "f")], 2)),
        (
            "a chunk size of 100",
            raw_manifest("100", &[("10", "f")], 1),
        ),
        ("a leading zero", raw_manifest(cs, &[("010", "f")], 1)),
        ("a .part name", raw_manifest(cs, &[("10", "f.part")], 1)),
        ("an empty component", raw_manifest(cs, &[("10", "d//x")], 1)),
        (
            "a control character",
            raw_manifest(cs, &[("10", "d/a\u{1}b")], 1),
        ),
        ("not a manifest", b"p2p-manifest/2\n".to_vec()),
    ];
    for (label, m) in hostile {
        v.push(fake(label, m, 10, "x"));
    }
    v
}

/// A content by selector: the catalog, then an id of nothing.
fn item(sel: u8) -> Option<&'static Item> {
    let c = catalog();
    let i = usize::from(sel) % (c.len() + 1);
    c.get(i)
}

/// The id a selector names.
fn item_id(sel: u8) -> ContentId {
    item(sel).map_or(ContentId([0xee; 32]), |i| i.id)
}

/// The item whose id is `id`.
fn item_of(id: &ContentId) -> Option<&'static Item> {
    catalog().iter().find(|i| i.id == *id)
}

/// Chunk `k` of a content as its holders send it: the real bytes of a real
/// content (empty past its end), deterministic filler otherwise.
fn chunk_of(it: Option<&Item>, k: u32) -> Vec<u8> {
    match it.and_then(|i| i.data.as_ref()) {
        Some(d) => {
            let start = (k as usize).saturating_mul(CHUNK as usize).min(d.len());
            let end = start.saturating_add(CHUNK as usize).min(d.len());
            d[start..end].to_vec()
        }
        None => vec![k as u8; 100],
    }
}

// ----- the byte format -----

/// One entry of an `index` or `offer` frame: content `item`, `flags` bit 0
/// complete, bits 1.. the variant: 0 as it is, 1 a wrong size, 2 a hostile
/// name (the whole frame is refused), 3 a name with spaces, 4 an id of
/// nothing, 5 no files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySel {
    /// Content selector.
    pub item: u8,
    /// Complete flag and variant.
    pub flags: u8,
}

impl EntrySel {
    fn read(r: &mut Reader) -> EntrySel {
        EntrySel {
            item: r.u8(),
            flags: r.u8(),
        }
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.item).u8(self.flags);
    }

    fn line(&self) -> String {
        let it = item(self.item);
        let mut id = item_id(self.item);
        let (mut size, mut files, mut name) = it.map_or((1, 1, "nothing".to_owned()), |i| {
            (i.size, i.files, i.name.to_owned())
        });
        match (self.flags >> 1) % 6 {
            1 => size += 1,
            2 => name = "../x".into(),
            3 => name = "my file (1).txt".into(),
            4 => id.0[0] ^= 0xff,
            5 => files = 0,
            _ => {}
        }
        let flag = if self.flags & 1 == 1 { 'c' } else { 'p' };
        format!("{id} {size} {files} {flag} {name}")
    }
}

/// A swarm frame from a fake peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrame {
    /// `index` with these entries.
    Index(Vec<EntrySel>),
    /// `mget`.
    Mget {
        /// Content selector.
        item: u8,
    },
    /// `mani`: `variant` 0 the item's manifest, 1 the next item's under this
    /// id, 2 a byte flipped, 3 truncated, 4 a byte more, 5 empty.
    Mani {
        /// Content selector.
        item: u8,
        /// What is sent.
        variant: u8,
    },
    /// `hget`.
    Hget {
        /// Content selector.
        item: u8,
    },
    /// `have`: `mode` 0 every chunk, 1 none, 2 the bytes `bits`.
    Have {
        /// Content selector.
        item: u8,
        /// Which bitfield.
        mode: u8,
        /// The bitfield of mode 2.
        bits: Vec<u8>,
    },
    /// `get` (chunk `0xffff`: `u32::MAX`).
    Get {
        /// Content selector.
        item: u8,
        /// Chunk.
        chunk: u16,
    },
    /// `chunk`: `variant` 0 right, 1 a byte flipped, 2 one byte short, 3 one
    /// byte more, 4 the next chunk's bytes, 5 empty, 6 zeros.
    Chunk {
        /// Content selector.
        item: u8,
        /// Chunk.
        chunk: u16,
        /// What is sent.
        variant: u8,
    },
    /// `none` for a chunk, or (chunk `0xffff`) for the content.
    None {
        /// Content selector.
        item: u8,
        /// Chunk.
        chunk: u16,
    },
    /// `cancel`.
    Cancel {
        /// Content selector.
        item: u8,
        /// Chunk.
        chunk: u16,
    },
    /// `offer`.
    Offer(EntrySel),
    /// `decline`.
    Decline {
        /// Content selector.
        item: u8,
    },
}

fn chunk_index(c: u16) -> u32 {
    if c == 0xffff {
        u32::MAX
    } else {
        u32::from(c)
    }
}

impl PeerFrame {
    fn read(r: &mut Reader) -> PeerFrame {
        match r.u8() % 12 {
            0 => {
                let n = r.u8() % 9;
                PeerFrame::Index((0..n).map(|_| EntrySel::read(r)).collect())
            }
            1 => PeerFrame::Mget { item: r.u8() },
            2 => PeerFrame::Mani {
                item: r.u8(),
                variant: r.u8(),
            },
            3 => PeerFrame::Hget { item: r.u8() },
            4 => {
                let item = r.u8();
                let mode = r.u8();
                let bits = if mode % 3 == 2 {
                    r.short_bytes()
                } else {
                    Vec::new()
                };
                PeerFrame::Have { item, mode, bits }
            }
            5 => PeerFrame::Get {
                item: r.u8(),
                chunk: r.u16(),
            },
            6 | 11 => PeerFrame::Chunk {
                item: r.u8(),
                chunk: r.u16(),
                variant: r.u8(),
            },
            7 => PeerFrame::None {
                item: r.u8(),
                chunk: r.u16(),
            },
            8 => PeerFrame::Cancel {
                item: r.u8(),
                chunk: r.u16(),
            },
            9 => PeerFrame::Offer(EntrySel::read(r)),
            _ => PeerFrame::Decline { item: r.u8() },
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            PeerFrame::Index(entries) => {
                w.u8(0).u8(entries.len() as u8);
                for e in entries {
                    e.write(w);
                }
            }
            PeerFrame::Mget { item } => {
                w.u8(1).u8(*item);
            }
            PeerFrame::Mani { item, variant } => {
                w.u8(2).u8(*item).u8(*variant);
            }
            PeerFrame::Hget { item } => {
                w.u8(3).u8(*item);
            }
            PeerFrame::Have { item, mode, bits } => {
                w.u8(4).u8(*item).u8(*mode);
                if mode % 3 == 2 {
                    w.short_bytes(bits);
                }
            }
            PeerFrame::Get { item, chunk } => {
                w.u8(5).u8(*item).u16(*chunk);
            }
            PeerFrame::Chunk {
                item,
                chunk,
                variant,
            } => {
                w.u8(6).u8(*item).u16(*chunk).u8(*variant);
            }
            PeerFrame::None { item, chunk } => {
                w.u8(7).u8(*item).u16(*chunk);
            }
            PeerFrame::Cancel { item, chunk } => {
                w.u8(8).u8(*item).u16(*chunk);
            }
            PeerFrame::Offer(e) => {
                w.u8(9);
                e.write(w);
            }
            PeerFrame::Decline { item } => {
                w.u8(10).u8(*item);
            }
        }
    }

    /// The body after `P2PX/swarm\n`.
    pub fn body(&self) -> Vec<u8> {
        let with = |head: String, payload: &[u8]| {
            let mut v = head.into_bytes();
            v.push(b'\n');
            v.extend_from_slice(payload);
            v
        };
        match self {
            PeerFrame::Index(entries) => {
                let mut text = String::new();
                for e in entries {
                    text.push_str(&e.line());
                    text.push('\n');
                }
                with("index".into(), text.as_bytes())
            }
            PeerFrame::Mget { item } => with(format!("mget {}", item_id(*item)), b""),
            PeerFrame::Mani { item: sel, variant } => {
                let own = item(*sel).map_or(Bytes::new(), |i| i.manifest.clone());
                let mut m = own.to_vec();
                match variant % 6 {
                    1 => m = item(sel.wrapping_add(1)).map_or(Vec::new(), |i| i.manifest.to_vec()),
                    2 => {
                        if let Some(b) = m.get_mut(20) {
                            *b ^= 1;
                        }
                    }
                    3 => m.truncate(m.len() / 2),
                    4 => m.push(b'\n'),
                    5 => m.clear(),
                    _ => {}
                }
                with(format!("mani {}", item_id(*sel)), &m)
            }
            PeerFrame::Hget { item } => with(format!("hget {}", item_id(*item)), b""),
            PeerFrame::Have {
                item: sel,
                mode,
                bits,
            } => {
                let n = item(*sel).map_or(0, |i| i.size.div_ceil(u64::from(CHUNK))) as usize;
                let field = match mode % 3 {
                    0 => {
                        let mut f = vec![0xff; n.div_ceil(8)];
                        if n % 8 != 0 {
                            if let Some(last) = f.last_mut() {
                                *last = 0xff << (8 - n % 8);
                            }
                        }
                        f
                    }
                    1 => vec![0; n.div_ceil(8)],
                    _ => bits.clone(),
                };
                with(format!("have {}", item_id(*sel)), &field)
            }
            PeerFrame::Get { item, chunk } => with(
                format!("get {} {}", item_id(*item), chunk_index(*chunk)),
                b"",
            ),
            PeerFrame::Chunk {
                item: sel,
                chunk,
                variant,
            } => {
                let k = chunk_index(*chunk);
                let it = item(*sel);
                let mut d = chunk_of(it, k);
                match variant % 7 {
                    1 => match d.first_mut() {
                        Some(b) => *b ^= 0x55,
                        None => d.push(0),
                    },
                    2 => {
                        d.pop();
                    }
                    3 => d.push(0),
                    4 => d = chunk_of(it, k.wrapping_add(1)),
                    5 => d.clear(),
                    6 => d.iter_mut().for_each(|b| *b = 0),
                    _ => {}
                }
                with(format!("chunk {} {k}", item_id(*sel)), &d)
            }
            PeerFrame::None {
                item,
                chunk: 0xffff,
            } => with(format!("none {}", item_id(*item)), b""),
            PeerFrame::None { item, chunk } => {
                with(format!("none {} {chunk}", item_id(*item)), b"")
            }
            PeerFrame::Cancel { item, chunk } => with(
                format!("cancel {} {}", item_id(*item), chunk_index(*chunk)),
                b"",
            ),
            PeerFrame::Offer(e) => with(format!("offer {}", e.line()), b""),
            PeerFrame::Decline { item } => with(format!("decline {}", item_id(*item)), b""),
        }
    }
}

/// A content id as the application types it: `form` 0 64 hex digits, 1
/// upper case, 2 a prefix of 8, 3 an upper-case prefix of 12, 4 a prefix of
/// 5 (too short), 5 not hex, 6 empty, 7 with spaces around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSel {
    /// Content selector.
    pub item: u8,
    /// How it is typed.
    pub form: u8,
}

impl IdSel {
    fn read(r: &mut Reader) -> IdSel {
        IdSel {
            item: r.u8(),
            form: r.u8(),
        }
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.item).u8(self.form);
    }

    fn text(&self) -> String {
        let hex = item_id(self.item).to_hex();
        match self.form % 8 {
            1 => hex.to_uppercase(),
            2 => hex[..8].to_owned(),
            3 => hex[..12].to_uppercase(),
            4 => hex[..5].to_owned(),
            5 => "not-an-id".to_owned(),
            6 => String::new(),
            7 => format!("  {hex} "),
            _ => hex,
        }
    }
}

/// An application command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmCmd {
    /// `share` of a path from the list.
    Share {
        /// Path selector.
        path: u8,
    },
    /// `unshare`.
    Unshare(IdSel),
    /// `get` into a directory from the list.
    Get {
        /// The id typed.
        id: IdSel,
        /// Directory selector.
        dir: u8,
    },
    /// `offer` of a path to everyone (`target` 0) or a peer (`target - 1`,
    /// past the three an unknown one).
    Offer {
        /// Path selector.
        path: u8,
        /// Target selector.
        target: u8,
    },
    /// `accept`.
    Accept(IdSel),
    /// `decline`.
    Decline(IdSel),
    /// `cancel_download`.
    Cancel(IdSel),
    /// `shutdown`.
    Shutdown,
}

impl SwarmCmd {
    fn read(r: &mut Reader) -> SwarmCmd {
        match r.u8() % 16 {
            0 | 8 => SwarmCmd::Share { path: r.u8() },
            1 => SwarmCmd::Unshare(IdSel::read(r)),
            2 | 9 | 10 | 15 => SwarmCmd::Get {
                id: IdSel::read(r),
                dir: r.u8(),
            },
            3 | 11 => SwarmCmd::Offer {
                path: r.u8(),
                target: r.u8(),
            },
            4 | 12 => SwarmCmd::Accept(IdSel::read(r)),
            5 | 13 => SwarmCmd::Decline(IdSel::read(r)),
            6 | 14 => SwarmCmd::Cancel(IdSel::read(r)),
            _ => SwarmCmd::Shutdown,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            SwarmCmd::Share { path } => {
                w.u8(0).u8(*path);
            }
            SwarmCmd::Unshare(id) => {
                w.u8(1);
                id.write(w);
            }
            SwarmCmd::Get { id, dir } => {
                w.u8(2);
                id.write(w);
                w.u8(*dir);
            }
            SwarmCmd::Offer { path, target } => {
                w.u8(3).u8(*path).u8(*target);
            }
            SwarmCmd::Accept(id) => {
                w.u8(4);
                id.write(w);
            }
            SwarmCmd::Decline(id) => {
                w.u8(5);
                id.write(w);
            }
            SwarmCmd::Cancel(id) => {
                w.u8(6);
                id.write(w);
            }
            SwarmCmd::Shutdown => {
                w.u8(7);
            }
        }
    }
}

/// Kinds of storage op the node waits for an answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Share`: `Shared` or `ShareFailed`.
    Share,
    /// `OpenPartial`: `PartialOpened` or `SwarmStorageFailed`.
    Open,
    /// `ReadChunk`: `ChunkRead` or `ChunkReadFailed`.
    Read,
    /// `CommitDownload`: `DownloadCommitted` or `SwarmStorageFailed`.
    Commit,
    /// `ScanPartials`: `PartialsFound`.
    Scan,
}

const KINDS: [Kind; 5] = [
    Kind::Share,
    Kind::Open,
    Kind::Read,
    Kind::Commit,
    Kind::Scan,
];

/// The driver answers a pending storage op: the `pick`th pending op of
/// kind `kind` (by selector, oldest first), as `mode` says:
/// - `Share`: 0 honest (the path's manifest), 1 a hostile manifest
///   (`arg`), 2 another content's manifest (`arg`), 3 failed;
/// - `OpenPartial`: 0 honest (the chunks it holds), 1 a record that claims
///   chunks `list` (and `u32::MAX` if `arg` >= 200), 2 one that claims
///   every chunk, 3 failed;
/// - `ReadChunk`: 0 honest (what the storage holds: the content's bytes,
///   or for a partial what was written, zeros if nothing), 1 the right
///   bytes (an earlier run wrote them), 2 a byte flipped, 3 one byte
///   short, 4 one byte more, 5 failed (`arg` odd: the file changed);
/// - `CommitDownload`: 0 done, 1 failed;
/// - `ScanPartials`: the partials `list` (content selector, bit 7 a target
///   directory; one past the catalog: bytes that are no manifest).
///
/// With no op of that kind pending, a completion nobody asked for: `mode`
/// 0 a read of an unknown id, 1 `PartialOpened` of content `arg` claiming
/// `list`, 2 `SwarmStorageFailed` of content `arg` (a write or checkpoint
/// failed), 3 `PartialsFound` of `list`, 4 `Shared` of path `arg` with
/// the manifest of content `list[0]`. On the wire, bit 7 of the `mode`
/// byte says that `list` follows; the mode is the other seven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAnswer {
    /// Kind selector.
    pub kind: u8,
    /// Selector among the pending ops of that kind.
    pub pick: u8,
    /// How it is answered (0..128; on the wire bit 7 says that a list
    /// follows).
    pub mode: u8,
    /// Its argument.
    pub arg: u8,
    /// Its list.
    pub list: Vec<u8>,
}

impl StorageAnswer {
    fn read(r: &mut Reader) -> StorageAnswer {
        let kind = r.u8();
        let pick = r.u8();
        let mode = r.u8();
        let arg = r.u8();
        let list = if mode & 0x80 != 0 {
            r.short_bytes()
        } else {
            Vec::new()
        };
        StorageAnswer {
            kind,
            pick,
            mode: mode & 0x7f,
            arg,
            list,
        }
    }

    fn write(&self, w: &mut Writer) {
        let mode = if self.list.is_empty() {
            self.mode & 0x7f
        } else {
            self.mode | 0x80
        };
        w.u8(self.kind).u8(self.pick).u8(mode).u8(self.arg);
        if !self.list.is_empty() {
            w.short_bytes(&self.list);
        }
    }

    /// An answer to the `pick`th pending op of `kind`.
    pub fn new(kind: Kind, pick: u8, mode: u8) -> StorageAnswer {
        let kind = KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8;
        StorageAnswer {
            kind,
            pick,
            mode,
            arg: 0,
            list: Vec::new(),
        }
    }

    /// The same with an argument.
    pub fn arg(mut self, arg: u8) -> StorageAnswer {
        self.arg = arg;
        self
    }

    /// The same with a list.
    pub fn list(mut self, list: &[u8]) -> StorageAnswer {
        self.list = list.to_vec();
        self
    }
}

/// One step of a `swarm` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmOp {
    /// A swarm frame from peer `peer` (selector among `a`, `b`, `r`).
    Frame {
        /// Peer selector.
        peer: u8,
        /// The frame.
        frame: PeerFrame,
    },
    /// A `P2PX/swarm` frame with any body.
    Raw {
        /// Peer selector.
        peer: u8,
        /// The body after the tag line.
        body: Vec<u8>,
    },
    /// An application command.
    Command(SwarmCmd),
    /// A storage completion.
    Storage(StorageAnswer),
    /// Time passes by `centis` hundredths of a second, then the node's
    /// timeout handler runs.
    Advance {
        /// Hundredths of a second.
        centis: u16,
    },
    /// Time jumps to the node's next deadline, and it runs.
    Tick,
    /// The peer's connection closes.
    Disconnect {
        /// Peer selector.
        peer: u8,
    },
    /// A disconnected peer connects again (handshake and caps frame).
    Reconnect {
        /// Peer selector.
        peer: u8,
    },
    /// The driver reports the peer's send queue written.
    Flushed {
        /// Peer selector.
        peer: u8,
    },
}

impl SwarmOp {
    fn read(r: &mut Reader) -> SwarmOp {
        match r.u8() % 16 {
            0..=3 | 15 => SwarmOp::Frame {
                peer: r.u8(),
                frame: PeerFrame::read(r),
            },
            4 => SwarmOp::Raw {
                peer: r.u8(),
                body: r.long_bytes(),
            },
            5 | 6 => SwarmOp::Command(SwarmCmd::read(r)),
            7..=9 => SwarmOp::Storage(StorageAnswer::read(r)),
            10 => SwarmOp::Advance { centis: r.u16() },
            11 => SwarmOp::Tick,
            12 => SwarmOp::Disconnect { peer: r.u8() },
            13 => SwarmOp::Reconnect { peer: r.u8() },
            _ => SwarmOp::Flushed { peer: r.u8() },
        }
    }

    /// Appends the raw form that [`check_swarm`] reads as this op.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            SwarmOp::Frame { peer, frame } => {
                w.u8(0).u8(*peer);
                frame.write(w);
            }
            SwarmOp::Raw { peer, body } => {
                w.u8(4).u8(*peer).long_bytes(body);
            }
            SwarmOp::Command(c) => {
                w.u8(5);
                c.write(w);
            }
            SwarmOp::Storage(a) => {
                w.u8(7);
                a.write(w);
            }
            SwarmOp::Advance { centis } => {
                w.u8(10).u16(*centis);
            }
            SwarmOp::Tick => {
                w.u8(11);
            }
            SwarmOp::Disconnect { peer } => {
                w.u8(12).u8(*peer);
            }
            SwarmOp::Reconnect { peer } => {
                w.u8(13).u8(*peer);
            }
            SwarmOp::Flushed { peer } => {
                w.u8(14).u8(*peer);
            }
        }
    }

    /// The ops [`check_swarm`] reads from raw bytes.
    pub fn decode_all(data: &[u8]) -> Vec<SwarmOp> {
        let mut r = Reader::new(data);
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_OPS {
            ops.push(SwarmOp::read(&mut r));
        }
        ops
    }

    /// The raw form of a whole sequence.
    pub fn encode_all(ops: &[SwarmOp]) -> Vec<u8> {
        let mut w = Writer::new();
        for op in ops {
            op.encode(&mut w);
        }
        w.out
    }
}

// ----- what the node sends, read independently -----

/// A swarm frame the node sent, by this module's reading of §9.2.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Index(Vec<SentEntry>),
    Mget(ContentId),
    Mani(ContentId, Bytes),
    Hget(ContentId),
    Have(ContentId, Bytes),
    Get(ContentId, u32),
    Chunk(ContentId, u32, Bytes),
    None(ContentId, Option<u32>),
    Cancel(ContentId, u32),
    Offer(SentEntry),
    Decline(ContentId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SentEntry {
    id: ContentId,
    size: u64,
    files: u32,
    complete: bool,
    name: String,
}

/// 64 lowercase hex digits, as the node writes ids.
fn sent_id(s: &str) -> Result<ContentId, String> {
    let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(format!("bad id {s:?}"));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(ContentId(out))
}

/// A decimal without leading zeros, as the node writes numbers.
fn sent_num(s: &str) -> Result<u64, String> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| format!("bad number {s:?}"))
}

fn sent_chunk(s: &str) -> Result<u32, String> {
    u32::try_from(sent_num(s)?).map_err(|e| e.to_string())
}

fn sent_entry(line: &str) -> Result<SentEntry, String> {
    let mut f = line.splitn(5, ' ');
    let mut next = || f.next().ok_or_else(|| format!("short entry {line:?}"));
    let id = sent_id(next()?)?;
    let size = sent_num(next()?)?;
    let files = u32::try_from(sent_num(next()?)?).map_err(|e| e.to_string())?;
    let complete = match next()? {
        "c" => true,
        "p" => false,
        other => return Err(format!("bad flag {other:?}")),
    };
    let name = next()?.to_owned();
    Ok(SentEntry {
        id,
        size,
        files,
        complete,
        name,
    })
}

/// Parses the body of a swarm frame the node sent (after the tag line).
fn parse_sent(body: &Bytes) -> Result<Sent, String> {
    let nl = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no head line")?;
    let head = std::str::from_utf8(&body[..nl]).map_err(|_| "head not UTF-8")?;
    let rest = body.slice(nl + 1..);
    let (kind, args) = head.split_once(' ').unwrap_or((head, ""));
    let words: Vec<&str> = args.split(' ').collect();
    let empty = |m: Sent| {
        if rest.is_empty() {
            Ok(m)
        } else {
            Err(format!("{kind} with a body"))
        }
    };
    let one = || -> Result<ContentId, String> {
        match words[..] {
            [id] => sent_id(id),
            _ => Err(format!("{kind}: bad arguments {args:?}")),
        }
    };
    let two = || -> Result<(ContentId, u32), String> {
        match words[..] {
            [id, k] => Ok((sent_id(id)?, sent_chunk(k)?)),
            _ => Err(format!("{kind}: bad arguments {args:?}")),
        }
    };
    match kind {
        "index" if args.is_empty() => {
            let text = std::str::from_utf8(&rest).map_err(|_| "index not UTF-8")?;
            if !text.is_empty() && !text.ends_with('\n') {
                return Err("index without a final newline".into());
            }
            let entries = text
                .lines()
                .map(sent_entry)
                .collect::<Result<Vec<_>, _>>()?;
            if entries.len() > 1024 {
                return Err("index over 1024 entries".into());
            }
            Ok(Sent::Index(entries))
        }
        "mget" => empty(Sent::Mget(one()?)),
        "mani" => Ok(Sent::Mani(one()?, rest)),
        "hget" => empty(Sent::Hget(one()?)),
        "have" => Ok(Sent::Have(one()?, rest)),
        "get" => {
            let (id, k) = two()?;
            empty(Sent::Get(id, k))
        }
        "chunk" => {
            let (id, k) = two()?;
            Ok(Sent::Chunk(id, k, rest))
        }
        "none" if words.len() == 1 => empty(Sent::None(one()?, None)),
        "none" => {
            let (id, k) = two()?;
            empty(Sent::None(id, Some(k)))
        }
        "cancel" => {
            let (id, k) = two()?;
            empty(Sent::Cancel(id, k))
        }
        "offer" => {
            let e = sent_entry(args)?;
            if !e.complete {
                return Err("offer of partial content".into());
            }
            empty(Sent::Offer(e))
        }
        "decline" => empty(Sent::Decline(one()?)),
        _ => Err(format!("unknown kind {kind:?}")),
    }
}

// ----- the model -----

/// What a `swarm` input reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmSummary {
    /// `Shared` events.
    pub shared: usize,
    /// Downloads the node opened a partial for.
    pub opened: usize,
    /// Verified `WriteChunk`s.
    pub chunks_written: usize,
    /// Claimed chunks read back and verified.
    pub claims_verified: usize,
    /// Chunks a record claimed that the node wrote again after fetching
    /// them (the claim did not verify).
    pub claims_refetched: usize,
    /// `DownloadComplete` events.
    pub completed: usize,
    /// Of them, with verified bytes from two peers or more.
    pub completed_from_two: usize,
    /// `ChunkRejected` events.
    pub rejected: usize,
    /// Manifests refused: a peer's (`ExtensionIgnored`), one the storage
    /// reported (`ShareFailed` after a hostile `Shared`), and hostile
    /// partials found that were not opened.
    pub manifests_refused: usize,
    /// `chunk` frames the node served.
    pub chunks_served: usize,
    /// `Offer` events.
    pub offers: usize,
    /// `decline` frames the node sent, and `OfferDeclined` events.
    pub declined: usize,
    /// `offer` frames the node sent.
    pub offers_sent: usize,
    /// Most downloads at once.
    pub max_downloads: usize,
}

/// One op the node waits for the storage to answer.
#[derive(Debug, Clone)]
enum Pending {
    Share {
        path: String,
    },
    Open {
        content: ContentId,
    },
    Read {
        read: u64,
        content: ContentId,
        chunk: u32,
        gen: Option<u64>,
    },
    Commit {
        content: ContentId,
        gen: u64,
    },
    Scan,
}

impl Pending {
    fn kind(&self) -> Kind {
        match self {
            Pending::Share { .. } => Kind::Share,
            Pending::Open { .. } => Kind::Open,
            Pending::Read { .. } => Kind::Read,
            Pending::Commit { .. } => Kind::Commit,
            Pending::Scan => Kind::Scan,
        }
    }
}

/// Where a partial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// `OpenPartial` is out.
    Opening,
    /// The driver answered it.
    Opened,
    /// `CommitDownload` is out.
    Committing,
    /// Closed, discarded, committed or failed.
    Closed,
}

/// One partial download (one `OpenPartial` to its end).
#[derive(Debug)]
struct PartialModel {
    gen: u64,
    manifest: Manifest,
    state: Open,
    /// Chunks written with bytes that verify, or read back so.
    verified: BTreeSet<u32>,
    /// Chunks the driver's record claimed.
    claimed: BTreeSet<u32>,
}

impl PartialModel {
    fn chunk_ok(&self, k: u32, data: &[u8]) -> bool {
        chunk_verifies(&self.manifest, k, data)
    }

    fn verified_bytes(&self) -> u64 {
        self.verified
            .iter()
            .map(|&k| expected_len(&self.manifest, k) as u64)
            .sum()
    }
}

/// Chunk `k`'s length by the manifest's size and chunk size.
fn expected_len(m: &Manifest, k: u32) -> usize {
    let start = u64::from(k).saturating_mul(u64::from(m.chunk_size()));
    m.size()
        .saturating_sub(start)
        .min(u64::from(m.chunk_size())) as usize
}

/// Whether `data` is chunk `k` of `m` (its length, and its BLAKE3 is the
/// manifest's hash).
fn chunk_verifies(m: &Manifest, k: u32, data: &[u8]) -> bool {
    k < m.chunks() && data.len() == expected_len(m, k) && m.hash(k) == Some(&blake(data))
}

#[derive(Debug)]
struct ConnModel {
    peer: usize,
    /// Decodes what the node sent on it.
    out: Decoder,
    /// The node asked to close it.
    node_closed: bool,
    /// Closed for the node (the driver reported it).
    driver_closed: bool,
}

#[derive(Debug, Default)]
struct PeerModel {
    conn: Option<ConnId>,
    /// `get`s it sent on this connection, not answered or cancelled.
    gets: BTreeMap<(ContentId, u32), usize>,
    /// `get`s the node sent it on this connection.
    asked: BTreeSet<(ContentId, u32)>,
    /// It sent a raw body on this connection: what it asked is not known.
    loose: bool,
}

/// What the current step delivered, for the checks of what it caused.
#[derive(Debug, Default)]
struct StepCtx {
    /// The read answered and its bytes.
    read: Option<(ContentId, u32, Bytes)>,
    chunk_frames: usize,
    /// A peer's `mget`/`hget` (id) and whether it was answered.
    asked: Option<(usize, ContentId)>,
    replied: bool,
    /// The peer whose frame arrived, and that frame's verdict for a chunk:
    /// `(content, chunk, bytes verify)`.
    from: Option<usize>,
    chunk_in: Option<(ContentId, u32, bool)>,
    offer_in: bool,
    decline_in: Option<ContentId>,
    /// The manifest of the `Shared` the driver reported, and whether it
    /// was hostile.
    shared: Option<(Bytes, bool)>,
    /// The content whose `DownloadCommitted` the driver reported.
    committed: Option<ContentId>,
    /// The step is a `decline` command.
    decline_cmd: bool,
    /// The step is a `share` command (of a path maybe shared already).
    share_cmd: bool,
    /// Downloads that ended (`DownloadComplete`, `DownloadFailed`).
    ended: BTreeSet<ContentId>,
    outputs: usize,
}

struct Harness {
    node: Node,
    cfg: Config,
    now: Instant,
    shut_down: bool,
    peers: Vec<PeerModel>,
    peer_ids: Vec<PeerId>,
    conns: BTreeMap<ConnId, ConnModel>,
    /// Inputs the driver makes in answer to outputs (PONG, Closed,
    /// DialFailed), delivered before the step ends.
    followups: VecDeque<Input>,
    pending: Vec<Pending>,
    next_gen: u64,
    /// The latest partial of each content.
    partials: BTreeMap<ContentId, PartialModel>,
    /// What the storage holds of each partial: chunks written or found.
    disk: BTreeMap<ContentId, BTreeMap<u32, Vec<u8>>>,
    /// Content the node holds complete (shared or committed).
    held: BTreeMap<ContentId, Manifest>,
    /// Downloads whose chunks a peer must not be asked for.
    banned: BTreeSet<(ContentId, usize)>,
    /// Offers the node made, and those it received.
    offered: BTreeSet<(ContentId, usize)>,
    offers_in: BTreeSet<(ContentId, usize)>,
    reads_seen: BTreeSet<u64>,
    scans: usize,
    /// Downloads after the last step.
    running: BTreeSet<ContentId>,
    step: StepCtx,
    summary: SwarmSummary,
}

fn io_error(what: &str) -> IoError {
    IoError::new(std::io::ErrorKind::Other, what)
}

impl Harness {
    fn new() -> Harness {
        let cfg = config();
        let now = Instant::now();
        let mut h = Harness {
            node: Node::new(cfg.clone(), 7, now),
            cfg,
            now,
            shut_down: false,
            peers: (0..PEERS.len()).map(|_| PeerModel::default()).collect(),
            peer_ids: PEERS
                .iter()
                .map(|p| PeerId::parse(p.0).expect("valid id"))
                .collect(),
            conns: BTreeMap::new(),
            followups: VecDeque::new(),
            pending: Vec::new(),
            next_gen: 0,
            partials: BTreeMap::new(),
            disk: BTreeMap::new(),
            held: BTreeMap::new(),
            banned: BTreeSet::new(),
            offered: BTreeSet::new(),
            offers_in: BTreeSet::new(),
            reads_seen: BTreeSet::new(),
            scans: 0,
            running: BTreeSet::new(),
            step: StepCtx::default(),
            summary: SwarmSummary::default(),
        };
        h.drain();
        for p in 0..PEERS.len() {
            h.connect(p);
        }
        h
    }

    fn peer_sel(sel: u8) -> usize {
        usize::from(sel) % PEERS.len()
    }

    /// Peer `p` connects and handshakes: hello, `LISTEN:`, caps frame.
    fn connect(&mut self, p: usize) {
        let (id, swarm, from, listen) = PEERS[p];
        let remote = from.parse().expect("valid address");
        let conn = self.node.handle_accept(self.now, Some(remote));
        assert!(!self.conns.contains_key(&conn), "{conn} handed out twice");
        self.conns.insert(
            conn,
            ConnModel {
                peer: p,
                out: Decoder::new(Limits {
                    max_line_len: 1 << 20,
                    max_bytes_per_message: 1 << 20,
                }),
                node_closed: false,
                driver_closed: false,
            },
        );
        self.peers[p] = PeerModel {
            conn: Some(conn),
            ..PeerModel::default()
        };
        self.drain();
        let caps: &[u8] = if swarm {
            b"P2PX/caps\ncaps/1 leave/1 swarm/1"
        } else {
            b"P2PX/caps\ncaps/1 leave/1"
        };
        let mut hello = format!("{id}:peer {id}\nLISTEN:{listen}\n").into_bytes();
        hello.extend_from_slice(&bytes_frame(caps));
        self.receive(p, hello);
    }

    /// Bytes from peer `p` on its connection, if it has one.
    fn receive(&mut self, p: usize, data: Vec<u8>) {
        let Some(conn) = self.peers[p].conn else {
            return;
        };
        self.step.from = Some(p);
        self.node.handle_input(
            self.now,
            Input::Received {
                conn,
                data: Bytes::from(data),
            },
        );
        self.drain();
    }

    fn step(&mut self, op: SwarmOp) {
        self.step = StepCtx::default();
        match op {
            SwarmOp::Frame { peer, frame } => self.frame(Self::peer_sel(peer), &frame),
            SwarmOp::Raw { peer, body } => {
                let p = Self::peer_sel(peer);
                if self.peers[p].conn.is_some() {
                    self.peers[p].loose = true;
                }
                let mut payload = b"P2PX/swarm\n".to_vec();
                payload.extend_from_slice(&body);
                self.receive(p, bytes_frame(&payload));
            }
            SwarmOp::Command(c) => self.command(c),
            SwarmOp::Storage(a) => self.storage(&a),
            SwarmOp::Advance { centis } => {
                self.now += Duration::from_millis(u64::from(centis) * 10);
                self.timeout();
            }
            SwarmOp::Tick => {
                if let Some(t) = self.node.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            SwarmOp::Disconnect { peer } => {
                let p = Self::peer_sel(peer);
                if let Some(conn) = self.peers[p].conn {
                    self.driver_closed(conn);
                    self.node.handle_input(
                        self.now,
                        Input::Closed {
                            conn,
                            reason: CloseReason::Eof,
                        },
                    );
                    self.drain();
                }
            }
            SwarmOp::Reconnect { peer } => {
                let p = Self::peer_sel(peer);
                if self.peers[p].conn.is_none() && !self.shut_down {
                    self.connect(p);
                }
            }
            SwarmOp::Flushed { peer } => {
                if let Some(conn) = self.peers[Self::peer_sel(peer)].conn {
                    self.node.handle_input(
                        self.now,
                        Input::Flushed {
                            conn,
                            bytes: u64::MAX,
                        },
                    );
                    self.drain();
                }
            }
        }
    }

    /// The driver reports `conn` closed: its peer has no connection.
    fn driver_closed(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.driver_closed = true;
            let p = c.peer;
            if self.peers[p].conn == Some(conn) {
                self.peers[p] = PeerModel::default();
            }
        }
    }

    fn timeout(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
        if let Some(t) = self.node.poll_timeout() {
            assert!(
                t > self.now,
                "a deadline at or before now survived handle_timeout"
            );
        }
    }

    fn frame(&mut self, p: usize, frame: &PeerFrame) {
        let live = self.peers[p].conn.is_some();
        if live && PEERS[p].1 {
            // What the node may answer, or must judge.
            match frame {
                PeerFrame::Mget { item } | PeerFrame::Hget { item } => {
                    self.step.asked = Some((p, item_id(*item)));
                }
                PeerFrame::Get { item, chunk } => {
                    let key = (item_id(*item), chunk_index(*chunk));
                    *self.peers[p].gets.entry(key).or_default() += 1;
                }
                PeerFrame::Cancel { item, chunk } => {
                    let key = (item_id(*item), chunk_index(*chunk));
                    self.peers[p].gets.remove(&key);
                }
                PeerFrame::Chunk { .. } => {
                    let body = frame.body();
                    if let Ok(Sent::Chunk(id, k, data)) = parse_sent(&Bytes::from(body)) {
                        let ok = self
                            .partials
                            .get(&id)
                            .is_some_and(|pm| pm.chunk_ok(k, &data));
                        self.step.chunk_in = Some((id, k, ok));
                    }
                }
                PeerFrame::Offer(_) => self.step.offer_in = true,
                PeerFrame::Decline { item } => self.step.decline_in = Some(item_id(*item)),
                _ => {}
            }
        }
        let mut payload = b"P2PX/swarm\n".to_vec();
        payload.extend_from_slice(&frame.body());
        self.receive(p, bytes_frame(&payload));
    }

    fn command(&mut self, cmd: SwarmCmd) {
        let now = self.now;
        match cmd {
            SwarmCmd::Share { path } => {
                self.step.share_cmd = true;
                let _ = self.node.share(pick(&SHARE_PATHS, path).0);
            }
            SwarmCmd::Unshare(id) => {
                let _ = self.node.unshare(&id.text());
            }
            SwarmCmd::Get { id, dir } => {
                let dir = pick(&DIRS, dir).map(str::to_owned);
                let _ = self.node.get(now, &id.text(), dir);
            }
            SwarmCmd::Offer { path, target } => {
                let target = match usize::from(target) % (PEERS.len() + 2) {
                    0 => Target::All,
                    t if t <= PEERS.len() => Target::Peer(self.peer_ids[t - 1].clone()),
                    _ => Target::Peer(PeerId::parse("nobody").expect("valid id")),
                };
                let _ = self.node.offer(pick(&SHARE_PATHS, path).0, target);
            }
            SwarmCmd::Accept(id) => {
                let _ = self.node.accept(now, &id.text());
            }
            SwarmCmd::Decline(id) => {
                self.step.decline_cmd = true;
                let _ = self.node.decline(&id.text());
            }
            SwarmCmd::Cancel(id) => {
                let _ = self.node.cancel_download(&id.text());
            }
            SwarmCmd::Shutdown => {
                self.node.shutdown(now);
                self.drain();
                self.shut_down = true;
            }
        }
        self.drain();
    }

    // ----- storage -----

    fn storage(&mut self, a: &StorageAnswer) {
        let kind = *pick(&KINDS, a.kind);
        let of_kind: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].kind() == kind)
            .collect();
        if of_kind.is_empty() {
            self.stray(a);
            return;
        }
        let at = *pick(&of_kind, a.pick);
        let op = self.pending.remove(at);
        let input = match op {
            Pending::Share { path } => self.answer_share(path, a),
            Pending::Open { content } => self.answer_open(content, a),
            Pending::Read {
                read,
                content,
                chunk,
                gen,
            } => self.answer_read(read, content, chunk, gen, a),
            Pending::Commit { content, gen } => match a.mode % 2 {
                0 => {
                    self.step.committed = Some(content);
                    if let Some(pm) = self.partials.get_mut(&content) {
                        if pm.gen == gen {
                            pm.state = Open::Closed;
                        }
                    }
                    self.disk.remove(&content);
                    let path = item_of(&content).map_or("x", |i| i.name).to_owned();
                    Input::DownloadCommitted { content, path }
                }
                _ => Input::SwarmStorageFailed {
                    content,
                    error: io_error("commit failed"),
                },
            },
            Pending::Scan => self.partials_found(a),
        };
        self.node.handle_input(self.now, input);
        self.drain();
    }

    fn answer_share(&mut self, path: String, a: &StorageAnswer) -> Input {
        let real = SHARE_PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, i)| *i);
        let manifest = match (a.mode % 4, real) {
            (0, Some(i)) => Some((catalog()[i].manifest.clone(), false)),
            (1, _) => {
                let hostile = &catalog()[FIRST_HOSTILE..];
                Some((pick(hostile, a.arg).manifest.clone(), true))
            }
            (2, _) => {
                let i = usize::from(a.arg) % FIRST_HOSTILE;
                Some((catalog()[i].manifest.clone(), false))
            }
            _ => None,
        };
        match manifest {
            Some((manifest, hostile)) => {
                self.step.shared = Some((manifest.clone(), hostile));
                Input::Shared { path, manifest }
            }
            None => Input::ShareFailed {
                path,
                error: IoError::new(std::io::ErrorKind::NotFound, "no such file"),
            },
        }
    }

    /// The node cannot tell two opens of one content apart: an answer is
    /// for its latest partial, whichever op it answers.
    fn answer_open(&mut self, content: ContentId, a: &StorageAnswer) -> Input {
        let n = self
            .partials
            .get(&content)
            .map_or(0, |pm| pm.manifest.chunks());
        let claimed: Vec<u32> = match a.mode % 4 {
            0 => self
                .disk
                .get(&content)
                .map(|d| d.keys().copied().collect())
                .unwrap_or_default(),
            1 => {
                let mut v: Vec<u32> = a.list.iter().map(|&k| u32::from(k)).collect();
                if a.arg >= 200 {
                    v.push(u32::MAX);
                }
                v
            }
            2 => (0..n).collect(),
            _ => {
                return Input::SwarmStorageFailed {
                    content,
                    error: io_error("open failed"),
                }
            }
        };
        self.partial_opened(content, &claimed);
        Input::PartialOpened { content, claimed }
    }

    /// The driver reports `content`'s partial open with `claimed`.
    fn partial_opened(&mut self, content: ContentId, claimed: &[u32]) {
        if let Some(pm) = self.partials.get_mut(&content) {
            if pm.state == Open::Opening {
                pm.state = Open::Opened;
                pm.claimed = claimed.iter().copied().collect();
            }
        }
    }

    fn answer_read(
        &mut self,
        read: u64,
        content: ContentId,
        chunk: u32,
        gen: Option<u64>,
        a: &StorageAnswer,
    ) -> Input {
        // Shared content holds its bytes; a partial what was written, or
        // zeros.
        let honest: Option<Vec<u8>> = match gen {
            None => item_of(&content)
                .filter(|i| i.data.is_some())
                .map(|i| chunk_of(Some(i), chunk)),
            Some(_) => {
                let len = self
                    .partials
                    .get(&content)
                    .map_or(0, |p| expected_len(&p.manifest, chunk));
                Some(
                    self.disk
                        .get(&content)
                        .and_then(|d| d.get(&chunk))
                        .cloned()
                        .unwrap_or_else(|| vec![0; len]),
                )
            }
        };
        let right = chunk_of(item_of(&content), chunk);
        let data = match a.mode % 6 {
            0 => honest,
            1 => Some(right.clone()),
            2 => honest.map(|mut d| {
                match d.first_mut() {
                    Some(b) => *b ^= 0x55,
                    None => d.push(1),
                }
                d
            }),
            3 => honest.map(|mut d| {
                d.pop();
                d
            }),
            4 => honest.map(|mut d| {
                d.push(0);
                d
            }),
            _ => None,
        };
        let Some(data) = data else {
            return Input::ChunkReadFailed {
                read,
                error: io_error("read failed"),
                changed: a.mode % 6 == 5 && a.arg & 1 == 1,
            };
        };
        if let (Some(g), Some(pm)) = (gen, self.partials.get_mut(&content)) {
            if pm.gen == g && pm.state != Open::Closed && pm.chunk_ok(chunk, &data) {
                if pm.claimed.contains(&chunk) && !pm.verified.contains(&chunk) {
                    self.summary.claims_verified += 1;
                }
                pm.verified.insert(chunk);
                self.disk
                    .entry(content)
                    .or_default()
                    .insert(chunk, data.clone());
            }
        }
        let data = Bytes::from(data);
        self.step.read = Some((content, chunk, data.clone()));
        Input::ChunkRead { read, data }
    }

    fn partials_found(&mut self, a: &StorageAnswer) -> Input {
        let c = catalog();
        let partials = a
            .list
            .iter()
            .map(|&b| {
                let i = usize::from(b & 0x7f) % (c.len() + 1);
                let dir = (b & 0x80 != 0).then(|| "sub".to_owned());
                let bytes = c.get(i).map_or_else(
                    || Bytes::from_static(b"not a manifest"),
                    |it| it.manifest.clone(),
                );
                if Manifest::parse(&bytes).is_err() {
                    self.summary.manifests_refused += 1;
                }
                (bytes, dir)
            })
            .collect();
        Input::PartialsFound {
            partials,
            shares: Vec::new(),
        }
    }

    fn stray(&mut self, a: &StorageAnswer) {
        let input = match a.mode % 5 {
            0 => Input::ChunkRead {
                read: 1_000_000 + u64::from(a.arg),
                data: Bytes::from_static(b"stray"),
            },
            1 => {
                let content = item_id(a.arg);
                let claimed: Vec<u32> = a.list.iter().map(|&k| u32::from(k)).collect();
                self.partial_opened(content, &claimed);
                Input::PartialOpened { content, claimed }
            }
            2 => Input::SwarmStorageFailed {
                content: item_id(a.arg),
                error: io_error("write failed"),
            },
            3 => self.partials_found(a),
            _ => {
                let path = pick(&SHARE_PATHS, a.arg).0.to_owned();
                let it = item(a.list.first().copied().unwrap_or(0));
                let manifest = it.map_or(Bytes::new(), |i| i.manifest.clone());
                let hostile = Manifest::parse(&manifest).is_err();
                self.step.shared = Some((manifest.clone(), hostile));
                Input::Shared { path, manifest }
            }
        };
        self.node.handle_input(self.now, input);
        self.drain();
    }

    // ----- outputs -----

    fn drain(&mut self) {
        loop {
            while let Some(out) = self.node.poll_output() {
                self.step.outputs += 1;
                assert!(
                    self.step.outputs <= MAX_OUTPUTS,
                    "over {MAX_OUTPUTS} outputs in one step"
                );
                self.output(out);
            }
            let Some(input) = self.followups.pop_front() else {
                break;
            };
            if let Input::Received { conn, .. } = &input {
                if self.conns.get(conn).is_none_or(|c| c.driver_closed) {
                    continue;
                }
            }
            self.node.handle_input(self.now, input);
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Transmit { conn, data } => self.transmit(conn, data),
            Output::Close { conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    // A dial (failed by the driver).
                    return;
                };
                if !c.driver_closed && !c.node_closed {
                    c.node_closed = true;
                    self.driver_closed(conn);
                    self.followups.push_back(Input::Closed {
                        conn,
                        reason: CloseReason::Eof,
                    });
                }
            }
            Output::Dial { conn, .. } => {
                self.followups.push_back(Input::DialFailed {
                    conn,
                    error: IoError::new(std::io::ErrorKind::ConnectionRefused, "refused"),
                });
            }
            Output::Storage(op) => self.storage_op(op),
            Output::Event(e) => self.event(e),
        }
    }

    fn transmit(&mut self, conn: ConnId, data: Bytes) {
        let c = self
            .conns
            .get_mut(&conn)
            .unwrap_or_else(|| panic!("Transmit on {conn}, which no peer connected"));
        assert!(
            !c.node_closed && !c.driver_closed,
            "Transmit on {conn} after it closed"
        );
        c.out.feed(data);
        let p = c.peer;
        let mut frames = Vec::new();
        loop {
            match c.out.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => panic!("the node sent {conn} bytes that do not decode: {e:?}"),
            }
        }
        for f in frames {
            match f {
                Frame::Line(l) if l == "PING" => {
                    self.followups.push_back(Input::Received {
                        conn,
                        data: Bytes::from_static(b"PONG\n"),
                    });
                }
                Frame::Line(_) => {}
                Frame::Bytes(payload) => {
                    if let Some(body) = payload.strip_prefix(b"P2PX/swarm\n") {
                        let body = payload.slice(payload.len() - body.len()..);
                        self.swarm_frame(p, body);
                    }
                }
            }
        }
    }

    /// A swarm frame the node sent to peer `p`.
    fn swarm_frame(&mut self, p: usize, body: Bytes) {
        let who = PEERS[p].0;
        assert!(
            PEERS[p].1,
            "a swarm frame to {who}, which did not announce swarm/1"
        );
        let msg = parse_sent(&body).unwrap_or_else(|e| {
            panic!(
                "the node sent {who} a swarm frame that does not parse ({e}): {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        });
        match msg {
            Sent::Chunk(id, k, data) => {
                self.step.chunk_frames += 1;
                let Some((rid, rk, rdata)) = &self.step.read else {
                    panic!("chunk {k} of {id:?} to {who} without a read answered in this step")
                };
                assert!(
                    *rid == id && *rk == k && *rdata == data,
                    "chunk {k} of {id:?} to {who} carries bytes other than the storage \
                     returned for the read of chunk {rk} of {rid:?} ({} bytes sent, {} read)",
                    data.len(),
                    rdata.len()
                );
                assert_eq!(self.step.chunk_frames, 1, "two chunk frames for one read");
                self.answer_get(p, id, k, "chunk");
                self.summary.chunks_served += 1;
            }
            Sent::None(id, Some(k)) => self.answer_get(p, id, k, "none"),
            Sent::None(id, None) => self.reply(p, id, "none"),
            Sent::Mani(id, m) => {
                self.reply(p, id, "mani");
                assert_eq!(
                    ContentId(blake(&m)),
                    id,
                    "the node sent {who} a manifest that does not hash to {id:?}"
                );
                match Manifest::parse(&m) {
                    Ok(parsed) => crate::manifest::check_accepted(&parsed, &m),
                    Err(e) => panic!("the node sent {who} a manifest that does not parse: {e}"),
                }
            }
            Sent::Have(id, bits) => {
                self.reply(p, id, "have");
                self.check_have(who, id, &bits);
            }
            Sent::Get(id, k) => {
                let pm = self.partials.get(&id).unwrap_or_else(|| {
                    panic!("get {k} of {id:?} to {who}: no partial was opened for it")
                });
                assert_eq!(
                    pm.state,
                    Open::Opened,
                    "get {k} of {id:?} to {who} while its partial is {:?}",
                    pm.state
                );
                assert!(
                    k < pm.manifest.chunks(),
                    "get {k} of {id:?}, which has {} chunks",
                    pm.manifest.chunks()
                );
                assert!(
                    !self.banned.contains(&(id, p)),
                    "get {k} of {id:?} to {who}, which sent a chunk of it that was rejected"
                );
                self.peers[p].asked.insert((id, k));
            }
            Sent::Cancel(id, k) => {
                assert!(
                    self.peers[p].asked.contains(&(id, k)),
                    "cancel {k} of {id:?} to {who}, which was not asked for it"
                );
            }
            Sent::Mget(_) | Sent::Hget(_) => {}
            Sent::Index(entries) => {
                for e in &entries {
                    self.check_entry(who, e, "index");
                }
            }
            Sent::Offer(e) => {
                self.check_entry(who, &e, "offer");
                assert!(
                    self.held.contains_key(&e.id),
                    "offer of {:?}, which the node does not hold",
                    e.id
                );
                self.offered.insert((e.id, p));
                self.summary.offers_sent += 1;
            }
            Sent::Decline(id) => {
                assert!(
                    self.step.decline_cmd,
                    "decline of {id:?} to {who} without a decline command"
                );
                assert!(
                    self.offers_in.contains(&(id, p)),
                    "decline of {id:?} to {who}, which did not offer it"
                );
                self.summary.declined += 1;
            }
        }
    }

    /// `what` for chunk `k` of `id` answers a `get` of peer `p`.
    fn answer_get(&mut self, p: usize, id: ContentId, k: u32, what: &str) {
        let pm = &mut self.peers[p];
        if pm.loose {
            return;
        }
        match pm.gets.get_mut(&(id, k)) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    pm.gets.remove(&(id, k));
                }
            }
            None => panic!(
                "{what} {k} of {id:?} to {}, which has no get for it outstanding \
                 (never asked, answered, cancelled, or asked on an earlier connection)",
                PEERS[p].0
            ),
        }
    }

    /// `what` for `id` answers an `mget`/`hget` of peer `p` in this step.
    fn reply(&mut self, p: usize, id: ContentId, what: &str) {
        if self.peers[p].loose && self.step.from == Some(p) {
            return;
        }
        assert!(
            self.step.asked == Some((p, id)) && !self.step.replied,
            "{what} of {id:?} to {}, which did not ask for it in this step (asked: {:?})",
            PEERS[p].0,
            self.step.asked
        );
        self.step.replied = true;
    }

    fn check_have(&self, who: &str, id: ContentId, bits: &[u8]) {
        let (m, verified) = match (self.held.get(&id), self.partials.get(&id)) {
            (Some(m), _) => (m, None),
            (None, Some(pm)) => (&pm.manifest, Some(&pm.verified)),
            (None, None) => panic!("have of {id:?} to {who}: content the node knows nothing of"),
        };
        let n = m.chunks();
        assert_eq!(
            bits.len(),
            n.div_ceil(8) as usize,
            "have of {id:?} ({n} chunks) to {who}: {} bytes",
            bits.len()
        );
        for k in 0..(bits.len() as u32 * 8) {
            let set = bits[(k / 8) as usize] & (0x80 >> (k % 8)) != 0;
            let expected_ok = match verified {
                None => set == (k < n),
                Some(v) => !set || v.contains(&k),
            };
            assert!(
                expected_ok,
                "have of {id:?} to {who}: bit {k} is {set} ({n} chunks, verified {verified:?})"
            );
        }
    }

    fn check_entry(&self, who: &str, e: &SentEntry, what: &str) {
        let m = if e.complete {
            self.held.get(&e.id).unwrap_or_else(|| {
                panic!(
                    "{what} to {who} lists {:?} complete, which the node does not hold",
                    e.id
                )
            })
        } else {
            let pm = self.partials.get(&e.id).unwrap_or_else(|| {
                panic!(
                    "{what} to {who} lists {:?} partial: no partial was opened",
                    e.id
                )
            });
            assert!(
                !pm.verified.is_empty() && pm.state != Open::Closed,
                "{what} to {who} lists {:?} partial with no verified chunk",
                e.id
            );
            &pm.manifest
        };
        assert_eq!(
            (e.size, e.files as usize, e.name.as_str()),
            (m.size(), m.files().len(), m.name()),
            "{what} entry for {:?} to {who}: size, files, name",
            e.id
        );
    }

    fn storage_op(&mut self, op: StorageOp) {
        if self.shut_down {
            let op: String = format!("{op:?}").chars().take(100).collect();
            panic!("a storage op after shutdown: {op}");
        }
        match op {
            StorageOp::Share { path, chunk_size } => {
                assert_eq!(
                    chunk_size, CHUNK,
                    "Share of {path:?} in chunks of {chunk_size}"
                );
                assert!(
                    SHARE_PATHS.iter().any(|(p, _)| *p == path),
                    "Share of {path:?}, a path the application never named"
                );
                self.pending.push(Pending::Share { path });
            }
            StorageOp::Unshare { content } => {
                self.held.remove(&content);
            }
            StorageOp::OpenPartial {
                content,
                manifest,
                dir,
            } => {
                assert_eq!(
                    ContentId(blake(&manifest)),
                    content,
                    "OpenPartial of {content:?} with a manifest that does not hash to it"
                );
                let m = Manifest::parse(&manifest).unwrap_or_else(|e| {
                    panic!("OpenPartial of {content:?} with a manifest that does not parse: {e}")
                });
                crate::manifest::check_accepted(&m, &manifest);
                if let Some(d) = &dir {
                    assert!(
                        DIRS.contains(&Some(d.as_str())),
                        "OpenPartial of {content:?} into {d:?}, which no get named"
                    );
                }
                if let Some(old) = self.partials.get(&content) {
                    assert_eq!(
                        old.state,
                        Open::Closed,
                        "OpenPartial of {content:?} while it is open"
                    );
                }
                self.next_gen += 1;
                let gen = self.next_gen;
                self.partials.insert(
                    content,
                    PartialModel {
                        gen,
                        manifest: m,
                        state: Open::Opening,
                        verified: BTreeSet::new(),
                        claimed: BTreeSet::new(),
                    },
                );
                self.pending.push(Pending::Open { content });
                self.summary.opened += 1;
            }
            StorageOp::ReadChunk {
                read,
                content,
                chunk,
            } => {
                assert!(
                    self.reads_seen.insert(read),
                    "ReadChunk {read} given out twice"
                );
                // A read of an open partial is one of it (a claimed chunk, or
                // a verified one to serve), even if the content is shared
                // too: a read that verifies counts for the partial.
                let pm = self
                    .partials
                    .get(&content)
                    .filter(|p| p.state != Open::Closed);
                let gen = match (pm, self.held.get(&content)) {
                    (Some(pm), _) => {
                        assert!(
                            chunk < pm.manifest.chunks(),
                            "ReadChunk {chunk} of partial {content:?}, which has {} chunks",
                            pm.manifest.chunks()
                        );
                        Some(pm.gen)
                    }
                    (None, Some(m)) => {
                        assert!(
                            chunk < m.chunks(),
                            "ReadChunk {chunk} of {content:?}, which has {} chunks",
                            m.chunks()
                        );
                        None
                    }
                    (None, None) => {
                        panic!("ReadChunk of {content:?}, neither shared nor an open partial")
                    }
                };
                self.pending.push(Pending::Read {
                    read,
                    content,
                    chunk,
                    gen,
                });
            }
            StorageOp::WriteChunk {
                content,
                chunk,
                data,
            } => {
                let pm = self.partials.get_mut(&content).unwrap_or_else(|| {
                    panic!("WriteChunk {chunk} of {content:?}: no partial was opened")
                });
                assert!(
                    matches!(pm.state, Open::Opened),
                    "WriteChunk {chunk} of {content:?} while its partial is {:?}",
                    pm.state
                );
                assert!(
                    pm.chunk_ok(chunk, &data),
                    "WriteChunk {chunk} of {content:?}: {} bytes that do not match the \
                     manifest's hash of chunk {chunk} (its length is {})",
                    data.len(),
                    expected_len(&pm.manifest, chunk)
                );
                if pm.claimed.contains(&chunk) && !pm.verified.contains(&chunk) {
                    self.summary.claims_refetched += 1;
                }
                pm.verified.insert(chunk);
                self.disk
                    .entry(content)
                    .or_default()
                    .insert(chunk, data.to_vec());
                self.summary.chunks_written += 1;
            }
            StorageOp::Checkpoint { content } => {
                let pm = self.partials.get(&content);
                assert!(
                    pm.is_some_and(|p| p.state == Open::Opened),
                    "Checkpoint of {content:?}, which is not open"
                );
            }
            StorageOp::CommitDownload { content } => {
                let pm = self.partials.get_mut(&content).unwrap_or_else(|| {
                    panic!("CommitDownload of {content:?}: no partial was opened")
                });
                assert_eq!(
                    pm.state,
                    Open::Opened,
                    "CommitDownload of {content:?} while its partial is {:?} (at most once)",
                    pm.state
                );
                let n = pm.manifest.chunks();
                let missing: Vec<u32> = (0..n).filter(|k| !pm.verified.contains(k)).collect();
                assert!(
                    missing.is_empty(),
                    "CommitDownload of {content:?} with chunks {missing:?} of {n} never \
                     written or read back verified"
                );
                pm.state = Open::Committing;
                let gen = pm.gen;
                self.pending.push(Pending::Commit { content, gen });
            }
            StorageOp::ClosePartial { content } | StorageOp::DiscardPartial { content } => {
                let discard = matches!(op, StorageOp::DiscardPartial { .. });
                if let Some(pm) = self.partials.get_mut(&content) {
                    pm.state = Open::Closed;
                }
                if discard {
                    self.disk.remove(&content);
                }
            }
            StorageOp::ScanPartials => {
                self.scans += 1;
                assert_eq!(self.scans, 1, "ScanPartials twice");
                self.pending.push(Pending::Scan);
            }
            other => panic!("a file-transfer storage op in the swarm target: {other:?}"),
        }
    }

    fn peer_index(&self, id: &PeerId) -> usize {
        self.peer_ids
            .iter()
            .position(|p| p == id)
            .unwrap_or_else(|| panic!("an event about {id}, which is none of the peers"))
    }

    fn event(&mut self, e: Event) {
        match e {
            // A path shared already is told again at once, with the id it
            // has: content held, no storage answer needed.
            Event::Shared { id, .. }
                if self.step.shared.is_none()
                    && self.step.share_cmd
                    && self.held.contains_key(&id) =>
            {
                self.summary.shared += 1;
            }
            Event::Shared { id, .. } => {
                let (bytes, _) =
                    self.step.shared.clone().unwrap_or_else(|| {
                        panic!("Shared {id:?} without a Shared from the driver")
                    });
                assert_eq!(
                    ContentId(blake(&bytes)),
                    id,
                    "Shared {id:?}: not the id of the manifest the driver reported"
                );
                let m = Manifest::parse(&bytes).unwrap_or_else(|e| {
                    panic!("Shared {id:?} of a manifest that does not parse: {e}")
                });
                crate::manifest::check_accepted(&m, &bytes);
                self.held.insert(id, m);
                self.summary.shared += 1;
            }
            Event::ShareFailed { .. } if self.step.shared.as_ref().is_some_and(|s| s.1) => {
                self.summary.manifests_refused += 1;
            }
            Event::DownloadComplete {
                id,
                size,
                bytes_from,
                ..
            } => {
                assert_eq!(
                    self.step.committed,
                    Some(id),
                    "DownloadComplete of {id:?} without its DownloadCommitted"
                );
                let m = self
                    .partials
                    .get(&id)
                    .map(|pm| pm.manifest.clone())
                    .unwrap_or_else(|| panic!("DownloadComplete of {id:?}, which had no partial"));
                assert_eq!(size, m.size(), "DownloadComplete of {id:?}: size");
                let sum: u64 = bytes_from.values().sum();
                assert!(
                    sum <= size,
                    "DownloadComplete of {id:?}: {sum} bytes from peers of {size}"
                );
                for p in bytes_from.keys() {
                    let i = self.peer_index(p);
                    assert!(PEERS[i].1, "bytes from {p}, which does not speak swarm/1");
                }
                self.held.insert(id, m);
                if let Some(pm) = self.partials.get_mut(&id) {
                    pm.state = Open::Closed;
                }
                self.banned.retain(|(c, _)| *c != id);
                self.step.ended.insert(id);
                self.summary.completed += 1;
                if bytes_from.len() >= 2 {
                    self.summary.completed_from_two += 1;
                }
            }
            Event::DownloadFailed { id, .. } => {
                self.banned.retain(|(c, _)| *c != id);
                self.step.ended.insert(id);
            }
            Event::ChunkRejected { id, peer, chunk } => {
                let p = self.peer_index(&peer);
                assert_eq!(
                    self.step.from,
                    Some(p),
                    "ChunkRejected of {peer} while another peer's frame arrived"
                );
                match self.step.chunk_in {
                    Some((c, k, ok)) if c == id && k == chunk => {
                        assert!(!ok, "chunk {chunk} of {id:?} from {peer} was rejected, but it verifies");
                    }
                    // A raw body: not judged here.
                    _ => assert!(
                        self.step.chunk_in.is_none() && self.peers[p].loose,
                        "ChunkRejected of chunk {chunk} of {id:?} from {peer}, which did not send it"
                    ),
                }
                self.banned.insert((id, p));
                self.summary.rejected += 1;
            }
            Event::Offer {
                id, from, accepted, ..
            } => {
                let p = self.peer_index(&from);
                assert!(
                    self.step.from == Some(p) && (self.step.offer_in || self.peers[p].loose),
                    "Offer of {id:?} from {from}, which sent no offer now"
                );
                assert!(
                    PEERS[p].1,
                    "Offer from {from}, which does not speak swarm/1"
                );
                assert_eq!(
                    accepted,
                    from.as_str() == "b",
                    "Offer from {from}: accepted"
                );
                self.offers_in.insert((id, p));
                self.summary.offers += 1;
            }
            Event::OfferDeclined { id, by } => {
                let p = self.peer_index(&by);
                assert!(
                    self.offered.contains(&(id, p)),
                    "OfferDeclined of {id:?} by {by}, which was not offered it"
                );
                assert!(
                    self.step.from == Some(p)
                        && (self.step.decline_in == Some(id) || self.peers[p].loose),
                    "OfferDeclined of {id:?} by {by}, which sent no decline now"
                );
                self.summary.declined += 1;
            }
            Event::DownloadStarted { id, size, have, .. }
            | Event::DownloadProgress {
                id,
                size,
                bytes: have,
                ..
            } => {
                let pm = self
                    .partials
                    .get(&id)
                    .unwrap_or_else(|| panic!("progress of {id:?}, which has no partial"));
                assert_eq!(size, pm.manifest.size(), "progress of {id:?}: size");
                assert!(
                    have <= pm.verified_bytes(),
                    "progress of {id:?}: {have} bytes, {} verified",
                    pm.verified_bytes()
                );
            }
            Event::ExtensionIgnored { why, .. } if why.contains("manifest") => {
                self.summary.manifests_refused += 1;
            }
            _ => {}
        }
    }

    /// Invariants that hold between steps.
    fn check_state(&mut self) {
        let downloads = self.node.downloads(self.now);
        let running: BTreeSet<ContentId> = downloads.iter().map(|d| d.id).collect();
        for id in self.running.difference(&running) {
            assert!(
                self.step.ended.contains(id),
                "download {id:?} vanished without DownloadComplete or DownloadFailed"
            );
        }
        self.running = running;
        self.summary.max_downloads = self.summary.max_downloads.max(downloads.len());
        assert!(
            downloads.len() <= self.cfg.swarm.max_downloads,
            "{} downloads, max_downloads {}",
            downloads.len(),
            self.cfg.swarm.max_downloads
        );
        for d in &downloads {
            assert!(
                d.bytes <= d.size,
                "download {:?}: {} of {} bytes",
                d.id,
                d.bytes,
                d.size
            );
            assert!(
                d.requests <= self.cfg.swarm.requests_per_peer * SWARM_PEERS,
                "download {:?}: {} requests in flight",
                d.id,
                d.requests
            );
        }
        assert!(
            self.node.pending_offers() <= self.cfg.swarm.max_offers,
            "{} offers pending, max_offers {}",
            self.node.pending_offers(),
            self.cfg.swarm.max_offers
        );
        if self.shut_down {
            assert!(downloads.is_empty(), "downloads after shutdown");
        }
    }
}

/// A bytes frame with `payload`.
fn bytes_frame(payload: &[u8]) -> Vec<u8> {
    let mut v = format!("BYTES:{}\n", payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Runs the `swarm` checks on fuzzer bytes. Panics on a broken invariant.
pub fn check_swarm(data: &[u8]) -> SwarmSummary {
    let mut r = Reader::new(data);
    let mut h = Harness::new();
    h.check_state();
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let op = SwarmOp::read(&mut r);
        h.step(op);
        h.check_state();
    }
    h.summary
}
