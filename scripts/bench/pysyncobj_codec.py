"""Benchmark: the ``pysyncobj`` mediator codec on a realistic Raft byte stream.

The stream mixes frames built exactly as PySyncObj's TcpConnection builds
them (pickle protocol 2, zlib level 3, 4-byte length): 60 % heartbeats
(append_entries without entries), 30 % next_node_idx, 10 % append_entries
with 1-8 entries of 20-200 bytes, each with the ``_hb`` stamp the node hooks
add. It is fed to a fresh codec in 64 KiB chunks; the figure is the median
throughput in frames per second (type read by bounded decompression + byte
matching), with ``peek=0`` (framing only) as a comparison.

Run: ``python scripts/bench/pysyncobj_codec.py [--frames 20000] [--repeat 7] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.network.codecs import get_codec  # noqa: E402
from targets.pysyncobj.codec import NAME  # noqa: E402


def stream(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = []
    base = 1_700_000_000_000 << 20
    for i in range(n):
        r = rng.random()
        if r < 0.6:
            msg = {"type": "append_entries", "term": 7, "commit_index": 1000 + i,
                   "entries": [], "prevLogIdx": 1000 + i, "prevLogTerm": 7}
        elif r < 0.9:
            msg = {"type": "next_node_idx", "next_node_idx": 1001 + i, "reset": False,
                   "success": True}
        else:
            entries = [(bytes([0]) + rng.randbytes(rng.randrange(20, 200)), 1000 + i + k, 7)
                       for k in range(rng.randrange(1, 9))]
            msg = {"type": "append_entries", "term": 7, "commit_index": 1000 + i,
                   "entries": entries, "prevLogIdx": 999 + i, "prevLogTerm": 7}
        msg["_hb"] = (base + i, 5000 + i)
        data = zlib.compress(pickle.dumps(msg, 2), 3)
        out.append(struct.pack("i", len(data)) + data)
    return b"".join(out)


def run(data: bytes, peek: int) -> tuple[float, int]:
    codec = get_codec(NAME, peek=peek)
    frames = 0
    t0 = time.perf_counter()
    for pos in range(0, len(data), 65536):
        frames += len(codec.feed(data[pos : pos + 65536]))
    return time.perf_counter() - t0, frames


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = stream(args.frames, 1)
    typed = []
    framing = []
    for _ in range(args.repeat):
        dt, n = run(data, 64)
        assert n == args.frames
        typed.append(n / dt)
        dt, n = run(data, 0)
        framing.append(n / dt)
    result = {
        "bench": "pysyncobj_codec",
        "figure": round(statistics.median(typed)),
        "unit": "frames/s",
        "typed_frames_per_s": round(statistics.median(typed)),
        "framing_only_frames_per_s": round(statistics.median(framing)),
        "mean_frame_bytes": round(len(data) / args.frames, 1),
        "typed_MB_per_s": round(statistics.median(typed) * len(data) / args.frames / 1e6, 1),
        "frames": args.frames,
        "repeat": args.repeat,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:28} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
