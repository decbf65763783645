//! Manifests and content ids (docs/PROTOCOL.md §9.1): what a shared file or
//! directory tree is, chunk by chunk, in one canonical byte form whose
//! BLAKE3 hash is the content id. The storage builds manifests when it
//! shares; the core parses the ones peers send and refuses any that is not
//! byte for byte what [`Manifest::encode`] would write, so one content has
//! one id.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Serialize, Serializer};

use crate::file::check_name;

/// First line of every manifest.
const MAGIC: &str = "p2p-manifest/1";

/// Chunk size of manifests we build (BLAKE3 over 256 KiB pieces; see
/// BENCHMARKS.md "swarm" for the measurement behind both choices).
pub const CHUNK_SIZE: u32 = 256 * 1024;

/// Smallest and largest chunk sizes a manifest may declare.
const CHUNK_RANGE: Range<u32> = 4 * 1024..(16 * 1024 * 1024 + 1);

/// Most files one manifest may list.
pub const MAX_FILES: usize = 100_000;

/// Most path components (directory depth plus the file).
const MAX_DEPTH: usize = 64;

/// Longest path, in bytes.
const MAX_PATH: usize = 4096;

/// The content id: BLAKE3 of the canonical manifest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// The id of a manifest's canonical bytes.
    pub fn of(manifest: &[u8]) -> ContentId {
        ContentId(*blake3::hash(manifest).as_bytes())
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(s: &str) -> Option<ContentId> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ContentId(out))
    }

    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.short())
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The hash of one chunk.
pub fn chunk_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative path, components joined by `/`; for a shared directory the
    /// first component is the directory's name.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not the canonical text form.
    #[error("malformed manifest: {0}")]
    Malformed(&'static str),
    /// A path that may not be written (`..`, absolute, a separator or a
    /// device name inside a component...).
    #[error("unsafe path {path:?} in manifest: {why}")]
    UnsafePath {
        /// The path, shortened.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// Over a limit.
    #[error("manifest over a limit: {0}")]
    TooLarge(&'static str),
    /// Parsed, but not byte for byte what this version writes.
    #[error("manifest is not in canonical form")]
    NotCanonical,
}

/// A shared file or directory tree: its files in path order and one hash
/// per chunk of their concatenation (small files share chunks, so a tree of
/// thousands of small files is a few requests, not thousands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    chunk_size: u32,
    files: Vec<ManifestFile>,
    /// `starts[i]`: offset of file `i` in the concatenation.
    starts: Vec<u64>,
    size: u64,
    hashes: Vec<[u8; 32]>,
}

/// Windows device names: refused as path components so that a tree shared
/// here can be written anywhere.
fn is_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or("").trim_end();
    let upper = stem.to_ascii_uppercase();
    matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((upper.starts_with("COM") || upper.starts_with("LPT"))
        && upper.len() == 4
        && upper.as_bytes()[3].is_ascii_digit())
}

/// Checks a relative path from the wire: every component a plain file name
/// (no `..`, no separators, no control characters), no device names, no
/// empty components (so no absolute paths), bounded depth and length.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_PATH {
        return Err("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    let mut depth = 0;
    for c in path.split('/') {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err("path deeper than 64 components");
        }
        check_name(c)?;
        if is_device_name(c) {
            return Err("device name");
        }
        if c.contains(':') {
            return Err("component contains ':'");
        }
    }
    Ok(())
}

fn chunks_for(size: u64, chunk_size: u32) -> Option<usize> {
    usize::try_from(size.div_ceil(u64::from(chunk_size))).ok()
}

