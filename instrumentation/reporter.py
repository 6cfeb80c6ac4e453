"""Ship a node's events to the tracker without ever slowing or crashing the node.

Why this shape: the node's threads only append small tuples to a bounded
deque (O(1), no I/O, no encoding, no lock), or, where the optional C
accelerator is built (instrumentation/_fast.c, :class:`PackedBuffer`), write
each event already msgpack-encoded into one byte buffer: that cut a
recorded event's cost to the node from ~1.5 us to ~0.3-0.5 us in
scripts/bench/overhead.py, since the pure path allocates a tuple and three
large ints per event and the reporter then encodes them one by one. One
daemon thread does everything else: it sleeps until a batch is due, then
drains the buffer, encodes batches (:func:`protocol.encode_batch`: msgpack +
lz4; :func:`encode_packed` frames the pre-encoded bytes identically) and
feeds them to one long-lived gRPC client-streaming call on
:data:`protocol.METHOD` (generic bytes API, no generated code). When the
tracker is absent or slow the buffer fills and further events are dropped
and counted; the count rides in the next batch's ``dropped`` field.

When a batch is due: as soon as :data:`DEFAULT_MIN_BATCH` events wait (the
node's hot path wakes the thread), ``interval`` (25 ms by default) after the
previous send if any event waits, or at once after a VIOLATION or a flush
request. In between the thread sleeps: it used to wake every 5 ms, and each
wake-up takes the GIL from the node; sleeping until due cut an idle reporting
node's CPU from ~10 to ~4 ms per second (192 to 40 wake-ups/s; under load the
busy-node figures of scripts/bench/overhead.py did not move beyond noise).
Why not send every few ms regardless: each gRPC
message costs about 0.3 ms of CPU in gRPC's own threads (measured), which at
200 small batches a second is several percent of a core; batching by size
with a time bound keeps that under 2 % while a SIGKILLed node still loses at
most its last ~25 ms of events.

Flushing: periodically as above, on :meth:`Reporter.flush` (ends the stream
and waits for the tracker's ack, so everything before it is ingested), at
normal exit (atexit) and on SIGTERM (:class:`ExitHooks`).

grpc is imported only when a :class:`Reporter` starts, never by a node that
runs without a tracker.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from instrumentation import protocol
from instrumentation.errors import ProtocolError

DEFAULT_CAPACITY = 65_536  # events buffered before dropping
DEFAULT_INTERVAL = 0.025  # seconds an event may wait before it is sent (periodic flush)
# Events that are worth a batch before the interval is up. 4096 rather than 1024:
# each gRPC message costs ~0.15 ms of CPU in the node and more in the tracker,
# and in scripts/bench/overhead.py fewer, larger messages cut ~0.8 us per round
# trip (tracker 5.97 -> 5.44 us); the interval still bounds how long an event waits.
DEFAULT_MIN_BATCH = 4_096
DEFAULT_BATCH_EVENTS = 4_096  # events per batch
DEFAULT_MAX_INFLIGHT = 64  # batches handed to gRPC but not yet sent
RETRY = 0.005  # seconds before retrying an overdue send that could not go
# Optional tuning from the environment (read by instrumentation.configure).
ENV_CAPACITY = "HBFUZZ_REPORT_CAPACITY"  # events buffered before dropping
ENV_INTERVAL_MS = "HBFUZZ_REPORT_INTERVAL_MS"  # max wait of an event before sending, ms
ENV_BATCH = "HBFUZZ_REPORT_BATCH"  # events per batch
ENV_PURE = "HBFUZZ_REPORT_PURE"  # non-empty: never use the C accelerator (tests, comparisons)
TARGET_WIRE_BYTES = 1 << 20  # split batches above this (gRPC's default limit is 4 MiB)
_SCALARS = (type(None), bool, int, float, str, bytes)


class EventBuffer:
    """Bounded FIFO of raw event arrays (tuples) with a drop counter.

    Why plain int counters instead of ``len()``: the node's hot path inlines
    :meth:`put` as attribute reads and writes with no call in between, which
    CPython's GIL cannot interrupt (thread switches and signal handlers only
    happen at calls and backward jumps), so appends need no lock. The deque's
    ``append``/``popleft`` are atomic, so the reporter drains concurrently.

    Room is ``appended < until``. The reporter sets ``until`` (see
    :meth:`set_room`) so that ``capacity`` bounds everything the node holds
    for the tracker: the deque plus what was encoded but not yet taken by
    gRPC. ``wake_at`` is the ``appended`` count at which a full batch is
    waiting, so the hot path can wake the reporter early.
    """

    __slots__ = ("appended", "capacity", "dropped", "events", "taken", "until", "wake_at")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, batch: int = DEFAULT_BATCH_EVENTS) -> None:
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        self.events: deque[tuple] = deque()
        self.appended = 0  # events ever accepted
        self.taken = 0  # events ever drained
        self.until = capacity  # accept while appended < until
        self.wake_at = batch
        self.dropped = 0  # total ever dropped (monotonic; the reader computes deltas)

    def put(self, event: tuple) -> bool:
        """Append unless full (then count a drop). The API inlines this."""
        if self.appended < self.until:
            self.appended += 1
            self.events.append(event)
            return True
        self.dropped += 1
        return False

    def drain(self, limit: int) -> list[tuple]:
        """Remove and return up to ``limit`` oldest events (room is freed by set_room)."""
        events = self.events
        n = min(limit, len(events))
        pop = events.popleft
        out = [pop() for _ in range(n)]
        self.taken += n
        return out

    def set_room(self, held: int, batch: int = DEFAULT_BATCH_EVENTS) -> None:
        """Allow ``capacity - held`` events in the deque (``held``: encoded, not yet sent)."""
        self.until = self.taken + max(0, self.capacity - held)
        self.wake_at = self.taken + batch

    def encode(
        self, node: str, execution: str, first_seq: int, dropped: int, limit: int
    ) -> tuple[list[tuple[bytes, int]], int, int]:
        """Drain up to ``limit`` events into wire batches: ``(batches, discarded, taken)``."""
        events = self.drain(limit)
        if not events and not dropped:
            return [], 0, 0
        batches, discarded = encode_batches(node, execution, first_seq, dropped, events)
        return batches, discarded, len(events)

    def __len__(self) -> int:
        return len(self.events)


def _load_recorder():
    """The C accelerator's Recorder type, or None (not built, or a free-threaded build)."""
    if os.environ.get(ENV_PURE) or not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None
    try:
        from instrumentation._fast import Recorder
    except ImportError:
        return None
    return Recorder


