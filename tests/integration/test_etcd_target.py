"""etcd as a black-box target: real etcd 3.4 processes on loopback.

Covers the setup script, the JSON-gateway client (put/range/txn cas), the
status-based role probe, leader failover after SIGKILL, STATE events
recovered from the logs, and a concurrent register workload whose history is
linearizable, both on direct loopback ports and through the real TCP
mediator (with the per-destination front, under a leader partition) with the
real Supervisor. Skipped, visibly, only if etcd cannot be installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.checkers.invariant_builtins import Monotonic, OneLeaderPerTerm
from fuzzer.checkers.invariants import InvariantSet
from fuzzer.checkers.linearizability import check
from fuzzer.cluster import ClusterSpec, Readiness, Supervisor
from fuzzer.network.model import NetworkModel
from fuzzer.network.tcp import TcpMediator
from fuzzer.tracker.timeline import Timeline
from fuzzer.workload.history import HistoryRecorder
from instrumentation.protocol import STATE
from targets.etcd.client import EtcdClient, members, role_probe, status
from targets.etcd.demux import PeerDemux
from targets.etcd.logstate import LogStateWatcher
from targets.etcd.peers import EtcdLayout
from targets.etcd.workload import RegisterWorkload, run_register_clients

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "targets" / "etcd" / "setup"
LAUNCH = ROOT / "targets" / "etcd" / "launch.py"
NAMES = ["n1", "n2", "n3"]
ELECTION_BOUND = 30.0  # seconds to wait for a leader (bound, not an assertion on speed)


def _setup() -> tuple[int, str]:
    try:
        p = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return 124, "targets/etcd/setup timed out after 600s"
    return p.returncode, p.stderr.strip()


@pytest.fixture(scope="module")
def etcd() -> str:
    """The etcd binary, installed by the target's setup step if needed."""
    if shutil.which("etcd") is None:
        rc, err = _setup()
        if rc != 0 or shutil.which("etcd") is None:
            reason = err.splitlines()[-1] if err else f"exit code {rc}"
            pytest.skip(f"etcd cannot be installed on this machine: {reason}")
    return shutil.which("etcd")


