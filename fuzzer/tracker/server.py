"""The tracker's gRPC front door: nodes stream event batches, we validate and ingest them.

Why a thin shell: all decisions (what an event means, what is new coverage)
live in :mod:`fuzzer.tracker.timeline` and :mod:`fuzzer.tracker.coverage`;
this module only moves bytes. Each request message of the client-streaming
method :data:`instrumentation.protocol.METHOD` is one wire batch (raw bytes,
no generated code). A batch that fails :func:`protocol.decode_batch`
(malformed, truncated, oversized, wrong version) or the tracker's semantic
checks is rejected and counted; the stream goes on, other streams and other
nodes' data are untouched. The response, sent when the client closes its
stream, is :func:`protocol.encode_ack`.

gRPC runs handlers on a thread pool (one thread per open stream); they only
put the bytes on a bounded queue. One consumer thread decodes, validates and
ingests in arrival order (per stream, the order of its batches): with the
GIL, more Python threads doing the work would only add contention (measured:
tracker CPU per event grew ~50% from 2 to 8 streams that way). When the
consumer lags, the queue fills, handlers stop reading and gRPC's flow control
slows the reporters down. A stream's ack is sent once all its batches are
ingested.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from fuzzer.errors import HbfuzzError
from fuzzer.tracker.timeline import Tracker
from instrumentation import protocol

# gRPC's own limit sits a little above ours, so a batch just over MAX_WIRE_BATCH is
# refused by decode_batch (counted, stream continues) and only an absurdly large
# message is refused by gRPC itself (that one stream ends with RESOURCE_EXHAUSTED).
GRPC_MAX_RECEIVE = protocol.MAX_WIRE_BATCH + (1 << 20)


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of what the server has seen (all counts since start)."""

    accepted: int = 0  # batches ingested
    rejected: int = 0  # batches refused (ProtocolError or semantic check)
    events: int = 0  # events ingested
    dropped: int = 0  # events nodes reported as dropped by their reporters
    streams: int = 0  # streams opened
    active: int = 0  # streams open now
    stream_errors: int = 0  # streams that ended abnormally (client gone, too large)
    last_error: str | None = None
    dropped_by_node: dict[str, int] = field(default_factory=dict)


class _Counters:
    """Mutable counters behind a lock; :meth:`snapshot` gives a :class:`ServerStats`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        self.events = 0
        self.dropped = 0
        self.streams = 0
        self.active = 0
        self.stream_errors = 0
        self.last_error: str | None = None
        self.dropped_by_node: dict[str, int] = {}

    def reject(self, error: str) -> None:
        with self.lock:
            self.rejected += 1
            self.last_error = error

    def stream_error(self, error: str) -> None:
        with self.lock:
            self.stream_errors += 1
            self.last_error = error

    def accept(self, batch: protocol.Batch) -> None:
        with self.lock:
            self.accepted += 1
            self.events += len(batch.events)
            if batch.dropped:
                self.dropped += batch.dropped
                self.dropped_by_node[batch.node] = (
                    self.dropped_by_node.get(batch.node, 0) + batch.dropped
                )

    def snapshot(self) -> ServerStats:
        with self.lock:
            return ServerStats(
                self.accepted,
                self.rejected,
                self.events,
                self.dropped,
                self.streams,
                self.active,
                self.stream_errors,
                self.last_error,
                dict(self.dropped_by_node),
            )


_END = object()  # queued after a stream's last batch


class _StreamResult:
    """What the consumer found in one stream's batches, for that stream's ack."""

    __slots__ = ("accepted", "rejected", "error", "done")

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.error: str | None = None
        self.done = threading.Event()


class TrackerServer:
    """gRPC server on 127.0.0.1 (ephemeral port) feeding a :class:`Tracker`.

    ``with TrackerServer() as srv: addr = srv.address`` or ``start()``/``stop()``.
    """

    QUEUE_BATCHES = 64  # batches received but not yet ingested, before gRPC pushes back
    ACK_TIMEOUT = 60.0  # longest a closing stream waits for its batches to be ingested

    def __init__(
        self,
        tracker: Tracker | None = None,
        host: str = "127.0.0.1",
        max_streams: int = 128,
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise HbfuzzError(f"tracker must bind to loopback, not {host!r}")
        self.tracker = tracker if tracker is not None else Tracker()
        self.host = host
        self.max_streams = max_streams
        self.address: str | None = None
        self._server: grpc.Server | None = None
        self._c = _Counters()
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUE_BATCHES)
        self._consumer: threading.Thread | None = None

    @property
    def stats(self) -> ServerStats:
        return self._c.snapshot()

    def start(self) -> str:
        """Bind to an ephemeral loopback port, start serving, return "host:port"."""
        if self._server is not None:
            raise HbfuzzError("tracker server already started")
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_streams, thread_name_prefix="tracker"),
            handlers=[
                grpc.method_handlers_generic_handler(
                    protocol.SERVICE,
                    {"Report": grpc.stream_unary_rpc_method_handler(self._report)},
                )
            ],
            options=[
                ("grpc.max_receive_message_length", GRPC_MAX_RECEIVE),
                ("grpc.max_send_message_length", 1 << 20),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=self.max_streams,
        )
        port = server.add_insecure_port(f"{self.host}:0")
        if not port:
            raise HbfuzzError(f"tracker could not bind to {self.host}")
        self._consumer = threading.Thread(target=self._consume, name="tracker-ingest", daemon=True)
        self._consumer.start()
        server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}" if self.host != "::1" else f"[::1]:{port}"
        return self.address

    def stop(self, grace: float = 1.0) -> None:
        """Stop accepting streams; wait up to ``grace`` seconds for open ones to finish,
        then let the consumer finish what is queued."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait(grace + 5.0)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._queue.put(None)
            consumer.join(timeout=30.0)

    def __enter__(self) -> TrackerServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the handlers (gRPC worker threads, one per stream): only move bytes --------

    def _report(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        c = self._c
        with c.lock:
            c.streams += 1
            c.active += 1
        result = _StreamResult()
        put = self._queue.put
        try:
            for data in requests:
                put((data, result))  # blocks when the consumer lags: gRPC flow control
            if not context.is_active():  # gRPC ended the call: client gone or message too large
                result.error = "stream ended abnormally (client cancelled or message too large)"
                c.stream_error(result.error)
        except Exception as exc:  # stream broken: client gone, message over gRPC's limit
            result.error = f"stream ended: {type(exc).__name__}: {exc}"
            c.stream_error(result.error)
        finally:
            with c.lock:
                c.active -= 1
        put((_END, result))
        deadline = time.monotonic() + self.ACK_TIMEOUT
        while not result.done.wait(0.1):  # the ack means: all of it has been ingested
            if self._consumer is None or time.monotonic() > deadline:  # stopped meanwhile
                break
        return protocol.encode_ack(result.accepted, result.rejected, result.error)

    # -- the consumer (one thread): decode, validate, ingest, count ----------------

    def _consume(self) -> None:
        c = self._c
        decode = protocol.decode_batch
        ingest = self.tracker.ingest
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            data, result = item
            if data is _END:
                result.done.set()
                continue
            try:
                batch = decode(data)
                ingest(batch, data)
            except HbfuzzError as exc:  # ProtocolError and the tracker's semantic checks
                result.rejected += 1
                result.error = str(exc)
                c.reject(result.error)
                continue
            except Exception as exc:  # a bug must not take the tracker down
                result.rejected += 1
                result.error = f"internal error on batch: {type(exc).__name__}: {exc}"
                c.reject(result.error)
                continue
            result.accepted += 1
            c.accept(batch)
