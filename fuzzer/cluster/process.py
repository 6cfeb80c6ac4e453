"""Per-node process state and process-group primitives for the Supervisor.

Why separate: the Supervisor decides *when* to signal; this module holds what
one run of a node is (its process, output tail, readiness flag, how it ended)
and the small Linux facts (signal a group, is the whole group stopped, can
the program be executed, is the port free) that make those decisions safe.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fuzzer.cluster.clock import ClockSetting
from fuzzer.cluster.logs import BoundedLog, Tail
from fuzzer.cluster.spec import HOST, NodeSpec
from fuzzer.errors import ClusterError

LINE_SCAN_LIMIT = 65536  # a "line" longer than this is matched in pieces


@dataclass(frozen=True)
class NodeExit:
    """A node process ended. ``expected`` is False when we did not cause it:
    a finding candidate (crash, assertion, panic)."""

    node: str
    pid: int
    incarnation: int
    returncode: int | None  # exit status; None when killed by a signal
    signal: int | None  # terminating signal number
    expected: bool
    log_tail: str

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            how = f"killed by {name}"
        else:
            how = f"exit code {self.returncode}"
        return f"node {self.node} (pid {self.pid}) {how}" + (
            "" if self.expected else " (unexpected)"
        )


class Incarnation:
    """One run of one node: its process and what we know about its end."""

    def __init__(
        self,
        number: int,
        spec: NodeSpec,
        proc: asyncio.subprocess.Process,
        ready_re: re.Pattern[str] | None,
    ):
        self.number = number
        self.spec = spec
        self.proc = proc
        self.pgid = proc.pid
        self.expect_exit = False
        self.tail = Tail()
        self.done = asyncio.Event()
        self.exit: NodeExit | None = None
        self.ready_re: re.Pattern[str] | None = ready_re
        self.ready_seen = asyncio.Event()
        self.linebuf = b""
        self.reader: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return not self.done.is_set()

    def feed(self, chunk: bytes) -> None:
        """Account one chunk of output: tail, and the log readiness regex."""
        self.tail.feed(chunk)
        if self.ready_re is None or self.ready_seen.is_set():
            return
        *lines, rest = (self.linebuf + chunk).split(b"\n")
        if len(rest) > LINE_SCAN_LIMIT:
            lines.append(rest)
            rest = b""
        self.linebuf = rest
        for line in lines:
            if self.ready_re.search(line.decode("utf-8", errors="replace")):
                self.ready_seen.set()
                self.linebuf = b""
                return


class NodeState:
    """Mutable per-node state, guarded by ``lock`` (one operation at a time)."""

    def __init__(self, name: str, index: int, ports: tuple[int, ...], log: BoundedLog):
        self.name = name
        self.index = index
        self.ports = ports
        self.log = log
        self.lock = asyncio.Lock()
        self.inc: Incarnation | None = None
        self.count = 0
        self.paused = False
        self.clock = ClockSetting()

    @property
    def running(self) -> bool:
        return self.inc is not None and self.inc.alive


def resolve_program(argv0: str, env: Mapping[str, str], cwd: Path, node: str, where: str) -> None:
    """ClusterError naming ``where`` (file: key) if ``argv0`` cannot be executed."""
    if "/" in argv0:
        path = Path(argv0) if os.path.isabs(argv0) else cwd / argv0
        if not path.is_file():
            raise ClusterError(f"{where}: program {argv0!r} for node {node} does not exist")
        if not os.access(path, os.X_OK):
            raise ClusterError(f"{where}: program {argv0!r} for node {node} is not executable")
        return
    if shutil.which(argv0, path=env.get("PATH", os.defpath)) is None:
        raise ClusterError(f"{where}: program {argv0!r} for node {node} not found on PATH")


def check_ports_free(node: str, ports: tuple[int, ...]) -> None:
    """A port taken by someone else would make a port readiness check lie."""
    for k, port in enumerate(ports):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError as exc:
                raise ClusterError(
                    f"node {node}: port {HOST}:{port} (ports[{k}]) is already in use "
                    f"by another process: {exc.strerror}"
                ) from None


def killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_states(pgid: int) -> list[str]:
    """Scheduler states (R, S, T, Z...) of the processes in group ``pgid``."""
    states = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode():
            states.append(fields[0].decode())
    return states


async def wait_group_stopped(pgid: int, timeout: float = 2.0) -> bool:
    """Wait (bounded) until every live process of group ``pgid`` is stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(st in "TtZX" for st in group_states(pgid)):
            return True
        await asyncio.sleep(0.005)
    return False
