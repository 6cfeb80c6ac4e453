"""Event-stream invariants on hand-built traces: each fires on a violating trace
and stays silent on a correct one, online (tracker Timeline listener) and
offline (saved events, a tiny pure HB view) with the same verdicts."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from fuzzer.checkers import invariants as inv
from fuzzer.checkers.invariants import Breach, InvariantSet, check_trace
from fuzzer.errors import ConfigError
from fuzzer.tracker.timeline import Timeline
from instrumentation import protocol as p
from instrumentation.protocol import Event


class Trace:
    """Builds events per node with correct sequence numbers and Lamport clocks."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._seq: dict[str, int] = defaultdict(int)
        self._clock: dict[str, int] = defaultdict(int)
        self._sent: dict[tuple[str, int], int] = {}

    def _ev(self, node: str, kind: int, *fields, lamport: int | None = None) -> Event:
        self._seq[node] += 1
        self._clock[node] = max(self._clock[node], lamport or 0) + 1
        ev = Event(node, self._seq[node], self._clock[node], 0, self._seq[node], kind, fields)
        self.events.append(ev)
        return ev

    def state(self, node, key, value):
        return self._ev(node, p.STATE, key, value)

    def apply(self, node, index, term, digest):
        return self._ev(node, p.APPLY, index, term, digest)

    def local(self, node, name, **attrs):
        return self._ev(node, p.LOCAL, name, attrs)

    def exit(self, node):
        return self._ev(node, p.EXIT, "killed", -9)

    def send(self, node, dst, mtype, mid):
        ev = self._ev(node, p.SEND, dst, mtype, mid)
        self._sent[(node, mid)] = ev.lamport
        return ev

    def recv(self, node, src, mtype, mid):
        stamp = self._sent[(src, mid)]
        return self._ev(node, p.RECV, src, mtype, mid, stamp, lamport=stamp)


class TinyHB:
    """A pure HB view for offline tests: program order plus SEND->RECV edges,
    answered by graph search (fine for a few dozen events)."""

    def __init__(self, events: list[Event]) -> None:
        self.preds: dict[tuple, list[Event]] = defaultdict(list)
        last: dict[str, Event] = {}
        sends = {(e.node, e.fields[2]): e for e in events if e.kind == p.SEND}
        for e in sorted(events, key=lambda e: (e.node, e.seq)):
            if e.node in last:
                self.preds[e[:2]].append(last[e.node])
            last[e.node] = e
            if e.kind == p.RECV and (e.fields[0], e.fields[2]) in sends:
                self.preds[e[:2]].append(sends[(e.fields[0], e.fields[2])])

    def causal_past(self, e: Event) -> list[Event]:
        seen: dict[tuple, Event] = {}
        stack = list(self.preds[e[:2]])
        while stack:
            x = stack.pop()
            if x[:2] not in seen:
                seen[x[:2]] = x
                stack.extend(self.preds[x[:2]])
        return sorted(seen.values(), key=lambda x: (x.node, x.seq))

    def happens_before(self, a: Event, b: Event) -> bool:
        return any(x[:2] == a[:2] for x in self.causal_past(b))


SPECS = [
    {"name": "one-leader-per-term"},
    {"name": "state-machine-safety"},
    {"name": "monotonic", "key": "commit_index"},
    {"name": "monotonic", "key": "term", "reset_on_exit": False},
    {"name": "match-index-monotonic"},
]


def online(events: list[Event], specs=SPECS, order=None) -> list:
    tl = Timeline("t")
    iset = InvariantSet.from_config(specs)
    iset.attach(tl)
    for ev in order or events:
        tl.add(ev)
    assert tl.listener_errors == 0
    return iset.verdicts()


def offline(events: list[Event], specs=SPECS) -> list:
    return InvariantSet.from_config(specs, TinyHB(events)).run(events)


