"""Per-execution event store and happens-before (HB) graph.

Why this shape: the tracker receives hundreds of thousands of events per
second, in per-node order but with no order *across* nodes (a RECV often
arrives before its SEND, since the two come from different processes on
different streams). So the store is append-only per node, SEND/RECV matching
tolerates either arrival order, and vector clocks are computed lazily, on
the first query that needs them, then cached. Appending at a node's end never
changes an existing clock; only a late SEND matching an already-stored RECV
adds an edge into the past, and that (rare) case drops the cache.

The HB graph is program order (consecutive events of one node) plus message
edges (a SEND to every RECV with the same (sender node, msg_id); a RECV's
``peer`` field names its sender). A duplicated message gives one SEND and
several RECVs. If a sender reuses a msg_id, the first SEND with that id wins.
Edges that would close a cycle (only possible with bogus ids) are ignored by
the clocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from fuzzer.tracker.store import NodeLog
from instrumentation import protocol
from instrumentation.errors import ProtocolError
from instrumentation.protocol import Batch, Event

SEND = protocol.SEND
RECV = protocol.RECV
_new_event = tuple.__new__
_ID_TYPES = (int, str, bytes)
_NFIELDS = {k: len(v) for k, v in protocol.FIELDS.items()}
_SHIFT = 40  # a matched RECV's SEND is stored as sender_index << 40 | position
_MASK = (1 << _SHIFT) - 1

Listener = Callable[[Event], None]
BatchListener = Callable[[str, list[list]], None]


def _check_message(ev: Event | list, off: int) -> None:
    """Raise ProtocolError unless a SEND/RECV's peer, type and id are usable as keys."""
    peer, mtype, mid = ev[off], ev[off + 1], ev[off + 2]
    if type(peer) is not str or type(mtype) is not str or type(mid) not in _ID_TYPES:
        raise ProtocolError(
            f"{protocol.KIND_NAMES[ev[off - 1]]} event needs str peer, str msg_type and "
            f"int/str msg_id, got {peer!r}, {mtype!r}, {mid!r}"
        )


