//! Swarm content in memory, for the simulator: the semantics of
//! `swarm_disk.rs` without files. A source's version stands for its size
//! and modification time: replacing or removing it is a change, and
//! [`MemStorage::corrupt_source`](crate::MemStorage::corrupt_source) is a
//! change that goes unseen (a lying peer). Every map is ordered, so nothing
//! depends on hashing order.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use p2p_core::{check_path, ContentId, Manifest, ManifestFile};

use crate::storage::{numbered, MemInner, ReadError};
use crate::swarm_store::{below_top, check_chunk_size, invalid, renamed, ChunkHasher, MAX_FILES};

/// A file in memory and its version.
#[derive(Debug, Clone)]
pub(crate) struct MemFile {
    pub(crate) data: Bytes,
    /// Changes whenever the file is replaced.
    pub(crate) version: u64,
}

/// Shared content: its manifest and the files (with the versions hashed)
/// it is served from, in manifest order.
#[derive(Debug)]
pub(crate) struct MemShare {
    manifest: Manifest,
    files: Vec<(PathBuf, u64)>,
}

/// A partial download "on disk", and whether it is open.
#[derive(Debug)]
pub(crate) struct MemPartial {
    pub(crate) bytes: Bytes,
    manifest: Manifest,
    pub(crate) dir: Option<String>,
    /// One buffer per file, at its size once written to (empty until
    /// then: zeros, like a sparse file; so a huge manifest costs nothing
    /// before data arrives).
    data: Vec<Vec<u8>>,
    /// What the record claims.
    record: BTreeSet<u32>,
    /// Written since the last checkpoint (only while open).
    written: BTreeSet<u32>,
    open: bool,
}

/// A manifest built from a path: its chunk size, the (manifest path,
/// version) of each file, and the manifest.
type Cached = (u32, Vec<(String, u64)>, Manifest);

/// The swarm state of a [`MemStorage`](crate::MemStorage).
#[derive(Debug, Default)]
pub(crate) struct MemSwarm {
    /// Directories added with `add_source_dir` or committed.
    dirs: BTreeSet<PathBuf>,
    /// Last version handed out.
    version: u64,
    pub(crate) shares: BTreeMap<ContentId, MemShare>,
    /// Per shared path, the manifest built from it.
    cache: BTreeMap<PathBuf, Cached>,
    pub(crate) partials: BTreeMap<ContentId, MemPartial>,
    /// Where downloads were committed.
    committed: BTreeSet<PathBuf>,
}

fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

impl MemInner {
    fn next_version(&mut self) -> u64 {
        self.swarm.version += 1;
        self.swarm.version
    }

    pub(crate) fn put_source(&mut self, path: PathBuf, data: Bytes) {
        let version = self.next_version();
        self.outbox.insert(path, MemFile { data, version });
    }

    pub(crate) fn put_source_dir(&mut self, dir: PathBuf, files: Vec<(String, Vec<u8>)>) {
        for (rel, data) in files {
            self.put_source(dir.join(rel), Bytes::from(data));
        }
        self.swarm.dirs.insert(dir);
    }

    pub(crate) fn corrupt_source(&mut self, path: &Path) -> bool {
        let key = self
            .outbox
            .iter()
            .find(|(k, f)| k.starts_with(path) && !f.data.is_empty())
            .map(|(k, _)| k.clone());
        let Some(f) = key.and_then(|k| self.outbox.get_mut(&k)) else {
            return false;
        };
        let mut data = f.data.to_vec();
        data[0] ^= 0x01;
        f.data = Bytes::from(data);
        true
    }

    pub(crate) fn corrupt_source_at(&mut self, path: &Path, offset: u64) -> bool {
        let Some(f) = self.outbox.get_mut(path) else {
            return false;
        };
        let Some(at) = usize::try_from(offset).ok().filter(|&i| i < f.data.len()) else {
            return false;
        };
        let mut data = f.data.to_vec();
        data[at] ^= 0x01;
        f.data = Bytes::from(data);
        true
    }

    pub(crate) fn crash(&mut self) {
        self.sources.clear();
        self.swarm.shares.clear();
        for p in self.swarm.partials.values_mut() {
            p.open = false;
            p.written.clear();
        }
    }

