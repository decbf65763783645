//! One connection's socket tasks: a reader that hands received bytes to the
//! driver (awaiting when the driver is busy, so TCP pushes back instead of
//! frames being dropped), and a writer draining a send queue whose size the
//! driver watches.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use p2p_core::{CloseReason, ConnId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::AbortHandle;

/// What socket tasks tell the driver.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    Received(ConnId, Bytes),
    /// The reader ended: the connection is over.
    Closed(ConnId, CloseReason),
    /// The writer failed. The reader goes on: what the peer sent before it
    /// went (a goodbye, the rest of a file) is still delivered.
    WriteFailed(ConnId, CloseReason),
}

/// The driver's side of one live connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    /// `None` once a close was requested: the writer flushes and shuts down.
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    queued: Arc<AtomicUsize>,
    /// Bytes the writer has written in all; the driver reports the growth
    /// to the core.
    flushed: Arc<AtomicU64>,
    /// Listed in [`Drained`] since the driver last took its flushed count.
    listed: Arc<AtomicBool>,
    reported: u64,
    /// The reader waits while this is set (backpressure towards the peer).
    paused: Arc<AtomicBool>,
    resume: Arc<Notify>,
    /// Reads the reader may hand over before the driver consumed them.
    credits: Arc<Semaphore>,
    reader: AbortHandle,
    writer: AbortHandle,
    /// When the queue first went over the limit, if it still is.
    pub(crate) over_since: Option<tokio::time::Instant>,
    /// When a close was requested (or the writer failed).
    pub(crate) closing_since: Option<tokio::time::Instant>,
    /// The writer's error, not yet told to the core: told when the reader
    /// ends, or when the linger runs out.
    pub(crate) write_failed: Option<CloseReason>,
}

/// Largest read; reads start at `MIN_READ` and double while they fill the
/// buffer, so an idle connection holds a few KiB, a busy one 64 KiB reads.
const READ_SIZE: usize = 64 * 1024;
const MIN_READ: usize = 1024;

/// Reads of one connection waiting for the driver at most: a busy peer
/// cannot queue many reads ahead of a quiet peer's `PING` in the driver's
/// channel, and what it has in flight stays at a few read buffers.
const READS_IN_FLIGHT: usize = 2;

/// Size of the buffer that batches small frames into one write.
const WRITE_BATCH: usize = 16 * 1024;

/// What the writers tell the driver: which connections wrote since it last
/// looked, so that it visits those instead of every connection (a 200-peer
/// mesh has 199 per node, and each write woke a scan of all of them).
#[derive(Debug, Default)]
pub(crate) struct Drained {
    notify: Notify,
    dirty: std::sync::Mutex<Vec<ConnId>>,
}

impl Drained {
    /// Waits until some writer reported.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await
    }

    /// The connections that wrote since the last call, in id order.
    pub(crate) fn take(&self) -> Vec<ConnId> {
        // A poisoned lock only means a writer panicked while pushing; the
        // list is still a valid list.
        let mut v = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_unstable();
        v
    }

    fn mark(&self, conn: ConnId, listed: &AtomicBool) {
        if !listed.swap(true, Ordering::AcqRel) {
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        self.notify.notify_one();
    }
}

impl ConnHandle {
    /// Starts the reader and writer tasks of a connected stream.
    pub(crate) fn spawn<S, E>(
        conn: ConnId,
        stream: S,
        events: mpsc::Sender<E>,
        drained: Arc<Drained>,
    ) -> ConnHandle
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: From<SocketEvent> + Send + 'static,
    {
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let queued = Arc::new(AtomicUsize::new(0));
        let flushed = Arc::new(AtomicU64::new(0));
        let listed = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let resume = Arc::new(Notify::new());

        let credits = Arc::new(Semaphore::new(READS_IN_FLIGHT));
        let ev = events.clone();
        let (p, r, cr) = (paused.clone(), resume.clone(), credits.clone());
        let reader = tokio::spawn(async move {
            let mut want = MIN_READ;
            let mut buf = BytesMut::new();
            let reason = loop {
                while p.load(Ordering::Acquire) {
                    r.notified().await;
                }
                if buf.capacity() < want / 4 {
                    buf.reserve(want);
                }
                let room = buf.capacity();
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break CloseReason::Eof,
                    Ok(n) => {
                        if n == room {
                            want = (want * 2).min(READ_SIZE);
                        }
                        let data = buf.split().freeze();
                        match cr.acquire().await {
                            Ok(permit) => permit.forget(),
                            Err(_) => return,
                        }
                        if ev
                            .send(SocketEvent::Received(conn, data).into())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => break CloseReason::Io { error: e.into() },
                }
            };
            let _ = ev.send(SocketEvent::Closed(conn, reason).into()).await;
        })
        .abort_handle();

        let q = queued.clone();
        let f = flushed.clone();
        let l = listed.clone();
        let writer = tokio::spawn(async move {
            let mut wr = wr;
            let result: std::io::Result<()> = async {
                while let Some(data) = rx.recv().await {
                    // Batches small frames; file chunks are larger and
                    // bypass it. The buffer lives for one batch only: an
                    // idle connection holds none (a 200-peer mesh has
                    // 40,000 connection ends).
                    let mut w = BufWriter::with_capacity(WRITE_BATCH, &mut wr);
                    let mut n = data.len();
                    w.write_all(&data).await?;
                    // Batch whatever else is queued before one flush.
                    while let Ok(more) = rx.try_recv() {
                        n += more.len();
                        w.write_all(&more).await?;
                    }
                    w.flush().await?;
                    q.fetch_sub(n, Ordering::AcqRel);
                    f.fetch_add(n as u64, Ordering::AcqRel);
                    drained.mark(conn, &l);
                }
                wr.shutdown().await
            }
            .await;
            if let Err(e) = result {
                let _ = events
                    .send(
                        SocketEvent::WriteFailed(conn, CloseReason::Io { error: e.into() }).into(),
                    )
                    .await;
            }
        })
        .abort_handle();

        ConnHandle {
            tx: Some(tx),
            queued,
            flushed,
            listed,
            reported: 0,
            paused,
            resume,
            credits,
            reader,
            writer,
            over_since: None,
            closing_since: None,
            write_failed: None,
        }
    }

    /// Queues bytes; never drops them while the connection lives.
    pub(crate) fn send(&self, data: Bytes) {
        if let Some(tx) = &self.tx {
            self.queued.fetch_add(data.len(), Ordering::AcqRel);
            if tx.send(data).is_err() {
                // The writer is gone (the socket broke); the reader reports it.
            }
        }
    }

    /// Bytes queued and not yet written to the socket.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Bytes written since the last call, if any.
    pub(crate) fn take_flushed(&mut self) -> Option<u64> {
        // Cleared before the read: a write after it lists the connection
        // again, so none is missed.
        self.listed.store(false, Ordering::Release);
        let total = self.flushed.load(Ordering::Acquire);
        let delta = total - self.reported;
        self.reported = total;
        (delta > 0).then_some(delta)
    }

    /// The driver handled one read of this connection.
    pub(crate) fn consumed(&self) {
        self.credits.add_permits(1);
    }

    /// Stops reading from the socket after the read in progress.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Reads again.
    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.resume.notify_one();
    }

    /// Flush what is queued, then shut the write side; reading goes on.
    pub(crate) fn close(&mut self, now: tokio::time::Instant) {
        self.tx = None;
        // The core closed it: it no longer waits to hear of the failure.
        self.write_failed = None;
        self.closing_since.get_or_insert(now);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.tx.is_none()
    }

    /// Drops the socket at once (slow reader, shutdown deadline).
    pub(crate) fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}
