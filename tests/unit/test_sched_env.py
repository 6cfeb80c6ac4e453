"""hbfuzz/Cluster-v0: gymnasium registration, checker, episodes over the toy driver."""

from __future__ import annotations

import asyncio
import math
import random
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import fuzzer.scheduler as sched
from fuzzer.errors import UsageError
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import ExecutionFeedback
from fuzzer.scheduler.qlearning import QLearningScheduler
from fuzzer.scheduler.toy import ToyDriver, ToyLock, toy_signature

SPACE = ActionSpace.from_dict({"nodes": 3, "allowed": ["kill", "pause", "heal", "wait"]})


def _make(seed: int, **kw) -> gymnasium.Env:
    return gymnasium.make(sched.ENV_ID, driver=ToyDriver(ToyLock(SPACE, depth=3, seed=seed)), **kw)


def test_registered_env_passes_the_checker(seed: int) -> None:
    assert sched.ENV_ID in gymnasium.registry
    env = _make(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker warning fails the test
            check_env(env.unwrapped)
        assert env.action_space == gymnasium.spaces.Discrete(len(SPACE))
    finally:
        env.close()


def test_episode_truncates_at_schedule_length_and_terminates_on_finding(seed: int) -> None:
    driver = ToyDriver(ToyLock(SPACE, depth=3, seed=seed))
    env = gymnasium.make(sched.ENV_ID, driver=driver, config={"schedule_length": 4})
    combo = driver.toy.combo
    wrong = (combo[0] + 1) % len(SPACE)
    obs, info = env.reset(seed=seed)
    assert obs == toy_signature(0) and info["signature"] == toy_signature(0)
    for t in range(4):
        obs, r, term, trunc, info = env.step(wrong)
        assert (term, trunc) == (False, t == 3) and r == 0.0
        assert info["fault"] == SPACE.fault(wrong).to_text() and info["step"] == t + 1
    with pytest.raises(UsageError):
        env.step(wrong)
    env.reset()
    total = 0.0
    for k, a in enumerate(combo):
        obs, r, term, trunc, info = env.step(a)
        total += r
        assert obs == toy_signature(k + 1) and r > 0
    assert term and not trunc and info["finding"] == "toy-lock-open"
    assert total == pytest.approx(3 * math.log2(5) + 10.0)  # 3 x log2(1 + 4 cells) + finding
    env.close()
    assert driver.closed
    env.close()  # idempotent


def test_env_needs_a_driver_and_an_action_space() -> None:
    with pytest.raises(UsageError, match="driver"):
        gymnasium.make(sched.ENV_ID)

    class Bare:
        async def reset(self) -> int:
            return 0

    with pytest.raises(UsageError, match="action space"):
        gymnasium.make(sched.ENV_ID, driver=Bare())
    env = gymnasium.make(
        sched.ENV_ID,
        driver=ToyDriver(ToyLock(SPACE, seed=1)),
        config={"faults": {"nodes": 3, "allowed": ["kill", "pause", "heal", "wait"]}},
    )
    assert env.unwrapped.actions == SPACE
    env.close()


def test_q_learning_drives_the_env(seed: int) -> None:
    """A gymnasium-style agent loop: the scheduler learns through the env's API."""
    env = _make(seed, config={"schedule_length": 8})
    toy = env.unwrapped.driver.toy
    q = QLearningScheduler(SPACE)
    rng = random.Random(seed)
    for _ in range(200):
        q.begin_execution(rng)
        obs, info = env.reset()
        sig, done = info["signature"], False
        while not done:
            a = q.choose(sig)
            obs, r, term, trunc, info = env.step(np.int64(a))
            q.observe(sig, a, r, info["signature"], term)
            sig, done = info["signature"], term or trunc
        q.end_execution(ExecutionFeedback(finding=info["finding"]))
    env.close()
    assert all(q.greedy(s) == a for s, a in toy.optimal().items())
    assert q.policy_entropy() < 0.5


def test_env_refuses_to_run_inside_an_event_loop(seed: int) -> None:
    env = _make(seed)

    async def inside() -> None:
        with pytest.raises(UsageError, match="event loop"):
            env.reset()

    asyncio.run(inside())
    env.reset()  # fine outside
    env.close()
    with pytest.raises(UsageError, match="closed"):
        env.unwrapped.reset()
