"""Benchmark: how long the Supervisor's process operations take on this machine.

Medians over ``--repeat`` rounds on a 3-node cluster of small Python TCP nodes
(tests/integration/nodes/cluster_node.py, readiness by port), in milliseconds:

- ``start_all``: spawn 3 nodes and wait until each accepts TCP;
- ``kill``: SIGKILL one node's group until it is reaped;
- ``restart``: kill + start + ready for one node;
- ``pause``/``resume``: SIGSTOP until the whole group is stopped / SIGCONT;
- ``close``: kill everything, reap, stop the watchdog;
- ``sigkill_cleanup``: a driver process running a 3-node cluster (each node
  with a grandchild) is SIGKILLed; time until every one of its 7 processes
  (watchdog, nodes, grandchildren) is gone (pdeathsig + watchdog).

The figure is the median single-node restart latency (ms). Python node
startup (~50-100 ms of interpreter import) dominates start and restart.

Run: ``python scripts/bench/cluster.py [--repeat 10] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.cluster import ClusterSpec, Readiness, Supervisor  # noqa: E402

NODE = str(ROOT / "tests" / "integration" / "nodes" / "cluster_node.py")
DRIVER = str(ROOT / "tests" / "integration" / "nodes" / "cluster_driver.py")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z"


def _sigkill_cleanup(workdir: Path) -> float:
    """Seconds from SIGKILL of a fuzzer-like driver until its cluster is gone."""
    proc = subprocess.Popen(
        [sys.executable, DRIVER, "wait", str(workdir), workdir.name],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        proc.stdout.readline()
        pids = [info["watchdog"], *info["nodes"], *info["children"]]
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGKILL)
        deadline = t0 + 30
        while any(_alive(p) for p in pids) and time.perf_counter() < deadline:
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        if any(_alive(p) for p in pids):
            raise SystemExit(f"orphans survived: {[p for p in pids if _alive(p)]}")
        return elapsed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _spec() -> ClusterSpec:
    return ClusterSpec(
        nodes=3,
        command=[
            sys.executable,
            NODE,
            "--name",
            "{name}",
            "--port",
            "{port}",
            "--data-dir",
            "{data_dir}",
        ],
        readiness=Readiness(kind="port", timeout=30.0, interval=0.01),
    )


async def _round(workdir: Path) -> dict[str, float]:
    t: dict[str, float] = {}
    sup = Supervisor(_spec(), workdir)
    try:
        t0 = time.perf_counter()
        await sup.start_all()
        t["start_all"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await sup.kill("n1")
        t["kill"] = time.perf_counter() - t0
        await sup.start("n1")
        t0 = time.perf_counter()
        await sup.restart("n2")
        t["restart"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await sup.pause("n3")
        t["pause"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await sup.resume("n3")
        t["resume"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        await sup.close()
        t["close"] = time.perf_counter() - t0
    return t


async def _main(repeat: int) -> dict[str, float]:
    rounds = []
    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-cluster-") as tmp:
        for i in range(repeat):
            rounds.append(await _round(Path(tmp) / f"r{i}"))
        cleanup = [
            _sigkill_cleanup(Path(tmp) / f"hbfzbench{i}") for i in range(max(3, repeat // 2))
        ]
    med = {k: statistics.median(r[k] for r in rounds) * 1000 for k in rounds[0]}
    med["sigkill_cleanup"] = statistics.median(cleanup) * 1000
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    med = asyncio.run(_main(args.repeat))
    result = {
        "figure": round(med["restart"], 1),
        "unit": "ms",
        **{f"{k}_ms": round(v, 2) for k, v in med.items()},
        "nodes": 3,
        "repeat": args.repeat,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:16} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
