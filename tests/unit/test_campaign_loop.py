"""The campaign loop on a toy execution: findings, dedup, queue, stats, resume, crash recovery.

The toy (:class:`ToyExecution`) has the step-wise API of ``fuzzer.execution.Execution``
over the scheduler package's combination lock, and returns real ``ExecutionResult``
values with real verdicts, so everything the campaign writes is what a real run writes.
"""

from __future__ import annotations

import asyncio

import pytest

from fuzzer.campaign import Budget, Campaign, CampaignDir, CampaignMeta, read_plot, read_stats
from fuzzer.campaign.setup import action_space_for
from fuzzer.checkers.verdict import LIVENESS, ok, violated
from fuzzer.config import load_config
from fuzzer.execution.result import ExecutionResult, ExecutionStats, Finding, RecordedChoices
from fuzzer.faults import Schedule
from fuzzer.repro.bundle import load_bundle
from fuzzer.scheduler import ActionSpace, make_scheduler
from fuzzer.scheduler.toy import ToyLock
from fuzzer.workload.history import History

MAELSTROM = "targets/maelstrom/target.toml"
SAFETY_SIG = "toy:lock/opened[]"
LENGTH = 4


class SimulatedKill(Exception):
    """Stands for a SIGKILL at one precise point (the real thing: tests/e2e)."""


class ToyExecution:
    """One toy execution: each step turns the lock; opening it is a safety finding,
    killing both nodes in one execution a liveness finding."""

    closed: list[int] = []

    def __init__(self, lock: ToyLock, seed: int, cov, fail: bool = False, slow: float = 0.0):
        self.lock, self.seed, self.fail, self.slow = lock, seed, fail, slow
        self.steps: list = []
        self.windows: list = []
        self.opened = False

    async def start(self):
        if self.fail:
            from fuzzer.errors import ClusterError

            raise ClusterError("node n1 did not become ready")
        return self.lock.reset()

    async def step(self, step):
        if self.slow:
            await asyncio.sleep(self.slow)
        window, finding, _ = self.lock.step(self.lock.actions.index(step.fault))
        self.steps.append(step)
        self.windows.append(window)
        self.opened = self.opened or finding is not None
        return window

    @property
    def found(self) -> bool:
        return self.opened

    async def finish(self) -> ExecutionResult:
        verdicts = [violated("toy:lock", "opened", "the lock opened") if self.opened
                    else ok("toy:lock", "opened")]
        kills = {s.fault.to_text() for s in self.steps if s.fault.verb == "kill"}
        if len(kills) >= 2:
            verdicts.append(violated("liveness", "hang", "no progress", kind=LIVENESS))
        sched = Schedule(tuple(self.steps), self.seed % 2**64)
        return ExecutionResult(
            execution_id=f"toy-{self.seed}", seed=self.seed, schedule=sched, requested=sched,
            choices=RecordedChoices(), windows=tuple(self.windows), verdicts=tuple(verdicts),
            findings=tuple(Finding.of(v) for v in verdicts if v.violated), history=History(),
            stats=ExecutionStats(events=len(self.steps)),
            new_hb=sum(w.new_hb for w in self.windows), trace=())

    async def close(self) -> None:
        ToyExecution.closed.append(self.seed)


@pytest.fixture
def cfg():
    return load_config(MAELSTROM, ["workload.name=lin-kv", "target.node=nodes/pb_kv.py",
                                   f"schedule.length={LENGTH}", "faults.allowed=['kill', 'wait']",
                                   "faults.nodes=['n1', 'n2']"])


def _campaign(cfg, out, seed, resume=False, executions=20, scheduler="qlearning", **kw):
    actions = action_space_for(cfg)
    assert isinstance(actions, ActionSpace) and len(actions) == 3
    lock = ToyLock(actions, depth=1, seed=seed, novelty="global", cells=2)
    fail = kw.pop("fail", lambda n: False)
    slow = kw.pop("slow", 0.0)
    count = {"n": 0}

    def factory(workdir, s, cov):
        assert workdir.is_dir()
        count["n"] += 1
        return ToyExecution(lock, s, cov, fail=fail(count["n"]), slow=slow)

    sched = make_scheduler(scheduler, actions, {}, LENGTH, 0.1)
    meta = CampaignMeta(seed=seed, scheduler=scheduler)
    c = Campaign(cfg, CampaignDir(out), meta, sched, actions, factory,
                 Budget(executions=executions), command_line="hbfuzz run toy",
                 stats_interval=0.05, **kw)
    c.open(resume=resume)
    return c


