"""Instrumentation overhead: a message-heavy two-node workload, plain vs instrumented.

Two node processes exchange request/reply messages over one loopback TCP
connection (the client keeps ``--window`` requests in flight; the server runs
a small replicated-log/KV state machine with a few branches per message and
replies). Two workloads:

* ``typical``: msgpack-encoded dict messages, one ``sendall`` per message, as
  a real Python node would do (~20 us of node CPU per round trip here);
* ``batched``: raw byte bodies, all ready replies written with one syscall
  (~5 us per round trip: an extreme, instrumentation-bound case).

Each runs in three modes: ``plain`` (instrumentation not imported), ``noop``
(the node calls ``instrumentation.send/recv`` but no tracker is set: what a
node pays outside the fuzzer) and ``full`` (``python -m instrumentation``:
reporter streaming over gRPC to a real :class:`fuzzer.tracker.server.TrackerServer`
ingesting in this process, plus sys.monitoring branch coverage of this file).
``--modes ...,full-nocov`` adds the reporter without coverage, and
``full-pure`` the pure-Python recording path (``HBFUZZ_REPORT_PURE=1``) where
the optional C accelerator (instrumentation/_fast.c) is built; the JSON's
``accelerator`` says whether it was.

Reported per workload and mode: the median round trips/s (wall clock, as seen
by the client; the headline ``figure`` is ``full / plain`` for the first
workload), and the median CPU per round trip of both nodes during the run
(start-up excluded), split by thread (main / reporter / grpc), and of the
tracker. On a shared, loaded machine the wall-clock ratio is noisy (see
``load_avg_1min``); the CPU ratios are the stable figure.

To check that the tracker's work is really paid for inside the timed window
(not deferred until after it), each run also reports the share of its events
the tracker had ingested when the client's window closed
(``min_share_ingested_within_timed_window``; 0.98-1.0 measured) and the
events ingested per round trip (4: one SEND and one RECV per message).

Each run starts fresh node processes; timing and CPU start once the client
is connected (interpreter start-up, imports and the reporter's channel set-up
are excluded), the modes alternate within each run so load drift hits them
alike, and figures are medians over runs. Reporter tuning variables
(``HBFUZZ_REPORT_*``) pass through from the caller's environment, for
experiments; all other ``HBFUZZ_*`` variables are set per mode.

    .venv/bin/python scripts/bench/overhead.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FRAME = struct.Struct("!IqqB")  # body length, msg_id, lamport stamp, type
PUT, GET, APPEND, REPLY = 1, 2, 3, 4
TYPE_NAMES = {PUT: "Put", GET: "Get", APPEND: "Append", REPLY: "Reply"}


# -- the workload (runs in the node processes) -----------------------------------


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread kind of this process (Linux /proc), to see what dominates."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        name = names.get(int(tid), comm)
        if name == "MainThread":
            kind = "main"
        elif name.startswith("hbfuzz-reporter"):
            kind = "reporter"
        else:
            kind = "grpc"  # gRPC's request-iterator thread and its C-core threads
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[str, float], cpu: float) -> dict[str, float]:
    """Per-kind thread CPU since ``before``; ``other`` is the rest of the process CPU
    ``cpu``: threads that ended during the run (gRPC's short-lived pollers) plus the
    10 ms tick rounding of the per-thread counters."""
    after = thread_cpu()
    out = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    out["other"] = max(0.0, cpu - sum(out.values()))
    return out


class Node:
    """Frames in, frames out; ``hb`` is the instrumentation module or None (plain)."""

    def __init__(self, sock: socket.socket, name: str, peer: str, hb, typical: bool) -> None:
        self.sock = sock
        self.name = name
        self.peer = peer
        self.hb = hb
        self.buf = bytearray()
        self.typical = typical  # msgpack bodies, one write per message (else raw, batched)
        if typical:
            import msgpack

            self.pack = msgpack.Packer().pack
            self.unpack = msgpack.unpackb

    def frames(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        buf = self.buf
        buf += data
        out = []
        off = 0
        n = len(buf)
        hsize = FRAME.size
        while n - off >= hsize:
            blen, mid, stamp, mtype = FRAME.unpack_from(buf, off)
            end = off + hsize + blen
            if end > n:
                break
            body = bytes(buf[off + hsize : end])
            out.append((mid, stamp, mtype, self.unpack(body) if self.typical else body))
            off = end
        del buf[:off]
        hb = self.hb
        if hb is not None:
            peer = self.peer
            for mid, stamp, mtype, _body in out:
                hb.recv(peer, TYPE_NAMES[mtype], mid, stamp)
        return out

    def frame(self, mid: int, mtype: int, body) -> bytes:
        hb = self.hb
        stamp = hb.send(self.peer, TYPE_NAMES[mtype], mid) if hb is not None else 0
        if self.typical:
            body = self.pack(body)
        return FRAME.pack(len(body), mid, stamp, mtype) + body

    def write(self, frames: list[bytes]) -> None:
        if not frames:
            return
        if self.typical:
            for f in frames:
                self.sock.sendall(f)
        else:
            self.sock.sendall(b"".join(frames))


class StateMachine:
    """A toy replicated log: a few branches per message, like a real handler."""

    def __init__(self) -> None:
        self.kv: dict[bytes, bytes] = {}
        self.log: list[tuple[int, bytes]] = []
        self.term = 1
        self.commit = 0

    def handle(self, mid: int, mtype: int, body: bytes) -> bytes:
        if mtype == PUT:
            key, _, value = body.partition(b"=")
            old = self.kv.get(key)
            self.kv[key] = value
            result = b"created" if old is None else b"updated"
        elif mtype == GET:
            value = self.kv.get(body)
            result = value if value is not None else b"missing"
        elif mtype == APPEND:
            self.log.append((self.term, body))
            if len(self.log) - self.commit >= 8:
                self.commit = len(self.log)
                if self.commit % 1024 == 0:
                    self.term += 1
                    del self.log[: len(self.log) // 2]
                    self.commit = len(self.log)
            result = b"ok:%d" % self.commit
        else:
            result = b"error"
        return result

    def handle_typical(self, mid: int, mtype: int, msg: dict) -> dict:
        """The same logic on decoded messages, answering with a dict like an RPC reply."""
        if msg["term"] > self.term:
            self.term = msg["term"]
        if mtype == PUT:
            old = self.kv.get(msg["key"])
            self.kv[msg["key"]] = msg["value"]
            return {"term": self.term, "ok": True, "created": old is None}
        if mtype == GET:
            value = self.kv.get(msg["key"])
            return {"term": self.term, "ok": value is not None, "value": value}
        if mtype == APPEND:
            if msg["prev"] > len(self.log) + 1_000_000:
                return {"term": self.term, "ok": False, "match": len(self.log)}
            self.log.extend((e[0], e[1]) for e in msg["entries"])
            if len(self.log) - self.commit >= 8:
                self.commit = len(self.log)
                if self.commit % 1024 == 0:
                    del self.log[: len(self.log) // 2]
                    self.commit = len(self.log)
            return {"term": self.term, "ok": True, "match": len(self.log), "commit": self.commit}
        return {"term": self.term, "ok": False, "error": "unknown type"}


def run_server(port: int, hb, typical: bool) -> None:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)
    print("listening", flush=True)
    conn, _ = lsock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    node = Node(conn, "server", "client", hb, typical)
    sm = StateMachine()
    handle = sm.handle_typical if typical else sm.handle
    cpu0 = time.process_time()
    threads0 = thread_cpu()
    try:
        while True:
            node.write(
                [
                    node.frame(mid, REPLY, handle(mid, mtype, body))
                    for mid, _s, mtype, body in node.frames()
                ]
            )
    except (EOFError, ConnectionError):
        pass
    cpu = time.process_time() - cpu0
    print(json.dumps({"cpu": cpu, "threads": cpu_delta(threads0, cpu)}), flush=True)


def request(mid: int, typical: bool) -> tuple[int, object]:
    kind = mid % 4
    if typical:
        msg = {"term": 1 + mid // 100_000, "leader": "client", "prev": mid - 1, "commit": mid - 8}
        if kind == 0:
            msg.update(key=f"key{mid % 97}", value=f"value{mid}")
            return PUT, msg
        if kind == 1:
            msg["key"] = f"key{mid % 101}"
            return GET, msg
        msg["entries"] = [[msg["term"], f"entry-{mid}"]]
        return APPEND, msg
    if kind == 0:
        return PUT, b"key%d=value%d" % (mid % 97, mid)
    if kind == 1:
        return GET, b"key%d" % (mid % 101)
    return APPEND, b"entry-%d" % mid


def run_client(port: int, count: int, window: int, hb, typical: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    node = Node(sock, "client", "server", hb, typical)
    sent = done = 0
    missing = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    threads0 = thread_cpu()
    first = []
    while sent < min(window, count):
        mtype, body = request(sent, typical)
        first.append(node.frame(sent, mtype, body))
        sent += 1
    node.write(first)
    while done < count:
        out = []
        for _mid, _stamp, _mtype, body in node.frames():
            done += 1
            if body == b"missing" or (typical and not body["ok"]):
                missing += 1
            if sent < count:
                mtype, body = request(sent, typical)
                out.append(node.frame(sent, mtype, body))
                sent += 1
        node.write(out)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    threads = cpu_delta(threads0, cpu)
    sock.close()
    print(
        json.dumps(
            {
                "round_trips": count,
                "seconds": elapsed,
                "missing": missing,
                "cpu": cpu,
                "threads": threads,
            }
        ),
        flush=True,
    )


def node_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["server", "client"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--hb", action="store_true", help="call the instrumentation API")
    p.add_argument("--workload", choices=["typical", "batched"], default="typical")
    a = p.parse_args(argv)
    hb = None
    if a.hb:
        import instrumentation as hb
    typical = a.workload == "typical"
    if a.role == "server":
        run_server(a.port, hb, typical)
    else:
        run_client(a.port, a.count, a.window, hb, typical)


# -- the orchestrator -------------------------------------------------------------


def free_port() -> int:
    sys.path.insert(0, ROOT)
    from fuzzer.cluster.ports import lease_ports

    global _LEASE
    _LEASE = lease_ports(1)
    return _LEASE.ports[0]


class MinimalSink:
    """A decode-only gRPC tracker (``--sink minimal``)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc

        from instrumentation import protocol

        self.events = 0

        def report(requests, context):
            n = 0
            for data in requests:
                self.events += len(protocol.decode_batch(data).events)
                n += 1
            return protocol.encode_ack(n, 0)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    protocol.SERVICE, {"Report": grpc.stream_unary_rpc_method_handler(report)}
                )
            ]
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.stop(0)


