"""One whole execution on a Ray worker, with a compact msgpack result for the driver.

Why a separate module without Ray in it: this is what runs on the worker
machine, and it is plain hbfuzz (config, Execution, coverage, scheduler), so
it can be run and tested without Ray (``run_remote`` takes and returns
bytes). Ray only carries the bytes (``fuzzer.campaign.rayjobs``).

Input (``context``, msgpack, shared by many tasks through Ray's object
store): the target file and overrides (the worker loads the config from the
same path: the project and the target's setup must exist on the worker),
the scheduler's name and config, a *policy snapshot* (the Q-learning
scheduler's saved state) and a *coverage snapshot* (the campaign's global
map). Per task: the execution number, its seed, and either a fixed plan
(step texts, chosen by the driver's scheduler up front: random, power,
imported schedules) or None (Q-learning: the worker chooses each step from
the snapshot policy with the state signature it observes).

Output (msgpack): the steps run, per step ``[state, action, next state,
done, found, delta index]``, the per-window :class:`CoverageDelta` s (map
entries new to the worker's snapshot), findings as bundle bytes (the
bundle the driver would write, built here where the trace is), the finding
key, stats, host and pid. Traces of ordinary executions stay on the worker
(deleted with its scratch directory).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from fuzzer.campaign.shared import RecordingCoverage, pack, unpack

__all__ = ["run_remote", "make_context", "warm", "RESULT_VERSION"]

RESULT_VERSION = 1
_CACHE: dict[tuple, Any] = {}
_SERVER: list[Any] = []


def make_context(campaign: Any, with_policy: bool) -> bytes:
    """The shared part of every task: config source, scheduler, snapshots."""
    from fuzzer.scheduler.base import dumps_state

    meta, cfg = campaign.meta, campaign.cfg
    return pack({
        "v": RESULT_VERSION,
        "target_file": meta.target_file,
        "overrides": list(meta.overrides),
        "scheduler": meta.scheduler,
        "scheduler_config": dict(meta.scheduler_config),
        "length": cfg.schedule.length,
        "step": float(cfg.schedule.step),
        "policy": dumps_state(campaign.scheduler.state_dict()) if with_policy else None,
        "coverage": campaign.coverage.to_bytes(),
        "weights": {k: getattr(campaign.weights, k) for k in ("hb", "buckets", "edges",
                                                              "finding")},
        "start_time": campaign.progress.start_time,
    })


def _config(ctx: dict) -> Any:
    from fuzzer.config import load_config

    key = ("cfg", ctx["target_file"], tuple(ctx["overrides"]))
    cfg = _CACHE.get(key)
    if cfg is None:
        cfg = _CACHE[key] = load_config(ctx["target_file"], ctx["overrides"])
    return cfg


def _server() -> Any:
    """One tracker server per worker process, serving its executions by id."""
    if not _SERVER:
        from fuzzer.tracker.server import TrackerServer
        from fuzzer.tracker.timeline import Tracker

        s = TrackerServer(Tracker())
        s.start()
        _SERVER.append(s)
    return _SERVER[0]


def warm() -> int:
    """Import what an execution needs and start the worker's tracker server, so the
    first execution on a fresh worker does not pay for it. Returns the worker's pid."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import fuzzer.execution  # noqa: F401
    import fuzzer.scheduler  # noqa: F401

    _server()
    return os.getpid()


def run_remote(context: bytes, n: int, seed: int, plan: list[str] | None,
               timeout: float) -> bytes:
    """Run execution ``n`` here; the msgpack result (see module docstring). Never
    raises for a failed execution: ``error`` holds its one-line reason."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    t0 = time.monotonic()
    try:
        out = asyncio.run(_run(unpack(context, "execution context"), n, seed, plan, timeout))
    except Exception as exc:  # reported to the driver, which counts it
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out.update(v=RESULT_VERSION, n=n, seed=seed, host=socket.gethostname(), pid=os.getpid(),
               duration=time.monotonic() - t0)
    return pack(out)


async def _run(ctx: dict, n: int, seed: int, plan: list[str] | None, timeout: float) -> dict:
    from fuzzer.campaign.setup import action_space_for
    from fuzzer.execution import Execution
    from fuzzer.schedule import parse_step
    from fuzzer.scheduler import RewardWeights, make_scheduler, reward
    from fuzzer.scheduler.base import loads_state

    cfg = _config(ctx)
    actions = action_space_for(cfg)
    weights = RewardWeights(**ctx["weights"])
    sched = None
    steps = [parse_step(t, "<plan>") for t in plan] if plan is not None else None
    if steps is None:
        sched = make_scheduler(ctx["scheduler"], actions, ctx["scheduler_config"],
                               ctx["length"], ctx["step"])
        if ctx.get("policy"):
            sched.load_state_dict(loads_state(ctx["policy"], "<policy snapshot>"))
        sched.begin_execution(random.Random(seed))
    cov = RecordingCoverage.from_snapshot(ctx.get("coverage"))
    scratch = Path(tempfile.mkdtemp(prefix=f"hbfuzz-ray-{n:06d}-"))
    transitions: list[list[Any]] = []
    ex = Execution(cfg, scratch / "exec", seed, tracker=_server(), coverage=cov)
    try:
        async with asyncio.timeout(timeout):
            await ex.start()
            sig = 0
            length = len(steps) if steps is not None else int(ctx["length"])
            for i in range(length):
                step = steps[i] if steps is not None else sched.next_step(sig)
                a = actions.find(step.fault)
                summary = await ex.step(step)
                found = bool(ex.violations())
                done = found or i == length - 1
                if sched is not None and a is not None:  # the snapshot keeps learning here
                    sched.observe(sig, a, reward(summary, weights, found), summary.signature,
                                  done)
                transitions.append([sig, -1 if a is None else a, summary.signature, done, found,
                                    len(cov.deltas) - 1])
                sig = summary.signature
                if found:
                    break
            result = await ex.finish()
        return {"error": None, "transitions": transitions,
                "deltas": [d.to_list() for d in cov.deltas],
                **_result_fields(result, cfg, n, scratch, ctx["start_time"])}
    finally:
        try:
            async with asyncio.timeout(30.0):
                await asyncio.shield(ex.close())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _result_fields(result: Any, cfg: Any, n: int, scratch: Path, start: float) -> dict:
    """Findings as the bundles the driver would write, and the small facts it files."""
    from fuzzer.campaign.findings import FindingIndex
    from fuzzer.campaign.outdir import CampaignDir
    from fuzzer.campaign.record import file_findings, outcome_of

    out = outcome_of(result)
    d = CampaignDir(scratch / "bundles")
    d.open()
    findings = []
    for f, _new, path in file_findings(out, FindingIndex(), d, cfg, n, start,
                                       {"worker": socket.gethostname()}):
        if path is not None:
            findings.append([f.signature, f.kind, f.line, path.read_bytes()])
    return {
        "schedule": out.schedule_text,
        "finding": getattr(result, "finding", None),
        "findings": findings,
        "novelty_local": out.novelty,
        "stats": {k: v for k, v in out.stats.items() if k != "phases"}
        if isinstance(out.stats, dict) else {},
    }
