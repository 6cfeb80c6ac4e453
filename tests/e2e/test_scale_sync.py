"""``--sync-dir``: two independent campaigns exchange queue entries and findings.

Campaign ``a`` (secondary, Q-learning) fuzzes the Maelstrom primary-backup example
until it has a finding and exports into ``DIR/a``; campaign ``b`` (main, power
scheduler) then imports a's queue entries as seeds of its power scheduler and a's
findings (deduplicated by signature) into its own ``crashes/``; ``a`` run again
imports ``b``'s queue entries and never its findings (a secondary).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from campaign_helpers import PB_KV

from fuzzer.campaign.outdir import CampaignDir
from fuzzer.campaign.stats import read_stats
from fuzzer.repro.bundle import load_bundle
from fuzzer.scheduler.base import loads_state

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(python, *args, timeout=90):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([python, "-m", "fuzzer", "run", *PB_KV, "--no-ui", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def test_two_campaigns_sync_queue_and_findings(tmp_path, python, seed):
    sync = tmp_path / "sync"
    a, b = tmp_path / "a", tmp_path / "b"
    r = _run(python, "-o", str(a), "--executions", "4", "--seed", str(seed),
             "--sync-dir", str(sync), "-S", "a")
    assert r.returncode == 1, f"campaign a found nothing: {r.stdout[-1500:]}{r.stderr[-1500:]}"
    da = CampaignDir(a)
    a_queue = [p.name for _, p in da.entries("queue")]
    a_crashes = [p for _, p in da.entries("crashes")]
    assert a_queue and a_crashes
    assert sorted(p.name for p in (sync / "a" / "queue").iterdir()) == sorted(a_queue)
    assert (sync / "a" / ".role").read_text().strip() == "secondary"

    r = _run(python, "-o", str(b), "--executions", "1", "--seed", str(seed + 1),
             "--scheduler", "power", "--sync-dir", str(sync), "-M", "b")
    assert r.returncode == 1, r.stderr[-2000:]  # a's finding is b's now
    db = CampaignDir(b)
    stats = read_stats(db.stats_path)
    assert int(stats["sync_imported_queue"]) == len(a_queue)
    assert int(stats["sync_imported_findings"]) == len(a_crashes)
    a_sigs = {load_bundle(p).signature for p in a_crashes}
    b_sigs = {load_bundle(p).signature for _, p in db.entries("crashes")}
    assert a_sigs <= b_sigs
    assert len(b_sigs) == len(db.entries("crashes"))  # one bundle per signature
    assert (b / ".synced" / "a").read_text().strip() == str(max(
        int(n.split(",")[0].split(":")[1]) for n in a_queue))
    power = loads_state(db.scheduler_path.read_bytes())
    queued = {text for _, text, *_ in power["queue"]}
    a_texts = {(a / "queue" / n).read_text() for n in a_queue}
    assert {t.split("\n", 2)[2] for t in a_texts} <= {t.split("\n", 2)[2] for t in queued}

    # a again (resumed): imports b's queue entries, not its findings (a secondary)
    before = len(da.entries("crashes"))
    r = _run(python, "--resume", str(a), "--executions", "1", "--sync-dir", str(sync), "-S", "a")
    assert r.returncode in (0, 1), r.stderr[-2000:]
    sa = read_stats(da.stats_path)
    b_queue = [p for p in (sync / "b" / "queue").iterdir()]
    assert int(sa["sync_imported_queue"]) == len(b_queue)
    assert int(sa["sync_imported_findings"]) == 0
    assert len(da.entries("crashes")) <= before + 1  # only its own new ones, if any
