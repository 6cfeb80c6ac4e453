"""Benchmark: Q-learning vs random vs power scheduling on the toy lock environment.

Each scheduler gets the same budget (``--episodes`` executions of at most
``--horizon`` steps, 39 actions: the default fault space of a 3-node
cluster) on :class:`fuzzer.scheduler.toy.ToyLock` in *global* novelty mode
(a combination lock of ``--depth`` secret steps; every (depth, action)
transition and every depth reached reveals HB cells once, like the tracker's
global map). Reported per scheduler, as medians over ``--seeds`` seeds:
distinct cells ("HB coverage") at 25/50/100 % of the budget, deepest state
reached, distinct states, findings (lock opened), final policy entropy.

Also: episodes until Q-learning's greedy policy equals the known optimal one
on the stationary lock (``episode`` novelty, depth 4), median over seeds.

The figure is Q-learning's coverage over random's at equal budget.

Run: ``python scripts/bench/scheduler_toy.py [--episodes 300] [--seeds 5] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.scheduler.actions import ActionSpace  # noqa: E402
from fuzzer.scheduler.baselines import PowerScheduler, RandomScheduler  # noqa: E402
from fuzzer.scheduler.qlearning import QConfig, QLearningScheduler  # noqa: E402
from fuzzer.scheduler.toy import ToyLock, run_episode  # noqa: E402

SPACE = ActionSpace.from_dict({"nodes": 3})
MAKERS = {
    "qlearning": lambda h: QLearningScheduler(SPACE),
    "qlearning-epsilon": lambda h: QLearningScheduler(SPACE, QConfig(policy="epsilon")),
    "random": lambda h: RandomScheduler(SPACE),
    "power": lambda h: PowerScheduler(SPACE, schedule_length=h),
}


def _campaign(name: str, seed: int, args: argparse.Namespace) -> dict:
    toy = ToyLock(SPACE, depth=args.depth, seed=1_000_003 * seed + 17, novelty="global")
    s = MAKERS[name](args.horizon)
    rng = random.Random(seed)
    marks = {args.episodes // 4: "cov_25", args.episodes // 2: "cov_50"}
    out = {}
    t0 = time.perf_counter()
    for ep in range(1, args.episodes + 1):
        run_episode(toy, s, rng, horizon=args.horizon)
        if ep in marks:
            out[marks[ep]] = toy.coverage
    out.update(
        cov_100=toy.coverage,
        max_depth=toy.max_depth,
        states=len(toy.states),
        findings=toy.findings,
        entropy=s.stats()["policy_entropy"],
        seconds=time.perf_counter() - t0,
    )
    return out


def _converge(seed: int, policy: str, limit: int = 2000) -> int:
    toy = ToyLock(SPACE, depth=4, seed=1_000_003 * seed + 29)
    q = QLearningScheduler(SPACE, QConfig(policy=policy))
    rng = random.Random(seed)
    for ep in range(1, limit + 1):
        run_episode(toy, q, rng)
        if all(q.greedy(s) == a for s, a in toy.optimal().items()):
            return ep
    return limit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    per: dict[str, dict] = {}
    for name in MAKERS:
        runs = [_campaign(name, seed, args) for seed in range(args.seeds)]
        per[name] = {
            k: round(statistics.median(r[k] for r in runs), 3 if k in ("entropy", "seconds") else 1)
            for k in runs[0]
        }
    conv = {
        p: statistics.median(_converge(seed, p) for seed in range(args.seeds))
        for p in ("softmax", "epsilon")
    }
    ratio = per["qlearning"]["cov_100"] / max(1, per["random"]["cov_100"])
    result = {
        "figure": round(ratio, 2),
        "unit": "x coverage of random (qlearning / random, median distinct cells at equal budget)",
        "schedulers": per,
        "episodes_to_optimal_policy": conv,
        "budget_episodes": args.episodes,
        "horizon": args.horizon,
        "depth": args.depth,
        "actions": len(SPACE),
        "seeds": args.seeds,
        "power_vs_random": round(per["power"]["cov_100"] / max(1, per["random"]["cov_100"]), 2),
    }
    if not args.json:
        for name, row in per.items():
            print(f"{name:18} " + " ".join(f"{k}={v}" for k, v in row.items()))
        print(f"episodes to optimal policy (median): {conv}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
