"""The campaign directory: atomic writes, recovery after a crash, stats and plot formats, dedup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fuzzer.campaign.findings import FindingIndex, FindingRecord, signature_hash
from fuzzer.campaign.outdir import CampaignDir, FindingName, QueueName, atomic_write, entry_id
from fuzzer.campaign.setup import derive_seed, split_overrides
from fuzzer.campaign.stats import (
    PLOT_COLUMNS,
    Progress,
    parse_stats,
    plot_header,
    plot_row,
    read_plot,
    stats_lines,
)
from fuzzer.errors import InputError, UsageError

REQUIRED = ("start_time", "last_update", "run_time", "execs_done", "execs_per_hour",
            "hb_coverage", "code_edges", "corpus_count", "saved_crashes", "saved_hangs",
            "unique_findings", "last_find", "stability", "policy_entropy", "scheduler", "seed",
            "target", "command_line")


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f"
    atomic_write(p, "old\n")
    atomic_write(p, b"new\n")
    assert p.read_bytes() == b"new\n"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


def test_atomic_write_killed_mid_write_leaves_old_file(tmp_path, python, procs):
    """SIGKILL a writer many times while it rewrites a file: every time, the file is
    one complete version (never torn), and a reopen cleans stray temp files."""
    d = CampaignDir(tmp_path / "out")
    d.create()
    target = d.stats_path
    atomic_write(target, "x" * 100_000 + "\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.getcwd())!r})
        from fuzzer.campaign.outdir import atomic_write
        i = 0
        print("go", flush=True)
        while True:
            i += 1
            atomic_write({str(target)!r}, (chr(97 + i % 26) * 100_000) + "\\n")
    """)
    for _ in range(5):
        p = procs([python, "-c", script], stdout=subprocess.PIPE)
        assert p.stdout.readline().strip() == b"go"
        p.kill()
        p.wait(timeout=10)
        data = target.read_bytes()
        assert len(data) == 100_001 and len(set(data[:-1])) == 1 and data.endswith(b"\n")
    d.open()
    assert not list(d.root.glob(".tmp-*"))


def test_create_refuses_existing_campaign(tmp_path):
    d = CampaignDir(tmp_path / "out")
    d.create()
    atomic_write(d.config_path, "[campaign]\n")
    with pytest.raises(UsageError, match="already holds a campaign; continue it with --resume"):
        CampaignDir(tmp_path / "out").create()
    for sub in ("queue", "crashes", "hangs", "scheduler", "traces"):
        assert (d.root / sub).is_dir()


def test_names_follow_afl_conventions():
    q = QueueName(12, 3, 4567, 89, "havoc")
    assert q.text() == "id:000012,src:000003,time:4567,execs:89,op:havoc"
    assert QueueName(0, None, 1, 1, "a/b:c").text() == "id:000000,src:none,time:1,execs:1,op:a_b_c"
    f = FindingName(1, signature_hash("x"), 10, 2, "safety")
    assert f.text().startswith("id:000001,sig:") and f.text().endswith(",kind:safety.bundle")
    assert entry_id(q.text()) == 12 and entry_id("README") is None


def test_reconcile_adopts_files_written_after_the_last_commit(tmp_path):
    d = CampaignDir(tmp_path / "out")
    d.create()
    d.write_queue_entry(QueueName(0, None, 1, 1, "gen"), "seed 1\n")
    d.write_queue_entry(QueueName(1, 0, 2, 2, "gen"), "seed 2\n")
    bundle = d.finding_path("safety", FindingName(0, "abcd0123", 5, 2, "safety"))
    bundle.write_bytes(b"...")
    new_q, new_f = d.reconcile(known_queue=[0], known_findings=[])
    assert [i for i, _ in new_q] == [1]
    assert new_f == [bundle]


def test_traces_are_bounded(tmp_path):
    d = CampaignDir(tmp_path / "out")
    d.create()
    for n in range(12):
        d.write_trace(n, b"t%d" % n, keep=3)
    kept = sorted(p.name for p in (d.root / "traces").iterdir())
    assert kept == ["exec:000009.msgpack.lz4", "exec:000010.msgpack.lz4",
                    "exec:000011.msgpack.lz4"]


