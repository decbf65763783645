#!/usr/bin/env python3
"""Times a /send of SIZE_MIB between two release p2p-node processes on
loopback and reports MB/s and both processes' peak RSS (/usr/bin/time -v).

usage: scripts/measure_send.py [SIZE_MIB]   (default 1024; run
`cargo build --release --bin p2p-node` first)
"""
import json, os, re, subprocess, sys, tempfile, threading, time, queue

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "p2p-node")


def start(name, tmp, bootstrap=None):
    args = ["/usr/bin/time", "-v", BIN, "--json", "--bind", "127.0.0.1", "--name", name,
            "--downloads", os.path.join(tmp, name), "0"]
    if bootstrap:
        args.append(f"127.0.0.1:{bootstrap}")
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q = queue.Queue()
    threading.Thread(target=lambda: [q.put(json.loads(l)) for l in p.stdout], daemon=True).start()
    return p, q


def wait(q, pred, timeout=600):
    end = time.time() + timeout
    while True:
        e = q.get(timeout=max(0.1, end - time.time()))
        if pred(e):
            return e


def rss_kib(p):
    # /quit rather than a signal: the signal would reach /usr/bin/time.
    p.stdin.write("/quit\n")
    p.stdin.flush()
    err = p.stderr.read()
    p.wait()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    return int(m.group(1)) if m else -1


def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        path = os.path.join(tmp, "payload.bin")
        with open(path, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        a, aq = start("sender", tmp)
        port = int(wait(aq, lambda e: e["type"] == "listening")["addr"].rsplit(":", 1)[1])
        b, bq = start("receiver", tmp, port)
        wait(bq, lambda e: e["type"] == "peer_connected")
        t0 = time.time()
        a.stdin.write(f"/send {path}\n")
        a.stdin.flush()
        e = wait(bq, lambda e: e["type"] in ("file_received", "file_failed"))
        dt = time.time() - t0
        assert e["type"] == "file_received", e
        size = size_mib << 20
        print(f"sent {size_mib} MiB in {dt:.2f} s = {size / dt / 1e6:.0f} MB/s "
              f"(includes the sender's hashing pass)")
        print(f"peak RSS: sender {rss_kib(a) / 1024:.0f} MiB, receiver {rss_kib(b) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
