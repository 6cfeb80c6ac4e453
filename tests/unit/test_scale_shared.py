"""Parallel jobs' shared state: per-job coverage views over one global map, worker
deltas merged on the driver, and per-job scheduler state on one shared scheduler."""

from __future__ import annotations

import random

import numpy as np

from fuzzer.campaign.setup import action_space_for
from fuzzer.campaign.shared import (
    CoverageDelta,
    JobCoverage,
    RecordingCoverage,
    SchedulerSlot,
    merge_delta,
)
from fuzzer.config import load_config
from fuzzer.scheduler import make_scheduler
from fuzzer.tracker.coverage import HBCoverage
from instrumentation import protocol as p
from instrumentation.protocol import Event


def events(rng: random.Random, n: int, name: str = "n1") -> list[Event]:
    """A random run of one node: role changes, states, locals, coverage edges."""
    out = []
    for seq in range(1, n + 1):
        r = rng.random()
        if r < 0.2:
            f = ("role", rng.choice(["leader", "follower", "candidate"]))
            kind = p.STATE
        elif r < 0.5:
            f = ("term", rng.randrange(6))
            kind = p.STATE
        elif r < 0.9:
            f = (rng.choice(["tick", "vote", "append", "commit", "apply"]), {})
            kind = p.LOCAL
        else:
            f = ([rng.randrange(50)],)
            kind = p.COVERAGE
        out.append(Event(name, seq, seq, 0, seq, kind, f))
    return out


def window(cov: HBCoverage, evs: list[Event]):
    cov.new_execution()
    cov.open_window()
    for e in evs:
        cov.observe(e)
    return cov.close_window()


def test_job_views_share_novelty_campaign_wide(rng):
    glob = HBCoverage()
    a, b = JobCoverage(glob), JobCoverage(glob)
    run = events(rng, 200)
    first = window(a, run)
    assert first.new_hb > 0 and first.new_edges > 0
    again = window(b, run)  # another job seeing the same behaviour: nothing new
    assert again.new_hb == 0 and again.new_edges == 0
    assert glob.hb_coverage() == first.hb_total == again.hb_total
    assert glob.code_edges() == first.edges_total
    # the campaign's map is exactly what one coverage seeing the run would hold
    solo = HBCoverage()
    window(solo, run)
    assert np.array_equal(solo.seen_map(), glob.seen_map())


def test_worker_deltas_merge_to_the_same_map_and_novelty(rng):
    runs = [events(rng, 150) for _ in range(4)]
    solo = HBCoverage()
    expected = [window(solo, r) for r in runs]
    # two "workers" from the same (empty) snapshot, each seeing two runs
    glob = HBCoverage()
    got = []
    for part in (runs[:2], runs[2:]):
        w = RecordingCoverage.from_snapshot(glob.to_bytes())
        for r in part:
            window(w, r)
        assert len(w.deltas) == len(part)  # one delta per closed window
        got.extend(merge_delta(glob, d) for d in w.deltas)
    assert np.array_equal(glob.seen_map(), solo.seen_map())
    assert glob.code_edges() == solo.code_edges()
    # novelty is recomputed against the global map: never more than the worker saw
    assert sum(n.new_hb for n in got) == sum(e.new_hb for e in expected)
    assert merge_delta(glob, w.deltas[-1]).new_hb == 0  # merging twice adds nothing


def test_delta_round_trips_and_rejects_garbage():
    d = CoverageDelta(np.array([1, 7], "<u4").tobytes(), bytes([1, 2]), (5,))
    assert CoverageDelta.from_list(d.to_list()) == d
    import pytest

    from fuzzer.errors import InputError

    with pytest.raises(InputError):
        CoverageDelta.from_list([b"\x00" * 3, b"\x01", []])
    with pytest.raises(InputError):
        merge_delta(HBCoverage(), CoverageDelta(np.array([1 << 20], "<u4").tobytes(), b"\x01"))


def test_slots_keep_interleaved_power_executions_apart(seed):
    cfg = load_config("targets/maelstrom/target.toml")
    actions = action_space_for(cfg)

    def plan(s, slot, rng_seed):
        with slot.active():
            s.begin_execution(random.Random(rng_seed))
        return slot

    solo = make_scheduler("power", actions, {}, 6, 1.0)
    expect = []
    for k in (1, 2):
        solo.begin_execution(random.Random(seed + k))
        expect.append([solo.next_step(0).to_text() for _ in range(6)])
    shared = make_scheduler("power", actions, {}, 6, 1.0)
    slots = [plan(shared, SchedulerSlot(shared), seed + k) for k in (1, 2)]
    got: list[list[str]] = [[], []]
    for _ in range(6):  # interleaved, step by step
        for i, slot in enumerate(slots):
            with slot.active() as s:
                got[i].append(s.next_step(0).to_text())
    assert got == expect
