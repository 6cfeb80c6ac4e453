"""``hbfuzz check-history`` as a real subprocess: output lines and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fuzzer.workload.history import HistoryRecorder, save


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fuzzer", "check-history", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def porcupine(shared_data):
    return shared_data / "porcupine"


def test_all_linearizable_exits_0(porcupine):
    files = [str(porcupine / "etcd" / "etcd_002.log"), str(porcupine / "etcd" / "etcd_018.log")]
    r = run(*files, "--model", "cas-register", "--format", "jepsen-log")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{f}\tlinearizable" for f in files]


def test_any_not_linearizable_exits_1(porcupine):
    ok, bad = str(porcupine / "kv" / "c10-ok.txt"), str(porcupine / "kv" / "c10-bad.txt")
    r = run(ok, bad, "--model", "kv", "--format", "edn", "--timeout", "60")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [f"{ok}\tlinearizable", f"{bad}\tnot-linearizable"]


def test_usage_and_input_errors_exit_2(porcupine, tmp_path):
    f = str(porcupine / "kv" / "c01-ok.txt")
    r = run(f, "--model", "queue", "--format", "edn")
    assert r.returncode == 2
    assert "valid models: cas-register, counter, kv" in r.stderr and "set" in r.stderr
    r = run(f, "--model", "kv", "--format", "csv")
    assert r.returncode == 2 and "valid formats: jepsen-log, edn, hbfuzz" in r.stderr
    bad = tmp_path / "bad.log"
    bad.write_text(
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t[1\n"
    )
    r = run(str(bad), "--model", "register", "--format", "jepsen-log")
    assert r.returncode == 2 and f"{bad}: line 2: malformed" in r.stderr
    orphan = tmp_path / "orphan.log"
    orphan.write_text("INFO  jepsen.util - 7\t:ok\t:read\t1\n")
    r = run(str(orphan), "--model", "register", "--format", "jepsen-log")
    assert (
        r.returncode == 2
        and "line 1: completion :ok :read for process 7 without an invocation" in r.stderr
    )


def test_unknown_exits_3(porcupine):
    f = str(porcupine / "kv" / "c50-ok.txt")
    r = run(f, "--model", "kv", "--format", "edn", "--timeout", "0.000001")
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines() == [f"{f}\tunknown"]


def test_hbfuzz_format(tmp_path):
    rec = HistoryRecorder()
    w = rec.invoke(0, "write", 1)
    rec.ok(w, 1)
    r_ = rec.invoke(1, "read")
    rec.ok(r_, None)
    path = tmp_path / "h.hist"
    save(rec.history(), path)
    r = run(str(path), "--model", "register")
    assert r.returncode == 1 and r.stdout == f"{path}\tnot-linearizable\n"
