//! Swarm content on the disk: shares hashed from the user's files (with a
//! cache of their manifests), partial downloads, and their commit.
//!
//! Everything the storage keeps lives in `<downloads>/.p2p/`:
//!
//! - `shares/<blake3 of the canonical path, hex>.manifest`: the manifest
//!   built from that path, with the modification time of each of its files
//!   (the sizes are in the manifest). A later share of the same path whose
//!   files all still match returns it without reading them.
//! - `shares.list`: the canonical path of everything shared, one per line,
//!   replaced whole at each change; the next run shares them again.
//! - `partial/<content id, hex>/`: one partial download: `manifest` (its
//!   canonical bytes), `dir` (the target directory, absent for the
//!   downloads directory), `record` (the chunks that are durable) and
//!   `data/` (the files, as the manifest lists them, at their full sizes).
//!
//! The record is `p2p-record/1\n<id hex>\n<chunk count>\n` and a bitfield
//! (chunk `k` is bit `7 - k % 8` of byte `k / 8`); it is only ever replaced
//! whole (written beside, synced, renamed over, directory synced), after
//! the data it claims was synced.
//!
//! Syncing: a checkpoint `fdatasync`s each data file written since the last
//! one, or, past [`SYNC_EACH_MAX`] files, makes one `syncfs` of the file
//! system of the partial (cheaper than thousands of fsyncs, and it reports
//! writeback errors since Linux 5.8). A commit does the same over every
//! file of the download (per-file `fsync` plus their directories, or one
//! `syncfs`), then syncs the target directory after the move. A target on
//! another file system is copied to first (`<target>/.p2p-incoming-<id>`,
//! synced the same way), and that copy is renamed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use p2p_core::{check_path, ContentId, Manifest, ManifestFile};

use crate::storage::{lock, numbered, ReadError};
use crate::swarm_store::{below_top, check_chunk_size, invalid, renamed, ChunkHasher, MAX_FILES};

/// Files synced one by one at most; past this, one `syncfs`.
pub(crate) const SYNC_EACH_MAX: usize = 16;

/// Open data files kept per partial download (the rest are reopened).
const HANDLES_MAX: usize = 64;

/// Files modified this recently before a share began are hashed but not
/// cached: a change within the same timestamp tick would go unseen.
const RACY_NS: i128 = 2_000_000_000;

const CACHE_MAGIC: &str = "p2p-share-cache/1";
const RECORD_MAGIC: &str = "p2p-record/1";

/// One file content is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceFile {
    path: PathBuf,
    size: u64,
    /// Modification time, nanoseconds since the epoch.
    mtime: i128,
}

/// Shared content: its manifest and its files, in manifest order.
#[derive(Debug)]
struct Source {
    manifest: Manifest,
    files: Vec<SourceFile>,
    /// The canonical path it was shared from, as `shares.list` has it.
    top: PathBuf,
}

/// A file found by a share's walk.
#[derive(Debug, Clone)]
struct Walked {
    /// Its path in the manifest (`<top>` or `<top>/<rel>`).
    name: String,
    file: SourceFile,
}

/// An open partial download.
#[derive(Debug)]
struct Partial {
    root: PathBuf,
    manifest: Manifest,
    dir: Option<String>,
    /// The record's bitfield as on disk.
    recorded: Vec<u8>,
    /// Chunks written since the last checkpoint.
    written: BTreeSet<u32>,
    /// Data files written since the last checkpoint.
    dirty: BTreeSet<usize>,
    handles: BTreeMap<usize, File>,
}

#[derive(Debug, Default)]
struct State {
    shares: BTreeMap<ContentId, Arc<Source>>,
    partials: BTreeMap<ContentId, Partial>,
    /// `shares.list`, once read.
    listed: Option<BTreeSet<String>>,
}

/// The swarm side of a [`DiskStorage`](crate::DiskStorage).
#[derive(Debug)]
pub(crate) struct DiskSwarm {
    downloads: PathBuf,
    /// `<downloads>/.p2p`, canonical: never shared.
    p2p: PathBuf,
    state: Mutex<State>,
}

/// The list of shared paths in `.p2p`.
const LIST: &str = "shares.list";

fn mtime_ns(m: &fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

fn utf8_name(p: &Path) -> io::Result<&str> {
    p.file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| invalid(format!("{}: no UTF-8 file name", p.display())))
}