_Recorder = _load_recorder()

if _Recorder is not None:

    class PackedBuffer(_Recorder):
        """The bounded buffer of the C accelerator (instrumentation/_fast.c).

        Same contract as :class:`EventBuffer` (``appended``/``until``/``wake_at``
        room accounting, drops counted, ``set_room``/``encode``/``len``), but
        events are stored already msgpack-encoded, so the node's hot path
        allocates nothing and the reporter only frames and compresses bytes.
        The node API records through :meth:`send`/:meth:`recv`/:meth:`emit`.
        """

        __slots__ = ()

        def set_room(self, held: int, batch: int = DEFAULT_BATCH_EVENTS) -> None:
            self.until = self.taken + max(0, self.capacity - held)
            self.wake_at = self.taken + batch

        def encode(
            self, node: str, execution: str, first_seq: int, dropped: int, limit: int
        ) -> tuple[list[tuple[bytes, int]], int, int]:
            return encode_packed(self, node, execution, first_seq, dropped, limit)

else:
    PackedBuffer = None


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_packed(
    buf, node: str, execution: str, first_seq: int, dropped: int, limit: int
) -> tuple[list[tuple[bytes, int]], int, int]:
    """Frame up to ``limit`` pre-encoded events of ``buf`` (a :class:`PackedBuffer`)
    as wire batches, byte for byte what :func:`protocol.encode_batch` gives for
    the same events. Returns ``(batches, discarded, taken)``; an event whose
    batch alone exceeds the target size is discarded (the caller counts it)."""
    import lz4.block
    import msgpack

    packb = msgpack.packb
    compress = lz4.block.compress
    head = b"\x95" + packb(node) + packb(execution)
    out: list[tuple[bytes, int]] = []
    discarded = taken = 0
    seq = first_seq
    max_bytes = TARGET_WIRE_BYTES * 15 // 16
    while taken < limit:
        blob, n = buf.take(limit - taken, max_bytes)
        if not n:
            break
        taken += n
        raw = b"".join((head, packb(seq), packb(dropped), _array_header(n), blob))
        wire = None
        if len(raw) <= protocol.MAX_RAW_BATCH:
            wire = protocol.HEADER.pack(protocol.MAGIC, protocol.VERSION, 0, len(raw)) + compress(
                raw, store_size=False
            )
        if wire is None or len(wire) > TARGET_WIRE_BYTES:
            discarded += n  # only ever one event: take() keeps batches under the target
            continue
        out.append((wire, n))
        seq += 1
        dropped = 0
    if not out and dropped:
        out.append((protocol.encode_batch(node, execution, first_seq, dropped, []), 0))
    return out, discarded, taken


