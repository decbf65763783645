#!/usr/bin/env python3
"""`/get` of one shared file from HOLDERS `p2p-node` processes on loopback,
timed from the command to `download_complete` (verified, committed), with
the downloader's peak RSS; and, in the same run, one plain SHA-256 pass
over the same file (`sha256sum`), the issue's baseline.

usage: swarmget.py BIN SIZE_MIB HOLDERS RUNS ROOT
       swarmget.py BIN tree:FILES:KIB HOLDERS RUNS ROOT
  ROOT holds the source and every node's downloads directory (a tmpfs such
  as /dev/shm takes the disk out of the measurement; a disk path puts the
  commit's fsync in it). `tree:2000:4` shares a directory of 2000 files of
  4 KiB in 20 subdirectories; its baseline is `cp -r` of the tree plus
  `sha256sum` of every file, run one after the other.
"""
import json, os, shutil, statistics, subprocess, sys, threading, time

BIN, WHAT, HOLDERS, RUNS, ROOT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(ROOT, exist_ok=True)
TREE = WHAT.startswith("tree:")
if TREE:
    _, nfiles, kib = WHAT.split(":")
    nfiles, kib = int(nfiles), int(kib)
    src = os.path.join(ROOT, f"tree-{nfiles}-{kib}")
    TOTAL = nfiles * kib * 1024
    if not os.path.isdir(src):
        for i in range(nfiles):
            d = os.path.join(src, f"d{i % 20}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
                f.write(os.urandom(kib * 1024))
    SIZE_MIB = TOTAL / (1 << 20)
else:
    SIZE_MIB = int(WHAT)
    TOTAL = SIZE_MIB << 20
    src = os.path.join(ROOT, f"src-{SIZE_MIB}.bin")
if not TREE and (not os.path.exists(src) or os.path.getsize(src) != TOTAL):
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(SIZE_MIB):
            f.write(block[i % 251:] + block[: i % 251])


class Node:
    def __init__(self, name, args):
        self.events, self.cv = [], threading.Condition()
        self.p = subprocess.Popen(
            [BIN, "--json", "--name", name, "--bind", "127.0.0.1",
             "--identity", os.path.join(ROOT, f"{name}.id"),
             "--downloads", os.path.join(ROOT, f"dl-{name}"), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.events.append(e)
                self.cv.notify_all()

    def wait(self, pred, timeout=600):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no such event; last: {self.events[-3:]}")
                self.cv.wait(left)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def hwm_kib(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    def stop(self):
        self.p.kill()
        self.p.wait()


def one():
    holders = []
    for h in range(HOLDERS):
        boot = [f"127.0.0.1:{holders[0].port}"] if holders else []
        n = Node(f"h{h}", ["0", *boot, "--share", src])
        n.port = int(n.wait(lambda e: e.get("type") == "listening")["addr"].rsplit(":", 1)[1])
        holders.append(n)
    ids = {h.wait(lambda e: e.get("type") == "shared")["id"] for h in holders}
    assert len(ids) == 1, ids
    cid = ids.pop()
    dl_dir = os.path.join(ROOT, "dl-d")
    shutil.rmtree(dl_dir, ignore_errors=True)
    d = Node("d", ["0", f"127.0.0.1:{holders[0].port}"])
    d.wait(lambda e: e.get("type") == "peer_connected" and e.get("peers") == HOLDERS)
    time.sleep(0.5)  # every holder's index
    t0 = time.monotonic()
    d.send(f"/get {cid}")
    done = d.wait(lambda e: e.get("type") in ("download_complete", "download_failed"))
    took = time.monotonic() - t0
    assert done["type"] == "download_complete", done
    rss = d.hwm_kib()
    got = os.path.join(dl_dir, os.path.basename(src))
    if TREE:
        assert subprocess.run(["diff", "-r", src, got]).returncode == 0, "trees differ"
    else:
        assert os.path.getsize(got) == TOTAL
    for n in holders + [d]:
        n.stop()
    shutil.rmtree(dl_dir, ignore_errors=True)
    return took, rss, done["bytes_from"]


def sha_pass():
    if TREE:
        dst = os.path.join(ROOT, "cp-copy")
        shutil.rmtree(dst, ignore_errors=True)
        t0 = time.monotonic()
        subprocess.run(["cp", "-r", src, dst], check=True)
        subprocess.run(f"find {dst} -type f -print0 | xargs -0 sha256sum", shell=True, check=True,
                       stdout=subprocess.DEVNULL)
        took = time.monotonic() - t0
        shutil.rmtree(dst, ignore_errors=True)
        return took
    t0 = time.monotonic()
    subprocess.run(["sha256sum", src], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def openssl_pass():
    """The same pass with OpenSSL's SHA-256 (SHA-NI where the CPU has it):
    coreutils' sha256sum does not use it and is several times slower."""
    if TREE or shutil.which("openssl") is None:
        return None
    t0 = time.monotonic()
    subprocess.run(["openssl", "dgst", "-sha256", src], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


gets, shas, ossls, rsss = [], [], [], []
for r in range(RUNS):
    took, rss, frm = one()
    s = sha_pass()
    o = openssl_pass()
    gets.append(took); shas.append(s); rsss.append(rss)
    if o is not None:
        ossls.append(o)
    print(f"run {r}: get {took:.3f} s ({TOTAL / 1e9 / took:.2f} GB/s), "
          f"baseline {s:.3f} s, openssl {o if o is None else round(o, 3)} s, "
          f"downloader peak RSS {rss / 1024:.1f} MiB, from {sorted(frm.values())}")
g, s = statistics.median(gets), statistics.median(shas)
gb = TOTAL / 1e9
print(f"median get {g:.3f} s = {gb / g:.2f} GB/s (min {min(gets):.3f}, max {max(gets):.3f}); "
      f"median baseline ({'cp -r + sha256sum' if TREE else 'sha256sum'}) {s:.3f} s = {gb / s:.2f} GB/s; "
      f"baseline time / get time = {s / g:.2f}; "
      f"peak RSS median {statistics.median(rsss) / 1024:.1f} MiB (max {max(rsss) / 1024:.1f})")
if ossls:
    o = statistics.median(ossls)
    print(f"median openssl dgst -sha256 {o:.3f} s = {gb / o:.2f} GB/s; openssl time / get time = {o / g:.2f}")
