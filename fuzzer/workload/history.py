"""Client operation histories, in Jepsen's sense, and how they are stored.

A history is the ordered list of events that client processes produced while a
workload ran. Each operation appears as an ``invoke`` event, later followed by
exactly one completion from the same process:

- ``ok``: it happened, and the completion value is what the system returned;
- ``fail``: it definitely did not happen (the checkers drop it);
- ``info``: indeterminate, it may have taken effect at any time after its
  invocation, or never. An invocation with no completion at all means the same.

The order of events in :class:`History` is the real-time order (the recorder
appends as things happen; importers keep file order). Timestamps (monotonic ns)
are kept for reports; the checkers rely on the order, which makes ties harmless.

Public API (used by workload clients and by the checkers)::

    rec = HistoryRecorder()
    h = rec.invoke(process=0, f="write", value=3, key="x")   # -> handle (int)
    rec.ok(h, 3)            # or rec.fail(h, value) / rec.info(h, value)
    history = rec.history() # -> History (frozen)

    history.operations()    # -> tuple[Operation, ...], paired invoke/completion
    save(history, path); load(path)            # msgpack + lz4, versioned
    to_edn(history) -> str; to_json(history) -> str   # Jepsen EDN / JSON exports

Values must be msgpack-friendly (None, bool, int, float, str, bytes, lists,
tuples, dicts); lists come back as tuples so that models can hash them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lz4.frame
import msgpack

from fuzzer.errors import CheckerError, InputError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "OpType",
    "Op",
    "Operation",
    "History",
    "input_error",
    "HistoryRecorder",
    "save",
    "load",
    "dumps",
    "loads",
    "to_edn",
    "to_json",
    "edn_value",
    "freeze",
    "from_ops",
]

FORMAT_NAME = "hbfuzz-history"
FORMAT_VERSION = 1
MAX_HISTORY_BYTES = 256 * 2**20  # decompressed size :func:`loads` accepts

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: tuple[str, ...] = ("invoke", "ok", "fail", "info")


def input_error(message: str, source: str | None, where: str | None = None) -> InputError:
    """An InputError naming the file and line (or the line alone without a file)."""
    if source is None and where is not None:
        return InputError(f"{where}: {message}")
    return InputError(message, path=source, where=where)


@dataclass(frozen=True, slots=True)
class Op:
    """One history event: an invocation or a completion by one client process.

    ``time`` is a monotonic timestamp in ns (or, for imported logs without
    timestamps, the line number); ``line`` is the source line for error messages.
    """

    process: int
    type: str
    f: str
    value: Any = None
    key: Any = None
    time: int = 0
    line: int | None = None

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise CheckerError(f"op type must be one of {', '.join(OP_TYPES)}, not {self.type!r}")


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion: what the checkers consume.

    ``status`` is ``ok``, ``fail`` or ``info`` (``info`` also for an invocation
    that never completed, then ``complete_index`` is None). ``invoke_index`` and
    ``complete_index`` are positions of the two events in the history; they
    define real-time order. ``output`` is the completion value (None for info).
    """

    id: int
    process: int
    f: str
    key: Any
    value: Any
    output: Any
    status: str
    invoke_index: int
    complete_index: int | None
    invoke_time: int
    complete_time: int | None

    def describe(self) -> str:
        key = "" if self.key is None else f" key={self.key!r}"
        out = "" if self.status == "info" else f" -> {self.output!r}"
        return f"p{self.process} {self.f}({self.value!r}){key}{out} [{self.status}]"


