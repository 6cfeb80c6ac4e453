"""The stdio mediator with real Maelstrom node processes (tests/integration/nodes/net_*.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fuzzer.errors import ClusterError
from fuzzer.network.model import LinkRule, NetworkModel, isolate
from fuzzer.network.stdio import StdioMediator
from fuzzer.tracker.timeline import Timeline
from instrumentation.protocol import RECV, SEND

NODES = Path(__file__).parent / "nodes"
T = 5.0  # client timeout for requests that must be answered


def run(coro, timeout: float = 40.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def cluster(python: str, script: str, n: int) -> dict[str, list[str]]:
    return {f"n{i}": [python, str(NODES / script)] for i in range(1, n + 1)}


async def eventually(pred, timeout: float = 5.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await pred()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


def test_echo_init_and_lamport_events(tmp_path, python, seed):
    events = []
    timeline = Timeline("x")

    def sink(event):
        events.append(event)
        timeline.add(event)

    async def main():
        nodes = cluster(python, "net_echo.py", 2)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path, sink=sink) as net:
            for node in nodes:
                assert net.inits(node) == 1 and net.running(node)
                reply = await net.client_request("c1", node, {"type": "echo", "echo": node}, T)
                assert reply["type"] == "echo_ok" and reply["echo"] == node
                assert reply["in_reply_to"] == 1 or reply["in_reply_to"] >= 1
            assert net.stats[("c1", "n1")].delivered == 1
        assert all(e.expected for e in net.exits)

    run(main())
    sends = {(e.node, e.field("msg_id")): e for e in events if e.kind == SEND}
    recvs = [e for e in events if e.kind == RECV]
    assert len(recvs) == len(sends) == 8  # init, init_ok, echo, echo_ok per node
    for r in recvs:
        s = sends[(r.field("peer"), r.field("msg_id"))]
        assert s.field("peer") == r.node and r.lamport > s.lamport
    assert {e.field("msg_type") for e in sends.values()} == {"init", "init_ok", "echo", "echo_ok"}
    # the tracker's timeline builds the HB graph from them
    edges = timeline.edges()
    assert len(edges) == 8
    for s, r in edges:
        assert timeline.happens_before(s, r) and not timeline.happens_before(r, s)


def test_broadcast_partition_and_loss_follow_the_model(tmp_path, python, seed):
    async def main():
        nodes = cluster(python, "net_broadcast.py", 3)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path) as net:

            async def read(node):
                reply = await net.client_request("c1", node, {"type": "read"}, T)
                return reply["messages"]

            # n3 cut off: it never hears of 1 while the partition lasts
            model.partition(isolate(list(nodes), "n3"))
            assert (await net.client_request("c1", "n1", {"type": "broadcast", "message": 1},
                                             T))["type"] == "broadcast_ok"
            assert await eventually(lambda: _has(read, "n2", 1))
            await asyncio.sleep(0.3)  # several gossip rounds
            assert await read("n3") == []
            into_n3 = [f for (a, b, _s), f in model.choices().items() if b == "n3"]
            assert into_n3 and all(f.kind == "drop" for f in into_n3)
            assert net.stats[("n1", "n3")].dropped == net.stats[("n1", "n3")].messages > 0
            model.heal()
            assert await eventually(lambda: _has(read, "n3", 1))

            # every message into n2 lost: 2 reaches n3 but never n2
            before = {src: model.decided(src, "n2") for src in ("n1", "n3")}
            for src in ("n1", "n3"):
                model.set_rule(src, "n2", LinkRule(drop=1.0))
            await net.client_request("c1", "n1", {"type": "broadcast", "message": 2}, T)
            assert await eventually(lambda: _has(read, "n3", 2))
            await asyncio.sleep(0.3)
            assert await read("n2") == [1]
            into_n2 = [model.fate(src, "n2", k) for src in before
                       for k in range(before[src], model.decided(src, "n2"))]
            assert into_n2 and all(f.kind == "drop" for f in into_n2)
            model.clear()
            assert await eventually(lambda: _has(read, "n2", 2))

    run(main())


async def _has(read, node, value) -> bool:
    return value in await read(node)


def test_services_answer_with_maelstrom_semantics(tmp_path, python, seed):
    async def main():
        nodes = cluster(python, "net_kv.py", 1)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path) as net:

            async def op(body, dest="n1"):
                return await net.client_request("c1", dest, body, T)

            # through a node (node -> lin-kv -> node -> client)
            assert (await op({"type": "read", "key": "x"}))["code"] == 20
            assert (await op({"type": "write", "key": "x", "value": 1}))["type"] == "write_ok"
            assert (await op({"type": "read", "key": "x"}))["value"] == 1
            bad = await op({"type": "cas", "key": "x", "from": 5, "to": 6})
            assert bad["type"] == "error" and bad["code"] == 22
            assert (await op({"type": "cas", "key": "x", "from": 1, "to": 2}))["type"] == "cas_ok"
            assert (await op({"type": "cas", "key": "y", "from": 0, "to": 1}))["code"] == 20
            assert (await op({"type": "cas", "key": "y", "from": 0, "to": 7,
                              "create_if_not_exists": True}))["type"] == "cas_ok"
            assert (await op({"type": "read", "key": "y"}))["value"] == 7
            assert net.stats[("n1", "lin-kv")].delivered == 8
            # lin-tso through the node; services directly from a client
            t1 = (await op({"type": "ts", "service": "lin-tso"}))["ts"]
            t2 = (await op({"type": "ts"}, "lin-tso"))["ts"]
            assert t2 > t1
            assert (await op({"type": "frob"}, "lin-kv"))["code"] == 10
            for svc in ("seq-kv", "lww-kv"):
                assert (await op({"type": "write", "key": "k", "value": 3}, svc))["type"] == "write_ok"
                assert (await op({"type": "read", "key": "k"}, svc))["value"] == 3

    run(main())


def test_malformed_lines_are_counted_and_routing_goes_on(tmp_path, python, seed):
    async def main():
        nodes = cluster(python, "net_echo.py", 1)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path) as net:
            assert (await net.client_request("c1", "n1", {"type": "garble"}, T))["type"] == "garble_ok"
            assert net.malformed["n1"] == 5
            assert len(net.malformed_lines["n1"]) == 5
            reply = await net.client_request("c1", "n1", {"type": "echo", "echo": "still"}, T)
            assert reply["echo"] == "still"
            assert net.running("n1")

    run(main())


def test_process_faults_restart_reinits(tmp_path, python, seed):
    async def main():
        nodes = cluster(python, "net_echo.py", 2)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path) as net:
            who = await net.client_request("c1", "n1", {"type": "whoami"}, T)
            await net.restart_node("n1")
            again = await net.client_request("c1", "n1", {"type": "whoami"}, T)
            assert again["pid"] != who["pid"] and again["inits"] == 1
            assert net.inits("n1") == 2
            await net.pause_node("n2")
            assert await net.client_request("c1", "n2", {"type": "echo", "echo": 1}, 0.3) is None
            await net.resume_node("n2")
            assert (await net.client_request("c1", "n2", {"type": "echo", "echo": 2}, T))["echo"] == 2
            await net.kill_node("n2")
            assert not net.running("n2")
            assert await net.client_request("c1", "n2", {"type": "echo", "echo": 3}, 0.3) is None
            await net.start_node("n2")
            assert (await net.client_request("c1", "n2", {"type": "echo", "echo": 4}, T))["echo"] == 4
            assert [e for e in net.exits if not e.expected] == []
            # an exit the mediator did not cause is reported as unexpected
            import os
            import signal

            os.kill(net.pid("n1"), signal.SIGKILL)
            assert await eventually(lambda: _unexpected(net, "n1"))
            assert net.log_path("n1").read_text().count("init n1") == 2

    run(main())


async def _unexpected(net, node) -> bool:
    return any(e.node == node and not e.expected and e.code == -9 for e in net.exits)


def test_node_that_never_inits_is_a_clear_error(tmp_path, python, seed):
    async def main():
        nodes = {"n1": [python, "-c", "import sys, time; print('booting', file=sys.stderr, "
                                      "flush=True); time.sleep(30)"]}
        model = NetworkModel(list(nodes), seed)
        net = StdioMediator(nodes, model, tmp_path, init_timeout=0.5)
        with pytest.raises(ClusterError, match="n1 did not answer init.*booting"):
            await net.start()
        nodes = {"n1": [python, "-c", "import sys; sys.exit('boom at start')"]}
        net = StdioMediator(nodes, model, tmp_path / "b", init_timeout=30.0)
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="n1 exited before answering init.*boom at start"):
            await net.start()
        assert time.monotonic() - t0 < 25.0  # did not wait for the init timeout

    run(main())


def expected_order(fates: list) -> list[int]:
    """Arrival order for messages 0..n-1 sent back to back under these fates."""
    out: list[int] = []
    held: list[int] = []
    for k, fate in enumerate(fates):
        if fate.kind == "drop":
            continue
        if fate.kind == "hold":
            held.append(k)
            continue
        out.extend([k] * (fate.copies if fate.kind == "duplicate" else 1))
        out.extend(held)
        held.clear()
    return out + held


def test_node_messages_get_exactly_the_decided_fates(tmp_path, python, seed):
    n = 60

    async def main():
        nodes = cluster(python, "net_spray.py", 2)
        model = NetworkModel(list(nodes), seed)
        model.set_rule("n1", "n2", LinkRule(drop=0.2, duplicate=0.2, reorder=0.2, hold_max=1.0))
        async with StdioMediator(nodes, model, tmp_path) as net:
            reply = await net.client_request("c1", "n1", {"type": "spray", "peer": "n2",
                                                          "count": n}, T)
            assert reply["type"] == "spray_ok"
            fates = [model.fate("n1", "n2", k) for k in range(n)]
            assert None not in fates
            want = expected_order(fates)

            async def nums():
                got = (await net.client_request("c1", "n2", {"type": "read"}, T))["nums"]
                return got if len(got) >= len(want) else None

            assert await eventually(nums, timeout=5.0) == want
            st = net.stats[("n1", "n2")]
            assert st.messages == n and st.delivered == len(want)
            assert {"drop", "duplicate", "hold", "deliver"} <= {f.kind for f in fates}

    run(main())


def test_client_links_obey_the_model_when_asked(tmp_path, python, seed):
    async def main():
        nodes = cluster(python, "net_echo.py", 1)
        model = NetworkModel(list(nodes), seed)
        async with StdioMediator(nodes, model, tmp_path, client_faults=True) as net:
            echo = {"type": "echo", "echo": "hi"}
            assert (await net.client_request("c1", "n1", echo, T))["echo"] == "hi"
            model.set_rule("c1", "n1", LinkRule(blocked=True))
            assert await net.client_request("c1", "n1", echo, 0.3) is None
            assert model.fate("c1", "n1", 1).kind == "drop"
            model.heal()
            model.set_rule("n1", "c2", LinkRule(drop=1.0))  # replies to c2 are lost
            assert await net.client_request("c2", "n1", echo, 0.3) is None
            assert net.stats[("n1", "c2")].dropped == 1
            assert (await net.client_request("c1", "n1", echo, T))["echo"] == "hi"

    run(main())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


STUBBORN = (  # answers init, then ignores stdin EOF and sleeps: only a signal ends it
    "import json, sys, time; m = json.loads(sys.stdin.readline()); "
    "print(json.dumps({'src': 'n1', 'dest': m['src'], 'body': {'type': 'init_ok', "
    "'in_reply_to': m['body']['msg_id']}}), flush=True); time.sleep(60)"
)


def test_nodes_die_with_a_sigkilled_mediator(tmp_path, python, procs):
    script = f"""
