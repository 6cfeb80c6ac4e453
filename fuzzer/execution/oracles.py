"""Small oracles and events the execution derives itself, outside the checkers package.

Why here: they need facts only the execution has — which node exits it did
not cause (crash candidates), which VIOLATION events the nodes reported
(target-side assertions), and where a killed node's incarnation ended (a
SIGKILLed process reports no EXIT, yet invariants such as ``monotonic`` with
``reset_on_exit`` must forget its volatile state there).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fuzzer.checkers.verdict import Verdict, violated
from fuzzer.execution.backends import ExitRecord
from fuzzer.tracker.timeline import Timeline
from instrumentation import protocol
from instrumentation.protocol import Event

__all__ = ["exit_verdicts", "assertion_verdicts", "exit_event"]


def exit_verdicts(exits: Iterable[ExitRecord]) -> list[Verdict]:
    """One ``crash/unexpected-exit`` violation per node exit no fault caused."""
    return [
        violated("crash", "unexpected-exit",
                 f"node {e.node} exited with code {e.code} without a fault causing it",
                 node=e.node, code=e.code)
        for e in exits
    ]


def assertion_verdicts(events: Iterable[Event]) -> list[Verdict]:
    """One ``assertion/<name>`` violation per VIOLATION event a node reported."""
    return [
        violated("assertion", str(ev.fields[0]), f"node {ev.node} reported {ev.fields[0]}", (ev,))
        for ev in events
        if ev.kind == protocol.VIOLATION
    ]


def exit_event(timeline: Timeline, node: str, code: int | None) -> Event:
    """An EXIT event after the node's last event on ``timeline`` (``killed`` for a signal)."""
    last = timeline.events(node)[-1:] if node in timeline.nodes() else []
    seq = last[0].seq + 1 if last else 1
    lamport = last[0].lamport + 1 if last else 1
    reason = "exit" if code is not None and code >= 0 else "killed"
    return Event(node, seq, lamport, time.time_ns(), time.monotonic_ns(), protocol.EXIT,
                 (reason, code))