def run_once(
    workload: str,
    mode: str,
    count: int,
    window: int,
    tracker: str | None,
    execution: str,
    interval_ms: float | None = None,
    ingested=None,
) -> dict:
    port = free_port()
    # The fuzzer's variables are set per mode below; reporter tuning
    # (HBFUZZ_REPORT_*) passes through, for experiments.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HBFUZZ_") or k.startswith("HBFUZZ_REPORT_")
    }
    env["PYTHONPATH"] = ROOT
    me = os.path.abspath(__file__)

    def argv(role: str, name: str) -> list[str]:
        args = ["--node-main", "--role", role, "--port", str(port), "--workload", workload]
        if role == "client":
            args += ["--count", str(count), "--window", str(window)]
        if mode == "plain":
            return [sys.executable, me, *args]
        args.append("--hb")
        if mode == "noop":
            return [sys.executable, me, *args]
        cov = ["--no-coverage"] if mode == "full-nocov" else ["--modules", HERE]
        return [
            sys.executable,
            "-m",
            "instrumentation",
            "--node",
            name,
            *cov,
            "--",
            me,
            *args,
        ]

    if mode.startswith("full"):
        # Diagnostic variants: full-nocov (reporter only, no coverage), full-pure
        # (the pure-Python recording path even where the C accelerator is built).
        env.update(HBFUZZ_TRACKER=tracker, HBFUZZ_EXECUTION=execution)
    if mode == "full-pure":
        env["HBFUZZ_REPORT_PURE"] = "1"
    if interval_ms is not None:
        env["HBFUZZ_REPORT_INTERVAL_MS"] = str(interval_ms)
    procs = []
    seen0 = ingested() if ingested is not None else 0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = time.process_time()
    try:
        server = subprocess.Popen(
            argv("server", "server"),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(server)
        if server.stdout.readline().strip() != "listening":
            raise RuntimeError("server did not start")
        client = subprocess.Popen(
            argv("client", "client"),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(client)
        # The client prints its result as soon as its timed window ends (before
        # its exit flush): sample the tracker's count right then.
        first = client.stdout.readline()
        seen_at_end = ingested() if ingested is not None else 0
        out, _ = client.communicate(timeout=600)
        result = json.loads((first + out).strip().splitlines()[-1])
        server_out, _ = server.communicate(timeout=60)
        srv = json.loads(server_out.strip().splitlines()[-1])
        result["run_cpu"] = result["cpu"] + srv["cpu"]
        for k, v in srv["threads"].items():
            result["threads"][k] = result["threads"].get(k, 0.0) + v
        if mode.startswith("full"):
            time.sleep(0.2)  # let the tracker finish ingesting this run
        if ingested is not None:
            # Events of this run the tracker had ingested when the client finished,
            # as a share of all it ingested for the run: near 1 means the tracker
            # kept up during the timed window (its CPU was paid for in the figure).
            total = ingested() - seen0
            result["ingested"] = total
            result["ingested_in_window"] = (seen_at_end - seen0) / total if total else None
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["node_cpu"] = result["run_cpu"]  # both nodes, during the run (no start-up)
        result["proc_cpu"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        result["sink_cpu"] = time.process_time() - cpu0
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        _LEASE.release()


def summarise(samples: dict[str, list[dict]]) -> dict:
    """Medians per mode and the ratios against plain."""
    med = {
        m: {
            "round_trips_per_s": statistics.median(r["rate"] for r in rs),
            "node_cpu_us_per_rt": statistics.median(r["node_us"] for r in rs),
            "tracker_cpu_us_per_rt": statistics.median(r["sink_us"] for r in rs),
        }
        for m, rs in samples.items()
    }
    kinds = sorted({k for rs in samples.values() for r in rs for k in r["threads_us"]})
    out: dict = {
        "median_node_cpu_us_per_round_trip_by_thread": {
            m: {
                k: round(statistics.median(r["threads_us"].get(k, 0.0) for r in rs), 2)
                for k in kinds
            }
            for m, rs in samples.items()
        },
        "median_round_trips_per_s": {m: round(v["round_trips_per_s"]) for m, v in med.items()},
        "median_node_cpu_us_per_round_trip": {
            m: round(v["node_cpu_us_per_rt"], 2) for m, v in med.items()
        },
        "median_tracker_cpu_us_per_round_trip": {
            m: round(v["tracker_cpu_us_per_rt"], 2) for m, v in med.items()
        },
        "median_events_ingested_per_round_trip": {
            m: round(statistics.median(r["ingested_per_rt"] for r in rs), 2)
            for m, rs in samples.items()
        },
        "min_share_ingested_within_timed_window": {
            m: round(min(r["ingested_in_window"] for r in rs), 3)
            for m, rs in samples.items()
            if all(r["ingested_in_window"] is not None for r in rs)
        },
    }
    if "plain" in med:
        plain = med["plain"]
        for m in ("full", "noop", "full-nocov", "full-pure"):
            if m in med:
                out[f"{m}_throughput_ratio"] = round(
                    med[m]["round_trips_per_s"] / plain["round_trips_per_s"], 3
                )
                out[f"{m}_node_cpu_ratio"] = round(
                    plain["node_cpu_us_per_rt"] / med[m]["node_cpu_us_per_rt"], 3
                )
    return out


def accelerator_built() -> bool:
    """Is the optional C recording accelerator (instrumentation/_fast.c) importable?"""
    try:
        import instrumentation._fast  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--count", type=int, default=30_000, help="round trips per run")
    ap.add_argument("--window", type=int, default=8, help="requests in flight")
    ap.add_argument("--sink", choices=["tracker", "minimal"], default="tracker")
    ap.add_argument("--modes", default="plain,noop,full", help="also: full-nocov, full-pure")
    ap.add_argument("--workloads", default="typical,batched")
    ap.add_argument(
        "--interval-ms", type=float, help="reporter flush interval (default: the library's)"
    )
    args = ap.parse_args()
    sys.path.insert(0, ROOT)

    if args.sink == "tracker":
        from fuzzer.tracker.server import TrackerServer

        sink = TrackerServer()
        address = sink.start()

        def ingested() -> int:
            return sink.stats.events

    else:
        sink = MinimalSink()
        address = sink.address

        def ingested() -> int:
            return sink.events

    modes = args.modes.split(",")
    workloads = args.workloads.split(",")
    samples = {w: {m: [] for m in modes} for w in workloads}
    try:
        for r in range(args.runs):
            for w in workloads:
                for mode in modes:
                    res = run_once(
                        w,
                        mode,
                        args.count,
                        args.window,
                        address,
                        f"bench-{w}-{r}",
                        args.interval_ms,
                        ingested,
                    )
                    n = res["round_trips"]
                    sample = {
                        "rate": n / res["seconds"],
                        "node_us": res["node_cpu"] / n * 1e6,
                        "sink_us": res["sink_cpu"] / n * 1e6,
                        "threads_us": {k: v / n * 1e6 for k, v in res["threads"].items()},
                        "ingested_per_rt": res.get("ingested", 0) / n,
                        "ingested_in_window": res.get("ingested_in_window"),
                    }
                    samples[w][mode].append(sample)
                    if not args.json:
                        print(
                            f"run {r} {w:8s} {mode:5s} {sample['rate']:9.0f} round trips/s"
                            f"  node cpu {sample['node_us']:6.2f} us/rt"
                            f"  tracker cpu {sample['sink_us']:6.2f} us/rt"
                            f"  ingested {sample['ingested_per_rt']:.2f}/rt"
                            f" ({sample['ingested_in_window'] or 0:.0%} in window)  by thread "
                            + " ".join(f"{k}={v:.2f}" for k, v in sample["threads_us"].items()),
                            flush=True,
                        )
        if args.sink == "tracker":
            time.sleep(0.5)
            n_ingested, dropped = sink.stats.events, sink.stats.dropped
        else:
            n_ingested, dropped = sink.events, 0
    finally:
        sink.stop()
    per = {w: summarise(samples[w]) for w in workloads}
    head = workloads[0]
    result = {
        "benchmark": "overhead",
        "figure": per[head].get("full_throughput_ratio"),
        "unit": f"throughput ratio instrumented/plain, median of {args.runs} runs ({head} workload)",
        "target": 0.90,
        "workloads": per,
        "runs": args.runs,
        "round_trips_per_run": args.count,
        "window": args.window,
        "sink": args.sink,
        "events_ingested": n_ingested,
        "accelerator": accelerator_built(),
        "events_dropped_by_nodes": dropped,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--node-main":
        node_main(sys.argv[2:])
    else:
        main()
