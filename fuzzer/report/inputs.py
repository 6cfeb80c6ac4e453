"""Plain inputs for the reports: events, histories and verdicts in any stored form.

Why a separate normalisation step: a report is drawn from live values (a
tracker :class:`~instrumentation.protocol.Event`, a
:class:`~fuzzer.workload.history.History`, a
:class:`~fuzzer.checkers.verdict.Verdict`, a linearizability result) as well
as from what a bundle stores after a msgpack round trip (events as positional
lists or dicts, ops as dicts or rows, verdicts as dicts). The renderer works
on one form only; this module turns every stored form into it and names the
item at fault when something cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuzzer.errors import InputError
from fuzzer.workload.history import History, Op
from instrumentation.protocol import FIELDS, Event

__all__ = ["to_event", "events_of", "history_of", "verdict_dicts", "op_text"]

_EVENT_KEYS = ("node", "seq", "lamport", "wall_ns", "mono_ns", "kind", "fields")


def to_event(x: Any, where: str = "event") -> Event:
    """An :class:`Event` from an Event, a ``[node, seq, lamport, wall, mono, kind, fields]``
    list (the bundle form) or a dict with the Event's field names."""
    if isinstance(x, Event):
        return x
    try:
        if isinstance(x, Mapping):
            vals = [x[k] for k in _EVENT_KEYS]
        elif isinstance(x, Sequence) and not isinstance(x, str | bytes) and len(x) == 7:
            vals = list(x)
        else:
            raise ValueError("expected a 7-element list or a table")
        node, seq, lamport, wall, mono, kind, fields = vals
        fields = tuple(fields)
        if not isinstance(node, str) or type(kind) is not int or kind not in FIELDS:
            raise ValueError(f"bad node {node!r} or kind {kind!r}")
        if len(fields) != len(FIELDS[kind]):
            raise ValueError(f"kind {kind} needs {len(FIELDS[kind])} fields, got {len(fields)}")
        return Event(node, int(seq), int(lamport), int(wall), int(mono), kind, fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"not an event: {exc}", where=where) from None


def events_of(trace: Iterable[Any] | None, source: str = "trace") -> list[Event]:
    """Every item of ``trace`` as an Event (InputError naming ``source[i]`` otherwise)."""
    return [to_event(x, f"{source}[{i}]") for i, x in enumerate(trace or ())]


def history_of(history: Any, source: str = "history") -> History | None:
    """A :class:`History` from a History, Ops, op dicts or ``[process, type, f, value,
    key, time]`` rows (the history file's row form); None for no history."""
    if history is None:
        return None
    if isinstance(history, History):
        return history
    ops = []
    for i, x in enumerate(history):
        try:
            if isinstance(x, Op):
                ops.append(x)
            elif isinstance(x, Mapping):
                ops.append(
                    Op(
                        int(x["process"]), str(x["type"]), str(x["f"]), x.get("value"),
                        x.get("key"), int(x.get("time") or 0), x.get("line"),
                    )
                )
            elif isinstance(x, Sequence) and len(x) >= 6:
                ops.append(Op(int(x[0]), str(x[1]), str(x[2]), x[3], x[4], int(x[5] or 0)))
            else:
                raise ValueError("expected a table or a [process, type, f, value, key, time] row")
        except Exception as exc:  # KeyError, TypeError, ValueError, CheckerError
            raise InputError(f"not a history op: {exc}", where=f"{source}[{i}]") from None
    return History(tuple(ops), source=source)


def _lin_result_dict(r: Any) -> dict[str, Any]:
    from fuzzer.checkers.verdict import plain

    status = {"linearizable": "ok", "not-linearizable": "violated"}.get(r.verdict, "unknown")
    return {
        "oracle": "linearizability",
        "status": status,
        "name": r.verdict,
        "explanation": (
            f"key {r.key!r}: no linearization; {len(r.unplaced)} op(s) could not be placed "
            f"after a linearizable prefix of {len(r.prefix)}"
            if r.verdict == "not-linearizable" else r.describe()),
        "kind": "safety",
        "offending": [plain(op) for op in r.unplaced],
        "context": [],
        "details": {
            "key": r.key if isinstance(r.key, str | int | float) or r.key is None else repr(r.key),
            "model": r.model,
            "prefix_length": len(r.prefix),
            "prefix": [op.describe() for op in r.prefix],
            "unplaced": [op.describe() for op in r.unplaced],
        },
    }


def verdict_dicts(verdicts: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Verdicts (Verdict values, linearizability results or their dict forms) as dicts."""
    out = []
    for i, v in enumerate(verdicts or ()):
        if hasattr(v, "prefix") and hasattr(v, "unplaced") and hasattr(v, "describe"):
            out.append(_lin_result_dict(v))
        elif hasattr(v, "to_dict"):
            out.append(v.to_dict())
        elif isinstance(v, Mapping):
            out.append(dict(v))
        else:
            raise InputError(f"not a verdict: {type(v).__name__}", where=f"verdicts[{i}]")
    return out


def op_text(d: Mapping[str, Any]) -> str:
    """A one-line description of an operation in its dict form (Operation.describe's)."""
    key = "" if d.get("key") is None else f" key={d.get('key')!r}"
    status = d.get("status", "?")
    out = "" if status == "info" else f" -> {d.get('output')!r}"
    return f"p{d.get('process')} {d.get('f')}({d.get('value')!r}){key}{out} [{status}]"
