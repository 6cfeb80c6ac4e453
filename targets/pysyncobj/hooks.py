"""Runtime instrumentation of the unmodified PySyncObj library (node side only).

Why subclassing instead of forking the library: the fuzzer must run *any*
released version as published, so the hooks only use extension points that
are identical in 0.3.10 .. 0.3.17 (checked against each release's source):

- ``SyncObj(..., transportClass=...)``: :class:`HBTransport` subclasses
  ``TCPTransport``. ``send(node, message)`` is called by SyncObj with a fresh
  dict per Raft message; we copy it, add ``message["_hb"] = (msg_id,
  lamport)`` and record SEND. Every incoming message reaches SyncObj through
  ``self._onMessageReceived(node, message)`` (bound by ``functools.partial``
  when connections are set up, so the override is used); we pop ``_hb``,
  record RECV, run SyncObj's handler, then poll the Raft state. The extra
  dict key travels inside PySyncObj's own pickle+zlib framing, so the wire
  format stays the library's and an uninstrumented peer just ignores it.
- ``_onTick`` (called through ``self`` by the auto-tick thread) and
  ``_SyncObj__doApplyCommand`` (SyncObj's private per-entry apply, looked up
  through ``self``) are overridden in the SyncObj subclass built by
  :func:`instrumented_class`: state is polled after each tick, before each
  send and before each apply; each applied entry becomes APPLY(index, term,
  digest) with ``index = raftLastApplied + 1`` (SyncObj increments it right
  after the apply) and the term read from the log.
- :class:`NamedNode` gives every node a cluster-wide identity (its name)
  distinct from the address it is dialled at: with the network mediator,
  each node reaches a peer at a different proxy port, while PySyncObj
  identifies nodes by the address string they announce on connect. The node
  announces its name, binds ``conf.bindAddress`` and dials peers' proxies.

Private state is read through the mangled names (``_SyncObj__raftState``
...), which exist in every supported version. Message ids are
``boot_ms << 20 | counter`` so a restarted node never reuses an id.
"""

from __future__ import annotations

import hashlib
import itertools
import threading

from pysyncobj import SyncObj
from pysyncobj.node import Node, TCPNode
from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport

import instrumentation as hb
from targets.pysyncobj.wire import ROLES

MSG_KEY = "_hb"
LEADER = 2


def digest(command: bytes) -> str:
    """A short stable hash of a log entry's command bytes (same on every node)."""
    return hashlib.blake2b(bytes(command), digest_size=8).hexdigest()


class MsgIds:
    """Per-sender message ids, unique across restarts: ``boot_ms << 20`` plus a counter."""

    def __init__(self, boot_ms: int) -> None:
        self._next = itertools.count((boot_ms << 20) + 1).__next__

    def next(self) -> int:
        return self._next()


class StateWatch:
    """Remembers the last reported value per key; reports only changes, in order.

    Pure: :meth:`changes` takes a snapshot (ordered dict of key -> value) and
    returns the (key, value) pairs that differ from the previous snapshot.
    Keys absent from a snapshot keep their last value (e.g. match_index.* of
    a node that stopped being leader).
    """

    def __init__(self) -> None:
        self.last: dict[str, object] = {}

    def changes(self, snapshot: dict[str, object]) -> list[tuple[str, object]]:
        out = []
        last = self.last
        for key, value in snapshot.items():
            if last.get(key, _MISSING) != value:
                last[key] = value
                out.append((key, value))
        return out


_MISSING = object()


class NamedNode(TCPNode):
    """A TCP node whose id (and announced address) is a name, dialled at ``dial``."""

    def __init__(self, name: str, dial: str) -> None:
        Node.__init__(self, name)
        host, port = dial.rsplit(":", 1)
        self._TCPNode__address = name
        self._TCPNode__host = host
        self._TCPNode__port = int(port)

    def __reduce__(self):  # log compaction pickles the cluster's nodes
        return (NamedNode, (self.id, f"{self.host}:{self.port}"))


def node_name(node) -> str:
    return str(getattr(node, "id", node))


