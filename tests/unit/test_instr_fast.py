"""The optional C recorder (instrumentation/_fast.c) against the pure-Python path.

Skipped where the accelerator was not built; the pure path's own tests cover
that case. Both paths must put the same events on the wire.
"""

from __future__ import annotations

from collections import deque

import msgpack
import pytest

from instrumentation import _as_stamp, _message_fields, protocol
from instrumentation.reporter import (
    TARGET_WIRE_BYTES,
    PackedBuffer,
    encode_batches,
    encode_packed,
    sanitize,
)

pytestmark = pytest.mark.skipif(PackedBuffer is None, reason="C accelerator not built")


def _rec(capacity: int = 10_000, batch: int = 4096, **kw) -> PackedBuffer:
    kw.setdefault("fix_fields", _message_fields)
    kw.setdefault("fix_stamp", _as_stamp)
    return PackedBuffer(capacity=capacity, batch=batch, wall_offset=1000, **kw)


def _decode_all(batches) -> list[list]:
    out = []
    for wire, n in batches:
        b = protocol.decode_batch(wire)
        assert len(b.events) == n
        out.extend(b.events)
    return out


def test_send_recv_match_the_pure_encoding_byte_for_byte(rng):
    rec = _rec()
    sent = []
    for i in range(300):
        mid = rng.choice([i, -i, 2**40 + i, 2**63 + i, f"id{i}", b"\x00\xff" * (i % 3)])
        peer = rng.choice(["n1", "n" * 40, "x" * 300, "ünï"])
        if rng.random() < 0.5:
            stamp = rec.send(peer, "Append", mid)
            sent.append(stamp)
        else:
            rec.recv(peer, "Reply", mid, rng.choice([0, 5, 10**6, 2**40]))
    blob_batches, discarded, taken = encode_packed(rec, "node", "ex", 3, 2, 10_000)
    assert (discarded, taken) == (0, 300)
    events = _decode_all(blob_batches)
    # The same events through the pure path's encoder give identical bytes.
    pure, _ = encode_batches("node", "ex", 3, 2, [tuple(e) for e in events])
    assert [w for w, _ in pure] == [w for w, _ in blob_batches]
    assert [e[0] for e in events] == list(range(1, 301))  # seq in order
    for e in events:
        assert e[2] == e[3] + 1000  # wall = mono + offset
        assert len(e) == (8 if e[4] == protocol.SEND else 9)


def test_lamport_rules_and_odd_inputs():
    rec = _rec()
    assert rec.send("b", "T", 1) == 1
    rec.recv("b", "T", 2, 10)  # max(1, 10) + 1
    assert rec.t == 11
    rec.recv("b", "T", 3, "oops")  # unusable stamp counts as 0
    assert rec.t == 12
    rec.recv("b", "T", 4, 2**80)  # beyond 63 bits: 0
    assert rec.t == 13
    rec.recv("b", "T", 5, 20.7)  # int() of a float
    assert rec.t == 21
    assert rec.send(7, None, 1.5) == 22  # odd key types become text
    rec.send("b", "T", True)
    rec.send("b", "T", 2**70)
    rec.send("b\udcff", "T", 1)  # a lone surrogate is escaped, not an error
    events = _decode_all(encode_packed(rec, "n", "", 0, 0, 100)[0])
    assert [e[8] for e in events[1:5]] == [10, 0, 0, 20]
    assert events[5][5:] == ["7", "None", "1.5"]
    assert events[6][7] == "True"
    assert events[7][7] == str(2**70)
    assert events[8][5] == "b\\udcff"
    assert rec.seq == 9


def test_bounded_with_drop_counting_and_room():
    rec = _rec(capacity=10)
    stamps = [rec.send("p", "T", i) for i in range(25)]
    assert stamps == list(range(1, 26))  # the clock ticks even for dropped events
    assert (len(rec), rec.dropped, rec.appended) == (10, 15, 10)
    blob, n = rec.take(4, 1 << 20)
    assert n == 4 and len(rec) == 6
    rec.send("p", "T", 98)
    assert rec.dropped == 16  # taken events still hold room until set_room
    rec.set_room(held=0)
    rec.send("p", "T", 99)
    assert len(rec) == 7 and rec.dropped == 16
    rec.set_room(held=8)  # 8 events encoded but not yet taken by gRPC
    rec.take(100, 1 << 20)
    rec.set_room(held=8)
    assert [rec.emit(protocol.LOCAL, msgpack.packb(("x", {}))) for _ in range(3)]
    assert len(rec) == 2 and rec.dropped == 17


def test_take_respects_event_and_byte_limits_in_order():
    rec = _rec()
    for i in range(100):
        rec.emit(protocol.LOG, msgpack.packb(("info", "y" * (i % 7) * 10)))
    seen = []
    while len(rec):
        blob, n = rec.take(13, 200)
        assert 1 <= n <= 13
        assert n == 1 or len(blob) <= 200
        unpacker = msgpack.Unpacker()
        unpacker.feed(blob)
        seen.extend(e[0] for e in unpacker)
    assert seen == list(range(1, 101))
    assert rec.taken == 100


def test_wake_called_when_a_batch_is_waiting():
    calls = []
    rec = _rec(batch=5)
    rec.wake = lambda: calls.append(rec.appended)
    for i in range(12):
        rec.send("p", "T", i)
    assert calls == [5]
    rec.set_room(held=0, batch=5)  # the reporter took nothing yet: wake again at 5 new
    assert rec.wake_at == 5


def test_pending_edges_become_a_coverage_event_first():
    edges = deque([7, 8])
    recs = []

    def flush_edges():
        ids = list(edges)
        edges.clear()
        recs[0].emit(protocol.COVERAGE, msgpack.packb((ids,)))

    rec = _rec(edges=edges, on_edges=flush_edges)
    recs.append(rec)
    rec.send("p", "T", 1)
    rec.send("p", "T", 2)  # no pending edges: no further COVERAGE event
    events = _decode_all(encode_packed(rec, "n", "", 0, 0, 10)[0])
    assert [e[4] for e in events] == [protocol.COVERAGE, protocol.SEND, protocol.SEND]
    assert events[0][5] == [7, 8]
    assert [e[0] for e in events] == [1, 2, 3]


def test_oversized_event_is_discarded_and_drops_still_reported(rng):
    rec = _rec()
    noise = rng.randbytes(TARGET_WIRE_BYTES + 4096)  # incompressible: its batch stays too big
    rec.emit(protocol.LOG, msgpack.packb(("info", noise)))
    rec.send("p", "T", 1)
    batches, discarded, taken = encode_packed(rec, "n", "", 0, 4, 10)
    assert (discarded, taken) == (1, 2)
    events = _decode_all(batches)
    assert [e[4] for e in events] == [protocol.SEND]
    assert protocol.decode_batch(batches[0][0]).dropped == 4
    empty, _, _ = encode_packed(rec, "n", "", 5, 3, 10)  # nothing left: drops alone
    b = protocol.decode_batch(empty[0][0])
    assert (b.batch_seq, b.dropped, b.events) == (5, 3, [])


def test_sanitized_fields_decode_like_the_pure_path():
    fields = ("name", {"obj": object.__name__, "n": 2**70})
    packed = msgpack.packb([sanitize(f) for f in fields])
    rec = _rec()
    rec.emit(protocol.LOCAL, packed)
    (ev,) = _decode_all(encode_packed(rec, "n", "", 0, 0, 10)[0])
    assert ev[5:] == ["name", {"obj": "object", "n": str(2**70)}]
