"""The supervisor's handle on the reaper process (see reaper.py for why).

Also home of the child-side PR_SET_PDEATHSIG hook: every node and helper the
supervisor starts gets SIGKILL from the kernel when the thread that forked it
(the event loop thread) dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fuzzer.cluster import reaper
from fuzzer.errors import ClusterError

PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux: the watchdog alone must do
    _libc = None
    _prctl = None


def pdeathsig_preexec(parent: int | None = None) -> Callable[[], None]:
    """A preexec_fn: SIGKILL this child when its parent thread dies.

    Closes the race where the parent died between fork and prctl (the child
    was re-parented already): then the child exits at once. Caveat: the
    kernel fires on the exit of the *thread* that forked, which for asyncio
    subprocesses is the event-loop thread; running a Supervisor on a loop in
    a short-lived worker thread kills its nodes when that thread ends. It
    reaches only the node's first process, not its children: the reaper
    covers those."""
    parent = os.getpid() if parent is None else parent

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(137)

    return preexec


class Watchdog:
    """Starts the reaper once and keeps its registry of process groups current."""

    def __init__(self, registry: Path, log: Path):
        self.registry = Path(registry)
        self.log = Path(log)
        self.proc: subprocess.Popen | None = None
        self._entries: dict[int, reaper.Entry] = {}
        self.write_errors = 0  # registry rewrites that failed (e.g. disk full)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        if self.proc is not None:
            return
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        reaper.write_registry(self.registry, [])
        argv = [
            sys.executable,
            "-I",
            str(Path(reaper.__file__).resolve()),
            "--parent",
            str(os.getpid()),
            "--registry",
            str(self.registry),
        ]
        try:
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            raise ClusterError(f"cannot start the reaper watchdog {argv[0]}: {exc}") from exc

    def add(self, pgid: int, label: str) -> None:
        self._entries[pgid] = (pgid, reaper.proc_start_time(pgid) or 0, label)
        self._write()

    def remove(self, pgid: int) -> None:
        # A registry that cannot be shrunk (disk full) is harmless: the reaper
        # checks each group's start time, so a stale entry never kills a
        # recycled pid. Teardown must go on, so the error is only counted.
        if self._entries.pop(pgid, None) is not None:
            try:
                self._write()
            except OSError:
                self.write_errors += 1

    def pgids(self) -> list[int]:
        return list(self._entries)

    def _write(self) -> None:
        if self.proc is not None:
            reaper.write_registry(self.registry, list(self._entries.values()))

    async def stop(self, timeout: float = 5.0) -> None:
        """Empty the registry, then let the reaper exit (SIGTERM)."""
        self._entries.clear()
        if self.proc is None:
            return
        try:
            reaper.write_registry(self.registry, [])
        except OSError:  # disk full: the reaper is told to exit below anyway
            self.write_errors += 1
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=timeout)
        try:
            self.registry.unlink()
        except OSError:
            pass
        self.proc = None
