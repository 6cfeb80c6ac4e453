"""Benchmark: the etcd target on this machine (3 members of Debian's etcd 3.4).

Medians over ``--repeat`` rounds, each a fresh 3-node cluster on loopback:

- ``start_to_leader_s``: spawn 3 members until the role probe sees exactly
  one leader and two followers (direct peer ports);
- ``ops_per_s_direct``: completed operations per second of the register
  workload (3 closed-loop clients, 50% read / 30% write / 20% cas on 3
  keys, linearizable reads) for ``--seconds``;
- ``ops_per_s_mediated``: the same with every peer byte through the
  per-destination fronts and the TCP mediator (no faults);
- ``start_to_leader_mediated_s``; ``probe_ms``: one role probe of 3 members;
- ``check_s``: cas-register linearizability check of the direct history.

The figure is ``ops_per_s_direct`` (ops/s). Needs etcd on PATH (run
targets/etcd/setup). Run: ``python scripts/bench/etcd_client.py [--repeat 3]
[--seconds 5] [--json]``. Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.checkers.linearizability import check  # noqa: E402
from fuzzer.cluster.ports import lease_ports  # noqa: E402
from fuzzer.network.model import NetworkModel  # noqa: E402
from fuzzer.network.tcp import TcpMediator  # noqa: E402
from fuzzer.workload.history import HistoryRecorder  # noqa: E402
from targets.etcd.client import role_probe  # noqa: E402
from targets.etcd.demux import PeerDemux  # noqa: E402
from targets.etcd.peers import EtcdLayout  # noqa: E402
from targets.etcd.workload import run_register_clients  # noqa: E402

NAMES = ["n1", "n2", "n3"]


async def _one_leader(urls: dict[str, str]) -> None:
    async with asyncio.timeout(60):
        while True:
            roles = await role_probe(urls)
            if sorted(roles.values()) == ["follower", "follower", "leader"]:
                return
            await asyncio.sleep(0.02)


async def _round(workdir: Path, seconds: float, seed: int, mediated: bool) -> dict:
    lease = lease_ports(6)
    procs: dict[str, subprocess.Popen] = {}
    try:
        base = EtcdLayout.on_ports(NAMES, lease.ports)
        if not mediated:
            return await _run(base, procs, workdir, seconds, seed)
        model = NetworkModel(NAMES, seed)
        async with TcpMediator(model, base.peer_listen()) as med:

            def route(src, dst):
                if src is None:
                    return base.peer_listen()[dst]
                return "127.0.0.1", med.proxy_port(src, dst)

            owners = lambda: {n: p.pid for n, p in procs.items()}  # noqa: E731
            async with PeerDemux(NAMES, route, owners) as demux:
                layout = EtcdLayout.on_ports(NAMES, lease.ports, fronts=demux.fronts())
                return await _run(layout, procs, workdir, seconds, seed)
    finally:
        for p in procs.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        lease.release()


async def _run(layout: EtcdLayout, procs: dict, workdir: Path, seconds: float,
               seed: int) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    t0 = time.monotonic()
    for n in layout.names():
        with open(workdir / f"{n}.log", "wb") as log:
            procs[n] = subprocess.Popen(layout.argv(n, workdir / n), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
    urls = layout.client_urls()
    await _one_leader(urls)
    start = time.monotonic() - t0
    t1 = time.monotonic()
    await role_probe(urls)
    probe = time.monotonic() - t1
    rec = HistoryRecorder()
    stats = await run_register_clients(list(urls.values()), rec, random.Random(seed),
                                       clients=3, duration=seconds)
    t2 = time.monotonic()
    verdict = check(rec.history(), "cas-register", timeout=120).verdict
    return {"start": start, "probe": probe, "ops_s": stats.ops / stats.elapsed,
            "check": time.monotonic() - t2, "verdict": verdict, "ops": stats.ops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("etcd") is None:
        raise SystemExit("etcd not on PATH: run targets/etcd/setup first")
    direct, mediated = [], []
    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-etcd-") as tmp:
        for i in range(args.repeat):
            direct.append(asyncio.run(_round(Path(tmp) / f"d{i}", args.seconds,
                                             args.seed + i, False)))
            mediated.append(asyncio.run(_round(Path(tmp) / f"m{i}", args.seconds,
                                               args.seed + i, True)))

    def med(rows: list[dict], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 4)

    out = {
        "figure": "ops_per_s_direct",
        "unit": "ops/s",
        "ops_per_s_direct": med(direct, "ops_s"),
        "ops_per_s_mediated": med(mediated, "ops_s"),
        "start_to_leader_s": med(direct, "start"),
        "start_to_leader_mediated_s": med(mediated, "start"),
        "probe_ms": round(med(direct, "probe") * 1000, 2),
        "check_s": med(direct, "check"),
        "ops_per_round": med(direct, "ops"),
        "verdicts": sorted({r["verdict"] for r in direct + mediated}),
        "repeat": args.repeat,
        "seconds": args.seconds,
    }
    if not args.json:
        for k, v in out.items():
            print(f"{k:28} {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
