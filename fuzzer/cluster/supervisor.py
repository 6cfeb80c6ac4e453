"""Start, break and clean up the N processes of a cluster (asyncio).

Why one class: every fault that touches a process (kill, pause, restart,
wipe, clock skew) must know which process group is the node now, whether
its exit was our doing, and must leave nothing behind. The Supervisor owns
that state; nothing else signals node processes.

Guarantees:
- each node runs in its own session/process group; signals go to the group,
  so a node's own children are paused and killed with it;
- each node gets PR_SET_PDEATHSIG(SIGKILL), and a watchdog process (reaper.py)
  SIGKILLs every registered group when the fuzzer dies, even by SIGKILL;
- output goes to ``WORKDIR/logs/NAME.log``, rotated at ``spec.log_cap``;
- an exit we did not cause is reported as ``NodeExit(expected=False)`` on
  ``exits`` (an asyncio.Queue) and to ``on_exit``; exits we caused are
  reported with ``expected=True``;
- ``close()`` returns only when every node is dead and reaped.

Layout of ``workdir``: ``data/NAME/`` (data dir, config files rendered there
before each start), ``logs/NAME.log`` (+ ``.1`` after rotation, with a
``--- hbfuzz:`` line at every start and exit), ``logs/reaper.log``,
``cluster.registry`` (the watchdog's list of process groups).

Node references: a name (``"n2"``) or a 0-based index. Operations on one
node are serialised; they are no-ops where they do not apply (kill a stopped
node, resume a running one). A node that dies during start raises
ClusterError (with the log tail) and is also reported as an unexpected
NodeExit. Not covered: a process that leaves its node's process group
(setsid, daemonising) escapes the group kill.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import re
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from fuzzer.cluster.clock import ClockSetting, clock_env
from fuzzer.cluster.logs import BoundedLog
from fuzzer.cluster.ports import PortLease, lease_ports
from fuzzer.cluster.process import (
    Incarnation,
    NodeExit,
    NodeState,
    check_ports_free,
    killpg,
    resolve_program,
    wait_group_stopped,
)
from fuzzer.cluster.readiness import command_succeeds, port_accepting, waiting_for
from fuzzer.cluster.signals import GUARD
from fuzzer.cluster.spec import ClusterSpec, NodeSpec, render_node
from fuzzer.cluster.watchdog import Watchdog, pdeathsig_preexec
from fuzzer.errors import ClusterError
from fuzzer.safeio import safe_join
from instrumentation.protocol import ENV_NODE

log = logging.getLogger(__name__)

KILL_TIMEOUT = 10.0  # a SIGKILLed group that is not reaped by then is an error
DRAIN_TIMEOUT = 1.0  # output still buffered after the exit
STREAM_LIMIT = 1 << 24  # line limit of pipe_stdio readers (Maelstrom messages)


class Supervisor:
    """Runs the processes of one cluster in ``workdir`` (the execution directory).

    ``env`` is added to every node's environment (e.g. the tracker address);
    ``peer_address[(src, dst)] = (host, port)`` makes ``src``'s peer
    placeholders point at a proxy instead of ``dst`` itself (set it before
    starting). ``on_exit`` is called for every NodeExit.
    """

    def __init__(
        self,
        spec: ClusterSpec,
        workdir: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        peer_address: Mapping[tuple[str, str], tuple[str, int]] | None = None,
        on_exit: Callable[[NodeExit], Any] | None = None,
        watchdog: bool = True,
    ):
        self.spec = spec
        self.workdir = Path(workdir).resolve()
        self.env = dict(env or {})
        self.peer_address: dict[tuple[str, str], tuple[str, int]] = dict(peer_address or {})
        self.on_exit = on_exit
        self.exits: asyncio.Queue[NodeExit] = asyncio.Queue()
        self.signalled: int | None = None
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        ppn = spec.ports_per_node
        self._lease: PortLease | None = lease_ports(spec.nodes * ppn) if ppn else None
        all_ports = list(self._lease.ports) if self._lease else []
        self._ports = [tuple(all_ports[i * ppn : (i + 1) * ppn]) for i in range(spec.nodes)]
        self._nodes = [
            NodeState(
                name,
                i,
                self._ports[i],
                BoundedLog(self.workdir / "logs" / f"{name}.log", spec.log_cap),
            )
            for i, name in enumerate(spec.names())
        ]
        self._by_name = {n.name: n for n in self._nodes}
        self._watchdog = (
            Watchdog(self.workdir / "cluster.registry", self.workdir / "logs" / "reaper.log")
            if watchdog
            else None
        )
        self._tasks: set[asyncio.Task] = set()
        self._start_listeners: list[Callable[[str, asyncio.subprocess.Process], Any]] = []
        self._closing = False
        self._closed = False
        self._atexit = False
        self._guarded = False

    # --- context manager and signals ------------------------------------
    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.close()
        if self.signalled is not None:
            if self.signalled == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + self.signalled)

    def handle_signals(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        """On SIGINT/SIGTERM: SIGKILL every node group at once and cancel the
        calling task, so ``async with Supervisor(...)`` closes the cluster and
        then raises KeyboardInterrupt (SIGINT) or SystemExit(128+sig). Several
        supervisors may ask; each is told (see signals.py). Main thread only."""
        GUARD.add(self, tuple(signals))
        self._guarded = True

    def on_signal(self, signum: int) -> None:
        """Called by the signal guard: remember the signal, kill nodes now."""
        if self.signalled is None:
            self.signalled = signum
        self.kill_now()

    def kill_now(self) -> None:
        """Synchronously SIGKILL every live node group (signal handlers, atexit)."""
        for node in self._nodes:
            if node.running:
                node.inc.expect_exit = True
                killpg(node.inc.pgid, signal.SIGKILL)

    # --- queries ----------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [n.name for n in self._nodes]

    def ports(self, n: str | int) -> tuple[int, ...]:
        return self._node(n).ports

    def node_spec(self, n: str | int) -> NodeSpec:
        """The node as it would be started now (rendered templates)."""
        return render_node(
            self.spec, self._node(n).index, self._ports, self.workdir, self.peer_address
        )

    def pid(self, n: str | int) -> int | None:
        node = self._node(n)
        return node.inc.pgid if node.running else None

    def process(self, n: str | int) -> asyncio.subprocess.Process | None:
        node = self._node(n)
        return node.inc.proc if node.running else None

    def state(self, n: str | int) -> str:
        """``stopped``, ``running`` or ``paused``."""
        node = self._node(n)
        if not node.running:
            return "stopped"
        return "paused" if node.paused else "running"

    def log_path(self, n: str | int) -> Path:
        return self._node(n).log.path

    def data_dir(self, n: str | int) -> Path:
        return self.workdir / "data" / self._node(n).name

    def log_tail(self, n: str | int, lines: int = 40) -> str:
        """Tail of the current (or last) run's output."""
        node = self._node(n)
        return node.inc.tail.text(lines) if node.inc else ""

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog else None

    def add_start_listener(self, fn: Callable[[str, asyncio.subprocess.Process], Any]) -> None:
        """``fn(name, process)`` runs after every spawn, before readiness
        (e.g. to send a Maelstrom ``init``); it may be async."""
        self._start_listeners.append(fn)

    def _node(self, n: str | int) -> NodeState:
        if isinstance(n, int) and not isinstance(n, bool):
            if 0 <= n < len(self._nodes):
                return self._nodes[n]
        elif n in self._by_name:
            return self._by_name[n]
        raise ClusterError(
            f"unknown node {n!r}; nodes are {', '.join(self.names)} (or 0-based index)"
        )

    def _check_open(self) -> None:
        if self._closing or self._closed:
            raise ClusterError("cluster supervisor is closed")

    # --- operations ---------------------------------------------------------
    async def start_all(self) -> None:
        await self._each(lambda node: self._locked(node, self._start))

    async def start(self, n: str | int) -> None:
        """Start a stopped node (no-op if running) and wait until it is ready."""
        await self._locked(self._node(n), self._start)

    async def stop(self, n: str | int, grace: float | None = None) -> None:
        """SIGTERM the node's group, SIGKILL after ``grace`` (default spec.stop_grace)."""
        g = self.spec.stop_grace if grace is None else grace
        await self._locked(self._node(n), lambda node: self._terminate(node, g))

    async def kill(self, n: str | int) -> None:
        """SIGKILL the node's group and wait until it is reaped."""
        await self._locked(self._node(n), lambda node: self._terminate(node, None))

    async def pause(self, n: str | int) -> None:
        """SIGSTOP the node's group (no-op unless running)."""
        await self._locked(self._node(n), self._pause)

    async def resume(self, n: str | int) -> None:
        """SIGCONT the node's group (no-op unless paused)."""
        await self._locked(self._node(n), self._resume)

    async def restart(self, n: str | int, graceful: bool = False) -> None:
        """Kill (or stop, if ``graceful``) and start again with the same data dir."""

        async def op(node: NodeState) -> None:
            await self._terminate(node, self.spec.stop_grace if graceful else None)
            await self._start(node)

        await self._locked(self._node(n), op)

    async def wipe(self, n: str | int, start: bool = True) -> None:
        """Kill the node, replace its data dir by an empty one (data loss), then
        start it again (like ``restart``) unless ``start`` is False."""

        async def op(node: NodeState) -> None:
            await self._terminate(node, None)
            data = self.workdir / "data" / node.name
            await asyncio.to_thread(shutil.rmtree, data, True)
            data.mkdir(parents=True, exist_ok=True)
            if start:
                await self._start(node)

        await self._locked(self._node(n), op)

    async def kill_all(self) -> None:
        await self._each(lambda node: self._locked(node, lambda nd: self._terminate(nd, None)))

    async def restart_all(self) -> None:
        await self.kill_all()
        await self.start_all()

    async def set_clock(self, n: str | int, offset: float, rate: float = 1.0) -> None:
        """Give the node a skewed clock: ``offset`` seconds, ``rate`` x speed.

        Takes effect by restarting the node if it runs (same data dir): Python
        nodes through HBFUZZ_CLOCK_OFFSET/RATE, native ones (spec.clock =
        "faketime") through libfaketime."""
        setting = ClockSetting(float(offset), float(rate))
        clock_env(self.spec.clock, setting, dict(os.environ))  # validate before touching

        async def op(node: NodeState) -> None:
            node.clock = setting
            if node.running:
                await self._terminate(node, None)
                await self._start(node)

        await self._locked(self._node(n), op)

    async def close(self) -> None:
        """Kill every node, wait until all are reaped, stop the watchdog, free ports."""
        if self._closed:
            return
        self._closing = True
        try:
            try:
                async with asyncio.timeout(KILL_TIMEOUT):
                    while live := [n.inc for n in self._nodes if n.running]:
                        self.kill_now()
                        await asyncio.gather(*(inc.done.wait() for inc in live))
            except TimeoutError:
                log.error("cluster close: some node groups were not reaped in %ss", KILL_TIMEOUT)
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._watchdog is not None:
                await self._watchdog.stop()
        finally:
            for node in self._nodes:
                node.log.close()
            if self._lease is not None:
                self._lease.release()
            if self._atexit:
                atexit.unregister(self.kill_now)
                self._atexit = False
            if self._guarded:
                GUARD.remove(self)
                self._guarded = False
            self._closed = True

    # --- internals ------------------------------------------------------------
    async def _locked(self, node: NodeState, fn: Callable[[NodeState], Awaitable[None]]) -> None:
        self._check_open()
        async with node.lock:
            self._check_open()
            await fn(node)

    async def _each(self, fn: Callable[[NodeState], Awaitable[None]]) -> None:
        """Run ``fn`` on every node concurrently; the first ClusterError is raised."""
        try:
            async with asyncio.TaskGroup() as tg:
                for node in self._nodes:
                    tg.create_task(fn(node))
        except BaseExceptionGroup as eg:
            errors = [e for e in eg.exceptions if isinstance(e, ClusterError)]
            if errors:
                raise errors[0] from None
            raise

    def _spawn_task(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _build_env(self, node: NodeState, ns: NodeSpec) -> dict[str, str]:
        env = dict(os.environ)
        env[ENV_NODE] = node.name
        env.update(self.env)
        env.update(dict(ns.env))
        env.update(clock_env(self.spec.clock, node.clock, env))
        return env

    async def _start(self, node: NodeState) -> None:
        if node.running:
            return
        ns = render_node(self.spec, node.index, self._ports, self.workdir, self.peer_address)
        ns.data_dir.mkdir(parents=True, exist_ok=True)
        for rel, text in ns.files:
            target = safe_join(ns.data_dir, rel)  # no escape via '..' or a planted symlink
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        env = self._build_env(node, ns)
        cwd = Path(self.spec.cwd) if self.spec.cwd else ns.data_dir
        src = f"{self.spec.source}: {self.spec.prefix}"
        resolve_program(ns.argv[0], env, cwd, node.name, f"{src}command[0]")
        if self.spec.readiness.kind == "command":
            resolve_program(ns.ready_command[0], env, cwd, node.name, f"{src}readiness.command[0]")
        check_ports_free(node.name, node.ports)
        if self._watchdog is not None:
            self._watchdog.start()
        if not self._atexit:
            atexit.register(self.kill_now)
            self._atexit = True
        pipe = self.spec.pipe_stdio
        try:
            proc = await asyncio.create_subprocess_exec(
                *ns.argv,
                stdin=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.STDOUT,
                env=env,
                cwd=str(cwd),
                start_new_session=True,
                preexec_fn=pdeathsig_preexec(),
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            raise ClusterError(
                f"{self.spec.source}: command: cannot start node {node.name} ({ns.argv[0]!r}): {exc}"
            ) from exc
        if self._closing:  # close() ran while we were spawning
            killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ClusterError(f"node {node.name}: cluster closed during start")
        node.count += 1
        node.paused = False
        ready_re = (
            re.compile(self.spec.readiness.pattern) if self.spec.readiness.kind == "log" else None
        )
        inc = Incarnation(node.count, ns, proc, ready_re)
        node.inc = inc
        if self._watchdog is not None:
            self._watchdog.add(inc.pgid, f"{node.name}#{inc.number}")
        node.log.write(
            f"--- hbfuzz: {node.name} run {inc.number} pid {proc.pid}: {' '.join(ns.argv)}\n".encode()
        )
        inc.reader = self._spawn_task(self._read(node, inc, proc.stderr if pipe else proc.stdout))
        inc.watcher = self._spawn_task(self._watch(node, inc))
        try:
            for fn in self._start_listeners:
                result = fn(node.name, proc)
                if inspect.isawaitable(result):
                    await result
            await self._await_ready(node, inc)
        except BaseException:  # failed or cancelled start: no half-started node stays
            if inc.alive:
                inc.expect_exit = True
                killpg(inc.pgid, signal.SIGKILL)
            raise

    async def _read(self, node: NodeState, inc: Incarnation, stream: asyncio.StreamReader) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            node.log.write(chunk)
            inc.feed(chunk)

    async def _watch(self, node: NodeState, inc: Incarnation) -> None:
        rc = await inc.proc.wait()
        killpg(inc.pgid, signal.SIGKILL)  # what the node left in its group
        if self._watchdog is not None:
            self._watchdog.remove(inc.pgid)
        if inc.reader is not None:
            done, _ = await asyncio.wait({inc.reader}, timeout=DRAIN_TIMEOUT)
            if not done:
                inc.reader.cancel()
        ex = NodeExit(
            node=node.name,
            pid=inc.pgid,
            incarnation=inc.number,
            returncode=rc if rc >= 0 else None,
            signal=-rc if rc < 0 else None,
            expected=inc.expect_exit,
            log_tail=inc.tail.text(),
        )
        inc.exit = ex
        if node.inc is inc:
            node.paused = False
        node.log.write(f"--- hbfuzz: {ex.describe()}\n".encode())
        inc.done.set()
        self.exits.put_nowait(ex)
        if self.on_exit is not None:
            try:
                result = self.on_exit(ex)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_exit callback failed for %s", ex.describe())

    def _fail(self, node: NodeState, inc: Incarnation, what: str) -> ClusterError:
        tail = inc.tail.text()
        return ClusterError(
            f"node {node.name} {what}; log {node.log.path}, last lines:\n{tail or '(no output)'}"
        )

    async def _await_ready(self, node: NodeState, inc: Incarnation) -> None:
        r = self.spec.readiness
        loop = asyncio.get_running_loop()
        deadline = loop.time() + r.timeout
        what = waiting_for(r, node.ports, inc.spec.ready_command)
        while True:
            if not inc.alive:
                if self._closing:
                    raise ClusterError(f"node {node.name}: cluster closed during start")
                assert inc.exit is not None
                raise self._fail(node, inc, f"exited during start ({inc.exit.describe()})")
            remaining = deadline - loop.time()
            if await self._probe(node, inc, max(remaining, 0.1)):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(min(r.interval, remaining)):
                    await inc.done.wait()
            except TimeoutError:
                pass
        await self._terminate(node, None)
        raise self._fail(node, inc, f"not ready after {r.timeout:g}s ({what})")

    async def _probe(self, node: NodeState, inc: Incarnation, budget: float) -> bool:
        r = self.spec.readiness
        if r.kind == "none":
            return True
        if r.kind == "log":
            return inc.ready_seen.is_set()
        if r.kind == "port":
            return await port_accepting(node.ports[r.port_index], budget)
        wd = self._watchdog
        return await command_succeeds(
            inc.spec.ready_command,
            self._build_env(node, inc.spec),
            self.workdir / "data" / node.name,
            budget,
            where=f"{self.spec.source}: {self.spec.prefix}readiness.command",
            track=(lambda pgid: wd.add(pgid, f"{node.name}-ready-check"))
            if wd
            else (lambda pgid: None),
            untrack=wd.remove if wd else (lambda pgid: None),
        )

    async def _terminate(self, node: NodeState, grace: float | None) -> None:
        """Stop the node: SIGTERM then SIGKILL after ``grace``, or SIGKILL now."""
        inc = node.inc
        if inc is None or not inc.alive:
            return
        inc.expect_exit = True
        if grace is not None and grace > 0:
            killpg(inc.pgid, signal.SIGTERM)
            killpg(inc.pgid, signal.SIGCONT)
            try:
                async with asyncio.timeout(grace):
                    await inc.done.wait()
                return
            except TimeoutError:
                pass
        killpg(inc.pgid, signal.SIGKILL)
        try:
            async with asyncio.timeout(KILL_TIMEOUT):
                await inc.done.wait()
        except TimeoutError:
            raise ClusterError(
                f"node {node.name} (pid {inc.pgid}) not reaped {KILL_TIMEOUT:g}s after SIGKILL"
            ) from None

    async def _pause(self, node: NodeState) -> None:
        if not node.running or node.paused:
            return
        killpg(node.inc.pgid, signal.SIGSTOP)
        node.paused = True
        await wait_group_stopped(node.inc.pgid)

    async def _resume(self, node: NodeState) -> None:
        if not node.running or not node.paused:
            return
        killpg(node.inc.pgid, signal.SIGCONT)
        node.paused = False
