"""Candidate simplifications of one schedule step, and of the workload.

Why a pure list of candidates in order of preference: the minimiser (minimize.py)
tries them one by one on a real cluster and keeps the first that still fails,
so this module only has to say what "a bit simpler" means, without running
anything. One step is replaced by one step (never more), and every candidate
is strictly smaller under :func:`step_cost` (fault rank, nodes cut off,
nodes named, magnitude, duration, compared in that order), so the greedy loop
that keeps accepting candidates always terminates and a schedule never gets
longer or "bigger".

Order of preference (as issue 7 lists it): a shorter duration (halved, down to
a floor); a smaller partition (one node isolated instead of a group, fewer
nodes in a group) or fewer nodes for a node/link fault; a pause instead of a
kill (or stop, wipe, restart); a single-link fault instead of a partition;
a milder link fault (lower probability, shorter delay, smaller clock skew);
finally ``wait`` (or ``link-clear`` for a link fault) instead of the fault.

Faults are expected concrete (``kill n2``): the minimiser replaces role-based
faults by the concrete fault recorded when the bundle ran, so a simplification
names the same nodes the failing run hit.

Workload shrinking is expressed as config overrides (``workload.clients=2``,
the ``--set`` syntax) plus a matching edit of the recorded workload ops
(:class:`WorkloadShrink`): fewer clients drop the ops of the removed clients,
fewer keys drop the ops on removed keys, a lower rate stretches the recorded
think times so the same ops come less often (fewer ops in the same time).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fuzzer import faults as F
from fuzzer.schedule import Step

__all__ = [
    "DURATION_FLOOR",
    "FAULT_RANK",
    "WORKLOAD_KEYS",
    "WorkloadShrink",
    "fault_cost",
    "simplify_fault",
    "simplify_step",
    "step_cost",
    "workload_shrinks",
]

DURATION_FLOOR = 0.25  # seconds: steps are not shortened below this
PROB_FLOOR = 0.05  # link fault probabilities are not halved below this
DELAY_FLOOR = 0.005  # seconds
SKEW_FLOOR = 0.05  # seconds of clock offset
MAX_LINK_CANDIDATES = 4  # single-link replacements tried per partition

# How disruptive a kind of fault is; a replacement must not have a higher rank.
FAULT_RANK: dict[str, int] = {
    "wait": 0,
    "heal": 1,
    "link-clear": 1,
    "resume": 1,
    "start": 1,
    "link-delay": 2,
    "link-duplicate": 2,
    "link-reorder": 2,
    "clock-skew": 2,
    "link-drop": 3,
    "link-reset": 4,
    "pause": 4,
    "partition": 5,
    "restart": 5,
    "stop": 6,
    "kill": 6,
    "wipe": 7,
    "restart-all": 7,
    "kill-all": 8,
}


# --------------------------------------------------------------------------- cost


def _named(ref: F.NodeRef | None) -> int:
    if ref is None:
        return 0
    return len(ref.indices) if ref.concrete else 99  # a role may stand for many nodes


def _partition_size(p: F.Partition) -> tuple[int, int]:
    """(nodes cut off from the largest group, nodes named)."""
    if p.shape == "isolate":
        n = _named(p.node)
        return n, n
    if not p.groups:
        return 99, 99
    sizes = sorted(len(g) for g in p.groups)
    named = sum(sizes)
    if p.shape == "ring":
        return named - 1, named
    return named - sizes[-1], named


def _magnitude(f: F.Fault) -> float:
    if isinstance(f, F.LinkDelay):
        return f.delay + f.jitter
    if isinstance(f, F.LinkDrop | F.LinkDuplicate | F.LinkReorder):
        return f.p
    if isinstance(f, F.ClockSkew):
        return abs(f.offset) + abs(f.rate - 1.0)
    return 0.0


def fault_cost(f: F.Fault) -> tuple[int, int, int, float]:
    """(rank, nodes cut off, nodes named, magnitude): smaller is simpler."""
    rank = FAULT_RANK.get(f.verb, 9)
    if isinstance(f, F.Partition):
        cut, named = _partition_size(f)
    elif isinstance(f, F.LinkFault):
        cut, named = 0, _named(f.src) + _named(f.dst)
    elif isinstance(f, F.NodeFault | F.ClockSkew):
        cut, named = 0, _named(f.node)
    elif isinstance(f, F.KillAll | F.RestartAll):
        cut, named = 0, 99
    else:
        cut, named = 0, 0
    return rank, cut, named, _magnitude(f)


def step_cost(step: Step) -> tuple[int, int, int, float, float]:
    """:func:`fault_cost` then the duration: what a simplification must decrease."""
    return (*fault_cost(step.fault), step.duration)


# --------------------------------------------------------------------------- faults


def _half(x: float, floor: float) -> float | None:
    """``x`` halved but not below ``floor``; None when ``x`` is at the floor already."""
    if x <= floor:
        return None
    return max(floor, x / 2.0)


def _without_one(indices: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    if len(indices) > 1:
        for i in reversed(range(len(indices))):
            yield indices[:i] + indices[i + 1 :]


def _smaller_partitions(p: F.Partition) -> Iterator[F.Fault]:
    if p.shape == "isolate":
        for rest in _without_one(p.node.indices if p.node.concrete else ()):
            yield F.Partition("isolate", node=F.NodeRef(rest))
        return
    if not p.groups:
        return
    # isolate one node of the smallest group instead of the whole split (not for
    # one-way, bridge or ring shapes: isolating blocks links those leave open)
    if p.shape in ("majority-minority", "halves", "groups"):
        for i in min(p.groups, key=len):
            yield F.Partition("isolate", node=F.NodeRef((i,)))
    # fewer nodes in one group (smallest groups first)
    order = sorted(range(len(p.groups)), key=lambda j: (len(p.groups[j]), j))
    for j in order:
        for rest in _without_one(p.groups[j]):
            yield F.Partition(p.shape, p.groups[:j] + (rest,) + p.groups[j + 1 :])


def _single_links(p: F.Partition) -> Iterator[F.Fault]:
    """Single directed links a split blocks: ``link-drop a->b 100%`` (isolate: see below)."""
    if p.shape in ("isolate", "ring") or not p.groups:
        return
    if p.shape == "one-way":
        small, other = p.groups
        directions = 1
    elif p.shape == "bridge":  # the two sides cannot talk; the bridge node can
        small, other = p.groups[0], p.groups[2]
        directions = 2
    else:
        small = min(p.groups, key=len)
        other = next(g for g in p.groups if g is not small)
        directions = 2
    out = 0
    for a in small:
        for b in other:
            for src, dst in ((a, b), (b, a))[:directions]:
                yield F.LinkDrop(F.NodeRef((src,)), F.NodeRef((dst,)), 1.0)
                out += 1
                if out >= MAX_LINK_CANDIDATES:
                    return


def _isolate_links(p: F.Partition, n_nodes: int | None) -> Iterator[F.Fault]:
    if p.shape != "isolate" or not p.node.concrete or not n_nodes:
        return
    a = p.node.indices[0]
    out = 0
    for b in range(n_nodes):
        if b in p.node.indices:  # isolated together: their links stay open
            continue
        for src, dst in ((a, b), (b, a)):
            yield F.LinkDrop(F.NodeRef((src,)), F.NodeRef((dst,)), 1.0)
            out += 1
            if out >= MAX_LINK_CANDIDATES:
                return


def _fewer_link_nodes(f: F.LinkFault) -> Iterator[F.Fault]:
    for rest in _without_one(f.src.indices if f.src.concrete else ()):
        yield dataclasses.replace(f, src=F.NodeRef(rest))
    for rest in _without_one(f.dst.indices if f.dst.concrete else ()):
        yield dataclasses.replace(f, dst=F.NodeRef(rest))


def _milder_link(f: F.LinkFault) -> Iterator[F.Fault]:
    if isinstance(f, F.LinkDelay):
        if f.jitter:
            yield dataclasses.replace(f, jitter=0.0)
        d = _half(f.delay, DELAY_FLOOR)
        if d is not None:
            yield dataclasses.replace(f, delay=d)
    elif isinstance(f, F.LinkDrop | F.LinkDuplicate | F.LinkReorder):
        p = _half(f.p, PROB_FLOOR)
        if p is not None:
            yield dataclasses.replace(f, p=p)


def _milder_skew(f: F.ClockSkew) -> Iterator[F.Fault]:
    if f.rate != 1.0:
        yield F.ClockSkew(f.node, f.offset, 1.0)
    off = _half(abs(f.offset), SKEW_FLOOR)
    if off is not None:
        yield F.ClockSkew(f.node, off if f.offset > 0 else -off, f.rate)


def _raw_candidates(f: F.Fault, n_nodes: int | None) -> Iterator[F.Fault]:
    # smaller partitions / fewer nodes
    if isinstance(f, F.Partition):
        yield from _smaller_partitions(f)
    elif isinstance(f, F.LinkFault):
        yield from _fewer_link_nodes(f)
    elif isinstance(f, F.NodeFault) and f.node.concrete:
        for rest in _without_one(f.node.indices):
            yield type(f)(F.NodeRef(rest))
    # a pause (or a milder process fault) instead of a kill
    if isinstance(f, F.Kill | F.Stop | F.Restart):
        yield F.Pause(f.node)
    elif isinstance(f, F.Wipe):
        yield F.Restart(f.node)
        yield F.Pause(f.node)
    elif isinstance(f, F.KillAll | F.RestartAll) and n_nodes:
        one = F.Kill if isinstance(f, F.KillAll) else F.Restart
        for i in range(min(n_nodes, MAX_LINK_CANDIDATES)):
            yield one(F.NodeRef((i,)))
    # a single-link fault instead of a partition
    if isinstance(f, F.Partition):
        yield from _single_links(f)
        yield from _isolate_links(f, n_nodes)
    # milder link faults / clock skews
    if isinstance(f, F.LinkFault):
        yield from _milder_link(f)
    elif isinstance(f, F.ClockSkew):
        yield from _milder_skew(f)
    # nothing instead of the fault
    if isinstance(f, F.LinkFault) and not isinstance(f, F.LinkClear):
        yield F.LinkClear(f.src, f.dst)
    if not isinstance(f, F.Wait):
        yield F.Wait()


def simplify_fault(f: F.Fault, n_nodes: int | None = None) -> list[F.Fault]:
    """Simpler faults to try instead of ``f``, in order of preference, each
    strictly cheaper under :func:`fault_cost` (``n_nodes``, the cluster size,
    enables candidates that need it: one link of an isolated node, one node
    instead of all)."""
    base = fault_cost(f)
    out: list[F.Fault] = []
    seen: set[F.Fault] = set()
    it = _raw_candidates(f, n_nodes)
    while True:
        try:
            c = next(it)
        except StopIteration:
            break
        except ValueError:  # a shape constraint the candidate would break: skip it
            continue
        if c != f and c not in seen and fault_cost(c) < base:
            seen.add(c)
            out.append(c)
    return out


def simplify_step(
    step: Step, n_nodes: int | None = None, *, floor: float = DURATION_FLOOR
) -> list[Step]:
    """Simpler steps to try instead of ``step``, in order of preference:
    the duration halved (not below ``floor``), then :func:`simplify_fault`
    candidates with the same duration. Each is strictly cheaper under
    :func:`step_cost`."""
    out: list[Step] = []
    d = _half(step.duration, floor)
    if d is not None:
        out.append(Step(step.fault, d))
    out += [Step(f, step.duration) for f in simplify_fault(step.fault, n_nodes)]
    base = step_cost(step)
    return [s for s in out if step_cost(s) < base]


# --------------------------------------------------------------------------- workload

WORKLOAD_KEYS = ("workload.clients", "workload.keys", "workload.rate")
RATE_FLOOR = 1.0  # ops/s per client

_KEY_INDEX = re.compile(r"^\D*?(\d+)$")


def _key_index(key: Any) -> int | None:
    """``k2`` -> 2, ``2`` -> 2; None for keys with no trailing number (kept)."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        m = _KEY_INDEX.match(key)
        return int(m.group(1)) if m else None
    return None


