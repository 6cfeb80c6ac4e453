"""The minimisation driver: from a failing run to the smallest run that still fails.

Why three phases, in this order: removing whole steps (ddmin, phase 1) is
the biggest win per test and makes the later phases cheaper; then each
remaining step is weakened (phase 2, greedy: a simpler step from
:func:`~fuzzer.repro.simplify.simplify_step` is kept if the run still
fails, and the step is simplified again until nothing simpler fails); then
the workload (phase 3: fewer clients, keys, ops as config overrides). All
phases share one :class:`~fuzzer.repro.ddmin.Budget` (time and tries): when
it runs out, the smallest candidate known to fail is the result.

Why "fails" means "the same signature in at least one of K runs"
(:class:`StabilityTest`): clusters are not deterministic. K comes from the
measured reproduction rate (:func:`~fuzzer.repro.ddmin.choose_k`), refined
as candidates reproduce; each candidate is run one batch at a time and
stops at the first reproduction, so a stable bug costs one run per
candidate. Running is someone else's job: a :class:`Reproducer` (the real
one runs executions, :mod:`fuzzer.repro.replay`; unit tests use a pure
model of a bug). The driver itself is pure given the reproducer's answers.

Why the minimal candidate comes with :class:`Evidence`: a minimal bundle is
read with ``hbfuzz show``, and the original run's trace describes steps that
are gone. So the verifying runs of the exact final candidate keep their
event trace, client history, verdicts and recorded choices when the
reproducer can (:class:`EvidenceReproducer`); the first of them that
reproduced the finding is the minimal bundle's picture and its replay
(:meth:`Evidence.into`). When none did (no
verifying runs, or all of them missed a flaky finding), the candidate is run
again, at most ``evidence_runs`` times, until one reproduces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from fuzzer.errors import UsageError
from fuzzer.repro.candidate import Candidate, Plan, PlanStep
from fuzzer.repro.ddmin import Budget, DDProgress, RateEstimate, choose_k, ddmin
from fuzzer.repro.simplify import (
    DURATION_FLOOR,
    WORKLOAD_KEYS,
    simplify_step,
    workload_shrinks,
)

__all__ = [
    "Evidence",
    "EvidenceReproducer",
    "Reproducer",
    "StabilityTest",
    "MinimizeOptions",
    "MinimizeProgress",
    "MinimizeResult",
    "minimize",
]

Signature = Hashable


class Reproducer(Protocol):
    """Runs a candidate ``times`` times; per run, the finding signature it gave
    (the target's if it was among the run's findings) or None."""

    async def reproduce(self, candidate: Candidate, times: int) -> list[Signature | None]: ...


@dataclass(frozen=True)
class Evidence:
    """What one run that reproduced a finding leaves to look at (module docstring):
    its event ``trace`` (events in their positional wire form), client
    ``history`` (``[process, type, f, value, key, time]`` rows), ``verdicts``
    (``Verdict.to_dict()`` dicts, the finding's first) and ``choices`` (its
    ``RecordedChoices.to_msgpack()``), in the forms a bundle stores them.

    Why the choices too: they are the decisions of the very run the trace
    shows (the fates fed back plus the ones drawn afresh, and its message
    delivery order), so replaying the minimal bundle re-runs the run its
    report draws, with delivery order enforced like any campaign bundle."""

    trace: tuple[Any, ...] = ()
    history: tuple[Any, ...] = ()
    verdicts: tuple[Mapping[str, Any], ...] = ()
    choices: bytes = b""

    @classmethod
    def of_result(cls, result: Any, target: Signature) -> Evidence:
        """From an :class:`~fuzzer.execution.result.ExecutionResult` (or anything with its
        ``trace``, ``history``, ``findings`` and ``verdicts``): the verdicts of the
        findings keyed ``target`` first, then the run's other violated verdicts (as a
        campaign's bundle lists them)."""
        from fuzzer.repro.bundle import bundle_fields, to_plain

        findings = tuple(getattr(result, "findings", ()) or ())
        mine = [f.verdict for f in findings if getattr(f, "key", None) == target]
        others = [v for v in getattr(result, "verdicts", ()) or ()
                  if v not in mine and getattr(v, "violated", False)]
        history = getattr(result, "history", None)
        ops = getattr(history, "ops", history) or ()
        rows = tuple(
            [op.process, op.type, op.f, to_plain(op.value), to_plain(op.key), op.time]
            if hasattr(op, "process") else to_plain(op)
            for op in ops
        )
        choices = getattr(result, "choices", None)
        blob = choices.to_msgpack() if hasattr(choices, "to_msgpack") else bytes(choices or b"")
        return cls(tuple(to_plain(list(getattr(result, "trace", ()) or ()))), rows,
                   bundle_fields(mine) + bundle_fields(others), blob)

    @property
    def events(self) -> int:
        return len(self.trace)

    @property
    def ops(self) -> int:
        return len(self.history)

    def into(self, bundle: Any) -> Any:
        """``bundle`` (a :class:`~fuzzer.repro.bundle.Bundle`) with this run's trace,
        history, verdicts and choices (its own verdicts and choices kept where this
        has none)."""
        return replace(bundle, trace=tuple(self.trace), history=tuple(self.history),
                       verdicts=tuple(self.verdicts) or bundle.verdicts,
                       choices=self.choices or bundle.choices)


