"""Processes of stdio nodes, on the cluster layer's no-orphans machinery.

Why not the Supervisor itself: its templates render one ``str.format``
command for nodes named ``n1..nN``, while the stdio mediator takes any node
names with a literal argv each (often a ``python -c`` script full of braces)
and keeps its own log layout. So this class reuses the Supervisor's pieces
(fuzzer/cluster/) and nothing else:

- each node runs in its own session/process group; signals go to the group;
- each node gets PR_SET_PDEATHSIG(SIGKILL) (``watchdog.pdeathsig_preexec``);
- every group is registered with a reaper watchdog process
  (``watchdog.Watchdog``, reaper.py) that SIGKILLs them when the fuzzer dies,
  even by SIGKILL, so a node's grandchildren do not survive either;
- when a node's first process exits, whatever it left in its group is
  SIGKILLed (``reap``), and ``atexit`` kills every live group;
- stderr goes through a pipe into ``workdir/NAME.log``, a
  :class:`~fuzzer.cluster.logs.BoundedLog` (rotated to ``NAME.log.1`` past
  ``log_cap``), so a node printing in a loop cannot fill the disk.

stdin and stdout are pipes for the mediator (the Maelstrom protocol).
"""

from __future__ import annotations

import asyncio
import atexit
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from fuzzer.cluster.logs import BoundedLog
from fuzzer.cluster.process import killpg, wait_group_stopped
from fuzzer.cluster.watchdog import Watchdog, pdeathsig_preexec
from fuzzer.errors import ClusterError

LOG_CAP = 16 * 1024 * 1024  # per node log file, as the Supervisor's default
MAX_LINE = 16 * 1024 * 1024  # stdout reader limit (one Maelstrom message)


class StdioProcesses:
    """Starts, signals and reaps the node processes of one stdio mediator.

    ``env`` is the whole environment of every node (None: inherit the
    fuzzer's). ``watchdog=False`` leaves only PR_SET_PDEATHSIG (tests).
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        log_cap: int = LOG_CAP,
        watchdog: bool = True,
    ):
        self.workdir = Path(workdir)
        self.env = dict(env) if env is not None else None
        self.log_cap = log_cap
        self._watchdog = (
            Watchdog(self.workdir / "stdio.registry", self.workdir / "reaper.log")
            if watchdog
            else None
        )
        self._logs: dict[str, BoundedLog] = {}
        self._live: dict[int, asyncio.subprocess.Process] = {}
        self._atexit = False
        self._closed = False

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog is not None else None

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _log(self, name: str) -> BoundedLog:
        blog = self._logs.get(name)
        if blog is None:
            blog = self._logs[name] = BoundedLog(self.log_path(name), self.log_cap)
        return blog

    async def spawn(self, name: str, argv: Sequence[str]) -> asyncio.subprocess.Process:
        """Start ``argv`` as node ``name`` in its own process group, registered with
        the watchdog; ClusterError if it cannot be executed."""
        if self._closed:
            raise ClusterError(f"node {name}: the stdio mediator is closed")
        if self._watchdog is not None:
            self._watchdog.start()
        if not self._atexit:
            atexit.register(self.kill_now)
            self._atexit = True
        self._log(name)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, env=self.env,
                limit=MAX_LINE, preexec_fn=pdeathsig_preexec(),
            )
        except OSError as exc:
            raise ClusterError(f"node {name}: cannot start {argv[0]!r}: {exc}") from None
        if self._closed:  # close() ran while we were spawning
            killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ClusterError(f"node {name}: the stdio mediator closed during start")
        self._live[proc.pid] = proc
        if self._watchdog is not None:
            self._watchdog.add(proc.pid, f"stdio-{name}")
        return proc

    async def pump_stderr(self, name: str, proc: asyncio.subprocess.Process) -> None:
        """Copy the process's stderr into the node's bounded log until EOF."""
        stream = proc.stderr
        assert stream is not None
        blog = self._log(name)
        while True:
            try:
                chunk = await stream.read(65536)
            except (ConnectionError, OSError):
                return
            if not chunk:
                return
            blog.write(chunk)

    async def reap(self, proc: asyncio.subprocess.Process) -> int:
        """Wait for the node's exit, SIGKILL what it left in its group, unregister
        the group; returns the exit code (negative: killed by that signal)."""
        code = await proc.wait()
        killpg(proc.pid, signal.SIGKILL)
        self._forget(proc)
        return code

    def _forget(self, proc: asyncio.subprocess.Process) -> None:
        if self._live.pop(proc.pid, None) is not None and self._watchdog is not None:
            self._watchdog.remove(proc.pid)

    def signal(self, proc: asyncio.subprocess.Process | None, sig: int) -> bool:
        """Send ``sig`` to the node's process group; False if it is not running."""
        if proc is None or proc.returncode is not None:
            return False
        return killpg(proc.pid, sig)

    async def wait_stopped(self, proc: asyncio.subprocess.Process, timeout: float = 2.0) -> bool:
        """Wait (bounded) until every process of the node's group is stopped."""
        return await wait_group_stopped(proc.pid, timeout)

    def kill_now(self) -> None:
        """Synchronously SIGKILL every live node group (close, atexit)."""
        for pgid in list(self._live):
            killpg(pgid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill every group, stop the watchdog, close the logs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.kill_now()
        for proc in list(self._live.values()):
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                continue
            self._forget(proc)
        if self._watchdog is not None:
            await self._watchdog.stop()
        for blog in self._logs.values():
            blog.close()
        if self._atexit:
            atexit.unregister(self.kill_now)
            self._atexit = False
