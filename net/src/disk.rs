//! Runs the core's storage operations: inline for storage that never
//! blocks (memory, so the simulator stays on one thread), and on a worker
//! thread of the driver's own for the disk, so that an fsync or a slow read
//! never delays the driver task (pings, handshakes, every other peer).
//! Completions come back as core inputs, in the order of the operations.

use std::collections::BTreeSet;
use std::path::Path;

use p2p_core::{ContentId, Input, StorageOp, TransferId};
use tokio::sync::mpsc;

use crate::storage::Storage;

/// The operations of one storage, with the transfers and the downloads
/// whose storage failed (their remaining operations are skipped: the core
/// aborts them; a download's are run again once it is reopened).
pub(crate) struct Executor<S> {
    storage: S,
    failed: BTreeSet<TransferId>,
    failed_contents: BTreeSet<ContentId>,
}

impl<S: Storage> Executor<S> {
    fn execute(&mut self, op: StorageOp) -> Option<Input> {
        let failed = |transfer, e: std::io::Error| Input::StorageFailed {
            transfer,
            error: e.into(),
        };
        match op {
            StorageOp::Create { transfer, part } => {
                self.failed.remove(&transfer);
                self.storage.create(transfer, &part).err().map(|e| {
                    self.failed.insert(transfer);
                    failed(transfer, e)
                })
            }
            StorageOp::Write { transfer, data } => {
                if self.failed.contains(&transfer) {
                    return None;
                }
                self.storage.write(transfer, &data).err().map(|e| {
                    self.failed.insert(transfer);
                    failed(transfer, e)
                })
            }
            StorageOp::Commit { transfer, name } => {
                if self.failed.contains(&transfer) {
                    return None;
                }
                Some(match self.storage.commit(transfer, &name) {
                    Ok(saved_as) => Input::Committed { transfer, saved_as },
                    Err(e) => {
                        self.failed.insert(transfer);
                        failed(transfer, e)
                    }
                })
            }
            StorageOp::Discard { transfer } => {
                self.failed.remove(&transfer);
                if let Err(e) = self.storage.discard(transfer) {
                    tracing::warn!("could not delete the part file of {transfer}: {e}");
                }
                None
            }
            StorageOp::Open { transfer, path } => {
                Some(match self.storage.open_source(transfer, Path::new(&path)) {
                    Ok(size) => Input::Opened { transfer, size },
                    Err(e) => failed(transfer, e),
                })
            }
            StorageOp::Read {
                transfer,
                offset,
                len,
            } => Some(match self.storage.read(transfer, offset, len) {
                Ok(data) => Input::Read {
                    transfer,
                    offset,
                    data,
                },
                Err(e) => failed(transfer, e),
            }),
            StorageOp::Close { transfer } => {
                self.storage.close_source(transfer);
                None
            }
            StorageOp::Share { path, chunk_size } => {
                Some(match self.storage.share(Path::new(&path), chunk_size) {
                    Ok(manifest) => Input::Shared { path, manifest },
                    Err(e) => Input::ShareFailed {
                        path,
                        error: e.into(),
                    },
                })
            }
            StorageOp::Unshare { content } => {
                self.storage.unshare(content);
                None
            }
            StorageOp::OpenPartial {
                content,
                manifest,
                dir,
            } => {
                self.failed_contents.remove(&content);
                Some(match self.storage.open_partial(content, manifest, dir) {
                    Ok(claimed) => Input::PartialOpened { content, claimed },
                    Err(e) => {
                        self.failed_contents.insert(content);
                        swarm_failed(content, e)
                    }
                })
            }
            StorageOp::ReadChunk {
                read,
                content,
                chunk,
            } => Some(match self.storage.read_chunk(content, chunk) {
                Ok(data) => Input::ChunkRead { read, data },
                Err(e) => Input::ChunkReadFailed {
                    read,
                    error: e.error.into(),
                    changed: e.changed,
                },
            }),
            StorageOp::WriteChunk {
                content,
                chunk,
                data,
            } => {
                if self.failed_contents.contains(&content) {
                    return None;
                }
                self.storage
                    .write_chunk(content, chunk, &data)
                    .err()
                    .map(|e| {
                        self.failed_contents.insert(content);
                        swarm_failed(content, e)
                    })
            }
            StorageOp::Checkpoint { content } => {
                if self.failed_contents.contains(&content) {
                    return None;
                }
                self.storage.checkpoint(content).err().map(|e| {
                    self.failed_contents.insert(content);
                    swarm_failed(content, e)
                })
            }
            StorageOp::CommitDownload { content } => {
                if self.failed_contents.contains(&content) {
                    return None;
                }
                Some(match self.storage.commit_download(content) {
                    Ok(path) => Input::DownloadCommitted { content, path },
                    Err(e) => {
                        self.failed_contents.insert(content);
                        swarm_failed(content, e)
                    }
                })
            }
            StorageOp::ClosePartial { content } => {
                self.failed_contents.remove(&content);
                self.storage.close_partial(content);
                None
            }
            StorageOp::DiscardPartial { content } => {
                self.failed_contents.remove(&content);
                if let Err(e) = self.storage.discard_partial(content) {
                    tracing::warn!("could not delete the partial download of {content}: {e}");
                }
                None
            }
            StorageOp::ScanPartials => Some(Input::PartialsFound {
                partials: self.storage.scan_partials(),
                shares: self.storage.scan_shares(),
            }),
            other => {
                // `StorageOp` is non-exhaustive: an op added to the core
                // later than this driver.
                tracing::warn!("storage operation not supported: {other:?}");
                None
            }
        }
    }
}