@runtime_checkable
class EvidenceReproducer(Protocol):
    """A :class:`Reproducer` that can also keep what its runs left: per run, the
    signature (as ``reproduce`` gives it) and, when that run reproduced the
    target, its :class:`Evidence` (else None)."""

    async def reproduce(self, candidate: Candidate, times: int) -> list[Signature | None]: ...

    async def reproduce_evidence(
        self, candidate: Candidate, times: int
    ) -> list[tuple[Signature | None, Evidence | None]]: ...


class StabilityTest:
    """"Still fails": ``target`` reproduced in at least one of K runs (module docstring).

    ``k`` fixed, or chosen per test from the rate estimate (``miss``: accepted
    probability of missing a real reproduction; ``k_max``: at most this many
    runs). ``batch`` runs are asked for at a time (1: stop at the first hit).
    """

    def __init__(
        self,
        reproducer: Reproducer,
        target: Signature,
        *,
        estimate: RateEstimate,
        k: int | None = None,
        miss: float = 0.05,
        k_max: int = 10,
        batch: int = 1,
    ) -> None:
        if k is not None and k < 1:
            raise UsageError(f"--times must be >= 1, not {k}")
        if batch < 1:
            raise UsageError(f"the batch of runs must be >= 1, not {batch}")
        self.reproducer = reproducer
        self.target = target
        self.estimate = estimate
        self.k = k
        self.miss = miss
        self.k_max = k_max
        self.batch = batch
        self.runs = 0
        self.tests = 0
        choose_k(0.5, miss, k_max)  # validates miss and k_max now, not mid-run

    def current_k(self) -> int:
        return self.k if self.k is not None else choose_k(self.estimate.rate, self.miss, self.k_max)

    async def __call__(self, candidate: Candidate) -> bool:
        self.tests += 1
        k = self.current_k()
        done = 0
        while done < k:
            n = min(self.batch, k - done)
            got = await self.reproducer.reproduce(candidate, n)
            if len(got) != n:
                raise UsageError(f"the reproducer returned {len(got)} results for {n} runs")
            done += n
            hits = sum(1 for s in got if s == self.target)
            if hits:
                self.runs += done
                self.estimate.add(hits, done)
                return True
        self.runs += done
        return False


