"""`hbfuzz check-config` and `hbfuzz targets` as real subprocesses: output and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def hbfuzz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fuzzer", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_check_config_ok_on_bundled_configs() -> None:
    for rel in ("targets/template/target.toml", "targets/maelstrom/target.toml"):
        r = hbfuzz("check-config", rel)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == f"{rel}: ok"
        assert "workload" in r.stdout and r.stderr == ""


def test_check_config_with_overrides_ok_and_quiet() -> None:
    r = hbfuzz("check-config", "targets/maelstrom/target.toml", "-q",
               "--set", "workload.name=lin-kv", "--set", "target.node=nodes/pb_kv.py",
               "--set", "schedule.step=250ms")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "targets/maelstrom/target.toml: ok\n"


def test_check_config_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "target.toml"
    bad.write_text('[target]\nname = "x"\n[cluster]\nnodes = 2\ncommand = ["true"]\n'
                   '[workload]\nkind = "custom"\nclient = "fuzzer.config:load_config"\n'
                   'clients = "three"\n')
    r = hbfuzz("check-config", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f'hbfuzz: error: {bad}: workload.clients: expected a positive integer, '
                        'got "three"\n')


def test_check_config_bad_override_and_missing_file(tmp_path: Path) -> None:
    r = hbfuzz("check-config", "targets/maelstrom/target.toml", "--set", "target.node=nope/x")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--set target.node: no such file" in r.stderr
    r = hbfuzz("check-config", "targets/maelstrom/target.toml", "--set", "garbage")
    assert r.returncode == 2 and "--set garbage: expected KEY=VALUE" in r.stderr
    r = hbfuzz("check-config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "missing.toml: no such file" in r.stderr


def test_targets_lists_bundled_not_template() -> None:
    r = hbfuzz("targets")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("maelstrom") and "targets/maelstrom/target.toml" in line
               for line in lines)
    assert not any("template" in line for line in lines)


def _init_roundtrip(argv: list[str], procs, cwd: Path) -> dict:
    """Start a node from its rendered argv, send Maelstrom's init, return the reply."""
    import json

    p = procs(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
              cwd=cwd, text=True)
    init = {"src": "c0", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1",
                                                 "node_ids": ["n1", "n2", "n3"]}}
    p.stdin.write(json.dumps(init) + "\n")
    p.stdin.flush()
    line = p.stdout.readline()  # bounded by the pytest timeout; a dead node gives ""
    p.stdin.close()
    return json.loads(line)


def test_maelstrom_config_renders_a_runnable_node(procs, tmp_path: Path) -> None:
    """The command derived from target.node really starts the example node under
    the instrumentation launcher (and a native binary directly)."""
    from fuzzer.cluster.spec import render_node
    from fuzzer.config import load_config

    cfg = load_config(REPO / "targets/maelstrom/target.toml")
    node = render_node(cfg.cluster, 0, [[], [], []], tmp_path)
    assert node.argv[1:3] == ("-m", "instrumentation")
    reply = _init_roundtrip(list(node.argv), procs, tmp_path)
    assert reply["src"] == "n1" and reply["body"]["type"] == "init_ok"
    assert reply["body"]["in_reply_to"] == 1

    binary = tmp_path / "echo-node"
    binary.write_text(
        "#!/bin/sh\nread line\n"
        "echo '{\"src\":\"n1\",\"dest\":\"c0\",\"body\":{\"type\":\"init_ok\",\"in_reply_to\":1}}'\n")
    binary.chmod(0o755)
    cfg = load_config(REPO / "targets/maelstrom/target.toml", [f"target.node={binary}"])
    node = render_node(cfg.cluster, 0, [[], [], []], tmp_path)
    assert node.argv == (str(binary),)
    assert _init_roundtrip(list(node.argv), procs, tmp_path)["body"]["type"] == "init_ok"
