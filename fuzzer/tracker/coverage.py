"""HB coverage: the fuzzer's guidance signal (docs/hb-coverage.md explains it with an example).

Why this abstraction: code coverage saturates quickly on a distributed
system, while the bugs live in *orderings* of behaviour (a vote arriving at a
node that just became leader, an append after a term increase). So each event
becomes a small *abstract event* (node role, kind, message type or state key,
a coarse attribute bucket) and coverage is the set of short HB-ordered
patterns of abstract events: consecutive pairs and triples within a node,
and (send, recv, receiver's previous) across each message edge. Patterns are
hashed into a fixed-size map with AFL-style hit-count buckets, so "new" means
a pattern never seen or seen a new number of times (in log-ish buckets) in a
window. COVERAGE events feed a separate set of code edges.

Everything that defines a map index is a stable hash of strings (no
process-local interning), so maps saved by :meth:`HBCoverage.to_bytes` stay
meaningful when a campaign resumes in another process.

One :class:`HBCoverage` lives for a whole campaign (global maps) and follows
one execution at a time (per-node state: roles, previous abstract events,
in-flight SENDs); :meth:`new_execution` (called by :meth:`attach`) resets the
per-execution part.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fuzzer.tracker.hbmap import (
    BUCKETS,
    MAP_BITS,
    TAG_MESSAGE,
    TAG_PAIR,
    TAG_TRIPLE,
    CoverageMap,
    bucket_bits,
    pattern_index,
    pattern_indices,
)
from instrumentation import protocol
from instrumentation.protocol import Event

__all__ = [
    "HBCoverage",
    "WindowSummary",
    "CoverageMap",
    "BUCKETS",
    "MAP_BITS",
    "START",
    "TAG_MESSAGE",
    "TAG_PAIR",
    "TAG_TRIPLE",
    "bucket_bits",
    "pattern_index",
    "pattern_indices",
]

START = 0x5354  # the "previous" abstract event of a node's first one

_SEND, _RECV, _LOCAL, _STATE = protocol.SEND, protocol.RECV, protocol.LOCAL, protocol.STATE
_COVERAGE, _VIOLATION = protocol.COVERAGE, protocol.VIOLATION
_LOG, _EXIT, _FAULT = protocol.LOG, protocol.EXIT, protocol.FAULT
_LABEL_MAX = 40


def _stable_id(parts: tuple[str, ...]) -> int:
    """A 32-bit id of an abstract event that is the same in every process."""
    return zlib.crc32("\x1f".join(parts).encode("utf-8", "replace"))


def _label(x: object) -> str:
    s = x if type(x) is str else str(x)
    return s[:_LABEL_MAX]


class _NodeState:
    """Per-node memory of the abstraction within one execution.

    ``seq`` holds the dense abstract ids observed since the last flush, led by
    the two before them (so patterns spanning a flush are counted exactly once).
    """

    __slots__ = ("role", "table", "seq", "last")

    def __init__(self, table: dict) -> None:
        self.role = "?"
        self.table = table
        self.seq: list[int] = [0, 0]  # dense id 0 is START
        self.last: dict[str, object] = {}


@dataclass(frozen=True)
class WindowSummary:
    """What one window (a scheduler step) saw and what was new in it.

    ``signature`` is a small stable hash of the coarse cluster state at the
    window's close (multiset of node roles, set of message types received in
    the window): the scheduler's tabular state. ``signature_text`` is its
    readable form.
    """

    signature: int
    signature_text: str
    events: int
    new_hb: int  # map cells hit for the first time ever
    new_buckets: int  # known cells whose hit count reached a new bucket
    new_edges: int  # code edges never seen before
    hb_hits: int  # distinct cells hit in the window
    hb_total: int  # distinct cells ever hit, after this window
    edges_total: int  # distinct code edges ever seen, after this window

    @property
    def novel(self) -> bool:
        return bool(self.new_hb or self.new_buckets or self.new_edges)


class HBCoverage:
    """HB-coverage map, code-edge set and windows (see module docstring).

    Thread-safe: observation (from the tracker's ingest thread) and window
    operations (from the fuzzer's event loop) take one lock.
    """

    FLUSH_AT = 1 << 17  # pending abstract ids folded into the numpy counts at this size

    def __init__(
        self, bits: int = MAP_BITS, *, role_key: str = "role", signature_msgs: bool = True
    ) -> None:
        """``role_key``: the STATE key whose value is a node's role (a target adapter
        may name another). ``signature_msgs``: whether the set of message types
        received in a window enters the signature (off: roles only, fewer states)."""
        self.map = CoverageMap(bits)  # global map, window hit counts, code edges
        self.bits = bits
        self.role_key = role_key
        self.signature_msgs = signature_msgs
        self._lock = threading.RLock()
        # abstract events: dense process-local ids (fast dict keys) -> stable 32-bit ids
        self._tables: dict[str, dict[int, dict]] = {}  # role -> kind -> label key -> dense
        self._stable: list[int] = [START]
        self._stable_arr = np.array(self._stable, dtype=np.uint64)
        self._names: list[str] = ["START"]
        # set to a list to record every pattern counted, readable (docs, tests, debugging)
        self.trace: list[tuple[str, ...]] | None = None
        self._npending = 0
        self._win_events = 0
        self._win_edges = 0
        self._win_msgs: set[str] = set()
        self._current = None  # the attached timeline
        self.new_execution()

    # -- executions -------------------------------------------------------------------

    def new_execution(self) -> None:
        """Forget per-execution state (roles, previous events, in-flight messages)."""
        with self._lock:
            self._flush()
            self._nodes: dict[str, _NodeState] = {}
            self._sent: dict[str, dict] = {}  # sender -> msg_id -> send dense id
            self._waiting: dict[str, dict] = {}  # sender -> msg_id -> [(recv id, prev id)]
            self._msg: list[int] = []  # flat (send, recv, receiver's previous) dense ids

    def attach(self, timeline) -> None:  # noqa: ANN001 - fuzzer.tracker.timeline.Timeline
        """Start a new execution and observe every event the timeline receives,
        until another timeline is attached (late batches of an earlier execution
        are then ignored, so they cannot disturb the current one's state)."""
        with self._lock:
            self.new_execution()
            self._current = timeline

        def listener(node: str, raw_events: list[list]) -> None:
            if self._current is timeline:
                self.observe_raw(node, raw_events)

        timeline.add_batch_listener(listener)

    # -- observation --------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Account one event (any order across nodes; per-node program order)."""
        self.observe_many((event,))

    def observe_many(self, events: Iterable[Event]) -> None:
        """Account events in order (validated like the timeline does)."""
        for ev in events:
            if ev.kind in (_SEND, _RECV):
                f = ev.fields
                if type(f[0]) is not str or type(f[2]) not in (int, str, bytes):
                    continue  # the timeline rejects these; never let them break the maps
                raw = [
                    ev.seq,
                    ev.lamport,
                    ev.wall_ns,
                    ev.mono_ns,
                    ev.kind,
                    f[0],
                    _label(f[1]),
                    *f[2:],
                ]
            else:
                raw = ev.to_wire()
            self.observe_raw(ev.node, [raw])

    def observe_raw(self, node: str, raw_events: list[list]) -> None:
        """Account one node's wire events in program order (the timeline's batch listener).

        The hot path: one dict lookup per event to find its dense abstract id,
        one list append; hashing and counting happen vectorised in :meth:`_flush`.
        SEND/RECV peer/type/id must already be validated (the timeline does it).
        """
        with self._lock:
            st = self._nodes.get(node)
            if st is None:
                st = self._nodes[node] = _NodeState(self._role_table("?"))
            table = st.table
            t_send = table[_SEND]
            t_recv = table[_RECV]
            seq = st.seq
            push = seq.append
            sent = self._sent
            waiting = self._waiting
            my_sent = sent.get(node)
            if my_sent is None:
                my_sent = sent[node] = {}
            my_waiting = waiting.get(node)
            msgs = self._win_msgs
            mpush = self._msg.append
            before = len(seq)
            for ev in raw_events:
                k = ev[4]
                if k == _RECV:
                    a = t_recv.get(ev[6])
                    if a is None:
                        a = self._intern(st.role, k, ev[6], "", t_recv, ev[6])
                    msgs.add(ev[6])
                    by_id = sent.get(ev[5])
                    s = by_id.get(ev[7]) if by_id is not None else None
                    if s is not None:
                        mpush(s)
                        mpush(a)
                        mpush(seq[-1])
                    else:
                        waiting.setdefault(ev[5], {}).setdefault(ev[7], []).append((a, seq[-1]))
                elif k == _SEND:
                    a = t_send.get(ev[6])
                    if a is None:
                        a = self._intern(st.role, k, ev[6], "", t_send, ev[6])
                    mid = ev[7]
                    if mid not in my_sent:
                        my_sent[mid] = a
                        if my_waiting is None:
                            my_waiting = waiting.get(node)
                        if my_waiting:
                            for r, rp in my_waiting.pop(mid, ()):
                                mpush(a)
                                mpush(r)
                                mpush(rp)
                elif k == _STATE:
                    a = self._state(st, ev[5], ev[6])
                    if st.table is not table:
                        table = st.table
                        t_send = table[_SEND]
                        t_recv = table[_RECV]
                elif k == _COVERAGE:
                    self._code_edges(ev[5])
                    continue
                elif k == _LOG:
                    continue
                else:
                    a = self._other(st, k, ev)
                push(a)
            self._win_events += len(raw_events)
            self._npending += len(seq) - before
            if self._npending >= self.FLUSH_AT:
                self._flush()

    def _role_table(self, role: str) -> dict[int, dict]:
        t = self._tables.get(role)
        if t is None:
            t = self._tables[role] = {k: {} for k in protocol.FIELDS}
        return t

    def _intern(self, role: str, kind: int, label: object, bucket: str, table: dict, key) -> int:
        lab = _label(label)
        dense = len(self._stable)
        self._stable.append(_stable_id((role, str(kind), lab, bucket)))
        self._names.append(f"{role}/{protocol.KIND_NAMES.get(kind, str(kind))}/{lab}/{bucket}")
        table[key] = dense
        return dense

    def _state(self, st: _NodeState, key: object, value: object) -> int:
        role = st.role
        k = _label(key)
        if k == self.role_key:
            bucket = _label(value)
        elif type(value) is int or type(value) is float:
            old = st.last.get(k)
            st.last[k] = value
            if type(old) is not int and type(old) is not float:
                bucket = "init"
            else:
                bucket = "inc" if value > old else "dec" if value < old else "same"
        elif value is None or type(value) is bool:
            bucket = str(value)
        else:
            try:
                h = hash(value)
            except TypeError:
                h = None
            old = st.last.get(k, st)
            st.last[k] = h
            bucket = "init" if old is st else "same" if h is not None and h == old else "chg"
        t = st.table[_STATE]
        a = t.get((k, bucket))
        if a is None:
            a = self._intern(role, _STATE, k, bucket, t, (k, bucket))
        if k == self.role_key and bucket != role:
            st.role = bucket
            st.table = self._role_table(bucket)
        return a

    def _other(self, st: _NodeState, kind: int, ev: list) -> int:
        if kind == _LOCAL or kind == _VIOLATION or kind == _EXIT:
            label, bucket = _label(ev[5]), ""
        elif kind == _FAULT:
            text = ev[6] if type(ev[6]) is str else ""
            label, bucket = _label(ev[5]), text.split(" ", 1)[0][:_LABEL_MAX]
        else:  # APPLY and any future kind
            label, bucket = "", ""
        t = st.table.setdefault(kind, {})
        a = t.get((label, bucket))
        if a is None:
            a = self._intern(st.role, kind, label, bucket, t, (label, bucket))
        return a

    def _code_edges(self, edges: object) -> None:
        if type(edges) is not list:
            return
        seen = self.map.edges
        for e in edges:
            if type(e) is int and e not in seen:
                seen.add(e)
                self._win_edges += 1

    def _flush(self) -> None:
        """Hash all pending patterns (vectorised) into the window's hit counts."""
        if len(self._stable_arr) != len(self._stable):
            self._stable_arr = np.array(self._stable, dtype=np.uint64)
        stable = self._stable_arr
        parts = []
        trace = self.trace
        for st in getattr(self, "_nodes", {}).values():
            seq = st.seq
            if len(seq) > 2:
                if trace is not None:
                    names = self._names
                    for i in range(2, len(seq)):
                        trace.append(("pair", names[seq[i - 1]], names[seq[i]]))
                        trace.append(
                            ("triple", names[seq[i - 2]], names[seq[i - 1]], names[seq[i]])
                        )
                s = stable[np.array(seq, dtype=np.intp)]
                parts.append(pattern_indices(TAG_PAIR, s[1:-1], s[2:], np.uint64(0), self.bits))
                parts.append(pattern_indices(TAG_TRIPLE, s[:-2], s[1:-1], s[2:], self.bits))
                del seq[:-2]
        msg = getattr(self, "_msg", None)
        if msg:
            if trace is not None:
                names = self._names
                for i in range(0, len(msg), 3):
                    trace.append(("message", names[msg[i]], names[msg[i + 1]], names[msg[i + 2]]))
            m = stable[np.array(msg, dtype=np.intp)]
            parts.append(pattern_indices(TAG_MESSAGE, m[0::3], m[1::3], m[2::3], self.bits))
            msg.clear()
        self._npending = 0
        if parts:
            self.map.hit(np.concatenate(parts))

    # -- windows ------------------------------------------------------------------------

    def open_window(self) -> None:
        """Start a window: events observed since the last close count toward coverage
        but not toward the next window's novelty."""
        with self._lock:
            self._fold()
            self._reset_window()

    def close_window(self) -> WindowSummary:
        """End the window: fold its hit counts into the global map, report what was new."""
        with self._lock:
            hits, new_hb, new_buckets = self._fold()
            text = self._signature_text()
            summary = WindowSummary(
                signature=int.from_bytes(
                    hashlib.blake2b(text.encode(), digest_size=4).digest(), "big"
                ),
                signature_text=text,
                events=self._win_events,
                new_hb=new_hb,
                new_buckets=new_buckets,
                new_edges=self._win_edges,
                hb_hits=hits,
                hb_total=int(np.count_nonzero(self.map.seen)),
                edges_total=len(self.map.edges),
            )
            self._reset_window()
            return summary

    def _fold(self) -> tuple[int, int, int]:
        self._flush()
        return self.map.fold()

    def _reset_window(self) -> None:
        self._win_events = 0
        self._win_edges = 0
        self._win_msgs = set()

    def _signature_text(self) -> str:
        roles: dict[str, int] = {}
        for st in self._nodes.values():
            if st.role != "?":  # pseudo-nodes (nemesis, mediator) and black-box nodes
                roles[st.role] = roles.get(st.role, 0) + 1
        r = ",".join(f"{k}:{v}" for k, v in sorted(roles.items()))
        if not self.signature_msgs:
            return f"roles={r}"
        m = ",".join(sorted(_label(x) for x in self._win_msgs))
        return f"roles={r}|recv={m}"

    # -- queries ------------------------------------------------------------------------

    def hb_coverage(self) -> int:
        """Distinct map cells ever hit (the open window included)."""
        with self._lock:
            self._flush()
            return self.map.cells()

    def code_edges(self) -> int:
        """Distinct code edges ever seen."""
        with self._lock:
            return len(self.map.edges)

    def roles(self) -> dict[str, str]:
        """Current role of each node of the execution ("?" until it reports one)."""
        with self._lock:
            return {n: st.role for n, st in self._nodes.items()}

    def abstract_events(self) -> dict[int, str]:
        """Stable id -> readable "role/KIND/label/bucket" of every abstract event seen."""
        with self._lock:
            return dict(zip(self._stable, self._names, strict=True))

    @staticmethod
    def abstract_id(role: str, kind: int, label: str, bucket: str = "") -> int:
        """The stable id of an abstract event (what the map patterns are made of)."""
        return _stable_id((role, str(kind), label, bucket))

    def seen_map(self) -> np.ndarray:
        """A copy of the global map (per cell: OR of bucket bits ever seen)."""
        with self._lock:
            return self.map.seen.copy()

    # -- persistence (campaign resume) ---------------------------------------------------

    def to_bytes(self) -> bytes:
        """The global maps (not the open window); see :meth:`CoverageMap.to_bytes`."""
        with self._lock:
            return self.map.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "<bytes>", **kw) -> HBCoverage:
        """Restore maps saved by :meth:`to_bytes`; InputError names ``path`` and the key."""
        m = CoverageMap.from_bytes(data, path)
        cov = cls(m.bits, **kw)
        cov.map = m
        return cov
