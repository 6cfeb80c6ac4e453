"""Shared checks of the resilience tests: survivors by marker, campaign-dir consistency.

Why a marker in the environment: every process a campaign starts (nodes,
their children, the mediator's helpers, the watchdog reaper) inherits the
fuzzer's environment, so a unique ``HBFUZZ_RESILIENCE_MARK=<token>`` finds
all of them in /proc however they were started and whoever re-parented them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from campaign_helpers import PB_KV as PB_KV  # re-exported for the resilience tests
from campaign_helpers import ROOT as ROOT
from campaign_helpers import pids_with_env, wait_until_none

from fuzzer.campaign.outdir import CampaignDir, entry_id
from fuzzer.campaign.stats import PLOT_COLUMNS, STATS_KEYS, read_stats
from fuzzer.faults import Schedule
from fuzzer.repro.bundle import load_bundle

MARK = "HBFUZZ_RESILIENCE_MARK"


def marked(token: str) -> list[int]:
    """PIDs of live processes whose environment carries ``MARK=token``."""
    return pids_with_env(f"{MARK}={token}\0".encode(), skip_zombies=True)


def wait_none_marked(token: str, timeout: float = 20.0) -> list[int]:
    """Wait (bounded) until no marked process is alive; SIGKILL and return any left."""
    return wait_until_none(lambda: marked(token), timeout)


@dataclass(frozen=True)
class DirView:
    """What a consistent campaign directory holds (every file already parsed)."""

    execs_done: int
    findings: frozenset[str]  # signatures in the committed state
    bundles: dict[str, str]  # bundle file name -> signature
    queue: frozenset[str]  # queue entry names
    plot_rows: int


def check_dir(out: Path) -> DirView:
    """Assert that ``out`` is a consistent campaign directory; return what it holds."""
    d = CampaignDir(out)
    assert d.config_path.is_file(), "campaign.toml missing"
    st = d.load_state() or {}
    execs = int(st.get("progress", {}).get("execs_done", 0))
    findings = frozenset(str(r[1]) for r in st.get("findings", []))
    if d.stats_path.exists():
        stats = read_stats(d.stats_path)  # parses or raises
        assert set(STATS_KEYS) <= set(stats), sorted(set(STATS_KEYS) - set(stats))
        int(stats["execs_done"])
    rows = 0
    if d.plot_path.exists():
        text = d.plot_path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        assert lines, "plot_data is empty"
        assert lines[0].strip() == "# " + ", ".join(PLOT_COLUMNS), lines[0]
        body = [x for x in lines[1:] if x.endswith("\n")]  # an unterminated tail is cut on resume
        for row in csv.reader(io.StringIO("".join(body)), skipinitialspace=True):
            assert len(row) == len(PLOT_COLUMNS), row
            [int(x) for x in row]
            rows += 1
    bundles: dict[str, str] = {}
    for sub in ("crashes", "hangs"):
        for p in (out / sub).iterdir():
            if entry_id(p.name) is None:
                assert p.name.startswith(".tmp-"), f"stray file {p}"
                continue
            b = load_bundle(p)
            assert b.kind == ("liveness" if sub == "hangs" else "safety")
            bundles[p.name] = b.signature
    queue = []
    for p in (out / "queue").iterdir():
        if entry_id(p.name) is None:
            assert p.name.startswith(".tmp-"), f"stray file {p}"
            continue
        Schedule.parse_text(p.read_text(encoding="utf-8"), str(p))
        queue.append(p.name)
    for p in (out / "traces").iterdir():
        assert p.name.startswith(("exec:", ".tmp-")), f"stray file {p}"
    return DirView(execs, findings, bundles, frozenset(queue), rows)
