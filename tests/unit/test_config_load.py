"""Happy paths of fuzzer.config: the template, the Maelstrom target, overrides, snapshots."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer.checkers.invariants import InvariantSet
from fuzzer.config import (
    TargetConfig,
    bundled_targets,
    config_from_dict,
    dumps,
    load_config,
    summary,
)
from fuzzer.configschema import parse_override
from fuzzer.faults import FAULT_TYPES
from fuzzer.network.codecs import LinesCodec

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "targets" / "template" / "target.toml"
MAELSTROM = REPO / "targets" / "maelstrom" / "target.toml"


@pytest.fixture(scope="module")
def template() -> TargetConfig:
    return load_config(TEMPLATE)


def test_template_target_and_cluster(template: TargetConfig) -> None:
    t = template.target
    assert t.name == "template" and t.version == "0.1" and t.description
    assert t.dir == TEMPLATE.parent and t.module == TEMPLATE.parent / "adapter.py"
    assert t.python == sys.executable and t.workloads == ("kv",)
    assert template.module is not None and hasattr(template.module, "role_probe")
    c = template.cluster
    assert c.nodes == 3 and c.ports_per_node == 2 and c.peer_port_index == 1
    assert c.command[0] == "{python}" and dict(c.env) == {"PYTHONUNBUFFERED": "1"}
    v = dict(c.vars)
    assert v["python"] == sys.executable and v["target_dir"] == str(TEMPLATE.parent)
    assert v["repo"] == str(REPO) and v["version"] == "0.1" and v["log_level"] == "info"
    assert c.cwd == str(TEMPLATE.parent)  # relative to the target dir
    assert c.readiness.kind == "port" and c.readiness.timeout == 10.0
    assert (c.stop_grace, c.log_cap, c.clock, c.pipe_stdio, c.name_prefix) == (
        5.0, 16777216, "env", False, "n")
    assert template.nodes == ["n1", "n2", "n3"]


def test_template_network_workload_oracles(template: TargetConfig) -> None:
    n = template.network
    assert (n.adapter, n.codec, n.codec_kwargs()) == ("tcp", "lines", {"msg_type": "line"})
    codec = template.make_codec()
    assert isinstance(codec, LinesCodec) and codec.msg_type == "line"
    assert template.make_codec() is not codec  # fresh per stream direction
    w = template.workload
    assert (w.kind, w.name, w.client, w.clients, w.rate, w.keys, w.timeout) == (
        "kv", "kv", "module:client", 3, 10.0, 3, 2.0)
    assert w.mix_dict() == {"read": 0.5, "write": 0.3, "cas": 0.2} and w.params_dict() == {}
    assert template.workload_client() is template.module.client
    o = template.oracles
    assert (o.model, o.checker, o.checker_timeout) == ("kv", None, 30.0)
    assert [i.name for i in o.invariants] == [
        "one-leader-per-term", "state-machine-safety", "monotonic", "module:no_negative_term"]
    assert o.invariants[2].as_config() == {"name": "monotonic", "key": "commit_index"}
    lv = o.liveness
    assert (o.liveness_probe, lv.bound, lv.attempt_timeout, lv.interval, lv.max_attempts) == (
        "workload", 10.0, 2.0, 0.2, 1000)
    s1, s2 = template.invariant_set(), template.invariant_set()
    assert isinstance(s1, InvariantSet) and len(s1.invariants) == 4
    assert s1.invariants[0] is not s2.invariants[0]  # fresh state per execution


def test_template_roles_faults_schedule_coverage(template: TargetConfig) -> None:
    r = template.roles
    assert (r.probe, r.function, r.timeout, r.rules) == ("status", "module:role_probe", 1.0, ())
    assert template.role_probe_function() is template.module.role_probe
    f = template.faults
    assert set(f.allowed) <= set(FAULT_TYPES) and "clock-skew" in f.allowed
    assert f.nodes == ("leader", "follower", "random", "minority", "n1")
    assert f.delay == (0.01, 0.5) and f.jitter == (0.0, 0.05)
    assert f.drop == (0.1, 0.5) and f.duplicate == (0.1, 0.5) and f.reorder == (0.1, 0.5)
    assert f.clock_skew == (-2.0, 2.0) and f.clock_rate == (0.9, 1.1)
    s = template.schedule
    assert (s.step, s.length, s.warmup, s.quiescence) == (1.0, 12, 1.0, 2.0)
    assert template.coverage.enabled and template.coverage.modules == ("node",)
    assert any(line.startswith("target    template 0.1") for line in summary(template))


def test_maelstrom_defaults() -> None:
    cfg = load_config(MAELSTROM)
    node = MAELSTROM.parent / "nodes" / "broadcast.py"
    assert cfg.target.node == str(node) and cfg.target.node_is_python
    c = cfg.cluster
    assert c.command == ("{python}", "-m", "instrumentation", "--", "{node}")
    assert dict(c.vars)["node"] == str(node)
    assert c.pipe_stdio and c.ports_per_node == 0 and c.readiness.kind == "none"
    assert cfg.network.adapter == "stdio" and "lin-kv" in cfg.network.services
    assert cfg.network.init_timeout == 10.0 and cfg.make_codec() is None
    import inspect

    from fuzzer.network.stdio import StdioMediator

    params = inspect.signature(StdioMediator).parameters
    kw = cfg.network.stdio_kwargs()
    assert set(kw) <= set(params) and kw["services"] == cfg.network.services
    assert (cfg.workload.kind, cfg.workload.name) == ("maelstrom", "broadcast")
    assert cfg.workload.mix_dict() == {"broadcast": 0.5, "read": 0.5}
    assert (cfg.oracles.model, cfg.oracles.checker) == (None, "broadcast")
    assert cfg.oracles.liveness.bound == 5.0 and cfg.roles.probe == "none"
    assert cfg.schedule.step == 0.5 and cfg.coverage.modules == ()


@pytest.mark.parametrize("workload", ["echo", "unique-ids", "broadcast", "g-counter",
                                      "pn-counter", "g-set", "lin-kv"])
def test_maelstrom_every_workload(workload: str) -> None:
    cfg = load_config(MAELSTROM, [f"workload.name={workload}"])
    assert cfg.workload.name == workload and cfg.oracles.checker == workload
    assert sum(cfg.workload.mix_dict().values()) > 0


def test_maelstrom_native_binary_runs_directly(tmp_path: Path) -> None:
    binary = tmp_path / "mynode"
    binary.write_text("#!/bin/sh\nexec cat\n")
    binary.chmod(0o755)
    cfg = load_config(MAELSTROM, [f"target.node={binary}", "target.node_args=['--fast']"])
    assert not cfg.target.node_is_python
    assert cfg.cluster.command == ("{node}", "--fast")
    shebang = tmp_path / "pynode"
    shebang.write_text("#!/usr/bin/env python3\nprint()\n")  # not executable: run by python
    cfg = load_config(MAELSTROM, [f"target.node={shebang}"])
    assert cfg.target.node_is_python and cfg.cluster.command[1:3] == ("-m", "instrumentation")


def test_overrides_parse_as_toml_or_bare_string() -> None:
    assert parse_override("a.b=3", "f") == ("a.b", 3)
    assert parse_override("a=1.5", "f") == ("a", 1.5)
    assert parse_override("a=true", "f") == ("a", True)
    assert parse_override("a=[1, 2]", "f") == ("a", [1, 2])
    assert parse_override('a="x y"', "f") == ("a", "x y")
    assert parse_override("a=1.5s", "f") == ("a", "1.5s")
    assert parse_override("a=0.3.11", "f") == ("a", "0.3.11")
    assert parse_override("a = spaced ", "f") == ("a", "spaced")


def test_overrides_apply(template: TargetConfig) -> None:
    cfg = load_config(TEMPLATE, ["target.version=3", "schedule.step=1.5s",
                                 "workload.clients=7", "cluster.env.EXTRA=yes",
                                 "faults.drop=[0.2, 0.3]", "coverage.enabled=false"])
    assert cfg.target.version == "3"  # a number given to a string key is its text
    assert cfg.schedule.step == 1.5 and cfg.workload.clients == 7
    assert dict(cfg.cluster.env) == {"PYTHONUNBUFFERED": "1", "EXTRA": "yes"}
    assert cfg.faults.drop == (0.2, 0.3) and not cfg.coverage.enabled
    assert cfg.overrides[0] == "target.version=3"
    assert template.schedule.step == 1.0  # the base config is untouched


@pytest.mark.parametrize("path", [TEMPLATE, MAELSTROM])
def test_to_dict_round_trips_through_toml(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    text = cfg.to_toml()
    snap = tmp_path / "campaign.toml"
    snap.write_text(text)
    again = load_config(snap)
    assert again.to_dict() == cfg.to_dict()
    for name in ("target", "network", "workload", "oracles", "roles", "faults", "schedule",
                 "coverage"):
        assert getattr(again, name) == getattr(cfg, name)


def test_snapshot_without_module_runs_no_code(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').touch()\n"
        "def client(*a, **k):\n    return None\n")
    (tmp_path / "target.toml").write_text(
        '[target]\nname = "t"\nmodule = "mod.py"\n'
        f'[cluster]\nnodes = 2\ncommand = ["{sys.executable}", "-c", "pass"]\n')
    cfg = load_config(tmp_path / "target.toml", load_module=False)
    assert cfg.module is None and not (tmp_path / "ran").exists()
    assert cfg.workload.client == "module:client"
    cfg = load_config(tmp_path / "target.toml")
    assert (tmp_path / "ran").exists() and cfg.workload_client() is cfg.module.client


def test_target_module_codecs_and_log_rules(tmp_path: Path) -> None:
    (tmp_path / "adapter.py").write_text(
        "from fuzzer.network.codecs import LinesCodec\n"
        "class MyCodec(LinesCodec):\n    name = 'mine'\n"
        "CODECS = {'cfgtest-mine': MyCodec}\n")
    (tmp_path / "target.toml").write_text(f'''
[target]
name = "blackbox"
module = "adapter.py"
[cluster]
nodes = 3
command = ["{sys.executable}", "-c", "pass", "{{cluster}}"]
[network]
codec = "cfgtest-mine"
[workload]
kind = "custom"
client = "fuzzer.tomlwrite:dumps"
mix = {{ put = 1 }}
[roles]
probe = "log"
[[roles.rules]]
regex = 'became leader at term (?P<term>\\d+)'
set = {{ role = "leader", term = "{{term}}" }}
ints = ["term"]
name = "lead"
''')
    cfg = load_config(tmp_path / "target.toml")
    assert type(cfg.make_codec()).__name__ == "MyCodec"
    assert cfg.workload.kind == "custom" and cfg.workload.mix_dict() == {"put": 1.0}
    (rule,) = cfg.roles.rules
    assert rule.to_dict() == {"regex": r"became leader at term (?P<term>\d+)",
                              "set": {"role": "leader", "term": "{term}"}, "ints": ["term"],
                              "name": "lead"}


def test_bundled_targets_lists_maelstrom_not_template() -> None:
    names = {t.name: t for t in bundled_targets()}
    assert "maelstrom" in names and "template" not in names
    assert names["maelstrom"].description and not names["maelstrom"].error


def test_dumps_round_trip(rng) -> None:
    data = {"a": {"b": 1, "c": [1.5, "x\"y\n"], "d": {"e": True, "f k": {}}},
            "g": {"h": [{"name": "x", "v": [1, 2]}]}, "top": {}}
    for _ in range(20):
        data["a"][f"k{rng.randrange(1000)}"] = rng.choice([rng.random(), rng.randrange(-9, 9),
                                                           "é\t", [], False])
    assert tomllib.loads(dumps(data)) == data


def test_config_from_dict_uses_given_dir(tmp_path: Path) -> None:
    node = tmp_path / "n.py"
    node.write_text("print()\n")
    cfg = config_from_dict({"target": {"name": "x", "node": "n.py"},
                            "cluster": {"nodes": 1}, "network": {"adapter": "stdio"},
                            "workload": {"name": "echo"}}, "mem", tmp_path)
    assert cfg.target.node == str(node) and os.path.isabs(cfg.target.node)


BUNDLED = sorted((REPO / "targets").glob("*/target.toml"))


@pytest.mark.parametrize("path", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_every_bundled_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    cfg = load_config(path)
    assert cfg.target.name and cfg.target.dir == path.parent
    snap = tmp_path / "campaign.toml"
    snap.write_text(cfg.to_toml())
    assert load_config(snap, load_module=False).to_dict() == cfg.to_dict()


def test_pysyncobj_setup_and_python_templates() -> None:
    path = REPO / "targets" / "pysyncobj" / "target.toml"
    cfg = load_config(path, ["target.version=0.3.11"])
    assert cfg.target.setup == (sys.executable, "envs.py", "ensure", "0.3.11")
    assert cfg.target.python == str(REPO / ".targets" / "pysyncobj" / "0.3.11" / "bin" / "python")
    assert dict(cfg.cluster.vars)["python"] == cfg.target.python
    assert type(cfg.make_codec()).__name__ == "PySyncObjCodec"


def test_etcd_routing_and_log_rules() -> None:
    cfg = load_config(REPO / "targets" / "etcd" / "target.toml")
    assert cfg.network.routing == "front" and cfg.network.codec == "raw"
    assert [r.name for r in cfg.roles.rules][:2] == ["became-leader", "became-follower"]
    assert dict(cfg.roles.rules[0].set)["leader"] == "self"
    assert not cfg.coverage.enabled and "clock-skew" not in cfg.faults.allowed


_toml_scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=True), st.text(max_size=20))
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8),
                       st.dictionaries(st.text(max_size=8), _toml_values, max_size=5),
                       max_size=4))
def test_dumps_property(data: dict) -> None:
    assert tomllib.loads(dumps(data)) == data
