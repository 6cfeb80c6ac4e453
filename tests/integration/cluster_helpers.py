"""Shared helpers for the cluster integration tests (not a test module)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from fuzzer.cluster import ClusterSpec, Readiness

NODES = Path(__file__).with_name("nodes")
NODE = str(NODES / "cluster_node.py")


def node_spec(n: int = 2, *extra: str, readiness: Readiness | None = None, **kw) -> ClusterSpec:
    """A spec running tests/integration/nodes/cluster_node.py."""
    command = [
        sys.executable,
        NODE,
        "--name",
        "{name}",
        "--port",
        "{port}",
        "--data-dir",
        "{data_dir}",
        *extra,
    ]
    return ClusterSpec(
        nodes=n,
        command=command,
        readiness=readiness or Readiness(kind="port", timeout=20.0),
        stop_grace=2.0,
        **kw,
    )


async def ask(port: int, line: str, timeout: float = 5.0) -> str | None:
    """Send one line, return the answer, or None if there is none in time."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(timeout):
            answer = await reader.readline()
        return answer.decode().strip() or None
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()


def run(coro, timeout: float = 60.0):
    """Run a test coroutine with a hard bound."""

    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z"


def wait_dead(pids, timeout: float = 10.0) -> list[int]:
    """Wait (bounded) until none of ``pids`` is alive; return the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def with_marker(marker: str) -> list[int]:
    """Live processes whose argv or environment contains ``marker``."""
    needle = marker.encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if needle in f.read():
                        if alive(pid):
                            found.append(pid)
                        break
            except OSError:
                continue
    return found


def kill_marked(marker: str) -> None:
    """Cleanup: SIGKILL every live process carrying ``marker``."""
    for pid in with_marker(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
