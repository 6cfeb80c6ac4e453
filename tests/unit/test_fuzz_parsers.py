"""Fuzz every parser of untrusted input: each may only raise our documented errors.

Issue 8: bundles, schedules, configs, histories, choice maps, coverage maps,
scheduler states, event batches and TCP streams come from other machines and
other processes. Whatever the bytes, a loader either returns a value or
raises one of :data:`ALLOWED` (``HbfuzzError`` subclasses with a one-line
message); a raw ``ValueError``/``KeyError``/``TypeError``/``RecursionError``/
``MemoryError``/``OverflowError`` escaping is a bug. Hypothesis is seeded from
the session seed (tests/conftest.py), and every test has a bounded example
count so the module stays well under a minute on two cores
(``HBFUZZ_FUZZ_SCALE=N`` multiplies the counts for a longer session).
"""

from __future__ import annotations

import copy
import os
import random
import struct
import tomllib
from pathlib import Path

import lz4.block
import lz4.frame
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzer.errors import ConfigError, InputError, NetworkError, ProtocolError, UsageError
from instrumentation import protocol as P

ALLOWED = (InputError, ConfigError, ProtocolError, NetworkError, UsageError)
ROOT = Path(__file__).resolve().parents[2]
# HBFUZZ_FUZZ_SCALE=20 runs 20x the examples (a longer fuzzing session outside the suite)
SCALE = max(1, int(os.environ.get("HBFUZZ_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=200 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=80 * SCALE, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def only_ours(fn, *args, **kw):
    """Call ``fn``; swallow our documented errors, let anything else fail the test."""
    try:
        return fn(*args, **kw)
    except ALLOWED:
        return None


# --------------------------------------------------------------------------- strategies

SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=12) | st.binary(max_size=12)
)
MSGPACK_VALUES = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**64 - 1), c,
                                                        max_size=4),
    max_leaves=20,
)
TOML_SCALARS = (
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=16)
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=10), c,
                                                        max_size=4),
    max_leaves=16,
)


def mutate(data: bytes, r: random.Random, n: int = 3) -> bytes:
    """A few byte-level edits: flip, overwrite, insert, delete, truncate, duplicate a slice."""
    b = bytearray(data)
    for _ in range(n):
        op = r.randrange(6)
        i = r.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << r.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = r.choice([0, 0xFF, 0x7F, 0x80, 0xC1, 0xDD, 0xDF, r.randrange(256)])
        elif op == 2:
            b[i:i] = bytes(r.randrange(256) for _ in range(r.randrange(1, 5)))
        elif op == 3 and b:
            del b[i : i + r.randrange(1, 8)]
        elif op == 4:
            del b[i:]
        elif b:
            j = r.randrange(len(b))
            b[i:i] = b[j : j + r.randrange(1, 16)]
    return bytes(b)


def mutate_text(text: str, r: random.Random) -> str:
    """Line and token level edits of a text form (what a careless editor produces)."""
    lines = text.splitlines()
    words = " ".join(lines).split() or ["x"]
    for _ in range(r.randrange(1, 4)):
        op = r.randrange(5)
        if not lines:
            lines = [""]
        i = r.randrange(len(lines))
        toks = lines[i].split()
        if op == 0:
            lines.insert(i, " ".join(r.choice(words) for _ in range(r.randrange(1, 5))))
        elif op == 1 and toks:
            toks[r.randrange(len(toks))] = r.choice(
                words + ["", "-1", "1e309", "nan", "inf", "0x10", "9" * 40, "\x00", "..", "é",
                         "n0", "n99", "->", "*->*", "x0", "x-1", "+-1s", "1d", "[", "]", "=",
                         '"', "{", "}"])
            lines[i] = " ".join(toks)
        elif op == 2:
            del lines[i]
        elif op == 3:
            lines[i] = lines[i][: r.randrange(len(lines[i]) + 1)]
        else:
            lines.insert(r.randrange(len(lines) + 1), lines[i])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- event batches


