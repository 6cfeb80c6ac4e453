"""The reporter's pure parts: bounded buffer with drop counting, batch encoding."""

from __future__ import annotations

from instrumentation import protocol
from instrumentation.reporter import TARGET_WIRE_BYTES, EventBuffer, encode_batches, sanitize


def _ev(seq: int, kind: int = protocol.LOCAL, *fields) -> tuple:
    if not fields:
        fields = ("tick", {"i": seq})
    return (seq, seq, 0, 0, kind, *fields)


def test_buffer_full_drops_and_counts():
    buf = EventBuffer(capacity=10)
    accepted = [buf.put(_ev(i)) for i in range(25)]
    assert accepted == [True] * 10 + [False] * 15
    assert buf.dropped == 15
    assert len(buf) == 10
    first = buf.drain(4)
    assert [e[0] for e in first] == [0, 1, 2, 3]  # oldest first
    assert not buf.put(_ev(98))  # drained events still count until the reporter frees room
    buf.set_room(held=0)
    assert buf.put(_ev(99))  # room again
    rest = buf.drain(100)
    assert [e[0] for e in rest] == [4, 5, 6, 7, 8, 9, 99]
    assert buf.dropped == 16  # never reset: readers compute deltas
    buf.set_room(held=8)  # 8 events encoded but not yet taken by gRPC
    assert [buf.put(_ev(i)) for i in range(3)] == [True, True, False]


def test_encode_roundtrip_carries_drops():
    events = [_ev(i) for i in range(1, 50)]
    batches, discarded = encode_batches("n1", "x", 7, 3, events)
    assert discarded == 0
    assert len(batches) == 1
    wire, n = batches[0]
    assert n == 49
    b = protocol.decode_batch(wire)
    assert (b.node, b.execution, b.batch_seq, b.dropped) == ("n1", "x", 7, 3)
    assert b.events == [list(e) for e in events]


def test_drops_alone_make_an_empty_batch():
    batches, _ = encode_batches("n1", "x", 0, 5, [])
    b = protocol.decode_batch(batches[0][0])
    assert b.dropped == 5 and b.events == []


def test_unencodable_fields_are_stringified():
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    events = [_ev(1, protocol.STATE, "k", Opaque()), _ev(2, protocol.STATE, "big", 2**70)]
    batches, discarded = encode_batches("n", "", 0, 0, events)
    assert discarded == 0
    got = protocol.decode_batch(batches[0][0]).events
    assert got[0][5:] == ["k", "opaque!"]
    assert got[1][5:] == ["big", str(2**70)]


def test_big_batches_split_in_order_and_huge_event_discarded(rng):
    blob = rng.randbytes(TARGET_WIRE_BYTES // 4)  # incompressible
    events = [_ev(i, protocol.LOG, "info", blob) for i in range(1, 9)]
    events.append(_ev(9, protocol.LOG, "info", rng.randbytes(TARGET_WIRE_BYTES * 2)))
    events.append(_ev(10, protocol.LOG, "info", "small"))
    batches, discarded = encode_batches("n", "", 100, 2, events)
    assert discarded == 1
    assert len(batches) > 1
    decoded = [protocol.decode_batch(w) for w, _ in batches]
    assert [b.batch_seq for b in decoded] == list(range(100, 100 + len(batches)))
    assert [b.dropped for b in decoded] == [2] + [0] * (len(batches) - 1)
    seqs = [e[0] for b in decoded for e in b.events]
    assert seqs == [1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert all(len(w) <= TARGET_WIRE_BYTES for w, _ in batches)


def test_sanitize_keeps_msgpack_types():
    assert sanitize({"a": [1, 2.5, None, b"x"], 3: (True,)}) == {
        "a": [1, 2.5, None, b"x"],
        3: [True],
    }
    assert sanitize({(1, 2): {1, 2}}) == {"(1, 2)": str({1, 2})}


def test_worked_example_in_docs_matches_the_code():
    """docs/event-protocol.md section 6: the documented bytes are what the code makes."""
    events = [
        [1, 1, 1700000000000000000, 5000000, protocol.SEND, "n2", "Ping", 7],
        [2, 5, 1700000000000100000, 5100000, protocol.RECV, "n2", "Pong", 7, 4],
    ]
    wire = bytes.fromhex(
        "48 42 01 00 00 00 00 42 f2 1a 95 a2 6e 31 a3 65 78 31 00 00 92 98 01 01 cf 17 97 9c"
        " fe 36 2a 00 00 ce 00 4c 4b 40 01 a2 6e 32 a4 50 69 6e 67 07 99 02 05 1b 00 f0 04 2b"
        " 86 a0 ce 00 4d d1 e0 02 a2 6e 32 a4 50 6f 6e 67 07 04"
    )
    assert protocol.encode_batch("n1", "ex1", 0, 0, events) == wire
    assert protocol.decode_batch(wire) == ("n1", "ex1", 0, 0, events)
    assert protocol.encode_ack(1, 0, None) == bytes.fromhex(
        "83 a8 61 63 63 65 70 74 65 64 01 a8 72 65 6a 65 63 74 65 64 00 a5 65 72 72 6f 72 c0"
    )


def test_reporter_sleeps_until_a_batch_is_due():
    """No fixed tick: idle, it checks once per interval; waiting events go
    ``interval`` after the previous send; ``min_batch`` events wake it at once."""
    import time

    from instrumentation.reporter import Reporter

    buf = EventBuffer(capacity=10_000)
    rep = Reporter("127.0.0.1:1", "n1", "x", buf, interval=0.5, batch_events=4096)  # not started
    assert rep._sleep_for() == 0.5  # nothing waits
    buf.put(_ev(1))
    rep._last_send = time.monotonic() - 0.2
    assert 0.0 <= rep._sleep_for() <= 0.3
    rep._last_send = time.monotonic() - 5.0
    assert 0.0 < rep._sleep_for() <= 0.005 and rep._due()  # overdue: retry soon, never spin
    rep._set_limit()
    assert buf.wake_at == buf.taken + rep.min_batch  # the hot path wakes it at min_batch
