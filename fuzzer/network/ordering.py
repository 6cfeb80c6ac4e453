"""Replay of the original message delivery order: hold a message until its
recorded predecessors were delivered, give up after a timeout.

Why: feeding back the recorded fates by key (model.py) gives each message
the same drop/delay/duplicate/hold decision, but on a real cluster messages
from different senders still reach a node in a different interleaving on
every run, and that interleaving is often what a bug needs. The mediator is
every message's last hop, so it can make a node observe the original order
again, where the same messages exist.

What is recorded (:meth:`DeliveryOrder.log`): every message the mediator
takes gets a key ``(src, dst, k)``, ``k`` the 0-based index of the message
among all messages the mediator took on the directed link ``src -> dst``
(dropped ones included, init messages from the harness excluded; for TCP,
all connections of the link together, framed mode only). The log is the
sequence of keys in the order of their *first* delivery (the moment the
mediator hands the message to the destination, where its RECV event is
made; later duplicate copies are not logged). It is stored in the recorded
choices (``RecordedChoices.order``), so in a bundle inside its ``choices``
bytes, under ``"order"`` (:func:`encode_order`; absent in older bundles).

What is enforced, and what is not: order is enforced *per destination* (a
node can only observe the order of what it receives). The interleaving of
deliveries at *different* destinations is not enforced: that would
serialise the whole cluster on one sequence and turn every missing message
into a stall for every node, and what one node does after a delivery is
ordered by the node itself. For a destination ``d`` with recorded sequence
``R_d``, a message whose key is at position ``p`` of ``R_d`` may be
delivered once every key before ``p`` was delivered or skipped; a key not
in the recording passes at once (and never blocks anyone). A message that
must wait is held; if it still waits ``timeout`` seconds later, enforcement
gives up for it: the predecessors it waits for are skipped (they will pass
at once if they come after all, counted as ``late``) and it is delivered.
A recorded key waits only on keys before it, so waits form no cycle, and
every wait ends by its timeout: replay never deadlocks.

Why links stall: a replay diverges (a sender sends fewer messages on a link
than in the original, e.g. one heartbeat less), and then every later key of
that link in the recording is missing; waiting a timeout for each would
stall the destination again and again. So when a give-up skips a key its
sender has not even sent yet, the link is *stalled*: until the mediator
takes a new message on it, its keys not sent yet are skipped without
waiting (one timeout per diverged link, not per missing message).

This module is pure (no I/O, no clock of its own: callers pass nothing but
keys; the :class:`~fuzzer.network.outbox.Outbox` owns time). Progress
listeners let writers of the same destination (TCP: one outbox per
connection) wake each other when a key is delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fuzzer.errors import InputError, NetworkError

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ORDER",
    "OrderKey",
    "OrderStats",
    "DeliveryOrder",
    "encode_order",
    "decode_order",
]

OrderKey = tuple[str, str, int]  # (src, dst, per-link index)
DEFAULT_TIMEOUT = 0.2  # seconds a held message waits for its predecessors at most
MAX_ORDER = 2_000_000  # keys one recorded order may hold (decode guard)
ORDER_VERSION = 1

Listener = Callable[[], None]


@dataclass(frozen=True, slots=True)
class OrderStats:
    """What enforcement did in one run.

    ``enforced``: recorded messages delivered in their recorded place (at
    once or after waiting); ``held``: recorded messages that had to wait;
    ``gave_up``: held messages released by the timeout; ``unknown``:
    messages not in the recording (passed at once); ``skipped``: recorded
    messages given up on because a successor timed out (not there yet);
    ``late``: skipped messages that arrived after all; ``recorded``: keys
    in the recording; ``dropped``: recorded messages this run dropped (by
    their fate) or could not deliver, so nobody waited for them.
    """

    enforced: int = 0
    held: int = 0
    gave_up: int = 0
    unknown: int = 0
    skipped: int = 0
    late: int = 0
    recorded: int = 0
    dropped: int = 0

    @property
    def known(self) -> int:
        """Recorded messages that were delivered in this run."""
        return self.enforced + self.gave_up + self.late

    @property
    def give_up_rate(self) -> float:
        """Share of the recorded messages delivered in this run for which
        enforcement gave up (timeout) or that came late."""
        k = self.known
        return (self.gave_up + self.late) / k if k else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["known"] = self.known
        d["give_up_rate"] = round(self.give_up_rate, 6)
        return d

    def __add__(self, other: OrderStats) -> OrderStats:
        return OrderStats(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(s: OrderStats) -> tuple[int, ...]:
    return (s.enforced, s.held, s.gave_up, s.unknown, s.skipped, s.late, s.recorded, s.dropped)


class _Dest:
    """One destination's recorded sequence and how far delivery got in it."""

    __slots__ = ("keys", "done", "front", "waiting", "listeners")

    def __init__(self) -> None:
        self.keys: list[OrderKey] = []
        self.done = bytearray()  # per position: 0 pending, 1 delivered, 2 skipped
        self.front = 0  # first position not yet delivered or skipped
        self.waiting = 0  # keys held now
        self.listeners: set[Listener] = set()


