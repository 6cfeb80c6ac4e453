"""``--jobs 2`` on the Maelstrom primary-backup example (targets/maelstrom, pb_kv.py).

Two executions at once on one campaign: it finds the stale-read bug, both jobs
run executions, the Q-learning scheduler learns from both (one episode per
execution), fuzzer_stats shows per-job rates, SIGTERM stops it cleanly with
both executions in flight, and no node process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from campaign_helpers import PB_KV, ROOT, nodes_of, state_of, wait_gone

from fuzzer.campaign.outdir import CampaignDir
from fuzzer.campaign.stats import read_stats
from fuzzer.repro.bundle import load_bundle
from fuzzer.scheduler.base import loads_state

pytestmark = pytest.mark.slow


def test_two_jobs_find_the_bug_and_leave_nothing(tmp_path, python, procs, seed):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [python, "-m", "fuzzer", "run", *PB_KV, "-o", str(out), "--executions", "40",
           "--seed", str(seed), "--no-ui", "--jobs", "2", "--progress-interval", "1"]
    p = procs(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline and p.poll() is None:
        st = state_of(out)
        if st.get("findings") and st["progress"]["execs_done"] >= 3:
            break
        time.sleep(0.3)
    assert p.poll() is None, f"campaign ended early: {p.stderr.read().decode()[-2000:]}"
    st = state_of(out)
    assert st.get("findings"), "no finding within 75 s with 2 jobs"
    # both lanes busy now: stop cleanly in the middle of their executions
    both_busy = time.monotonic() + 10
    while time.monotonic() < both_busy and len({n for n in nodes_of(p.pid)}) < 2:
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 1, stderr.decode()[-2000:]
    assert "stopped: SIGTERM" in stdout.decode()
    assert wait_gone(p.pid) == [], "node processes survived the campaign"

    d = CampaignDir(out)
    st = d.load_state()
    done = st["progress"]["execs_done"]
    crashes = d.entries("crashes")
    assert crashes
    b = load_bundle(crashes[0][1])
    assert b.signature.startswith("workload:lin-kv/not-linearizable")
    assert b.schedule_obj().steps and b.trace and b.history
    stats = read_stats(d.stats_path)
    assert stats["jobs"] == "2"
    per_job = [int(stats[f"job{i}_execs_done"]) for i in range(2)]
    assert all(n >= 1 for n in per_job), per_job  # both jobs ran executions
    assert sum(per_job) + int(stats["exec_errors"]) == done  # every execution counted once
    assert float(stats["job0_execs_per_hour"]) > 0 and float(stats["execs_per_hour"]) > 0
    q = loads_state(d.scheduler_path.read_bytes())
    assert q["episodes"] == done - st["progress"]["exec_errors"]  # learned from every job
    assert q["updates"] >= done  # at least one transition per execution
    assert not list((out / ".work").glob("exec-*")), "scratch directories left behind"
