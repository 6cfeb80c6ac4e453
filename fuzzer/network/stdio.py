"""The stdio mediator: runs Maelstrom nodes and routes every message they exchange.

Why: a Maelstrom node (any executable speaking JSON lines on stdin/stdout,
../shared/maelstrom-protocol.md) never opens a socket, so the mediator *is*
its network. Every message between nodes, clients (``c1``, ``c2``, ...; the
harness itself is ``c0``) and the built-in services (``lin-kv``, ``seq-kv``,
``lww-kv``, ``lin-tso``, see services.py) goes through here; node-to-node
messages always get a fate from the network model (delay, drop, duplicate,
reorder, partitions), client and service links too when ``client_faults`` /
``service_faults`` is set. Each message becomes a SEND event on its sender
and a RECV event per delivered copy on its receiver (events.py).

Each node runs in its own process group with stderr appended to
``workdir/<node>.log``; it gets ``init`` on every (re)start and must answer
``init_ok`` within ``init_timeout``. A line a node prints that is not a
message (not JSON, no src/dest/body, a src that is not the node) is logged
and counted in ``malformed``; it never stops the mediator. Process faults:
kill, stop, pause, resume, start, restart (restart re-sends ``init``).

Structure: one TaskGroup owns a writer task per endpoint (an
:class:`~fuzzer.network.outbox.Outbox`) and a reader task per running
process; ``close()`` kills the processes and cancels everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fuzzer.errors import ClusterError, NetworkError
from fuzzer.network.events import LamportBook, Sink
from fuzzer.network.model import DELIVER_NOW, NetworkModel
from fuzzer.network.outbox import Outbox
from fuzzer.network.services import SERVICES, make_services

log = logging.getLogger(__name__)

_raw_decode = json.JSONDecoder().raw_decode  # json.loads minus encoding sniffing
HARNESS = "c0"  # the client that sends init
MAX_LINE = 16 * 1024 * 1024
MAX_PENDING = 200_000  # messages queued for one endpoint before new ones are dropped
_KEEP_MALFORMED = 20


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


@dataclass(frozen=True)
class NodeExit:
    """A node process ended; ``expected`` is False when the mediator did not cause it."""

    node: str
    code: int | None  # negative: killed by that signal
    expected: bool


class _Endpoint:
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


def _pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Die with the mediator (Linux): no node outlives a SIGKILLed fuzzer."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class StdioMediator:
    """Maelstrom-protocol nodes on stdin/stdout, every message routed through ``model``.

    ``nodes`` maps node names (``n1``...) to argv. Use as
    ``async with StdioMediator(...) as net:`` or ``await start()`` / ``await
    close()`` from the same task.
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
    ):
        if not nodes:
            raise NetworkError("a stdio cluster needs at least one node")
        self.model = model
        self.workdir = Path(workdir)
        self.book = book if book is not None else LamportBook(sink)
        self.client_faults = client_faults
        self.service_faults = service_faults
        self.init_timeout = init_timeout
        self.stop_grace = stop_grace
        self.env = dict(env) if env is not None else None
        self.node_ids: list[str] = list(nodes)
        self.services = make_services(
            tuple(services), seed=model.seed if service_seed is None else service_seed, stale=stale
        )
        self._ep: dict[str, _Endpoint] = {}
        for name, argv in nodes.items():
            if name in self.services or not argv:
                raise NetworkError(f"node {name!r}: bad name or empty command")
            self._ep[name] = _Endpoint(name, "node", argv)
        for name in self.services:
            self._ep[name] = _Endpoint(name, "service")
        self.stats: dict[tuple[str, str], RouteStats] = {}
        self.malformed: dict[str, int] = {name: 0 for name in nodes}
        self.malformed_lines: dict[str, deque] = {
            name: deque(maxlen=_KEEP_MALFORMED) for name in nodes
        }
        self.unroutable = 0
        self.unexpected_replies = 0
        self.internal_errors = 0  # bugs caught at the edge so routing goes on (should stay 0)
        self.exits: list[NodeExit] = []
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
                self._signal(ep, signal.SIGKILL)
        for ep in self._ep.values():
            if ep.proc is not None:
                try:
                    await asyncio.wait_for(ep.proc.wait(), 5.0)
                except TimeoutError:
                    log.warning("node %s did not die after SIGKILL", ep.name)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)
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

    async def __aenter__(self) -> StdioMediator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- endpoints --------------------------------------------------------------

    def _endpoint(self, name: str, kind: str) -> _Endpoint:
        ep = self._ep.get(name)
        if ep is None:
            ep = self._ep[name] = _Endpoint(name, kind)
            self._open_outbox(ep)
        return ep

    def _open_outbox(self, ep: _Endpoint) -> None:
        if ep.kind == "node":
            ep.outbox = Outbox(self._guarded(self._write_node, ep),
                               lambda ep=ep: self._drain_node(ep))
        elif ep.kind == "service":
            ep.outbox = Outbox(self._guarded(self._serve, ep))
        else:
            ep.outbox = Outbox(self._guarded(self._reply, ep))
        self._spawn(ep.outbox.run(), f"outbox {ep.name}")

    def _guarded(self, fn, ep: _Endpoint):
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
                log.warning("message from %s to unknown destination %r dropped", src, dest)
                return
        st = self._link_stats(src, dest)
        st.messages += 1
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
            return
        if line is None and ep.kind == "node":
            line = json.dumps({"src": src, "dest": dest, "body": body}).encode()
        box.put((src, body, line, stamp), fate, src)

    def _write_node(self, ep: _Endpoint, items: list) -> None:
        proc = ep.proc
        stdin = proc.stdin if proc is not None else None
        if stdin is None or stdin.is_closing() or proc.returncode is not None:
            for src, _body, _line, _stamp in items:
                self._link_stats(src, ep.name).undeliverable += 1
            return
        recv = self.book.recv
        stats = self.stats
        name = ep.name
        for src, _body, _line, stamp in items:
            recv(name, stamp)
            stats[(src, name)].delivered += 1
        stdin.write(b"\n".join([it[2] for it in items]) + b"\n")

    async def _drain_node(self, ep: _Endpoint) -> None:
        proc = ep.proc
        if proc is None or proc.stdin is None:
            return
        try:
            await proc.stdin.drain()
        except (ConnectionError, OSError):
            pass  # the process died; its reader records the exit

    def _serve(self, ep: _Endpoint, items: list) -> None:
        svc = self.services[ep.name]
        for src, body, _line, stamp in items:
            self.book.recv(ep.name, stamp)
            self.stats[(src, ep.name)].delivered += 1
            reply = svc.handle(src, body)
            reply["msg_id"] = self._msg_id(ep.name)
            if "msg_id" in body:
                reply["in_reply_to"] = body["msg_id"]
            self._route(ep.name, src, reply, None)

    def _reply(self, ep: _Endpoint, items: list) -> None:
        for src, body, _line, stamp in items:
            self.book.recv(ep.name, stamp)
            self.stats[(src, ep.name)].delivered += 1
            fut = self._pending.pop((ep.name, body.get("in_reply_to")), None)
            if fut is None or fut.done():
                self.unexpected_replies += 1
            else:
                fut.set_result(body)

    # -- reading nodes ------------------------------------------------------------

    async def _read(self, ep: _Endpoint, proc: asyncio.subprocess.Process) -> None:
        """Route every line the process prints until its stdout closes; record its exit."""
        stdout = proc.stdout
        assert stdout is not None
        tail = b""
        on_line = self._on_line
        name = ep.name
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
            on_line(name, tail)
        code = await proc.wait()
        if ep.init_key is not None:  # died while starting: fail start_node now
            fut = self._pending.get(ep.init_key)
            if fut is not None and not fut.done():
                fut.set_result(None)
        if ep.proc is proc:
            self.exits.append(NodeExit(name, code, ep.expected_exit))
            if not ep.expected_exit:
                log.warning("node %s exited unexpectedly with code %s", name, code)

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
        log.warning("node %s printed a malformed line (%s): %s", node, why, text)

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

    # -- process faults -------------------------------------------------------------

    def _node(self, name: str) -> _Endpoint:
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
        return self.workdir / f"{name}.log"

    def inits(self, name: str) -> int:
        """How many init_ok this node has sent (one per successful (re)start)."""
        return self._node(name).inits

    async def start_node(self, name: str) -> None:
        """Start the node's process (if not running) and initialise it."""
        ep = self._node(name)
        if ep.proc is not None and ep.proc.returncode is None:
            return
        assert self._tg is not None
        logf = open(self.log_path(name), "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *ep.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=logf, start_new_session=True, env=self.env, limit=MAX_LINE,
                preexec_fn=_pdeathsig,
            )
        except OSError as exc:
            raise ClusterError(f"node {name}: cannot start {ep.argv[0]!r}: {exc}") from None
        finally:
            logf.close()
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
        ep.reader = self._spawn(self._read(ep, proc), f"reader {name}")
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

    def _signal(self, ep: _Endpoint, sig: int) -> bool:
        proc = ep.proc
        if proc is None or proc.returncode is not None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

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
        """SIGSTOP the node's process group (its messages queue up in its pipe)."""
        ep = self._node(name)
        if self._signal(ep, signal.SIGSTOP):
            ep.paused = True

    async def resume_node(self, name: str) -> None:
        ep = self._node(name)
        if self._signal(ep, signal.SIGCONT):
            ep.paused = False

    async def restart_node(self, name: str) -> None:
        """Kill the node and start it again; it gets init again."""
        await self.kill_node(name)
        await self.start_node(name)
