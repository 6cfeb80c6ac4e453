"""The reporter against real trackers over real gRPC, in real node processes.

Covers: events arrive complete and in order; no tracker -> the node runs
normally and never imports grpc; a SIGKILLed node still delivered its
periodically flushed events; SIGTERM flushes (default and chained handlers);
an absent tracker fills the bounded buffer, drops are counted and reported
once the tracker appears; the stream reconnects after the tracker restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import time
from concurrent import futures

import grpc
import pytest

from fuzzer.tracker.server import TrackerServer
from instrumentation import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 20.0  # seconds any wait in this module may take at most


class Sink:
    """A minimal real gRPC tracker on a fixed port: decodes and keeps every batch.

    Used where the test needs a tracker that is absent first or restarts on
    the same address (TrackerServer always takes an ephemeral port).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.batches: list[protocol.Batch] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.stream_unary_rpc_method_handler(self._report)
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(protocol.SERVICE, {"Report": handler})]
        )
        assert self.server.add_insecure_port(f"127.0.0.1:{port}") == port
        self.server.start()

    def _report(self, requests, context) -> bytes:
        n = 0
        for data in requests:
            batch = protocol.decode_batch(data)
            with self.lock:
                self.batches.append(batch)
            n += 1
        return protocol.encode_ack(n, 0)

    def events(self) -> list[list]:
        with self.lock:
            return [e for b in self.batches for e in b.events]

    def dropped(self) -> int:
        with self.lock:
            return sum(b.dropped for b in self.batches)

    def stop(self) -> None:
        self.server.stop(0).wait(5)


