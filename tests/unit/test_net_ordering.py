"""DeliveryOrder (fuzzer/network/ordering.py): the recorded per-destination
delivery order, its gate and give-up; and its use by the Outbox."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from fuzzer.errors import InputError, NetworkError
from fuzzer.network.model import Fate
from fuzzer.network.ordering import DeliveryOrder, OrderStats, decode_order, encode_order
from fuzzer.network.outbox import Outbox

A = [("n1", "n3", 0), ("n2", "n3", 0), ("n1", "n3", 1), ("n2", "n3", 1)]
B = [("n3", "n1", 0), ("n2", "n1", 0)]


def interleave(rng, *seqs):
    """A random interleaving of ``seqs`` keeping each one's own order."""
    seqs = [list(s) for s in seqs]
    out = []
    while any(seqs):
        s = rng.choice([s for s in seqs if s])
        out.append(s.pop(0))
    return out


def gate(order: DeliveryOrder, arrivals):
    """Feed arrivals through the gate as a writer does (no timeouts):
    the delivered sequence; held keys stay waiting."""
    out, held = [], []
    for key in arrivals:
        if order.admit(key):
            out.append(key)
        else:
            order.hold(key)
            held.append(key)
        progress = True
        while progress:
            progress = False
            for h in sorted(held, key=order.position):
                if order.admit(h):
                    out.append(h)
                    held.remove(h)
                    progress = True
                    break
    return out, held


def test_arrivals_in_any_order_are_released_in_the_recorded_order(rng):
    recorded = interleave(rng, A, B)
    for _ in range(20):
        order = DeliveryOrder(recorded)
        arrivals = rng.sample(recorded, len(recorded))
        out, held = gate(order, arrivals)
        assert held == []
        for dst in ("n3", "n1"):
            assert [k for k in out if k[1] == dst] == [k for k in recorded if k[1] == dst]
        s = order.stats()
        assert s.enforced == len(recorded) and s.gave_up == s.unknown == s.late == 0
        assert s.recorded == len(recorded) and s.give_up_rate == 0.0
        assert order.log() == tuple(out)


def test_destinations_do_not_wait_for_each_other():
    order = DeliveryOrder(A + B)
    # n1's keys were recorded after all of n3's, yet pass before any of n3's arrive
    assert order.admit(("n3", "n1", 0)) and order.admit(("n2", "n1", 0))
    assert not order.admit(("n2", "n3", 0))


def test_unknown_keys_pass_and_never_block(rng):
    order = DeliveryOrder(A)
    assert order.admit(("c1", "n3", 0))  # not recorded
    assert not order.ready(("n2", "n3", 0))
    assert order.admit(("n1", "n3", 0)) and order.admit(("n2", "n3", 0))
    s = order.stats()
    assert s.unknown == 1 and s.enforced == 2
    assert order.log() == (("c1", "n3", 0), ("n1", "n3", 0), ("n2", "n3", 0))


def test_give_up_skips_missing_predecessors_and_counts():
    order = DeliveryOrder(A)
    # ("n1","n3",0) never comes: ("n2","n3",0) waits, then gives up
    k = ("n2", "n3", 0)
    assert not order.admit(k)
    order.hold(k)
    order.hold(k)  # counted once
    assert order.force(k) == 1
    assert order.admit(("n1", "n3", 1))  # its predecessors are now done or skipped
    late = ("n1", "n3", 0)
    assert order.admit(late)  # skipped, arrives after all: passes, counted late
    s = order.stats()
    assert (s.held, s.gave_up, s.skipped, s.late, s.enforced) == (1, 1, 1, 1, 1)
    assert order.late_keys() == (late,)
    assert s.known == 3 and s.give_up_rate == pytest.approx(2 / 3)


def test_force_of_a_ready_key_is_not_a_give_up():
    order = DeliveryOrder(A)
    assert order.force(("n1", "n3", 0)) == 0
    assert order.stats().gave_up == 0 and order.stats().enforced == 1


def test_duplicate_copies_pass_and_are_logged_once():
    order = DeliveryOrder(A)
    k = ("n1", "n3", 0)
    assert order.admit(k) and order.admit(k)
    assert order.log() == (k,) and order.stats().enforced == 1


def test_next_key_counts_per_link():
    order = DeliveryOrder()
    assert [order.next_key("a", "b") for _ in range(3)] == [("a", "b", i) for i in range(3)]
    assert order.next_key("b", "a") == ("b", "a", 0)
    assert not order.enforcing


def test_listeners_fire_only_while_something_waits():
    order = DeliveryOrder(A)
    calls = []
    order.listen("n3", lambda: calls.append(1))
    order.admit(("n1", "n3", 0))
    assert calls == []
    k = ("n1", "n3", 1)
    assert not order.admit(k)
    order.hold(k)
    order.admit(("n2", "n3", 0))
    assert calls == [1]


