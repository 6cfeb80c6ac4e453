"""The pysyncobj codec on byte streams built exactly as PySyncObj's TcpConnection
builds them (pickle protocol 2, zlib level 3, 4-byte native length). Real
captured streams are framed in test_pysyncobj_cluster.py; this covers chunking,
typing rules and errors without processes."""

from __future__ import annotations

import pickle
import struct
import sys
import zlib
from pathlib import Path

import pytest

from fuzzer.errors import NetworkError
from fuzzer.network.codecs import get_codec

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj.codec import NAME, classify  # noqa: E402


def frame(message) -> bytes:
    """PySyncObj's TcpConnection.send without encryption."""
    data = zlib.compress(pickle.dumps(message, 2), 3)
    return struct.pack("i", len(data)) + data


def raft_messages(rng) -> list[tuple[object, str]]:
    entries = [(bytes([0]) + rng.randbytes(rng.randrange(1, 300)), i, 2) for i in range(5, 9)]
    msgs = [
        ("127.0.0.1:7001", "hello"),
        ("n2", "hello"),
        (["status"], "utility"),
        ({"type": "request_vote", "term": 3, "last_log_index": 9, "last_log_term": 2},
         "request_vote"),
        ({"type": "response_vote", "term": 3, "_hb": (rng.randrange(1 << 60), 17)},
         "response_vote"),
        ({"type": "append_entries", "term": 3, "commit_index": 7, "entries": entries,
          "prevLogIdx": 4, "prevLogTerm": 2, "_hb": (1 << 59, 40)}, "append_entries"),
        ({"type": "append_entries", "term": 3, "commit_index": 7, "serialized": None},
         "append_entries"),
        ({"type": "next_node_idx", "next_node_idx": 9, "reset": False, "success": True},
         "next_node_idx"),
        ({"type": "apply_command", "command": rng.randbytes(50), "request_id": 3},
         "apply_command"),
        ({"type": "apply_command_response", "request_id": 3, "log_idx": 9, "log_term": 3},
         "apply_command_response"),
        ({"type": "timeout_now", "term": 3}, "timeout_now"),
        ({"term": 1}, "raft"),  # a dict without a type
    ]
    return msgs


def test_random_chunking_gives_exact_frames_and_types(rng):
    msgs = raft_messages(rng)
    order = [rng.randrange(len(msgs)) for _ in range(200)]
    frames = [frame(msgs[i][0]) for i in order]
    stream = b"".join(frames)
    codec = get_codec(NAME)
    out = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 5, 64, 1000, 4096])
        out += codec.feed(stream[pos : pos + step])
        pos += step
    assert [f.data for f in out] == frames
    assert [f.msg_type for f in out] == [msgs[i][1] for i in order]
    assert codec.pending() == 0 and codec.consumed == len(stream)


def test_types_without_decompressing_or_unpickling(rng):
    f = frame({"type": "append_entries", "term": 1})
    assert get_codec(NAME, peek=0).feed(f)[0].msg_type == "raft"
    token = b"gAAAAABl" + rng.randbytes(80)  # what a password-encrypted payload looks like
    assert classify(struct.pack("i", len(token)) + token) == "encrypted"
    garbage = rng.randbytes(64)
    assert classify(struct.pack("i", len(garbage)) + garbage) in ("raft", "encrypted")
    torn = zlib.compress(pickle.dumps({"type": "request_vote"}, 2))[:6]
    assert classify(struct.pack("i", len(torn)) + torn) == "raft"
    # a type that is not a plain identifier is not trusted
    assert classify(frame({"type": "Evil; type"})) == "raft"
    # an object the codec would have to execute to decode is never decoded: a
    # pickle of a class instance is just "raft", and nothing is imported or run
    assert classify(frame(NetworkError("x"))) == "raft"


def test_bad_lengths_and_params_are_network_errors():
    codec = get_codec(NAME)
    with pytest.raises(NetworkError, match="pysyncobj"):
        codec.feed(struct.pack("i", -5) + b"abcde")
    small = get_codec(NAME, max_frame=64)
    with pytest.raises(NetworkError, match="pysyncobj"):
        small.feed(frame({"type": "append_entries", "entries": [b"x" * 500]}))
    with pytest.raises(NetworkError, match="bad parameters"):
        get_codec(NAME, nonsense=1)
