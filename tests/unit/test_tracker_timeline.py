"""Timeline: HB graph, matching and vector clocks on hand-built executions with known answers."""

from __future__ import annotations

import random

import pytest

from fuzzer.tracker.timeline import Timeline, Tracker
from instrumentation import protocol as p
from instrumentation.errors import ProtocolError
from instrumentation.protocol import Event


class Builder:
    """Builds per-node event streams like a node's reporter would (seq from 1)."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}

    def ev(self, node: str, kind: int, *fields) -> Event:
        s = self.seq[node] = self.seq.get(node, 0) + 1
        return Event(node, s, s, 1000 + s, s, kind, tuple(fields))

    def send(self, node: str, dst: str, mid: int, mtype: str = "m") -> Event:
        return self.ev(node, p.SEND, dst, mtype, mid)

    def recv(self, node: str, src: str, mid: int, mtype: str = "m") -> Event:
        return self.ev(node, p.RECV, src, mtype, mid, 0)

    def local(self, node: str, name: str = "x") -> Event:
        return self.ev(node, p.LOCAL, name, {})


def test_concurrent_and_ordered_events():
    b = Builder()
    a1 = b.local("n1", "a")
    s1 = b.send("n1", "n2", 1)
    a2 = b.local("n1", "after-send")
    b1 = b.local("n2", "b")
    r1 = b.recv("n2", "n1", 1)
    c2 = b.local("n2", "c")
    tl = Timeline("e")
    for e in (a1, s1, a2, b1, r1, c2):
        tl.add(e)
    assert tl.nodes() == ["n1", "n2"]
    assert tl.edges() == [(s1, r1)]
    assert tl.happens_before(a1, s1) and tl.happens_before(s1, r1) and tl.happens_before(a1, c2)
    assert not tl.happens_before(r1, s1) and not tl.happens_before(a1, a1)
    assert tl.concurrent(b1, a1) and tl.concurrent(b1, s1) and tl.concurrent(a2, r1)
    assert tl.concurrent(a2, c2) and not tl.concurrent(s1, c2) and not tl.concurrent(a1, a1)
    assert tl.vector_clock(r1) == {"n1": 2, "n2": 2}
    assert tl.vector_clock(a2) == {"n1": 3}
    assert tl.vector_clock(b1) == {"n2": 1}


def test_message_chain_across_three_nodes():
    b = Builder()
    s12 = b.send("n1", "n2", 7, "ping")
    r12 = b.recv("n2", "n1", 7, "ping")
    s23 = b.send("n2", "n3", 7, "fwd")  # same msg_id from another sender: a different message
    r23 = b.recv("n3", "n2", 7, "fwd")
    x3 = b.local("n3", "done")
    tl = Timeline()
    for e in (s12, r12, s23, r23, x3):
        tl.add(e)
    assert tl.edges() == [(s12, r12), (s23, r23)]
    assert tl.happens_before(s12, x3)
    assert tl.vector_clock(x3) == {"n1": 1, "n2": 2, "n3": 2}
    assert tl.causal_past(r23) == [s12, r12, s23]
    assert tl.causal_past(s12) == []


def test_recv_arriving_before_its_send():
    b = Builder()
    s = b.send("n1", "n2", 5)
    r = b.recv("n2", "n1", 5)
    after = b.local("n2", "after")
    tl = Timeline()
    tl.add(r)
    tl.add(after)
    assert tl.vector_clock(after) == {"n2": 2}  # clocks computed before the SEND is known
    assert tl.unmatched_recvs() == [r]
    tl.add(s)  # the late SEND adds an edge into already-computed clocks
    assert tl.unmatched_recvs() == []
    assert tl.edges() == [(s, r)]
    assert tl.vector_clock(after) == {"n1": 1, "n2": 2}
    assert tl.happens_before(s, after)


def test_duplicated_message_gives_several_recvs():
    b = Builder()
    s = b.send("n1", "n2", 1)
    r1 = b.recv("n2", "n1", 1)
    r2 = b.recv("n2", "n1", 1)
    r3 = b.recv("n3", "n1", 1)  # misrouted copy to another node
    tl = Timeline()
    for e in (r3, r1, r2, s):
        tl.add(e)
    assert sorted(tl.edges(), key=lambda e: (e[1].node, e[1].seq)) == [(s, r1), (s, r2), (s, r3)]
    assert all(tl.happens_before(s, r) for r in (r1, r2, r3))


def test_causal_past_excludes_concurrent_and_later_events():
    b = Builder()
    s1 = b.send("n1", "n2", 1)
    late1 = b.local("n1", "late")
    pre2 = b.local("n2", "pre")
    r1 = b.recv("n2", "n1", 1)
    other = b.local("n3", "other")
    tl = Timeline()
    for e in (s1, late1, pre2, r1, other):
        tl.add(e)
    assert tl.causal_past(r1) == [s1, pre2]
    assert tl.causal_past(other) == []


def _random_execution(rng: random.Random, nodes: list[str], steps: int):
    """A random message-passing execution and its true vector clocks (reference model)."""
    b = Builder()
    streams: dict[str, list[Event]] = {n: [] for n in nodes}
    clocks: dict[str, dict[str, int]] = {n: {} for n in nodes}
    truth: dict[tuple[str, int], dict[str, int]] = {}
    in_flight: list[tuple[str, str, int, dict[str, int]]] = []
    mid = 0
    for _ in range(steps):
        n = rng.choice(nodes)
        vc = clocks[n]
        r = rng.random()
        if r < 0.4 and in_flight:
            src, dst, m, svc = in_flight.pop(rng.randrange(len(in_flight)))
            n, vc = dst, clocks[dst]
            for k, c in svc.items():
                vc[k] = max(vc.get(k, 0), c)
            ev = b.recv(n, src, m)
            if rng.random() < 0.15:  # the network duplicated it
                in_flight.append((src, dst, m, svc))
        elif r < 0.8:
            mid += 1
            dst = rng.choice([x for x in nodes if x != n])
            ev = b.send(n, dst, mid)
        else:
            ev = b.local(n)
        vc[n] = vc.get(n, 0) + 1
        if ev.kind == p.SEND:
            in_flight.append((n, ev.fields[0], ev.fields[2], dict(vc)))
        streams[n].append(ev)
        truth[(n, ev.seq)] = dict(vc)
    return streams, truth


@pytest.mark.parametrize("store", ["arrays", "compacted", "wire"])
def test_vector_clocks_match_reference_under_any_arrival_order(rng, store):
    nodes = ["n1", "n2", "n3", "n4"]
    for _ in range(20):
        streams, truth = _random_execution(rng, nodes, 80)
        tl = Timeline()
        if store == "compacted":
            tl.COMPACT_AT = 3
        pos = dict.fromkeys(nodes, 0)
        queried = 0
        while any(pos[n] < len(streams[n]) for n in nodes):  # random interleaving, chunks
            n = rng.choice([x for x in nodes if pos[x] < len(streams[x])])
            k = rng.randint(1, 5)
            chunk = streams[n][pos[n] : pos[n] + k]
            pos[n] += len(chunk)
            raw = [e.to_wire() for e in chunk]
            wire = p.encode_batch(n, "", 0, 0, raw) if store == "wire" else None
            tl.add_raw(n, p.decode_batch(wire).events if wire else raw, wire)
            if rng.random() < 0.3:  # query mid-way so the cache must be invalidated correctly
                e = chunk[-1]
                tl.vector_clock(e)
                queried += 1
        for n in nodes:
            assert tl.events(n) == streams[n]
            for e in streams[n]:
                assert tl.vector_clock(e) == truth[(n, e.seq)]
        evs = [e for n in nodes for e in streams[n]]
        for _ in range(50):
            a, c = rng.choice(evs), rng.choice(evs)
            ta, tc = truth[(a.node, a.seq)], truth[(c.node, c.seq)]
            expect = a != c and all(tc.get(k, 0) >= v for k, v in ta.items())
            assert tl.happens_before(a, c) == expect


def test_bogus_ids_forming_a_cycle_do_not_hang():
    b = Builder()
    r1 = b.recv("n1", "n2", 1)
    s1 = b.send("n1", "n2", 2)
    r2 = b.recv("n2", "n1", 2)
    s2 = b.send("n2", "n1", 1)
    tl = Timeline()
    for e in (r1, s1, r2, s2):
        tl.add(e)
    assert len(tl.edges()) == 2
    assert not (tl.happens_before(s1, s2) and tl.happens_before(s2, s1))
    tl.vector_clock(r1)
    tl.causal_past(s2)


def test_bad_message_fields_reject_the_whole_batch():
    tl = Timeline()
    good = [1, 1, 0, 0, p.LOCAL, "x", {}]
    bad = [2, 2, 0, 0, p.SEND, "n2", "m", [1, 2]]  # unhashable msg_id
    with pytest.raises(ProtocolError, match="msg_id"):
        tl.add_raw("n1", [good, bad])
    assert len(tl) == 0 and tl.nodes() == []
    with pytest.raises(ProtocolError):
        tl.add(Event("n1", 1, 1, 0, 0, p.SEND, ("n2",)))
    with pytest.raises(ProtocolError):
        tl.add(Event("n1", 1, 1, 0, 0, 99, ()))


def test_listeners_see_every_event_in_arrival_order_and_cannot_break_ingest():
    tl = Timeline()
    seen: list[tuple[str, int]] = []
    batches: list[tuple[str, int]] = []
    tl.add_listener(lambda e: seen.append((e.node, e.seq)))
    tl.add_batch_listener(lambda node, evs: batches.append((node, len(evs))))

    def boom(e):
        raise RuntimeError("listener bug")

    tl.add_listener(boom)
    tl.add_raw("n1", [[1, 1, 0, 0, p.LOCAL, "a", {}], [2, 2, 0, 0, p.LOCAL, "b", {}]])
    tl.add(Event("n2", 1, 1, 0, 0, p.STATE, ("role", "leader")))
    assert seen == [("n1", 1), ("n1", 2), ("n2", 1)]
    assert batches == [("n1", 2), ("n2", 1)]
    assert tl.listener_errors == 3 and len(tl) == 3


def test_events_lookup_and_unknown_event():
    tl = Timeline()
    tl.add_raw("n1", [[5, 1, 0, 0, p.LOCAL, "a", {}], [9, 2, 0, 0, p.LOCAL, "b", {}]])
    evs = tl.events("n1")
    assert [e.seq for e in evs] == [5, 9] and evs[1].field("name") == "b"
    assert tl.vector_clock(evs[1]) == {"n1": 2}  # non-contiguous seq: slow lookup path
    assert tl.events("nope") == [] and tl.events() == evs
    with pytest.raises(KeyError):
        tl.vector_clock(Event("n1", 6, 1, 0, 0, p.LOCAL, ("a", {})))
    with pytest.raises(KeyError):
        tl.vector_clock(Event("zz", 1, 1, 0, 0, p.LOCAL, ("a", {})))


def test_tracker_keeps_executions_apart():
    tr = Tracker()
    created = []
    tr2 = Tracker(on_timeline=created.append)
    for t in (tr, tr2):
        t.ingest(p.Batch("n1", "e1", 0, 0, [[1, 1, 0, 0, p.SEND, "n2", "m", 1]]))
        t.ingest(p.Batch("n2", "e2", 0, 0, [[1, 1, 0, 0, p.RECV, "n1", "m", 1, 1]]))
    assert tr.executions() == ["e1", "e2"]
    assert tr.timeline("e1").edges() == [] and tr.timeline("e2").unmatched_recvs()
    assert [t.execution for t in created] == ["e1", "e2"]
    tr.drop("e1")
    assert tr.executions() == ["e2"]


def test_values_msgpack_cannot_carry_stay_uncompacted():
    tl = Timeline()
    tl.COMPACT_AT = 2
    odd = object()
    tl.add(Event("n1", 1, 1, 0, 0, p.LOCAL, ("a", {"obj": odd})))
    tl.add(Event("n1", 2, 2, 0, 0, p.LOCAL, ("b", {})))
    tl.add(Event("n1", 3, 3, 0, 0, p.LOCAL, ("c", {"t": (1, 2)})))
    tl.add(Event("n1", 4, 4, 0, 0, p.LOCAL, ("d", {})))
    evs = tl.events("n1")
    assert evs[0].fields[1]["obj"] is odd  # kept as given
    assert evs[2].fields[1] == {"t": [1, 2]}  # packed: msgpack has no tuples
    assert [e.seq for e in tl.causal_past(evs[3])] == [1, 2, 3]
