"""Fault vocabulary and Schedule: text and msgpack round trips, errors, undo."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer import faults as f
from fuzzer.errors import InputError
from fuzzer.faults import NodeRef, Schedule, Step

EXAMPLE = """\
# a Raft leader-hunting schedule
seed 42
partition majority-minority 2.5s   # cut the cluster
kill leader 1s
link-delay n1->n2 50ms+-10ms 2s
link-drop *->n3 30% 1s
link-duplicate leader->* 5% 1s
link-reorder n2,n3->n1 0.25 1s
link-reset n1->n2 0s
link-clear *->* 0s
partition one-way n1,n2->n3 1s
partition ring n1,n3,n2,n4 1s
partition bridge n1,n2|n3|n4,n5 1s
partition groups n1|n2,n3|n4 1s
partition isolate follower 500ms
partition halves 1s
clock-skew n2 -1.5s x1.01 3s
pause minority 2s
resume minority 0s
stop random 1s
start n1 0s
restart n2 1s
wipe n3 1s
kill-all 1ms
restart-all 2s
heal 0s
wait 10s
"""


def test_example_parses_to_the_expected_values():
    s = Schedule.parse_text(EXAMPLE, "corpus/x.sched")
    assert s.seed == 42 and len(s) == 25
    assert s.steps[0] == Step(f.Partition("majority-minority"), 2.5)
    assert s.steps[1] == Step(f.Kill(NodeRef(role="leader")), 1.0)
    assert s.steps[2] == Step(f.LinkDelay(0, 1, 0.05, 0.01), 2.0)
    assert s.steps[3].fault == f.LinkDrop("*", 2, 0.3)
    assert s.steps[5].fault == f.LinkReorder((1, 2), 0, 0.25)
    assert s.steps[8].fault == f.Partition("one-way", ((0, 1), (2,)))
    assert s.steps[11].fault == f.Partition("groups", ((0,), (1, 2), (3,)))
    assert s.steps[12] == Step(f.Partition("isolate", node="follower"), 0.5)
    assert s.steps[14].fault == f.ClockSkew(1, -1.5, 1.01)
    assert s.steps[21].duration == 0.001
    assert s.duration == pytest.approx(34.001)


def test_text_and_msgpack_round_trip_of_the_example(tmp_path):
    s = Schedule.parse_text(EXAMPLE)
    assert Schedule.parse_text(s.to_text()) == s
    assert Schedule.from_msgpack(s.to_msgpack()) == s
    for name in ("a.sched", "a.msgpack"):
        s.save(tmp_path / name)
        assert Schedule.load(tmp_path / name) == s
    assert "kill leader 1s" in s.to_text() and "link-delay n1->n2 50ms+-10ms 2s" in s.to_text()


def test_undo():
    assert f.Partition("ring").undo() == f.Heal()
    assert f.Pause(2).undo() == f.Resume(2)
    assert f.Kill("leader").undo() == f.Start("leader")
    assert f.Stop(1).undo() == f.Start(1)
    assert f.KillAll().undo() == f.RestartAll()
    assert f.LinkDrop(0, "*", 0.5).undo() == f.LinkClear(0, "*")
    assert f.LinkReset(0, 1).undo() == f.LinkClear(0, 1)
    assert f.ClockSkew(1, 2.0).undo() == f.ClockSkew(1, 0.0, 1.0)
    for fault in (f.Heal(), f.Resume(1), f.Start(1), f.Restart(1), f.Wipe(1), f.Wait()):
        assert fault.undo() is None
    assert f.ClockSkew(1, 0.0, 1.0).undo() is None


def test_concrete():
    assert f.Kill(1).concrete and not f.Kill("leader").concrete
    assert not f.Partition("halves").concrete and f.Partition("halves", ((0,), (1,))).concrete
    assert f.Partition("isolate", node=2).concrete
    assert not f.LinkDelay("*", 1).concrete and f.Heal().concrete


@pytest.mark.parametrize(
    "line, expected",
    [
        ("kill 1s", "kill takes 1 argument"),
        ("kill leader", "step duration"),
        ("frob n1 1s", "unknown fault 'frob'"),
        ("link-drop n1->n2 150% 1s", "outside 0%..100%"),
        ("link-drop n1->n2 lots 1s", "probability"),
        ("partition ring n1,n2 1s", "at least 3 nodes"),
        ("partition square 1s", "expects a shape"),
        ("partition halves n1|n1 1s", "disjoint"),
        ("partition isolate 1s", "expects a node"),
        ("seed x", "seed <non-negative integer>"),
        ("kill n0 1s", "expected a node"),
        ("link-delay n1-n2 5ms 1s", "expected a link"),
        ("link-delay n1->n2 5 1s", "duration like 2.5s"),
        ("clock-skew n1 soon 1s", "signed duration"),
        ("clock-skew n1 +1s *2 1s", "clock rate"),
        ("wait -1s", "step duration"),
        ("wait foo 1s", "wait takes 0 argument"),
    ],
)
def test_malformed_lines_name_file_line_and_expectation(line, expected):
    text = "seed 1\n# fine so far\n" + line + "\n"
    with pytest.raises(InputError) as info:
        Schedule.parse_text(text, "corpus/raft/bad.sched")
    msg = str(info.value)
    assert msg.startswith("corpus/raft/bad.sched: line 3: "), msg
    assert expected in msg, msg


def test_seed_twice_is_an_error():
    with pytest.raises(InputError, match="line 2: the seed is given twice"):
        Schedule.parse_text("seed 1\nseed 2\n", "s")


def test_bad_msgpack_schedules():
    with pytest.raises(InputError, match="b.msgpack: not a msgpack"):
        Schedule.from_msgpack(b"\xc1", "b.msgpack")
    with pytest.raises(InputError, match="format marker"):
        Schedule.from_msgpack(msgpack.packb({"v": 1}), "b.msgpack")
    with pytest.raises(InputError, match="version 99"):
        Schedule.from_msgpack(msgpack.packb({"format": "hbfuzz-schedule", "v": 99}), "b")
    bad_step = {"format": "hbfuzz-schedule", "v": 1, "seed": 1, "steps": [["wait", 1], ["x", 1]]}
    with pytest.raises(InputError, match="b: step 1: unknown fault"):
        Schedule.from_msgpack(msgpack.packb(bad_step), "b")


def test_load_names_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.sched"):
        Schedule.load(tmp_path / "nope.sched")
    p = tmp_path / "bin.sched"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        Schedule.load(p)


def test_parse_fault_and_step_helpers():
    assert f.parse_fault("kill leader") == f.Kill("leader")
    assert f.parse_step("heal 0s # comment") == Step(f.Heal(), 0.0)
    with pytest.raises(InputError, match="<fault>"):
        f.parse_fault("kill")


# ---------------------------------------------------------------- property


def _durations(signed: bool = False):
    lo = -1e6 if signed else 0.0
    exact = st.floats(min_value=lo, max_value=1e6, allow_nan=False, allow_infinity=False)
    nice = st.integers(min_value=0, max_value=100_000).map(lambda ms: ms / 1000)
    return st.one_of(exact, nice)


_probs = st.one_of(st.floats(0.0, 1.0), st.integers(0, 100).map(lambda x: x / 100))


@st.composite
def node_refs(draw):
    if draw(st.booleans()):
        return NodeRef(role=draw(st.sampled_from(f.ROLES)))
    return NodeRef(tuple(draw(st.lists(st.integers(0, 40), min_size=1, max_size=4, unique=True))))


@st.composite
def partitions(draw):
    shape = draw(st.sampled_from(f.SHAPES))
    if shape == "isolate":
        return f.Partition(shape, node=draw(node_refs()))
    ngroups = {"ring": 1, "bridge": 3, "groups": draw(st.integers(2, 4))}.get(shape, 2)
    if shape != "groups" and draw(st.booleans()):
        return f.Partition(shape)
    perm = draw(st.permutations(range(draw(st.integers(ngroups + 2, 9)))))
    sizes = [1] * ngroups
    for _ in range(len(perm) - ngroups):
        sizes[draw(st.integers(0, ngroups - 1))] += 1
    if shape == "bridge":  # the middle group is the single bridge node
        sizes = [sizes[0] + sizes[1] - 1, 1, sizes[2]]
    groups, at = [], 0
    for n in sizes:
        groups.append(tuple(perm[at : at + n]))
        at += n
    return f.Partition(shape, tuple(groups))


def faults_strategy():
    node = [f.Kill, f.Restart, f.Pause, f.Resume, f.Stop, f.Start, f.Wipe]
    bare = [f.Heal, f.KillAll, f.RestartAll, f.Wait]
    return st.one_of(
        partitions(),
        st.sampled_from(bare).map(lambda c: c()),
        st.builds(lambda c, r: c(r), st.sampled_from(node), node_refs()),
        st.builds(f.LinkDelay, node_refs(), node_refs(), _durations(), _durations()),
        st.builds(
            lambda c, a, b, p: c(a, b, p),
            st.sampled_from([f.LinkDrop, f.LinkDuplicate, f.LinkReorder]),
            node_refs(),
            node_refs(),
            _probs,
        ),
        st.builds(
            lambda c, a, b: c(a, b),
            st.sampled_from([f.LinkReset, f.LinkClear]),
            node_refs(),
            node_refs(),
        ),
        st.builds(
            f.ClockSkew,
            node_refs(),
            _durations(signed=True),
            st.floats(min_value=1e-3, max_value=1e3),
        ),
    )


schedules = st.builds(
    Schedule,
    st.lists(st.builds(Step, faults_strategy(), _durations()), max_size=12).map(tuple),
    st.integers(0, 2**64 - 1),
)


@settings(max_examples=300, deadline=None)
@given(schedules)
def test_any_schedule_round_trips_through_text_and_msgpack(s):
    text = s.to_text()
    assert Schedule.parse_text(text) == s
    assert Schedule.from_msgpack(s.to_msgpack()) == s
    for step in s.steps:
        assert "\n" not in step.to_text()


@settings(max_examples=200, deadline=None)
@given(faults_strategy())
def test_undo_of_any_fault_is_a_fault_that_round_trips(fault):
    u = fault.undo()
    if u is not None:
        assert f.parse_fault(u.to_text()) == u
        assert u.undo() is None


# ---------------------------------------------------------------- docs


ROOT = Path(__file__).resolve().parents[2]


def test_docs_list_every_fault_and_their_examples_parse():
    doc = (ROOT / "docs" / "faults.md").read_text()
    for verb in f.FAULT_TYPES:
        assert f"`{verb}" in doc, f"docs/faults.md does not describe {verb}"
    for shape in f.SHAPES:
        assert f"`{shape}`" in doc, f"docs/faults.md does not describe partition {shape}"
    for path in (ROOT / "docs" / "faults.md", ROOT / "corpus" / "README.md"):
        block = path.read_text().split("```")[1]
        s = Schedule.parse_text(block, str(path))
        assert len(s) >= 5 and Schedule.parse_text(s.to_text()) == s
    # every concrete partition text form shown in the shapes table parses back to itself
    for line in doc.splitlines():
        if line.startswith("| `") and "| `partition " in line:
            text = line.split("| `partition ", 1)[1].split("`", 1)[0].replace("\\|", "|")
            if "<" not in text and "(" not in text:
                assert f.parse_fault("partition " + text).to_text() == "partition " + text
