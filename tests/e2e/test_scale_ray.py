"""``--ray ADDRESS --jobs 2`` on a local Ray instance (2 CPUs, loopback only) that the
test starts: the campaign completes with the same directory structure as a local
one, and killing a Ray worker in the middle of an execution does not stop it.

Ray is an optional extra (``hbfuzz[ray]``): installed here when missing (bounded);
the tests skip, saying why, only if it cannot be installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from campaign_helpers import PB_KV, nodes_of, state_of, wait_gone

from fuzzer.campaign.outdir import CampaignDir
from fuzzer.campaign.stats import read_stats
from fuzzer.repro.bundle import load_bundle
from fuzzer.scheduler.base import loads_state

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = {"campaign.toml", "coverage.bin", "crashes", "fuzzer_stats", "hangs", "plot_data",
          "queue", "scheduler", "state.msgpack", "traces"}

pytestmark = pytest.mark.slow


def _import_ray():
    try:
        import ray
    except ImportError:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "ray"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f"Ray (hbfuzz[ray]) is not installed and cannot be: "
                        f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        import ray
    return ray


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance with 2 CPUs bound to 127.0.0.1 (no dashboard)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read at import: loopback only
    ray = _import_ray()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()


def _campaign(python, out, address, seed, executions):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    return [python, "-m", "fuzzer", "run", *PB_KV, "-o", str(out), "--executions",
            str(executions), "--seed", str(seed), "--no-ui", "--jobs", "2", "--ray", address,
            "--progress-interval", "2"], env


def _ray_workers() -> dict[int, bytes]:
    """pid -> cmdline of Ray worker processes running an hbfuzz execution."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::run_remote"):
            out[int(d.name)] = cmd
    return out


def test_ray_campaign_completes_with_the_same_layout(tmp_path, python, ray_address, seed):
    out = tmp_path / "out"
    cmd, env = _campaign(python, out, ray_address, seed, 4)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
                       start_new_session=True)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    assert "4 executions" in r.stdout, r.stdout[-2000:]
    assert {p.name for p in out.iterdir()} == LAYOUT
    d = CampaignDir(out)
    st = d.load_state()
    assert st["progress"]["execs_done"] == 4 and st["progress"]["exec_errors"] == 0
    assert st["queue"], "no queue entry from remote novelty"
    stats = read_stats(d.stats_path)
    assert stats["jobs"] == "2" and stats["jobs_where"].startswith("ray")
    assert int(stats["job0_execs_done"]) + int(stats["job1_execs_done"]) == 4
    assert int(stats["hb_coverage"]) > 0 and int(stats["ray_results"]) == 4
    assert float(stats["ray_driver_us_per_window"]) > 0
    q = loads_state(d.scheduler_path.read_bytes())
    assert q["episodes"] == 4 and q["updates"] >= 4  # remote transitions learned here
    for _, path in d.entries("crashes"):  # remote findings arrive as valid bundles
        b = load_bundle(path)
        assert b.signature.startswith("workload:lin-kv/") and b.trace and b.history


def test_killing_a_ray_worker_does_not_stop_the_campaign(tmp_path, python, procs,
                                                         ray_address, seed):
    out = tmp_path / "out"
    cmd, env = _campaign(python, out, ray_address, seed, 5)
    p = procs(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and p.poll() is None:
        for pid in _ray_workers():
            if nodes_of(pid):  # its execution's cluster is up: mid-run
                victim = pid
                break
        time.sleep(0.2)
    assert victim is not None, "no Ray worker ran an execution within 60 s"
    os.kill(victim, signal.SIGKILL)
    assert wait_gone(victim) == [], "the killed worker's cluster survived it"
    stdout, stderr = p.communicate(timeout=150)
    assert p.returncode in (0, 1), stderr.decode()[-3000:]
    st = state_of(out)
    prog = st["progress"]
    assert prog["execs_done"] == 5, stdout.decode()[-2000:]
    assert prog["exec_errors"] >= 1  # the lost execution, counted
    assert prog["execs_done"] - prog["exec_errors"] >= 3  # and the campaign went on
    assert "Ray worker lost" in (out / "errors.log").read_text()