class Timeline:
    """The events of one execution, per node, with the HB graph over them.

    Events are stored compactly: the wire batches they came in (decoded again
    on demand; in-process additions are packed into wire batches every
    :attr:`COMPACT_AT` events), so an event costs ~20 bytes plus a dict entry
    per message end, and nothing for the garbage collector. :class:`Event`
    values are built only when asked for.

    Thread-safe: gRPC handlers and in-process producers may add concurrently;
    listeners run under the timeline's (re-entrant) lock, in arrival order.
    """

    COMPACT_AT = NodeLog.COMPACT_AT  # in-process events packed into a wire batch at this many

    def __init__(self, execution: str = "") -> None:
        self.execution = execution
        self._lock = threading.RLock()
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._logs: list[NodeLog] = []  # per node: its events in program order
        self._sends: list[dict] = []  # per node: msg_id -> position of first SEND
        self._match: list[dict[int, int]] = []  # per node: RECV pos -> sender << 40 | pos
        self._pending: dict[str, dict] = {}  # sender name -> msg_id -> [(node, pos)] of RECVs
        self._vc: list[list[tuple[int, ...]]] = []  # per node: cached clocks of a prefix
        self._broken: set[tuple[int, int]] = set()  # RECVs whose edge would close a cycle
        self._lookup: list[dict | None] = []  # per node: lazy (seq, lamport, mono) -> pos
        self._listeners: list[Listener] = []
        self._batch_listeners: list[BatchListener] = []
        self.listener_errors = 0
        self.count = 0

    # -- producers ----------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(event)`` for every event added from now on, in arrival order."""
        with self._lock:
            self._listeners.append(fn)

    def add_batch_listener(self, fn: BatchListener) -> None:
        """Call ``fn(node, raw_events)`` once per added batch (the cheap path; the
        wire arrays must not be modified). Runs before the per-event listeners."""
        with self._lock:
            self._batch_listeners.append(fn)

    def add(self, event: Event) -> None:
        """Add one event (in-process producers such as the network mediator)."""
        if type(event.kind) is not int or len(event.fields) != _NFIELDS.get(event.kind, -1):
            raise ProtocolError(
                f"event of kind {event.kind!r} with {len(event.fields)} fields is not valid"
            )
        if type(event.seq) is not int or type(event.lamport) is not int:
            raise ProtocolError(f"event seq and lamport must be ints, got {event.seq!r}")
        self.add_raw(event.node, [event.to_wire()])

    def add_raw(self, node: str, raw_events: list[list], wire: bytes | None = None) -> None:
        """Add a node's validated wire events (see :func:`protocol.decode_batch`).

        ``wire``, when given, is the wire batch the events were decoded from
        (all of them, this node's): it is kept instead of the arrays, so a
        stored event costs ~20 bytes and nothing for the garbage collector.
        All-or-nothing: a SEND/RECV with an unusable peer/type/id raises
        :class:`ProtocolError` before anything is stored.
        """
        if type(node) is not str:
            raise ProtocolError(f"node name must be a str, got {node!r}")
        ids = _ID_TYPES
        for ev in raw_events:  # validate before storing anything
            k = ev[4]
            if (k == SEND or k == RECV) and (
                type(ev[5]) is not str or type(ev[6]) is not str or type(ev[7]) not in ids
            ):
                _check_message(ev, 5)
        with self._lock:
            n = self._index.get(node)
            if n is None:
                n = self._node(node)
            log = self._logs[n]
            base = log.size
            log.append(raw_events, wire)
            self.count += len(raw_events)
            sends = self._sends[n]
            match = self._match[n]
            index = self._index
            all_sends = self._sends
            pending = self._pending
            mine = pending.get(node)  # RECVs (of other nodes) waiting for this node's SENDs
            pos = base
            for ev in raw_events:
                k = ev[4]
                if k == RECV:
                    src, mid = ev[5], ev[7]
                    m = index.get(src)
                    q = all_sends[m].get(mid) if m is not None else None
                    if q is not None:
                        match[pos] = m << _SHIFT | q
                    else:
                        by_id = pending.get(src)
                        if by_id is None:
                            by_id = pending[src] = {}
                        if src == node:
                            mine = by_id
                        waiting = by_id.get(mid)
                        if waiting is None:
                            by_id[mid] = [(n, pos)]
                        else:
                            waiting.append((n, pos))
                elif k == SEND:
                    mid = ev[7]
                    if mid not in sends:
                        sends[mid] = pos
                        if mine:
                            waiting = mine.pop(mid, None)
                            if waiting is not None:
                                self._late_send(n, pos, waiting)
                pos += 1
            for fn in self._batch_listeners:
                try:
                    fn(node, raw_events)
                except Exception:
                    self.listener_errors += 1
            if self._listeners:
                for ev in raw_events:
                    e = _new_event(Event, (node, ev[0], ev[1], ev[2], ev[3], ev[4], tuple(ev[5:])))
                    for fn in self._listeners:
                        try:
                            fn(e)
                        except Exception:
                            self.listener_errors += 1

    def _node(self, name: str) -> int:
        n = len(self._names)
        self._index[name] = n
        self._names.append(name)
        self._logs.append(NodeLog(name, self.execution, self.COMPACT_AT))
        self._sends.append({})
        self._match.append({})
        self._vc.append([])
        self._lookup.append(None)
        return n

    def _late_send(self, m: int, q: int, waiting: list[tuple[int, int]]) -> None:
        """SEND (m, q) arrived after RECVs of it: add the edges, drop stale clocks."""
        stale = False
        for n, pos in waiting:
            self._match[n][pos] = m << _SHIFT | q
            stale = stale or len(self._vc[n]) > pos
        if stale:  # an edge into already-computed clocks
            for cache in self._vc:
                cache.clear()
            self._broken.clear()

    def _event(self, n: int, pos: int) -> Event:
        ev = self._logs[n].get(pos)
        return _new_event(Event, (self._names[n], ev[0], ev[1], ev[2], ev[3], ev[4], tuple(ev[5:])))

    def _events_of(self, n: int, stop: int | None = None) -> list[Event]:
        name = self._names[n]
        return [
            _new_event(Event, (name, ev[0], ev[1], ev[2], ev[3], ev[4], tuple(ev[5:])))
            for ev in self._logs[n].slice(0, stop)
        ]

    # -- queries --------------------------------------------------------------------

    def nodes(self) -> list[str]:
        """Node names in order of first appearance."""
        with self._lock:
            return list(self._names)

    def events(self, node: str | None = None) -> list[Event]:
        """One node's events in program order, or all events node by node."""
        with self._lock:
            if node is not None:
                n = self._index.get(node)
                return [] if n is None else self._events_of(n)
            return [e for n in range(len(self._names)) for e in self._events_of(n)]

    def __len__(self) -> int:
        return self.count

    def edges(self) -> list[tuple[Event, Event]]:
        """Matched message edges (SEND, RECV), receiver by receiver, in program order."""
        with self._lock:
            out = []
            full: dict[int, list[Event]] = {}
            for n, match in enumerate(self._match):
                if not match:
                    continue
                for pos in sorted(match):
                    code = match[pos]
                    m, q = code >> _SHIFT, code & _MASK
                    for k in (m, n):
                        if k not in full:
                            full[k] = self._events_of(k)
                    out.append((full[m][q], full[n][pos]))
            return out

    def unmatched_recvs(self) -> list[Event]:
        """RECVs whose SEND has not (yet) arrived."""
        with self._lock:
            return [
                self._event(n, p)
                for by_id in self._pending.values()
                for lst in by_id.values()
                for n, p in lst
            ]

    def vector_clock(self, event: Event) -> dict[str, int]:
        """The event's vector clock: node -> number of that node's events in its
        causal history, the event itself included (zero entries left out)."""
        with self._lock:
            n, p = self._locate(event)
            vc = self._clock(n, p)
            return {self._names[i]: c for i, c in enumerate(vc) if c}

    def happens_before(self, a: Event, b: Event) -> bool:
        """True iff ``a`` happens before ``b`` (strictly) in the HB graph."""
        with self._lock:
            n, p = self._locate(a)
            m, q = self._locate(b)
            if n == m:
                return p < q
            vc = self._clock(m, q)
            return n < len(vc) and vc[n] > p

    def concurrent(self, a: Event, b: Event) -> bool:
        """Distinct events neither of which happens before the other."""
        with self._lock:
            if self._locate(a) == self._locate(b):
                return False
            return not self.happens_before(a, b) and not self.happens_before(b, a)

    def causal_past(self, e: Event) -> list[Event]:
        """Every event that happens before ``e`` (``e`` excluded), node by node in order."""
        with self._lock:
            n, p = self._locate(e)
            vc = self._clock(n, p)
            return [e for i, c in enumerate(vc) for e in self._events_of(i, c - 1 if i == n else c)]

    # -- internals --------------------------------------------------------------------

    def _locate(self, event: Event) -> tuple[int, int]:
        """(node index, position) of an event given by value."""
        n = self._index.get(event.node)
        if n is None:
            raise KeyError(f"node {event.node!r} has no events in execution {self.execution!r}")
        log = self._logs[n]
        size = log.size
        key = (event.seq, event.lamport, event.mono_ns, event.kind)
        if size:  # fast path: contiguous sequence numbers
            guess = event.seq - log.first_seq
            if 0 <= guess < size:
                ev = log.get(guess)
                if (ev[0], ev[1], ev[3], ev[4]) == key:
                    return n, guess
        table = self._lookup[n]
        if table is None:
            table = self._lookup[n] = {}
        start = table.get("_len", 0)
        for pos, ev in enumerate(log.slice(start), start=start):
            table.setdefault((ev[0], ev[1], ev[3], ev[4]), pos)
        table["_len"] = size
        pos = table.get(key)
        if pos is not None:
            return n, pos
        raise KeyError(f"event {event.node}#{event.seq} is not in execution {self.execution!r}")

    def _clock(self, n: int, p: int) -> tuple[int, ...]:
        """Vector clock of event (n, p), computing and caching what it depends on."""
        caches = self._vc
        if len(caches[n]) > p:
            return caches[n][p]
        target = (n, p)
        match = self._match
        broken = self._broken
        stack = [(n, p)]
        waiting = {n}
        while stack:
            n, p = stack[-1]
            cache = caches[n]
            mt = match[n]
            i = len(cache)
            prev: tuple[int, ...] = cache[-1] if cache else ()
            blocked = False
            while i <= p:
                src = mt.get(i) if mt else None
                if src is not None and (n, i) not in broken:
                    m, q = src >> _SHIFT, src & _MASK
                    if len(caches[m]) <= q:
                        if m in waiting:  # cycle (only with bogus ids): ignore this edge
                            broken.add((n, i))
                        else:
                            stack.append((m, q))
                            waiting.add(m)
                            blocked = True
                            break
                        vc = list(prev)
                    else:
                        other = caches[m][q]
                        vc = list(prev)
                        if len(other) > len(vc):
                            vc.extend([0] * (len(other) - len(vc)))
                        for j, c in enumerate(other):
                            if c > vc[j]:
                                vc[j] = c
                else:
                    vc = list(prev)
                if len(vc) <= n:
                    vc.extend([0] * (n + 1 - len(vc)))
                vc[n] = i + 1
                prev = tuple(vc)
                cache.append(prev)
                i += 1
            if not blocked:
                stack.pop()
                waiting.discard(n)
        return caches[target[0]][target[1]]


