"""``hbfuzz run``, ``hbfuzz stats`` and ``hbfuzz plot``: the thin shells over the campaign.

Why here and not in cli.py: cli.py only parses; these functions compose the
config, the scheduler, the tracker server, the execution factory, the
status screen and the signal handlers, and turn the outcome into an exit
code (0 no findings, 1 findings, 2 usage or config error).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from fuzzer.errors import ConfigError, InputError, UsageError

__all__ = [
    "parse_budget",
    "build_campaign",
    "run_campaign",
    "run_command",
    "stats_command",
    "plot_command",
]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_budget(text: str) -> float:
    """``30m`` / ``2h`` / ``90s`` / ``1d`` / ``45`` (seconds) -> seconds."""
    m = _DUR_RE.match(text or "")
    if not m:
        raise UsageError(f"--duration: expected a duration like 90s, 30m, 2h or 1d, got {text!r}")
    v = float(m.group(1)) * _UNITS[m.group(2)]
    if v <= 0:
        raise UsageError("--duration must be positive")
    return v


def _run_setup(cfg: Any) -> None:
    """Run ``target.setup`` (idempotent: builds the target version's environment)."""
    words = list(cfg.target.setup or ())
    if not words:
        return
    try:
        proc = subprocess.run(words, cwd=str(cfg.target.dir), capture_output=True, text=True,
                              timeout=1800, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"setup failed: {exc}", path=cfg.source, where="target.setup") \
            from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ConfigError(f"setup exited with {proc.returncode}: {' | '.join(tail)}",
                          path=cfg.source, where="target.setup")


def _load(args: Any) -> tuple[Any, Any, bool, Path]:
    """Resolve (config, campaign meta, resume?, out dir) from the command line."""
    from fuzzer.campaign.outdir import CampaignDir
    from fuzzer.campaign.setup import CampaignMeta, read_campaign_toml, split_overrides
    from fuzzer.config import load_config
    from fuzzer.scheduler import SCHEDULERS

    config_sets, sched_sets = split_overrides(args.overrides)
    if args.resume:
        out = Path(args.resume)
        if args.output and Path(args.output).resolve() != out.resolve():
            raise UsageError("give either -o OUT or --resume OUT, not two different directories")
        d = CampaignDir(out)
        if not d.exists():
            raise UsageError(f"--resume {out}: not a campaign directory (no campaign.toml)")
        cfg, meta = read_campaign_toml(d.config_path)
        if args.config:
            overrides = list(meta.overrides) + config_sets
            cfg = load_config(args.config, overrides)
            meta = CampaignMeta(**{**meta.__dict__, "overrides": tuple(overrides),
                                   "target_file": str(Path(args.config).resolve())})
        elif config_sets:
            raise UsageError("--set with --resume needs TARGET.toml too (the campaign's "
                             "resolved config is used otherwise)")
        if args.seed is not None and args.seed != meta.seed:
            raise UsageError(f"--seed {args.seed}: this campaign was started with seed "
                             f"{meta.seed} (a resume keeps it)")
        if args.scheduler and args.scheduler != meta.scheduler:
            raise UsageError(f"--scheduler {args.scheduler}: this campaign uses "
                             f"{meta.scheduler} (its learned state is kept on resume)")
        if sched_sets:
            meta = CampaignMeta(**{**meta.__dict__,
                                   "scheduler_config": {**meta.scheduler_config, **sched_sets}})
        return cfg, meta, True, out
    if not args.config:
        raise UsageError("run needs TARGET.toml (or --resume OUT)")
    out = Path(args.output or "out")
    cfg = load_config(args.config, config_sets)
    sched = args.scheduler or "qlearning"
    if sched not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {sched!r} (expected {', '.join(SCHEDULERS)})")
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    if not 0 <= seed < 2**63:
        raise UsageError("--seed must be in [0, 2**63)")
    meta = CampaignMeta(seed=seed, scheduler=sched, target_file=str(Path(args.config).resolve()),
                        overrides=tuple(config_sets), scheduler_config=sched_sets)
    return cfg, meta, False, out


def _quiet_grpc() -> None:
    """Before gRPC is imported: no fork handlers (the fuzzer forks node processes while
    the tracker's server threads run; gRPC's atfork handlers then crash the child
    before exec) and no INFO lines on stderr (they would tear the status screen)."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def build_campaign(cfg: Any, out: str | Path, meta: Any, budget: Any, *, resume: bool = False,
                   command_line: str = "", keep_traces: int = 5, jobs: int = 1,
                   ray: str | None = None, sync: Any = None, exec_timeout: float | None = None
                   ) -> Any:
    """A :class:`~fuzzer.campaign.loop.Campaign` for ``cfg`` with the scheduler
    ``meta`` names, opened (created, or restored with ``resume``). Its executions
    are real once :func:`run_campaign` runs it. ``jobs``: executions at once
    (``fuzzer.campaign.jobs``); ``ray``: ``auto`` or a Ray address to run them on
    (``fuzzer.campaign.rayjobs``); ``sync``: a ``fuzzer.campaign.sync.SyncDir``."""
    from fuzzer.campaign.loop import Campaign
    from fuzzer.campaign.outdir import CampaignDir
    from fuzzer.campaign.setup import action_space_for
    from fuzzer.scheduler import make_scheduler

    actions = action_space_for(cfg)
    scheduler = make_scheduler(meta.scheduler, actions, meta.scheduler_config,
                               cfg.schedule.length, cfg.schedule.step)
    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    pool: Any = None
    if ray is not None:
        from fuzzer.campaign.rayjobs import RayPool, ray_available

        ray_available()  # a UsageError naming the extra, before the campaign starts
        pool = RayPool(jobs, ray, timeout=exec_timeout)
    elif jobs > 1 or sync is not None:
        from fuzzer.campaign.jobs import LocalPool

        pool = LocalPool(jobs, timeout=exec_timeout)
    campaign = Campaign(cfg, CampaignDir(out), meta, scheduler, actions, factory=_no_factory,
                        budget=budget, command_line=command_line, keep_traces=keep_traces,
                        pool=pool, sync=sync)
    try:
        campaign.open(resume=resume)
    except OSError as exc:
        raise UsageError(f"cannot write the campaign directory {out}: {exc.strerror}") from None
    return campaign


def run_campaign(campaign: Any, view: Any = None) -> Any:
    """Run an opened campaign on real clusters (one shared tracker server) until its
    budget is used up or SIGINT/SIGTERM; returns its :class:`CampaignSummary`.
    ``view``: a status screen or progress printer (None: silent). For benchmarks::

        meta = CampaignMeta(seed=1, scheduler="random")
        summary = run_campaign(build_campaign(cfg, "out/x", meta, Budget(duration=600)))
    """
    _quiet_grpc()
    return asyncio.run(_main(campaign, campaign.cfg, view or _Silent()))


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, snapshot: Any) -> None:
        pass


def run_command(args: Any) -> int:
    """``hbfuzz run``: see :func:`fuzzer.cli.build_parser`."""
    _quiet_grpc()
    from fuzzer.campaign.loop import Budget

    cfg, meta, resume, out = _load(args)
    if args.duration is not None and args.executions is not None:
        raise UsageError("give --duration or --executions, not both")
    duration = parse_budget(args.duration) if args.duration is not None else None
    if args.executions is not None and args.executions < 1:
        raise UsageError("--executions must be >= 1")
    budget = Budget(duration=duration, executions=(
        None if args.executions is None else
        args.executions + (_done_before(out) if resume else 0)))
    jobs, ray, sync = _scale_args(args)
    _run_setup(cfg)
    command_line = shlex.join(["hbfuzz", *sys.argv[1:]]) if sys.argv else "hbfuzz run"
    campaign = build_campaign(cfg, out, meta, budget, resume=resume,
                              command_line=command_line, keep_traces=args.keep_traces,
                              jobs=jobs, ray=ray, sync=sync)
    verb = "resuming" if resume else "starting"
    scale = f", {jobs} jobs" + (f" on Ray ({ray})" if ray else "") if jobs > 1 or ray else ""
    if sync is not None:
        scale += f", sync {sync.root} as {sync.role} {sync.name}"
    print(f"hbfuzz: {verb} campaign {out}: target {cfg.target.name}, scheduler {meta.scheduler}, "
          f"seed {meta.seed}, {len(campaign.actions)} actions{scale}", flush=True)
    summary = run_campaign(campaign, _view(args))
    for line in summary.lines():
        print(line)
    if summary.stopped_by.startswith("write error"):
        print(f"hbfuzz: error: campaign stopped, cannot write {out}: {summary.stopped_by}; "
              "everything saved before is intact (continue with --resume)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FINDINGS if summary.found else EXIT_OK


def _scale_args(args: Any) -> tuple[int, str | None, Any]:
    """``--jobs``, ``--ray``, ``--sync-dir`` with ``-M``/``-S`` (validated)."""
    jobs = getattr(args, "jobs", None)
    jobs = 1 if jobs is None else jobs
    if jobs < 1:
        raise UsageError("--jobs must be >= 1")
    ray = getattr(args, "ray", None)
    sync_dir = getattr(args, "sync_dir", None)
    main, secondary = getattr(args, "main", None), getattr(args, "secondary", None)
    if (main or secondary) and not sync_dir:
        raise UsageError("-M/-S name this campaign in a sync directory: give --sync-dir DIR")
    sync = None
    if sync_dir:
        if not (main or secondary):
            raise UsageError("--sync-dir needs -M NAME (main) or -S NAME (secondary)")
        from fuzzer.campaign.sync import SyncDir

        interval = getattr(args, "sync_interval", None)
        sync = SyncDir(sync_dir, main or secondary, "main" if main else "secondary",
                       30.0 if interval is None else interval)
    return jobs, ray, sync


def _no_factory(*_: Any) -> Any:  # replaced in _main once the tracker server runs
    raise UsageError("the campaign has no execution factory yet")


def _done_before(out: Path) -> int:
    from fuzzer.campaign.outdir import CampaignDir

    st = CampaignDir(out).load_state() or {}
    return int(st.get("progress", {}).get("execs_done", 0))


def _view(args: Any) -> Any:
    from fuzzer.campaign.ui import ProgressPrinter, StatusScreen

    if args.no_ui or not sys.stdout.isatty():
        return ProgressPrinter(interval=args.progress_interval)
    return StatusScreen()


async def _main(campaign: Any, cfg: Any, view: Any) -> Any:
    from fuzzer.execution import Execution
    from fuzzer.tracker.server import TrackerServer
    from fuzzer.tracker.timeline import Tracker

    server = TrackerServer(Tracker())
    await asyncio.to_thread(server.start)

    def factory(workdir: Path, seed: int, coverage: Any) -> Any:
        return Execution(cfg, workdir, seed, tracker=server, coverage=coverage)

    campaign.factory = factory
    campaign.tracker_stats = lambda: server.stats  # events received/dropped in fuzzer_stats
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, campaign.request_stop, signal.Signals(sig).name)
    campaign.on_tick = view.update
    try:
        with view:
            return await campaign.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(server.stop, 0.5)


# --------------------------------------------------------------------------- stats / plot


def _campaign_dir(path: str) -> Any:
    from fuzzer.campaign.outdir import CampaignDir

    d = CampaignDir(path)
    if not d.root.is_dir():
        raise UsageError(f"{path}: no such directory")
    if not d.stats_path.exists() and not d.exists():
        raise UsageError(f"{path}: not a campaign directory (no fuzzer_stats, no campaign.toml)")
    return d


def stats_command(args: Any) -> int:
    """``hbfuzz stats OUT [--json]``: fuzzer_stats plus the findings table."""
    from fuzzer.campaign.findings import FindingIndex
    from fuzzer.campaign.stats import read_stats

    d = _campaign_dir(args.out)
    values: dict[str, Any] = dict(read_stats(d.stats_path))
    state = d.load_state() or {}
    findings = FindingIndex.from_list(state.get("findings", [])).records()
    rows = [{"id": r.id, "kind": r.kind, "count": r.count, "signature": r.signature,
             "file": str(Path("hangs" if r.kind == "liveness" else "crashes") / r.file),
             "first_exec": r.first_exec, "explanation": r.line} for r in findings]
    if args.json:
        conv: dict[str, Any] = {}
        for k, v in values.items():
            try:
                conv[k] = int(v)
            except ValueError:
                try:
                    conv[k] = float(v)
                except ValueError:
                    conv[k] = v
        print(json.dumps({"stats": conv, "findings": rows}, indent=2, sort_keys=True))
    else:
        width = max((len(k) for k in values), default=0)
        for k, v in values.items():
            print(f"{k.ljust(width)} : {v}")
        if rows:
            print(f"\nfindings ({len(rows)} unique):")
            for r in rows:
                print(f"  {r['file']}  x{r['count']}  {r['signature']}")
    saved = int(values.get("saved_crashes", 0) or 0) + int(values.get("saved_hangs", 0) or 0)
    return EXIT_FINDINGS if saved or rows else EXIT_OK


def plot_command(args: Any) -> int:
    """``hbfuzz plot OUT [-o plot.png]``: coverage and findings over time (matplotlib)."""
    from fuzzer.campaign.plot import write_plot

    d = _campaign_dir(args.out)
    target = Path(args.output) if args.output else d.root / "plot.png"
    try:
        write_plot(d.plot_path, target, title=f"hbfuzz campaign {d.root}")
    except OSError as exc:
        raise InputError(f"cannot write the plot ({exc.strerror})", path=str(target)) from None
    print(f"wrote {target}")
    return EXIT_OK
