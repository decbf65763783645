//! Where incoming files are written and outgoing ones read, and where
//! swarm content is shared from and downloaded to: the disk, or memory (for
//! the simulator, where no real file may be touched). The swarm side of
//! each is in `swarm_disk.rs` and `swarm_mem.rs`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use p2p_core::{ContentId, TransferId};

use crate::swarm_disk::DiskSwarm;
use crate::swarm_mem::{MemFile, MemSwarm};

/// File operations of the driver. Names handed to `create` and `commit`
/// were validated by the core as plain file names; implementations still
/// refuse anything else.
///
/// The calls block. The driver runs them on a worker thread of its own
/// when [`Storage::blocking`] says so (the disk), and inline otherwise
/// (memory, so that the simulator stays single-threaded).
pub trait Storage: Clone + Send + Sync + 'static {
    /// Whether the operations may block on a device: they then run off the
    /// driver task, so that a slow disk never delays pings or handshakes.
    fn blocking(&self) -> bool;
    /// Creates (truncates) the part file `part` for `transfer`.
    fn create(&self, transfer: TransferId, part: &str) -> io::Result<()>;
    /// Appends to the transfer's part file.
    fn write(&self, transfer: TransferId, data: &[u8]) -> io::Result<()>;
    /// Moves the part file to `name`, or `name-(1).ext`, ... never
    /// overwriting; returns the name it got.
    fn commit(&self, transfer: TransferId, name: &str) -> io::Result<String>;
    /// Deletes the part file.
    fn discard(&self, transfer: TransferId) -> io::Result<()>;
    /// Deletes every part file still open (shutdown).
    fn discard_all(&self);
    /// Opens the file at `path` to send it as `transfer`; returns its size.
    fn open_source(&self, transfer: TransferId, path: &Path) -> io::Result<u64>;
    /// Reads up to `len` bytes at `offset` of an opened file (fewer only at
    /// its end).
    fn read(&self, transfer: TransferId, offset: u64, len: usize) -> io::Result<Bytes>;
    /// Closes an opened file.
    fn close_source(&self, transfer: TransferId);

    // Swarm sharing (`StorageOp::Share` and the ops after it). Each has a
    // default that fails with `Unsupported` (or does nothing), so that
    // storage without swarm support still compiles; storage that wraps
    // another must forward these too.

    /// Hashes the regular file or the directory tree at `path` into the
    /// canonical manifest of `chunk_size` chunks (see [`p2p_core::Manifest`]) and
    /// serves [`Storage::read_chunk`] of that content from its files from
    /// then on (until the files change or [`Storage::unshare`]).
    ///
    /// Symbolic links are never followed: a link at `path` itself is
    /// refused (`InvalidInput`); links, sockets, devices and fifos inside
    /// a tree are skipped with a warning, and so is every file or
    /// directory whose path `<top>/<rel>` fails [`p2p_core::check_path`]
    /// or whose name is not UTF-8 (the share goes on without them; an
    /// unreadable file or directory fails it instead). A missing `path` is
    /// `NotFound`; a tree without a file to share is `InvalidInput`, and
    /// so is one of more than 100 000 files (the manifest limit). Files
    /// are read once, in manifest order, through one buffer of the chunk
    /// size; nothing is synced. Storage may keep the manifest with the
    /// size and modification time of every file, and return it without
    /// reading them again while all of those still match.
    fn share(&self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        let _ = (path, chunk_size);
        Err(unsupported())
    }

    /// Stops serving `content` from the files it was shared from.
    fn unshare(&self, content: ContentId) {
        let _ = content;
    }

    /// Opens the partial download of `content` (creating it if new) with
    /// its canonical `manifest` and target directory `dir` (`None`: the
    /// downloads directory; the newest open's value is kept). Every file
    /// of the manifest exists afterwards at its size (sparse where new;
    /// existing data is kept). Returns the chunks its record claims as
    /// durable, in order (a corrupt record claims none): the caller
    /// re-reads and verifies them. Chunks written but not checkpointed
    /// before an earlier close or crash are never claimed.
    fn open_partial(
        &self,
        content: ContentId,
        manifest: Bytes,
        dir: Option<String>,
    ) -> io::Result<Vec<u32>> {
        let _ = (content, manifest, dir);
        Err(unsupported())
    }

    /// Reads chunk `chunk` of shared content (or of a committed download),
    /// else of an open partial download. A shared file that vanished or
    /// whose size or modification time differs from what was hashed is a
    /// [`ReadError`] with `changed` set.
    fn read_chunk(&self, content: ContentId, chunk: u32) -> Result<Bytes, ReadError> {
        let _ = (content, chunk);
        Err(ReadError::from(unsupported()))
    }

    /// Writes chunk `chunk` (exactly its length) into the open partial
    /// download; it is not claimed until the next [`Storage::checkpoint`].
    fn write_chunk(&self, content: ContentId, chunk: u32, data: &[u8]) -> io::Result<()> {
        let _ = (content, chunk, data);
        Err(unsupported())
    }

    /// Makes every chunk written so far durable, then records them as
    /// held: the data first, then the record that claims it.
    fn checkpoint(&self, content: ContentId) -> io::Result<()> {
        let _ = content;
        Err(unsupported())
    }

    /// The partial download is complete: makes all of it durable, moves it
    /// to its target directory under its name, or `name-(1).ext`, ...
    /// never over anything that exists, deletes what is left of the
    /// partial, and serves `content` from there like a share. Returns
    /// where it is now (display form).
    fn commit_download(&self, content: ContentId) -> io::Result<String> {
        let _ = content;
        Err(unsupported())
    }

    /// Closes the partial download, keeping it (a later
    /// [`Storage::open_partial`] resumes it).
    fn close_partial(&self, content: ContentId) {
        let _ = content;
    }

    /// Deletes the partial download, open or not.
    fn discard_partial(&self, content: ContentId) -> io::Result<()> {
        let _ = content;
        Err(unsupported())
    }

    /// The partial downloads kept (by an earlier run): each one's manifest
    /// and target directory, in content id order. Ones whose manifest does
    /// not parse or does not match their id are skipped with a warning.
    fn scan_partials(&self) -> Vec<(Bytes, Option<String>)> {
        Vec::new()
    }

    /// The paths shared when the earlier run ended, to share again: kept
    /// from each successful `share` (and each committed download) until
    /// its `unshare`, or until sharing it fails. Storage that keeps
    /// nothing across runs (the default, and [`MemStorage`]) has none.
    fn scan_shares(&self) -> Vec<String> {
        Vec::new()
    }
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this storage does not support swarm sharing",
    )
}

