"""Shared helpers for reading untrusted files and writing our own crash-safely.

Why one module: bundles, schedules, histories, choice maps, scheduler states
and coverage maps all come from disk, often from another machine (issue 8).
Each loader needs the same four guards, and a guard written four times is a
guard that is wrong in one of them:

- :func:`lz4_block_decompress` / :func:`lz4_frame_decompress` check the size
  the data *declares* against a limit before decompressing anything, and never
  produce more than the limit (an lz4 bomb is refused, not allocated);
- :func:`unpack_msgpack` unpacks with per-container limits and turns every
  msgpack failure (ExtraData, StackError, bad UTF-8, unhashable keys...) into
  one :class:`~fuzzer.errors.InputError` naming the file;
- :func:`safe_join` maps a name read from an input onto a path inside a base
  directory, refusing ``..``, absolute paths, NUL and symlinks that escape;
- :func:`write_bytes_atomic` replaces a file so that a crash at any moment
  leaves the old or the new content, never a torn file.

Nothing here ever unpickles or evaluates: msgpack and lz4 only.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzer.errors import InputError

__all__ = [
    "MsgpackLimits",
    "DEFAULT_LIMITS",
    "MAX_DECOMPRESSED",
    "TMP_PREFIX",
    "unpack_msgpack",
    "lz4_block_decompress",
    "lz4_frame_decompress",
    "read_bytes_bounded",
    "safe_join",
    "write_bytes_atomic",
    "write_text_atomic",
]

MAX_DECOMPRESSED = 256 * 2**20  # default bound on what any one of our files inflates to
TMP_PREFIX = ".tmp-"  # temp files of atomic writes (campaign cleanup removes strays)
_LZ4_MAX_RATIO = 255  # an lz4 block can expand at most ~255x


@dataclass(frozen=True, slots=True)
class MsgpackLimits:
    """Per-object limits handed to msgpack (each defaults to the buffer size in msgpack
    itself; ours are tighter so a 100 MB file cannot declare a 100 M element array)."""

    max_str_len: int = 64 * 2**20
    max_bin_len: int = 256 * 2**20
    max_array_len: int = 16 * 2**20
    max_map_len: int = 4 * 2**20
    max_ext_len: int = 2**20
    max_buffer_size: int = MAX_DECOMPRESSED


DEFAULT_LIMITS = MsgpackLimits()


def unpack_msgpack(
    data: bytes,
    *,
    path: str | None = None,
    what: str = "msgpack data",
    limits: MsgpackLimits = DEFAULT_LIMITS,
    use_list: bool = True,
    strict_map_key: bool = False,
) -> Any:
    """Unpack one msgpack object from untrusted ``data``; :class:`InputError` on anything bad.

    Extension types other than msgpack's timestamp come back as ``ExtType``
    values (never constructed into code objects); trailing bytes are an error.
    """
    import msgpack

    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError(f"{what} must be bytes, not {type(data).__name__}", path=path)
    if len(data) > limits.max_buffer_size:
        raise InputError(
            f"{what} is {len(data)} bytes, over the limit of {limits.max_buffer_size}", path=path
        )
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=use_list,
            strict_map_key=strict_map_key,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_bin_len,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=limits.max_ext_len,
        )
    except MemoryError:
        raise InputError(f"{what} is too large to unpack", path=path) from None
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError, TypeError
        raise InputError(f"{what} is not valid msgpack ({type(exc).__name__}: {exc})",
                         path=path) from None


def lz4_block_decompress(
    body: bytes,
    declared_size: int,
    *,
    limit: int = MAX_DECOMPRESSED,
    path: str | None = None,
    what: str = "lz4 block",
) -> bytes:
    """Decompress an lz4 block (stored without its size) whose size the header declared.

    The declared size is checked against ``limit`` and against what ``body``
    could possibly expand to *before* decompressing, so a few bytes claiming
    gigabytes are refused without allocating.
    """
    import lz4.block

    if type(declared_size) is not int or declared_size < 0:
        raise InputError(f"{what} declares a bad size {declared_size!r}", path=path)
    if declared_size > limit:
        raise InputError(
            f"{what} declares {declared_size} bytes, over the limit of {limit} "
            "(refused before decompressing)",
            path=path,
        )
    if declared_size > _LZ4_MAX_RATIO * len(body) + 64:
        raise InputError(f"{what} is truncated or declares a wrong size", path=path)
    if declared_size == 0:
        if len(body) > 1:
            raise InputError(f"{what} is corrupt (data after an empty block)", path=path)
        return b""
    try:
        out = lz4.block.decompress(body, uncompressed_size=declared_size)
    except Exception as exc:  # LZ4BlockError (RuntimeError), ValueError on corrupt input
        raise InputError(f"{what} is corrupt ({exc})", path=path) from None
    if len(out) != declared_size:
        raise InputError(f"{what} is corrupt (decompressed size differs from the header)",
                         path=path)
    return out


def lz4_frame_decompress(
    data: bytes,
    *,
    limit: int = MAX_DECOMPRESSED,
    path: str | None = None,
    what: str = "lz4 frame",
) -> bytes:
    """Decompress exactly one lz4 frame, producing at most ``limit`` bytes.

    The content size stored in the frame header (if any) is checked first;
    frames without one are decompressed with ``max_length`` so that output
    stops at the limit instead of exhausting memory.
    """
    import lz4.frame

    try:
        info = lz4.frame.get_frame_info(data)
    except Exception as exc:
        raise InputError(f"{what} has a bad header ({exc})", path=path) from None
    declared = info.get("content_size", 0) or 0
    if declared > limit:
        raise InputError(
            f"{what} declares {declared} bytes, over the limit of {limit} "
            "(refused before decompressing)",
            path=path,
        )
    dec = lz4.frame.LZ4FrameDecompressor()
    try:
        out = dec.decompress(data, max_length=limit + 1)
    except Exception as exc:  # RuntimeError from the C library on corrupt frames
        raise InputError(f"{what} is corrupt ({exc})", path=path) from None
    if len(out) > limit:
        raise InputError(f"{what} inflates past the limit of {limit} bytes", path=path)
    if not dec.eof:
        raise InputError(f"{what} is truncated", path=path)
    if dec.unused_data:
        raise InputError(f"{what} has {len(dec.unused_data)} trailing bytes", path=path)
    if declared and len(out) != declared:
        raise InputError(f"{what} is corrupt (size differs from its header)", path=path)
    return out


def read_bytes_bounded(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """Read at most ``limit`` bytes of ``path``; a larger file is an :class:`InputError`."""
    p = str(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", path=p) from None
    if len(data) > limit:
        raise InputError(f"{what} is over the limit of {limit} bytes", path=p)
    return data


def safe_join(base: str | os.PathLike, name: str) -> Path:
    """``base / name`` for a ``name`` read from untrusted input, refusing escapes.

    Refused with :class:`InputError`: non-strings, empty names, NUL bytes,
    absolute paths, any ``..`` component, and names whose resolved path
    (following symlinks already on disk) leaves ``base``.
    """
    if not isinstance(name, str):
        raise InputError(f"a file name must be a string, not {type(name).__name__}")
    if not name or "\x00" in name:
        raise InputError(f"file name {name!r} is empty or contains NUL")
    rel = Path(name)
    if rel.is_absolute() or name.startswith(("/", "\\")):
        raise InputError(f"file name {name!r} is absolute (must be relative to {base})")
    parts = name.replace("\\", "/").split("/")
    if any(part == ".." for part in parts):
        raise InputError(f"file name {name!r} contains '..' (path traversal)")
    root = Path(base).resolve()
    joined = root / rel
    try:
        real = joined.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise InputError(f"file name {name!r} cannot be resolved ({exc})") from None
    if real != root and not real.is_relative_to(root):
        raise InputError(f"file name {name!r} leaves {root} (through a symlink)")
    return joined


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    Temp file in the same directory (``.tmp-<name>.<pid>.<random>``, created
    exclusively with the usual umask), write, fsync, rename over ``path``,
    fsync the directory. The temp file is removed if anything fails; an
    ``OSError`` (disk full, read-only directory) propagates to the caller.
    """
    p = Path(path)
    tmp = p.with_name(f"{TMP_PREFIX}{p.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(p.parent)
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))
