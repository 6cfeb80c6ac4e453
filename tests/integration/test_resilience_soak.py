"""The soak script's judgement (scripts/soak.py): leaks and slow-downs are caught, noise is not.

The soak itself runs for 10 minutes to an hour (a benchmark, not a test); its
rules are pure functions of the samples, tested here on synthetic series drawn
from the test's ``rng``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = mod  # dataclasses look their module up while executing it
    spec.loader.exec_module(mod)
    return mod


def _series(soak, rng, n=40, dt=60.0, rss_per_h=0.0, fds_per_h=0.0):
    out = []
    for i in range(n):
        t = i * dt
        out.append(soak.Sample(t, 70.0 + rss_per_h * t / 3600 + rng.uniform(-1, 1),
                               int(50 + fds_per_h * t / 3600 + rng.choice([0, 0, -1])), 13,
                               4, 0.5 + 0.0001 * i, i * 5))
    return out


def _done(rng, seconds, every):
    t, out = 0.0, []
    while t < seconds:
        t += every * rng.uniform(0.9, 1.1)
        out.append(t)
    return out


def test_slope_per_hour_is_least_squares(soak):
    assert soak.slope_per_hour([0, 1800, 3600], [10, 20, 30]) == pytest.approx(20.0)
    assert soak.slope_per_hour([5], [1]) == 0.0


def test_flat_run_passes(soak, rng):
    s = _series(soak, rng)
    v = soak.judge(s, _done(rng, s[-1].t, 25.0), dict(soak.LIMITS), 0.2)
    assert v["ok"], v["failures"]
    assert abs(v["rate_decay"]) < 0.2


def test_memory_and_fd_leaks_fail(soak, rng):
    s = _series(soak, rng, rss_per_h=200.0, fds_per_h=300.0)
    v = soak.judge(s, _done(rng, s[-1].t, 25.0), dict(soak.LIMITS), 0.2)
    assert not v["ok"]
    assert any(f.startswith("rss_mb grows") for f in v["failures"])
    assert any(f.startswith("fds grows") for f in v["failures"])


def test_rate_decay_fails(soak, rng):
    s = _series(soak, rng)
    half = s[-1].t / 2
    done = [t for t in _done(rng, half, 20.0)] + [half + t for t in _done(rng, half, 40.0)]
    v = soak.judge(s, done, dict(soak.LIMITS), 0.2)
    assert not v["ok"] and v["rate_decay"] > 0.4
    assert any("execution rate fell" in f for f in v["failures"])


def test_peaks_hide_the_per_execution_sawtooth(soak):
    a = soak.peak(None, (70.0, 38, 13, 2))
    assert soak.peak(a, (69.0, 50, 13, 4)) == (70.0, 50, 13, 4)
