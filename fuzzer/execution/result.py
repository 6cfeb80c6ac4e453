"""What one execution leaves behind: recorded choices, findings and the result value.

Why values and not the live objects: the campaign files findings, the
gymnasium env turns windows into rewards, replay feeds the choices back and
minimisation shrinks them, long after the cluster is gone. So everything an
execution decided (DESIGN.md, "Choices, not only seeds") and everything it
concluded is copied into frozen values here, with a msgpack form for the
choices (bundles come from other machines: never pickle).

A finding's :func:`signature` is ``(oracle, invariant or anomaly, abstract
context)``: the context is the sorted set of *abstract* kinds of the
offending evidence (``SEND:append_entries``, ``STATE:commit_index``, the
``f`` of the ok history operations), never node names, seqs or values, so the same
bug seen on another node or with other values deduplicates to one finding.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from fuzzer.checkers.verdict import LIVENESS, Verdict
from fuzzer.errors import InputError
from fuzzer.faults import Fault, Schedule, parse_fault
from fuzzer.network.model import Fate, decode_choices, encode_choices
from fuzzer.network.ordering import decode_order, encode_order
from fuzzer.tracker.coverage import WindowSummary
from fuzzer.workload.history import History
from fuzzer.workload.maelstrom import GeneratedOp
from instrumentation import protocol
from instrumentation.protocol import Event

__all__ = [
    "CHOICES_FORMAT",
    "RecordedChoices",
    "Finding",
    "ExecutionStats",
    "ExecutionResult",
    "signature",
    "abstract_context",
]

CHOICES_FORMAT = "hbfuzz-choices"
CHOICES_VERSION = 1
MAX_CONTEXT = 8  # abstract kinds kept in a signature


@dataclass(frozen=True)
class RecordedChoices:
    """Every decision of one execution, by stable key, ready to be fed back.

    ``faults``: the nemesis' concrete fault per key (the step index, 0-based);
    ``fates``: the network model's fate per ``(src, dst, per-link seq)``;
    ``ops``: the workload's generated op per ``(client, seq)``;
    ``order``: the mediator's delivery order, message keys ``(src, dst,
    per-link index)`` in the order of their first delivery
    (fuzzer/network/ordering.py; optional, stored under ``"order"``).
    """

    faults: Mapping[Hashable, Fault] = field(default_factory=dict)
    fates: Mapping[tuple[str, str, int], Fate] = field(default_factory=dict)
    ops: Mapping[tuple[int, int], GeneratedOp] = field(default_factory=dict)
    order: tuple[tuple[str, str, int], ...] = ()

    def __len__(self) -> int:
        return len(self.faults) + len(self.fates) + len(self.ops)

    def to_msgpack(self) -> bytes:
        faults = [[k, f.to_text()] for k, f in self.faults.items() if isinstance(k, int | str)]
        obj = {
            "format": CHOICES_FORMAT,
            "v": CHOICES_VERSION,
            "faults": faults,
            "fates": encode_choices(self.fates),
            "ops": [op.as_row() for op in self.ops.values()],
        }
        if self.order:
            obj["order"] = encode_order(self.order)
        return msgpack.packb(obj, use_bin_type=True)

    @classmethod
    def from_msgpack(cls, data: bytes, path: str = "<choices>") -> RecordedChoices:
        """Inverse of :meth:`to_msgpack`; :class:`InputError` naming ``path`` if malformed."""
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise InputError(f"not a msgpack choice record ({exc})", path=path) from None
        if not isinstance(obj, dict) or obj.get("format") != CHOICES_FORMAT:
            raise InputError("not an hbfuzz choice record (missing format marker)", path=path)
        if obj.get("v") != CHOICES_VERSION:
            raise InputError(f"choice record version {obj.get('v')!r} is not supported", path=path)
        try:
            faults = {k: parse_fault(text, path) for k, text in obj.get("faults", [])}
            ops = {}
            for row in obj.get("ops", []):
                op = GeneratedOp.from_row(row)
                ops[op.choice_key] = op
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"malformed choice record ({exc})", path=path) from None
        fates = decode_choices(obj.get("fates", b""), path) if obj.get("fates") else {}
        order = decode_order(obj["order"], path) if obj.get("order") else ()
        return cls(faults, fates, ops, order)


def _event_kind(ev: Event) -> str:
    name = protocol.KIND_NAMES.get(ev.kind, str(ev.kind))
    f = ev.fields
    if ev.kind in (protocol.SEND, protocol.RECV):
        return f"{name}:{f[1]}"
    if ev.kind in (protocol.STATE, protocol.LOCAL, protocol.VIOLATION):
        key = str(f[0])
        if ev.kind == protocol.STATE and "." in key:  # match_index.n2 -> match_index
            key = key.split(".", 1)[0]
        return f"{name}:{key}"
    return name


def abstract_context(verdict: Verdict) -> tuple[str, ...]:
    """The abstract kinds of a verdict's offending evidence (sorted, unique, capped)."""
    kinds: set[str] = set()
    ops: set[str] = set()
    ok_ops: set[str] = set()
    for x in verdict.offending:
        if isinstance(x, Event):
            kinds.add(_event_kind(x))
        elif hasattr(x, "f") and hasattr(x, "status"):  # a history Operation
            ops.add(f"op:{x.f}")
            if x.status == "ok":
                ok_ops.add(f"op:{x.f}")
    # indeterminate ops come and go between runs of one bug: the definite ones name it
    kinds |= ok_ops or ops
    return tuple(sorted(kinds)[:MAX_CONTEXT])