def sanitize(value: object, depth: int = 0) -> object:
    """Make a field msgpack-encodable: unknown types become ``str(value)``.

    Only used on the slow path, after encoding a batch failed, so node authors
    may pass any value without the hot path paying for type checks.
    """
    if isinstance(value, _SCALARS):
        if type(value) is int and not -(2**63) <= value < 2**64:
            return str(value)
        return value
    if depth > 16:
        return str(value)
    if isinstance(value, list | tuple):
        return [sanitize(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str | int) else str(k)): sanitize(v, depth + 1)
            for k, v in value.items()
        }
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def encode_batches(
    node: str, execution: str, first_seq: int, dropped: int, events: list
) -> tuple[list[tuple[bytes, int]], int]:
    """Encode ``events`` as one or more wire batches no bigger than the target.

    Returns ``([(wire, n_events), ...], n_discarded)``: a single event that
    cannot fit a batch on its own is discarded (and must be counted as
    dropped by the caller). The first batch carries ``dropped``; batch
    sequence numbers start at ``first_seq``.
    """
    out: list[tuple[bytes, int]] = []
    discarded = 0
    stack = [events]
    while stack:
        chunk = stack.pop()
        if not chunk:
            continue
        seq = first_seq + len(out)
        drops = dropped if not out else 0
        try:
            wire = protocol.encode_batch(node, execution, seq, drops, chunk)
        except (TypeError, ValueError, OverflowError):
            chunk = [(*ev[:5], *(sanitize(f) for f in ev[5:])) for ev in chunk]
            try:
                wire = protocol.encode_batch(node, execution, seq, drops, chunk)
            except ProtocolError:
                wire = None
        except ProtocolError:
            wire = None
        if wire is not None and len(wire) <= TARGET_WIRE_BYTES:
            out.append((wire, len(chunk)))
            continue
        if len(chunk) == 1:
            discarded += 1
            continue
        mid = len(chunk) // 2
        stack.append(chunk[mid:])  # popped second: keeps event order
        stack.append(chunk[:mid])
    if not out and dropped:
        # Nothing to send but drops to report: an empty batch carries the count.
        out.append((protocol.encode_batch(node, execution, first_seq, dropped, []), 0))
    return out, discarded


@dataclass
class ReporterStats:
    """Counters a node (or a test) can read; plain ints, updated by the reporter thread."""

    batches: int = 0
    events: int = 0
    acked_batches: int = 0
    rejected_batches: int = 0
    streams: int = 0
    stream_errors: int = 0
    lost_events: int = 0  # handed to a stream that then broke
    errors: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(msg)


