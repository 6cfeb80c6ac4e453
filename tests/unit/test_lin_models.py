"""Models: sequential specifications, their registry and partitioning."""

from __future__ import annotations

import pytest

from fuzzer.checkers.linearizability import check
from fuzzer.checkers.models import (
    UNKNOWN,
    CasRegisterModel,
    Model,
    get_model,
    model_names,
    register_model,
)
from fuzzer.errors import CheckerError
from fuzzer.workload.history import History, Op, Operation


def op(f, value=None, output=None, status="ok", key=None, i=0) -> Operation:
    return Operation(i, 0, f, key, value, output, status, 2 * i, 2 * i + 1, 0, 0)


def run(model: Model, *ops: Operation):
    """Apply prepared ops in sequence; return (all ok, final state)."""
    state = model.init()
    for o in ops:
        inp, out = model.prepare(o)
        ok, state = model.step(state, inp, out)
        if not ok:
            return False, state
    return True, state


def test_registry():
    assert {"cas-register", "counter", "kv", "register", "set"} <= set(model_names())
    assert isinstance(get_model("cas-register"), CasRegisterModel)
    m = get_model("kv")
    assert get_model(m) is m
    with pytest.raises(CheckerError, match="valid models: cas-register, counter, kv"):
        get_model("queue")


def test_cas_register_steps():
    m = get_model("cas-register")
    assert run(m, op("read", output=None)) == (True, None)
    assert run(m, op("write", 1), op("cas", [1, 2]), op("read", output=2)) == (True, 2)
    assert run(m, op("write", 1), op("cas", (3, 2)))[0] is False
    # an info cas may go either way: applied when it matches, else left out by the checker
    assert run(m, op("write", 1), op("cas", (1, 5), status="info")) == (True, 5)
    assert m.droppable(*m.prepare(op("read", status="info")))
    assert not m.droppable(*m.prepare(op("write", 1, status="info")))
    with pytest.raises(CheckerError, match="unknown operation :incr"):
        m.prepare(op("incr"))
    with pytest.raises(CheckerError, match=r"cas value must be \[from to\]"):
        m.prepare(op("cas", 3))
    with pytest.raises(CheckerError, match="unknown operation :cas"):
        get_model("register").prepare(op("cas", (1, 2)))


def test_kv_steps():
    m = get_model("kv")
    assert run(m, op("get", output=""))[0]
    assert run(m, op("get", output=None))[0]  # nil read of a missing key is the empty string
    assert run(m, op("append", "a"), op("append", "b"), op("get", output="ab")) == (True, "ab")
    assert run(m, op("put", "x"), op("append", "y"), op("get", output="xy"))[0]
    assert not run(m, op("append", "a"), op("get", output="b"))[0]
    assert run(m, op("read", output=None), op("write", 3), op("cas", (3, 4)), op("read", output=4))[
        0
    ]


def test_counter_and_set_steps():
    c = get_model("counter")
    assert run(c, op("add", 2), op("add"), op("read", output=3)) == (True, 3)
    assert not run(c, op("add", 2), op("read", output=1))[0]
    s = get_model("set")
    assert run(s, op("add", 1), op("add", 2), op("read", output=[2, 1]))[0]
    assert not run(s, op("add", 1), op("read", output=[]))[0]
    assert s.describe(frozenset({1, 2})) == "#{1 2}"
    with pytest.raises(CheckerError, match="hashable"):
        s.prepare(op("read", output=[[1]]))


def test_partition_by_key():
    m = get_model("kv")
    ops = [
        op("put", "a", "a", key="x", i=0),
        op("put", "b", "b", key="y", i=1),
        op("get", None, "a", key="x", i=2),
    ]
    parts = m.partition(ops)
    assert list(parts) == ["x", "y"]
    assert [o.id for o in parts["x"]] == [0, 2]


def test_user_model_plugs_in():
    @register_model
    class Flag(Model):
        """A boolean flag: set / get."""

        name = "test-flag"

        def init(self):
            return False

        def step(self, state, op_input, op_output):
            f, _ = op_input
            if f == "set":
                return True, True
            return op_output is UNKNOWN or op_output == state, state

    try:
        good = History(
            (
                Op(0, "invoke", "set"),
                Op(0, "ok", "set"),
                Op(1, "invoke", "get"),
                Op(1, "ok", "get", True),
            )
        )
        bad = History(
            (
                Op(0, "invoke", "set"),
                Op(0, "ok", "set"),
                Op(1, "invoke", "get"),
                Op(1, "ok", "get", False),
            )
        )
        assert check(good, "test-flag").verdict == "linearizable"
        assert check(bad, "test-flag").verdict == "not-linearizable"
    finally:
        from fuzzer.checkers.models import MODELS

        MODELS.pop("test-flag")
