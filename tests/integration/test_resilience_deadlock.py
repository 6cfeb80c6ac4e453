"""Regression: reading an online invariant's violations while the tracker ingests must
not deadlock (found by the soak run, see docs/reliability.md section 7).

The tracker's ingest thread holds the timeline's lock while it feeds the
invariant set; the campaign thread asks the invariant set for its violations
(with their causal past, read from the timeline) after every step. Two real
threads do exactly that here, against a breach that exists from the start, for
a bounded number of rounds; the test fails (instead of hanging) if either
thread is still stuck after a bounded wait.
"""

from __future__ import annotations

import threading
import time

from fuzzer.checkers.invariants import InvariantSet
from fuzzer.tracker.timeline import Timeline
from instrumentation import protocol as p

ROUNDS = 3000


def _state(seq: int, key: str, value) -> list:
    t = time.time_ns()
    return [seq, seq, t, time.monotonic_ns(), p.STATE, key, value]


def test_violations_while_ingesting_do_not_deadlock(rng):
    tl = Timeline("e1")
    iset = InvariantSet.from_config([{"name": "one-leader-per-term"}])
    iset.attach(tl)
    for node in ("n1", "n2"):  # two leaders in term 1: a breach from the start
        tl.add_raw(node, [_state(1, "term", 1), _state(2, "role", "leader")])
    assert iset.violations, "the breach was not detected"
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            seq = 3
            for _ in range(ROUNDS):
                n = rng.randint(1, 20)
                tl.add_raw("n1", [_state(seq + i, "commit_index", seq + i) for i in range(n)])
                seq += n
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(ROUNDS):
                assert iset.violations
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (ingest, read)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20  # the rounds take well under a second
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "deadlock: a thread is stuck"
    assert not errors, errors
    assert {v.name for v in iset.verdicts() if v.violated} == {"one-leader-per-term"}