def _frame_batch(raw: bytes, raw_len: int | None = None, version: int = P.VERSION) -> bytes:
    body = lz4.block.compress(raw, store_size=False)
    return P.HEADER.pack(P.MAGIC, version, 0, len(raw) if raw_len is None else raw_len) + body


EVENT_FIELD = st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6) | st.floats() \
    | st.lists(st.integers(0, 2**32), max_size=4) \
    | st.dictionaries(st.text(max_size=4), st.integers(0, 2**32) | st.text(max_size=4), max_size=3)


@st.composite
def raw_events(draw):
    kind = draw(st.sampled_from(sorted(P.FIELDS)) | st.integers(-3, 20))
    n = len(P.FIELDS.get(kind, ())) if draw(st.booleans()) else draw(st.integers(0, 6))
    head = [draw(st.integers(-5, 2**64 - 1) | st.floats() | st.text(max_size=3)) for _ in range(4)]
    if draw(st.booleans()):
        head = [draw(st.integers(0, 10**6)) for _ in range(4)]
    return [*head, kind, *[draw(EVENT_FIELD) for _ in range(n)]]


@FUZZ
@given(st.binary(max_size=600))
def test_decode_batch_random_bytes(data):
    only_ours(P.decode_batch, data)
    only_ours(P.decode_batch, P.HEADER.pack(P.MAGIC, P.VERSION, 0, len(data)) + data)


@FUZZ
@given(st.lists(raw_events(), max_size=6), st.integers(0, 2**32))
def test_decode_batch_mutated_valid(events, seed):
    r = random.Random(seed)
    good = P.encode_batch("n1", "e1", 3, 0, events)
    b = only_ours(P.decode_batch, good)
    if b is not None:  # every shape decode_batch accepts, its consumers can index
        for ev in b.events:
            e = P.to_event(b.node, ev)
            for name in P.FIELDS[e.kind]:
                e.field(name)
    only_ours(P.decode_batch, mutate(good, r, r.randrange(1, 6)))
    raw = msgpack.packb(["n1", "e1", 3, 0, events], use_bin_type=True)
    only_ours(P.decode_batch, _frame_batch(mutate(raw, r, r.randrange(1, 6))))


@FUZZ
@given(MSGPACK_VALUES)
def test_decode_batch_valid_msgpack_wrong_shapes(obj):
    only_ours(P.decode_batch, _frame_batch(msgpack.packb(obj, use_bin_type=True)))
    batch = ["n", "e", 0, 0, [obj]] if not isinstance(obj, list) else ["n", "e", 0, 0, obj]
    only_ours(P.decode_batch, _frame_batch(msgpack.packb(batch, use_bin_type=True)))


@FUZZ
@given(st.lists(st.lists(raw_events(), max_size=5), min_size=1, max_size=4),
       st.sampled_from(["n1", "n2", ""]))
def test_decoded_batches_into_tracker_and_coverage(batches, node):
    """What decode_batch accepts, the tracker and HB coverage must take or refuse with
    our errors (the server counts anything else as an internal error)."""
    from fuzzer.tracker.coverage import HBCoverage
    from fuzzer.tracker.timeline import Tracker

    tracker, cov = Tracker(), HBCoverage(10)
    tl = tracker.timeline("e1")
    cov.attach(tl)
    cov.open_window()
    for i, events in enumerate(batches):
        data = P.encode_batch(node, "e1", i, 0, events)
        batch = only_ours(P.decode_batch, data)
        if batch is not None:
            only_ours(tracker.ingest, batch, data)
    cov.close_window()
    for e in tl.events()[:20]:
        tl.vector_clock(e)
    tl.edges()
    tl.unmatched_recvs()


@FEW
@given(st.integers(P.MAX_RAW_BATCH + 1, 2**32 - 1), st.binary(max_size=64))
def test_decode_batch_lz4_bomb_refused_before_decompressing(declared, body):
    data = P.HEADER.pack(P.MAGIC, P.VERSION, 0, declared) + body
    with pytest.raises(ProtocolError, match="over the limit"):
        P.decode_batch(data)