/// Why [`Storage::read_chunk`] failed.
#[derive(Debug)]
pub struct ReadError {
    /// The error.
    pub error: io::Error,
    /// A shared file changed or vanished since it was hashed (the content
    /// should be unshared, and shared again if it is still there).
    pub changed: bool,
}

impl ReadError {
    /// A shared file changed or vanished: `what` says how.
    pub fn changed(what: impl Into<String>) -> Self {
        ReadError {
            error: io::Error::other(what.into()),
            changed: true,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError {
            error,
            changed: false,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ReadError {}

/// Candidate final names: `name`, `name-(1).ext`, `name-(2).ext`, ...;
/// the stem is cut (at a character boundary) where the number would make
/// the name longer than the 255 bytes a file name may have.
pub fn numbered(name: &str, k: u32) -> String {
    const MAX: usize = 255;
    if k == 0 {
        return name.to_owned();
    }
    let suffix = format!("-({k})");
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() + 1 + suffix.len() < MAX => {
            (stem, format!(".{ext}"))
        }
        _ => (name, String::new()),
    };
    let mut end = stem.len().min(MAX - suffix.len() - ext.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}{ext}", &stem[..end])
}

fn plain(name: &str) -> io::Result<&str> {
    p2p_core::check_file_name(name)
        .map(|()| name)
        .or_else(|why| {
            // Part names are `.<name>.<id>.part`, which check_name refuses
            // for ending in `.part`; they are still plain names.
            let ok = name.ends_with(".part") && !name.contains(['/', '\\', '\0']) && name != "..";
            if ok {
                Ok(name)
            } else {
                Err(io::Error::new(io::ErrorKind::InvalidInput, why))
            }
        })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (each operation is a single insert or remove), so poison is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open part file and its path.
type PartFile = (PathBuf, BufWriter<File>);

/// Files in a downloads directory. Swarm content keeps its state in the
/// hidden `.p2p` folder there (layout, record format and syncing: see
/// `net/src/swarm_disk.rs`).
#[derive(Debug, Clone)]
pub struct DiskStorage {
    dir: PathBuf,
    open: Arc<Mutex<BTreeMap<TransferId, PartFile>>>,
    sources: Arc<Mutex<BTreeMap<TransferId, File>>>,
    swarm: Arc<DiskSwarm>,
}

impl DiskStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(DiskStorage {
            swarm: Arc::new(DiskSwarm::new(&dir)?),
            dir,
            open: Arc::default(),
            sources: Arc::default(),
        })
    }

    /// The downloads directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Storage for DiskStorage {
    fn blocking(&self) -> bool {
        true
    }

    fn create(&self, transfer: TransferId, part: &str) -> io::Result<()> {
        let path = self.dir.join(plain(part)?);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        // Small enough that 256 KiB chunks bypass it (no copy), large enough to
        // batch tiny files.
        lock(&self.open).insert(transfer, (path, BufWriter::with_capacity(64 * 1024, file)));
        Ok(())
    }

    fn write(&self, transfer: TransferId, data: &[u8]) -> io::Result<()> {
        let mut open = lock(&self.open);
        let (_, w) = open
            .get_mut(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such transfer"))?;
        w.write_all(data)
    }

    fn commit(&self, transfer: TransferId, name: &str) -> io::Result<String> {
        let (part, w) = lock(&self.open)
            .remove(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such transfer"))?;
        let result = (|| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            plain(name)?;
            for k in 0..10_000 {
                let candidate = numbered(name, k);
                let target = self.dir.join(&candidate);
                // hard_link refuses to replace an existing file, so two
                // commits can never overwrite each other or a user's file.
                match fs::hard_link(&part, &target) {
                    Ok(()) => {
                        let _ = fs::remove_file(&part);
                        return Ok(candidate);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(_) if !target.exists() => {
                        // File systems without hard links.
                        fs::rename(&part, &target)?;
                        return Ok(candidate);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free file name",
            ))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        result
    }

    fn discard(&self, transfer: TransferId) -> io::Result<()> {
        match lock(&self.open).remove(&transfer) {
            Some((part, w)) => {
                drop(w);
                match fs::remove_file(&part) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    fn discard_all(&self) {
        let all = std::mem::take(&mut *lock(&self.open));
        for (_, (part, w)) in all {
            drop(w);
            let _ = fs::remove_file(part);
        }
    }

    fn open_source(&self, transfer: TransferId, path: &Path) -> io::Result<u64> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        lock(&self.sources).insert(transfer, file);
        Ok(meta.len())
    }

    fn read(&self, transfer: TransferId, offset: u64, len: usize) -> io::Result<Bytes> {
        let sources = lock(&self.sources);
        let file = sources
            .get(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such source"))?;
        let mut buf = BytesMut::zeroed(len);
        let mut n = 0;
        while n < len {
            match file.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        Ok(buf.freeze())
    }

    fn close_source(&self, transfer: TransferId) {
        lock(&self.sources).remove(&transfer);
    }

    fn share(&self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        self.swarm.share(path, chunk_size)
    }

    fn unshare(&self, content: ContentId) {
        self.swarm.unshare(content)
    }

    fn open_partial(
        &self,
        content: ContentId,
        manifest: Bytes,
        dir: Option<String>,
    ) -> io::Result<Vec<u32>> {
        self.swarm.open_partial(content, manifest, dir)
    }

    fn read_chunk(&self, content: ContentId, chunk: u32) -> Result<Bytes, ReadError> {
        self.swarm.read_chunk(content, chunk)
    }

    fn write_chunk(&self, content: ContentId, chunk: u32, data: &[u8]) -> io::Result<()> {
        self.swarm.write_chunk(content, chunk, data)
    }

    fn checkpoint(&self, content: ContentId) -> io::Result<()> {
        self.swarm.checkpoint(content)
    }

    fn commit_download(&self, content: ContentId) -> io::Result<String> {
        self.swarm.commit_download(content)
    }

    fn close_partial(&self, content: ContentId) {
        self.swarm.close_partial(content)
    }

    fn discard_partial(&self, content: ContentId) -> io::Result<()> {
        self.swarm.discard_partial(content)
    }

    fn scan_partials(&self) -> Vec<(Bytes, Option<String>)> {
        self.swarm.scan_partials()
    }

    fn scan_shares(&self) -> Vec<String> {
        self.swarm.scan_shares()
    }
}

/// An in-memory downloads directory plus an in-memory set of files to send
/// and share: one namespace of paths, where committed swarm downloads land
/// too (at `name`, or `<dir>/name`, relative: the downloads directory is
/// the root). Clones share the state, and so does a simulated restart that
/// reuses it: partial downloads and their records survive
/// [`Storage::close_partial`] and [`MemStorage::crash`], writes that were
/// not checkpointed are never claimed again.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Debug, Default)]
pub(crate) struct MemInner {
    pub(crate) parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    pub(crate) files: BTreeMap<String, Arc<Vec<u8>>>,
    pub(crate) outbox: BTreeMap<PathBuf, MemFile>,
    pub(crate) sources: BTreeMap<TransferId, Bytes>,
    pub(crate) swarm: MemSwarm,
}

impl MemStorage {
    /// Makes `data` available to send and to share as `path`. Replacing a
    /// file counts as a change: content shared from it stops being served
    /// ("changed").
    pub fn add_source(&self, path: impl Into<PathBuf>, data: Vec<u8>) {
        lock(&self.inner).put_source(path.into(), Bytes::from(data));
    }

    /// Makes a directory `dir` of `files` (paths relative to it, `/`
    /// separated; none for an empty directory) available to share.
    pub fn add_source_dir(&self, dir: impl Into<PathBuf>, files: Vec<(String, Vec<u8>)>) {
        lock(&self.inner).put_source_dir(dir.into(), files);
    }

    /// Removes the source file at `path`: content shared from it stops
    /// being served ("changed"). Returns whether it was there.
    pub fn remove_source(&self, path: impl AsRef<Path>) -> bool {
        lock(&self.inner).outbox.remove(path.as_ref()).is_some()
    }

    /// Test hook for a lying peer: flips the first byte of the source file
    /// at `path` (or of the first non-empty file under the directory
    /// `path`) without it counting as a change, so that shared content is
    /// served corrupt. Returns whether a byte was flipped.
    pub fn corrupt_source(&self, path: impl AsRef<Path>) -> bool {
        lock(&self.inner).corrupt_source(path.as_ref())
    }

    /// Test hook for a lying peer that is wrong in chosen chunks: flips the
    /// byte at `offset` of the source file at `path`, unseen like
    /// [`MemStorage::corrupt_source`]. Returns whether there was such a
    /// byte.
    pub fn corrupt_source_at(&self, path: impl AsRef<Path>, offset: u64) -> bool {
        lock(&self.inner).corrupt_source_at(path.as_ref(), offset)
    }

    /// Simulates the process dying: drops what lives only in the process
    /// (open partial downloads with their writes not checkpointed, the
    /// registry of shared content, open files to send). Everything "on
    /// disk" stays: sources, committed files, partials and their records.
    pub fn crash(&self) {
        lock(&self.inner).crash();
    }

    /// Committed files by name.
    pub fn files(&self) -> BTreeMap<String, Arc<Vec<u8>>> {
        lock(&self.inner).files.clone()
    }

    /// Files of committed swarm downloads by path (`name`, or
    /// `name-(1)/sub/file`, or `<dir>/name`).
    pub fn swarm_files(&self) -> BTreeMap<String, Bytes> {
        lock(&self.inner).swarm_files()
    }

    /// Content ids of the partial downloads present (open or not).
    pub fn partial_ids(&self) -> Vec<ContentId> {
        lock(&self.inner).swarm.partials.keys().copied().collect()
    }

    /// Content ids served now (shared, or committed downloads).
    pub fn shared_ids(&self) -> Vec<ContentId> {
        lock(&self.inner).swarm.shares.keys().copied().collect()
    }

    /// Part files still present.
    pub fn parts(&self) -> Vec<String> {
        lock(&self.inner)
            .parts
            .values()
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Storage for MemStorage {
    fn blocking(&self) -> bool {
        false
    }

    fn create(&self, transfer: TransferId, part: &str) -> io::Result<()> {
        plain(part)?;
        lock(&self.inner)
            .parts
            .insert(transfer, (part.to_owned(), Vec::new()));
        Ok(())
    }

    fn write(&self, transfer: TransferId, data: &[u8]) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        let (_, buf) = inner
            .parts
            .get_mut(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such transfer"))?;
        buf.extend_from_slice(data);
        Ok(())
    }

    fn commit(&self, transfer: TransferId, name: &str) -> io::Result<String> {
        plain(name)?;
        let mut inner = lock(&self.inner);
        let (_, buf) = inner
            .parts
            .remove(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such transfer"))?;
        let mut k = 0;
        while inner.files.contains_key(&numbered(name, k)) {
            k += 1;
        }
        let saved = numbered(name, k);
        inner.files.insert(saved.clone(), Arc::new(buf));
        Ok(saved)
    }

    fn discard(&self, transfer: TransferId) -> io::Result<()> {
        lock(&self.inner).parts.remove(&transfer);
        Ok(())
    }

    fn discard_all(&self) {
        lock(&self.inner).parts.clear();
    }

    fn open_source(&self, transfer: TransferId, path: &Path) -> io::Result<u64> {
        let mut inner = lock(&self.inner);
        let data = inner
            .outbox
            .get(path)
            .map(|f| f.data.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        let len = data.len() as u64;
        inner.sources.insert(transfer, data);
        Ok(len)
    }

    fn read(&self, transfer: TransferId, offset: u64, len: usize) -> io::Result<Bytes> {
        let inner = lock(&self.inner);
        let data = inner
            .sources
            .get(&transfer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such source"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(len).min(data.len());
        // A slice of the shared buffer: no copy.
        Ok(data.slice(start..end))
    }

    fn close_source(&self, transfer: TransferId) {
        lock(&self.inner).sources.remove(&transfer);
    }

    fn share(&self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        lock(&self.inner).share(path, chunk_size)
    }

    fn unshare(&self, content: ContentId) {
        lock(&self.inner).swarm.shares.remove(&content);
    }

    fn open_partial(
        &self,
        content: ContentId,
        manifest: Bytes,
        dir: Option<String>,
    ) -> io::Result<Vec<u32>> {
        lock(&self.inner).open_partial(content, manifest, dir)
    }

    fn read_chunk(&self, content: ContentId, chunk: u32) -> Result<Bytes, ReadError> {
        lock(&self.inner).read_chunk(content, chunk)
    }

    fn write_chunk(&self, content: ContentId, chunk: u32, data: &[u8]) -> io::Result<()> {
        lock(&self.inner).write_chunk(content, chunk, data)
    }

    fn checkpoint(&self, content: ContentId) -> io::Result<()> {
        lock(&self.inner).checkpoint(content)
    }

    fn commit_download(&self, content: ContentId) -> io::Result<String> {
        lock(&self.inner).commit_download(content)
    }

    fn close_partial(&self, content: ContentId) {
        lock(&self.inner).close_partial(content)
    }

    fn discard_partial(&self, content: ContentId) -> io::Result<()> {
        lock(&self.inner).swarm.partials.remove(&content);
        Ok(())
    }

    fn scan_partials(&self) -> Vec<(Bytes, Option<String>)> {
        lock(&self.inner)
            .swarm
            .partials
            .values()
            .map(|p| (p.bytes.clone(), p.dir.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_commit_never_overwrites_and_discard_removes_the_part() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::new(dir.path()).unwrap();
        fs::write(dir.path().join("a.txt"), b"user's own").unwrap();
        for (t, body) in [(1, b"one"), (3, b"two")] {
            s.create(TransferId(t), &format!(".a.txt.{t}.part"))
                .unwrap();
            s.write(TransferId(t), body).unwrap();
        }
        assert_eq!(s.commit(TransferId(1), "a.txt").unwrap(), "a-(1).txt");
        assert_eq!(s.commit(TransferId(3), "a.txt").unwrap(), "a-(2).txt");
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"user's own");
        assert_eq!(fs::read(dir.path().join("a-(2).txt")).unwrap(), b"two");
        s.create(TransferId(5), ".b.5.part").unwrap();
        s.discard(TransferId(5)).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(s.create(TransferId(7), "../escape.part").is_err());
        // A known transfer, so that the commit gets as far as the name.
        s.create(TransferId(9), ".x.9.part").unwrap();
        s.write(TransferId(9), b"escape").unwrap();
        let e = s.commit(TransferId(9), "../x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(!dir.path().join("../x").exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "the part file is gone too: {names:?}");
    }

    #[test]
    fn numbering_keeps_the_extension() {
        assert_eq!(numbered("a.tar.gz", 2), "a.tar-(2).gz");
        assert_eq!(numbered("README", 1), "README-(1)");
        assert_eq!(numbered(".hidden", 1), ".hidden-(1)");
    }

    #[test]
    fn numbering_a_name_at_the_limit_stays_within_it() {
        let long = format!("{}.iso", "x".repeat(251));
        let n = numbered(&long, 12);
        assert_eq!(n.len(), 255);
        assert!(n.ends_with("-(12).iso") && n.starts_with("xxx"), "{n}");
        assert!(p2p_core::check_file_name(&n).is_ok());
        // Cut at a character boundary: 'é' is two bytes.
        let accents = "é".repeat(127);
        let n = numbered(&accents, 1);
        assert!(n.len() <= 255 && n.ends_with("é-(1)"), "{n}");
        // An extension too long to keep is part of the stem.
        let ext = format!("a.{}", "e".repeat(252));
        let n = numbered(&ext, 3);
        assert_eq!((n.len(), n.ends_with("-(3)")), (255, true), "{n}");
        // Distinct numbers stay distinct names.
        assert_ne!(numbered(&long, 1), numbered(&long, 2));
    }
}
