"""Linearizability checking: Wing & Gong's search with Lowe's and Porcupine's tricks.

Public API::

    check(history, model, timeout=None, *, cancel=None, max_configs=3_000_000)
        -> LinearizabilityResult
    await check_async(history, model, timeout=None) -> LinearizabilityResult

``history`` is a :class:`fuzzer.workload.history.History` (or a sequence of
paired :class:`~fuzzer.workload.history.Operation`); ``model`` a model name
(``register``, ``cas-register``, ``kv``, ``counter``, ``set``, see
:mod:`fuzzer.checkers.models`) or a :class:`~fuzzer.checkers.models.Model`.
``timeout`` is a budget in seconds for the whole check; when it runs out the
verdict is ``unknown`` (never a guess); so it is when the search has cached
``max_configs`` configurations (a memory guard: roughly 100-300 bytes each).

:class:`LinearizabilityResult` fields: ``verdict`` (``"linearizable"``,
``"not-linearizable"`` or ``"unknown"``), ``key`` (the partition that failed or
timed out), ``prefix`` (for a failure: the longest linearizable prefix found, in
linearization order), ``unplaced`` (the operations that could have come next
after that prefix, none of which the model accepts there, in invocation order),
``elapsed`` (seconds), ``partitions`` (how many the model made), ``model``,
``reason`` (for ``unknown``: ``timeout``, ``memory`` or ``cancelled``).

Semantics: ``fail`` operations never happened and are dropped. ``info``
operations (and invocations that never completed) may take effect at any time
after their invocation, or not at all: they have no return event (completion
at +infinity) and the search succeeds once every ``ok`` operation is placed.

Algorithm (one partition): history events form a doubly-linked list in real
time order. Walking it, a call event whose operation the model accepts in the
current state is "lifted" out of the list (with its return event), pushed on a
stack with the previous state, and the walk restarts at the head. Reaching a
return event means the operation with that return could not be placed before
it: pop the stack, put the operation back (undo) and try the next candidate.
A cache of configurations already explored prunes the search (Lowe's
optimisation): a configuration is (set of ok ops placed, model state, set of
info ops placed), the sets are bitsets in Python ints, and a configuration is
skipped when the cache has one with the same ok set and state and a subset of
its info ops (info ops are optional, so using fewer leaves more ways on). The
cache is a dict from ints to ints (or tuples of ints), invisible to the cyclic
GC, which a million cached tuple keys would slow down by half. Partitions from
:meth:`Model.partition` are checked independently (P-compositionality),
round-robin. The inner loop works on flat lists of ints and allocates only new
bitsets and cache keys.

Info ops are the expensive part (each may take effect anywhere after its
invocation), so before the search the model drops those that cannot matter
(:meth:`Model.droppable`, :meth:`Model.prune`) and info ops invoked after the
last ok completion (and :meth:`Model.impossible` may refute a partition at
once, e.g. a read of a value nobody wrote); and of two info ops with the same input, the later one may
only be placed once the earlier one is (they are interchangeable, and the
earlier one can take effect wherever the later one can); right after an info
op, blind overwrites (:meth:`Model.overwrites`) are not tried, as they would
erase its effect (it could as well be left out). What stays hard: many
info ops whose values are also observed elsewhere (small value domains), on a
history that is not linearizable: the search must then rule out every way the
info ops could have happened, and may end ``unknown``. Workloads that write
unique values avoid this (unobserved info writes are pruned, observed ones can
only have happened once).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from fuzzer.checkers.models import UNKNOWN, Model, get_model
from fuzzer.errors import CheckerError
from fuzzer.workload.history import History, Operation

__all__ = [
    "LINEARIZABLE",
    "NOT_LINEARIZABLE",
    "UNKNOWN_VERDICT",
    "LinearizabilityResult",
    "check",
    "check_async",
    "check_operations",
    "DEFAULT_MAX_CONFIGS",
]

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "not-linearizable"
UNKNOWN_VERDICT = "unknown"

_CHECK_EVERY = 1023  # steps between yields to the scheduler (mask)
DEFAULT_MAX_CONFIGS = 3_000_000  # cached configurations before "unknown" (memory guard)
_STATE_BITS = 40  # interned state ids live below the linearized bitset in cache keys


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict of one check, with what a report needs to explain a failure."""

    verdict: str
    key: Hashable = None
    prefix: tuple[Operation, ...] = ()
    unplaced: tuple[Operation, ...] = ()
    elapsed: float = 0.0
    partitions: int = 0
    model: str = ""
    reason: str = ""  # for unknown: "timeout", "memory" or "cancelled"

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE

    def describe(self) -> str:
        """A few lines for a report."""
        head = f"{self.verdict} (model {self.model}, {self.partitions} partition(s), {self.elapsed:.3f}s)"
        if self.verdict == LINEARIZABLE:
            return head
        lines = [head, f"key: {self.key!r}"]
        if self.verdict == NOT_LINEARIZABLE:
            lines.append(f"longest linearizable prefix ({len(self.prefix)} ops):")
            lines += [f"  {op.describe()}" for op in self.prefix[-10:]]
            lines.append("could not be placed next:")
            lines += [f"  {op.describe()}" for op in self.unplaced]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _PartitionOutcome:
    linearizable: bool
    prefix: tuple[Operation, ...] = ()
    unplaced: tuple[Operation, ...] = ()