def test_campaign_finds_dedups_and_writes_everything(cfg, tmp_path, seed):
    c = _campaign(cfg, tmp_path / "out", seed)
    s = asyncio.run(c.run())
    d = CampaignDir(tmp_path / "out")
    assert s.execs_done == 20 and s.stopped_by == "executions"
    crashes = d.entries("crashes")
    assert len(crashes) == 1, "one bundle per signature, however often it repeats"
    b = load_bundle(crashes[0][1])
    assert b.signature == SAFETY_SIG and b.kind == "safety"
    assert b.verdicts[0]["name"] == "opened" and b.config["workload"]["name"] == "lin-kv"
    assert any(st.fault.to_text() in ("kill n1", "kill n2", "wait") for st in b.schedule_obj().steps)
    rec = c.findings.get(SAFETY_SIG)
    assert rec is not None and rec.count >= 2, "repeats are counted"
    assert s.total_findings == sum(r.count for r in c.findings.records())
    # queue: schedules with new HB coverage, AFL names, text form
    q = d.entries("queue")
    assert q and q[0][1].name.startswith("id:000000,src:none,time:")
    assert Schedule.parse_text(q[0][1].read_text()).steps
    stats = read_stats(d.stats_path)
    assert stats["execs_done"] == "20" and stats["saved_crashes"] == "1"
    assert stats["seed"] == str(seed) and stats["scheduler"] == "qlearning"
    assert stats["corpus_count"] == str(len(q))
    rows = read_plot(d.plot_path)
    assert rows[0]["execs_done"] == 0 and rows[-1]["execs_done"] == 20
    assert rows[-1]["saved_crashes"] == 1
    assert (d.root / "scheduler" / "state.msgpack").is_file()
    assert (d.root / "campaign.toml").read_text().count(f"seed = {seed}") == 1
    assert not list((d.root / ".work").glob("*")), "per-execution scratch is removed"


def test_same_seed_same_campaign(cfg, tmp_path, seed):
    a = _campaign(cfg, tmp_path / "a", seed, executions=8)
    asyncio.run(a.run())
    b = _campaign(cfg, tmp_path / "b", seed, executions=8)
    asyncio.run(b.run())
    qa = [p.read_text() for _, p in CampaignDir(tmp_path / "a").entries("queue")]
    qb = [p.read_text() for _, p in CampaignDir(tmp_path / "b").entries("queue")]
    assert qa == qb and qa


def test_resume_keeps_findings_queue_and_q_table(cfg, tmp_path, seed):
    out = tmp_path / "out"
    c1 = _campaign(cfg, out, seed, executions=10)
    asyncio.run(c1.run())
    q_before = c1.scheduler.state_dict()
    finds_before = c1.findings.records()
    queue_before = list(c1.queue_ids)
    c2 = _campaign(cfg, out, seed, resume=True, executions=15)
    st = c2.scheduler.state_dict()
    assert st["signatures"] == q_before["signatures"] and st["q"] == q_before["q"]
    assert st["episodes"] == 10
    assert c2.findings.records() == finds_before and c2.queue_ids == queue_before
    assert c2.progress.execs_done == 10
    s = asyncio.run(c2.run())
    assert s.execs_done == 15
    assert c2.scheduler.state_dict()["episodes"] == 15
    for r in finds_before:
        assert c2.findings.get(r.signature).count >= r.count
    assert set(queue_before) <= set(c2.queue_ids)


def test_crash_between_writes_loses_nothing(cfg, tmp_path, seed, monkeypatch):
    """Kill the campaign (an exception from the commit) right after a new bundle was
    written: a resume adopts the bundle and the queue entry written before the crash."""
    out = tmp_path / "out"
    c = _campaign(cfg, out, seed, executions=30)
    real = CampaignDir.save_state
    calls = {"n": 0}

    def crashing(self, state):
        if len(self.entries("crashes")) and calls["n"] == 0:
            calls["n"] += 1
            raise SimulatedKill("simulated SIGKILL between writes")
        return real(self, state)

    monkeypatch.setattr(CampaignDir, "save_state", crashing)
    with pytest.raises(BaseExceptionGroup) as ei:
        asyncio.run(c.run())
    assert ei.group_contains(SimulatedKill)
    monkeypatch.setattr(CampaignDir, "save_state", real)
    d = CampaignDir(out)
    committed = d.load_state()
    assert not committed["findings"], "the crash hit before the finding was committed"
    (d.root / "queue" / ".tmp-stray.123").write_text("half")
    c2 = _campaign(cfg, out, seed, resume=True, executions=31)
    assert c2.findings.get(SAFETY_SIG) is not None, "the orphan bundle is adopted"
    assert set(i for i, _ in d.entries("queue")) == set(c2.queue_ids)
    assert not list((d.root / "queue").glob(".tmp-*"))
    asyncio.run(c2.run())
    assert len(d.entries("crashes")) == 1


