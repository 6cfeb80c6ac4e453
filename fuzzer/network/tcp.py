"""The TCP mediator: one proxy port per directed link, faults applied in between.

Why a proxy per directed link: node i is configured to reach node j at
``proxy_port(i, j)`` (127.0.0.1, a port the mediator leases and owns), so
every byte from i to j crosses the mediator and the mediator knows both
endpoints without parsing anything. A connection from i to j's proxy carries
i->j bytes forward and j->i bytes back: forward bytes obey the rule of link
(i, j), returning bytes the rule of (j, i), so one-way partitions work even
inside one TCP connection.

Without a codec the proxy applies link faults to the byte stream: ``blocked``
(blackhole: the connection stays open, bytes are read and discarded; a new
connection is accepted but reaches nowhere until the link heals), ``reset``
(connections on the link are closed with RST and new ones refused; checked
for both directions of the pair) and ``delay`` (every chunk later, order kept).
With a codec (``codecs.get_codec``) each framed message asks
``model.decide(src, dst)`` and gets delivered, delayed, dropped, duplicated or
held for reordering (:class:`~fuzzer.network.outbox.Outbox` keeps the decided
order). Each message (each chunk without a codec) becomes a SEND event on
the sender and a RECV event per delivered copy on the receiver.

With a codec and ``order`` (a :class:`~fuzzer.network.ordering.DeliveryOrder`),
every framed message gets a per-link key (all connections of the link
together), first deliveries are logged in ``order.log()`` and a recorded order
is enforced per destination across all connections into it (ordering.py).
Raw byte streams are neither keyed nor ordered.

Structure: every connection is a task of the mediator's TaskGroup and owns a
TaskGroup of four tasks (a reader and a writer per direction); ``close()``
cancels them all and closes every socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fuzzer.cluster.ports import PortLease
from fuzzer.errors import NetworkError
from fuzzer.network.events import LamportBook, Sink, Stamp
from fuzzer.network.listeners import READ_SIZE, LoopbackFront
from fuzzer.network.model import LinkRule, NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.network.outbox import Outbox

log = logging.getLogger(__name__)

Link = tuple[str, str]
MAX_PENDING = 100_000  # messages queued per direction before the reader waits (back-pressure)
RAW_TYPE = "bytes"  # msg_type of SEND/RECV events for unframed chunks


@dataclass
class LinkStats:
    """Counters for one directed link (all its connections together)."""

    messages: int = 0  # messages (chunks without a codec) taken from the sender
    bytes: int = 0  # bytes taken from the sender
    delivered: int = 0  # copies written to the receiver
    dropped: int = 0  # messages dropped (by fate, or discarded by a blackhole)
    dropped_bytes: int = 0
    duplicated: int = 0  # extra copies scheduled
    delayed: int = 0
    held: int = 0  # messages held back for reordering
    connections: int = 0  # connections accepted on this link's proxy (forward direction)
    resets: int = 0  # connections closed by a reset
    codec_errors: int = 0  # connections closed because their stream could not be framed

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Reset(Exception):
    """Raised inside a connection to close it (the link was reset)."""


class _Conn:
    """One proxied connection: client side, upstream side, and its task."""

    __slots__ = ("link", "client", "upstream", "task")

    def __init__(self, link: Link, client: asyncio.StreamWriter):
        self.link = link
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None

    def abort(self, rst: bool = False) -> None:
        for w in (self.client, self.upstream):
            if w is None:
                continue
            if rst:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    except OSError:
                        pass
            w.transport.abort()


CodecFactory = Callable[[], Any]


class TcpMediator(LoopbackFront[Link]):
    """TCP proxies for every directed link between ``nodes``, faults from ``model``.

    ``nodes`` maps a node name to the (host, port) where it really listens.
    Use as ``async with TcpMediator(...) as net:`` or ``await start()`` /
    ``await close()`` from the same task. Rule changes on the model take
    effect at once (the mediator listens to the model for resets; blocked
    links are checked on every read, and a connection waiting behind a
    partition re-checks every ``poll`` seconds). Without a codec, ``jitter``
    and the per-message probabilities of a rule do not apply (a byte stream
    has no messages); ``delay`` does. ``in_order`` keeps each proxied
    connection FIFO, as TCP does (``[network] in_order``; see
    :class:`~fuzzer.network.outbox.Outbox`); the default is a message network
    where a lifted delay lets later messages overtake.
    """

    def __init__(
        self,
        model: NetworkModel,
        nodes: Mapping[str, tuple[str, int]],
        *,
        codec: str | CodecFactory | None = None,
        codec_params: Mapping[str, Any] | None = None,
        sink: Sink | None = None,
        book: LamportBook | None = None,
        poll: float = 0.05,
        order: DeliveryOrder | None = None,
        in_order: bool = False,
    ):
        self.model = model
        self.in_order = in_order
        self.order = order if codec is not None else None
        self.nodes = dict(nodes)
        self.book = book if book is not None else LamportBook(sink)
        self.poll = poll
        self._codec = self._codec_factory(codec, dict(codec_params or {}))
        self.links: list[Link] = [(a, b) for a in self.nodes for b in self.nodes if a != b]
        self.stats: dict[Link, LinkStats] = {link: LinkStats() for link in self.links}
        self._ports: dict[Link, int] = {}
        self._lease: PortLease | None = None
        self._servers: list[asyncio.Server] = []
        self._conns: set[_Conn] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False

    @staticmethod
    def _codec_factory(codec: str | CodecFactory | None, params: dict) -> CodecFactory | None:
        if codec is None:
            return None
        if callable(codec):
            return codec
        from fuzzer.network.codecs import get_codec

        get_codec(codec, **params)  # fail now, not in the first connection
        return lambda: get_codec(codec, **params)

    # -- lifecycle ------------------------------------------------------------

    async def _open(self) -> None:
        """Lease one loopback port per directed link and start listening."""
        await self._listen_each(
            self.links, self._on_accept, lambda link: f"the proxy for link {link[0]}->{link[1]}"
        )
        self.model.add_listener(self._on_rule)

    def _stop_connections(self) -> None:
        for conn in list(self._conns):
            conn.abort()
            if conn.task is not None:
                conn.task.cancel()

    # -- addresses --------------------------------------------------------------

    def proxy_port(self, src: str, dst: str) -> int:
        """The loopback port node ``src`` must use to reach node ``dst``."""
        try:
            return self._ports[(src, dst)]
        except KeyError:
            raise NetworkError(f"no proxy for link {src}->{dst} (started? known nodes?)") from None

    def peer_addresses(self, src: str) -> dict[str, tuple[str, int]]:
        """Node ``src``'s peer list as mediator addresses: {peer: ("127.0.0.1", port)}."""
        return {dst: ("127.0.0.1", self.proxy_port(src, dst)) for dst in self.nodes if dst != src}

    def connections(self, src: str | None = None, dst: str | None = None) -> int:
        """Open proxied connections (on link src->dst when given)."""
        return sum(
            1 for c in self._conns if (src is None or c.link[0] == src)
            and (dst is None or c.link[1] == dst)
        )

    # -- faults -----------------------------------------------------------------

    def _is_reset(self, link: Link) -> bool:
        a, b = link
        return self.model.rule(a, b).reset or self.model.rule(b, a).reset

    def reset_link(self, src: str, dst: str) -> int:
        """Close (RST) every current connection between src and dst, either way;
        return how many. New connections are accepted again at once."""
        n = 0
        for conn in list(self._conns):
            if set(conn.link) == {src, dst}:
                self._reset(conn)
                n += 1
        return n

    def _reset(self, conn: _Conn) -> None:
        self.stats[conn.link].resets += 1
        conn.abort(rst=True)
        self._conns.discard(conn)
        if conn.task is not None:
            conn.task.cancel()

    def _on_rule(self, src: str, dst: str, rule: LinkRule) -> None:
        if self._closed:
            return
        if rule.reset:
            for conn in list(self._conns):
                if set(conn.link) == {src, dst}:
                    self._reset(conn)

    # -- connections --------------------------------------------------------------

    def _on_accept(self, link: Link, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        if self._closed or self._tg is None:
            writer.transport.abort()
            return
        conn = _Conn(link, writer)
        if self._is_reset(link):
            self.stats[link].resets += 1
            conn.abort(rst=True)
            return
        self.stats[link].connections += 1
        self._conns.add(conn)
        conn.task = self._tg.create_task(self._serve(conn, reader))

    async def _serve(self, conn: _Conn, creader: asyncio.StreamReader) -> None:
        src, dst = conn.link
        try:
            if not await self._wait_open(conn, creader):
                return
            host, port = self.nodes[dst]
            ureader, uwriter = await asyncio.open_connection(host, port, limit=READ_SIZE)
            conn.upstream = uwriter
            for w in (conn.client, uwriter):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.TaskGroup() as tg:
                fwd = self._direction(src, dst, uwriter)
                back = self._direction(dst, src, conn.client)
                tg.create_task(self._pump(creader, fwd, src, dst, uwriter))
                tg.create_task(self._pump(ureader, back, dst, src, conn.client))
                tg.create_task(self._write_then_eof(fwd, uwriter))
                tg.create_task(self._write_then_eof(back, conn.client))
        except* (OSError, EOFError, _Reset):
            pass  # a peer went away or the link was reset: the connection ends
        except* NetworkError as eg:
            self.stats[conn.link].codec_errors += 1
            log.warning("proxy %s->%s: %s; connection closed", src, dst, eg.exceptions[0])
        except* Exception as eg:
            log.warning("proxy %s->%s: connection failed: %r", src, dst, eg.exceptions)
        finally:
            conn.abort()
            self._conns.discard(conn)

    async def _wait_open(self, conn: _Conn, creader: asyncio.StreamReader) -> bool:
        """While the forward link is blocked, read and discard what the client sends
        (a SYN into a partition goes nowhere). False if the client gave up."""
        src, dst = conn.link
        stats = self.stats[conn.link]
        while self.model.rule(src, dst).blocked:
            try:
                async with asyncio.timeout(self.poll):
                    data = await creader.read(READ_SIZE)
            except TimeoutError:
                continue
            if not data:
                return False
            stats.dropped_bytes += len(data)
        return True

    def _direction(self, src: str, dst: str, writer: asyncio.StreamWriter) -> Outbox:
        stats = self.stats[(src, dst)]
        book = self.book
        transport = writer.transport

        def write(items: list[tuple[bytes, Stamp, Any]]) -> None:
            for it in items:
                book.recv(dst, it[1])
            stats.delivered += len(items)
            transport.write(b"".join([it[0] for it in items]))

        return Outbox(write, writer.drain, order=self.order, fifo=self.in_order)

    async def _pump(self, reader: asyncio.StreamReader, out: Outbox, src: str, dst: str,
                    writer: asyncio.StreamWriter) -> None:
        """Read from ``src``'s side, decide, and schedule into ``out`` (to ``dst``)."""
        model = self.model
        book = self.book
        stats = self.stats[(src, dst)]
        loop = asyncio.get_running_loop()
        codec = self._codec() if self._codec is not None else None
        link = (src, dst)
        order = self.order
        last_due = 0.0
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            rule = model.rule(src, dst)
            if rule.reset or model.rule(dst, src).reset:
                raise _Reset()
            stats.bytes += len(data)
            if codec is None:
                stats.messages += 1
                stamp = book.send(src, dst, RAW_TYPE)
                if rule.blocked:
                    stats.dropped += 1
                    stats.dropped_bytes += len(data)
                    continue
                due = loop.time() + rule.delay
                if due < last_due:
                    due = last_due  # a byte stream keeps its order
                last_due = due
                if rule.delay:
                    stats.delayed += 1
                out.put_at((data, stamp), due)
                if out.pending > MAX_PENDING:
                    await out.room(MAX_PENDING // 2)
                continue
            for frame in codec.feed(data):
                stats.messages += 1
                _seq, fate = model.decide(src, dst)
                key = order.next_key(src, dst) if order is not None else None
                stamp = book.send(src, dst, frame.msg_type)
                kind = fate.kind
                if kind == "drop":
                    stats.dropped += 1
                    stats.dropped_bytes += len(frame.data)
                    if key is not None:
                        order.cancel(key)  # nobody waits for a message that will never come
                    continue
                if kind == "duplicate":
                    stats.duplicated += max(fate.copies, 2) - 1
                elif kind == "delay":
                    stats.delayed += 1
                elif kind == "hold":
                    stats.held += 1
                out.put((frame.data, stamp, key), fate, link)
            if out.pending > MAX_PENDING:
                await out.room(MAX_PENDING // 2)
        out.finish()

    @staticmethod
    async def _write_then_eof(out: Outbox, writer: asyncio.StreamWriter) -> None:
        """The writer task of one direction; forwards the half-close after the last byte."""
        await out.run()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
