//! Disk errors abort only the transfer they hit, with a reported error and
//! no partial final file; the connection and later transfers go on.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p2p_core::{Event, FileFailure, Target, TransferId};
use p2p_net::{start, DiskStorage, Events, NetConfig, NetEvent, Storage, TcpTransport};

/// The disk, except that the write number `fail_at` fails as a full disk
/// would, and commits fail while `fail_commit` is set.
#[derive(Clone)]
struct FlakyDisk {
    inner: DiskStorage,
    writes: Arc<AtomicUsize>,
    fail_at: usize,
    fail_commit: Arc<std::sync::atomic::AtomicBool>,
}

impl Storage for FlakyDisk {
    fn create(&self, t: TransferId, part: &str) -> std::io::Result<()> {
        self.inner.create(t, part)
    }
    fn write(&self, t: TransferId, data: &[u8]) -> std::io::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write(t, data)
    }
    fn commit(&self, t: TransferId, name: &str) -> std::io::Result<String> {
        if self.fail_commit.load(Ordering::SeqCst) {
            // The part file stays: removing it is the driver's job (the core
            // answers a failed commit with a Discard), which this tests.
            return Err(std::io::Error::from_raw_os_error(13)); // EACCES
        }
        self.inner.commit(t, name)
    }
    fn discard(&self, t: TransferId) -> std::io::Result<()> {
        self.inner.discard(t)
    }
    fn discard_all(&self) {
        self.inner.discard_all()
    }
    fn blocking(&self) -> bool {
        true
    }
    fn open_source(&self, t: TransferId, path: &Path) -> std::io::Result<u64> {
        self.inner.open_source(t, path)
    }
    fn read(&self, t: TransferId, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        self.inner.read(t, offset, len)
    }
    fn close_source(&self, t: TransferId) {
        self.inner.close_source(t)
    }
}

async fn next_file_outcome(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let NetEvent::Core(e @ (Event::FileReceived { .. } | Event::FileFailed { .. })) =
                events.next().await.expect("running")
            {
                return e;
            }
        }
    })
    .await
    .expect("outcome in time")
}

/// The part file's removal runs on the storage worker, after the event that
/// reports the failure: wait for it, briefly.
async fn assert_empty_soon(dir: &Path) {
    for _ in 0..200 {
        if std::fs::read_dir(dir).unwrap().count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    panic!("part or final file left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_a_failed_rename_aborts_only_that_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let recv_dir = dir.path().join("recv");
    let flaky = FlakyDisk {
        inner: DiskStorage::new(&recv_dir).unwrap(),
        writes: Arc::default(),
        fail_at: 2,
        fail_commit: Arc::default(),
    };
    let fail_commit = flaky.fail_commit.clone();
    let (a, mut ae) = start(NetConfig::new(0), TcpTransport::loopback(), flaky)
        .await
        .unwrap();
    // The sender is connected once joined returns; the receiver once it
    // reports the peer too.
    let (b, _be) = common::joined(a.local_addr(), &dir.path().join("send")).await;
    common::connected(&mut ae).await;

    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![7u8; 1_000_000]).unwrap();
    b.send_file(&path, Target::All).await.unwrap();
    match next_file_outcome(&mut ae).await {
        Event::FileFailed {
            failure: FileFailure::Storage { error },
            ..
        } => {
            assert_eq!(error.kind, std::io::ErrorKind::StorageFull, "{error}");
            assert!(error.detail.contains("No space left"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_empty_soon(&recv_dir).await;

    fail_commit.store(true, Ordering::SeqCst);
    b.send_file(&path, Target::All).await.unwrap();
    assert!(matches!(
        next_file_outcome(&mut ae).await,
        Event::FileFailed {
            failure: FileFailure::Storage { .. },
            ..
        }
    ));
    assert_empty_soon(&recv_dir).await;

    // The connection survived both: the next file lands.
    fail_commit.store(false, Ordering::SeqCst);
    b.send_file(&path, Target::All).await.unwrap();
    assert!(matches!(
        next_file_outcome(&mut ae).await,
        Event::FileReceived { .. }
    ));
    assert_eq!(
        std::fs::read(recv_dir.join("f.bin")).unwrap().len(),
        1_000_000
    );
}
