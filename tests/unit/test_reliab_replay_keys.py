"""fuzzer/repro/trust.py: which keys of a bundle's config replay takes from the local
target, and which edits make it refuse (pure comparisons on real target configs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.errors import InputError
from fuzzer.repro.trust import differing_keys, merge_config, normalise, resolve_config

ROOT = Path(__file__).resolve().parents[2]


def snapshot(target: str, overrides=()) -> dict:
    return load_config(ROOT / "targets" / target / "target.toml", list(overrides),
                       load_module=False).to_dict()


def moved(cfg: dict, repo: str = "/home/alice/src/hbfuzz") -> dict:
    """The same config as another machine's checkout and interpreter would resolve it."""
    text = json.dumps(cfg).replace(str(ROOT), repo)
    return json.loads(text.replace(f"{repo}/.venv/bin/python", "/usr/bin/python3.12"))


@pytest.mark.parametrize("target,overrides", [
    ("maelstrom", ["target.node=nodes/pb_kv.py", "workload.name=lin-kv"]),
    ("pysyncobj", ["cluster.nodes=5", "target.version=0.3.14"]),
    ("etcd", []),
])
def test_unmodified_snapshots_resolve_here_and_from_another_machine(target, overrides):
    cfg = snapshot(target, overrides)
    for bundle_cfg in (cfg, moved(cfg)):
        res = resolve_config(bundle_cfg, "b.hbfz")
        assert res.local == ROOT / "targets" / target / "target.toml" and not res.trusted
        run = res.config
        assert run["target"]["dir"] == str(ROOT / "targets" / target)  # local paths
        assert run["cluster"]["nodes"] == cfg["cluster"]["nodes"]  # bundle data
        assert run["target"]["version"] == cfg["target"]["version"]
        assert run["target"]["node"] == cfg["target"]["node"]


EDITS = {
    "cluster.command": lambda c: c["cluster"].update(command=["sh", "-c", "id"]),
    "cluster.env": lambda c: c["cluster"]["env"].update(LD_PRELOAD="/tmp/x.so"),
    "cluster.vars": lambda c: c["cluster"]["vars"].update(python="/tmp/evil/bin/sh"),
    "cluster.files": lambda c: c["cluster"].update(files={"run.sh": "rm -rf ~"}),
    "cluster.cwd": lambda c: c["cluster"].update(cwd="/tmp"),
    "cluster.readiness.command": lambda c: c["cluster"]["readiness"].update(command=["id"]),
    "network.codec": lambda c: c["network"].update(codec="evil.mod:Codec"),
    "workload.client": lambda c: c["workload"].update(client="os:system"),
    "roles.function": lambda c: c["roles"].update(function="os:system"),
    "oracles.liveness.probe": lambda c: c["oracles"]["liveness"].update(probe="os:system"),
    "oracles.invariants": lambda c: c["oracles"]["invariants"].append({"name": "os:abort"}),
    "workload.params.hook": lambda c: c["workload"]["params"].update(hook="subprocess:run"),
    "target.setup": lambda c: c["target"].update(setup=["/bin/sh", "-c", "id"]),
    "target.module": lambda c: c["target"].update(module="/tmp/evil.py"),
    "target.node_args": lambda c: c["target"].update(node_args=["--evil"]),
    "target.version": lambda c: c["target"].update(version="1; rm -rf ~"),
}


@pytest.mark.parametrize("key", sorted(EDITS))
def test_each_executable_edit_is_refused_and_named(key):
    cfg = snapshot("pysyncobj")
    EDITS[key](cfg)
    with pytest.raises(InputError) as ei:
        resolve_config(cfg, "sent.hbfz")
    msg = str(ei.value)
    assert msg.startswith("sent.hbfz: refused: ") and key in msg and "--trust" in msg
    assert "\n" not in msg
    res = resolve_config(cfg, "sent.hbfz", trust=True)  # --trust: the bundle's own config
    assert res.trusted and res.config == cfg and key in res.differing


def test_a_node_outside_the_target_directory_is_refused():
    cfg = snapshot("maelstrom", ["target.node=nodes/pb_kv.py"])
    cfg["target"]["node"] = "/usr/bin/python3"
    with pytest.raises(InputError, match="target.node"):
        resolve_config(cfg, "b.hbfz")
    cfg["target"]["node"] = cfg["target"]["dir"] + "/nodes/../../../fuzzer/cli.py"
    with pytest.raises(InputError, match="target.node"):
        resolve_config(cfg, "b.hbfz")


def test_data_keys_come_from_the_bundle_and_executable_ones_from_here(rng):
    cfg = snapshot("pysyncobj")
    local = snapshot("pysyncobj")
    cfg["workload"]["clients"] = rng.randint(1, 9)
    cfg["schedule"]["length"] = rng.randint(1, 40)
    cfg["faults"]["allowed"] = ["kill", "wait"]
    cfg["oracles"]["invariants"] = cfg["oracles"]["invariants"][:1]  # data: built-in only
    assert differing_keys(cfg, local) == []
    run = merge_config(moved(cfg), local)
    assert run["workload"]["clients"] == cfg["workload"]["clients"]
    assert run["schedule"] == cfg["schedule"] and run["faults"] == cfg["faults"]
    assert run["oracles"]["invariants"] == cfg["oracles"]["invariants"]
    assert run["cluster"]["command"] == local["cluster"]["command"]
    assert run["cluster"]["vars"] == local["cluster"]["vars"]  # this machine's paths
    assert run["target"] == local["target"]


def test_normalise_only_hides_machine_paths():
    cfg = snapshot("maelstrom")
    assert normalise(cfg["target"]["dir"] + "/x.py", cfg) == "{target_dir}/x.py"
    assert normalise(["/opt/py/bin/python3.12", "-m"], cfg) == ["{python}", "-m"]
    assert normalise("/bin/sh", cfg) == "/bin/sh"
    assert normalise({}, cfg) is None and normalise([], cfg) is None


def _paths(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, (*prefix, i))


@pytest.mark.parametrize("target", ["pysyncobj", "maelstrom"])
def test_mutated_bundles_never_run_their_own_commands(target, rng):
    """Random edits anywhere in a real snapshot: resolving either refuses with one of
    our errors or returns a config whose executable keys are the local target's."""
    from fuzzer.errors import HbfuzzError
    from fuzzer.repro.trust import EXEC_KEYS, _get

    base = snapshot(target, ["target.node=nodes/pb_kv.py"] if target == "maelstrom" else [])
    local = resolve_config(base, "b").config
    values = [None, "", "x", "os:system", "/bin/sh", ["sh", "-c", "id"], {"A": "1"}, 3, True,
              "{python}", "../../etc/passwd", "1.0", [], {}]
    for _ in range(int(os.environ.get("HBFUZZ_FUZZ_SCALE", "1")) * 150):
        cfg = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(list(_paths(cfg)))
            if not path:
                continue
            parent = cfg
            for p in path[:-1]:
                parent = parent[p]
            parent[path[-1]] = json.loads(json.dumps(rng.choice(values)))
        try:
            res = resolve_config(cfg, "b")
        except HbfuzzError:
            continue
        run = res.config
        version = cfg["target"].get("version") if isinstance(cfg.get("target"), dict) else None
        assert run["target"] == {**local["target"], "version": version or local["target"]["version"]}
        for key in EXEC_KEYS:
            assert _get(run, key) == _get(local, key), key
