"""A short etcd execution end to end (black-box Go binary): Supervisor + per-destination
fronts (``routing = "front"``) + TCP mediator reporting every peer chunk as SEND/RECV,
STATE events from the members' logs, kv workload through the v3 JSON gateway,
leader kill and isolation, heal: no finding, an HB graph from the mediator alone,
nothing left running."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.execution import Execution
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.faults import Schedule, Step, parse_fault
from instrumentation import protocol

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("etcd") is None,
                       reason="etcd is not installed (run targets/etcd/setup)"),
]
TARGET = ROOT / "targets" / "etcd" / "target.toml"


def test_etcd_leader_kill_and_partition(tmp_path, seed):
    cfg = load_config(TARGET, ["schedule.quiescence=2s", "schedule.warmup=1.5s"])
    steps = ["kill leader", "partition isolate leader", "heal", "start n1"]
    sched = Schedule(tuple(Step(parse_fault(s), 1.0) for s in steps), seed)
    res = asyncio.run(Execution(cfg, tmp_path / "x", seed).run(sched))

    assert not leftover_processes(res.execution_id)
    assert res.findings == (), [f.verdict.line() for f in res.findings]
    assert any(v.oracle == "linearizability" and v.ok for v in res.verdicts)
    kinds = {e.kind for e in res.trace}
    assert {protocol.SEND, protocol.RECV, protocol.STATE, protocol.FAULT} <= kinds
    assert protocol.COVERAGE not in kinds  # a Go binary: no code coverage
    assert res.stats.hb_edges > 100 and res.stats.ops_ok > 0
    roles = {e.fields[1] for e in res.trace if e.kind == protocol.STATE and e.fields[0] == "role"}
    assert "leader" in roles
