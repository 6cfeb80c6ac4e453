"""Exports for other tools: ShiViz logs of the event trace, Jepsen EDN histories.

Why these two: ShiViz (and its fork TSViz) is the usual viewer for
vector-clocked distributed logs, and Jepsen's checkers (Knossos, Elle) read
``history.edn``; a user can take a finding to either without hbfuzz.

ShiViz format: a log file whose first line is the parser regular expression
(named groups ``host``, ``clock``, ``event``), whose second line is the
multiple-executions delimiter (empty: one execution), followed by one line
per event::

    n1 {"n1":3,"n2":1} RECV read_ok from=n2 id=7 lamport=12

The clock is the event's vector clock as JSON, computed by the real
:class:`~fuzzer.tracker.timeline.Timeline` (program order plus matched
message edges). ShiViz requires each host's own entry to count its events
1, 2, 3, ... so every event of every host is written, in a topological
order of happens-before (a RECV never before its SEND).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fuzzer.report.inputs import events_of, history_of
from fuzzer.report.layout import lane_order, logical_x
from fuzzer.tracker.timeline import Timeline
from fuzzer.workload.history import History, to_edn
from instrumentation import protocol as P
from instrumentation.errors import ProtocolError
from instrumentation.protocol import Event

__all__ = ["SHIVIZ_REGEX", "shiviz_log", "parse_shiviz", "history_edn", "write_exports"]

SHIVIZ_REGEX = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)"


def _event_text(e: Event) -> str:
    kind = P.KIND_NAMES.get(e.kind, str(e.kind))
    f = e.fields
    if e.kind == P.SEND:
        body = f"{f[1]} to={f[0]} id={f[2]}"
    elif e.kind == P.RECV:
        body = f"{f[1]} from={f[0]} id={f[2]}"
    else:
        names = P.FIELDS.get(e.kind, ())
        body = " ".join(f"{n}={json.dumps(v, default=repr, ensure_ascii=False)}"
                        for n, v in zip(names, f, strict=False))
    text = f"{kind} {body} lamport={e.lamport} seq={e.seq}"
    return text.replace("\r", " ").replace("\n", " ")


def shiviz_log(events: Iterable[Any]) -> str:
    """The ShiViz log (regex line, empty delimiter line, one line per event)."""
    evs = events_of(events)
    per_node: dict[str, list[Event]] = {}
    for e in evs:
        per_node.setdefault(e.node, []).append(e)
    tl = Timeline("shiviz")
    names = lane_order(per_node)
    kept: list[Event] = []
    for name in names:
        for e in per_node[name]:  # stored order = the tracker's program order
            try:
                tl.add(e)
            except ProtocolError:
                continue  # not in the graph; ShiViz would reject its clock anyway
            kept.append(e)
    index: dict[tuple, int] = {}
    for i, e in enumerate(kept):
        index.setdefault((e.node, e.seq, e.lamport, e.kind, e.mono_ns), i)
    order: list[list[int]] = [[] for _ in names]
    lane = {n: k for k, n in enumerate(names)}
    for i, e in enumerate(kept):
        order[lane[e.node]].append(i)
    src = {
        index[(r.node, r.seq, r.lamport, r.kind, r.mono_ns)]:
        index[(s.node, s.seq, s.lamport, s.kind, s.mono_ns)]
        for s, r in tl.edges()
    }
    x = logical_x(order, src, [e.lamport for e in kept])
    lines = [SHIVIZ_REGEX, ""]
    for i in sorted(range(len(kept)), key=lambda i: (x[i], lane[kept[i].node])):
        e = kept[i]
        clock = json.dumps(tl.vector_clock(e), separators=(",", ":"), sort_keys=True)
        host = "".join(c if not c.isspace() else "_" for c in e.node) or "_"
        lines.append(f"{host} {clock} {_event_text(e)}")
    return "\n".join(lines) + "\n"


def parse_shiviz(text: str) -> list[tuple[str, dict[str, int], str]]:
    """Read a log written by :func:`shiviz_log` back: ``(host, clock, event)`` per line
    (uses the regex of the file's first line, as ShiViz does)."""
    lines = text.split("\n")
    rx = re.compile(lines[0].replace("(?<", "(?P<"))
    out = []
    for line in lines[2:]:
        if not line:
            continue
        m = rx.fullmatch(line)
        if m is None:
            raise ValueError(f"line does not match the ShiViz regex: {line!r}")
        out.append((m.group("host"), json.loads(m.group("clock")), m.group("event")))
    return out


def history_edn(history: Any) -> str:
    """The client history as Jepsen's ``history.edn`` (one map per line)."""
    h: History | None = history_of(history)
    return to_edn(h) if h is not None else ""


def write_exports(directory: str | Path, stem: str, events: Iterable[Any] = (),
                  history: Any = None) -> dict[str, Path]:
    """Write ``<stem>.shiviz.log`` and ``<stem>.history.edn`` (when there is data);
    returns ``{"ShiViz log": path, "Jepsen history (EDN)": path}`` of those written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    evs = list(events or ())
    if evs:
        p = d / f"{stem}.shiviz.log"
        p.write_text(shiviz_log(evs), encoding="utf-8")
        out["ShiViz log"] = p
    edn = history_edn(history) if history is not None else ""
    if edn:
        p = d / f"{stem}.history.edn"
        p.write_text(edn, encoding="utf-8")
        out["Jepsen history (EDN)"] = p
    return out
