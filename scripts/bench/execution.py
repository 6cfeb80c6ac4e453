"""Benchmark: executions per hour of whole executions on a real target, and a finding rate.

``--target`` (default the Maelstrom broadcast example) runs ``--executions``
executions back to back, sharing one tracker server and one HB coverage as a
campaign does, each with a ``--steps``-step schedule of random faults drawn
(seeded) from the target's action space with step durations uniform in
``--step-min``..``--step-max``. Reports the median execution duration, the
throughput in executions/hour, the median of each phase and the median
events per execution.

``--finding-rate K`` additionally runs K executions of the primary-backup
lin-kv example under a partition schedule (``--finding-schedule``, default
``partition isolate n1;wait;heal`` (n1 is the primary), ``--finding-step`` 1.5 s each) and reports how many yielded a
linearizability finding.

Run: ``python scripts/bench/execution.py --json``; one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.config import load_config  # noqa: E402
from fuzzer.execution import Execution  # noqa: E402  (sets gRPC fork support off first)
from fuzzer.faults import Schedule, Step, parse_fault  # noqa: E402
from fuzzer.scheduler.actions import ActionSpace  # noqa: E402
from fuzzer.tracker.coverage import HBCoverage  # noqa: E402
from fuzzer.tracker.server import TrackerServer  # noqa: E402

MAELSTROM = ROOT / "targets" / "maelstrom" / "target.toml"


def random_schedule(actions: ActionSpace, rng: random.Random, steps: int, lo: float,
                    hi: float) -> Schedule:
    chosen = [actions.fault(rng.randrange(len(actions))) for _ in range(steps)]
    return Schedule(tuple(Step(f, round(rng.uniform(lo, hi), 3)) for f in chosen),
                    rng.getrandbits(32))


async def throughput(args: argparse.Namespace, root: Path) -> dict:
    cfg = load_config(args.target, args.set)
    allowed = [a for a in cfg.faults.allowed if a not in ("clock-skew",)]
    actions = ActionSpace.from_dict({"nodes": cfg.cluster.nodes, "allowed": allowed})
    rng = random.Random(args.seed)
    cov = HBCoverage()
    server = TrackerServer()
    server.start()
    durations, events, findings = [], [], 0
    phases: dict[str, list[float]] = {}
    try:
        t0 = time.monotonic()
        for i in range(args.executions):
            sched = random_schedule(actions, rng, args.steps, args.step_min, args.step_max)
            res = await Execution(cfg, root / f"t{i}", rng.getrandbits(32), tracker=server,
                                  coverage=cov, keep_trace=False).run(sched)
            durations.append(res.stats.duration)
            events.append(res.stats.events)
            findings += bool(res.findings)
            for k, v in res.stats.phases.items():
                phases.setdefault(k, []).append(v)
            if not args.json:
                print(f"exec {i}: {res.stats.duration:.2f}s events={res.stats.events} "
                      f"findings={[f.key for f in res.findings]}", flush=True)
        wall = time.monotonic() - t0
    finally:
        server.stop(0.5)
    med = statistics.median(durations)
    return {
        "executions": args.executions,
        "steps": args.steps,
        "median_duration_s": round(med, 3),
        "execs_per_hour": round(3600.0 / med, 1),
        "execs_per_hour_wall": round(3600.0 * args.executions / wall, 1),
        "median_events": statistics.median(events),
        "median_phase_s": {k: round(statistics.median(v), 3) for k, v in phases.items()},
        "executions_with_findings": findings,
        "hb_coverage": cov.hb_coverage(),
        "code_edges": cov.code_edges(),
    }


async def finding_rate(args: argparse.Namespace, root: Path) -> dict:
    cfg = load_config(MAELSTROM, ["target.node=nodes/pb_kv.py", "workload.name=lin-kv",
                                  "schedule.quiescence=500ms"])
    server = TrackerServer()
    server.start()
    hits, times = 0, []
    try:
        for i in range(args.finding_rate):
            sched = Schedule(tuple(Step(parse_fault(t.strip()), args.finding_step) for t in
                                   args.finding_schedule.split(";")), i)
            res = await Execution(cfg, root / f"f{i}", args.seed + i, tracker=server,
                                  keep_trace=False).run(sched)
            hits += any(f.verdict.name == "not-linearizable" for f in res.findings)
            times.append(res.stats.duration)
    finally:
        server.stop(0.5)
    return {"pb_kv_runs": args.finding_rate, "pb_kv_findings": hits,
            "pb_kv_rate": round(hits / max(1, args.finding_rate), 3),
            "pb_kv_median_duration_s": round(statistics.median(times), 3) if times else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default=str(MAELSTROM))
    p.add_argument("--set", action="append", default=[], help="config override key=value")
    p.add_argument("--executions", type=int, default=5)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--step-min", type=float, default=0.5)
    p.add_argument("--step-max", type=float, default=1.0)
    p.add_argument("--finding-rate", type=int, default=0, metavar="K")
    p.add_argument("--finding-schedule", default="partition isolate n1;wait;heal",
                   help="';'-separated faults of the pb_kv schedule")
    p.add_argument("--finding-step", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-exec-") as tmp:
        out = asyncio.run(throughput(args, Path(tmp)))
        if args.finding_rate:
            out.update(asyncio.run(finding_rate(args, Path(tmp))))
    out["target"] = Path(args.target).parent.name
    out["figure"] = "execs_per_hour"
    out["unit"] = "executions/hour"
    out["value"] = out["execs_per_hour"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
