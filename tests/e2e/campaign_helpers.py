"""Shared pieces of the end-to-end campaign tests: the pb_kv campaign, /proc scans.

Why one module: the Maelstrom pb_kv campaign settings and the "which processes
did this campaign start" scan are used by several e2e and resilience tests;
one copy keeps them from drifting apart.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from fuzzer.campaign.outdir import CampaignDir

ROOT = Path(__file__).resolve().parents[2]

# a Maelstrom pb_kv campaign that finds its stale-read bug within an execution or two
# (long partitions, few keys, many clients)
PB_KV = [
    "targets/maelstrom/target.toml",
    "--set", "target.node=nodes/pb_kv.py",
    "--set", "workload.name=lin-kv",
    "--set", "schedule.length=4",
    "--set", "schedule.step=1.5s",
    "--set", "faults.allowed=['partition', 'wait']",
    "--set", "workload.keys=2",
    "--set", "workload.clients=6",
]


def pids_with_env(tag: bytes, *, skip_zombies: bool = False) -> list[int]:
    """PIDs of processes (other than this one) whose environment contains ``tag``."""
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text() if skip_zombies else ""
        except OSError:
            continue
        if tag in env + b"\0" and ") Z " not in state:  # zombies hold nothing
            out.append(int(d.name))
    return out


def wait_until_none(find: Callable[[], list[int]], timeout: float = 20.0) -> list[int]:
    """Wait (bounded) until ``find()`` is empty; SIGKILL and return any left."""
    deadline = time.monotonic() + timeout
    left = find()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = find()
    for p in left:  # never leave anything behind, even when the assertion fails
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def nodes_of(pid: int) -> list[int]:
    """Processes started by executions of process ``pid`` (HBFUZZ_EXECUTION names it)."""
    return pids_with_env(f"HBFUZZ_EXECUTION=x{pid}-".encode())


def wait_gone(pid: int, timeout: float = 20.0) -> list[int]:
    """Wait until ``pid``'s node processes are gone; kill and return any survivors."""
    return wait_until_none(lambda: nodes_of(pid), timeout)


def state_of(out: Path) -> dict:
    """The campaign's committed state, or {} while there is none (or it is mid-write)."""
    try:
        return CampaignDir(out).load_state() or {}
    except Exception:
        return {}