def test_decode_batch_real_bomb_refused():
    raw = msgpack.packb(["n", "e", 0, 0, [[0, 0, 0, 0, P.LOG, "i", "x" * 100_000]] * 50])
    data = _frame_batch(raw)
    assert len(data) < len(raw) // 100  # a real bomb: tiny on the wire, big inflated
    with pytest.raises(ProtocolError, match="over the limit"):
        P.decode_batch(data, max_raw=len(raw) - 1)
    assert len(P.decode_batch(data).events) == 50


# --------------------------------------------------------------------------- schedules


def _schedule_texts() -> list[str]:
    texts = [p.read_text() for p in sorted((ROOT / "corpus").glob("*/*.sched"))]
    texts.append(
        "seed 7\nkill leader 1s\nrestart n1 2s\npartition majority-minority 2.5s\n"
        "partition groups n1,n2|n3 1s\nlink-delay n1->n2 10ms 1s\nlink-drop *->* 0.5 1s\n"
        "clock-skew n2 +1s x1.01 1s\npause follower 1s\nresume follower 0s\nheal 1s\nwait 2s\n"
    )
    return texts


SCHEDULE_TEXTS = _schedule_texts()


@FUZZ
@given(st.text(max_size=200))
def test_schedule_text_random(text):
    from fuzzer.faults import Schedule, parse_fault, parse_step

    only_ours(Schedule.parse_text, text, "fuzz.sched")
    only_ours(parse_step, text)
    only_ours(parse_fault, text)


@FUZZ
@given(st.integers(0, 2**32))
def test_schedule_text_mutated(seed):
    from fuzzer.faults import Schedule

    r = random.Random(seed)
    text = mutate_text(r.choice(SCHEDULE_TEXTS), r)
    s = only_ours(Schedule.parse_text, text, "m.sched")
    if s is not None:  # what parses round-trips through both forms
        assert Schedule.parse_text(s.to_text()) == s
        assert Schedule.from_msgpack(s.to_msgpack()) == s


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.integers(0, 2**32))
def test_schedule_msgpack(data, obj, seed):
    from fuzzer.faults import Schedule

    r = random.Random(seed)
    only_ours(Schedule.from_msgpack, data)
    only_ours(Schedule.from_msgpack, msgpack.packb(obj, use_bin_type=True))
    good = Schedule.parse_text(r.choice(SCHEDULE_TEXTS))
    only_ours(Schedule.from_msgpack, mutate(good.to_msgpack(), r, r.randrange(1, 5)))
    doc = {"format": "hbfuzz-schedule", "v": 1, "seed": good.seed,
           "steps": [[s.fault.to_text(), s.duration] for s in good.steps]}
    key = r.choice([*doc, "steps"])
    if key == "steps" and doc["steps"]:
        doc["steps"][r.randrange(len(doc["steps"]))][r.randrange(2)] = obj
    else:
        doc[key] = obj
    only_ours(Schedule.from_msgpack, msgpack.packb(doc, use_bin_type=True))


# --------------------------------------------------------------------------- configs

TARGET_TOMLS = sorted((ROOT / "targets").glob("*/target.toml"))


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@FUZZ
@given(st.dictionaries(st.sampled_from(["target", "cluster", "network", "workload", "oracles",
                                         "roles", "faults", "schedule", "coverage", "x"]),
                       TOML_VALUES, max_size=5))
def test_config_random_dicts(data):
    from fuzzer.config import config_from_dict

    only_ours(config_from_dict, data, "fuzz.toml", ROOT, load_module=False)


