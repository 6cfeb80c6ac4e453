"""Outbox (fuzzer/network/outbox.py): decided fates become the delivery order;
and the mediator's Lamport bookkeeping (fuzzer/network/events.py)."""

from __future__ import annotations

import asyncio

from fuzzer.network.events import LamportBook
from fuzzer.network.model import Fate
from instrumentation.protocol import RECV, SEND


def deliveries(plan, finish_wait: float = 0.5):
    """Put (item, fate) pairs (all on one link), return the written order."""

    async def main():
        out = []
        box = Outbox(out.extend)
        task = asyncio.create_task(box.run())
        for item, fate in plan:
            box.put(item, fate, "link")
        box.finish()
        await asyncio.wait_for(task, finish_wait + 2)
        return out

    return asyncio.run(main())


from fuzzer.network.outbox import Outbox  # noqa: E402


def test_fates_give_the_decided_order():
    plan = [
        (0, Fate("deliver")),
        (1, Fate("hold", 5.0)),
        (2, Fate("drop")),
        (3, Fate("deliver")),  # releases 1 right behind it
        (4, Fate("duplicate", 0.0, 3)),
        (5, Fate("hold", 5.0)),  # released by finish()
    ]
    assert deliveries(plan) == [0, 3, 1, 4, 4, 4, 5]


def test_delay_lets_later_messages_overtake_and_hold_expires():
    async def main():
        out = []
        box = Outbox(out.extend)
        task = asyncio.create_task(box.run())
        box.put("slow", Fate("delay", 0.2), "a")
        box.put("held", Fate("hold", 0.1), "b")
        box.put("fast", Fate("deliver"), "a")  # another link: does not release "held"
        await asyncio.sleep(0.05)
        assert out == ["fast"]
        await asyncio.sleep(0.3)
        assert out == ["fast", "held", "slow"]
        box.finish()
        await task

    asyncio.run(main())


def test_lamport_book_orders_recv_after_send():
    events = []
    book = LamportBook(events.append)
    s1 = book.send("n1", "n2", "ping")
    book.send("n3", "n2", "x")
    book.send("n3", "n2", "x")
    s3 = book.send("n3", "n2", "y")
    assert book.recv("n2", s3) == 4
    assert book.recv("n2", s1) == 5  # late message: still after n2's past
    assert book.recv("n2", s1) == 6  # a duplicate copy
    reply = book.send("n2", "n1", "pong")
    assert book.recv("n1", reply) == reply.lamport + 1 == 8
    sends = {(e.node, e.field("msg_id")): e for e in events if e.kind == SEND}
    assert len(sends) == 5  # msg_ids unique per sender
    for e in events:
        if e.kind == RECV:
            s = sends[(e.field("peer"), e.field("msg_id"))]
            assert e.lamport > s.lamport and e.field("sender_lamport") == s.lamport
    for node in ("n1", "n2", "n3"):
        mine = [e for e in events if e.node == node]
        assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
