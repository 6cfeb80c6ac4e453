"""The TCP mediator on a real echo cluster (processes and sockets on 127.0.0.1).

The test process plays node n1: it connects to ``proxy_port("n1", "n2")``;
n2 is a real echo node that also logs every byte it receives, so one-way
faults are visible from both ends.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from fuzzer.network.codecs import get_codec
from fuzzer.network.model import LinkRule, NetworkModel
from fuzzer.network.tcp import TcpMediator
from instrumentation.protocol import RECV, SEND

NODES = Path(__file__).parent / "nodes"
QUIET = 0.3  # how long "nothing arrives" is watched


@pytest.fixture
def echo_cluster(tmp_path, ports, procs, python):
    """Two real echo nodes; returns ({name: (host, port)}, {name: log path})."""
    addrs, logs, pipes = {}, {}, []
    for name, port in zip(["n1", "n2"], ports(2), strict=True):
        log = tmp_path / f"{name}.received"
        log.touch()
        p = procs([python, str(NODES / "net_tcp_echo.py"), str(port), str(log)],
                  stdout=subprocess.PIPE)
        pipes.append(p.stdout)
        assert p.stdout.readline().strip() == b"ready"
        addrs[name] = ("127.0.0.1", port)
        logs[name] = log
    yield addrs, logs
    for pipe in pipes:
        pipe.close()


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def nothing_arrives(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(QUIET):
            await reader.read(1024)
    except TimeoutError:
        return True
    return False  # data (or EOF) arrived


async def eventually(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


def test_passthrough_ports_and_lamport_events(echo_cluster, seed):
    addrs, logs = echo_cluster
    events = []

    async def main():
        model = NetworkModel(list(addrs), seed)
        async with TcpMediator(model, addrs, sink=events.append) as net:
            p12, p21 = net.proxy_port("n1", "n2"), net.proxy_port("n2", "n1")
            assert p12 != p21 and {p12, p21}.isdisjoint({a[1] for a in addrs.values()})
            assert net.peer_addresses("n1") == {"n2": ("127.0.0.1", p12)}
            r, w = await asyncio.open_connection("127.0.0.1", p12)
            for word in (b"hello", b"world"):
                w.write(word)
                assert await r.readexactly(len(word)) == word
            assert net.connections("n1", "n2") == 1
            w.close()
            st = net.stats
            assert st[("n1", "n2")].bytes == 10 and st[("n2", "n1")].bytes == 10
            assert st[("n1", "n2")].dropped == 0

    run(main())
    assert logs["n2"].read_bytes() == b"helloworld"
    sends = {(e.node, e.field("msg_id")): e for e in events if e.kind == SEND}
    recvs = [e for e in events if e.kind == RECV]
    assert {e.node for e in sends.values()} == {"n1", "n2"}
    assert len(recvs) == len(sends) >= 4
    for r in recvs:
        s = sends[(r.field("peer"), r.field("msg_id"))]
        assert s.field("peer") == r.node
        assert r.field("sender_lamport") == s.lamport
        assert r.lamport > s.lamport
    for node in ("n1", "n2"):
        seqs = [e.seq for e in events if e.node == node]
        lamports = [e.lamport for e in events if e.node == node]
        assert seqs == sorted(seqs) and lamports == sorted(lamports)


def test_blackhole_is_one_way_and_heal_restores(echo_cluster, seed):
    addrs, logs = echo_cluster

    async def main():
        model = NetworkModel(list(addrs), seed)
        async with TcpMediator(model, addrs) as net:
            r, w = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            w.write(b"0")
            assert await r.readexactly(1) == b"0"
            # n1 -> n2 cut: n2 sees nothing, nothing comes back, the connection stays open
            model.set_rule("n1", "n2", LinkRule(blocked=True))
            w.write(b"A")
            assert await nothing_arrives(r)
            assert logs["n2"].read_bytes() == b"0"
            assert net.connections("n1", "n2") == 1
            # only n2 -> n1 cut: n2 receives, its echo is discarded
            model.heal()
            model.set_rule("n2", "n1", LinkRule(blocked=True))
            w.write(b"B")
            assert await eventually(lambda: logs["n2"].read_bytes() == b"0B")
            assert await nothing_arrives(r)
            # heal: traffic flows both ways again on the same connection
            model.heal()
            w.write(b"C")
            assert await r.readexactly(1) == b"C"
            # a connection opened during a partition goes nowhere until it heals
            model.set_rule("n1", "n2", LinkRule(blocked=True))
            r2, w2 = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            w2.write(b"D")
            assert await nothing_arrives(r2)
            assert logs["n2"].read_bytes() == b"0BC"
            model.heal()
            await asyncio.sleep(net.poll * 2)
            w2.write(b"E")
            assert await r2.readexactly(1) == b"E"
            assert logs["n2"].read_bytes() == b"0BCE"
            st = net.stats
            assert st[("n1", "n2")].dropped_bytes == 2  # A and D
            assert st[("n2", "n1")].dropped_bytes == 1  # B's echo
            w.close()
            w2.close()

    run(main())


def test_delay_adds_at_least_the_configured_latency(echo_cluster, seed):
    addrs, _logs = echo_cluster
    delay = 0.2

    async def main():
        model = NetworkModel(list(addrs), seed)
        async with TcpMediator(model, addrs) as net:
            r, w = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            model.set_rule("n1", "n2", LinkRule(delay=delay))
            for i in range(3):
                t0 = time.monotonic()
                w.write(b"x%d" % i)
                assert await r.readexactly(2) == b"x%d" % i
                assert time.monotonic() - t0 >= delay
            # both directions delayed: the round trip takes at least both delays
            model.set_rule("n2", "n1", LinkRule(delay=delay))
            t0 = time.monotonic()
            w.write(b"yy")
            assert await r.readexactly(2) == b"yy"
            assert time.monotonic() - t0 >= 2 * delay
            w.close()

    run(main())


def test_reset_closes_connections_and_refuses_new_ones(echo_cluster, seed):
    addrs, _logs = echo_cluster

    async def main():
        model = NetworkModel(list(addrs), seed)
        async with TcpMediator(model, addrs) as net:
            port = net.proxy_port("n1", "n2")
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"a")
            assert await r.readexactly(1) == b"a"
            model.set_rule("n2", "n1", LinkRule(reset=True))  # either direction resets the pair
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await r.readexactly(1)
            assert net.connections() == 0
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await r2.readexactly(1)
            model.heal()
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            w3.write(b"b")
            assert await r3.readexactly(1) == b"b"
            assert net.reset_link("n1", "n2") == 1
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await r3.readexactly(1)
            assert net.stats[("n1", "n2")].resets >= 3
            for wr in (w, w2, w3):
                wr.close()

    run(main())


def expected_order(fates: list) -> list[int]:
    """What the receiver must see, in order, for messages 0..n-1 with these fates
    (sent back to back, no delay): the oracle for per-message faults."""
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
    return out + held  # the last held ones come out at their deadline


def test_per_message_faults_follow_the_model(echo_cluster, seed):
    addrs, logs = echo_cluster
    n = 80
    codec = get_codec("length-prefixed", size=4)

    async def main():
        model = NetworkModel(list(addrs), seed)
        model.set_rule("n1", "n2", LinkRule(drop=0.2, duplicate=0.2, reorder=0.2, hold_max=0.2))
        async with TcpMediator(model, addrs, codec="length-prefixed",
                               codec_params={"size": 4}) as net:
            r, w = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            w.write(b"".join(codec.encode(b"%05d" % k) for k in range(n)))
            await w.drain()
            # wait until n1->n2 decisions are made and everything due arrived
            assert await eventually(lambda: model.decided("n1", "n2") == n)
            fates = [model.fate("n1", "n2", k) for k in range(n)]
            want = expected_order(fates)
            got = []
            for _ in want:
                frame = await r.readexactly(9)
                got.append(int(frame[4:]))
            assert got == want
            assert await nothing_arrives(r)
            st = net.stats[("n1", "n2")]
            assert st.messages == n
            assert st.dropped == sum(f.kind == "drop" for f in fates)
            assert st.held == sum(f.kind == "hold" for f in fates)
            assert st.delivered == len(want)
            kinds = {f.kind for f in fates}
            assert {"drop", "duplicate", "hold", "deliver"} <= kinds, kinds
            w.close()
            return want

    want = run(main())
    # the echo node saw exactly what was decided, in that order
    data = logs["n2"].read_bytes()
    assert [int(data[i + 4 : i + 9]) for i in range(0, len(data), 9)] == want


def test_unframeable_stream_resets_only_that_connection(echo_cluster, seed):
    addrs, _logs = echo_cluster

    async def main():
        model = NetworkModel(list(addrs), seed)
        params = {"size": 4, "max_frame": 1024}
        async with TcpMediator(model, addrs, codec="length-prefixed", codec_params=params) as net:
            port = net.proxy_port("n1", "n2")
            good_r, good_w = await asyncio.open_connection("127.0.0.1", port)
            bad_r, bad_w = await asyncio.open_connection("127.0.0.1", port)
            bad_w.write((10**6).to_bytes(4, "big") + b"junk")
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await bad_r.readexactly(1)
            assert net.stats[("n1", "n2")].codec_errors == 1
            frame = (3).to_bytes(4, "big") + b"abc"
            good_w.write(frame)
            assert await good_r.readexactly(7) == frame
            for w in (good_w, bad_w):
                w.close()

    run(main())


def test_per_message_delay_and_jitter_hold_each_frame_back(echo_cluster, seed):
    addrs, _logs = echo_cluster

    async def main():
        model = NetworkModel(list(addrs), seed)
        model.set_rule("n1", "n2", LinkRule(delay=0.1, jitter=0.05))
        async with TcpMediator(model, addrs, codec="length-prefixed",
                               codec_params={"size": 2, "byteorder": "little"}) as net:
            r, w = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            for k in range(4):
                frame = (1).to_bytes(2, "little") + bytes([k])
                t0 = time.monotonic()
                w.write(frame)
                assert await r.readexactly(3) == frame
                fate = model.fate("n1", "n2", k)
                assert fate.kind == "delay" and 0.05 <= fate.delay <= 0.15
                assert time.monotonic() - t0 >= fate.delay
            assert net.stats[("n1", "n2")].delayed == 4
            w.close()

    run(main())


@pytest.mark.parametrize("in_order", [True, False])
def test_in_order_keeps_a_connections_order_when_a_delay_is_lifted(echo_cluster, seed,
                                                                   in_order):
    """``in_order`` (TCP semantics): frames sent under a delay are not overtaken by
    frames sent after the delay was lifted; without it they are (a message network)."""
    addrs, _logs = echo_cluster

    async def main():
        model = NetworkModel(list(addrs), seed)
        model.set_rule("n1", "n2", LinkRule(delay=0.3))
        async with TcpMediator(model, addrs, codec="length-prefixed", in_order=in_order,
                               codec_params={"size": 2, "byteorder": "little"}) as net:
            r, w = await asyncio.open_connection("127.0.0.1", net.proxy_port("n1", "n2"))
            for k in range(3):
                w.write((1).to_bytes(2, "little") + bytes([k]))
                await w.drain()
            await asyncio.sleep(0.05)  # the three are held by the proxy
            model.set_rule("n1", "n2", LinkRule())
            for k in range(3, 6):
                w.write((1).to_bytes(2, "little") + bytes([k]))
                await w.drain()
            got = [(await r.readexactly(3))[2] for _ in range(6)]
            w.close()
            return got

    got = run(main())
    if in_order:
        assert got == [0, 1, 2, 3, 4, 5]
    else:
        assert got[:3] == [3, 4, 5] and sorted(got) == list(range(6))
