"""Logical clocks: the Lamport clock a node keeps, and vector-clock helpers.

Why both: a node only needs a Lamport clock (one int piggybacked on each
message, cheap enough for every event), while the tracker reconstructs full
vector clocks from the matched SEND->RECV edges to answer "did a happen
before b" exactly. The vector helpers here are pure functions on plain
``dict[str, int]`` (missing entries count as 0) so the tracker, tests and
reports share one definition of the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

VectorClock = Mapping[str, int]


class LamportClock:
    """A Lamport clock: tick on a local event, stamp on send, merge on receive.

    Not locked: the module-level API in :mod:`instrumentation` serialises calls
    (one lock per node) so this stays a plain, testable value holder.
    """

    __slots__ = ("time",)

    def __init__(self, start: int = 0) -> None:
        if start < 0:
            raise ValueError("a Lamport clock starts at 0 or later")
        self.time = start

    def tick(self) -> int:
        """A local event: advance and return the new time."""
        self.time += 1
        return self.time

    def send(self) -> int:
        """A send is a local event; the returned stamp is piggybacked on the message."""
        self.time += 1
        return self.time

    def recv(self, stamp: int) -> int:
        """Merge a received stamp: ``time = max(time, stamp) + 1``; returns the new time."""
        t = self.time
        if stamp > t:
            t = stamp
        self.time = t + 1
        return self.time

    def __repr__(self) -> str:
        return f"LamportClock({self.time})"


class Order(Enum):
    """How two vector clocks relate."""

    EQUAL = "equal"
    BEFORE = "before"  # a happened before b
    AFTER = "after"  # b happened before a
    CONCURRENT = "concurrent"


def vc_leq(a: VectorClock, b: VectorClock) -> bool:
    """``a <= b`` component-wise (missing components are 0)."""
    for node, t in a.items():
        if t > b.get(node, 0):
            return False
    return True


def vc_merge(a: VectorClock, b: VectorClock) -> dict[str, int]:
    """Component-wise maximum, as a new dict."""
    out = dict(a)
    for node, t in b.items():
        if t > out.get(node, 0):
            out[node] = t
    return out


def vc_tick(vc: VectorClock, node: str) -> dict[str, int]:
    """A copy of ``vc`` with ``node``'s component advanced by one."""
    out = dict(vc)
    out[node] = out.get(node, 0) + 1
    return out


def vc_compare(a: VectorClock, b: VectorClock) -> Order:
    """The causal order of ``a`` and ``b``."""
    le = vc_leq(a, b)
    ge = vc_leq(b, a)
    if le and ge:
        return Order.EQUAL
    if le:
        return Order.BEFORE
    if ge:
        return Order.AFTER
    return Order.CONCURRENT


def vc_happens_before(a: VectorClock, b: VectorClock) -> bool:
    """``a -> b``: ``a <= b`` and ``a != b``."""
    return vc_compare(a, b) is Order.BEFORE


def vc_concurrent(a: VectorClock, b: VectorClock) -> bool:
    """Neither happened before the other (and they differ)."""
    return vc_compare(a, b) is Order.CONCURRENT
