"""Resource trouble during a campaign (issue 8): the campaign keeps going, counts and
reports the problem, leaves no process behind and stays within its memory bound.

Real campaigns (``hbfuzz run`` subprocesses) on the Maelstrom broadcast example,
whose node is wrapped by a small script (written per test) that misbehaves:

* ``hang``: every node of the first execution hangs at start (never answers
  Maelstrom's init): that execution fails with a counted harness error
  (``exec_errors`` in fuzzer_stats, errors.log), its processes are gone, the
  following executions run normally;
* ``flood``: every node writes to stderr (its log) and junk lines to stdout (the
  protocol channel) as fast as it can: the node logs never exceed their cap,
  the campaign finishes its executions;
* ``events``: every node reports extra tracker events at ~10x the usual rate
  (the usual: ~150 events/s per node, measured on this target): executions keep
  completing, fuzzer_stats reports the event counts, and the fuzzer's RSS stays
  under RSS_BOUND_MB.

Plus ports in use, on a TCP target (pysyncobj): most of the allocator's port
range is bound by the test before the campaign starts; its executions still
run without harness errors (the allocator skips ports it cannot bind).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from resilience_helpers import MARK, ROOT, check_dir, wait_none_marked  # noqa: E402

from fuzzer.campaign.outdir import CampaignDir  # noqa: E402
from fuzzer.campaign.stats import read_stats  # noqa: E402
from fuzzer.cluster.ports import DEFAULT_RANGE, LOCK_DIR  # noqa: E402
from fuzzer.network.stdio_proc import LOG_CAP  # noqa: E402

pytestmark = pytest.mark.slow

NODES = ROOT / "targets" / "maelstrom" / "nodes"
USUAL_EVENTS_PER_S = 150  # per node, broadcast example (see the module docstring)
FLOOD_EVENTS_PER_S = 10 * USUAL_EVENTS_PER_S
RSS_BOUND_MB = 400  # the fuzzer process, documented in docs/reliability.md

WRAPPER = textwrap.dedent('''
    """A misbehaving wrapper around the broadcast node (resilience tests)."""
    import os, runpy, sys, threading, time

    MODE = os.environ.get("RESIL_MODE", "")
    EXEC_NO = int(os.environ.get("HBFUZZ_EXECUTION", "x0-0-0").split("-")[1])

    def flood_io():
        junk = b"this is not a maelstrom message " * 8 + b"\\n"
        blob = b"x" * 65536
        while True:
            os.write(2, blob)
            os.write(1, junk * 16)

    def flood_events(rate):
        import instrumentation as hb
        i = 0
        t0 = time.monotonic()
        while True:
            for _ in range(50):
                hb.event("flood", i=i)
                i += 1
            ahead = i / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)

    if MODE == "hang" and EXEC_NO == 1:
        while True:  # never ready: no answer to init
            time.sleep(3600)
    if MODE == "flood":
        threading.Thread(target=flood_io, daemon=True).start()
    if MODE == "events":
        rate = float(os.environ["RESIL_EVENT_RATE"])
        threading.Thread(target=flood_events, args=(rate,), daemon=True).start()
    sys.path.insert(0, NODES)
    sys.argv = [os.path.join(NODES, "broadcast.py")]
    runpy.run_path(sys.argv[0], run_name="__main__")
''')

BROADCAST = [
    "targets/maelstrom/target.toml",
    "--set", "schedule.length=2",
    "--set", "schedule.step=0.5s",
    "--set", "faults.allowed=['partition', 'wait']",
    "--set", "network.init_timeout=5s",  # generous: a loaded machine starts nodes slowly
]


def _wrapper(tmp_path: Path) -> Path:
    p = tmp_path / "wrapnode.py"
    p.write_text(f"NODES = {str(NODES)!r}\n" + WRAPPER)
    return p


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _execs(out: Path) -> int:
    try:
        return int((CampaignDir(out).load_state() or {}).get("progress", {}).get("execs_done", 0))
    except Exception:
        return 0


def _exec_alive(fuzzer_pid: int, exec_no: int) -> list[int]:
    """Processes of execution ``exec_no`` (1-based, this fuzzer process) still alive."""
    tag = f"HBFUZZ_EXECUTION=x{fuzzer_pid}-{exec_no}-".encode()
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if tag in (d / "environ").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


class Watch:
    """Samples the fuzzer while it runs: RSS, node log sizes, leftover processes."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.max_rss = 0.0
        self.max_log = 0
        self.leaked: list[int] = []

    def sample(self) -> None:
        self.max_rss = max(self.max_rss, _rss_mb(self.pid))
        work = self.out / ".work"
        for p in work.glob("exec-*/nodes/*.log*") if work.is_dir() else []:
            try:
                self.max_log = max(self.max_log, p.stat().st_size)
            except OSError:
                pass
        # once execution k+1 has been committed, nothing of execution k+1 may be alive
        # (the campaign's k-th execution runs as the fuzzer process's execution k+1)
        done = _execs(self.out)
        for k in range(1, done):
            self.leaked += _exec_alive(self.pid, k)


