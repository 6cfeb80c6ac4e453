"""Per-node log files that cannot fill the disk, and the in-memory tail of one run.

Why: a node that floods stdout (a debug loop, a crash loop printing a stack
trace) must not fill the disk during an overnight campaign. The supervisor
reads each node's output through a pipe and writes it here; past ``cap``
bytes the file is rotated to ``NAME.1`` (one old file kept), so a node's logs
never take more than about twice the cap. The tail is what error messages
and NodeExit values quote.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path


class BoundedLog:
    """Append-only log with a size cap; rotation keeps one previous file."""

    def __init__(self, path: Path, cap: int):
        self.path = Path(path)
        self.cap = cap
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")
        self._size = self._f.tell()
        self.rotations = 0

    def write(self, data: bytes) -> None:
        if self._f.closed:
            return
        while data:
            room = self.cap - self._size
            if room <= 0:
                self._rotate()
                continue
            part, data = data[:room], data[room:]
            self._f.write(part)
            self._size += len(part)
        self._f.flush()

    def _rotate(self) -> None:
        self._f.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._f = open(self.path, "ab")
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class Tail:
    """The last ``limit`` bytes of a stream, for error messages."""

    def __init__(self, limit: int = 64 * 1024):
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        while self._size - len(self._chunks[0]) >= self.limit:
            self._size -= len(self._chunks.popleft())

    def text(self, lines: int = 40) -> str:
        data = b"".join(self._chunks)[-self.limit :]
        out = data.decode("utf-8", errors="replace").splitlines()
        return "\n".join(out[-lines:])
