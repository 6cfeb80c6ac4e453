"""Find processes an execution left behind (Linux ``/proc``).

Why by environment and not by pid: a node may fork helpers (a grandchild
keeps the node's environment, including ``HBFUZZ_EXECUTION``), and pids are
reused. Every process an execution starts carries ``HBFUZZ_EXECUTION=<id>``
in its environment, so scanning ``/proc/*/environ`` for that entry finds all
of them, whoever their parent is. Used by the tests ("no process left
behind") and usable by a campaign as a sanity check after teardown.
"""

from __future__ import annotations

import os
from pathlib import Path

from instrumentation.protocol import ENV_EXECUTION

__all__ = ["leftover_processes"]


def leftover_processes(execution_id: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of live (non-zombie) processes whose environment names ``execution_id``."""
    needle = f"{ENV_EXECUTION}={execution_id}".encode()
    me = os.getpid()
    out = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            env = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:  # gone, or not ours
            continue
        state = stat.rsplit(")", 1)[-1].split()[:1]
        if state == ["Z"]:
            continue
        if needle in env.split(b"\0"):
            out.append(int(entry.name))
    return sorted(out)
