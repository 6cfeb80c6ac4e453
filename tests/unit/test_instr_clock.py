"""Lamport clock and vector-clock helpers on hand-built cases with known answers."""

from __future__ import annotations

import pytest

from instrumentation.clock import (
    LamportClock,
    Order,
    vc_compare,
    vc_concurrent,
    vc_happens_before,
    vc_leq,
    vc_merge,
    vc_tick,
)


def test_lamport_tick_send_recv():
    c = LamportClock()
    assert c.tick() == 1
    assert c.send() == 2
    assert c.recv(10) == 11  # merge with a bigger stamp jumps past it
    assert c.recv(3) == 12  # a smaller stamp still ticks
    assert c.time == 12


def test_lamport_rejects_negative_start():
    with pytest.raises(ValueError):
        LamportClock(-1)


def test_lamport_condition_on_a_message_chain(rng):
    """a -> b implies L(a) < L(b) along a random 3-node message chain."""
    clocks = {n: LamportClock() for n in "abc"}
    last = None
    src = "a"
    for _ in range(200):
        dst = rng.choice([n for n in "abc" if n != src])
        for _ in range(rng.randrange(3)):
            clocks[src].tick()
        stamp = clocks[src].send()
        if last is not None:
            assert stamp > last
        last = clocks[dst].recv(stamp)
        assert last > stamp
        src = dst


def test_vector_order_chain_across_three_nodes():
    # n1 sends to n2, n2 sends to n3: n1's send happens before n3's receive.
    s1 = vc_tick({}, "n1")
    r2 = vc_tick(vc_merge({}, s1), "n2")
    s2 = vc_tick(r2, "n2")
    r3 = vc_tick(vc_merge({}, s2), "n3")
    assert r3 == {"n1": 1, "n2": 2, "n3": 1}
    assert vc_compare(s1, r3) is Order.BEFORE
    assert vc_compare(r3, s1) is Order.AFTER
    assert vc_happens_before(s1, r3)
    assert not vc_happens_before(r3, s1)


def test_vector_concurrent_and_equal():
    a = {"n1": 2, "n2": 0}
    b = {"n2": 1}
    assert vc_concurrent(a, b)
    assert vc_compare(a, b) is Order.CONCURRENT
    assert vc_compare({"n1": 1}, {"n1": 1, "n2": 0}) is Order.EQUAL  # missing == 0
    assert not vc_concurrent(a, a)


def test_vector_leq_and_merge():
    assert vc_leq({}, {"x": 3})
    assert vc_leq({"x": 1}, {"x": 1})
    assert not vc_leq({"x": 2}, {"x": 1, "y": 5})
    a, b = {"x": 1, "y": 4}, {"x": 3, "z": 2}
    m = vc_merge(a, b)
    assert m == {"x": 3, "y": 4, "z": 2}
    assert vc_leq(a, m) and vc_leq(b, m)
    assert a == {"x": 1, "y": 4}  # inputs untouched


def test_merge_is_least_upper_bound(rng):
    nodes = ["a", "b", "c", "d"]
    for _ in range(100):
        a = {n: rng.randrange(5) for n in rng.sample(nodes, rng.randrange(1, 5))}
        b = {n: rng.randrange(5) for n in rng.sample(nodes, rng.randrange(1, 5))}
        m = vc_merge(a, b)
        assert vc_compare(vc_merge(b, a), m) is Order.EQUAL
        assert vc_leq(a, m) and vc_leq(b, m)
        order = vc_compare(a, b)
        if order is Order.BEFORE:
            assert vc_compare(m, b) is Order.EQUAL
        if order is Order.CONCURRENT:
            assert vc_compare(a, m) is Order.BEFORE and vc_compare(b, m) is Order.BEFORE
