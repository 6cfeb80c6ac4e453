"""One virtualenv per PySyncObj version, built on first use, several side by side.

Why per-version environments: the fuzzer measures itself against several
releases of the same library (0.3.11 has publicly known Raft bugs, 0.3.17 is
the latest), so a campaign must be able to start nodes of any version without
touching the project's own environment. Each version lives in
``.targets/pysyncobj/<version>/`` at the repository root (git-ignored).

How an environment is built: ``python -m venv --without-pip`` from the
project's interpreter (same Python version), a ``.pth`` file that puts the
repository root and the project's site-packages on ``sys.path`` (so
``instrumentation`` and its dependencies grpcio/msgpack/lz4 import in the
node, and ``targets.pysyncobj.*`` too), then the project's own pip installs
``pysyncobj==VERSION`` into it (``pip --python``). A marker file written last
makes the environment "ready"; a half-built one is wiped and rebuilt.

Concurrency: an exclusive ``fcntl`` lock per version (``<base>/.<version>.lock``)
serialises builders across threads and processes; the ready check happens
under the lock, so concurrent callers build once and all get the same path.

Errors: a version pip cannot find raises :class:`~fuzzer.errors.ConfigError`
naming ``target.version``; any other failure to build raises
:class:`~fuzzer.errors.ClusterError` (also naming ``target.version``).

CLI: ``python targets/pysyncobj/envs.py ensure [VERSION] [--base DIR]`` prints
the interpreter path; ``list`` prints the ready versions.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import site
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzzer.errors import ClusterError, ConfigError  # noqa: E402

__all__ = [
    "DEFAULT_VERSION",
    "PACKAGE",
    "ROOT",
    "DEFAULT_BASE",
    "TargetEnv",
    "env_dir",
    "ensure",
    "ready_versions",
    "main",
]

PACKAGE = "pysyncobj"
DEFAULT_VERSION = "0.3.17"  # latest release
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASE = ROOT / ".targets" / PACKAGE
KEY = "target.version"
MARKER = ".hbfuzz-ready"
PTH_NAME = "_hbfuzz_project.pth"
BUILD_LOG = "builds.log"
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([abc]|rc|\.post|\.dev)?[0-9]*$")
_NOT_FOUND = ("No matching distribution", "Could not find a version", "not found")
_thread_lock = threading.Lock()  # fcntl locks are per process; threads need this too


@dataclass(frozen=True)
class TargetEnv:
    """A ready environment: where it is and which interpreter runs nodes."""

    version: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def _config_error(message: str, config_path: str | None) -> ConfigError:
    """A ConfigError that names ``target.version`` (and the file when known)."""
    if config_path is None:
        return ConfigError(f"{KEY}: {message}")
    return ConfigError(message, path=config_path, where=KEY)


def _check_version(version: str, config_path: str | None) -> str:
    version = str(version).strip()
    if not _VERSION_RE.match(version):
        raise _config_error(
            f"{version!r} is not a release version like {DEFAULT_VERSION!r}", config_path
        )
    return version


def env_dir(version: str = DEFAULT_VERSION, base: Path | None = None) -> Path:
    """Where ``version``'s environment lives (whether or not it is built)."""
    return Path(base or DEFAULT_BASE) / _check_version(version, None)


def _is_ready(path: Path, version: str) -> bool:
    marker = path / MARKER
    try:
        return marker.read_text().strip() == version and (path / "bin" / "python").exists()
    except OSError:
        return False


def ready_versions(base: Path | None = None) -> list[str]:
    """Versions whose environment is built and ready, sorted."""
    root = Path(base or DEFAULT_BASE)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _is_ready(p, p.name))


def _project_paths() -> list[str]:
    """Paths the node needs from the project: the repo root and its site-packages."""
    paths = [str(ROOT)]
    for p in [*site.getsitepackages(), site.getusersitepackages()]:
        if p and os.path.isdir(p) and p not in paths:
            paths.append(p)
    return paths


