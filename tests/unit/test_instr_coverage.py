"""Branch coverage: the file filter, stable edge ids, first-hit edges, tool id freed."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap

from instrumentation.coverage import PARK_AFTER, BranchCoverage, CodeFilter, edge_id, split_prefixes

MODULE = textwrap.dedent(
    """
    def classify(x):
        if x > 10:
            return "big"
        if x > 5:
            return "mid"
        return "small"

    def loop(xs):
        n = 0
        for x in xs:
            if x:
                n += 1
        return n
    """
)


def _load(tmp_path, name="covmod"):
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    path = pkg / f"{name}.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_split_prefixes():
    assert split_prefixes(" a.b, ,c ") == ["a.b", "c"]
    assert split_prefixes(["x", ""]) == ["x"]


def test_filter_by_module_prefix_and_dir(tmp_path):
    root = tmp_path / "src"
    (root / "raft").mkdir(parents=True)
    (root / "raftx").mkdir()
    f = CodeFilter(["raft"], search_path=[str(root)])
    assert f.relname(str(root / "raft" / "log.py")) == "raft/log.py"
    assert f.relname(str(root / "raft" / "__init__.py")) == "raft/__init__.py"
    assert f.relname(str(root / "raftx" / "a.py")) is None  # prefix is per dotted name
    assert f.relname("<frozen os>") is None
    d = CodeFilter([str(root / "raftx")], search_path=[])
    assert d.relname(str(root / "raftx" / "a.py")) == "raftx/a.py"
    assert d.relname(str(root / "raft" / "log.py")) is None
    # the instrumentation itself is never covered
    import instrumentation

    own = CodeFilter([os.path.dirname(os.path.dirname(instrumentation.__file__))], search_path=[])
    assert own.relname(instrumentation.__file__) is None


def test_edge_ids_stable_and_distinct():
    a = edge_id("pkg/m.py", "f", 3, 10, 14)
    assert a == edge_id("pkg/m.py", "f", 3, 10, 14)
    assert 0 <= a < 2**32
    others = {
        edge_id("pkg/m.py", "f", 3, 10, 16),
        edge_id("pkg/m.py", "g", 3, 10, 14),
        edge_id("pkg/n.py", "f", 3, 10, 14),
    }
    assert a not in others and len(others) == 3


def test_branch_edges_first_hit_and_tool_freed(tmp_path):
    mod = _load(tmp_path)
    seen: list[int] = []
    cov = BranchCoverage(CodeFilter([str(tmp_path / "pkg")], search_path=[]), seen.append)
    cov.start()
    tool = cov.tool
    try:
        assert sys.monitoring.get_tool(tool) == "hbfuzz-coverage"
        mod.classify(1)
        small = set(cov.edges)
        assert len(small) >= 2
        mod.classify(1)
        assert set(cov.edges) == small  # no new edge on a repeat
        mod.classify(20)
        assert set(cov.edges) > small  # the other direction is a new edge
        before = len(cov.edges)
        mod.loop([0, 1] * (PARK_AFTER * 2))
        assert len(cov.edges) > before
        assert len(seen) == len(cov.edges) == len(set(seen))  # each edge reported once
    finally:
        cov.stop()
    assert sys.monitoring.get_tool(tool) is None
    n = len(cov.edges)
    mod.classify(7)
    assert len(cov.edges) == n  # stopped: nothing more recorded


def test_one_sided_branch_parks_then_rearm_sees_other_side(tmp_path):
    mod = _load(tmp_path, "parkmod")
    cov = BranchCoverage(CodeFilter([str(tmp_path / "pkg")], search_path=[])).start()
    try:
        mod.loop([1] * (PARK_AFTER * 3))  # only the "x true" side, many times
        n = len(cov.edges)
        if cov._split:  # 3.14+: both sides are separate events, no parking needed
            mod.loop([0])
            assert len(cov.edges) > n
            return
        assert cov.parked >= 1
        mod.loop([0])  # parked: the other side is not seen yet
        assert len(cov.edges) == n
        assert cov.rearm(now=1e12)
        mod.loop([0])
        assert len(cov.edges) > n
    finally:
        cov.stop()


def test_same_code_same_ids_across_runs(tmp_path):
    ids = []
    for name in ("run_a", "run_b"):
        mod = _load(tmp_path, "same")
        cov = BranchCoverage(CodeFilter([str(tmp_path / "pkg")], search_path=[])).start()
        try:
            mod.classify(7)
        finally:
            cov.stop()
        ids.append(cov.edges)
        del name
    assert ids[0] == ids[1] and ids[0]
