#!/usr/bin/env python3
"""Starts N release p2p-node processes bootstrapped to the first and times
how long until every one of them has N-1 peers.

usage: scripts/measure_mesh.py [N]   (default 10)
"""
import json, os, subprocess, sys, tempfile, threading, time

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "p2p-node")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    peers = [0] * n
    full_at = [None] * n
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        first_port = None
        t0 = time.time()
        for i in range(n):
            args = [BIN, "--json", "--bind", "127.0.0.1", "--name", f"n{i}", "--downloads",
                    os.path.join(tmp, f"n{i}"), "0"]
            if first_port:
                args.append(f"127.0.0.1:{first_port}")
            p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            line = json.loads(p.stdout.readline())
            if i == 0:
                first_port = int(line["addr"].rsplit(":", 1)[1])
                t0 = time.time()

            def read(i=i, p=p):
                for l in p.stdout:
                    e = json.loads(l)
                    if e["type"] in ("peer_connected", "peer_disconnected"):
                        peers[i] = e["peers"]
                        if peers[i] == n - 1 and full_at[i] is None:
                            full_at[i] = time.time() - t0
            threading.Thread(target=read, daemon=True).start()
        started = time.time() - t0
        deadline = time.time() + 120
        while time.time() < deadline and not all(c == n - 1 for c in peers):
            time.sleep(0.01)
        print(f"{n} processes started within {started:.3f} s of the first")
        if all(c == n - 1 for c in peers):
            print(f"full mesh ({n - 1} peers each) {max(full_at):.3f} s after the first node started")
        else:
            print(f"no full mesh after 120 s: {peers}")
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