@dataclass(frozen=True)
class MinimizeOptions:
    """Knobs of :func:`minimize` (see the module docstring).

    ``rate``: the measured reproduction rate of the original (None: measure
    it with ``measure_runs`` runs first). ``times``: a fixed K (None: adapted).
    ``verify_runs``: runs of the minimal candidate for its reproduction rate.
    ``n_nodes``: cluster size (enables simplifications that need it).
    ``workload``: current ``workload.clients/keys/rate`` values (phase 3).
    ``evidence_runs``: extra runs of the minimal candidate, at most, to get its
    :class:`Evidence` when no verifying run kept it (0: never run extra).
    """

    rate: float | None = None
    measure_runs: int = 5
    times: int | None = None
    miss: float = 0.05
    k_max: int = 10
    batch: int = 1
    verify_runs: int = 5
    evidence_runs: int = 3
    floor: float = DURATION_FLOOR
    n_nodes: int | None = None
    workload: Mapping[str, float] = field(default_factory=dict)
    phases: tuple[str, ...] = ("steps", "simplify", "workload")


@dataclass(frozen=True, slots=True)
class MinimizeProgress:
    """What a progress line shows: the ``phase``, the current ``size`` (steps),
    ``left`` candidates still queued in this phase (an estimate for ddmin),
    ``tried`` candidates run so far (all phases), ``runs`` executions, ``k``
    runs per candidate now, ``elapsed`` seconds."""

    phase: str
    size: int
    left: int
    tried: int
    runs: int
    k: int
    elapsed: float


@dataclass(frozen=True)
class MinimizeResult:
    """The outcome: ``original`` and ``minimal`` candidates, effort, rates.

    ``reproduced`` is False when the original never reproduced (then
    ``minimal`` is the original and nothing should be written). ``rate`` is
    the reproduction rate of the minimal candidate over ``verify_runs`` runs
    (None when not verified). ``complete`` is False when the budget ran out.
    """

    original: Candidate
    minimal: Candidate
    reproduced: bool
    original_rate: float
    rate: float | None
    tried: int
    runs: int
    seconds: float
    complete: bool
    notes: tuple[str, ...] = ()
    evidence: Evidence | None = None

    def summary(self) -> list[str]:
        o, m = self.original, self.minimal
        rate = "not verified" if self.rate is None else f"{self.rate:.0%}"
        lines = [
            f"steps: {o.size} -> {m.size}",
            f"schedule duration: {o.schedule.duration:g}s -> {m.schedule.duration:g}s",
            f"reproduction rate: original {self.original_rate:.0%}, minimal {rate}",
            f"candidates tried: {self.tried} ({self.runs} runs) in {self.seconds:.1f}s"
            + ("" if self.complete else " (budget exhausted)"),
        ]
        if m.overrides:
            lines.append("workload: " + " ".join(m.overrides))
        ev = self.evidence
        if ev is not None:
            lines.append(f"trace of the minimal run: {ev.events} events, {ev.ops} history entries")
        return lines + list(self.notes)

    def to_dict(self) -> dict[str, object]:
        return {
            "original_steps": self.original.size,
            "minimal_steps": self.minimal.size,
            "original_duration": self.original.schedule.duration,
            "minimal_duration": self.minimal.schedule.duration,
            "reproduced": self.reproduced,
            "original_rate": self.original_rate,
            "rate": self.rate,
            "tried": self.tried,
            "runs": self.runs,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "overrides": list(self.minimal.overrides),
            "schedule": self.minimal.schedule.to_text(),
            "notes": list(self.notes),
            "evidence": None if self.evidence is None else {
                "events": self.evidence.events, "ops": self.evidence.ops},
        }


