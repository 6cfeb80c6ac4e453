"""The live status screen (rich, like afl-fuzz's) and the plain ``--no-ui`` progress line.

Why two views of one snapshot: the screen is for a person watching a
terminal; CI and log files want one greppable line every few seconds. Both
render the same :meth:`fuzzer.campaign.loop.Campaign.snapshot` dict, so
they can never disagree, and rendering is pure (testable without a
terminal).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["StatusScreen", "ProgressPrinter", "render", "progress_line", "ago", "hms"]


def hms(seconds: float) -> str:
    """``1d 02:03:04`` / ``02:03:04``."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def ago(t: float, now: float | None = None) -> str:
    """Time since ``t`` (``never`` for 0)."""
    if not t:
        return "never"
    return hms((now or time.time()) - t)


def jobs_text(s: Mapping[str, Any]) -> str:
    """Per-job part of the progress line (``--jobs``/``--ray``): ``jobs 2 [j0 3 409/h
    exec 4 step 2/4, ...]``; empty for a campaign without parallel jobs."""
    jobs = s.get("jobs")
    if not jobs:
        return ""
    length = s.get("schedule_length", 0)
    parts = []
    for j in jobs:
        cur = (f" exec {j['current_exec']} step {j['current_step']}/{length}"
               if j.get("current_step") else "")
        err = f" err {j['errors']}" if j.get("errors") else ""
        parts.append(f"j{j['job']} {j['execs']} {j['execs_per_hour']:.0f}/h{err}{cur}")
    return f" jobs {len(jobs)} [{', '.join(parts)}]"


def progress_line(s: Mapping[str, Any]) -> str:
    """One plain line for ``--no-ui`` (stable keys, easy to grep)."""
    if s.get("jobs"):
        return (
            f"[{hms(s['run_time'])}] execs {s['execs_done']} ({s['execs_per_hour']:.0f}/h) "
            f"hb {s['hb_coverage']} edges {s['code_edges']} queue {s['corpus_count']} "
            f"crashes {s['saved_crashes']} hangs {s['saved_hangs']} "
            f"entropy {s['policy_entropy']:.2f} stability {s['stability']}" + jobs_text(s)
        )
    return (
        f"[{hms(s['run_time'])}] execs {s['execs_done']} ({s['execs_per_hour']:.0f}/h) "
        f"hb {s['hb_coverage']} edges {s['code_edges']} queue {s['corpus_count']} "
        f"crashes {s['saved_crashes']} hangs {s['saved_hangs']} "
        f"exec {s.get('current_exec', 0)} step {s.get('current_step', 0)}/"
        f"{s.get('schedule_length', 0)} entropy {s['policy_entropy']:.2f} "
        f"stability {s['stability']}"
    )


def _kv(rows: list[tuple[str, str]]) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold cyan", justify="right")
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    return t


