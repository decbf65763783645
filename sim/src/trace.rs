//! The trace hash: SHA-256 over a canonical rendering of every tap event
//! (each tagged with host, life and simulated time) and every fault the
//! scenario injects, in the order they happen. Two runs with the same seed
//! must give the same hash; `--check-determinism` compares them.

use std::fmt::{self, Write as _};
use std::time::Duration;

use p2p_core::{Input, Output, StorageOp};
use p2p_net::TapEvent;
use sha2::{Digest, Sha256};

/// Feeds a canonical rendering of the run into SHA-256.
pub(crate) struct Trace {
    hasher: Sha256,
    events: u64,
    log: bool,
}

/// `fmt::Write` straight into the hasher: no intermediate strings.
struct HashWriter<'a>(&'a mut Sha256);

impl fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

impl Trace {
    /// A fresh trace; `log` also prints the simulator's notes to stderr.
    pub(crate) fn new(log: bool) -> Self {
        Trace {
            hasher: Sha256::new(),
            events: 0,
            log,
        }
    }

    /// Events hashed so far.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// One tap event of host `host` in life `boot` at simulated time `at`.
    pub(crate) fn tap(&mut self, host: usize, boot: u32, at: Duration, ev: &TapEvent<'_>) {
        self.events += 1;
        let h = &mut self.hasher;
        // Writing into a hasher cannot fail.
        let _ = write!(HashWriter(h), "\n{host}.{boot}@{}:", at.as_micros());
        match ev {
            TapEvent::Accepted { conn, remote } => {
                let _ = write!(HashWriter(h), "accept {conn} {remote}");
            }
            TapEvent::Input(input) => match input {
                Input::Received { conn, data } => {
                    let _ = write!(HashWriter(h), "recv {conn} {} ", data.len());
                    h.update(data);
                }
                Input::ChunkRead { read, data } => {
                    // Raw, not as Debug: a chunk is hundreds of KiB.
                    let _ = write!(HashWriter(h), "chunk-read {read} {} ", data.len());
                    h.update(data);
                }
                other => {
                    let _ = write!(HashWriter(h), "in {other:?}");
                }
            },
            TapEvent::Output(output) => match output {
                Output::Transmit { conn, data } => {
                    let _ = write!(HashWriter(h), "tx {conn} {} ", data.len());
                    h.update(data);
                }
                Output::Storage(StorageOp::Write { transfer, data }) => {
                    let _ = write!(HashWriter(h), "write {transfer} {} ", data.len());
                    h.update(data);
                }
                Output::Storage(StorageOp::WriteChunk {
                    content,
                    chunk,
                    data,
                }) => {
                    let _ = write!(
                        HashWriter(h),
                        "write-chunk {content} {chunk} {} ",
                        data.len()
                    );
                    h.update(data);
                }
                other => {
                    let _ = write!(HashWriter(h), "out {other:?}");
                }
            },
        }
    }

    /// Something the simulator itself did (a fault, a command).
    pub(crate) fn note(&mut self, at: Duration, what: fmt::Arguments<'_>) {
        if self.log {
            eprintln!("{:>9.3} s  sim   {what}", at.as_secs_f64());
        }
        self.events += 1;
        let _ = write!(HashWriter(&mut self.hasher), "\nsim@{}:", at.as_micros());
        let _ = HashWriter(&mut self.hasher).write_fmt(what);
    }

    /// The hash so far, as lowercase hex.
    pub(crate) fn hex(&self) -> String {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        p2p_core::file::to_hex(&digest)
    }
}
