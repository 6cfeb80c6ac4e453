"""Delta debugging (Zeller's ddmin) with a budget, a cache and a flaky oracle.

Why a pure state machine (:class:`DDMin`) driven by two thin loops: the
algorithm only decides *which subset to test next*; whether a subset still
fails is answered elsewhere (a pure model in tests, real cluster executions in
``hbfuzz minimize``, which are async). :class:`DDMin` yields subsets of item
indices and is told each outcome, so the same code runs under
:func:`ddmin_sync` and :func:`ddmin`, and given the same outcomes it always
asks the same questions (deterministic).

Why "fails in at least one of K runs": a real cluster is not deterministic;
a bug that reproduces with rate ``r`` is missed by K independent runs with
probability ``(1 - r) ** K``. :func:`choose_k` picks the smallest K that
keeps that below a target (5 %), bounded by a maximum, so a stable bug costs
one run per candidate and a flaky one is not lost. A miss never makes the
result wrong (only "failing" outcomes move ddmin, and a failing outcome is a
real reproduction); it can only make it less small. :class:`RateEstimate`
refines ``r`` from the runs on candidates that did fail.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzzer.errors import UsageError

__all__ = [
    "Budget",
    "DDMin",
    "DDProgress",
    "DDResult",
    "RateEstimate",
    "choose_k",
    "ddmin",
    "ddmin_sync",
    "miss_probability",
]

Subset = tuple[int, ...]


# --------------------------------------------------------------------------- K selection


def miss_probability(rate: float, k: int) -> float:
    """P(no reproduction in ``k`` independent runs) for a reproduction ``rate``."""
    return (1.0 - min(max(rate, 0.0), 1.0)) ** k


def choose_k(rate: float, miss: float = 0.05, k_max: int = 10) -> int:
    """The smallest K with ``(1 - rate) ** K <= miss``, clamped to ``[1, k_max]``.

    ``rate`` 1.0 gives 1; ``rate`` 0 (never reproduced) gives ``k_max``.
    """
    if k_max < 1:
        raise UsageError(f"the maximum number of runs per candidate must be >= 1, not {k_max}")
    if not 0.0 < miss < 1.0:
        raise UsageError(f"the accepted miss probability must be in (0, 1), not {miss}")
    if rate >= 1.0:
        return 1
    if rate <= 0.0:
        return k_max
    k = math.ceil(math.log(miss) / math.log1p(-rate) - 1e-9)
    return max(1, min(k_max, k))


@dataclass
class RateEstimate:
    """Reproduction rate from hits/runs, with a prior (e.g. the replay's rate).

    Why the pooled ratio: candidates accepted as failing were run until the
    first hit (or K runs); for such geometric samples the maximum-likelihood
    rate is total hits over total runs. The prior counts as ``prior_runs``
    runs at ``prior`` so a few early samples do not swing K wildly.
    """

    prior: float = 1.0
    prior_runs: float = 4.0
    hits: int = 0
    runs: int = 0

    @property
    def rate(self) -> float:
        return (self.prior * self.prior_runs + self.hits) / (self.prior_runs + self.runs)

    def add(self, hits: int, runs: int) -> None:
        self.hits += hits
        self.runs += runs


# --------------------------------------------------------------------------- budget


@dataclass
class Budget:
    """A time and tries budget shared by every phase of a minimisation.

    ``seconds``/``tries`` None means unlimited; ``clock`` is injectable so
    tests never depend on wall time.
    """

    seconds: float | None = None
    tries: int | None = None
    clock: Callable[[], float] = time.monotonic
    used_tries: int = 0
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def exhausted(self) -> bool:
        if self.tries is not None and self.used_tries >= self.tries:
            return True
        return self.seconds is not None and self.elapsed >= self.seconds

    def charge(self) -> None:
        self.used_tries += 1


# --------------------------------------------------------------------------- the algorithm


@dataclass(frozen=True, slots=True)
class DDProgress:
    """Where ddmin is: ``size`` items kept, split in ``granularity`` chunks,
    ``pending`` subsets left to test at this granularity, ``tried`` tests run,
    ``cached`` answers taken from the cache."""

    size: int
    granularity: int
    pending: int
    tried: int
    cached: int


class DDMin:
    """Zeller's ddmin over indices ``0..n-1`` as a generator of questions.

    :meth:`questions` yields a subset (sorted tuple of indices) and expects
    ``send(True)`` when that subset still fails. :attr:`current` is always a
    subset known to fail (the full set is assumed to fail). At the end,
    :attr:`current` is 1-minimal with respect to the answers given: removing
    any single element was answered "passes".
    """

    def __init__(self, n: int, *, try_empty: bool = True) -> None:
        if n < 0:
            raise ValueError("ddmin needs n >= 0")
        self.current: Subset = tuple(range(n))
        self.granularity = 2
        self.pending = 0
        self.try_empty = try_empty
        self.finished = False

    @staticmethod
    def chunks(items: Subset, n: int) -> list[Subset]:
        """``items`` split in ``n`` contiguous chunks of near-equal size."""
        out, start = [], 0
        for i in range(n):
            end = start + (len(items) - start) // (n - i)
            out.append(items[start:end])
            start = end
        return out

    def questions(self) -> Generator[Subset, bool, None]:
        if self.try_empty and self.current:
            self.pending = 1
            if (yield ()):
                self.current = ()
        while len(self.current) >= 2:
            n = min(self.granularity, len(self.current))
            parts = self.chunks(self.current, n)
            reduced = False
            # 1. reduce to a subset
            self.pending = 2 * n if n > 2 else n
            for part in parts:
                self.pending -= 1
                if (yield part):
                    self.current, self.granularity, reduced = part, 2, True
                    break
            # 2. reduce to a complement (for n == 2 the complements are the parts)
            if not reduced and n > 2:
                for i in range(n):
                    self.pending -= 1
                    comp = tuple(x for j, p in enumerate(parts) if j != i for x in p)
                    if (yield comp):
                        self.current, self.granularity, reduced = comp, max(n - 1, 2), True
                        break
            if reduced:
                continue
            if n >= len(self.current):
                break
            self.granularity = min(2 * n, len(self.current))
        self.pending = 0
        self.finished = True


@dataclass(frozen=True, slots=True)
class DDResult:
    """The smallest failing subset found (as items and as indices) and the effort spent.

    ``complete`` is False when the budget ran out first (then ``items`` still
    fails, but may not be 1-minimal)."""

    items: tuple[Any, ...]
    indices: Subset
    tried: int
    cached: int
    complete: bool


def _progress(dd: DDMin, tried: int, cached: int) -> DDProgress:
    return DDProgress(len(dd.current), dd.granularity, dd.pending, tried, cached)


def _search(
    items: Sequence[Any],
    budget: Budget | None,
    progress: Callable[[DDProgress], None] | None,
    cache: dict[Hashable, bool] | None,
    try_empty: bool,
) -> Generator[tuple[Any, ...], bool, DDResult]:
    """The stepping core shared by :func:`ddmin_sync` and :func:`ddmin`.

    Why a generator: the cache, the budget and the progress reports are the
    same whether the oracle is sync or async; only the call to ``test``
    differs. This yields each candidate that needs a real test, is sent the
    verdict, and returns the :class:`DDResult` (as ``StopIteration.value``).
    """
    dd = DDMin(len(items), try_empty=try_empty)
    cache = {} if cache is None else cache
    tried = cached = 0
    gen = dd.questions()
    complete = True
    try:
        subset = next(gen)
        while True:
            if subset in cache:
                cached += 1
                answer = cache[subset]
            elif budget is not None and budget.exhausted():
                complete = False
                break
            else:
                if budget is not None:
                    budget.charge()
                tried += 1
                answer = cache[subset] = yield tuple(items[i] for i in subset)
            subset = gen.send(answer)
            if progress is not None:
                progress(_progress(dd, tried, cached))
    except StopIteration:
        if progress is not None:
            progress(_progress(dd, tried, cached))
    return DDResult(tuple(items[i] for i in dd.current), dd.current, tried, cached, complete)


def ddmin_sync(
    items: Sequence[Any],
    test: Callable[[tuple[Any, ...]], bool],
    *,
    budget: Budget | None = None,
    progress: Callable[[DDProgress], None] | None = None,
    cache: dict[Hashable, bool] | None = None,
    try_empty: bool = True,
) -> DDResult:
    """ddmin with a synchronous ``test(items) -> still fails?`` (see :func:`ddmin`)."""
    steps = _search(items, budget, progress, cache, try_empty)
    try:
        candidate = next(steps)
        while True:
            candidate = steps.send(bool(test(candidate)))
    except StopIteration as done:
        return done.value


async def ddmin(
    items: Sequence[Any],
    test: Callable[[tuple[Any, ...]], Awaitable[bool]],
    *,
    budget: Budget | None = None,
    progress: Callable[[DDProgress], None] | None = None,
    cache: dict[Hashable, bool] | None = None,
    try_empty: bool = True,
) -> DDResult:
    """The 1-minimal failing subsequence of ``items`` (order kept), assuming all of them fail.

    ``test`` answers whether a subsequence still fails (for flaky systems:
    "reproduced in at least one of K runs"). Answers are cached by subset
    (pass ``cache`` to share it), each new test charges ``budget``; when the
    budget is exhausted the best subset so far is returned with
    ``complete=False``. ``progress`` is called after every answer.
    ``try_empty`` first asks whether the empty subsequence fails too.
    """
    steps = _search(items, budget, progress, cache, try_empty)
    try:
        candidate = next(steps)
        while True:
            candidate = steps.send(bool(await test(candidate)))
    except StopIteration as done:
        return done.value