def _run(argv: list[str], timeout: float, what: str, version: str, cfg: str | None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"{KEY} = {version!r}: {what} did not finish within {timeout:.0f} s"
        ) from None
    except OSError as exc:
        raise ClusterError(f"{KEY} = {version!r}: {what} could not run: {exc}") from None
    if proc.returncode != 0:
        err = "\n".join(
            line for line in (proc.stderr or proc.stdout).splitlines()
            if line.strip() and "is ignored" not in line  # pip's noise about missing indexes
        )
        last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
        if what.startswith("pip") and any(s in err for s in _NOT_FOUND):
            raise _config_error(
                f"{PACKAGE}=={version} cannot be installed (pip: {last.strip()})", cfg
            )
        raise ClusterError(f"{KEY} = {version!r}: {what} failed: {last.strip()}")
    return proc.stdout


def _build(path: Path, version: str, python: str, timeout: float, cfg: str | None) -> None:
    if path.exists():
        shutil.rmtree(path)
    _run([python, "-m", "venv", "--without-pip", str(path)], timeout, "python -m venv",
         version, cfg)
    py = str(path / "bin" / "python")
    purelib = _run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        timeout, "reading the new environment's site-packages", version, cfg,
    ).strip()
    Path(purelib).mkdir(parents=True, exist_ok=True)
    (Path(purelib) / PTH_NAME).write_text("\n".join(_project_paths()) + "\n")
    _run(
        [python, "-m", "pip", "--python", py, "install", "--disable-pip-version-check",
         "--no-input", "--quiet", f"{PACKAGE}=={version}"],
        timeout, f"pip install {PACKAGE}=={version}", version, cfg,
    )
    got = _run(
        [py, "-c", "from pysyncobj.version import VERSION; import instrumentation; print(VERSION)"],
        timeout, "importing pysyncobj and instrumentation in the new environment", version, cfg,
    ).strip()
    if got != version:
        raise ClusterError(f"{KEY} = {version!r}: the environment has pysyncobj {got!r}")
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(version + "\n")
    os.replace(tmp, path / MARKER)
    with open(path.parent / BUILD_LOG, "a") as f:  # one line per build, for the curious
        f.write(f"{version} {py}\n")


def ensure(
    version: str = DEFAULT_VERSION,
    *,
    base: Path | str | None = None,
    python: str | None = None,
    timeout: float = 600.0,
    config_path: str | None = None,
) -> TargetEnv:
    """Build ``version``'s environment if needed (idempotent, safe concurrently).

    ``python``: the interpreter to build from (default: the running one, i.e.
    the project's). ``config_path`` is only used to name the file in errors.
    """
    version = _check_version(version, config_path)
    root = Path(base or DEFAULT_BASE)
    path = root / version
    if _is_ready(path, version):
        return TargetEnv(version, path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock_file = open(root / f".{version}.lock", "a+")  # noqa: SIM115 (held until built)
    except OSError as exc:
        raise ClusterError(f"{KEY} = {version!r}: cannot create {root}: {exc}") from None
    with _thread_lock, lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            if not _is_ready(path, version):
                try:
                    _build(path, version, python or sys.executable, timeout, config_path)
                except BaseException:
                    shutil.rmtree(path, ignore_errors=True)
                    raise
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
    return TargetEnv(version, path)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python targets/pysyncobj/envs.py",
        description="Build or list per-version PySyncObj environments.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ensure", help="build VERSION's environment if needed; print its python")
    e.add_argument("version", nargs="?", default=DEFAULT_VERSION)
    e.add_argument("--base", help=f"environments directory (default {DEFAULT_BASE})")
    ls = sub.add_parser("list", help="print the ready versions")
    ls.add_argument("--base")
    args = p.parse_args(argv)
    if args.cmd == "list":
        for v in ready_versions(args.base and Path(args.base)):
            print(v)
        return 0
    try:
        env = ensure(args.version, base=args.base)
    except (ConfigError, ClusterError) as exc:
        print(f"envs.py: {exc}", file=sys.stderr)
        return 2
    print(env.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
