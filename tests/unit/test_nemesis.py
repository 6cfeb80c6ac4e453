"""The nemesis logic: role resolution, applying to a real NetworkModel and a
recording process control, FAULT events, outstanding undos, replay."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer import faults as F
from fuzzer.errors import ClusterError, InputError
from fuzzer.nemesis import Nemesis, resolve_partition, resolve_ref
from fuzzer.network.model import LinkRule, NetworkModel
from fuzzer.tracker.timeline import Timeline
from instrumentation.protocol import FAULT

NODES = ["n1", "n2", "n3", "n4", "n5"]


class RecordingProcesses:
    """A real ProcessControl for the nemesis' logic: it keeps node states the
    way the Supervisor does (pause/resume only act on running/paused nodes,
    start is a no-op unless the node is down, wipe restarts only a node that
    was up) and records every call. The real-process one is the Supervisor."""

    def __init__(self, n: int, fail_on: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.state = ["running"] * n
        self.clock = [(0.0, 1.0)] * n
        self.fail_on = fail_on

    async def _op(self, name: str, n: int) -> None:
        await asyncio.sleep(0)
        self.calls.append((name, n))
        if name == self.fail_on:
            raise ClusterError(f"{name} n{n + 1} failed")

    async def kill(self, n: int) -> None:
        await self._op("kill", n)
        self.state[n] = "dead"

    async def stop(self, n: int) -> None:
        await self._op("stop", n)
        self.state[n] = "dead"

    async def start(self, n: int) -> None:
        await self._op("start", n)
        if self.state[n] == "dead":
            self.state[n] = "running"

    async def pause(self, n: int) -> None:
        await self._op("pause", n)
        if self.state[n] == "running":
            self.state[n] = "paused"

    async def resume(self, n: int) -> None:
        await self._op("resume", n)
        if self.state[n] == "paused":
            self.state[n] = "running"

    async def restart(self, n: int) -> None:
        await self._op("restart", n)
        self.state[n] = "running"

    async def wipe(self, n: int) -> None:
        await self._op("wipe", n)
        if self.state[n] != "dead":
            self.state[n] = "running"

    async def kill_all(self) -> None:
        self.calls.append(("kill_all",))
        self.state = ["dead"] * len(self.state)

    async def restart_all(self) -> None:
        self.calls.append(("restart_all",))
        self.state = ["running"] * len(self.state)

    async def set_clock(self, n: int, offset: float, rate: float = 1.0) -> None:
        self.calls.append(("set_clock", n, offset, rate))
        self.clock[n] = (offset, rate)


def _setup(seed: int, roles: dict[str, str] | None = None, **kw):
    procs = RecordingProcesses(len(NODES), kw.pop("fail_on", None))
    model = NetworkModel(NODES, seed)
    timeline = Timeline("e1")
    current = {"roles": roles or {}}

    async def probe():
        return current["roles"]

    nem = Nemesis(NODES, procs, model, probe=probe, sink=timeline.add, seed=seed, **kw)
    return nem, procs, model, timeline, current


def _faults_on(timeline: Timeline) -> list[tuple]:
    return [
        (e.field("action"), e.field("fault")) for e in timeline.events("nemesis") if e.kind == FAULT
    ]


def test_kill_leader_resolves_through_the_probe_and_records_an_event(seed):
    async def main():
        nem, procs, model, tl, _ = _setup(seed, {"n3": "leader", "n1": "follower"})
        got = await nem.apply(F.Kill("leader"))
        assert got == F.Kill(2)
        assert procs.calls == [("kill", 2)] and procs.state[2] == "dead"
        (ev,) = tl.events("nemesis")
        assert ev.field("action") == "apply" and ev.field("fault") == "kill n3"
        assert ev.field("attrs")["requested"] == "kill leader"
        assert nem.outstanding() == [F.Start(2)]
        assert await nem.heal_all() == [F.Start(2)]
        assert procs.state[2] == "running" and nem.outstanding() == []
        assert _faults_on(tl)[-1] == ("undo", "start n3")

    asyncio.run(main())


def test_no_leader_falls_back_to_a_random_node_and_says_so(seed):
    async def main():
        nem, procs, _, tl, _ = _setup(seed, {})
        got = await nem.apply(F.Pause("leader"))
        assert got.concrete and len(got.node.indices) == 1
        assert "no leader" in tl.events("nemesis")[0].field("attrs")["note"]

    asyncio.run(main())


def test_follower_and_minority_and_all(seed):
    rng = random.Random(seed)
    for _ in range(50):
        (f,), _ = resolve_ref(F.NodeRef(role="follower"), {0: "leader", 1: "follower"}, 5, rng)
        assert f == 1
        (f,), _ = resolve_ref(F.NodeRef(role="follower"), {0: "leader"}, 5, rng)
        assert f != 0
        mino, _ = resolve_ref(F.NodeRef(role="minority"), {}, 5, rng)
        assert len(mino) == 2 and list(mino) == sorted(set(mino))
    assert resolve_ref(F.NodeRef(role="all"), {}, 3, rng) == ((0, 1, 2), None)
    with pytest.raises(InputError, match="n7 but the cluster has 5 nodes"):
        resolve_ref(F.NodeRef((6,)), {}, 5, rng)


def test_partition_shapes_reach_the_model(seed):
    async def main():
        nem, _, model, tl, _ = _setup(seed, {"n2": "leader"})
        mm = await nem.apply(F.Partition("majority-minority"))
        big, small = mm.groups
        assert len(big) == 3 and len(small) == 2
        a, b = NODES[big[0]], NODES[small[0]]
        assert model.rule(a, b).blocked and model.rule(b, a).blocked
        assert not model.rule(NODES[big[0]], NODES[big[1]]).blocked
        iso = await nem.apply(F.Partition("isolate", node="leader"))
        assert iso == F.Partition("isolate", node=1)
        assert model.rule("n2", "n1").blocked and not model.rule("n1", "n3").blocked
        await nem.apply(F.Partition("one-way", ((0,), (1, 2))))
        assert model.rule("n1", "n2").blocked and not model.rule("n2", "n1").blocked
        ring = await nem.apply(F.Partition("ring"))
        order = [NODES[i] for i in ring.groups[0]]
        assert not model.rule(order[0], order[1]).blocked and model.rule(order[0], order[2]).blocked
        await nem.apply(F.Heal())
        assert model.rules() == {}
        assert nem.outstanding() == []
        texts = [t for _, t in _faults_on(tl)]
        assert texts[1] == "partition isolate n2" and texts[-1] == "heal"

    asyncio.run(main())


def test_resolve_partition_shapes(rng):
    for shape, sizes in [
        ("majority-minority", [3, 2]),
        ("halves", [3, 2]),
        ("bridge", [2, 1, 2]),
        ("one-way", [2, 3]),
        ("ring", [5]),
    ]:
        p = resolve_partition(F.Partition(shape), 5, rng)
        assert [len(g) for g in p.groups] == sizes and p.concrete
        assert sorted(i for g in p.groups for i in g) == list(range(5))
    with pytest.raises(InputError):
        resolve_partition(F.Partition("halves", ((0,), (9,))), 5, rng)


def test_link_faults_set_rules_and_link_clear_undoes_them(seed):
    async def main():
        nem, _, model, _, _ = _setup(seed)
        await nem.apply(F.Partition("groups", ((0,), (1, 2, 3, 4))))
        await nem.apply(F.LinkDelay(0, "*", 0.05, 0.01))
        await nem.apply(F.LinkDrop("*", 1, 0.5))
        assert model.rule("n1", "n3") == LinkRule(blocked=True, delay=0.05, jitter=0.01)
        assert model.rule("n3", "n2").drop == 0.5 and model.rule("n2", "n2").drop == 0.0
        assert model.rule("n1", "n2") == LinkRule(blocked=True, delay=0.05, jitter=0.01, drop=0.5)
        await nem.apply(F.LinkReset(2, 3))
        assert model.rule("n3", "n4").reset
        await nem.apply(F.LinkClear(0, "*"))
        assert model.rule("n1", "n3") == LinkRule(blocked=True)  # the partition stays
        assert model.rule("n3", "n2").drop == 0.5
        undone = await nem.heal_all()
        assert undone == [F.Heal(), F.LinkClear("*", "*")]
        assert model.rules() == {}

    asyncio.run(main())


def test_process_faults_and_the_final_heal(seed):
    async def main():
        nem, procs, _, tl, _ = _setup(seed)
        await nem.apply(F.Pause((0, 1)))
        await nem.apply(F.Resume(0))
        await nem.apply(F.Stop(2))
        await nem.apply(F.Kill(1))  # killing a paused node: it needs a start, not a resume
        await nem.apply(F.ClockSkew(3, -1.5, 1.01))
        await nem.apply(F.Restart(4))
        await nem.apply(F.Wipe(4))
        await nem.apply(F.Wait())
        assert sorted(map(str, nem.outstanding())) == ["clock-skew n4 +0s", "start n2", "start n3"]
        await nem.heal_all()
        assert procs.state == ["running"] * 5 and procs.clock[3] == (0.0, 1.0)
        assert ("pause", 0) in procs.calls and ("pause", 1) in procs.calls
        # Wait leaves no event; every other fault does
        actions = _faults_on(tl)
        assert ("apply", "wait") not in actions and len(actions) == 7 + 3

    asyncio.run(main())


def test_kill_all_then_heal_starts_every_node(seed):
    async def main():
        nem, procs, _, _, _ = _setup(seed)
        await nem.apply(F.Pause(0))
        await nem.apply(F.KillAll())
        assert sorted(map(str, nem.outstanding())) == [f"start n{i}" for i in range(1, 6)]
        await nem.heal_all()
        assert procs.state == ["running"] * 5
        await nem.apply(F.KillAll())
        await nem.apply(F.RestartAll())
        assert nem.outstanding() == []

    asyncio.run(main())


def test_failures_are_recorded_then_raised(seed):
    async def main():
        nem, procs, _, tl, _ = _setup(seed, fail_on="kill")
        with pytest.raises(ClusterError, match="kill n2 failed"):
            await nem.apply(F.Kill(1))
        (ev,) = tl.events("nemesis")
        assert "kill n2 failed" in ev.field("attrs")["error"]
        assert nem.outstanding() == []  # a fault that failed is not outstanding

    asyncio.run(main())


def test_one_failing_node_does_not_stop_the_others(seed):
    async def main():
        nem, procs, _, _, _ = _setup(seed, fail_on="kill")
        with pytest.raises(ClusterError, match="kill n. failed"):
            await nem.apply(F.Kill((0, 1, 2)))
        assert sorted(procs.calls) == [("kill", 0), ("kill", 1), ("kill", 2)]

    asyncio.run(main())


def test_missing_controls_raise():
    async def main():
        nem = Nemesis(NODES)
        with pytest.raises(ClusterError, match="no process control"):
            await nem.apply(F.Kill(0))
        with pytest.raises(Exception, match="no network mediator"):
            await nem.apply(F.Heal())

    asyncio.run(main())


def test_replay_feeds_back_concrete_choices_whatever_the_seed_and_roles(seed):
    async def main():
        schedule = [
            F.Kill("leader"),
            F.Start("leader"),
            F.Partition("majority-minority"),
            F.LinkDrop("random", "*", 0.3),
            F.Pause("minority"),
        ]
        first, _, _, _, roles = _setup(seed, {"n4": "leader"})
        applied = []
        for i, f in enumerate(schedule):
            applied.append(await first.apply(f, key=i))
        roles["roles"] = {"n1": "leader"}
        replay, _, _, _, roles2 = _setup(seed + 99, {"n2": "leader"}, choices=first.choices())
        again = [await replay.apply(f, key=i) for i, f in enumerate(schedule)]
        assert again == applied
        assert all(f.concrete for f in again)

    asyncio.run(main())


def test_same_seed_same_resolutions(seed):
    async def run():
        nem, *_ = _setup(seed, {"n1": "leader"})
        return [
            await nem.apply(f)
            for f in [
                F.Partition("ring"),
                F.Kill("random"),
                F.Pause("follower"),
                F.Partition("bridge"),
            ]
        ]

    assert asyncio.run(run()) == asyncio.run(run())


def test_probe_timeout_counts_as_no_roles(seed):
    async def main():
        async def slow_probe():
            await asyncio.sleep(10)
            return {"n1": "leader"}

        procs = RecordingProcesses(5)
        nem = Nemesis(NODES, procs, probe=slow_probe, seed=seed, probe_timeout=0.05)
        assert await nem.roles() == {}
        got = await nem.apply(F.Kill("leader"))
        assert got.concrete

    asyncio.run(main())


# ---------------------------------------------------------------- property

_refs = st.one_of(
    st.sampled_from(["leader", "follower", "minority", "random", "*"]),
    st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True).map(tuple),
)
_faults = st.one_of(
    st.builds(
        lambda c, r: c(r),
        st.sampled_from([F.Kill, F.Stop, F.Start, F.Pause, F.Resume, F.Restart, F.Wipe]),
        _refs,
    ),
    st.sampled_from([F.Heal(), F.KillAll(), F.RestartAll(), F.Wait()]),
    st.builds(
        F.Partition, st.sampled_from(["majority-minority", "halves", "ring", "bridge", "one-way"])
    ),
    st.builds(lambda r: F.Partition("isolate", node=r), _refs),
    st.builds(
        F.LinkDelay, _refs, _refs, st.sampled_from([0.0, 0.01]), st.sampled_from([0.0, 0.005])
    ),
    st.builds(
        lambda c, a, b: c(a, b, 0.5),
        st.sampled_from([F.LinkDrop, F.LinkDuplicate, F.LinkReorder]),
        _refs,
        _refs,
    ),
    st.builds(lambda c, a, b: c(a, b), st.sampled_from([F.LinkReset, F.LinkClear]), _refs, _refs),
    st.builds(F.ClockSkew, _refs, st.sampled_from([0.0, 1.5, -2.0]), st.sampled_from([1.0, 1.01])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_faults, max_size=15), st.integers(0, 2**32 - 1))
def test_heal_all_restores_everything_after_any_fault_sequence(faults, seed):
    async def main():
        nem, procs, model, _, _ = _setup(seed, {"n2": "leader", "n1": "follower"})
        for fault in faults:
            concrete = await nem.apply(fault)
            assert concrete.concrete
        await nem.heal_all()
        assert procs.state == ["running"] * 5, procs.calls
        assert procs.clock == [(0.0, 1.0)] * 5
        assert model.rules() == {}
        assert nem.outstanding() == []

    asyncio.run(main())
