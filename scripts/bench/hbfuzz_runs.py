"""Shared by the campaign benchmarks: run ``hbfuzz run --no-ui`` campaigns as subprocesses.

Why subprocesses and not :func:`fuzzer.campaign.commands.run_campaign` in
this process: a benchmark compares schedulers side by side (``--parallel``),
and each campaign must be exactly what a user runs (its own tracker server,
its own event loop, its own campaign directory), so each is one
``python -m fuzzer run`` in its own process group, stopped with SIGTERM (a
clean stop: the campaign commits and writes its last stats) and killed with
its group if it does not stop in time. Nothing is left behind, also on
Ctrl-C of the benchmark.

Read back from each campaign directory: ``plot_data`` (coverage over time),
``fuzzer_stats`` and the findings (``crashes/`` bundle names carry the time
in ms since the campaign's start and the execution count).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzzer.campaign.commands import parse_budget  # noqa: E402
from fuzzer.campaign.stats import read_plot, read_stats  # noqa: E402
from fuzzer.errors import InputError  # noqa: E402

PYTHON = sys.executable
STOP_GRACE = 60.0  # seconds a campaign gets to stop after SIGTERM (finishes its execution)
_BUNDLE = re.compile(r"^id:(\d+),sig:([0-9a-f]+),time:(\d+),execs:(\d+),kind:(\w+)\.bundle$")


@dataclass(frozen=True)
class RunSpec:
    """One campaign to run: scheduler, seed, budget (s), directory, config overrides."""

    target: str
    scheduler: str
    seed: int
    budget: float
    out: Path
    overrides: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        cmd = [PYTHON, "-m", "fuzzer", "run", self.target, "-o", str(self.out),
               "--duration", f"{self.budget:g}s", "--seed", str(self.seed),
               "--scheduler", self.scheduler, "--no-ui"]
        for o in self.overrides:
            cmd += ["--set", o]
        return cmd


def bench_parser(description: str, *, budget: str, budget_help: str, seeds: int,
                 set_help: str) -> argparse.ArgumentParser:
    """The options every scheduler-comparison benchmark takes (a script adds its own).

    Why here: campaign.py and time_to_bug.py run the same grid of campaigns
    (schedulers x seeds at one budget) and must read it the same way.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--target", default=str(ROOT / "targets" / "pysyncobj" / "target.toml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--budget", default=budget, help=budget_help)
    p.add_argument("--seeds", type=int, default=seeds)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--schedulers", default="qlearning,random,power")
    p.add_argument("--parallel", action="store_true",
                   help="run the schedulers of one seed side by side (they share the machine)")
    p.add_argument("--out", help="keep the campaign directories here (default: a temp dir)")
    p.add_argument("--json", action="store_true")
    return p


@dataclass(frozen=True)
class Grid:
    """The campaigns a benchmark runs: each scheduler for each seed at one budget (s)."""

    target: str
    budget: float
    schedulers: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]

    @classmethod
    def of(cls, args: argparse.Namespace) -> Grid:
        """The grid named by the options of :func:`bench_parser`."""
        return cls(args.target, parse_budget(args.budget),
                   tuple(s.strip() for s in args.schedulers.split(",") if s.strip()),
                   tuple(range(args.first_seed, args.first_seed + args.seeds)),
                   tuple(args.set))

    def specs(self, root: Path, seed: int) -> list[RunSpec]:
        """One seed's campaigns, each in ``root/s<seed>-<scheduler>``."""
        return [RunSpec(self.target, s, seed, self.budget, root / f"s{seed}-{s}", self.overrides)
                for s in self.schedulers]


def say_to(json_out: bool) -> Callable[[str], None]:
    """Progress lines go to stdout, or to stderr when stdout carries the JSON object."""

    def say(line: str) -> None:
        print(line, file=sys.stderr if json_out else sys.stdout, flush=True)

    return say


@dataclass(frozen=True)
class Bundle:
    """A finding bundle in ``crashes/`` or ``hangs/`` (parsed from its name)."""

    path: Path
    id: int
    sig_hash: str
    time_s: float
    execs: int
    kind: str


def bundles(out: Path, sub: str = "crashes") -> list[Bundle]:
    """The finding bundles of a campaign directory, oldest first."""
    found = []
    d = out / sub
    if d.is_dir():
        for p in d.iterdir():
            m = _BUNDLE.match(p.name)
            if m:
                found.append(Bundle(p, int(m[1]), m[2], int(m[3]) / 1000.0, int(m[4]), m[5]))
    return sorted(found, key=lambda b: (b.time_s, b.id))


@dataclass
class Running:
    """A started campaign process and what the benchmark learnt about it."""

    spec: RunSpec
    proc: subprocess.Popen
    started: float
    log: Path
    stopped_by: str = ""
    wall: float = 0.0
    returncode: int | None = None
    extra: dict = field(default_factory=dict)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def _start(spec: RunSpec) -> Running:
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    log = spec.out.parent / f"{spec.out.name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(spec.argv(), cwd=str(ROOT), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Running(spec, proc, time.monotonic(), log)


def run_all(specs: Sequence[RunSpec], *, parallel: bool,
            stop_when: Callable[[Running], str] | None = None,
            poll: float = 1.0, progress: Callable[[str], None] | None = None) -> list[Running]:
    """Run ``specs`` one after the other, or all at once with ``parallel``.

    ``stop_when(running)``: polled every ``poll`` s; a non-empty reason stops that
    campaign (SIGTERM, then SIGKILL of its group after :data:`STOP_GRACE`). A
    campaign also gets SIGTERM when it overruns its budget by ``STOP_GRACE``.
    """
    done: list[Running] = []
    batches = [list(specs)] if parallel else [[s] for s in specs]
    live: list[Running] = []
    try:
        for batch in batches:
            live = [_start(s) for s in batch]
            term_at: dict[int, float] = {}
            while live:
                time.sleep(poll)
                now = time.monotonic()
                for r in list(live):
                    if r.proc.poll() is not None:
                        r.wall = now - r.started
                        r.returncode = r.proc.returncode
                        r.stopped_by = r.stopped_by or "budget"
                        live.remove(r)
                        done.append(r)
                        if progress:
                            progress(f"{r.spec.out.name}: done in {r.wall:.0f}s "
                                     f"({r.stopped_by}, exit {r.returncode})")
                        continue
                    key = id(r)
                    if key in term_at:
                        if now - term_at[key] > STOP_GRACE:
                            r.signal(signal.SIGKILL)
                        continue
                    reason = stop_when(r) if stop_when else ""
                    if not reason and now - r.started > r.spec.budget + STOP_GRACE:
                        reason = "overran its budget"
                    if reason:
                        r.stopped_by = reason
                        term_at[key] = now
                        r.signal(signal.SIGTERM)
    finally:
        for r in live:  # interrupted: leave nothing running
            r.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(10)
    return done


def read_run(out: Path) -> tuple[dict, list[dict[str, int]]]:
    """(fuzzer_stats as a dict, plot_data rows) of a finished campaign."""
    try:
        stats = dict(read_stats(out / "fuzzer_stats"))
    except (InputError, OSError):
        stats = {}
    try:
        rows = read_plot(out / "plot_data")
    except (InputError, OSError):
        rows = []
    return stats, rows


def at_time(rows: list[dict[str, int]], t: float, key: str) -> int:
    """``key`` of the last plot_data row at or before ``t`` seconds (0 if none)."""
    val = 0
    for row in rows:
        if row["relative_time"] <= t:
            val = row[key]
        else:
            break
    return val


def number(stats: dict, key: str) -> float:
    try:
        return float(stats.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0.0
