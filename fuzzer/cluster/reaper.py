"""The watchdog that kills a cluster when the fuzzer dies, however it dies.

Why a separate process: PR_SET_PDEATHSIG kills a node's first process when
the fuzzer dies, but not what that process spawned (grandchildren in the
node's process group), and it fires on the death of the forking *thread*.
Signal handlers and ``finally`` blocks do not run on SIGKILL. So the
supervisor starts this tiny process once, in its own session (terminal
Ctrl-C does not reach it): it waits for the fuzzer to die (pidfd, plus
``getppid()`` changing when it is re-parented) and then SIGKILLs every
process group listed in a registry file that the supervisor rewrites
atomically on every spawn and reap. SIGTERM to the watchdog does the same.

This file uses the standard library only and runs by path
(``python -I reaper.py --parent PID --registry FILE``; ``python -m
fuzzer.cluster.reaper`` works too), so it starts fast and does not depend on
the fuzzer's import path. Registry lines are ``pgid starttime label``;
``starttime`` (field 22 of /proc/PID/stat) guards against a recycled PID.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from pathlib import Path

Entry = tuple[int, int, str]  # (pgid, leader start time or 0, label)


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def write_registry(path: str | os.PathLike, entries: list[Entry]) -> None:
    """Atomically replace the registry with ``entries``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = "".join(f"{pgid} {start} {label}\n" for pgid, start, label in entries)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_registry(path: str | os.PathLike) -> list[Entry]:
    """Entries of the registry; malformed lines are skipped, a missing file is empty."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    out: list[Entry] = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2:
            continue
        try:
            out.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
        except ValueError:
            continue
    return out


def kill_groups(entries: list[Entry], passes: int = 2) -> list[int]:
    """SIGKILL each registered process group; returns the pgids signalled.

    A group whose leader is alive with another start time is skipped (its
    PID was recycled: our group is gone). A group whose leader is gone is
    still signalled, because its grandchildren keep the group (and its id)
    alive."""
    hit: list[int] = []
    for n in range(passes):
        for pgid, start, _label in entries:
            if pgid <= 1:
                continue
            now = proc_start_time(pgid)
            if start and now is not None and now != start:
                continue
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            if n == 0:
                hit.append(pgid)
        if n + 1 < passes:
            time.sleep(0.05)
    return hit


class _Terminate(Exception):
    pass


def _on_term(signum: int, frame: object) -> None:
    raise _Terminate()


def _parent_gone(parent: int, is_child: bool) -> bool:
    if is_child and os.getppid() != parent:
        return True  # re-parented: the parent died
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def wait_for_death(parent: int, poll: float = 0.5) -> None:
    """Block until process ``parent`` has died.

    When we are ``parent``'s child, re-parenting tells us for sure; otherwise
    (or additionally) a pidfd and kill(pid, 0) do."""
    is_child = os.getppid() == parent
    pidfd = None
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    poller = None
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
    try:
        while not _parent_gone(parent, is_child):
            if poller is not None:
                if poller.poll(int(poll * 1000)):
                    return
            else:
                time.sleep(poll)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def reap(registry: str, why: str) -> None:
    entries = read_registry(registry)
    hit = kill_groups(entries)
    print(f"hbfuzz reaper: {why}; killed groups {hit} of {len(entries)} registered", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="kill registered process groups when PARENT dies")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--poll", type=float, default=0.5)
    args = ap.parse_args(argv)
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    try:
        print(f"hbfuzz reaper: watching pid {args.parent}", flush=True)
        wait_for_death(args.parent, args.poll)
        why = f"parent {args.parent} died"
    except _Terminate:
        why = "SIGTERM"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reap(args.registry, why)
    return 0


if __name__ == "__main__":
    sys.exit(main())
