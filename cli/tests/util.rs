//! Runs `p2p-node` processes with `--json` and reads their events.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `type` of the marker event for a stdout line that is not JSON.
const NOT_JSON: &str = "__not_json";

pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    pub port: u16,
    pub id: String,
    pub downloads: PathBuf,
}

impl Proc {
    /// Starts a node on a free loopback port, optionally bootstrapped.
    pub fn start(name: &str, dir: &Path, bootstrap: Option<u16>, extra: &[&str]) -> Proc {
        Proc::start_with(name, dir, bootstrap, extra, true)
    }

    /// Like [`Proc::start`]; with `piped_stdin` false, stdin is closed
    /// (`< /dev/null`), as when run from a script or a service manager.
    pub fn start_with(
        name: &str,
        dir: &Path,
        bootstrap: Option<u16>,
        extra: &[&str],
        piped_stdin: bool,
    ) -> Proc {
        Proc::start_env(name, dir, bootstrap, extra, piped_stdin, &[])
    }

    /// Like [`Proc::start_with`], with these environment variables set.
    pub fn start_env(
        name: &str,
        dir: &Path,
        bootstrap: Option<u16>,
        extra: &[&str],
        piped_stdin: bool,
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start_wrapped(&[], name, dir, bootstrap, extra, piped_stdin, env)
    }

    /// Like [`Proc::start_env`], run through `wrap` (a command and its
    /// arguments that execs the rest, such as `nsenter -t PID -n`).
    pub fn start_wrapped(
        wrap: &[&str],
        name: &str,
        dir: &Path,
        bootstrap: Option<u16>,
        extra: &[&str],
        piped_stdin: bool,
        env: &[(&str, &str)],
    ) -> Proc {
        let downloads = dir.join(name);
        let bin = env!("CARGO_BIN_EXE_p2p-node");
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args([
            "--json",
            "--bind",
            "127.0.0.1",
            "--name",
            name,
            "--downloads",
        ])
        .arg(&downloads)
        .args(extra)
        .envs(env.iter().copied())
        .arg("0");
        if let Some(b) = bootstrap {
            cmd.arg(format!("127.0.0.1:{b}"));
        }
        let mut child = cmd
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("p2p-node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A panic here would end this thread only, and the test
                // would report a timeout: the line goes to `wait` instead.
                let v = serde_json::from_str::<Value>(&line).unwrap_or_else(
                    |e| serde_json::json!({"type": NOT_JSON, "line": line, "error": e.to_string()}),
                );
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut p = Proc {
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
            port: 0,
            id: String::new(),
            downloads,
        };
        let listening = p.wait(10, |e| e["type"] == "listening");
        let addr = listening["addr"].as_str().expect("addr").to_owned();
        p.port = addr
            .rsplit(':')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("port");
        p.id = listening["id"].as_str().expect("id").to_owned();
        p
    }

    /// Types a line on the node's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Waits for the first event (seen before or new) matching `f`.
    pub fn wait(&mut self, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    assert_ne!(v["type"], NOT_JSON, "the node printed a non-JSON line: {v}");
                    self.seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("timed out after {secs} s; events so far: {:#?}", self.seen)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the node's output ended (did it exit? {:?}) while waiting; events so far: {:#?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Reads whatever events arrived, for up to `ms`.
    pub fn drain(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while let Ok(v) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            assert_ne!(v["type"], NOT_JSON, "the node printed a non-JSON line: {v}");
            self.seen.push(v);
        }
    }

    pub fn count(&self, f: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().filter(|v| f(v)).count()
    }

    /// Peers currently connected, from connect/disconnect events.
    pub fn peer_count(&self) -> i64 {
        self.seen
            .iter()
            .rev()
            .find(|e| e["type"] == "peer_connected" || e["type"] == "peer_disconnected")
            .and_then(|e| e["peers"].as_i64())
            .unwrap_or(0)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().expect("exits")
    }

    /// Sends signal `sig` ("INT", "TERM", ...) to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// The exit status if the process exits within `ms`, else `None`.
    pub fn exit_within(&mut self, ms: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until an incoming file has `at_least` bytes received (by the
    /// node's progress events), and not yet been received whole.
    pub fn wait_progress(&mut self, secs: u64, at_least: u64) -> Value {
        let e = self.wait(secs, |e| {
            e["type"] == "file_progress" && e["received"].as_u64().unwrap_or(0) >= at_least
        });
        let size = e["size"].as_u64().expect("size");
        assert!(
            e["received"].as_u64().unwrap() < size,
            "the transfer ended before it could be interrupted: {e}"
        );
        assert_eq!(self.count(|e| e["type"] == "file_received"), 0);
        e
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// alice, bob and carol, bootstrapped to alice, once each has two peers.
pub fn three_in_a_mesh(dir: &Path) -> [Proc; 3] {
    let a = Proc::start("alice", dir, None, &[]);
    let b = Proc::start("bob", dir, Some(a.port), &[]);
    let c = Proc::start("carol", dir, Some(a.port), &[]);
    let mut all = [a, b, c];
    for p in all.iter_mut() {
        p.wait(15, |e| e["type"] == "peer_connected" && e["peers"] == 2);
    }
    all
}

/// alice and bob connected, and a file of `mib` MiB being sent from alice
/// once bob has received its first part.
pub fn mid_transfer(dir: &Path, mib: usize, seed: u64) -> (Proc, Proc) {
    let a = Proc::start("alice", dir, None, &[]);
    let mut b = Proc::start("bob", dir, Some(a.port), &[]);
    b.wait(15, |e| e["type"] == "peer_connected");
    let path = dir.join("big.bin");
    random_file(&path, mib << 20, seed);
    let mut a = a;
    a.send(&format!("/send {}", path.display()));
    b.wait(60, |e| e["type"] == "file_progress");
    (a, b)
}

/// Part files (`.<name>.<id>.part`) directly in `dir`, with their sizes.
pub fn part_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let len = e.metadata().ok()?.len();
                    (name.starts_with('.') && name.ends_with(".part")).then_some((name, len))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Files in a directory tree, relative names.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(
                    files_under(&p)
                        .into_iter()
                        .map(|f| format!("{}/{f}", e.file_name().to_string_lossy())),
                );
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).expect("file exists");
    std::io::copy(&mut f, &mut h).expect("readable");
    hex::encode(h.finalize())
}

/// Writes `len` pseudo-random bytes.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 32) as u8;
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).expect("write");
        left -= n;
    }
}
