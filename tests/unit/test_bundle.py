"""Reproducer bundles: round trip, and refusal of bad, oversized and wrong-version files."""

from __future__ import annotations

import pickle
import struct

import lz4.block
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzer.checkers.verdict import violated
from fuzzer.config import load_config
from fuzzer.errors import InputError
from fuzzer.execution.result import RecordedChoices
from fuzzer.faults import Schedule, parse_fault, parse_step
from fuzzer.repro.bundle import (
    BUNDLE_VERSION,
    MAGIC,
    Bundle,
    bundle_fields,
    dumps_bundle,
    load_bundle,
    loads_bundle,
    save_bundle,
)
from instrumentation.protocol import Event

MAELSTROM = "targets/maelstrom/target.toml"


def _bundle(rng) -> Bundle:
    cfg = load_config(MAELSTROM, ["workload.name=lin-kv", "target.node=nodes/pb_kv.py"],
                      load_module=False)
    sched = Schedule((parse_step("kill n1 1s"), parse_step("partition majority-minority 2s")),
                     rng.randrange(2**32))
    ev = Event("n1", 1, 3, 123456789, 5, 1, ("n2", "write", 7))
    v = violated("workload:lin-kv", "not-linearizable", "key 1: no linearization", (ev,))
    choices = RecordedChoices(faults={0: parse_fault("kill n2")})
    return Bundle(
        config=cfg.to_dict(), seed=rng.randrange(2**63), schedule=sched.to_text(),
        signature="workload:lin-kv/not-linearizable[op:read]", kind="safety",
        verdicts=bundle_fields([v]), choices=choices.to_msgpack(),
        workload=cfg.workload.to_dict(), trace=([*ev],),
        history=([0, "invoke", "read", None, 1, 5], [0, "ok", "read", 3, 1, 9]),
        versions={"hbfuzz": "0.1.0", "target": "maelstrom"}, stats={"events": 1},
        created=1.5,
    )


def test_round_trip(tmp_path, rng):
    b = _bundle(rng)
    p = save_bundle(tmp_path / "x.bundle", b)
    back = load_bundle(p)
    assert back.to_dict() == b.to_dict()
    assert back.schedule_obj() == Schedule.parse_text(b.schedule)
    assert back.choices_obj().faults == {0: parse_fault("kill n2")}
    h = back.history_obj()
    assert [op.f for op in h.ops] == ["read", "read"] and h.ops[1].value == 3
    cfg = back.config_obj()
    assert cfg.workload.name == "lin-kv"
    assert back.with_replay(rate=0.5).replay == {"rate": 0.5}
    assert not list(tmp_path.glob(".tmp-*"))


def test_save_from_fields(tmp_path, rng):
    b = _bundle(rng)
    p = save_bundle(tmp_path / "y.bundle", config=b.config, seed=3, schedule=b.schedule,
                    signature="s", verdicts=b.verdicts)
    back = load_bundle(p)
    assert back.seed == 3 and back.signature == "s" and back.created > 0


def _frame(payload: bytes, version: int = BUNDLE_VERSION, size: int | None = None) -> bytes:
    n = len(payload) if size is None else size
    return struct.pack(">8sHQ", MAGIC, version, n) + lz4.block.compress(payload,
                                                                          store_size=False)


def test_wrong_version_is_a_clear_error(rng):
    data = dumps_bundle(_bundle(rng))
    newer = data[:8] + struct.pack(">H", BUNDLE_VERSION + 1) + data[10:]
    with pytest.raises(InputError, match=r"f\.bundle: bundle format version 2 is not supported"):
        loads_bundle(newer, "f.bundle")


def test_lz4_bomb_refused_before_decompressing():
    bomb = _frame(b"\0" * (8 * 2**20))  # 8 MiB of zeros compresses to ~32 KiB
    assert len(bomb) < 64 * 1024
    with pytest.raises(InputError, match="over the 1048576-byte limit"):
        loads_bundle(bomb, "bomb.bundle", max_payload=2**20)
    lying = _frame(b"\x90", size=2**40)  # a header claiming a terabyte
    with pytest.raises(InputError, match="refused before decompressing"):
        loads_bundle(lying, "lie.bundle")


