//! Runs the core's storage operations: inline for storage that never
//! blocks (memory, so the simulator stays on one thread), and on a worker
//! thread of the driver's own for the disk, so that an fsync or a slow read
//! never delays the driver task (pings, handshakes, every other peer).
//! Completions come back as core inputs, in the order of the operations.

use std::collections::BTreeSet;
use std::path::Path;

use p2p_core::{Input, StorageOp, TransferId};
use tokio::sync::mpsc;

use crate::storage::Storage;

/// The operations of one storage, with the transfers whose storage failed
/// (their remaining operations are skipped: the core aborts them).
pub(crate) struct Executor<S> {
    storage: S,
    failed: BTreeSet<TransferId>,
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
            other => {
                tracing::warn!("storage operation not supported: {other:?}");
                None
            }
        }
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
        StorageOp::Write { data, .. } => data.len(),
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
        };
        if !storage.blocking() {
            return (Disk::Inline(inline), done_rx);
        }
        let mut exec = Executor {
            storage,
            failed: BTreeSet::new(),
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
