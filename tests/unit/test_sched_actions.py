"""Action space: deterministic enumeration, text round trips, index/fault inverse, errors."""

from __future__ import annotations

import pytest

from fuzzer import faults as F
from fuzzer.errors import ConfigError, InputError
from fuzzer.scheduler.actions import ActionSpace

DESC = {
    "allowed": ["partition", "kill", "restart", "pause", "link-delay", "link-drop", "heal", "wait"],
    "nodes": 3,
    "delays": ["20ms", "200ms"],
}
FULL = {
    "allowed": list(F.FAULT_TYPES),
    "nodes": 5,
    "targets": ["n1", "n5", "leader", "follower", "minority", "random", "*"],
    "links": ["*->*", "leader->*", "n1,n2->n3"],
    "delays": ["1ms", 0.25, "1.5s"],
    "jitter": "5ms",
    "drops": ["30%", 0.05],
    "duplicates": [0.5],
    "reorders": ["1%"],
    "skews": ["+1s", "-250ms", 2],
    "skew_rate": 1.01,
    "partitions": ["groups n1|n2,n3|n4,n5", "halves n1,n2|n3,n4,n5"],
    "extra": ["link-delay n1->n2 50ms+-10ms", "kill n1"],
}


def test_default_space_is_deterministic_and_concrete_faults() -> None:
    a, b = ActionSpace.from_dict(DESC), ActionSpace.from_dict(dict(reversed(list(DESC.items()))))
    assert a == b and a.texts() == b.texts() and a.digest() == b.digest()
    shuffled = dict(DESC, allowed=list(reversed(DESC["allowed"])))
    assert ActionSpace.from_dict(shuffled).texts() == a.texts()
    texts = a.texts()
    assert len(a) == 39
    assert texts[:5] == [f"partition isolate {x}" for x in ("n1", "n2", "n3", "leader", "follower")]
    assert "kill leader" in texts and "kill n3" in texts and "link-delay *->* 0.2s" in texts
    assert texts.count("heal") == 1 and texts[-1] == "wait"
    assert {f.verb for f in a} == set(DESC["allowed"])


@pytest.mark.parametrize("desc", [DESC, FULL], ids=["default", "full"])
def test_every_action_round_trips_through_text(desc: dict) -> None:
    space = ActionSpace.from_dict(desc)
    for i, fault in enumerate(space):
        assert space.fault(i) == fault and space.index(fault) == i and fault in space
        assert F.parse_fault(fault.to_text()) == fault
        assert F.parse_step(F.Step(fault, 1.5).to_text()) == F.Step(fault, 1.5)
    sched = F.Schedule(tuple(F.Step(f, 1.0) for f in space), 7)
    assert F.Schedule.parse_text(sched.to_text()) == sched
    assert F.Schedule.from_msgpack(sched.to_msgpack()) == sched
    assert ActionSpace.from_texts(space.texts()) == space


def test_full_description_enumerates_every_verb() -> None:
    space = ActionSpace.from_dict(FULL)
    assert {f.verb for f in space} == set(F.FAULT_TYPES)
    assert len(set(space.texts())) == len(space)  # "kill n1" from extra is not repeated
    assert F.LinkDelay(F.NodeRef((0, 1)), F.NodeRef((2,)), 0.25, 0.005) in space
    assert F.ClockSkew(F.NodeRef(role="leader"), -0.25, 1.01) in space
    assert F.Partition("groups", ((0,), (1, 2), (3, 4))) in space


def test_single_node_cluster_has_no_partitions() -> None:
    space = ActionSpace.from_dict({"nodes": 1, "targets": ["n1"], "shapes": []})
    assert all(f.verb != "partition" for f in space)


def test_index_and_fault_reject_what_is_not_in_the_space() -> None:
    space = ActionSpace.from_dict(DESC)
    with pytest.raises(InputError, match="not in the action space"):
        space.index(F.Kill(F.NodeRef((7,))))
    assert space.find(F.Wipe(F.NodeRef((0,)))) is None
    with pytest.raises(InputError, match="outside the action space"):
        space.fault(len(space))
    with pytest.raises(InputError):
        space.fault(-1)


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"nodes": 0}, "faults.nodes"),
        ({"colour": "red"}, "faults.colour"),
        ({"allowed": ["explode"]}, "faults.allowed"),
        ({"allowed": "kill"}, "faults.allowed"),
        ({"targets": ["n4"]}, "faults.targets"),
        ({"targets": ["boss"]}, "faults.targets"),
        ({"links": ["n1-n2"]}, "faults.links"),
        ({"delays": ["fast"]}, "faults.delays"),
        ({"drops": ["150%"], "allowed": ["link-drop"]}, "faults.drops"),
        ({"shapes": ["isolate"]}, "faults.shapes"),
        ({"nodes": 2, "targets": ["n1"], "shapes": ["ring"]}, "faults.shapes"),
        ({"partitions": ["groups n1|n9"]}, "faults.partitions"),
        ({"extra": ["kill"]}, "faults.extra"),
        ({"skew_rate": 0, "allowed": ["clock-skew"]}, "faults.skew_rate"),
        ({"allowed": []}, "faults.allowed"),
    ],
)
def test_bad_descriptions_name_the_key(patch: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ActionSpace.from_dict({**DESC, **patch}, path="target.toml")
    assert str(exc.value).startswith(f"target.toml: {key}: ")
