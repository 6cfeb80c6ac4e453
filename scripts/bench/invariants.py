"""Benchmark: online invariant throughput and workload-checker speed.

Online invariants run inside the tracker for every event, so their cost is a
tax on ingest. This builds a seeded synthetic Raft-like trace (elections,
appends as SEND/RECV pairs, STATE commit/match indices, APPLY) of ``--events``
events on 5 nodes and times, as medians over ``--repeat`` runs:

- ingest into a tracker ``Timeline`` alone (``add_raw`` per node batch of 256);
- the same with an ``InvariantSet`` of the 5 built-in configs attached;
- the g-set and broadcast workload checkers on a history of ``--ops`` ops.

The figure is the online invariant throughput in events per second (with the
timeline's own cost included) and the overhead ratio over the bare timeline.

Run: ``python scripts/bench/invariants.py [--events 200000] [--json]``.
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

from fuzzer.checkers.invariants import InvariantSet  # noqa: E402
from fuzzer.checkers.workloads import check_broadcast, check_g_set  # noqa: E402
from fuzzer.tracker.timeline import Timeline  # noqa: E402
from fuzzer.workload.history import History, Op  # noqa: E402
from instrumentation import protocol as p  # noqa: E402

SPECS = [
    {"name": "one-leader-per-term"},
    {"name": "state-machine-safety"},
    {"name": "monotonic", "key": "commit_index"},
    {"name": "monotonic", "key": "term", "reset_on_exit": False},
    {"name": "match-index-monotonic"},
]
NODES = ["n1", "n2", "n3", "n4", "n5"]


def raft_trace(n_events: int, seed: int) -> dict[str, list[list]]:
    """Raw wire events per node: a correct Raft-ish run (no violations)."""
    rng = random.Random(seed)
    raw: dict[str, list[list]] = {n: [] for n in NODES}
    clock = dict.fromkeys(NODES, 0)
    mid = 0
    total = 0

    def emit(node: str, kind: int, *fields, at: int = 0) -> int:
        nonlocal total
        clock[node] = max(clock[node], at) + 1
        raw[node].append([len(raw[node]) + 1, clock[node], 0, total, kind, *fields])
        total += 1
        return clock[node]

    term, index = 0, 0
    while total < n_events:
        term += 1
        leader = rng.choice(NODES)
        for n in NODES:
            emit(n, p.STATE, "term", term)
        emit(leader, p.STATE, "role", "leader")
        match = dict.fromkeys(NODES, index)
        for _ in range(rng.randrange(20, 60)):
            index += 1
            digest = rng.getrandbits(32)
            emit(leader, p.APPLY, index, term, digest)
            for f in NODES:
                if f == leader:
                    continue
                mid += 1
                stamp = emit(leader, p.SEND, f, "append", mid)
                emit(f, p.RECV, leader, "append", mid, stamp, at=stamp)
                emit(f, p.APPLY, index, term, digest)
                mid += 1
                stamp = emit(f, p.SEND, leader, "append_ok", mid)
                emit(leader, p.RECV, f, "append_ok", mid, stamp, at=stamp)
                match[f] = index
                emit(leader, p.STATE, f"match_index.{f}", match[f])
            emit(leader, p.STATE, "commit_index", index)
        emit(leader, p.STATE, "role", "follower")
    return raw


def ingest(raw: dict[str, list[list]], with_invariants: bool) -> tuple[float, int]:
    tl = Timeline("bench")
    iset = None
    if with_invariants:
        iset = InvariantSet.from_config(SPECS)
        iset.attach(tl)
    queues = {n: evs for n, evs in raw.items()}
    pos = dict.fromkeys(queues, 0)
    t0 = time.perf_counter()
    while True:
        moved = False
        for n, evs in queues.items():
            i = pos[n]
            if i < len(evs):
                tl.add_raw(n, evs[i : i + 256])
                pos[n] = i + 256
                moved = True
        if not moved:
            break
    elapsed = time.perf_counter() - t0
    if tl.listener_errors:
        raise SystemExit(f"{tl.listener_errors} listener errors")
    if iset is not None and (iset.violations or iset.events != tl.count):
        raise SystemExit(f"unexpected: {iset.events} events seen, {iset.violations[:3]}")
    return elapsed, tl.count


def set_history(n_ops: int, seed: int) -> History:
    rng = random.Random(seed)
    ops: list[Op] = []
    acked: list[int] = []
    for m in range(n_ops):
        p_ = rng.randrange(5)
        ops.append(Op(p_, "invoke", "add", m, time=len(ops)))
        ops.append(Op(p_, "ok", "add", m, time=len(ops)))
        acked.append(m)
        if m % 50 == 0:
            ops.append(Op(p_, "invoke", "read", None, time=len(ops)))
            ops.append(Op(p_, "ok", "read", tuple(acked), time=len(ops)))
    for p_ in range(5):
        ops.append(Op(p_, "invoke", "read", None, time=len(ops)))
        ops.append(Op(p_, "ok", "read", tuple(acked), time=len(ops)))
    return History(tuple(ops))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--ops", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args()

    raw = raft_trace(args.events, args.seed)
    bare, online, checkers = [], [], []
    count = 0
    for _ in range(args.repeat):
        t, count = ingest(raw, False)
        bare.append(t)
        t, _ = ingest(raw, True)
        online.append(t)
    hist = set_history(args.ops, args.seed)
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        assert check_g_set(hist).ok and check_broadcast(hist.ops and _as_broadcast(hist)).ok
        checkers.append(time.perf_counter() - t0)
    result = {
        "benchmark": "invariants",
        "events": count,
        "online_events_per_s": round(count / statistics.median(online)),
        "unit": "events/s",
        "bare_timeline_events_per_s": round(count / statistics.median(bare)),
        "overhead_ratio": round(statistics.median(online) / statistics.median(bare), 2),
        "set_checkers_ops": len(hist.ops),
        "set_checkers_s": round(statistics.median(checkers), 4),
        "repeat": args.repeat,
    }
    if not args.json:
        print(
            f"{count} events: online invariants {result['online_events_per_s']} events/s "
            f"(bare timeline {result['bare_timeline_events_per_s']}, "
            f"x{result['overhead_ratio']}); g-set+broadcast on {len(hist.ops)} ops "
            f"{result['set_checkers_s']} s"
        )
    print(json.dumps(result))
    return 0


def _as_broadcast(h: History) -> History:
    return History(
        tuple(
            Op(o.process, o.type, "broadcast" if o.f == "add" else o.f, o.value, time=o.time)
            for o in h.ops
        )
    )


if __name__ == "__main__":
    sys.exit(main())
