"""One front port per destination node; senders told apart by socket ownership.

Why: systems like etcd dial one global advertised address per member (see
targets/etcd/peers.py), while the TCP mediator (fuzzer/network/tcp.py) wants
node i to reach node j on a per-link port ``proxy_port(i, j)``. This front bridges the
two without touching the target: it listens on one port per destination
``j`` (the address the cluster advertises for ``j``), finds which node
opened each accepted connection, and splices it onto ``route(i, j)`` (the
mediator's per-link proxy), so every byte still crosses the mediator on the
right directed link and partitions, delays and SEND/RECV events work as for
any target.

How the sender is found (Linux, same host): the accepted connection's peer
address is the connecting socket's local address; ``/proc/net/tcp`` gives
that socket's inode; the node whose process holds ``socket:[inode]`` among
its file descriptors is the sender. This needs no protocol knowledge and no
cooperation from the node (for etcd the ``X-Server-From`` header of every
rafthttp request names the sender's member id too, but parsing HTTP would
tie the front to one protocol). Connections from anything else (an
operator's etcdctl) go to ``route(None, j)`` (the node itself) or are
refused, as ``unknown`` says.

Nothing here knows a target (etcd was the first user; targets/etcd/demux.py
re-exports this module).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from fuzzer.cluster.ports import PortLease
from fuzzer.errors import NetworkError
from fuzzer.network.listeners import HOST as HOST  # re-exported (targets/etcd/demux.py)
from fuzzer.network.listeners import READ_SIZE, LoopbackFront

log = logging.getLogger(__name__)

Route = Callable[[str | None, str], tuple[str, int]]


def _hex_addr(host: str, port: int) -> str:
    """An IPv4 address as /proc/net/tcp prints it: little-endian hex IP, hex port."""
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the TCP socket bound to ``local`` and connected to ``remote``."""
    want_local, want_remote = _hex_addr(*local), _hex_addr(*remote)
    try:
        with open("/proc/net/tcp") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[1] == want_local and parts[2] == want_remote:
                    inode = int(parts[9])
                    if inode:
                        return inode
    except OSError:
        return None
    return None


def pid_holding(inode: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` has ``socket:[inode]`` open."""
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def connection_owner(local: tuple[str, int], remote: tuple[str, int],
                     owners: Mapping[str, int]) -> str | None:
    """The node (of ``owners``: name -> pid) whose process owns the socket
    ``local`` -> ``remote``, or None."""
    inode = socket_inode(local, remote)
    if inode is None:
        return None
    by_pid = {pid: name for name, pid in owners.items() if pid}
    pid = pid_holding(inode, by_pid)
    return by_pid.get(pid) if pid is not None else None


class PeerDemux(LoopbackFront[str]):
    """Front ports for ``nodes``; each accepted connection spliced onto ``route``.

    ``owners()`` returns the current {node: pid} (pids change on restart);
    ``route(src, dst)`` the address to forward to (``src`` None for an
    unknown sender, if ``unknown == "direct"``; ``"refuse"`` closes those).
    Use ``async with`` or ``start()``/``close()`` from one task.
    """

    def __init__(self, nodes: Sequence[str], route: Route,
                 owners: Callable[[], Mapping[str, int]], *, unknown: str = "direct"):
        if unknown not in ("direct", "refuse"):
            raise NetworkError(f"unknown must be 'direct' or 'refuse', not {unknown!r}")
        self.nodes = list(nodes)
        self.route = route
        self.owners = owners
        self.unknown = unknown
        self.stats: Counter[tuple[str | None, str]] = Counter()  # (src, dst) -> connections
        self._ports: dict[str, int] = {}
        self._lease: PortLease | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False

    async def _open(self) -> None:
        await self._listen_each(self.nodes, self._accept, lambda dst: f"the front of {dst}")

    def _stop_connections(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def front_port(self, dst: str) -> int:
        try:
            return self._ports[dst]
        except KeyError:
            raise NetworkError(f"no front port for node {dst!r} (started?)") from None

    def fronts(self) -> list[int]:
        """Front ports in node order."""
        return [self.front_port(n) for n in self.nodes]

    def _accept(self, dst: str, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
        if self._closed or self._tg is None:
            writer.transport.abort()
            return
        task = self._tg.create_task(self._serve(dst, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, dst: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            peer = writer.get_extra_info("peername")
            local = writer.get_extra_info("sockname")
            src = await asyncio.to_thread(
                connection_owner, (peer[0], peer[1]), (local[0], local[1]), dict(self.owners())
            )
            self.stats[(src, dst)] += 1
            if src is None and self.unknown == "refuse":
                return
            host, port = self.route(src, dst)
            ureader, upstream = await asyncio.open_connection(host, port, limit=READ_SIZE)
            for w in (writer, upstream):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pump(reader, upstream))
                tg.create_task(_pump(ureader, writer))
        except* (OSError, EOFError):
            pass
        except* Exception as eg:
            log.warning("front of %s: connection failed: %r", dst, eg.exceptions)
        finally:
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()
