"""What every scheduler is, the reward it learns from, and how its state is saved.

Why a protocol and not a base class: the campaign, the gymnasium env and the
benchmarks drive Q-learning, the random nemesis and the AFL-style power
scheduler through the same six calls, and each of them keeps very different
state. The shared pieces are small values and pure functions:

- :func:`reward`: one window's novelty as a number (new HB-coverage cells,
  new hit-count buckets, new code edges, a bonus for a finding), log-scaled so
  a window that wakes up a thousand cells does not drown every later signal;
- :class:`FaultRewards`: per-fault-type mean rewards for the status screen;
- :func:`pack_array` / :func:`unpack_array` and :func:`dumps_state` /
  :func:`loads_state`: scheduler state as msgpack with numpy arrays as raw
  bytes (never pickle: campaign directories travel between machines).

Call order per execution: ``begin_execution(rng)``, then per step
``next_step(signature)`` -> run it -> ``observe(s, a, r, s2, done)``, and at
the end ``end_execution(result)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgpack
import numpy as np

from fuzzer.errors import InputError
from fuzzer.faults import Schedule, Step

__all__ = [
    "Scheduler",
    "Novelty",
    "RewardWeights",
    "DEFAULT_WEIGHTS",
    "ExecutionFeedback",
    "FaultRewards",
    "reward",
    "pack_array",
    "unpack_array",
    "dumps_state",
    "loads_state",
    "save_state",
    "load_state",
    "normalised_entropy",
]

STATE_FORMAT = "hbfuzz-scheduler"
STATE_VERSION = 1


class Novelty(Protocol):
    """What :func:`reward` reads from a window summary (tracker's ``WindowSummary``)."""

    signature: int
    new_hb: int
    new_edges: int


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """Weights of the novelty terms; each term is ``weight * log2(1 + count)``."""

    hb: float = 1.0
    buckets: float = 0.25
    edges: float = 0.5
    finding: float = 10.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "<scheduler>") -> RewardWeights:
        kw = {}
        for k, v in d.items():
            if k not in cls.__dataclass_fields__:
                raise InputError(f"unknown reward weight {k!r}", path=path, where=f"reward.{k}")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"expected a number, got {v!r}", path=path, where=f"reward.{k}")
            kw[k] = float(v)
        return cls(**kw)


DEFAULT_WEIGHTS = RewardWeights()


def reward(
    summary: Novelty, weights: RewardWeights = DEFAULT_WEIGHTS, finding: bool = False
) -> float:
    """A window's novelty as a reward (pure). ``new_buckets`` is used when present."""
    r = weights.hb * math.log2(1 + max(0, summary.new_hb))
    r += weights.buckets * math.log2(1 + max(0, getattr(summary, "new_buckets", 0)))
    r += weights.edges * math.log2(1 + max(0, summary.new_edges))
    if finding:
        r += weights.finding
    return r


@dataclass(frozen=True, slots=True)
class ExecutionFeedback:
    """What a finished execution tells its scheduler. Schedulers read these fields
    with :meth:`of`, so any object with (some of) the same attribute names, such as
    the execution's own result, can be passed to ``end_execution`` instead."""

    novelty: float = 0.0  # sum of the step rewards
    new_hb: int = 0
    new_edges: int = 0
    finding: str | None = None  # finding signature, if any
    schedule: Schedule | None = None  # the steps actually run (None: as the scheduler planned)

    @property
    def interesting(self) -> bool:
        return self.new_hb > 0 or self.new_edges > 0 or self.finding is not None or self.novelty > 0

    @classmethod
    def of(cls, result: object) -> ExecutionFeedback:
        """``result`` itself if it is one, else its same-named attributes (defaults if absent)."""
        if isinstance(result, cls):
            return result
        g = getattr
        return cls(
            float(g(result, "novelty", 0.0) or 0.0),
            int(g(result, "new_hb", 0) or 0),
            int(g(result, "new_edges", 0) or 0),
            g(result, "finding", None),
            g(result, "schedule", None),
        )


