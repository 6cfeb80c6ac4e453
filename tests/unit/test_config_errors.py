"""Bad target configs: each mistake is exactly one ConfigError line naming the file and key."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from fuzzer.config import dumps, load_config
from fuzzer.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MAELSTROM = REPO / "targets" / "maelstrom" / "target.toml"

BASE: dict[str, Any] = {
    "target": {"name": "t"},
    "cluster": {"nodes": 3, "command": [sys.executable, "-c", "pass", "{peers}"],
                "ports_per_node": 2, "peer_port_index": 1},
    "workload": {"kind": "custom", "client": "fuzzer.tomlwrite:dumps"},
}


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def write(tmp_path: Path, patch: dict | None = None, text: str | None = None) -> Path:
    path = tmp_path / "target.toml"
    path.write_text(text if text is not None else dumps(_merge(BASE, patch or {})))
    return path


def error_of(path: Path, overrides: list[str] | tuple = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    return msg


def assert_error(path: Path, key: str, *fragments: str, overrides: list[str] | tuple = ()
                 ) -> None:
    msg = error_of(path, overrides)
    assert msg.startswith(f"{path}: {key}: "), msg
    for frag in fragments:
        assert frag in msg, msg


def test_base_is_valid(tmp_path: Path) -> None:
    load_config(write(tmp_path))


@pytest.mark.parametrize(
    ("patch", "key", "fragments"),
    [
        ({"workload": {"cleints": 3}}, "workload.cleints", ["unknown key", "'clients'"]),
        ({"shedule": {"step": "1s"}}, "shedule", ["did you mean 'schedule'"]),
        ({"cluster": {"node": 3}}, "cluster.node", ["did you mean 'nodes'"]),
        ({"cluster": {"readiness": {"kinds": "port"}}}, "cluster.readiness.kinds", ["'kind'"]),
        ({"schedule": {"stpe": "1s"}}, "schedule.stpe", ["did you mean 'step'"]),
        ({"workload": {"clients": "three"}}, "workload.clients",
         ['expected a positive integer, got "three"']),
        ({"workload": {"clients": 0}}, "workload.clients", ["positive integer"]),
        ({"workload": {"rate": -1}}, "workload.rate", ["> 0"]),
        ({"schedule": {"step": "fast"}}, "schedule.step", ["expected a duration", '"fast"']),
        ({"schedule": {"step": "2 minutes"}}, "schedule.step", ["duration"]),
        ({"schedule": {"length": 1.5}}, "schedule.length", ["integer"]),
        ({"coverage": {"enabled": "yes"}}, "coverage.enabled", ["true or false"]),
        ({"target": {"name": 5}}, "target.name", ["expected a string"]),
        ({"target": {"name": "has space"}}, "target.name", ["letters"]),
        ({"network": {"adapter": "udp"}}, "network.adapter", ["tcp, stdio"]),
        ({"network": {"codec": "lenght-prefixed"}}, "network.codec",
         ["unknown codec", "did you mean 'length-prefixed'"]),
        ({"network": {"codec": "length-prefixed", "codec_params": {"size": 3}}},
         "network.codec_params", ["size must be 1, 2, 4 or 8"]),
        ({"network": {"codec": "raw", "codec_params": {"bogus": 1}}}, "network.codec_params",
         ["bad parameters"]),
        ({"network": {"services": ["lin-kv"]}}, "network.services", ['adapter = "stdio"']),
        ({"faults": {"allowed": ["partition", "kil"]}}, "faults.allowed[1]",
         ["unknown fault", "did you mean 'kill'"]),
        ({"faults": {"nodes": ["leader", "n5"]}}, "faults.nodes[1]", ["n5 is not a node"]),
        ({"faults": {"nodes": ["boss"]}}, "faults.nodes[0]", ["expected a role"]),
        ({"faults": {"shapes": ["ring"]}}, "faults.shapes[0]", ["ring needs at least 4"]),
        ({"faults": {"shapes": ["donut"]}}, "faults.shapes[0]", ["expected one of"]),
        ({"faults": {"delay": ["500ms", "10ms"]}}, "faults.delay", ["above high"]),
        ({"faults": {"delay": "10ms"}}, "faults.delay", ["[low, high]"]),
        ({"faults": {"drop": [0.1, 1.5]}}, "faults.drop[1]", ["probability"]),
        ({"faults": {"clock_skew": ["soon", "2s"]}}, "faults.clock_skew[0]", ["+1.5s"]),
        ({"cluster": {"command": ["{python}", "--port", "{prots[0]}"]}}, "cluster.command[2]",
         ["unknown placeholder {prots}"]),
        ({"cluster": {"command": ["{python}", "{ports[2]}"]}}, "cluster.command[1]",
         ["cannot render"]),
        ({"cluster": {"command": ["{python}", "{peers[7]}"]}}, "cluster.command[1]",
         ["cannot render"]),
        ({"cluster": {"command": ["/nonexistent/prog"]}}, "cluster.command[0]",
         ["does not exist"]),
        ({"cluster": {"nodes": "3"}}, "cluster.nodes", ["integer"]),
        ({"oracles": {"model": "cas-regster"}}, "oracles.model", ["did you mean 'cas-register'"]),
        ({"oracles": {"checker": "broadcst"}}, "oracles.checker", ["did you mean 'broadcast'"]),
        ({"oracles": {"invariants": [{"name": "one-leader-per-trm"}]}}, "oracles.invariants[0]",
         ["unknown invariant", "did you mean 'one-leader-per-term'"]),
        ({"oracles": {"invariants": [{"name": "monotonic", "kye": "x"}]}},
         "oracles.invariants[0]", ["bad parameters"]),
        ({"oracles": {"invariants": [{"name": "module:x"}]}}, "oracles.invariants[0]",
         ["needs target.module"]),
        ({"oracles": {"liveness": {"bond": 3}}}, "oracles.liveness.bond",
         ["unknown key", "did you mean 'bound'"]),
        ({"oracles": {"liveness": {"bound": "soon"}}}, "oracles.liveness.bound", ["duration"]),
        ({"oracles": {"liveness": {"probe": "ping"}}}, "oracles.liveness.probe",
         ["module:attr"]),
        ({"roles": {"probe": "status", "function": "fuzzer.config:nope"}}, "roles.function",
         ["no attribute"]),
        ({"roles": {"probe": "log"}}, "roles.rules", ["at least one"]),
        ({"roles": {"probe": "log", "rules": [{"regex": "(", "set": {"role": "leader"}}]}},
         "roles.rules[0].regex", ["bad regex"]),
        ({"roles": {"probe": "log", "rules": [{"regex": "x", "set": {"term": "{t}"}}]}},
         "roles.rules[0].set.term", ["not a named group"]),
        ({"roles": {"probe": "log", "rules": [{"regex": "x", "set": {"a": "b"}, "int": []}]}},
         "roles.rules[0].int", ["did you mean 'ints'"]),
        ({"workload": {"kind": "kv", "client": "nomodule"}}, "workload.client",
         ["module:attr"]),
        ({"workload": {"kind": "kv", "client": "no_such_pkg_xyz:f"}}, "workload.client",
         ["cannot import"]),
        ({"workload": {"kind": "kv", "mix": {"read": 1, "delete": 1}}}, "workload.mix.delete",
         ["no operation"]),
        ({"workload": {"kind": "kv", "mix": {"read": 0}}}, "workload.mix", ["weight > 0"]),
        ({"workload": {"kind": "maelstrom", "name": "echo"}}, "workload.kind",
         ['network.adapter = "stdio"']),
        ({"target": {"workloads": ["kv"]}, "workload": {"kind": "kv", "name": "bank"}},
         "workload.name", ["does not support workload"]),
        ({"target": {"setup": "no-such-setup-script"}}, "target.setup", ["no such program"]),
        ({"target": {"module": "missing.py"}}, "target.module", ["no such Python file"]),
        ({"target": {"module": "../outside.py"}}, "target.module", ["outside the target"]),
        ({"target": {"node": "nodes/missing"}}, "target.node", ["no such file"]),
        ({"workload": {"timeout": 0}}, "workload.timeout", ["> 0"]),
    ],
)
def test_bad_key(tmp_path: Path, patch: dict, key: str, fragments: list[str]) -> None:
    assert_error(write(tmp_path, patch), key, *fragments)


def test_not_executable_node(tmp_path: Path) -> None:
    node = tmp_path / "mynode"
    node.write_text("#!/bin/sh\n")
    node.chmod(0o644)
    assert_error(MAELSTROM, "--set target.node", "not executable",
                 overrides=[f"target.node={node}"])


def test_missing_binary_in_config(tmp_path: Path) -> None:
    path = write(tmp_path, {"target": {"node": "bin/node"}, "network": {"adapter": "stdio"},
                            "workload": {"kind": "maelstrom", "name": "echo",
                                         "client": ""}})
    assert_error(path, "target.node", "no such file: bin/node")


def test_unknown_maelstrom_workload() -> None:
    assert_error(MAELSTROM, "--set workload.name", "unknown Maelstrom workload",
                 "did you mean 'g-set'", overrides=["workload.name=g-sett"])


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("raise RuntimeError('boom')\n")
    assert_error(write(tmp_path, {"target": {"module": "bad.py"}}), "target.module",
                 "RuntimeError: boom")


def test_module_with_bad_codecs(tmp_path: Path) -> None:
    (tmp_path / "badc.py").write_text("CODECS = {'x': 3}\n")
    assert_error(write(tmp_path, {"target": {"module": "badc.py"}}), "target.module",
                 "CODECS")


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["noequals"], "--set noequals", "KEY=VALUE"),
        (["=3"], "--set =3", "KEY=VALUE"),
        (["bad key=1"], "--set bad key", "dotted names"),
        (["target.name.x=1"], "--set target.name.x", "not a table"),
        (["schedule.step=fast"], "--set schedule.step", '"fast"'),
        (["schedul.step=1s"], "--set schedul.step", "did you mean 'schedule'"),
        (["workload.clients=three"], "--set workload.clients", "positive integer"),
        (["cluster.command=[\"{pots}\"]"], "--set cluster.command", "unknown placeholder"),
        (["faults.allowed=[\"kil\"]"], "--set faults.allowed", "did you mean 'kill'"),
        (["oracles.liveness.bound=0"], "--set oracles.liveness.bound", "> 0"),
        (["network.codec=nope"], "--set network.codec", "unknown codec"),
    ],
)
def test_bad_override(tmp_path: Path, overrides: list[str], key: str, fragment: str) -> None:
    assert_error(write(tmp_path), key, fragment, overrides=overrides)


def test_file_level_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    assert error_of(missing) == f"{missing}: no such file"
    bad = write(tmp_path, text="[target\nname=1")
    assert "not valid TOML" in error_of(bad)
    no_target = write(tmp_path, text="[schedule]\nstep = 1\n")
    assert_error(no_target, "target", "is required")
    not_table = write(tmp_path, text='target = "x"\n')
    assert_error(not_table, "target", "expected a table")
    no_cluster = write(tmp_path, text='[target]\nname = "x"\n')
    assert_error(no_cluster, "cluster", "is required")
