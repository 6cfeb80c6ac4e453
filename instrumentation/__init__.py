"""hbfuzz instrumentation: what target nodes import to report to the fuzzer.

Usage in a node::

    import instrumentation as hb
    stamp = hb.send("n2", "AppendEntries", msg_id)   # piggyback stamp on the message
    hb.recv("n1", "AppendEntries", msg_id, stamp)    # on receipt
    hb.state("role", "leader"); hb.apply(index, term, digest); hb.event("elected", term=3)

Configured from the environment the fuzzer sets (``HBFUZZ_TRACKER``,
``HBFUZZ_NODE``, ``HBFUZZ_EXECUTION``, ``HBFUZZ_COVERAGE_MODULES``) or with
:func:`configure`. With no tracker every call is a near-free no-op that still
keeps a valid Lamport clock (so stamps can be piggybacked unconditionally),
and neither grpc, msgpack nor lz4 is imported.

Kept light on purpose (msgpack, lz4 and grpcio only, imported lazily), since
it runs inside target processes. Never raises into the node: a broken or
slow tracker only costs dropped events (counted, reported in the next batch).
Thread-safe without a lock on GIL builds (see the note above :func:`send`;
free-threaded builds take a lock). The wire format is in
docs/event-protocol.md.

When reporting, events are recorded by the optional C accelerator
(instrumentation/_fast.c, built by ``pip install -e .`` where a compiler
exists) if it is importable: ``send``/``recv`` are then rebound to its
methods and the clock lives in it. Without it (or with
``HBFUZZ_REPORT_PURE=1``) the pure-Python path below does the same job;
:func:`accelerated` tells which is in use.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

from instrumentation import protocol

__all__ = [
    "send",
    "recv",
    "event",
    "state",
    "apply",
    "violation",
    "log",
    "flush",
    "configure",
    "shutdown",
    "enabled",
    "lamport",
    "stats",
    "start_coverage",
    "stop_coverage",
    "exit_event",
    "accelerated",
]

_SEND = protocol.SEND
_RECV = protocol.RECV
_LOCAL = protocol.LOCAL
_STATE = protocol.STATE
_APPLY = protocol.APPLY
_COVERAGE = protocol.COVERAGE
_VIOLATION = protocol.VIOLATION
_LOG = protocol.LOG
_EXIT = protocol.EXIT

# Real clocks, bound before any clock-skew fault patches the time module:
# event times are the machine's, the node's skewed view is the fault's business.
_mono = time.monotonic_ns
_wall_offset = time.time_ns() - time.monotonic_ns()

_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()
_lock = threading.Lock()  # only used on free-threaded builds (see _locked below)
_t = 0  # the node's Lamport time (a LamportClock, inlined for speed)
_seq = 0
_node = ""
_execution = ""
_buf = None  # EventBuffer when reporting in pure Python, else None
_rec = None  # PackedBuffer (C accelerator) when reporting through it, else None
_packb = None  # msgpack.packb, bound when the accelerator is in use
_reporter = None
_hooks = None
_coverage = None
_edges: deque[int] = deque()  # new code edges waiting to become a COVERAGE event
_exited = False


# -- the hot path ---------------------------------------------------------------
#
# Why no lock: between taking the Lamport time / sequence number and appending
# the event there is no call and no loop, and CPython with a GIL only switches
# threads (or runs signal handlers, or the cyclic GC) at calls and backward
# jumps. So each event's (seq, lamport) pair is taken and queued atomically,
# in order, for the cost of a few global loads and stores. On a free-threaded
# build the same functions are wrapped in a lock at import (see _locked).
# Events are tuples: cheaper to build than lists, and the GC untracks them.


def send(dst: str, msg_type: str, msg_id: int) -> int:
    """Record sending message ``msg_id`` to ``dst``; returns the Lamport stamp to piggyback."""
    global _t, _seq
    buf = _buf
    if buf is None:
        if _rec is not None:
            return _rec.send(dst, msg_type, msg_id)
        t = _t + 1
        _t = t
        return t
    if _edges:
        _coverage_event()
    if type(msg_id) is not int or type(dst) is not str or type(msg_type) is not str:
        dst, msg_type, msg_id = _message_fields(dst, msg_type, msg_id)
    m = _mono()
    t = _t + 1  # -- atomic from here to the append --
    _t = t
    s = _seq + 1
    _seq = s
    if buf.appended < buf.until:
        buf.appended = a = buf.appended + 1
        buf.events.append((s, t, m + _wall_offset, m, _SEND, dst, msg_type, msg_id))
        if a == buf.wake_at:
            _reporter.wake.set()
    else:
        buf.dropped += 1
    return t


def recv(src: str, msg_type: str, msg_id: int, stamp: int) -> None:
    """Record receiving message ``msg_id`` from ``src`` that carried Lamport ``stamp``."""
    global _t, _seq
    buf = _buf
    if buf is None and _rec is not None:
        _rec.recv(src, msg_type, msg_id, stamp)
        return
    if type(stamp) is not int:
        stamp = _as_stamp(stamp)
    if buf is None:
        t = _t
        if stamp > t:
            t = stamp
        _t = t + 1
        return
    if _edges:
        _coverage_event()
    if type(msg_id) is not int or type(src) is not str or type(msg_type) is not str:
        src, msg_type, msg_id = _message_fields(src, msg_type, msg_id)
    m = _mono()
    t = _t  # -- atomic from here to the append --
    if stamp > t:
        t = stamp
    t += 1
    _t = t
    s = _seq + 1
    _seq = s
    if buf.appended < buf.until:
        buf.appended = a = buf.appended + 1
        buf.events.append((s, t, m + _wall_offset, m, _RECV, src, msg_type, msg_id, stamp))
        if a == buf.wake_at:
            _reporter.wake.set()
    else:
        buf.dropped += 1


def _message_fields(peer, msg_type, msg_id) -> tuple:
    """Coerce a message's key fields to what the tracker matches on (str, str, int|str)."""
    if type(msg_id) not in (int, str, bytes):
        msg_id = str(msg_id)
    return str(peer), str(msg_type), msg_id


