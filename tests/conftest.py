"""Shared fixtures: seeds that a failing test prints, ports that never collide,
process cleanup that also runs on failure.

Every random choice in a test draws from the ``seed`` fixture (or ``rng``).
The session seed comes from ``HBFUZZ_TEST_SEED`` when set, else is random;
each test's seed is derived from it and its node id, and a failing test's
report carries the line to replay it. Hypothesis is seeded from the same
session seed.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzzer.cluster.ports import PortLease, lease_ports

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

_env_seed = os.environ.get("HBFUZZ_TEST_SEED")
SESSION_SEED = int(_env_seed) if _env_seed else random.SystemRandom().randrange(2**32)


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = SESSION_SEED


def pytest_report_header(config: pytest.Config) -> str:
    return f"hbfuzz test seed: {SESSION_SEED} (replay with HBFUZZ_TEST_SEED={SESSION_SEED})"


def _test_seed(nodeid: str) -> int:
    h = hashlib.sha256(f"{SESSION_SEED}:{nodeid}".encode()).digest()
    return int.from_bytes(h[:4], "big")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        report.sections.append(
            (
                "hbfuzz seed",
                f"test seed {_test_seed(item.nodeid)}; replay with "
                f"HBFUZZ_TEST_SEED={SESSION_SEED} pytest '{item.nodeid}'",
            )
        )
    return report


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed, derived from the session seed and the test id."""
    return _test_seed(request.node.nodeid)


@pytest.fixture
def rng(seed: int) -> random.Random:
    return random.Random(seed)


@pytest.fixture
def ports() -> Iterator[callable]:
    """``ports(n)`` leases n free loopback ports for this test; released after it."""
    leases: list[PortLease] = []

    def take(n: int = 1) -> list[int]:
        lease = lease_ports(n)
        leases.append(lease)
        return list(lease.ports)

    yield take
    for lease in leases:
        lease.release()


@pytest.fixture
def procs() -> Iterator[callable]:
    """``procs(argv, **popen_kwargs)`` starts a process in its own process group;
    every group still alive is killed after the test, pass or fail."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.exists():
        pytest.fail(f"shared data not found at {path}")
    return path