def _search(model: Model, ops: Sequence[Operation]) -> Generator[int, None, _PartitionOutcome]:
    """WGL search over one partition, as a generator that yields the size of
    its cache every thousand steps or so (so the caller can watch the clock
    and memory, and interleave partitions) and returns the outcome."""
    # Prepare the operations: drop fail ops and droppable info ops, drop info
    # ops invoked after every ok op completed (they may go last: no effect).
    prepared: list[tuple[Operation, Any, Any]] = []
    last_ok_return = -1
    for op in ops:
        if op.status == "ok" and op.complete_index is not None:
            last_ok_return = max(last_ok_return, op.complete_index)
    for op in ops:
        if op.status == "fail":
            continue
        if op.status != "ok" and op.invoke_index > last_ok_return:
            continue
        inp, out = model.prepare(op)
        if op.status != "ok":
            out = UNKNOWN
            if model.droppable(inp, out):
                continue
        prepared.append((op, inp, out))
    prepared = model.prune(prepared)
    if not any(op.status == "ok" for op, _, _ in prepared):
        return _PartitionOutcome(True)
    hopeless = model.impossible(prepared)
    if hopeless is not None:
        return _PartitionOutcome(False, (), (hopeless,))
    prepared.sort(key=lambda t: t[0].invoke_index)
    n = len(prepared)
    # Ok ops and info ops are numbered apart: bit[i] is op i's bit in the
    # bitset of its kind (lin_ok or lin_info).
    is_info = [op.status != "ok" for op, _, _ in prepared]
    bit = [0] * n
    n_ok = n_info = 0
    for i in range(n):
        if is_info[i]:
            bit[i] = 1 << n_info
            n_info += 1
        else:
            bit[i] = 1 << n_ok
            n_ok += 1
    # Symmetry: two info ops with the same input are interchangeable, and the
    # earlier-invoked one can take effect wherever the later one can. So only
    # let an info op be placed once its earlier twin is placed.
    prereq = [0] * n
    last_twin: dict[Any, int] = {}
    for i, (_, inp, _) in enumerate(prepared):
        if not is_info[i]:
            continue
        try:
            twin = last_twin.get(inp)
            last_twin[inp] = i
        except TypeError:  # unhashable input: no symmetry reduction
            continue
        if twin is not None:
            prereq[i] = bit[twin]
    # Reduction: an info op placed right before an op that overwrites the
    # state regardless of it (a write) could as well be left out; so right
    # after an info op, overwriting ops are not tried (Model.overwrites).
    overwrites = [model.overwrites(inp) for _, inp, _ in prepared]

    # Events in real-time order: (history index, op number, is_call).
    events: list[tuple[int, int, bool]] = []
    for i, (op, _, _) in enumerate(prepared):
        events.append((op.invoke_index, i, True))
        if not is_info[i]:
            events.append((op.complete_index, i, False))
    events.sort()
    n_entries = len(events)
    tail = n_entries + 1
    # Entry e (1..n_entries) in flat arrays; 0 is the head, tail the sentinel.
    nxt = list(range(1, n_entries + 2)) + [tail]
    prv = [0] + list(range(0, n_entries + 1))
    is_call = [False] * (n_entries + 2)
    op_of = [0] * (n_entries + 2)
    match = [0] * (n_entries + 2)  # call entry -> its return entry (0: none, info op)
    call_entry = [0] * n
    for e, (_, i, call) in enumerate(events, start=1):
        op_of[e] = i
        is_call[e] = call
        if call:
            call_entry[i] = e
        else:
            match[call_entry[i]] = e
    inputs = [p[1] for p in prepared]
    outputs = [p[2] for p in prepared]
    remaining = n_ok

    step = model.step
    state = model.init()
    lin_ok = 0  # bitset of the ok ops placed so far
    lin_info = 0  # bitset of the info ops placed so far
    # The cache: configurations (placed ok ops S, state s, placed info ops U)
    # already explored. A configuration is pruned when the cache holds one
    # with the same S and s and a subset of its U: info ops are optional, so
    # having used fewer of them leaves at least as many ways to go on (with
    # U always empty this is Lowe's exact cache). Keys pack S above an
    # interned state id; values are the minimal U's seen, one int or a tuple
    # of them. Ints and tuples of ints stay clear of the cyclic GC, which a
    # million cached tuples keys would slow down by half.
    state_ids: dict[Any, int] = {}
    cache: dict[int, int | tuple[int, ...]] = {}
    cache_get = cache.get
    stack_entry: list[int] = []
    stack_state: list[Any] = []
    push_entry = stack_entry.append
    push_state = stack_state.append
    pop_entry = stack_entry.pop
    pop_state = stack_state.pop
    best_depth = 0
    best_stack: list[int] = []
    iterations = 0

    entry = nxt[0]
    after_info = False  # the last op placed is an info op
    while remaining:
        iterations += 1
        if not iterations & _CHECK_EVERY:
            yield len(cache)
        if is_call[entry]:
            i = op_of[entry]
            twin = prereq[i]
            if (twin and not lin_info & twin) or (after_info and overwrites[i]):
                entry = nxt[entry]
                continue
            ok, new_state = step(state, inputs[i], outputs[i])
            if ok:
                if is_info[i]:
                    new_ok = lin_ok
                    new_info = lin_info | bit[i]
                else:
                    new_ok = lin_ok | bit[i]
                    new_info = lin_info
                sid = state_ids.get(new_state)
                if sid is None:
                    sid = state_ids[new_state] = len(state_ids)
                info_now = is_info[i]
                key = (((new_ok << _STATE_BITS) | sid) << 1) | info_now
                prev = cache_get(key)
                if prev is None:
                    cache[key] = new_info
                    fresh = True
                elif prev.__class__ is int:
                    if prev & new_info == prev:
                        fresh = False
                    else:
                        fresh = True
                        cache[key] = new_info if prev & new_info == new_info else (prev, new_info)
                else:
                    fresh = True
                    for u in prev:
                        if u & new_info == u:
                            fresh = False
                            break
                    if fresh:
                        cache[key] = tuple(u for u in prev if u & new_info != new_info) + (
                            new_info,
                        )
                if fresh:
                    push_entry(entry)
                    push_state(state)
                    state = new_state
                    lin_ok = new_ok
                    lin_info = new_info
                    after_info = info_now
                    # lift the call and its return out of the list
                    p = prv[entry]
                    q = nxt[entry]
                    nxt[p] = q
                    prv[q] = p
                    r = match[entry]
                    if r:
                        p = prv[r]
                        q = nxt[r]
                        nxt[p] = q
                        prv[q] = p
                        remaining -= 1
                    if len(stack_entry) > best_depth:
                        best_depth = len(stack_entry)
                        best_stack = stack_entry[:]
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:
            # A return event: its operation could not be placed before it. Undo.
            if not stack_entry:
                return _failure(prepared, best_stack, op_of)
            entry = pop_entry()
            state = pop_state()
            after_info = bool(stack_entry) and is_info[op_of[stack_entry[-1]]]
            i = op_of[entry]
            r = match[entry]
            if r:
                lin_ok ^= bit[i]
                p = prv[r]
                q = nxt[r]
                nxt[p] = r
                prv[q] = r
                remaining += 1
            else:
                lin_info ^= bit[i]
            p = prv[entry]
            q = nxt[entry]
            nxt[p] = entry
            prv[q] = entry
            entry = nxt[entry]
    return _PartitionOutcome(True)