def _as_stamp(stamp) -> int:
    """A usable Lamport stamp from whatever a message carried (None, float, str...)."""
    try:
        stamp = int(stamp)
    except (TypeError, ValueError, OverflowError):
        return 0
    return stamp if 0 <= stamp < 2**63 else 0


def _emit(kind: int, *fields) -> int:
    """A local event of ``kind``: tick the clock, buffer the event; returns its stamp."""
    global _t, _seq
    buf = _buf
    if buf is None:
        rec = _rec
        if rec is not None:
            if _edges:
                _coverage_event()
            return rec.emit(kind, _pack_fields(fields))
        t = _t + 1
        _t = t
        return t
    if _edges:
        _coverage_event()
    m = _mono()
    t = _t + 1  # -- atomic from here to the append --
    _t = t
    s = _seq + 1
    _seq = s
    if buf.appended < buf.until:
        buf.appended = a = buf.appended + 1
        buf.events.append((s, t, m + _wall_offset, m, kind, *fields))
        if a == buf.wake_at:
            _reporter.wake.set()
    else:
        buf.dropped += 1
    return t


def _pack_fields(fields: tuple) -> bytes:
    """A local event's fields as one msgpack array, for the accelerator; never raises.

    Odd values become text (as :func:`reporter.sanitize` does on the pure path)."""
    try:
        return _packb(fields)
    except Exception:
        pass
    from instrumentation.reporter import sanitize

    try:
        return _packb([sanitize(f) for f in fields])
    except Exception:
        return _packb([None] * len(fields))


def _coverage_event() -> None:
    """Turn pending code edges into one COVERAGE event (node thread or reporter thread)."""
    global _t, _seq
    buf = _buf
    rec = _rec
    if buf is None and rec is None:
        return
    pop = _edges.popleft
    ids = []
    try:
        while True:
            ids.append(pop())
    except IndexError:
        pass
    if not ids:
        return
    if rec is not None:
        rec.emit(_COVERAGE, _packb((ids,)))
        return
    m = _mono()
    t = _t + 1  # -- atomic from here to the append --
    _t = t
    s = _seq + 1
    _seq = s
    if buf.appended < buf.until:
        buf.appended += 1
        buf.events.append((s, t, m + _wall_offset, m, _COVERAGE, ids))
    else:
        buf.dropped += 1


def event(name: str, **attrs) -> int:
    """A named local event with a few scalar attributes (LOCAL)."""
    return _emit(_LOCAL, name, attrs)


def state(key: str, value) -> int:
    """A state change, e.g. ``state("role", "leader")`` (STATE)."""
    return _emit(_STATE, key, value)


def apply(index: int, term: int, digest) -> int:
    """A replicated-state-machine apply of log entry ``index`` (APPLY)."""
    return _emit(_APPLY, index, term, digest)


def violation(name: str, **details) -> int:
    """A target-side assertion failed (VIOLATION); shipped promptly."""
    t = _emit(_VIOLATION, name, details)
    r = _reporter
    if r is not None:
        r.urgent = True
        r.wake.set()
    return t


