"""Benchmark: the cost of minimisation (candidates tried, runs) on padded schedules.

A pure model of a bug (isolate n1 for >= 1s, later kill n1, >= 2 clients)
hidden among P irrelevant steps; each run reproduces a present bug with
probability ``rate``. Reports, per (schedule size, rate), the median number
of candidates tried and of runs over ``--seeds`` seeds, and how often the
result was the exact 2-step minimum. No cluster: this measures the search
(ddmin + simplification + workload), not the target; multiply runs by the
target's execution time for wall time (pb_kv: ~3-8 s per run).

    .venv/bin/python scripts/bench/minimize.py [--seeds 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzzer import faults as F  # noqa: E402
from fuzzer.repro.candidate import Candidate, Plan  # noqa: E402
from fuzzer.repro.minimize import MinimizeOptions, minimize  # noqa: E402
from fuzzer.schedule import parse_step  # noqa: E402

NODES = ("n1", "n2", "n3", "n4", "n5")
BUG = "bug"
PAD = ["wait 2s", "link-delay n3->n4 50ms 1s", "pause n4 1s", "resume n4 0.5s",
       "partition majority-minority n3,n4,n5|n1,n2 2s", "heal 1s", "clock-skew n5 +1s 1s",
       "restart n3 2s", "link-drop *->n5 30% 1.5s", "kill n5 1s", "kill n2 1s", "wait 1s"]


def present(c: Candidate) -> bool:
    if any(o == "workload.clients=1" for o in c.overrides):
        return False
    cut = None
    for i, s in enumerate(c.steps):
        f = s.fault
        iso = (isinstance(f, F.Partition) and f.shape == "isolate" and 0 in f.node.indices) or (
            isinstance(f, F.LinkDrop) and f.p == 1.0 and 0 in f.src.indices
            and 1 in f.dst.indices)
        if iso and s.duration >= 1.0 and cut is None:
            cut = i
        if isinstance(f, F.Kill) and 0 in f.node.indices and cut is not None and i > cut:
            return True
    return False


class Model:
    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate, self.rng = rate, rng

    async def reproduce(self, c: Candidate, times: int) -> list[str | None]:
        return [BUG if present(c) and self.rng.random() < self.rate else None
                for _ in range(times)]


def padded(size: int, rng: random.Random) -> Plan:
    pad = [rng.choice(PAD) for _ in range(size - 2)]
    a, b = sorted(rng.sample(range(size), 2))
    texts = list(pad)
    texts.insert(a, "partition isolate n1 4s")
    texts.insert(b, "kill n1 2s")
    return Plan.build([parse_step(t) for t in texts], 1, nodes=NODES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for size in (12, 24, 48):
        for rate in (1.0, 0.5):
            tried, runs, exact = [], [], 0
            for seed in range(args.seeds):
                rng = random.Random(seed * 1000 + size)
                plan = padded(size, rng)
                opts = MinimizeOptions(rate=rate, n_nodes=5, verify_runs=0,
                                       workload={"workload.clients": 3})
                res = asyncio.run(minimize(plan, Model(rate, rng), BUG, opts))
                tried.append(res.tried)
                runs.append(res.runs)
                exact += res.minimal.size == 2
            row = {"size": size, "rate": rate, "tried_median": statistics.median(tried),
                   "runs_median": statistics.median(runs), "exact": exact / args.seeds}
            rows.append(row)
            if not args.json:
                print(f"size {size:3d} rate {rate:.1f}: candidates {row['tried_median']:6.1f}"
                      f"  runs {row['runs_median']:6.1f}  exact 2-step {row['exact']:.0%}")
    doc = {
        "bench": "minimize",
        "figure": next(r["tried_median"] for r in rows if r["size"] == 12 and r["rate"] == 1.0),
        "unit": "candidates (median, 12-step padded schedule, stable bug)",
        "rows": rows,
        "seeds": args.seeds,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