@FUZZ
@given(st.integers(0, 2**32), TOML_VALUES)
def test_config_mutated_valid_dicts(seed, value):
    from fuzzer.config import config_from_dict

    r = random.Random(seed)
    path = r.choice(TARGET_TOMLS)
    data = tomllib.loads(path.read_text())
    for _ in range(r.randrange(1, 3)):
        keys = r.choice(_paths(data))
        node = data
        for k in keys[:-1]:
            node = node[k]
        if r.random() < 0.3:
            del node[keys[-1]]
        else:
            node[keys[-1]] = copy.deepcopy(value)  # a tree, as TOML gives (no cycles)
    cfg = only_ours(config_from_dict, data, str(path), path.parent, load_module=False)
    if cfg is not None:
        cfg.to_toml()


@FUZZ
@given(st.integers(0, 2**32), st.lists(st.text(max_size=30), max_size=3))
def test_config_mutated_texts_and_overrides(tmp_path_factory, seed, overrides):
    from fuzzer.config import load_config

    r = random.Random(seed)
    src = r.choice(TARGET_TOMLS)
    text = mutate_text(src.read_text(), r)
    p = src.parent / f".fuzz-{seed}.toml"  # next to the real one: relative paths resolve
    try:
        p.write_text(text)
        only_ours(load_config, p, load_module=False)
    finally:
        p.unlink(missing_ok=True)
    keys = [".".join(k) for k in _paths(tomllib.loads(src.read_text()))]
    ovr = [f"{r.choice(keys)}={o}" if r.random() < 0.7 else o for o in overrides]
    only_ours(load_config, src, ovr, load_module=False)


@pytest.mark.parametrize("override", ["cluster.nodes=1000000000", "cluster.nodes=4611686018427387904",
                                      "cluster.ports_per_node=100000000",
                                      "workload.clients=1000000000", "schedule.length=1000000000"])
def test_config_absurd_cluster_sizes_refused_not_allocated(override):
    """Found by the fuzz session: load time rendered every node, so a huge count ran the
    machine out of memory (OOM-killed at 24 GB) instead of raising a ConfigError."""
    from fuzzer.config import load_config

    with pytest.raises(ConfigError, match="must be|at most"):
        load_config(ROOT / "targets/pysyncobj/target.toml", [override], load_module=False)


@pytest.mark.parametrize("override", ["cluster.cwd=~0", "target.python=~0/bin/python",
                                      'cluster.command=["~0/x"]', 'target.setup="a \'b"'])
@pytest.mark.parametrize("load_module", [False, True])
def test_config_odd_paths_and_words_only_raise_config_errors(override, load_module):
    """Found by the fuzz session: ``~0`` (a user that does not exist) made pathlib raise
    RuntimeError, an unbalanced quote in a string ``setup`` made shlex raise ValueError."""
    from fuzzer.config import load_config

    only_ours(load_config, ROOT / "targets/pysyncobj/target.toml", [override],
              load_module=load_module)


# --------------------------------------------------------------------------- histories

JEPSEN_LINES = [
    "INFO  jepsen.util - 3\t:invoke\t:write\t1",
    "INFO  jepsen.util - 3\t:ok\t:write\t1",
    "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]",
    "INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]",
    "INFO  jepsen.util - 2\t:invoke\t:read\tnil",
    "INFO  jepsen.util - 2\t:info\t:read\t:timed-out",
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
    "INFO  jepsen.core - Running test",
]
EDN_LINES = [
    "{:process 0, :type :invoke, :f :write, :value 3, :time 1}",
    "{:process 0, :type :ok, :f :write, :value 3, :time 2}",
    '{:process 1 :type :invoke :f :read :value nil :key "k"}',
    "{:process 1 :type :ok :f :read :value [1 2 #{3}] :index 4}",
    "{:process :nemesis :type :info :f :kill :value nil}",
]
EDN_ATOMS = ["nil", "true", ":kw", "1", "-2N", "1.5M", '"s\\n"', "\\c", "#_ 1", "sym", ";c\n",
             "[", "]", "(", ")", "{", "}", "#{", '"', "\\u00e9", "9" * 5000, "1e999", "#inst"]