impl Manifest {
    /// A manifest of `files` (any order; sorted here) with one hash per
    /// chunk of their concatenation in path order.
    pub fn new(
        chunk_size: u32,
        mut files: Vec<ManifestFile>,
        hashes: Vec<[u8; 32]>,
    ) -> Result<Manifest, ManifestError> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Self::checked(chunk_size, files, hashes)
    }

    fn checked(
        chunk_size: u32,
        files: Vec<ManifestFile>,
        hashes: Vec<[u8; 32]>,
    ) -> Result<Manifest, ManifestError> {
        if !CHUNK_RANGE.contains(&chunk_size) {
            return Err(ManifestError::Malformed("chunk size out of range"));
        }
        if files.is_empty() {
            return Err(ManifestError::Malformed("no files"));
        }
        if files.len() > MAX_FILES {
            return Err(ManifestError::TooLarge("over 100000 files"));
        }
        let mut starts = Vec::with_capacity(files.len());
        let mut size = 0u64;
        let single = !files[0].path.contains('/');
        let top = files[0].path.split('/').next().unwrap_or("");
        for (i, f) in files.iter().enumerate() {
            check_path(&f.path).map_err(|why| ManifestError::UnsafePath {
                path: crate::truncate_for_report(&f.path),
                why,
            })?;
            if single && files.len() != 1 {
                return Err(ManifestError::Malformed("a file manifest lists one file"));
            }
            if !(single || f.path.split('/').next() == Some(top) && f.path.contains('/')) {
                return Err(ManifestError::Malformed(
                    "directory paths must share their first component",
                ));
            }
            if i > 0 {
                let prev = &files[i - 1].path;
                if prev >= &f.path {
                    return Err(ManifestError::Malformed("paths not sorted or repeated"));
                }
                // `a/b` a file and `a/b/c` another: `a/b` cannot be both.
                if f.path.len() > prev.len()
                    && f.path.starts_with(prev.as_str())
                    && f.path.as_bytes()[prev.len()] == b'/'
                {
                    return Err(ManifestError::Malformed("a file is also a directory"));
                }
            }
            starts.push(size);
            size = size
                .checked_add(f.size)
                .ok_or(ManifestError::TooLarge("size overflows"))?;
        }
        // Sorted order puts `a/b` right before `a/b/...` only when no name
        // sorts between them (`a/b-x` does): check every file against the
        // directories above later files too.
        let mut dirs = std::collections::BTreeSet::new();
        for f in &files {
            let mut end = 0;
            for c in f.path.split('/') {
                end += c.len();
                if end < f.path.len() {
                    dirs.insert(&f.path[..end]);
                }
                end += 1;
            }
        }
        if files.iter().any(|f| dirs.contains(f.path.as_str())) {
            return Err(ManifestError::Malformed("a file is also a directory"));
        }
        let n = chunks_for(size, chunk_size).ok_or(ManifestError::TooLarge("too many chunks"))?;
        if hashes.len() != n {
            return Err(ManifestError::Malformed(
                "chunk count does not match the size",
            ));
        }
        Ok(Manifest {
            chunk_size,
            files,
            starts,
            size,
            hashes,
        })
    }

    /// The canonical bytes; their BLAKE3 is the id.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(
            64 + self.files.iter().map(|f| f.path.len() + 22).sum::<usize>()
                + self.hashes.len() * 32,
        );
        b.put_slice(
            format!(
                "{MAGIC}\nchunk-size {}\nfiles {}\n",
                self.chunk_size,
                self.files.len()
            )
            .as_bytes(),
        );
        for f in &self.files {
            b.put_slice(format!("{} {}\n", f.size, f.path).as_bytes());
        }
        b.put_slice(format!("chunks {}\n", self.hashes.len()).as_bytes());
        for h in &self.hashes {
            b.put_slice(h);
        }
        b.freeze()
    }

    /// Parses canonical bytes; anything else is refused.
    pub fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let mut rest = data;
        let mut line = || -> Result<&str, ManifestError> {
            let end = rest
                .iter()
                .take(MAX_PATH + 32)
                .position(|&b| b == b'\n')
                .ok_or(ManifestError::Malformed("line missing or too long"))?;
            let l = std::str::from_utf8(&rest[..end])
                .map_err(|_| ManifestError::Malformed("not UTF-8"))?;
            rest = &rest[end + 1..];
            Ok(l)
        };
        if line()? != MAGIC {
            return Err(ManifestError::Malformed("not a p2p-manifest/1"));
        }
        let chunk_size = line()?
            .strip_prefix("chunk-size ")
            .and_then(parse_num)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(ManifestError::Malformed("bad chunk-size line"))?;
        let count = line()?
            .strip_prefix("files ")
            .and_then(parse_num)
            .ok_or(ManifestError::Malformed("bad files line"))?;
        if count > MAX_FILES as u64 {
            return Err(ManifestError::TooLarge("over 100000 files"));
        }
        let mut files = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let l = line()?;
            let (size, path) = l
                .split_once(' ')
                .ok_or(ManifestError::Malformed("bad file line"))?;
            let size = parse_num(size).ok_or(ManifestError::Malformed("bad file size"))?;
            files.push(ManifestFile {
                path: path.to_owned(),
                size,
            });
        }
        let n = line()?
            .strip_prefix("chunks ")
            .and_then(parse_num)
            .ok_or(ManifestError::Malformed("bad chunks line"))?;
        if rest.len() as u64 != n.saturating_mul(32) {
            return Err(ManifestError::Malformed(
                "hash bytes do not match the chunk count",
            ));
        }
        let hashes = rest
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let m = Self::checked(chunk_size, files, hashes)?;
        if m.encode() != data {
            return Err(ManifestError::NotCanonical);
        }
        Ok(m)
    }

    /// The id of this manifest.
    pub fn id(&self) -> ContentId {
        ContentId::of(&self.encode())
    }

    /// The name it is shared under: the file's, or the directory's.
    pub fn name(&self) -> &str {
        self.files[0].path.split('/').next().unwrap_or("")
    }

    /// Whether it is a directory tree.
    pub fn is_dir(&self) -> bool {
        self.files[0].path.contains('/')
    }

    /// Total size of the files.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The files, in path order.
    pub fn files(&self) -> &[ManifestFile] {
        &self.files
    }

    /// Bytes per chunk (the last one may be shorter).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        // Invariant: at most 64 GiB / 4 KiB chunks pass `checked` in
        // practice; larger counts saturate and are refused by the caller's
        // frame limits long before.
        u32::try_from(self.hashes.len()).unwrap_or(u32::MAX)
    }

    /// The expected hash of chunk `k`.
    pub fn hash(&self, k: u32) -> Option<&[u8; 32]> {
        self.hashes.get(k as usize)
    }

    /// Where chunk `k` lies in the concatenation.
    pub fn chunk_range(&self, k: u32) -> Range<u64> {
        let start = u64::from(k) * u64::from(self.chunk_size);
        start.min(self.size)..(start + u64::from(self.chunk_size)).min(self.size)
    }

    /// Length of chunk `k`.
    pub fn chunk_len(&self, k: u32) -> usize {
        let r = self.chunk_range(k);
        (r.end - r.start) as usize
    }

    /// Whether `data` is chunk `k`.
    pub fn verify(&self, k: u32, data: &[u8]) -> bool {
        data.len() == self.chunk_len(k) && self.hash(k) == Some(&chunk_hash(data))
    }

    /// The pieces of chunk `k` in the files: `(file index, offset in the
    /// file, range in the chunk)`, in order; empty files get none.
    pub fn segments(&self, k: u32) -> Vec<(usize, u64, Range<usize>)> {
        let r = self.chunk_range(k);
        let mut out = Vec::new();
        // The first file that ends after the chunk's start.
        let mut i = self
            .starts
            .partition_point(|&s| s <= r.start)
            .saturating_sub(1);
        while i < self.files.len() && self.starts[i] < r.end {
            let fs = self.starts[i];
            let fe = fs + self.files[i].size;
            let s = fs.max(r.start);
            let e = fe.min(r.end);
            if s < e {
                out.push((i, s - fs, (s - r.start) as usize..(e - r.start) as usize));
            }
            i += 1;
        }
        out
    }
}