def test_harness_errors_are_counted_and_bounded(cfg, tmp_path, seed):
    c = _campaign(cfg, tmp_path / "out", seed, executions=6, fail=lambda n: n in (2, 3))
    s = asyncio.run(c.run())
    assert s.execs_done == 6 and c.progress.exec_errors == 2
    assert "did not become ready" in (tmp_path / "out" / "errors.log").read_text()
    c2 = _campaign(cfg, tmp_path / "o2", seed, executions=50, fail=lambda n: True)
    s2 = asyncio.run(c2.run())
    assert s2.execs_done == 5 and "in a row failed" in s2.stopped_by


def test_stop_request_cancels_the_running_execution(cfg, tmp_path, seed):
    ToyExecution.closed.clear()
    c = _campaign(cfg, tmp_path / "out", seed, executions=1000, slow=0.05)

    async def main():
        async def stopper():
            while c.progress.execs_done < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.07)
            c.request_stop("test")

        async with asyncio.TaskGroup() as tg:
            tg.create_task(stopper())
            summary = await c.run()
        return summary

    s = asyncio.run(main())
    assert s.stopped_by == "test" and 2 <= s.execs_done < 1000
    assert len(ToyExecution.closed) == s.execs_done + 1, "the cancelled execution was closed"
    assert CampaignDir(tmp_path / "out").load_state()["progress"]["execs_done"] == s.execs_done


@pytest.mark.parametrize("scheduler", ["random", "power"])
def test_baselines_run_and_resume(cfg, tmp_path, seed, scheduler):
    c = _campaign(cfg, tmp_path / "out", seed, executions=6, scheduler=scheduler)
    asyncio.run(c.run())
    c2 = _campaign(cfg, tmp_path / "out", seed, resume=True, executions=8, scheduler=scheduler)
    assert c2.scheduler.state_dict() == c.scheduler.state_dict()
    assert asyncio.run(c2.run()).execs_done == 8


def test_snapshot_has_what_the_screen_shows(cfg, tmp_path, seed):
    from fuzzer.campaign.ui import progress_line, render

    c = _campaign(cfg, tmp_path / "out", seed, executions=3)
    asyncio.run(c.run())
    snap = c.snapshot()
    for k in ("run_time", "execs_done", "execs_per_hour", "last_new_cov", "last_find",
              "hb_coverage", "code_edges", "corpus_count", "saved_crashes", "saved_hangs",
              "current_schedule", "current_step", "stability", "scheduler_stats"):
        assert k in snap
    assert {"exploration", "states_seen", "policy_entropy", "fault_rewards"} <= set(
        snap["scheduler_stats"])
    line = progress_line(snap)
    assert line.startswith("[") and "execs 3" in line
    from rich.console import Console

    con = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    con.print(render(snap))
    text = con.export_text()
    assert "hb cov" in text and "entropy" in text and "current schedule" in text
    assert f"seed {seed}" in text


def test_disk_full_stops_cleanly_and_keeps_what_was_saved(cfg, tmp_path, seed, monkeypatch):
    import errno

    out = tmp_path / "out"
    c = _campaign(cfg, out, seed, executions=3)
    asyncio.run(c.run())
    before = CampaignDir(out).load_state()
    c2 = _campaign(cfg, out, seed, resume=True, executions=50)

    def full(self, state):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CampaignDir, "save_state", full)
    s = asyncio.run(c2.run())
    assert s.stopped_by.startswith("write error") and "No space left" in s.stopped_by
    assert s.execs_done == 4, "stopped at the first failed commit"
    monkeypatch.undo()
    assert CampaignDir(out).load_state() == before, "the last good commit is intact"


def test_power_queue_names_point_at_their_parent(cfg, tmp_path, seed):
    c = _campaign(cfg, tmp_path / "out", seed, executions=12, scheduler="power")
    asyncio.run(c.run())
    names = [p.name for _, p in CampaignDir(tmp_path / "out").entries("queue")]
    assert names[0].split(",")[1] == "src:none"
    ids = {n.split(",")[0].removeprefix("id:") for n in names}
    for n in names[1:]:
        src = n.split(",")[1].removeprefix("src:")
        assert src == "none" or src in ids
        assert n.split(",op:")[1] in ("gen", "seed", "havoc", "insert", "delete", "replace",
                                      "swap", "splice")
