"""Framing codecs: boundaries under any chunking, types, errors, registry."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.errors import NetworkError
from fuzzer.network.codecs import (
    Codec,
    CodecError,
    Frame,
    LengthPrefixedCodec,
    codec_names,
    get_codec,
    register_codec,
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def _feed_all(codec: Codec, chunks: list[bytes]) -> list[Frame]:
    out: list[Frame] = []
    for c in chunks:
        out += codec.feed(c)
    return out


def test_raw_codec_one_frame_per_chunk():
    c = get_codec("raw")
    assert c.feed(b"abc") == [Frame(b"abc", "raw")]
    assert c.feed(b"") == []
    assert c.feed(bytearray(b"x")) == [Frame(b"x", "raw")]
    assert c.consumed == 4


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("byteorder", ["big", "little"])
@pytest.mark.parametrize("includes_header", [False, True])
def test_length_prefixed_layouts(rng, size, byteorder, includes_header):
    # header: 3 bytes of tag, then the length field, then 1 spare byte
    c = get_codec(
        "length-prefixed",
        size=size,
        byteorder=byteorder,
        offset=3,
        header=3 + size + 1,
        includes_header=includes_header,
    )
    payloads = [rng.randbytes(rng.randrange(0, 200 if size > 1 else 100)) for _ in range(50)]
    frames = [c.encode(p) for p in payloads]
    for f, p in zip(frames, payloads, strict=True):
        length = int.from_bytes(f[3 : 3 + size], byteorder)
        assert length == (len(f) if includes_header else len(p))
    stream = b"".join(frames)
    cuts = [rng.randrange(len(stream) + 1) for _ in range(40)]
    got = _feed_all(c, _chunks(stream, cuts))
    assert [g.data for g in got] == frames
    assert c.pending() == 0 and c.consumed == len(stream)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=64), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_gives_the_same_frames(payloads, cuts):
    enc = LengthPrefixedCodec(size=2)
    stream = b"".join(enc.encode(p) for p in payloads)
    got = _feed_all(LengthPrefixedCodec(size=2), _chunks(stream, cuts))
    assert [g.data[2:] for g in got] == payloads


def test_message_type_from_a_header_field_and_from_a_classifier():
    c = get_codec("length-prefixed", size=4, header=5, type_offset=4, type_size=1)
    data = c.encode(b"hello", type_value=7) + c.encode(b"", type_value=2)
    assert [f.msg_type for f in c.feed(data)] == ["t7", "t2"]

    def classify(frame: bytes) -> str:
        return "vote" if frame[4:5] == b"V" else "append"

    c2 = get_codec("length-prefixed", classify=classify)
    assert [f.msg_type for f in c2.feed(c2.encode(b"Vx") + c2.encode(b"Ay"))] == [
        "vote",
        "append",
    ]


def test_oversized_length_names_codec_and_stream_offset():
    c = get_codec("length-prefixed", max_frame=100)
    good = c.encode(b"x" * 10)
    bad = struct.pack(">I", 1_000_000) + b"zz"
    assert len(c.feed(good)) == 1
    with pytest.raises(NetworkError, match=r"codec length-prefixed: at stream offset 14"):
        c.feed(bad)


def test_frames_before_a_codec_error_are_not_lost():
    c = get_codec("length-prefixed", max_frame=100)
    good = c.encode(b"a") + c.encode(b"bb")
    with pytest.raises(CodecError) as info:
        c.feed(good + struct.pack(">I", 500) + b"rest")
    err = info.value
    assert [f.data for f in err.frames] == [c.encode(b"a"), c.encode(b"bb")]
    assert (err.codec, err.offset) == ("length-prefixed", len(good))
    lines = get_codec("lines", max_line=8)
    with pytest.raises(CodecError) as info:
        lines.feed(b"ok\n" + b"y" * 20)
    assert info.value.frames == [Frame(b"ok\n", "line")]


def test_length_smaller_than_header_is_an_error_when_it_includes_the_header():
    c = get_codec("length-prefixed", size=2, includes_header=True)
    with pytest.raises(NetworkError, match="stream offset 0"):
        c.feed(b"\x00\x01abc")


def test_lines_codec():
    c = get_codec("lines", max_line=20)
    assert c.feed(b'{"a":1}\n{"b"') == [Frame(b'{"a":1}\n', "line")]
    assert c.feed(b":2}\n\n") == [Frame(b'{"b":2}\n', "line"), Frame(b"\n", "line")]
    with pytest.raises(NetworkError, match="codec lines"):
        c.feed(b"x" * 30)


def test_bad_parameters_and_unknown_codecs():
    with pytest.raises(NetworkError, match="size"):
        get_codec("length-prefixed", size=3)
    with pytest.raises(NetworkError, match="header"):
        get_codec("length-prefixed", size=4, offset=2, header=4)
    with pytest.raises(NetworkError, match="unknown codec 'nope'"):
        get_codec("nope")
    with pytest.raises(NetworkError, match="bad parameters"):
        get_codec("raw", colour="red")


def test_registry_accepts_target_codecs():
    class Fixed(Codec):
        """Every 3 bytes is a message (a stand-in for a target adapter's codec)."""

        name = "test-fixed3"

        def __init__(self) -> None:
            super().__init__()
            self.buf = b""

        def feed(self, data: bytes) -> list[Frame]:
            self.buf += data
            out = []
            while len(self.buf) >= 3:
                out.append(Frame(self.buf[:3], "fixed"))
                self.buf = self.buf[3:]
            return out

    register_codec(Fixed.name, Fixed, replace=True)
    assert Fixed.name in codec_names()
    assert [f.data for f in get_codec(Fixed.name).feed(b"abcdefg")] == [b"abc", b"def"]
    with pytest.raises(NetworkError, match="already registered"):
        register_codec(Fixed.name, Fixed)
