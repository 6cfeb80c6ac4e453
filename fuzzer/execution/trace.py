"""An execution's event trace on disk: msgpack + lz4 frame, versioned, never pickle.

Why a file of its own: bundles and reports need the whole trace after the
tracker has dropped the execution's timeline, and a campaign keeps only the
last few traces of ordinary executions (bounded disk). Each event is stored
as its wire array with the node name in front, so any tool that knows the
event protocol (instrumentation/protocol.py) can read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import lz4.frame
import msgpack

from fuzzer.errors import InputError
from instrumentation.protocol import Event

__all__ = ["TRACE_FORMAT", "save_trace", "load_trace"]

TRACE_FORMAT = "hbfuzz-trace"
TRACE_VERSION = 1


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


def load_trace(path: Path | str) -> list[Event]:
    """Read a trace written by :func:`save_trace`; :class:`InputError` naming the file."""
    p = Path(path)
    try:
        obj = msgpack.unpackb(lz4.frame.decompress(p.read_bytes()), raw=False,
                              strict_map_key=False)
    except OSError as exc:
        raise InputError(f"cannot read trace ({exc.strerror})", path=str(p)) from None
    except Exception as exc:
        raise InputError(f"not an hbfuzz trace ({exc})", path=str(p)) from None
    if not isinstance(obj, dict) or obj.get("format") != TRACE_FORMAT:
        raise InputError("not an hbfuzz trace (missing format marker)", path=str(p))
    if obj.get("v") != TRACE_VERSION:
        raise InputError(f"trace version {obj.get('v')!r} is not supported", path=str(p))
    out = []
    for i, row in enumerate(obj.get("events", [])):
        try:
            node, seq, lamport, wall, mono, kind, *fields = row
            out.append(Event(node, seq, lamport, wall, mono, kind, tuple(fields)))
        except (TypeError, ValueError):
            raise InputError("malformed event", path=str(p), where=f"event {i}") from None
    return out
