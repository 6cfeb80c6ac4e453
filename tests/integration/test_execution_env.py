"""The gymnasium env ``hbfuzz/Cluster-v0`` driving real executions through
:class:`~fuzzer.execution.driver.ExecutionEnvDriver` (Maelstrom broadcast):
reset starts an execution, each step applies one action for a window and
returns its signature and reward, the episode is truncated at the schedule
length, and close leaves nothing running."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest

import fuzzer.scheduler  # noqa: F401  (registers hbfuzz/Cluster-v0)
from fuzzer.config import load_config
from fuzzer.execution.driver import ExecutionEnvDriver
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.scheduler.actions import ActionSpace

pytestmark = pytest.mark.timeout(180)
TARGET = Path(__file__).resolve().parents[2] / "targets" / "maelstrom" / "target.toml"


def test_env_episode_over_real_executions(tmp_path, seed, rng):
    cfg = load_config(TARGET, ["schedule.warmup=300ms", "schedule.quiescence=300ms"])
    actions = ActionSpace.from_dict(
        {"nodes": 3, "allowed": ["partition", "kill", "restart", "pause", "heal", "wait"]})
    driver = ExecutionEnvDriver(cfg, tmp_path, seed, step=0.3, schedule_length=3)
    env = gymnasium.make("hbfuzz/Cluster-v0", driver=driver, actions=actions,
                         schedule_length=3)
    try:
        for _episode in range(2):
            obs, info = env.reset(seed=seed)
            assert info["step"] == 0
            done, steps = False, 0
            while not done:
                obs, r, terminated, truncated, info = env.step(rng.randrange(len(actions)))
                steps += 1
                assert r >= 0.0 and info["signature"] == int(obs) % 2**32
                done = terminated or truncated
            assert steps <= 3
            running = driver.results[-1].execution_id if driver.results else None
            assert running is not None and not leftover_processes(running)
    finally:
        env.close()
    assert len(driver.results) == 2
    assert all(len(r.windows) <= 3 and r.stats.events > 0 for r in driver.results)
