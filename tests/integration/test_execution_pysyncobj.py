"""A short PySyncObj execution end to end: Supervisor + TCP mediator with the
pysyncobj codec + instrumented nodes reporting over gRPC + kv workload +
nemesis (leader kill, leader isolation) + invariants + linearizability.

A correct release under these faults yields no finding, while COVERAGE
(branch coverage of the library), SEND/RECV with Raft message types, STATE
and APPLY events all reach the timeline; nothing is left running.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.execution import Execution
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.faults import Schedule, Step, parse_fault
from fuzzer.tracker.coverage import HBCoverage
from instrumentation import protocol

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import envs  # noqa: E402

pytestmark = pytest.mark.timeout(240)
TARGET = ROOT / "targets" / "pysyncobj" / "target.toml"


def test_pysyncobj_leader_kill_and_partition(tmp_path, seed):
    envs.ensure(envs.DEFAULT_VERSION)  # built once per machine (ignored directory)
    cfg = load_config(TARGET, ["schedule.warmup=1.5s", "schedule.quiescence=2s"])
    cov = HBCoverage()
    steps = ["kill leader", "start n1", "partition isolate leader", "heal", "wait"]
    sched = Schedule(tuple(Step(parse_fault(s), 1.0) for s in steps), seed)
    res = asyncio.run(Execution(cfg, tmp_path / "x", seed, coverage=cov).run(sched))

    assert not leftover_processes(res.execution_id)
    assert res.findings == (), [f.verdict.line() for f in res.findings]
    names = {v.name for v in res.verdicts if v.ok}
    assert {"one-leader-per-term", "state-machine-safety", "hang"} <= names
    assert any(v.oracle == "linearizability" and v.ok for v in res.verdicts)
    kinds = {}
    for e in res.trace:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    assert kinds.get(protocol.COVERAGE, 0) > 0 and res.new_edges > 0 and cov.code_edges() > 0
    assert kinds.get(protocol.STATE, 0) > 0 and kinds.get(protocol.APPLY, 0) > 0
    assert res.stats.hb_edges > 0
    types = {e.fields[1] for e in res.trace if e.kind == protocol.SEND}
    assert "append_entries" in types
    # roles were resolved through the role probe into concrete nodes
    assert res.schedule.steps[0].fault.to_text().startswith("kill n")
    assert res.stats.ops_ok > 0 and len(res.windows) == len(steps)
    # a killed node's incarnation ends with an EXIT event on its timeline
    killed = res.schedule.steps[0].fault.node.indices[0]
    name = cfg.nodes[killed]
    assert any(e.kind == protocol.EXIT and e.node == name for e in res.trace)
