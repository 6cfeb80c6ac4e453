"""Property tests: generated histories against known answers and a brute-force oracle.

- a sequential history of a correct register is linearizable;
- a concurrent history produced by a correct register (each op takes effect
  at one instant between invocation and completion; info ops maybe never) is
  linearizable;
- adding a read of a value never written makes any history non-linearizable;
- on small random (mostly wrong) histories the checker agrees with a brute-force
  search over every order and every subset of info ops.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzer.checkers.linearizability import check
from fuzzer.checkers.models import CasRegisterModel, get_model
from fuzzer.workload.history import History, Op, Operation

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALUES = st.integers(min_value=0, max_value=3)
OPS = st.one_of(
    st.tuples(st.just("read"), st.none()),
    st.tuples(st.just("write"), VALUES),
    st.tuples(st.just("cas"), st.tuples(VALUES, VALUES)),
)


def apply(state, f, value):
    """A correct cas-register: (status, output, new state)."""
    if f == "read":
        return "ok", state, state
    if f == "write":
        return "ok", value, value
    if state == value[0]:
        return "ok", value, value[1]
    return "fail", value, state


@st.composite
def sequential_histories(draw):
    ops, state = [], None
    for f, value in draw(st.lists(OPS, max_size=30)):
        p = draw(st.integers(0, 3))
        status, out, state = apply(state, f, value)
        ops += [Op(p, "invoke", f, value), Op(p, status, f, out)]
    return History(tuple(ops))


@st.composite
def concurrent_histories(draw, max_steps=40):
    """Run up to 4 processes against a correct register with random interleaving."""
    state = None
    events: list[Op] = []
    pending: dict[int, tuple[str, object, str | None, object]] = {}  # p -> (f, v, status, out)
    next_process = 4
    live = [0, 1, 2, 3]
    for _ in range(draw(st.integers(0, max_steps))):
        p = draw(st.sampled_from(live))
        if p not in pending:
            f, value = draw(OPS)
            events.append(Op(p, "invoke", f, value))
            pending[p] = (f, value, None, None)
            continue
        f, value, status, out = pending[p]
        action = draw(st.sampled_from(["effect", "complete", "crash"]))
        if action == "effect" and status is None:
            status, out, state = apply(state, f, value)
            pending[p] = (f, value, status, out)
        elif action == "crash":  # the client gives up: info, whether or not it took effect
            events.append(Op(p, "info", f, None))
            del pending[p]
            live[live.index(p)] = next_process
            next_process += 1
        elif status is not None:
            events.append(Op(p, status, f, out))
            del pending[p]
    return History(tuple(events))


@SETTINGS
@given(sequential_histories())
def test_sequential_register_histories_are_linearizable(history):
    assert check(history, "cas-register", timeout=30).verdict == "linearizable"


@SETTINGS
@given(concurrent_histories())
def test_histories_of_a_correct_register_are_linearizable(history):
    assert check(history, "cas-register", timeout=30).verdict == "linearizable"


class _NoShortcut(CasRegisterModel):
    """cas-register without the up-front refutation: exercises the search."""

    name = "cas-register-no-shortcut"

    def impossible(self, items):
        return None


@pytest.mark.parametrize("model", [CasRegisterModel(), _NoShortcut()], ids=["shortcut", "search"])
@SETTINGS
@given(concurrent_histories(), st.integers(min_value=0), st.integers(0, 9))
def test_reading_a_never_written_value_is_not_linearizable(model, history, where, p):
    ghost = 99  # never written: values are 0..3
    at = where % (len(history.ops) + 1)
    process = 1000 + p
    ops = (
        history.ops[:at]
        + (Op(process, "invoke", "read", None), Op(process, "ok", "read", ghost))
        + history.ops[at:]
    )
    r = check(History(ops), model, timeout=30)
    assert r.verdict == "not-linearizable"
    assert all(o.output != ghost for o in r.prefix)
    assert r.unplaced


def brute_force(ops: tuple[Operation, ...], model_name: str) -> bool:
    """Try every subset of info ops and every real-time-respecting order."""
    model = get_model(model_name)
    live = [o for o in ops if o.status != "fail"]
    must = [o for o in live if o.status == "ok"]
    maybe = [o for o in live if o.status == "info"]

    def precedes(a: Operation, b: Operation) -> bool:
        # an info op's completion says nothing: it may take effect any time later
        return a.status == "ok" and a.complete_index < b.invoke_index

    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            chosen = must + list(extra)
            for order in itertools.permutations(chosen):
                if any(
                    precedes(order[j], order[i])
                    for i in range(len(order))
                    for j in range(i + 1, len(order))
                ):
                    continue
                state, ok = model.init(), True
                for o in order:
                    inp, out = model.prepare(o)
                    ok, state = model.step(state, inp, out)
                    if not ok:
                        break
                if ok:
                    return True
    return False


@st.composite
def random_histories(draw, statuses=("ok", "ok", "ok", "info", "fail"), max_ops=6):
    """Small histories with random outputs: often not linearizable."""
    events: list[Op] = []
    open_: dict[int, str] = {}
    n_ops = 0
    while n_ops < max_ops or open_:
        p = draw(st.integers(0, 2))
        if p in open_:
            f = open_.pop(p)
            status = draw(st.sampled_from(statuses))
            out = draw(st.one_of(st.none(), VALUES)) if f == "read" else None
            events.append(Op(p, status, f, out))
        elif n_ops < max_ops:
            f, value = draw(OPS)
            events.append(Op(p, "invoke", f, value))
            open_[p] = f
            n_ops += 1
        if draw(st.integers(0, 9)) == 0:
            break
    # give ok writes/cas their own value back as output
    fixed = []
    inv: dict[int, Op] = {}
    for e in events:
        if e.type == "invoke":
            inv[e.process] = e
        elif e.f != "read":
            e = Op(e.process, e.type, e.f, inv[e.process].value)
        fixed.append(e)
    return History(tuple(fixed))


@settings(max_examples=300, deadline=None)
@given(random_histories())
def test_agrees_with_brute_force(history):
    expected = brute_force(history.operations(), "cas-register")
    got = check(history, "cas-register", timeout=30).verdict
    assert got == ("linearizable" if expected else "not-linearizable")


@settings(max_examples=200, deadline=None)
@given(random_histories(statuses=("ok", "info", "info"), max_ops=7))
def test_agrees_with_brute_force_with_many_info_ops(history):
    """Exercises the info-op shortcuts (pruning unobserved writes, twin symmetry)."""
    expected = brute_force(history.operations(), "cas-register")
    got = check(history, "cas-register", timeout=30).verdict
    assert got == ("linearizable" if expected else "not-linearizable")
