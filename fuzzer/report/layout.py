"""The space-time diagram as data: lanes, placed events, arrows, fault regions, op bars.

Why a pure core apart from the HTML: everything the page draws is decided
here (lane order, x positions, which events are highlighted, how fault
apply/undo events pair into regions) and can be unit-tested without a
browser; the page's script only draws what this data says.

Two x axes are computed for every item:

- ``x`` (logical): a Lamport clock *recomputed from the HB graph* (program
  order plus the message edges the real :class:`~fuzzer.tracker.timeline.Timeline`
  matched). It is consistent with happens-before even when a node reported
  odd Lamport values, and has no gaps (one column per causal step);
- ``t`` (real time): milliseconds of the monotonic clock since the first
  event. Nodes, the mediator, the nemesis and the history recorder all stamp
  ``time.monotonic_ns`` on this machine, so these line up.

FAULT events (the nemesis' lane) and client operations are not in the HB
graph; their logical x comes from their monotonic time, mapped through the
node events (the largest logical x reached by any node event at that time).

The data is columnar (one list per attribute) so tens of thousands of
events stay small in the page and cheap to parse.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuzzer.report.faultspans import fault_regions
from fuzzer.report.inputs import history_of, op_text, to_event, verdict_dicts
from fuzzer.tracker.timeline import Timeline
from fuzzer.workload.history import History
from instrumentation import protocol as P
from instrumentation.errors import ProtocolError
from instrumentation.protocol import Event

__all__ = ["build_diagram", "fault_regions", "logical_x", "lane_order", "NEMESIS"]

NEMESIS = "nemesis"
HL_NONE, HL_CONTEXT, HL_OFFENDING = 0, 1, 2
_DETAIL_MAX = 240
_LABEL_MAX = 28


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def lane_order(nodes: Iterable[str]) -> list[str]:
    """Servers (``n1``..) first, then clients (``c1``..), then anything else; natural order."""

    def rank(name: str) -> tuple:
        if re.fullmatch(r"n\d+", name):
            group = 0
        elif re.fullmatch(r"c\d+", name):
            group = 1
        else:
            group = 2
        return (group, _natural(name))

    return sorted(set(nodes), key=rank)


def _short(v: Any, limit: int) -> str:
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def event_label(e: Event) -> str:
    """A few characters drawn next to the event when zoomed in."""
    k, f = e.kind, e.fields
    if k == P.SEND:
        return f"{f[1]}→{f[0]}"
    if k == P.RECV:
        return f"{f[1]}←{f[0]}"
    if k == P.STATE:
        return _short(f"{f[0]}={_short(f[1], 16)}", _LABEL_MAX)
    if k == P.LOCAL or k == P.VIOLATION:
        return _short(f[0], _LABEL_MAX)
    if k == P.APPLY:
        return f"apply {f[0]}"
    if k == P.COVERAGE:
        return f"+{len(f[0]) if isinstance(f[0], list | tuple) else '?'} edges"
    if k == P.LOG:
        return _short(f[1], _LABEL_MAX)
    if k == P.EXIT:
        return _short(f"exit {f[0]}", _LABEL_MAX)
    if k == P.FAULT:
        return _short(f"{f[0]} {f[1]}", _LABEL_MAX)
    return P.KIND_NAMES.get(k, str(k))


def event_detail(e: Event) -> str:
    """The event's fields, one line, for the page's details box."""
    names = P.FIELDS.get(e.kind, ())
    parts = [f"{n}={_short(v, 80)}" for n, v in zip(names, e.fields, strict=False)]
    return _short(
        f"{e.node}#{e.seq} {P.KIND_NAMES.get(e.kind, e.kind)} lamport={e.lamport} "
        + " ".join(parts),
        _DETAIL_MAX,
    )


def logical_x(
    order: Sequence[Sequence[int]], src: Mapping[int, int], lamport: Sequence[int]
) -> list[int]:
    """Recomputed Lamport clocks: ``x[i] = max(x[prev on node], x[send of i]) + 1``.

    ``order``: per lane, the event indices in program order; ``src``: RECV index
    -> SEND index. An edge that would wait forever (a cycle, only with bogus
    ids) is dropped, choosing the blocked lane whose head has the smallest
    reported Lamport time.
    """
    n = sum(len(o) for o in order)
    x = [0] * n
    done = [False] * n
    ptr = [0] * len(order)
    left = n
    forced: set[int] = set()
    while left:
        progress = False
        for lane, evs in enumerate(order):
            p = ptr[lane]
            prev = x[evs[p - 1]] if p else 0
            while p < len(evs):
                i = evs[p]
                s = src.get(i)
                if s is not None and not done[s] and i not in forced:
                    break
                v = prev + 1
                if s is not None and done[s] and x[s] + 1 > v:
                    v = x[s] + 1
                x[i] = prev = v
                done[i] = True
                p += 1
                left -= 1
                progress = True
            ptr[lane] = p
        if not progress:
            heads = [evs[ptr[lane]] for lane, evs in enumerate(order) if ptr[lane] < len(evs)]
            forced.add(min(heads, key=lambda i: lamport[i]))
    return x


class _TimeMap:
    """Monotonic time -> logical x, through the node events (a step function)."""

    def __init__(self, monos: Sequence[int], xs: Sequence[int]) -> None:
        pairs = sorted(zip(monos, xs, strict=True))
        self.monos = [m for m, _ in pairs]
        best = 0
        self.xs = []
        for _, x in pairs:
            best = max(best, x)
            self.xs.append(best)

    def __call__(self, mono: int) -> float:
        k = bisect.bisect_right(self.monos, mono)
        return (self.xs[k - 1] + 0.5) if k else 0.5


class _LaneTime:
    """Monotonic time -> logical x on one lane: where an instant falls between the
    lane's own events (so a fault or an op lines up with that lane's dots)."""

    def __init__(self, monos: Sequence[int], xs: Sequence[int]) -> None:
        pairs = sorted(zip(monos, xs, strict=True))
        self.monos = [m for m, _ in pairs]
        self.xs = [x for _, x in pairs]

    def after(self, mono: int, end: float) -> float:
        """Just before the lane's first event at or after ``mono`` (``end`` if none)."""
        k = bisect.bisect_left(self.monos, mono)
        return self.xs[k] - 0.5 if k < len(self.xs) else end

    def before(self, mono: int) -> float:
        """Just after the lane's last event at or before ``mono``."""
        k = bisect.bisect_right(self.monos, mono)
        return self.xs[k - 1] + 0.5 if k else 0.0


