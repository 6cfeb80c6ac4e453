"""A PySyncObj node: a replicated dict with journal persistence and a client port.

Run it inside a version's environment (``envs.py ensure VERSION`` prints the
interpreter), e.g.::

    .targets/pysyncobj/0.3.17/bin/python targets/pysyncobj/node.py \\
        --name n1 --raft 127.0.0.1:7001 --client-port 8001 --data-dir /tmp/n1 \\
        --peers n2=127.0.0.1:7002,n3=127.0.0.1:7003

Why this shape: the fuzzer needs the *real* library doing Raft, persistence
on as in real deployments (journal + full dump in ``--data-dir``, so a
restart keeps the log, term and vote), a client protocol with a clear outcome
per request (see ``wire.py``), and instrumentation that does not modify the
library (see ``hooks.py``). Threads: PySyncObj's auto-tick thread does all
Raft work; the asyncio loop in the main thread serves clients and only
enqueues commands (thread-safe in PySyncObj) and waits for their callbacks.

Writes through a follower: PySyncObj forwards the command to the leader it
knows and completes the request when the follower itself applies the entry;
with no leader known the command waits in PySyncObj's queue (commandsWaitLeader)
until one is elected or the request times out (``info``). Every reply names
the leader the node currently knows, so a client may go there directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from targets.pysyncobj.wire import (  # noqa: E402
    DEFAULT_TIMEOUT,
    FAIL,
    INFO,
    MAX_LINE,
    MAX_TIMEOUT,
    OK,
    outcome,
)

log = logging.getLogger("hbfuzz.pysyncobj")


def _address(text: str, what: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not host:port")
    return f"{host}:{int(port)}"


def parse_peers(
    items: list[str], names: list[str], self_name: str | None = None
) -> list[tuple[str | None, str]]:
    """``["n2=h:p", ...]`` or ``["h:p", ...]`` (+ parallel ``names``) -> [(name, addr)].

    An entry named ``self_name`` is skipped, so a full cluster list works too.
    """
    peers: list[tuple[str | None, str]] = []
    flat = [x.strip() for item in items for x in item.split(",") if x.strip()]
    for i, item in enumerate(flat):
        name, sep, addr = item.rpartition("=")
        if not sep:
            name, addr = (names[i] if i < len(names) else None), item
        peers.append((name or None, _address(addr, "--peers")))
    if names and len(names) != len(flat):
        raise argparse.ArgumentTypeError(
            f"--peer-names has {len(names)} names for {len(flat)} peers"
        )
    named = [n for n, _ in peers if n]
    if named and len(named) != len(peers):
        raise argparse.ArgumentTypeError("--peers: give a name to every peer or to none")
    if len(set(named)) != len(named):
        raise argparse.ArgumentTypeError(f"--peers: duplicate names in {named}")
    return [(n, a) for n, a in peers if n is None or n != self_name]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="node.py",
        description="A PySyncObj replicated key-value node for hbfuzz.",
    )
    p.add_argument("--name", required=True, help="node name (n1, ...), its cluster identity")
    p.add_argument("--raft", required=True, help="host:port this node's Raft server binds")
    p.add_argument(
        "--peers",
        action="append",
        default=[],
        help="peers as NAME=HOST:PORT (or HOST:PORT with --peer-names), comma-separated "
        "or repeated; the addresses are where this node dials them (mediator proxies)",
    )
    p.add_argument("--peer-names", default="", help="names for plain HOST:PORT peers, in order")
    p.add_argument("--client-port", type=int, required=True, help="client port on 127.0.0.1")
    p.add_argument("--data-dir", required=True, help="journal and dump directory")
    p.add_argument("--request-timeout", type=float, default=DEFAULT_TIMEOUT)
    p.add_argument("--raft-min-timeout", type=float, default=0.4)
    p.add_argument("--raft-max-timeout", type=float, default=1.4)
    p.add_argument("--append-entries-period", type=float, default=0.1)
    p.add_argument("--connection-timeout", type=float, default=3.5)
    p.add_argument("--reconnect", type=float, default=1.0, help="connectionRetryTime (s)")
    p.add_argument("--log-compaction-entries", type=int, default=5000)
    p.add_argument("--log-level", default="WARNING")
    return p


def _setup_instrumentation(hb, name: str) -> None:
    """Report as ``name`` unless HBFUZZ_NODE says otherwise; cover pysyncobj by default."""
    from instrumentation import protocol

    env = os.environ
    if not env.get(protocol.ENV_TRACKER):
        return
    if not env.get(protocol.ENV_NODE) and hb.stats().get("node") != name:
        hb.configure(node=name, coverage="")
    if hb.enabled() and "code_edges" not in hb.stats():
        hb.start_coverage(env.get(protocol.ENV_COVERAGE) or "pysyncobj")


class ClientServer:
    """Serves the newline-JSON client protocol (wire.py) for one node."""

    def __init__(self, so, kv, name: str, version: str, request_timeout: float, hooks) -> None:
        self.so = so
        self.kv = kv
        self.name = name
        self.version = version
        self.request_timeout = request_timeout
        self.hooks = hooks

    def leader(self) -> str | None:
        leader = self.so._SyncObj__raftLeader
        return None if leader is None else self.hooks.node_name(leader)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    try:
                        line = await reader.readline()
                    except (ValueError, ConnectionError):
                        break  # line over the limit, or reset
                    if not line:
                        break
                    tg.create_task(self._answer(line, writer))
        finally:
            writer.close()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        reply = await self.dispatch(line)
        if not writer.is_closing():
            writer.write(json.dumps(reply).encode() + b"\n")

    def _reply(self, rid, type_: str, value=None, error: str | None = None) -> dict:
        return {"id": rid, "type": type_, "value": value, "error": error,
                "leader": self.leader(), "node": self.name}

    async def dispatch(self, line: bytes) -> dict:
        try:
            req = json.loads(line)
        except ValueError:
            return self._reply(None, FAIL, error="bad_request: not JSON")
        if not isinstance(req, dict):
            return self._reply(None, FAIL, error="bad_request: not an object")
        rid = req.get("id")
        op = req.get("op")
        key = req.get("key")
        if op == "ping":
            return self._reply(rid, OK, "pong")
        if op == "status":
            for _ in range(3):  # read from another thread: the log may be mid-rewrite
                try:
                    return self._reply(rid, OK, self.hooks.status(self.so, self.name,
                                                                  self.version))
                except (IndexError, KeyError, RuntimeError):
                    await asyncio.sleep(0.01)
            return self._reply(rid, FAIL, error="status_unavailable")
        if op not in ("get", "put", "cas", "delete"):
            return self._reply(rid, FAIL, error=f"bad_request: unknown op {op!r}")
        if not isinstance(key, str | int) or isinstance(key, bool):
            return self._reply(rid, FAIL, error="bad_request: key must be a string or int")
        timeout = req.get("timeout", self.request_timeout)
        if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
            return self._reply(rid, FAIL, error=f"bad_request: timeout in (0, {MAX_TIMEOUT}]")
        kv = self.kv
        if op == "get":
            if req.get("local"):
                return self._reply(rid, OK, kv.read_local(key))
            return await self._replicated(rid, kv.get, (key,), timeout)
        if op == "put":
            return await self._replicated(rid, kv.put, (key, req.get("value")), timeout)
        if op == "delete":
            return await self._replicated(rid, kv.delete, (key,), timeout)
        reply = await self._replicated(
            rid, kv.cas, (key, req.get("expected"), req.get("new")), timeout
        )
        if reply["type"] == OK:
            applied, current = reply["value"]
            reply["value"] = current
            if not applied:
                reply["type"], reply["error"] = FAIL, "mismatch"
        return reply

    async def _replicated(self, rid, method, args: tuple, timeout: float) -> dict:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def settle(result, err) -> None:
            if not fut.done():
                fut.set_result((result, err))

        def callback(result, err) -> None:  # runs on PySyncObj's tick thread
            try:
                loop.call_soon_threadsafe(settle, result, err)
            except RuntimeError:
                pass  # loop closed: shutting down

        method(*args, callback=callback)
        try:
            result, err = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return self._reply(rid, INFO, error="timeout")
        type_, name = outcome(err)
        if type_ == OK:
            return self._reply(rid, OK, result)
        return self._reply(rid, type_, error=name)


async def _serve(server: ClientServer, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", port, limit=MAX_LINE)
    print(f"node {server.name}: clients on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        # a graceful stop must not wait for the clients to hang up (Server.wait_closed
        # does since 3.12): close their connections, so SIGTERM ends the node at once
        srv.close()
        if hasattr(srv, "close_clients"):  # Python >= 3.13
            srv.close_clients()
        await srv.wait_closed()


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    try:
        raft = _address(args.raft, "--raft")
        names = [n.strip() for n in args.peer_names.split(",") if n.strip()]
        peers = parse_peers(args.peers, names, args.name)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    boot_ms = time.time_ns() // 1_000_000  # real clock, before any clock-skew fault

    from instrumentation import clockfault

    try:
        clockfault.install_from_env()  # before pysyncobj binds time.monotonic
    except clockfault.ClockFaultError as exc:
        print(f"node.py: {exc}", file=sys.stderr)
        return 2
    import instrumentation as hb

    _setup_instrumentation(hb, args.name)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"{args.name} %(levelname)s %(name)s: %(message)s")

    from pysyncobj import SyncObj, SyncObjConf
    from pysyncobj.node import TCPNode
    from pysyncobj.version import VERSION

    from targets.pysyncobj import hooks
    from targets.pysyncobj.store import KVStore

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    if any(name for name, _ in peers):
        self_node = hooks.NamedNode(args.name, raft)
        others = [hooks.NamedNode(name, addr) for name, addr in peers]
    else:  # plain library mode: identity = address (only without a proxy in between)
        self_node = TCPNode(raft)
        others = [TCPNode(addr) for _, addr in peers]
    conf = SyncObjConf(
        bindAddress=raft,
        journalFile=str(data / "raft.journal"),
        fullDumpFile=str(data / "raft.dump"),
        useFork=False,  # no fork() under the gRPC reporter
        raftMinTimeout=args.raft_min_timeout,
        raftMaxTimeout=args.raft_max_timeout,
        appendEntriesPeriod=args.append_entries_period,
        connectionTimeout=args.connection_timeout,
        connectionRetryTime=args.reconnect,
        logCompactionMinEntries=args.log_compaction_entries,
        bindRetryTime=0.25,
        maxBindRetries=40,
        dynamicMembershipChange=False,
    )
    kv = KVStore()
    cls = hooks.instrumented_class(SyncObj, boot_ms)
    so = cls(self_node, others, conf=conf, consumers=[kv])
    try:
        so.waitReady()
    except Exception as exc:
        print(f"node.py: cannot bind the Raft port {raft}: {exc!r}", file=sys.stderr)
        so.destroy()
        return 1
    hb.event("node_start", version=VERSION, raft=raft, peers=len(others))
    server = ClientServer(so, kv, args.name, VERSION, args.request_timeout, hooks)
    try:
        asyncio.run(_serve(server, args.client_port))
    except OSError as exc:
        print(f"node.py: cannot serve clients on 127.0.0.1:{args.client_port}: {exc}",
              file=sys.stderr)
        return 1
    finally:
        so.destroy()
        thread = so._SyncObj__thread
        if thread is not None:
            thread.join(timeout=3.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
