"""Bounded node logs, output tails and clock env (pure helpers of fuzzer.cluster)."""

from __future__ import annotations

import pytest

from fuzzer.cluster.clock import ClockSetting, clock_env, faketime_spec
from fuzzer.cluster.logs import BoundedLog, Tail
from fuzzer.errors import ClusterError


def test_bounded_log_never_exceeds_twice_the_cap(tmp_path, rng) -> None:
    cap = 4096
    log = BoundedLog(tmp_path / "n1.log", cap)
    total = bytearray()
    for _ in range(200):
        chunk = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 3000)))
        log.write(chunk)
        total += chunk
        assert log.path.stat().st_size <= cap
    log.close()
    old = tmp_path / "n1.log.1"
    assert old.stat().st_size == cap
    # the two files hold the most recent bytes, in order
    kept = old.read_bytes() + log.path.read_bytes()
    assert bytes(total).endswith(kept)
    assert log.rotations == len(total) // cap - (1 if len(total) % cap == 0 else 0)


def test_tail_keeps_last_lines(rng) -> None:
    tail = Tail(limit=1000)
    lines = [f"line {i} " + "x" * rng.randrange(0, 50) for i in range(500)]
    for line in lines:
        tail.feed(line.encode() + b"\n")
    assert tail.text(5).splitlines() == lines[-5:]
    tail.feed(b"\xff\xfebad\n")
    assert tail.text(1) == "\ufffd\ufffdbad"


def test_clock_env() -> None:
    assert clock_env("env", ClockSetting(), {}) == {}
    env = clock_env("env", ClockSetting(-2.5, 1.5), {})
    assert env == {"HBFUZZ_CLOCK_OFFSET": "-2.5", "HBFUZZ_CLOCK_RATE": "1.5"}
    assert faketime_spec(ClockSetting(3600.0)) == "+3600s"
    assert faketime_spec(ClockSetting(-10.0, 2.0)) == "-10s x2"
    with pytest.raises(ClusterError, match="rate"):
        clock_env("env", ClockSetting(0.0, -1.0), {})
