"""Clock-skew fault: the skew arithmetic, env parsing, patching and restoring time."""

from __future__ import annotations

import time

import pytest

from instrumentation import clockfault
from instrumentation.clockfault import ClockFaultError, Skew, skew_from_env


def test_skew_math():
    s = Skew(offset=5.0, rate=2.0)
    assert s.at(100.0, origin=100.0) == 105.0
    assert s.at(101.0, origin=100.0) == 107.0
    assert s.at_ns(10**9, origin_ns=0) == 7 * 10**9


def test_skew_validation():
    with pytest.raises(ClockFaultError, match="HBFUZZ_CLOCK_RATE"):
        Skew(rate=0.0)
    with pytest.raises(ClockFaultError, match="HBFUZZ_CLOCK_OFFSET"):
        Skew(offset=float("nan"))


def test_env_parsing():
    assert skew_from_env({}) is None
    assert skew_from_env({"HBFUZZ_CLOCK_OFFSET": "0", "HBFUZZ_CLOCK_RATE": "1"}) is None
    assert skew_from_env({"HBFUZZ_CLOCK_OFFSET": "-2.5"}) == Skew(-2.5, 1.0)
    assert skew_from_env({"HBFUZZ_CLOCK_RATE": "0.5"}) == Skew(0.0, 0.5)
    with pytest.raises(ClockFaultError, match="HBFUZZ_CLOCK_RATE: 'fast'"):
        skew_from_env({"HBFUZZ_CLOCK_RATE": "fast"})


def test_install_and_uninstall(seed):
    offset = 1000.0 + seed % 1000
    real_time, real_mono = time.time, time.monotonic
    clockfault.install(Skew(offset=offset, rate=1.0))
    try:
        assert time.time is not real_time
        assert time.time() - real_time() > offset - 1
        assert time.time_ns() - real_time() * 1e9 > (offset - 1) * 1e9
        assert time.monotonic() - real_mono() > offset - 1
        a = time.monotonic_ns()
        b = time.monotonic_ns()
        assert b >= a
    finally:
        clockfault.uninstall()
    assert time.time is real_time and time.monotonic is real_mono