/// Plain decimal: ASCII digits only, no leading zero unless `0`.
fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, u64)], cs: u32) -> Manifest {
        let files: Vec<ManifestFile> = files
            .iter()
            .map(|(p, s)| ManifestFile {
                path: (*p).to_owned(),
                size: *s,
            })
            .collect();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let n = total.div_ceil(u64::from(cs)) as usize;
        Manifest::new(cs, files, vec![[7; 32]; n]).unwrap()
    }

    #[test]
    fn round_trips_and_ids_are_stable() {
        let m = manifest(&[("d/b", 5000), ("d/a/x", 0), ("d/c", 9000)], 4096);
        let bytes = m.encode();
        let back = Manifest::parse(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.name(), "d");
        assert!(m.is_dir());
        assert_eq!(m.chunks(), 4);
        assert_eq!(m.files()[0].path, "d/a/x");
        // Chunk 1 spans the end of d/b and the start of d/c.
        assert_eq!(m.segments(1), vec![(1, 4096, 0..904), (2, 0, 904..4096)]);
        assert_eq!(m.segments(3), vec![(2, 7288, 0..1712)]);
        assert_eq!(m.id(), ContentId::of(&bytes));
        assert_eq!(ContentId::parse(&m.id().to_hex()), Some(m.id()));
    }

    #[test]
    fn refuses_hostile_and_non_canonical_forms() {
        let m = manifest(&[("f.txt", 10)], 4096);
        let good = m.encode().to_vec();
        let replace = |from: &str, to: &str| {
            let s = String::from_utf8_lossy(&good[..good.len() - 32]).replace(from, to);
            let mut v = s.into_bytes();
            v.extend_from_slice(&good[good.len() - 32..]);
            v
        };
        for (bad, what) in [
            (replace("10 f.txt", "10 ../f.txt"), "dotdot"),
            (replace("10 f.txt", "10 /etc/passwd"), "absolute"),
            (replace("10 f.txt", "10 CON.txt"), "device"),
            (replace("10 f.txt", "010 f.txt"), "leading zero"),
            (replace("10 f.txt", "10 a\\b"), "backslash"),
            (replace("chunks 1", "chunks 2"), "count"),
            (replace("files 1", "files 2"), "files"),
            (replace("p2p-manifest/1", "p2p-manifest/2"), "magic"),
            (replace("10 f.txt", "10 f.txt.part"), "part"),
        ] {
            assert!(Manifest::parse(&bad).is_err(), "{what}");
        }
        for bad in [
            vec![("d/a", 1), ("d/a/b", 1)],
            vec![("d/a", 1), ("d/a-x", 1), ("d/a/b", 1)],
            vec![("d/a", 1), ("e/b", 1)],
            vec![("a", 1), ("b", 1)],
            vec![("d", 1), ("d/b", 1)],
        ] {
            let files = bad
                .iter()
                .map(|(p, s)| ManifestFile {
                    path: (*p).to_owned(),
                    size: *s,
                })
                .collect();
            assert!(
                Manifest::new(4096, files, vec![[0; 32]; 1]).is_err(),
                "{bad:?}"
            );
        }
    }
}