def render(s: Mapping[str, Any]) -> Any:
    """The status screen as a rich renderable."""
    now = time.time()
    sched = s.get("scheduler_stats", {})
    title = (f"hbfuzz {s.get('hbfuzz_version', '')} — {s['target']} "
             f"{s.get('target_version', '')} — {s['scheduler']} — seed {s['seed']}")
    progress = _kv([
        ("run time", hms(s["run_time"])),
        ("execs", str(s["execs_done"])),
        ("execs/h", f"{s['execs_per_hour']:.0f}"),
        ("new cov", ago(s["last_new_cov"], now)),
        ("finding", ago(s["last_find"], now)),
        ("stability", f"{s['stability']}"),
    ])
    coverage = _kv([
        ("hb cov", str(s["hb_coverage"])),
        ("edges", str(s["code_edges"])),
        ("queue", str(s["corpus_count"])),
        ("safety", f"[bold red]{s['saved_crashes']}[/]" if s["saved_crashes"] else "0"),
        ("liveness", f"[bold yellow]{s['saved_hangs']}[/]" if s["saved_hangs"] else "0"),
        ("errors", str(s.get("exec_errors", 0))),
    ])
    learner = _kv([
        ("explore", f"{float(sched.get('exploration', 0.0)):.3f}"),
        ("states", str(sched.get("states_seen", 0))),
        ("entropy", f"{float(sched.get('policy_entropy', 1.0)):.3f}"),
        ("episodes", str(sched.get("episodes", 0))),
    ])
    top = Table.grid(expand=True, padding=(0, 1))
    for _ in range(3):
        top.add_column(ratio=1)
    top.add_row(Panel(progress, title="progress"), Panel(coverage, title="coverage, findings"),
                Panel(learner, title="scheduler"))
    steps = s.get("current_schedule", [])
    cur = Text()
    cur.append(f"execution {s.get('current_exec', 0)}  step {s.get('current_step', 0)}/"
               f"{s.get('schedule_length', 0)}\n", style="bold")
    for i, line in enumerate(steps[-8:], max(1, len(steps) - 7)):
        cur.append(f"{i:>3}  {line}\n")
    rewards = sched.get("fault_rewards", {})
    rt = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    rt.add_column("fault")
    rt.add_column("reward", justify="right")
    for verb, r in sorted(rewards.items(), key=lambda kv: -kv[1])[:10]:
        rt.add_row(verb, f"{r:.2f}")
    mid = Table.grid(expand=True, padding=(0, 2))
    mid.add_column(ratio=2)
    mid.add_column(ratio=1)
    mid.add_row(Panel(cur, title="current schedule"), Panel(rt, title="per-fault rewards"))
    parts: list[Any] = [top, mid]
    jobs = s.get("jobs")
    if jobs:
        jt = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        for col in ("job", "where", "execs", "execs/h", "errors", "exec", "step"):
            jt.add_column(col, justify="left" if col == "where" else "right")
        for j in jobs:
            jt.add_row(str(j["job"]), j.get("where", ""), str(j["execs"]),
                       f"{j['execs_per_hour']:.0f}", str(j["errors"]),
                       str(j["current_exec"]) if j["current_exec"] >= 0 else "-",
                       f"{j['current_step']}/{s.get('schedule_length', 0)}")
        parts.append(Panel(jt, title=f"jobs ({len(jobs)}, total "
                           f"{s['execs_per_hour']:.0f} execs/h)"))
    finds = s.get("findings", [])
    if finds:
        ft = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        ft.add_column("kind")
        ft.add_column("count", justify="right")
        ft.add_column("signature")
        for f in finds[-8:]:
            ft.add_row(f["kind"], str(f["count"]), Text(f["signature"]))
        parts.append(Panel(ft, title=f"findings ({len(finds)} unique)"))
    recent = s.get("recent", [])
    if recent:
        parts.append(Panel(Text("\n".join(recent)), title="recent"))
    foot = f"output: {s.get('out', '')}   Ctrl-C stops cleanly"
    if s.get("stopping"):
        foot = "stopping: tearing down the running execution..."
    parts.append(Text(foot, style="dim"))
    return Panel(Group(*parts), title=title)


class StatusScreen:
    """A rich Live display fed with snapshots (``update`` is the campaign's on_tick)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._live: Live | None = None

    def __enter__(self) -> StatusScreen:
        self._live = Live(console=self.console, refresh_per_second=2, transient=False,
                          screen=False, auto_refresh=True)
        self._live.__enter__()
        return self

    def update(self, snapshot: Mapping[str, Any]) -> None:
        if self._live is not None:
            self._live.update(render(snapshot))

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None


class ProgressPrinter:
    """``--no-ui``: print :func:`progress_line` every ``interval`` seconds."""

    def __init__(self, interval: float = 5.0, stream: TextIO | None = None) -> None:
        self.interval = interval
        self.stream = stream or sys.stdout
        self._last = 0.0

    def __enter__(self) -> ProgressPrinter:
        return self

    def update(self, snapshot: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(progress_line(snapshot), file=self.stream, flush=True)

    def __exit__(self, *exc: object) -> None:
        pass
