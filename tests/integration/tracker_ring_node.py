"""A tiny real node for the tracker's integration tests: passes a token around a TCP ring.

Configured like any node the fuzzer starts: ``HBFUZZ_TRACKER``,
``HBFUZZ_NODE``, ``HBFUZZ_EXECUTION`` (none set: it runs without reporting).
Node ``i`` of ``n`` listens on ``ports[i]`` and connects to ``ports[(i+1) % n]``.
Hop ``h`` (0 <= h < hops) is sent by node ``h % n`` with msg_id ``h`` and the
Lamport stamp piggybacked on the wire as ``"h stamp\\n"``.

Modes: ``ring`` (default); ``hang`` reports ``--events`` LOCAL events then
prints "hung" and sleeps (the test SIGKILLs it); ``solo`` sends a few
messages to itself over a loopback socket and prints the stamps.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import instrumentation as hb


def connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def ring(index: int, ports: list[int], hops: int) -> None:
    n = len(ports)
    me, nxt = f"n{index + 1}", f"n{(index + 1) % n + 1}"
    prev = f"n{(index - 1) % n + 1}"
    hb.state("role", "leader" if index == 0 else "follower")
    srv = socket.create_server(("127.0.0.1", ports[index]))
    out = connect(ports[(index + 1) % n], time.monotonic() + 20)
    conn, _ = srv.accept()
    inbox = conn.makefile("r")
    expected = [h for h in range(hops) if (h + 1) % n == index]
    if index == 0:
        stamp = hb.send(nxt, "token", 0)
        out.sendall(f"0 {stamp}\n".encode())
    for _ in expected:
        line = inbox.readline()
        if not line:
            raise SystemExit(f"{me}: ring broke")
        h, stamp = (int(x) for x in line.split())
        hb.recv(prev, "token", h, stamp)
        if h + 1 < hops:
            stamp = hb.send(nxt, "token", h + 1)
            out.sendall(f"{h + 1} {stamp}\n".encode())
    hb.state("done", True)
    out.close()
    conn.close()
    srv.close()


def hang(events: int) -> None:
    for i in range(events):
        hb.event("work", i=i)
    print("hung", flush=True)
    time.sleep(600)


def solo() -> None:
    a, b = socket.socketpair()
    stamps = []
    for i in range(3):
        s = hb.send("self", "echo", i)
        a.sendall(f"{i} {s}\n".encode())
        h, stamp = (int(x) for x in b.recv(64).split())
        hb.recv("self", "echo", h, stamp)
        stamps.append(stamp)
    print("stamps", *stamps, "grpc" in sys.modules, hb.enabled(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("ring", "hang", "solo"), default="ring")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--ports", default="")
    ap.add_argument("--hops", type=int, default=9)
    ap.add_argument("--events", type=int, default=100)
    args = ap.parse_args()
    if args.mode == "ring":
        ring(args.index, [int(p) for p in args.ports.split(",")], args.hops)
    elif args.mode == "hang":
        hang(args.events)
    else:
        solo()


if __name__ == "__main__":
    main()
