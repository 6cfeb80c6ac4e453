"""Baseline schedulers in the same framework as Q-learning: random and power.

Why baselines: "Q-learning helps" is a measured claim (scripts/bench), so the
alternatives must run through the same :class:`~fuzzer.scheduler.base.Scheduler`
calls, the same action space and the same step duration.

- :class:`RandomScheduler` is Jepsen's nemesis: a uniformly random fault
  from the action space at a fixed interval, learning nothing.
- :class:`PowerScheduler` is AFL's loop applied to schedules: keep the
  schedules whose execution produced novelty in a queue, pick one with
  probability proportional to its energy (novelty, decayed by how often it
  was already picked), mutate it (insert, delete, replace, swap steps, or
  splice it with another queue entry, several stacked), run it, and queue
  the result if it was novel. Corpus schedules seed the queue. It ignores
  the state signature.

:func:`mutate` is the pure mutation core (property-tested).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fuzzer.errors import InputError
from fuzzer.faults import Schedule, Step
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import ExecutionFeedback, FaultRewards, normalised_entropy

__all__ = ["MUTATIONS", "mutate", "QueueEntry", "RandomScheduler", "PowerScheduler"]

MUTATIONS = ("insert", "delete", "replace", "swap", "splice")


class _Tally:
    """Counters every baseline reports: states seen, actions chosen, rewards per fault."""

    def __init__(self, n_actions: int) -> None:
        self.states: set[int] = set()
        self.chosen = np.zeros(n_actions, dtype=np.int64)
        self.fault_rewards = FaultRewards()
        self.episodes = 0
        self.updates = 0

    def observe(self, state: int, action: int, reward: float, next_state: int, verb: str) -> None:
        self.states.update((int(state), int(next_state)))
        if 0 <= action < len(self.chosen):
            self.chosen[action] += 1
        self.fault_rewards.add(verb, reward)
        self.updates += 1

    def entropy(self) -> float:
        """Normalised entropy of the empirical action distribution (1 = uniform)."""
        total = self.chosen.sum()
        return 1.0 if total == 0 else float(normalised_entropy(self.chosen / total))

    def to_dict(self) -> dict:
        return {
            "states": sorted(self.states),
            "chosen": [int(x) for x in self.chosen],
            "fault_rewards": self.fault_rewards.to_dict(),
            "episodes": self.episodes,
            "updates": self.updates,
        }

    def load(self, d: dict) -> None:
        try:
            chosen = [int(x) for x in d.get("chosen", [])]
            states = {int(x) for x in d.get("states", [])}
            rewards = FaultRewards.from_dict(d.get("fault_rewards", {}))
            episodes, updates = int(d.get("episodes", 0)), int(d.get("updates", 0))
            arr = np.array(chosen, dtype=np.int64) if len(chosen) == len(self.chosen) else None
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"scheduler tally is malformed ({exc})") from None
        self.states = states
        if arr is not None:
            self.chosen = arr
        self.fault_rewards = rewards
        self.episodes, self.updates = episodes, updates


def _check_state(d: object, name: str) -> dict:
    if not isinstance(d, dict) or d.get("scheduler") != name:
        raise InputError(f"not a {name} scheduler state", where="scheduler")
    return d


class RandomScheduler:
    """Uniform faults from the action space at a fixed interval (Jepsen's nemesis)."""

    name = "random"

    def __init__(self, actions: ActionSpace, step_duration: float = 1.0) -> None:
        self.actions = actions
        self.step_duration = float(step_duration)
        self._rng = random.Random(0)
        self._tally = _Tally(len(actions))

    def begin_execution(self, rng: random.Random) -> None:
        self._rng = rng

    def next_step(self, state_signature: int) -> Step:
        return Step(self.actions.fault(self._rng.randrange(len(self.actions))), self.step_duration)

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        verb = self.actions.fault(action).verb if 0 <= action < len(self.actions) else "other"
        self._tally.observe(state, action, reward, next_state, verb)

    def end_execution(self, result: ExecutionFeedback | object) -> None:
        self._tally.episodes += 1

    def stats(self) -> dict:
        t = self._tally
        return {
            "scheduler": self.name,
            "exploration": 1.0,
            "states_seen": len(t.states),
            "policy_entropy": t.entropy(),
            "episodes": t.episodes,
            "updates": t.updates,
            "fault_rewards": t.fault_rewards.means(),
        }

    def state_dict(self) -> dict:
        return {"scheduler": self.name, "tally": self._tally.to_dict()}

    def load_state_dict(self, d: dict) -> None:
        self._tally.load(_check_state(d, self.name).get("tally", {}))


# --------------------------------------------------------------------------- power


def _random_step(rng: random.Random, actions: ActionSpace, duration: float) -> Step:
    return Step(actions.fault(rng.randrange(len(actions))), duration)


def _one(
    steps: list[Step],
    op: str,
    rng: random.Random,
    actions: ActionSpace,
    other: Sequence[Step],
    max_len: int,
    duration: float,
) -> str:
    """Apply mutation ``op`` in place, falling back to one that fits; returns the op done."""
    n = len(steps)
    if op == "splice" and not other:
        op = "replace"
    if op == "insert" and n >= max_len or op == "delete" and n <= 1 or op == "swap" and n < 2:
        op = "replace"
    if n == 0:
        op = "insert"
    if op == "insert":
        steps.insert(rng.randint(0, n), _random_step(rng, actions, duration))
    elif op == "delete":
        del steps[rng.randrange(n)]
    elif op == "replace":
        i = rng.randrange(n)
        old = steps[i].fault
        new = _random_step(rng, actions, duration)
        if new.fault == old and len(actions) > 1:
            j = (actions.find(old) or 0) + 1 + rng.randrange(len(actions) - 1)
            new = Step(actions.fault(j % len(actions)), duration)
        steps[i] = new
    elif op == "swap":
        i, j = rng.sample(range(n), 2)
        steps[i], steps[j] = steps[j], steps[i]
    else:  # splice: a prefix of ours, a suffix of the other's
        cut, cut2 = rng.randint(1, n), rng.randrange(len(other))
        steps[:] = (steps[:cut] + list(other[cut2:]))[:max_len]
    return op


def mutate(
    schedule: Schedule,
    rng: random.Random,
    actions: ActionSpace,
    other: Schedule | None = None,
    max_len: int = 12,
    duration: float = 1.0,
    stack: int = 4,
) -> tuple[Schedule, list[str]]:
    """1..``stack`` stacked AFL-style mutations of ``schedule`` (pure given ``rng``).

    New steps are drawn from ``actions`` with ``duration``; the result has
    between 1 and ``max_len`` steps and a fresh seed. Returns it and the ops done.
    """
    if max_len < 1 or stack < 1:
        raise ValueError("mutate needs max_len >= 1 and stack >= 1")
    steps = list(schedule.steps[:max_len])
    other_steps = other.steps if other is not None else ()
    ops = []
    for _ in range(rng.randint(1, stack)):
        ops.append(_one(steps, rng.choice(MUTATIONS), rng, actions, other_steps, max_len, duration))
    return Schedule(tuple(steps), rng.randrange(2**32)), ops


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued schedule with the novelty it produced and where it came from."""

    id: int
    schedule: Schedule
    novelty: float
    src: int | None = None  # parent entry id
    op: str = "seed"


class PowerScheduler:
    """AFL-style mutation of interesting schedules from a queue (see module docstring)."""

    name = "power"

    def __init__(
        self,
        actions: ActionSpace,
        schedule_length: int = 12,
        step_duration: float = 1.0,
        stack: int = 4,
        max_queue: int = 4096,
    ) -> None:
        if schedule_length < 1 or stack < 1 or max_queue < 1:
            raise InputError("power scheduler needs schedule_length, stack, max_queue >= 1")
        self.actions = actions
        self.schedule_length = schedule_length
        self.step_duration = float(step_duration)
        self.stack = stack
        self.max_queue = max_queue
        self.queue: list[QueueEntry] = []
        self._picks: dict[int, int] = {}
        self._next_id = 0
        self._rng = random.Random(0)
        self._plan: list[Step] = []
        self._done: list[Step] = []
        self._parent: int | None = None
        self._op = "gen"
        self._fresh = 0  # steps drawn at random (not inherited), for "exploration"
        self._steps = 0
        self._tally = _Tally(len(actions))

    # -- queue ------------------------------------------------------------------------

    def add_seed(self, schedule: Schedule, novelty: float = 1.0) -> QueueEntry:
        """Queue a corpus schedule (kept verbatim; mutations add action-space faults)."""
        if not schedule.steps:
            raise InputError("a seed schedule needs at least one step")
        return self._enqueue(schedule, novelty, None, "seed")

    def _enqueue(self, schedule: Schedule, novelty: float, src: int | None, op: str) -> QueueEntry:
        e = QueueEntry(self._next_id, schedule, float(novelty), src, op)
        self._next_id += 1
        self.queue.append(e)
        self._picks[e.id] = 0
        if len(self.queue) > self.max_queue:
            worst = min(range(len(self.queue)), key=lambda i: self._energy(self.queue[i]))
            gone = self.queue.pop(worst)
            self._picks.pop(gone.id, None)
        return e

    def _energy(self, e: QueueEntry) -> float:
        return (1.0 + e.novelty) / math.sqrt(1.0 + self._picks.get(e.id, 0))

    def _pick(self) -> QueueEntry:
        weights = [self._energy(e) for e in self.queue]
        x = self._rng.random() * sum(weights)
        for e, w in zip(self.queue, weights, strict=True):
            x -= w
            if x < 0:
                return e
        return self.queue[-1]

    # -- Scheduler protocol -----------------------------------------------------------

    def begin_execution(self, rng: random.Random) -> None:
        self._rng = rng
        self._done = []
        if not self.queue:
            self._plan = [
                _random_step(rng, self.actions, self.step_duration)
                for _ in range(self.schedule_length)
            ]
            self._parent, self._op = None, "gen"
            self._fresh += len(self._plan)
            self._steps += len(self._plan)
            return
        parent = self._pick()
        self._picks[parent.id] += 1
        other = self.queue[rng.randrange(len(self.queue))].schedule if len(self.queue) > 1 else None
        child, ops = mutate(
            parent.schedule,
            rng,
            self.actions,
            other,
            self.schedule_length,
            self.step_duration,
            self.stack,
        )
        self._plan = list(child.steps)
        self._parent = parent.id
        self._op = ops[0] if len(ops) == 1 else "havoc"
        parent_steps = set(parent.schedule.steps)
        inherited = sum(1 for s in self._plan if s in parent_steps)
        self._fresh += len(self._plan) - inherited
        self._steps += len(self._plan)

    def next_step(self, state_signature: int) -> Step:
        i = len(self._done)
        if i < len(self._plan):
            step = self._plan[i]
        else:  # the driver runs longer than the plan: pad with random steps
            step = _random_step(self._rng, self.actions, self.step_duration)
            self._fresh += 1
            self._steps += 1
        self._done.append(step)
        return step

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        verb = self.actions.fault(action).verb if 0 <= action < len(self.actions) else "other"
        self._tally.observe(state, action, reward, next_state, verb)

    def end_execution(self, result: ExecutionFeedback | object) -> None:
        result = ExecutionFeedback.of(result)
        self._tally.episodes += 1
        schedule = result.schedule
        if schedule is not None and not isinstance(schedule, Schedule):
            schedule = None
        if schedule is None:
            schedule = Schedule(tuple(self._done), self._rng.randrange(2**32))
        if result.interesting and schedule.steps:
            self._enqueue(schedule, result.novelty, self._parent, self._op)

    def stats(self) -> dict:
        t = self._tally
        return {
            "scheduler": self.name,
            "exploration": self._fresh / self._steps if self._steps else 1.0,
            "states_seen": len(t.states),
            "policy_entropy": t.entropy(),
            "queue": len(self.queue),
            "episodes": t.episodes,
            "updates": t.updates,
            "fault_rewards": t.fault_rewards.means(),
        }

    # -- persistence ------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "scheduler": self.name,
            "queue": [
                [e.id, e.schedule.to_text(), e.novelty, self._picks.get(e.id, 0), e.src, e.op]
                for e in self.queue
            ],
            "next_id": self._next_id,
            "fresh": self._fresh,
            "steps": self._steps,
            "tally": self._tally.to_dict(),
        }

    def load_state_dict(self, d: dict) -> None:
        d = _check_state(d, self.name)
        queue, picks = [], {}
        try:
            for i, (eid, text, novelty, n_picks, src, op) in enumerate(d["queue"]):
                sched = Schedule.parse_text(text, path=f"<power queue entry {i}>")
                queue.append(QueueEntry(int(eid), sched, float(novelty), src, str(op)))
                picks[int(eid)] = int(n_picks)
            next_id = int(d["next_id"])
            fresh, steps = int(d.get("fresh", 0)), int(d.get("steps", 0))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise InputError(f"power scheduler state has a bad queue ({exc})") from None
        self._tally.load(d.get("tally", {}))
        self.queue, self._picks, self._next_id = queue, picks, next_id
        self._fresh, self._steps = fresh, steps