def signature(verdict: Verdict) -> tuple[str, str, tuple[str, ...]]:
    """``(oracle, name, abstract context)``: the deduplication key of a finding."""
    return (verdict.oracle, verdict.name, abstract_context(verdict))


@dataclass(frozen=True)
class Finding:
    """A violated verdict with its deduplication signature; ``kind`` safety or liveness."""

    verdict: Verdict
    signature: tuple[str, str, tuple[str, ...]]

    @classmethod
    def of(cls, verdict: Verdict) -> Finding:
        return cls(verdict, signature(verdict))

    @property
    def kind(self) -> str:
        return self.verdict.kind

    @property
    def is_liveness(self) -> bool:
        return self.verdict.kind == LIVENESS

    @property
    def key(self) -> str:
        """The signature as one line (``oracle/name[ctx,...]``), for file names and logs."""
        o, n, ctx = self.signature
        return f"{o}/{n}[{','.join(ctx)}]"


@dataclass(frozen=True)
class ExecutionStats:
    """Counters of one execution. ``duration``: wall seconds from start to the
    end of the oracles; ``phases``: seconds per phase (start, warmup, steps,
    heal, quiescence, liveness, final, teardown, oracles)."""

    events: int = 0
    messages: int = 0
    delivered: int = 0
    ops: int = 0
    ops_ok: int = 0
    ops_fail: int = 0
    ops_info: int = 0
    hb_edges: int = 0
    fault_errors: int = 0
    unexpected_exits: int = 0
    duration: float = 0.0
    phases: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionResult:
    """Everything one execution decided and concluded (see module docstring).

    ``schedule`` holds the concrete faults as applied (``kill n2``, not
    ``kill leader``), ``requested`` the schedule as asked for. ``trace`` is
    the event list when kept in memory, ``trace_path`` where it was saved
    (msgpack + lz4 wire batches, :func:`fuzzer.execution.trace.load_trace`).
    ``novelty`` is the sum of the windows' rewards (the scheduler's
    :func:`~fuzzer.scheduler.base.reward`), ``new_hb``/``new_edges`` the
    coverage this execution added campaign-wide; ``finding`` the key of the
    first safety finding, else of the first liveness one, else None (what
    :class:`~fuzzer.scheduler.base.ExecutionFeedback` reads).
    """

    execution_id: str
    seed: int
    schedule: Schedule
    requested: Schedule
    choices: RecordedChoices
    windows: tuple[WindowSummary, ...]
    verdicts: tuple[Verdict, ...]
    findings: tuple[Finding, ...]
    history: History
    stats: ExecutionStats
    novelty: float = 0.0
    new_hb: int = 0
    new_edges: int = 0
    trace: tuple[Event, ...] = ()
    trace_path: Path | None = None
    workdir: Path | None = None
    cancelled: bool = False
    notes: tuple[str, ...] = ()

    @property
    def safety(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.is_liveness)

    @property
    def hangs(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_liveness)

    @property
    def finding(self) -> str | None:
        first = (self.safety or self.hangs or (None,))[0]
        return None if first is None else first.key

    @property
    def signatures(self) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        return tuple(f.signature for f in self.findings)

    def summary(self) -> dict[str, Any]:
        """A small JSON-friendly summary (logs, benchmarks)."""
        return {
            "execution": self.execution_id,
            "seed": self.seed,
            "steps": len(self.schedule),
            "events": self.stats.events,
            "messages": self.stats.messages,
            "ops": self.stats.ops,
            "duration": round(self.stats.duration, 3),
            "new_hb": self.new_hb,
            "new_edges": self.new_edges,
            "findings": [f.key for f in self.findings],
        }