@dataclass
class _FlushRequest:
    final: bool
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    acked: bool = False


class _Stream:
    """One client-streaming call: a queue feeding gRPC's request iterator."""

    def __init__(self, method: Callable, backlog: list[tuple[bytes, int]]) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.queued = 0
        self.consumed = 0
        self.events_in = 0
        self.pending_events = 0  # queued here, not yet taken by gRPC
        for item in backlog:
            self.put(item)
        # wait_for_ready: the call waits (and reconnects) while the tracker is
        # absent; batches queue here, bounded by max_inflight, then the buffer.
        self.call = method.future(self._requests(), wait_for_ready=True)

    def _requests(self):
        q = self.q
        while True:
            item = q.get()
            if item is None:
                return
            self.consumed += 1
            self.pending_events -= item[1]
            yield item[0]

    def put(self, item: tuple[bytes, int]) -> None:
        self.queued += 1
        self.events_in += item[1]
        self.pending_events += item[1]
        self.q.put(item)

    def inflight(self) -> int:
        return self.queued - self.consumed

    def end(self) -> None:
        self.q.put(None)

    def leftovers(self) -> list[tuple[bytes, int]]:
        """Items never handed to gRPC (after the call broke)."""
        out = []
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                return out
            if item is not None:
                out.append(item)


