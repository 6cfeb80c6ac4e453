"""What parallel executions share and what each keeps to itself: coverage and scheduler state.

Why this module: one :class:`~fuzzer.tracker.coverage.HBCoverage` follows
one execution at a time (per-node roles, previous abstract events,
in-flight messages, the open window), but novelty must stay campaign-wide.
So each parallel job gets its own :class:`JobCoverage`: its own
per-execution state and window hit counts, over the *campaign's* global map
(the same ``seen`` array and code-edge set, under the campaign coverage's
lock). A window's fold compares its hit counts with the global map at the
moment it closes, so novelty is exactly what the campaign had not seen yet,
whichever job saw it first.

Remote executions (Ray workers) cannot share memory: a worker runs with a
:class:`RecordingCoverage` started from a snapshot of the global map and
records, per window, the map entries that were new to it
(:class:`CoverageDelta`); the driver merges them into the global map with
:func:`merge_delta`, which recomputes novelty against the global map when
the result arrives.

The scheduler is shared too (one Q-table learns from every job), but the
schedulers keep per-execution state (the execution's RNG; the power
scheduler's plan, parent and operator). :class:`SchedulerSlot` swaps one
job's per-execution state in around each call, so interleaved jobs never mix
their executions; the learned state (Q-table, queue) stays shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from fuzzer.errors import InputError
from fuzzer.tracker.coverage import HBCoverage
from fuzzer.tracker.hbmap import bucket_bits

__all__ = [
    "JobCoverage",
    "RecordingCoverage",
    "CoverageDelta",
    "Novel",
    "merge_delta",
    "SchedulerSlot",
]


class JobCoverage(HBCoverage):
    """Per-job HB view over the campaign's global map (see module docstring).

    Shares the global map's ``seen`` array and edge set and its lock; keeps its
    own window counts, abstraction tables and per-execution node state.
    """

    def __init__(self, shared: HBCoverage) -> None:
        super().__init__(shared.bits, role_key=shared.role_key,
                         signature_msgs=shared.signature_msgs)
        self.shared = shared
        self._lock = shared._lock  # one lock: the global map changes under it only
        self.map.seen = shared.map.seen
        self.map.edges = shared.map.edges


@dataclass(frozen=True)
class CoverageDelta:
    """The map entries one window added to a worker's map: cell indices (uint32) with
    their bucket bits (uint8), and the code edges new to it. Msgpack-safe."""

    cells: bytes = b""
    bits: bytes = b""
    edges: tuple[int, ...] = ()

    def to_list(self) -> list[Any]:
        return [self.cells, self.bits, list(self.edges)]

    @classmethod
    def from_list(cls, x: Any, where: str = "delta") -> CoverageDelta:
        try:
            cells, bits, edges = x
            if not isinstance(cells, bytes) or not isinstance(bits, bytes):
                raise TypeError("cells/bits are not bytes")
            if len(cells) != 4 * len(bits):
                raise ValueError("cells and bits differ in length")
            return cls(cells, bits, tuple(int(e) for e in edges))
        except (TypeError, ValueError) as exc:
            raise InputError(f"malformed coverage delta ({exc})", where=where) from None

    def __len__(self) -> int:
        return len(self.bits) + len(self.edges)


@dataclass(frozen=True)
class Novel:
    """Novelty of a merged window, in the shape :func:`fuzzer.scheduler.reward` reads."""

    signature: int
    new_hb: int
    new_buckets: int
    new_edges: int


def merge_delta(cov: HBCoverage, delta: CoverageDelta, signature: int = 0) -> Novel:
    """Merge a worker's window delta into the global map ``cov``; what was new *to it*."""
    if not delta.bits and not delta.edges:
        return Novel(signature, 0, 0, 0)
    idx = np.frombuffer(delta.cells, dtype="<u4").astype(np.intp)
    bits = np.frombuffer(delta.bits, dtype=np.uint8)
    with cov._lock:
        seen = cov.map.seen
        if idx.size and int(idx.max()) >= seen.size:
            raise InputError(f"coverage delta cell {int(idx.max())} outside the map",
                             where="delta")
        old = seen[idx]
        new_hb = int(np.count_nonzero(old == 0))
        new_buckets = int(np.count_nonzero(((bits & ~old) != 0) & (old != 0)))
        seen[idx] = old | bits
        edges = cov.map.edges
        new_edges = 0
        for e in delta.edges:
            if e not in edges:
                edges.add(e)
                new_edges += 1
    return Novel(signature, new_hb, new_buckets, new_edges)


class RecordingCoverage(HBCoverage):
    """A worker's coverage: records each window's new map entries as a
    :class:`CoverageDelta` (``deltas``, in window order) for the driver to merge."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.deltas: list[CoverageDelta] = []
        self._new_edges: list[int] = []

    @classmethod
    def from_snapshot(cls, data: bytes | None) -> RecordingCoverage:
        cov = cls()
        if data:
            cov.map = HBCoverage.from_bytes(data, "<coverage snapshot>").map
        return cov

    def _code_edges(self, edges: object) -> None:
        if type(edges) is list:
            seen = self.map.edges
            self._new_edges.extend(e for e in edges if type(e) is int and e not in seen)
        super()._code_edges(edges)

    def _fold(self) -> tuple[int, int, int]:
        self._flush()
        bits = bucket_bits(self.map.window)
        idx = np.flatnonzero(bits & ~self.map.seen)
        self._pending = getattr(self, "_pending", [])
        self._pending.append((idx.astype("<u4"), bits[idx]))
        return self.map.fold()

    def close_window(self):  # noqa: ANN201 - WindowSummary
        summary = super().close_window()
        with self._lock:
            parts = getattr(self, "_pending", [])
            self._pending = []
            if parts:
                cells = np.concatenate([p[0] for p in parts])
                bits = np.concatenate([p[1] for p in parts])
            else:
                cells, bits = np.zeros(0, "<u4"), np.zeros(0, np.uint8)
            edges, self._new_edges = tuple(dict.fromkeys(self._new_edges)), []
            self.deltas.append(CoverageDelta(cells.tobytes(), bits.tobytes(), edges))
        return summary


class SchedulerSlot:
    """One job's per-execution scheduler state, swapped in around each scheduler call.

    ``EXEC_ATTRS`` names the attributes the bundled schedulers reset in
    ``begin_execution`` (the RNG of all three; plan, steps done, parent and
    operator of the power scheduler; the fault context and last choice of
    Q-learning); anything else is learned state and is
    shared. A scheduler without these attributes is shared as it is.
    """

    EXEC_ATTRS = ("_rng", "_plan", "_done", "_parent", "_op", "_ctx", "_last_choice")

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._mine: dict[str, Any] = {}

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        s = self.scheduler
        names = [a for a in self.EXEC_ATTRS if hasattr(s, a)]
        outer = {a: getattr(s, a) for a in names}
        for a, v in self._mine.items():
            setattr(s, a, v)
        try:
            yield s
        finally:
            self._mine = {a: getattr(s, a) for a in names}
            for a, v in outer.items():
                setattr(s, a, v)


def pack(obj: Any) -> bytes:
    """msgpack with bin types (our wire form between driver and workers; never pickle)."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, what: str = "message") -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise InputError(f"malformed {what} ({exc})") from None
