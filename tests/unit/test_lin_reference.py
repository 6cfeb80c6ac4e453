"""Agreement with the verdicts Porcupine's test suite asserts, on every
reference history in ../shared/data/porcupine (52 etcd logs, 6 kv files).

All 58 together take about a second; each has a generous budget so that a
loaded machine yields "unknown" (a failure here) rather than a wrong verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzer.checkers.linearizability import check
from fuzzer.workload.importers import load_history

PORCUPINE = Path(__file__).resolve().parents[3] / "shared" / "data" / "porcupine"


def _etcd_verdicts() -> dict[str, str]:
    path = PORCUPINE / "etcd" / "verdicts.txt"
    if not path.exists():
        return {}
    return dict(line.split() for line in path.read_text().splitlines() if line.strip())


ETCD = _etcd_verdicts()
KV = ["c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt", "c50-ok.txt", "c50-bad.txt"]


def test_reference_data_is_complete(shared_data):
    etcd = shared_data / "porcupine" / "etcd"
    assert len(ETCD) == 52
    assert sorted(ETCD) == sorted(p.name for p in etcd.glob("etcd_*.log"))
    assert sorted(KV) == sorted(p.name for p in (shared_data / "porcupine" / "kv").glob("*.txt"))


@pytest.mark.parametrize("name", sorted(ETCD))
def test_etcd_history(shared_data, name):
    history = load_history(shared_data / "porcupine" / "etcd" / name, "jepsen-log")
    result = check(history, "cas-register", timeout=60)
    assert result.verdict == ETCD[name]
    if result.verdict == "not-linearizable":
        assert result.unplaced


@pytest.mark.parametrize("name", KV)
def test_kv_history(shared_data, name):
    history = load_history(shared_data / "porcupine" / "kv" / name, "edn")
    result = check(history, "kv", timeout=60)
    expected = "linearizable" if name.endswith("-ok.txt") else "not-linearizable"
    assert result.verdict == expected
    assert result.partitions == len({op.key for op in history.ops})
    if expected == "not-linearizable":
        assert result.key is not None and result.unplaced
        assert all(op.key == result.key for op in result.prefix + result.unplaced)
