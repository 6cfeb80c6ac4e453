"""``--jobs N``: N executions at once in the campaign process, one campaign state.

Why lanes in one process: executions mostly wait (election timeouts, step
durations), so several fit side by side on one machine; keeping them in the
campaign's event loop means one process owns the corpus, the coverage maps,
the findings and the scheduler, with no locking beyond the coverage lock
(asyncio runs one lane's synchronous code at a time).

Each lane (:class:`Lane`) runs executions back to back, each with its own
cluster, ports, scratch directory and tracker timeline (the one tracker
server of the campaign serves every execution by id), its own
:class:`~fuzzer.campaign.shared.JobCoverage` over the global map and its
own :class:`~fuzzer.campaign.shared.SchedulerSlot` on the shared scheduler:
it asks for each step with its own state signature and reports its own
transitions, so the Q-table learns from every lane as windows close.

Isolation: every execution runs under a timeout (:func:`exec_timeout`); a
hung or crashed execution is torn down (bounded) and counted as an error of
its lane; the other lanes never wait for it. Cancelling a lane (Ctrl-C)
tears down only what that lane runs.

:class:`LocalPool` is the runner for ``--jobs N``; ``fuzzer.campaign.rayjobs``
provides the same interface for Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from fuzzer.campaign.setup import derive_seed
from fuzzer.campaign.shared import JobCoverage, SchedulerSlot
from fuzzer.errors import HbfuzzError
from fuzzer.faults import Step
from fuzzer.scheduler import reward

__all__ = ["JobStats", "Lane", "LocalPool", "exec_timeout", "job_stats_values", "TEARDOWN_LIMIT"]

log = logging.getLogger("hbfuzz.campaign")
TEARDOWN_LIMIT = 30.0  # seconds a timed-out execution's teardown may take
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class ExecutionTimeout(HbfuzzError):
    """An execution ran past its time limit (a hung cluster or harness)."""


def exec_timeout(cfg: Any) -> float:
    """A generous limit for one execution (used when the campaign has no
    ``exec_time_limit``): four times its nominal length plus a minute."""
    s = cfg.schedule
    nominal = float(s.warmup) + s.length * float(s.step) + float(s.quiescence)
    return 4.0 * nominal + 60.0


@dataclass
class JobStats:
    """Counters of one lane for the status screen and fuzzer_stats."""

    job: int
    execs: int = 0
    errors: int = 0
    timeouts: int = 0
    current_exec: int = -1
    current_step: int = 0
    schedule: list[str] = field(default_factory=list)
    where: str = "local"
    started: float = field(default_factory=time.time)

    def per_hour(self, now: float | None = None) -> float:
        dt = (now or time.time()) - self.started
        return self.execs * 3600.0 / dt if dt > 0 else 0.0

    def view(self, now: float | None = None) -> dict[str, Any]:
        return {"job": self.job, "execs": self.execs, "errors": self.errors,
                "timeouts": self.timeouts, "execs_per_hour": self.per_hour(now),
                "current_exec": self.current_exec, "current_step": self.current_step,
                "where": self.where}


def job_stats_values(jobs: list[JobStats], now: float | None = None) -> dict[str, Any]:
    """fuzzer_stats lines for the lanes: ``jobs``, and per lane ``job<i>_execs_done``,
    ``job<i>_execs_per_hour``, ``job<i>_errors``."""
    now = now or time.time()
    out: dict[str, Any] = {"jobs": len(jobs)}
    for j in jobs:
        out[f"job{j.job}_execs_done"] = j.execs
        out[f"job{j.job}_execs_per_hour"] = j.per_hour(now)
        out[f"job{j.job}_errors"] = j.errors
    return out


class _Dispatch:
    """Hands out execution numbers while the budget lasts (shared by the lanes)."""

    def __init__(self, campaign: Any) -> None:
        self.c = campaign
        self.next = campaign.progress.execs_done

    def take(self) -> int | None:
        c = self.c
        if c._stopping:
            return None
        b = c.budget
        if b.executions is not None and self.next >= b.executions:
            c._stop_reason = c._stop_reason or "executions"
            return None
        if b.duration is not None and time.time() - c.progress.session_start >= b.duration:
            c._stop_reason = c._stop_reason or "duration"
            return None
        if c._consecutive_errors >= 5:
            return None
        n = self.next
        self.next += 1
        return n


class Lane:
    """One job: executions back to back on the campaign's shared state."""

    def __init__(self, campaign: Any, index: int, dispatch: _Dispatch, timeout: float) -> None:
        self.c = campaign
        self.stats = JobStats(index)
        self.dispatch = dispatch
        self.timeout = timeout
        self.slot = SchedulerSlot(campaign.scheduler)
        self.coverage = JobCoverage(campaign.coverage)

    async def run(self) -> None:
        c = self.c
        while (n := self.dispatch.take()) is not None:
            plan = c.next_imported() if hasattr(c, "next_imported") else None
            try:
                async with asyncio.timeout(self.timeout):
                    result = await self.execute(n, plan)
            except TimeoutError:
                self.stats.timeouts += 1
                self._error(n, ExecutionTimeout(
                    f"execution {n} (job {self.stats.job}) ran past {self.timeout:.0f}s"))
                continue
            except asyncio.CancelledError:
                if not c._absorb_stop_cancel(n):
                    raise
                return
            except Exception as exc:  # a harness failure: count it, keep fuzzing (bounded)
                if c._is_fatal_error(n, exc):
                    raise
                self._error(n, exc)
                continue
            c._consecutive_errors = 0
            self.stats.execs += 1
            try:
                self.record(n, result)
            except OSError as exc:  # disk full, read-only: stop; what was saved stays valid
                self._write_failed(exc)
                return

    def _error(self, n: int, exc: BaseException) -> None:
        self.stats.errors += 1
        c = self.c
        try:
            c._count_error(n, exc)
        except OSError as werr:  # cannot even record the error: disk full, read-only
            self._write_failed(werr)
            return
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:  # our disk, not theirs
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        c = self.c
        if hasattr(c, "_write_failed"):
            c._write_failed(exc)
        else:
            log.error("cannot write to %s: %s", c.dir.root, exc)
            c._stopping = True
            c._stop_reason = f"write error: {exc}"
        if c.pool is not None:
            c.pool.cancel()

    def record(self, n: int, result: Any) -> None:
        with self.slot.active():
            self.c._record(n, result)

    async def execute(self, n: int, plan: list[Step] | None = None) -> Any:
        """One execution on this lane; ``plan``: fixed steps (an imported schedule)
        instead of the scheduler's choices (the scheduler still learns from them)."""
        c, st = self.c, self.stats
        seed = derive_seed(c.meta.seed, n)
        workdir = c.dir.exec_workdir(n)
        st.current_exec, st.current_step, st.schedule = n, 0, []
        with self.slot.active() as s:
            s.begin_execution(random.Random(seed))
        ex = c.factory(workdir, seed, self.coverage)
        try:
            first = await ex.start()
            sig = int(getattr(first, "signature", first) or 0) if first is not None else 0
            length = len(plan) if plan else c.cfg.schedule.length
            for i in range(length):
                if plan:
                    step = plan[i]
                else:
                    with self.slot.active() as s:
                        step = s.next_step(sig)
                a = c.actions.find(step.fault)
                st.current_step = i + 1
                st.schedule.append(step.to_text())
                summary = await ex.step(step)
                found = _found(ex, summary)
                r = reward(summary, c.weights, found)
                done = found or i == length - 1
                if a is not None:
                    with self.slot.active() as s:
                        s.observe(sig, a, r, summary.signature, done)
                sig = summary.signature
                if found:
                    break
            return await ex.finish()
        finally:
            try:
                async with asyncio.timeout(TEARDOWN_LIMIT):
                    await asyncio.shield(ex.close())
            except (Exception, asyncio.CancelledError) as exc:  # never let teardown stall a lane
                if isinstance(exc, asyncio.CancelledError) and not c._stopping:
                    raise
                log.warning("execution %d: teardown: %r", n, exc)
            c.dir.drop_workdir(workdir)
            st.current_step = 0