import asyncio, sys
STUBBORN = {STUBBORN!r}
from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator

async def main():
    nodes = {{"n1": [sys.executable, "-c", STUBBORN]}}
    async with StdioMediator(nodes, NetworkModel(["n1"], 1), {str(tmp_path)!r}) as net:
        print(net.pid("n1"), flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""
    import os
    import signal
    import subprocess

    parent = procs([python, "-c", script], stdout=subprocess.PIPE)
    node_pid = int(parent.stdout.readline())
    parent.stdout.close()
    assert _alive(node_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=5)
    deadline = time.monotonic() + 5
    while _alive(node_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    survived = _alive(node_pid)
    if survived:  # leave nothing behind even when failing
        os.killpg(node_pid, signal.SIGKILL)
    assert not survived


# -- no orphans: a node's grandchild dies with a SIGKILLed mediator ---------------------

GRANDPARENT = (  # spawns a grandchild in its own group, answers init, then sleeps
    "import json, subprocess, sys, time; "
    "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]]); "
    "m = json.loads(sys.stdin.readline()); "
    "print(json.dumps({'src': 'n1', 'dest': m['src'], 'body': {'type': 'init_ok', "
    "'in_reply_to': m['body']['msg_id']}}), flush=True); "
    "print('grandchild', kid.pid, file=sys.stderr, flush=True); time.sleep(60)"
)


@pytest.fixture
def marker(rng):
    from cluster_helpers import kill_marked

    m = f"hbfzstdio{rng.getrandbits(48):012x}"
    yield m
    kill_marked(m)  # leave nothing behind even when failing


def _mediator_driver(tmp_path, python, procs, marker, watchdog: bool):
    import subprocess

    script = f"""
import asyncio, json, sys
from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator

async def main():
    nodes = {{"n1": [sys.executable, "-c", {GRANDPARENT!r}, {marker!r}]}}
    async with StdioMediator(nodes, NetworkModel(["n1"], 1), {str(tmp_path)!r},
                             watchdog={watchdog!r}) as net:
        print(json.dumps({{"node": net.pid("n1"), "watchdog": net.watchdog_pid}}), flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""
    import json

    driver = procs([python, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = driver.stdout.readline()  # bounded by the mediator's init timeout
    assert line.startswith(b"{"), driver.stderr.read() if driver.poll() is not None else line
    info = json.loads(line)
    driver.stdout.close()
    return driver, info


def _grandchild(tmp_path, node_pid: int) -> int:
    log = tmp_path / "n1.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        words = log.read_text().split() if log.exists() else []
        if "grandchild" in words:
            return int(words[words.index("grandchild") + 1])
        time.sleep(0.02)
    raise AssertionError(f"node {node_pid} never reported its grandchild")


def test_stdio_grandchildren_die_with_a_sigkilled_mediator(tmp_path, python, procs, marker):
    import signal

    from cluster_helpers import alive, wait_dead, with_marker

    driver, info = _mediator_driver(tmp_path, python, procs, marker, watchdog=True)
    kid = _grandchild(tmp_path, info["node"])
    assert info["watchdog"] is not None and alive(info["watchdog"])
    assert alive(info["node"]) and alive(kid)
    assert {info["node"], kid} <= set(with_marker(marker))
    driver.send_signal(signal.SIGKILL)
    assert driver.wait(timeout=10) == -signal.SIGKILL
    assert wait_dead([info["node"], kid, info["watchdog"]]) == [], "stdio processes survived"
    assert wait_dead(with_marker(marker), timeout=2.0) == []
    assert "died; killed groups" in (tmp_path / "reaper.log").read_text()


def test_stdio_without_watchdog_only_the_node_dies(tmp_path, python, procs, marker):
    """PR_SET_PDEATHSIG alone reaches the node but not its grandchild: why the
    stdio mediator registers its groups with the watchdog."""
    import signal

    from cluster_helpers import alive, wait_dead

    driver, info = _mediator_driver(tmp_path, python, procs, marker, watchdog=False)
    kid = _grandchild(tmp_path, info["node"])
    assert info["watchdog"] is None
    driver.send_signal(signal.SIGKILL)
    assert driver.wait(timeout=10) == -signal.SIGKILL
    assert wait_dead([info["node"]]) == []
    assert alive(kid)  # killed by the marker fixture


def test_stdio_node_exit_takes_its_group_along(tmp_path, python, marker):
    """A node that exits on its own (or is killed) leaves no process of its group behind."""
    from cluster_helpers import wait_dead

    async def main():
        nodes = {"n1": [python, "-c", GRANDPARENT, marker]}
        async with StdioMediator(nodes, NetworkModel(["n1"], 1), tmp_path) as net:
            kid = await asyncio.to_thread(_grandchild, tmp_path, net.pid("n1"))
            await net.restart_node("n1")
            assert await asyncio.to_thread(wait_dead, [kid]) == []
            assert net.running("n1") and net.inits("n1") == 2

    run(main())
