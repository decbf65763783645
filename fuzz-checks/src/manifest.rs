//! The `manifest` target: any bytes against [`Manifest::parse`], the parser
//! of the manifests peers send (docs/PROTOCOL.md §9.1).
//!
//! An input is either raw bytes or a manifest built from a few numbers and
//! paths and then edited (see [`ManifestInput`]), so that the fuzzer
//! reaches manifests that parse, and near misses of them, at once. The
//! check asserts that `parse` either fails or returns a manifest that
//! - re-encodes to exactly the input (one content, one id) and whose id is
//!   the BLAKE3 of the input (computed here);
//! - lists at least one file, in strictly increasing path order, every
//!   path passing the core's `check_path` and this crate's own reading of
//!   the spec's path rule ([`is_safe_path`]), one file with one component
//!   or a tree whose paths all have two or more and share the first, no
//!   path both a file and a directory;
//! - has a chunk size in 4096..=16 MiB, a size that is the sum of the
//!   files', and one hash per chunk, each the input's own bytes;
//! - tiles every chunk exactly with `segments(k)`: pieces in order, each
//!   inside one non-empty file at the offset the concatenation puts it,
//!   covering `0..chunk_len(k)` without gap or overlap, and over all
//!   chunks every file's bytes exactly once.

use std::collections::BTreeSet;

use p2p_core::{check_path, ContentId, Manifest, ManifestError};

use crate::common::{is_plain_name, pick, Reader, Writer};

/// Chunk sizes a built manifest declares: in range, its edges, outside.
const CHUNK_SIZES: [u32; 8] = [4096, 4095, 8192, 65536, 16_777_216, 16_777_217, 0, 262_144];

/// A `manifest` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestInput {
    /// The bytes as they are.
    Raw(Vec<u8>),
    /// The canonical text of these files, with `chunks + delta` hashes,
    /// then bytes overwritten.
    Built {
        /// Chunk size selector.
        chunk_size: u8,
        /// Sort the files by path first (as a canonical manifest must be).
        sort: bool,
        /// `(size, path)`.
        files: Vec<(u16, Vec<u8>)>,
        /// Added to the chunk count (wrapping, as `i8`): hashes listed and
        /// the `chunks` line both say the result.
        delta: u8,
        /// `(position modulo the length, byte)` overwrites.
        edits: Vec<(u16, u8)>,
    },
}

impl ManifestInput {
    fn read(data: &[u8]) -> ManifestInput {
        let mut r = Reader::new(data);
        if r.u8() & 1 == 0 {
            return ManifestInput::Raw(r.rest());
        }
        let chunk_size = r.u8();
        let sort = r.bool();
        let n = r.u8() % 8;
        let files = (0..n).map(|_| (r.u16(), r.short_bytes())).collect();
        let delta = r.u8();
        let n = r.u8() % 8;
        let edits = (0..n).map(|_| (r.u16(), r.u8())).collect();
        ManifestInput::Built {
            chunk_size,
            sort,
            files,
            delta,
            edits,
        }
    }

    /// The raw form [`check_manifest`] reads as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ManifestInput::Raw(b) => {
                w.u8(0).raw(b);
            }
            ManifestInput::Built {
                chunk_size,
                sort,
                files,
                delta,
                edits,
            } => {
                w.u8(1).u8(*chunk_size).bool(*sort).u8(files.len() as u8);
                for (size, path) in files {
                    w.u16(*size).short_bytes(path);
                }
                w.u8(*delta).u8(edits.len() as u8);
                for (at, b) in edits {
                    w.u16(*at).u8(*b);
                }
            }
        }
        w.out
    }

    /// The bytes handed to `Manifest::parse`.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            ManifestInput::Raw(b) => b.clone(),
            ManifestInput::Built {
                chunk_size,
                sort,
                files,
                delta,
                edits,
            } => {
                let cs = *pick(&CHUNK_SIZES, *chunk_size);
                let mut files: Vec<(u64, String)> = files
                    .iter()
                    .map(|(s, p)| (u64::from(*s), String::from_utf8_lossy(p).into_owned()))
                    .collect();
                if *sort {
                    files.sort_by(|a, b| a.1.cmp(&b.1));
                }
                let total: u64 = files.iter().map(|f| f.0).sum();
                let chunks = if cs == 0 {
                    0
                } else {
                    total.div_ceil(u64::from(cs))
                };
                let chunks = chunks.saturating_add_signed(i64::from(*delta as i8));
                let mut v = format!("p2p-manifest/1\nchunk-size {cs}\nfiles {}\n", files.len())
                    .into_bytes();
                for (size, path) in &files {
                    v.extend_from_slice(format!("{size} {path}\n").as_bytes());
                }
                v.extend_from_slice(format!("chunks {chunks}\n").as_bytes());
                for k in 0..chunks.min(4096) {
                    v.extend_from_slice(blake3::hash(&k.to_le_bytes()).as_bytes());
                }
                for (at, b) in edits {
                    if !v.is_empty() {
                        let at = usize::from(*at) % v.len();
                        v[at] = *b;
                    }
                }
                v
            }
        }
    }

    /// The input [`check_manifest`] reads from raw fuzzer bytes.
    pub fn decode(data: &[u8]) -> ManifestInput {
        Self::read(data)
    }
}

/// What a `manifest` input reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestSummary {
    /// It parsed.
    pub parsed: bool,
    /// Files and chunks of what parsed.
    pub files: usize,
    /// Chunks of what parsed.
    pub chunks: u32,
    /// Why it was refused.
    pub error: Option<ManifestError>,
}