def log(level, text: str) -> int:
    """A log line worth putting on the timeline (LOG)."""
    return _emit(_LOG, level, text)


def exit_event(reason: str, code: int | None = None) -> int:
    """Record the node's exit (EXIT) once; the launcher and the exit hooks call it."""
    global _exited
    if _exited:
        return lamport()
    _exited = True
    return _emit(_EXIT, reason, code)


# -- control ------------------------------------------------------------------------


def enabled() -> bool:
    """True when events are being reported to a tracker."""
    return _buf is not None or _rec is not None


def lamport() -> int:
    """The current Lamport time (no tick)."""
    rec = _rec
    return rec.t if rec is not None else _t


def accelerated() -> bool:
    """True when events are recorded by the C accelerator (instrumentation/_fast.c)."""
    return _rec is not None


def flush(timeout: float = 2.0) -> bool:
    """Ship everything recorded so far and wait for the tracker's ack (True if acked).

    A no-op returning False without a tracker. Never raises.
    """
    r = _reporter
    if r is None:
        return False
    try:
        return r.flush(timeout)
    except Exception:
        return False


def stats() -> dict:
    """Counters for tests and debugging: events buffered/dropped, batches, streams."""
    rec = _rec
    out = {
        "enabled": enabled(),
        "node": _node,
        "lamport": lamport(),
        "seq": rec.seq if rec is not None else _seq,
        "accelerated": rec is not None,
    }
    buf = _buf if _buf is not None else rec
    if buf is not None:
        out.update(buffered=len(buf), dropped=buf.dropped)
    if _reporter is not None:
        s = _reporter.stats
        out.update(
            batches=s.batches,
            events=s.events,
            acked_batches=s.acked_batches,
            rejected_batches=s.rejected_batches,
            streams=s.streams,
            stream_errors=s.stream_errors,
            lost_events=s.lost_events,
            errors=list(s.errors),
        )
    if _coverage is not None:
        out.update(code_edges=len(_coverage.edges), rearms=_coverage.rearms)
    return out


def configure(
    node: str | None = None,
    tracker: str | None = None,
    execution: str | None = None,
    *,
    coverage: str | list[str] | None = None,
    capacity: int | None = None,
    interval: float | None = None,
    batch_events: int | None = None,
    exit_hooks: bool = True,
) -> bool:
    """(Re)configure reporting; arguments left None come from the environment.

    ``tracker`` is "host:port" (empty string: no reporting). ``coverage``
    lists module prefixes or directories to cover (default
    ``HBFUZZ_COVERAGE_MODULES``; empty: no coverage). Returns :func:`enabled`.
    """
    global _node, _execution, _buf, _rec, _reporter, _hooks, _exited, _packb
    from instrumentation.reporter import (
        DEFAULT_BATCH_EVENTS,
        DEFAULT_CAPACITY,
        DEFAULT_INTERVAL,
        ENV_BATCH,
        ENV_CAPACITY,
        ENV_INTERVAL_MS,
        EventBuffer,
        ExitHooks,
        Reporter,
        make_packed_buffer,
    )

    shutdown(flush_timeout=1.0)
    env = os.environ
    tracker = env.get(protocol.ENV_TRACKER, "") if tracker is None else tracker
    _node = node or env.get(protocol.ENV_NODE) or f"pid{os.getpid()}"
    _execution = execution if execution is not None else env.get(protocol.ENV_EXECUTION, "")
    if coverage is None:
        coverage = env.get(protocol.ENV_COVERAGE, "")
    if not tracker:
        return False
    batch_events = batch_events or _env_number(ENV_BATCH, int) or DEFAULT_BATCH_EVENTS
    capacity = capacity or _env_number(ENV_CAPACITY, int) or DEFAULT_CAPACITY
    interval = interval or (_env_number(ENV_INTERVAL_MS, float) or 0) / 1000 or DEFAULT_INTERVAL
    rec = make_packed_buffer(
        capacity,
        batch_events,
        wall_offset=_wall_offset,
        lamport=_t,
        seq=_seq,
        fix_fields=_message_fields,
        fix_stamp=_as_stamp,
        edges=_edges,
        on_edges=_coverage_event,
    )
    buf = rec if rec is not None else EventBuffer(capacity, batch_events)
    rep = Reporter(
        tracker,
        _node,
        _execution,
        buf,
        interval=interval,
        batch_events=batch_events,
        before_flush=_before_flush,
    )
    _exited = False
    try:
        rep.start()
    except Exception:
        return False  # grpc missing or channel refused: stay a no-op
    _reporter = rep
    if rec is not None:
        import msgpack

        _packb = msgpack.packb
        rec.wake = rep.wake.set
        _rec = rec
        _bind(rec.send, rec.recv)  # module-level calls go straight to C
    else:
        _buf = buf
    if exit_hooks:
        _hooks = ExitHooks(_on_exit)
        _hooks.install()
    if coverage:
        start_coverage(coverage)
    return True


