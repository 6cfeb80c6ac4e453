"""Baselines: the random nemesis is uniform, power mutations give valid schedules, queueing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer import faults as F
from fuzzer.errors import InputError, UsageError
from fuzzer.scheduler import make_scheduler
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import ExecutionFeedback, dumps_state, loads_state
from fuzzer.scheduler.baselines import MUTATIONS, PowerScheduler, RandomScheduler, mutate
from fuzzer.scheduler.toy import ToyLock, run_episode

SPACE = ActionSpace.from_dict({"nodes": 3})


def test_random_scheduler_is_uniform_ish(rng: random.Random) -> None:
    s = RandomScheduler(SPACE, step_duration=0.5)
    s.begin_execution(rng)
    per_action = 200
    counts = [0] * len(SPACE)
    for _ in range(per_action * len(SPACE)):
        step = s.next_step(0)
        assert step.duration == 0.5
        counts[SPACE.index(step.fault)] += 1
    # each count ~ Binomial(7800, 1/39): mean 200, sd ~14; +-40% is > 5 sd
    assert min(counts) > 0.6 * per_action and max(counts) < 1.4 * per_action
    assert s.stats()["policy_entropy"] == 1.0  # nothing observed yet


def test_random_scheduler_counts_and_persists(seed: int) -> None:
    toy = ToyLock(SPACE, depth=3, seed=seed)
    s = RandomScheduler(SPACE)
    r = random.Random(seed)
    for _ in range(30):
        run_episode(toy, s, r)
    st_ = s.stats()
    assert st_["episodes"] == 30 and st_["updates"] > 0 and st_["policy_entropy"] > 0.9
    s2 = RandomScheduler(SPACE)
    s2.load_state_dict(loads_state(dumps_state(s.state_dict())))
    assert s2.stats() == st_
    with pytest.raises(InputError):
        s2.load_state_dict({"scheduler": "power"})


steps_st = st.lists(st.integers(0, len(SPACE) - 1), min_size=0, max_size=15)


def _sched(idx: list[int], seed: int = 0) -> F.Schedule:
    return F.Schedule(tuple(F.Step(SPACE.fault(i), 1.0) for i in idx), seed)


@settings(max_examples=150, deadline=None)
@given(
    parent=steps_st.filter(bool),
    other=st.none() | steps_st,
    max_len=st.integers(1, 12),
    stack=st.integers(1, 6),
    rseed=st.integers(0, 2**32 - 1),
)
def test_mutations_produce_valid_schedules(parent, other, max_len, stack, rseed) -> None:
    p = _sched(parent, 3)
    o = _sched(other) if other is not None else None
    child, ops = mutate(p, random.Random(rseed), SPACE, o, max_len, 2.0, stack)
    assert isinstance(child, F.Schedule) and 1 <= len(child) <= max_len
    assert 1 <= len(ops) <= stack and set(ops) <= set(MUTATIONS)
    known = set(p.steps) | (set(o.steps) if o else set())
    for step in child.steps:
        assert isinstance(step, F.Step)
        assert step in known or (step.fault in SPACE and step.duration == 2.0)
    assert F.Schedule.parse_text(child.to_text()) == child
    assert F.Schedule.from_msgpack(child.to_msgpack()) == child
    # pure: the same RNG seed gives the same child
    assert mutate(p, random.Random(rseed), SPACE, o, max_len, 2.0, stack) == (child, ops)


def test_each_mutation_does_what_it_says(rng: random.Random) -> None:
    base = _sched(list(range(6)))
    seen = set()
    for _ in range(300):
        child, ops = mutate(base, rng, SPACE, _sched([30, 31, 32]), 8, 1.0, stack=1)
        op = ops[0]
        seen.add(op)
        if op == "insert":
            assert len(child) == 7
        elif op == "delete":
            assert len(child) == 5
        elif op in ("replace", "swap"):
            assert len(child) == 6 and child.steps != base.steps
            if op == "swap":
                assert sorted(map(str, child.steps)) == sorted(map(str, base.steps))
        else:
            assert child.steps[0] == base.steps[0]
    assert seen == set(MUTATIONS)


def test_power_scheduler_queues_novel_schedules_and_mutates_them(seed: int) -> None:
    toy = ToyLock(SPACE, depth=6, seed=seed, novelty="global")
    s = PowerScheduler(SPACE, schedule_length=6, step_duration=0.5)
    seed_sched = _sched([0, 1, 2])
    s.add_seed(seed_sched, novelty=2.0)
    r = random.Random(seed)
    for _ in range(40):
        out = run_episode(toy, s, r, horizon=6)
        assert 1 <= out.steps <= 6
    stats = s.stats()
    assert stats["queue"] > 1 and 0 < stats["exploration"] < 1
    entries = s.queue
    assert entries[0].op == "seed" and entries[0].schedule == seed_sched
    assert all(e.src is not None and e.op in (*MUTATIONS, "havoc") for e in entries[1:])
    assert all(e.novelty > 0 for e in entries)
    # not interesting -> not queued
    n = len(s.queue)
    s.begin_execution(r)
    s.next_step(0)
    s.end_execution(ExecutionFeedback())
    assert len(s.queue) == n
    # persistence keeps the queue and the counters
    s2 = PowerScheduler(SPACE, schedule_length=6, step_duration=0.5)
    s2.load_state_dict(loads_state(dumps_state(s.state_dict())))
    assert s2.queue == s.queue and s2.stats() == s.stats()
    r1, r2 = random.Random(seed + 1), random.Random(seed + 1)
    s.begin_execution(r1)
    s2.begin_execution(r2)
    assert [s.next_step(0) for _ in range(6)] == [s2.next_step(0) for _ in range(6)]


def test_power_scheduler_without_queue_generates_and_pads(rng: random.Random) -> None:
    s = PowerScheduler(SPACE, schedule_length=3)
    s.begin_execution(rng)
    steps = [s.next_step(0) for _ in range(5)]  # longer than planned: padded
    assert all(step.fault in SPACE for step in steps)
    s.end_execution(ExecutionFeedback(novelty=1.0))
    assert len(s.queue) == 1 and len(s.queue[0].schedule) == 5
    with pytest.raises(InputError):
        s.add_seed(F.Schedule())


def test_make_scheduler_names() -> None:
    assert make_scheduler("random", SPACE).name == "random"
    p = make_scheduler("power", SPACE, {"stack": 2}, schedule_length=5)
    assert isinstance(p, PowerScheduler) and p.stack == 2 and p.schedule_length == 5
    with pytest.raises(UsageError):
        make_scheduler("genetic", SPACE)
    with pytest.raises(UsageError):
        make_scheduler("power", SPACE, {"alpha": 1})
