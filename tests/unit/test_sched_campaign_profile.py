"""The campaign profile of Q-learning: shared per-action estimates, the state-visit
bonus and the fault context (fuzzer/scheduler/context.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fuzzer.errors import InputError
from fuzzer.scheduler import make_scheduler
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import dumps_state, loads_state
from fuzzer.scheduler.context import FaultContext, contextual_signature
from fuzzer.scheduler.qlearning import CAMPAIGN_DEFAULTS, QConfig, QLearningScheduler

SPACE = ActionSpace.from_dict({"nodes": 3, "allowed": ["kill", "restart", "partition", "heal",
                                                       "link-drop", "wait"]})


def test_fault_context_follows_the_faults_in_force() -> None:
    c = FaultContext()
    assert c.key() == (0, 0, 0, 0, 0)
    c = c.after("kill").after("kill").after("kill")
    assert c.down == 2 and c.last == 1  # capped at 2
    c = c.after("restart")
    assert c.down == 1 and c.last == 3
    c = c.after("partition").after("link-drop").after("link-drop").after("link-drop")
    assert (c.partitioned, c.links, c.last) == (1, 2, 2)
    c = c.after("heal")
    assert (c.partitioned, c.links, c.down) == (0, 0, 1)
    assert c.after("pause").paused == 1 and c.after("pause").after("resume").paused == 0
    assert c.after("wait").last == 0


def test_contextual_signature_is_stable_and_separates_contexts() -> None:
    a = contextual_signature(42, FaultContext())
    assert a == contextual_signature(42, FaultContext())  # no per-process salt
    assert 0 <= a < 2**63
    assert a != contextual_signature(42, FaultContext().after("kill"))
    assert a != contextual_signature(43, FaultContext())


def test_new_states_start_from_what_other_states_taught(rng: random.Random) -> None:
    q = QLearningScheduler(SPACE, QConfig(generalise=1.0, q_init=5.0))
    good = SPACE.index(SPACE.fault(0))
    for i in range(30):  # action `good` pays 4 in many states, the others never tried
        q.observe(1000 + i, good, 4.0, 2000 + i, True)
    fresh = q.q_values(99)  # never seen: the optimistic row
    assert np.all(fresh == 5.0)
    q.choose(99)  # now created, from the global estimates
    row = q.q_values(99)
    assert row[good] == pytest.approx(4.0, abs=0.5)
    assert np.all(np.delete(row, good) == 5.0)  # untried actions stay optimistic
    plain = QLearningScheduler(SPACE, QConfig(generalise=0.0, q_init=5.0))
    plain.observe(1, good, 4.0, 2, True)
    plain.choose(99)
    assert np.all(plain.q_values(99) == 5.0)


def test_state_bonus_rewards_rare_states_and_decays() -> None:
    q = QLearningScheduler(SPACE, QConfig(state_bonus=1.0, q_init=0.0, alpha=1.0))
    a = 0
    q.observe(1, a, 0.0, 7, True)
    first = q.q_values(1)[a]
    q.observe(1, a, 0.0, 7, True)
    q.observe(1, a, 0.0, 7, True)
    q.observe(1, a, 0.0, 7, True)
    later = q.q_values(1)[a]
    assert first > 0 and later == pytest.approx(first / 2, rel=0.05)  # 1/sqrt(4)
    off = QLearningScheduler(SPACE, QConfig(state_bonus=0.0, q_init=0.0, alpha=1.0))
    off.observe(1, a, 0.0, 7, True)
    assert off.q_values(1)[a] == 0.0


def test_context_changes_the_learners_state(rng: random.Random) -> None:
    q = QLearningScheduler(SPACE, QConfig(context=True))
    q.begin_execution(rng)
    kill = SPACE.index(next(f for f in SPACE.faults if f.verb == "kill"))
    q.choose(5)
    q.observe(5, kill, 1.0, 5, False)  # same window signature, but a node is now down
    assert q.states_seen == 2
    q.begin_execution(rng)  # a new execution starts with nothing in force
    q.choose(5)
    assert q.states_seen == 2


def test_campaign_profile_is_the_default_of_make_scheduler_and_persists(
        rng: random.Random) -> None:
    q = make_scheduler("qlearning", SPACE)
    assert isinstance(q, QLearningScheduler)
    for k, v in CAMPAIGN_DEFAULTS.items():
        assert getattr(q.config, k) == v
    assert make_scheduler("qlearning", SPACE, {"context": False}).config.context is False
    q.begin_execution(rng)
    sig = 11
    for _ in range(40):
        a = SPACE.index(q.next_step(sig).fault)
        nxt = rng.randrange(4)
        q.observe(sig, a, rng.random() * 3, nxt, False)
        sig = nxt
    q2 = QLearningScheduler.from_state_dict(loads_state(dumps_state(q.state_dict())))
    assert q2.config == q.config
    assert np.array_equal(q2._g, q._g) and q2._state_visits == q._state_visits
    with pytest.raises(InputError, match="scheduler.context"):
        QConfig.from_dict({"context": 1})
    with pytest.raises(InputError, match="scheduler.generalise"):
        QConfig.from_dict({"generalise": 2})
