"""Q-learning: convergence to the toy's known optimal policy, entropy, persistence, reward."""

from __future__ import annotations

import random

import msgpack
import numpy as np
import pytest

from fuzzer.errors import InputError
from fuzzer.scheduler import SCHEDULERS, make_scheduler
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import (
    ExecutionFeedback,
    RewardWeights,
    Scheduler,
    dumps_state,
    load_state,
    loads_state,
    reward,
    save_state,
)
from fuzzer.scheduler.qlearning import QConfig, QLearningScheduler
from fuzzer.scheduler.toy import ToyLock, ToyWindow, run_episode, toy_signature
from fuzzer.tracker.coverage import HBCoverage

SPACE = ActionSpace.from_dict({"nodes": 3})  # 39 actions
# Measured: the greedy policy is optimal after 50..90 episodes (depth 4, 39 actions);
# the test allows 600 for margin over seeds.
EPISODES = 600


def _greedy_is_optimal(q: QLearningScheduler, toy: ToyLock) -> bool:
    return all(q.greedy(sig) == a for sig, a in toy.optimal().items())


@pytest.mark.parametrize("policy", ["softmax", "epsilon"])
def test_converges_to_the_known_optimal_policy(seed: int, policy: str) -> None:
    toy = ToyLock(SPACE, depth=4, seed=seed)
    q = QLearningScheduler(SPACE, QConfig(policy=policy))
    rng = random.Random(seed ^ 0x5EED)
    assert q.policy_entropy() == 1.0
    entropies = []
    for ep in range(EPISODES):
        run_episode(toy, q, rng, horizon=12)
        if ep in (0, 20):
            entropies.append(q.policy_entropy())
    assert _greedy_is_optimal(q, toy), (toy.combo, [q.greedy(s) for s in toy.optimal()])
    entropies.append(q.policy_entropy())
    # the policy is measurably non-uniform and got sharper while learning
    assert entropies[-1] < 0.3
    assert entropies[-1] < entropies[0]
    assert q.policy_entropy(weighted=False) < 0.5
    for sig, a in toy.optimal().items():
        assert q.policy(sig)[a] > 0.5
    # after learning, executions mostly open the lock
    found = sum(run_episode(toy, q, rng).finding is not None for _ in range(20))
    assert found >= 15
    stats = q.stats()
    assert stats["states_seen"] == toy.depth_limit + 1
    assert stats["episodes"] == EPISODES + 20
    assert set(stats["fault_rewards"]) <= {f.verb for f in SPACE}


def test_state_dict_round_trip_gives_an_identical_scheduler(seed: int, tmp_path) -> None:
    toy = ToyLock(SPACE, depth=3, seed=seed)
    q = QLearningScheduler(SPACE, QConfig(temperature_decay=0.97))
    rng = random.Random(seed)
    for _ in range(40):
        run_episode(toy, q, rng)
    blob = dumps_state(q.state_dict())
    assert isinstance(msgpack.unpackb(blob, raw=False), dict)
    copies = [QLearningScheduler(SPACE, QConfig(temperature_decay=0.97)), None, None]
    copies[0].load_state_dict(loads_state(blob))
    copies[1] = QLearningScheduler.from_state_dict(loads_state(blob))
    save_state(q, tmp_path / "q.msgpack")
    copies[2] = QLearningScheduler(SPACE, QConfig(temperature_decay=0.97))
    load_state(copies[2], tmp_path / "q.msgpack")
    for c in copies:
        assert c.stats() == q.stats()
        assert dumps_state(c.state_dict()) == blob
    # same next choices with the same RNG, through further learning too
    runs = []
    for s in [q, *copies]:
        toy2 = ToyLock(SPACE, depth=3, seed=seed)
        r = random.Random(seed + 1)
        runs.append([run_episode(toy2, s, r).schedule for _ in range(5)])
    assert all(r == runs[0] for r in runs[1:])