def test_state_round_trip_and_rejects_foreign_files(tmp_path):
    d = CampaignDir(tmp_path / "out")
    d.create()
    assert d.load_state() is None
    d.save_state({"progress": {"execs_done": 3}})
    assert d.load_state() == {"progress": {"execs_done": 3}}
    d.state_path.write_bytes(b"\x93\x01\x02\x03")
    with pytest.raises(InputError, match="state.msgpack: not an hbfuzz campaign state"):
        d.load_state()


def test_plot_data_torn_line_is_repaired(tmp_path):
    d = CampaignDir(tmp_path / "out")
    d.create()
    atomic_write(d.plot_path, plot_header() + "\n")
    d.append_line(d.plot_path, plot_row(1, 1, 10, 2, 1, 0, 0))
    with open(d.plot_path, "ab") as fh:
        fh.write(b"7, 2, 1")  # a crash mid-append
    assert len(read_plot(d.plot_path)) == 1
    d.repair_lines(d.plot_path)
    assert d.plot_path.read_bytes().endswith(b"0, 0\n")
    d.append_line(d.plot_path, plot_row(9.7, 3, 30, 4, 2, 1, 0))
    rows = read_plot(d.plot_path)
    assert rows[-1] == dict(zip(PLOT_COLUMNS, (9, 3, 30, 4, 2, 1, 0), strict=True))


def test_stats_lines_format_and_parse(rng):
    values = {k: rng.randrange(1000) for k in REQUIRED}
    values.update(stability="100.00%", scheduler="qlearning", target="t",
                  command_line="hbfuzz run t.toml\n--seed 1", policy_entropy=0.5)
    text = stats_lines(values)
    lines = text.splitlines()
    assert [ln.split(" : ")[0].strip() for ln in lines][:3] == ["start_time", "last_update",
                                                                  "run_time"]
    assert all(" : " in ln for ln in lines)
    back = parse_stats(text)
    assert set(REQUIRED) <= set(back)
    assert back["policy_entropy"] == "0.50" and back["command_line"] == "hbfuzz run t.toml --seed 1"
    with pytest.raises(InputError, match="s: line 2: expected 'key : value'"):
        parse_stats("a : 1\nbroken\n", "s")


def test_progress_counters_survive_a_round_trip():
    p = Progress(start_time=100.0, session_start=200.0, execs_done=7, exec_errors=1)
    d = p.to_dict(now=260.0)
    assert d["run_time"] == 60.0
    q = Progress.from_dict(d)
    q.session_start = 1000.0
    assert q.execs_done == 7 and q.run_time(now=1030.0) == 90.0
    assert round(q.stability(), 2) == 85.71
    assert q.execs_per_hour(now=1030.0) == pytest.approx(7 * 3600 / 90)
    with pytest.raises(InputError, match="progress.execs_done"):
        Progress.from_dict({"execs_done": "many"})


def test_finding_index_dedups_and_counts():
    idx = FindingIndex()
    idx.add_new(FindingRecord(0, "a/b[x]", "safety", "f0", first_exec=1, last_exec=1))
    assert "a/b[x]" in idx and idx.next_id() == 1
    with pytest.raises(ValueError):
        idx.add_new(FindingRecord(1, "a/b[x]", "safety", "f1"))
    r = idx.repeat("a/b[x]", exec_no=5, t=9.0)
    assert (r.count, r.last_exec, r.first_exec) == (2, 5, 1)
    idx.add_new(FindingRecord(1, "liveness/hang[]", "liveness", "h1"))
    assert (idx.count("safety"), idx.count("liveness"), len(idx), idx.total()) == (1, 1, 2, 3)
    back = FindingIndex.from_list(idx.to_list())
    assert back.records() == idx.records()
    with pytest.raises(InputError, match=r"findings\[0\]"):
        FindingIndex.from_list([[1, 2]])


def test_seeds_are_derived_deterministically(seed):
    a = [derive_seed(seed, n) for n in range(50)]
    assert a == [derive_seed(seed, n) for n in range(50)]
    assert len(set(a)) == 50 and all(0 <= x < 2**63 for x in a)
    assert derive_seed(seed + 1, 0) != a[0]


def test_split_overrides():
    config, sched = split_overrides(["schedule.step=1.5s", "scheduler.alpha=0.3",
                                     "scheduler.policy=epsilon"])
    assert config == ["schedule.step=1.5s"]
    assert sched == {"alpha": 0.3, "policy": "epsilon"}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
