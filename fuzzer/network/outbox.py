"""Delivery of decided messages, in the decided order, by one writer task.

Why one class for both transports: the TCP proxy (per connection direction)
and the stdio router (per destination node) both take messages whose fate the
model has already decided and must hand them over in the order those fates
imply, from a single writer so nothing interleaves. The order is by due time,
ties broken by arrival: ``deliver`` is due now, ``delay`` after ``fate.delay``,
``duplicate`` gives ``fate.copies`` copies (all after ``fate.delay``, one
right behind the other), ``drop`` gives nothing, and ``hold`` keeps the message until
the next message on the same link is scheduled (it then goes right behind
that one) or until ``fate.delay`` seconds have passed, whichever comes first:
that is how a reorder happens. Wake-ups use one loop timer, not a task per
message.

Replay of a recorded delivery order (optional, ``order=``, see ordering.py):
when an item is due, its key (``key_of(item)``, default the item's last
element) must be admitted by the :class:`~fuzzer.network.ordering.DeliveryOrder`;
an item whose recorded predecessors were not delivered yet is parked, and
written as soon as they are (this or another outbox of the same destination
delivered them) or once it waited ``order.timeout`` seconds (give-up). Without
``order`` nothing changes.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fuzzer.network.ordering import DeliveryOrder, OrderKey

Writer = Callable[[list[Any]], None]
Drainer = Callable[[], Awaitable[None]]


class Outbox:
    """A due-time ordered queue of messages plus the coroutine that writes them.

    ``write(items)`` is called with every batch that is due (in order) and
    must not block; ``drain()`` (optional) is awaited after each batch for
    back-pressure. ``run()`` is the writer task; it returns after
    :meth:`finish` once everything pending was written.

    ``fifo=True`` (one TCP connection's direction): a message is never due
    before the one put ahead of it, so a delay that ends, or a shorter delay
    after a longer one, cannot let a later message overtake an earlier one.
    TCP delivers a connection's bytes in order; a proxy that reorders frames
    inside one connection makes executions no real network can produce (found
    the hard way: PySyncObj 0.3.17 "bugs" that needed an append_entries
    overtaking an older one on the same connection).
    """

    def __init__(self, write: Writer, drain: Drainer | None = None, *,
                 order: DeliveryOrder | None = None,
                 key_of: Callable[[Any], OrderKey | None] | None = None,
                 fifo: bool = False):
        self._write = write
        self._fifo = fifo
        self._last_due = 0.0
        self._drain = drain
        self._heap: list[tuple[float, int, Any]] = []
        self._held: dict[Hashable, list[tuple[float, int, Any]]] = {}
        self._n = 0
        self._nheld = 0
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._finishing = False
        self._space = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._order = order
        self._key_of = key_of if key_of is not None else _last
        self._parked: list[tuple[float, int, Any, OrderKey]] = []  # waiting for predecessors
        self._listening: set[str] = set()

    # -- scheduling (called from readers; never blocks) ---------------------

    def _push(self, due: float, item: Any) -> None:
        self._n += 1
        heapq.heappush(self._heap, (due, self._n, item))

    def put(self, item: Any, fate: Any, link: Hashable = None) -> int:
        """Schedule ``item`` under ``fate``; return how many copies will be written
        (0 for drop; a held item counts 1)."""
        now = self._loop.time()
        kind = fate.kind
        if kind == "drop":
            return 0
        if kind == "hold":
            self._n += 1
            deadline = now + fate.delay
            self._held.setdefault(link, []).append((deadline, self._n, item))
            self._nheld += 1
            self._arm(deadline)
            return 1
        copies = 1
        due = now
        if kind == "delay" or kind == "duplicate":
            due = now + fate.delay
        if self._fifo:
            if due < self._last_due:
                due = self._last_due
            self._last_due = due
        self._push(due, item)
        if kind == "duplicate":
            copies = max(int(fate.copies), 2)
            for _ in range(copies - 1):
                self._push(due, item)
        held = self._held.pop(link, None) if self._held else None
        if held:
            self._nheld -= len(held)
            for deadline, _n, h in held:
                self._push(min(deadline, due), h)  # right behind it, or at its max wait
        if due <= now:
            self._wake.set()
        else:
            self._arm(due)
        return copies

    def put_at(self, item: Any, due: float) -> None:
        """Schedule ``item`` at loop time ``due`` (link-level delay, no model fate)."""
        self._push(due, item)
        if due <= self._loop.time():
            self._wake.set()
        else:
            self._arm(due)

    def finish(self) -> None:
        """No more puts: release held items now, and let run() return when empty."""
        self._finishing = True
        self._release_held(self._loop.time(), everything=True)
        self._wake.set()

    def discard(self) -> int:
        """Forget everything pending (the destination is gone); return how many."""
        n = len(self._heap) + self._nheld + len(self._parked)
        if self._order is not None:  # never delivered: nobody may wait for them
            gone = [e[3] for e in self._parked] + [self._key_of(e[2]) for e in self._heap]
            gone += [self._key_of(e[2]) for es in self._held.values() for e in es]
            for key in gone:
                if key is not None:
                    self._order.cancel(key)
        self._parked.clear()
        self._heap.clear()
        self._held.clear()
        self._nheld = 0
        return n

    async def room(self, limit: int) -> None:
        """Wait until at most ``limit`` items are pending (back-pressure for readers)."""
        while self.pending > limit:
            self._space.clear()
            await self._space.wait()

    @property
    def pending(self) -> int:
        return len(self._heap) + self._nheld + len(self._parked)

    def _arm(self, at: float) -> None:
        if at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._wake.set()

    def _release_held(self, now: float, everything: bool = False) -> None:
        for link in list(self._held):
            entries = self._held[link]
            keep = []
            for deadline, n, item in entries:
                if everything or deadline <= now:
                    heapq.heappush(self._heap, (min(deadline, now), n, item))
                    self._nheld -= 1
                else:
                    keep.append((deadline, n, item))
            if keep:
                self._held[link] = keep
            else:
                del self._held[link]

    def _next_wake(self) -> float:
        at = self._heap[0][0] if self._heap else float("inf")
        for deadline, _n, _item, _key in self._parked:
            if deadline < at:
                at = deadline
        for entries in self._held.values():
            for deadline, _n, _item in entries:
                if deadline < at:
                    at = deadline
        return at

    # -- the writer task ------------------------------------------------------

    async def run(self) -> None:
        """Write due items forever (or until finish() and empty). Cancel to stop."""
        heap = self._heap
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                now = self._loop.time()
                if self._held:
                    self._release_held(now)
                batch = []
                while heap and heap[0][0] <= now:
                    batch.append(heapq.heappop(heap)[2])
                if self._order is not None and (batch or self._parked):
                    batch = self._gate(batch, now)
                if batch:
                    self._write(batch)
                    if self._drain is not None:
                        await self._drain()
                    self._space.set()
                    # more may have become due while draining
                    if heap and heap[0][0] <= self._loop.time():
                        self._wake.set()
                        continue
                if self._finishing and not heap and not self._held and not self._parked:
                    return
                at = self._next_wake()
                if at != float("inf"):
                    if at <= self._loop.time():
                        self._wake.set()
                    else:
                        self._arm(at)
        finally:
            if self._order is not None:
                for dst in self._listening:
                    self._order.unlisten(dst, self._wake.set)
                self._listening.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = float("inf")

    # -- delivery order (replay) -------------------------------------------------

    def _gate(self, due: list[Any], now: float) -> list[Any]:
        """The due items the delivery order admits now, in order, plus parked
        items that became admissible or timed out; the rest is parked."""
        order = self._order
        assert order is not None
        key_of = self._key_of
        out: list[Any] = []
        parked = self._parked
        for item in due:
            key = key_of(item)
            if key is None or order.admit(key):
                out.append(item)
                continue
            order.hold(key)
            self._n += 1
            parked.append((now + order.timeout, self._n, item, key))
            dst = key[1]
            if dst not in self._listening:
                self._listening.add(dst)
                order.listen(dst, self._wake.set)
        if not parked:
            return out
        # lowest recorded place first: all of an outbox's items go to one destination, so
        # if one cannot go, none after it can; a give-up never skips a parked predecessor
        parked.sort(key=lambda e: (order.position(e[3]) or 0, e[1]))
        everything = self._finishing
        expired = sum(1 for e in parked if e[0] <= now)  # waited their timeout
        i = 0
        for deadline, _n, item, key in parked:
            if not order.admit(key):
                if not (everything or expired):
                    break
                order.force(key)  # give up for the head of the chain they wait on
            out.append(item)
            if deadline <= now:
                expired -= 1
            i += 1
        del parked[:i]
        return out


def _last(item: Any) -> Any:
    return item[-1]
