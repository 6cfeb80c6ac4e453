"""Fault scheduling: the action space, Q-learning, baselines, the gymnasium env.

Importing this package registers the gymnasium environment ``hbfuzz/Cluster-v0``
(:class:`fuzzer.scheduler.env.ClusterEnv`). :func:`make_scheduler` builds the
scheduler named by ``--scheduler qlearning|random|power``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium

from fuzzer.errors import UsageError
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import (
    DEFAULT_WEIGHTS,
    ExecutionFeedback,
    RewardWeights,
    Scheduler,
    dumps_state,
    load_state,
    loads_state,
    reward,
    save_state,
)
from fuzzer.scheduler.baselines import PowerScheduler, RandomScheduler, mutate
from fuzzer.scheduler.qlearning import CAMPAIGN_DEFAULTS, QConfig, QLearningScheduler

__all__ = [
    "ENV_ID",
    "SCHEDULERS",
    "ActionSpace",
    "ExecutionFeedback",
    "RewardWeights",
    "DEFAULT_WEIGHTS",
    "Scheduler",
    "QConfig",
    "QLearningScheduler",
    "RandomScheduler",
    "PowerScheduler",
    "make_scheduler",
    "mutate",
    "reward",
    "dumps_state",
    "loads_state",
    "save_state",
    "load_state",
]

ENV_ID = "hbfuzz/Cluster-v0"
SCHEDULERS = ("qlearning", "random", "power")

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="fuzzer.scheduler.env:ClusterEnv")


def make_scheduler(
    name: str,
    actions: ActionSpace,
    config: Mapping[str, Any] | None = None,
    schedule_length: int = 12,
    step_duration: float = 1.0,
) -> Scheduler:
    """The scheduler called ``name``; ``config`` holds Q-learning settings (QConfig
    field names) for ``qlearning`` and ``stack``/``max_queue`` for ``power``."""
    config = dict(config or {})
    if name == "qlearning":
        config = {**CAMPAIGN_DEFAULTS, "step_duration": step_duration, **config}
        return QLearningScheduler(actions, QConfig.from_dict(config))
    if name == "random":
        return RandomScheduler(actions, step_duration)
    if name == "power":
        unknown = set(config) - {"stack", "max_queue"}
        if unknown:
            raise UsageError(f"unknown power scheduler setting {sorted(unknown)[0]!r}")
        return PowerScheduler(actions, schedule_length, step_duration, **config)
    raise UsageError(f"unknown scheduler {name!r} (expected one of {', '.join(SCHEDULERS)})")