def summary(verdicts) -> list[tuple]:
    return sorted((v.status, v.name, tuple((e.node, e.seq) for e in v.offending)) for v in verdicts)


def violations(verdicts):
    return [v for v in verdicts if v.violated]


def check_both(t: Trace) -> list:
    """Run online and offline (both HB views), assert identical verdicts, return them."""
    a, b, c = online(t.events), offline(t.events), check_trace(SPECS, t.events)
    assert summary(a) == summary(b) == summary(c)
    for va, vb in zip(violations(a), violations(b), strict=True):
        assert va.context == vb.context  # causal past: same from Timeline and TinyHB
    return a


# --- one leader per term -----------------------------------------------------------------


def election(t: Trace, cand: str, term: int, voters: list[str], mid: int) -> Event:
    t.state(cand, "term", term)
    for v in voters:
        t.send(cand, v, "vote_req", mid)
        t.recv(v, cand, "vote_req", mid)
        t.send(v, cand, "vote", mid)
        t.recv(cand, v, "vote", mid)
    return t.state(cand, "role", "leader")


def test_two_leaders_in_one_term_fire_with_causal_past():
    t = Trace()
    l1 = election(t, "n1", 1, ["n2"], 1)
    l2 = election(t, "n3", 1, ["n2"], 2)  # n2 votes twice in term 1: the bug
    later = t.state("n2", "commit_index", 0)
    vs = violations(check_both(t))
    assert [v.name for v in vs] == ["one-leader-per-term"]
    v = vs[0]
    assert set(v.offending) == {l1, l2} and v.details["term"] == 1
    assert v.oracle == "invariant" and v.signature == ("invariant", "one-leader-per-term")
    # the votes that made each a leader are in the causal past; n2's later event is not
    vote_sends = {e for e in t.events if e.kind == p.SEND and e.fields[1] == "vote"}
    assert vote_sends <= set(v.context)
    assert later not in v.context and l1 not in v.context
    lamports = [e.lamport for e in v.context]
    assert lamports == sorted(lamports)


def test_leaders_in_different_terms_and_stepping_down_are_silent():
    t = Trace()
    election(t, "n1", 1, ["n2"], 1)
    # n1 learns of term 2 (term first, then role, per the convention) and n3 wins term 2
    t.state("n1", "term", 2)
    t.state("n1", "role", "follower")
    election(t, "n3", 2, ["n2"], 2)
    assert not violations(check_both(t))


# --- state machine safety ----------------------------------------------------------------


def test_state_machine_safety():
    t = Trace()
    t.apply("n1", 1, 1, "put x 1")
    t.apply("n2", 1, 1, "put x 1")
    t.apply("n2", 2, 1, "put y 2")
    assert not violations(check_both(t))
    a = t.apply("n1", 2, 2, "put y 3")
    vs = violations(check_both(t))
    assert [v.name for v in vs] == ["state-machine-safety"]
    assert a in vs[0].offending and vs[0].details["index"] == 2


# --- monotonicity ----------------------------------------------------------------------------


def test_commit_index_decrease_fires_but_restart_resets():
    t = Trace()
    for i in (1, 2, 2, 3):
        t.state("n1", "commit_index", i)
    t.state("n2", "commit_index", 1)  # other nodes are separate
    t.exit("n1")
    t.state("n1", "commit_index", 0)  # volatile: restarts from 0 after a crash
    assert not violations(check_both(t))
    bad = t.state("n1", "commit_index", -1)
    vs = violations(check_both(t))
    assert [v.name for v in vs] == ["monotonic(commit_index)"]
    assert vs[0].offending[1] == bad and vs[0].details["before"] == 0


def test_term_must_survive_restarts():
    t = Trace()
    t.state("n1", "term", 3)
    t.exit("n1")
    t.state("n1", "term", 1)  # persistent state lost: a bug
    t.state("n1", "term", 0)  # the same breach again: reported once
    vs = violations(check_both(t))
    assert [v.name for v in vs] == ["monotonic(term)"]


