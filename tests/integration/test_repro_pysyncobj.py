"""``hbfuzz replay``, ``minimize`` and ``show`` on a real PySyncObj 0.3.11 finding.

The finding is a real bug of the release, not an oracle artefact: a leader's view
of a follower's match index goes backwards within a term
(``invariant/match-index-monotonic``) when that follower's replies are delayed
400 ms. The delay is the first step; the padding after it (a 10 ms delay on
another link, a wait, a 10 ms clock skew) is not needed, so minimisation has
something to remove. The bug step comes first because recorded message fates
are keyed by per-link sequence number, so they only line up with the faults
that caused them while the steps before those faults are kept (a candidate
whose delay step moved earlier was measured to give a different finding,
``monotonic(commit_index)``, in most runs, with those fates fed back).
Measured on this machine: most executions of such schedules give the finding
(3-5 s each), but a fresh-clone CI run once got none in 3 (HBFUZZ_TEST_SEED=
2188501519), so the fixture tries up to 6 and minimize measures the rate over 3
runs when the bundle has none; with ``--times 2`` minimisation went from 4 steps
to 1 or 2 in each of three runs of this module (40-60 s).

One module-scoped finding feeds the four tests: replay reports a rate and
stores it; minimize writes a bundle with at most the original's steps, which
still fails and carries the trace, history, verdict and choices of a run that
confirmed it; show renders the original and the minimal bundle with the
violation highlighted; the minimal bundle replays with that run's delivery
order enforced. Real nodes (the 0.3.11 virtualenv built by the target's setup),
real TCP mediator, real gRPC tracker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import _test_seed
from repro_helpers import (
    assert_kept_evidence,
    assert_shows_the_violation,
    finding_bundle,
    hbfuzz_json,
)

from fuzzer.config import load_config
from fuzzer.repro.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import envs  # noqa: E402

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
TARGET = ROOT / "targets" / "pysyncobj" / "target.toml"
VERSION = "0.3.11"
BUG = "invariant/match-index-monotonic"
STEPS = [("link-delay n2->n1,n2,n3 400ms", 0.75), ("link-delay n1->n3 10ms", 0.75),
         ("wait", 0.75), ("clock-skew n3 +10ms", 0.75)]


@pytest.fixture(scope="module")
def finding(request, tmp_path_factory) -> tuple[Path, object]:
    envs.ensure(VERSION)  # built once per machine by the target's setup (ignored directory)
    seed = _test_seed(request.node.nodeid)
    print(f"finding seed {seed}")
    cfg = load_config(TARGET, [f"target.version={VERSION}"])
    return finding_bundle(cfg, STEPS, tmp_path_factory.mktemp("pysyncobj"), seed, want=BUG,
                         tries=6)


@pytest.fixture(scope="module")
def minimized(finding) -> tuple[int, dict]:
    path, _ = finding
    return hbfuzz_json("minimize", str(path), "--times", "2", "--measure", "3", "--verify", "2",
                       "--max-tries", "4")


def test_replay_reports_a_rate_and_stores_it(finding):
    path, original = finding
    rc, out = hbfuzz_json("replay", str(path), "--times", "2")
    assert out["runs"] == 2 and out["target"] == original.signature
    assert rc == (1 if out["hits"] else 0)
    assert 0.0 <= out["rate"] <= 1.0 and out["rate"] == out["hits"] / 2
    assert len(out["similarity"]) == 2 and all(0.0 <= s <= 1.0 for s in out["similarity"])
    stored = load_bundle(path)
    assert stored.replay["runs"] == 2 and stored.replay["rate"] == out["rate"]
    assert stored.schedule == original.schedule and stored.trace == original.trace


def test_minimize_writes_a_smaller_bundle_that_still_fails(finding, minimized):
    path, original = finding
    rc, res = minimized
    assert rc == 0, res  # 3 = never reproduced: the bug is reproducible, so a failure
    written = Path(res["written"])
    assert written.parent == path.parent and written != path
    minimal = load_bundle(written)
    assert minimal.signature == original.signature
    assert minimal.config["target"]["version"] == VERSION
    steps = minimal.schedule_obj().steps
    assert res["original_steps"] == len(STEPS) and res["minimal_steps"] == len(steps)
    assert len(steps) <= len(STEPS)
    assert any(s.fault.to_text().startswith("link-delay n2->") for s in steps), steps
    # still fails: a run of this exact minimal schedule reproduced the finding, and the
    # bundle keeps that run's trace, history and verdict
    assert_kept_evidence(res)
    assert minimal.verdicts[0]["name"] == "match-index-monotonic"
    assert len(minimal.trace) == res["evidence"]["events"]
    assert load_bundle(path).schedule == original.schedule  # the original is untouched


def test_show_renders_the_original_and_the_minimal_bundle(finding, minimized, tmp_path):
    path, original = finding
    d = assert_shows_the_violation(path, tmp_path / "original.html", original.signature)
    assert len(d["servers"]) == 3
    rc, res = minimized
    assert rc == 0, res
    m = assert_shows_the_violation(Path(res["written"]), tmp_path / "minimal.html",
                                   original.signature)
    assert len(m["servers"]) == 3
    assert (tmp_path / "minimal.html").read_text().count("link-delay n2-&gt;") >= 1


def test_the_minimal_bundle_replays_the_run_it_shows(finding, minimized):
    rc, res = minimized
    assert rc == 0, res
    written = Path(res["written"])
    minimal = load_bundle(written)
    assert minimal.choices_obj().order  # the verifying run's delivery order came with it
    rc, out = hbfuzz_json("replay", str(written), "--times", "1")
    assert out["runs"] == 1 and out["target"] == minimal.signature
    assert rc == (1 if out["hits"] else 0)
    assert out["order"]["active"] and out["order"]["known"] > 0  # its order was enforced
    assert len(out["similarity"]) == 1  # compared with the trace the bundle shows
