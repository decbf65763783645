//! What the disk and the memory storage share for swarm content: limits,
//! the streaming chunk hasher, and renaming a manifest's top component.

use std::io;

use p2p_core::{chunk_hash, Manifest, ManifestFile};

/// Most files one share may have: `p2p_core`'s manifest limit (not
/// exported by the core; `Manifest::new` refuses more, which
/// `tests::max_files_is_the_core_limit` checks). Walking stops there,
/// so a huge tree costs no more memory than the limit.
pub(crate) const MAX_FILES: usize = 100_000;

/// Chunk sizes a manifest may declare (`p2p_core`'s range): checked before
/// a buffer of that size is allocated.
pub(crate) fn check_chunk_size(chunk_size: u32) -> io::Result<()> {
    if (4 * 1024..=16 * 1024 * 1024).contains(&chunk_size) {
        Ok(())
    } else {
        Err(invalid(format!("chunk size {chunk_size} out of range")))
    }
}

/// An `InvalidInput` error.
pub(crate) fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.into())
}

/// Hashes the concatenation of files chunk by chunk through one buffer of
/// the chunk size: chunks span small files, and memory does not grow with
/// the files (only the hashes do, 32 bytes per chunk).
pub(crate) struct ChunkHasher {
    buf: Vec<u8>,
    fill: usize,
    hashes: Vec<[u8; 32]>,
}

impl ChunkHasher {
    /// A hasher of `chunk_size` chunks (already checked).
    pub(crate) fn new(chunk_size: u32) -> Self {
        ChunkHasher {
            buf: vec![0; chunk_size as usize],
            fill: 0,
            hashes: Vec::new(),
        }
    }

    /// Free room of the current chunk, at most `max` bytes: fill it, then
    /// call [`ChunkHasher::advance`].
    pub(crate) fn space(&mut self, max: u64) -> &mut [u8] {
        let room = self.buf.len() - self.fill;
        let n = usize::try_from(max).unwrap_or(usize::MAX).min(room);
        &mut self.buf[self.fill..self.fill + n]
    }

    /// `n` bytes of [`ChunkHasher::space`] were filled.
    pub(crate) fn advance(&mut self, n: usize) {
        self.fill += n;
        debug_assert!(self.fill <= self.buf.len());
        if self.fill == self.buf.len() {
            self.hashes.push(chunk_hash(&self.buf));
            self.fill = 0;
        }
    }

    /// Feeds bytes from memory.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let space = self.space(data.len() as u64);
            let n = space.len();
            space.copy_from_slice(&data[..n]);
            self.advance(n);
            data = &data[n..];
        }
    }

    /// The hash of every chunk, the last one short if need be.
    pub(crate) fn finish(mut self) -> Vec<[u8; 32]> {
        if self.fill > 0 {
            self.hashes.push(chunk_hash(&self.buf[..self.fill]));
        }
        self.hashes
    }
}

/// The manifest of the same content under the top name `name` (a download
/// committed as `name-(1).ext`): every path starts with the top name, so
/// the order, the chunks and their hashes stay the same.
pub(crate) fn renamed(m: &Manifest, name: &str) -> io::Result<Manifest> {
    if m.name() == name {
        return Ok(m.clone());
    }
    let files = m
        .files()
        .iter()
        .map(|f| ManifestFile {
            path: match f.path.split_once('/') {
                Some((_, rel)) => format!("{name}/{rel}"),
                None => name.to_owned(),
            },
            size: f.size,
        })
        .collect();
    let hashes = (0..m.chunks())
        .map(|k| m.hash(k).copied().unwrap_or([0; 32]))
        .collect();
    Manifest::new(m.chunk_size(), files, hashes).map_err(|e| invalid(e.to_string()))
}

/// Where a committed file of `m` is, relative to the committed top: `None`
/// for the single file of a file manifest, else the path below the top.
pub(crate) fn below_top(path: &str) -> Option<&str> {
    path.split_once('/').map(|(_, rel)| rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_files_is_the_core_limit() {
        let files = |n: usize| -> Vec<ManifestFile> {
            (0..n)
                .map(|i| ManifestFile {
                    path: format!("d/{i:06}"),
                    size: 0,
                })
                .collect()
        };
        assert!(Manifest::new(4096, files(MAX_FILES), Vec::new()).is_ok());
        assert!(Manifest::new(4096, files(MAX_FILES + 1), Vec::new()).is_err());
        assert!(check_chunk_size(4096).is_ok() && check_chunk_size(16 << 20).is_ok());
        assert!(check_chunk_size(4095).is_err() && check_chunk_size((16 << 20) + 1).is_err());
        assert!(Manifest::new(4095, files(1), Vec::new()).is_err());
        assert!(Manifest::new((16 << 20) + 1, files(1), Vec::new()).is_err());
    }

    #[test]
    fn hasher_spans_files_and_renaming_keeps_the_hashes() {
        let a: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..7000u32).map(|i| (i * 7) as u8).collect();
        let mut h = ChunkHasher::new(4096);
        h.feed(&a);
        h.feed(&[]);
        h.feed(&b);
        let hashes = h.finish();
        let all = [a.clone(), b.clone()].concat();
        let expect: Vec<_> = all.chunks(4096).map(chunk_hash).collect();
        assert_eq!(hashes, expect);
        let m = Manifest::new(
            4096,
            vec![
                ManifestFile {
                    path: "d/a".into(),
                    size: 5000,
                },
                ManifestFile {
                    path: "d/b".into(),
                    size: 7000,
                },
            ],
            hashes,
        )
        .unwrap();
        let r = renamed(&m, "d-(1)").unwrap();
        assert_eq!(r.files()[1].path, "d-(1)/b");
        assert_eq!(r.chunks(), m.chunks());
        assert_eq!(r.hash(2), m.hash(2));
        assert_eq!(renamed(&m, "d").unwrap(), m);
        assert_eq!(below_top("d/x/y"), Some("x/y"));
        assert_eq!(below_top("f.txt"), None);
    }
}