class Tracker:
    """All executions' timelines, keyed by execution id; the sink of the gRPC server."""

    def __init__(self, on_timeline: Callable[[Timeline], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._timelines: dict[str, Timeline] = {}
        self._on_timeline = on_timeline

    def timeline(self, execution_id: str) -> Timeline:
        """The execution's timeline, created (and announced to ``on_timeline``) on first use."""
        tl = self._timelines.get(execution_id)
        if tl is None:
            with self._lock:
                tl = self._timelines.get(execution_id)
                if tl is None:
                    tl = Timeline(execution_id)
                    if self._on_timeline is not None:
                        self._on_timeline(tl)
                    self._timelines[execution_id] = tl
        return tl

    def executions(self) -> list[str]:
        with self._lock:
            return list(self._timelines)

    def drop(self, execution_id: str) -> None:
        """Forget an execution's timeline (free its memory once it has been checked)."""
        with self._lock:
            self._timelines.pop(execution_id, None)

    def ingest(self, batch: Batch, wire: bytes | None = None) -> None:
        """Add one validated batch to its execution's timeline (thread-safe).

        ``wire``: the bytes ``batch`` was decoded from, kept as the compact store."""
        self.timeline(batch.execution).add_raw(batch.node, batch.events, wire)

    def ingest_many(self, batches: Iterable[Batch]) -> None:
        for b in batches:
            self.ingest(b)
