"""PeerDemux without etcd: senders are real child processes, told apart by
socket ownership; unknown senders go direct or are refused."""

from __future__ import annotations

import asyncio
import subprocess

from targets.etcd.demux import PeerDemux, connection_owner

CHILD = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"ping")
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(100):
    data += chunk
print(data.decode())
"""


async def _label_server(label: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(f"{label}:{data.decode()}".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_senders_are_identified_and_routed_per_link(procs, python):
    names = ["a", "b", "c"]

    async def scenario():
        servers = {}
        for src in [*names, None]:
            for dst in names:
                if src != dst:
                    servers[(src, dst)] = await _label_server(f"{src}->{dst}")
        children: dict[str, subprocess.Popen] = {}

        def route(src, dst):
            return servers[(src, dst)].sockets[0].getsockname()[:2]

        async with PeerDemux(names, route, lambda: {n: p.pid for n, p in children.items()}) as dm:
            # a and b dial c's front, c dials a's front: each is its own process.
            for name, dst in (("a", "c"), ("b", "c"), ("c", "a")):
                children[name] = procs([python, "-c", CHILD, str(dm.front_port(dst))],
                                       stdout=subprocess.PIPE, text=True)
            outs = {}
            for name, p in children.items():
                out, _ = await asyncio.to_thread(p.communicate, timeout=20)
                outs[name] = out.strip()
            # The test process itself is no node: routed "direct" (src None).
            reader, writer = await asyncio.open_connection("127.0.0.1", dm.front_port("b"))
            writer.write(b"hello")
            writer.write_eof()
            direct = (await reader.read()).decode()
            writer.close()
            stats = dict(dm.stats)
        async with PeerDemux(names, route, dict, unknown="refuse") as dm:
            reader, writer = await asyncio.open_connection("127.0.0.1", dm.front_port("b"))
            writer.write(b"hello")
            writer.write_eof()
            refused = await reader.read()
            writer.close()
        for s in servers.values():
            s.close()
        return outs, direct, stats, refused

    outs, direct, stats, refused = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert outs == {"a": "a->c:ping", "b": "b->c:ping", "c": "c->a:ping"}
    assert direct == "None->b:hello"
    assert stats == {("a", "c"): 1, ("b", "c"): 1, ("c", "a"): 1, (None, "b"): 1}
    assert refused == b""


def test_connection_owner_finds_this_process_socket():
    import os
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname())
    conn, peer = srv.accept()
    try:
        owner = connection_owner(peer, srv.getsockname(), {"me": os.getpid(), "nobody": 0})
        assert owner == "me"
        assert connection_owner(peer, srv.getsockname(), {"other": 1}) is None
    finally:
        for s in (conn, cli, srv):
            s.close()