def test_monotonic_glob_strict_and_non_numbers():
    t = Trace()
    t.state("n1", "applied.a", 1)
    t.state("n1", "applied.b", 5)
    t.state("n1", "applied.a", None)  # skipped
    t.state("n1", "applied.a", 2)
    specs = [{"name": "monotonic", "key": "applied.*", "strict": True}]
    assert not violations(online(t.events, specs))
    t.state("n1", "applied.b", 5)
    vs = violations(online(t.events, specs))
    assert len(vs) == 1 and vs[0].details["key"] == "applied.b"
    assert summary(vs) == summary(violations(offline(t.events, specs)))


# --- match index -------------------------------------------------------------------------------


def test_match_index_within_a_term():
    t = Trace()
    election(t, "n1", 1, ["n2"], 1)
    t.state("n1", "match_index.n2", 3)
    t.state("n1", "match_index.n3", 1)
    t.state("n1", "role", "follower")
    t.state("n1", "match_index.n2", 0)  # not leader: ignored
    election(t, "n1", 2, ["n2"], 2)
    t.state("n1", "match_index.n2", 0)  # a new term starts over
    t.state("n1", "match_index.n2", 4)
    assert not violations(check_both(t))
    t.state("n1", "match_index.n2", 2)
    vs = violations(check_both(t))
    assert [v.name for v in vs] == ["match-index-monotonic"]
    assert vs[0].details == {"leader": "n1", "term": 2, "peer": "n2"}


# --- arrival order -----------------------------------------------------------------------------


def interleave(events: list[Event], rng: random.Random) -> list[Event]:
    """A random arrival order that keeps each node's own order (as the tracker sees it)."""
    queues: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        queues[e.node].append(e)
    out = []
    while queues:
        node = rng.choice(sorted(queues))
        out.append(queues[node].pop(0))
        if not queues[node]:
            del queues[node]
    return out


def test_verdicts_do_not_depend_on_cross_node_arrival_order(rng):
    t = Trace()
    election(t, "n1", 1, ["n2", "n3"], 1)
    t.apply("n1", 1, 1, "a")
    t.apply("n2", 1, 1, "b")
    election(t, "n2", 1, ["n3"], 2)
    t.state("n2", "commit_index", 4)
    t.state("n2", "commit_index", 3)
    expected = summary(violations(offline(t.events)))
    assert [name for _, name, _ in expected] == [
        "monotonic(commit_index)",
        "one-leader-per-term",
        "state-machine-safety",
    ]
    for _ in range(5):
        got = online(t.events, order=interleave(t.events, rng))
        assert summary(violations(got)) == expected


# --- user invariants ------------------------------------------------------------------------------


def commit_needs_ack(ev: Event, ctx) -> str | None:
    """A LOCAL 'commit' must causally follow the RECV of some 'ack'."""
    if ev.kind != p.LOCAL or ev.field("name") != "commit":
        return None
    if any(e.kind == p.RECV and e.field("msg_type") == "ack" for e in ctx.causal_past(ev)):
        return None
    return f"{ev.node} committed with no ack in its causal past"


class AckedBy(inv.Invariant):
    """Class form with a parameter: the ack must come from a given node (uses happens_before)."""

    def __init__(self, sender: str):
        self.name = f"acked-by({sender})"
        self.sender = sender
        self.acks: list[Event] = []

    def observe(self, ev, ctx):
        if ev.kind == p.SEND and ev.node == self.sender and ev.field("msg_type") == "ack":
            self.acks.append(ev)
        if ev.kind == p.LOCAL and ev.field("name") == "commit":
            if not any(ctx.happens_before(a, ev) for a in self.acks):
                return Breach("commit not after an ack from " + self.sender, (ev,), key=ev[:2])
        return None


