"""What the minimiser shrinks: a schedule plus the recorded choices that go with it.

Why choices travel with steps: minimisation works on the recorded choices of
the failing run, not on a re-generated run (DESIGN.md, "Choices, not only
seeds"). A recorded message fate wins over the link rule in force when
replayed, so if a partition step is removed but the drops it caused are still
fed back, the messages are still lost and the "removed" partition is not
really gone. So each step *owns* the non-deliver fates its fault caused
(:func:`attribute_fates`: drops on the links a partition blocks, delays on
the links a ``link-delay`` slows, ...), and a :class:`Plan` drops the fates
of every step that was removed or changed, letting the network model draw
them afresh under the rules the candidate really sets.

Attribution is by link and fate kind, in order: when one step can explain a
fate, it owns it; when several steps of the schedule could (two partitions
blocking the same link), the fates on that link are split into runs of
consecutive sequence numbers, matched to the steps in order when the counts
agree, else owned by all of them (kept until every owner is gone or
changed). An execution that records exact per-step keys can pass them
instead (``Plan.build(..., step_keys=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer import faults as F
from fuzzer.errors import InputError
from fuzzer.network import model as net
from fuzzer.schedule import Schedule, Step

__all__ = [
    "ChoiceKey",
    "Candidate",
    "Plan",
    "PlanStep",
    "affected_links",
    "attribute_fates",
]

ChoiceKey = tuple[str, str, int]
Link = tuple[str, str]


@dataclass(frozen=True)
class Candidate:
    """One thing to run: concrete steps, seed, the fates and workload ops to feed
    back by key, and ``--set`` config overrides (``workload.clients=2``).

    ``faults`` (the nemesis' choices) are the steps' own faults keyed by step
    index, since every step is concrete already."""

    steps: tuple[Step, ...]
    seed: int
    fates: Mapping[ChoiceKey, net.Fate] = field(default_factory=dict)
    ops: Mapping[tuple[int, int], Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.steps, self.seed)

    @property
    def faults(self) -> dict[int, F.Fault]:
        return {i: s.fault for i, s in enumerate(self.steps)}

    @property
    def size(self) -> int:
        return len(self.steps)


# --------------------------------------------------------------------------- attribution

_KIND_OF: dict[type, str] = {
    F.LinkDrop: net.DROP,
    F.LinkReset: net.DROP,
    F.LinkDelay: net.DELAY,
    F.LinkDuplicate: net.DUPLICATE,
    F.LinkReorder: net.HOLD,
}


def _names(ref: F.NodeRef, nodes: Sequence[str]) -> list[str] | None:
    if ref.role == "all":
        return list(nodes)
    if not ref.concrete or any(i >= len(nodes) for i in ref.indices):
        return None
    return [nodes[i] for i in ref.indices]


def _partition_links(p: F.Partition, nodes: Sequence[str]) -> frozenset[Link] | None:
    if not p.concrete:
        return None
    try:
        if p.shape == "isolate":
            alone = _names(p.node, nodes)
            return None if alone is None else net.isolate(nodes, alone).links
        g = [[nodes[i] for i in grp] for grp in p.groups]
        if p.shape == "ring":
            return net.ring(g[0]).links
        if p.shape == "bridge":
            return net.bridge_of(g[0], g[1][0], g[2]).links
        if p.shape == "one-way":
            return net.one_way(g[0], g[1]).links
        return net.split(g, p.shape).links
    except (IndexError, net.NetworkError):
        return None


def affected_links(fault: F.Fault, nodes: Sequence[str]) -> tuple[frozenset[Link], str] | None:
    """The directed links ``fault`` acts on and the fate kind it causes there
    (``drop`` for partitions), or None when it causes no message fates or its
    nodes are not known (a role still unresolved)."""
    if isinstance(fault, F.Partition):
        links = _partition_links(fault, nodes)
        return None if links is None else (links, net.DROP)
    kind = _KIND_OF.get(type(fault))
    if kind is None:
        return None
    assert isinstance(fault, F.LinkFault)
    src, dst = _names(fault.src, nodes), _names(fault.dst, nodes)
    if src is None or dst is None:
        return None
    return frozenset((a, b) for a in src for b in dst if a != b), kind


def _runs(seqs: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in seqs:
        if out and out[-1][-1] == s - 1:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def attribute_fates(
    steps: Sequence[Step], fates: Mapping[ChoiceKey, net.Fate], nodes: Sequence[str]
) -> tuple[frozenset[ChoiceKey], ...]:
    """For each step, the recorded fates it caused (see module docstring)."""
    effects = [affected_links(s.fault, nodes) for s in steps]
    by_link_kind: dict[tuple[Link, str], list[int]] = {}
    for (a, b, seq), fate in fates.items():
        if fate.kind != net.DELIVER:
            kind = net.DROP if fate.kind == net.DROP else fate.kind
            by_link_kind.setdefault(((a, b), kind), []).append(seq)
    owned: list[set[ChoiceKey]] = [set() for _ in steps]
    for (link, kind), seqs in by_link_kind.items():
        owners = [
            i for i, e in enumerate(effects) if e is not None and e[1] == kind and link in e[0]
        ]
        if not owners:
            continue
        seqs.sort()
        runs = _runs(seqs)
        if len(owners) > 1 and len(runs) == len(owners):
            for i, run in zip(owners, runs, strict=True):
                owned[i].update((link[0], link[1], s) for s in run)
            continue
        keys = {(link[0], link[1], s) for s in seqs}
        for i in owners:
            owned[i].update(keys)
    return tuple(frozenset(o) for o in owned)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanStep:
    """A step of the plan: where it came from, what it is now, the fates it owns.

    ``intact`` is False once the step was changed by a simplification: its
    owned fates are then dropped too (they belonged to the old fault)."""

    origin: int
    step: Step
    keys: frozenset[ChoiceKey] = frozenset()
    intact: bool = True


@dataclass(frozen=True)
class Plan:
    """The minimiser's working state: the original choices and the steps kept
    so far; :meth:`candidate` turns it into a :class:`Candidate` to run."""

    steps: tuple[PlanStep, ...]
    seed: int
    fates: Mapping[ChoiceKey, net.Fate]
    ops: Mapping[tuple[int, int], Any]
    overrides: tuple[str, ...] = ()
    owned: frozenset[ChoiceKey] = frozenset()

    @classmethod
    def build(
        cls,
        steps: Sequence[Step],
        seed: int,
        *,
        nodes: Sequence[str],
        fault_choices: Mapping[Any, F.Fault] | None = None,
        fates: Mapping[ChoiceKey, net.Fate] | None = None,
        ops: Mapping[tuple[int, int], Any] | None = None,
        overrides: Iterable[str] = (),
        step_keys: Sequence[Iterable[ChoiceKey]] | None = None,
    ) -> Plan:
        """A plan from a failing run: its steps (role-based faults replaced by
        the concrete fault recorded under the step's index in
        ``fault_choices``), fates, workload ops and overrides."""
        fault_choices = fault_choices or {}
        concrete = []
        for i, s in enumerate(steps):
            f = fault_choices.get(i)
            concrete.append(Step(f, s.duration) if isinstance(f, F.Fault) else s)
        fates = dict(fates or {})
        if step_keys is not None:
            if len(step_keys) != len(concrete):
                raise InputError(
                    f"{len(step_keys)} per-step key sets for {len(concrete)} steps", where="choices"
                )
            keys = tuple(frozenset(k) for k in step_keys)
        else:
            keys = attribute_fates(concrete, fates, nodes)
        owned = frozenset().union(*keys) if keys else frozenset()
        return cls(
            tuple(PlanStep(i, s, k) for i, (s, k) in enumerate(zip(concrete, keys, strict=True))),
            seed,
            fates,
            dict(ops or {}),
            tuple(overrides),
            owned,
        )

    @property
    def size(self) -> int:
        return len(self.steps)

    def key(self) -> tuple:
        """A hashable identity (for the cache of tested candidates)."""
        return (tuple((p.origin, p.step, p.intact) for p in self.steps), self.overrides)

    def aligned(self) -> int:
        """How many leading steps still start when they did in the recorded run.

        Recorded fates are keyed by per-link sequence numbers, so they mean "the
        k-th message on this link" and only line up with the fault that caused
        them while everything before that fault is as recorded: once a step is
        removed or changed, every later step starts at a different moment and
        its fates would hit other messages (measured on a pysyncobj bundle with
        the bug step moved earlier: 0/4 reproductions with the shifted fates fed
        back, 4/4 without)."""
        for pos, p in enumerate(self.steps):
            if p.origin != pos:
                return pos
            if not p.intact:
                return pos + 1  # changed in place: later steps may start at other times
        return len(self.steps)

    def candidate(self) -> Candidate:
        """The candidate to run: its steps, and the recorded fates of the intact steps
        that are still aligned (the rest are drawn by the model under the
        candidate's own rules)."""
        n = self.aligned()
        keep: set[ChoiceKey] = set()
        for p in self.steps[:n]:
            if p.intact:
                keep |= p.keys
        drop = self.owned - keep
        fates = {k: v for k, v in self.fates.items() if k not in drop} if drop else self.fates
        return Candidate(
            tuple(p.step for p in self.steps), self.seed, fates, self.ops, self.overrides
        )

    def with_steps(self, steps: Iterable[PlanStep]) -> Plan:
        return replace(self, steps=tuple(steps))

    def with_step(self, i: int, step: Step) -> Plan:
        """Step ``i`` replaced (its owned fates no longer fed back)."""
        ps = replace(self.steps[i], step=step, intact=False)
        return replace(self, steps=self.steps[:i] + (ps,) + self.steps[i + 1 :])

    def with_override(self, key: str, text: str, ops: Mapping[tuple[int, int], Any]) -> Plan:
        """``key=...`` set to the override ``text`` (replacing an earlier one), new ops."""
        rest = tuple(o for o in self.overrides if o.split("=", 1)[0].strip() != key)
        return replace(self, overrides=rest + (text,), ops=dict(ops))
