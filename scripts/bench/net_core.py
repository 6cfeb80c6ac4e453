"""Benchmark: the pure cores on the mediator's hot path.

Times, as medians over ``--repeat`` runs, in pure Python on one core:

- ``length-prefixed`` codec ``feed``: frames/s for a seeded stream of
  ``--frames`` frames (payloads 16..512 bytes, 4-byte big-endian length)
  fed in 4 KiB chunks, so frames straddle chunk boundaries;
- the same with a type field read from the header (``type_offset``);
- ``NetworkModel.decide``: decisions/s on clean links (the common case) and
  on faulty links (delay+jitter, drop, duplicate, reorder), over 20 links.

The figure is the codec's frames/s (target > 100k frames/s).

Run: ``python scripts/bench/net_core.py [--frames 200000] [--repeat 5] [--json]``.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.network.codecs import LengthPrefixedCodec, get_codec  # noqa: E402
from fuzzer.network.model import LinkRule, NetworkModel  # noqa: E402

NODES = ["n1", "n2", "n3", "n4", "n5"]
CHUNK = 4096


def _stream(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    enc = LengthPrefixedCodec(size=4, header=5, type_offset=4)
    return b"".join(
        enc.encode(rng.randbytes(rng.randrange(16, 513)), rng.randrange(8)) for _ in range(n)
    )


def _time_codec(stream: bytes, n: int, **params) -> float:
    codec = get_codec("length-prefixed", **params)
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    t0 = time.perf_counter()
    got = 0
    for c in chunks:
        got += len(codec.feed(c))
    dt = time.perf_counter() - t0
    assert got == n, (got, n)
    return n / dt


def _time_model(n: int, seed: int, rule: LinkRule | None) -> float:
    rng = random.Random(seed)
    links = [(a, b) for a in NODES for b in NODES if a != b]
    order = [links[rng.randrange(len(links))] for _ in range(n)]
    model = NetworkModel(NODES, seed)
    if rule is not None:
        for a, b in links:
            model.set_rule(a, b, rule)
    decide = model.decide
    t0 = time.perf_counter()
    for a, b in order:
        decide(a, b)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    stream = _stream(args.frames, args.seed)
    faulty = LinkRule(delay=0.01, jitter=0.005, drop=0.1, duplicate=0.05, reorder=0.05)
    runs: dict[str, list[float]] = {"codec": [], "codec_typed": [], "clean": [], "faulty": []}
    for i in range(args.repeat):
        runs["codec"].append(_time_codec(stream, args.frames, size=4, header=5))
        runs["codec_typed"].append(
            _time_codec(stream, args.frames, size=4, header=5, type_offset=4)
        )
        runs["clean"].append(_time_model(args.frames, args.seed + i, None))
        runs["faulty"].append(_time_model(args.frames, args.seed + i, faulty))
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "figure": round(med["codec"]),
        "unit": "frames/s",
        "codec_frames_per_s": round(med["codec"]),
        "codec_typed_frames_per_s": round(med["codec_typed"]),
        "model_clean_decisions_per_s": round(med["clean"]),
        "model_faulty_decisions_per_s": round(med["faulty"]),
        "frames": args.frames,
        "mean_frame_bytes": round(len(stream) / args.frames, 1),
        "repeat": args.repeat,
        "target_frames_per_s": 100_000,
        "ok": med["codec"] > 100_000,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:32} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
