"""Event-stream invariants: properties of replicated systems stated once,
checked online as events arrive and re-runnable offline over a saved trace.

Why online: a violated invariant (two leaders in one term, two different
commands applied at one index) is a finding the moment it happens; checking
while the tracker ingests lets an execution stop early and keeps memory flat.
Why also offline: the same :class:`InvariantSet`, fed a saved trace event by
event, gives the same verdicts, so replays and minimisation re-check bundles
without a running tracker.

An invariant sees one event at a time plus an :class:`InvariantContext` (the
latest STATE value per node and key, and the HB queries ``happens_before`` /
``causal_past`` of the timeline). It returns nothing when all is well, or
:class:`Breach` values; the set turns each breach into a
:class:`~fuzzer.checkers.verdict.Verdict` carrying the events involved and
their causal past. Invariants keep their own state, so build a fresh set per
execution (:meth:`InvariantSet.from_config` does).

Events arrive in per-node order but in no order across nodes, so the
built-ins only compare a node with itself in program order, or accumulate
facts across nodes (leaders per term, digests per index) in order-free ways.

STATE conventions the built-ins rely on (document them to target authors):
``term`` (int) and ``role`` (``"leader"``...) per node, the term emitted
*before* the role when a node becomes leader; ``match_index.<peer>`` (int)
emitted by a leader for each follower; APPLY ``(index, term, digest)``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fuzzer.checkers.invariant_base import (
    Breach,
    FunctionInvariant,
    HBView,
    Invariant,
    InvariantContext,
)
from fuzzer.checkers.invariant_builtins import (
    MatchIndexMonotonic,
    Monotonic,
    OneLeaderPerTerm,
    StateMachineSafety,
)
from fuzzer.checkers.verdict import Verdict, ok, unknown, violated
from fuzzer.errors import ConfigError
from instrumentation import protocol
from instrumentation.protocol import Event

__all__ = [
    "ORACLE",
    "Breach",
    "FunctionInvariant",
    "HBView",
    "Invariant",
    "InvariantContext",
    "InvariantSet",
    "MatchIndexMonotonic",
    "Monotonic",
    "OneLeaderPerTerm",
    "REGISTRY",
    "StateMachineSafety",
    "build_invariant",
    "check_trace",
    "register_invariant",
]

ORACLE = "invariant"

# --- registry --------------------------------------------------------------------------

Factory = Callable[..., Invariant]
REGISTRY: dict[str, Factory] = {
    "one-leader-per-term": OneLeaderPerTerm,
    "state-machine-safety": StateMachineSafety,
    "monotonic": Monotonic,
    "match-index-monotonic": MatchIndexMonotonic,
}


def register_invariant(name: str, factory: Factory) -> None:
    """Make ``{"name": name, ...params}`` in a target config build ``factory(**params)``."""
    REGISTRY[name] = factory


def build_invariant(spec: Mapping[str, Any], *, source: str = "<config>") -> Invariant:
    """An invariant from a config entry ``{"name": ..., **params}``.

    ``name`` is a registered name, or ``"package.module:attr"`` naming an
    :class:`Invariant` subclass / factory (called with the params) or a plain
    ``fn(event, ctx)`` function (no params). Raises :class:`ConfigError`
    naming the source and key.
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError("an invariant entry needs a 'name'", path=source, where="invariants")
    name = spec["name"]
    if not isinstance(name, str):
        raise ConfigError(
            f"invariant name must be a string, got {name!r}", path=source, where="invariants"
        )
    params = {k: v for k, v in spec.items() if k != "name"}
    where = f"invariants.{name}"
    if name in REGISTRY:
        factory: Any = REGISTRY[name]
    elif ":" in name:
        factory = _import(name, source, where)
    else:
        raise ConfigError(
            f"unknown invariant {name!r}; valid: {', '.join(sorted(REGISTRY))} "
            "or 'package.module:attr'",
            path=source,
            where=where,
        )
    if not (isinstance(factory, type) and issubclass(factory, Invariant)) and name not in REGISTRY:
        if params:
            raise ConfigError(
                f"function invariant takes no parameters, got {sorted(params)}",
                path=source,
                where=where,
            )
        return FunctionInvariant(factory, name=name)
    try:
        inv = factory(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad parameters: {exc}", path=source, where=where) from None
    if not isinstance(inv, Invariant):
        raise ConfigError("factory did not return an Invariant", path=source, where=where)
    return inv


def _import(ref: str, source: str, where: str) -> Any:
    mod_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {ref!r}: {exc}", path=source, where=where) from None
    if not callable(obj):
        raise ConfigError(f"{ref!r} is not callable", path=source, where=where)
    return obj


# --- the set ---------------------------------------------------------------------------


class InvariantSet:
    """Several invariants evaluated together over one event stream.

    Online: :meth:`attach` to a tracker ``Timeline`` (its listener calls
    :meth:`observe` for each event, under the timeline's lock). Offline:
    :meth:`run` over a saved list of events. Thread-safe. An invariant that
    raises is disabled and reported as ``unknown`` (never crashes the tracker).
    """

    def __init__(
        self,
        invariants: Iterable[Invariant],
        hb: HBView | None = None,
        *,
        max_context: int = 200,
        max_violations: int = 100,
    ) -> None:
        self.invariants = list(invariants)
        self.ctx = InvariantContext(hb)
        self.max_context = max_context
        self.max_violations = max_violations
        self._lock = threading.RLock()
        self._breaches: list[tuple[str, Breach]] = []  # (invariant name, breach)
        self._seen: set[tuple[str, Any]] = set()
        self._broken: dict[int, Verdict] = {}
        self._dispatch: dict[int, list[int]] = {}
        self._route()
        self.events = 0

    def _route(self) -> None:
        """Which invariants (by position) see which event kind; ``-1`` for unknown kinds."""
        live = [i for i in range(len(self.invariants)) if i not in self._broken]
        for kind in [*protocol.KIND_NAMES, -1]:
            self._dispatch[kind] = [
                i
                for i in live
                if self.invariants[i].kinds is None or kind in self.invariants[i].kinds
            ]

    @classmethod
    def from_config(
        cls,
        specs: Iterable[Mapping[str, Any]],
        hb: HBView | None = None,
        *,
        source: str = "<config>",
        **kw: Any,
    ) -> InvariantSet:
        return cls([build_invariant(s, source=source) for s in specs], hb, **kw)

    def attach(self, timeline: Any) -> None:
        """Evaluate online: use ``timeline`` for HB queries and subscribe to it.

        Only events added from now on are seen: attach when the timeline is
        created (``Tracker(on_timeline=...)``), before any event arrives."""
        self.ctx.hb = timeline
        timeline.add_listener(self.observe)

    def observe_many(self, events: Iterable[Event]) -> list[Verdict]:
        """Feed several events in order; returns the violations they revealed."""
        new: list[Verdict] = []
        with self._lock:
            for ev in events:
                new.extend(self.observe(ev))
        return new

    def observe(self, event: Event) -> list[Verdict]:
        """Feed one event; returns the violations it revealed (usually none), with
        the causal past known so far (see :attr:`violations`)."""
        new: list[Verdict] = []
        kind = event.kind
        route = self._dispatch.get(kind)
        if route is None:
            route = self._dispatch[-1]
        if not route and kind != protocol.STATE:  # fast path: nobody wants this event
            self.events += 1
            return new
        with self._lock:
            self.events += 1
            if kind == protocol.STATE:
                self.ctx._update(event)
            for i in route:
                inv = self.invariants[i]
                try:
                    out = inv.observe(event, self.ctx)
                    if out is None:
                        continue
                    for b in [out] if isinstance(out, Breach) else list(out):
                        if self._record(inv, b):
                            new.append(self._verdict(inv.name, b))
                except Exception as exc:  # a user invariant's bug must not stop the tracker
                    self._broken[i] = unknown(
                        ORACLE,
                        inv.name,
                        f"invariant raised {type(exc).__name__}: {exc}",
                        (event,),
                    )
                    self._route()
        return new

    def _record(self, inv: Invariant, b: Breach) -> bool:
        dedup = (inv.name, _hashable(b.key) if b.key is not None else _ids(b.events))
        if dedup in self._seen or len(self._breaches) >= self.max_violations:
            return False
        self._seen.add(dedup)
        self._breaches.append((inv.name, b))
        return True

    def _verdict(self, name: str, b: Breach) -> Verdict:
        """The breach as a verdict, with the causal past as the HB view knows it *now*."""
        context, dropped = self._context(b.events)
        details = dict(b.details)
        if dropped:
            details["context_dropped"] = dropped
        return violated(ORACLE, name, b.explanation, b.events, context=context, **details)

    def _context(self, events: tuple[Event, ...]) -> tuple[tuple[Event, ...], int]:
        """The union of the events' causal pasts (offending events excluded),
        in Lamport order, keeping the ``max_context`` most recent."""
        hb = self.ctx.hb
        if hb is None:
            return (), 0
        past: dict[tuple, Event] = {}
        for e in events:
            try:
                for p in hb.causal_past(e):
                    past[(p.node, p.seq, p.lamport, p.mono_ns)] = p
            except KeyError:  # the event is not (yet) in the HB view
                continue
        for e in events:
            past.pop((e.node, e.seq, e.lamport, e.mono_ns), None)
        ordered = sorted(past.values(), key=lambda p: (p.lamport, p.node, p.seq))
        dropped = max(0, len(ordered) - self.max_context)
        return tuple(ordered[dropped:]), dropped

    def run(self, events: Iterable[Event]) -> list[Verdict]:
        """Offline: observe every event in order, then return :meth:`verdicts`."""
        for ev in events:
            self.observe(ev)
        return self.verdicts()

    @property
    def violations(self) -> list[Verdict]:
        """Violations found so far, in detection order.

        The causal past is computed at each call: online, events of other
        nodes (a SEND behind a RECV) often arrive after the breach was
        detected, so read this after the execution for the full context.
        """
        # The causal past is read outside our lock: the tracker's ingest thread holds
        # the timeline's lock while it feeds ``observe`` (which takes ours), so holding
        # ours while waiting for the timeline's would deadlock (seen in a soak run).
        with self._lock:
            breaches = list(self._breaches)
        return [self._verdict(name, b) for name, b in breaches]

    def verdicts(self) -> list[Verdict]:
        """One verdict per invariant that held (ok) or broke (unknown), plus every violation."""
        out = self.violations  # outside our lock (see violations)
        with self._lock:
            failed = {v.name for v in out}
            for i, inv in enumerate(self.invariants):
                if i in self._broken:
                    out.append(self._broken[i])
                elif inv.name not in failed:
                    out.append(ok(ORACLE, inv.name, f"held over {self.events} events"))
            return out


def _ids(events: Iterable[Event]) -> tuple:
    """Events carry dicts (LOCAL attrs), so they are not hashable: use their identity."""
    return tuple((e.node, e.seq, e.lamport, e.mono_ns) for e in events)


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def check_trace(
    specs: Iterable[Mapping[str, Any] | Invariant],
    events: Iterable[Event],
    hb: HBView | None = None,
) -> list[Verdict]:
    """Offline: build a fresh set from specs/invariants and run it over ``events``.

    Without ``hb``, the events are replayed into a fresh tracker ``Timeline``
    (in the given order) with the set attached, exactly as online.
    """
    invs = [s if isinstance(s, Invariant) else build_invariant(s) for s in specs]
    if hb is not None:
        return InvariantSet(invs, hb).run(events)
    from fuzzer.tracker.timeline import Timeline

    timeline = Timeline("offline")
    iset = InvariantSet(invs)
    iset.attach(timeline)
    for ev in events:
        timeline.add(ev)
    return iset.verdicts()