@dataclass(frozen=True, slots=True)
class WorkloadShrink:
    """One smaller workload setting: ``key`` (``workload.clients``, ``.keys``
    or ``.rate``) from ``old`` to ``value``, as a ``--set`` override plus the
    matching edit of the recorded ops (see module docstring)."""

    key: str
    old: float
    value: float

    @property
    def override(self) -> str:
        v = self.value
        text = str(int(v)) if float(v).is_integer() else repr(float(v))
        return f"{self.key}={text}"

    def apply_ops(self, ops: Mapping[tuple[int, int], Any]) -> dict[tuple[int, int], Any]:
        """The recorded ops (``(client, seq)`` -> op with ``client``/``key``/``think``) kept."""
        if self.key == "workload.clients":
            return {k: op for k, op in ops.items() if k[0] < self.value}
        if self.key == "workload.keys":
            out = {}
            for k, op in ops.items():
                i = _key_index(getattr(op, "key", None))
                if i is None or i < self.value:
                    out[k] = op
            return out
        if self.key == "workload.rate" and self.value > 0:
            scale = self.old / self.value
            return {
                k: dataclasses.replace(op, think=op.think * scale) if hasattr(op, "think") else op
                for k, op in ops.items()
            }
        return dict(ops)


def _fewer(n: int) -> list[int]:
    """Smaller counts to try, most drastic first: 1, n // 2, n - 1 (distinct, < n)."""
    out: list[int] = []
    for v in (1, n // 2, n - 1):
        if 1 <= v < n and v not in out:
            out.append(v)
    return out


def workload_shrinks(current: Mapping[str, float]) -> list[WorkloadShrink]:
    """Smaller workloads to try, given the current ``workload.*`` values
    (keys as in :data:`WORKLOAD_KEYS`; missing keys are skipped): fewer
    clients, then fewer keys, then a halved rate (not below 1 op/s)."""
    out: list[WorkloadShrink] = []
    for key in ("workload.clients", "workload.keys"):
        v = current.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            out += [WorkloadShrink(key, v, x) for x in _fewer(v)]
    rate = current.get("workload.rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        half = _half(float(rate), RATE_FLOOR)
        if half is not None:
            out.append(WorkloadShrink("workload.rate", float(rate), half))
    return out
