//! Where incoming files are written and outgoing ones read: the disk, or
//! memory (for the simulator, where no real file may be touched).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use p2p_core::TransferId;

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
}

/// Candidate final names: `name`, `name-(1).ext`, `name-(2).ext`, ...
pub fn numbered(name: &str, k: u32) -> String {
    if k == 0 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-({k}).{ext}"),
        _ => format!("{name}-({k})"),
    }
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (each operation is a single insert or remove), so poison is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open part file and its path.
type PartFile = (PathBuf, BufWriter<File>);

/// Files in a downloads directory.
#[derive(Debug, Clone)]
pub struct DiskStorage {
    dir: PathBuf,
    open: Arc<Mutex<BTreeMap<TransferId, PartFile>>>,
    sources: Arc<Mutex<BTreeMap<TransferId, File>>>,
}

impl DiskStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(DiskStorage {
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
}

/// An in-memory downloads directory plus an in-memory set of files to send.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Debug, Default)]
struct MemInner {
    parts: BTreeMap<TransferId, (String, Vec<u8>)>,
    files: BTreeMap<String, Arc<Vec<u8>>>,
    outbox: BTreeMap<PathBuf, Bytes>,
    sources: BTreeMap<TransferId, Bytes>,
}

impl MemStorage {
    /// Makes `data` available to send as `path`.
    pub fn add_source(&self, path: impl Into<PathBuf>, data: Vec<u8>) {
        lock(&self.inner)
            .outbox
            .insert(path.into(), Bytes::from(data));
    }

    /// Committed files by name.
    pub fn files(&self) -> BTreeMap<String, Arc<Vec<u8>>> {
        lock(&self.inner).files.clone()
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
            .cloned()
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
}
