"""Delivery-order replay (fuzzer/network/ordering.py) under the real StdioMediator:
an order recorded from one run of real Maelstrom nodes (tests/integration/nodes/
net_spray.py) is enforced on a second run whose network model has another
seed (other jitter, so another natural interleaving); the receiver's
per-destination order, read independently from the mediator's SEND/RECV
events, must match the first run's, except for messages the give-up counters
name (late keys). A recording whose messages never come gives up, counted,
and never deadlocks. The same holds for the TcpMediator in framed mode, where
one destination's messages come over several connections."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from fuzzer.network.codecs import get_codec
from fuzzer.network.model import LinkRule, NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.network.stdio import StdioMediator
from fuzzer.network.tcp import TcpMediator
from instrumentation.protocol import RECV, SEND

pytestmark = pytest.mark.timeout(120)

NODES = Path(__file__).parent / "nodes"
T = 5.0
JITTER = LinkRule(delay=0.005, jitter=0.005)


def cluster(python: str) -> dict[str, list[str]]:
    return {f"n{i}": [python, str(NODES / "net_spray.py")] for i in (1, 2, 3)}


async def until(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        await asyncio.sleep(0.02)


def received(events, dst: str, msg_type: str = "num") -> list[tuple[str, str, int]]:
    """The keys (src, dst, per-link index) of ``dst``'s RECVs of ``msg_type``, in
    delivery order, derived from the events alone: a message's index is the rank
    of its SEND among the sender's SENDs to ``dst``."""
    rank: dict[tuple[str, int], int] = {}
    count: dict[str, int] = {}
    for e in events:
        if e.kind == SEND and e.field("peer") == dst:
            rank[(e.node, e.field("msg_id"))] = count.get(e.node, 0)
            count[e.node] = count.get(e.node, 0) + 1
    return [(e.field("peer"), dst, rank[(e.field("peer"), e.field("msg_id"))])
            for e in events if e.kind == RECV and e.node == dst
            and e.field("msg_type") == msg_type]


async def spray_run(tmp: Path, python: str, seed: int, order: DeliveryOrder,
                    counts: dict[str, int], concurrent: bool = True,
                    rule: LinkRule = JITTER) -> list:
    """n1 and n2 spray ``counts[src]`` messages at n3 (together, or one after the
    other); returns the mediator's events once n3 got them all, before any other
    message to n3 (so the recording holds exactly the sprays)."""
    events: list = []
    nodes = cluster(python)
    model = NetworkModel(list(nodes), seed)
    for src in ("n1", "n2"):
        model.set_rule(src, "n3", rule)
    async with StdioMediator(nodes, model, tmp, sink=events.append, order=order) as net:

        async def spray(src: str) -> None:
            reply = await net.client_request("c1", src, {"type": "spray", "peer": "n3",
                                                         "count": counts[src]}, T)
            assert reply is not None and reply["type"] == "spray_ok"

        def delivered(src: str) -> bool:
            return net.stats[(src, "n3")].delivered >= counts[src]

        if concurrent:
            await asyncio.gather(spray("n1"), spray("n2"))
        else:
            await spray("n1")
            await until(lambda: delivered("n1"))
            await spray("n2")
        await until(lambda: delivered("n1") and delivered("n2"))
        snapshot = list(events)
        # the node itself saw every message (read is not part of the recorded order)
        nums = (await net.client_request("c2", "n3", {"type": "read"}, T))["nums"]
        assert len(nums) == sum(counts.values())
    return snapshot


def test_recorded_order_is_enforced_on_a_differently_seeded_run(tmp_path, python, seed):
    counts = {"n1": 25, "n2": 25}
    first = DeliveryOrder()
    ev1 = asyncio.run(spray_run(tmp_path / "a", python, seed, first, counts))
    rec = first.log()
    want = received(ev1, "n3")
    assert len(want) == 50
    assert [k for k in rec if k[1] == "n3" and k[0] != "c2"] == want  # log = RECV order

    second = DeliveryOrder(rec, timeout=5.0)
    ev2 = asyncio.run(spray_run(tmp_path / "b", python, seed + 1, second, counts))
    got = received(ev2, "n3")
    s = second.stats()
    late = set(second.late_keys())
    common = set(want) & set(got)
    assert len(common) == 50
    assert [k for k in got if k in common and k not in late] == \
        [k for k in want if k in common and k not in late]
    assert s.enforced + s.gave_up + s.late >= 50
    if s.gave_up == 0:
        assert got == want and not late


