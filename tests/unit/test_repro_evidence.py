"""The minimal candidate's evidence (trace, history, verdicts of a run that reproduced
it), against a pure model reproducer: taken from a verifying run when one
reproduced, else from at most ``evidence_runs`` extra runs, never from a run that
did not reproduce; reproducers that cannot keep evidence cost no extra runs; and
:class:`Evidence` from a real ExecutionResult's values goes into a bundle."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

from fuzzer.checkers.verdict import violated
from fuzzer.execution.result import Finding, RecordedChoices
from fuzzer.faults import parse_fault
from fuzzer.network import model as net
from fuzzer.repro.bundle import Bundle, dumps_bundle, loads_bundle
from fuzzer.repro.candidate import Candidate, Plan
from fuzzer.repro.minimize import (
    FALLBACKS,
    Evidence,
    EvidenceReproducer,
    MinimizeOptions,
    minimize,
)
from fuzzer.schedule import parse_step
from fuzzer.workload.history import HistoryRecorder
from instrumentation import protocol as P
from instrumentation.protocol import Event

BUG = "invariant/x[STATE:k]"
NODES = ("n1", "n2", "n3")


def needs_kill(c: Candidate) -> bool:
    return any(s.fault.to_text().startswith("kill n1") for s in c.steps)


class Keeper:
    """A model reproducer that keeps evidence: a present bug shows with probability ``p``;
    the evidence of run i names i, so tests can tell which run it came from."""

    def __init__(self, p: float = 1.0, seed: int = 0) -> None:
        self.p, self.rng = p, random.Random(seed)
        self.runs = 0
        self.kept: list[int] = []

    def _one(self, c: Candidate) -> str | None:
        self.runs += 1
        return BUG if needs_kill(c) and self.rng.random() < self.p else None

    async def reproduce(self, c: Candidate, times: int) -> list[str | None]:
        return [self._one(c) for _ in range(times)]

    async def reproduce_evidence(self, c: Candidate, times: int):
        out = []
        for _ in range(times):
            sig = self._one(c)
            self.kept.append(self.runs)
            ev = Evidence((["n1", self.runs, 1, 0, 0, P.LOCAL, ["x", {}]],), (), ({"run": self.runs},))
            out.append((sig, ev if sig == BUG else None))
        return out


class Plain:
    """The same model without evidence (the Reproducer protocol only)."""

    def __init__(self) -> None:
        self.runs = 0

    async def reproduce(self, c: Candidate, times: int) -> list[str | None]:
        self.runs += times
        return [BUG if needs_kill(c) else None] * times


def plan() -> Plan:
    steps = [parse_step(t) for t in ("wait 1s", "kill n1 1s", "pause n2 1s")]
    return Plan.build(steps, 5, nodes=NODES)


def run(rep, **kw):
    opts = MinimizeOptions(rate=1.0, n_nodes=3, phases=("steps",), **kw)
    return asyncio.run(minimize(plan(), rep, BUG, opts))


def test_evidence_comes_from_a_verifying_run_that_reproduced():
    rep = Keeper()
    assert isinstance(rep, EvidenceReproducer) and not isinstance(Plain(), EvidenceReproducer)
    res = run(rep, verify_runs=3)
    assert [s.to_text() for s in res.minimal.steps] == ["kill n1 1s"]
    assert res.rate == 1.0 and res.evidence is not None
    verify_first = rep.runs - 2  # the first of the three verifying runs
    assert res.evidence.verdicts == ({"run": verify_first},)
    assert res.runs == rep.runs  # no extra run was needed
    assert res.to_dict()["evidence"] == {"events": 1, "ops": 0}
    assert any("trace of the minimal run: 1 events" in line for line in res.summary())


def test_without_verifying_runs_one_more_run_gives_the_evidence():
    rep = Keeper()
    res = run(rep, verify_runs=0)
    assert res.rate is None and res.evidence is not None
    assert res.evidence.verdicts == ({"run": rep.runs},)  # the last run: the extra one
    assert res.runs == rep.runs


class Vanishing(Keeper):
    """Reproduces during the search, never again once runs keep their evidence."""

    async def reproduce_evidence(self, c: Candidate, times: int):
        self.p = 0.0
        return await super().reproduce_evidence(c, times)


def test_extra_runs_are_bounded_and_a_miss_is_noted(rng):
    rep = Vanishing(seed=rng.getrandbits(32))
    res = run(rep, verify_runs=2, evidence_runs=3)
    assert [s.to_text() for s in res.minimal.steps] == ["kill n1 1s"]
    assert res.evidence is None and res.rate == 0.0
    # two verifying runs, three extra ones, then three for each of at most FALLBACKS
    # earlier accepted candidates; no more
    assert 2 + 3 < len(rep.kept) <= 2 + 3 + 3 * FALLBACKS
    assert (len(rep.kept) - 5) % 3 == 0
    assert res.runs == rep.runs
    assert any("has no trace" in n for n in res.notes)


class EdgeOfFlaky(Keeper):
    """The smallest candidate (one step) reproduced during the search but never again
    once runs keep evidence; larger candidates with the kill always do."""

    async def reproduce_evidence(self, c: Candidate, times: int):
        self.p = 0.0 if len(c.steps) == 1 else 1.0
        return await super().reproduce_evidence(c, times)


def test_falls_back_to_the_last_accepted_candidate_that_still_reproduces():
    rep = EdgeOfFlaky()
    res = run(rep, verify_runs=2, evidence_runs=2)
    assert len(res.minimal.steps) > 1 and needs_kill(res.minimal)  # not the 1-step one
    assert res.evidence is not None
    assert any("kept the previous accepted one" in n for n in res.notes)
    assert res.runs == rep.runs


def test_a_reproducer_without_evidence_costs_no_extra_runs():
    rep = Plain()
    res = run(rep, verify_runs=2)
    assert res.evidence is None and res.rate == 1.0 and res.runs == rep.runs
    assert res.to_dict()["evidence"] is None


def test_evidence_of_an_execution_result_goes_into_a_bundle():
    rec = HistoryRecorder(clock=iter(range(1000, 9000, 100)).__next__)
    h = rec.invoke(0, "write", 3, key="k")
    rec.ok(h)
    events = (Event("n1", 1, 1, 10, 10, P.STATE, ("k", 2)), Event("n1", 2, 2, 20, 20, P.STATE, ("k", 1)))
    v = violated("invariant", "x", "k went from 2 to 1", events)
    other = violated("invariant", "y", "another one")
    choices = RecordedChoices({0: parse_fault("kill n1")},
                              {("n1", "n2", 0): net.Fate(net.DELAY, 0.1)},
                              order=(("n1", "n2", 0),))
    result = SimpleNamespace(trace=events, history=rec.history(), findings=(Finding.of(v),),
                             verdicts=(other, v), choices=choices)
    ev = Evidence.of_result(result, Finding.of(v).key)
    assert ev.events == 2 and ev.ops == 2  # an invoke and its completion
    assert ev.trace[0] == ["n1", 1, 1, 10, 10, P.STATE, ["k", 2]]
    assert ev.history[0][:3] == [0, "invoke", "write"]
    assert [d["name"] for d in ev.verdicts] == ["x", "y"]  # the finding's first
    assert ev.verdicts[0]["offending"][0]["node"] == "n1"

    b = Bundle(config={"target": {"name": "t"}}, seed=1, schedule="kill n1 1s\n", signature=BUG,
               verdicts=({"oracle": "o", "status": "violated", "name": "old", "kind": "safety"},))
    got = loads_bundle(dumps_bundle(ev.into(b)))  # survives the bundle's own validation
    assert len(got.trace) == 2 and len(got.history) == 2
    assert got.verdicts[0]["name"] == "x" and got.schedule == b.schedule
    # the run's own choices, with its delivery order, replace the bundle's
    assert got.choices_obj().order == (("n1", "n2", 0),)
    assert got.choices_obj().fates == choices.fates
    kept = Evidence().into(b)  # nothing kept: the bundle's verdicts and choices stay
    assert kept.verdicts == b.verdicts and kept.choices == b.choices
