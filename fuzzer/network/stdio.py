"""The stdio mediator: runs Maelstrom nodes and routes every message they exchange.

Why: a Maelstrom node (any executable speaking JSON lines on stdin/stdout,
../shared/maelstrom-protocol.md) never opens a socket, so the mediator *is*
its network. Routing (fates from the network model, Lamport SEND/RECV
events, the built-in services, client requests) is in stdio_router.py; the
node processes are run by stdio_proc.py on the cluster layer's no-orphans
machinery (own process group, PR_SET_PDEATHSIG, a reaper watchdog that
SIGKILLs every node group, grandchildren included, when the fuzzer dies, even
by SIGKILL). This module joins the two: it starts nodes, reads their stdout
and applies process faults.

Each node's stderr is appended to ``workdir/<node>.log`` (bounded, rotated to
``.log.1``); it gets ``init`` on every (re)start and must answer ``init_ok``
within ``init_timeout``. A line a node prints that is not a message (not
JSON, no src/dest/body, a src that is not the node) is counted in
``malformed`` and logged, rate-limited per node (the first few in full, then
a periodic "N more malformed lines from nX suppressed" summary, the rest at
close; ``malformed_suppressed`` counts them); it never stops the mediator. Process faults: kill, stop,
pause, resume, start, restart (restart re-sends ``init``).

Structure: one TaskGroup owns a writer task per endpoint (an
:class:`~fuzzer.network.outbox.Outbox`) and, per running process, a task
that reads its stdout and stderr and reaps it; ``close()`` kills the
processes and cancels everything.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fuzzer.errors import ClusterError, NetworkError
from fuzzer.network.events import LamportBook, Sink
from fuzzer.network.model import NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.network.services import SERVICES
from fuzzer.network.stdio_proc import LOG_CAP, MAX_LINE, StdioProcesses
from fuzzer.network.stdio_router import (
    HARNESS,
    MAX_PENDING,
    Endpoint,
    RouteStats,
    StdioRouter,
    WarningLimiter,
    log,
)

__all__ = [
    "HARNESS",
    "MAX_LINE",
    "MAX_PENDING",
    "NodeExit",
    "RouteStats",
    "StdioMediator",
]

_Endpoint = Endpoint  # the old private name
_raw_decode = json.JSONDecoder().raw_decode  # json.loads minus encoding sniffing
_KEEP_MALFORMED = 20
DRAIN_TIMEOUT = 2.0  # output still buffered when a node's group is gone


@dataclass(frozen=True)
class NodeExit:
    """A node process ended; ``expected`` is False when the mediator did not cause it."""

    node: str
    code: int | None  # negative: killed by that signal
    expected: bool


class StdioMediator(StdioRouter):
    """Maelstrom-protocol nodes on stdin/stdout, every message routed through ``model``.

    ``nodes`` maps node names (``n1``...) to argv. Use as
    ``async with StdioMediator(...) as net:`` or ``await start()`` / ``await
    close()`` from the same task. ``env`` is the nodes' whole environment
    (default: the fuzzer's). ``order``: log the delivery order and enforce a
    recorded one (stdio_router.py, ordering.py).
    """

    def __init__(
        self,
        nodes: Mapping[str, Sequence[str]],
        model: NetworkModel,
        workdir: Path | str,
        *,
        sink: Sink | None = None,
        book: LamportBook | None = None,
        services: Sequence[str] = SERVICES,
        service_seed: int | None = None,
        stale: float = 0.25,
        client_faults: bool = False,
        service_faults: bool = False,
        init_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        stop_grace: float = 2.0,
        log_cap: int = LOG_CAP,
        watchdog: bool = True,
        order: DeliveryOrder | None = None,
    ):
        super().__init__(nodes, model, sink=sink, book=book, services=services,
                         service_seed=service_seed, stale=stale, client_faults=client_faults,
                         service_faults=service_faults, order=order)
        self.workdir = Path(workdir)
        self.init_timeout = init_timeout
        self.stop_grace = stop_grace
        self.env = dict(env) if env is not None else None
        self._procs = StdioProcesses(self.workdir, env=self.env, log_cap=log_cap,
                                     watchdog=watchdog)
        self.malformed: dict[str, int] = {name: 0 for name in nodes}
        self.malformed_lines: dict[str, deque] = {
            name: deque(maxlen=_KEEP_MALFORMED) for name in nodes
        }
        self.malformed_log = WarningLimiter("malformed lines from {source}")
        self.exits: list[NodeExit] = []

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start every node and wait for all their init_ok (ClusterError if one fails)."""
        if self._tg is not None:
            raise NetworkError("StdioMediator.start() called twice")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        try:
            for ep in list(self._ep.values()):
                self._open_outbox(ep)
            self._endpoint(HARNESS, "client")
            async with asyncio.TaskGroup() as tg:
                for name in self.node_ids:
                    tg.create_task(self.start_node(name))
        except BaseException as exc:
            await self.close()
            if isinstance(exc, BaseExceptionGroup):
                first = exc.exceptions[0]
                if isinstance(first, Exception):
                    raise first from None
            raise

    async def close(self) -> None:
        """Kill every node process, cancel every task, resolve pending clients with None."""
        if self._closed:
            return
        self._closed = True
        for ep in self._ep.values():
            if ep.proc is not None:
                ep.expected_exit = True
                self._procs.signal(ep.proc, signal.SIGKILL)
        for ep in self._ep.values():
            if ep.proc is not None:
                try:
                    await asyncio.wait_for(ep.proc.wait(), 5.0)
                except TimeoutError:
                    log.warning("node %s did not die after SIGKILL", ep.name)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)
        try:
            if self._tg is not None:
                for task in list(self._tasks):
                    task.cancel()
                try:
                    await self._tg.__aexit__(None, None, None)
                finally:
                    self._tg = None
            for ep in self._ep.values():
                if ep.proc is not None and ep.proc.stdin is not None:
                    ep.proc.stdin.close()
                ep.proc = None
        finally:
            self._flush_warnings()
            await self._procs.close()

    async def __aenter__(self) -> StdioMediator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading nodes ------------------------------------------------------------

    async def _run(self, ep: Endpoint, proc: asyncio.subprocess.Process) -> None:
        """Read the process's stdout and stderr, reap it, record its exit."""
        name = ep.name
        out = self._spawn(self._read(name, proc), f"stdout {name}")
        err = self._spawn(self._procs.pump_stderr(name, proc), f"stderr {name}")
        code = await self._procs.reap(proc)  # its group is gone: the pipes reach EOF
        _done, late = await asyncio.wait({out, err}, timeout=DRAIN_TIMEOUT)
        for task in late:  # held open by a process outside the group
            task.cancel()
        if ep.init_key is not None:  # died while starting: fail start_node now
            fut = self._pending.get(ep.init_key)
            if fut is not None and not fut.done():
                fut.set_result(None)
        if ep.proc is proc:
            self.exits.append(NodeExit(name, code, ep.expected_exit))
            if not ep.expected_exit:
                log.warning("node %s exited unexpectedly with code %s", name, code)

    async def _read(self, name: str, proc: asyncio.subprocess.Process) -> None:
        """Route every line the process prints until its stdout closes."""
        stdout = proc.stdout
        assert stdout is not None
        tail = b""
        on_line = self._on_line
        while True:
            try:
                chunk = await stdout.read(256 * 1024)
            except (ConnectionError, OSError):
                chunk = b""
            if not chunk:
                break
            if tail:
                chunk = tail + chunk
            lines = chunk.split(b"\n")
            tail = lines.pop()
            for line in lines:
                try:
                    on_line(name, line)
                except Exception as exc:  # never let one message stop the reader
                    self._malformed(name, line, f"could not be routed: {exc!r}")
            if len(tail) > MAX_LINE:
                self._malformed(name, tail[:200], f"line longer than {MAX_LINE} bytes")
                tail = b""
        if tail.strip():
            try:
                on_line(name, tail)
            except Exception as exc:
                self._malformed(name, tail, f"could not be routed: {exc!r}")

    def _on_line(self, node: str, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            text = line.decode()
            msg, end = _raw_decode(text)
            if end != len(text):
                raise ValueError("trailing data")
        except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
            self._malformed(node, line, "not JSON")
            return
        if type(msg) is not dict:
            self._malformed(node, line, "not a JSON object")
            return
        src = msg.get("src")
        dest = msg.get("dest")
        body = msg.get("body")
        if type(dest) is not str or type(body) is not dict or type(body.get("type")) is not str:
            self._malformed(node, line, "needs string src/dest and a body with a string type")
            return
        if src != node:
            self._malformed(node, line, f"src {src!r} is not the node's name")
            return
        if dest == node:
            self._malformed(node, line, "a node cannot send to itself")
            return
        if body["type"] == "init_ok":
            self._ep[node].inits += 1
        self._route(node, dest, body, line)

    def _malformed(self, node: str, line: bytes, why: str) -> None:
        self.malformed[node] = self.malformed.get(node, 0) + 1
        text = line[:200].decode("utf-8", "replace")
        self.malformed_lines.setdefault(node, deque(maxlen=_KEEP_MALFORMED)).append((text, why))
        full, summary = self.malformed_log.hit(node)
        if full:
            log.warning("node %s printed a malformed line (%s): %s%s", node, why, text,
                        self.malformed_log.note(node))
        if summary:
            log.warning("%s", summary)

    @property
    def malformed_suppressed(self) -> dict[str, int]:
        """Malformed lines per node that were counted but not logged in full."""
        return dict(self.malformed_log.suppressed)

    def _flush_warnings(self) -> None:
        for limiter in (self.malformed_log, self.unroutable_log):
            for line in limiter.flush():
                log.warning("%s", line)

    # -- process faults -------------------------------------------------------------

    def _node(self, name: str) -> Endpoint:
        ep = self._ep.get(name)
        if ep is None or ep.kind != "node":
            raise NetworkError(f"unknown node {name!r} (nodes: {', '.join(self.node_ids)})")
        return ep

    def pid(self, name: str) -> int | None:
        proc = self._node(name).proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def running(self, name: str) -> bool:
        return self.pid(name) is not None

    def log_path(self, name: str) -> Path:
        return self._procs.log_path(name)

    @property
    def watchdog_pid(self) -> int | None:
        """The reaper watchdog's pid (None before the first node starts)."""
        return self._procs.watchdog_pid

    def inits(self, name: str) -> int:
        """How many init_ok this node has sent (one per successful (re)start)."""
        return self._node(name).inits

    async def start_node(self, name: str) -> None:
        """Start the node's process (if not running) and initialise it."""
        ep = self._node(name)
        if ep.proc is not None and ep.proc.returncode is None:
            return
        assert self._tg is not None
        proc = await self._procs.spawn(name, ep.argv)
        ep.expected_exit = False
        ep.paused = False
        # init goes straight into the new stdin, ahead of anything queued for this node
        init = {"type": "init", "msg_id": self._msg_id(HARNESS), "node_id": name,
                "node_ids": list(self.node_ids)}
        key, fut = self._expect(HARNESS, init["msg_id"])
        ep.init_key = key
        stamp = self.book.send(HARNESS, name, "init")
        st = self._link_stats(HARNESS, name)
        st.messages += 1
        proc.stdin.write(json.dumps({"src": HARNESS, "dest": name, "body": init}).encode() + b"\n")
        self.book.recv(name, stamp)
        st.delivered += 1
        ep.proc = proc
        ep.reader = self._spawn(self._run(ep, proc), f"reader {name}")
        try:
            async with asyncio.timeout(self.init_timeout):
                reply = await fut
        except TimeoutError:
            reply = None
        finally:
            self._pending.pop(key, None)
            ep.init_key = None
        if reply is None or reply.get("type") != "init_ok":
            exited = proc.returncode is not None
            await self.kill_node(name)
            why = "exited before answering init" if exited else (
                f"did not answer init with init_ok within {self.init_timeout}s (got {reply!r})")
            raise ClusterError(f"node {name} {why}; log tail: {self._log_tail(name)!r}")

    def _log_tail(self, name: str, n: int = 400) -> str:
        try:
            return self.log_path(name).read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _signal(self, ep: Endpoint, sig: int) -> bool:
        return self._procs.signal(ep.proc, sig)

    async def kill_node(self, name: str) -> None:
        """SIGKILL the node's process group and wait for it; messages to it are lost."""
        ep = self._node(name)
        ep.expected_exit = True
        if self._signal(ep, signal.SIGKILL):
            await ep.proc.wait()
        if ep.reader is not None:
            await asyncio.wait([ep.reader], timeout=5.0)
        ep.paused = False

    async def stop_node(self, name: str, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        ep = self._node(name)
        ep.expected_exit = True
        if self._signal(ep, signal.SIGTERM):
            self._signal(ep, signal.SIGCONT)
            try:
                await asyncio.wait_for(ep.proc.wait(), self.stop_grace if grace is None else grace)
            except TimeoutError:
                pass
        await self.kill_node(name)

    async def pause_node(self, name: str) -> None:
        """SIGSTOP the node's process group and wait until it is stopped (its
        messages queue up in its pipe)."""
        ep = self._node(name)
        if self._signal(ep, signal.SIGSTOP):
            ep.paused = True
            await self._procs.wait_stopped(ep.proc)

    async def resume_node(self, name: str) -> None:
        ep = self._node(name)
        if self._signal(ep, signal.SIGCONT):
            ep.paused = False

    async def restart_node(self, name: str) -> None:
        """Kill the node and start it again; it gets init again."""
        await self.kill_node(name)
        await self.start_node(name)