class LocalPool:
    """``--jobs N`` on this machine: N :class:`Lane` s in one TaskGroup."""

    where = "local"

    def __init__(self, jobs: int, timeout: float | None = None) -> None:
        if jobs < 1:
            raise ValueError("jobs must be >= 1")
        self.jobs = jobs
        self.timeout = timeout
        self.lanes: list[Lane] = []
        self._tasks: list[asyncio.Task] = []

    def cancel(self) -> None:
        """Stop now: cancel every lane (each tears down only its own execution)."""
        for t in self._tasks:
            t.cancel()

    def make_lane(self, campaign: Any, i: int, dispatch: _Dispatch, timeout: float) -> Lane:
        return Lane(campaign, i, dispatch, timeout)

    async def prepare(self, campaign: Any) -> None:
        """Set up before the lanes run (nothing locally; Ray connects here)."""

    async def shutdown(self) -> None:
        """Release what :meth:`prepare` set up."""

    async def run(self, campaign: Any) -> None:
        timeout = (self.timeout or getattr(campaign, "exec_time_limit", None)
                   or exec_timeout(campaign.cfg))
        dispatch = _Dispatch(campaign)
        await self.prepare(campaign)
        try:
            self.lanes = [self.make_lane(campaign, i, dispatch, timeout)
                          for i in range(self.jobs)]
            async with asyncio.TaskGroup() as tg:
                self._tasks = [tg.create_task(lane.run(), name=f"job {lane.stats.job}")
                               for lane in self.lanes]
                if campaign._stopping:
                    self.cancel()
        except BaseExceptionGroup as eg:  # one lane's usage/config error: report it as is
            if len(eg.exceptions) == 1 and isinstance(eg.exceptions[0], HbfuzzError):
                raise eg.exceptions[0] from None
            raise
        finally:
            with contextlib.suppress(Exception):
                await self.shutdown()

    def stats_values(self) -> dict[str, Any]:
        """Extra fuzzer_stats lines of this kind of pool."""
        return {"jobs_where": self.where}

    def job_stats(self) -> list[JobStats]:
        return [lane.stats for lane in self.lanes]


def _found(ex: Any, summary: Any) -> bool:
    violations = getattr(ex, "violations", None)
    if callable(violations):
        return bool(violations())
    return bool(getattr(ex, "found", False) or getattr(summary, "finding", None))
