"""Workload checkers on hand-built histories with known verdicts."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.checkers import workloads as w
from fuzzer.checkers.verdict import Verdict
from fuzzer.errors import CheckerError, InputError, UsageError
from fuzzer.workload.history import History, Op


class B:
    """A tiny history builder: sequential calls, or explicit invoke/complete."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def inv(self, p, f, value=None, key=None) -> B:
        self.ops.append(Op(p, "invoke", f, value, key, time=len(self.ops)))
        return self

    def end(self, p, f, status="ok", value=None, key=None) -> B:
        self.ops.append(Op(p, status, f, value, key, time=len(self.ops)))
        return self

    def call(self, p, f, value=None, out=None, status="ok", key=None) -> B:
        return self.inv(p, f, value, key).end(p, f, status, out, key)

    def copy(self) -> B:
        b = B()
        b.ops = list(self.ops)
        return b

    def h(self) -> History:
        return History(tuple(self.ops))


def roundtrip(v: Verdict) -> dict:
    d = v.to_dict()
    assert msgpack.unpackb(msgpack.packb(d), raw=False, strict_map_key=False) is not None
    json.dumps(d)
    return d


# --- echo / unique ids -------------------------------------------------------------------


def test_echo_ok_and_info_ignored():
    h = B().call(0, "echo", "hi", "hi").call(1, "echo", "x", None, status="info").h()
    v = w.check_echo(h)
    assert v.ok and v.details["checked"] == 1
    roundtrip(v)


def test_echo_mismatch_names_the_op():
    h = B().call(0, "echo", "hi", "hi").call(1, "echo", "a", "b").h()
    v = w.check_echo(h)
    assert v.violated and v.name == "echo-mismatch"
    assert [op.value for op in v.offending] == ["a"]
    assert v.details["mismatches"] == [{"sent": "a", "got": "b"}]
    roundtrip(v)


def test_unique_ids():
    good = B().call(0, "generate", None, "n1-1").call(1, "generate", None, "n2-1")
    good.call(2, "generate", None, "n1-1", status="fail")  # failed ops do not count
    assert w.check_unique_ids(good.h()).ok
    bad = B().call(0, "generate", None, 7).call(1, "generate", None, 8)
    bad.call(2, "generate", None, 7)
    v = w.check_unique_ids(bad.h())
    assert v.violated and v.name == "duplicate-id"
    assert sorted(op.process for op in v.offending) == [0, 2]


# --- broadcast ------------------------------------------------------------------------------


def bcast(final: dict[int, list], extra=()) -> B:
    b = B()
    b.call(0, "broadcast", 1).call(1, "broadcast", 2)
    b.call(2, "broadcast", 3, status="info")  # indefinite: may or may not be there
    b.call(0, "broadcast", 4, status="fail")  # definitely not there
    for p, msgs in extra:
        b.call(p, "read", None, msgs)
    for p, msgs in final.items():
        b.call(p, "read", None, msgs)
    return b


def test_broadcast_ok_with_info_message_absent_or_present():
    h = bcast({0: [1, 2], 1: [2, 1, 3], 2: [1, 2]}).h()
    v = w.check_broadcast(h, nodes=[0, 1, 2])
    assert v.ok, v.line()
    assert v.details["lost_count"] == 0 and v.details["acknowledged"] == 2
    roundtrip(v)


def test_broadcast_lost_message():
    h = bcast({0: [1, 2], 1: [1], 2: [1, 2]}).h()
    v = w.check_broadcast(h)
    assert v.violated and v.name == "lost-message"
    assert v.details["lost"] == {"2": ["1"]}
    # the broadcast of 2 and the final read of node 1 are the evidence
    assert any(op.f == "broadcast" and op.value == 2 for op in v.offending)
    assert any(op.f == "read" and op.process == 1 for op in v.offending)


def test_broadcast_unexpected_and_failed_message_read():
    v = w.check_broadcast(bcast({0: [1, 2, 99], 1: [1, 2], 2: [1, 2]}).h())
    assert v.violated and v.name == "unexpected-message" and v.details["unexpected"] == ["99"]
    v = w.check_broadcast(bcast({0: [1, 2, 4], 1: [1, 2], 2: [1, 2]}).h())
    assert v.violated and v.name == "unexpected-message"  # 4 failed: it did not happen


def test_broadcast_stale_reads_are_reported_not_violations():
    h = bcast({0: [1, 2], 1: [1, 2], 2: [1, 2]}, extra=[(1, [1])]).h()
    v = w.check_broadcast(h)
    assert v.ok and v.details["stale"] == ["2"] and v.details["stale_count"] == 1


