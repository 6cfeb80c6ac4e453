"""Listening and teardown shared by the loopback front-ends (PeerDemux, TcpMediator).

Why one copy: both lease one loopback port per key (a destination node, a
directed link), listen on each, and stop their listening servers, cancel
their live connections, drain their TaskGroup and give back their leased
ports in the same order; one copy keeps that order (servers closed before
the drain, ports released last) the same in both.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Self

from fuzzer.cluster.ports import PortLease, lease_ports
from fuzzer.errors import NetworkError

HOST = "127.0.0.1"
READ_SIZE = 256 * 1024

Accept = Callable[..., None]  # (key, reader, writer) -> None


async def stop_listeners(servers: list[asyncio.Server], tg: asyncio.TaskGroup | None,
                         lease: PortLease | None, cancel: Callable[[], None]) -> None:
    """Close ``servers``, run ``cancel`` (stop live connections), drain ``tg``,
    wait for the servers to close, empty ``servers`` and release ``lease``."""
    for server in servers:
        server.close()
    cancel()
    if tg is not None:
        await tg.__aexit__(None, None, None)
    for server in servers:
        await server.wait_closed()
    servers.clear()
    if lease is not None:
        lease.release()


class LoopbackFront[K]:
    """Base of the loopback front-ends: one leased port and server per key.

    Why a base: PeerDemux and TcpMediator bind their ports, close and act as
    async context managers the same way. A subclass sets the attributes below
    in its ``__init__``, implements :meth:`_open` (calling
    :meth:`_listen_each`) and says how to stop its live connections
    (:meth:`_stop_connections`).
    """

    _ports: dict[K, int]
    _lease: PortLease | None
    _servers: list[asyncio.Server]
    _tg: asyncio.TaskGroup | None
    _closed: bool

    async def start(self) -> None:
        """Open the TaskGroup and listen (:meth:`_open`); on any failure close again."""
        if self._tg is not None:
            raise NetworkError(f"{type(self).__name__}.start() called twice")
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        """Bind the ports (:meth:`_listen_each`) and whatever else starting needs."""
        raise NotImplementedError

    def _stop_connections(self) -> None:
        """Cancel or abort every live connection (called while closing)."""
        raise NotImplementedError

    async def _listen_each(self, keys: Sequence[K], accept: Accept,
                           what: Callable[[K], str]) -> None:
        """Lease a port per key and listen there; ``accept(key, reader, writer)``
        takes each connection. A bind failure is a NetworkError naming ``what(key)``."""
        self._lease = lease_ports(len(keys))
        for key, port in zip(keys, self._lease.ports, strict=True):
            self._ports[key] = port
            try:
                server = await asyncio.start_server(
                    functools.partial(accept, key), HOST, port, limit=READ_SIZE
                )
            except OSError as exc:
                raise NetworkError(f"cannot bind {what(key)} on {HOST}:{port}: {exc}") from None
            self._servers.append(server)

    async def close(self) -> None:
        """Stop listening, cancel every connection and close every socket."""
        if self._closed:
            return
        self._closed = True
        tg, lease = self._tg, self._lease
        self._tg, self._lease = None, None
        await stop_listeners(self._servers, tg, lease, self._stop_connections)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
