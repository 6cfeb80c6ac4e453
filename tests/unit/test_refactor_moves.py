"""What the refactor added or moved: LamportBook.local, log-derived STATE on the
mediator's per-node sequence, and the old import paths of moved code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fuzzer.network.events import LamportBook
from fuzzer.tracker.logstate import LogStateWatcher, StateChange, StateRule, StateStamper
from fuzzer.tracker.timeline import Timeline
from instrumentation.protocol import LOCAL, SEND, STATE


def test_local_events_share_the_nodes_seq_and_tick_its_clock(rng):
    events = []
    book = LamportBook(events.append)
    made = []
    for _ in range(40):  # a random interleaving of message and local events
        a, b = rng.sample(["n1", "n2", "n3"], 2)
        if rng.random() < 0.5:
            book.recv(b, book.send(a, b, "m"))
        else:
            before = book.clock(a)
            ev = book.local(a, STATE, ["term", rng.randrange(5)])
            assert ev.kind == STATE and ev.lamport == before + 1 == book.clock(a)
            assert isinstance(ev.fields, tuple)
            made.append(ev)
            events.append(ev)  # local() does not call the sink: the caller delivers
    assert made and len(events) > len(made)
    timeline = Timeline("x")
    for ev in events:
        timeline.add(ev)
    for node in ("n1", "n2", "n3"):
        seqs = [e.seq for e in events if e.node == node]
        assert seqs == list(range(1, len(seqs) + 1))  # one counter per node, no gaps
        lamports = [e.lamport for e in events if e.node == node]
        assert lamports == sorted(set(lamports))
    assert book.local("n1", LOCAL, ("x", {})).kind == LOCAL
    with pytest.raises(ValueError):
        book.local("n1", SEND, ("n2", "m", 1))


def test_stamper_with_a_book_follows_the_mediators_numbering():
    book = LamportBook()
    book.recv("n1", book.send("n2", "n1", "vote"))  # n1: seq 1, lamport 2
    ev = StateStamper(book).event(StateChange("n1", "role", "leader", 7))
    assert (ev.node, ev.seq, ev.lamport, ev.kind, ev.fields) == ("n1", 2, 3, STATE,
                                                                 ("role", "leader"))
    stamp = book.send("n1", "n2", "append")
    assert stamp.lamport == 4
    plain = StateStamper().events([StateChange("n1", "a", 1, 1), StateChange("n1", "b", 2, 2)])
    assert [(e.seq, e.lamport) for e in plain] == [(1, 1), (2, 2)]


def test_generic_watcher_needs_a_table_and_stamps_through_the_book(tmp_path):
    log = tmp_path / "n1.log"
    log.write_bytes(b"boot\nnode is now LEADER in term 4\n")
    rule = StateRule(r"now (?P<role>[A-Z]+) in term (?P<term>\d+)",
                     {"term": "{term}", "role": "{role}"}, ("term",))
    book = LamportBook()
    book.recv("n1", book.send("n2", "n1", "hello"))
    got = []
    watcher = LogStateWatcher({"n1": log}, (rule,), sink=got.append, book=book)
    events = watcher.poll()
    watcher.close()
    assert got == events
    assert [(e.seq, e.fields) for e in events] == [(2, ("term", 4)), (3, ("role", "LEADER"))]
    with pytest.raises(TypeError):
        LogStateWatcher({"n1": log})  # the generic watcher has no default table


@pytest.mark.parametrize(
    "code",
    [
        # schedule.py first, then the re-export (the lazy import must not be circular)
        "import fuzzer.schedule as s; from fuzzer.faults import Schedule, Step, parse_step, "
        "SCHEDULE_VERSION; assert Schedule is s.Schedule and Step is s.Step",
        "from fuzzer.faults import *; import fuzzer.schedule as s; assert Step is s.Step; "
        "from fuzzer.faults import parse_duration, format_duration; "
        "import fuzzer.durations as d; assert parse_duration is d.parse_duration",
        "from targets.etcd.logstate import ETCD_RULES, LogStateWatcher, LogTail, StateStamper; "
        "import fuzzer.tracker.logstate as g; assert StateStamper is g.StateStamper; "
        "assert issubclass(LogStateWatcher, g.LogStateWatcher)",
        "from targets.etcd.demux import PeerDemux, connection_owner; "
        "import fuzzer.network.demux as g; assert PeerDemux is g.PeerDemux",
        "from fuzzer.network.stdio import HARNESS, MAX_LINE, MAX_PENDING, NodeExit, RouteStats, "
        "StdioMediator; import fuzzer.network.stdio_router as r; "
        "assert RouteStats is r.RouteStats and issubclass(StdioMediator, r.StdioRouter)",
    ],
    ids=["schedule-first", "faults-star", "etcd-logstate", "etcd-demux", "stdio"],
)
def test_old_import_paths_still_work(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
