"""The Maelstrom example nodes under faults: what survives and what the checkers catch.

- the gossip broadcast node with retries loses nothing to message loss and a partition
  once healed;
- broadcast, the CRDT nodes and unique-ids survive a node's crash-restart;
- the same broadcast node with retries disabled (BROADCAST_NO_RETRY=1) under message loss
  loses acknowledged messages, and the broadcast checker says so;
- the primary-backup lin-kv node serves stale reads on the isolated side of a
  partition: a linearizability violation within a couple of seconds (the demo finding).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from fuzzer.checkers.workloads import check_workload
from fuzzer.network.model import LinkRule, NetworkModel, isolate
from fuzzer.network.stdio import StdioMediator
from fuzzer.workload.maelstrom import WorkloadConfig, make_workload

NODES = Path(__file__).resolve().parents[2] / "targets" / "maelstrom" / "nodes"


def cluster(python: str, script: str, n: int = 3, args=()) -> dict[str, list[str]]:
    return {f"n{i}": [python, str(NODES / script), *args] for i in range(1, n + 1)}


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def execute(workdir, nodes, seed, name, config, nemesis, env=None):
    """Start the cluster, run the workload with ``nemesis(model, net)`` alongside, heal
    every link, run the final phase; the mediator is closed whatever happens."""
    model = NetworkModel(list(nodes), seed)
    net = StdioMediator(nodes, model, workdir, env=env)
    await net.start()
    try:
        wl = make_workload(name, net.client_request, list(nodes), random.Random(seed), config)
        await wl.setup()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(wl.run())
            tg.create_task(nemesis(model, net))
        model.clear()
        await wl.final()
        dropped = sum(st.dropped for st in net.stats.values())
        return wl, dropped
    finally:
        await net.close()
        assert all(not net.running(n) for n in nodes)


def test_broadcast_with_retries_survives_loss_and_a_partition(tmp_path, python, seed, rng):
    nodes = cluster(python, "broadcast.py")
    alone = rng.choice(list(nodes))

    async def nemesis(model, net):
        for a, b in model.links():  # lossy all along, and a partition on top
            model.set_rule(a, b, LinkRule(drop=0.2))
        await asyncio.sleep(0.4)
        model.partition(isolate(model.nodes, alone))
        await asyncio.sleep(1.2)
        model.heal()

    config = WorkloadConfig(clients=3, rate=12, duration=1.8, topology=rng.choice(["total", "line"]))
    wl, dropped = run(execute(tmp_path, nodes, seed, "broadcast", config, nemesis))
    assert dropped > 0, "the partition dropped no gossip: the test proved nothing"
    verdict = run(wl.check_async())
    assert verdict.ok, (verdict.name, verdict.explanation, dict(verdict.details))
    assert verdict.details["acknowledged"] >= 10
    assert verdict.details["final_reads"] == 3


@pytest.mark.parametrize(("name", "script", "args"), [
    ("broadcast", "broadcast.py", ()),
    ("g-set", "crdt.py", ("set",)),
    ("pn-counter", "crdt.py", ("counter",)),
    ("unique-ids", "unique_ids.py", ()),
])
def test_example_nodes_survive_a_crash_restart(tmp_path, python, seed, rng, name, script, args):
    """Kill a node mid-run (its memory is gone), restart it: nothing acknowledged is
    lost, no id repeats, the counter is exact."""
    nodes = cluster(python, script, args=args)
    victim = rng.choice(list(nodes))
    restarted = []

    async def crash(model, net):
        await asyncio.sleep(0.5)
        await net.kill_node(victim)
        await asyncio.sleep(0.3)
        await net.start_node(victim)
        restarted.append(net.inits(victim))

    config = WorkloadConfig(clients=3, rate=15, duration=1.5, final_timeout=5)
    wl, _ = run(execute(tmp_path, nodes, seed, name, config, crash))
    assert restarted == [2]
    ops = wl.history().operations()
    assert sum(op.status == "ok" for op in ops) >= 10
    verdict = wl.check()
    assert verdict.ok, (verdict.name, verdict.explanation, dict(verdict.details))


def test_broadcast_without_retries_loses_messages_under_loss(tmp_path, python, seed):
    nodes = cluster(python, "broadcast.py")

    async def lossy(model, net):
        for a, b in model.links():
            model.set_rule(a, b, LinkRule(drop=0.5))
        await asyncio.sleep(0)

    env = {**os.environ, "BROADCAST_NO_RETRY": "1"}
    config = WorkloadConfig(clients=3, rate=20, duration=1.0, mix={"broadcast": 1.0},
                            final_timeout=1.0)
    wl, dropped = run(execute(tmp_path, nodes, seed, "broadcast", config, lossy, env=env))
    assert dropped > 0
    verdict = check_workload("broadcast", wl.history(), **wl.check_params())
    assert verdict.violated and verdict.name == "lost-message", verdict.explanation
    assert verdict.details["lost_count"] > 0 and verdict.offending


def test_primary_backup_kv_is_not_linearizable_under_a_partition(tmp_path, python, rng):
    """The demo finding. Three short tries with seeds from ``rng``; at least one must
    find the violation (observed: 44 of 48 tries); the rate is printed."""
    nodes = cluster(python, "pb_kv.py")
    env = {**os.environ, "PB_KV_TIMEOUT": "0.25"}
    config = WorkloadConfig(clients=6, rate=10, duration=2.0, keys=2, values=50)
    found = 0
    tries = 3
    for attempt in range(tries):
        seed = rng.getrandbits(32)
        alone = rng.choice(list(nodes))  # the primary n1 or a backup

        async def nemesis(model, net, alone=alone):
            await asyncio.sleep(0.3)
            model.partition(isolate(model.nodes, alone))
            await asyncio.sleep(1.4)
            model.heal()

        wl, dropped = run(execute(tmp_path / str(attempt), nodes, seed, "lin-kv", config, nemesis,
                                  env=env))
        assert dropped > 0
        verdict = check_workload("lin-kv", wl.history(), timeout=20.0)
        print(f"try {attempt}: seed {seed}, isolated {alone}: {verdict.status} "
              f"({verdict.explanation})")
        if verdict.violated:
            assert verdict.name == "not-linearizable" and verdict.offending
            found += 1
    print(f"pb_kv partition finding rate: {found}/{tries}")
    assert found >= 1, "no linearizability violation in any try"