class _Driver:
    """The state shared by the phases: plan, test, cache, budget, progress."""

    def __init__(
        self,
        plan: Plan,
        test: StabilityTest,
        budget: Budget,
        options: MinimizeOptions,
        progress: Callable[[MinimizeProgress], None] | None,
    ) -> None:
        self.trail: list[Plan] = []  # the accepted plans before the current one, oldest first
        self._plan = plan
        self.test = test
        self.budget = budget
        self.options = options
        self.on_progress = progress
        self.cache: dict[Hashable, bool] = {plan.key(): True}
        self.tried = 0
        self.complete = True

    @property
    def plan(self) -> Plan:
        return self._plan

    @plan.setter
    def plan(self, plan: Plan) -> None:
        if plan.key() != self._plan.key():
            self.trail.append(self._plan)
        self._plan = plan

    def report(self, phase: str, size: int, left: int) -> None:
        if self.on_progress is not None:
            self.on_progress(
                MinimizeProgress(
                    phase, size, left, self.tried, self.test.runs, self.test.current_k(),
                    self.budget.elapsed,
                )
            )

    async def fails(self, plan: Plan) -> bool | None:
        """Cached test of ``plan``; None when the budget is exhausted."""
        key = plan.key()
        if key in self.cache:
            return self.cache[key]
        if self.budget.exhausted():
            self.complete = False
            return None
        self.budget.charge()
        self.tried += 1
        answer = self.cache[key] = await self.test(plan.candidate())
        return answer

    # -- phase 1 -------------------------------------------------------------------

    async def steps_phase(self) -> None:
        base = self.plan

        async def test(items: tuple[PlanStep, ...]) -> bool:
            answer = await self.fails(base.with_steps(items))
            return bool(answer)

        def progress(p: DDProgress) -> None:
            self.report("steps", p.size, p.pending)

        # the budget is charged by fails(); once it is exhausted every answer is
        # "passes", so ddmin winds down at once keeping the last failing subset
        result = await ddmin(list(base.steps), test, progress=progress)
        self.plan = base.with_steps(result.items)

    # -- phase 2 -------------------------------------------------------------------

    async def simplify_phase(self) -> None:
        i = 0
        while i < self.plan.size:
            accepted = True
            while accepted:
                accepted = False
                cands = simplify_step(
                    self.plan.steps[i].step, self.options.n_nodes, floor=self.options.floor
                )
                for j, c in enumerate(cands):
                    self.report("simplify", self.plan.size, len(cands) - j)
                    trial = self.plan.with_step(i, c)
                    answer = await self.fails(trial)
                    if answer is None:
                        return
                    if answer:
                        self.plan, accepted = trial, True
                        break
            i += 1

    # -- phase 3 -------------------------------------------------------------------

    async def workload_phase(self) -> None:
        current = {k: v for k, v in self.options.workload.items() if k in WORKLOAD_KEYS}
        accepted = True
        while accepted:
            accepted = False
            shrinks = workload_shrinks(current)
            for j, w in enumerate(shrinks):
                self.report("workload", self.plan.size, len(shrinks) - j)
                trial = self.plan.with_override(w.key, w.override, w.apply_ops(self.plan.ops))
                answer = await self.fails(trial)
                if answer is None:
                    return
                if answer:
                    self.plan, accepted = trial, True
                    current[w.key] = w.value
                    break


