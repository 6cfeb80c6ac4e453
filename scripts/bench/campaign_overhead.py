"""What the campaign itself costs per execution (not the cluster): commit and bundles.

Measures, as medians over ``--repeat`` runs:

- ``commit_ms``: one commit (coverage maps + scheduler state + campaign state, each
  written atomically with fsync) after a toy campaign filled the Q-table;
- ``bundle_save_ms`` / ``bundle_load_ms`` / ``bundle_bytes``: a reproducer bundle with
  ``--events`` trace events and a 2000-op history, saved and loaded (validated);
- ``stats_ms``: one fuzzer_stats rewrite plus a plot_data row.

    .venv/bin/python scripts/bench/campaign_overhead.py --json
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

from fuzzer.campaign import Budget, Campaign, CampaignDir, CampaignMeta  # noqa: E402
from fuzzer.campaign.setup import action_space_for  # noqa: E402
from fuzzer.checkers.verdict import violated  # noqa: E402
from fuzzer.config import load_config  # noqa: E402
from fuzzer.faults import Schedule  # noqa: E402
from fuzzer.repro.bundle import Bundle, bundle_fields, load_bundle, save_bundle  # noqa: E402
from fuzzer.scheduler import make_scheduler  # noqa: E402
from fuzzer.scheduler.toy import ToyLock  # noqa: E402


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cfg = load_config(ROOT / "targets/pysyncobj/target.toml")
    actions = action_space_for(cfg)
    sched = make_scheduler("qlearning", actions, {}, 12, 1.0)
    lock = ToyLock(actions, depth=3, seed=args.seed, novelty="global")
    for _ in range(300):  # fill a Q-table the size a few hundred executions make
        from fuzzer.scheduler.toy import run_episode

        run_episode(lock, sched, rng, horizon=12)
    with tempfile.TemporaryDirectory() as tmp:
        d = CampaignDir(Path(tmp) / "out")
        c = Campaign(cfg, d, CampaignMeta(seed=args.seed, scheduler="qlearning"), sched,
                     actions, lambda *a: None, Budget(executions=0))
        c.open(resume=False)
        commit_ms = _ms(c._commit, args.repeat)
        stats_ms = _ms(lambda: c.write_stats(force_plot=True), args.repeat)
        events = [[f"n{i % 3 + 1}", i, i, time.time_ns(), i, 1, ["n2", "append", i]]
                  for i in range(args.events)]
        history = [[i % 6, "ok" if i % 2 else "invoke", "read", i, i % 3, i]
                   for i in range(2000)]
        b = Bundle(config=cfg.to_dict(), seed=1, schedule=Schedule().to_text(),
                   signature="bench/x[]", verdicts=bundle_fields([violated("b", "x", "y")]),
                   trace=tuple(events), history=tuple(history))
        path = Path(tmp) / "b.bundle"
        save_ms = _ms(lambda: save_bundle(path, b), max(3, args.repeat // 4))
        load_ms = _ms(lambda: load_bundle(path), max(3, args.repeat // 4))
        size = path.stat().st_size
        asyncio.run(asyncio.sleep(0))
    out = {
        "commit_ms": round(commit_ms, 2),
        "stats_ms": round(stats_ms, 2),
        "bundle_save_ms": round(save_ms, 1),
        "bundle_load_ms": round(load_ms, 1),
        "bundle_bytes": size,
        "events": args.events,
        "q_states": sched.stats()["states_seen"],
        "actions": len(actions),
        "unit": "ms (median)",
    }
    if not args.json:
        for k, v in out.items():
            print(f"{k:>15}: {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
