"""The gymnasium env's execution driver (``fuzzer.scheduler.env.ExecutionDriver``) on real executions.

Why a separate object: the env decides one fault per step after seeing the
previous window, so it needs executions it can start, step and end one call
at a time; the driver owns the current :class:`Execution`, gives each a
fresh directory under ``root`` and a seed drawn from its own seeded RNG,
and shares the tracker server and the HB coverage across executions so
novelty is campaign-wide.

A step reports an online invariant violation as a finding at once (the env
ends the episode); when an execution reaches ``schedule_length`` steps the
driver finishes it (heal, liveness, history checkers) and reports the first
finding of the result. ``results`` keeps every finished
:class:`ExecutionResult` for the caller. The last execution is finished or
closed by the next ``reset`` or by ``close``.
"""

from __future__ import annotations

import random
from pathlib import Path

from fuzzer.config import TargetConfig
from fuzzer.execution.result import ExecutionResult, Finding
from fuzzer.execution.runner import Execution
from fuzzer.faults import Fault, Step
from fuzzer.tracker.coverage import HBCoverage, WindowSummary
from fuzzer.tracker.server import TrackerServer

__all__ = ["ExecutionEnvDriver"]


class ExecutionEnvDriver:
    """Runs one execution per env episode (see module docstring).

    ``actions`` (optional) is exposed for :class:`~fuzzer.scheduler.env.ClusterEnv`,
    which falls back to ``driver.actions``. ``step`` seconds per step default
    to ``schedule.step``; ``schedule_length`` to ``schedule.length``.
    """

    def __init__(
        self,
        config: TargetConfig,
        root: Path | str,
        seed: int,
        *,
        tracker: TrackerServer | None = None,
        coverage: HBCoverage | None = None,
        step: float | None = None,
        schedule_length: int | None = None,
        actions: object | None = None,
        keep: int = 50,
    ) -> None:
        self.config = config
        self.root = Path(root)
        self.rng = random.Random(seed)
        self.coverage = coverage if coverage is not None else HBCoverage()
        self.tracker = tracker
        self._own_tracker = tracker is None
        self.step_seconds = config.schedule.step if step is None else step
        self.schedule_length = schedule_length or config.schedule.length
        if actions is not None:
            self.actions = actions
        self.keep = keep
        self.results: list[ExecutionResult] = []
        self.current: Execution | None = None
        self._count = 0

    async def _end(self) -> ExecutionResult | None:
        ex, self.current = self.current, None
        if ex is None:
            return None
        try:
            result = ex.result or await ex.finish()
        finally:
            await ex.close()
        self.results.append(result)
        del self.results[: -self.keep]
        return result

    async def reset(self) -> int:
        """Finish the previous execution, start a new one; its warmup window's signature."""
        await self._end()
        if self.tracker is None:
            self.tracker = TrackerServer()
            self.tracker.start()
        self._count += 1
        seed = self.rng.getrandbits(63)
        ex = Execution(self.config, self.root / f"exec{self._count:06d}", seed,
                       tracker=self.tracker, coverage=self.coverage)
        self.current = ex
        await ex.start()
        return ex.initial.signature if ex.initial is not None else 0

    async def step(self, fault: Fault) -> tuple[WindowSummary, str | None]:
        ex = self.current
        if ex is None:
            raise RuntimeError("ExecutionEnvDriver.step() before reset()")
        summary = await ex.step(Step(fault, self.step_seconds))
        online = ex.violations()
        if online:
            await self._end()
            return summary, Finding.of(online[0]).key
        if len(ex.steps) >= self.schedule_length:
            result = await self._end()
            return summary, (result.finding if result is not None else None)
        return summary, None

    async def close(self) -> None:
        try:
            await self._end()
        finally:
            if self._own_tracker and self.tracker is not None:
                self.tracker.stop(0.5)
                self.tracker = None
