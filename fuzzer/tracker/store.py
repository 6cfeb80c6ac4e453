"""Compact append-only storage of one node's events (the timeline's memory).

Why: a fuzzing campaign pushes millions of events through the tracker, and
keeping each as a Python list costs ~350 bytes and makes every full garbage
collection walk all of them (it halved ingest throughput at a million
events). The wire batches the events arrived in are already a compact,
validated encoding (~20 bytes per event), so that is what is kept; a chunk is
decoded again only when a query needs its events, and a few decoded chunks
are cached. Events added in-process (no wire batch) are kept as arrays and
packed into a wire batch every :attr:`NodeLog.COMPACT_AT` events.
"""

from __future__ import annotations

from bisect import bisect_right

from instrumentation import protocol


class NodeLog:
    """One node's events in program order, as chunks of wire batches or arrays."""

    COMPACT_AT = 1024  # in-process events packed into a wire batch at this many
    DECODED_CACHE = 32  # decoded chunks kept for queries

    __slots__ = (
        "node",
        "execution",
        "compact_at",
        "chunks",
        "starts",
        "size",
        "first_seq",
        "_decoded",
    )

    def __init__(self, node: str, execution: str = "", compact_at: int | None = None) -> None:
        self.node = node
        self.execution = execution
        self.compact_at = compact_at or self.COMPACT_AT
        self.chunks: list[bytes | list] = []
        self.starts: list[int] = []  # position of each chunk's first event
        self.size = 0
        self.first_seq: int | None = None  # seq of the first event (for position guesses)
        self._decoded: dict[int, list] = {}

    def __len__(self) -> int:
        return self.size

    def append(self, raw_events: list[list], wire: bytes | None = None) -> None:
        """Append validated wire arrays; ``wire`` is the batch they were decoded from."""
        chunks, starts = self.chunks, self.starts
        base = self.size
        if not base and raw_events:
            self.first_seq = raw_events[0][0]
        self.size = base + len(raw_events)
        if wire is not None:
            chunks.append(wire)
            starts.append(base)
            return
        last = chunks[-1] if chunks else None
        if type(last) is list and len(last) < self.compact_at:
            last.extend(raw_events)
        else:
            last = list(raw_events)
            chunks.append(last)
            starts.append(base)
        if len(last) >= self.compact_at:
            try:
                packed = protocol.encode_batch(self.node, self.execution, 0, 0, last)
                protocol.decode_batch(packed)  # what queries will do: must round-trip
            except Exception:  # an in-process value msgpack cannot carry: keep the arrays
                return
            chunks[-1] = packed

    def chunk(self, i: int) -> list[list]:
        """The wire arrays of chunk ``i`` (decoded and cached if it is a wire batch)."""
        c = self.chunks[i]
        if type(c) is list:
            return c
        evs = self._decoded.get(i)
        if evs is None:
            if len(self._decoded) >= self.DECODED_CACHE:
                self._decoded.clear()
            evs = self._decoded[i] = protocol.decode_batch(c).events
        return evs

    def get(self, pos: int) -> list:
        """The wire array of the event at ``pos``."""
        i = bisect_right(self.starts, pos) - 1
        return self.chunk(i)[pos - self.starts[i]]

    def slice(self, start: int = 0, stop: int | None = None) -> list[list]:
        """The wire arrays at positions ``[start, stop)``."""
        stop = self.size if stop is None else min(stop, self.size)
        out: list[list] = []
        if start >= stop:
            return out
        starts = self.starts
        for i in range(max(bisect_right(starts, start) - 1, 0), len(starts)):
            s = starts[i]
            if s >= stop:
                break
            out.extend(self.chunk(i)[max(start - s, 0) : stop - s])
        return out
