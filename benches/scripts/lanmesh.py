#!/usr/bin/env python3
"""Times three `p2p-node --lan` nodes (no address typed) until each has 2
peers, inside a network namespace made here (unshare -n, loopback only)."""
import json, os, subprocess, sys, tempfile, time, statistics, threading
BIN = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
KEY = sys.argv[3:]  # e.g. --network-key k
def one():
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    ours = os.readlink("/proc/self/ns/net")
    while os.readlink(f"/proc/{holder.pid}/ns/net") == ours:
        time.sleep(0.005)
    ns = ["nsenter", "-t", str(holder.pid), "-n"]
    subprocess.run(ns + ["ip", "link", "set", "lo", "up", "multicast", "on"], check=True)
    subprocess.run(ns + ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"], check=True)
    d = tempfile.mkdtemp()
    t0 = time.monotonic()
    procs, done = [], {}
    def watch(i, p):
        for line in p.stdout:
            e = json.loads(line)
            if e.get("type") == "peer_connected" and e.get("peers") == 2:
                done[i] = time.monotonic() - t0
                return
    for i in range(3):
        if os.environ.get("BOOT"):
            # Baseline: addresses typed (bootstrap to the first), no mDNS.
            where = [str(8001 + i)] + (["127.0.0.1:8001"] if i else [])
        else:
            where = ["--lan", "0"]
        p = subprocess.Popen(ns + [BIN, "--json", "--name", f"n{i}", "--downloads", f"{d}/n{i}",
                                   "--identity", f"{d}/id{i}", *KEY, *where],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(p)
        threading.Thread(target=watch, args=(i, p), daemon=True).start()
    while len(done) < 3 and time.monotonic() - t0 < 20:
        time.sleep(0.005)
    for p in procs:
        p.kill(); p.wait()
    holder.kill(); holder.wait()
    return max(done.values()) if len(done) == 3 else None
ts = [one() for _ in range(RUNS)]
print("runs (s):", " ".join(f"{t:.3f}" if t else "FAIL" for t in ts))
ok = [t for t in ts if t]
print(f"median {statistics.median(ok):.3f} s, min {min(ok):.3f}, max {max(ok):.3f}, {len(ok)}/{RUNS} meshed")
