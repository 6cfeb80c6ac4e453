"""``hbfuzz replay``, ``minimize`` and ``show`` on a bundle from a real etcd cluster.

ORACLE-INDUCED FINDING, not an etcd bug: etcd 3.4 has no known bug reachable
here, so to get an etcd bundle this test sets a deliberately over-strict oracle
with ``--set``: the election-safety invariant counting ``candidate`` instead of
``leader`` roles and keyed by the ``role`` state instead of ``term``
(``one-leader-per-term`` with ``leader = "candidate"``, ``term_key = "role"``),
i.e. "no two nodes ever stand for election", which any second election
violates. Isolating n1 for 2.5 s forces one whichever node leads (etcd 3.4 runs
without pre-vote: an isolated follower stands for election itself; an isolated
leader's followers elect a new one), so replaying the recorded concrete
``isolate n1`` keeps the finding (measured: 4 of 4 runs with it, 0 of 2 without
it; about 8 s a run). Padding steps after it (two 10 ms link delays, a wait)
give minimisation something to remove. What
is tested is the machinery on etcd bundles (a black-box Go binary: HB graph from
the mediator, roles from its logs), not etcd.

One module-scoped finding feeds the three tests: replay reports a rate and
stores it; minimize writes a bundle with at most the original's steps that
still fails and carries the trace, history and verdict of a run that confirmed
it; show renders both with the violation highlighted. Skipped, with the reason,
when etcd is not installed (targets/etcd/setup installs Debian's etcd-server).
"""

from __future__ import annotations

import shutil
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
TARGET = ROOT / "targets" / "etcd" / "target.toml"
STRICT = ('oracles.invariants=[{name = "one-leader-per-term", leader = "candidate", '
          'term_key = "role"}]')
SIGNATURE = "invariant/one-leader-per-term[STATE:role]"
STEPS = [("partition isolate n1", 2.5), ("link-delay n2->n3 10ms", 0.5), ("wait", 0.5),
         ("link-delay n3->n2 10ms", 0.5)]

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("etcd") is None,
                       reason="etcd is not installed (run targets/etcd/setup)"),
]


@pytest.fixture(scope="module")
def finding(request, tmp_path_factory) -> tuple[Path, object]:
    seed = _test_seed(request.node.nodeid)
    print(f"finding seed {seed}")
    cfg = load_config(TARGET, [STRICT])
    return finding_bundle(cfg, STEPS, tmp_path_factory.mktemp("etcd"), seed, want=SIGNATURE)


@pytest.fixture(scope="module")
def minimized(finding) -> tuple[int, dict]:
    path, _ = finding
    return hbfuzz_json("minimize", str(path), "--times", "1", "--measure", "2", "--verify", "1",
                       "--max-tries", "4")


def test_replay_of_an_etcd_bundle_reports_a_rate(finding):
    path, original = finding
    assert original.signature == SIGNATURE
    assert original.verdicts[0]["details"]["term"] == "candidate"  # the over-strict oracle
    rc, out = hbfuzz_json("replay", str(path), "--times", "2")
    assert out["runs"] == 2 and out["target"] == SIGNATURE
    assert rc == (1 if out["hits"] else 0)
    assert out["rate"] == out["hits"] / 2
    assert len(out["similarity"]) == 2 and all(0.0 <= s <= 1.0 for s in out["similarity"])
    stored = load_bundle(path)
    assert stored.replay["runs"] == 2 and stored.replay["rate"] == out["rate"]
    assert stored.schedule == original.schedule


def test_minimize_of_an_etcd_bundle_keeps_the_partition(finding, minimized):
    path, original = finding
    rc, res = minimized
    assert rc == 0, res
    minimal = load_bundle(Path(res["written"]))
    assert minimal.signature == SIGNATURE
    steps = minimal.schedule_obj().steps
    assert res["original_steps"] == len(STEPS) and res["minimal_steps"] == len(steps)
    assert 1 <= len(steps) <= len(STEPS)
    assert any(s.fault.to_text().split()[0] in ("partition", "link-drop") for s in steps), steps
    assert_kept_evidence(res)
    assert minimal.verdicts[0]["name"] == "one-leader-per-term"
    assert load_bundle(path).schedule == original.schedule  # the original is untouched


def test_show_renders_etcd_bundles(finding, minimized, tmp_path):
    path, original = finding
    d = assert_shows_the_violation(path, tmp_path / "original.html", SIGNATURE)
    assert len(d["servers"]) == 3 and d["counts"]["faults"] >= 1
    rc, res = minimized
    assert rc == 0, res
    m = assert_shows_the_violation(Path(res["written"]), tmp_path / "minimal.html", SIGNATURE)
    assert len(m["servers"]) == 3
