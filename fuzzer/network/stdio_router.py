"""Routing of Maelstrom messages between endpoints, through the network model.

Why separate from the processes (stdio.py): deciding where a message goes,
what fate it gets, which Lamport stamps it carries and how it is handed over
is the same whatever runs the nodes; the mediator subclass adds the node
processes (start, read their stdout, kill, pause) on top of this.

Endpoints are nodes (``n1``...), clients (``c1``, ``c2``...; the harness
itself is ``c0``) and the built-in services (``lin-kv``, ``seq-kv``,
``lww-kv``, ``lin-tso``, see services.py). Node-to-node messages always get a
fate from the model (delay, drop, duplicate, reorder, partitions), client and
service links too when ``client_faults`` / ``service_faults`` is set. Each
message becomes a SEND event on its sender and a RECV event per delivered
copy on its receiver (events.py). Every endpoint has one writer task (an
:class:`~fuzzer.network.outbox.Outbox`) in the router's TaskGroup.

With ``order`` (a :class:`~fuzzer.network.ordering.DeliveryOrder`), every
routed message gets a per-link key, each endpoint's first deliveries are
logged in ``order.log()``, and a recorded order is enforced per destination
(ordering.py). Without it, nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fuzzer.errors import NetworkError
from fuzzer.network.events import LamportBook, Sink
from fuzzer.network.model import DELIVER_NOW, NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.network.outbox import Outbox
from fuzzer.network.services import SERVICES, make_services

log = logging.getLogger("fuzzer.network.stdio")

HARNESS = "c0"  # the client that sends init
MAX_PENDING = 200_000  # messages queued for one endpoint before new ones are dropped


@dataclass
class RouteStats:
    """Counters for one directed link ``src -> dst``."""

    messages: int = 0  # messages taken from the sender
    delivered: int = 0  # copies handed to the receiver
    dropped: int = 0  # dropped by their fate
    duplicated: int = 0  # extra copies
    delayed: int = 0
    held: int = 0
    undeliverable: int = 0  # due while the receiving process was down, or queue overflow

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class WarningLimiter:
    """Rate-limits one kind of warning per source (a node, a link).

    Why: a node printing garbage in a loop, or sending to a name that does
    not exist, would otherwise write one log line per message and flood the
    fuzzer's log (and its disk) at the node's pace. The first ``first``
    occurrences per source are logged in full; after that they are only
    counted, and at most one summary line per source per ``interval``
    seconds says how many were suppressed (:meth:`flush` gives the rest at
    close). Pure: the caller logs, ``clock`` is injectable.
    """

    def __init__(self, what: str, *, first: int = 5, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.what = what  # e.g. "malformed lines from {source}"
        self.first = first
        self.interval = interval
        self.clock = clock
        self.counts: dict[str, int] = {}  # every occurrence, per source
        self.suppressed: dict[str, int] = {}  # not logged in full, per source
        self._pending: dict[str, int] = {}  # suppressed since the last summary
        self._last: dict[str, float] = {}  # when the last line about the source was logged

    def hit(self, source: str) -> tuple[bool, str | None]:
        """Count one occurrence: (log it in full?, a summary line to log now or None)."""
        n = self.counts[source] = self.counts.get(source, 0) + 1
        now = self.clock()
        if n <= self.first:
            self._last[source] = now
            return True, None
        self.suppressed[source] = self.suppressed.get(source, 0) + 1
        self._pending[source] = self._pending.get(source, 0) + 1
        if now - self._last.get(source, now) >= self.interval:
            self._last[source] = now
            return False, self._summary(source)
        return False, None

    def _summary(self, source: str) -> str:
        n = self._pending.pop(source, 0)
        return (f"{n} more {self.what.format(source=source)} suppressed "
                f"({self.counts.get(source, 0)} in all)")

    def note(self, source: str) -> str:
        """Text to append to the last full line of a source (says what happens next)."""
        if self.counts.get(source) == self.first:
            return f" (further ones are counted, summarised every {self.interval:g}s)"
        return ""

    def flush(self) -> list[str]:
        """Summaries of every source with suppressed occurrences not yet reported."""
        return [self._summary(src) for src in sorted(self._pending) if self._pending[src]]


class Endpoint:
    """A node, client or service: its writer (outbox) and, for nodes, its process."""

    __slots__ = ("name", "kind", "argv", "outbox", "proc", "reader", "expected_exit",
                 "paused", "inits", "init_key")

    def __init__(self, name: str, kind: str, argv: Sequence[str] = ()):
        self.name = name
        self.kind = kind  # "node", "client" or "service"
        self.argv = list(argv)
        self.outbox: Outbox | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task | None = None
        self.expected_exit = False
        self.paused = False
        self.inits = 0
        self.init_key: tuple[str, Any] | None = None


class StdioRouter:
    """Moves Maelstrom messages between endpoints under the model's fates.

    A node endpoint receives by a write to its process's stdin (``ep.proc``,
    set by the subclass that runs the processes); a service answers at once
    (services.py); a client resolves the future of the request it waits for.
    """

    def __init__(
        self,
        nodes: Mapping[str, Sequence[str]],
        model: NetworkModel,
        *,
        sink: Sink | None = None,
        book: LamportBook | None = None,
        services: Sequence[str] = SERVICES,
        service_seed: int | None = None,
        stale: float = 0.25,
        client_faults: bool = False,
        service_faults: bool = False,
        order: DeliveryOrder | None = None,
    ):
        if not nodes:
            raise NetworkError("a stdio cluster needs at least one node")
        self.model = model
        self.order = order
        self.book = book if book is not None else LamportBook(sink)
        self.client_faults = client_faults
        self.service_faults = service_faults
        self.node_ids: list[str] = list(nodes)
        self.services = make_services(
            tuple(services), seed=model.seed if service_seed is None else service_seed, stale=stale
        )
        self._ep: dict[str, Endpoint] = {}
        for name, argv in nodes.items():
            if name in self.services or not argv:
                raise NetworkError(f"node {name!r}: bad name or empty command")
            self._ep[name] = Endpoint(name, "node", argv)
        for name in self.services:
            self._ep[name] = Endpoint(name, "service")
        self.stats: dict[tuple[str, str], RouteStats] = {}
        self.unroutable = 0
        self.unroutable_log = WarningLimiter("messages from {source} to unknown destinations")
        self.unexpected_replies = 0
        self.internal_errors = 0  # bugs caught at the edge so routing goes on (should stay 0)
        self._pending: dict[tuple[str, Any], asyncio.Future] = {}
        self._next_msg_id: dict[str, int] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        assert self._tg is not None
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- endpoints --------------------------------------------------------------

    def _endpoint(self, name: str, kind: str) -> Endpoint:
        ep = self._ep.get(name)
        if ep is None:
            ep = self._ep[name] = Endpoint(name, kind)
            self._open_outbox(ep)
        return ep

    def _open_outbox(self, ep: Endpoint) -> None:
        order = self.order
        if ep.kind == "node":
            ep.outbox = Outbox(self._guarded(self._write_node, ep),
                               lambda ep=ep: self._drain_node(ep), order=order)
        elif ep.kind == "service":
            ep.outbox = Outbox(self._guarded(self._serve, ep), order=order)
        else:
            ep.outbox = Outbox(self._guarded(self._reply, ep), order=order)
        self._spawn(ep.outbox.run(), f"outbox {ep.name}")

    def _guarded(self, fn, ep: Endpoint):
        """A writer that logs and counts a failure instead of stopping the mediator."""

        def write(items: list) -> None:
            try:
                fn(ep, items)
            except Exception:
                self.internal_errors += 1
                log.exception("delivering %d message(s) to %s failed", len(items), ep.name)

        return write

    def _link_stats(self, src: str, dst: str) -> RouteStats:
        st = self.stats.get((src, dst))
        if st is None:
            st = self.stats[(src, dst)] = RouteStats()
        return st

    def _msg_id(self, name: str) -> int:
        n = self._next_msg_id.get(name, 0) + 1
        self._next_msg_id[name] = n
        return n

    # -- routing ----------------------------------------------------------------

    def _route(self, src: str, dest: str, body: dict, line: bytes | None,
               faults: bool | None = None) -> None:
        """Take one message from ``src``: stamp it, decide its fate, schedule it."""
        ep = self._ep.get(dest)
        if ep is None:
            if dest[:1] == "c" and dest[1:].isdigit():
                ep = self._endpoint(dest, "client")
            else:
                self.unroutable += 1
                full, summary = self.unroutable_log.hit(src)
                if full:
                    log.warning("message from %s to unknown destination %r dropped%s", src,
                                dest[:80], self.unroutable_log.note(src))
                if summary:
                    log.warning("%s", summary)
                return
        st = self._link_stats(src, dest)
        st.messages += 1
        key = self.order.next_key(src, dest) if self.order is not None else None
        msg_type = body.get("type")
        stamp = self.book.send(src, dest, msg_type if isinstance(msg_type, str) else "?")
        if faults is None:
            src_kind = self._ep[src].kind
            if src_kind == "node" and ep.kind == "node":
                faults = True
            elif src_kind == "client" or ep.kind == "client":
                faults = self.client_faults
            else:
                faults = self.service_faults
        fate = self.model.decide(src, dest)[1] if faults else DELIVER_NOW
        kind = fate.kind
        if kind == "drop":
            st.dropped += 1
            if key is not None:
                self.order.cancel(key)  # nobody waits for a message that will never come
            return
        if kind == "duplicate":
            st.duplicated += max(fate.copies, 2) - 1
        elif kind == "delay":
            st.delayed += 1
        elif kind == "hold":
            st.held += 1
        box = ep.outbox
        if box.pending >= MAX_PENDING:  # e.g. a paused node under a flood: do not grow forever
            st.undeliverable += 1
            if key is not None:
                self.order.cancel(key)
            return
        if line is None and ep.kind == "node":
            line = json.dumps({"src": src, "dest": dest, "body": body}).encode()
        box.put((src, body, line, stamp, key), fate, src)

    def _write_node(self, ep: Endpoint, items: list) -> None:
        proc = ep.proc
        stdin = proc.stdin if proc is not None else None
        if stdin is None or stdin.is_closing() or proc.returncode is not None:
            for src, _body, _line, _stamp, _key in items:
                self._link_stats(src, ep.name).undeliverable += 1
            return
        recv = self.book.recv
        stats = self.stats
        name = ep.name
        for src, _body, _line, stamp, _key in items:
            recv(name, stamp)
            stats[(src, name)].delivered += 1
        stdin.write(b"\n".join([it[2] for it in items]) + b"\n")

    async def _drain_node(self, ep: Endpoint) -> None:
        proc = ep.proc
        if proc is None or proc.stdin is None:
            return
        try:
            await proc.stdin.drain()
        except (ConnectionError, OSError):
            pass  # the process died; its reader records the exit

    def _serve(self, ep: Endpoint, items: list) -> None:
        svc = self.services[ep.name]
        for src, body, _line, stamp, _key in items:
            self.book.recv(ep.name, stamp)
            self.stats[(src, ep.name)].delivered += 1
            reply = svc.handle(src, body)
            reply["msg_id"] = self._msg_id(ep.name)
            if "msg_id" in body:
                reply["in_reply_to"] = body["msg_id"]
            self._route(ep.name, src, reply, None)

    def _reply(self, ep: Endpoint, items: list) -> None:
        for src, body, _line, stamp, _key in items:
            self.book.recv(ep.name, stamp)
            self.stats[(src, ep.name)].delivered += 1
            fut = self._pending.pop((ep.name, body.get("in_reply_to")), None)
            if fut is None or fut.done():
                self.unexpected_replies += 1
            else:
                fut.set_result(body)

    # -- clients ------------------------------------------------------------------

    async def client_request(self, client: str, dest: str, body: Mapping[str, Any],
                             timeout: float, *, faults: bool | None = None) -> dict | None:
        """Send ``body`` from ``client`` to node/service ``dest``; return the reply body,
        or None if none arrives within ``timeout`` seconds (an indefinite outcome).
        A ``msg_id`` is assigned when the body has none."""
        if self._tg is None or self._closed:
            raise NetworkError("StdioMediator is not running")
        ep = self._ep.get(client)
        if ep is not None and ep.kind != "client":
            raise NetworkError(f"{client!r} is a {ep.kind}, not a client")
        self._endpoint(client, "client")
        body = dict(body)
        if "msg_id" not in body:
            body["msg_id"] = self._msg_id(client)
        key, fut = self._expect(client, body["msg_id"])
        try:
            self._route(client, dest, body, None, faults)
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return None
        finally:
            self._pending.pop(key, None)

    def _expect(self, client: str, msg_id: Any) -> tuple[tuple[str, Any], asyncio.Future]:
        key = (client, msg_id)
        if key in self._pending:
            raise NetworkError(f"client {client} already waits for msg_id {msg_id}")
        fut = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        return key, fut
