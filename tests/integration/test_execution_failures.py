"""Executions that go wrong: a node that crashes on its own becomes a crash finding
(kept apart from liveness), and a node that cannot start fails the execution
with a clear error; either way nothing is left running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.errors import ClusterError, UsageError
from fuzzer.execution import Execution
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.faults import Schedule, Step, parse_fault

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "targets" / "maelstrom" / "target.toml"
NODES = ROOT / "targets" / "maelstrom" / "nodes"

CRASHY = f'''
import os, sys, threading
sys.path.insert(0, {str(NODES)!r})
from maelstrom_node import Node

node = Node()

@node.on("echo")
def echo(msg):
    node.reply(msg, {{"type": "echo_ok", "echo": msg["body"]["echo"]}})

def crash_later():
    if node.node_id == "n2":
        os._exit(3)  # an assertion failure, a panic: nobody asked it to stop

@node.on("init")
def init(msg):
    node.node_id = msg["body"]["node_id"]
    node.reply(msg, {{"type": "init_ok"}})
    threading.Timer(0.6, crash_later).start()

node.run()
'''


def test_node_crash_is_a_safety_finding(tmp_path, seed):
    script = tmp_path / "crashy.py"
    script.write_text(CRASHY)
    cfg = load_config(TARGET, [f"target.node={script}", "workload.name=echo",
                               "schedule.quiescence=300ms"])
    sched = Schedule((Step(parse_fault("wait"), 1.0),), seed)
    res = asyncio.run(Execution(cfg, tmp_path / "x", seed).run(sched))
    crashes = [f for f in res.findings if f.verdict.oracle == "crash"]
    assert len(crashes) == 1, [f.key for f in res.findings]
    assert crashes[0].signature == ("crash", "unexpected-exit", ())
    assert crashes[0].verdict.details["node"] == "n2" and crashes[0] in res.safety
    assert res.stats.unexpected_exits == 1
    assert not leftover_processes(res.execution_id)


def test_node_that_cannot_start_fails_cleanly(tmp_path, seed):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit(2)\n")
    cfg = load_config(TARGET, [f"target.node={script}", "network.init_timeout=3s"])
    ex = Execution(cfg, tmp_path / "x", seed)
    with pytest.raises(ClusterError, match="n[123]"):
        asyncio.run(ex.run(Schedule((Step(parse_fault("wait"), 0.5),), seed)))
    assert not leftover_processes(ex.execution_id)
    assert ex.backend is None


def test_execution_dir_must_be_fresh(tmp_path, seed):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "data").mkdir()
    ex = Execution(load_config(TARGET), tmp_path / "x", seed)
    with pytest.raises(UsageError, match="not empty"):
        asyncio.run(ex.run(Schedule((), seed)))
    assert ex.backend is None
