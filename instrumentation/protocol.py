"""The event wire format shared by nodes and the tracker (docs/event-protocol.md).

Why positional msgpack arrays: events are the hot path of the whole system
(hundreds of thousands per second into the tracker), so each event is a short
array, each batch one lz4 block, and nothing needs generated code, so a node
written in any language can report with a msgpack and an lz4 library.

A *batch* on the wire is::

    b"HB" | version:u8 | flags:u8 | raw_len:u32 big-endian | lz4 block (no stored size)

where the lz4 block decompresses to exactly ``raw_len`` bytes of msgpack::

    [node:str, execution:str, batch_seq:int, dropped:int, events:list]

``dropped`` is the number of events the node's reporter had to drop (buffer
full) since its previous batch. Each element of ``events`` is::

    [seq:int, lamport:int, wall_ns:int, mono_ns:int, kind:int, *fields]

with the kind-specific ``fields`` listed in :data:`FIELDS`. ``raw_len`` is
bounded by :data:`MAX_RAW_BATCH` *before* decompressing, so an lz4 bomb is
refused without allocating.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from instrumentation.errors import ProtocolError

VERSION = 1
MAGIC = b"HB"
HEADER = struct.Struct(">2sBBI")
MAX_RAW_BATCH = 16 * 1024 * 1024  # bytes of msgpack after decompression
MAX_WIRE_BATCH = 8 * 1024 * 1024  # bytes on the wire

# gRPC: one client-streaming method, bytes in (batches), bytes out (msgpack ack).
SERVICE = "hbfuzz.Tracker"
METHOD = f"/{SERVICE}/Report"

# Environment variables the fuzzer sets for a node it starts.
ENV_TRACKER = "HBFUZZ_TRACKER"  # host:port of the tracker's gRPC server
ENV_NODE = "HBFUZZ_NODE"  # node name, e.g. "n1"
ENV_EXECUTION = "HBFUZZ_EXECUTION"  # execution id
ENV_COVERAGE = "HBFUZZ_COVERAGE_MODULES"  # comma-separated module prefixes
ENV_CLOCK_OFFSET = "HBFUZZ_CLOCK_OFFSET"  # seconds added to time.time/monotonic
ENV_CLOCK_RATE = "HBFUZZ_CLOCK_RATE"  # clock rate multiplier (1.0 = normal)

# Event kinds.
SEND = 1  # fields: peer (dst), msg_type, msg_id
RECV = 2  # fields: peer (src), msg_type, msg_id, sender_lamport
LOCAL = 3  # fields: name, attrs (map str -> scalar)
STATE = 4  # fields: key, value
APPLY = 5  # fields: index, term, digest
COVERAGE = 6  # fields: edges (list of int edge ids)
VIOLATION = 7  # fields: name, details (map)
LOG = 8  # fields: level, text
EXIT = 9  # fields: reason (str), code (int or nil)
FAULT = 10  # fields: action ("apply"|"undo"), fault (text form), attrs (map)

KIND_NAMES = {
    SEND: "SEND",
    RECV: "RECV",
    LOCAL: "LOCAL",
    STATE: "STATE",
    APPLY: "APPLY",
    COVERAGE: "COVERAGE",
    VIOLATION: "VIOLATION",
    LOG: "LOG",
    EXIT: "EXIT",
    FAULT: "FAULT",
}
FIELDS: dict[int, tuple[str, ...]] = {
    SEND: ("peer", "msg_type", "msg_id"),
    RECV: ("peer", "msg_type", "msg_id", "sender_lamport"),
    LOCAL: ("name", "attrs"),
    STATE: ("key", "value"),
    APPLY: ("index", "term", "digest"),
    COVERAGE: ("edges",),
    VIOLATION: ("name", "details"),
    LOG: ("level", "text"),
    EXIT: ("reason", "code"),
    FAULT: ("action", "fault", "attrs"),
}


class Event(NamedTuple):
    """One event on a node's timeline, as the tracker stores it.

    ``fields`` holds the kind-specific values in the order of :data:`FIELDS`.
    """

    node: str
    seq: int
    lamport: int
    wall_ns: int
    mono_ns: int
    kind: int
    fields: tuple

    def field(self, name: str) -> Any:
        return self.fields[FIELDS[self.kind].index(name)]

    def to_wire(self) -> list:
        return [self.seq, self.lamport, self.wall_ns, self.mono_ns, self.kind, *self.fields]


class Batch(NamedTuple):
    node: str
    execution: str
    batch_seq: int
    dropped: int
    events: list  # raw event arrays: [seq, lamport, wall_ns, mono_ns, kind, *fields]


def encode_batch(
    node: str, execution: str, batch_seq: int, dropped: int, events: list[list]
) -> bytes:
    """Pack raw event arrays into one wire batch."""
    import lz4.block
    import msgpack

    raw = msgpack.packb([node, execution, batch_seq, dropped, events], use_bin_type=True)
    if len(raw) > MAX_RAW_BATCH:
        raise ProtocolError(f"batch of {len(raw)} bytes exceeds {MAX_RAW_BATCH}")
    body = lz4.block.compress(raw, store_size=False)
    return HEADER.pack(MAGIC, VERSION, 0, len(raw)) + body


def decode_batch(data: bytes, max_raw: int = MAX_RAW_BATCH) -> Batch:
    """Decode and validate one wire batch; raise :class:`ProtocolError` on anything wrong.

    Validates the shape of every event (array of at least five ints, a known
    kind with the right number of fields) so that consumers can index freely.
    """
    import lz4.block
    import msgpack

    if len(data) > MAX_WIRE_BATCH:
        raise ProtocolError(f"batch of {len(data)} bytes on the wire exceeds {MAX_WIRE_BATCH}")
    if len(data) < HEADER.size:
        raise ProtocolError("truncated batch header")
    magic, version, _flags, raw_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("not an hbfuzz event batch (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"event batch version {version} is not supported (expected {VERSION})")
    if raw_len > max_raw:
        raise ProtocolError(f"batch declares {raw_len} bytes, over the limit of {max_raw}")
    try:
        raw = lz4.block.decompress(data[HEADER.size :], uncompressed_size=raw_len)
    except Exception as exc:  # lz4 raises LZ4BlockError (a RuntimeError) on corrupt input
        raise ProtocolError(f"corrupt lz4 block: {exc}") from None
    if len(raw) != raw_len:
        raise ProtocolError("lz4 block size does not match the header")
    try:
        obj = msgpack.unpackb(raw, use_list=True, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"malformed msgpack: {exc}") from None
    if not (isinstance(obj, list) and len(obj) == 5):
        raise ProtocolError("batch is not a 5-element array")
    node, execution, batch_seq, dropped, events = obj
    if not isinstance(node, str) or not isinstance(execution, str):
        raise ProtocolError("batch node and execution must be strings")
    if type(batch_seq) is not int or type(dropped) is not int or not isinstance(events, list):
        raise ProtocolError("batch_seq and dropped must be ints, events a list")
    size = _EVENT_SIZE
    for ev in events:  # fast path: one combined test per event; details below on failure
        if (
            type(ev) is not list
            or len(ev) < 5
            or type(ev[4]) is not int
            or size.get(ev[4]) != len(ev)
            or type(ev[0]) is not int
            or type(ev[1]) is not int
        ):
            break
    else:
        return Batch(node, execution, batch_seq, dropped, events)
    for ev in events:
        if type(ev) is not list or len(ev) < 5:
            raise ProtocolError("event is not an array of at least 5 elements")
        kind = ev[4]
        n = _NFIELDS.get(kind) if type(kind) is int else None
        if n is None:
            raise ProtocolError(f"unknown event kind {kind!r}")
        if len(ev) != 5 + n:
            raise ProtocolError(f"{KIND_NAMES[kind]} event has {len(ev) - 5} fields, expected {n}")
        if type(ev[0]) is not int or type(ev[1]) is not int:
            raise ProtocolError("event seq and lamport must be ints")
    return Batch(node, execution, batch_seq, dropped, events)


_NFIELDS = {k: len(v) for k, v in FIELDS.items()}
_EVENT_SIZE = {k: 5 + n for k, n in _NFIELDS.items()}  # array length of a valid event


def to_event(node: str, ev: list) -> Event:
    """Turn a raw (validated) event array into an :class:`Event`."""
    return Event(node, ev[0], ev[1], ev[2], ev[3], ev[4], tuple(ev[5:]))


def encode_ack(accepted: int, rejected: int, error: str | None = None) -> bytes:
    import msgpack

    return msgpack.packb({"accepted": accepted, "rejected": rejected, "error": error})


def decode_ack(data: bytes) -> dict:
    import msgpack

    return msgpack.unpackb(data, raw=False)
