"""Teardown shared by the loopback front-ends (PeerDemux, TcpMediator).

Why one function: both stop their listening servers, cancel their live
connections, drain their TaskGroup and give back their leased ports in the
same order; one copy keeps that order (servers closed before the drain, ports
released last) the same in both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fuzzer.cluster.ports import PortLease


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
