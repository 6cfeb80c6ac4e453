"""Histories: recording, pairing, storage (msgpack+lz4) and exports (EDN, JSON)."""

from __future__ import annotations

import json

import lz4.frame
import msgpack
import pytest

from fuzzer.errors import CheckerError, InputError
from fuzzer.workload.history import (
    FORMAT_VERSION,
    History,
    HistoryRecorder,
    Op,
    dumps,
    load,
    loads,
    save,
    to_edn,
    to_json,
)
from fuzzer.workload.importers import parse_edn_history


def _ticks():
    t = iter(range(1000, 10**9, 10))
    return lambda: next(t)


def recorded() -> History:
    rec = HistoryRecorder(clock=_ticks())
    a = rec.invoke(0, "write", 1, key="x")
    b = rec.invoke(1, "read", None, key="x")
    rec.ok(a, 1)
    rec.ok(b, 1)
    c = rec.invoke(0, "cas", (1, 2), key="y")
    rec.fail(c, (1, 2))
    d = rec.invoke(2, "write", "s", key="y")
    rec.info(d, None)
    rec.invoke(3, "read", None)  # never completes
    return rec.history()


def test_recorder_pairs_operations_in_order():
    ops = recorded().operations()
    assert [(o.process, o.f, o.status) for o in ops] == [
        (0, "write", "ok"),
        (1, "read", "ok"),
        (0, "cas", "fail"),
        (2, "write", "info"),
        (3, "read", "info"),
    ]
    w, r = ops[0], ops[1]
    assert (w.value, w.output, w.key) == (1, 1, "x")
    assert w.invoke_index == 0 and w.complete_index == 2
    assert w.invoke_time < r.invoke_time < w.complete_time < r.complete_time
    assert ops[4].complete_index is None and ops[4].output is None


def test_recorder_rejects_misuse():
    rec = HistoryRecorder()
    h = rec.invoke(0, "read")
    with pytest.raises(CheckerError, match="already has an open operation"):
        rec.invoke(0, "read")
    rec.ok(h, None)
    with pytest.raises(CheckerError, match="unknown or already completed"):
        rec.ok(h, None)
    assert rec.open_handles == ()


def test_bad_op_type_is_rejected():
    with pytest.raises(CheckerError, match="op type"):
        Op(0, "done", "read")


def test_completion_without_invoke_is_reported_with_line():
    h = History((Op(0, "invoke", "read", line=1), Op(1, "ok", "read", 3, line=2)), source="h.edn")
    with pytest.raises(
        InputError,
        match=r"h\.edn: line 2: completion :ok :read for process 1 without an invocation",
    ):
        h.operations()


def test_double_invoke_and_mismatched_completion_are_reported():
    h = History((Op(0, "invoke", "read"), Op(0, "invoke", "write", 1)))
    with pytest.raises(InputError, match="op #1: process 0 invokes again"):
        h.operations()
    h = History((Op(0, "invoke", "read"), Op(0, "ok", "write", 1)))
    with pytest.raises(InputError, match="does not match invocation :read"):
        h.operations()


def test_storage_roundtrip(tmp_path):
    h = recorded()
    path = tmp_path / "h.hist"
    save(h, path)
    back = load(path)
    assert back.source == str(path)
    assert [(o.process, o.type, o.f, o.value, o.key, o.time) for o in back] == [
        (o.process, o.type, o.f, o.value, o.key, o.time) for o in h
    ]
    assert back.ops[4].value == (1, 2)  # sequences come back as (hashable) tuples


def test_storage_rejects_foreign_and_future_data(tmp_path):
    with pytest.raises(InputError, match="not an hbfuzz history"):
        loads(b"garbage", source="x.hist")
    other = lz4.frame.compress(
        msgpack.packb({"format": "hbfuzz-history", "version": FORMAT_VERSION + 1})
    )
    with pytest.raises(InputError, match="version"):
        loads(other, source="x.hist")
    bad_row = lz4.frame.compress(
        msgpack.packb({"format": "hbfuzz-history", "version": FORMAT_VERSION, "ops": [[1, 2]]})
    )
    with pytest.raises(InputError, match="op #0"):
        loads(bad_row)
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "missing.hist")
    assert loads(dumps(History())).ops == ()


def test_edn_export_reads_back():
    h = recorded()
    text = to_edn(h)
    assert (
        text.splitlines()[0]
        == '{:index 0, :time 1000, :type :invoke, :process 0, :f :write, :key "x", :value 1}'
    )
    back = parse_edn_history(text)
    assert [(o.process, o.type, o.f, o.value, o.key, o.time) for o in back] == [
        (o.process, o.type, o.f, o.value, o.key, o.time) for o in h
    ]


def test_json_export():
    doc = json.loads(to_json(recorded()))
    assert doc["format"] == "hbfuzz-history" and doc["version"] == FORMAT_VERSION
    assert doc["ops"][4] == {
        "index": 4,
        "time": 1040,
        "type": "invoke",
        "process": 0,
        "f": "cas",
        "key": "y",
        "value": [1, 2],
    }


def test_recorded_values_are_frozen():
    rec = HistoryRecorder()
    v = [1, [2, 3]]
    h = rec.invoke(0, "cas", v, key=["k", 1])
    rec.ok(h, [1, [2, 3]])
    v.append(4)
    inv, done = rec.history().ops
    assert inv.value == (1, (2, 3)) and inv.key == ("k", 1) and done.value == (1, (2, 3))