class HBTransport(TCPTransport):
    """TCPTransport that stamps every Raft message and reports SEND/RECV."""

    msg_ids: MsgIds = MsgIds(0)  # replaced per process by instrumented_class()

    def send(self, node, message):
        if type(message) is dict:
            conn = self._connections.get(node)
            if conn is not None and conn.state == CONNECTION_STATE.CONNECTED:
                so = self._syncObj
                poll = getattr(so, "_hb_poll", None)
                if poll is not None:
                    poll()
                msg_id = self.msg_ids.next()
                stamp = hb.send(node_name(node), message.get("type", "?"), msg_id)
                message = dict(message)
                message[MSG_KEY] = (msg_id, stamp)
        return TCPTransport.send(self, node, message)

    def _onMessageReceived(self, node, message):
        if type(message) is dict:
            meta = message.pop(MSG_KEY, None)
            if type(meta) is tuple and len(meta) == 2:
                hb.recv(node_name(node), message.get("type", "?"), meta[0], meta[1])
        TCPTransport._onMessageReceived(self, node, message)
        poll = getattr(self._syncObj, "_hb_poll", None)
        if poll is not None:
            poll()


def snapshot(so: SyncObj) -> dict[str, object]:
    """The Raft state the fuzzer watches, read from SyncObj's private fields."""
    state = so._SyncObj__raftState
    log = so._SyncObj__raftLog
    snap: dict[str, object] = {  # term before role: a new leader's term is known first
        "term": so._SyncObj__raftCurrentTerm,
        "role": ROLES.get(state, str(state)),
        "commit_index": so._SyncObj__raftCommitIndex,
        "last_log_index": log[-1][1] if len(log) else 0,
    }
    if state == LEADER:
        match = so._SyncObj__raftMatchIndex
        nxt = so._SyncObj__raftNextIndex
        for peer in sorted(match, key=node_name):
            snap[f"match_index.{node_name(peer)}"] = match[peer]
        for peer in sorted(nxt, key=node_name):
            snap[f"next_index.{node_name(peer)}"] = nxt[peer]
    return snap


def status(so: SyncObj, node: str, version: str) -> dict[str, object]:
    """The ``status`` reply: role, term, leader, indexes (read without locking)."""
    log = so._SyncObj__raftLog
    leader = so._SyncObj__raftLeader
    return {
        "node": node,
        "version": version,
        "role": ROLES.get(so._SyncObj__raftState, "?"),
        "term": so._SyncObj__raftCurrentTerm,
        "leader": None if leader is None else node_name(leader),
        "commit_index": so._SyncObj__raftCommitIndex,
        "last_applied": so._SyncObj__raftLastApplied,
        "last_log_index": log[-1][1] if len(log) else 0,
        "ready": bool(so.isReady()),
        "has_quorum": getattr(so, "hasQuorum", None),  # None: the release has no such property
    }


def instrumented_class(base: type[SyncObj], boot_ms: int) -> type[SyncObj]:
    """A subclass of ``base`` reporting STATE and APPLY events (see module doc)."""
    HBTransport.msg_ids = MsgIds(boot_ms)

    class Instrumented(base):
        def __init__(self, *args, **kwargs) -> None:
            # Set before SyncObj.__init__: its tick thread starts inside it, and
            # attributes that exist by then are left out of log-compaction dumps.
            self._hb_watch = StateWatch()
            self._hb_lock = threading.Lock()
            kwargs.setdefault("transportClass", HBTransport)
            super().__init__(*args, **kwargs)

        def _hb_poll(self) -> None:
            with self._hb_lock:
                try:
                    snap = snapshot(self)
                except (AttributeError, IndexError, KeyError):
                    return  # still initialising
                for key, value in self._hb_watch.changes(snap):
                    hb.state(key, value)

        def _onTick(self, timeToWait=0.0):  # noqa: N803 (the library's name)
            try:
                return super()._onTick(timeToWait)
            finally:
                self._hb_poll()

        def _SyncObj__doApplyCommand(self, command):  # noqa: N802
            index = self._SyncObj__raftLastApplied + 1
            entries = self._SyncObj__getEntries(index, 1)
            term = entries[0][2] if entries and entries[0][1] == index else -1
            self._hb_poll()
            result = SyncObj._SyncObj__doApplyCommand(self, command)
            hb.apply(index, term, digest(command))
            return result

    Instrumented.__name__ = Instrumented.__qualname__ = f"Instrumented{base.__name__}"
    return Instrumented

