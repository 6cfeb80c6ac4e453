"""Template rendering and config errors of fuzzer.cluster.spec (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzzer.cluster.spec import ClusterSpec, Readiness, render, render_node
from fuzzer.errors import ConfigError

WORK = Path("/exec/1")
PORTS = [[1001, 2001], [1002, 2002], [1003, 2003]]


def spec(**kw) -> ClusterSpec:
    base = dict(
        nodes=3,
        command=["srv", "--id", "{name}", "--listen", "{host}:{port}", "--peers", "{peers}"],
        ports_per_node=2,
        source="targets/x/target.toml",
    )
    base.update(kw)
    return ClusterSpec(**base)


def test_names_and_basic_placeholders() -> None:
    s = spec()
    assert s.names() == ["n1", "n2", "n3"]
    node = render_node(s, 1, PORTS, WORK)
    assert node.name == "n2"
    assert node.ports == (1002, 2002)
    assert node.data_dir == WORK / "data" / "n2"
    assert node.argv == (
        "srv",
        "--id",
        "n2",
        "--listen",
        "127.0.0.1:1002",
        "--peers",
        "127.0.0.1:1001,127.0.0.1:1003",
    )


def test_every_placeholder_renders() -> None:
    s = spec(
        command=["x"],
        env={
            "A": "{index}/{num}/{n}/{ports}/{ports[1]}/{nodes}",
            "B": "{peers[1]}|{peer_names}|{peer_ports}",
            "C": "{cluster}",
            "D": "{data_dir} {log_dir} {workdir}",
            "E": "{index:03d}",
        },
        peer_port_index=1,
    )
    env = dict(render_node(s, 0, PORTS, WORK).env)
    assert env["A"] == "0/1/3/1001,2001/2001/n1,n2,n3"
    assert env["B"] == "127.0.0.1:2003|n2,n3|2002,2003"
    assert env["C"] == "n1=127.0.0.1:2001,n2=127.0.0.1:2002,n3=127.0.0.1:2003"
    assert env["D"] == f"{WORK}/data/n1 {WORK}/logs {WORK}"
    assert env["E"] == "000"


def test_json_placeholders_and_files() -> None:
    s = spec(
        command=["x"], files={"conf/node.json": '{{"peers": {peers_json}, "all": {cluster_json}}}'}
    )
    node = render_node(s, 2, PORTS, WORK)
    ((rel, text),) = node.files
    assert rel == "conf/node.json"
    doc = json.loads(text)
    assert doc["peers"] == ["127.0.0.1:1001", "127.0.0.1:1002"]
    assert doc["all"]["n3"] == "127.0.0.1:1003"


def test_peer_address_override_points_peers_at_proxies() -> None:
    s = spec()
    override = {("n1", "n2"): ("127.0.0.1", 9012), ("n2", "n1"): ("127.0.0.1", 9021)}
    n1 = render_node(s, 0, PORTS, WORK, override)
    assert n1.argv[-1] == "127.0.0.1:9012,127.0.0.1:1003"
    n3 = render_node(s, 2, PORTS, WORK, override)
    assert n3.argv[-1] == "127.0.0.1:1001,127.0.0.1:1002"


def test_user_vars() -> None:
    s = spec(command=["x", "--mode={mode}"], vars={"mode": "fast"})
    assert render_node(s, 0, PORTS, WORK).argv == ("x", "--mode=fast")


@pytest.mark.parametrize(
    ("kw", "where", "needle"),
    [
        ({"command": ["srv", "{nmae}"]}, "command[1]", "{nmae}"),
        ({"env": {"X": "{bogus}"}}, "env.X", "{bogus}"),
        ({"files": {"a.conf": "x={nope}"}}, "files.a.conf", "{nope}"),
        ({"command": ["srv", "{name.__class__}"]}, "command[1]", "not allowed"),
        ({"command": ["srv", "{name"]}, "command[1]", "malformed"),
        ({"command": ["srv", "}"]}, "command[1]", "malformed"),
        ({"command": ["srv", "{port:{evil.x}}"]}, "command[1]", "not allowed"),
        (
            {"readiness": Readiness(kind="command", command=("{zzz}",))},
            "readiness.command[0]",
            "{zzz}",
        ),
    ],
)
def test_bad_templates_name_key_and_placeholder(kw, where, needle) -> None:
    with pytest.raises(ConfigError) as ei:
        spec(**kw)
    msg = str(ei.value)
    assert msg.startswith("targets/x/target.toml: ")
    assert where in msg
    assert needle in msg


def test_index_out_of_range_is_config_error_at_render() -> None:
    s = spec(command=["srv", "{ports[5]}"])
    with pytest.raises(ConfigError, match=r"command\[1\].*ports\[5\]"):
        render_node(s, 0, PORTS, WORK)


@pytest.mark.parametrize(
    ("kw", "where"),
    [
        ({"nodes": 0}, "nodes"),
        ({"command": []}, "command"),
        ({"clock": "sundial"}, "clock"),
        ({"readiness": Readiness(kind="telepathy")}, "readiness.kind"),
        ({"readiness": Readiness(kind="port", port_index=2)}, "readiness.port_index"),
        ({"readiness": Readiness(kind="log", pattern="(")}, "readiness.pattern"),
        ({"readiness": Readiness(kind="log", pattern="")}, "readiness.pattern"),
        ({"readiness": Readiness(kind="command")}, "readiness.command"),
        ({"readiness": Readiness(timeout=0)}, "readiness.timeout"),
        ({"files": {"../escape": "x"}}, "files.../escape"),
        ({"files": {"/etc/passwd": "x"}}, "files./etc/passwd"),
        ({"log_cap": 10}, "log_cap"),
    ],
)
def test_bad_values_name_the_key(kw, where) -> None:
    with pytest.raises(ConfigError) as ei:
        spec(**kw)
    assert f"targets/x/target.toml: {where}: " in str(ei.value)


def test_render_wrong_port_table() -> None:
    with pytest.raises(ConfigError, match="port"):
        render_node(spec(), 0, PORTS[:2], WORK)


def test_render_helper_direct() -> None:
    assert render("{a}-{b[0]}", {"a": 1, "b": [2]}, "f", "k") == "1-2"
    with pytest.raises(ConfigError, match="f: k: .*unknown placeholder"):
        render("{c}", {"a": 1}, "f", "k")


def test_spec_is_frozen_and_hashable_parts() -> None:
    s = spec(env={"A": "1"})
    with pytest.raises(AttributeError):
        s.nodes = 4  # type: ignore[misc]
    assert s.env == (("A", "1"),)
    assert isinstance(s.command, tuple)


def test_spec_from_toml_table() -> None:
    import tomllib

    from fuzzer.cluster.specload import spec_from_dict

    doc = tomllib.loads(
        """
        [cluster]
        nodes = 3
        command = ["srv", "--id={name}", "--peers={peers}"]
        ports_per_node = 2
        stop_grace = 1
        env = { RUST_LOG = "debug", ID = "{num}" }
        [cluster.files]
        "node.conf" = "port={ports[1]}"
        [cluster.readiness]
        kind = "log"
        pattern = "ready"
        timeout = 5
        """
    )
    s = spec_from_dict(doc["cluster"], "t.toml")
    node = render_node(s, 0, PORTS, WORK)
    assert node.argv == ("srv", "--id=n1", "--peers=127.0.0.1:1002,127.0.0.1:1003")
    assert dict(node.env) == {"RUST_LOG": "debug", "ID": "1"}
    assert node.files == (("node.conf", "port=2001"),)
    assert s.readiness.kind == "log" and s.readiness.timeout == 5


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"nodes": 3}, "cluster.command: is required"),
        ({"command": ["x"]}, "cluster.nodes: is required"),
        ({"nodes": "3", "command": ["x"]}, "cluster.nodes: must be an integer"),
        ({"nodes": True, "command": ["x"]}, "cluster.nodes: must be an integer"),
        ({"nodes": 3, "command": "srv {name}"}, "cluster.command: must be a list of strings"),
        ({"nodes": 3, "command": ["x"], "colour": 1}, "cluster.colour: unknown key"),
        ({"nodes": 3, "command": ["x"], "env": {"A": ["b"]}}, "cluster.env: value of 'A'"),
        (
            {"nodes": 3, "command": ["x"], "readiness": {"knd": "port"}},
            "cluster.readiness.knd: unknown key",
        ),
        (
            {"nodes": 3, "command": ["x"], "readiness": {"timeout": "5s"}},
            "cluster.readiness.timeout: must be a number",
        ),
        (
            {"nodes": 3, "command": ["x", "{nmae}"]},
            "cluster.command[1]: unknown placeholder {nmae}",
        ),
        ({"nodes": 3, "command": ["x"], "clock": "sundial"}, "cluster.clock: must be one of"),
    ],
)
def test_spec_from_toml_errors_name_file_and_key(table, where) -> None:
    from fuzzer.cluster.specload import spec_from_dict

    with pytest.raises(ConfigError) as ei:
        spec_from_dict(table, "targets/x/target.toml")
    assert str(ei.value).startswith(f"targets/x/target.toml: {where}")