def test_stats_add_and_dict():
    s = OrderStats(1, 2, 3, 4, 5, 6, 7) + OrderStats(1, 1, 1, 1, 1, 1, 1)
    assert s == OrderStats(2, 3, 4, 5, 6, 7, 8)
    d = s.as_dict()
    assert d["known"] == 2 + 4 + 7 and 0 < d["give_up_rate"] <= 1


def test_timeout_must_be_positive():
    with pytest.raises(NetworkError):
        DeliveryOrder(A, timeout=0)


def test_encoding_round_trips(rng):
    keys = []
    nxt: dict = {}
    for _ in range(300):
        link = (rng.choice(["n1", "n2", "c1"]), rng.choice(["n3", "lin-kv"]))
        k = nxt.get(link, 0) + (rng.random() < 0.1)  # sometimes a gap (a dropped message)
        nxt[link] = k + 1
        keys.append((*link, k))
    keys.append(("n1", "n3", 0))  # and an index out of sequence
    data = msgpack.packb(encode_order(keys))
    assert decode_order(msgpack.unpackb(data)) == tuple(keys)
    assert len(data) < 3 * len(keys)  # about one byte per delivery


@pytest.mark.parametrize("bad", [
    None, {"v": 2, "links": [], "seq": []}, {"v": 1, "links": [["a"]], "seq": []},
    {"v": 1, "links": [["a", "b"]], "seq": [1]}, {"v": 1, "links": [["a", "b"]], "seq": ["x"]},
    {"v": 1, "links": [["a", "b"]], "seq": [[0, -1]]},
])
def test_malformed_orders_name_the_file(bad):
    with pytest.raises(InputError, match="x.bundle"):
        decode_order(bad, "x.bundle")


# --------------------------------------------------------------------------- the outbox


def test_outbox_writes_in_the_recorded_order_across_arrivals(rng):
    recorded = [("n1", "n3", i) for i in range(5)] + [("n2", "n3", i) for i in range(5)]
    recorded = interleave(rng, recorded[:5], recorded[5:])
    arrivals = rng.sample(recorded, len(recorded))

    async def main():
        out = []
        order = DeliveryOrder(recorded, timeout=5.0)
        box = Outbox(out.extend, order=order)
        task = asyncio.create_task(box.run())
        for key in arrivals:
            box.put(("payload", key), Fate("deliver"), key[0])
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        box.finish()
        await asyncio.wait_for(task, 5)
        return out, order

    out, order = asyncio.run(main())
    assert [k for _p, k in out] == recorded
    assert order.stats().gave_up == 0 and order.stats().enforced == len(recorded)


def test_outbox_gives_up_after_the_timeout_and_never_deadlocks():
    recorded = [("n1", "n3", 0), ("n2", "n3", 0), ("n2", "n3", 1)]

    async def main():
        out = []
        order = DeliveryOrder(recorded, timeout=0.05)
        box = Outbox(out.extend, order=order)
        task = asyncio.create_task(box.run())
        box.put(("p", ("n2", "n3", 0)), Fate("deliver"), "n2")
        box.put(("p", ("n2", "n3", 1)), Fate("deliver"), "n2")
        box.put(("p", ("c1", "n3", 0)), Fate("deliver"), "c1")  # unknown: passes at once
        await asyncio.sleep(0.01)
        assert [k for _p, k in out] == [("c1", "n3", 0)]
        assert box.pending == 2
        await asyncio.sleep(0.3)  # ("n1","n3",0) never comes: give up
        assert [k for _p, k in out] == [("c1", "n3", 0), ("n2", "n3", 0), ("n2", "n3", 1)]
        box.finish()
        await asyncio.wait_for(task, 5)
        return order.stats()

    s = asyncio.run(main())
    assert (s.gave_up, s.held, s.skipped, s.unknown, s.enforced) == (1, 2, 1, 1, 1)


def test_two_outboxes_of_one_destination_wake_each_other():
    recorded = [("n1", "n3", 0), ("n2", "n3", 0)]

    async def main():
        out = []
        order = DeliveryOrder(recorded, timeout=5.0)
        a = Outbox(out.extend, order=order)
        b = Outbox(out.extend, order=order)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(a.run())
            tg.create_task(b.run())
            b.put(("p", ("n2", "n3", 0)), Fate("deliver"), "x")
            await asyncio.sleep(0.02)
            assert out == []
            a.put(("p", ("n1", "n3", 0)), Fate("deliver"), "x")
            await asyncio.sleep(0.02)
            assert [k for _p, k in out] == recorded
            a.finish()
            b.finish()
        return order.stats()

    s = asyncio.run(main())
    assert s.gave_up == 0 and s.held == 1


