"""Benchmark: events/s fully ingested by the tracker (timeline + HB coverage) end to end.

N producer processes each stream M events to a real :class:`TrackerServer`
over real gRPC. A producer uses the real reporter (``instrumentation``) when
``--mode reporter`` and it is available; in ``--mode raw`` (default) it
pre-builds wire batches with ``protocol.encode_batch`` and streams them, so
what is measured is the tracker, not the producers. The clock runs from the
first batch the tracker receives to the moment the last event has been
added to the timeline and the coverage (its window closed).

The synthetic trace is consistent across nodes: node s's k-th SEND goes to
``(s + 1 + k % (N-1)) % N`` with msg_id k, and that node RECVs it at its own
step k; every few steps a STATE (term, commit, role), a LOCAL and a
COVERAGE event. Run: ``python scripts/bench/tracker_ingest.py --json``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from instrumentation import protocol  # noqa: E402

ROLES = ("follower", "candidate", "leader")
MSG_TYPES = ("append", "append_ok", "vote", "vote_ok")


def node_events(i: int, n: int, m: int, execution: str) -> list[list]:
    """The deterministic event stream of node ``i`` (about ``m`` events)."""
    out: list[list] = []
    seq = lam = 0
    t0 = time.time_ns()
    term = commit = 0
    k = 0
    while len(out) < m:
        step = k % (n - 1)
        dst = (i + 1 + step) % n
        src = (i - 1 - step) % n
        mtype = MSG_TYPES[(k + i) % 4]
        seq += 1
        lam += 1
        out.append([seq, lam, t0 + seq, seq, protocol.SEND, f"n{dst}", mtype, k])
        seq += 1
        lam += 2
        out.append(
            [
                seq,
                lam,
                t0 + seq,
                seq,
                protocol.RECV,
                f"n{src}",
                MSG_TYPES[(k + src) % 4],
                k,
                lam - 1,
            ]
        )
        if k % 8 == 0:
            seq += 1
            term += 1 if k % 64 == 0 else 0
            out.append([seq, lam, t0 + seq, seq, protocol.STATE, "term", term])
        if k % 8 == 4:
            seq += 1
            commit += 1
            out.append([seq, lam, t0 + seq, seq, protocol.STATE, "commit", commit])
        if k % 16 == 3:
            seq += 1
            out.append([seq, lam, t0 + seq, seq, protocol.LOCAL, "tick", {"k": k}])
        if k % 32 == 5:
            seq += 1
            out.append([seq, lam, t0 + seq, seq, protocol.COVERAGE, [k * 7 + i, k * 7 + i + 1]])
        if k % 97 == 11:
            seq += 1
            out.append([seq, lam, t0 + seq, seq, protocol.STATE, "role", ROLES[(k // 97 + i) % 3]])
        k += 1
    return out[:m]


def producer(args: argparse.Namespace) -> None:
    """Child process: build batches, wait for "go" on stdin, stream them, exit."""
    import grpc

    events = node_events(args.node, args.nodes, args.events, args.execution)
    name = f"n{args.node}"
    batches = [
        protocol.encode_batch(name, args.execution, j, 0, events[s : s + args.batch])
        for j, s in enumerate(range(0, len(events), args.batch))
    ]
    channel = grpc.insecure_channel(args.tracker, options=[("grpc.max_send_message_length", -1)])
    call = channel.stream_unary(protocol.METHOD)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    ack = protocol.decode_ack(call(iter(batches), timeout=600))
    print(f"cpu {time.process_time() - cpu}", flush=True)
    if ack["accepted"] != len(batches):
        print(f"producer {name}: {ack}", file=sys.stderr)
        sys.exit(1)


def reporter_producer(args: argparse.Namespace) -> None:
    """Child process using the real reporter through the public instrumentation API."""
    import instrumentation as inst

    name = f"n{args.node}"
    inst.configure(node=name, tracker=args.tracker, execution=args.execution)
    events = node_events(args.node, args.nodes, args.events, args.execution)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    for ev in events:
        k = ev[4]
        if k == protocol.SEND:
            inst.send(ev[5], ev[6], ev[7])
        elif k == protocol.RECV:
            inst.recv(ev[5], ev[6], ev[7], ev[8])
        elif k == protocol.STATE:
            inst.state(ev[5], ev[6])
        elif k == protocol.LOCAL:
            inst.event(ev[5], **ev[6])
        else:
            inst.state("edges", len(ev[5]))
    inst.flush()
    print(f"cpu {time.process_time() - cpu}", flush=True)


def run_once(args: argparse.Namespace) -> dict:
    from fuzzer.tracker.coverage import HBCoverage
    from fuzzer.tracker.server import TrackerServer
    from fuzzer.tracker.timeline import Tracker

    cov = HBCoverage()
    first: list[float] = []

    class TimedTracker(Tracker):
        def ingest(self, batch: protocol.Batch, wire: bytes | None = None) -> None:
            if not first:
                first.append(time.perf_counter())
                first.append(time.process_time())
            super().ingest(batch, wire)

    tracker = TimedTracker(on_timeline=cov.attach)
    execution = "bench"
    total = args.nodes * args.events
    with TrackerServer(tracker) as srv:
        cmd = [
            sys.executable,
            __file__,
            "--producer",
            "--tracker",
            srv.address,
            "--nodes",
            str(args.nodes),
            "--events",
            str(args.events),
            "--batch",
            str(args.batch),
            "--execution",
            execution,
            "--mode",
            args.mode,
        ]
        procs = [
            subprocess.Popen(
                [*cmd, "--node", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for i in range(args.nodes)
        ]
        try:
            for p in procs:
                if p.stdout.readline().strip() != "ready":
                    raise SystemExit("a producer failed to start")
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            tl = tracker.timeline(execution)
            deadline = time.monotonic() + args.timeout
            tick = threading.Event()
            last, grew_at = -1, time.perf_counter()
            while time.monotonic() < deadline:
                n = len(tl)
                if n != last:
                    last, grew_at = n, time.perf_counter()
                if n >= total:
                    break
                if all(p.poll() is not None for p in procs) and time.perf_counter() - grew_at > 1.0:
                    break  # producers gone, nothing new for 1 s: the rest was dropped
                tick.wait(0.002)
            cov.close_window()
            end = grew_at if last < total else time.perf_counter()
            tracker_cpu = time.process_time() - first[1] if first else float("nan")
            producer_cpu = 0.0
            for p in procs:
                line = p.stdout.readline().split()
                if line[:1] == ["cpu"]:
                    producer_cpu += float(line[1])
                p.wait(timeout=60)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        stats = srv.stats
    got = len(tl)
    secs = end - first[0] if first else float("nan")
    return {
        "events": got,
        "seconds": secs,
        "events_per_s": got / secs,
        "rejected": stats.rejected,
        "dropped": stats.dropped,
        "hb_coverage": cov.hb_coverage(),
        "edges": len(tl.edges()),
        "tracker_cpu_s": tracker_cpu,
        "producer_cpu_s": producer_cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--events", type=int, default=250_000, help="events per node")
    ap.add_argument("--batch", type=int, default=1000, help="events per batch (raw mode)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mode", choices=("raw", "reporter"), default="raw")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--producer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--node", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--tracker", help=argparse.SUPPRESS)
    ap.add_argument("--execution", default="bench", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.nodes < 2 or args.events < 1:
        ap.error("--nodes must be at least 2 (nodes message each other) and --events positive")
    if args.producer:
        (reporter_producer if args.mode == "reporter" else producer)(args)
        return
    results = [run_once(args) for _ in range(args.runs)]
    rates = [r["events_per_s"] for r in results]
    for r in results:
        print(
            f"{r['events']} events in {r['seconds']:.3f}s: {r['events_per_s']:,.0f} ev/s "
            f"(edges {r['edges']}, hb cells {r['hb_coverage']}, rejected {r['rejected']}, "
            f"dropped by reporters {r['dropped']}; cpu s: tracker {r['tracker_cpu_s']:.2f}, "
            f"producers {r['producer_cpu_s']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    out = {
        "benchmark": "tracker_ingest",
        "value": round(statistics.median(rates)),
        "unit": "events/s",
        "runs": [round(x) for x in rates],
        "nodes": args.nodes,
        "events_per_node": args.events,
        "batch": args.batch,
        "mode": args.mode,
        "cpus": os.cpu_count(),
        "dropped": [r["dropped"] for r in results],
        "tracker_cpu_s": [round(r["tracker_cpu_s"], 2) for r in results],
        "producer_cpu_s": [round(r["producer_cpu_s"], 2) for r in results],
    }
    print(json.dumps(out) if args.json else out)


if __name__ == "__main__":
    main()
