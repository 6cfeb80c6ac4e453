"""Pure parts of fuzzer/execution: finding signatures, the choice record's msgpack
round trip, the trace file, and the client/role-probe adapters' conventions."""

from __future__ import annotations

import asyncio

import pytest

from fuzzer.checkers.verdict import violated
from fuzzer.errors import InputError
from fuzzer.execution.adapters import make_role_probe
from fuzzer.execution.result import RecordedChoices, signature
from fuzzer.execution.trace import load_trace, save_trace
from fuzzer.faults import parse_fault
from fuzzer.network.model import DELIVER_NOW, DROPPED, Fate
from fuzzer.workload.history import HistoryRecorder
from fuzzer.workload.maelstrom import GeneratedOp
from instrumentation.protocol import RECV, SEND, STATE, Event


def _ev(node: str, kind: int, fields: tuple, seq: int = 1) -> Event:
    return Event(node, seq, seq, 0, 0, kind, fields)


def test_signature_is_abstract_over_nodes_and_values():
    a = violated("invariant", "monotonic(commit_index)", "x",
                 (_ev("n2", STATE, ("commit_index", 5)), _ev("n2", STATE, ("commit_index", 2))))
    b = violated("invariant", "monotonic(commit_index)", "y",
                 (_ev("n3", STATE, ("commit_index", 9)),))
    assert signature(a) == signature(b) == (
        "invariant", "monotonic(commit_index)", ("STATE:commit_index",))
    c = violated("invariant", "x", "", (_ev("n1", SEND, ("n2", "vote", 1)),
                                        _ev("n2", RECV, ("n1", "vote", 1, 1)),
                                        _ev("n1", STATE, ("match_index.n3", 4))))
    assert signature(c)[2] == ("RECV:vote", "SEND:vote", "STATE:match_index")


def test_signature_of_history_ops_keeps_the_definite_ones(rng):
    rec = HistoryRecorder()
    h1 = rec.invoke(0, "read", key="k")
    h2 = rec.invoke(1, "write", value=rng.randrange(9), key="k")
    rec.ok(h1, 3)
    rec.info(h2)
    ops = rec.history().operations()
    v = violated("workload:lin-kv", "not-linearizable", "", ops)
    assert signature(v) == ("workload:lin-kv", "not-linearizable", ("op:read",))
    only_info = violated("workload:lin-kv", "not-linearizable", "", [ops[1]])
    assert signature(only_info)[2] == ("op:write",)


def test_recorded_choices_round_trip(rng):
    fates = {("n1", "n2", i): rng.choice([DELIVER_NOW, DROPPED, Fate("delay", 0.25)])
             for i in range(50)}
    ops = {(0, i): GeneratedOp(0, i, "cas", "k1", (1, 2), 0.125) for i in range(5)}
    faults = {0: parse_fault("kill n2"), 1: parse_fault("partition majority-minority n1,n2|n3")}
    rc = RecordedChoices(faults, fates, ops)
    back = RecordedChoices.from_msgpack(rc.to_msgpack())
    assert dict(back.faults) == faults and dict(back.fates) == fates and dict(back.ops) == ops
    assert len(back) == len(rc)
    with pytest.raises(InputError):
        RecordedChoices.from_msgpack(b"\x93junk", "bundle/choices")


def test_trace_file_round_trip(tmp_path):
    evs = [_ev("n1", SEND, ("n2", "vote", 7), 1), _ev("n2", RECV, ("n1", "vote", 7, 1), 1),
           _ev("nemesis", 10, ("apply", "kill n1", {"note": "x"}), 1)]
    p = save_trace(evs, tmp_path / "t.msgpack.lz4", "x1")
    assert load_trace(p) == evs
    (tmp_path / "bad").write_bytes(b"nope")
    with pytest.raises(InputError):
        load_trace(tmp_path / "bad")


def test_role_probe_conventions():
    async def find_leader(ports, timeout=1.0):
        return "n2" if list(ports) == [11, 12, 13] else None

    async def role_probe(urls, timeout=1.0):
        return {n: ("leader" if u.endswith(":12") else "follower") for n, u in urls.items()}

    ports = {"n1": 11, "n2": 12, "n3": 13}
    nodes = ["n1", "n2", "n3"]
    by_ports = asyncio.run(make_role_probe(find_leader, nodes, ports, 1.0)())
    by_urls = asyncio.run(make_role_probe(role_probe, nodes, ports, 1.0)())
    assert by_ports == by_urls == {"n1": "follower", "n2": "leader", "n3": "follower"}