    pub(crate) fn swarm_files(&self) -> BTreeMap<String, Bytes> {
        self.outbox
            .iter()
            .filter(|(k, _)| self.swarm.committed.iter().any(|c| k.starts_with(c)))
            .map(|(k, f)| (k.display().to_string(), f.data.clone()))
            .collect()
    }

    /// The files of `path` as (manifest path, key), in manifest order.
    fn share_files(&self, path: &Path) -> io::Result<Vec<(String, PathBuf)>> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid(format!("{}: no UTF-8 file name", path.display())))?;
        check_path(name).map_err(|why| invalid(format!("{name:?}: {why}")))?;
        if self.outbox.contains_key(path) {
            return Ok(vec![(name.to_owned(), path.to_path_buf())]);
        }
        let under: Vec<&PathBuf> = self.outbox.keys().filter(|k| k.starts_with(path)).collect();
        if under.is_empty() && !self.swarm.dirs.contains(path) {
            return Err(not_found("no such file or directory"));
        }
        let mut files = Vec::new();
        for key in under {
            let rel = key.strip_prefix(path).ok().and_then(Path::to_str);
            let Some(rel) = rel else {
                tracing::warn!("not shared: {} (name is not UTF-8)", key.display());
                continue;
            };
            let child = format!("{name}/{rel}");
            if let Err(why) = check_path(&child) {
                tracing::warn!("not shared: {} ({why})", key.display());
                continue;
            }
            files.push((child, key.clone()));
        }
        if files.is_empty() {
            return Err(invalid(format!("{}: no file to share", path.display())));
        }
        if files.len() > MAX_FILES {
            return Err(invalid(format!("more than {MAX_FILES} files")));
        }
        files.sort();
        Ok(files)
    }

    pub(crate) fn share(&mut self, path: &Path, chunk_size: u32) -> io::Result<Bytes> {
        check_chunk_size(chunk_size)?;
        let files = self.share_files(path)?;
        let versions: Vec<(String, u64)> = files
            .iter()
            .map(|(n, k)| (n.clone(), self.outbox[k].version))
            .collect();
        let manifest = match self.swarm.cache.get(path) {
            Some((cs, v, m)) if *cs == chunk_size && *v == versions => m.clone(),
            _ => {
                let mut h = ChunkHasher::new(chunk_size);
                let mut listed = Vec::with_capacity(files.len());
                for (name, key) in &files {
                    let data = &self.outbox[key].data;
                    h.feed(data);
                    listed.push(ManifestFile {
                        path: name.clone(),
                        size: data.len() as u64,
                    });
                }
                let m = Manifest::new(chunk_size, listed, h.finish())
                    .map_err(|e| invalid(e.to_string()))?;
                self.swarm.cache.insert(
                    path.to_path_buf(),
                    (chunk_size, versions.clone(), m.clone()),
                );
                m
            }
        };
        let bytes = manifest.encode();
        let files = files
            .into_iter()
            .zip(versions)
            .map(|((_, key), (_, v))| (key, v))
            .collect();
        self.swarm
            .shares
            .insert(ContentId::of(&bytes), MemShare { manifest, files });
        Ok(bytes)
    }

    pub(crate) fn open_partial(
        &mut self,
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
        let p = self
            .swarm
            .partials
            .entry(content)
            .or_insert_with(|| MemPartial {
                data: vec![Vec::new(); manifest.files().len()],
                bytes,
                manifest,
                dir: None,
                record: BTreeSet::new(),
                written: BTreeSet::new(),
                open: false,
            });
        p.dir = dir;
        p.open = true;
        p.written.clear();
        Ok(p.record.iter().copied().collect())
    }

    fn open(&mut self, content: ContentId) -> io::Result<&mut MemPartial> {
        self.swarm
            .partials
            .get_mut(&content)
            .filter(|p| p.open)
            .ok_or_else(|| not_found("no such partial download open"))
    }

    pub(crate) fn read_chunk(
        &mut self,
        content: ContentId,
        chunk: u32,
    ) -> Result<Bytes, ReadError> {
        if let Some(share) = self.swarm.shares.get(&content) {
            let m = &share.manifest;
            if chunk >= m.chunks() {
                return Err(invalid(format!("no chunk {chunk}")).into());
            }
            let mut buf = BytesMut::zeroed(m.chunk_len(chunk));
            for (i, off, r) in m.segments(chunk) {
                let (key, version) = &share.files[i];
                let f = match self.outbox.get(key) {
                    Some(f) if f.version == *version => f,
                    Some(_) => {
                        return Err(ReadError::changed(format!(
                            "{} changed since it was hashed",
                            key.display()
                        )))
                    }
                    None => return Err(ReadError::changed(format!("{} vanished", key.display()))),
                };
                let off = off as usize;
                buf[r.clone()].copy_from_slice(&f.data[off..off + r.len()]);
            }
            return Ok(buf.freeze());
        }
        let p = self.open(content)?;
        if chunk >= p.manifest.chunks() {
            return Err(invalid(format!("no chunk {chunk}")).into());
        }
        let mut buf = BytesMut::zeroed(p.manifest.chunk_len(chunk));
        for (i, off, r) in p.manifest.segments(chunk) {
            let off = off as usize;
            if let Some(d) = p.data[i].get(off..off + r.len()) {
                buf[r].copy_from_slice(d);
            }
        }
        Ok(buf.freeze())
    }

    pub(crate) fn write_chunk(
        &mut self,
        content: ContentId,
        chunk: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let p = self.open(content)?;
        if chunk >= p.manifest.chunks() || data.len() != p.manifest.chunk_len(chunk) {
            return Err(invalid(format!("chunk {chunk} of {} bytes", data.len())));
        }
        for (i, off, r) in p.manifest.segments(chunk) {
            let off = off as usize;
            let file = &mut p.data[i];
            file.resize(p.manifest.files()[i].size as usize, 0);
            file[off..off + r.len()].copy_from_slice(&data[r]);
        }
        p.written.insert(chunk);
        Ok(())
    }

    pub(crate) fn checkpoint(&mut self, content: ContentId) -> io::Result<()> {
        let p = self.open(content)?;
        let written = std::mem::take(&mut p.written);
        p.record.extend(written);
        Ok(())
    }

    pub(crate) fn close_partial(&mut self, content: ContentId) {
        if let Some(p) = self.swarm.partials.get_mut(&content) {
            p.open = false;
            p.written.clear();
        }
    }

    /// Whether `path` (relative to the root) is taken by anything.
    fn taken(&self, path: &Path, root_name: Option<&str>) -> bool {
        self.outbox.keys().any(|k| k.starts_with(path))
            || self.swarm.dirs.iter().any(|d| d.starts_with(path))
            || root_name.is_some_and(|n| self.files.contains_key(n))
    }

    pub(crate) fn commit_download(&mut self, content: ContentId) -> io::Result<String> {
        let p = self.open(content)?;
        let prefix = p.dir.as_deref().map(PathBuf::from).unwrap_or_default();
        let in_root = p.dir.is_none();
        let name = p.manifest.name().to_owned();
        let mut placed = None;
        for k in 0..10_000 {
            let candidate = numbered(&name, k);
            let path = prefix.join(&candidate);
            if !self.taken(&path, in_root.then_some(candidate.as_str())) {
                placed = Some((candidate, path));
                break;
            }
        }
        let (candidate, top) =
            placed.ok_or_else(|| io::Error::new(io::ErrorKind::AlreadyExists, "no free name"))?;
        let p = self.swarm.partials.remove(&content).expect("opened above");
        let mut files = Vec::with_capacity(p.data.len());
        for (f, mut data) in p.manifest.files().iter().zip(p.data) {
            data.resize(f.size as usize, 0);
            let key = match below_top(&f.path) {
                Some(rel) => top.join(rel),
                None => top.clone(),
            };
            let version = self.next_version();
            self.outbox.insert(
                key.clone(),
                MemFile {
                    data: Bytes::from(data),
                    version,
                },
            );
            files.push((key, version));
        }
        if p.manifest.is_dir() {
            self.swarm.dirs.insert(top.clone());
        }
        self.swarm.committed.insert(top.clone());
        if let Ok(m) = renamed(&p.manifest, &candidate) {
            let versions = m
                .files()
                .iter()
                .zip(&files)
                .map(|(f, (_, v))| (f.path.clone(), *v))
                .collect();
            self.swarm
                .cache
                .insert(top.clone(), (m.chunk_size(), versions, m));
        }
        self.swarm.shares.insert(
            content,
            MemShare {
                manifest: p.manifest,
                files,
            },
        );
        Ok(top.display().to_string())
    }
}
