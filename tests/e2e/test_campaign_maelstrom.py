"""A real campaign on the Maelstrom primary-backup example (targets/maelstrom, pb_kv.py).

It finds the stale-read bug, writes a bundle, fuzzer_stats and plot_data; killed
with SIGKILL it leaves no node behind and a consistent directory; resumed, it keeps
its findings and its Q-table. SIGTERM stops a campaign cleanly with a summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from campaign_helpers import PB_KV, ROOT, nodes_of, state_of, wait_gone

from fuzzer.campaign.outdir import CampaignDir
from fuzzer.campaign.stats import read_plot, read_stats
from fuzzer.repro.bundle import load_bundle
from fuzzer.scheduler.base import loads_state

REQUIRED = ("start_time", "last_update", "run_time", "execs_done", "execs_per_hour",
            "hb_coverage", "code_edges", "corpus_count", "saved_crashes", "saved_hangs",
            "unique_findings", "last_find", "stability", "policy_entropy", "scheduler", "seed",
            "target", "command_line")

pytestmark = pytest.mark.slow


def _hbfuzz(python: str, *args: str) -> list[str]:
    return [python, "-m", "fuzzer", *args]


def test_campaign_finds_bug_survives_sigkill_and_resumes(tmp_path, python, procs, seed):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = _hbfuzz(python, "run", *PB_KV, "-o", str(out), "--executions", "8",
                  "--seed", str(seed), "--no-ui")
    p = procs(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # run until a finding is committed, then SIGKILL the fuzzer (only the fuzzer: its
    # watchdog must take the cluster down)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and p.poll() is None:
        st = state_of(out)
        if st.get("findings"):
            break
        time.sleep(0.3)
    assert p.poll() is None, f"campaign ended early: {p.stderr.read().decode()[-2000:]}"
    assert state_of(out).get("findings"), "no finding within 150 s"
    time.sleep(1.0)  # somewhere inside the next execution
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert wait_gone(p.pid) == [], "node processes survived the fuzzer's SIGKILL"

    # the directory is consistent
    d = CampaignDir(out)
    st = d.load_state()
    crashes = d.entries("crashes")
    assert len(crashes) >= 1
    bundles = {path.name: load_bundle(path) for _, path in crashes}
    b = next(iter(bundles.values()))
    assert b.kind == "safety" and b.signature.startswith("workload:lin-kv/not-linearizable")
    assert b.schedule_obj().steps and b.history and b.trace and b.choices
    assert b.config["target"]["name"] == "maelstrom" and b.versions["hbfuzz"]
    stats = read_stats(d.stats_path)
    assert set(REQUIRED) <= set(stats)
    assert read_plot(d.plot_path)
    q_before = loads_state(d.scheduler_path.read_bytes())
    done_before = st["progress"]["execs_done"]
    counts_before = {r[1]: r[4] for r in st["findings"]}

    # resume: one more execution; nothing found before is lost, the Q-table is kept
    r = subprocess.run(_hbfuzz(python, "run", "--resume", str(out), "--executions", "1",
                               "--no-ui"), cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120, start_new_session=True)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "findings: " in r.stdout
    st2 = d.load_state()
    assert st2["progress"]["execs_done"] == done_before + 1
    for sig, count in counts_before.items():
        assert any(x[1] == sig and x[4] >= count for x in st2["findings"])
    assert {p.name for _, p in d.entries("crashes")} >= set(bundles)
    q_after = loads_state(d.scheduler_path.read_bytes())
    assert set(q_before["signatures"]) <= set(q_after["signatures"])
    assert q_after["episodes"] == q_before["episodes"] + 1

    # stats and plot
    r = subprocess.run(_hbfuzz(python, "stats", str(out), "--json"), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["stats"]["execs_done"] == done_before + 1 and doc["findings"]
    assert doc["stats"]["seed"] == seed
    r = subprocess.run(_hbfuzz(python, "plot", str(out), "-o", str(tmp_path / "p.png")),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_stops_cleanly_with_a_summary(tmp_path, python, procs, seed):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = procs(_hbfuzz(python, "run", *PB_KV, "-o", str(out), "--duration", "10m",
                      "--seed", str(seed), "--no-ui", "--scheduler", "random"),
              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not nodes_of(p.pid):
        time.sleep(0.2)
    assert nodes_of(p.pid), "the first execution did not start"
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode in (0, 1), stderr.decode()[-2000:]
    assert b"(stopped: SIGTERM)" in stdout
    assert wait_gone(p.pid, timeout=5) == []
    assert CampaignDir(out).load_state() is not None
