"""HB coverage: abstraction, patterns, novelty, buckets, windows, signatures, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from fuzzer.errors import InputError
from fuzzer.tracker.coverage import (
    TAG_MESSAGE,
    TAG_PAIR,
    TAG_TRIPLE,
    HBCoverage,
    bucket_bits,
    pattern_index,
    pattern_indices,
)
from fuzzer.tracker.timeline import Tracker
from instrumentation import protocol as p
from instrumentation.protocol import Event


class Node:
    """Hand-built events of one node."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0

    def ev(self, kind: int, *fields) -> Event:
        self.seq += 1
        return Event(self.name, self.seq, self.seq, 0, self.seq, kind, tuple(fields))

    def local(self, name: str) -> Event:
        return self.ev(p.LOCAL, name, {})

    def state(self, key: str, value) -> Event:
        return self.ev(p.STATE, key, value)

    def send(self, dst: str, mtype: str, mid: int) -> Event:
        return self.ev(p.SEND, dst, mtype, mid)

    def recv(self, src: str, mtype: str, mid: int) -> Event:
        return self.ev(p.RECV, src, mtype, mid, 0)


def window(cov: HBCoverage, events, new_execution: bool = True):
    if new_execution:
        cov.new_execution()
    cov.open_window()
    for e in events:
        cov.observe(e)
    return cov.close_window()


def test_bucket_classes_are_afl_style():
    counts = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127, 128, 5000], dtype=np.uint32)
    assert bucket_bits(counts).tolist() == [0, 1, 2, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]


def test_vectorised_hash_matches_scalar():
    a = np.array([1, 2**32 - 1, 12345], dtype=np.uint64)
    b = np.array([7, 0, 2**31], dtype=np.uint64)
    c = np.array([0, 99, 2**32 - 5], dtype=np.uint64)
    for tag in (TAG_PAIR, TAG_TRIPLE, TAG_MESSAGE):
        got = pattern_indices(tag, a, b, c, 16).tolist()
        want = [
            pattern_index(tag, int(x), int(y), int(z), 16) for x, y, z in zip(a, b, c, strict=True)
        ]
        assert got == want and all(0 <= i < 65536 for i in got)


def test_same_pattern_twice_is_not_novel_the_second_time():
    cov = HBCoverage()
    n = Node("n1")
    evs = [n.local("a"), n.local("b")]
    first = window(cov, evs)
    # pairs (START,a), (a,b); triples (START,START,a), (START,a,b)
    assert (first.new_hb, first.new_buckets, first.hb_hits, first.events) == (4, 0, 4, 2)
    assert first.novel and cov.hb_coverage() == 4
    again = window(cov, evs)
    assert (again.new_hb, again.new_buckets, again.novel) == (0, 0, False)
    assert cov.hb_coverage() == 4


def test_bucket_change_counts_as_novelty_once():
    cov = HBCoverage()
    n = Node("n1")
    window(cov, [n.local("a"), n.local("b")])
    twice = window(cov, [n.local("a"), n.local("b"), n.local("a"), n.local("b")])
    # new: (b,a), (a,b,a), (b,a,b); (a,b) now hit twice -> its 2-hits bucket is new
    assert (twice.new_hb, twice.new_buckets) == (3, 1)
    again = window(cov, [n.local("a"), n.local("b"), n.local("a"), n.local("b")])
    assert (again.new_hb, again.new_buckets) == (0, 0)
    many = window(cov, [n.local(x) for x in "ab" * 4])  # (a,b) x4 -> bucket 4-7
    assert many.new_hb == 0 and many.new_buckets >= 1


def test_trace_shows_roles_state_buckets_and_message_patterns():
    cov = HBCoverage()
    cov.trace = []
    n1, n2 = Node("n1"), Node("n2")
    r = n2.recv("n1", "vote", 1)  # arrives before its SEND
    s = n1.send("n2", "vote", 1)
    events = [
        n1.state("role", "leader"),
        n1.state("term", 1),
        n1.state("term", 2),
        n1.state("term", 2),
        n1.state("term", 1),
        n2.local("tick"),
        r,
        s,
    ]
    window(cov, events)
    names = {t[-1] for t in cov.trace if t[0] == "pair"}
    assert {
        "?/STATE/role/leader",
        "leader/STATE/term/init",
        "leader/STATE/term/inc",
        "leader/STATE/term/same",
        "leader/STATE/term/dec",
        "leader/SEND/vote/",
        "?/RECV/vote/",
    } <= names
    msgs = [t for t in cov.trace if t[0] == "message"]
    assert msgs == [("message", "leader/SEND/vote/", "?/RECV/vote/", "?/LOCAL/tick/")]
    assert cov.roles() == {"n1": "leader", "n2": "?"}
    assert cov.abstract_id("leader", p.SEND, "vote") in cov.abstract_events()


