"""Benchmark: time to check every reference history in ../shared/data/porcupine.

Checks the 52 etcd histories (model cas-register, Jepsen log format) and the 6
kv histories (model kv, EDN), each ``--repeat`` times, and reports the median
total over the repeats, the slowest file (median of its times) and whether
every verdict agrees with the expected one. Parsing is not timed; only the
check. Target: all of them in under 30 s total on this machine.

Go/Porcupine comparison: not run here (no Go toolchain); Porcupine's README
says it checks each of these in well under a second.

Run: ``python scripts/bench/linearizability.py [--repeat 3] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.checkers.linearizability import check  # noqa: E402
from fuzzer.workload.importers import load_history  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "porcupine"


def cases() -> list[tuple[Path, str, str, str]]:
    """(path, format, model, expected verdict) for every reference history."""
    etcd = DATA / "etcd"
    verdicts = dict(
        line.split() for line in (etcd / "verdicts.txt").read_text().splitlines() if line.strip()
    )
    out = [(etcd / name, "jepsen-log", "cas-register", v) for name, v in sorted(verdicts.items())]
    for p in sorted((DATA / "kv").glob("*.txt")):
        out.append(
            (p, "edn", "kv", "linearizable" if p.stem.endswith("-ok") else "not-linearizable")
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="budget per file (s)")
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args()

    loaded = [(p, load_history(p, fmt), model, exp) for p, fmt, model, exp in cases()]
    per_file: dict[str, list[float]] = {p.name: [] for p, *_ in loaded}
    totals = []
    mismatches: set[str] = set()
    for _ in range(args.repeat):
        total = 0.0
        for p, history, model, expected in loaded:
            t0 = time.perf_counter()
            result = check(history, model, args.timeout)
            dt = time.perf_counter() - t0
            total += dt
            per_file[p.name].append(dt)
            if result.verdict != expected:
                mismatches.add(p.name)
        totals.append(total)
    medians = {name: statistics.median(ts) for name, ts in per_file.items()}
    slowest = max(medians, key=medians.__getitem__)
    if not args.json:
        for name, t in sorted(medians.items(), key=lambda kv: -kv[1])[:10]:
            print(f"{name:20s} {t * 1000:9.1f} ms")
    doc = {
        "bench": "linearizability",
        "total_s": round(statistics.median(totals), 4),
        "unit": "s",
        "files": len(loaded),
        "repeats": args.repeat,
        "slowest_file": slowest,
        "slowest_s": round(medians[slowest], 4),
        "etcd_total_s": round(sum(t for n, t in medians.items() if n.startswith("etcd")), 4),
        "kv_total_s": round(sum(t for n, t in medians.items() if not n.startswith("etcd")), 4),
        "verdicts_agree": len(loaded) - len(mismatches),
        "mismatches": sorted(mismatches),
        "go": shutil.which("go"),
        "python": sys.version.split()[0],
    }
    print(json.dumps(doc))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
