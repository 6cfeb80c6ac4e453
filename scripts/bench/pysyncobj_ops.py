"""Benchmark: client operations on a 3-node PySyncObj cluster, with and without
hbfuzz instrumentation (events to a real tracker + pysyncobj branch coverage).

For each mode a fresh cluster (default version, journal on) is started, the
leader found, then ``--clients`` concurrent clients issue ``put`` on random
keys through the leader for ``--seconds``. Reported: committed ops/s and the
median latency, per mode, and the throughput ratio instrumented/plain. The
figure is the instrumented ops/s. PySyncObj batches commands per tick
(``autoTickPeriod`` 50 ms), so latency is dominated by tick periods.

Run: ``python scripts/bench/pysyncobj_ops.py [--seconds 5] [--clients 8] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.cluster.ports import lease_ports  # noqa: E402
from fuzzer.tracker.server import TrackerServer  # noqa: E402
from instrumentation import protocol  # noqa: E402
from targets.pysyncobj import envs  # noqa: E402
from targets.pysyncobj.client import NodeClient, find_leader  # noqa: E402

NODE = str(ROOT / "targets" / "pysyncobj" / "node.py")
NAMES = ["n1", "n2", "n3"]


async def measure(python: str, tracker: str | None, seconds: float, clients: int) -> dict:
    lease = lease_ports(6)
    raft = dict(zip(NAMES, lease.ports[:3], strict=True))
    cport = dict(zip(NAMES, lease.ports[3:], strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in NAMES:
                e = dict(env)
                if tracker:
                    e.update({protocol.ENV_TRACKER: tracker, protocol.ENV_NODE: n,
                              protocol.ENV_EXECUTION: "bench"})
                peers = ",".join(f"{o}=127.0.0.1:{raft[o]}" for o in NAMES if o != n)
                procs.append(subprocess.Popen(
                    [python, NODE, "--name", n, "--raft", f"127.0.0.1:{raft[n]}",
                     "--client-port", str(cport[n]), "--data-dir", f"{tmp}/{n}",
                     "--peers", peers], env=e, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            async with asyncio.timeout(60):
                while (leader := await find_leader(cport.values())) is None:
                    await asyncio.sleep(0.2)
            lat: list[float] = []
            done = {"ok": 0, "other": 0}
            deadline = time.monotonic() + seconds

            async def worker(i: int) -> None:
                rng = random.Random(i)
                async with NodeClient(cport[leader], timeout=5) as c:
                    while time.monotonic() < deadline:
                        t0 = time.perf_counter()
                        r = await c.put(f"k{rng.randrange(100)}", rng.randrange(10**6))
                        if r.ok:
                            done["ok"] += 1
                            lat.append(time.perf_counter() - t0)
                        else:
                            done["other"] += 1

            t0 = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                for i in range(clients):
                    tg.create_task(worker(i))
            elapsed = time.monotonic() - t0
        finally:
            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            lease.release()
    return {
        "ops_per_s": round(done["ok"] / elapsed, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
        "not_ok": done["other"],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    python = str(envs.ensure(envs.DEFAULT_VERSION).python)
    plain = asyncio.run(measure(python, None, args.seconds, args.clients))
    with TrackerServer() as srv:
        instr = asyncio.run(measure(python, srv.address, args.seconds, args.clients))
        events = srv.stats.events if hasattr(srv.stats, "events") else None
    result = {
        "bench": "pysyncobj_ops",
        "figure": instr["ops_per_s"],
        "unit": "ops/s",
        "instrumented": instr,
        "plain": plain,
        "throughput_ratio": round(instr["ops_per_s"] / plain["ops_per_s"], 3)
        if plain["ops_per_s"] else None,
        "tracker_events": events,
        "clients": args.clients,
        "seconds": args.seconds,
        "version": envs.DEFAULT_VERSION,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:18} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