def wait_for(cond, what: str, timeout: float = DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def write_node(tmp_path, body: str):
    path = tmp_path / "node.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def node_env(tracker: str | None, node: str = "n1", execution: str = "ex1") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
    env["PYTHONPATH"] = ROOT
    if tracker is not None:
        env.update(HBFUZZ_TRACKER=tracker, HBFUZZ_NODE=node, HBFUZZ_EXECUTION=execution)
    return env


def read_line(proc: subprocess.Popen, expect: str) -> None:
    line = proc.stdout.readline()
    assert line.strip() == expect, (
        f"node said {line!r}, stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    )


@pytest.fixture
def tracker():
    srv = TrackerServer()
    srv.start()
    yield srv
    srv.stop(0.5)


def kinds(events) -> list[int]:
    return [e.kind for e in events]


def test_events_arrive_complete_and_in_order(tmp_path, procs, python, tracker, rng):
    n = rng.randrange(2000, 5000)
    script = write_node(
        tmp_path,
        f"""
        import instrumentation as hb
        for i in range({n}):
            s = hb.send("n2", "Ping", i)
            hb.recv("n2", "Pong", i, s + 3)
        hb.state("role", "leader")
        hb.apply(7, 2, b"digest")
        hb.event("elected", term=2)
        hb.violation("two_leaders", term=2)
        hb.log("info", "bye")
        """,
    )
    p = procs([python, script], env=node_env(tracker.address))
    assert p.wait(timeout=DEADLINE) == 0
    tl = tracker.tracker.timeline("ex1")
    events = wait_for(lambda: len(tl.events("n1")) >= 2 * n + 6 and tl.events("n1"), "events")
    assert [e.seq for e in events] == list(range(1, 2 * n + 7))
    lamports = [e.lamport for e in events]
    assert lamports == sorted(set(lamports))  # strictly increasing on one node
    assert events[1].lamport == events[0].lamport + 4  # recv merged the stamp s + 3
    assert kinds(events[-6:]) == [
        protocol.STATE,
        protocol.APPLY,
        protocol.LOCAL,
        protocol.VIOLATION,
        protocol.LOG,
        protocol.EXIT,
    ]
    assert events[-1].fields == ("exit", None)
    assert events[-5].fields == (7, 2, b"digest")
    assert tracker.stats.rejected == 0 and tracker.stats.dropped == 0


def test_no_tracker_runs_normally_without_grpc(tmp_path, procs, python):
    script = write_node(
        tmp_path,
        """
        import sys
        import instrumentation as hb
        a = hb.send("n2", "Ping", 1)
        hb.recv("n2", "Pong", 1, 41)
        hb.state("role", "follower"); hb.event("x", k=1); hb.apply(1, 1, b""); hb.log(1, "t")
        b = hb.send("n2", "Ping", 2)
        assert (a, b) == (1, 47), (a, b)
        assert not hb.enabled() and hb.flush() is False
        for mod in ("grpc", "msgpack", "lz4"):
            assert mod not in sys.modules, mod
        print("ok")
        """,
    )
    p = procs(
        [python, script],
        env=node_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 0, err
    assert out.strip() == "ok"


def test_sigkilled_node_delivered_periodic_flushes(tmp_path, procs, python, tracker):
    script = write_node(
        tmp_path,
        """
        import sys, time
        import instrumentation as hb
        for i in range(500):
            hb.send("n2", "Ping", i)
        print("emitted", flush=True)
        time.sleep(60)
        """,
    )
    p = procs([python, script], env=node_env(tracker.address), stdout=subprocess.PIPE, text=True)
    read_line(p, "emitted")
    tl = tracker.tracker.timeline("ex1")
    # No exit, no explicit flush: only the periodic flush can deliver these.
    wait_for(lambda: len(tl.events("n1")) >= 500, "periodically flushed events")
    os.killpg(p.pid, signal.SIGKILL)
    assert p.wait(timeout=DEADLINE) == -signal.SIGKILL
    events = tl.events("n1")
    assert [e.seq for e in events] == list(range(1, 501))
    assert protocol.EXIT not in kinds(events)


SIGTERM_NODE = """
import signal, sys, time
import instrumentation as hb
hb.configure(interval=3600.0)  # no periodic flush: only SIGTERM can deliver
{handler}
for i in range(300):
    hb.send("n2", "Ping", i)
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_flushes_then_dies_by_the_signal(tmp_path, procs, python, tracker):
    script = write_node(tmp_path, SIGTERM_NODE.format(handler=""))
    p = procs([python, script], env=node_env(tracker.address), stdout=subprocess.PIPE, text=True)
    read_line(p, "ready")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=DEADLINE) == -signal.SIGTERM  # exits as it would have
    events = tracker.tracker.timeline("ex1").events("n1")
    assert len(events) == 301
    assert events[-1].kind == protocol.EXIT and events[-1].fields == ("SIGTERM", -signal.SIGTERM)


def test_sigterm_chains_to_the_node_handler(tmp_path, procs, python, tracker):
    handler = """
def graceful(signum, frame):
    hb.event("graceful")
    print("graceful", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, graceful)
hb.configure(interval=3600.0)  # installed after the node's handler: chains to it
"""
    script = write_node(tmp_path, SIGTERM_NODE.format(handler=handler))
    p = procs([python, script], env=node_env(tracker.address), stdout=subprocess.PIPE, text=True)
    read_line(p, "ready")
    p.send_signal(signal.SIGTERM)
    read_line(p, "graceful")
    assert p.wait(timeout=DEADLINE) == 3
    tl = tracker.tracker.timeline("ex1")
    events = wait_for(lambda: len(tl.events("n1")) >= 302 and tl.events("n1"), "all events")
    assert [e.kind for e in events[300:]] == [protocol.EXIT, protocol.LOCAL]
    assert events[300].fields[0] == "SIGTERM"
    assert events[301].fields[0] == "graceful"  # recorded after the flush, shipped at exit


def test_absent_tracker_drops_are_counted_then_reported(tmp_path, procs, python, ports, rng):
    (port,) = ports(1)
    capacity = 200
    total = capacity * 3 + rng.randrange(300)
    script = write_node(
        tmp_path,
        f"""
        import sys
        import instrumentation as hb
        hb.configure(capacity={capacity})
        for i in range({total}):
            hb.send("n2", "Ping", i)
        print(hb.stats()["dropped"], flush=True)
        sys.stdin.readline()   # the test starts the tracker, then lets us go on
        first = hb.flush(timeout=10)  # waits for the tracker, ships what was kept
        hb.send("n2", "Ping", -1)
        print("acked" if first and hb.flush(timeout=10) else "not acked", flush=True)
        """,
    )
    p = procs(
        [python, script],
        env=node_env(f"127.0.0.1:{port}"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    dropped = int(p.stdout.readline())
    # At most the buffer plus the one batch gRPC holds while it waits are kept.
    assert dropped >= total - 2 * capacity
    sink = Sink(port)
    try:
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "acked"
        p.stdin.close()
        assert p.wait(timeout=DEADLINE) == 0
        events = wait_for(
            lambda: len(sink.events()) >= total - dropped + 2 and sink.events(),
            "events",
        )
        ids = [e[7] for e in events if e[4] == protocol.SEND]
        assert ids[0] == 0 and ids[-1] == -1
        assert ids[:-1] == sorted(ids[:-1])  # kept events stay in order
        assert len(ids) - 1 + dropped == total  # every event delivered or counted
        assert sink.dropped() == dropped  # and the count reached the tracker
    finally:
        print("sink batches:", [(b.batch_seq, len(b.events), b.dropped) for b in sink.batches])
        sink.stop()


def test_reconnects_after_tracker_restart(tmp_path, procs, python, ports):
    (port,) = ports(1)
    script = write_node(
        tmp_path,
        """
        import sys, time
        import instrumentation as hb
        for line in sys.stdin:
            n, breaks = map(int, line.split())
            end = time.monotonic() + 10
            while hb.stats()["stream_errors"] < breaks and time.monotonic() < end:
                time.sleep(0.01)  # emit only once the broken stream was noticed
            for i in range(n):
                hb.event("tick", i=i)
            print("sent", flush=True)
        """,
    )
    sink = Sink(port)
    p = procs(
        [python, script],
        env=node_env(f"127.0.0.1:{port}"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        p.stdin.write("100 0\n")
        p.stdin.flush()
        read_line(p, "sent")
        wait_for(lambda: len(sink.events()) >= 100, "first events")
    finally:
        sink.stop()
    p.stdin.write("50 1\n")  # tracker gone: these wait in the buffer
    p.stdin.flush()
    read_line(p, "sent")
    sink2 = Sink(port)
    try:
        events = wait_for(
            lambda: len(sink2.events()) >= 50 and sink2.events(), "events after restart"
        )
        ticks = [e for e in events if e[4] == protocol.LOCAL]
        assert [e[6]["i"] for e in ticks] == list(range(50))
        assert [e[0] for e in ticks] == sorted(e[0] for e in ticks)
        p.stdin.close()
        assert p.wait(timeout=DEADLINE) == 0
    finally:
        sink2.stop()


def test_threads_get_unique_ordered_stamps(tmp_path, procs, python, tracker, rng):
    """Lock-free hot path: (seq, lamport) stay unique and in order across threads."""
    per_thread = rng.randrange(2000, 4000)
    script = write_node(
        tmp_path,
        f"""
        import sys, threading
        import instrumentation as hb
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        def work(k):
            for i in range({per_thread}):
                s = hb.send("n2", "Ping", k * 1_000_000 + i)
                hb.recv("n2", "Pong", k * 1_000_000 + i, s + (i % 3))
                hb.state("k", i)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        """,
    )
    p = procs([python, script], env=node_env(tracker.address))
    assert p.wait(timeout=DEADLINE) == 0
    n = 4 * per_thread * 3
    tl = tracker.tracker.timeline("ex1")
    events = wait_for(lambda: len(tl.events("n1")) >= n + 1 and tl.events("n1"), "events")
    assert [e.seq for e in events] == list(range(1, n + 2))
    lamports = [e.lamport for e in events]
    assert all(a < b for a, b in zip(lamports, lamports[1:], strict=False))
    for e in events:
        if e.kind == protocol.RECV:
            assert e.lamport > e.field("sender_lamport")


def test_violation_is_shipped_without_waiting(tmp_path, procs, python, tracker):
    script = write_node(
        tmp_path,
        """
        import time
        import instrumentation as hb
        hb.configure(interval=3600.0)  # no periodic flush: only urgency can ship it
        hb.state("term", 2)
        hb.violation("two_leaders", term=2, leaders=["n1", "n2"])
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    p = procs([python, script], env=node_env(tracker.address), stdout=subprocess.PIPE, text=True)
    read_line(p, "ready")
    tl = tracker.tracker.timeline("ex1")
    events = wait_for(lambda: len(tl.events("n1")) >= 2 and tl.events("n1"), "the violation")
    os.killpg(p.pid, signal.SIGKILL)
    assert events[1].kind == protocol.VIOLATION
    assert events[1].fields == ("two_leaders", {"term": 2, "leaders": ["n1", "n2"]})