def _run(python, procs, tmp_path, env_extra, args, timeout=150):
    out = tmp_path / "out"
    token = f"res-{os.getpid()}-{tmp_path.name}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", MARK: token, **env_extra}
    err_path = tmp_path / "fuzzer.err"
    with open(err_path, "wb") as err:
        p = procs([python, "-m", "fuzzer", "run", *args, "-o", str(out), "--no-ui"],
                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    w = Watch(p.pid, out)
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        w.sample()
        time.sleep(0.25)
    assert p.poll() is not None, "the campaign did not finish within its bound"
    assert wait_none_marked(token) == [], "processes survived the campaign"
    stderr = err_path.read_text(errors="replace")
    return p.returncode, out, w, stderr


def test_node_hanging_at_start_is_a_counted_error_and_the_campaign_goes_on(
        tmp_path, python, procs, seed):
    node = _wrapper(tmp_path)
    rc, out, w, stderr = _run(python, procs, tmp_path, {"RESIL_MODE": "hang"},
                              [*BROADCAST, "--set", f"target.node={node}", "--executions", "3",
                               "--seed", str(seed), "--scheduler", "random"])
    assert rc in (0, 1), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    stats = read_stats(out / "fuzzer_stats")
    assert int(stats["execs_done"]) == 3
    assert int(stats["exec_errors"]) == 1, stats
    assert float(stats["stability"].rstrip("%")) < 100.0
    errors = (out / "errors.log").read_text()
    assert "exec 0" in errors and "init" in errors.lower(), errors[-2000:]
    assert w.leaked == [], f"processes of a failed execution outlived it: {w.leaked}"
    check_dir(out)


def test_node_flooding_stdout_and_stderr_is_capped_and_the_campaign_goes_on(
        tmp_path, python, procs, seed):
    node = _wrapper(tmp_path)
    rc, out, w, stderr = _run(python, procs, tmp_path, {"RESIL_MODE": "flood"},
                              [*BROADCAST, "--set", f"target.node={node}", "--executions", "2",
                               "--seed", str(seed), "--scheduler", "random"])
    assert rc in (0, 1), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    stats = read_stats(out / "fuzzer_stats")
    assert int(stats["execs_done"]) == 2
    assert w.max_log > 0, "the flood never reached a node log"
    assert w.max_log <= LOG_CAP, f"a node log grew to {w.max_log} bytes (cap {LOG_CAP})"
    assert w.max_rss < RSS_BOUND_MB, f"fuzzer RSS {w.max_rss:.0f} MB"
    assert w.leaked == []
    print(f"flood: max node log {w.max_log} B, fuzzer RSS max {w.max_rss:.0f} MB, "
          f"exec_errors {stats['exec_errors']}, fuzzer stderr {len(stderr)} B")


def test_node_reporting_events_at_10x_is_counted_and_memory_stays_bounded(
        tmp_path, python, procs, seed):
    node = _wrapper(tmp_path)
    rc, out, w, stderr = _run(python, procs, tmp_path,
                              {"RESIL_MODE": "events", "RESIL_EVENT_RATE": str(FLOOD_EVENTS_PER_S)},
                              [*BROADCAST, "--set", f"target.node={node}", "--executions", "3",
                               "--seed", str(seed), "--scheduler", "random"])
    assert rc in (0, 1), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    stats = read_stats(out / "fuzzer_stats")
    assert int(stats["execs_done"]) == 3
    assert int(stats["exec_errors"]) == 0, (out / "errors.log").read_text()[-2000:]
    # reported: the flood shows in the event counts (3 nodes x the flood rate x seconds)
    per_exec = int(stats["events_max_exec"])
    assert per_exec > 3 * FLOOD_EVENTS_PER_S, stats
    assert int(stats["events_received"]) >= per_exec
    assert "events_dropped" in stats
    assert w.max_rss < RSS_BOUND_MB, f"fuzzer RSS {w.max_rss:.0f} MB over {RSS_BOUND_MB} MB"
    assert w.leaked == []
    print(f"events x10: max {per_exec} events/exec, dropped {stats['events_dropped']}, "
          f"fuzzer RSS max {w.max_rss:.0f} MB")


@pytest.fixture
def busy_ports(rng):
    """Bind most of the port allocator's range (taking each port's lease while binding,
    so no other test's leased port is ever stolen; released at once, the bind stays)."""
    lo, hi = DEFAULT_RANGE
    want = int((hi - lo) * 0.8)
    socks: list[socket.socket] = []
    os.makedirs(LOCK_DIR, exist_ok=True)
    for port in rng.sample(range(lo, hi), want):
        fd = os.open(os.path.join(LOCK_DIR, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # leased by someone else: theirs
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        finally:
            os.close(fd)  # releases the lease; our bind keeps the port unusable
    try:
        yield len(socks)
    finally:
        for s in socks:
            s.close()


def test_campaign_keeps_going_when_most_ports_are_in_use(tmp_path, python, procs, seed,
                                                          busy_ports):
    lo, hi = DEFAULT_RANGE
    assert busy_ports > (hi - lo) // 2
    rc, out, w, stderr = _run(python, procs, tmp_path, {},
                              ["targets/pysyncobj/target.toml", "--set", "schedule.length=2",
                               "--set", "schedule.step=0.5s", "--executions", "2",
                               "--seed", str(seed), "--scheduler", "random"], timeout=200)
    assert rc in (0, 1), stderr[-3000:]
    stats = read_stats(out / "fuzzer_stats")
    assert int(stats["execs_done"]) == 2
    errors = (out / "errors.log").read_text() if (out / "errors.log").exists() else ""
    assert int(stats["exec_errors"]) == 0, errors[-2000:]
    assert not re.search(r"could not lease", errors)
    assert w.leaked == []