/// A download's storage failed.
fn swarm_failed(content: ContentId, e: std::io::Error) -> Input {
    Input::SwarmStorageFailed {
        content,
        error: e.into(),
    }
}

/// What the worker thread is sent.
pub(crate) enum Job {
    Op(StorageOp, usize),
    /// Delete every part file, then report.
    DiscardAll,
}

/// A storage completion, or the end of a `discard_all`.
pub(crate) enum Done {
    Input(Input, usize),
    /// An operation without completion finished (its bytes left the queue).
    Quiet(usize),
    DiscardedAll,
}

/// The driver's side of its storage.
pub(crate) enum Disk<S> {
    /// Operations run on the caller's task.
    Inline(Executor<S>),
    /// Operations run on a worker thread.
    Worker {
        jobs: std::sync::mpsc::Sender<Job>,
        /// Bytes of writes sent to the worker and not done yet.
        pending: usize,
    },
}

/// Bytes an operation holds while queued.
fn weight(op: &StorageOp) -> usize {
    match op {
        StorageOp::Write { data, .. } | StorageOp::WriteChunk { data, .. } => data.len(),
        _ => 0,
    }
}

impl<S: Storage> Disk<S> {
    /// Starts the storage; completions of a worker arrive on the returned
    /// receiver.
    pub(crate) fn start(storage: S) -> (Disk<S>, mpsc::UnboundedReceiver<Done>) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let inline = Executor {
            storage: storage.clone(),
            failed: BTreeSet::new(),
            failed_contents: BTreeSet::new(),
        };
        if !storage.blocking() {
            return (Disk::Inline(inline), done_rx);
        }
        let mut exec = Executor {
            storage,
            failed: BTreeSet::new(),
            failed_contents: BTreeSet::new(),
        };
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("p2p-storage".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let done = match job {
                        Job::Op(op, w) => match exec.execute(op) {
                            Some(input) => Done::Input(input, w),
                            None => Done::Quiet(w),
                        },
                        Job::DiscardAll => {
                            exec.storage.discard_all();
                            Done::DiscardedAll
                        }
                    };
                    if done_tx.send(done).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            // No thread to be had: fall back to running inline, which is
            // correct but lets a slow disk delay the driver.
            tracing::warn!("no storage worker thread ({e}); running storage inline");
            return (Disk::Inline(inline), done_rx);
        }
        (Disk::Worker { jobs, pending: 0 }, done_rx)
    }

    /// Runs `op`: inline, returning its completion, or on the worker.
    pub(crate) fn submit(&mut self, op: StorageOp) -> Option<Input> {
        match self {
            Disk::Inline(exec) => exec.execute(op),
            Disk::Worker { jobs, pending } => {
                let w = weight(&op);
                if jobs.send(Job::Op(op, w)).is_ok() {
                    *pending += w;
                }
                None
            }
        }
    }

    /// A worker completion arrived: account for it.
    pub(crate) fn done(&mut self, bytes: usize) {
        if let Disk::Worker { pending, .. } = self {
            *pending = pending.saturating_sub(bytes);
        }
    }

    /// Bytes of writes waiting for the disk.
    pub(crate) fn pending(&self) -> usize {
        match self {
            Disk::Inline(_) => 0,
            Disk::Worker { pending, .. } => *pending,
        }
    }

    /// Deletes every part file; with a worker, after everything queued
    /// before (the caller waits for [`Done::DiscardedAll`]). Returns
    /// whether it is done already.
    pub(crate) fn discard_all(&mut self) -> bool {
        match self {
            Disk::Inline(exec) => {
                exec.storage.discard_all();
                true
            }
            Disk::Worker { jobs, .. } => jobs.send(Job::DiscardAll).is_err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use bytes::Bytes;
    use p2p_core::Manifest;

    fn exec(storage: MemStorage) -> Executor<MemStorage> {
        Executor {
            storage,
            failed: BTreeSet::new(),
            failed_contents: BTreeSet::new(),
        }
    }

    #[test]
    fn swarm_ops_complete_with_their_inputs() {
        let mem = MemStorage::default();
        mem.add_source("/s/f", vec![7; 10_000]);
        let mut x = exec(mem.clone());
        let share = |path: &str| StorageOp::Share {
            path: path.into(),
            chunk_size: 4096,
        };
        let Some(Input::Shared { path, manifest }) = x.execute(share("/s/f")) else {
            panic!("shared");
        };
        assert_eq!(path, "/s/f");
        let m = Manifest::parse(&manifest).unwrap();
        let content = m.id();
        match x.execute(share("/s/missing")) {
            Some(Input::ShareFailed { path, error }) => {
                assert_eq!(
                    (path.as_str(), error.kind),
                    ("/s/missing", std::io::ErrorKind::NotFound)
                )
            }
            other => panic!("{other:?}"),
        }
        let read = |read, chunk| StorageOp::ReadChunk {
            read,
            content,
            chunk,
        };
        match x.execute(read(5, 2)) {
            Some(Input::ChunkRead { read: 5, data }) => assert!(m.verify(2, &data)),
            other => panic!("{other:?}"),
        }
        mem.add_source("/s/f", vec![8; 10_000]);
        match x.execute(read(6, 0)) {
            Some(Input::ChunkReadFailed {
                read: 6,
                changed: true,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(x.execute(StorageOp::Unshare { content }).is_none());
        match x.execute(read(7, 0)) {
            Some(Input::ChunkReadFailed {
                read: 7,
                changed: false,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }

        // A download: opened, a failed write fails it once and skips the
        // rest until it is reopened.
        let open = StorageOp::OpenPartial {
            content,
            manifest: manifest.clone(),
            dir: None,
        };
        match x.execute(open.clone()) {
            Some(Input::PartialOpened {
                content: c,
                claimed,
            }) => {
                assert_eq!((c, claimed), (content, vec![]))
            }
            other => panic!("{other:?}"),
        }
        let write = |chunk, data: Bytes| StorageOp::WriteChunk {
            content,
            chunk,
            data,
        };
        assert_eq!(weight(&write(0, Bytes::from(vec![7; 4096]))), 4096);
        assert!(x.execute(write(0, Bytes::from(vec![7; 4096]))).is_none());
        match x.execute(write(1, Bytes::from_static(b"short"))) {
            Some(Input::SwarmStorageFailed { content: c, .. }) => assert_eq!(c, content),
            other => panic!("{other:?}"),
        }
        assert!(x.execute(write(1, Bytes::from(vec![7; 4096]))).is_none());
        assert!(x.execute(StorageOp::Checkpoint { content }).is_none());
        assert!(x.execute(StorageOp::CommitDownload { content }).is_none());
        // Skipped: nothing was checkpointed.
        match x.execute(open.clone()) {
            Some(Input::PartialOpened { claimed, .. }) => assert!(claimed.is_empty()),
            other => panic!("{other:?}"),
        }
        for k in 0..m.chunks() {
            let data = Bytes::from(vec![7; m.chunk_len(k)]);
            assert!(x.execute(write(k, data)).is_none());
        }
        assert!(x.execute(StorageOp::Checkpoint { content }).is_none());
        match x.execute(StorageOp::ScanPartials) {
            Some(Input::PartialsFound { partials, shares }) => {
                assert_eq!(partials, vec![(manifest.clone(), None)]);
                assert!(shares.is_empty(), "memory keeps none: {shares:?}");
            }
            other => panic!("{other:?}"),
        }
        match x.execute(StorageOp::CommitDownload { content }) {
            Some(Input::DownloadCommitted { content: c, path }) => {
                assert_eq!((c, path.as_str()), (content, "f"))
            }
            other => panic!("{other:?}"),
        }
        // Committing what is not open fails.
        match x.execute(StorageOp::CommitDownload { content }) {
            Some(Input::SwarmStorageFailed { error, .. }) => {
                assert_eq!(error.kind, std::io::ErrorKind::NotFound)
            }
            other => panic!("{other:?}"),
        }
        assert!(x.execute(StorageOp::DiscardPartial { content }).is_none());
        assert!(x.execute(StorageOp::ClosePartial { content }).is_none());
        assert_eq!(&mem.swarm_files()["f"][..], &[7; 10_000][..]);
    }
}
