"""Executions/hour with ``--jobs 1, 2, 4`` and with Ray, and what a result costs the driver.

For each configuration, a fresh campaign on ``--target`` (default
targets/pysyncobj, 3 nodes, its default 12-step schedule) runs for
``--budget`` (default 3m) with the same seed and scheduler; executions/hour
is ``execs_done / run_time`` of the campaign (run_time starts when the
campaign is opened, so a local Ray instance is started *before*, by this
script, with ``ray.init(num_cpus=2)``, loopback only, and does not count).

Configurations: ``jobs1``, ``jobs2``, ``jobs4`` (local lanes) and ``ray2``
(``--ray`` with 2 jobs on the 2-CPU local Ray instance), compared with
``jobs2``: ``ray_vs_jobs`` = ray2 / jobs2 execs per hour. From the Ray run:
``driver_us_per_window`` (merge + Q updates + filing + commit per window,
microseconds) and ``result_bytes`` (mean msgpack result size per execution),
for the projection in docs/scaling.md. Also ``merge_us_per_window``: the
coverage-merge + Q-update part alone, timed offline on recorded deltas.

    .venv/bin/python scripts/bench/scaling.py --budget 3m --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray: 127.0.0.1 only

from fuzzer.campaign.commands import _run_setup, build_campaign, parse_budget  # noqa: E402
from fuzzer.campaign.loop import Budget  # noqa: E402
from fuzzer.campaign.setup import CampaignMeta  # noqa: E402
from fuzzer.campaign.stats import read_stats  # noqa: E402
from fuzzer.config import load_config  # noqa: E402


def run_one(cfg, target: Path, overrides: list[str], out: Path, jobs: int, ray: str | None,
            budget: float, seed: int, scheduler: str) -> dict:
    from fuzzer.campaign.commands import run_campaign

    meta = CampaignMeta(seed=seed, scheduler=scheduler, target_file=str(target.resolve()),
                        overrides=tuple(overrides))
    c = build_campaign(cfg, out, meta, Budget(duration=budget), jobs=jobs, ray=ray)
    s = run_campaign(c)
    stats = read_stats(out / "fuzzer_stats")
    row = {
        "jobs": jobs, "ray": bool(ray), "execs_done": s.execs_done,
        "run_time_s": round(s.run_time, 1),
        "execs_per_hour": round(s.execs_done * 3600.0 / s.run_time, 1) if s.run_time else 0.0,
        "exec_errors": int(stats.get("exec_errors", 0)), "hb_coverage": s.hb_coverage,
    }
    for k in ("ray_driver_us_per_window", "ray_driver_us_per_result", "ray_result_bytes_mean",
              "ray_results", "ray_prepare_s", "ray_context_bytes", "ray_contexts"):
        if k in stats:
            row[k] = float(stats[k])
    return row


def merge_cost(cfg, target: Path, overrides: list[str], seed: int, n: int = 3) -> dict:
    """Offline: run ``n`` executions with the worker function (no Ray), then time merging
    their results into a campaign (coverage merge + Q updates) many times."""
    from fuzzer.campaign.rayworker import make_context, run_remote
    from fuzzer.campaign.shared import CoverageDelta, merge_delta, unpack
    from fuzzer.scheduler import reward

    tmp = Path(tempfile.mkdtemp(prefix="hbfuzz-bench-"))
    try:
        meta = CampaignMeta(seed=seed, scheduler="qlearning", target_file=str(target.resolve()),
                            overrides=tuple(overrides))
        c = build_campaign(cfg, tmp / "c", meta, Budget(executions=1))
        ctx = make_context(c, True)
        results = [unpack(run_remote(ctx, i, seed + i, None, 300.0)) for i in range(n)]
        windows, t = 0, 0.0
        for _ in range(50):
            c2 = build_campaign(cfg, tmp / f"m{random.random()}", meta, Budget(executions=1))
            t0 = time.perf_counter()
            for r in results:
                deltas = [CoverageDelta.from_list(x) for x in r.get("deltas", [])]
                for s, a, s2, done, _found, di in r.get("transitions", []):
                    nov = merge_delta(c2.coverage, deltas[di], s2)
                    if a >= 0:
                        c2.scheduler.observe(s, a, reward(nov), s2, done)
                windows += len(deltas)
            t += time.perf_counter() - t0
        return {"merge_us_per_window": round(1e6 * t / windows, 1) if windows else 0.0,
                "offline_results": n,
                "offline_result_errors": sum(1 for r in results if r.get("error"))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="targets/pysyncobj/target.toml")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--budget", default="3m", help="per configuration (default 3m)")
    ap.add_argument("--jobs", default="1,2,4")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scheduler", default="qlearning")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    budget = parse_budget(args.budget)
    target = ROOT / args.target
    cfg = load_config(target, args.overrides)
    _run_setup(cfg)
    rows: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="hbfuzz-scaling-"))
    try:
        for j in (int(x) for x in args.jobs.split(",")):
            rows[f"jobs{j}"] = run_one(cfg, target, args.overrides, work / f"jobs{j}", j, None,
                                       budget, args.seed, args.scheduler)
            print(f"jobs{j}: {rows[f'jobs{j}']}", file=sys.stderr, flush=True)
        if not args.no_ray:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False,
                     runtime_env={"env_vars": {"GRPC_ENABLE_FORK_SUPPORT": "false",
                                               "GRPC_VERBOSITY": "ERROR"}})
            try:
                address = ray.get_runtime_context().gcs_address
                rows["ray2"] = run_one(cfg, target, args.overrides, work / "ray2", 2, address,
                                       budget, args.seed, args.scheduler)
            finally:
                ray.shutdown()
            print(f"ray2: {rows['ray2']}", file=sys.stderr, flush=True)
        extra = merge_cost(cfg, target, args.overrides, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "figure": "execs_per_hour",
        "unit": "executions/hour",
        "target": args.target,
        "budget_s": budget,
        "scheduler": args.scheduler,
        "schedule_length": cfg.schedule.length,
        "step_s": float(cfg.schedule.step),
        "cpus": os.cpu_count(),
        "configs": rows,
        **extra,
    }
    if "ray2" in rows and "jobs2" in rows and rows["jobs2"]["execs_per_hour"]:
        out["ray_vs_jobs"] = round(rows["ray2"]["execs_per_hour"]
                                   / rows["jobs2"]["execs_per_hour"], 3)
        out["driver_us_per_window"] = rows["ray2"].get("ray_driver_us_per_window")
        out["result_bytes"] = rows["ray2"].get("ray_result_bytes_mean")
        out["context_bytes"] = rows["ray2"].get("ray_context_bytes")
    if "jobs1" in rows and rows["jobs1"]["execs_per_hour"]:
        for k, r in rows.items():
            out[f"speedup_{k}"] = round(r["execs_per_hour"] / rows["jobs1"]["execs_per_hour"], 2)
    if not args.json:
        for k, r in rows.items():
            print(f"{k:6s} {r['execs_per_hour']:8.1f} execs/h  ({r['execs_done']} in "
                  f"{r['run_time_s']}s, errors {r['exec_errors']})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
