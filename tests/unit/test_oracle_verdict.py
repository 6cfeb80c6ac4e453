"""The shared Verdict value: validation, signature, plain-data export."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from fuzzer.checkers import verdict as vd
from fuzzer.checkers.verdict import Verdict
from instrumentation import protocol as p
from instrumentation.protocol import Event


def test_values_are_frozen_validated_and_carry_a_signature():
    ev = Event("n1", 1, 1, 0, 0, p.LOCAL, ("commit", {"index": 3}))
    v = vd.violated("invariant", "acked", "no ack", [ev], context=[ev], index=3)
    assert v.violated and not v.ok and not v.unknown
    assert v.offending == (ev,) and v.context == (ev,) and v.kind == "safety"
    assert v.signature == ("invariant", "acked")
    assert v.line() == "invariant/acked: violated: no ack"
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.status = "ok"  # type: ignore[misc]
    with pytest.raises(ValueError, match="status"):
        Verdict("x", "fine", "y")
    with pytest.raises(ValueError, match="kind"):
        Verdict("x", "ok", "y", kind="perf")


def test_to_dict_is_plain_data():
    ev = Event("n1", 1, 1, 0, 0, p.STATE, ("role", "leader"))
    v = vd.violated("invariant", "x", "why", [ev], tags={"b", "a"}, obj=object)
    d = v.to_dict()
    assert d["offending"][0]["node"] == "n1" and d["offending"][0]["fields"] == ["role", "leader"]
    assert d["details"]["tags"] == ["a", "b"]
    msgpack.packb(d)


def test_worst():
    ok = vd.ok("a", "b")
    assert vd.worst([]) == "ok"
    assert vd.worst([ok, vd.unknown("a", "c", "timeout")]) == "unknown"
    assert vd.worst([ok, vd.violated("a", "d", "bad"), vd.unknown("a", "c", "t")]) == "violated"
