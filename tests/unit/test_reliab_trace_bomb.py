"""``load_trace`` (fuzzer/execution/trace.py) refuses lz4 bombs and reads both trace forms.

Real bombs: a ~1 MB lz4 frame of zeros that declares 300 MiB in its header
(refused before decompressing, at the default limit), and a few-KB frame
with no declared size that inflates past a lowered limit (refused while
decompressing, output capped). Both name the file. The bare form a campaign
writes for in-memory traces (a msgpack list of bundle rows) loads too.
"""

from __future__ import annotations

import lz4.frame
import msgpack
import pytest

from fuzzer.errors import InputError
from fuzzer.execution.trace import MAX_TRACE_BYTES, load_trace, save_trace
from fuzzer.repro.bundle import to_plain
from instrumentation.protocol import LOCAL, RECV, SEND, Event


def _bomb(total: int, *, store_size: bool) -> bytes:
    """An lz4 frame of ``total`` zero bytes, compressed chunk by chunk (bounded memory)."""
    comp = lz4.frame.LZ4FrameCompressor()
    parts = [comp.begin(source_size=total if store_size else 0)]
    chunk = bytes(2**20)
    left = total
    while left:
        n = min(left, len(chunk))
        parts.append(comp.compress(chunk[:n]))
        left -= n
    parts.append(comp.flush())
    return b"".join(parts)


def test_declared_size_bomb_is_refused_before_decompressing(tmp_path):
    total = MAX_TRACE_BYTES + 44 * 2**20  # 300 MiB of zeros
    data = _bomb(total, store_size=True)
    assert len(data) < 2 * 2**20  # ~1 MB on disk
    p = tmp_path / "bomb.trace"
    p.write_bytes(data)
    with pytest.raises(InputError) as ei:
        load_trace(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)) and "refused before decompressing" in msg


def test_undeclared_bomb_stops_at_the_limit(tmp_path, rng):
    limit = rng.randint(256, 1024) * 1024
    data = _bomb(limit * 4, store_size=False)
    assert len(data) < 20 * 1024  # a few KB
    p = tmp_path / "bomb2.trace"
    p.write_bytes(data)
    with pytest.raises(InputError) as ei:
        load_trace(p, limit=limit)
    assert str(ei.value).startswith(str(p)) and "past the limit" in str(ei.value)


def test_oversized_file_and_garbage_are_input_errors(tmp_path, rng):
    p = tmp_path / "big.trace"
    p.write_bytes(rng.randbytes(4096))
    with pytest.raises(InputError) as ei:
        load_trace(p, max_file=1024)
    assert str(p) in str(ei.value) and "limit" in str(ei.value)
    with pytest.raises(InputError):
        load_trace(p)  # not lz4
    q = tmp_path / "bad-rows.trace"
    q.write_bytes(lz4.frame.compress(msgpack.packb([["n1", "x", 1, 2, 3, 4, []]])))
    with pytest.raises(InputError) as ei:
        load_trace(q)
    assert str(q) in str(ei.value) and "event 0" in str(ei.value)
    r = tmp_path / "v9.trace"
    r.write_bytes(lz4.frame.compress(msgpack.packb({"format": "hbfuzz-trace", "v": 9})))
    with pytest.raises(InputError, match="version 9 is not supported"):
        load_trace(r)


def test_both_forms_load_the_same_events(tmp_path, rng):
    events = []
    for i in range(rng.randint(5, 40)):
        node = f"n{rng.randint(1, 3)}"
        kind = rng.choice([SEND, RECV, LOCAL])
        fields = {SEND: ("n2", "vote", i), RECV: ("n1", "vote", i, i),
                  LOCAL: ("tick", {"i": i})}[kind]
        events.append(Event(node, i, i + 1, 10 * i, 5 * i, kind, fields))
    documented = save_trace(events, tmp_path / "doc.trace", "x1")
    bare = tmp_path / "exec:000001.msgpack.lz4"  # what a campaign writes for in-memory traces
    bare.write_bytes(lz4.frame.compress(msgpack.packb(to_plain(events), use_bin_type=True)))
    assert load_trace(documented) == events
    assert load_trace(bare) == events
