"""The mediator's Lamport bookkeeping: SEND/RECV events for black-box nodes.

Why here and not in the nodes: a target that is not instrumented still talks
through the mediator, so the mediator can stamp every message it carries.
It keeps, per endpoint (node, client or service), a Lamport clock and an event
sequence number, and turns each carried message into a SEND event on the
sender (when the mediator takes the message) and one RECV event on the
receiver per delivered copy (when the mediator hands it over). A dropped
message has a SEND and no RECV; a duplicated one has several RECVs.

``msg_id`` in these events is assigned here, per sender, so that the tracker
can match SEND to RECV by (sender, msg_id) whatever the payload carries.
Events go to ``sink(event)`` (in the product ``Timeline.add``).

Node-local events the fuzzer learns of by other means (STATE changes read
from a black-box node's log, fuzzer/tracker/logstate.py) take their place in
the same per-node order through :meth:`LamportBook.local`, so a node's
events never share a sequence number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from instrumentation.protocol import RECV, SEND, Event

Sink = Callable[[Event], None]
_event = tuple.__new__  # Event(...) without the NamedTuple constructor's overhead
_time_ns = time.time_ns
_mono_ns = time.monotonic_ns


class Stamp(NamedTuple):
    """What a message carries from its SEND to its RECV(s)."""

    sender: str
    msg_type: str
    msg_id: int
    lamport: int


class LamportBook:
    """Per-endpoint Lamport clocks and event sequence numbers kept by the mediator.

    Not thread-safe: it lives on the mediator's event loop.
    """

    __slots__ = ("_state", "sink")

    def __init__(self, sink: Sink | None = None):
        self.sink = sink
        self._state: dict[str, list[int]] = {}  # node -> [lamport, last seq, last msg_id]

    def clock(self, node: str) -> int:
        """The current Lamport time of ``node`` (0 before its first event)."""
        st = self._state.get(node)
        return st[0] if st else 0

    def _node(self, node: str) -> list[int]:
        st = self._state[node] = [0, 0, 0]
        return st

    def send(self, src: str, dst: str, msg_type: str) -> Stamp:
        """Record that ``src`` sent a message to ``dst``; return its stamp."""
        st = self._state.get(src) or self._node(src)
        lamport = st[0] = st[0] + 1
        seq = st[1] = st[1] + 1  # from 1, like the instrumentation's
        msg_id = st[2] = st[2] + 1
        if self.sink is not None:
            self.sink(
                _event(Event, (src, seq, lamport, _time_ns(), _mono_ns(), SEND,
                               (dst, msg_type, msg_id)))
            )
        return _event(Stamp, (src, msg_type, msg_id, lamport))

    def recv(self, dst: str, stamp: Stamp) -> int:
        """Record that ``dst`` received a copy of the stamped message; return its Lamport time."""
        st = self._state.get(dst) or self._node(dst)
        sender_lamport = stamp[3]
        lamport = st[0] = (st[0] if st[0] > sender_lamport else sender_lamport) + 1
        seq = st[1] = st[1] + 1
        if self.sink is not None:
            self.sink(
                _event(Event, (dst, seq, lamport, _time_ns(), _mono_ns(), RECV,
                               (stamp[0], stamp[1], stamp[2], sender_lamport)))
            )
        return lamport

    def local(self, node: str, kind: int, fields: tuple | list) -> Event:
        """A node-local event of ``node`` (e.g. STATE with fields ``(key, value)``):
        ticks the node's Lamport clock and takes its next sequence number from
        the counter SEND/RECV use. Returned, not given to ``sink``: the caller
        delivers it (it may have its own sink). SEND/RECV go through
        :meth:`send`/:meth:`recv`, which pair them."""
        if kind == SEND or kind == RECV:
            raise ValueError("SEND/RECV events are made by LamportBook.send/recv")
        st = self._state.get(node) or self._node(node)
        lamport = st[0] = st[0] + 1
        seq = st[1] = st[1] + 1
        return _event(Event, (node, seq, lamport, _time_ns(), _mono_ns(), kind, tuple(fields)))
