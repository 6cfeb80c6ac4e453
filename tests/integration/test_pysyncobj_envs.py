"""Per-version PySyncObj environments: built once, shared safely, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import envs  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CLI = str(ROOT / "targets" / "pysyncobj" / "envs.py")


def test_malformed_version_names_the_key(tmp_path):
    for bad in ("", "latest", "0.3.17; rm -rf /", "../0.3.17"):
        with pytest.raises(ConfigError, match=r"target\.version"):
            envs.ensure(bad, base=tmp_path)
    with pytest.raises(ConfigError, match=r"target\.toml: target\.version"):
        envs.ensure("x y", base=tmp_path, config_path="target.toml")
    assert list(tmp_path.iterdir()) == []


def test_uninstallable_version_is_a_config_error_and_leaves_nothing(tmp_path, python):
    with pytest.raises(ConfigError, match=r"target\.version.*pysyncobj==99\.0\.1"):
        envs.ensure("99.0.1", base=tmp_path)
    assert not (tmp_path / "99.0.1").exists()
    out = subprocess.run([python, CLI, "ensure", "99.0.1", "--base", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "target.version" in out.stderr


def test_concurrent_builders_build_once(tmp_path, python):
    version = envs.DEFAULT_VERSION
    argv = [python, CLI, "ensure", version, "--base", str(tmp_path)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    paths = {out.strip() for out, _ in outs}
    assert paths == {str(tmp_path / version / "bin" / "python")}
    builds = (tmp_path / envs.BUILD_LOG).read_text().splitlines()
    assert len(builds) == 1, builds
    # idempotent: ready now, nothing rebuilt, and the node's imports work in it
    env = envs.ensure(version, base=tmp_path)
    assert str(env.python) in paths
    assert (tmp_path / envs.BUILD_LOG).read_text().splitlines() == builds
    assert envs.ready_versions(tmp_path) == [version]
    probe = subprocess.run(
        [str(env.python), "-c",
         "import pysyncobj.version as v, instrumentation, targets.pysyncobj.wire; "
         "print(v.VERSION)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert probe.stdout.strip() == version, probe.stderr
    # a half-built environment (no ready marker) is rebuilt, not trusted
    (tmp_path / version / envs.MARKER).unlink()
    envs.ensure(version, base=tmp_path)
    assert len((tmp_path / envs.BUILD_LOG).read_text().splitlines()) == 2
