"""``hbfuzz/Cluster-v0``: fault scheduling as a gymnasium environment.

Why gymnasium: any off-the-shelf agent (or our own Q-learning) can drive
executions through the standard ``reset``/``step`` API. One episode is one
execution; one step applies one fault of the target's action space for one
window; the observation is the window's state signature; the reward is the
window's novelty (:func:`~fuzzer.scheduler.base.reward`); the episode
terminates on a finding and is truncated at the schedule length.

The env does no I/O itself. It delegates to an *execution driver*
(:class:`ExecutionDriver`, async because executions are: the real one comes
with ``fuzzer/execution.py``; tests use :class:`~fuzzer.scheduler.toy.ToyDriver`)
and runs the driver's coroutines on an event loop it owns
(:class:`asyncio.Runner`), since gymnasium's API is synchronous. So the env
must not be used from inside a running event loop; the async campaign calls
schedulers directly instead.

Observation space: ``Discrete(2**32)``, the tracker's 32-bit signatures
(wider signatures are folded modulo 2**32; ``info["signature"]`` carries the
original).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fuzzer.errors import UsageError
from fuzzer.faults import Fault
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import DEFAULT_WEIGHTS, Novelty, RewardWeights, reward

__all__ = ["ExecutionDriver", "ClusterEnv", "SIGNATURE_SPACE"]

SIGNATURE_SPACE = 2**32


class ExecutionDriver(Protocol):
    """Runs executions for :class:`ClusterEnv` (fuzzer/execution.py implements it)."""

    async def reset(self) -> int:
        """Start a fresh execution; return the initial state signature."""
        ...

    async def step(self, fault: Fault) -> tuple[Novelty, str | None]:
        """Apply ``fault`` for one window; return its summary and a finding (or None)."""
        ...

    async def close(self) -> None: ...


class ClusterEnv(gym.Env):
    """A gymnasium Env over executions (see module docstring).

    ``config`` (a plain dict, later the campaign's resolved config) may hold
    ``faults`` (the action-space description), ``schedule_length`` and
    ``reward`` (weights); explicit keyword arguments win over it, and the
    action space falls back to ``driver.actions``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        driver: ExecutionDriver | None = None,
        config: Mapping[str, Any] | None = None,
        actions: ActionSpace | None = None,
        schedule_length: int | None = None,
        weights: RewardWeights | None = None,
        render_mode: str | None = None,
    ) -> None:
        if driver is None:
            raise UsageError(
                "hbfuzz/Cluster-v0 needs driver=... (an execution driver; see fuzzer.scheduler.env)"
            )
        config = dict(config or {})
        if actions is None and "faults" in config:
            actions = ActionSpace.from_dict(config["faults"], "<env config>")
        if actions is None:
            actions = getattr(driver, "actions", None)
        if not isinstance(actions, ActionSpace):
            raise UsageError(
                "hbfuzz/Cluster-v0 needs an action space (actions= or config['faults'])"
            )
        length = (
            schedule_length if schedule_length is not None else config.get("schedule_length", 12)
        )
        if type(length) is not int or length < 1:
            raise UsageError(f"schedule_length must be an int >= 1, not {length!r}")
        if weights is None:
            weights = RewardWeights.from_dict(config.get("reward", {}), "<env config>")
        self.driver = driver
        self.actions = actions
        self.schedule_length = length
        self.weights = weights or DEFAULT_WEIGHTS
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(actions))
        self.observation_space = spaces.Discrete(SIGNATURE_SPACE)
        self._runner: asyncio.Runner | None = asyncio.Runner()
        self._t = 0
        self._live = False

    @staticmethod
    def _obs(sig: int) -> np.int64:
        return np.int64(int(sig) % SIGNATURE_SPACE)

    def _run(self, coro: Any) -> Any:
        if self._runner is None:
            coro.close()
            raise UsageError("this ClusterEnv is closed")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(coro)
        coro.close()
        raise UsageError("ClusterEnv runs its own event loop; do not call it from async code")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.int64, dict[str, Any]]:
        super().reset(seed=seed)
        sig = int(self._run(self.driver.reset()))
        self._t = 0
        self._live = True
        return self._obs(sig), {"signature": sig, "step": 0}

    def step(self, action: Any) -> tuple[np.int64, float, bool, bool, dict[str, Any]]:
        if not self._live:
            raise UsageError("call reset() before step() (the episode is over or not started)")
        fault = self.actions.fault(int(action))
        summary, finding = self._run(self.driver.step(fault))
        self._t += 1
        r = float(reward(summary, self.weights, finding is not None))
        terminated = finding is not None
        truncated = not terminated and self._t >= self.schedule_length
        self._live = not (terminated or truncated)
        info = {
            "signature": int(summary.signature),
            "step": self._t,
            "fault": fault.to_text(),
            "new_hb": int(summary.new_hb),
            "new_edges": int(summary.new_edges),
            "finding": finding,
        }
        return self._obs(summary.signature), r, terminated, truncated, info

    def close(self) -> None:
        if self._runner is None:
            return
        try:
            self._runner.run(self.driver.close())
        finally:
            self._runner.close()
            self._runner = None
            self._live = False
