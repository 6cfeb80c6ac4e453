"""fuzzer/safeio.py: bounded decompression, limited msgpack, safe_join, atomic writes.

The shared guards every loader of untrusted files uses (docs/reliability.md).
Hypothesis is seeded from the session seed (tests/conftest.py); example counts
are bounded (``HBFUZZ_FUZZ_SCALE=N`` multiplies them).
"""

from __future__ import annotations

import os

import lz4.block
import lz4.frame
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.errors import InputError
from fuzzer.safeio import (
    MsgpackLimits,
    lz4_block_decompress,
    lz4_frame_decompress,
    read_bytes_bounded,
    safe_join,
    unpack_msgpack,
    write_bytes_atomic,
)

SCALE = max(1, int(os.environ.get("HBFUZZ_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=200 * SCALE, deadline=None)
FEW = settings(max_examples=80 * SCALE, deadline=None)


def only_ours(fn, *args, **kw):
    """Call ``fn``; an InputError is fine, anything else fails the test."""
    try:
        return fn(*args, **kw)
    except InputError:
        return None


@FUZZ
@given(st.binary(max_size=200), st.integers(-1, 2**40))
def test_safeio_decompressors(data, declared):
    only_ours(lz4_block_decompress, data, declared, limit=2**20)
    only_ours(lz4_frame_decompress, data, limit=2**20)
    only_ours(lz4_frame_decompress, lz4.frame.compress(data) + data[:3], limit=2**20)
    only_ours(unpack_msgpack, data)


def test_safeio_bounds_and_declared_sizes():
    big = b"\x00" * 2**20
    with pytest.raises(InputError, match="before decompressing"):
        lz4_block_decompress(lz4.block.compress(big, store_size=False), len(big), limit=1000)
    assert lz4_block_decompress(lz4.block.compress(big, store_size=False), len(big)) == big
    with pytest.raises(InputError, match="before decompressing"):
        lz4_frame_decompress(lz4.frame.compress(big), limit=1000)
    with pytest.raises(InputError, match="past the limit"):
        lz4_frame_decompress(lz4.frame.compress(big, store_size=False), limit=1000)
    assert lz4_frame_decompress(lz4.frame.compress(big, store_size=False)) == big
    with pytest.raises(InputError, match="trailing"):
        lz4_frame_decompress(lz4.frame.compress(b"a") * 2)
    with pytest.raises(InputError):
        unpack_msgpack(msgpack.packb(list(range(100))), limits=MsgpackLimits(max_array_len=10))
    assert isinstance(unpack_msgpack(msgpack.packb(msgpack.ExtType(1, b"x"))), msgpack.ExtType)


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a\x00b", "", "..",
                                  "sub/../../x", "..\\x", "link/x", "link"])
def test_safe_join_refuses_escapes(tmp_path, name):
    base = tmp_path / "out"
    base.mkdir()
    (base / "link").symlink_to(tmp_path)  # a symlink inside the base that leaves it
    with pytest.raises(InputError):
        safe_join(base, name)


def test_safe_join_allows_names_inside(tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "ok").symlink_to(tmp_path / "inner")
    assert safe_join(tmp_path, "queue/id:000001,op:gen") == tmp_path.resolve() / "queue" / \
        "id:000001,op:gen"
    assert safe_join(tmp_path, "ok/x") == tmp_path.resolve() / "ok" / "x"
    assert safe_join(tmp_path, "a..b") == tmp_path.resolve() / "a..b"


@FEW
@given(st.text(max_size=30))
def test_safe_join_never_leaves_base(tmp_path_factory, name):
    base = tmp_path_factory.getbasetemp() / "sj"
    base.mkdir(exist_ok=True)
    p = only_ours(safe_join, base, name)
    if p is not None:
        assert p.resolve().is_relative_to(base.resolve())


def test_write_bytes_atomic_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "state.msgpack"
    write_bytes_atomic(p, b"old")
    write_bytes_atomic(p, b"new")
    assert p.read_bytes() == b"new"
    assert [x.name for x in tmp_path.iterdir()] == ["state.msgpack"]
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "x").write_bytes(b"kept")
    with pytest.raises(OSError):  # the rename fails: the temp file must not stay behind
        write_bytes_atomic(tmp_path / "adir", b"lost")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["adir", "state.msgpack"]
    assert (tmp_path / "adir" / "x").read_bytes() == b"kept"
    if os.geteuid() == 0:
        return  # root writes into read-only directories anyway
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "f").write_bytes(b"kept")
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError):
            write_bytes_atomic(ro / "f", b"lost")
        assert (ro / "f").read_bytes() == b"kept"
        assert sorted(x.name for x in ro.iterdir()) == ["f"]
    finally:
        ro.chmod(0o700)


def test_read_bytes_bounded(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100)
    assert read_bytes_bounded(p, 100) == b"x" * 100
    with pytest.raises(InputError, match="over the limit"):
        read_bytes_bounded(p, 99)
    with pytest.raises(InputError, match="cannot read"):
        read_bytes_bounded(tmp_path / "missing", 10)
