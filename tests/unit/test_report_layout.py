"""The report's diagram data: lanes, HB-consistent x, fault regions, highlights, ops."""

from __future__ import annotations

from fuzzer.checkers import linearizability
from fuzzer.checkers.verdict import violated
from fuzzer.report.layout import build_diagram, fault_regions, lane_order, logical_x
from fuzzer.report.synthetic import synthetic_run
from fuzzer.tracker.timeline import Timeline
from fuzzer.workload.history import HistoryRecorder
from instrumentation import protocol as P
from instrumentation.protocol import Event


class Trace:
    """Builds a small trace with correct Lamport clocks (a hand-written execution)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lam: dict[str, int] = {}
        self.seq: dict[str, int] = {}
        self.mono = 1_000_000
        self.ids = 0

    def _emit(self, node: str, kind: int, fields: tuple, lamport: int) -> Event:
        self.mono += 1000
        self.seq[node] = self.seq.get(node, 0) + 1
        self.lam[node] = lamport
        e = Event(node, self.seq[node], lamport, self.mono, self.mono, kind, fields)
        self.events.append(e)
        return e

    def local(self, node: str, kind: int = P.STATE, fields: tuple = ("role", "leader")) -> Event:
        return self._emit(node, kind, fields, self.lam.get(node, 0) + 1)

    def send(self, src: str, dst: str, mtype: str = "append") -> Event:
        self.ids += 1
        return self._emit(src, P.SEND, (dst, mtype, self.ids), self.lam.get(src, 0) + 1)

    def recv(self, send: Event) -> Event:
        dst, mtype, mid = send.fields
        lam = max(self.lam.get(dst, 0), send.lamport) + 1
        return self._emit(dst, P.RECV, (send.node, mtype, mid, send.lamport), lam)

    def fault(self, action: str, text: str) -> Event:
        self.mono += 1000
        k = sum(1 for e in self.events if e.node == "nemesis") + 1
        e = Event("nemesis", k, k, self.mono, self.mono, P.FAULT, (action, text, {}))
        self.events.append(e)
        return e


def small_trace() -> tuple[Trace, Event]:
    t = Trace()
    a = t.send("n1", "n2")
    t.recv(a)
    t.fault("apply", "partition isolate n3")
    b = t.send("n2", "n3", "vote")  # lost: n3 is isolated
    c = t.send("n2", "n1", "ack")
    t.local("n3")
    t.recv(c)
    t.fault("undo", "heal")
    d = t.send("n1", "n3", "append")
    t.recv(d)
    bad = t.local("n3", P.VIOLATION, ("two-leaders", {"term": 2}))
    t.local("c1", P.LOG, ("info", "</script><!-- x"))
    assert b.kind == P.SEND
    return t, bad


def test_lane_order_puts_servers_then_clients_then_others_in_natural_order():
    assert lane_order(["c2", "lin-kv", "n10", "n2", "c10", "n1"]) == [
        "n1", "n2", "n10", "c2", "c10", "lin-kv"]


def test_diagram_of_a_small_trace():
    t, bad = small_trace()
    g = build_diagram(t.events, None, [])
    assert g["lanes"] == ["n1", "n2", "n3", "c1"]
    assert g["counts"]["events"] == len(t.events) - 2  # the nemesis' two FAULT events
    assert g["counts"]["arrows"] == 3
    assert g["counts"]["drops"] == 1  # the vote to the isolated n3
    assert g["types"] == ["append", "ack"] or set(g["types"]) == {"append", "ack"}
    # one region: the partition, from its apply to the heal, on n3
    (r,) = g["faults"]
    assert r["text"] == "partition isolate n3" and r["undo"] == "heal" and not r["open"]
    assert r["lanes"] == [2] and r["t1"] > r["t0"]
    # the VIOLATION event is offending; its causal past (by the real timeline) is context
    ev = g["ev"]
    tl = Timeline()
    for e in t.events:
        if e.node != "nemesis":
            tl.add(e)
    past = {(e.node, e.seq) for e in tl.causal_past(bad)}
    order = [(n, e.seq) for n in g["lanes"] for e in t.events if e.node == n]
    flagged = {order[i]: h for i, h in enumerate(ev["hl"]) if h}
    assert flagged.pop((bad.node, bad.seq)) == 2
    assert set(flagged) == past and set(flagged.values()) == {1}


def test_logical_x_is_consistent_with_happens_before(rng):
    run = synthetic_run(rng, events=3000, nodes=4)
    g = build_diagram(run.events, run.history, run.verdicts)
    ev, x = g["ev"], g["ev"]["x"]
    for s, r in zip(g["arrows"]["s"], g["arrows"]["r"], strict=True):
        assert x[s] < x[r]
    for lane in range(len(g["lanes"])):
        xs = [x[i] for i in range(len(x)) if ev["lane"][i] == lane]
        assert all(a < b for a, b in zip(xs, xs[1:], strict=False))
    assert g["counts"]["offending"] == 1 and g["counts"]["highlighted"] > 1


def test_logical_x_survives_a_cycle_of_bogus_edges():
    # lane 0: event 0 waits for event 1 (lane 1), which waits for event 0
    x = logical_x([[0], [1]], {0: 1, 1: 0}, [5, 3])
    assert sorted(x) == [1, 2]


def test_fault_regions_pair_apply_and_undo_by_slot():
    names = ["n1", "n2", "n3"]
    rows = [
        (1, 1.0, "apply", "kill n2", {}),
        (2, 2.0, "apply", "partition majority-minority n1,n3|n2", {}),
        (3, 3.0, "apply", "partition isolate n1", {}),  # supersedes the first partition
        (4, 4.0, "undo", "start n2", {}),
        (5, 5.0, "apply", "restart n3", {}),  # instantaneous
        (6, 6.0, "apply", "link-drop n1->n2 30%", {}),  # never undone: open
        (7, 7.0, "apply", "pause n3", {"error": "ClusterError: no such node"}),
    ]
    regs = fault_regions(rows, names)
    by = {r["text"]: r for r in regs}
    assert by["kill n2"]["x1"] == 4 and by["kill n2"]["undo"] == "start n2"
    assert by["kill n2"]["lanes"] == ["n2"]
    first = by["partition majority-minority n1,n3|n2"]
    assert first["x1"] == 3 and first["lanes"] == ["n2"] and not first["open"]
    assert by["partition isolate n1"]["open"] and by["partition isolate n1"]["lanes"] == ["n1"]
    assert by["restart n3"]["x0"] == by["restart n3"]["x1"] == 5
    assert by["link-drop n1->n2 30%"]["open"]
    assert by["pause n3"]["error"] and not by["pause n3"]["open"]
    assert "start n2" not in by  # an undo that closed something is not a region of its own


def test_unlinearisable_ops_are_flagged_from_a_real_checker_result():
    clock = iter(range(1, 1000))
    rec = HistoryRecorder(clock=lambda: next(clock))
    h = rec.invoke(0, "write", 1)
    rec.ok(h)
    h = rec.invoke(1, "read")
    rec.ok(h, 2)  # nobody wrote 2
    history = rec.history()
    result = linearizability.check(history, "register")
    assert result.verdict == "not-linearizable"
    g = build_diagram([], history, [result])
    assert g["oplanes"] == ["p0", "p1"]
    assert g["ops"]["hl"] == [0, 2]
    assert g["ops"]["st"] == ["ok", "ok"]
    assert g["counts"]["offending_ops"] == 1


def test_an_offending_event_in_a_verdict_is_highlighted_with_its_causal_past():
    t, _ = small_trace()
    target = next(e for e in t.events if e.kind == P.RECV and e.node == "n1")
    events = [e for e in t.events if e.kind != P.VIOLATION]
    v = violated("invariant", "stale", "n1 acted on a stale ack", [target._asdict()])
    g = build_diagram(events, None, [v.to_dict()])
    assert g["counts"]["offending"] == 1
    assert g["counts"]["highlighted"] >= 3  # the RECV, its SEND, and n1/n2 before it
