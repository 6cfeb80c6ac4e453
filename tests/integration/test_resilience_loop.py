"""The campaign loop's own defences, on a toy execution (fast, in-process).

* an execution that hangs (never returns from a step) is torn down after the
  campaign's execution time limit and counted as a harness error; the campaign
  goes on (before: a hung execution stalled the campaign past its --duration);
* an execution failing because the campaign's disk is full stops the campaign
  cleanly as a write error (exit 2 in the CLI), and a harness error that cannot
  even be recorded (the commit fails) does too, instead of escaping as a traceback.

The real-process versions: tests/integration/test_resilience_disk.py and
test_resilience_resources.py.
"""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from fuzzer.campaign import Budget, Campaign, CampaignDir, CampaignMeta, read_stats
from fuzzer.campaign.loop import execution_time_limit
from fuzzer.campaign.setup import action_space_for
from fuzzer.checkers.verdict import ok
from fuzzer.config import load_config
from fuzzer.execution.result import ExecutionResult, ExecutionStats, RecordedChoices
from fuzzer.faults import Schedule
from fuzzer.scheduler import make_scheduler
from fuzzer.scheduler.toy import ToyLock
from fuzzer.workload.history import History

LENGTH = 3


class Toy:
    """A toy execution over the combination lock; ``mode`` makes it misbehave."""

    closed: list[int] = []

    def __init__(self, lock: ToyLock, seed: int, mode: str = "") -> None:
        self.lock, self.seed, self.mode = lock, seed, mode
        self.steps: list = []
        self.windows: list = []

    async def start(self):
        if self.mode == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "node.log")
        return self.lock.reset()

    async def step(self, step):
        if self.mode == "hang":
            await asyncio.Event().wait()  # never set
        window, _, _ = self.lock.step(self.lock.actions.index(step.fault))
        self.steps.append(step)
        self.windows.append(window)
        return window

    async def finish(self) -> ExecutionResult:
        sched = Schedule(tuple(self.steps), self.seed % 2**64)
        return ExecutionResult(
            execution_id=f"toy-{self.seed}", seed=self.seed, schedule=sched, requested=sched,
            choices=RecordedChoices(), windows=tuple(self.windows),
            verdicts=(ok("toy:lock", "opened"),), findings=(), history=History(),
            stats=ExecutionStats(events=len(self.steps)),
            new_hb=sum(w.new_hb for w in self.windows), trace=())

    async def close(self) -> None:
        Toy.closed.append(self.seed)


@pytest.fixture
def cfg():
    return load_config("targets/maelstrom/target.toml",
                       [f"schedule.length={LENGTH}", "faults.allowed=['kill', 'wait']",
                        "faults.nodes=['n1', 'n2']"])


def _campaign(cfg, out, seed, modes: dict[int, str], executions: int) -> Campaign:
    actions = action_space_for(cfg)
    lock = ToyLock(actions, depth=LENGTH + 1, seed=seed, novelty="global", cells=2)  # never opens
    count = {"n": 0}

    def factory(workdir, s, cov):
        count["n"] += 1
        return Toy(lock, s, modes.get(count["n"], ""))

    sched = make_scheduler("random", actions, {}, LENGTH, 0.1)
    c = Campaign(cfg, CampaignDir(out), CampaignMeta(seed=seed, scheduler="random"), sched,
                 actions, factory, Budget(executions=executions), stats_interval=0.05)
    c.open(resume=False)
    return c


def test_time_limit_is_generous_and_follows_the_schedule(cfg):
    limit = execution_time_limit(cfg)
    s = cfg.schedule
    assert limit > 3 * (s.warmup + s.length * s.step + s.quiescence)
    longer = load_config("targets/maelstrom/target.toml", ["schedule.length=40"])
    assert execution_time_limit(longer) > limit


def test_hung_execution_is_torn_down_counted_and_the_campaign_goes_on(cfg, tmp_path, seed):
    Toy.closed.clear()
    c = _campaign(cfg, tmp_path / "out", seed, {2: "hang"}, executions=4)
    c.exec_time_limit = 0.5
    summary = asyncio.run(asyncio.wait_for(c.run(), 60))
    assert summary.execs_done == 4 and summary.stopped_by == "executions"
    assert c.progress.exec_errors == 1
    assert len(Toy.closed) == 4, "the hung execution was not closed"
    log = (tmp_path / "out" / "errors.log").read_text()
    assert "took longer than its limit" in log
    stats = read_stats(tmp_path / "out" / "fuzzer_stats")
    assert stats["exec_errors"] == "1" and stats["execs_done"] == "4"


def test_execution_failing_on_a_full_disk_stops_the_campaign(cfg, tmp_path, seed):
    c = _campaign(cfg, tmp_path / "out", seed, {2: "enospc"}, executions=10)
    summary = asyncio.run(asyncio.wait_for(c.run(), 60))
    assert summary.stopped_by.startswith("write error"), summary.stopped_by
    assert "No space left" in summary.stopped_by
    assert summary.execs_done == 2  # the first, and the failed one (counted)


def test_unrecordable_harness_error_is_a_write_error_not_a_crash(cfg, tmp_path, seed):
    """The disk turns read-only during a hung execution: counting the error fails too."""
    out = tmp_path / "out"
    c = _campaign(cfg, out, seed, {2: "hang"}, executions=10)
    c.exec_time_limit = 0.3
    real = c._commit

    def commit():
        if c.progress.exec_errors:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(out / "state.msgpack"))
        real()

    c._commit = commit
    summary = asyncio.run(asyncio.wait_for(c.run(), 60))
    assert summary.stopped_by.startswith("write error"), summary.stopped_by
    assert "Read-only" in summary.stopped_by
    st = CampaignDir(out).load_state()  # the last good commit is intact
    assert st["progress"]["execs_done"] == 1
