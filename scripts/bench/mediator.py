#!/usr/bin/env python
"""Benchmark the network mediator: TCP proxy (length-prefixed codec) and stdio routing.

TCP: an echo server process, the mediator in this process (codec
``length-prefixed``, a clean model so every frame is decided "deliver", and
SEND/RECV events going to a bounded in-memory sink), and a client process
that measures, alternating direct and proxied connections in the same run:

- latency: one frame at a time (ping-pong), round-trip time percentiles;
  added latency = proxied minus direct percentile (the round trip crosses
  the proxy twice, so the per-message figure is half of it);
- throughput: frames pipelined with a window of ``--window`` frames; every
  echoed frame is two messages through the mediator (there and back).

stdio: two Maelstrom nodes (this script in ``--role stdio-node``); a client
asks n1 to send ``--count`` pings to n2, n2 answers each with a pong, n1
answers the client when all pongs are in. Messages/s = routed node-to-node
messages / elapsed. Baseline ("direct"): the same two nodes joined by a
byte relay that does not parse (the floor any stdio mediator pays).

Prints one JSON object as the last line (``--json``: only that).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HDR = struct.Struct(">I")


# --------------------------------------------------------------------------- helper roles


def role_echo(port: int) -> None:
    """A fast asyncio echo server (Protocol based)."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data):
            self.t.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _recv_exact(sock: socket.socket, n: int, buf: bytearray) -> None:
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:n])
        if k == 0:
            raise ConnectionError("closed")
        got += k


