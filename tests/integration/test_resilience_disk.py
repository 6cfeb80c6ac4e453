"""Disk full and read-only output directory (issue 8): a clear error, a clean stop, nothing
saved corrupted.

Real file systems, no injected errors: the campaign directory lives on a small
tmpfs mounted for the test (we run as root; the test skips with the reason if
mounting is not permitted). A pb_kv campaign first runs until it has a finding,
then stops (SIGTERM). Then:

* read-only: the tmpfs is remounted ``ro`` and ``--resume`` must exit 2 with one
  ``hbfuzz: error:`` line naming the directory, no traceback, no process left,
  every file byte-identical;
* disk full: remounted ``rw``, resumed, and while it fuzzes the rest of the
  tmpfs is filled; the campaign must stop with exit 2 and one clear line, no
  process left; after freeing space every file saved before is byte-identical,
  the directory is consistent and ``--resume`` continues with the findings.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from resilience_helpers import (  # noqa: E402
    MARK,
    PB_KV,
    ROOT,
    check_dir,
    marked,
    wait_none_marked,
)

from fuzzer.campaign.outdir import CampaignDir  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def tmpfs(tmp_path):
    """A 24 MB tmpfs, unmounted after the test (skip if mount is not permitted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every saved file that must never change: bundles and queue entries."""
    return {str(p.relative_to(out)): p.read_bytes()
            for sub in ("crashes", "hangs", "queue") for p in (out / sub).iterdir()
            if not p.name.startswith(".tmp-")}


def _fill(mnt: Path) -> Path:
    """Fill the file system until ENOSPC (real writes, no injection)."""
    filler = mnt / "filler"
    chunk = b"\0" * (256 * 1024)
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        while True:  # the last few KB too
            try:
                f.write(b"\0" * 4096)
            except OSError:
                break
    return filler


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [x for x in stderr.splitlines() if x.startswith("hbfuzz: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_read_only_and_full_output_dir_stop_cleanly(tmpfs, python, procs, seed):
    out = tmpfs / "out"
    token = f"disk-{os.getpid()}-{seed}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", MARK: token}

    def run(*args: str, **kw):
        return procs([python, "-m", "fuzzer", "run", *args, "--no-ui"], cwd=ROOT, env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    # a campaign with a finding, stopped cleanly
    p = run(*PB_KV, "-o", str(out), "--seed", str(seed), "--duration", "10m")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and p.poll() is None:
        if (CampaignDir(out).load_state() or {}).get("findings"):
            break
        time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, err.decode()[-2000:]
    assert wait_none_marked(token) == []
    before = check_dir(out)
    assert before.bundles
    saved = _snapshot(out)

    # read-only: resume refuses with one clear line, exit 2, nothing touched
    r = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = run("--resume", str(out), "--executions", "1")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2, err.decode()[-2000:]
    line = _one_error_line(err.decode())
    print(line)
    assert str(out) in line and "read-only" in line.lower(), line
    assert wait_none_marked(token) == []
    assert _snapshot(out) == saved
    r = subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    # disk full while fuzzing: exit 2, one clear line, nothing saved before corrupted
    p = run("--resume", str(out), "--duration", "10m")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None and not [
            x for x in marked(token) if x != p.pid]:  # a node runs: an execution started
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()[1].decode()[-2000:]
    time.sleep(1.0)  # inside an execution
    filler = _fill(tmpfs)
    try:
        _, err = p.communicate(timeout=90)
    finally:
        filler.unlink()
    assert p.returncode == 2, err.decode()[-3000:]
    line = _one_error_line(err.decode())
    print(line)
    assert str(out) in line and "no space left" in line.lower(), line
    assert "campaign stopped" in line, line  # stopped while fuzzing, not at open
    assert wait_none_marked(token) == []
    after = check_dir(out)
    assert after.execs_done >= before.execs_done
    now = _snapshot(out)
    for name, data in saved.items():
        assert now.get(name) == data, f"{name} changed or vanished"

    # and the campaign continues with everything it had
    p = run("--resume", str(out), "--executions", "1")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err.decode()[-2000:]
    assert wait_none_marked(token) == []
    final = check_dir(out)
    assert final.execs_done >= after.execs_done + 1
    assert before.findings <= final.findings
    assert set(before.bundles.items()) <= set(final.bundles.items())


BROADCAST = [
    "targets/maelstrom/target.toml",
    "--set", "schedule.length=2",
    "--set", "schedule.step=0.5s",
    "--set", "faults.allowed=['partition', 'wait']",
]


def test_output_dir_made_read_only_while_fuzzing_stops_cleanly(tmp_path, python, procs, seed):
    """Read-only in the middle of a campaign: ``chattr +i`` on the campaign directory
    (root ignores permission bits; a ``remount,ro`` is refused while node logs are
    open). Every rename into the directory then fails with EPERM."""
    out = tmp_path / "out"
    token = f"ro-{os.getpid()}-{seed}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", MARK: token}
    p = procs([python, "-m", "fuzzer", "run", *BROADCAST, "-o", str(out), "--seed", str(seed),
               "--duration", "10m", "--no-ui", "--scheduler", "random"],
              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        st = CampaignDir(out).load_state() or {}
        if st.get("progress", {}).get("execs_done", 0) >= 1:
            break
        time.sleep(0.2)
    assert p.poll() is None, p.communicate()[1].decode()[-2000:]
    saved = _snapshot(out)
    r = subprocess.run(["chattr", "+i", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        p.kill()
        pytest.skip(f"chattr +i is not supported here: {r.stderr.strip()}")
    try:
        _, err = p.communicate(timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
    assert p.returncode == 2, err.decode()[-3000:]
    line = _one_error_line(err.decode())
    print(line)
    assert str(out) in line and "not permitted" in line.lower(), line
    assert wait_none_marked(token) == []
    view = check_dir(out)
    assert view.execs_done >= 1
    now = _snapshot(out)
    assert {k: v for k, v in now.items() if k in saved} == saved
