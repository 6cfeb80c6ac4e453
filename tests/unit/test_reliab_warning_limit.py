"""WarningLimiter (fuzzer/network/stdio_router.py): the pure rate limit of repeated
warnings, on a fake clock."""

from __future__ import annotations

from fuzzer.network.stdio_router import WarningLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_first_in_full_then_periodic_summaries_then_flush(rng):
    clock = Clock()
    lim = WarningLimiter("bad lines from {source}", first=3, interval=10.0, clock=clock)
    out = [lim.hit("n1") for _ in range(3)]
    assert out == [(True, None)] * 3
    assert "further ones" in lim.note("n1")
    hits = rng.randint(50, 500)
    logged = []
    for _ in range(hits):
        clock.t += rng.uniform(0.0, 0.5)
        full, summary = lim.hit("n1")
        assert not full
        if summary:
            logged.append(summary)
    logged += lim.flush()
    assert lim.counts["n1"] == hits + 3 and lim.suppressed["n1"] == hits
    assert sum(int(s.split()[0]) for s in logged) == hits
    assert all("more bad lines from n1 suppressed" in s for s in logged)
    # at most one summary per interval (plus the final flush)
    assert len(logged) <= (clock.t - 100.0) / 10.0 + 2
    assert lim.flush() == []  # nothing pending twice


def test_sources_are_independent():
    clock = Clock()
    lim = WarningLimiter("x from {source}", first=1, interval=1.0, clock=clock)
    assert lim.hit("n1") == (True, None)
    assert lim.hit("n2") == (True, None)
    assert lim.hit("n1") == (False, None)
    assert lim.hit("n2") == (False, None)
    clock.t += 1.0
    full, summary = lim.hit("n1")
    assert not full and summary == "2 more x from n1 suppressed (3 in all)"
    assert lim.flush() == ["1 more x from n2 suppressed (2 in all)"]
    assert lim.flush() == []