def _key(e: Event) -> tuple:
    return (e.node, e.seq, e.lamport, e.kind, e.mono_ns)


def _ident(d: Mapping[str, Any]) -> tuple | None:
    """The key of an event given as a dict (with ``mono_ns`` when it has one)."""
    try:
        key = (str(d["node"]), int(d["seq"]), int(d["lamport"]), int(d["kind"]))
    except (KeyError, TypeError, ValueError):
        return None
    mono = d.get("mono_ns")
    return (*key, mono) if isinstance(mono, int) else key


def _reply_event(
    op: Any, lane_of: Mapping[str, int], order: Sequence[Sequence[int]], ordered: Sequence[Event]
) -> int | None:
    """The RECV that completed ``op`` on its client's lane, if that lane is known.

    The Maelstrom workloads name process ``p``'s client ``c<p+1>``; the reply
    is the last RECV on that lane between the op's invocation and completion.
    """
    lane = lane_of.get(f"c{op.process + 1}")
    if lane is None or op.complete_time is None:
        return None
    found = None
    for i in order[lane]:
        e = ordered[i]
        if e.mono_ns > op.complete_time:
            break
        if e.kind == P.RECV and e.mono_ns >= op.invoke_time:
            found = i
    return found


def build_diagram(
    events: Iterable[Any],
    history: Any = None,
    verdicts: Iterable[Any] = (),
    *,
    node_names: Sequence[str] | None = None,
    nemesis: str = NEMESIS,
) -> dict[str, Any]:
    """The diagram's data (see the module docstring and ``fuzzer/report/assets.py``).

    ``events``: Events or their stored forms; ``history``: a History (or its
    stored forms); ``verdicts``: Verdicts, linearizability results or dicts;
    ``node_names``: the cluster's node names in index order (default: the
    ``n<k>`` lanes), used to place node-targeted faults.
    """
    evs = [to_event(e, f"events[{i}]") for i, e in enumerate(events)]
    hist: History | None = history_of(history)
    vdicts = verdict_dicts(verdicts)
    warnings: list[str] = []

    faults = [e for e in evs if e.kind == P.FAULT or e.node == nemesis]
    evs = [e for e in evs if not (e.kind == P.FAULT or e.node == nemesis)]
    per_node: dict[str, list[Event]] = {}
    for e in evs:
        per_node.setdefault(e.node, []).append(e)
    # program order is the order the events were stored in (the tracker's arrival order
    # per node), not seq: a node reported by its instrumentation and by the mediator has
    # two interleaved seq counters
    lanes = lane_order(per_node)

    # The real timeline: message matching and causal pasts.
    tl = Timeline("report")
    ordered: list[Event] = []
    for name in lanes:
        try:  # fast path: the node's events in one batch (all-or-nothing)
            tl.add_raw(name, [e.to_wire() for e in per_node[name]])
            ordered.extend(per_node[name])
            continue
        except ProtocolError:
            pass
        for e in per_node[name]:  # find and skip the unusable ones
            try:
                tl.add(e)
            except ProtocolError as exc:
                warnings.append(f"skipped {e.node}#{e.seq}: {exc}")
                continue
            ordered.append(e)
    # identity of an event: as the tracker's (node, seq, lamport, kind, mono); a node
    # reported by both its instrumentation and the mediator may repeat seq numbers
    index: dict[tuple, int] = {}
    for i, e in enumerate(ordered):
        index.setdefault(_key(e), i)
        index.setdefault(_key(e)[:4], i)
    lane_of = {name: k for k, name in enumerate(lanes)}
    order: list[list[int]] = [[] for _ in lanes]
    for i, e in enumerate(ordered):
        order[lane_of[e.node]].append(i)
    src: dict[int, int] = {}
    arrows_s, arrows_r, arrows_ty = [], [], []
    types: dict[str, int] = {}
    received: set[int] = set()
    for s, r in tl.edges():
        si = index[_key(s)]
        ri = index[_key(r)]
        src[ri] = si
        received.add(si)
        arrows_s.append(si)
        arrows_r.append(ri)
        arrows_ty.append(types.setdefault(str(s.fields[1]), len(types)))
    xs = logical_x(order, src, [e.lamport for e in ordered])

    monos = [e.mono_ns for e in ordered]
    hist_ops = hist.operations() if hist is not None and len(hist) else ()
    all_monos = monos + [f.mono_ns for f in faults] + [op.invoke_time for op in hist_ops]
    t0 = min(all_monos) if all_monos else 0
    tmap = _TimeMap(monos, xs) if ordered else None

    def t_of(mono: int | None) -> float:
        return round((mono - t0) / 1e6, 3) if mono is not None else 0.0

    def x_of(mono: int) -> float:
        return tmap(mono) if tmap is not None else 0.5

    # Highlights: offending events (and VIOLATION events), their causal past.
    hl = [HL_NONE] * len(ordered)
    offending_ops: set[tuple] = set()
    lin_key: list[Any] = []
    for v in vdicts:
        if v.get("status") != "violated":
            continue
        details = v.get("details") or {}
        if details.get("key") is not None and "prefix_length" in details:
            lin_key.append(details["key"])
        for item in v.get("offending") or ():
            d = item._asdict() if isinstance(item, Event) else item
            if not isinstance(d, Mapping):
                continue
            ident = _ident(d)
            if ident is not None and ident in index:
                hl[index[ident]] = HL_OFFENDING
            elif "invoke_index" in d or "process" in d:
                offending_ops.add((d.get("process"), d.get("invoke_index")))
        for item in v.get("context") or ():
            d = item._asdict() if isinstance(item, Event) else item
            ident = _ident(d) if isinstance(d, Mapping) else None
            if ident is not None and ident in index and hl[index[ident]] == HL_NONE:
                hl[index[ident]] = HL_CONTEXT
    for i, e in enumerate(ordered):
        if e.kind == P.VIOLATION:
            hl[i] = HL_OFFENDING
    for op in hist_ops:  # an offending op's reply, on its client's lane (Maelstrom: c<p+1>)
        if (op.process, op.invoke_index) in offending_ops:
            i = _reply_event(op, lane_of, order, ordered)
            if i is not None:
                hl[i] = HL_OFFENDING
    for i in [i for i, h in enumerate(hl) if h == HL_OFFENDING]:
        for c in tl.causal_past(ordered[i]):
            j = index.get(_key(c))
            if j is not None and hl[j] == HL_NONE:
                hl[j] = HL_CONTEXT

    # Dropped messages: SENDs whose message never arrived (to a known lane).
    drops = [
        i for i, e in enumerate(ordered)
        if e.kind == P.SEND and i not in received and e.fields[0] in lane_of
    ]

    # Faults, on the node names in index order.
    names = list(node_names) if node_names else [n for n in lanes if re.fullmatch(r"n\d+", n)]
    fault_rows = []
    for f in sorted(faults, key=lambda e: (e.mono_ns, e.seq)):
        if f.kind != P.FAULT:
            continue
        action, text, attrs = f.fields
        fault_rows.append((x_of(f.mono_ns), t_of(f.mono_ns), str(action), str(text),
                           attrs if isinstance(attrs, Mapping) else {}))
    regions = fault_regions(fault_rows, names)
    lane_time = [_LaneTime([monos[i] for i in o], [xs[i] for i in o]) for o in order]
    end_x = max(xs, default=0) + 1 if ordered else (len(hist) if hist is not None else 0) + 1
    fault_monos = [f.mono_ns for f in sorted(faults, key=lambda e: (e.mono_ns, e.seq))
                   if f.kind == P.FAULT]
    by_t = {t_of(m): m for m in fault_monos}
    for r in regions:
        r["lanes"] = [lane_of[n] for n in r["lanes"] if n in lane_of]
        m0, m1 = by_t.get(r["t0"], 0), by_t.get(r["t1"], 0)
        # per lane [x0, x1] on the logical axis: from just after the lane's last event
        # before the fault to just before its first event after it (a killed node's gap)
        r["lx"] = [[lt.before(m0), end_x if r["open"] else lt.after(m1, end_x)]
                   for lt in lane_time]

    # Client operations: one lane per process.
    ops_out: dict[str, list] = {k: [] for k in ("lane", "x0", "x1", "t0", "t1", "st", "text",
                                                "hl", "open")}
    procs = sorted({op.process for op in hist_ops})
    op_lane = {p: k for k, p in enumerate(procs)}
    in_range = bool(monos) and any(min(monos) <= op.invoke_time <= max(monos) for op in hist_ops)
    end_t = t_of(max(all_monos)) if all_monos else 0.0
    if hist_ops and not in_range and monos:
        warnings.append("history timestamps do not overlap the trace; ops placed by order")
    n_hist = max(len(hist), 1) if hist is not None else 1
    for op in hist_ops:
        done = op.complete_time is not None
        lane = lane_of.get(f"c{op.process + 1}")
        if lane is not None and in_range and order[lane]:
            lt = lane_time[lane]
            x0 = lt.after(op.invoke_time, end_x)
            x1 = max(lt.before(op.complete_time), x0 + 0.5) if done else end_x
            t_0, t_1 = t_of(op.invoke_time), (t_of(op.complete_time) if done else end_t)
        elif not monos:  # no trace: the x axis is the history's own order
            x0 = op.invoke_index + 0.5
            x1 = op.complete_index + 0.5 if done else end_x
            t_0, t_1 = t_of(op.invoke_time), (t_of(op.complete_time) if done else end_t)
        elif in_range:
            x0 = x_of(op.invoke_time)
            x1 = x_of(op.complete_time) if done else end_x
            t_0, t_1 = t_of(op.invoke_time), (t_of(op.complete_time) if done else end_t)
        else:  # imported history without shared clock: spread by position
            x0 = op.invoke_index / n_hist * end_x
            x1 = (op.complete_index / n_hist * end_x) if done else end_x
            t_0, t_1 = x0, x1
        flag = HL_NONE
        if (op.process, op.invoke_index) in offending_ops or (op.process, None) in offending_ops:
            flag = HL_OFFENDING
        elif lin_key and op.key in lin_key:
            flag = HL_CONTEXT
        ops_out["lane"].append(op_lane[op.process])
        ops_out["x0"].append(x0)
        ops_out["x1"].append(max(x1, x0))
        ops_out["t0"].append(t_0)
        ops_out["t1"].append(max(t_1, t_0))
        ops_out["st"].append(op.status)
        ops_out["text"].append(_short(op_text({
            "process": op.process, "f": op.f, "value": op.value, "key": op.key,
            "output": op.output, "status": op.status}), 160))
        ops_out["hl"].append(flag)
        ops_out["open"].append(0 if done else 1)

    kinds = sorted({e.kind for e in ordered})
    return {
        "lanes": lanes,
        "servers": [lane_of[n] for n in names if n in lane_of],
        "oplanes": [f"p{p}" + (f" (c{p + 1})" if f"c{p + 1}" in lane_of else "") for p in procs],
        "kinds": {str(k): P.KIND_NAMES.get(k, str(k)) for k in kinds},
        "ev": {
            "lane": [lane_of[e.node] for e in ordered],
            "x": xs,
            "t": [t_of(m) for m in monos],
            "k": [e.kind for e in ordered],
            "hl": hl,
            "lab": [event_label(e) for e in ordered],
            "det": [event_detail(e) for e in ordered],
        },
        "arrows": {"s": arrows_s, "r": arrows_r, "ty": arrows_ty},
        "types": list(types),
        "drops": {"s": drops, "to": [lane_of[ordered[i].fields[0]] for i in drops]},
        "faults": regions,
        "ops": ops_out,
        "extent": {"x": end_x, "t": max(end_t, max((t for t in ops_out["t1"]), default=0))},
        "counts": {
            "events": len(ordered),
            "arrows": len(arrows_s),
            "drops": len(drops),
            "faults": len(regions),
            "ops": len(hist_ops),
            "highlighted": sum(1 for h in hl if h),
            "offending": sum(1 for h in hl if h == HL_OFFENDING),
            "offending_ops": sum(1 for h in ops_out["hl"] if h == HL_OFFENDING),
        },
        "warnings": warnings,
    }
