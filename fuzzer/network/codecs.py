"""Framing codecs: cut a TCP byte stream into messages for per-message faults.

Why codecs: a TCP proxy sees bytes, but drop/delay/duplicate/reorder and the
HB graph need *messages* with a type. A codec is a small stateful parser, one
per stream direction, that returns complete frames (the exact bytes to
forward, header included) plus a message type for the HB abstraction. It only
reads boundaries and a type field: it never unpickles, decodes objects or
executes anything from a payload.

Built in: ``raw`` (each read chunk is one message), ``length-prefixed``
(configurable length field) and ``lines`` (newline-delimited, e.g. JSON
lines). Target adapters add their own with :func:`register_codec`.

A codec error (a declared length over the maximum frame size, a line that
never ends) raises :class:`CodecError` (a :class:`~fuzzer.errors.NetworkError`)
naming the codec and the stream offset and carrying the complete frames read
before the fault; the stream cannot be resynchronised after that, so the
transport forwards those frames and resets that connection.

``feed`` is on the mediator's hot path: it parses straight out of the chunk
it is given (``struct.unpack_from``, one slice per frame) and only buffers the
tail of an incomplete frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from fuzzer.errors import NetworkError

__all__ = [
    "Frame",
    "CodecError",
    "Codec",
    "RawCodec",
    "LengthPrefixedCodec",
    "LinesCodec",
    "register_codec",
    "get_codec",
    "codec_names",
    "DEFAULT_MAX_FRAME",
]

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_EMPTY = b""


class Frame(NamedTuple):
    """One message: the bytes to forward (header included) and its type."""

    data: bytes
    msg_type: str


Classifier = Callable[[bytes], str]


class CodecError(NetworkError):
    """A stream that cannot be framed. ``frames`` holds the complete frames that
    came before the fault in the same ``feed`` call, so nothing already read
    is lost: the transport forwards them, then resets the connection."""

    def __init__(self, codec: str, offset: int, what: str, frames: list[Frame]) -> None:
        super().__init__(f"codec {codec}: at stream offset {offset}: {what}")
        self.codec = codec
        self.offset = offset
        self.frames = frames


class Codec:
    """Base of all codecs: a stateful parser for one direction of one stream.

    Subclasses implement :meth:`feed`; ``consumed`` counts bytes already
    returned in frames (the stream offset of the buffered tail).
    """

    name = "codec"

    def __init__(self) -> None:
        self.consumed = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes read from the stream; return the frames now complete."""
        raise NotImplementedError

    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete frame."""
        return 0

    def reset(self) -> None:
        """Forget buffered bytes (the connection was closed or reset)."""
        self.consumed = 0

    def _error(self, offset: int, what: str, frames: list[Frame] | None = None) -> CodecError:
        return CodecError(self.name, offset, what, frames or [])


class RawCodec(Codec):
    """Each chunk read from the socket is one message (no framing known)."""

    name = "raw"

    def __init__(self, msg_type: str = "raw") -> None:
        super().__init__()
        self.msg_type = msg_type

    def feed(self, data: bytes) -> list[Frame]:
        if not data:
            return []
        self.consumed += len(data)
        return [Frame(bytes(data), self.msg_type)]


_LEN_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}
_BYTEORDERS = {"big": ">", "little": "<"}


class LengthPrefixedCodec(Codec):
    """Frames with a fixed-size header holding an unsigned length field.

    ``size``: bytes of the length field (1, 2, 4 or 8); ``byteorder``: "big"
    or "little"; ``offset``: where the length field starts in the header;
    ``header``: total header bytes (default ``offset + size``);
    ``includes_header``: whether the length counts the header too.
    The message type is ``msg_type``, or read from an unsigned field
    (``type_offset``/``type_size`` bytes into the frame) as ``"t<value>"``,
    or computed by ``classify(frame_bytes)`` (a target adapter's function).
    """

    name = "length-prefixed"

    def __init__(
        self,
        size: int = 4,
        byteorder: str = "big",
        offset: int = 0,
        header: int | None = None,
        includes_header: bool = False,
        max_frame: int = DEFAULT_MAX_FRAME,
        msg_type: str = "msg",
        type_offset: int | None = None,
        type_size: int = 1,
        classify: Classifier | None = None,
    ) -> None:
        super().__init__()
        if size not in _LEN_FORMATS:
            raise NetworkError(f"codec {self.name}: size must be 1, 2, 4 or 8, not {size!r}")
        if byteorder not in _BYTEORDERS:
            raise NetworkError(f"codec {self.name}: byteorder must be 'big' or 'little'")
        if offset < 0:
            raise NetworkError(f"codec {self.name}: offset must be >= 0, not {offset}")
        hdr = offset + size if header is None else header
        if hdr < offset + size:
            raise NetworkError(
                f"codec {self.name}: header of {hdr} bytes cannot hold a {size}-byte "
                f"length at offset {offset}"
            )
        if max_frame < hdr:
            raise NetworkError(f"codec {self.name}: max_frame {max_frame} is below the header")
        self.header = hdr
        self.offset = offset
        self.max_frame = max_frame
        self.includes_header = includes_header
        self._len_struct = struct.Struct(_BYTEORDERS[byteorder] + _LEN_FORMATS[size])
        self._unpack = self._len_struct.unpack_from
        self._adjust = 0 if includes_header else hdr
        self.msg_type = msg_type
        self._classify = classify
        self._type_struct: struct.Struct | None = None
        self._type_unpack = None
        self._type_offset = 0
        self._type_end = 0
        self._type_names: dict[int, str] = {}
        if type_offset is not None:
            if type_size not in _LEN_FORMATS or type_offset < 0:
                raise NetworkError(f"codec {self.name}: bad type field {type_offset}+{type_size}")
            self._type_struct = struct.Struct(_BYTEORDERS[byteorder] + _LEN_FORMATS[type_size])
            self._type_unpack = self._type_struct.unpack_from
            self._type_offset = type_offset
            self._type_end = type_offset + type_size
        self._buf = bytearray()
        self._need = hdr

    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        super().reset()
        self._buf = bytearray()
        self._need = self.header

    def _type_of(self, buf: bytes, pos: int, end: int) -> str:
        if self._classify is not None:
            return self._classify(buf[pos:end])
        if end - pos < self._type_end:
            return self.msg_type
        (v,) = self._type_unpack(buf, pos + self._type_offset)
        name = self._type_names.get(v)
        if name is None:
            name = self._type_names[v] = f"t{v}"
        return name

    def feed(self, data: bytes) -> list[Frame]:
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            buf = bytes(self._buf)
            self._buf = bytearray()
        else:
            buf = data if type(data) is bytes else bytes(data)
        n = len(buf)
        hdr = self.header
        if n < hdr:
            if n:
                self._buf = bytearray(buf)
                self._need = hdr
            return []
        unpack = self._unpack
        off = self.offset
        adjust = self._adjust
        max_frame = self.max_frame
        typed = self._classify is not None or self._type_unpack is not None
        msg_type = self.msg_type
        frames: list[Frame] = []
        append = frames.append
        pos = 0
        need = hdr
        while n - pos >= hdr:
            total = unpack(buf, pos + off)[0] + adjust
            if total > max_frame or total < hdr:
                bad = self.consumed + pos
                self.consumed = bad
                raise self._error(
                    bad,
                    f"frame declares {total} bytes (header {hdr}), outside [{hdr}, {max_frame}]",
                    frames,
                )
            end = pos + total
            if end > n:
                need = total
                break
            append(Frame(buf[pos:end], self._type_of(buf, pos, end) if typed else msg_type))
            pos = end
            need = hdr
        self.consumed += pos
        if pos < n:
            self._buf = bytearray(buf[pos:] if pos else buf)
            self._need = need
        return frames

    def encode(self, payload: bytes, type_value: int | None = None) -> bytes:
        """Build one frame around ``payload`` (for tests, benchmarks, clients).

        Header bytes other than the length (and the type, when a type field
        is configured and ``type_value`` given) are zero.
        """
        total = len(payload) + self.header
        length = total if self.includes_header else len(payload)
        out = bytearray(self.header)
        self._len_struct.pack_into(out, self.offset, length)
        if type_value is not None and self._type_struct is not None:
            if self._type_end > self.header:
                raise NetworkError(f"codec {self.name}: type field lies outside the header")
            self._type_struct.pack_into(out, self._type_offset, type_value)
        if total > self.max_frame:
            raise NetworkError(f"codec {self.name}: frame of {total} bytes over max_frame")
        return bytes(out) + payload


class LinesCodec(Codec):
    """Newline-delimited messages (JSON lines, text protocols); the newline is kept."""

    name = "lines"

    def __init__(self, msg_type: str = "line", max_line: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__()
        self.msg_type = msg_type
        self.max_line = max_line
        self._buf = bytearray()

    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        super().reset()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        if self._buf:
            if b"\n" not in data:
                self._buf += data
                self._check()
                return []
            buf = bytes(self._buf + data)
            self._buf = bytearray()
        else:
            buf = data if type(data) is bytes else bytes(data)
        frames: list[Frame] = []
        msg_type = self.msg_type
        pos = 0
        find = buf.find
        while True:
            nl = find(b"\n", pos)
            if nl < 0:
                break
            frames.append(Frame(buf[pos : nl + 1], msg_type))
            pos = nl + 1
        self.consumed += pos
        if pos < len(buf):
            self._buf = bytearray(buf[pos:])
            self._check(frames)
        return frames

    def _check(self, frames: list[Frame] | None = None) -> None:
        if len(self._buf) > self.max_line:
            raise self._error(self.consumed, f"line longer than {self.max_line} bytes", frames)


# --------------------------------------------------------------------------- registry

CodecFactory = Callable[..., Codec]
_REGISTRY: dict[str, CodecFactory] = {
    RawCodec.name: RawCodec,
    LengthPrefixedCodec.name: LengthPrefixedCodec,
    LinesCodec.name: LinesCodec,
}


def register_codec(name: str, factory: CodecFactory, *, replace: bool = False) -> None:
    """Make ``get_codec(name, **params)`` build codecs with ``factory(**params)``."""
    if name in _REGISTRY and not replace:
        raise NetworkError(f"codec {name!r} is already registered")
    _REGISTRY[name] = factory


def codec_names() -> list[str]:
    return sorted(_REGISTRY)


def get_codec(name: str, **params: Any) -> Codec:
    """A fresh codec (one per stream direction); NetworkError for unknown names/params."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise NetworkError(f"unknown codec {name!r} (known: {', '.join(codec_names())})")
    try:
        return factory(**params)
    except TypeError as exc:
        raise NetworkError(f"codec {name}: bad parameters {sorted(params)}: {exc}") from None
