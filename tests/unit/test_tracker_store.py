"""NodeLog: compact chunked storage gives back exactly what was appended, by position."""

from __future__ import annotations

from fuzzer.tracker.store import NodeLog
from instrumentation import protocol as p


def test_mixed_chunks_round_trip(rng):
    log = NodeLog("n1", "e", compact_at=4)
    expect: list[list] = []
    seq = 0
    for _ in range(30):
        k = rng.randint(1, 6)
        evs = []
        for _ in range(k):
            seq += 1
            evs.append([seq, seq, 0, seq, p.LOCAL, f"x{seq}", {"i": seq}])
        if rng.random() < 0.5:
            wire = p.encode_batch("n1", "e", 0, 0, evs)
            log.append(p.decode_batch(wire).events, wire)
        else:
            log.append(evs)
        expect.extend(evs)
    # end with a wire batch then one in-process event, so both chunk kinds are
    # present whatever the random mix above compacted into
    for wire_batch in (True, False):
        seq += 1
        evs = [[seq, seq, 0, seq, p.LOCAL, f"x{seq}", {"i": seq}]]
        if wire_batch:
            wire = p.encode_batch("n1", "e", 0, 0, evs)
            log.append(p.decode_batch(wire).events, wire)
        else:
            log.append(evs)
        expect.extend(evs)
    assert len(log) == len(expect) and log.first_seq == 1
    assert any(type(c) is bytes for c in log.chunks) and any(type(c) is list for c in log.chunks)
    assert log.slice() == expect
    for _ in range(200):
        a = rng.randrange(len(expect) + 1)
        b = rng.randrange(a, len(expect) + 2)
        assert log.slice(a, b) == expect[a:b]
        if a < len(expect):
            assert log.get(a) == expect[a]


def test_in_process_chunks_are_packed():
    log = NodeLog("n1", compact_at=3)
    for i in range(7):
        log.append([[i + 1, i + 1, 0, 0, p.STATE, "term", i]])
    assert [type(c) for c in log.chunks] == [bytes, bytes, list]
    assert [ev[6] for ev in log.slice()] == list(range(7))