def test_missing_messages_make_enforcement_give_up_not_deadlock(tmp_path, python, seed):
    # first run (FIFO links): n3 gets n1's 30, then n2's 10; second: n1 sends only
    # 20, so n2's first message waits for 10 that never come, gives up once, skips them
    first = DeliveryOrder()
    fifo = LinkRule()
    asyncio.run(spray_run(tmp_path / "a", python, seed, first,
                          {"n1": 30, "n2": 10}, concurrent=False, rule=fifo))
    rec = first.log()
    assert [k for k in rec if k[1] == "n3" and k[0] != "c2"] == \
        [("n1", "n3", k) for k in range(30)] + [("n2", "n3", k) for k in range(10)]
    second = DeliveryOrder(rec, timeout=1.0)
    ev2 = asyncio.run(spray_run(tmp_path / "b", python, seed, second,
                                {"n1": 20, "n2": 10}, concurrent=False, rule=fifo))
    got = received(ev2, "n3")
    assert got == [("n1", "n3", k) for k in range(20)] + [("n2", "n3", k) for k in range(10)]
    s = second.stats()
    assert s.gave_up == 1 and s.skipped == 10 and s.held >= 1 and s.late == 0
    assert s.give_up_rate > 0


# --------------------------------------------------------------------------- tcp, framed


@pytest.fixture
def echo3(tmp_path, ports, procs, python):
    """Three real TCP echo nodes (tests/integration/nodes/net_tcp_echo.py)."""
    addrs, pipes = {}, []
    for name, port in zip(["n1", "n2", "n3"], ports(3), strict=True):
        p = procs([python, str(NODES / "net_tcp_echo.py"), str(port),
                   str(tmp_path / f"{name}.received")], stdout=subprocess.PIPE)
        pipes.append(p.stdout)
        assert p.stdout.readline().strip() == b"ready"
        addrs[name] = ("127.0.0.1", port)
    yield addrs
    for pipe in pipes:
        pipe.close()


async def tcp_run(addrs, seed: int, order: DeliveryOrder, n: int = 30) -> list:
    """n1 and n2 (played by this test) each send ``n`` framed messages to n3 at
    once, through the TcpMediator in framed mode, with jitter on both links."""
    codec = get_codec("length-prefixed", size=4)
    events: list = []
    model = NetworkModel(list(addrs), seed)
    for src in ("n1", "n2"):
        model.set_rule(src, "n3", JITTER)
    async with TcpMediator(model, addrs, codec="length-prefixed", codec_params={"size": 4},
                           sink=events.append, order=order) as net:
        conns = []
        for src in ("n1", "n2"):
            conns.append(await asyncio.open_connection("127.0.0.1", net.proxy_port(src, "n3")))
        for (_r, w), src in zip(conns, ("n1", "n2"), strict=True):
            w.write(b"".join(codec.encode(b"%s-%04d" % (src.encode(), k)) for k in range(n)))
        for r, _w in conns:  # the echo comes back: everything went through
            await r.readexactly(n * 11)
        await until(lambda: net.stats[("n1", "n3")].delivered + net.stats[("n2", "n3")].delivered
                    >= 2 * n)
        snapshot = list(events)
        for _r, w in conns:
            w.close()
    return snapshot


def test_tcp_framed_order_is_enforced_across_connections(echo3, seed):
    first = DeliveryOrder()
    want = received(asyncio.run(tcp_run(echo3, seed, first)), "n3", "msg")
    assert len(want) == 60
    second = DeliveryOrder(first.log(), timeout=5.0)
    got = received(asyncio.run(tcp_run(echo3, seed + 1, second)), "n3", "msg")
    late = set(second.late_keys())
    assert [k for k in got if k not in late] == [k for k in want if k not in late]
    s = second.stats()
    assert s.enforced + s.gave_up + s.late >= 60
    if s.gave_up == 0:
        assert got == want