class DeliveryOrder:
    """The recorded per-destination delivery order and the gate that enforces it.

    Built from ``recorded`` (keys in the order the original run delivered
    them; an empty recording enforces nothing and only records). One object
    per run: it keeps state. The mediator calls :meth:`next_key` for every
    message it takes; the writer calls :meth:`admit` when the message is due
    (True: deliver now, and it is logged), :meth:`hold` when it is not, and
    :meth:`force` once a held message's ``timeout`` has passed.
    """

    def __init__(self, recorded: Iterable[OrderKey] = (), timeout: float = DEFAULT_TIMEOUT):
        if not timeout > 0:
            raise NetworkError(f"order timeout must be > 0 seconds, not {timeout!r}")
        self.timeout = float(timeout)
        self._pos: dict[OrderKey, int] = {}
        self._dest: dict[str, _Dest] = {}
        for key in recorded:
            if key in self._pos:
                continue  # a duplicate entry in a hand-made recording: first place wins
            d = self._d(key[1])
            self._pos[key] = len(d.keys)
            d.keys.append(key)
            d.done.append(0)
        self._next: dict[tuple[str, str], int] = {}
        self._log: list[OrderKey] = []
        self._logged: set[OrderKey] = set()
        self._held: set[OrderKey] = set()
        self._late: list[OrderKey] = []
        self._stalled: set[tuple[str, str]] = set()  # links skipped while silent
        self._n = [0, 0, 0, 0, 0, 0, 0]  # enforced held gave_up unknown skipped late dropped

    def _d(self, dst: str) -> _Dest:
        d = self._dest.get(dst)
        if d is None:
            d = self._dest[dst] = _Dest()
        return d

    @property
    def enforcing(self) -> bool:
        """True when there is a recording to enforce."""
        return bool(self._pos)

    # -- keys ----------------------------------------------------------------------

    def next_key(self, src: str, dst: str) -> OrderKey:
        """The key of the next message the mediator takes on ``src -> dst``."""
        link = (src, dst)
        k = self._next.get(link, 0)
        self._next[link] = k + 1
        if self._stalled:
            self._stalled.discard(link)  # the sender is active on it again
        return (src, dst, k)

    def position(self, key: OrderKey) -> int | None:
        """The key's place in its destination's recorded sequence (None: unknown)."""
        return self._pos.get(key)

    def recorded(self, dst: str) -> tuple[OrderKey, ...]:
        """The recorded sequence of ``dst``."""
        d = self._dest.get(dst)
        return tuple(d.keys) if d else ()

    # -- the gate --------------------------------------------------------------------

    def ready(self, key: OrderKey) -> bool:
        """May ``key`` be delivered now? (Counts nothing, but may skip keys of
        stalled links, as :meth:`admit` would.)"""
        p = self._pos.get(key)
        if p is None:
            return True
        d = self._dest[key[1]]
        if d.front < p and self._stalled:
            self._skip_stalled(d, p)
        return d.front >= p

    def admit(self, key: OrderKey) -> bool:
        """Deliver ``key`` now if its recorded predecessors are all done: True
        (it is logged and counted), else False (the caller holds it)."""
        p = self._pos.get(key)
        if p is None:
            if key not in self._logged:
                self._n[3] += 1
                self._record(key)
            return True
        d = self._dest[key[1]]
        if d.front < p:
            if not self._stalled:
                return False
            self._skip_stalled(d, p)
            if d.front < p:
                return False
        state = d.done[p]
        if state == 1:
            return True  # a duplicate copy
        if state == 2:
            self._n[5] += 1  # skipped earlier, here after all
            self._late.append(key)
        else:
            self._n[0] += 1
        self._done(d, p, key)
        return True

    def hold(self, key: OrderKey) -> None:
        """``key`` must wait (counted once per key)."""
        if key in self._held:
            return
        self._held.add(key)
        self._n[1] += 1
        self._d(key[1]).waiting += 1

    def force(self, key: OrderKey) -> int:
        """Give up waiting for ``key``: skip its missing predecessors, deliver it.
        Returns how many predecessors were skipped."""
        p = self._pos.get(key)
        if p is None or self.admit(key):
            return 0
        d = self._dest[key[1]]
        skipped = 0
        done = d.done
        nxt = self._next
        for i in range(d.front, p):
            if not done[i]:
                done[i] = 2
                skipped += 1
                src, dst, k = d.keys[i]
                if k >= nxt.get((src, dst), 0):  # not even sent yet: the link diverged
                    self._stalled.add((src, dst))
        self._n[4] += skipped
        self._n[2] += 1
        d.front = p
        self._done(d, p, key)
        return skipped

    def _skip_stalled(self, d: _Dest, p: int) -> None:
        """Skip, from the front up to ``p``, keys of stalled links not sent yet."""
        i, done, keys, nxt, stalled = d.front, d.done, d.keys, self._next, self._stalled
        while i < p:
            if not done[i]:
                src, dst, k = keys[i]
                if (src, dst) not in stalled or k < nxt.get((src, dst), 0):
                    break
                done[i] = 2
                self._n[4] += 1
            i += 1
        n = len(done)
        while i < n and done[i]:
            i += 1
        d.front = i

    def _done(self, d: _Dest, p: int, key: OrderKey) -> None:
        d.done[p] = 1
        front = d.front
        if front == p:
            n, done = len(d.done), d.done
            front += 1
            while front < n and done[front]:
                front += 1
            d.front = front
        self._record(key)
        if key in self._held:
            self._held.discard(key)
            d.waiting -= 1
        if d.listeners and d.waiting > 0:
            for fn in list(d.listeners):
                fn()

    def _record(self, key: OrderKey) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self._log.append(key)

    def cancel(self, key: OrderKey) -> None:
        """``key`` will never be delivered (dropped by its fate, or its writer is
        gone): successors no longer wait for it (counted as ``dropped``)."""
        self.release(key)
        p = self._pos.get(key)
        if p is None:
            return
        d = self._dest[key[1]]
        if d.done[p]:
            return
        self._n[6] += 1
        d.done[p] = 2
        if d.front == p:
            done = d.done
            n = len(done)
            front = p + 1
            while front < n and done[front]:
                front += 1
            d.front = front
            if d.listeners and d.waiting > 0:
                for fn in list(d.listeners):
                    fn()

    def release(self, key: OrderKey) -> None:
        """A held message will not be delivered after all (its writer was discarded)."""
        if key in self._held:
            self._held.discard(key)
            self._d(key[1]).waiting -= 1

    # -- listeners ---------------------------------------------------------------------

    def listen(self, dst: str, fn: Listener) -> None:
        """``fn()`` is called when a key of ``dst`` is done while some key of ``dst``
        is held (a writer with held messages re-checks them)."""
        self._d(dst).listeners.add(fn)

    def unlisten(self, dst: str, fn: Listener) -> None:
        d = self._dest.get(dst)
        if d is not None:
            d.listeners.discard(fn)

    # -- results --------------------------------------------------------------------------

    def log(self) -> tuple[OrderKey, ...]:
        """This run's delivery order: keys in the order of their first delivery."""
        return tuple(self._log)

    def late_keys(self) -> tuple[OrderKey, ...]:
        """Recorded keys that were skipped and arrived afterwards (out of order)."""
        return tuple(self._late)

    def stats(self) -> OrderStats:
        e, h, g, u, s, late, dropped = self._n
        return OrderStats(e, h, g, u, s, late, len(self._pos), dropped)


