"""The one value every oracle returns: :class:`Verdict`.

Why one shared value: the execution loop, the corpus, deduplication and the
reports all consume oracle output without caring which oracle produced it
(a workload checker, an event-stream invariant, the liveness probe or the
linearizability checker). A verdict says *which* oracle judged, *what*
property or anomaly it is about, whether it held, and *why* (one line, the
offending ops or events, and the causal past of those events when an HB graph
was available), so a report can show the evidence without re-running anything.

``Verdict.signature`` is the ``(oracle, name)`` part of a finding's
deduplication signature (the abstract HB context is added by whoever files
the finding). ``kind`` separates safety from liveness findings, which users
budget separately (``hangs/`` vs ``crashes/``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OK = "ok"
VIOLATED = "violated"
UNKNOWN = "unknown"
STATUSES = (OK, VIOLATED, UNKNOWN)

SAFETY = "safety"
LIVENESS = "liveness"
KINDS = (SAFETY, LIVENESS)


@dataclass(frozen=True)
class Verdict:
    """An oracle's judgement of one property on one execution.

    ``oracle``: which oracle judged (``"workload:broadcast"``, ``"invariant"``,
    ``"liveness"``, ``"linearizability"``). ``name``: the invariant or anomaly
    (``"lost-message"``, ``"one-leader-per-term"``, ``"hang"``). ``offending``:
    the history ops or :class:`~instrumentation.protocol.Event` values involved.
    ``context``: the causal past of the offending events (events only), oldest
    first. ``details``: small, msgpack-friendly facts (counts, values, nodes).
    """

    oracle: str
    status: str
    name: str
    explanation: str = ""
    offending: tuple = ()
    context: tuple = ()
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    kind: str = SAFETY

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status {self.status!r} is not one of {STATUSES}")
        if self.kind not in KINDS:
            raise ValueError(f"verdict kind {self.kind!r} is not one of {KINDS}")
        # Accept lists from callers but store tuples so the value stays immutable.
        if not isinstance(self.offending, tuple):
            object.__setattr__(self, "offending", tuple(self.offending))
        if not isinstance(self.context, tuple):
            object.__setattr__(self, "context", tuple(self.context))

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def violated(self) -> bool:
        return self.status == VIOLATED

    @property
    def unknown(self) -> bool:
        return self.status == UNKNOWN

    @property
    def signature(self) -> tuple[str, str]:
        """``(oracle, invariant or anomaly)``: the oracle part of a Finding's signature."""
        return (self.oracle, self.name)

    def line(self) -> str:
        """One line for logs and status screens."""
        text = f"{self.oracle}/{self.name}: {self.status}"
        return f"{text}: {self.explanation}" if self.explanation else text

    def to_dict(self) -> dict[str, Any]:
        """A msgpack/JSON-friendly dict (ops and events converted to plain data)."""
        return {
            "oracle": self.oracle,
            "status": self.status,
            "name": self.name,
            "explanation": self.explanation,
            "kind": self.kind,
            "offending": [plain(x) for x in self.offending],
            "context": [plain(x) for x in self.context],
            "details": plain(dict(self.details)),
        }


def ok(oracle: str, name: str, explanation: str = "", **details: Any) -> Verdict:
    return Verdict(oracle, OK, name, explanation, details=details)


def violated(
    oracle: str,
    name: str,
    explanation: str,
    offending: Iterable = (),
    *,
    context: Iterable = (),
    kind: str = SAFETY,
    **details: Any,
) -> Verdict:
    return Verdict(
        oracle, VIOLATED, name, explanation, tuple(offending), tuple(context), details, kind
    )


def unknown(
    oracle: str, name: str, explanation: str, offending: Iterable = (), **details: Any
) -> Verdict:
    return Verdict(oracle, UNKNOWN, name, explanation, tuple(offending), details=details)


def worst(verdicts: Iterable[Verdict]) -> str:
    """The overall status of several verdicts: violated > unknown > ok (ok when empty)."""
    statuses = {v.status for v in verdicts}
    if VIOLATED in statuses:
        return VIOLATED
    if UNKNOWN in statuses:
        return UNKNOWN
    return OK


def plain(x: Any) -> Any:
    """Convert ops, events, dataclasses and containers to msgpack-friendly data."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if hasattr(x, "_asdict"):  # NamedTuple, e.g. protocol.Event
        return {k: plain(v) for k, v in x._asdict().items()}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    to_dict = getattr(x, "to_dict", None)
    if callable(to_dict):
        return plain(to_dict())
    if isinstance(x, Mapping):
        return {(k if isinstance(k, (str, int)) else str(k)): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        items = [plain(v) for v in x]
        if isinstance(x, (set, frozenset)):
            items.sort(key=repr)
        return items
    return repr(x)
