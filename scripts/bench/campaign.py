"""Benchmark: distinct HB coverage over time and executions/hour per scheduler, equal budget.

Runs one real campaign (``hbfuzz run --no-ui``, a subprocess, its own
directory ``OUT/s<seed>-<scheduler>``) per scheduler and seed, all with the
same ``--budget`` and the same seeds, and reads each campaign's
``plot_data`` and ``fuzzer_stats``. Prints per run the HB coverage at ten
points of the budget (the coverage at exactly the budget, not after the
last execution's overrun, is the figure compared), code edges, executions
and executions/hour; per scheduler the medians over seeds.

Headline: ``value`` = median over seeds of qlearning's distinct HB coverage
at the budget divided by random's (issue 6 target >= 1.5), with the
executions/hour of the target alongside (target >= 300 for 3-node
pysyncobj with 12-step schedules).

Sequential by default: each campaign has the machine to itself (absolute
executions/hour are the real ones). ``--parallel``: the schedulers of one
seed run side by side and share the machine equally; a fair comparison at
equal budget, but each campaign's absolute executions/hour is lower.

Run: ``python scripts/bench/campaign.py --target targets/pysyncobj/target.toml
--budget 20m --seeds 3 --json``; one JSON object on the last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hbfuzz_runs import (  # noqa: E402
    Grid,
    at_time,
    bench_parser,
    number,
    read_run,
    run_all,
    say_to,
)

SAMPLES = 10


def summarize(r, budget: float) -> dict:
    stats, rows = read_run(r.spec.out)
    times = [round(budget * k / SAMPLES) for k in range(1, SAMPLES + 1)]
    execs = at_time(rows, budget, "execs_done") or int(number(stats, "execs_done"))
    run_time = number(stats, "run_time")
    return {
        "scheduler": r.spec.scheduler,
        "seed": r.spec.seed,
        "out": str(r.spec.out),
        "hb_coverage": at_time(rows, budget, "hb_coverage"),
        "hb_coverage_final": int(number(stats, "hb_coverage")),
        "code_edges": at_time(rows, budget, "code_edges"),
        "corpus_count": at_time(rows, budget, "corpus_count"),
        "execs_done": int(number(stats, "execs_done")),
        "execs_at_budget": execs,
        "execs_per_hour": round(number(stats, "execs_per_hour"), 1),
        "run_time_s": round(run_time, 1),
        "saved_crashes": int(number(stats, "saved_crashes")),
        "saved_hangs": int(number(stats, "saved_hangs")),
        "exec_errors": int(number(stats, "exec_errors")),
        "policy_entropy": stats.get("policy_entropy", ""),
        "hb_over_time": [[t, at_time(rows, t, "hb_coverage")] for t in times],
        "exit": r.returncode,
        "stopped_by": r.stopped_by,
    }


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def main() -> None:
    p = bench_parser(__doc__.splitlines()[0], budget="20m",
                     budget_help="per campaign, e.g. 20m, 4m, 90s", seeds=3,
                     set_help="config override for every campaign (repeatable)")
    args = p.parse_args()
    grid = Grid.of(args)
    budget, scheds, seeds = grid.budget, list(grid.schedulers), list(grid.seeds)
    say = say_to(args.json)

    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-campaign-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        runs = []
        for seed in seeds:
            specs = grid.specs(root, seed)
            say(f"seed {seed}: {', '.join(scheds)} for {budget:g}s each"
                f"{' side by side' if args.parallel else ''}")
            runs += [summarize(r, budget) for r in run_all(specs, parallel=args.parallel,
                                                           progress=say)]
        per: dict[str, dict] = {}
        for s in scheds:
            mine = [r for r in runs if r["scheduler"] == s]
            per[s] = {
                "median_hb_coverage": med([r["hb_coverage"] for r in mine]),
                "median_code_edges": med([r["code_edges"] for r in mine]),
                "median_execs_per_hour": med([r["execs_per_hour"] for r in mine]),
                "median_execs_at_budget": med([r["execs_at_budget"] for r in mine]),
                "median_hb_over_time": [
                    [t, med([r["hb_over_time"][i][1] for r in mine])]
                    for i, (t, _) in enumerate(mine[0]["hb_over_time"])] if mine else [],
                "safety_findings": sum(r["saved_crashes"] for r in mine),
                "liveness_findings": sum(r["saved_hangs"] for r in mine),
            }
        for r in runs:
            say(f"  {r['scheduler']:9} seed {r['seed']}: hb {r['hb_coverage']} at {budget:g}s "
                f"(final {r['hb_coverage_final']}), edges {r['code_edges']}, "
                f"{r['execs_done']} execs, {r['execs_per_hour']}/h, "
                f"findings {r['saved_crashes']} safety {r['saved_hangs']} liveness; "
                f"over time {r['hb_over_time']}")
        q = per.get("qlearning", {}).get("median_hb_coverage", 0)
        rnd = per.get("random", {}).get("median_hb_coverage", 0)
        ratio = round(q / rnd, 3) if q and rnd else None
        all_eph = [r["execs_per_hour"] for r in runs]
        out = {
            "figure": "hb_coverage_ratio_qlearning_over_random",
            "unit": "ratio of median distinct HB coverage at equal budget",
            "value": ratio,
            "target": Path(args.target).parent.name,
            "overrides": args.set,
            "budget_s": budget,
            "seeds": seeds,
            "schedulers": per,
            "median_execs_per_hour": med(all_eph),
            "execs_per_hour_unit": "executions/hour per campaign",
            "parallel": args.parallel,
            "note": ("schedulers of a seed ran side by side, sharing the machine equally: a fair "
                     "comparison at equal budget, but absolute executions/hour are lower than "
                     "for one campaign alone") if args.parallel else
                    "campaigns ran one at a time (absolute executions/hour)",
            "runs": runs,
        }
        say(f"qlearning/random HB coverage ratio (median over {len(seeds)} seed(s)): {ratio}; "
            f"median executions/hour {out['median_execs_per_hour']}"
            f"{' (side by side)' if args.parallel else ''}")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
