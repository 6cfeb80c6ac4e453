"""The campaign: executions back to back, learning, keeping what they found.

Per execution (issue 6): ``scheduler.begin_execution(rng)`` -> ``start`` ->
for each step: state signature -> ``scheduler.next_step(sig)`` ->
``execution.step(step)`` (a window summary) -> :func:`reward` ->
``scheduler.observe(...)`` -> ... -> ``finish`` (final heal, quiescence,
oracles) -> ``close`` (teardown) -> findings, queue, stats, commit.

Every random choice comes from the campaign seed: execution ``n`` runs with
:func:`~fuzzer.campaign.setup.derive_seed` ``(seed, n)`` and its scheduler
RNG is seeded from that, so a resumed campaign continues the same sequence.

Commit order after an execution (see :mod:`fuzzer.campaign.store`):
bundles -> queue entry -> trace -> coverage maps -> scheduler state ->
``state.msgpack``. A SIGKILL between any two of these leaves files that
:meth:`CampaignStore.open` adopts on resume.

Stopping: :meth:`Campaign.request_stop` (SIGINT/SIGTERM) cancels the
running execution; its ``close`` tears the cluster down; the campaign then
commits and returns a :class:`CampaignSummary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fuzzer.campaign.outdir import CampaignDir
from fuzzer.campaign.setup import CampaignMeta, derive_seed
from fuzzer.campaign.store import CampaignStore
from fuzzer.config import TargetConfig
from fuzzer.errors import InputError
from fuzzer.faults import Step
from fuzzer.scheduler import ActionSpace, Scheduler, reward
from fuzzer.scheduler.base import DEFAULT_WEIGHTS, RewardWeights
from fuzzer.tracker.coverage import HBCoverage

__all__ = ["Budget", "ExecutionLike", "ExecutionFactory", "Campaign", "CampaignSummary"]

log = logging.getLogger("hbfuzz.campaign")
MAX_CONSECUTIVE_ERRORS = 5
EXEC_TIME_BASE = 120.0  # seconds every execution may take beyond 3x its planned time


def execution_time_limit(cfg: TargetConfig) -> float:
    """How long one execution may run before the campaign tears it down and counts a
    harness error: a hung execution must not stall a campaign (nor outlive its
    ``--duration``) forever. Generous: 3x the planned time plus EXEC_TIME_BASE."""
    s = cfg.schedule
    live = getattr(getattr(cfg.oracles, "liveness", None), "bound", 0.0) or 0.0
    planned = s.warmup + s.length * s.step + s.quiescence + float(live)
    return EXEC_TIME_BASE + 3.0 * planned
# an execution failing with one of these (its scratch dir, its node logs) means the
# campaign's disk is full or read-only: stop cleanly instead of counting harness errors
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class ExecutionLike(Protocol):
    """The step-wise API of ``fuzzer.execution.Execution`` the campaign drives."""

    async def start(self) -> Any: ...
    async def step(self, step: Step) -> Any: ...
    async def finish(self) -> Any: ...
    async def close(self) -> None: ...


ExecutionFactory = Callable[[Path, int, HBCoverage], ExecutionLike]


@dataclass(frozen=True)
class Budget:
    """When to stop: after ``duration`` seconds of this session and/or ``executions``
    executions in total (None: unbounded)."""

    duration: float | None = None
    executions: int | None = None


@dataclass(frozen=True)
class CampaignSummary:
    """What the CLI prints at the end and turns into an exit code."""

    out: Path
    execs_done: int
    run_time: float
    hb_coverage: int
    code_edges: int
    corpus_count: int
    saved_crashes: int
    saved_hangs: int
    total_findings: int
    stopped_by: str
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.saved_crashes + self.saved_hangs > 0

    def lines(self) -> list[str]:
        out = [
            f"campaign {self.out}: {self.execs_done} executions in {self.run_time:.0f}s "
            f"(stopped: {self.stopped_by})",
            f"  hb coverage {self.hb_coverage}, code edges {self.code_edges}, "
            f"queue {self.corpus_count}",
            f"  findings: {self.saved_crashes} safety (crashes/), {self.saved_hangs} liveness "
            f"(hangs/), {self.total_findings} occurrences",
        ]
        for f in self.findings:
            out.append(f"    {f['file']}  x{f['count']}  {f['signature']}")
        return out


class Campaign(CampaignStore):
    """One campaign directory being fuzzed by one process (see module docstring)."""

    def __init__(
        self,
        cfg: TargetConfig,
        out: CampaignDir,
        meta: CampaignMeta,
        scheduler: Scheduler,
        actions: ActionSpace,
        factory: ExecutionFactory,
        budget: Budget,
        *,
        command_line: str = "",
        keep_traces: int = 5,
        stats_interval: float = 5.0,
        weights: RewardWeights = DEFAULT_WEIGHTS,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        pool: Any = None,
        sync: Any = None,
    ) -> None:
        """``pool``: a runner of parallel executions (``fuzzer.campaign.jobs.LocalPool``
        for ``--jobs N``, ``fuzzer.campaign.rayjobs.RayPool`` for ``--ray``; None: one
        execution at a time, in this loop). ``sync``: a ``fuzzer.campaign.sync.SyncDir``
        (``--sync-dir``), exported to and imported from every ``sync.interval`` s."""
        super().__init__(cfg, out, meta, scheduler, actions, command_line=command_line,
                         keep_traces=keep_traces, stats_interval=stats_interval)
        self.factory = factory
        self.budget = budget
        self.weights = weights
        self.on_tick = on_tick
        self._stopping = False
        self._stop_reason = ""
        self._loop_task: asyncio.Task | None = None
        self._in_execution = False
        self._consecutive_errors = 0
        self.exec_time_limit = execution_time_limit(cfg)  # seconds; see that function
        self.pool = pool
        self.sync = sync
        self.imported: list[list[Step]] = []  # schedules from other campaigns, to run

    def next_imported(self) -> list[Step] | None:
        """The next imported schedule to run as it is (``--sync-dir``), if any."""
        return self.imported.pop(0) if self.imported else None

    def stats_values(self) -> dict[str, Any]:
        v = super().stats_values()
        if self.pool is not None:
            from fuzzer.campaign.jobs import job_stats_values

            v.update(job_stats_values(self.pool.job_stats()))
            v.update(self.pool.stats_values())
        if self.sync is not None:
            v.update(self.sync.stats_values())
        return v

    def snapshot(self) -> dict[str, Any]:
        """Everything the status screen shows (a plain dict, cheap)."""
        v = self.stats_values()
        v["scheduler_stats"] = self.scheduler.stats()
        v["current_exec"] = self.progress.current_exec
        v["current_step"] = self.progress.current_step
        v["schedule_length"] = self.cfg.schedule.length
        v["current_schedule"] = list(self.progress.current_schedule)
        v["findings"] = [
            {"file": r.file, "kind": r.kind, "count": r.count, "signature": r.signature}
            for r in self.findings.records()
        ]
        v["recent"] = list(self.recent[-5:])
        v["stopping"] = self._stopping
        if self.pool is not None:
            js = self.pool.job_stats()
            v["jobs"] = [j.view() for j in js]
            if js:  # the status screen's "current schedule": the newest execution's
                j = max(js, key=lambda x: x.current_exec)
                v["current_exec"], v["current_step"] = j.current_exec, j.current_step
                v["current_schedule"] = list(j.schedule)
        v["out"] = str(self.dir.root)
        return v

    # -- stopping -----------------------------------------------------------------------

    def request_stop(self, reason: str = "signal") -> None:
        """Stop soon: cancel the running execution (its close() tears the cluster down)."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_reason = reason
        if self.pool is not None:
            self.pool.cancel()
        elif self._loop_task is not None and self._in_execution:
            self._loop_task.cancel()

    def _budget_left(self) -> bool:
        b = self.budget
        if b.executions is not None and self.progress.execs_done >= b.executions:
            self._stop_reason = self._stop_reason or "executions"
            return False
        if b.duration is not None and time.time() - self.progress.session_start >= b.duration:
            self._stop_reason = self._stop_reason or "duration"
            return False
        return True

    # -- running ------------------------------------------------------------------------

    async def run(self) -> CampaignSummary:
        """Fuzz until the budget is used up or a stop is requested."""
        self.write_stats(force_plot=True)
        async with asyncio.TaskGroup() as tg:
            if self.sync is not None:
                await self._sync_once()
            main = self.pool.run(self) if self.pool is not None else self._loop()
            self._loop_task = tg.create_task(main)
            ticker = tg.create_task(self._ticker())
            syncer = tg.create_task(self._syncer()) if self.sync is not None else None
            try:
                await self._loop_task
            finally:
                ticker.cancel()
                if syncer is not None:
                    syncer.cancel()
        if self.sync is not None:
            await self._sync_once()
        try:
            self._commit()
            self.write_stats(force_plot=True)
        except OSError as exc:
            log.error("cannot write to %s: %s", self.dir.root, exc)
            self._stop_reason = self._stop_reason or f"write error: {exc}"
        return self.summary()

    async def _syncer(self) -> None:
        while True:
            await asyncio.sleep(self.sync.interval)
            await self._sync_once()

    async def _sync_once(self) -> None:
        """Export our new queue entries and findings, import the others' (a sync
        problem is logged, never fatal: the campaign is what matters)."""
        try:
            self.sync.exchange(self)
        except (OSError, InputError) as exc:
            log.warning("sync with %s failed: %s", self.sync.root, exc)
            self._note(f"sync failed: {exc}")

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.stats_interval))
            try:
                if time.time() - self._last_plot >= self.stats_interval:
                    self.write_stats()
            except OSError as exc:
                log.error("cannot write stats: %s", exc)
                self.request_stop(f"write error: {exc.strerror}")
            if self.on_tick is not None:
                try:
                    self.on_tick(self.snapshot())
                except Exception:  # a display problem must never stop the fuzzing
                    log.exception("status display failed")

    async def _loop(self) -> None:
        while not self._stopping and self._budget_left():
            n = self.progress.execs_done
            self._in_execution = True
            try:
                result = await self._one(n)
            except asyncio.CancelledError:
                if not self._absorb_stop_cancel(n):
                    raise
                break
            except Exception as exc:  # a harness failure: count it, keep fuzzing (bounded)
                if self._is_fatal_error(n, exc):
                    raise
                self._in_execution = False
                try:
                    self._count_error(n, exc)
                except OSError as werr:  # cannot even record the error: disk full, read-only
                    self._write_failed(werr)
                    break
                if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:  # our disk, not theirs
                    self._write_failed(exc)
                    break
                continue
            finally:
                self._in_execution = False
            self._consecutive_errors = 0
            try:
                self._record(n, result)
            except OSError as exc:  # disk full, read-only: stop; what was saved stays valid
                self._write_failed(exc)
                break

    def _write_failed(self, exc: OSError) -> None:
        """Stop because the campaign directory cannot be written (the CLI exits 2)."""
        log.error("cannot write to %s: %s", self.dir.root, exc)
        self._stopping = True
        self._stop_reason = f"write error: {exc}"

    def _absorb_stop_cancel(self, n: int) -> bool:
        """Whether a cancel of execution ``n`` is this campaign stopping; if so it is
        absorbed (uncancelled) and noted, else the caller re-raises it."""
        if not self._stopping:
            return False
        t = asyncio.current_task()
        if t is not None:
            t.uncancel()
        self._note(f"exec {n}: cancelled ({self._stop_reason})")
        return True

    def _is_fatal_error(self, n: int, exc: Exception) -> bool:
        """Bad input on the session's very first execution is the user's to fix, not a
        harness failure to count and fuzz past."""
        return isinstance(exc, InputError) and n == 0 and self.session_execs == 0

    def _count_error(self, n: int, exc: BaseException) -> None:
        self.progress.execs_done += 1
        self.progress.exec_errors += 1
        self.session_execs += 1
        self._consecutive_errors += 1
        self._note(f"exec {n}: error: {exc}")
        log.warning("execution %d failed: %s", n, exc)
        text = "".join(traceback.format_exception(exc, limit=20))
        with contextlib.suppress(OSError):
            self.dir.append_line(self.dir.root / "errors.log",
                                 f"--- exec {n} at {time.ctime()}\n{text}")
        self._commit()
        if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            self._stopping = True
            self._stop_reason = f"{self._consecutive_errors} executions in a row failed: {exc}"

    async def _one(self, n: int) -> Any:
        seed = derive_seed(self.meta.seed, n)
        rng = random.Random(seed)
        workdir = self.dir.exec_workdir(n)
        p = self.progress
        p.current_exec, p.current_step, p.current_schedule = n, 0, []
        self.scheduler.begin_execution(rng)
        ex = self.factory(workdir, seed, self.coverage)
        limit = self.exec_time_limit
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                first = await ex.start()
                sig = int(getattr(first, "signature", first) or 0) if first is not None else 0
                length = self.cfg.schedule.length
                for i in range(length):
                    step = self.scheduler.next_step(sig)
                    a = self.actions.find(step.fault)
                    p.current_step = i + 1
                    p.current_schedule.append(step.to_text())
                    summary = await ex.step(step)
                    found = _found(ex, summary)
                    r = reward(summary, self.weights, found)
                    done = found or i == length - 1
                    if a is not None:  # a step outside the action space teaches no column
                        self.scheduler.observe(sig, a, r, summary.signature, done)
                    sig = summary.signature
                    if found:
                        break
                result = await ex.finish()
        except TimeoutError:
            if deadline.expired():  # a hung execution: a counted harness error, not a hang
                raise TimeoutError(f"execution {n} took longer than its limit of {limit:.0f}s "
                                   "(hung?); it was torn down") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(ex.close())
            self.dir.drop_workdir(workdir)
        return result

    def summary(self) -> CampaignSummary:
        p = self.progress
        return CampaignSummary(
            out=self.dir.root,
            execs_done=p.execs_done,
            run_time=p.run_time(),
            hb_coverage=max(p.hb_coverage, self.coverage.hb_coverage()),
            code_edges=max(p.code_edges, self.coverage.code_edges()),
            corpus_count=len(self.queue_ids),
            saved_crashes=self.findings.count("safety"),
            saved_hangs=self.findings.count("liveness"),
            total_findings=self.findings.total(),
            stopped_by=self._stop_reason or "done",
            findings=[{"file": r.file, "count": r.count, "signature": r.signature,
                       "kind": r.kind} for r in self.findings.records()],
        )


def _found(ex: Any, summary: Any) -> bool:
    """Whether an online oracle already judged this execution a failure (the episode
    then ends early, with the finding bonus in the reward)."""
    violations = getattr(ex, "violations", None)
    if callable(violations):
        return bool(violations())
    return bool(getattr(ex, "found", False) or getattr(summary, "finding", None))