def _env_number(name: str, kind: type):
    """A positive number from the environment, or None (bad values are ignored)."""
    try:
        value = kind(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def start_coverage(prefixes: str | list[str], on_edge=None):
    """Start branch coverage of the given module prefixes / directories.

    New edges become COVERAGE events on this node's timeline (when reporting),
    and are also passed to ``on_edge`` if given. Returns the BranchCoverage.
    """
    global _coverage
    from instrumentation.coverage import BranchCoverage, CodeFilter, split_prefixes

    stop_coverage()
    items = split_prefixes(prefixes)
    if not items:
        return None
    reporting = enabled()
    append = _edges.append

    def sink(eid: int) -> None:
        if reporting:
            append(eid)
        if on_edge is not None:
            on_edge(eid)

    cov = BranchCoverage(CodeFilter(items), sink)
    cov.start()
    _coverage = cov
    if not reporting:
        # No reporter thread to re-arm parked branch sites (3.12/3.13): a small one.
        threading.Thread(
            target=_rearm_loop, args=(cov,), name="hbfuzz-coverage", daemon=True
        ).start()
    return cov


def _rearm_loop(cov) -> None:
    while cov.active:
        time.sleep(0.01)
        try:
            cov.rearm()
        except Exception:
            return


def stop_coverage() -> None:
    """Stop coverage and free its sys.monitoring tool id."""
    global _coverage
    cov, _coverage = _coverage, None
    if cov is not None:
        cov.stop()


def _bind(send_fn, recv_fn) -> None:
    """Point the module-level ``send``/``recv`` at these (the accelerator's or ours)."""
    g = globals()
    g["send"] = send_fn
    g["recv"] = recv_fn


def _unbind_recorder() -> None:
    """Back to the pure-Python functions, keeping the clock where the recorder left it."""
    global _rec, _t, _seq
    rec, _rec = _rec, None
    _bind(_py_send, _py_recv)
    if rec is not None:
        _t, _seq = rec.t, rec.seq


def shutdown(flush_timeout: float = 2.0) -> bool:
    """Flush, stop coverage and the reporter, back to no-op mode. Returns True if acked."""
    global _buf, _reporter, _hooks
    ok = False
    stop_coverage()
    rep, hooks = _reporter, _hooks
    _hooks = None
    if hooks is not None:
        hooks.uninstall()
    if rep is not None:
        try:
            ok = rep.close(flush_timeout)
        except Exception:
            ok = False
    _buf = None
    _unbind_recorder()
    _reporter = None
    _edges.clear()
    return ok


def _before_flush() -> None:
    """Runs on the reporter thread each cycle: re-arm coverage, ship pending edges."""
    cov = _coverage
    if cov is not None:
        cov.rearm()
    if not _edges:
        return
    if _GIL:
        _coverage_event()
    elif _lock.acquire(timeout=0.05):
        try:
            _coverage_event()
        finally:
            _lock.release()


def _on_exit(reason: str, code: int | None) -> None:
    """Exit hooks: record EXIT (without blocking on the node's lock), then flush."""
    global _exited
    rep = _reporter
    if rep is None:
        return
    if not _exited and (_GIL or _lock.acquire(timeout=0.1)):
        if not _GIL:
            _lock.release()
        exit_event(reason, code)
    if reason == "exit":
        stop_coverage()
        rep.close(2.0, at_exit=True)
    else:
        rep.flush(1.0)


def _after_fork_in_child() -> None:
    """A forked child cannot use the parent's gRPC channel: go quiet."""
    global _buf, _reporter, _hooks, _coverage
    _buf = None
    _unbind_recorder()
    _reporter = None
    _hooks = None
    _edges.clear()


if not _GIL:

    def _locked(fn):
        """Free-threaded build: serialise a hot-path function with the node lock."""

        def call(*args, **kwargs):
            with _lock:
                return fn(*args, **kwargs)

        call.__name__, call.__doc__, call.__wrapped__ = fn.__name__, fn.__doc__, fn
        return call

    send = _locked(send)
    recv = _locked(recv)
    _emit = _locked(_emit)


_py_send = send
_py_recv = recv

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

if os.environ.get(protocol.ENV_TRACKER):
    try:
        configure()
    except Exception:  # never break the node's import
        pass
