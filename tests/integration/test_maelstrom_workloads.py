"""Each Maelstrom workload end to end: the example nodes in targets/maelstrom/nodes under a
real StdioMediator, the workload clients of fuzzer/workload/maelstrom.py, the checkers.

A correct node on a clean network must get an ``ok`` verdict; the history must hold
what the clients did; recorded choices must replay."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

from fuzzer.errors import ConfigError
from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator
from fuzzer.workload.maelstrom import (
    WORKLOADS,
    BroadcastWorkload,
    WorkloadConfig,
    make_topology,
    make_workload,
)

NODES = Path(__file__).resolve().parents[2] / "targets" / "maelstrom" / "nodes"

# (workload, node script, args): a correct example node for each workload
CORRECT = [
    ("echo", "echo.py", ()),
    ("unique-ids", "unique_ids.py", ()),
    ("broadcast", "broadcast.py", ()),
    ("g-counter", "crdt.py", ("counter",)),
    ("g-counter", "kv_counter.py", ()),  # state in the mediator's seq-kv service
    ("pn-counter", "crdt.py", ("counter",)),
    ("pn-counter", "kv_counter.py", ()),
    ("g-set", "crdt.py", ("set",)),
    ("lin-kv", "pb_kv.py", ()),
]


def cluster(python: str, script: str, args=(), n: int = 3) -> dict[str, list[str]]:
    return {f"n{i}": [python, str(NODES / script), *args] for i in range(1, n + 1)}


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Generous node-side timeouts: on two shared, noisy cores a slow primary must not
# look like a partition to pb_kv (these runs have no faults on purpose).
ENV = {**os.environ, "PB_KV_TIMEOUT": "2.0"}


async def drive(workdir, nodes, seed, rng, name, config, **kw):
    model = NetworkModel(list(nodes), seed)
    net = StdioMediator(nodes, model, workdir, env=ENV)
    await net.start()
    try:
        wl = make_workload(name, net.client_request, list(nodes), rng, config, **kw)
        await wl.run()
        await wl.final()
        return wl, net
    finally:
        await net.close()


@pytest.mark.parametrize(("name", "script", "args"), CORRECT,
                         ids=[f"{w}-{s.removesuffix('.py')}" for w, s, _ in CORRECT])
def test_correct_node_gets_ok(tmp_path, python, seed, rng, name, script, args):
    nodes = cluster(python, script, args)
    config = WorkloadConfig(clients=4, rate=10, duration=1.2, timeout=3.0, final_timeout=5)
    wl, net = run(drive(tmp_path, nodes, seed, rng, name, config))

    history = wl.history()
    ops = history.operations()
    assert len(ops) >= 10, "the clients hardly ran"
    assert {op.status for op in ops} <= {"ok", "fail", "info"}
    assert all(op.status != "info" for op in ops), [op.describe() for op in ops if op.status == "info"]
    client_ops = [op for op in ops if wl.healed_at is None or op.invoke_time < wl.healed_at]
    assert len(wl.generated) == len(client_ops)  # every invoked op is a recorded choice
    assert [op.f for op in client_ops] == [g.f for g in wl.generated]
    assert all(e.expected for e in net.exits)
    assert not any(net.malformed.values())
    verdict = wl.check()
    assert verdict.ok, (verdict.name, verdict.explanation, dict(verdict.details))
    if wl.read_f is not None:  # a final read from every node, after heal
        finals = [op for op in ops if op.invoke_time >= wl.healed_at and op.status == "ok"]
        assert {wl.node_of(op) for op in finals} == set(nodes)
        assert wl.final_rounds >= 1


def test_history_records_what_the_nodes_answered(tmp_path, python, seed, rng):
    nodes = cluster(python, "pb_kv.py")
    config = WorkloadConfig(clients=3, rate=0, duration=0.6, keys=1, values=3)
    wl, _ = run(drive(tmp_path, nodes, seed, rng, "lin-kv", config))
    ops = wl.history().operations()
    fs = {op.f for op in ops}
    assert fs <= {"read", "write", "cas"} and "read" in fs
    for op in ops:
        assert op.key == 0
        if op.f == "cas":
            assert isinstance(op.value, tuple) and len(op.value) == 2
            if op.status == "fail":  # definite errors, recorded with their code
                assert op.output[0] == "error" and op.output[1] in (20, 22)
        if op.f == "read" and op.status == "ok":
            assert op.output is None or op.output in range(3)
    # client loop i is bound to node i % 3, and process numbers map back to it
    for op in ops:
        if op.process < 3:
            assert wl.node_of(op) == f"n{op.process + 1}"


def test_recorded_choices_replay_the_same_ops(tmp_path, python, seed, rng):
    nodes = cluster(python, "echo.py")
    config = WorkloadConfig(clients=2, rate=25, duration=0.5)
    first, _ = run(drive(tmp_path / "a", nodes, seed, random.Random(seed), "echo", config))
    choices = first.choices()
    assert len(choices) == len(first.generated) >= 4
    # a different seed, but the recorded choices win for the keys they have
    again, _ = run(drive(tmp_path / "b", nodes, seed, random.Random(seed + 1), "echo", config,
                         choices=choices))
    for op in again.generated:
        if op.choice_key in choices:
            assert op == choices[op.choice_key]
    # the same seed draws the same ops for the same (client, seq), whatever the interleaving
    fresh, _ = run(drive(tmp_path / "c", nodes, seed, random.Random(seed), "echo", config))
    for op in fresh.generated:
        if op.choice_key in choices:
            assert op == choices[op.choice_key]
    # rows round-trip through msgpack-friendly lists
    row_ops = [type(op).from_row(op.as_row()) for op in first.generated]
    assert row_ops == first.generated


def test_example_nodes_run_without_install_on_system_python(tmp_path, seed, rng):
    python3 = shutil.which("python3")
    if python3 is None:
        pytest.skip("no python3 on PATH")
    nodes = cluster(python3, "broadcast.py")
    config = WorkloadConfig(clients=3, rate=10, duration=0.5, topology="line")
    wl, _ = run(drive(tmp_path, nodes, seed, rng, "broadcast", config))
    assert wl.topology == {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]}
    assert wl.check().ok


def test_bad_workload_config_names_the_key(python):
    with pytest.raises(ConfigError, match="workload.clients"):
        WorkloadConfig(clients=0)
    with pytest.raises(ConfigError, match="workload.topology"):
        WorkloadConfig(topology="star")
    with pytest.raises(ConfigError, match="workload.name.*valid"):
        make_workload("kafka", None, ["n1"], random.Random(0))
    with pytest.raises(ConfigError, match="workload.mix.append"):
        make_workload("lin-kv", None, ["n1"], random.Random(0), WorkloadConfig(mix={"append": 1}))
    assert set(WORKLOADS) == {w for w, _, _ in CORRECT}
    assert make_topology(["a", "b", "c", "d"], "tree") == {
        "a": ["b", "c"], "b": ["a", "d"], "c": ["a"], "d": ["b"]}
    assert BroadcastWorkload.read_f == "read" and sys.version_info >= (3, 12)