def test_duplicated_message_counts_the_message_pattern_twice():
    cov = HBCoverage()
    cov.trace = []
    n1, n2 = Node("n1"), Node("n2")
    window(cov, [n1.send("n2", "m", 1), n2.recv("n1", "m", 1), n2.recv("n1", "m", 1)])
    msgs = [t for t in cov.trace if t[0] == "message"]
    assert msgs == [
        ("message", "?/SEND/m/", "?/RECV/m/", "START"),
        ("message", "?/SEND/m/", "?/RECV/m/", "?/RECV/m/"),
    ]


def test_code_edges_novelty():
    cov = HBCoverage()
    n = Node("n1")
    w1 = window(cov, [n.ev(p.COVERAGE, [1, 2]), n.ev(p.COVERAGE, [2])])
    w2 = window(cov, [n.ev(p.COVERAGE, [2, 3, "junk"]), n.ev(p.LOG, "info", "hi")])
    assert (w1.new_edges, w2.new_edges, cov.code_edges()) == (2, 1, 3)
    assert w2.new_hb == 0 and w2.events == 2  # COVERAGE and LOG are not abstract events


def test_window_signature_stable_for_equal_windows():
    cov = HBCoverage()

    def run(roles, mtypes, count):
        cov.new_execution()
        nodes = [Node(f"n{i}") for i in range(len(roles))]
        cov.open_window()
        for node, role in zip(nodes, roles, strict=True):
            cov.observe(node.state("role", role))
        for i in range(count):
            for t in mtypes:
                cov.observe(nodes[0].send("n1", t, i))
                cov.observe(nodes[1].recv("n0", t, i))
        return cov.close_window()

    a = run(["leader", "follower", "follower"], ["append", "ack"], 3)
    b = run(["follower", "leader", "follower"], ["ack", "append"], 10)  # same multiset and types
    c = run(["leader", "leader", "follower"], ["append", "ack"], 3)
    d = run(["leader", "follower", "follower"], ["append"], 3)
    assert a.signature == b.signature and a.signature_text == b.signature_text
    assert a.signature_text == "roles=follower:2,leader:1|recv=ack,append"
    assert len({a.signature, c.signature, d.signature}) == 3
    assert 0 <= a.signature < 2**32


def test_events_between_windows_count_for_coverage_not_for_the_next_window():
    cov = HBCoverage()
    n = Node("n1")
    cov.observe(n.local("a"))
    assert cov.hb_coverage() == 2
    cov.open_window()
    w = cov.close_window()
    assert (w.new_hb, w.events, w.hb_total) == (0, 0, 2)


def test_flush_threshold_gives_the_same_counts():
    n = Node("n1")
    evs = [n.local(x) for x in "abcabcaabbcc" * 50]
    big = HBCoverage()
    small = HBCoverage()
    small.FLUSH_AT = 7
    w1, w2 = window(big, evs), window(small, evs)
    assert (w1.new_hb, w1.hb_hits) == (w2.new_hb, w2.hb_hits)
    assert np.array_equal(big.seen_map(), small.seen_map())


def test_persist_and_restore_maps():
    cov = HBCoverage()
    n1, n2 = Node("n1"), Node("n2")
    evs = [
        n1.state("role", "leader"),
        n1.send("n2", "m", 1),
        n2.recv("n1", "m", 1),
        n2.ev(p.COVERAGE, [10, 20]),
    ]
    window(cov, evs)
    data = cov.to_bytes()
    back = HBCoverage.from_bytes(data)
    assert (back.hb_coverage(), back.code_edges()) == (cov.hb_coverage(), cov.code_edges())
    assert np.array_equal(back.seen_map(), cov.seen_map())
    w = window(back, evs)
    assert (w.new_hb, w.new_buckets, w.new_edges) == (0, 0, 0)
    for bad in (b"", b"junk" * 10, data[:-5]):
        with pytest.raises(InputError, match="cov.bin"):
            HBCoverage.from_bytes(bad, path="cov.bin")


def test_attached_to_tracker_timelines():
    cov = HBCoverage()
    tr = Tracker(on_timeline=cov.attach)
    tr.ingest(
        p.Batch(
            "n1", "e1", 0, 0, [[1, 1, 0, 0, p.SEND, "n2", "m", 1], [2, 2, 0, 0, p.COVERAGE, [5]]]
        )
    )
    tr.ingest(p.Batch("n2", "e1", 0, 0, [[1, 3, 0, 0, p.RECV, "n1", "m", 1, 1]]))
    w = cov.close_window()
    assert w.events == 3 and w.new_edges == 1
    assert w.hb_hits == 5  # per node one pair and one triple, plus the message pattern


