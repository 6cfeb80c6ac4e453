"""Replay's pure parts: rates, HB similarity, reports, bundle <-> plan, minimal bundles."""

from __future__ import annotations

import asyncio

import pytest

from fuzzer import faults as F
from fuzzer.execution.result import RecordedChoices
from fuzzer.network.model import DROPPED, Fate
from fuzzer.repro.bundle import Bundle, load_bundle, save_bundle
from fuzzer.repro.candidate import Plan
from fuzzer.repro.minimize import MinimizeOptions, minimize
from fuzzer.repro.replay import (
    RunOutcome,
    coverage_cells,
    jaccard,
    minimal_bundle,
    minimal_path,
    plan_from_bundle,
    replay_report,
    reproduction_rate,
    trace_events,
    workload_values,
)
from fuzzer.schedule import Schedule, parse_step
from fuzzer.workload.maelstrom import GeneratedOp
from instrumentation import protocol
from instrumentation.protocol import Event

SIG = "workload:lin-kv/not-linearizable[op:read]"


def test_reproduction_rate():
    assert reproduction_rate([SIG, None, "other", SIG], SIG) == 0.5
    assert reproduction_rate([], SIG) == 0.0
    assert reproduction_rate([(SIG, "other"), ("other",)], SIG) == 0.5


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1}, set()) == 0.0
    assert jaccard([1, 1, 2], (2, 1)) == 1.0


def _events(n_msgs: int, kind_names=("ping", "pong"), role="leader"):
    """A two-node exchange: STATE role, then ping/pong messages."""
    evs = []
    seq = {"n1": 0, "n2": 0}
    lam = 0

    def ev(node, kind, fields):
        nonlocal lam
        seq[node] += 1
        lam += 1
        evs.append(Event(node, seq[node], lam, lam * 1000, lam * 1000, kind, fields))

    ev("n1", protocol.STATE, ("role", role))
    ev("n2", protocol.STATE, ("role", "follower"))
    for i in range(n_msgs):
        t = kind_names[i % len(kind_names)]
        ev("n1", protocol.SEND, ("n2", t, i))
        ev("n2", protocol.RECV, ("n1", t, i, lam))
    return evs


def test_coverage_similarity_tells_same_from_different_behaviour():
    a = coverage_cells(_events(10))
    same = coverage_cells(_events(10))
    other = coverage_cells(_events(10, ("vote", "append", "commit"), role="candidate"))
    assert a and a == same
    assert jaccard(a, same) == 1.0
    assert jaccard(a, other) < 0.5


def test_trace_rows_from_bundles_become_events():
    evs = _events(3)
    rows = [[e.node, e.seq, e.lamport, e.wall_ns, e.mono_ns, e.kind, list(e.fields)] for e in evs]
    assert trace_events(rows) == evs
    dicts = [e._asdict() for e in evs]
    assert trace_events(dicts) == evs
    with pytest.raises(Exception, match=r"trace\[0\]"):
        trace_events([["n1", 1]], "b.bundle")


def test_replay_report_counts_and_similarity():
    orig = frozenset({1, 2, 3, 4})
    outs = [
        RunOutcome((SIG,), frozenset({1, 2, 3, 4})),
        RunOutcome(("liveness/hang[]",), frozenset({1, 2})),
        RunOutcome((), frozenset({1, 2, 3})),
        RunOutcome(("x", SIG), frozenset({9})),
    ]
    r = replay_report(SIG, outs, orig, 12.0)
    assert (r.runs, r.hits, r.rate) == (4, 2, 0.5)
    assert r.similarity == (1.0, 0.5, 0.75, 0.0)
    assert r.k == 5
    facts = r.facts()
    assert facts["rate"] == 0.5 and facts["others"] == ["liveness/hang[]", "x"]
    text = "\n".join(r.lines())
    assert "2/4 runs (50%)" in text and "run 2: liveness/hang[]" in text
    assert outs[3].signature_for(SIG) == SIG and outs[1].signature_for(SIG) == "liveness/hang[]"
    assert outs[2].signature_for(SIG) is None
    assert replay_report(SIG, outs, None).similarity == (None,) * 4


def test_minimal_path_is_next_to_the_original_and_never_over_it(tmp_path):
    orig = tmp_path / "id:000001,sig:ab,kind:safety.bundle"
    orig.write_bytes(b"x")
    p1 = minimal_path(orig)
    assert p1.parent == orig.parent and p1 != orig
    assert p1.name == "id:000001,sig:ab,kind:safety.min.bundle"
    p1.write_bytes(b"y")
    p2 = minimal_path(orig)
    assert p2.name == "id:000001,sig:ab,kind:safety.min-2.bundle"
    assert minimal_path(tmp_path / "plain") == tmp_path / "plain.min"