def test_oversized_file_refused(tmp_path, rng):
    p = save_bundle(tmp_path / "big.bundle", _bundle(rng))
    with pytest.raises(InputError, match="big.bundle: bundle file is .* over the 100-byte limit"):
        load_bundle(p, max_bytes=100)


def test_not_a_bundle(tmp_path):
    p = tmp_path / "evil.bundle"
    p.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(InputError, match="evil.bundle: not an hbfuzz bundle"):
        load_bundle(p)
    with pytest.raises(InputError, match="cannot read bundle"):
        load_bundle(tmp_path / "missing.bundle")


def test_truncated_and_corrupt(rng):
    data = dumps_bundle(_bundle(rng))
    with pytest.raises(InputError):
        loads_bundle(data[: len(data) // 2], "t.bundle")
    with pytest.raises(InputError, match="corrupt|truncated"):
        loads_bundle(data[:20] + b"\xff" * (len(data) - 20), "c.bundle")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("seed", "one", r"seed: expected an integer"),
        ("kind", "meltdown", r"kind: expected one of safety, liveness"),
        ("schedule", "explode n1 1s", r"schedule: line 1"),
        ("verdicts", [{"oracle": "x"}], r"verdicts\[0\]\.status: is required"),
        ("history", [[1, 2]], r"history\[0\]: expected an op row"),
        ("choices", b"\x01", r"choices: not a msgpack choice record|choice record"),
        ("surprise", 1, r"surprise: unknown key in bundle"),
        ("config", [], r"config: expected a table"),
    ],
)
def test_schema_errors_name_the_key(rng, key, value, match):
    d = _bundle(rng).to_dict()
    d[key] = value
    with pytest.raises(InputError, match=match) as ei:
        loads_bundle(_frame(msgpack.packb(d, use_bin_type=True)), "k.bundle")
    assert str(ei.value).startswith("k.bundle")


def test_missing_required_key(rng):
    d = _bundle(rng).to_dict()
    del d["signature"]
    with pytest.raises(InputError, match="k.bundle: signature: is required"):
        loads_bundle(_frame(msgpack.packb(d, use_bin_type=True)), "k.bundle")


def test_ext_types_never_turn_into_objects(rng):
    d = _bundle(rng).to_dict()
    d["stats"] = {"x": msgpack.ExtType(42, b"os.system('rm -rf /')")}
    b = loads_bundle(_frame(msgpack.packb(d, use_bin_type=True)), "e.bundle")
    assert isinstance(b.stats["x"], msgpack.ExtType)  # inert data, nothing ran


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_loads_only_raises_input_error(data):
    for blob in (data, MAGIC + struct.pack(">HQ", BUNDLE_VERSION, len(data)) + data):
        try:
            loads_bundle(blob, "fuzz.bundle")
        except InputError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                    | st.text(max_size=8)
                    | st.binary(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                         max_size=3),
                    max_leaves=12))
def test_fuzz_payload_schema_only_raises_input_error(obj):
    try:
        loads_bundle(_frame(msgpack.packb(obj, use_bin_type=True)), "p.bundle")
    except InputError:
        pass


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=12) | st.binary(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["format", "hbfuzz_version", "created", "config", "versions", "seed",
                            "schedule", "choices", "workload", "trace", "history", "verdicts",
                            "signature", "kind", "stats", "replay"]),
       value=_VALUES, seed=st.integers(0, 2**32))
def test_fuzz_one_bad_field_only_raises_input_error(key, value, seed):
    import random

    d = _bundle(random.Random(seed)).to_dict()
    d[key] = value
    try:
        loads_bundle(_frame(msgpack.packb(d, use_bin_type=True)), "m.bundle")
    except InputError:
        pass