/// Whether `path` may be written under the downloads directory by
/// PROTOCOL.md §9.1, read here independently of the core's `check_path`:
/// not empty, at most 4096 bytes and 64 components, relative, and every
/// component a plain file name (§5.3: [`is_plain_name`]) without `:` that
/// is not a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
/// `LPT1`-`LPT9`, with or without an extension, any case).
pub fn is_safe_path(path: &str) -> bool {
    if path.is_empty() || path.len() > 4096 || path.starts_with('/') {
        return false;
    }
    let components: Vec<&str> = path.split('/').collect();
    components.len() <= 64
        && components
            .iter()
            .all(|c| is_plain_name(c) && !c.contains(':') && !is_device_name(c))
}

fn is_device_name(component: &str) -> bool {
    let stem = component
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix)
            .is_some_and(|d| d.len() == 1 && matches!(d.as_bytes()[0], b'1'..=b'9'))
    };
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL") || numbered("COM") || numbered("LPT")
}

/// The checks of a manifest `parse` accepted from `data` (shared with the
/// `swarm` target, which applies them to every manifest the node accepts).
pub(crate) fn check_accepted(m: &Manifest, data: &[u8]) {
    assert_eq!(
        m.encode().as_ref(),
        data,
        "Manifest::parse accepted bytes that are not its canonical form"
    );
    assert_eq!(
        m.id(),
        ContentId(*blake3::hash(data).as_bytes()),
        "a manifest's id is not the BLAKE3 of its bytes"
    );
    let files = m.files();
    assert!(!files.is_empty(), "a manifest with no files");
    for f in files {
        assert_eq!(
            check_path(&f.path),
            Ok(()),
            "accepted path {:?} fails check_path",
            f.path
        );
        assert!(
            is_safe_path(&f.path),
            "accepted a manifest with an unsafe path {:?}",
            f.path
        );
    }
    let single = files.len() == 1 && !files[0].path.contains('/');
    if !single {
        let top = files[0].path.split('/').next().unwrap_or("");
        for f in files {
            let mut c = f.path.split('/');
            assert!(
                c.next() == Some(top) && c.next().is_some(),
                "tree path {:?} is not under {top:?}",
                f.path
            );
        }
    }
    assert_eq!(m.name(), files[0].path.split('/').next().unwrap_or(""));
    let paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for w in files.windows(2) {
        assert!(
            w[0].path < w[1].path,
            "paths {:?} and {:?} are not strictly sorted",
            w[0].path,
            w[1].path
        );
    }
    for f in files {
        for (at, _) in f.path.match_indices('/') {
            assert!(
                !paths.contains(&f.path[..at]),
                "{:?} is a file and a directory",
                &f.path[..at]
            );
        }
    }
    let cs = m.chunk_size();
    assert!((4096..=16 << 20).contains(&cs), "accepted chunk size {cs}");
    let size: u64 = files.iter().map(|f| f.size).sum();
    assert_eq!(m.size(), size, "size is not the sum of the files'");
    let n = size.div_ceil(u64::from(cs));
    assert_eq!(u64::from(m.chunks()), n, "chunk count for {size} bytes");
    let hashes = &data[data.len() - (n as usize) * 32..];
    let mut starts = Vec::with_capacity(files.len());
    let mut at = 0u64;
    for f in files {
        starts.push(at);
        at += f.size;
    }
    let mut covered = vec![0u64; files.len()];
    for k in 0..m.chunks() {
        let ks = k as usize;
        assert_eq!(
            m.hash(k).map(|h| &h[..]),
            Some(&hashes[ks * 32..ks * 32 + 32]),
            "hash of chunk {k}"
        );
        let start = u64::from(k) * u64::from(cs);
        let len = (size - start).min(u64::from(cs)) as usize;
        assert_eq!(m.chunk_len(k), len, "length of chunk {k}");
        let mut next = 0usize;
        let mut last_file = None;
        for (i, off, r) in m.segments(k) {
            assert!(
                last_file.is_none_or(|l| i > l),
                "segments of chunk {k}: file {i} out of order"
            );
            last_file = Some(i);
            assert_eq!(
                r.start, next,
                "segments of chunk {k}: gap or overlap at {next}"
            );
            assert!(!r.is_empty(), "segments of chunk {k}: an empty piece");
            let f = &files[i];
            assert!(
                off + r.len() as u64 <= f.size,
                "segment of chunk {k} past the end of {:?}",
                f.path
            );
            assert_eq!(
                starts[i] + off,
                start + r.start as u64,
                "segment of chunk {k} in {:?} at the wrong offset",
                f.path
            );
            covered[i] += r.len() as u64;
            next = r.end;
        }
        assert_eq!(
            next, len,
            "segments of chunk {k} cover {next} of {len} bytes"
        );
    }
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            covered[i], f.size,
            "segments cover {} of the {} bytes of {:?}",
            covered[i], f.size, f.path
        );
    }
}

/// Runs the `manifest` checks on fuzzer bytes. Panics on a broken invariant.
pub fn check_manifest(data: &[u8]) -> ManifestSummary {
    let bytes = ManifestInput::read(data).bytes();
    match Manifest::parse(&bytes) {
        Ok(m) => {
            check_accepted(&m, &bytes);
            ManifestSummary {
                parsed: true,
                files: m.files().len(),
                chunks: m.chunks(),
                error: None,
            }
        }
        Err(e) => ManifestSummary {
            error: Some(e),
            ..ManifestSummary::default()
        },
    }
}