def role_tcp_client(direct: int, proxied: int, seconds: float, window: int, size: int,
                    pings: int) -> None:
    """Measure RTT percentiles and pipelined echo rate for both ports; print JSON."""
    payload = b"x" * size
    frame = HDR.pack(size) + payload
    flen = len(frame)
    conns = {}
    for name, port in (("direct", direct), ("proxied", proxied)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns[name] = s
    buf = bytearray(flen * window)
    rtts = {"direct": [], "proxied": []}
    # warm up, then interleave rounds so noise hits both alike
    for s in conns.values():
        for _ in range(200):
            s.sendall(frame)
            _recv_exact(s, flen, buf)
    rounds = 10
    for _ in range(rounds):
        for name, s in conns.items():
            out = rtts[name]
            for _ in range(pings // rounds):
                t0 = time.perf_counter_ns()
                s.sendall(frame)
                _recv_exact(s, flen, buf)
                out.append(time.perf_counter_ns() - t0)
    batch = frame * window
    rate = {"direct": [], "proxied": []}
    slice_s = seconds / 6
    for _ in range(3):
        for name, s in conns.items():
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < slice_s:
                s.sendall(batch)
                _recv_exact(s, flen * window, buf)
                n += window
            rate[name].append(n / (time.perf_counter() - t0))
    for s in conns.values():
        s.close()

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] / 1e6

    out = {}
    for name in conns:
        out[name] = {
            "rtt_p50_ms": pct(rtts[name], 0.50),
            "rtt_p99_ms": pct(rtts[name], 0.99),
            "echo_per_s": statistics.median(rate[name]),
            "pingpong_per_s": len(rtts[name]) / (sum(rtts[name]) / 1e9),
        }
    print(json.dumps(out), flush=True)


def role_stdio_node() -> None:
    """Maelstrom node for the stdio benchmark: blast / ping / pong."""
    out = sys.stdout
    me = None
    state = {"want": 0, "got": 0, "client": None, "req": None}
    dumps, loads = json.dumps, json.loads
    for line in sys.stdin:
        msg = loads(line)
        body = msg["body"]
        t = body["type"]
        if t == "ping":
            out.write(dumps({"src": me, "dest": msg["src"],
                             "body": {"type": "pong", "in_reply_to": body["msg_id"]}}) + "\n")
            out.flush()
        elif t == "pong":
            state["got"] += 1
            if state["got"] == state["want"]:
                out.write(dumps({"src": me, "dest": state["client"],
                                 "body": {"type": "blast_ok", "in_reply_to": state["req"]}}) + "\n")
                out.flush()
        elif t == "blast":
            state.update(want=body["count"], got=0, client=msg["src"], req=body["msg_id"])
            peer = body["peer"]
            lines = []
            for i in range(body["count"]):
                lines.append(dumps({"src": me, "dest": peer,
                                    "body": {"type": "ping", "msg_id": i + 1}}))
                if len(lines) == 500:
                    out.write("\n".join(lines) + "\n")
                    out.flush()
                    lines = []
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
        elif t == "init":
            me = body["node_id"]
            out.write(dumps({"src": me, "dest": msg["src"],
                             "body": {"type": "init_ok", "in_reply_to": body["msg_id"]}}) + "\n")
            out.flush()


# --------------------------------------------------------------------------- benchmarks


async def bench_tcp(args) -> dict:
    from fuzzer.cluster.ports import lease_ports
    from fuzzer.network.model import NetworkModel
    from fuzzer.network.tcp import TcpMediator

    lease = lease_ports(2)
    echo_port, unused = lease.ports
    echo = subprocess.Popen([sys.executable, __file__, "--role", "echo", "--port", str(echo_port)],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert echo.stdout.readline().strip() == b"ready"
        sink = collections.deque(maxlen=100_000)
        nodes = {"n1": ("127.0.0.1", unused), "n2": ("127.0.0.1", echo_port)}
        model = NetworkModel(list(nodes), args.seed)
        async with TcpMediator(model, nodes, codec="length-prefixed", codec_params={"size": 4},
                               sink=sink.append) as net:
            t_cpu = time.process_time()
            client = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "tcp-client", "--direct", str(echo_port),
                "--proxied", str(net.proxy_port("n1", "n2")), "--seconds", str(args.seconds),
                "--window", str(args.window), "--size", str(args.size), "--pings", str(args.pings),
                stdout=asyncio.subprocess.PIPE, start_new_session=True)
            out, _ = await client.communicate()
            cpu = time.process_time() - t_cpu
            res = json.loads(out.decode().strip().splitlines()[-1])
            fwd, back = net.stats[("n1", "n2")], net.stats[("n2", "n1")]
            messages = fwd.messages + back.messages
    finally:
        os.killpg(echo.pid, 9)
        echo.wait()
        lease.release()
    d, p = res["direct"], res["proxied"]
    return {
        "tcp_msgs_per_s": 2 * p["echo_per_s"],
        "tcp_direct_msgs_per_s": 2 * d["echo_per_s"],
        "tcp_unpipelined_msgs_per_s": 2 * p["pingpong_per_s"],
        "tcp_direct_unpipelined_msgs_per_s": 2 * d["pingpong_per_s"],
        "tcp_rtt_p50_ms": {"direct": d["rtt_p50_ms"], "proxied": p["rtt_p50_ms"]},
        "tcp_rtt_p99_ms": {"direct": d["rtt_p99_ms"], "proxied": p["rtt_p99_ms"]},
        "tcp_added_rtt_p50_ms": p["rtt_p50_ms"] - d["rtt_p50_ms"],
        "tcp_added_rtt_p99_ms": p["rtt_p99_ms"] - d["rtt_p99_ms"],
        "tcp_added_latency_p50_ms": (p["rtt_p50_ms"] - d["rtt_p50_ms"]) / 2,
        "tcp_added_latency_p99_ms": (p["rtt_p99_ms"] - d["rtt_p99_ms"]) / 2,
        "tcp_messages_mediated": messages,
        "tcp_mediator_cpu_s": cpu,
        "tcp_mediator_cpu_us_per_msg": 1e6 * cpu / messages,
        "tcp_window": args.window,
        "tcp_frame_bytes": args.size + 4,
    }


async def bench_stdio(args) -> dict:
    from fuzzer.network.model import NetworkModel
    from fuzzer.network.stdio import StdioMediator

    argv = [sys.executable, __file__, "--role", "stdio-node"]
    nodes = {"n1": argv, "n2": argv}
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        sink = collections.deque(maxlen=100_000)
        model = NetworkModel(list(nodes), args.seed)
        async with StdioMediator(nodes, model, tmp, sink=sink.append) as net:
            cpu0 = time.process_time()
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                reply = await net.client_request(
                    "c1", "n1", {"type": "blast", "count": args.count, "peer": "n2"}, 120.0)
                dt = time.perf_counter() - t0
                assert reply is not None and reply["type"] == "blast_ok", reply
                rates.append(2 * args.count / dt)
            cpu = time.process_time() - cpu0
            routed = net.stats[("n1", "n2")].delivered + net.stats[("n2", "n1")].delivered
        direct = [await _stdio_direct(argv, args.count) for _ in range(args.rounds)]
    return {
        "stdio_msgs_per_s": statistics.median(rates),
        "stdio_direct_relay_msgs_per_s": statistics.median(direct),
        "stdio_messages_routed": routed,
        "stdio_mediator_cpu_us_per_msg": 1e6 * cpu / routed,
        "stdio_count_per_round": 2 * args.count,
    }


async def _stdio_direct(argv: list[str], count: int) -> float:
    """The same exchange through a byte relay that does not parse (baseline)."""
    procs = {}
    for name in ("n1", "n2"):
        procs[name] = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1 << 24)
    try:
        for name, p in procs.items():
            init = {"src": "c0", "dest": name,
                    "body": {"type": "init", "msg_id": 1, "node_id": name, "node_ids": ["n1", "n2"]}}
            p.stdin.write(json.dumps(init).encode() + b"\n")
            await p.stdout.readline()
        done = asyncio.Event()

        async def relay(src, dst, watch: bool):
            while chunk := await src.stdout.read(256 * 1024):
                if watch and b"blast_ok" in chunk:
                    done.set()
                    return
                dst.stdin.write(chunk)
                await dst.stdin.drain()

        blast = {"src": "c1", "dest": "n1",
                 "body": {"type": "blast", "msg_id": 1, "count": count, "peer": "n2"}}
        t0 = time.perf_counter()
        procs["n1"].stdin.write(json.dumps(blast).encode() + b"\n")
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(relay(procs["n1"], procs["n2"], True))
            b = tg.create_task(relay(procs["n2"], procs["n1"], False))
            await done.wait()
            dt = time.perf_counter() - t0
            a.cancel()
            b.cancel()
        return 2 * count / dt
    finally:
        for p in procs.values():
            os.killpg(p.pid, 9)
            await p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result line")
    ap.add_argument("--uvloop", action="store_true", help="run the mediator on uvloop")
    ap.add_argument("--seconds", type=float, default=6.0, help="TCP throughput time (total)")
    ap.add_argument("--window", type=int, default=64, help="frames in flight (throughput)")
    ap.add_argument("--size", type=int, default=64, help="payload bytes per frame")
    ap.add_argument("--pings", type=int, default=4000, help="ping-pongs per target (latency)")
    ap.add_argument("--count", type=int, default=50_000, help="stdio pings per round")
    ap.add_argument("--rounds", type=int, default=3, help="stdio rounds (median)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=["tcp", "stdio"], default=None)
    ap.add_argument("--role", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--direct", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--proxied", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "echo":
        return role_echo(args.port)
    if args.role == "tcp-client":
        return role_tcp_client(args.direct, args.proxied, args.seconds, args.window, args.size,
                               args.pings)
    if args.role == "stdio-node":
        return role_stdio_node()

    async def run_all() -> dict:
        out: dict = {"loop": "uvloop" if args.uvloop else "asyncio"}
        if args.only in (None, "tcp"):
            out.update(await bench_tcp(args))
        if args.only in (None, "stdio"):
            out.update(await bench_stdio(args))
        return out

    if args.uvloop:
        import uvloop

        result = uvloop.run(run_all())
    else:
        result = asyncio.run(run_all())
    result["unit"] = "messages/s; latency ms"
    if not args.json:
        for k, v in result.items():
            print(f"{k}: {v}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