async def minimize(
    plan: Plan,
    reproducer: Reproducer,
    target: Signature,
    options: MinimizeOptions | None = None,
    *,
    budget: Budget | None = None,
    progress: Callable[[MinimizeProgress], None] | None = None,
) -> MinimizeResult:
    """Shrink ``plan`` (built from a failing run) while ``target`` still reproduces.

    Measures the original's rate first unless ``options.rate`` is given;
    returns ``reproduced=False`` (and the original) when it never reproduces.
    """
    options = options or MinimizeOptions()
    budget = budget or Budget()
    original = plan.candidate()
    notes: list[str] = []
    runs0 = 0
    if options.rate is None:
        n = max(1, options.measure_runs)
        got = await reproducer.reproduce(original, n)
        runs0 = len(got)
        rate = sum(1 for s in got if s == target) / max(1, len(got))
        if rate == 0.0:
            others = sorted({str(s) for s in got if s is not None})
            if others:
                notes.append("the runs found other findings instead: " + ", ".join(others))
            return MinimizeResult(
                original, original, False, 0.0, None, 0, runs0, budget.elapsed, True,
                tuple(notes),
            )
    else:
        rate = float(options.rate)
        if not 0.0 <= rate <= 1.0 or math.isnan(rate):
            raise UsageError(f"a reproduction rate is in [0, 1], not {options.rate}")
    estimate = RateEstimate(prior=max(rate, 1.0 / (options.k_max + 1)))
    test = StabilityTest(
        reproducer, target, estimate=estimate, k=options.times, miss=options.miss,
        k_max=options.k_max, batch=options.batch,
    )
    drv = _Driver(plan, test, budget, options, progress)
    unknown = set(options.phases) - {"steps", "simplify", "workload"}
    if unknown:
        raise UsageError(f"unknown minimisation phase(s): {', '.join(sorted(unknown))}")
    for phase in options.phases:
        if budget.exhausted():
            drv.complete = False
            break
        await getattr(drv, f"{phase}_phase")()
    minimal = drv.plan.candidate()
    final_rate: float | None = None
    runs = runs0 + test.runs
    evidence: Evidence | None = None
    keeps = isinstance(reproducer, EvidenceReproducer)
    if options.verify_runs > 0:
        if keeps:
            pairs = await reproducer.reproduce_evidence(minimal, options.verify_runs)
            got = [sig for sig, _ in pairs]
            evidence = _first_evidence(pairs, target)
        else:
            got = await reproducer.reproduce(minimal, options.verify_runs)
        runs += len(got)
        final_rate = sum(1 for s in got if s == target) / max(1, len(got))
    if keeps and evidence is None:
        evidence, extra = await _evidence_runs(reproducer, minimal, target,
                                               options.evidence_runs)
        runs += extra
        # The smallest candidate passed once (a flaky finding at the edge, e.g. a
        # partition shortened until an election only sometimes happens) but never again:
        # step back to the last accepted candidates, larger but reproducible, rather
        # than write a minimal bundle that does not fail.
        for back in reversed(drv.trail[-FALLBACKS:]):
            if evidence is not None:
                break
            cand = back.candidate()
            evidence, extra = await _evidence_runs(reproducer, cand, target,
                                                   options.evidence_runs)
            runs += extra
            if evidence is not None:
                notes.append(f"the smallest candidate ({minimal.size} step(s)) did not "
                             f"reproduce again; kept the previous accepted one "
                             f"({cand.size} step(s)), which did")
                minimal, final_rate = cand, None
        if evidence is None:
            notes.append(f"no run of the minimal candidate reproduced the finding with its "
                         f"trace kept ({extra} extra run(s)): the minimal bundle has no trace")
    drv.report("done", minimal.size, 0)
    return MinimizeResult(
        original, minimal, True, rate, final_rate, drv.tried, runs, budget.elapsed,
        drv.complete, tuple(notes), evidence,
    )


FALLBACKS = 2  # earlier accepted candidates tried when the smallest no longer reproduces


def _first_evidence(pairs: list[tuple[Signature | None, Evidence | None]],
                    target: Signature) -> Evidence | None:
    return next((ev for sig, ev in pairs if sig == target and ev is not None), None)


async def _evidence_runs(reproducer: EvidenceReproducer, candidate: Candidate,
                         target: Signature, most: int) -> tuple[Evidence | None, int]:
    """Run ``candidate`` one run at a time, at most ``most`` runs, until one reproduces
    ``target`` with its evidence; that evidence (or None) and the runs spent."""
    for n in range(1, max(0, most) + 1):
        pairs = await reproducer.reproduce_evidence(candidate, 1)
        if len(pairs) != 1:
            raise UsageError(f"the reproducer returned {len(pairs)} results for 1 run")
        ev = _first_evidence(pairs, target)
        if ev is not None:
            return ev, n
    return None, max(0, most)