def test_broadcast_unknown_without_final_reads():
    v = w.check_broadcast(bcast({0: [1, 2]}).h(), nodes=[0, 1])
    assert v.unknown and v.details["nodes_without_final_read"] == ["1"]
    assert w.check_broadcast(B().call(0, "broadcast", 1).h()).unknown


def test_broadcast_healed_at_and_node_of():
    # early reads (before the heal) miss message 2; the final ones after heal have it
    b = B().call(0, "broadcast", 1).call(1, "broadcast", 2)
    b.call(0, "read", None, [1], key="n1").call(1, "read", None, [1, 2], key="n2")
    healed = len(b.ops)
    b.call(2, "read", None, [1, 2], key="n1")
    node = lambda op: op.key  # noqa: E731 - which node a read went to
    v = w.check_broadcast(b.h(), node_of=node, healed_at=healed, nodes=["n1", "n2"])
    assert v.unknown  # n2 read only before the heal
    b.call(3, "read", None, [1, 2], key="n2")
    assert w.check_broadcast(b.h(), node_of=node, healed_at=healed, nodes=["n1", "n2"]).ok
    assert w.check_broadcast(b.h(), node_of=node).ok
    v = w.check_broadcast(b.h())  # by process: process 0's last read misses 2
    assert v.violated and v.name == "lost-message"


def test_broadcast_random_correct_system_passes_and_dropping_one_fails(rng):
    b = B()
    acked = []
    for m in range(rng.randrange(5, 40)):
        status = rng.choice(["ok", "ok", "ok", "info", "fail"])
        b.call(rng.randrange(4), "broadcast", m, status=status)
        if status == "ok":
            acked.append(m)
    finals = {}
    for p in range(4):
        finals[p] = sorted(acked, key=lambda _: rng.random())
        b.call(p, "read", None, finals[p])
    assert w.check_broadcast(b.h(), nodes=range(4)).ok
    victim = rng.randrange(4)
    b.call(victim, "read", None, finals[victim][1:])
    v = w.check_broadcast(b.h())
    assert v.violated and v.details["lost"] == {repr(finals[victim][0]): [str(victim)]}


# --- g-set ---------------------------------------------------------------------------------


def test_g_set():
    b = B().call(0, "add", "a").call(1, "add", "b", status="info").call(2, "add", "c")
    ok = b.copy()
    ok.call(0, "read", None, ["a", "c"]).call(1, "read", None, ["c", "b", "a"])
    assert w.check_g_set(ok.h()).ok
    lost = b.copy()
    lost.call(0, "read", None, ["a"]).call(1, "read", None, ["a", "c"])
    v = w.check_g_set(lost.h())
    assert v.violated and v.name == "lost-element" and v.details["lost"] == {"'c'": ["0"]}
    bad = b.copy()
    bad.call(0, "read", None, ["a", "c", "zz"])
    v = w.check_g_set(bad.h())
    assert v.violated and v.name == "unexpected-element"


# --- counters ------------------------------------------------------------------------------


def counter(*final: int, info=(3,), fail=(100,)) -> History:
    b = B().call(0, "add", 1).call(1, "add", 2)
    for d in info:
        b.call(2, "add", d, status="info")
    for d in fail:
        b.call(3, "add", d, status="fail")
    for p, value in enumerate(final):
        b.call(p, "read", None, value)
    return b.h()


@pytest.mark.parametrize(
    "final,ok",
    [
        ((3, 3), True),
        ((6, 6), True),
        ((3, 6), True),
        ((2, 3), False),
        ((3, 7), False),
        ((103, 3), False),
    ],
)
def test_g_counter_final_reads_within_ok_and_info(final, ok):
    v = w.check_g_counter(counter(*final))
    assert v.ok is ok, v.line()
    assert (v.details["lower"], v.details["upper"]) == (3, 6)
    if not ok:
        assert v.name in ("wrong-final-value", "impossible-read")
        assert all(op.f == "read" for op in v.offending)


def test_counter_read_above_everything_invoked_is_impossible():
    b = B().call(0, "add", 1).call(1, "read", None, 5).call(0, "add", 10)
    b.call(0, "read", None, 11).call(1, "read", None, 11)
    v = w.check_g_counter(b.h())
    assert v.violated and v.name == "impossible-read"
    assert [op.output for op in v.offending] == [5]