class Reporter:
    """The background half of the instrumentation: one thread, one gRPC channel.

    ``before_flush`` (if given) runs on the reporter thread at the start of
    every cycle; the API uses it to turn newly hit code edges into a COVERAGE
    event so they land on the timeline in order with the node's messages.
    """

    def __init__(
        self,
        target: str,
        node: str,
        execution: str,
        buffer: EventBuffer,
        *,
        interval: float = DEFAULT_INTERVAL,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        before_flush: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self.node = node
        self.execution = execution
        self.buffer = buffer
        self.interval = interval
        self.min_batch = max(1, min(DEFAULT_MIN_BATCH, buffer.capacity // 2, batch_events))
        self.urgent = False  # set (then wake) to send now, e.g. after a VIOLATION
        self._last_send = time.monotonic()
        self.batch_events = batch_events
        self.max_inflight = max_inflight
        self.before_flush = before_flush
        self.stats = ReporterStats()
        self.wake = threading.Event()
        self._req_lock = threading.RLock()  # re-entrant: a SIGTERM flush may interrupt a flush
        self._requests: list[_FlushRequest] = []
        self._batch_seq = 0
        self._reported_drops = 0
        self._discarded = 0
        self._stream: _Stream | None = None
        self._backlog: list[tuple[bytes, int]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Reporter:
        import grpc  # lazy: only nodes that report pay for it

        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 500),
                ("grpc.max_send_message_length", protocol.MAX_WIRE_BATCH),
            ],
        )
        self._method = self._channel.stream_unary(
            protocol.METHOD, request_serializer=None, response_deserializer=None
        )
        self._thread = threading.Thread(target=self._run, name="hbfuzz-reporter", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float = 2.0) -> bool:
        """Send everything buffered, end the stream and wait for the tracker's ack.

        True when the tracker acknowledged every batch up to now. Safe from any
        thread and from signal handlers (it never takes the node's API lock).
        """
        return self._request(final=False, timeout=timeout)

    def close(self, timeout: float = 2.0, *, at_exit: bool = False) -> bool:
        """Final flush, then stop the thread and release the channel.

        At interpreter exit the channel is left to the process teardown:
        closing it under gRPC's own connectivity-polling thread makes that
        thread print a traceback, and no new thread may start then.
        """
        if self._closed:
            return True
        ok = self._request(final=True, timeout=timeout)
        self._closed = True
        if self._thread is not None:
            self._thread.join(timeout=0.5)
        if not at_exit:
            try:  # after gRPC's 0.2 s connectivity poll has noticed it is unwatched
                timer = threading.Timer(0.5, self._channel.close)
                timer.daemon = True
                timer.start()
            except Exception:
                pass
        return ok

    def _request(self, final: bool, timeout: float) -> bool:
        if self._closed or self._thread is None or not self._thread.is_alive():
            return False
        if os.getpid() != self._pid:
            return False  # forked child: the channel belongs to the parent
        req = _FlushRequest(final, time.monotonic() + timeout)
        with self._req_lock:
            self._requests.append(req)
        self.wake.set()
        req.done.wait(timeout + 0.5)
        return req.acked

    # -- the reporter thread -----------------------------------------------------

    def _run(self) -> None:
        while True:
            self.wake.wait(self._sleep_for())
            self.wake.clear()
            with self._req_lock:
                reqs, self._requests = self._requests, []
            final = any(r.final for r in reqs)
            try:
                self._cycle(reqs, final)
            except Exception as exc:  # never let the thread die
                self.stats.note(f"reporter cycle: {exc!r}")
            for r in reqs:
                r.done.set()
            if final:
                return

    def _cycle(self, reqs: list[_FlushRequest], final: bool) -> None:
        if self.before_flush is not None:
            try:
                self.before_flush()
            except Exception as exc:
                self.stats.note(f"before_flush: {exc!r}")
        self._reap_broken()
        if self._stream is None:
            self._open()
        if self._stream is not None and (reqs or self._due()):
            self.urgent = False
            self._last_send = time.monotonic()
            self._pump()
        self._set_limit()
        if reqs:
            deadline = min(r.deadline for r in reqs)
            acked = self._wait_ready(deadline) and self._finish_stream(deadline)
            for r in reqs:
                r.acked = acked
            if not final and self._stream is None:
                self._open()  # keep a stream open: threads cannot start at shutdown
            self._set_limit()

    def _set_limit(self) -> None:
        """Room left in the buffer: capacity minus what gRPC has not taken yet."""
        held = self._stream.pending_events if self._stream is not None else 0
        held += sum(n for _, n in self._backlog)
        self.buffer.set_room(held, self.min_batch)

    def _sleep_for(self) -> float:
        """Seconds until a batch is due by time; earlier wake-ups come from :attr:`wake`.

        Events that wait go ``interval`` after the previous send, so none waits
        longer than ``interval`` (plus scheduling); with nothing waiting, one
        check per ``interval`` keeps that bound for an event arriving now.
        ``min_batch`` waiting events (the hot path's ``wake_at``), a VIOLATION
        or a flush request wake the thread at once.
        """
        if not len(self.buffer):
            return self.interval
        due = self._last_send + self.interval - time.monotonic()
        if due <= 0:  # overdue: the cycle that just ran could not send (no stream yet)
            return min(RETRY, self.interval)
        return min(self.interval, due)

    def _due(self) -> bool:
        """Send now? Each gRPC message costs ~0.3 ms of CPU across gRPC's threads
        (measured, scripts/bench/overhead.py), so small batches wait: a batch goes
        when ``min_batch`` events wait, when the oldest has waited ``interval``, or
        when something is urgent."""
        waiting = len(self.buffer)
        if self.urgent or waiting >= self.min_batch:
            return True
        if not waiting and self.buffer.dropped + self._discarded == self._reported_drops:
            return False
        return time.monotonic() - self._last_send >= self.interval

    def _wait_ready(self, deadline: float) -> bool:
        """Is the tracker reachable (waiting until ``deadline``)? Ending a stream
        that never connected would lose the batches queued on it."""
        try:
            fut = self._grpc.channel_ready_future(self._channel)
        except Exception:
            return True  # e.g. no new threads at shutdown: just try
        try:
            fut.result(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except Exception:
            fut.cancel()
            return False

    def _open(self) -> None:
        backlog, self._backlog = self._backlog, []
        try:
            self._stream = _Stream(self._method, backlog)
            self.stats.streams += 1
        except Exception as exc:  # e.g. no new threads at interpreter shutdown
            self.stats.note(f"open stream: {exc!r}")
            self._backlog = backlog
            self._stream = None

    def _reap_broken(self) -> None:
        s = self._stream
        if s is None or not s.call.done():
            return
        # The call ended without us ending it: the tracker went away.
        self.stats.stream_errors += 1
        try:
            s.call.result(timeout=0)
        except Exception as exc:
            self.stats.note(f"stream broke: {type(exc).__name__}")
        s.end()  # release gRPC's request-iterator thread if it is waiting
        left = s.leftovers()
        handed = s.events_in - sum(n for _, n in left)
        self.stats.lost_events += max(0, handed)
        self._backlog.extend(left)
        self._stream = None

    def _pump(self) -> None:
        s = self._stream
        assert s is not None
        buf = self.buffer
        while s.inflight() < self.max_inflight:
            drops = buf.dropped + self._discarded - self._reported_drops
            if not len(buf) and not drops:
                return
            batches, discarded, taken = buf.encode(
                self.node, self.execution, self._batch_seq, drops, self.batch_events
            )
            self._discarded += discarded
            self._reported_drops += drops
            for item in batches:
                s.put(item)
                self._batch_seq += 1
                self.stats.batches += 1
                self.stats.events += item[1]
            if taken < self.batch_events:
                return

    def _finish_stream(self, deadline: float) -> bool:
        s = self._stream
        if s is None:
            return False
        self._stream = None
        s.end()
        try:
            ack = s.call.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            self.stats.stream_errors += 1
            self.stats.note(f"flush: {type(exc).__name__}")
            if not s.call.done():
                s.call.cancel()
            return False
        try:
            info = protocol.decode_ack(ack)
            self.stats.acked_batches += int(info.get("accepted", 0))
            self.stats.rejected_batches += int(info.get("rejected", 0))
            return not info.get("rejected")
        except Exception:
            return True


class ExitHooks:
    """Flush at normal exit and on SIGTERM, then exit as the node would have.

    Why chaining matters: a node may have its own SIGTERM handler (graceful
    shutdown); after flushing we call it. If the node had none (SIG_DFL) we
    restore the default and re-send the signal, so its exit status is still
    "killed by SIGTERM". SIGKILL cannot be caught: periodic flushing covers it.
    """

    def __init__(self, on_exit: Callable[[str, int | None], None]) -> None:
        self.on_exit = on_exit  # (reason, code): emits EXIT and flushes
        self.previous = None
        self.installed = False

    def install(self) -> None:
        atexit.register(self._atexit)
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            prev = signal.getsignal(signal.SIGTERM)
            if prev is None:  # installed from C: leave it alone
                return
            self.previous = prev
            signal.signal(signal.SIGTERM, self._on_sigterm)
            self.installed = True
        except (ValueError, OSError):
            pass

    def uninstall(self) -> None:
        atexit.unregister(self._atexit)
        if self.installed and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            try:
                signal.signal(signal.SIGTERM, self.previous)
            except (ValueError, OSError, TypeError):
                pass
        self.installed = False

    def _atexit(self) -> None:
        try:
            self.on_exit("exit", None)
        except Exception:
            pass

    def _on_sigterm(self, signum, frame) -> None:
        try:
            self.on_exit("SIGTERM", -signum)
        except Exception:
            pass
        prev = self.previous
        if callable(prev):
            prev(signum, frame)
            return
        if prev == signal.SIG_IGN:
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def make_packed_buffer(capacity: int, batch: int, **recorder) -> PackedBuffer | None:
    """A :class:`PackedBuffer` if the C accelerator is available (and not disabled
    with ``HBFUZZ_REPORT_PURE``), else None: the caller uses :class:`EventBuffer`."""
    if PackedBuffer is None or os.environ.get(ENV_PURE):
        return None
    try:
        return PackedBuffer(capacity=capacity, batch=batch, **recorder)
    except Exception:
        return None
