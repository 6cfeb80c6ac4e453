"""Turning whatever history a caller has into paired operations, and the
questions every workload checker asks of them.

Why a separate step: every workload checker asks the same things of a history
("which adds were acknowledged, which may have happened, what did each node
read last?") and all of them must agree on the Jepsen semantics that
:meth:`fuzzer.workload.history.History.operations` implements (``ok`` happened,
``fail`` did not, ``info`` or no completion may have happened any time after
the invocation). So the checkers accept a :class:`History`, any iterable of
:class:`Op`, or plain dicts with ``process``/``type``/``f``/``value`` (and
optionally ``key``/``time``), and all go through that one pairing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fuzzer.errors import CheckerError
from fuzzer.workload.history import History, Op, Operation

OK, FAIL, INFO = "ok", "fail", "info"

NodeOf = Callable[[Operation], Any]


def operations(history: Any) -> tuple[Operation, ...]:
    """Paired operations of a :class:`History`, of an iterable of :class:`Op`,
    or of an iterable of dicts; :class:`~fuzzer.errors.InputError` for a
    completion without invocation and the like (reported, never dropped)."""
    if isinstance(history, History):
        return history.operations()
    ops = []
    for i, x in enumerate(history):
        if isinstance(x, Op):
            ops.append(x)
        elif isinstance(x, Mapping):
            try:
                ops.append(
                    Op(
                        process=x["process"],
                        type=str(x["type"]).lstrip(":"),
                        f=str(x["f"]).lstrip(":"),
                        value=x.get("value"),
                        key=x.get("key"),
                        time=x.get("time", i),
                        line=x.get("line", i),
                    )
                )
            except KeyError as exc:
                raise CheckerError(f"history op #{i} lacks {exc.args[0]!r}") from None
        else:
            raise CheckerError(f"history op #{i} is a {type(x).__name__}, not an Op or a dict")
    return History(tuple(ops)).operations()


def by_process(op: Operation) -> Any:
    """The default ``node_of``: the client process stands for the node it talks to."""
    return op.process


def final_reads(
    ops: Iterable[Operation],
    *,
    f: str = "read",
    node_of: NodeOf = by_process,
    healed_at: float | None = None,
) -> dict[Any, Operation]:
    """The last ``ok`` read per node (by invocation order), invoked at or after
    ``healed_at`` (history time) when given. Nodes without one are absent."""
    out: dict[Any, Operation] = {}
    for op in ops:
        if op.f != f or op.status != OK:
            continue
        if healed_at is not None and op.invoke_time < healed_at:
            continue
        out[node_of(op)] = op
    return out


_SCALARS = frozenset({int, str, float, bool, bytes, type(None)})


def freeze(x: Any) -> Any:
    """A hashable stand-in for a value read from a history (lists become tuples)."""
    if type(x) in _SCALARS:
        return x
    if isinstance(x, (list, tuple)):
        return tuple(freeze(v) for v in x)
    if isinstance(x, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in x.items()))
    if isinstance(x, (set, frozenset)):
        return frozenset(freeze(v) for v in x)
    return x