/// Opens for reading without following a symbolic link at `path`.
fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn is_vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(libc::ELOOP)
        || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` whole: written beside, synced, renamed over, then
/// the directory synced.
fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// One `syncfs(2)` of the file system holding `path`.
fn syncfs(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        f.sync_all()?;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// `rename(from, to)` that fails with `AlreadyExists` rather than replace
/// anything (`renameat2(RENAME_NOREPLACE)`); `Unsupported` where the
/// system or the file system lacks it.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|_| invalid("path contains NUL"))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both are NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, e))
            }
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (from, to);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Moves `from` to `to` unless `to` exists (`AlreadyExists`). Without
/// `RENAME_NOREPLACE`: a file is hard-linked (which never replaces) and
/// unlinked; a directory claims `to` with `mkdir` (which never replaces)
/// and is renamed over that empty directory of its own.
fn move_noreplace(from: &Path, to: &Path, is_dir: bool) -> io::Result<()> {
    move_noreplace_with(rename_noreplace, from, to, is_dir)
}

fn move_noreplace_with(
    rename: fn(&Path, &Path) -> io::Result<()>,
    from: &Path,
    to: &Path,
    is_dir: bool,
) -> io::Result<()> {
    match rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        other => return other,
    }
    if is_dir {
        fs::create_dir(to)?;
        fs::rename(from, to).inspect_err(|_| {
            let _ = fs::remove_dir(to);
        })
    } else {
        fs::hard_link(from, to)?;
        fs::remove_file(from)
    }
}

fn bit(field: &[u8], k: u32) -> bool {
    field
        .get(k as usize / 8)
        .is_some_and(|b| b & (0x80 >> (k % 8)) != 0)
}

fn set_bit(field: &mut [u8], k: u32) {
    if let Some(b) = field.get_mut(k as usize / 8) {
        *b |= 0x80 >> (k % 8);
    }
}

fn record_header(content: ContentId, chunks: u32) -> String {
    format!("{RECORD_MAGIC}\n{}\n{chunks}\n", content.to_hex())
}

/// The bitfield of a record, or `None` if it is not one for this content.
fn parse_record(data: &[u8], content: ContentId, chunks: u32) -> Option<Vec<u8>> {
    let field = data.strip_prefix(record_header(content, chunks).as_bytes())?;
    if field.len() != (chunks as usize).div_ceil(8) {
        return None;
    }
    // Bits past the last chunk must be clear.
    if chunks % 8 != 0
        && field
            .last()
            .is_some_and(|b| b & (0xff >> (chunks % 8)) != 0)
    {
        return None;
    }
    Some(field.to_vec())
}

impl DiskSwarm {
    /// The swarm side of the downloads directory `downloads` (which
    /// exists). Its `.p2p` folder is created once something is kept there.
    pub(crate) fn new(downloads: &Path) -> io::Result<Self> {
        Ok(DiskSwarm {
            downloads: downloads.to_path_buf(),
            p2p: fs::canonicalize(downloads)?.join(".p2p"),
            state: Mutex::default(),
        })
    }

    fn partial_root(&self, content: ContentId) -> PathBuf {
        self.p2p.join("partial").join(content.to_hex())
    }

    fn cache_path(&self, top: &Path) -> PathBuf {
        let key = blake3::hash(top.as_os_str().as_bytes()).to_hex();
        self.p2p.join("shares").join(format!("{key}.manifest"))
    }

    pub(crate) fn share(&self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        let shared = self.hash_share(path, chunk_size);
        let mut state = lock(&self.state);
        match &shared {
            Ok((top, _)) => self.relist(&mut state, Some(top), None),
            // A listed path that cannot be shared any more is forgotten:
            // the failure is reported once, not at every start.
            Err(_) => self.relist(&mut state, None, Some(path)),
        }
        shared.map(|(_, bytes)| bytes)
    }

    fn hash_share(&self, path: &Path, chunk_size: u32) -> io::Result<(PathBuf, Bytes)> {
        check_chunk_size(chunk_size)?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let (top, walked) = self.walk(path)?;
        let cache = self.cache_path(&top);
        let manifest = match read_cache(&cache, &top, chunk_size, &walked) {
            Some(m) => m,
            None => {
                let hashes = hash_files(&walked, chunk_size)?;
                let files = walked
                    .iter()
                    .map(|w| ManifestFile {
                        path: w.name.clone(),
                        size: w.file.size,
                    })
                    .collect();
                let m =
                    Manifest::new(chunk_size, files, hashes).map_err(|e| invalid(e.to_string()))?;
                if walked.iter().all(|w| w.file.mtime < started - RACY_NS) {
                    let mtimes: Vec<i128> = walked.iter().map(|w| w.file.mtime).collect();
                    if let Err(e) = write_cache(&cache, &top, &mtimes, &m) {
                        tracing::warn!("could not cache the manifest of {}: {e}", top.display());
                    }
                }
                m
            }
        };
        let bytes = manifest.encode();
        let source = Source {
            manifest,
            files: walked.into_iter().map(|w| w.file).collect(),
            top: top.clone(),
        };
        lock(&self.state)
            .shares
            .insert(ContentId::of(&bytes), Arc::new(source));
        Ok((top, bytes))
    }

    /// Adds `add` to `shares.list` and takes `remove` out, rewriting it if
    /// that changed it. A path that is not UTF-8 is not listed (the core's
    /// paths are strings); a list that cannot be written is a warning, the
    /// share goes on.
    fn relist(&self, state: &mut State, add: Option<&Path>, remove: Option<&Path>) {
        let listed = state.listed.get_or_insert_with(|| self.read_list());
        let mut changed = false;
        if let Some(p) = add.and_then(Path::to_str) {
            changed |= listed.insert(p.to_owned());
        }
        if let Some(p) = remove.and_then(Path::to_str) {
            changed |= listed.remove(p);
        }
        if !changed {
            return;
        }
        let mut text = String::new();
        for p in listed.iter() {
            text.push_str(p);
            text.push('\n');
        }
        let written = fs::create_dir_all(&self.p2p)
            .and_then(|()| write_durably(&self.p2p, LIST, text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(
                "could not keep the list of shares in {}: {e}",
                self.p2p.display()
            );
        }
    }

    /// `shares.list` as on disk; lines that are not absolute paths (or
    /// hold a NUL) are skipped.
    fn read_list(&self) -> BTreeSet<String> {
        let text = match fs::read(self.p2p.join(LIST)) {
            Ok(t) => t,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cannot read the list of shares: {e}");
                }
                return BTreeSet::new();
            }
        };
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.starts_with('/') && !l.contains('\0'))
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn scan_shares(&self) -> Vec<String> {
        let mut state = lock(&self.state);
        let listed = state.listed.get_or_insert_with(|| self.read_list());
        listed.iter().cloned().collect()
    }

    /// The canonical top path and its files in manifest order.
    fn walk(&self, path: &Path) -> io::Result<(PathBuf, Vec<Walked>)> {
        let meta = fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Err(invalid(format!(
                "{} is a symbolic link (links are not followed)",
                path.display()
            )));
        }
        let top = fs::canonicalize(path)?;
        let name = utf8_name(&top)?.to_owned();
        check_path(&name).map_err(|why| invalid(format!("{name:?}: {why}")))?;
        // A tree holding the downloads directory skips its `.p2p`
        // (`walk_dir`); `.p2p` itself or anything in it is refused.
        if top.starts_with(&self.p2p) {
            return Err(invalid("the storage's own folder is not shared"));
        }
        let mut out = Vec::new();
        if meta.is_file() {
            out.push(Walked {
                name,
                file: SourceFile {
                    path: top.clone(),
                    size: meta.len(),
                    mtime: mtime_ns(&meta),
                },
            });
        } else if meta.is_dir() {
            self.walk_dir(&top, &name, &mut out)?;
            if out.is_empty() {
                return Err(invalid(format!("{}: no file to share", path.display())));
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            return Err(invalid(format!(
                "{}: not a regular file or directory",
                path.display()
            )));
        }
        Ok((top, out))
    }

    fn walk_dir(&self, dir: &Path, rel: &str, out: &mut Vec<Walked>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let abs = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!("not shared: {} (name is not UTF-8)", abs.display());
                continue;
            };
            let child = format!("{rel}/{name}");
            // Neither follows a symbolic link.
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                tracing::warn!("not shared: {} (symbolic link)", abs.display());
                continue;
            }
            if !ft.is_dir() && !ft.is_file() {
                tracing::warn!("not shared: {} (not a regular file)", abs.display());
                continue;
            }
            if ft.is_dir() && abs == self.p2p {
                continue;
            }
            if let Err(why) = check_path(&child) {
                tracing::warn!("not shared: {} ({why})", abs.display());
                continue;
            }
            if ft.is_dir() {
                self.walk_dir(&abs, &child, out)?;
            } else {
                if out.len() >= MAX_FILES {
                    return Err(invalid(format!("more than {MAX_FILES} files")));
                }
                let m = entry.metadata()?;
                out.push(Walked {
                    name: child,
                    file: SourceFile {
                        path: abs,
                        size: m.len(),
                        mtime: mtime_ns(&m),
                    },
                });
            }
        }
        Ok(())
    }

    pub(crate) fn unshare(&self, content: ContentId) {
        let mut state = lock(&self.state);
        if let Some(source) = state.shares.remove(&content) {
            self.relist(&mut state, None, Some(&source.top));
        }
    }

    pub(crate) fn open_partial(
        &self,
        content: ContentId,
        bytes: Bytes,
        dir: Option<String>,
    ) -> io::Result<Vec<u32>> {
        let manifest = Manifest::parse(&bytes).map_err(|e| invalid(e.to_string()))?;
        if ContentId::of(&bytes) != content {
            return Err(invalid("the manifest is not that content's"));
        }
        for f in manifest.files() {
            check_path(&f.path).map_err(|why| invalid(format!("{:?}: {why}", f.path)))?;
        }
        let root = self.partial_root(content);
        let data = root.join("data");
        fs::create_dir_all(&data)?;
        if fs::read(root.join("manifest")).ok().as_deref() != Some(&bytes[..]) {
            write_durably(&root, "manifest", &bytes)?;
        }
        let dir_file = root.join("dir");
        match &dir {
            Some(d) => {
                if fs::read(&dir_file).ok().as_deref() != Some(d.as_bytes()) {
                    write_durably(&root, "dir", d.as_bytes())?;
                }
            }
            None => match fs::remove_file(&dir_file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        for f in manifest.files() {
            let p = data.join(&f.path);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)?;
            if file.metadata()?.len() != f.size {
                // Sparse where new; a file left short or long is fixed up
                // (its claimed chunks are verified by the core anyway).
                file.set_len(f.size)?;
            }
        }
        let chunks = manifest.chunks();
        let recorded = match fs::read(root.join("record")) {
            Ok(data) => parse_record(&data, content, chunks).unwrap_or_else(|| {
                tracing::warn!("the record of {content} is corrupt: it claims nothing");
                vec![0; (chunks as usize).div_ceil(8)]
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => vec![0; (chunks as usize).div_ceil(8)],
            Err(e) => return Err(e),
        };
        let claimed = (0..chunks).filter(|&k| bit(&recorded, k)).collect();
        lock(&self.state).partials.insert(
            content,
            Partial {
                root,
                manifest,
                dir,
                recorded,
                written: BTreeSet::new(),
                dirty: BTreeSet::new(),
                handles: BTreeMap::new(),
            },
        );
        Ok(claimed)
    }

    pub(crate) fn read_chunk(&self, content: ContentId, chunk: u32) -> Result<Bytes, ReadError> {
        let mut state = lock(&self.state);
        if let Some(source) = state.shares.get(&content).cloned() {
            drop(state);
            return read_source(&source, chunk);
        }
        let p = state
            .partials
            .get_mut(&content)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such content"))?;
        if chunk >= p.manifest.chunks() {
            return Err(invalid(format!("no chunk {chunk}")).into());
        }
        let (len, segments) = (p.manifest.chunk_len(chunk), p.manifest.segments(chunk));
        read_segments(len, segments, |i, off, dst| {
            Ok(pread_exact(p.handle(i)?, off, dst)?)
        })
    }

    pub(crate) fn write_chunk(
        &self,
        content: ContentId,
        chunk: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let mut state = lock(&self.state);
        let p = state.partial(content)?;
        if chunk >= p.manifest.chunks() || data.len() != p.manifest.chunk_len(chunk) {
            return Err(invalid(format!("chunk {chunk} of {} bytes", data.len())));
        }
        for (i, off, r) in p.manifest.segments(chunk) {
            p.handle(i)?.write_all_at(&data[r], off)?;
            p.dirty.insert(i);
        }
        p.written.insert(chunk);
        Ok(())
    }

    pub(crate) fn checkpoint(&self, content: ContentId) -> io::Result<()> {
        let mut state = lock(&self.state);
        let p = state.partial(content)?;
        if p.written.is_empty() {
            return Ok(());
        }
        let dirty: Vec<usize> = p.dirty.iter().copied().collect();
        p.sync(&dirty, false)?;
        p.dirty.clear();
        let mut field = p.recorded.clone();
        for &k in &p.written {
            set_bit(&mut field, k);
        }
        let mut record = record_header(content, p.manifest.chunks()).into_bytes();
        record.extend_from_slice(&field);
        write_durably(&p.root, "record", &record)?;
        p.recorded = field;
        p.written.clear();
        Ok(())
    }

    pub(crate) fn commit_download(&self, content: ContentId) -> io::Result<String> {
        let mut state = lock(&self.state);
        let p = state.partial(content)?;
        let all: Vec<usize> = (0..p.manifest.files().len()).collect();
        p.sync(&all, true)?;
        p.handles.clear();
        let target = match &p.dir {
            Some(d) => {
                fs::create_dir_all(d)?;
                PathBuf::from(d)
            }
            None => self.downloads.clone(),
        };
        let name = p.manifest.name().to_owned();
        let data = p.root.join("data").join(&name);
        // A target on another file system cannot take a rename: the files
        // are copied beside it first, and that copy is what is moved.
        let staged = if fs::metadata(&p.root)?.dev() == fs::metadata(&target)?.dev() {
            None
        } else {
            Some(stage_across(p, content, &target)?)
        };
        let from = staged.clone().unwrap_or(data);
        let mut placed = None;
        for k in 0..10_000 {
            let candidate = numbered(&name, k);
            match move_noreplace(&from, &target.join(&candidate), p.manifest.is_dir()) {
                Ok(()) => {
                    placed = Some(Ok(candidate));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    placed = Some(Err(e));
                    break;
                }
            }
        }
        let placed = placed
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name")));
        if let (Err(_), Some(s)) = (&placed, &staged) {
            remove_any(s);
        }
        let candidate = placed?;
        let p = state.partials.remove(&content).expect("looked up above");
        // The move is done: its content is in place under its name, so a
        // failure to sync the name is reported, not the commit undone.
        if let Err(e) = sync_dir(&target) {
            tracing::warn!("could not sync {} after the commit: {e}", target.display());
        }
        if let Err(e) = fs::remove_dir_all(&p.root) {
            tracing::warn!(
                "could not delete the partial folder {}: {e}",
                p.root.display()
            );
        }
        let base = target.join(&candidate);
        let top = fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
        // Served from where it is now, like a share; and a later share of
        // it finds its manifest (the same content under the name it got)
        // without hashing. Neither is worth failing a done commit for.
        let files: io::Result<Vec<SourceFile>> = p
            .manifest
            .files()
            .iter()
            .map(|f| {
                let path = match below_top(&f.path) {
                    Some(rel) => top.join(rel),
                    None => top.clone(),
                };
                let m = fs::symlink_metadata(&path)?;
                Ok(SourceFile {
                    path,
                    size: m.len(),
                    mtime: mtime_ns(&m),
                })
            })
            .collect();
        match files {
            Ok(files) => {
                let mtimes: Vec<i128> = files.iter().map(|f| f.mtime).collect();
                let cached = renamed(&p.manifest, &candidate)
                    .and_then(|m| write_cache(&self.cache_path(&top), &top, &mtimes, &m));
                if let Err(e) = cached {
                    tracing::warn!("could not cache the manifest of {}: {e}", top.display());
                }
                state.shares.insert(
                    content,
                    Arc::new(Source {
                        manifest: p.manifest,
                        files,
                        top: top.clone(),
                    }),
                );
                self.relist(&mut state, Some(&top), None);
            }
            Err(e) => tracing::warn!("{} is not served: {e}", top.display()),
        }
        Ok(top.display().to_string())
    }

    pub(crate) fn close_partial(&self, content: ContentId) {
        lock(&self.state).partials.remove(&content);
    }

    pub(crate) fn discard_partial(&self, content: ContentId) -> io::Result<()> {
        lock(&self.state).partials.remove(&content);
        match fs::remove_dir_all(self.partial_root(content)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(crate) fn scan_partials(&self) -> Vec<(Bytes, Option<String>)> {
        let dir = self.p2p.join("partial");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(
                    "cannot list the partial downloads in {}: {e}",
                    dir.display()
                );
                return Vec::new();
            }
        };
        let mut found = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let id = entry.file_name().to_str().and_then(ContentId::parse);
            let Some(id) = id.filter(|id| id.to_hex() == entry.file_name().to_string_lossy())
            else {
                tracing::warn!("not a partial download: {}", path.display());
                continue;
            };
            let bytes = match fs::read(path.join("manifest")) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::warn!("partial download {} has no manifest: {e}", path.display());
                    continue;
                }
            };
            if ContentId::of(&bytes) != id || Manifest::parse(&bytes).is_err() {
                tracing::warn!(
                    "partial download {}: its manifest is not its id's",
                    path.display()
                );
                continue;
            }
            let target = match fs::read(path.join("dir")) {
                Ok(d) => match String::from_utf8(d) {
                    Ok(d) => Some(d),
                    Err(_) => {
                        tracing::warn!("partial download {}: its dir is not UTF-8", path.display());
                        None
                    }
                },
                Err(_) => None,
            };
            found.insert(id, (bytes, target));
        }
        found.into_values().collect()
    }
}

impl State {
    fn partial(&mut self, content: ContentId) -> io::Result<&mut Partial> {
        self.partials
            .get_mut(&content)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such partial download open"))
    }
}

impl Partial {
    /// Data file `i`, opened (read and write) if it is not already.
    fn handle(&mut self, i: usize) -> io::Result<&File> {
        if !self.handles.contains_key(&i) {
            if self.handles.len() >= HANDLES_MAX {
                self.handles.pop_first();
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(self.root.join("data").join(&self.manifest.files()[i].path))?;
            self.handles.insert(i, f);
        }
        Ok(&self.handles[&i])
    }

    /// Makes the data of files `which` durable: `fdatasync` each (with
    /// `all`, `fsync` each and every directory above them), or one
    /// `syncfs` when there are more than [`SYNC_EACH_MAX`].
    fn sync(&mut self, which: &[usize], all: bool) -> io::Result<()> {
        if which.len() > SYNC_EACH_MAX {
            match syncfs(&self.root) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
                other => return other,
            }
        }
        let mut dirs = BTreeSet::new();
        for &i in which {
            let f = self.handle(i)?;
            if all {
                f.sync_all()?;
                let path = &self.manifest.files()[i].path;
                let mut d = path.as_str();
                while let Some((parent, _)) = d.rsplit_once('/') {
                    dirs.insert(parent.to_owned());
                    d = parent;
                }
            } else {
                f.sync_data()?;
            }
        }
        for d in dirs {
            sync_dir(&self.root.join("data").join(d))?;
        }
        if all {
            sync_dir(&self.root.join("data"))?;
        }
        Ok(())
    }
}

/// Reads chunk `chunk` of shared content from its files, refusing any that
/// changed since they were hashed.
/// Copies the files of partial `p` into a hidden folder (or file) in
/// `target`, on the target's file system, made durable there; returns its
/// path. A copy left by an earlier attempt is replaced; a failed copy is
/// removed. Memory stays flat: `io::copy` streams (`copy_file_range`).
fn stage_across(p: &Partial, content: ContentId, target: &Path) -> io::Result<PathBuf> {
    let staging = target.join(format!(".p2p-incoming-{}", &content.to_hex()[..16]));
    remove_any(&staging);
    let files = p.manifest.files();
    let copy = || -> io::Result<()> {
        if p.manifest.is_dir() {
            fs::create_dir(&staging)?;
        }
        let mut dirs = BTreeSet::from([target.to_path_buf()]);
        for f in files {
            let dst = match below_top(&f.path) {
                Some(rel) => staging.join(rel),
                None => staging.clone(),
            };
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
                dirs.insert(parent.to_path_buf());
            }
            let mut from = File::open(p.root.join("data").join(&f.path))?;
            let mut to = OpenOptions::new().write(true).create_new(true).open(&dst)?;
            io::copy(&mut from, &mut to)?;
            if files.len() <= SYNC_EACH_MAX {
                to.sync_all()?;
            }
        }
        if files.len() > SYNC_EACH_MAX {
            syncfs(&staging)
        } else {
            dirs.iter().try_for_each(|d| sync_dir(d))
        }
    };
    copy().inspect_err(|_| remove_any(&staging))?;
    Ok(staging)
}

/// Deletes a file or a tree, if it is there (a leftover of ours).
fn remove_any(path: &Path) {
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = removed {
        tracing::warn!("could not delete {}: {e}", path.display());
    }
}

fn read_source(source: &Source, chunk: u32) -> Result<Bytes, ReadError> {
    if chunk >= source.manifest.chunks() {
        return Err(invalid(format!("no chunk {chunk}")).into());
    }
    let len = source.manifest.chunk_len(chunk);
    read_segments(len, source.manifest.segments(chunk), |i, off, dst| {
        let f = &source.files[i];
        let file = match open_nofollow(&f.path) {
            Ok(file) => file,
            Err(e) if is_vanished(&e) => {
                return Err(ReadError::changed(format!("{} vanished", f.path.display())))
            }
            Err(e) => return Err(e.into()),
        };
        let m = file.metadata()?;
        if !m.is_file() || m.len() != f.size || mtime_ns(&m) != f.mtime {
            return Err(ReadError::changed(format!(
                "{} changed since it was hashed",
                f.path.display()
            )));
        }
        match pread_exact(&file, off, dst) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(ReadError::changed(format!("{} shrank", f.path.display())))
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Reads a chunk of `len` bytes whose `segments` (file, offset, range of
/// the chunk) `read` fills, into a buffer that is not zeroed first: the
/// zeroing was 3 % of a loopback `/get`'s CPU (BENCHMARKS.md, "swarm").
fn read_segments(
    len: usize,
    segments: Vec<(usize, u64, std::ops::Range<usize>)>,
    mut read: impl FnMut(usize, u64, &mut [MaybeUninit<u8>]) -> Result<(), ReadError>,
) -> Result<Bytes, ReadError> {
    let mut buf = BytesMut::with_capacity(len);
    let mut filled = 0;
    for (i, off, r) in segments {
        // The segments tile the chunk in order; anything else would leave
        // bytes unwritten, so it is refused rather than trusted.
        if r.start != filled || r.end > len || r.end < r.start {
            return Err(invalid(format!("chunk segments do not tile {len} bytes")).into());
        }
        read(i, off, &mut buf.spare_capacity_mut()[r.clone()])?;
        filled = r.end;
    }
    if filled != len {
        return Err(invalid(format!("chunk segments do not tile {len} bytes")).into());
    }
    // SAFETY: the segments covered 0..len without a gap (checked above),
    // and each `read` returned Ok only once it had written all of its range.
    unsafe { buf.set_len(len) };
    Ok(buf.freeze())
}

/// `pread` until `dst` is full; `UnexpectedEof` if the file ends first.
fn pread_exact(file: &File, mut off: u64, mut dst: &mut [MaybeUninit<u8>]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !dst.is_empty() {
        let at = libc::off_t::try_from(off)
            .map_err(|_| invalid(format!("offset {off} beyond what the OS reads")))?;
        // SAFETY: the kernel writes at most `dst.len()` bytes into `dst`,
        // which is valid, writable memory for that length; uninitialised
        // bytes are fine to be written over.
        let n = unsafe { libc::pread(file.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len(), at) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => {
                // `n <= dst.len()`: pread never returns more than asked.
                let n = n as usize;
                dst = &mut dst[n..];
                off += n as u64;
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Hashes the files in order; any that changed under the walk or the read
/// fails the share.
fn hash_files(files: &[Walked], chunk_size: u32) -> io::Result<Vec<[u8; 32]>> {
    let mut h = ChunkHasher::new(chunk_size);
    for w in files {
        let f = &w.file;
        let changed =
            || io::Error::other(format!("{} changed while it was hashed", f.path.display()));
        let mut file = open_nofollow(&f.path)?;
        let same = |m: &fs::Metadata| m.is_file() && m.len() == f.size && mtime_ns(m) == f.mtime;
        if !same(&file.metadata()?) {
            return Err(changed());
        }
        let mut left = f.size;
        while left > 0 {
            let space = h.space(left);
            match file.read(space) {
                Ok(0) => return Err(changed()),
                Ok(n) => {
                    h.advance(n);
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !same(&file.metadata()?) {
            return Err(changed());
        }
    }
    Ok(h.finish())
}

/// The cached manifest of `top`, if it was built with `chunk_size` from
/// exactly the files `walked` found, at the same sizes and times.
fn read_cache(cache: &Path, top: &Path, chunk_size: u32, walked: &[Walked]) -> Option<Manifest> {
    let data = fs::read(cache).ok()?;
    let header = format!(
        "{CACHE_MAGIC}\npath {}\nmtimes {}\n",
        hex_path(top),
        walked.len()
    );
    let mut rest = data.strip_prefix(header.as_bytes())?;
    for w in walked {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let t: i128 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
        if t != w.file.mtime {
            return None;
        }
        rest = &rest[end + 1..];
    }
    let m = Manifest::parse(rest).ok()?;
    let same = m.chunk_size() == chunk_size
        && m.files().len() == walked.len()
        && m.files()
            .iter()
            .zip(walked)
            .all(|(f, w)| f.path == w.name && f.size == w.file.size);
    same.then_some(m)
}

fn hex_path(p: &Path) -> String {
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the cache entry of `top` (not synced: it is only a cache).
fn write_cache(cache: &Path, top: &Path, mtimes: &[i128], m: &Manifest) -> io::Result<()> {
    let dir = cache.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut out = format!(
        "{CACHE_MAGIC}\npath {}\nmtimes {}\n",
        hex_path(top),
        mtimes.len()
    );
    for t in mtimes {
        out.push_str(&format!("{t}\n"));
    }
    let mut data = out.into_bytes();
    data.extend_from_slice(&m.encode());
    let tmp = cache.with_extension("tmp");
    fs::write(&tmp, &data)?;
    fs::rename(&tmp, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_never_replace_with_or_without_renameat2() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let without: fn(&Path, &Path) -> io::Result<()> =
            |_, _| Err(io::Error::from(io::ErrorKind::Unsupported));
        for (k, rename) in [rename_noreplace, without].into_iter().enumerate() {
            let (file, dir) = (t.join(format!("f{k}")), t.join(format!("d{k}")));
            fs::write(&file, b"new").unwrap();
            fs::create_dir_all(dir.join("sub")).unwrap();
            fs::write(dir.join("sub/x"), b"new tree").unwrap();
            let (taken_file, taken_dir) = (t.join(format!("tf{k}")), t.join(format!("td{k}")));
            fs::write(&taken_file, b"old").unwrap();
            fs::create_dir(&taken_dir).unwrap();
            for (from, is_dir) in [(&file, false), (&dir, true)] {
                for to in [&taken_file, &taken_dir] {
                    let e = move_noreplace_with(rename, from, to, is_dir).unwrap_err();
                    assert_eq!(
                        e.kind(),
                        io::ErrorKind::AlreadyExists,
                        "{k} {from:?} {to:?}"
                    );
                }
            }
            assert_eq!(fs::read(&taken_file).unwrap(), b"old");
            assert_eq!(fs::read_dir(&taken_dir).unwrap().count(), 0);
            let (to_file, to_dir) = (t.join(format!("nf{k}")), t.join(format!("nd{k}")));
            move_noreplace_with(rename, &file, &to_file, false).unwrap();
            move_noreplace_with(rename, &dir, &to_dir, true).unwrap();
            assert!(!file.exists() && !dir.exists());
            assert_eq!(fs::read(&to_file).unwrap(), b"new");
            assert_eq!(fs::read(to_dir.join("sub/x")).unwrap(), b"new tree");
        }
    }

    #[test]
    fn records_round_trip_and_refuse_anything_else() {
        let id = ContentId([3; 32]);
        let mut field = vec![0u8; 2];
        for k in [0, 7, 9] {
            set_bit(&mut field, k);
        }
        assert_eq!(field, vec![0b1000_0001, 0b0100_0000]);
        let mut rec = record_header(id, 10).into_bytes();
        rec.extend_from_slice(&field);
        assert_eq!(parse_record(&rec, id, 10), Some(field.clone()));
        assert!((0..10).filter(|&k| bit(&field, k)).eq([0, 7, 9]));
        // Another id, another count, a short field, a bit past the end.
        assert_eq!(parse_record(&rec, ContentId([4; 32]), 10), None);
        assert_eq!(parse_record(&rec, id, 11), None);
        assert_eq!(parse_record(&rec[..rec.len() - 1], id, 10), None);
        let mut past = rec.clone();
        *past.last_mut().unwrap() |= 0x01;
        assert_eq!(parse_record(&past, id, 10), None);
    }

    #[test]
    fn chunk_reads_fill_every_byte_or_fail() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"hello").unwrap();
        fs::write(&b, b"world!").unwrap();
        let (fa, fb) = (File::open(&a).unwrap(), File::open(&b).unwrap());
        let files = [&fa, &fb];
        let read = |segments| {
            read_segments(8, segments, |i, off, dst| {
                Ok(pread_exact(files[i], off, dst)?)
            })
        };
        // Two files' segments tile the chunk.
        let got = read(vec![(0, 2, 0..3), (1, 0, 3..8)]).unwrap();
        assert_eq!(&got[..], b"lloworld");
        // A gap, an overlap or a short cover is refused, never left unread.
        for bad in [
            vec![(0, 0, 0..3), (1, 0, 4..8)],
            vec![(0, 0, 0..5), (1, 0, 3..8)],
            vec![(0, 0, 0..5)],
            vec![(0, 0, 0..5), (1, 0, 5..9)],
        ] {
            let e = read(bad).unwrap_err();
            assert_eq!(e.error.kind(), io::ErrorKind::InvalidInput);
        }
        // A file that ends before its segment: UnexpectedEof.
        let e = read(vec![(0, 2, 0..8)]).unwrap_err();
        assert_eq!(e.error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
