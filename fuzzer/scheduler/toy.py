"""A toy fault-scheduling environment with a known optimal policy.

Why: a scheduler must be tested and benchmarked without a cluster, in the
same terms the real one sees (state signatures, actions of an
:class:`~fuzzer.scheduler.actions.ActionSpace`, window summaries with novelty
counts, findings). :class:`ToyLock` is a combination lock: in depth ``k``
only the secret action ``combo[k]`` advances to depth ``k+1``; any other
action falls back to depth 0. Reaching depth ``depth`` is a finding and ends
the execution. The optimal policy is therefore known exactly: ``combo[k]`` in
the states of depths ``0..depth-1``.

Novelty comes in two modes:

- ``"episode"`` (stationary, a proper MDP, for convergence tests): advancing
  reveals ``cells`` HB cells, every time; anything else reveals nothing;
- ``"global"`` (campaign-like, for benchmarks): the cell of each (depth,
  action) transition and the ``cells`` cells of each depth count only the
  first time they are ever seen, as in the tracker's global HB map.

:class:`ToyDriver` wraps it as the async execution driver that
:class:`~fuzzer.scheduler.env.ClusterEnv` delegates to, and :func:`run_episode`
drives any :class:`~fuzzer.scheduler.base.Scheduler` through one execution.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from fuzzer.faults import Fault, Schedule
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import (
    DEFAULT_WEIGHTS,
    ExecutionFeedback,
    RewardWeights,
    Scheduler,
    reward,
)

__all__ = ["ToyWindow", "ToyLock", "ToyDriver", "EpisodeOutcome", "run_episode", "toy_signature"]

FINDING = "toy-lock-open"


def toy_signature(depth: int) -> int:
    """The 32-bit state signature of depth ``depth`` (same width as the tracker's)."""
    return int.from_bytes(
        hashlib.blake2b(f"toy-depth={depth}".encode(), digest_size=4).digest(), "big"
    )


@dataclass(frozen=True, slots=True)
class ToyWindow:
    """The toy's window summary: the fields of the tracker's ``WindowSummary`` that
    schedulers read."""

    signature: int
    signature_text: str
    events: int
    new_hb: int
    new_buckets: int = 0
    new_edges: int = 0


class ToyLock:
    """A seeded combination lock over an action space (see module docstring)."""

    def __init__(
        self,
        actions: ActionSpace,
        depth: int = 4,
        seed: int = 0,
        novelty: str = "episode",
        cells: int = 4,
    ) -> None:
        if depth < 1 or cells < 1 or novelty not in ("episode", "global"):
            raise ValueError("ToyLock needs depth >= 1, cells >= 1, novelty 'episode' or 'global'")
        self.actions = actions
        self.depth_limit = depth
        self.novelty = novelty
        self.cells = cells
        rng = random.Random(seed)
        self.combo: tuple[int, ...] = tuple(rng.randrange(len(actions)) for _ in range(depth))
        self.depth = 0
        self.seen: set[tuple] = set()  # global cells
        self.states: set[int] = set()  # distinct depths ever reached
        self.max_depth = 0
        self.findings = 0

    def reset(self) -> int:
        self.depth = 0
        self.states.add(0)
        return toy_signature(0)

    def optimal(self) -> dict[int, int]:
        """The optimal action for each state that matters: signature -> action index."""
        return {toy_signature(k): a for k, a in enumerate(self.combo)}

    @property
    def coverage(self) -> int:
        """Distinct cells ever revealed (global mode's HB coverage)."""
        return len(self.seen)

    def step(self, action: int) -> tuple[ToyWindow, str | None, bool]:
        """Apply action index ``action``: (window summary, finding or None, done)."""
        k = self.depth
        revealed = [("t", k, int(action))]
        if int(action) == self.combo[k]:
            self.depth = k + 1
            revealed += [("d", k + 1, c) for c in range(self.cells)]
        else:
            self.depth = 0
        self.states.add(self.depth)
        self.max_depth = max(self.max_depth, self.depth)
        fresh = [c for c in revealed if c not in self.seen]
        self.seen.update(revealed)
        if self.novelty == "global":
            new = len(fresh)
        else:
            new = self.cells if self.depth == k + 1 else 0
        done = self.depth == self.depth_limit
        finding = FINDING if done else None
        self.findings += done
        sig = toy_signature(self.depth)
        return ToyWindow(sig, f"depth={self.depth}", len(revealed), new), finding, done


class ToyDriver:
    """The toy as an async execution driver (the protocol ClusterEnv delegates to)."""

    def __init__(self, toy: ToyLock) -> None:
        self.toy = toy
        self.actions = toy.actions
        self.closed = False

    async def reset(self) -> int:
        return self.toy.reset()

    async def step(self, fault: Fault) -> tuple[ToyWindow, str | None]:
        window, finding, _ = self.toy.step(self.toy.actions.index(fault))
        return window, finding

    async def close(self) -> None:
        self.closed = True


@dataclass(frozen=True, slots=True)
class EpisodeOutcome:
    """One toy execution driven by a scheduler."""

    total_reward: float
    steps: int
    depth: int  # deepest depth reached in this execution
    finding: str | None
    schedule: Schedule


def run_episode(
    toy: ToyLock,
    scheduler: Scheduler,
    rng: random.Random,
    horizon: int = 12,
    weights: RewardWeights = DEFAULT_WEIGHTS,
) -> EpisodeOutcome:
    """Drive ``scheduler`` through one toy execution of at most ``horizon`` steps."""
    scheduler.begin_execution(rng)
    sig = toy.reset()
    total, deepest, steps, finding, new_hb = 0.0, 0, [], None, 0
    for t in range(horizon):
        step = scheduler.next_step(sig)
        a = toy.actions.index(step.fault)
        window, finding, done = toy.step(a)
        r = reward(window, weights, finding is not None)
        scheduler.observe(sig, a, r, window.signature, done)
        total += r
        new_hb += window.new_hb
        steps.append(step)
        deepest = max(deepest, toy.depth)
        sig = window.signature
        if done or t == horizon - 1:
            break
    schedule = Schedule(tuple(steps), rng.randrange(2**32))
    scheduler.end_execution(ExecutionFeedback(total, new_hb, 0, finding, schedule))
    return EpisodeOutcome(total, len(steps), deepest, finding, schedule)