def test_finish_releases_parked_items():
    async def main():
        out = []
        order = DeliveryOrder([("a", "d", 0), ("b", "d", 0)], timeout=60.0)
        box = Outbox(out.extend, order=order)
        task = asyncio.create_task(box.run())
        box.put(("p", ("b", "d", 0)), Fate("deliver"), "b")
        await asyncio.sleep(0.01)
        box.finish()
        await asyncio.wait_for(task, 5)
        return out, order.stats()

    out, s = asyncio.run(main())
    assert len(out) == 1 and s.gave_up == 1


def test_outbox_without_order_is_unchanged():
    async def main():
        out = []
        box = Outbox(out.extend)
        task = asyncio.create_task(box.run())
        for i in (3, 1, 2):
            box.put(i, Fate("deliver"), "l")
        box.finish()
        await task
        return out

    assert asyncio.run(main()) == [3, 1, 2]


def test_a_dropped_predecessor_is_not_waited_for():
    order = DeliveryOrder(A)
    k = ("n2", "n3", 0)
    assert not order.admit(k)
    order.hold(k)
    order.cancel(("n1", "n3", 0))  # its fate dropped it in this run
    assert order.admit(k)
    s = order.stats()
    assert (s.dropped, s.gave_up, s.enforced, s.held) == (1, 0, 1, 1)
    order.cancel(("n1", "n3", 0))  # idempotent
    assert order.stats().dropped == 1


def test_a_diverged_link_costs_one_give_up_not_one_per_missing_message():
    rec = [k for i in range(5) for k in (("n1", "n3", i), ("n2", "n3", i))]
    order = DeliveryOrder(rec)
    n1 = [order.next_key("n1", "n3") for _ in range(2)]  # n1 sends only 2 of its 5
    n2 = [order.next_key("n2", "n3") for _ in range(5)]
    assert order.admit(n1[0]) and order.admit(n2[0]) and order.admit(n1[1])
    assert order.admit(n2[1])
    assert not order.admit(n2[2])  # waits for ("n1","n3",2), never sent
    order.hold(n2[2])
    assert order.force(n2[2]) == 1
    assert order.admit(n2[3]) and order.admit(n2[4])  # no more waiting: n1->n3 stalled
    s = order.stats()
    assert (s.gave_up, s.skipped, s.enforced) == (1, 3, 6)
    # n1 speaks again: its late message passes, and the link is no longer stalled
    late = order.next_key("n1", "n3")
    assert late == ("n1", "n3", 2) and order.admit(late)
    assert order.stats().late == 1


def test_an_in_flight_predecessor_is_waited_for_even_on_a_stalled_link():
    rec = [("a", "d", 0), ("b", "d", 0), ("a", "d", 1), ("b", "d", 1)]
    order = DeliveryOrder(rec)
    b0, b1 = order.next_key("b", "d"), order.next_key("b", "d")
    order.hold(b0)
    order.force(b0)  # ("a","d",0) not sent: link a->d stalled
    a0 = order.next_key("a", "d")  # a sends again (late): the stall ends
    a1 = order.next_key("a", "d")  # sent, in flight
    assert not order.admit(b1)  # waits for a1, which was sent
    assert order.admit(a0) and order.admit(a1) and order.admit(b1)


# --------------------------------------------------------------------------- records and reports


def test_recorded_choices_carry_the_order_and_old_records_have_none():
    from fuzzer.execution.result import RecordedChoices

    keys = (("n1", "n3", 0), ("c1", "n1", 0), ("n1", "n3", 2))
    rc = RecordedChoices(order=keys)
    assert RecordedChoices.from_msgpack(rc.to_msgpack()).order == keys
    old = msgpack.unpackb(RecordedChoices().to_msgpack())
    assert "order" not in old  # nothing recorded: the record is as before
    assert RecordedChoices.from_msgpack(msgpack.packb(old)).order == ()
    bad = dict(old, order={"v": 1, "links": [["a", "b"]], "seq": [5]})
    with pytest.raises(InputError, match="b.bundle: choices"):
        RecordedChoices.from_msgpack(msgpack.packb(bad), "b.bundle: choices")


def test_replay_report_gives_the_give_up_rate_next_to_the_rate():
    from fuzzer.repro.replay import RunOutcome, replay_report

    sig = "workload:lin-kv/not-linearizable[op:read]"
    outs = [RunOutcome((sig,), frozenset(), order=OrderStats(enforced=9, gave_up=1, held=2)),
            RunOutcome((), frozenset(), order=OrderStats(enforced=10))]
    r = replay_report(sig, outs, None)
    o = r.facts()["order"]
    assert o["active"] and o["gave_up"] == 1 and o["runs_gave_up"] == 1
    assert o["give_up_rate"] == pytest.approx(1 / 20)
    assert "gave up 1 times" in "\n".join(r.lines())
    plain = replay_report(sig, [RunOutcome((sig,), frozenset())], None)
    assert plain.facts()["order"] == {"active": False}
    assert "not enforced" in "\n".join(plain.lines())