USER = [
    {"name": f"{__name__}:commit_needs_ack"},
    {"name": f"{__name__}:AckedBy", "sender": "n2"},
]


def test_user_invariants_with_hb_queries():
    t = Trace()
    t.send("n2", "n1", "ack", 1)
    t.recv("n1", "n2", "ack", 1)
    t.local("n1", "commit", index=1)
    assert not violations(online(t.events, USER))
    t.send("n3", "n1", "ack", 2)  # an ack from n3, concurrent with...
    bad = t.local("n3", "commit", index=2)  # ...n3's own commit: neither rule holds
    on, off = online(t.events, USER), offline(t.events, USER)
    assert summary(on) == summary(off)
    names = sorted(v.name for v in violations(on))
    assert names == ["acked-by(n2)", f"{__name__}:commit_needs_ack"]
    assert all(v.offending == (bad,) for v in violations(on))


def test_a_raising_invariant_is_reported_unknown_and_the_rest_go_on():
    def broken(ev, ctx):
        raise ZeroDivisionError("oops")

    t = Trace()
    t.apply("n1", 1, 1, "a")
    t.apply("n2", 1, 1, "b")
    iset = InvariantSet([inv.FunctionInvariant(broken), inv.StateMachineSafety()])
    verdicts = iset.run(t.events)
    assert sorted((v.name, v.status) for v in verdicts) == [
        ("broken", "unknown"),
        ("state-machine-safety", "violated"),
    ]
    assert "ZeroDivisionError" in next(v for v in verdicts if v.unknown).explanation
    assert all(v.context == () for v in verdicts)  # no HB view given: no causal past


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"key": "x"}, "needs a 'name'"),
        ({"name": "two-leaders"}, "unknown invariant 'two-leaders'; valid: match-index"),
        ({"name": "monotonic"}, "invariants.monotonic: bad parameters"),
        ({"name": "monotonic", "key": ""}, "non-empty 'key'"),
        ({"name": "one-leader-per-term", "rol": "x"}, "unexpected keyword"),
        ({"name": "no.such.module:x"}, "cannot import"),
        ({"name": f"{__name__}:commit_needs_ack", "x": 1}, "takes no parameters"),
    ],
)
def test_bad_config_names_file_and_key(spec, match):
    with pytest.raises(ConfigError, match=match) as err:
        InvariantSet.from_config([spec], source="raft.toml")
    assert str(err.value).startswith("raft.toml: invariants")


def test_register_invariant_and_ok_verdicts():
    inv.register_invariant(
        "no-logs",
        lambda: inv.FunctionInvariant(
            lambda ev, ctx: "a log" if ev.kind == p.LOG else None, name="no-logs"
        ),
    )
    try:
        t = Trace()
        t.state("n1", "term", 1)
        vs = online(t.events, [{"name": "no-logs"}, {"name": "state-machine-safety"}])
        assert [(v.name, v.status) for v in vs] == [
            ("no-logs", "ok"),
            ("state-machine-safety", "ok"),
        ]
        assert vs[0].explanation == "held over 1 events"
    finally:
        del inv.REGISTRY["no-logs"]


def test_invariants_only_see_the_kinds_they_ask_for():
    seen: dict[str, list[int]] = {"all": [], "apply": []}

    class Spy(inv.Invariant):
        def __init__(self, tag, kinds):
            self.name, self.tag, self.kinds = tag, tag, kinds

        def observe(self, ev, ctx):
            seen[self.tag].append(ev.kind)

    t = Trace()
    t.state("n1", "term", 1)
    t.send("n1", "n2", "x", 1)
    t.apply("n1", 1, 1, "a")
    iset = InvariantSet([Spy("all", None), Spy("apply", frozenset({p.APPLY}))])
    iset.run(t.events)
    assert seen == {"all": [p.STATE, p.SEND, p.APPLY], "apply": [p.APPLY]}
    assert iset.events == 3 and iset.ctx.state("n1", "term") == 1
