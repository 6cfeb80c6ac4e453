"""SIGKILL of the fuzzer at random moments, again and again, on one campaign (issue 8).

A short Maelstrom pb_kv campaign first runs until it has committed a finding.
Then, KILLS times, ``hbfuzz run --resume OUT`` is started and SIGKILLed (the
fuzzer only: its watchdog and PDEATHSIG must take the cluster down) at a
moment drawn from the test's ``rng``: mostly at a random time 1-6 s after the
start (start-up, opening and adopting, mid-execution, teardown), and
AFTER_EXEC times 0-0.5 s after an execution's commit (the next execution's
start, the trace and stats writes). After every kill:

* within a bounded wait no process carrying the test's environment marker
  is alive (nodes, their helpers, the reaper);
* the directory is consistent: fuzzer_stats parses with all keys, plot_data
  is CSV with the right header, every bundle loads, every queue entry parses
  as a schedule, nothing but ``.tmp-*`` files beside the entries;
* ``execs_done`` never goes backwards, every bundle seen before is still
  there with the same signature, every committed finding stays committed.

At the end a resumed session runs one execution to completion (exit 1:
findings), and one saved bundle is replayed once to a verdict.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from resilience_helpers import MARK, PB_KV, ROOT, check_dir, marked, wait_none_marked

from fuzzer.campaign.outdir import CampaignDir

pytestmark = pytest.mark.slow

KILLS = 20


AFTER_EXEC = 3  # of the kills, right after an execution's commit; the others at random


def _state(out: Path) -> dict:
    try:
        return CampaignDir(out).load_state() or {}
    except Exception:
        return {}


def _committed_findings(out: Path) -> int:
    return len(_state(out).get("findings", []))


def _execs(out: Path) -> int:
    return int(_state(out).get("progress", {}).get("execs_done", 0))


def test_sigkill_at_random_moments_keeps_the_campaign(tmp_path, python, procs, seed, rng):
    out = tmp_path / "out"
    token = f"kill9-{os.getpid()}-{seed}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", MARK: token}
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(i: int, first: bool = False):
        args = ([*PB_KV, "-o", str(out), "--seed", str(seed)] if first
                else ["--resume", str(out)])
        err = open(logs / f"session-{i:02d}.err", "wb")  # noqa: SIM115
        p = procs([python, "-m", "fuzzer", "run", *args, "--duration", "10m", "--no-ui"],
                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        return p

    def tail(i: int) -> str:
        return (logs / f"session-{i:02d}.err").read_text(errors="replace")[-2000:]

    # session 0: until a finding is committed (bounded), then the first kill
    p = start(0, first=True)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and p.poll() is None and not _committed_findings(out):
        time.sleep(0.3)
    assert p.poll() is None, f"campaign ended early: {tail(0)}"
    assert _committed_findings(out), "no finding within 150 s"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert wait_none_marked(token) == [], "processes survived the first SIGKILL"
    view = check_dir(out)
    assert view.bundles and view.findings
    first_view = view
    moments = []

    after_exec = set(rng.sample(range(1, KILLS + 1), AFTER_EXEC))
    for i in range(1, KILLS + 1):
        mode = "after-exec" if i in after_exec else "random"
        p = start(i)
        if mode == "random":
            delay = rng.uniform(1.0, 6.0)
            time.sleep(delay)
        else:  # right after the next execution's commit (bounded), plus a random offset
            delay = rng.uniform(0.0, 0.5)
            n0 = max(_execs(out), view.execs_done)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and p.poll() is None and _execs(out) <= n0:
                time.sleep(0.05)
            time.sleep(delay)
        assert p.poll() is None, f"session {i} ended before its kill: {tail(i)}"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        moments.append((mode, round(delay, 2)))
        left = wait_none_marked(token)
        assert left == [], f"kill {i} ({mode}, {delay:.2f}s): processes survived: {left}"

        now = check_dir(out)
        assert now.execs_done >= view.execs_done, f"kill {i}: execs_done went backwards"
        for name, sig in view.bundles.items():
            assert now.bundles.get(name) == sig, f"kill {i}: bundle {name} lost or changed"
        # the state may lag the files by one execution (adopted on resume), never lose one
        assert view.findings <= now.findings, f"kill {i}: a committed finding was lost"
        assert view.queue <= now.queue, f"kill {i}: a queue entry was lost"
        view = now

    # a last session runs one execution to its end: resume works and keeps everything
    r = subprocess.run([python, "-m", "fuzzer", "run", "--resume", str(out), "--executions",
                        "1", "--no-ui"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120, start_new_session=True)
    assert wait_none_marked(token) == []
    assert r.returncode == 1, r.stderr[-2000:]
    final = check_dir(out)
    assert final.execs_done == view.execs_done + 1
    assert set(view.bundles.items()) <= set(final.bundles.items())
    assert set(view.bundles.values()) <= final.findings, "an adopted bundle is not committed"
    assert first_view.findings <= final.findings

    # one finding saved before the kills is replayed to a verdict
    name = sorted(first_view.bundles)[0]
    bundle = out / "crashes" / name
    r = subprocess.run([python, "-m", "fuzzer", "replay", str(bundle), "--times", "1", "--json"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
                       start_new_session=True)
    assert wait_none_marked(token) == []
    assert r.returncode in (0, 1), r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(report["per_run"]) == 1 and report["target"] == first_view.bundles[name]
    assert (r.returncode == 1) == (report["target"] in report["per_run"][0])
    print(f"kill moments: {moments}; execs {first_view.execs_done} -> {final.execs_done}; "
          f"bundles {len(final.bundles)}; replay exit {r.returncode}")
    assert not marked(token)
