"""Mediator codec for PySyncObj's TCP framing: one frame per Raft message.

PySyncObj's ``TcpConnection.send`` writes each message as::

    struct.pack('i', len(data)) + data      # 4-byte signed length, native order
    data = zlib.compress(pickle.dumps(message, protocol=2), 3)   # or a Fernet
                                                                # token with a password

so frames are cut with a 4-byte length prefix in this machine's byte order
(the nodes run here). A declared length that is negative or over
``max_frame`` is a codec error (the stream cannot be resynchronised).

Message type, without ever unpickling: the payload's first ``peek`` bytes are
*decompressed* (bounded, so no zlib bomb) and the raw pickle bytes are
searched for the opcode sequence that encodes the dict key ``'type'``
followed by a short string (``X <len:u32le> 'type' [BINPUT] X <len> <name>``);
a name of 1..40 characters ``[a-z_]`` is the type (``append_entries``,
``request_vote``, ``response_vote``, ``next_node_idx``, ``apply_command``,
``apply_command_response``, ``timeout_now``). Otherwise the first opcode
tells: a pickled string is ``hello`` (the node-address handshake on a new
connection), a list is ``utility`` (PySyncObj's admin commands); anything
else, or an encrypted payload (``password`` set), is ``raft`` /
``encrypted``. With ``peek=0`` nothing is decompressed and every frame is
``raft``. No byte of a payload is ever executed or turned into objects.
"""

from __future__ import annotations

import re
import sys
import zlib
from functools import partial

from fuzzer.network.codecs import DEFAULT_MAX_FRAME, LengthPrefixedCodec, register_codec

__all__ = ["NAME", "PEEK", "PySyncObjCodec", "classify", "register"]

NAME = "pysyncobj"
PEEK = 64  # decompressed bytes inspected per frame: the leading 'type' key and its value
HEADER = 4
_TYPE = re.compile(rb"X\x04\x00\x00\x00type(?:q.|r....)?X(....)", re.S)
_NAME = re.compile(rb"[a-z_]{1,40}")
_STRING_OPS = frozenset(b"XUV\x8c")  # BINUNICODE, SHORT_BINSTRING, UNICODE, SHORT_BINUNICODE
_LIST_OPS = frozenset(b"](")  # EMPTY_LIST, MARK
_FERNET = b"gAAAAA"  # base64 of Fernet's version byte 0x80 and a timestamp's high bytes


def classify(frame: bytes, peek: int = PEEK) -> str:
    """The message type of one whole frame (header included); see the module doc."""
    payload = frame[HEADER:]
    if peek <= 0 or not payload:
        return "raft"
    if payload.startswith(_FERNET):
        return "encrypted"
    try:
        head = zlib.decompressobj().decompress(payload, peek)
    except zlib.error:
        return "raft"
    if head[:2] != b"\x80\x02" or len(head) < 3:
        return "raft"
    m = _TYPE.search(head)
    if m is not None:
        n = int.from_bytes(m.group(1), "little")
        name = head[m.end() : m.end() + n]
        if len(name) == n and _NAME.fullmatch(name):
            return name.decode("ascii")
    op = head[2]
    if op in _STRING_OPS:
        return "hello"
    if op in _LIST_OPS:
        return "utility"
    return "raft"


class PySyncObjCodec(LengthPrefixedCodec):
    """Length-prefixed frames (4-byte native-order length) typed by :func:`classify`.

    Parameters: ``max_frame`` (bytes, default 16 MiB), ``peek`` (decompressed
    bytes inspected for the type; 0 = do not decompress, every frame "raft").
    """

    name = NAME

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, peek: int = PEEK) -> None:
        super().__init__(
            size=4,
            byteorder=sys.byteorder,
            max_frame=max_frame,
            msg_type="raft",
            classify=partial(classify, peek=int(peek)),
        )


def register() -> None:
    """Make ``get_codec("pysyncobj", **params)`` available (idempotent)."""
    register_codec(NAME, PySyncObjCodec, replace=True)


register()
