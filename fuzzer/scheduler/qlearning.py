"""Tabular Q-learning over state signatures: the scheduler that learns which fault to inject.

Why tabular: the state is the tracker's window signature (a coarse hash of
roles and message types), so the number of distinct states is small (tens to
a few thousand) and each is revisited often; a numpy table learns from a few
hundred executions where a function approximator would need far more. Rows
are added as signatures appear (a growable table); columns are the
:class:`~fuzzer.scheduler.actions.ActionSpace`'s actions.

Why the calibration below: prior work reports a softmax policy that ends up
nearly uniform, i.e. no guidance at all. Three things keep the policy sharp:

- optimistic initialisation (``q_init``): an action never tried in a state
  looks better than any tried one, so each state's actions are tried
  systematically instead of by luck;
- the softmax temperature is *relative to the reward scale* (a running mean
  of |reward|), so Q-value differences of about one typical reward always
  matter, even when novelty has become rare and rewards small;
- exploration decays per execution (epsilon or temperature) to a floor.

Why the three additions below: a campaign of twenty minutes runs about a
hundred executions (~1,200 steps) over 66 actions, while the window
signatures keep producing new states; a purely per-state table with
optimistic rows then spends the whole budget re-trying every action in every
new state, i.e. it behaves like the uniform random nemesis. So:

- ``generalise``: a new state's row starts from the *global* per-action
  estimate (a running mean of every update's target for that action, over
  all states) instead of the flat optimistic value, so what was learned in
  other states is used at once; the global estimate itself starts optimistic,
  so every action is still tried early;
- ``state_bonus``: a count-based exploration bonus for *reaching* a state,
  ``state_bonus * reward_scale / sqrt(visits)``, added to the novelty reward
  (rare cluster states are where new orderings come from; the bonus decays as
  a state becomes familiar, as in reward-augmented RL testing of Raft);
- ``context``: the state is the window signature *and* a coarse
  :class:`~fuzzer.scheduler.context.FaultContext` of the faults in force
  (nodes down, partition, link faults, pause, last fault family), so the
  learner can tell "a node is down" from "all is well" (the signature alone
  cannot).

:class:`QConfig`'s defaults are the plain tabular learner (what the toy MDP
tests pin down: there every depth needs a different action, the adversarial
case for sharing across states); :data:`CAMPAIGN_DEFAULTS` turns the three
on, and :func:`fuzzer.scheduler.make_scheduler` (campaigns, ``--scheduler
qlearning``) starts from them. Every key can be overridden with ``--set
scheduler.KEY=VALUE``.

:meth:`QLearningScheduler.policy_entropy` reports the mean normalised
entropy of the behaviour policy over visited states (1 = uniform, 0 = one
action), weighted by visits; the status screen shows it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from fuzzer.errors import InputError
from fuzzer.faults import Step
from fuzzer.scheduler.actions import ActionSpace
from fuzzer.scheduler.base import (
    ExecutionFeedback,
    FaultRewards,
    normalised_entropy,
    pack_array,
    unpack_array,
)
from fuzzer.scheduler.context import FaultContext, contextual_signature

__all__ = ["CAMPAIGN_DEFAULTS", "QConfig", "QLearningScheduler"]

CAMPAIGN_DEFAULTS = {"generalise": 1.0, "state_bonus": 0.5, "context": True}

_POLICIES = ("softmax", "epsilon")


@dataclass(frozen=True, slots=True)
class QConfig:
    """Learning and exploration settings (all in units of one reward where relevant)."""

    alpha: float = 0.5  # learning rate
    gamma: float = 0.8  # discount
    policy: str = "softmax"  # "softmax" or "epsilon"
    epsilon: float = 0.3  # epsilon-greedy: initial exploration rate
    epsilon_min: float = 0.02
    epsilon_decay: float = 0.99  # per execution
    temperature: float = 0.3  # softmax: temperature relative to the reward scale
    temperature_min: float = 0.05
    temperature_decay: float = 0.99  # per execution
    q_init: float = (
        15.0  # optimistic value of an untried (state, action): about r_max / (1 - gamma)
    )
    scale_decay: float = 0.99  # EMA of |reward| giving the reward scale
    scale_floor: float = 0.05
    step_duration: float = 1.0  # seconds each chosen step lasts
    generalise: float = 0.0  # weight of the global per-action estimate in a new state's row
    state_bonus: float = 0.0  # count bonus for reaching a state, in units of reward scale
    context: bool = False  # add the FaultContext to the state

    def __post_init__(self) -> None:
        if self.policy not in _POLICIES:
            raise InputError(
                f"unknown policy {self.policy!r} (expected softmax or epsilon)",
                where="scheduler.policy",
            )
        checks = {
            "alpha": 0 < self.alpha <= 1,
            "gamma": 0 <= self.gamma < 1,
            "epsilon": 0 <= self.epsilon <= 1,
            "epsilon_min": 0 <= self.epsilon_min <= 1,
            "epsilon_decay": 0 < self.epsilon_decay <= 1,
            "temperature": self.temperature > 0,
            "temperature_min": 0 < self.temperature_min,
            "temperature_decay": 0 < self.temperature_decay <= 1,
            "q_init": math.isfinite(self.q_init),
            "scale_decay": 0 <= self.scale_decay < 1,
            "scale_floor": self.scale_floor > 0,
            "step_duration": self.step_duration >= 0 and math.isfinite(self.step_duration),
            "generalise": 0 <= self.generalise <= 1,
            "state_bonus": self.state_bonus >= 0 and math.isfinite(self.state_bonus),
            "context": isinstance(self.context, bool),
        }
        for k, ok in checks.items():
            if not ok:
                raise InputError(
                    f"{k} = {getattr(self, k)!r} is out of range", where=f"scheduler.{k}"
                )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "<scheduler>") -> QConfig:
        names = {f.name: f.type for f in fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k not in names:
                raise InputError(
                    f"unknown Q-learning setting {k!r}", path=path, where=f"scheduler.{k}"
                )
            if k == "policy":
                if not isinstance(v, str):
                    raise InputError(
                        f"expected a string, got {v!r}", path=path, where=f"scheduler.{k}"
                    )
                kw[k] = v
            elif k == "context":
                if not isinstance(v, bool):
                    raise InputError(
                        f"expected true or false, got {v!r}", path=path, where=f"scheduler.{k}"
                    )
                kw[k] = v
            elif isinstance(v, bool) or not isinstance(v, int | float):
                raise InputError(f"expected a number, got {v!r}", path=path, where=f"scheduler.{k}")
            else:
                kw[k] = float(v)
        try:
            return cls(**kw)
        except InputError as exc:
            raise InputError(str(exc), path=path, where=exc.where) from None

    def to_dict(self) -> dict:
        return asdict(self)


class QLearningScheduler:
    """Epsilon-greedy or softmax Q-learning over (signature, action) with a growable table."""

    name = "qlearning"

    def __init__(self, actions: ActionSpace, config: QConfig | None = None) -> None:
        self.actions = actions
        self.config = config or QConfig()
        self._n_actions = len(actions)
        self._rows: dict[int, int] = {}
        self._sigs: list[int] = []
        self._q = np.full((16, self._n_actions), self.config.q_init, dtype=np.float64)
        self._visits = np.zeros((16, self._n_actions), dtype=np.int64)
        self._rng = random.Random(0)
        self.episodes = 0
        self.updates = 0
        self.findings = 0
        self._scale = 1.0
        self._fault_rewards = FaultRewards()
        self._g = np.full(self._n_actions, self.config.q_init, dtype=np.float64)
        self._g_n = np.zeros(self._n_actions, dtype=np.int64)
        self._state_visits: dict[int, int] = {}
        self._ctx = FaultContext()
        self._last_choice: tuple[int, int] | None = None

    # -- table ------------------------------------------------------------------------

    def _row(self, sig: int) -> int:
        sig = int(sig)
        r = self._rows.get(sig)
        if r is not None:
            return r
        r = len(self._sigs)
        if r == self._q.shape[0]:
            grow = self._q.shape[0]
            self._q = np.vstack([self._q, np.full((grow, self._n_actions), self.config.q_init)])
            self._visits = np.vstack([self._visits, np.zeros((grow, self._n_actions), np.int64)])
        g = self.config.generalise
        self._q[r] = (1 - g) * self.config.q_init + g * self._g
        self._rows[sig] = r
        self._sigs.append(sig)
        return r

    @property
    def states_seen(self) -> int:
        return len(self._sigs)

    def q_values(self, sig: int) -> np.ndarray:
        """A copy of the Q-row of ``sig`` (the optimistic row if never seen)."""
        r = self._rows.get(int(sig))
        if r is None:
            return np.full(self._n_actions, self.config.q_init)
        return self._q[r].copy()

    # -- policy -----------------------------------------------------------------------

    @property
    def exploration(self) -> float:
        """Current epsilon (epsilon policy) or relative temperature (softmax policy)."""
        c = self.config
        if c.policy == "epsilon":
            return max(c.epsilon_min, c.epsilon * c.epsilon_decay**self.episodes)
        return max(c.temperature_min, c.temperature * c.temperature_decay**self.episodes)

    @property
    def reward_scale(self) -> float:
        return max(self._scale, self.config.scale_floor)

    def _probs(self, q: np.ndarray) -> np.ndarray:
        """Behaviour-policy probabilities for Q-rows ``q`` (shape (..., A))."""
        q = np.atleast_2d(q)
        if self.config.policy == "epsilon":
            best = q >= q.max(axis=1, keepdims=True) - 1e-12
            eps = self.exploration
            p = best / best.sum(axis=1, keepdims=True) * (1 - eps) + eps / q.shape[1]
        else:
            z = (q - q.max(axis=1, keepdims=True)) / (self.exploration * self.reward_scale)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
        return p

    def policy(self, sig: int) -> np.ndarray:
        """The behaviour policy's action probabilities in state ``sig``."""
        return self._probs(self.q_values(sig))[0]

    def greedy(self, sig: int) -> int:
        """The greedy action in ``sig`` (lowest index among ties)."""
        return int(np.argmax(self.q_values(sig)))

    def policy_entropy(self, weighted: bool = True) -> float:
        """Mean normalised entropy (0..1) of the behaviour policy over visited states;
        visit-weighted by default (1.0 before anything was learned)."""
        n = len(self._sigs)
        visits = self._visits[:n].sum(axis=1)
        mask = visits > 0
        if not mask.any():
            return 1.0
        h = normalised_entropy(self._probs(self._q[:n][mask]))
        w = visits[mask].astype(np.float64) if weighted else np.ones(int(mask.sum()))
        return float((h * w).sum() / w.sum())

    def _choose(self, q: np.ndarray) -> int:
        rng = self._rng
        if self.config.policy == "epsilon":
            if rng.random() < self.exploration:
                return rng.randrange(self._n_actions)
            ties = np.flatnonzero(q >= q.max() - 1e-12)
            return int(ties[rng.randrange(len(ties))])
        cum = np.cumsum(self._probs(q)[0])
        i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        return min(i, self._n_actions - 1)

    # -- Scheduler protocol -----------------------------------------------------------

    def begin_execution(self, rng: random.Random) -> None:
        self._rng = rng
        self._ctx = FaultContext()
        self._last_choice = None

    def _state(self, signature: int) -> int:
        """The learner's state id for a window signature (with the fault context if on)."""
        if self.config.context:
            return contextual_signature(signature, self._ctx)
        return int(signature)

    def choose(self, state_signature: int) -> int:
        """The next action index for state ``state_signature`` (draws from the RNG)."""
        s = self._state(state_signature)
        self._last_choice = (int(state_signature), s)
        return self._choose(self._q[self._row(s)])

    def next_step(self, state_signature: int) -> Step:
        return Step(self.actions.fault(self.choose(state_signature)), self.config.step_duration)

    def observe(self, state: int, action: int, reward: float, next_state: int, done: bool) -> None:
        """One Q-update: ``Q[s,a] += alpha * (r + bonus(s') + gamma * max Q[s'] - Q[s,a])``,
        and the global per-action estimate moves towards the same target."""
        c = self.config
        a = int(action)
        last = self._last_choice
        key = last[1] if last is not None and last[0] == int(state) else self._state(state)
        self._last_choice = None
        if c.context:
            self._ctx = self._ctx.after(self.actions.fault(a).verb)
        key2 = self._state(next_state)
        s = self._row(key)
        s2 = self._row(key2)
        n2 = self._state_visits.get(key2, 0) + 1
        self._state_visits[key2] = n2
        bonus = c.state_bonus * self.reward_scale / math.sqrt(n2)
        target = float(reward) + bonus + (0.0 if done else c.gamma * float(self._q[s2].max()))
        self._q[s, a] += c.alpha * (target - self._q[s, a])
        self._visits[s, a] += 1
        self._g_n[a] += 1
        self._g[a] += max(1.0 / self._g_n[a], 0.1) * (target - self._g[a])
        if done:  # the episode is over: nothing is in force any more (the final heal)
            self._ctx = FaultContext()
        self._scale = c.scale_decay * self._scale + (1 - c.scale_decay) * abs(float(reward))
        self._fault_rewards.add(self.actions.fault(a).verb, reward)
        self.updates += 1

    def end_execution(self, result: ExecutionFeedback | object) -> None:
        self.episodes += 1
        if ExecutionFeedback.of(result).finding is not None:
            self.findings += 1

    def stats(self) -> dict:
        return {
            "scheduler": self.name,
            "policy": self.config.policy,
            "exploration": self.exploration,
            "states_seen": self.states_seen,
            "policy_entropy": self.policy_entropy(),
            "policy_entropy_unweighted": self.policy_entropy(weighted=False),
            "episodes": self.episodes,
            "updates": self.updates,
            "findings": self.findings,
            "reward_scale": self.reward_scale,
            "fault_rewards": self._fault_rewards.means(),
        }

    # -- persistence ------------------------------------------------------------------

    def state_dict(self) -> dict:
        n = len(self._sigs)
        return {
            "scheduler": self.name,
            "config": self.config.to_dict(),
            "actions": self.actions.texts(),
            "signatures": list(self._sigs),
            "q": pack_array(self._q[:n]),
            "visits": pack_array(self._visits[:n]),
            "episodes": self.episodes,
            "updates": self.updates,
            "findings": self.findings,
            "scale": self._scale,
            "fault_rewards": self._fault_rewards.to_dict(),
            "global_q": pack_array(self._g),
            "global_n": pack_array(self._g_n),
            "state_visits": [[int(k), int(v)] for k, v in self._state_visits.items()],
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore a saved table. Columns are matched by fault text, so a table saved
        with a different action space keeps what it learned for the shared actions
        (new actions start optimistic). The current config is kept."""
        if not isinstance(d, dict) or d.get("scheduler") != self.name:
            raise InputError("not a Q-learning scheduler state", where="scheduler")
        try:
            sigs = [int(x) for x in d["signatures"]]
            texts = [str(t) for t in d["actions"]]
            q = unpack_array(d["q"], "Q-table")
            visits = unpack_array(d["visits"], "visit table")
            counters = (int(d["episodes"]), int(d["updates"]), int(d.get("findings", 0)))
            scale = float(d["scale"])
            fr = FaultRewards.from_dict(d.get("fault_rewards", {}))
            g = unpack_array(d["global_q"], "global Q") if "global_q" in d else None
            gn = unpack_array(d["global_n"], "global counts") if "global_n" in d else None
            sv = {int(k): int(v) for k, v in d.get("state_visits", [])}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise InputError(f"Q-learning state is missing or has a bad field ({exc})") from None
        if (
            q.shape != (len(sigs), len(texts))
            or visits.shape != q.shape
            or len(set(sigs)) != len(sigs)
        ):
            raise InputError(
                f"Q-table shape {q.shape} does not match {len(sigs)} states x {len(texts)} actions"
            )
        n, cap = len(sigs), max(16, 1 << max(0, len(sigs) - 1).bit_length())
        newq = np.full((cap, self._n_actions), self.config.q_init)
        newv = np.zeros((cap, self._n_actions), np.int64)
        col = {t: i for i, t in enumerate(self.actions.texts())}
        for j, t in enumerate(texts):
            i = col.get(t)
            if i is not None:
                newq[:n, i] = q[:, j]
                newv[:n, i] = visits[:, j]
        self._q, self._visits = newq, newv
        self._sigs = sigs
        self._rows = {s: i for i, s in enumerate(sigs)}
        self.episodes, self.updates, self.findings = counters
        self._scale = scale
        self._fault_rewards = fr
        self._state_visits = sv
        self._g = np.full(self._n_actions, self.config.q_init)
        self._g_n = np.zeros(self._n_actions, np.int64)
        if g is not None and gn is not None and g.shape == gn.shape == (len(texts),):
            for j, t in enumerate(texts):
                i = col.get(t)
                if i is not None:
                    self._g[i], self._g_n[i] = g[j], gn[j]

    @classmethod
    def from_state_dict(cls, d: dict) -> QLearningScheduler:
        """A scheduler identical to the saved one (its action space and config included)."""
        try:
            actions = ActionSpace.from_texts(d["actions"], "<scheduler state>")
            config = QConfig.from_dict(d["config"], "<scheduler state>")
        except (KeyError, TypeError) as exc:
            raise InputError(f"Q-learning state has no usable actions/config ({exc})") from None
        s = cls(actions, config)
        s.load_state_dict(d)
        return s
