"""No orphans, ever: a driver process runs a 3-node cluster (each node with a
grandchild in its group) through the Supervisor and ends normally, by an
exception, by SIGINT, SIGTERM or SIGKILL. Afterwards nothing of that cluster
may survive: checked by the PIDs the driver printed and by scanning /proc for
the run's unique marker in argv and environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import NODES, alive, kill_marked, wait_dead, with_marker

from fuzzer.cluster import reaper

DRIVER = str(NODES / "cluster_driver.py")


@pytest.fixture
def marker(rng) -> str:
    m = f"hbfzorph{rng.getrandbits(48):012x}"
    yield m
    kill_marked(m)


def _start_driver(
    mode: str, tmp_path: Path, marker: str, procs, *extra: str
) -> tuple[subprocess.Popen, dict]:
    proc = procs(
        [sys.executable, DRIVER, mode, str(tmp_path / marker), marker, *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # bounded by the driver's own readiness timeouts
    assert line.startswith("{"), (
        f"driver failed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
    )
    info = json.loads(line)
    assert proc.stdout.readline().strip() == "READY"
    return proc, info


@pytest.mark.parametrize(
    ("mode", "sig", "want_rc"),
    [
        ("normal", None, 0),
        ("exception", None, 1),
        ("wait", signal.SIGINT, -signal.SIGINT),
        ("wait", signal.SIGTERM, 128 + signal.SIGTERM),
        ("wait", signal.SIGKILL, -signal.SIGKILL),
    ],
    ids=["normal", "exception", "sigint", "sigterm", "sigkill"],
)
def test_no_orphans(mode, sig, want_rc, tmp_path: Path, marker: str, procs) -> None:
    proc, info = _start_driver(mode, tmp_path, marker, procs)
    everything = [info["watchdog"], *info["nodes"], *info["children"]]
    assert len(set(everything)) == 7 and info["watchdogs"] == [info["watchdog"]]
    assert all(alive(p) for p in info["nodes"] + info["children"])
    assert len(with_marker(marker)) >= 7  # driver, watchdog, 3 nodes, 3 grandchildren
    if sig is not None:
        os.kill(proc.pid, sig)
    else:
        proc.stdin.write("end\n")
        proc.stdin.flush()
    rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == want_rc, stderr
    if mode == "exception":
        assert "driver failing on purpose" in stderr
    assert wait_dead(everything) == [], "cluster processes survived"
    assert wait_dead(with_marker(marker), timeout=2.0) == []
    assert with_marker(marker) == []
    reaper_log = (tmp_path / marker / "logs" / "reaper.log").read_text()
    if sig == signal.SIGKILL:  # only the watchdog could clean up
        assert f"parent {info['driver']} died; killed groups" in reaper_log
    else:  # the fuzzer closed its cluster itself, the watchdog had nothing left
        assert "SIGTERM; killed groups [] of 0 registered" in reaper_log


def test_sigterm_with_two_clusters_in_two_tasks(tmp_path: Path, marker: str, procs) -> None:
    proc, info = _start_driver("wait2", tmp_path, marker, procs)
    everything = [*info["watchdogs"], *info["nodes"], *info["children"]]
    assert len(set(everything)) == 14
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM, proc.stderr.read()
    assert wait_dead(everything) == []
    assert wait_dead(with_marker(marker), timeout=2.0) == []
    for d in (marker, marker + "-b"):  # both closed by the fuzzer itself, not the watchdog
        assert (
            "SIGTERM; killed groups [] of 0" in (tmp_path / d / "logs" / "reaper.log").read_text()
        )


def test_pdeathsig_alone_kills_node_leaders(tmp_path: Path, marker: str, procs) -> None:
    """Without the watchdog, PR_SET_PDEATHSIG still kills each node's first
    process on SIGKILL of the fuzzer, but not the grandchildren: which is
    why the watchdog exists."""
    proc, info = _start_driver("wait", tmp_path, marker, procs, "nowatchdog")
    assert info["watchdog"] is None
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert wait_dead(info["nodes"]) == []
    assert all(alive(p) for p in info["children"])  # cleaned up by the marker fixture


def test_reaper_kills_registered_groups_when_parent_dies(
    tmp_path: Path, marker: str, procs
) -> None:
    """The watchdog alone (no pdeathsig): a fake parent dies, its groups die."""
    registry = tmp_path / "registry"
    sleeper = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.2)", marker]
    groups = [procs(sleeper) for _ in range(2)]
    reaper.write_registry(
        registry, [(g.pid, reaper.proc_start_time(g.pid), f"g{i}") for i, g in enumerate(groups)]
    )
    parent = procs([sys.executable, "-c", "import time; time.sleep(60)"])
    watchdog = procs(
        [
            sys.executable,
            "-I",
            reaper.__file__,
            "--parent",
            str(parent.pid),
            "--registry",
            str(registry),
            "--poll",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watchdog.stdout.readline().startswith("hbfuzz reaper: watching")
    assert all(g.poll() is None for g in groups)
    parent.kill()
    parent.wait(timeout=10)
    assert watchdog.wait(timeout=10) == 0
    for g in groups:
        assert g.wait(timeout=10) == -signal.SIGKILL


def test_reaper_skips_recycled_pids(tmp_path: Path, procs) -> None:
    victim = procs([sys.executable, "-c", "import time; time.sleep(60)"])
    wrong_start = (reaper.proc_start_time(victim.pid) or 0) + 12345
    assert reaper.kill_groups([(victim.pid, wrong_start, "old")], passes=1) == []
    assert victim.poll() is None
    registry = tmp_path / "r"
    reaper.write_registry(registry, [(victim.pid, reaper.proc_start_time(victim.pid), "x y z")])
    registry.write_text(registry.read_text() + "garbage line\n\n")
    entries = reaper.read_registry(registry)
    assert entries == [(victim.pid, reaper.proc_start_time(victim.pid), "x y z")]
    assert reaper.kill_groups(entries) == [victim.pid]
    assert victim.wait(timeout=10) == -signal.SIGKILL