def test_load_remaps_columns_by_fault_text() -> None:
    small = ActionSpace.from_dict({"nodes": 3, "allowed": ["kill", "wait"]})
    q = QLearningScheduler(small, QConfig(q_init=1.0, state_bonus=0.0))
    q.observe(11, small.index(small.fault(2)), 5.0, 12, True)
    big = ActionSpace.from_dict({"nodes": 3, "allowed": ["pause", "kill", "wait", "heal"]})
    q2 = QLearningScheduler(big, QConfig(q_init=1.0, state_bonus=0.0))
    q2.load_state_dict(loads_state(dumps_state(q.state_dict())))
    row = q2.q_values(11)
    j = big.index(small.fault(2))
    assert row[j] == pytest.approx(3.0)  # 1 + 0.5 * (5 - 1)
    assert np.all(np.delete(row, j) == 1.0)  # new actions start optimistic


def test_table_grows_with_new_signatures(rng: random.Random) -> None:
    q = QLearningScheduler(SPACE)
    q.begin_execution(rng)
    sigs = [rng.getrandbits(32) for _ in range(100)]
    for s, s2 in zip(sigs, sigs[1:], strict=False):
        a = SPACE.index(q.next_step(s).fault)
        q.observe(s, a, 1.0, s2, False)
    assert q.states_seen == len(set(sigs))
    q2 = QLearningScheduler.from_state_dict(loads_state(dumps_state(q.state_dict())))
    assert all(np.array_equal(q.q_values(s), q2.q_values(s)) for s in sigs)


def test_bad_states_and_configs_are_rejected() -> None:
    q = QLearningScheduler(SPACE)
    with pytest.raises(InputError):
        q.load_state_dict({"scheduler": "random"})
    d = q.state_dict()
    d["signatures"] = [1, 2]
    with pytest.raises(InputError, match="shape"):
        q.load_state_dict(d)
    with pytest.raises(InputError, match="format marker"):
        loads_state(msgpack.packb({"x": 1}))
    with pytest.raises(InputError):
        loads_state(b"\xc1garbage")
    with pytest.raises(InputError, match="scheduler.gamma"):
        QConfig.from_dict({"gamma": 1.5}, "t.toml")
    with pytest.raises(InputError, match="scheduler.bogus"):
        QConfig.from_dict({"bogus": 1})
    with pytest.raises(InputError, match="policy"):
        QConfig(policy="ucb")


def test_reward_is_log_scaled_weighted_novelty() -> None:
    def win(hb: int, buckets: int = 0, edges: int = 0) -> ToyWindow:
        return ToyWindow(1, "", 0, hb, buckets, edges)

    assert reward(win(0)) == 0.0
    assert reward(win(1)) == pytest.approx(1.0)
    assert reward(win(3)) == pytest.approx(2.0)
    assert reward(win(0, 0, 1)) == pytest.approx(0.5)
    assert reward(win(0, 1)) == pytest.approx(0.25)
    assert reward(win(0), finding=True) == pytest.approx(10.0)
    w = RewardWeights(hb=2.0, edges=0.0, finding=1.0)
    assert reward(win(1, 0, 7), w, True) == pytest.approx(3.0)
    assert reward(win(100)) > reward(win(10)) > reward(win(1))
    # the tracker's real WindowSummary fits
    cov = HBCoverage()
    cov.open_window()
    assert reward(cov.close_window()) == 0.0


def test_make_scheduler_and_execution_result() -> None:
    q = make_scheduler("qlearning", SPACE, {"alpha": 0.2}, step_duration=2.5)
    assert isinstance(q, QLearningScheduler) and q.config.alpha == 0.2
    assert q.next_step(toy_signature(0)).duration == 2.5
    assert ExecutionFeedback(0.0, 1).interesting and not ExecutionFeedback().interesting

    class Outcome:  # e.g. the execution's own result object
        new_edges = 3
        finding = "lost-write"

    fb = ExecutionFeedback.of(Outcome())
    assert fb == ExecutionFeedback(0.0, 0, 3, "lost-write", None)
    q.end_execution(Outcome())
    assert q.stats()["findings"] == 1
    for name in SCHEDULERS:
        assert isinstance(make_scheduler(name, SPACE), Scheduler)