@FUZZ
@given(st.lists(st.text(max_size=60), max_size=6), st.integers(0, 2**32))
def test_history_jepsen_log(lines, seed):
    from fuzzer.workload.importers import parse_jepsen_log

    r = random.Random(seed)
    only_ours(parse_jepsen_log, "\n".join(lines), "fuzz.log")
    text = mutate_text("\n".join(r.choices(JEPSEN_LINES, k=r.randrange(1, 6))), r)
    only_ours(parse_jepsen_log, text, "m.log")
    prefix = "INFO  jepsen.util - 1\t:ok\t:read\t"
    only_ours(parse_jepsen_log, prefix + " ".join(r.choices(EDN_ATOMS, k=r.randrange(1, 8))))


@FUZZ
@given(st.lists(st.text(max_size=60), max_size=6), st.integers(0, 2**32))
def test_history_edn(lines, seed):
    from fuzzer.workload.importers import parse_edn_history

    r = random.Random(seed)
    only_ours(parse_edn_history, "\n".join(lines), "fuzz.edn")
    text = mutate_text("\n".join(r.choices(EDN_LINES, k=r.randrange(1, 6))), r)
    only_ours(parse_edn_history, text, "m.edn")
    only_ours(parse_edn_history, "[" + text + "]", "v.edn")
    only_ours(parse_edn_history, " ".join(r.choices(EDN_ATOMS, k=r.randrange(1, 10))), "a.edn")


def test_history_edn_deep_nesting_is_an_input_error():
    from fuzzer.workload.importers import parse_edn_history

    for deep in ("[" * 100_000, "[" * 50_000 + "]" * 50_000, "{:a " * 30_000):
        with pytest.raises(ALLOWED):
            parse_edn_history(deep, "deep.edn")


def _history_blob(r: random.Random) -> bytes:
    from fuzzer.workload.history import HistoryRecorder, dumps

    rec = HistoryRecorder()
    for _ in range(r.randrange(1, 6)):
        h = rec.invoke(r.randrange(3), r.choice(["read", "write", "cas"]), r.randrange(5), "k")
        r.choice([rec.ok, rec.fail, rec.info])(h, r.randrange(5))
    return dumps(rec.history())


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.integers(0, 2**32))
def test_history_msgpack_lz4(data, obj, seed):
    from fuzzer.workload.history import loads

    r = random.Random(seed)
    only_ours(loads, data, "fuzz.hist")
    only_ours(loads, lz4.frame.compress(data), "fuzz.hist")
    only_ours(loads, lz4.frame.compress(msgpack.packb(obj, use_bin_type=True)), "o.hist")
    good = _history_blob(r)
    only_ours(loads, mutate(good, r, r.randrange(1, 5)), "m.hist")
    doc = {"format": "hbfuzz-history", "version": 1, "fields": [], "ops": [obj, [0, "ok", "r",
                                                                                  obj, obj, obj]]}
    only_ours(loads, lz4.frame.compress(msgpack.packb(doc, use_bin_type=True)), "d.hist")


def test_history_lz4_bomb_refused():
    from fuzzer.workload.history import loads

    zeros = b"\x00" * (4 * 2**20)
    for stored in (True, False):  # size in the frame header, or only found by inflating
        blob = lz4.frame.compress(zeros, store_size=stored)
        assert len(blob) < 64 * 1024
        with pytest.raises(InputError, match="limit"):
            loads(blob, "bomb.hist", limit=2**20)


# --------------------------------------------------------------------------- choices, coverage, scheduler state


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.lists(st.tuples(
    st.integers(-5, 2**64 - 1) | st.floats() | st.text(max_size=2),
    st.integers(-5, 2**64 - 1) | st.floats(),
    st.integers(-2, 8) | st.text(max_size=3),
    st.floats() | st.integers(-(2**63), 2**64 - 1) | st.none(),
    st.integers(-(2**63), 2**64 - 1) | st.floats()).map(list), max_size=3))
