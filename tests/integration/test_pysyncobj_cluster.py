"""The PySyncObj target on real processes: a 3-node cluster of the real library,
instrumented at runtime, reporting to a real tracker over gRPC.

The relayed test puts a tiny loopback relay on every directed link (as the
network mediator does), so the nodes reach each other at proxy ports (which
exercises the name-based node identity) and the pysyncobj codec frames the
real byte streams in both directions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fuzzer.tracker.server import TrackerServer
from instrumentation import protocol as p

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import envs  # noqa: E402
from targets.pysyncobj.client import NodeClient, find_leader  # noqa: E402
from targets.pysyncobj.codec import PySyncObjCodec  # noqa: E402

pytestmark = pytest.mark.timeout(240)

NODE = ROOT / "targets" / "pysyncobj" / "node.py"
RAFT_TYPES = {"request_vote", "response_vote", "append_entries", "next_node_idx"}


@pytest.fixture(scope="module")
def pso_python() -> str:
    """The node interpreter; HBFUZZ_PYSYNCOBJ_VERSION picks another release (default latest)."""
    version = os.environ.get("HBFUZZ_PYSYNCOBJ_VERSION", envs.DEFAULT_VERSION)
    return str(envs.ensure(version).python)


class Relays:
    """One loopback relay per directed link; tees each direction into a codec."""

    def __init__(self, names: list[str], raft: dict[str, int], ports: list[int]):
        self.names = names
        self.raft = raft
        self.links = [(a, b) for a in names for b in names if a != b]
        self.port = dict(zip(self.links, ports, strict=True))
        self.frames: Counter = Counter()  # (src, dst, msg_type) -> frames
        self.bytes: Counter = Counter()  # (src, dst) -> bytes relayed
        self.framed: Counter = Counter()  # (src, dst) -> bytes in complete frames
        self.servers: list[asyncio.Server] = []
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, tg: asyncio.TaskGroup) -> None:
        for link in self.links:
            srv = await asyncio.start_server(
                lambda r, w, link=link: tg.create_task(self._conn(link, r, w)),
                "127.0.0.1", self.port[link],
            )
            self.servers.append(srv)

    async def _conn(self, link, creader, cwriter) -> None:
        a, b = link
        self.writers.add(cwriter)
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.raft[b])
        except OSError:
            cwriter.close()
            return
        self.writers.add(uwriter)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(creader, uwriter, a, b))
                tg.create_task(self._pump(ureader, cwriter, b, a))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (cwriter, uwriter):
                w.transport.abort()

    async def _pump(self, reader, writer, src, dst) -> None:
        codec = PySyncObjCodec()
        while data := await reader.read(65536):
            self.bytes[src, dst] += len(data)
            for f in codec.feed(data):
                self.frames[src, dst, f.msg_type] += 1
                self.framed[src, dst] += len(f.data)
            writer.write(data)
            await writer.drain()
        writer.transport.abort()

    def close(self) -> None:
        for srv in self.servers:
            srv.close()
        for w in self.writers:
            w.transport.abort()


class Cluster:
    """n PySyncObj nodes started with the ``procs`` fixture (own process groups)."""

    def __init__(self, procs, python, tmp: Path, ports, n=3, tracker=None, execution="e1"):
        self.procs = procs
        self.python = python
        self.tmp = tmp
        self.names = [f"n{i + 1}" for i in range(n)]
        pp = ports(2 * n)
        self.raft = dict(zip(self.names, pp[:n], strict=True))
        self.client = dict(zip(self.names, pp[n:], strict=True))
        self.tracker = tracker
        self.execution = execution
        self.dial: dict[tuple[str, str], int] = {}  # (src, dst) -> port src dials for dst
        self.proc: dict[str, subprocess.Popen] = {}

    def argv(self, name: str) -> list[str]:
        peers = ",".join(
            f"{o}=127.0.0.1:{self.dial.get((name, o), self.raft[o])}"
            for o in self.names if o != name
        )
        return [
            self.python, str(NODE), "--name", name, "--raft", f"127.0.0.1:{self.raft[name]}",
            "--client-port", str(self.client[name]), "--data-dir", str(self.tmp / name),
            "--peers", peers, "--raft-min-timeout", "0.4", "--raft-max-timeout", "1.0",
            "--reconnect", "0.3", "--request-timeout", "8",
        ]

    def start(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
        if self.tracker:
            env.update({p.ENV_TRACKER: self.tracker, p.ENV_NODE: name,
                        p.ENV_EXECUTION: self.execution})
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc[name] = self.procs(self.argv(name), env=env, stdout=log, stderr=log)
        log.close()

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def kill(self, name: str) -> None:
        proc = self.proc[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self, name: str) -> int:
        proc = self.proc[name]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=15)

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n" + (self.tmp / f"{n}.log").read_text(errors="replace")[-3000:]
            for n in self.names if (self.tmp / f"{n}.log").exists()
        )

    async def leader(self, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for name, proc in self.proc.items():
                    assert proc.poll() is None, f"{name} exited:\n{self.logs()}"
                leader = await find_leader(self.client.values(), timeout=2.0)
                if leader is not None:
                    return leader
                await asyncio.sleep(0.2)


async def wait_until(cond, timeout: float = 20.0) -> bool:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.1)
    except TimeoutError:
        return cond()
    return True


@pytest.mark.parametrize("version", ["default", "0.3.10"])
def test_relayed_cluster_kv_events_and_codec(procs, pso_python, version, tmp_path, ports, rng):
    """The hooks work on the latest and on the oldest supported release."""
    if version != "default":
        pso_python = str(envs.ensure(version).python)
    execution = f"pso-{rng.randrange(1 << 30)}"
    with TrackerServer() as srv:
        cluster = Cluster(procs, pso_python, tmp_path, ports, tracker=srv.address,
                          execution=execution)
        relays = Relays(cluster.names, cluster.raft, ports(6))
        cluster.dial = relays.port
        timeline = srv.tracker.timeline(execution)

        async def scenario() -> dict:
            async with asyncio.TaskGroup() as tg:
                await relays.start(tg)
                try:
                    cluster.start_all()
                    leader = await cluster.leader()
                    follower = next(n for n in cluster.names if n != leader)
                    results = {}
                    async with NodeClient(cluster.client[follower], timeout=8) as fc, \
                            NodeClient(cluster.client[leader], timeout=8) as lc:
                        key = f"k{rng.randrange(100)}"
                        v1, v2 = rng.randrange(1000), rng.randrange(1000, 2000)
                        results["put_f"] = (await fc.put(key, v1), v1)
                        results["get_l"] = (await lc.get(key), v1)
                        results["cas_ok"] = (await lc.cas(key, v1, v2), v2)
                        results["cas_bad"] = (await fc.cas(key, v1, 7), v2)
                        results["get_f"] = (await fc.get(key), v2)
                        results["local"] = (await fc.get(key, local=True), v2)
                        results["status"] = await fc.status()
                    results["leader"], results["follower"] = leader, follower
                    # every node applies the same entries; wait for all to report them
                    ok = await wait_until(lambda: _applied_everywhere(timeline, cluster.names, 3))
                    results["applied"] = ok
                    return results
                finally:
                    for name in cluster.names:
                        if cluster.proc.get(name) is not None and cluster.proc[name].poll() is None:
                            cluster.stop(name)
                    relays.close()

        res = asyncio.run(asyncio.wait_for(scenario(), 150))

    logs = cluster.logs()
    r, v = res["put_f"]
    assert r.ok and r.value == v, (r, logs)
    assert r.leader in cluster.names and r.node == res["follower"]
    r, v = res["get_l"]
    assert r.ok and r.value == v, r
    r, v = res["cas_ok"]
    assert r.ok and r.value == v, r
    r, v = res["cas_bad"]
    assert r.type == "fail" and r.error == "mismatch" and r.value == v, r
    for k in ("get_f", "local"):
        r, v = res[k]
        assert r.ok and r.value == v, (k, r)
    st = res["status"].value  # (a spurious election on a loaded machine may move the leader)
    assert st["node"] == res["follower"] and st["role"] in ("follower", "candidate", "leader")
    assert st["leader"] in (*cluster.names, None) and st["term"] >= 1
    assert st["commit_index"] >= 5 and st["last_applied"] <= st["commit_index"]
    assert res["applied"], logs

    # SEND/RECV: Raft message types, matched by (sender, msg_id), types agree on both ends
    events = timeline.events()
    sends = [e for e in events if e.kind == p.SEND]
    send_types = {e.field("msg_type") for e in sends}
    assert RAFT_TYPES <= send_types, send_types
    assert "apply_command" in send_types and "apply_command_response" in send_types
    edges = timeline.edges()
    assert len(edges) >= 20
    for s, rcv in edges:
        assert s.field("msg_type") == rcv.field("msg_type")
        assert s.field("peer") == rcv.node and rcv.field("peer") == s.node
        assert rcv.field("sender_lamport") == s.lamport < rcv.lamport
    assert len({(s.node, s.field("msg_id")) for s in sends}) == len(sends)  # ids unique

    # STATE: roles and terms; the leader reports match/next index per follower
    states = [(e.node, e.field("key"), e.field("value")) for e in events if e.kind == p.STATE]
    assert (res["leader"], "role", "leader") in states
    assert any(k == "term" and v >= 1 for _, k, v in states)
    assert any(k.startswith("match_index.") and v >= 2 for _n, k, v in states)
    assert any(k.startswith("next_index.") for _, k, _v in states)
    assert any(k == "commit_index" for _, k, _v in states)
    assert any(k == "last_log_index" for _, k, _v in states)
    for node in cluster.names if version == "default" else ():
        # commit index never goes backwards (releases before 0.3.12 have a known bug here)
        commits = [e.field("value") for e in timeline.events(node)
                   if e.kind == p.STATE and e.field("key") == "commit_index"]
        assert commits == sorted(commits), (node, commits)

    # APPLY: same (term, digest) at the same index on every node
    applied = _applies(timeline, cluster.names)
    common = set.intersection(*(set(a) for a in applied.values()))
    assert len(common) >= 3
    for idx in common:
        assert len({applied[n][idx] for n in cluster.names}) == 1, idx

    # COVERAGE: branch coverage of the pysyncobj package from every node
    for node in cluster.names:
        edges_n = sum(len(e.field("edges")) for e in timeline.events(node)
                      if e.kind == p.COVERAGE)
        assert edges_n > 0, node

    # codec: the relayed streams split into typed frames, nothing unclassified
    types = Counter()
    for (_s, _d, t), n in relays.frames.items():
        types[t] += n
    assert RAFT_TYPES <= set(types), types
    assert types["hello"] >= 3  # one handshake per connection
    assert types["raft"] == 0 and types["encrypted"] == 0, types
    for link, nbytes in relays.bytes.items():
        assert 0 < relays.framed[link] <= nbytes
        assert nbytes - relays.framed[link] < 65536  # only a torn last frame may remain
    # the codec saw (at least) the Raft message types the nodes reported sending
    assert send_types <= set(types) | {"timeout_now"}


def _applies(timeline, names) -> dict[str, dict[int, tuple]]:
    out: dict[str, dict[int, tuple]] = defaultdict(dict)
    for node in names:
        for e in timeline.events(node):
            if e.kind == p.APPLY:
                out[node][e.field("index")] = (e.field("term"), e.field("digest"))
    return out


def _applied_everywhere(timeline, names, at_least: int) -> bool:
    applied = _applies(timeline, names)
    if len(applied) < len(names):
        return False
    return len(set.intersection(*(set(a) for a in applied.values()))) >= at_least + 2


def test_restart_keeps_journal(procs, pso_python, tmp_path, ports, rng):
    cluster = Cluster(procs, pso_python, tmp_path, ports)
    values = {f"key{i}": rng.randrange(10**6) for i in range(4)}

    async def scenario() -> list:
        cluster.start_all()
        leader = await cluster.leader()
        async with NodeClient(cluster.client[leader], timeout=8) as c:
            for k, v in values.items():
                r = await c.put(k, v)
                assert r.ok, (r, cluster.logs())
        # a single node restarts: its log is back at once (before any new append)
        victim = next(n for n in cluster.names if n != leader)
        async with NodeClient(cluster.client[victim]) as c, asyncio.timeout(20):
            while True:  # the victim has every entry (no-op + puts) in its log
                before = (await c.status()).value
                if before and before["last_log_index"] >= len(values) + 2:
                    break
                await asyncio.sleep(0.05)
        cluster.kill(victim)
        cluster.start(victim)
        out = []
        async with asyncio.timeout(30):
            while True:
                async with NodeClient(cluster.client[victim], timeout=2) as c:
                    st = await c.status()
                if st.ok:
                    break
                await asyncio.sleep(0.1)
        out.append((before, st.value))
        # the whole cluster dies at once (SIGKILL) and comes back from its journals
        for name in cluster.names:
            cluster.kill(name)
        cluster.start_all()
        leader = await cluster.leader()
        async with NodeClient(cluster.client[leader], timeout=8) as c:
            for k in values:
                out.append((k, await c.get(k)))
        # a lone node cannot commit: its write times out, indeterminate ("info");
        # a dead node's port refuses the connection: the request never left ("fail")
        survivor = rng.choice(cluster.names)
        for name in cluster.names:
            if name != survivor:
                cluster.kill(name)
        async with NodeClient(cluster.client[survivor]) as c:
            lone = await c.put("lonely", 1, timeout=1.0)
        dead = next(n for n in cluster.names if n != survivor)
        async with NodeClient(cluster.client[dead]) as c:
            refused = await c.get("lonely")
        return out, lone, refused

    out, lone, refused = asyncio.run(asyncio.wait_for(scenario(), 150))
    (before, after), reads = out[0], out[1:]
    # (a follower that starts an election fails its waiting commands as leader_changed)
    assert lone.type == "info" and lone.error in ("timeout", "leader_changed"), lone
    assert refused.type == "fail" and refused.error.startswith("connect"), refused
    assert after["last_log_index"] >= before["last_log_index"] >= len(values) + 2, (before, after)
    # (the term is not compared: releases before 0.3.16 do not persist currentTerm)
    for k, r in reads:
        assert r.ok and r.value == values[k], (k, r, cluster.logs())
    for name in cluster.names:
        assert (tmp_path / name / "raft.journal").stat().st_size > 0
    survivor = next(n for n, proc in cluster.proc.items() if proc.poll() is None)
    assert cluster.stop(survivor) == 0  # SIGTERM: graceful shutdown
