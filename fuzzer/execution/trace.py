"""An execution's event trace on disk: msgpack + lz4 frame, versioned, never pickle.

Why a file of its own: bundles and reports need the whole trace after the
tracker has dropped the execution's timeline, and a campaign keeps only the
last few traces of ordinary executions (bounded disk). Each event is stored
as its wire array with the node name in front, so any tool that knows the
event protocol (instrumentation/protocol.py) can read it.

Two forms are read by :func:`load_trace` (one loader for every trace file a
campaign leaves): the documented one :func:`save_trace` writes, an lz4 frame
of ``{"format": "hbfuzz-trace", "v": 1, "execution": ..., "events": rows}``
with flat rows ``[node, seq, lamport, wall_ns, mono_ns, kind, *fields]``;
and the bare form of a campaign's ``OUT/traces/exec:*.msgpack.lz4`` when the
execution kept its trace in memory, an lz4 frame of a msgpack list of the
bundle's trace rows ``[node, seq, lamport, wall_ns, mono_ns, kind, [fields]]``
(what :func:`fuzzer.repro.bundle.to_plain` makes of events, also how a
bundle's ``trace`` is stored; :func:`events_from_rows` reads those).

A trace file is untrusted input (it may come with a bundle from another
machine): its size is bounded before reading, the frame's declared content
size before decompressing and the output while decompressing
(:func:`fuzzer.safeio.lz4_frame_decompress`), so an lz4 bomb is refused with
an :class:`~fuzzer.errors.InputError` naming the file, never allocated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lz4.frame
import msgpack

from fuzzer.errors import InputError
from fuzzer.safeio import (
    MAX_DECOMPRESSED,
    lz4_frame_decompress,
    read_bytes_bounded,
    unpack_msgpack,
)
from instrumentation.protocol import Event

__all__ = [
    "TRACE_FORMAT",
    "MAX_TRACE_FILE",
    "MAX_TRACE_BYTES",
    "save_trace",
    "load_trace",
    "events_from_rows",
]

TRACE_FORMAT = "hbfuzz-trace"
TRACE_VERSION = 1
MAX_TRACE_FILE = 256 * 2**20  # compressed bytes read from disk
MAX_TRACE_BYTES = MAX_DECOMPRESSED  # what a trace may decompress to (lz4 bomb guard)


def save_trace(events: Iterable[Event], path: Path | str, execution: str = "") -> Path:
    """Write ``events`` atomically (temp file, then rename); returns the path."""
    p = Path(path)
    rows = [[e.node, *e.to_wire()] for e in events]
    data = msgpack.packb({"format": TRACE_FORMAT, "v": TRACE_VERSION, "execution": execution,
                          "events": rows}, use_bin_type=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(lz4.frame.compress(data))
    os.replace(tmp, p)
    return p


def _event(row: Any, flat: bool) -> Event:
    if isinstance(row, Mapping):
        vals = [row["node"], row["seq"], row["lamport"], row["wall_ns"], row["mono_ns"],
                row["kind"], row["fields"]]
        flat = False
    elif isinstance(row, list | tuple):
        vals = list(row)
    else:
        raise TypeError(f"expected a list or a table, got {type(row).__name__}")
    if flat:
        node, seq, lamport, wall, mono, kind, *fields = vals
    else:
        node, seq, lamport, wall, mono, kind, fields = vals
        if not isinstance(fields, list | tuple):
            raise TypeError("fields must be a list")
    if not isinstance(node, str):
        raise TypeError("node must be a string")
    for x in (seq, lamport, kind):
        if type(x) is not int:
            raise TypeError("seq, lamport and kind must be integers")
    for x in (wall, mono):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise TypeError("wall_ns and mono_ns must be numbers")
    return Event(node, seq, lamport, int(wall), int(mono), kind, tuple(fields))


def events_from_rows(rows: Iterable[Any], path: str = "<trace>", *,
                     flat: bool = False, where: str = "event {}") -> list[Event]:
    """Trace rows as Events: ``flat`` rows are ``[node, *wire event]`` (save_trace),
    others ``[node, seq, lamport, wall_ns, mono_ns, kind, [fields]]`` or tables
    with the Event's field names (bundles, campaign traces). An error names
    ``path`` and ``where`` with the row's index (``event 3``, ``trace[3]``)."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(_event(row, flat))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed event ({exc})", path=path,
                             where=where.format(i)) from None
    return out


def load_trace(path: Path | str, *, max_file: int = MAX_TRACE_FILE,
               limit: int = MAX_TRACE_BYTES) -> list[Event]:
    """Read a trace file (either form, see the module docstring); untrusted input:
    a file over ``max_file`` bytes, a frame declaring or inflating past ``limit``
    bytes (an lz4 bomb), or anything malformed is an :class:`InputError` naming it."""
    p = str(path)
    data = read_bytes_bounded(p, max_file, what="trace")
    payload = lz4_frame_decompress(data, limit=limit, path=p, what="trace")
    obj = unpack_msgpack(payload, path=p, what="trace")
    if isinstance(obj, list):  # the bare form (campaign traces of in-memory executions)
        return events_from_rows(obj, p)
    if not isinstance(obj, dict) or obj.get("format") != TRACE_FORMAT:
        raise InputError("not an hbfuzz trace (missing format marker)", path=p)
    if obj.get("v") != TRACE_VERSION:
        raise InputError(f"trace version {obj.get('v')!r} is not supported (this hbfuzz reads "
                         f"version {TRACE_VERSION})", path=p)
    rows = obj.get("events", [])
    if not isinstance(rows, list):
        raise InputError("events: expected a list", path=p)
    return events_from_rows(rows, p, flat=True)