def _failure(
    prepared: list[tuple[Operation, Any, Any]],
    best_stack: list[int],
    op_of: list[int],
) -> _PartitionOutcome:
    placed = [op_of[e] for e in best_stack]
    prefix = tuple(prepared[i][0] for i in placed)
    done = set(placed)
    left = [i for i in range(len(prepared)) if i not in done]
    deadline = min(
        (prepared[i][0].complete_index for i in left if prepared[i][0].status == "ok"),
        default=None,
    )
    unplaced = tuple(
        prepared[i][0] for i in left if deadline is None or prepared[i][0].invoke_index < deadline
    )
    return _PartitionOutcome(False, prefix, unplaced)


def _operations(history: History | Sequence[Operation]) -> Sequence[Operation]:
    if isinstance(history, History):
        return history.operations()
    for op in history:
        if op.status not in ("ok", "info", "fail"):
            raise CheckerError(f"operation #{op.id} has status {op.status!r}")
        if op.status == "ok" and (
            op.complete_index is None or op.complete_index <= op.invoke_index
        ):
            raise CheckerError(f"ok operation #{op.id} has no completion after its invocation")
    return history


def check(
    history: History | Sequence[Operation],
    model: str | Model,
    timeout: float | None = None,
    *,
    cancel: threading.Event | None = None,
    max_configs: int | None = DEFAULT_MAX_CONFIGS,
) -> LinearizabilityResult:
    """Is ``history`` linearizable with respect to ``model``? Blocking; see module doc.

    Partitions are searched round-robin, a slice of steps each, so that one
    hard partition does not hide an easy failure in another (Porcupine runs
    them in parallel for the same reason). ``cancel`` (set from another
    thread) stops the search like a timeout. ``max_configs`` bounds memory:
    once the caches of all partitions hold that many configurations the
    verdict is ``unknown`` (reason ``memory``); None for no bound.

    Raises :class:`fuzzer.errors.InputError` for a malformed history (e.g. a
    completion without invocation) and :class:`fuzzer.errors.CheckerError` for
    an unknown model or an operation the model does not know.
    """
    start = time.monotonic()
    m = get_model(model)
    ops = _operations(history)
    deadline = None if timeout is None else start + timeout
    parts = m.partition(ops)
    active = [(key, _search(m, part)) for key, part in parts.items()]
    sizes: dict[int, int] = {}
    monotonic = time.monotonic

    def result(
        verdict: str,
        key: Hashable = None,
        outcome: _PartitionOutcome | None = None,
        reason: str = "",
    ) -> LinearizabilityResult:
        for _, other in active:
            other.close()
        return LinearizabilityResult(
            verdict,
            key=key,
            prefix=outcome.prefix if outcome else (),
            unplaced=outcome.unplaced if outcome else (),
            elapsed=monotonic() - start,
            partitions=len(parts),
            model=m.name,
            reason=reason,
        )

    while active:
        still = []
        for key, search in active:
            if deadline is not None and monotonic() > deadline:
                return result(UNKNOWN_VERDICT, key, reason="timeout")
            if cancel is not None and cancel.is_set():
                return result(UNKNOWN_VERDICT, key, reason="cancelled")
            try:
                sizes[id(search)] = next(search)
            except StopIteration as stop:
                sizes.pop(id(search), None)
                outcome: _PartitionOutcome = stop.value
                if not outcome.linearizable:
                    return result(NOT_LINEARIZABLE, key, outcome)
                continue
            if max_configs is not None and sum(sizes.values()) > max_configs:
                return result(UNKNOWN_VERDICT, key, reason="memory")
            still.append((key, search))
        active = still
    return result(LINEARIZABLE)


def check_operations(
    ops: Sequence[Operation], model: str | Model, timeout: float | None = None
) -> LinearizabilityResult:
    """Same as :func:`check` for already paired operations."""
    return check(ops, model, timeout)


async def check_async(
    history: History | Sequence[Operation],
    model: str | Model,
    timeout: float | None = None,
) -> LinearizabilityResult:
    """:func:`check` in a worker thread, so the event loop keeps running.

    If the awaiting task is cancelled, the search is told to stop at its next
    clock check (within a few milliseconds) and the cancellation propagates.
    """
    cancel = threading.Event()
    try:
        return await asyncio.to_thread(check, history, model, timeout, cancel=cancel)
    except asyncio.CancelledError:
        cancel.set()
        raise
