"""``python -m instrumentation``: real branch coverage of an unmodified script, reported
on the node's timeline; clock skew applied from the environment; the in-process
API against a real tracker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import instrumentation as hb
from fuzzer.tracker.server import TrackerServer
from instrumentation import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 20.0

SCRIPT = """
import sys

def classify(word):
    if word.isdigit():
        kind = "number"
    elif word.isupper():
        kind = "shout"
    else:
        kind = "word"
    return kind

for w in sys.argv[1:]:
    print(classify(w))
"""


def env_without_hbfuzz(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
    env["PYTHONPATH"] = ROOT
    env.update(extra)
    return env


def run_launcher(python, tmp_path, args, *, env=None, launcher_args=()):
    script = tmp_path / "app" / "prog.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / f"edges-{len(list(tmp_path.glob('edges-*')))}.txt"
    p = subprocess.run(
        [
            python,
            "-m",
            "instrumentation",
            "--edges-out",
            str(out),
            *launcher_args,
            "--",
            str(script),
            *args,
        ],
        env=env or env_without_hbfuzz(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert p.returncode == 0, p.stderr
    edges = {int(x) for x in out.read_text().split()}
    return p.stdout.split(), edges


def test_branch_coverage_of_unmodified_script(tmp_path, python):
    out1, digits = run_launcher(python, tmp_path, ["12"])
    assert out1 == ["number"]
    out2, words = run_launcher(python, tmp_path, ["abc"])
    assert out2 == ["word"]
    _, again = run_launcher(python, tmp_path, ["34"])
    assert len(digits) > 0 and len(words) > 0
    assert digits != words  # different argv, different branches
    assert digits == again  # same path, same stable edge ids in a new process
    _, both = run_launcher(python, tmp_path, ["12", "abc", "HEY"])
    assert digits | words < both  # a superset: "shout" adds edges


def test_modules_flag_restricts_coverage(tmp_path, python):
    # Covering only an unrelated module prefix gives no edges from the script.
    _, edges = run_launcher(python, tmp_path, ["12"], launcher_args=["--modules", "nosuchpkg"])
    assert edges == set()


def test_coverage_events_reach_the_tracker_in_order(tmp_path, python):
    with TrackerServer() as srv:
        env = env_without_hbfuzz(
            HBFUZZ_TRACKER=srv.address, HBFUZZ_NODE="app", HBFUZZ_EXECUTION="cov1"
        )
        _, edges = run_launcher(python, tmp_path, ["12", "abc"], env=env)
        tl = srv.tracker.timeline("cov1")
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not any(
            e.kind == protocol.EXIT for e in tl.events("app")
        ):
            time.sleep(0.02)
        events = tl.events("app")
    reported = [eid for e in events if e.kind == protocol.COVERAGE for eid in e.field("edges")]
    assert reported and set(reported) == edges
    assert len(reported) == len(set(reported))  # each edge once
    assert events[-1].kind == protocol.EXIT and events[-1].fields == ("exit", 0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_launcher_applies_clock_skew(tmp_path, python, seed):
    offset = 5000 + seed % 5000
    script = tmp_path / "clock.py"
    script.write_text(
        "import time\nfrom time import monotonic\nprint(time.time(), monotonic(), time.time_ns())\n"
    )
    before = time.time()
    p = subprocess.run(
        [python, "-m", "instrumentation", "--no-coverage", "--", str(script)],
        env=env_without_hbfuzz(HBFUZZ_CLOCK_OFFSET=str(offset), HBFUZZ_CLOCK_RATE="1"),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    after = time.time()
    assert p.returncode == 0, p.stderr
    wall, mono, wall_ns = map(float, p.stdout.split())
    assert before + offset <= wall <= after + offset
    assert before + offset <= wall_ns / 1e9 <= after + offset + 1
    assert mono >= time.monotonic() - 60 + offset  # monotonic shifted too
    bad = subprocess.run(
        [python, "-m", "instrumentation", "--", str(script)],
        env=env_without_hbfuzz(HBFUZZ_CLOCK_RATE="-1"),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert bad.returncode == 2 and "HBFUZZ_CLOCK_RATE" in bad.stderr


def test_launcher_passes_exit_code_and_argv(tmp_path, python):
    script = tmp_path / "ex.py"
    script.write_text("import sys\nprint(sys.argv)\nraise SystemExit(int(sys.argv[1]))\n")
    p = subprocess.run(
        [python, "-m", "instrumentation", "--", str(script), "7", "x"],
        env=env_without_hbfuzz(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert p.returncode == 7
    assert p.stdout.strip() == repr([str(script), "7", "x"])


@pytest.fixture
def configured():
    srv = TrackerServer()
    addr = srv.start()
    yield srv, addr
    hb.shutdown(flush_timeout=1.0)
    hb.configure(tracker="", exit_hooks=False)  # back to the no-op default
    srv.stop(0.5)


def test_in_process_api_flush_is_acked(configured):
    srv, addr = configured
    assert hb.configure(node="me", tracker=addr, execution="inproc", exit_hooks=False)
    assert "grpc" in sys.modules
    s = hb.send("peer", "Vote", 1)
    hb.recv("peer", "VoteReply", 1, s + 10)
    hb.state("term", 3)
    hb.send(7, "Vote", object())  # odd key types are coerced, not rejected
    hb.recv("peer", "Vote", 2, None)  # a message from an uninstrumented sender
    hb.recv("peer", "Vote", 3, "junk")
    assert hb.flush(timeout=10)
    events = srv.tracker.timeline("inproc").events("me")  # flush() == ingested
    assert [e.kind for e in events] == [
        protocol.SEND,
        protocol.RECV,
        protocol.STATE,
        protocol.SEND,
        protocol.RECV,
        protocol.RECV,
    ]
    assert events[4].fields[3] == 0 and events[5].lamport == events[4].lamport + 1
    assert events[1].lamport == s + 11
    assert events[3].fields[0] == "7" and isinstance(events[3].fields[2], str)
    assert srv.stats.rejected == 0
