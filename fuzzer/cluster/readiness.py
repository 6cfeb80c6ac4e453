"""Readiness probes: is a freshly started node up yet?

Why separate: each probe is a small, bounded I/O check (connect to a port,
run a command) that the Supervisor polls until the spec's timeout; keeping
them here keeps the Supervisor about processes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from fuzzer.cluster.process import killpg
from fuzzer.cluster.spec import HOST, Readiness
from fuzzer.cluster.watchdog import pdeathsig_preexec
from fuzzer.errors import ClusterError


def waiting_for(r: Readiness, ports: tuple[int, ...], command: tuple[str, ...]) -> str:
    """What a node that is not ready yet has not done (for the error message)."""
    if r.kind == "port":
        return f"port {HOST}:{ports[r.port_index] if ports else '?'} not accepting"
    if r.kind == "log":
        return f"no output line matched {r.pattern!r}"
    if r.kind == "command":
        return f"readiness command {list(command)} did not exit 0"
    return ""


async def port_accepting(port: int, budget: float) -> bool:
    """True if 127.0.0.1:port accepts a TCP connection within ``budget`` seconds."""
    try:
        async with asyncio.timeout(min(1.0, budget)):
            _, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def command_succeeds(
    argv: tuple[str, ...],
    env: Mapping[str, str],
    cwd: Path,
    budget: float,
    *,
    where: str,
    track: Callable[[int], None] = lambda pgid: None,
    untrack: Callable[[int], None] = lambda pgid: None,
) -> bool:
    """Run ``argv`` in its own group; True if it exits 0 within ``budget``.

    ``track``/``untrack`` register the group with the watchdog; whatever the
    command leaves in its group is killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            preexec_fn=pdeathsig_preexec(),
        )
    except OSError as exc:
        raise ClusterError(f"{where}: cannot run {argv[0]!r}: {exc}") from exc
    track(proc.pid)
    try:
        async with asyncio.timeout(max(budget, 0.1)):
            return await proc.wait() == 0
    except TimeoutError:
        return False
    finally:
        killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        untrack(proc.pid)