def test_choices_decoding(data, obj, runs):
    from fuzzer.network.model import decode_choices

    only_ours(decode_choices, data)
    only_ours(decode_choices, msgpack.packb(obj, use_bin_type=True))
    only_ours(decode_choices, msgpack.packb({"v": 1, "links": obj}, use_bin_type=True))
    got = only_ours(decode_choices, msgpack.packb({"v": 1, "links": [["n1", "n2", runs]]}))
    if got is not None:
        assert len(got) <= 1_000_000


def test_choices_run_length_bomb_refused():
    from fuzzer.network.model import decode_choices

    bomb = msgpack.packb({"v": 1, "links": [["n1", "n2", [[0, 100_000_000, 0, 0.0, 1]] * 50]]})
    with pytest.raises(InputError):
        decode_choices(bomb, "bomb.choices")


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.integers(0, 2**32))
def test_coverage_map_loading(data, obj, seed):
    from fuzzer.tracker.coverage import HBCoverage

    r = random.Random(seed)
    only_ours(HBCoverage.from_bytes, data)
    for raw in (msgpack.packb(obj, use_bin_type=True), msgpack.packb(
            {"format": "hbfuzz-hbcoverage", "version": 1, "bits": obj, "seen": obj,
             "edges": obj}, use_bin_type=True)):
        blob = len(raw).to_bytes(4, "big") + lz4.block.compress(raw, store_size=False)
        only_ours(HBCoverage.from_bytes, blob)
    good = HBCoverage(r.choice([8, 10])).to_bytes()
    only_ours(HBCoverage.from_bytes, mutate(good, r, r.randrange(1, 4)))
    bomb = (2**31).to_bytes(4, "big") + data
    with pytest.raises(InputError):
        HBCoverage.from_bytes(bomb)


def _scheduler_states(r: random.Random):
    from fuzzer.scheduler.actions import ActionSpace
    from fuzzer.scheduler.baselines import PowerScheduler, RandomScheduler
    from fuzzer.scheduler.qlearning import QLearningScheduler

    space = ActionSpace.from_texts(["kill n1", "heal", "partition isolate n2", "wait"])
    out = []
    for cls in (QLearningScheduler, RandomScheduler, PowerScheduler):
        try:
            s = cls(space)
        except TypeError:
            continue
        out.append(s)
    return out


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.integers(0, 2**32))
def test_scheduler_state_loading(data, obj, seed):
    from fuzzer.scheduler.base import dumps_state, loads_state

    r = random.Random(seed)
    only_ours(loads_state, data)
    only_ours(loads_state, msgpack.packb(obj, use_bin_type=True))
    for s in _scheduler_states(r):
        state = s.state_dict()
        only_ours(loads_state, mutate(dumps_state(state), r, r.randrange(1, 4)))
        bad = dict(state)
        bad[r.choice(sorted(bad))] = obj
        loaded = only_ours(loads_state, dumps_state(bad))
        if loaded is not None:
            only_ours(s.load_state_dict, loaded)
        s.load_state_dict(loads_state(dumps_state(state)))  # the real one still loads


# --------------------------------------------------------------------------- codecs


def _codecs():
    from fuzzer.network.codecs import get_codec

    out = [get_codec("raw"), get_codec("lines", max_line=64),
           get_codec("length-prefixed", max_frame=256),
           get_codec("length-prefixed", size=2, byteorder="little", offset=1, header=4,
                     includes_header=True, max_frame=128, type_offset=3),
           get_codec("length-prefixed", size=8, max_frame=1024)]
    try:
        from targets.pysyncobj.codec import PySyncObjCodec

        out.append(PySyncObjCodec(max_frame=512, peek=64))
    except ImportError:
        pass
    return out


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_codecs_on_random_streams(chunks):
    for codec in _codecs():
        total = 0
        for chunk in chunks:
            try:
                frames = codec.feed(chunk)
            except NetworkError:
                codec.reset()
                continue
            total += sum(len(f.data) if hasattr(f, "data") else 0 for f in frames)
            assert codec.pending() <= 4096  # bounded buffering