@runtime_checkable
class Scheduler(Protocol):
    """Chooses the next fault step from the current state signature and learns from rewards."""

    name: str

    def begin_execution(self, rng: random.Random) -> None: ...
    def next_step(self, state_signature: int) -> Step: ...
    def observe(
        self, state: int, action: int, reward: float, next_state: int, done: bool
    ) -> None: ...
    def end_execution(self, result: ExecutionFeedback | object) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, d: dict) -> None: ...
    def stats(self) -> dict: ...


@dataclass
class FaultRewards:
    """Running reward sums per fault verb (for ``stats()['fault_rewards']``)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, verb: str, r: float) -> None:
        self.sums[verb] = self.sums.get(verb, 0.0) + float(r)
        self.counts[verb] = self.counts.get(verb, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in sorted(self.sums)}

    def to_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultRewards:
        """Inverse of :meth:`to_dict`; :class:`InputError` if ``d`` is malformed (saved
        states are untrusted input)."""
        try:
            return cls(
                {str(k): float(v) for k, v in d.get("sums", {}).items()},
                {str(k): int(v) for k, v in d.get("counts", {}).items()},
            )
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"fault_rewards is malformed ({exc})") from None


def normalised_entropy(p: np.ndarray) -> np.ndarray:
    """Row-wise entropy of probability rows divided by log(n): 1 = uniform, 0 = one action."""
    p = np.asarray(p, dtype=np.float64)
    n = p.shape[-1]
    if n <= 1:
        return np.zeros(p.shape[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h / math.log(n)


# --------------------------------------------------------------------------- persistence


def pack_array(a: np.ndarray) -> dict:
    """A numpy array as a msgpack-safe dict (dtype string, shape, raw little-endian bytes)."""
    a = np.ascontiguousarray(a)
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<") else a.dtype
    return {"dtype": dt.str, "shape": list(a.shape), "data": a.astype(dt, copy=False).tobytes()}


_DTYPES = {"<f8", "<f4", "<i8", "<i4", "<u8", "<u4", "|u1", "|i1", "|b1"}


def unpack_array(d: Any, what: str = "array") -> np.ndarray:
    """Inverse of :func:`pack_array`, validating dtype, shape and size."""
    try:
        dtype, shape, data = d["dtype"], tuple(int(x) for x in d["shape"]), d["data"]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{what} is not a packed array") from None
    if dtype not in _DTYPES or not isinstance(data, bytes) or any(x < 0 for x in shape):
        raise InputError(f"{what} has an unsupported dtype {dtype!r} or bad data")
    dt = np.dtype(dtype)
    if len(data) != dt.itemsize * math.prod(shape):
        raise InputError(f"{what}: {len(data)} bytes do not fill shape {list(shape)}")
    return np.frombuffer(data, dtype=dt).reshape(shape).astype(dt.newbyteorder("="), copy=True)


def dumps_state(state: Mapping[str, Any]) -> bytes:
    """A scheduler's ``state_dict()`` as msgpack bytes, with a format marker."""
    return msgpack.packb(
        {"format": STATE_FORMAT, "v": STATE_VERSION, "state": dict(state)}, use_bin_type=True
    )


def loads_state(data: bytes, path: str = "<scheduler state>") -> dict:
    """Inverse of :func:`dumps_state` (errors name ``path``)."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise InputError(f"not a msgpack scheduler state ({exc})", path=path) from None
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT:
        raise InputError("not an hbfuzz scheduler state (missing format marker)", path=path)
    if obj.get("v") != STATE_VERSION:
        raise InputError(f"scheduler state version {obj.get('v')!r} is not supported", path=path)
    if not isinstance(obj.get("state"), dict):
        raise InputError("scheduler state has no 'state' table", path=path)
    return obj["state"]


def save_state(scheduler: Scheduler, path: str | Path) -> None:
    """Write the scheduler's state atomically (temp file, fsync, rename, fsync the dir)."""
    from fuzzer.safeio import write_bytes_atomic

    write_bytes_atomic(path, dumps_state(scheduler.state_dict()))


def load_state(scheduler: Scheduler, path: str | Path) -> None:
    """Load a state written by :func:`save_state` into ``scheduler``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read scheduler state ({exc.strerror})", path=str(p)) from None
    try:
        scheduler.load_state_dict(loads_state(data, str(p)))
    except InputError as exc:
        if exc.path is None:
            raise InputError(str(exc), path=str(p)) from None
        raise