def _bundle() -> Bundle:
    sched = Schedule(
        tuple(parse_step(t) for t in [
            "wait 1s",
            "partition isolate random 2s",
            "heal 1s",
            "kill leader 1s",
            "link-delay n2->n3 50ms 1s",
        ]),
        99,
    )
    faults = {1: F.parse_fault("partition isolate n1"), 3: F.parse_fault("kill n1")}
    fates = {("n1", "n2", i): DROPPED for i in range(4)}
    fates.update({("n2", "n1", i): DROPPED for i in range(3)})
    fates.update({("n2", "n3", i): Fate("delay", 0.05) for i in range(2)})
    fates[("n3", "n1", 0)] = Fate("deliver")
    ops = {(c, q): GeneratedOp(c, q, "read", q % 3, None, 0.05) for c in range(3) for q in range(3)}
    choices = RecordedChoices(faults, fates, ops)
    config = {
        "target": {"name": "toy", "node": "node.py"},
        "cluster": {"nodes": 3},
        "network": {"adapter": "stdio"},
        "workload": {"kind": "maelstrom", "name": "lin-kv", "clients": 3, "rate": 20.0,
                     "keys": 3},
    }
    return Bundle(config=config, seed=99, schedule=sched.to_text(), signature=SIG,
                  verdicts=({"oracle": "workload:lin-kv", "status": "violated",
                             "name": "not-linearizable", "kind": "safety"},),
                  choices=choices.to_msgpack(),
                  workload=config["workload"], trace=(["n1", 1, 1, 0, 0, 3, ["role", "x"]],))


def test_plan_from_bundle_uses_the_concrete_faults_and_owns_the_fates():
    b = _bundle()
    plan = plan_from_bundle(b, nodes=("n1", "n2", "n3"))
    c = plan.candidate()
    assert [s.to_text() for s in c.steps] == [
        "wait 1s", "partition isolate n1 2s", "heal 1s", "kill n1 1s",
        "link-delay n2->n3 50ms 1s",
    ]
    assert len(c.fates) == 10 and len(c.ops) == 9
    assert plan.steps[1].keys == {("n1", "n2", i) for i in range(4)} | {
        ("n2", "n1", i) for i in range(3)}
    assert plan.steps[4].keys == {("n2", "n3", 0), ("n2", "n3", 1)}
    assert workload_values(b) == {"workload.clients": 3, "workload.keys": 3,
                                  "workload.rate": 20.0}


class _Bug:
    """Fails iff an isolate of n1 precedes a kill of n1 (pure model)."""

    async def reproduce(self, cand, times):
        texts = [s.fault.to_text() for s in cand.steps]
        ok = ("partition isolate n1" in texts and "kill n1" in texts
              and texts.index("partition isolate n1") < texts.index("kill n1"))
        return [SIG if ok else None] * times


def test_minimal_bundle_round_trips_and_keeps_only_live_choices(tmp_path):
    b = _bundle()
    plan = plan_from_bundle(b, nodes=("n1", "n2", "n3"))
    opts = MinimizeOptions(rate=1.0, n_nodes=3, verify_runs=2, phases=("steps", "workload"),
                           workload=workload_values(b))
    res = asyncio.run(minimize(plan, _Bug(), SIG, opts))
    mb = minimal_bundle(b, res)
    path = tmp_path / "orig.bundle"
    save_bundle(path, b)
    out = minimal_path(path)
    save_bundle(out, mb)
    back = load_bundle(out)
    assert load_bundle(path).schedule == b.schedule  # the original is untouched
    assert [s.to_text() for s in back.schedule_obj().steps] == [
        "partition isolate n1 2s", "kill n1 1s"]
    ch = back.choices_obj()
    assert ch.faults == {0: F.parse_fault("partition isolate n1"), 1: F.parse_fault("kill n1")}
    # the leading "wait 1s" went, so every kept step starts earlier than recorded: the
    # fates the steps caused no longer line up and are dropped; the others stay
    assert set(ch.fates) == set(plan.candidate().fates) - set(plan.owned)
    assert ch.fates
    assert back.replay["minimize"]["overrides"] == ["workload.clients=1", "workload.keys=1",
                                                    "workload.rate=1"]
    assert back.workload["clients"] == 1 and back.workload["rate"] == 1
    assert back.config["workload"]["clients"] == 1 and back.config["workload"]["keys"] == 1
    assert b.config["workload"]["clients"] == 3  # the original's config is not mutated
    assert workload_values(back) == {"workload.clients": 1, "workload.keys": 1,
                                     "workload.rate": 1}
    assert {k[0] for k in ch.ops} == {0}
    assert back.replay["rate"] == 1.0
    assert back.trace == () and back.history == ()
    again = plan_from_bundle(back, nodes=("n1", "n2", "n3"))
    assert again.overrides == ()  # applied to the config snapshot instead
    assert again.candidate().steps == res.minimal.steps
    assert set(again.candidate().fates) == set(ch.fates)


def test_plan_build_checks_step_keys():
    with pytest.raises(Exception, match="per-step key sets"):
        Plan.build([parse_step("wait 1s")], 1, nodes=("n1",), step_keys=[])
