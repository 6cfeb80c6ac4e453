"""Real node processes report over real gRPC to a real tracker; the HB graph comes out right."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from fuzzer.tracker.coverage import HBCoverage
from fuzzer.tracker.server import TrackerServer
from fuzzer.tracker.timeline import Timeline, Tracker
from instrumentation import protocol as p

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
NODE = Path(__file__).with_name("tracker_ring_node.py")


def node_env(tracker: str | None, node: str, execution: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
    env["PYTHONPATH"] = str(ROOT)
    if tracker is not None:
        env.update({p.ENV_TRACKER: tracker, p.ENV_NODE: node, p.ENV_EXECUTION: execution})
    return env


def wait_for(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def chain_clock(tl: Timeline, hops: int, n: int, h: int) -> dict[str, int]:
    """Expected clock of RECV(h): per node, the position of its latest token event up to hop h."""
    out = {}
    for j in range(n):
        name = f"n{j + 1}"
        last = 0
        for pos, e in enumerate(tl.events(name), start=1):
            if e.kind in (p.SEND, p.RECV) and e.fields[2] <= h:
                last = pos
        if last:
            out[name] = last
    return out


def test_three_nodes_ring_hb_graph(procs, python, ports):
    n, hops = 3, 12
    cov = HBCoverage()
    tracker = Tracker(on_timeline=cov.attach)
    ring_ports = ports(n)
    with TrackerServer(tracker) as srv:
        nodes = [
            procs(
                [
                    python,
                    str(NODE),
                    "--index",
                    str(i),
                    "--ports",
                    ",".join(map(str, ring_ports)),
                    "--hops",
                    str(hops),
                ],
                env=node_env(srv.address, f"n{i + 1}", "ring-1"),
            )
            for i in range(n)
        ]
        for proc in nodes:
            assert proc.wait(timeout=60) == 0
        tl = tracker.timeline("ring-1")
        assert wait_for(
            lambda: all(
                any(e.kind == p.STATE and e.fields[0] == "done" for e in tl.events(f"n{i + 1}"))
                for i in range(n)
            )
        )
        assert srv.stats.rejected == 0

    assert sorted(tl.nodes()) == ["n1", "n2", "n3"]
    for i in range(n):
        evs = tl.events(f"n{i + 1}")
        assert [e.seq for e in evs] == sorted(e.seq for e in evs)
        assert evs[0].kind == p.STATE and evs[0].fields == (
            "role",
            "leader" if i == 0 else "follower",
        )
    edges = tl.edges()
    assert len(edges) == hops
    by_hop = {s.fields[2]: (s, r) for s, r in edges}
    assert sorted(by_hop) == list(range(hops))
    for h, (s, r) in by_hop.items():
        assert (s.node, r.node) == (f"n{h % n + 1}", f"n{(h + 1) % n + 1}")
        assert s.kind == p.SEND and r.kind == p.RECV and s.fields[1] == r.fields[1] == "token"
        assert r.fields[3] == s.lamport  # the piggybacked stamp is the SEND's Lamport time
        assert r.lamport > s.lamport
        assert tl.vector_clock(r) == chain_clock(tl, hops, n, h)
        assert tl.happens_before(s, r) and not tl.happens_before(r, s)
    first_send, last_recv = by_hop[0][0], by_hop[hops - 1][1]
    assert tl.happens_before(first_send, last_recv)
    assert len(tl.causal_past(last_recv)) == sum(tl.vector_clock(last_recv).values()) - 1
    # the sender of the last hop marks itself done after sending: concurrent with the last RECV
    last_sender = by_hop[hops - 1][0].node
    done = next(e for e in tl.events(last_sender) if e.kind == p.STATE and e.fields[0] == "done")
    assert tl.concurrent(done, last_recv)
    w = cov.close_window()
    assert w.signature_text == "roles=follower:2,leader:1|recv=token"
    assert w.new_hb > 0 and w.events == len(tl)


def test_sigkilled_node_delivered_its_periodically_flushed_events(procs, python):
    tracker = Tracker()
    with TrackerServer(tracker) as srv:
        proc = procs(
            [python, str(NODE), "--mode", "hang", "--events", "300"],
            env=node_env(srv.address, "victim", "kill-1"),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "hung"
        tl = tracker.timeline("kill-1")

        def work() -> list:
            return [e for e in tl.events("victim") if e.kind == p.LOCAL and e.fields[0] == "work"]

        # no exit, no explicit flush: only the reporter's periodic flush can deliver these
        assert wait_for(lambda: len(work()) == 300)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        time.sleep(0.2)
        got = work()
        assert [e.fields[1]["i"] for e in got] == list(range(300))
        assert not [e for e in tl.events("victim") if e.kind == p.EXIT]
        assert srv.stats.rejected == 0
        # the tracker still serves others after the broken stream
        with grpc.insecure_channel(srv.address) as ch:
            batch = p.encode_batch("n9", "kill-1", 0, 0, [[1, 1, 0, 0, p.LOCAL, "ok", {}]])
            ack = p.decode_ack(ch.stream_unary(p.METHOD)(iter([batch]), timeout=30))
        assert ack["accepted"] == 1 and len(tl.events("n9")) == 1


def test_node_without_tracker_runs_normally(procs, python):
    proc = procs(
        [python, str(NODE), "--mode", "solo"],
        env=node_env(None, "", ""),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["stamps", "1", "3", "5", "False", "False"]
