"""Seeded synthetic executions: large, realistic-shaped traces for report tests and benchmarks.

Why: the report must stay usable at tens of thousands of events, and a real
cluster run of that size takes minutes. This draws a plausible execution
(nodes exchanging typed messages with correct Lamport clocks, some lost or
reordered, a partition and a crash from the nemesis, clients with
overlapping operations, one target-side VIOLATION) from a
:class:`random.Random`, so a test or a benchmark can ask for 20 000 events.
It is not used by the fuzzer itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fuzzer.checkers.verdict import Verdict, violated
from fuzzer.workload.history import History, Op
from instrumentation import protocol as P
from instrumentation.protocol import Event

__all__ = ["SyntheticRun", "synthetic_run"]

_TYPES = ("append_entries", "append_ok", "request_vote", "vote", "heartbeat", "forward")


@dataclass(frozen=True)
class SyntheticRun:
    events: tuple[Event, ...]
    history: History
    verdicts: tuple[Verdict, ...]
    schedule: str
    violation: Event


def synthetic_run(rng: random.Random, events: int = 20_000, nodes: int = 5,
                  clients: int = 4, drop: float = 0.03) -> SyntheticRun:
    """About ``events`` node events on ``nodes`` nodes plus nemesis FAULT events and a
    client history; one VIOLATION near 80% of the run."""
    names = [f"n{i}" for i in range(1, nodes + 1)]
    lam = dict.fromkeys(names, 0)
    seq = dict.fromkeys(names, 0)
    msg_id = dict.fromkeys(names, 0)
    inflight: list[tuple[str, str, str, int, int]] = []  # src, dst, type, id, lamport
    out: list[Event] = []
    mono = 1_000_000_000
    wall = 1_700_000_000_000_000_000
    violation: Event | None = None
    faults: list[Event] = []
    cut = {round(events * f): f for f in (0.3, 0.5, 0.6, 0.7)}
    isolated: str | None = None
    down: str | None = None

    def emit(node: str, kind: int, fields: tuple) -> Event:
        seq[node] += 1
        e = Event(node, seq[node], lam[node], wall + mono, mono, kind, fields)
        out.append(e)
        return e

    def fault(action: str, text: str) -> None:
        k = len(faults) + 1
        faults.append(Event("nemesis", k, k, wall + mono, mono, P.FAULT, (action, text, {})))

    while len(out) < events:
        mono += rng.randint(5_000, 60_000)
        step = cut.pop(len(out), None)
        if step == 0.3:
            isolated = names[1 % nodes]
            fault("apply", f"partition isolate {isolated}")
        elif step == 0.5:
            isolated = None
            fault("undo", "heal")
        elif step == 0.6:
            down = names[2 % nodes]
            fault("apply", f"kill {down}")
        elif step == 0.7 and down is not None:
            fault("undo", f"start {down}")
            down = None
        live = [n for n in names if n != down]
        r = rng.random()
        if inflight and r < 0.45:
            k = rng.randrange(min(len(inflight), 4))  # mild reordering
            src, dst, mtype, mid, slam = inflight.pop(k)
            if dst == down or isolated in (src, dst) or rng.random() < drop:
                continue  # lost
            lam[dst] = max(lam[dst], slam) + 1
            emit(dst, P.RECV, (src, mtype, mid, slam))
        elif r < 0.85:
            src = rng.choice(live)
            dst = rng.choice([n for n in names if n != src])
            lam[src] += 1
            msg_id[src] += 1
            mtype = rng.choice(_TYPES)
            emit(src, P.SEND, (dst, mtype, msg_id[src]))
            inflight.append((src, dst, mtype, msg_id[src], lam[src]))
        else:
            node = rng.choice(live)
            lam[node] += 1
            if violation is None and len(out) >= events * 0.8:
                violation = emit(node, P.VIOLATION, ("one-leader-per-term", {"term": 7}))
            elif rng.random() < 0.5:
                emit(node, P.STATE, ("commit_index", lam[node]))
            else:
                emit(node, P.APPLY, (lam[node], 3, f"{rng.getrandbits(32):08x}"))
    if violation is None:
        node = names[0]
        lam[node] += 1
        violation = emit(node, P.VIOLATION, ("one-leader-per-term", {"term": 7}))
    start, end = out[0].mono_ns, mono
    ops: list[Op] = []
    t = start
    open_ops: dict[int, tuple[str, int, int]] = {}
    while t < end:
        t += rng.randint(2_000_000, 9_000_000)
        p = rng.randrange(clients)
        if p in open_ops:
            f, v, _ = open_ops.pop(p)
            status = rng.choices(("ok", "fail", "info"), (0.85, 0.05, 0.10))[0]
            ops.append(Op(p, status, f, v if f == "write" else rng.randrange(5), "x", t))
        else:
            f = rng.choice(("read", "write"))
            v = rng.randrange(5) if f == "write" else None
            open_ops[p] = (f, v, t)
            ops.append(Op(p, "invoke", f, v, "x", t))
    verdict = violated("invariant", "one-leader-per-term",
                       f"two leaders in term 7 (seen on {violation.node})", [violation])
    schedule = "seed 1\npartition isolate n2 2s\nheal 1s\nkill n3 1s\nstart n3 1s\n"
    return SyntheticRun(tuple(out + faults), History(tuple(ops)), (verdict,), schedule, violation)
