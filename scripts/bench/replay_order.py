"""Benchmark: does enforcing the recorded delivery order raise reproduction rates?

A real finding of the Maelstrom primary-backup example (pb_kv under the
stdio mediator; default schedule: isolate backup n2 for 1.5 s, about three
times pb_kv's 0.5 s replication timeout, then heal: a stale read, found by
about one seed in four, so a timing-dependent finding) is recorded
as a bundle by one real execution; then the bundle is replayed ``--runs``
times with the recorded delivery order enforced (fuzzer/network/ordering.py)
and ``--runs`` times without, alternating (ABAB...) so machine noise hits
both alike. Reports both reproduction rates, their difference, the give-up
rate of the enforcement, how many runs gave up at least once, the median
run time each way and the mean HB similarity to the original.

    .venv/bin/python scripts/bench/replay_order.py [--runs 8] [--timeout 0.2] [--json]

Bounded: ``2 * runs`` executions of ~3-6 s each plus the recording run(s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzzer.config import load_config  # noqa: E402
from fuzzer.execution import Execution  # noqa: E402
from fuzzer.faults import Schedule, Step, parse_fault  # noqa: E402
from fuzzer.network.ordering import DEFAULT_TIMEOUT, OrderStats  # noqa: E402
from fuzzer.repro.bundle import Bundle, bundle_fields, save_bundle, to_plain  # noqa: E402
from fuzzer.repro.replay import (  # noqa: E402
    BundleRunner,
    coverage_cells,
    jaccard,
    plan_from_bundle,
    trace_events,
)

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "targets" / "maelstrom" / "target.toml"
PB_KV = ["target.node=nodes/pb_kv.py", "workload.name=lin-kv", "schedule.quiescence=500ms"]
SCHEDULES = {
    "isolate": ["partition isolate n2", "wait", "wait", "heal", "wait"],
    "kill": ["wait", "link-delay n2->n3 20ms", "kill n1", "wait", "heal", "link-clear *->*"],
    "reorder": ["link-reorder *->* 50%", "partition isolate n3", "wait", "heal", "wait"],
}


def record(cfg, work: Path, steps: list[str], seed: int, attempts: int
           ) -> tuple[Path, Bundle] | None:
    """One execution that finds a safety violation, saved as a bundle (None: none did)."""
    for a in range(attempts):
        sched = Schedule(tuple(Step(parse_fault(s), 0.5) for s in steps), seed + a)
        res = asyncio.run(Execution(cfg, work / f"rec{a}", seed + a).run(sched))
        if res.safety:
            f = res.safety[0]
            b = Bundle(config=cfg.to_dict(), seed=res.seed, schedule=res.schedule.to_text(),
                       signature=f.key, kind=f.kind, verdicts=bundle_fields([f.verdict]),
                       choices=res.choices.to_msgpack(), workload=cfg.workload.to_dict(),
                       trace=tuple(to_plain(list(res.trace))))
            path = save_bundle(work / "finding.bundle", b)
            return path, b
    return None


async def replays(bundle: Bundle, path: Path, work: Path, runs: int, timeout: float):
    plan = plan_from_bundle(bundle, str(path))
    recorded = bundle.choices_obj(str(path)).order
    original = coverage_cells(trace_events(bundle.trace, str(path)))
    out: dict[str, list] = {"order": [], "plain": []}
    async with (
        BundleRunner(bundle, str(path), work / "order", order=recorded,
                     order_timeout=timeout) as with_order,
        BundleRunner(bundle, str(path), work / "plain") as plain,
    ):
        for i in range(runs):
            for name, runner in (("order", with_order), ("plain", plain))[:: 1 if i % 2 == 0
                                                                             else -1]:
                o = await runner.run(plan.candidate())
                out[name].append(o)
                got = "hit" if bundle.signature in o.signatures else "miss"
                extra = ""
                if o.order is not None:
                    extra = f" gave_up={o.order.gave_up} late={o.order.late}"
                print(f"run {i + 1} {name}: {got} {o.seconds:.1f}s "
                      f"sim={jaccard(o.cells, original):.2f}{extra}", file=sys.stderr,
                      flush=True)
    return out, original, len(recorded)


def summarise(outs: list, target: str, original: frozenset[int]) -> dict:
    hits = sum(1 for o in outs if target in o.signatures)
    d = {"runs": len(outs), "hits": hits, "rate": hits / len(outs),
         "median_seconds": round(statistics.median(o.seconds for o in outs), 2),
         "mean_similarity": round(statistics.mean(jaccard(o.cells, original) for o in outs), 3)}
    stats = [o.order for o in outs if o.order is not None]
    if stats:
        total = OrderStats()
        for s in stats:
            total = total + s
        d["order"] = total.as_dict()
        d["runs_gave_up"] = sum(1 for s in stats if s.gave_up or s.late)
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=8, help="replays each way (default 8)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help=f"order give-up timeout in seconds (default {DEFAULT_TIMEOUT})")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="isolate")
    ap.add_argument("--attempts", type=int, default=10,
                    help="recording executions (seeds) tried until one finds a violation")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    cfg = load_config(TARGET, PB_KV)
    with tempfile.TemporaryDirectory(prefix="hbfuzz-bench-order-") as tmp:
        work = Path(tmp)
        schedule = args.schedule
        found = record(cfg, work, SCHEDULES[schedule], args.seed, args.attempts)
        if found is None and schedule != "kill":  # timing-dependent: fall back to a sure one
            print(f"no finding with schedule {schedule!r} in {args.attempts} seeds; "
                  "falling back to 'kill'", file=sys.stderr, flush=True)
            schedule = "kill"
            found = record(cfg, work, SCHEDULES[schedule], args.seed, args.attempts)
        if found is None:
            raise SystemExit(f"no safety finding in {args.attempts} executions")
        path, bundle = found
        print(f"finding {bundle.signature}", file=sys.stderr, flush=True)
        outs, original, n_recorded = asyncio.run(
            replays(bundle, path, work, args.runs, args.timeout))
    with_order = summarise(outs["order"], bundle.signature, original)
    plain = summarise(outs["plain"], bundle.signature, original)
    result = {
        "benchmark": "replay_order",
        "target": "maelstrom pb_kv (stdio)",
        "schedule": schedule,
        "finding": bundle.signature,
        "recorded_deliveries": n_recorded,
        "order_timeout_s": args.timeout,
        "runs_each": args.runs,
        "rate_with_order": with_order["rate"],
        "rate_without_order": plain["rate"],
        "rate_gain": round(with_order["rate"] - plain["rate"], 4),
        "give_up_rate": with_order.get("order", {}).get("give_up_rate"),
        "with_order": with_order,
        "without_order": plain,
        "seconds": round(time.monotonic() - t0, 1),
        "unit": "reproduction rate (share of replays giving the finding's signature)",
    }
    if not args.json:
        for k, v in result.items():
            if not isinstance(v, dict):
                print(f"{k}: {v}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