# --------------------------------------------------------------------------- bundles


def _bundle_bytes(r: random.Random) -> bytes | None:
    try:
        from fuzzer.repro.bundle import Bundle, dumps_bundle
    except ImportError:
        return None
    from fuzzer.faults import Schedule

    sched = Schedule.parse_text(r.choice(SCHEDULE_TEXTS))
    return dumps_bundle(Bundle(
        config={"target": {"name": "t"}}, seed=r.randrange(2**32), schedule=sched.to_text(),
        signature="s", kind="safety", verdicts=(), choices=b"", workload={},
        trace=(), history=([0, "invoke", "read", None, 1, 5], [0, "ok", "read", 3, 1, 9]),
    ))


@FEW
@given(st.integers(0, 2**32), MSGPACK_VALUES)
def test_bundle_loader(seed, obj):
    try:
        from fuzzer.repro.bundle import MAGIC, loads_bundle
    except ImportError:
        pytest.skip("fuzzer/repro/bundle.py not there yet")
    r = random.Random(seed)
    good = _bundle_bytes(r)
    b = only_ours(loads_bundle, mutate(good, r, r.randrange(1, 5)), "m.bundle")
    for blob in (good, ):
        b = loads_bundle(blob, "g.bundle")
        d = b.to_dict()
        d[r.choice(sorted(d))] = obj
        payload = msgpack.packb(d, use_bin_type=True)
        head = MAGIC + struct.pack(">HQ", 1, len(payload))
        b = only_ours(loads_bundle, head + lz4.block.compress(payload, store_size=False))
        if b is not None:  # the nested parsers of a loaded bundle are safe too
            only_ours(b.schedule_obj)
            only_ours(b.choices_obj)
            only_ours(b.history_obj)
            only_ours(b.config_obj)


@FUZZ
@given(st.binary(max_size=300), MSGPACK_VALUES, st.integers(0, 2**32))
def test_recorded_choices_loading(data, obj, seed):
    """The choice record a bundle carries (faults, fates, workload ops)."""
    from fuzzer.execution.result import RecordedChoices
    from fuzzer.faults import parse_fault

    r = random.Random(seed)
    only_ours(RecordedChoices.from_msgpack, data)
    only_ours(RecordedChoices.from_msgpack, msgpack.packb(obj, use_bin_type=True))
    good = RecordedChoices(faults={0: parse_fault("kill n2"), 1: parse_fault("heal")})
    only_ours(RecordedChoices.from_msgpack, mutate(good.to_msgpack(), r, r.randrange(1, 4)))
    doc = msgpack.unpackb(good.to_msgpack())
    key = r.choice(["faults", "fates", "ops", "v"])
    doc[key] = obj if r.random() < 0.5 else [obj, [0, obj], [obj] * 6]
    only_ours(RecordedChoices.from_msgpack, msgpack.packb(doc, use_bin_type=True))


@FUZZ
@given(MSGPACK_VALUES, st.lists(st.lists(MSGPACK_VALUES | st.floats(), min_size=10, max_size=10),
                                max_size=3),
       st.dictionaries(st.sampled_from(["start_time", "execs_done", "exec_errors", "hb_coverage",
                                        "code_edges", "corpus_count", "last_find",
                                        "last_new_cov", "run_time"]),
                       st.floats() | st.integers(-(2**63), 2**64 - 1) | MSGPACK_VALUES,
                       max_size=4))
def test_campaign_state_pieces(obj, records, progress):
    """What ``--resume`` reads back from a campaign directory someone else may have written."""
    from fuzzer.campaign.findings import FindingIndex
    from fuzzer.campaign.stats import Progress

    only_ours(FindingIndex.from_list, obj)
    only_ours(FindingIndex.from_list, records)
    only_ours(Progress.from_dict, progress)
    if isinstance(obj, dict):
        only_ours(Progress.from_dict, obj)
