#!/usr/bin/env python3
"""How soon writes flow again after backpressure ends (a benchmark, not a test).

A total-sequencer cluster with 64 KiB link buffers: node 2 is stopped
(SIGSTOP), 1 KB SETs at node 1 run until node 1 answers TRYAGAIN (node 0's
link to node 2 filled, and node 0 held its acks to node 1). Node 2 is then
continued (SIGCONT), and node 1 is sent SETs back to back until one is OK.
Prints the time from SIGCONT to that OK, per round, and the median. Node 0
sends the acks it held the moment its link to node 2 drains; a build that
left them to its next tick (every 100 ms) took 27-33 ms here.

    python3 bench/backpressure.py [GSMO_BINARY] [ROUNDS]
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

GSMO = sys.argv[1] if len(sys.argv) > 1 else "target/release/gsmo"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
PEER_BASE, CLIENT_BASE = 27100, 26380


def reply(s):
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def set_cmd(value):
    return b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(value), value)


def ok_everywhere():
    for i in range(3):
        with socket.create_connection(("127.0.0.1", CLIENT_BASE + i)) as s:
            s.sendall(set_cmd(b"v"))
            if reply(s) != b"+OK\r\n":
                return False
    return True


def node_pid(cluster, node):
    kids = subprocess.run(["pgrep", "-P", str(cluster.pid)], capture_output=True, text=True)
    for pid in kids.stdout.split():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        if b"--id" in argv and argv[argv.index(b"--id") + 1] == str(node).encode():
            return int(pid)
    raise RuntimeError(f"node {node} not found")


def one_round():
    cluster = subprocess.Popen(
        [GSMO, "cluster", "--nodes", "3", "--mode", "total-sequencer",
         "--link-buffer", "65536", "--peer-base", str(PEER_BASE),
         "--client-base", str(CLIENT_BASE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if ok_everywhere():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up in 30 s")
            time.sleep(0.05)
        n2 = node_pid(cluster, 2)
        os.kill(n2, signal.SIGSTOP)
        with socket.create_connection(("127.0.0.1", CLIENT_BASE + 1)) as s:
            for _ in range(10_000):
                s.sendall(set_cmd(b"x" * 1000))
                if reply(s).startswith(b"-TRYAGAIN"):
                    break
            else:
                raise RuntimeError("node 1 never answered TRYAGAIN")
            os.kill(n2, signal.SIGCONT)
            start = time.perf_counter()
            while True:
                s.sendall(set_cmd(b"v"))
                r = reply(s)
                if r == b"+OK\r\n":
                    return (time.perf_counter() - start) * 1000
                if not r.startswith(b"-TRYAGAIN"):
                    raise RuntimeError(f"unexpected reply {r!r}")
    finally:
        cluster.send_signal(signal.SIGINT)
        cluster.wait(timeout=30)


def main():
    times = []
    for r in range(ROUNDS):
        ms = one_round()
        times.append(ms)
        print(f"round {r + 1}: {ms:.1f} ms from SIGCONT to node 1's first OK", flush=True)
    print(f"median {statistics.median(times):.1f} ms over {ROUNDS} rounds ({GSMO})")


if __name__ == "__main__":
    main()
