"""Invariants evaluated online against real node processes reporting over gRPC.

Three instrumented processes report a split-brain election (two leaders in
term 1, with the vote messages between them) and a state machine conflict to
a real TrackerServer; an InvariantSet attached to the execution's Timeline
flags both as the events arrive, with the votes in the causal past, and an
offline re-run over the stored events agrees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgpack

from fuzzer.checkers.invariants import InvariantSet, check_trace
from fuzzer.tracker.server import TrackerServer
from fuzzer.tracker.timeline import Timeline, Tracker
from instrumentation import protocol as p

ROOT = str(Path(__file__).resolve().parents[2])
NODE = """
import json, sys
import instrumentation as hb
for name, *args in json.loads(sys.argv[1]):
    getattr(hb, name)(*args)
sys.exit(0 if hb.shutdown(flush_timeout=20.0) else 3)
"""
SPECS = [
    {"name": "one-leader-per-term"},
    {"name": "state-machine-safety"},
    {"name": "monotonic", "key": "commit_index"},
]
# n2 votes for both n1 and n3 in term 1 (the bug); both apply something at index 1.
SCRIPTS = {
    "n2": [["state", "term", 1], ["send", "n1", "vote", 1], ["send", "n3", "vote", 2]],
    "n1": [
        ["state", "term", 1],
        ["recv", "n2", "vote", 1, 2],
        ["state", "role", "leader"],
        ["apply", 1, 1, "put x 1"],
        ["state", "commit_index", 1],
    ],
    "n3": [
        ["state", "term", 1],
        ["recv", "n2", "vote", 2, 3],
        ["state", "role", "leader"],
        ["apply", 1, 1, "put x 2"],
        ["state", "commit_index", 1],
    ],
}
N_EVENTS = sum(len(s) for s in SCRIPTS.values())


def summary(verdicts):
    return sorted((v.status, v.name, tuple((e.node, e.seq) for e in v.offending)) for v in verdicts)


def test_online_invariants_over_grpc(procs, python):
    sets: dict[str, InvariantSet] = {}

    def on_timeline(tl: Timeline) -> None:
        iset = InvariantSet.from_config(SPECS)
        iset.attach(tl)
        sets[tl.execution] = iset

    with TrackerServer(Tracker(on_timeline=on_timeline)) as server:
        addr = server.address
        env = dict(os.environ, PYTHONPATH=ROOT, HBFUZZ_TRACKER=addr, HBFUZZ_EXECUTION="e1")
        env.pop(p.ENV_COVERAGE, None)
        running = [
            procs(
                [python, "-c", NODE, json.dumps(script)],
                env=dict(env, HBFUZZ_NODE=node),
                stdout=subprocess.DEVNULL,
            )
            for node, script in SCRIPTS.items()
        ]
        for proc in running:
            assert proc.wait(timeout=60) == 0  # every batch was acked by the tracker
        tl = server.tracker.timeline("e1")
        deadline = time.monotonic() + 30
        while tl.count < N_EVENTS and time.monotonic() < deadline:
            time.sleep(0.02)
        # EXIT events may follow; the scripted ones must all be there
        kinds = [e.kind for e in tl.events()]
        assert sum(k != p.EXIT and k != p.COVERAGE for k in kinds) == N_EVENTS, kinds

    iset = sets["e1"]
    vs = iset.violations
    assert sorted(v.name for v in vs) == ["one-leader-per-term", "state-machine-safety"]
    two = next(v for v in vs if v.name == "one-leader-per-term")
    assert [e.node for e in two.offending] == ["n1", "n3"]
    votes = [e for e in two.context if e.kind == p.SEND and e.field("msg_type") == "vote"]
    assert sorted(e.field("peer") for e in votes) == ["n1", "n3"]  # why: n2 voted twice
    assert all(e.node == "n2" for e in votes)
    msgpack.packb([v.to_dict() for v in iset.verdicts()])

    # offline over the stored trace (a fresh Timeline, node by node) agrees
    offline = check_trace(SPECS, tl.events())
    assert summary(offline) == summary(iset.verdicts())
    assert sys.executable  # the node processes ran under the same venv python
