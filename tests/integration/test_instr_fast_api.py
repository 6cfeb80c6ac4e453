"""The node API over a real gRPC tracker, through the C accelerator and the pure path.

Both recording paths must deliver the same events (kinds, Lamport stamps,
fields) and keep the clock across reconfiguration.
"""

from __future__ import annotations

import pytest

import instrumentation as hb
from fuzzer.tracker.server import TrackerServer
from instrumentation import protocol
from instrumentation.reporter import ENV_PURE, PackedBuffer

PATHS = [
    "pure",
    pytest.param(
        "accelerated",
        marks=pytest.mark.skipif(PackedBuffer is None, reason="C accelerator not built"),
    ),
]


@pytest.fixture
def tracker():
    srv = TrackerServer()
    srv.start()
    yield srv
    hb.shutdown(flush_timeout=1.0)
    hb.configure(tracker="", exit_hooks=False)
    srv.stop(0.5)


def _relative(e, start: int) -> tuple:
    """An event's fields with a RECV's sender stamp made relative to the run's start."""
    if e.kind == protocol.RECV and e.fields[3]:
        return (*e.fields[:3], e.fields[3] - start)
    return e.fields


def _record(rng) -> list[int]:
    """A fixed mix of every API call, odd values included; returns the stamps."""
    stamps = [hb.send("n2", "Append", 1)]
    hb.recv("n2", "AppendReply", 1, stamps[0] + 5)
    stamps.append(hb.state("role", "leader"))
    stamps.append(hb.apply(3, 2, b"\x01\x02"))
    stamps.append(hb.event("elected", term=3, big=2**70, obj=object.__name__))
    stamps.append(hb.log("info", "x" * rng.randrange(1, 400)))
    stamps.append(hb.send(9, None, 2.5))
    hb.recv("n3", "Vote", "m-7", None)
    stamps.append(hb.violation("safety", index=4, detail=[1, "two", None]))
    return stamps


@pytest.mark.parametrize("path", PATHS)
def test_both_paths_deliver_the_same_events(path, tracker, monkeypatch, seed):
    import random

    results = {}
    for run, mode in enumerate(["pure", path]):
        if mode == "pure":
            monkeypatch.setenv(ENV_PURE, "1")
        else:
            monkeypatch.delenv(ENV_PURE, raising=False)
        hb.configure(tracker="", exit_hooks=False)  # reset to no-op
        ex = f"fast-{mode}-{run}"
        assert hb.configure(node="me", tracker=tracker.address, execution=ex, exit_hooks=False)
        assert hb.stats()["accelerated"] == (mode == "accelerated")
        start = hb.lamport()
        stamps = [s - start for s in _record(random.Random(seed))]
        assert hb.flush(timeout=10)
        events = tracker.tracker.timeline(ex).events("me")
        results[mode] = (
            stamps,
            [(e.kind, e.lamport - start, _relative(e, start)) for e in events],
            [e.seq for e in events],
        )
        assert hb.stats()["dropped"] == 0
    stamps, events, seqs = results[path]
    assert (stamps, events) == results["pure"][:2]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [k for k, _, _ in events]
    assert kinds == [
        protocol.SEND,
        protocol.RECV,
        protocol.STATE,
        protocol.APPLY,
        protocol.LOCAL,
        protocol.LOG,
        protocol.SEND,
        protocol.RECV,
        protocol.VIOLATION,
    ]
    assert events[1][1] == stamps[0] + 6  # max(t, stamp) + 1
    assert events[4][2][1] == {"term": 3, "big": str(2**70), "obj": "object"}
    assert events[6][2] == ("9", "None", "2.5")
    assert tracker.stats.rejected == 0


@pytest.mark.parametrize("path", PATHS)
def test_clock_survives_shutdown_and_reconfigure(path, tracker, monkeypatch):
    if path == "pure":
        monkeypatch.setenv(ENV_PURE, "1")
    else:
        monkeypatch.delenv(ENV_PURE, raising=False)
    assert hb.configure(node="me", tracker=tracker.address, execution="clk", exit_hooks=False)
    hb.recv("n2", "T", 1, 1000)
    t = hb.lamport()
    assert t > 1000
    hb.shutdown(flush_timeout=5)
    assert not hb.enabled() and not hb.stats()["accelerated"]
    assert hb.send("n2", "T", 2) == t + 1  # the no-op path goes on from the same clock
    assert hb.configure(node="me", tracker=tracker.address, execution="clk", exit_hooks=False)
    assert hb.send("n2", "T", 3) == t + 2
    assert hb.flush(timeout=10)
    stamps = [e.lamport for e in tracker.tracker.timeline("clk").events("me")]
    assert stamps == [t, t + 2]