@dataclass(frozen=True, slots=True)
class History:
    """A frozen, ordered list of :class:`Op` events (real-time order).

    ``source`` names the file it came from, for error messages.
    """

    ops: tuple[Op, ...] = ()
    source: str | None = None

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def _where(self, index: int) -> str:
        op = self.ops[index]
        return f"line {op.line}" if op.line is not None else f"op #{index}"

    def operations(self) -> tuple[Operation, ...]:
        """Pair invocations with completions, by process, in history order.

        Raises :class:`InputError` (naming the source and line) for a completion
        without an invocation, a second invocation while one is open, or a
        completion whose ``f`` differs from its invocation. Invocations that
        never complete become ``info`` operations.
        """
        open_by_process: dict[int, int] = {}
        slots: list[list[Any]] = []
        for i, op in enumerate(self.ops):
            if op.type == "invoke":
                if op.process in open_by_process:
                    prev = open_by_process[op.process]
                    raise input_error(
                        f"process {op.process} invokes again while its op at "
                        f"{self._where(slots[prev][6])} is still open",
                        self.source,
                        self._where(i),
                    )
                open_by_process[op.process] = len(slots)
                slots.append([op.process, op.f, op.key, op.value, None, "info", i, None])
                continue
            idx = open_by_process.pop(op.process, None)
            if idx is None:
                raise input_error(
                    f"completion :{op.type} :{op.f} for process {op.process} without an invocation",
                    self.source,
                    self._where(i),
                )
            slot = slots[idx]
            if slot[1] != op.f:
                raise input_error(
                    f"completion :{op.f} does not match invocation :{slot[1]} "
                    f"of process {op.process}",
                    self.source,
                    self._where(i),
                )
            slot[4] = op.value
            slot[5] = op.type
            slot[7] = i
        result = []
        for n, (process, f, key, value, output, status, inv, comp) in enumerate(slots):
            if status == "info":
                output = None
            result.append(
                Operation(
                    id=n,
                    process=process,
                    f=f,
                    key=key,
                    value=value,
                    output=output,
                    status=status,
                    invoke_index=inv,
                    complete_index=comp,
                    invoke_time=self.ops[inv].time,
                    complete_time=None if comp is None else self.ops[comp].time,
                )
            )
        return tuple(result)


def freeze(value: Any) -> Any:
    """Lists (and nested lists) as tuples, sets as frozensets: hashable values
    that models can compare and cache, and that nobody can change later."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, set):
        return frozenset(freeze(v) for v in value)
    return value


@dataclass(slots=True)
class HistoryRecorder:
    """Records a history as client processes invoke and complete operations.

    One instance per execution, used from the event loop (not thread-safe).
    Values are frozen (lists become tuples). A handle is an int naming one
    open operation. A process may have at most
    one open operation; after ``info`` a client should use a new process number
    (Jepsen's convention), though the recorder does not insist.
    """

    clock: Callable[[], int] = time.monotonic_ns
    _ops: list[Op] = field(default_factory=list)
    _open: dict[int, Op] = field(default_factory=dict)
    _next_handle: int = 0
    _busy: set[int] = field(default_factory=set)

    def invoke(self, process: int, f: str, value: Any = None, key: Any = None) -> int:
        """Record an invocation now; returns the handle to complete it with."""
        if process in self._busy:
            raise CheckerError(f"process {process} already has an open operation")
        op = Op(
            process=process,
            type="invoke",
            f=f,
            value=freeze(value),
            key=freeze(key),
            time=self.clock(),
        )
        self._ops.append(op)
        handle = self._next_handle
        self._next_handle += 1
        self._open[handle] = op
        self._busy.add(process)
        return handle

    def _complete(self, handle: int, type_: str, value: Any) -> None:
        inv = self._open.pop(handle, None)
        if inv is None:
            raise CheckerError(f"operation handle {handle} is unknown or already completed")
        self._busy.discard(inv.process)
        self._ops.append(
            Op(
                process=inv.process,
                type=type_,
                f=inv.f,
                value=freeze(value),
                key=inv.key,
                time=self.clock(),
            )
        )

    def ok(self, handle: int, value: Any = None) -> None:
        """The operation happened and returned ``value``."""
        self._complete(handle, "ok", value)

    def fail(self, handle: int, value: Any = None) -> None:
        """The operation definitely did not happen."""
        self._complete(handle, "fail", value)

    def info(self, handle: int, value: Any = None) -> None:
        """The outcome is unknown (timeout, crash): it may happen at any later time."""
        self._complete(handle, "info", value)

    @property
    def open_handles(self) -> tuple[int, ...]:
        return tuple(self._open)

    def history(self, source: str | None = None) -> History:
        """A frozen snapshot of what has been recorded so far."""
        return History(tuple(self._ops), source=source)


# --- storage ---------------------------------------------------------------


def _op_row(op: Op) -> list[Any]:
    return [op.process, op.type, op.f, op.value, op.key, op.time]


def dumps(history: History) -> bytes:
    """msgpack + lz4 frame bytes, with a format name and version."""
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fields": ["process", "type", "f", "value", "key", "time"],
        "ops": [_op_row(op) for op in history.ops],
    }
    return lz4.frame.compress(msgpack.packb(doc, use_bin_type=True))


def loads(data: bytes, source: str | None = None, limit: int = MAX_HISTORY_BYTES) -> History:
    """Inverse of :func:`dumps`; raises :class:`InputError` on bad or foreign data.

    At most ``limit`` bytes are decompressed (an lz4 bomb is refused)."""
    from fuzzer.safeio import lz4_frame_decompress, unpack_msgpack

    try:
        doc = unpack_msgpack(lz4_frame_decompress(data, limit=limit), use_list=False)
    except InputError as exc:
        raise InputError(f"not an hbfuzz history (msgpack+lz4): {exc}", path=source) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise InputError("not an hbfuzz history (missing format tag)", path=source)
    if doc.get("version") != FORMAT_VERSION:
        raise InputError(
            f"history format version {doc.get('version')!r} is not supported "
            f"(this hbfuzz reads version {FORMAT_VERSION})",
            path=source,
        )
    ops = []
    rows = doc.get("ops", ())
    if not isinstance(rows, tuple | list):
        raise InputError("history 'ops' is not an array", path=source)
    for n, row in enumerate(rows):
        try:
            process, type_, f, value, key, t = row
            ops.append(Op(process, type_, f, value, key, t, line=None))
        except (TypeError, ValueError, CheckerError) as exc:
            raise input_error(f"bad op record: {exc}", source, f"op #{n}") from None
    return History(tuple(ops), source=source)


def save(history: History, path: str | Path) -> None:
    """Write ``history`` to ``path`` (msgpack + lz4, versioned)."""
    Path(path).write_bytes(dumps(history))


def load(path: str | Path) -> History:
    """Read a history written by :func:`save`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(p)) from None
    return loads(data, source=str(p))