# --------------------------------------------------------------------------- encoding


def encode_order(keys: Sequence[OrderKey]) -> dict[str, Any]:
    """A delivery order as msgpack-friendly data: a table of links and one int
    per delivery (the link's index when ``k`` is the link's next index, the
    common case) or ``[link, k]``."""
    links: dict[tuple[str, str], int] = {}
    expect: list[int] = []
    seq: list[Any] = []
    for src, dst, k in keys:
        li = links.get((src, dst))
        if li is None:
            li = links[(src, dst)] = len(expect)
            expect.append(0)
        if k == expect[li]:
            seq.append(li)
        else:
            seq.append([li, k])
        expect[li] = k + 1
    return {"v": ORDER_VERSION, "links": [[a, b] for a, b in links], "seq": seq}


def decode_order(obj: Any, path: str = "<order>") -> tuple[OrderKey, ...]:
    """Inverse of :func:`encode_order`; :class:`InputError` naming ``path`` if malformed."""
    if not isinstance(obj, dict) or obj.get("v") != ORDER_VERSION:
        raise InputError(f"expected a delivery order of version {ORDER_VERSION}", path=path,
                         where="order")
    links, seq = obj.get("links"), obj.get("seq")
    if not isinstance(links, list) or not isinstance(seq, list):
        raise InputError("delivery order needs lists 'links' and 'seq'", path=path, where="order")
    if len(seq) > MAX_ORDER:
        raise InputError(f"delivery order has {len(seq)} keys, over {MAX_ORDER}", path=path,
                         where="order")
    table: list[tuple[str, str]] = []
    for i, link in enumerate(links):
        if (not isinstance(link, list) or len(link) != 2
                or not all(isinstance(x, str) for x in link)):
            raise InputError("expected [src, dst] strings", path=path, where=f"order.links[{i}]")
        table.append((link[0], link[1]))
    expect = [0] * len(table)
    out: list[OrderKey] = []
    for i, e in enumerate(seq):
        if type(e) is int:
            li, k = e, None
        elif isinstance(e, list) and len(e) == 2 and type(e[0]) is int and type(e[1]) is int:
            li, k = e
        else:
            raise InputError("expected a link index or [link, k]", path=path,
                             where=f"order.seq[{i}]")
        if not 0 <= li < len(table) or (k is not None and k < 0):
            raise InputError(f"link index {li} or k {k} out of range", path=path,
                             where=f"order.seq[{i}]")
        if k is None:
            k = expect[li]
        expect[li] = k + 1
        out.append((*table[li], k))
    return tuple(out)
