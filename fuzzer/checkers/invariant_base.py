"""The building blocks of event-stream invariants (see :mod:`fuzzer.checkers.invariants`).

Why separate: user invariants import only these few names (an :class:`Invariant`
base, the :class:`Breach` they report, the :class:`InvariantContext` they query),
without pulling in the registry and the evaluation machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from instrumentation import protocol
from instrumentation.protocol import Event


class HBView(Protocol):
    """What an invariant may ask of the HB graph (a tracker ``Timeline`` provides it)."""

    def happens_before(self, a: Event, b: Event) -> bool: ...

    def causal_past(self, e: Event) -> list[Event]: ...


@dataclass(frozen=True)
class Breach:
    """One violation as an invariant reports it; ``key`` deduplicates repeats
    (the same breach, e.g. the same term with two leaders, is reported once)."""

    explanation: str
    events: tuple[Event, ...]
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    key: Any = None


class InvariantContext:
    """What an invariant sees besides the event: latest states and HB queries.

    The event being observed is already reflected in :meth:`state`.
    """

    def __init__(self, hb: HBView | None = None) -> None:
        self.hb = hb
        self._state: dict[str, dict[str, Any]] = {}

    def _update(self, ev: Event) -> None:
        if ev.kind == protocol.STATE:
            self._state.setdefault(ev.node, {})[ev.fields[0]] = ev.fields[1]

    def state(self, node: str, key: str, default: Any = None) -> Any:
        """The latest STATE value of ``key`` on ``node`` seen so far."""
        return self._state.get(node, {}).get(key, default)

    def nodes(self) -> list[str]:
        """Nodes that have reported some STATE so far."""
        return list(self._state)

    def happens_before(self, a: Event, b: Event) -> bool:
        if self.hb is None:
            raise RuntimeError("this invariant set has no HB view (pass hb= or attach())")
        return self.hb.happens_before(a, b)

    def concurrent(self, a: Event, b: Event) -> bool:
        return a != b and not self.happens_before(a, b) and not self.happens_before(b, a)

    def causal_past(self, e: Event) -> list[Event]:
        if self.hb is None:
            raise RuntimeError("this invariant set has no HB view (pass hb= or attach())")
        return self.hb.causal_past(e)


class Invariant:
    """Base of an invariant: override :meth:`observe`; set :attr:`name`."""

    name = "invariant"
    #: Event kinds this invariant wants to see (``None``: every event). The set
    #: only calls :meth:`observe` for these, which keeps online checking cheap.
    kinds: frozenset[int] | None = None

    def observe(self, event: Event, ctx: InvariantContext) -> Iterable[Breach] | Breach | None:
        raise NotImplementedError


class FunctionInvariant(Invariant):
    """A user invariant written as ``fn(event, ctx)``.

    ``fn`` returns ``None`` (fine), a string (a violation involving this
    event), a :class:`Breach`, or a list of breaches. Keep state out of
    module globals (use an :class:`Invariant` subclass for stateful checks)
    so that online and offline runs start from scratch.
    """

    def __init__(self, fn: Callable[[Event, InvariantContext], Any], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "user-invariant")

    def observe(self, event: Event, ctx: InvariantContext) -> Any:
        out = self.fn(event, ctx)
        if isinstance(out, str):
            return Breach(out, (event,))
        return out


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