def test_worked_example_from_docs():
    """docs/hb-coverage.md section 6, number by number."""
    from fuzzer.tracker.timeline import Timeline

    n1, n2 = Node("n1"), Node("n2")
    e = {
        ("n1", 1): n1.state("role", "candidate"),
        ("n1", 2): n1.state("term", 2),
        ("n1", 3): n1.send("n2", "vote", 1),
        ("n2", 1): n2.state("role", "follower"),
        ("n2", 2): n2.recv("n1", "vote", 1),
        ("n2", 3): n2.send("n1", "vote_ok", 1),
        ("n1", 4): n1.recv("n2", "vote_ok", 1),
        ("n1", 5): n1.state("role", "leader"),
    }
    cov = HBCoverage()
    cov.trace = []

    def run(events, name):
        tl = Timeline(name)
        cov.attach(tl)
        cov.open_window()
        for node in ("n2", "n1"):  # n2's batch arrives first
            tl.add_raw(node, [x.to_wire() for x in events if x.node == node])
        return tl, cov.close_window()

    tl, w = run(list(e.values()), "example")
    assert [(s.node, s.seq, r.node, r.seq) for s, r in tl.edges()] == [
        ("n1", 3, "n2", 2),
        ("n2", 3, "n1", 4),
    ]
    clocks = {k: tl.vector_clock(v) for k, v in e.items()}
    assert clocks == {
        ("n1", 1): {"n1": 1},
        ("n1", 2): {"n1": 2},
        ("n1", 3): {"n1": 3},
        ("n2", 1): {"n2": 1},
        ("n2", 2): {"n1": 3, "n2": 2},
        ("n2", 3): {"n1": 3, "n2": 3},
        ("n1", 4): {"n1": 4, "n2": 3},
        ("n1", 5): {"n1": 5, "n2": 3},
    }
    assert tl.happens_before(e["n1", 2], e["n2", 3]) and tl.concurrent(e["n1", 2], e["n2", 1])
    assert tl.causal_past(e["n1", 4]) == [
        e["n2", 1],
        e["n2", 2],
        e["n2", 3],
        e["n1", 1],
        e["n1", 2],
        e["n1", 3],
    ]
    assert len(cov.trace) == 18
    assert cov.trace[-2:] == [
        ("message", "candidate/SEND/vote/", "follower/RECV/vote/", "?/STATE/role/follower"),
        ("message", "follower/SEND/vote_ok/", "candidate/RECV/vote_ok/", "candidate/SEND/vote/"),
    ]
    assert (
        "triple",
        "candidate/SEND/vote/",
        "candidate/RECV/vote_ok/",
        "candidate/STATE/role/leader",
    ) in cov.trace
    assert (w.signature, w.signature_text) == (
        1316401058,
        "roles=follower:1,leader:1|recv=vote,vote_ok",
    )
    assert (w.events, w.new_hb, w.new_buckets, w.new_edges, w.hb_hits, w.hb_total) == (
        8,
        18,
        0,
        0,
        18,
        18,
    )
    _, again = run(list(e.values()), "again")
    assert (again.signature, again.new_hb, again.new_buckets) == (w.signature, 0, 0)
    variant = [*list(e.values())[:7], Event("n1", 5, 5, 0, 5, p.STATE, ("term", 3))]
    _, v = run(variant, "variant")
    assert v.signature_text == "roles=candidate:1,follower:1|recv=vote,vote_ok" and v.new_hb == 2


def test_signature_ignores_nodes_without_a_role():
    cov = HBCoverage()
    w1 = window(cov, [Node("n1").state("role", "leader")])
    w2 = window(
        cov,
        [
            Node("n1").state("role", "leader"),
            Node("nemesis").ev(p.FAULT, "apply", "kill n2 1s", {}),
        ],
    )
    assert w1.signature == w2.signature and w1.signature_text == "roles=leader:1|recv="
    names = set(cov.abstract_events().values())
    assert "?/FAULT/apply/kill" in names  # faults are just events of their (pseudo-)node


def test_late_batches_of_an_earlier_execution_are_ignored():
    cov = HBCoverage()
    tr = Tracker(on_timeline=cov.attach)
    tr.ingest(p.Batch("n1", "e1", 0, 0, [[1, 1, 0, 0, p.STATE, "role", "leader"]]))
    tr.ingest(p.Batch("n1", "e2", 0, 0, [[1, 1, 0, 0, p.STATE, "role", "follower"]]))
    tr.ingest(p.Batch("n9", "e1", 0, 0, [[1, 1, 0, 0, p.STATE, "role", "leader"]]))  # straggler
    assert cov.roles() == {"n1": "follower"}
    assert len(tr.timeline("e1")) == 2  # the timeline still records it


def test_role_key_and_roles_only_signature():
    cov = HBCoverage(role_key="raft_state", signature_msgs=False)
    n1, n2 = Node("n1"), Node("n2")
    w = window(
        cov, [n1.state("raft_state", "leader"), n1.send("n2", "m", 1), n2.recv("n1", "m", 1)]
    )
    assert cov.roles() == {"n1": "leader", "n2": "?"}
    assert w.signature_text == "roles=leader:1"
    assert "leader/SEND/m/" in cov.abstract_events().values()
