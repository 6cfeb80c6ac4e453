"""The HB-coverage map: pattern hashing, AFL hit-count buckets, novelty, persistence.

Why separate from the abstraction (coverage.py): this part is plain numpy
over cell indices and knows nothing about events, so it is small, fast and
easy to test; and it is what a campaign saves and restores. Everything that
decides a cell is a stable function of 32-bit ids, so saved maps stay
meaningful in another process.
"""

from __future__ import annotations

import lz4.block
import msgpack
import numpy as np

from fuzzer.errors import InputError

MAP_BITS = 16
FORMAT_VERSION = 1

_M64 = (1 << 64) - 1
_K1 = 0x9E3779B97F4A7C15
_K2 = 0xC2B2AE3D27D4EB4F
_K3 = 0x165667B19E3779F9
# pattern tags, so a pair and a triple of the same ids land in different cells
TAG_PAIR = 0x1
TAG_TRIPLE = 0x2
TAG_MESSAGE = 0x3


def _bucket_table() -> np.ndarray:
    """AFL hit-count classes: count -> one bit (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+)."""
    t = np.zeros(129, dtype=np.uint8)
    classes = [(1, 1), (2, 2), (3, 3), (4, 7), (8, 15), (16, 31), (32, 127), (128, 128)]
    for bit, (lo, hi) in enumerate(classes):
        t[lo : hi + 1] = 1 << bit
    return t


BUCKETS = _bucket_table()


def bucket_bits(counts: np.ndarray) -> np.ndarray:
    """Map hit counts to their AFL bucket bit (0 for a count of 0)."""
    return BUCKETS[np.minimum(counts, 128)]


def pattern_index(tag: int, a: int, b: int, c: int = 0, bits: int = MAP_BITS) -> int:
    """Map cell of a pattern of (up to three) 32-bit abstract-event ids."""
    h = (((tag << 32) ^ a) * _K1 + b) & _M64
    h = ((h * _K2) ^ c) & _M64
    return ((h * _K3) & _M64) >> (64 - bits)


def pattern_indices(tag: int, a: np.ndarray, b: np.ndarray, c, bits: int = MAP_BITS) -> np.ndarray:
    """Vectorised :func:`pattern_index` over uint64 arrays (wrapping arithmetic)."""
    h = ((np.uint64(tag << 32) ^ a) * np.uint64(_K1) + b) * np.uint64(_K2)
    h ^= c
    return ((h * np.uint64(_K3)) >> np.uint64(64 - bits)).astype(np.intp)


class CoverageMap:
    """Global HB map (per cell: OR of hit-count bucket bits ever seen), the current
    window's hit counts, and the set of code edges ever seen."""

    def __init__(self, bits: int = MAP_BITS) -> None:
        if not 8 <= bits <= 24:
            raise ValueError(f"map bits must be within 8..24, got {bits}")
        self.bits = bits
        self.size = 1 << bits
        self.seen = np.zeros(self.size, dtype=np.uint8)
        self.window = np.zeros(self.size, dtype=np.uint32)
        self.edges: set[int] = set()

    def hit(self, cells: np.ndarray) -> None:
        """Count one hit per entry of ``cells`` (cell indices) in the current window."""
        self.window += np.bincount(cells, minlength=self.size).astype(np.uint32)

    def fold(self) -> tuple[int, int, int]:
        """Merge the window into the global map and clear it.

        Returns (cells hit in the window, cells new ever, known cells in a new bucket)."""
        bits = bucket_bits(self.window)
        hit = bits != 0
        seen = self.seen
        fresh = bits & ~seen
        new_cells = int(np.count_nonzero(hit & (seen == 0)))
        new_buckets = int(np.count_nonzero((fresh != 0) & (seen != 0)))
        seen |= bits
        self.window.fill(0)
        return int(np.count_nonzero(hit)), new_cells, new_buckets

    def cells(self) -> int:
        """Distinct cells ever hit, the unfolded window included."""
        return int(np.count_nonzero(self.seen | (self.window != 0)))

    def to_bytes(self) -> bytes:
        """The global map and edges (not the window) as lz4-compressed msgpack; never pickle."""
        doc = {
            "format": "hbfuzz-hbcoverage",
            "version": FORMAT_VERSION,
            "bits": self.bits,
            "seen": self.seen.tobytes(),
            "edges": np.array(sorted(self.edges), dtype=np.int64).tobytes(),
        }
        raw = msgpack.packb(doc, use_bin_type=True)
        return len(raw).to_bytes(4, "big") + lz4.block.compress(raw, store_size=False)

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "<bytes>") -> CoverageMap:
        """Restore what :meth:`to_bytes` saved; InputError names ``path`` and the key."""
        try:
            from fuzzer.safeio import lz4_block_decompress

            n = int.from_bytes(data[:4], "big")  # checked (limit, ratio) before decompressing
            doc = msgpack.unpackb(lz4_block_decompress(data[4:], n, limit=64 * 2**20), raw=False)
        except Exception as exc:
            raise InputError(f"not a coverage map ({exc})", path=path) from None
        if not isinstance(doc, dict) or doc.get("format") != "hbfuzz-hbcoverage":
            raise InputError("not a coverage map", path=path, where="format")
        if doc.get("version") != FORMAT_VERSION:
            raise InputError(
                f"unsupported version {doc.get('version')!r}", path=path, where="version"
            )
        bits = doc.get("bits")
        if type(bits) is not int or not 8 <= bits <= 24:
            raise InputError(f"bad map bits {bits!r}", path=path, where="bits")
        seen, edges = doc.get("seen"), doc.get("edges")
        if not isinstance(seen, bytes) or len(seen) != 1 << bits:
            raise InputError("map size does not match bits", path=path, where="seen")
        if not isinstance(edges, bytes) or len(edges) % 8:
            raise InputError("edge list is not int64", path=path, where="edges")
        m = cls(bits)
        m.seen[:] = np.frombuffer(seen, dtype=np.uint8)
        m.edges = set(np.frombuffer(edges, dtype=np.int64).tolist())
        return m
