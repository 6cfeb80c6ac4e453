"""The built-in invariants of replicated systems (Raft-style safety properties).

Why these: they are the properties stated once and reused by every consensus
target (election safety, state machine safety, monotonic indices), written
against the STATE/APPLY conventions documented in :mod:`fuzzer.checkers.invariants`.
Each only compares a node with itself in program order, or accumulates facts
across nodes in an order-free way, because events of different nodes reach the
tracker in no particular order.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from fuzzer.checkers.invariant_base import Breach, Invariant, InvariantContext, is_number
from instrumentation import protocol
from instrumentation.protocol import Event


class OneLeaderPerTerm(Invariant):
    """At most one node becomes leader in any term (Raft's Election Safety).

    Counted on each STATE ``role_key`` event whose value is ``leader``, with
    the node's latest ``term_key`` value at that moment.
    """

    kinds = frozenset({protocol.STATE})

    def __init__(self, role_key: str = "role", term_key: str = "term", leader: Any = "leader"):
        self.name = "one-leader-per-term"
        self.role_key, self.term_key, self.leader = role_key, term_key, leader
        self._leaders: dict[Any, dict[str, Event]] = {}

    def observe(self, ev: Event, ctx: InvariantContext) -> Breach | None:
        if (
            ev.kind != protocol.STATE
            or ev.fields[0] != self.role_key
            or ev.fields[1] != self.leader
        ):
            return None
        term = ctx.state(ev.node, self.term_key)
        if term is None:
            return None
        leaders = self._leaders.setdefault(term, {})
        leaders.setdefault(ev.node, ev)
        if len(leaders) < 2:
            return None
        return Breach(
            f"{len(leaders)} leaders in term {term}: {', '.join(sorted(leaders))}",
            tuple(leaders[n] for n in sorted(leaders)),
            {"term": term, "leaders": sorted(leaders)},
            key=(term, len(leaders)),
        )


class StateMachineSafety(Invariant):
    """No two APPLY events at the same index carry different digests."""

    kinds = frozenset({protocol.APPLY})

    def __init__(self) -> None:
        self.name = "state-machine-safety"
        self._first: dict[Any, Event] = {}

    def observe(self, ev: Event, ctx: InvariantContext) -> Breach | None:
        if ev.kind != protocol.APPLY:
            return None
        index, _term, digest = ev.fields
        first = self._first.setdefault(index, ev)
        if first is ev or first.fields[2] == digest:
            return None
        a, b = sorted((first, ev), key=lambda e: (e.lamport, e.node, e.seq))
        return Breach(
            f"index {index} applied as {a.fields[2]!r} on {a.node} "
            f"and as {b.fields[2]!r} on {b.node}",
            (a, b),
            {"index": index, "digests": [repr(a.fields[2]), repr(b.fields[2])]},
            key=index,
        )


class Monotonic(Invariant):
    """A numeric STATE key never decreases on one node (``strict``: never repeats
    either). ``key`` may be a glob (``match_index.*``: each key separately).
    Non-numeric values are skipped; with ``reset_on_exit`` a node's history
    is forgotten at its EXIT event (volatile state such as Raft's commit
    index restarts from zero; keep it False for persistent keys like term)."""

    kinds = frozenset({protocol.STATE, protocol.EXIT})

    def __init__(self, key: str, strict: bool = False, reset_on_exit: bool = True):
        if not isinstance(key, str) or not key:
            raise ValueError("monotonic needs a non-empty 'key'")
        self.name = f"monotonic({key})"
        self.key, self.strict, self.reset_on_exit = key, strict, reset_on_exit
        self._glob = any(c in key for c in "*?[")
        self._last: dict[tuple[str, str], Event] = {}

    def observe(self, ev: Event, ctx: InvariantContext) -> Breach | None:
        if ev.kind == protocol.EXIT and self.reset_on_exit:
            for k in [k for k in self._last if k[0] == ev.node]:
                del self._last[k]
            return None
        if ev.kind != protocol.STATE:
            return None
        key, value = ev.fields
        if not (key == self.key or (self._glob and fnmatch.fnmatchcase(str(key), self.key))):
            return None
        if not is_number(value):
            return None
        prev = self._last.get((ev.node, key))
        self._last[(ev.node, key)] = ev
        if prev is None:
            return None
        old = prev.fields[1]
        if value < old or (self.strict and value == old):
            return Breach(
                f"{key} on {ev.node} went from {old!r} to {value!r}",
                (prev, ev),
                {"node": ev.node, "key": key, "before": old, "after": value},
                key=(ev.node, key),
            )
        return None


class MatchIndexMonotonic(Invariant):
    """A leader's view of each follower's match index never decreases within a term.

    Reads STATE ``<prefix><peer>`` (default ``match_index.n2``) on a node whose
    latest ``role_key`` is ``leader``, keyed by (leader, its current term, peer).
    """

    kinds = frozenset({protocol.STATE, protocol.EXIT})

    def __init__(
        self,
        prefix: str = "match_index.",
        role_key: str = "role",
        term_key: str = "term",
        leader: Any = "leader",
    ):
        self.name = "match-index-monotonic"
        self.prefix, self.role_key, self.term_key, self.leader = prefix, role_key, term_key, leader
        self._last: dict[tuple, Event] = {}

    def observe(self, ev: Event, ctx: InvariantContext) -> Breach | None:
        if ev.kind == protocol.EXIT:
            for k in [k for k in self._last if k[0] == ev.node]:
                del self._last[k]
            return None
        if ev.kind != protocol.STATE:
            return None
        key, value = ev.fields
        if not (isinstance(key, str) and key.startswith(self.prefix)) or not is_number(value):
            return None
        if ctx.state(ev.node, self.role_key) != self.leader:
            return None
        term = ctx.state(ev.node, self.term_key)
        peer = key[len(self.prefix) :]
        k = (ev.node, term, peer)
        prev = self._last.get(k)
        self._last[k] = ev
        if prev is not None and value < prev.fields[1]:
            return Breach(
                f"leader {ev.node} in term {term}: match index of {peer} went from "
                f"{prev.fields[1]!r} to {value!r}",
                (prev, ev),
                {"leader": ev.node, "term": term, "peer": peer},
                key=(ev.node, term, peer),
            )
        return None