def test_pn_counter_negative_info_deltas_widen_downwards():
    b = B().call(0, "add", 5).call(1, "add", -2, status="info").call(2, "add", 4, status="info")
    for p, value in enumerate([1, 3, 5, 7]):
        b.call(p, "read", None, value)
    h = b.h()
    v = w.check_pn_counter(h)
    assert v.violated and (v.details["lower"], v.details["upper"]) == (3, 9)
    assert [op.output for op in v.offending] == [1]
    b2 = B().call(0, "add", 5).call(1, "add", -2, status="info")
    b2.call(0, "read", None, 3).call(1, "read", None, 5)
    assert w.check_pn_counter(b2.h()).ok


def test_g_counter_rejects_negative_delta():
    with pytest.raises(CheckerError, match="negative delta"):
        w.check_g_counter(B().call(0, "add", -1).call(0, "read", None, -1).h())


# --- lin-kv ------------------------------------------------------------------------------------


def test_lin_kv_linearizable_and_not():
    b = B().call(0, "write", 1, key="x").call(1, "read", None, 1, key="x")
    b.call(0, "cas", (1, 2), key="y", status="fail").call(1, "read", None, None, key="y")
    assert w.check_lin_kv(b.h(), timeout=10).ok
    b.call(2, "read", None, 5, key="x")
    v = w.check_lin_kv(b.h(), timeout=10)
    assert v.violated and v.name == "not-linearizable" and v.details["key"] == "x"
    assert any(op.output == 5 for op in v.offending)
    roundtrip(v)


def test_lin_kv_info_write_may_take_effect_later():
    b = B().call(0, "write", 1, key="x").call(1, "write", 2, key="x", status="info")
    b.call(2, "read", None, 1, key="x").call(2, "read", None, 2, key="x")
    assert w.check_lin_kv(b.h(), timeout=10).ok
    b.call(2, "read", None, 1, key="x")  # after 2 took effect, 1 cannot come back
    assert w.check_lin_kv(b.h(), timeout=10).violated


# --- registry and input -----------------------------------------------------------------------


def test_registry_dispatch_and_unknown_name():
    h = B().call(0, "echo", 1, 1).h()
    assert w.check_workload("echo", h).signature == ("workload:echo", "echo")
    assert set(w.CHECKERS) == {
        "echo",
        "unique-ids",
        "broadcast",
        "g-counter",
        "pn-counter",
        "g-set",
        "lin-kv",
    }
    with pytest.raises(UsageError, match="valid: broadcast, echo"):
        w.get_checker("kafka")


def test_plain_dict_histories_work():
    ops = [
        {"process": 0, "type": "invoke", "f": "echo", "value": "a"},
        {"process": 0, "type": ":ok", "f": ":echo", "value": "a"},
    ]
    assert w.check_echo(ops).ok
    with pytest.raises(CheckerError, match="lacks 'f'"):
        w.check_echo([{"process": 0, "type": "invoke"}])


def test_completion_without_invoke_is_reported():
    h = History((Op(0, "ok", "echo", "x", line=3),), source="h.edn")
    with pytest.raises(InputError, match="h.edn: line 3: .*without an invocation"):
        w.check_echo(h)


def test_async_wrapper_runs_off_the_loop():
    import asyncio

    h = B().call(0, "add", 2).call(1, "read", None, 2).h()
    v = asyncio.run(w.check_workload_async("g-counter", h, nodes=[1]))
    assert v.ok and v.details["final_values"] == {"1": 2}
    with pytest.raises(UsageError):
        asyncio.run(w.check_workload_async("nope", h))


# --- properties -------------------------------------------------------------------------


@given(
    adds=st.lists(
        st.tuples(st.integers(-5, 5), st.sampled_from(["ok", "info", "fail"]), st.booleans()),
        max_size=30,
    ),
    nodes=st.integers(1, 4),
)
@settings(max_examples=150, deadline=None)
def test_pn_counter_correct_systems_pass_and_off_by_more_than_slack_fails(adds, nodes):
    """A correct counter applies every ok add and any subset of info adds; its final
    reads always pass. A read beyond the slack of all info adds always fails."""
    b = B()
    applied = 0
    for i, (d, status, takes_effect) in enumerate(adds):
        b.call(i % nodes, "add", d, status=status)
        if status == "ok" or (status == "info" and takes_effect):
            applied += d
    for n in range(nodes):
        b.call(n, "read", None, applied)
    assert w.check_pn_counter(b.h(), nodes=range(nodes)).ok
    slack = sum(abs(d) for d, s, _ in adds if s == "info") + 1
    b.call(0, "read", None, applied + slack)
    assert w.check_pn_counter(b.h()).violated