# --- exports ---------------------------------------------------------------


def edn_value(v: Any) -> str:
    """Render a Python value as EDN (None->nil, tuples/lists->vectors, dicts->maps)."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bytes):
        return json.dumps(v.hex())
    if isinstance(v, list | tuple):
        return "[" + " ".join(edn_value(x) for x in v) + "]"
    if isinstance(v, set | frozenset):
        return "#{" + " ".join(edn_value(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{edn_value(k)} {edn_value(x)}" for k, x in v.items()) + "}"
    raise CheckerError(f"cannot render {type(v).__name__} as EDN")


def _edn_keyword(name: str) -> str:
    return ":" + name


def to_edn(history: History) -> str:
    """Jepsen's history.edn: one map per line with :index :time :type :process :f :value."""
    lines = []
    for i, op in enumerate(history.ops):
        parts = [
            f":index {i}",
            f":time {op.time}",
            f":type {_edn_keyword(op.type)}",
            f":process {op.process}",
            f":f {_edn_keyword(op.f)}",
        ]
        if op.key is not None:
            parts.append(f":key {edn_value(op.key)}")
        parts.append(f":value {edn_value(op.value)}")
        lines.append("{" + ", ".join(parts) + "}")
    return "\n".join(lines) + ("\n" if lines else "")


def _jsonable(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, set | frozenset):
        return sorted((_jsonable(x) for x in v), key=repr)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.hex()
    return v


def to_json(history: History) -> str:
    """A JSON document: ``{"format", "version", "ops": [{index, time, type, process, f, key, value}]}``."""
    ops = [
        {
            "index": i,
            "time": op.time,
            "type": op.type,
            "process": op.process,
            "f": op.f,
            "key": _jsonable(op.key),
            "value": _jsonable(op.value),
        }
        for i, op in enumerate(history.ops)
    ]
    return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "ops": ops})


def from_ops(ops: Iterable[Op] | Sequence[Op], source: str | None = None) -> History:
    """Build a :class:`History` from events already in real-time order."""
    return History(tuple(ops), source=source)
