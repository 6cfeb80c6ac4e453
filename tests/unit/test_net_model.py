"""The network model: rules, fates, partitions, choices and determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.errors import InputError, NetworkError
from fuzzer.network import model as m
from fuzzer.network.model import Fate, LinkRule, NetworkModel

NODES = ["n1", "n2", "n3", "n4", "n5"]
FAULTY = LinkRule(delay=0.02, jitter=0.01, drop=0.2, duplicate=0.1, reorder=0.1)


def test_clean_links_deliver_now_with_per_link_sequence_numbers(seed):
    net = NetworkModel(NODES, seed)
    assert [net.decide("n1", "n2") for _ in range(3)] == [(i, m.DELIVER_NOW) for i in range(3)]
    assert net.decide("n2", "n1") == (0, m.DELIVER_NOW)
    assert net.decided("n1", "n2") == 3 and net.fate("n1", "n2", 2) == m.DELIVER_NOW
    assert net.fate("n1", "n2", 3) is None


def test_rule_probabilities_show_in_fates(seed):
    net = NetworkModel(NODES, seed)
    net.set_rule("n1", "n2", FAULTY)
    kinds = Counter(net.decide("n1", "n2")[1].kind for _ in range(4000))
    # 20% drop, then 10% duplicate, 10% hold of the rest, delay otherwise.
    assert 600 < kinds["drop"] < 1000
    assert 200 < kinds["duplicate"] < 420
    assert 200 < kinds["hold"] < 420
    assert kinds["delay"] + kinds["deliver"] > 2200
    for (_, _, _), f in net.choices().items():
        if f.kind == "delay":
            assert 0.01 <= f.delay <= 0.03
        if f.kind == "duplicate":
            assert f.copies == 2
        if f.kind == "hold":
            assert f.delay >= FAULTY.hold_max
    # the other direction is untouched: rules are per directed link
    assert all(net.decide("n2", "n1")[1] == m.DELIVER_NOW for _ in range(100))


def test_bad_rules_and_fates_raise_network_error():
    with pytest.raises(NetworkError, match="drop"):
        LinkRule(drop=1.5)
    with pytest.raises(NetworkError, match="delay"):
        LinkRule(delay=-1)
    with pytest.raises(NetworkError, match="fate"):
        Fate("explode")
    with pytest.raises(NetworkError):
        NetworkModel(["a", "a"], 1)


def test_partition_blocks_only_cross_group_links_and_heal_restores(seed):
    net = NetworkModel(NODES, seed)
    net.set_rule("n1", "n2", LinkRule(delay=0.5))
    p = net.partition([{"n1", "n2"}, {"n3", "n4", "n5"}])
    assert net.current_partition == p
    assert net.decide("n1", "n3")[1] == m.DROPPED and net.decide("n3", "n1")[1] == m.DROPPED
    assert net.decide("n3", "n4")[1] == m.DELIVER_NOW
    assert net.decide("n1", "n2")[1] == Fate("delay", 0.5)
    assert ("n1", "n3", 0) in net.blocked_keys() and ("n3", "n4", 0) not in net.blocked_keys()
    net.heal()
    assert net.current_partition is None
    assert net.decide("n1", "n3")[1] == m.DELIVER_NOW
    assert net.rule("n1", "n2") == LinkRule(delay=0.5)  # heal keeps message faults
    net.clear()
    assert net.rules() == {}


def test_partition_replaces_the_previous_one(seed):
    net = NetworkModel(NODES, seed)
    net.partition(m.isolate(NODES, "n1"))
    net.partition(m.isolate(NODES, "n5"))
    assert not net.rule("n1", "n2").blocked and net.rule("n5", "n1").blocked


def test_listeners_see_every_rule_change(seed):
    net = NetworkModel(NODES, seed)
    seen = []
    net.add_listener(lambda a, b, r: seen.append((a, b, r.blocked)))
    net.partition(m.one_way(["n1"], ["n2"]))
    net.heal()
    assert seen == [("n1", "n2", True), ("n1", "n2", False)]


def test_shapes(rng):
    iso = m.isolate(NODES, "n3")
    assert {(a, b) for a, b in iso.links} == {("n3", x) for x in NODES if x != "n3"} | {
        (x, "n3") for x in NODES if x != "n3"
    }
    mm = m.majority_minority(NODES, rng)
    assert sorted(len(g) for g in mm.groups) == [2, 3] and len(mm.links) == 2 * 2 * 3
    assert frozenset().union(*mm.groups) == set(NODES)
    hv = m.halves(["a", "b", "c", "d"])
    assert hv.groups == (frozenset("ab"), frozenset("cd"))
    r = m.ring(NODES)
    # each node reaches exactly its two ring neighbours
    for a in NODES:
        reach = {b for b in NODES if b != a and (a, b) not in r.links}
        i = NODES.index(a)
        assert reach == {NODES[(i - 1) % 5], NODES[(i + 1) % 5]}
    br = m.bridge(NODES)
    assert br.groups[1] == frozenset(["n3"])
    assert not any("n3" in link for link in br.links)
    assert ("n1", "n4") in br.links and ("n5", "n2") in br.links and ("n1", "n2") not in br.links
    ow = m.one_way(["n1", "n2"], ["n3"])
    assert ow.links == {("n1", "n3"), ("n2", "n3")}
    with pytest.raises(NetworkError):
        m.split([{"n1"}, {"n1", "n2"}])
    with pytest.raises(NetworkError):
        m.ring(["a", "b"])
    with pytest.raises(NetworkError):
        m.isolate(NODES, "n9")


def test_one_way_partition_is_one_way(seed):
    net = NetworkModel(NODES, seed)
    net.partition(m.one_way(["n1"], ["n2", "n3"]))
    assert net.decide("n1", "n2")[1].kind == "drop"
    assert net.decide("n2", "n1")[1].kind == "deliver"


def test_reset_drops_and_is_cleared_by_heal(seed):
    net = NetworkModel(NODES, seed)
    net.update_rule("n1", "n2", reset=True)
    assert net.decide("n1", "n2")[1] == m.DROPPED
    net.heal()
    assert not net.rule("n1", "n2").reset


# ---------------------------------------------------------------- determinism


def _traffic(rng: random.Random, n: int) -> list[tuple[str, str]]:
    return [tuple(rng.sample(NODES, 2)) for _ in range(n)]


def _faulty_model(seed: int, choices=None) -> NetworkModel:
    net = NetworkModel(NODES, seed, choices)
    for a in NODES:
        for b in NODES:
            if a != b:
                net.set_rule(a, b, FAULTY)
    return net


def test_same_seed_same_arrival_order_same_decisions(seed, rng):
    order = _traffic(rng, 2000)
    one, two = _faulty_model(seed), _faulty_model(seed)
    assert [one.decide(a, b) for a, b in order] == [two.decide(a, b) for a, b in order]
    other = _faulty_model(seed + 1)
    assert [other.decide(a, b) for a, b in order] != [
        _faulty_model(seed).decide(a, b) for a, b in order
    ]


def test_links_interleaved_differently_keep_each_link_seq_fate(seed, rng):
    order = _traffic(rng, 2000)
    shuffled = order[:]
    rng.shuffle(shuffled)  # same messages per link, other interleaving of links
    one, two = _faulty_model(seed), _faulty_model(seed)
    for a, b in order:
        one.decide(a, b)
    for a, b in shuffled:
        two.decide(a, b)
    assert one.choices() == two.choices()


def test_fate_does_not_depend_on_earlier_rules_on_the_link(seed):
    # message k's draw is independent of how earlier messages were decided
    one, two = _faulty_model(seed), NetworkModel(NODES, seed)
    for _ in range(50):
        one.decide("n1", "n2")
        two.decide("n1", "n2")  # clean: no draws at all
    two.set_rule("n1", "n2", FAULTY)
    assert [one.decide("n1", "n2") for _ in range(200)] == [
        two.decide("n1", "n2") for _ in range(200)
    ]


def test_replay_from_choices_gives_same_fates_with_another_seed_and_order(seed, rng):
    order = _traffic(rng, 1500)
    original = _faulty_model(seed)
    for a, b in order:
        original.decide(a, b)
    recorded = original.choices()
    shuffled = order[:]
    rng.shuffle(shuffled)
    replay = NetworkModel(NODES, seed + 12345, recorded)  # clean rules, other seed
    for a, b in shuffled:
        replay.decide(a, b)
    assert replay.choices() == recorded
    assert replay.replayed == len(recorded)
    # keys beyond the recording fall back to the generator under the current rule
    assert replay.decide("n1", "n2")[1] == m.DELIVER_NOW


def test_replay_choice_wins_over_partition(seed):
    key_fate = {("n1", "n2", 0): Fate("delay", 0.25)}
    net = NetworkModel(NODES, seed, key_fate)
    net.partition(m.isolate(NODES, "n1"))
    assert net.decide("n1", "n2") == (0, Fate("delay", 0.25))
    assert net.decide("n1", "n2") == (1, m.DROPPED)


def test_choice_map_msgpack_round_trip(seed, rng):
    net = _faulty_model(seed)
    for a, b in _traffic(rng, 800):
        net.decide(a, b)
    for _ in range(100):
        net.decide("n4", "c1")  # clients are endpoints too
    ch = net.choices()
    data = m.encode_choices(ch)
    assert m.decode_choices(data) == ch


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\x80", b"\x82\xa1v\x01\xa5links\x91\x93\x01\xa1b\x90"],
    ids=["not-msgpack", "no-version", "bad-endpoint"],
)
def test_bad_choice_maps_raise_input_error(data):
    with pytest.raises(InputError, match="bundle/choices"):
        m.decode_choices(data, path="bundle/choices")


def test_certain_and_impossible_probabilities(seed):
    net = NetworkModel(NODES, seed)
    net.set_rule("n1", "n2", LinkRule(drop=1.0))
    net.set_rule("n2", "n1", LinkRule(duplicate=1.0, delay=0.01))
    net.set_rule("n3", "n1", LinkRule(reorder=1.0, hold_max=0.2))
    for _ in range(500):
        assert net.decide("n1", "n2")[1] == m.DROPPED
        assert net.decide("n2", "n1")[1] == Fate("duplicate", 0.01, 2)
        assert net.decide("n3", "n1")[1] == Fate("hold", 0.2)
    assert net.blocked_keys() == frozenset()  # chance drops are not partition drops


_rules = st.builds(
    LinkRule,
    blocked=st.booleans(),
    delay=st.sampled_from([0.0, 0.01]),
    jitter=st.sampled_from([0.0, 0.005]),
    drop=st.floats(0, 1),
    duplicate=st.floats(0, 1),
    reorder=st.floats(0, 1),
)
_links = st.sampled_from([("n1", "n2"), ("n2", "n1"), ("n1", "n3"), ("n3", "n2"), ("n2", "c1")])


@settings(max_examples=100, deadline=None)
@given(
    rules=st.dictionaries(_links, _rules),
    traffic=st.lists(_links, max_size=200),
    perm_seed=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 2**64 - 1),
)
def test_fates_depend_only_on_seed_link_seq_and_rule(rules, traffic, perm_seed, seed):
    def run(order, model_seed, choices=None):
        net = NetworkModel(NODES, model_seed, choices)
        for (a, b), r in rules.items():
            net.set_rule(a, b, r)
        for a, b in order:
            net.decide(a, b)
        return net.choices()

    base = run(traffic, seed)
    other = traffic[:]
    random.Random(perm_seed).shuffle(other)
    assert run(other, seed) == base
    assert run(other, seed ^ 1, base) == base
