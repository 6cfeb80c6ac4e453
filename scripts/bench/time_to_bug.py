"""Benchmark: time to the first safety finding, per scheduler and seed.

Runs one real campaign (``hbfuzz run --no-ui`` in a subprocess, its own
directory ``OUT/s<seed>-<scheduler>``) per scheduler and seed with the same
``--budget``, usually on a buggy target version (``--set
target.version=0.3.11``). A campaign is stopped (SIGTERM, a clean stop) as
soon as its first safety bundle appears in ``crashes/``; the time to bug is
the bundle's own ``time:`` (ms since the campaign started, so the cluster
setup before the first execution is counted and the benchmark's polling is
not). Liveness findings (``hangs/``) do not stop a campaign.

Each finding is reported with its signature and explanation (from ``hbfuzz
stats OUT --json``), so a reader can tell a real Raft bug from an oracle's
false positive; ``--stop-on REGEX`` stops only on findings whose signature
matches (others are reported but the campaign goes on).

Headline: ``value`` = median time to the first safety finding of qlearning
over the seeds in which it found one (``found`` says in how many), with
random's and power's alongside (issue 6 target: qlearning 5/5 seeds and
median at least 2x faster than random).

``--parallel``: the schedulers of one seed run side by side (they share the
machine equally: fair at equal budget, slower in absolute time).

Run: ``python scripts/bench/time_to_bug.py --set target.version=0.3.11 --seeds 5
--budget 30m --json``; one JSON object on the last line.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hbfuzz_runs import (  # noqa: E402
    PYTHON,
    ROOT,
    Grid,
    bench_parser,
    bundles,
    number,
    read_run,
    run_all,
    say_to,
)


def findings_of(out: Path) -> list[dict]:
    """The findings table of a campaign (``hbfuzz stats OUT --json``)."""
    proc = subprocess.run([PYTHON, "-m", "fuzzer", "stats", str(out), "--json"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    try:
        return json.loads(proc.stdout).get("findings", [])
    except (ValueError, AttributeError):
        return []


def main() -> None:
    p = bench_parser(__doc__.splitlines()[0], budget="30m",
                     budget_help="per campaign, e.g. 30m, 5m", seeds=5,
                     set_help="config override for every campaign, e.g. target.version=0.3.11")
    p.add_argument("--stop-on", default="", metavar="REGEX",
                   help="stop only on a safety finding whose signature matches (default: any)")
    args = p.parse_args()
    grid = Grid.of(args)
    budget, scheds, seeds = grid.budget, list(grid.schedulers), list(grid.seeds)
    want = re.compile(args.stop_on) if args.stop_on else None
    say = say_to(args.json)

    def first_hit(out: Path) -> tuple | None:
        """(bundle, finding row) of the first safety finding that counts, if any."""
        found = bundles(out, "crashes")
        if not found:
            return None
        if want is None:
            return found[0], None
        rows = {Path(f["file"]).name: f for f in findings_of(out)}
        for b in found:
            row = rows.get(b.path.name)
            if row is not None and want.search(row.get("signature", "")):
                return b, row
        return None

    def stop_when(r) -> str:
        return "safety finding" if first_hit(r.spec.out) is not None else ""

    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-ttb-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        runs = []
        for seed in seeds:
            specs = grid.specs(root, seed)
            say(f"seed {seed}: {', '.join(scheds)}, budget {budget:g}s each"
                f"{' side by side' if args.parallel else ''}")
            for r in run_all(specs, parallel=args.parallel, stop_when=stop_when, poll=2.0,
                             progress=say):
                stats, _ = read_run(r.spec.out)
                hit = first_hit(r.spec.out)
                rows = findings_of(r.spec.out)
                row = None
                if hit is not None:
                    row = hit[1] or next((f for f in rows
                                          if Path(f["file"]).name == hit[0].path.name), None)
                runs.append({
                    "scheduler": r.spec.scheduler,
                    "seed": seed,
                    "out": str(r.spec.out),
                    "found": hit is not None,
                    "time_s": round(hit[0].time_s, 1) if hit else None,
                    "execs": hit[0].execs if hit else None,
                    "bundle": str(hit[0].path) if hit else None,
                    "signature": (row or {}).get("signature"),
                    "explanation": (row or {}).get("explanation"),
                    "execs_done": int(number(stats, "execs_done")),
                    "execs_per_hour": round(number(stats, "execs_per_hour"), 1),
                    "all_findings": [{k: f.get(k) for k in ("file", "kind", "count", "signature")}
                                     for f in rows],
                    "stopped_by": r.stopped_by,
                })
        per: dict[str, dict] = {}
        for s in scheds:
            mine = [r for r in runs if r["scheduler"] == s]
            times = [r["time_s"] for r in mine if r["found"]]
            per[s] = {"found": f"{len(times)}/{len(mine)}",
                      "median_time_s": round(statistics.median(times), 1) if times else None,
                      "times_s": [r["time_s"] for r in mine]}
        for r in runs:
            say(f"  {r['scheduler']:9} seed {r['seed']}: "
                + (f"safety finding after {r['time_s']}s / {r['execs']} execs: {r['signature']}"
                   if r["found"] else f"none in {budget:g}s ({r['execs_done']} execs)"))
        q = per.get("qlearning", {}).get("median_time_s")
        rnd = per.get("random", {}).get("median_time_s")
        out = {
            "figure": "median_time_to_first_safety_finding_qlearning",
            "unit": "seconds",
            "value": q,
            "speedup_vs_random": round(rnd / q, 2) if q and rnd else None,
            "target": Path(args.target).parent.name,
            "overrides": args.set,
            "budget_s": budget,
            "seeds": seeds,
            "parallel": args.parallel,
            "note": ("schedulers of a seed ran side by side, sharing the machine" if args.parallel
                     else "campaigns ran one at a time"),
            "schedulers": per,
            "runs": runs,
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