def run(coro, timeout: float = 120.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


async def wait_one_leader(urls: dict[str, str], exclude: set[str] = frozenset()) -> str:
    """Poll the role probe until exactly one leader and every other live member a follower."""
    live = {n: u for n, u in urls.items() if n not in exclude}
    async with asyncio.timeout(ELECTION_BOUND):
        while True:
            roles = await role_probe(live, timeout=1.0)
            leaders = [n for n, r in roles.items() if r == "leader"]
            if len(leaders) == 1 and all(r == "follower" for n, r in roles.items()
                                         if n != leaders[0]):
                return leaders[0]
            await asyncio.sleep(0.05)


def start_direct(procs, layout: EtcdLayout, workdir: Path, etcd: str) -> dict:
    started = {}
    for n in layout.names():
        log = open(workdir / f"{n}.log", "wb")
        started[n] = procs(layout.argv(n, workdir / n, etcd), stdout=log,
                           stderr=subprocess.STDOUT)
        log.close()
    return started


def test_setup_script_finds_etcd_and_leaves_no_service_running(etcd: str) -> None:
    rc, err = _setup()
    assert rc == 0, err
    assert "found" in err and "etcd Version" in err, err
    # No packaged service instance: every etcd running is one of ours (own data dir).
    ps = subprocess.run(["ps", "-C", "etcd", "-o", "pid=,args="], capture_output=True,
                        text=True).stdout
    service = [line for line in ps.splitlines()
               if "--data-dir" not in line or "/var/lib/etcd" in line]
    assert not service, service


def test_direct_cluster_client_roles_failover_and_log_state(etcd, procs, ports, tmp_path):
    layout = EtcdLayout.on_ports(NAMES, ports(6), token="hbfuzz-test")
    nodes = start_direct(procs, layout, tmp_path, etcd)
    urls = layout.client_urls()
    watcher = LogStateWatcher({n: tmp_path / f"{n}.log" for n in NAMES},
                              aliases=layout.member_ids())

    async def scenario():
        leader = await wait_one_leader(urls)
        # The member list agrees with the ids computed before the start.
        listed = {m.id: m.name for m in await members(urls["n1"])}
        assert listed == layout.member_ids()
        st = await status(urls[leader])
        assert st.is_leader and st.raft_term >= 2 and layout.member_ids()[st.leader] == leader
        async with EtcdClient(urls["n2"]) as c, EtcdClient(urls["n3"]) as d:
            assert (await c.get("k")).value is None
            r = await c.put("k", "1")
            assert r.type == "ok" and r.value == "1"
            assert (await d.get("k")).value == "1"  # linearizable read on another member
            r = await d.cas("k", "1", "2")
            assert r.type == "ok" and r.value == ["1", "2"]
            r = await c.cas("k", "1", "3")
            assert r.type == "fail" and "'2'" in r.error
            assert (await c.cas("fresh", None, "x")).type == "ok"
            assert (await c.cas("fresh", None, "y")).type == "fail"
            assert (await d.get("fresh")).value == "x"
        roles = await role_probe(urls)
        assert list(roles.values()).count("leader") == 1
        term_before = st.raft_term
        # SIGKILL the leader's process group: a new leader among the others.
        os.killpg(nodes[leader].pid, signal.SIGKILL)
        nodes[leader].wait(timeout=10)
        new_leader = await wait_one_leader(urls, exclude={leader})
        assert new_leader != leader
        assert (await role_probe(urls))[leader] == "unknown"
        st2 = await status(urls[new_leader])
        assert st2.raft_term > term_before
        async with EtcdClient(urls[new_leader]) as c:
            assert (await c.get("k")).value == "2"  # committed data survived
        return leader, new_leader, term_before, st2.raft_term

    leader, new_leader, term1, term2 = run(scenario())
    events = watcher.poll()
    watcher.close()
    assert events and all(e.kind == STATE for e in events)
    by_node = {n: [(e.field("key"), e.field("value")) for e in events if e.node == n]
               for n in NAMES}
    assert ("role", "leader") in by_node[leader] and ("term", term1) in by_node[leader]
    assert ("role", "leader") in by_node[new_leader] and ("term", term2) in by_node[new_leader]
    survivors = [n for n in NAMES if n != leader]
    for n in survivors:
        assert ("leader", leader) in by_node[n]
        assert watcher.state(n)["leader"] == new_leader
        assert watcher.state(n)["term"] == term2


def _launch_spec(fronts: str) -> ClusterSpec:
    """The cluster spec a target.toml would produce (command via launch.py)."""
    return ClusterSpec(
        nodes=3,
        command=(sys.executable, str(LAUNCH), "--name", "{name}", "--data-dir", "{data_dir}",
                 "--client-port", "{ports[0]}", "--peer-port", "{ports[1]}",
                 "--cluster", "{cluster}", "--fronts", "{fronts}", "--token", "hbfuzz-med"),
        vars={"fronts": fronts},
        ports_per_node=2,
        peer_port_index=1,
        readiness=Readiness(kind="port", port_index=0, timeout=20.0),
        stop_grace=2.0,
        source="targets/etcd (test)",
    )


def test_mediated_cluster_workload_is_linearizable_across_a_leader_partition(
    etcd, tmp_path, rng
):
    """Supervisor + per-destination fronts + TcpMediator: every peer byte crosses
    the mediator on its directed link; a 3-client workload with the leader
    isolated for a while still gives a linearizable history."""

    async def scenario():
        timeline = Timeline("etcd-test")
        invariants = InvariantSet([OneLeaderPerTerm(), Monotonic("term", reset_on_exit=False)])
        invariants.attach(timeline)
        model = NetworkModel(NAMES, rng.randrange(2**32))
        box: dict[str, object] = {}

        def owners() -> dict[str, int]:
            sup = box.get("sup")
            return {n: sup.pid(n) for n in NAMES} if sup else {}

        def route(src, dst):
            if src is None:  # not a node (an operator's tool): straight to the member
                return box["peer"][dst]
            return "127.0.0.1", box["med"].proxy_port(src, dst)

        # Fronts first (their ports go into the spec), then the supervisor
        # (its ports are leased at construction), then the mediator towards
        # the members' real peer ports; nothing starts before start_all().
        async with PeerDemux(NAMES, route, owners) as demux:
            fronts = ",".join(f"{n}={p}" for n, p in zip(NAMES, demux.fronts(), strict=True))
            sup = box["sup"] = Supervisor(_launch_spec(fronts), tmp_path / "run")
            try:
                box["peer"] = {n: ("127.0.0.1", sup.ports(n)[1]) for n in NAMES}
                urls = {n: f"http://127.0.0.1:{sup.ports(n)[0]}" for n in NAMES}
                async with TcpMediator(model, box["peer"], sink=timeline.add) as med:
                    box["med"] = med
                    await sup.start_all()
                    watcher = LogStateWatcher({n: sup.log_path(n) for n in NAMES},
                                              sink=timeline.add, book=med.book)
                    leader = await wait_one_leader(urls)
                    # member list is a linearizable read: only once there is a leader
                    watcher.set_aliases({m.id: m.name for m in await members(urls["n1"])})
                    recorder = HistoryRecorder()
                    workload = RegisterWorkload(keys=("a", "b"), timeout=1.0)

                    async def nemesis() -> str:
                        await asyncio.sleep(1.5)
                        others = {n for n in NAMES if n != leader}
                        model.partition([{leader}, others])
                        new = await wait_one_leader({n: urls[n] for n in others})
                        await asyncio.sleep(0.5)
                        model.heal()
                        return new

                    async with asyncio.TaskGroup() as tg:
                        load = tg.create_task(run_register_clients(
                            list(urls.values()), recorder, rng, clients=3, duration=5.0,
                            workload=workload))
                        new_leader = tg.create_task(nemesis())
                    await wait_one_leader(urls)
                    # A restart keeps the data dir: the member rejoins through the
                    # fronts under its new pid (flags of bootstrap are ignored then).
                    current = await wait_one_leader(urls)
                    await sup.restart(current)
                    await wait_one_leader(urls)
                    async with EtcdClient(urls[current]) as c:
                        assert (await c.get("a")).type == "ok"
                    watcher.poll()
                    watcher.close()
                    return (leader, new_leader.result(), load.result(), recorder.history(),
                            dict(demux.stats), {k: v.messages for k, v in med.stats.items()},
                            timeline, invariants)
            finally:
                await sup.close()

    leader, new_leader, stats, history, fronts, links, timeline, invariants = run(
        scenario(), 150.0)
    assert new_leader != leader
    # Every node-to-node connection was attributed to its sender.
    assert fronts and all(src is not None for src, _ in fronts), fronts
    assert all(links[(a, b)] > 0 for a in NAMES for b in NAMES if a != b), links
    assert timeline.edges()  # SEND->RECV edges from the mediator
    states = [e for e in timeline.events() if e.kind == STATE]
    assert any(e.node == new_leader and e.fields == ("role", "leader") for e in states)
    # The oracles' invariants over the log-derived STATE events: a correct etcd.
    assert invariants.events >= len(states)
    assert not invariants.violations, invariants.violations
    assert all(v.status == "ok" for v in invariants.verdicts()), invariants.verdicts()
    ops = history.operations()
    done = {(op.f, op.status) for op in ops}
    assert {("read", "ok"), ("write", "ok"), ("cas", "ok")} <= done, done
    assert stats.ops == len(ops) and stats.ok > 0
    result = check(history, "cas-register", timeout=60.0)
    assert result.verdict == "linearizable", result.describe()


def test_client_outcomes_when_members_are_dead_or_paused(etcd, procs, ports, tmp_path):
    """Connection refused before sending: fail. A paused member: a write is
    indeterminate (info), a read fails (reads have no effect)."""
    layout = EtcdLayout.on_ports(["solo"], ports(2), token="hbfuzz-solo")
    (node,) = start_direct(procs, layout, tmp_path, etcd).values()
    url = layout.client_urls()["solo"]
    (dead_port,) = ports(1)

    async def scenario():
        await wait_one_leader({"solo": url})
        async with EtcdClient(f"http://127.0.0.1:{dead_port}", timeout=1.0) as c:
            r = await c.put("k", "v")
            assert r.type == "fail" and "Connection" in r.error, r
        async with EtcdClient(url, timeout=0.5) as c:
            assert (await c.put("k", "v")).type == "ok"
            os.killpg(node.pid, signal.SIGSTOP)
            try:
                r = await c.put("k", "w")
                assert r.type == "info" and "timed out" in r.error, r
                assert (await c.cas("k", "v", "x")).type == "info"
                assert (await c.get("k")).type == "fail"
                assert (await role_probe({"solo": url}, timeout=0.5)) == {"solo": "unknown"}
            finally:
                os.killpg(node.pid, signal.SIGCONT)
            # The indeterminate write may or may not have happened: both are legal.
            async with asyncio.timeout(ELECTION_BOUND):
                while (r := await c.get("k")).type != "ok":
                    await asyncio.sleep(0.1)
            assert r.value in {"v", "w", "x"}

    run(scenario())
