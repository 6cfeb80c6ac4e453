"""One execution: fresh cluster -> workload -> fault steps -> heal -> probe -> oracles -> teardown.

Why step by step (``start``/``step``/``finish``) and not one call: the
campaign runs whole schedules (:meth:`Execution.run`), but the gymnasium
env (``hbfuzz/Cluster-v0``) decides each fault after seeing the previous
window, so a step must be callable on its own and return its
:class:`~fuzzer.tracker.coverage.WindowSummary`. Each execution is
self-contained: its own directory (data dirs, logs), its own timeline in the
tracker, its own network model, nemesis, invariants and workload; only the
tracker (and its gRPC server) and the HB coverage may be shared so that
novelty is campaign-wide.

Events: instrumented nodes report to the tracker's gRPC server
(``HBFUZZ_TRACKER``/``HBFUZZ_EXECUTION``/``HBFUZZ_NODE`` in their
environment); the mediator, the nemesis (FAULT events) and log-derived STATE
(``roles.rules``) are added in-process with ``Timeline.add``. The coverage
and the online invariants listen to the timeline.

Teardown (``close``) always runs, also when the execution is cancelled (a
normal path: Ctrl-C, a campaign's time budget), and leaves no process: the
workload and log watcher tasks are cancelled and awaited, the backend kills
every node group and waits for it, an owned tracker server is stopped.
Background tasks are kept in a set and awaited in ``close`` (not a
TaskGroup: the env calls start/step/finish from different tasks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from fuzzer import faults as F
from fuzzer.checkers.liveness import check_liveness
from fuzzer.checkers.verdict import Verdict
from fuzzer.config import TargetConfig
from fuzzer.errors import HbfuzzError, UsageError
from fuzzer.execution.backends import Backend, TcpBackend, make_backend
from fuzzer.execution.loads import Load
from fuzzer.execution.oracles import assertion_verdicts, exit_event, exit_verdicts
from fuzzer.execution.result import ExecutionResult, ExecutionStats, Finding, RecordedChoices
from fuzzer.execution.trace import save_trace
from fuzzer.nemesis import Nemesis
from fuzzer.network.model import NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.scheduler.base import reward
from fuzzer.tracker.coverage import HBCoverage, WindowSummary
from fuzzer.tracker.server import TrackerServer
from fuzzer.tracker.timeline import Timeline, Tracker
from instrumentation import protocol

__all__ = ["Execution", "new_execution_id"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)
WARMUP_POLL = 0.1  # seconds between role probes while the cluster warms up
MIN_STEP_SHARE = 0.5  # of a step's duration that follows the fault's application
DRAIN = 0.3  # seconds for node reporters to flush their last batches before the oracles


def new_execution_id(seed: int) -> str:
    """A unique id within this process (the pid keeps parallel fuzzers apart)."""
    return f"x{os.getpid()}-{next(_ids)}-{seed & 0xFFFFFFFF:08x}"


class Execution:
    """One execution of ``config`` in ``workdir`` (see module docstring).

    ``tracker``: a started :class:`TrackerServer` shared across executions,
    a :class:`Tracker` (a server is then started for this execution), or
    None (a fresh one). ``coverage``: shared :class:`HBCoverage` (None: a
    fresh one). ``choices``: recorded choices to replay. ``mediator_events``:
    whether the mediator reports SEND/RECV (default: yes, except for tcp
    targets with code coverage, whose nodes report their own messages).
    ``keep_trace``: copy the events into the result (else only counted);
    ``save_trace``: also write them to ``workdir/trace.msgpack.lz4``.
    ``drop_timeline``: forget the timeline in the tracker at ``close``.
    ``order``: a :class:`~fuzzer.network.ordering.DeliveryOrder` whose recorded
    delivery order the mediator enforces (replay); by default a fresh one that
    only logs this run's order into ``result.choices.order``.
    """

    def __init__(
        self,
        config: TargetConfig,
        workdir: Path | str,
        seed: int,
        tracker: Tracker | TrackerServer | None = None,
        coverage: HBCoverage | None = None,
        choices: RecordedChoices | None = None,
        *,
        execution_id: str | None = None,
        mediator_events: bool | None = None,
        keep_trace: bool = True,
        save_trace: bool = False,
        drop_timeline: bool = True,
        order: DeliveryOrder | None = None,
    ) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.seed = int(seed)
        self.execution_id = execution_id or new_execution_id(self.seed)
        self.coverage = coverage if coverage is not None else HBCoverage()
        self.replay = choices or RecordedChoices()
        # the mediator logs its delivery order (recorded in the choices); a recorded
        # order to enforce comes from the caller (replay), never implicitly from choices
        self.order = order if order is not None else DeliveryOrder()
        if mediator_events is None:
            mediator_events = not (config.network.adapter == "tcp" and config.coverage.enabled)
        self.mediator_events = mediator_events
        self.keep_trace = keep_trace
        self.save_trace = save_trace
        self.drop_timeline = drop_timeline
        self._server: TrackerServer | None = None
        self._own_server = False
        if isinstance(tracker, TrackerServer):
            self._server = tracker
        elif isinstance(tracker, Tracker):
            self._server = TrackerServer(tracker)
            self._own_server = True
        elif tracker is None:
            self._server = TrackerServer(Tracker())
            self._own_server = True
        else:
            raise UsageError(f"tracker must be a Tracker or TrackerServer, not {tracker!r}")
        self.tracker: Tracker = self._server.tracker
        self.timeline: Timeline | None = None
        self.model: NetworkModel | None = None
        self.nemesis: Nemesis | None = None
        self.backend: Backend | None = None
        self.load: Load | None = None
        self.invariants: Any = None
        self._tasks: set[asyncio.Task] = set()
        self._load_task: asyncio.Task | None = None
        self._steps: list[F.Step] = []
        self._requested: list[F.Step] = []
        self._windows: list[WindowSummary] = []
        self._notes: list[str] = []
        self._fault_errors = 0
        self._phases: dict[str, float] = {}
        self._t0 = 0.0
        self._started = False
        self._finished = False
        self._closed = False
        self._result: ExecutionResult | None = None
        self.initial: WindowSummary | None = None  # the warmup window (set by start)

    # -- context manager ----------------------------------------------------------------

    async def __aenter__(self) -> Execution:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- phases -------------------------------------------------------------------------

    def _phase(self, name: str, t: float) -> None:
        self._phases[name] = self._phases.get(name, 0.0) + (time.monotonic() - t)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.execution_id} {name}")
        self._tasks.add(task)
        return task

    async def start(self) -> None:
        """Start the cluster, the workload and the warmup; then the first window opens."""
        if self._started:
            raise UsageError("Execution.start() called twice")
        self._started = True
        self._t0 = t = time.monotonic()
        cfg = self.config
        if self.workdir.exists() and any(self.workdir.iterdir()):
            raise UsageError(f"execution directory {self.workdir} is not empty "
                             "(each execution needs fresh data dirs)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._own_server:
            await asyncio.to_thread(self._server.start)
        elif self._server.address is None:
            raise UsageError("the shared TrackerServer must be started before the execution")
        self.timeline = timeline = self.tracker.timeline(self.execution_id)
        self.coverage.attach(timeline)
        self.invariants = cfg.invariant_set()
        self.invariants.attach(timeline)
        nodes = cfg.nodes
        self.model = NetworkModel(nodes, self.seed, choices=self.replay.fates or None)
        env = {
            protocol.ENV_TRACKER: str(self._server.address),
            protocol.ENV_EXECUTION: self.execution_id,
        }
        sink = timeline.add if self.mediator_events else None
        self.backend = backend = make_backend(cfg, self.workdir, self.model, sink, env,
                                              order=self.order)
        backend.on_node_exit = self._node_exited
        await backend.start()
        if cfg.roles.rules and isinstance(backend, TcpBackend):
            self._start_log_state(backend)
        self.nemesis = Nemesis(
            nodes, backend.process, self.model, probe=backend.role_probe, sink=timeline.add,
            rng=random.Random(f"{self.seed}:nemesis"), choices=self.replay.faults or None,
            probe_timeout=cfg.roles.timeout + 1.0,
        )
        wseed = random.Random(f"{self.seed}:workload").getrandbits(63)
        self.load = backend.make_load(wseed, self.replay.ops)
        self._load_task = self._spawn(self.load.run(), "workload")
        self._phase("start", t)
        t = time.monotonic()
        if cfg.schedule.warmup > 0:
            await self._warmup(cfg.schedule.warmup)
        # the warmup's window: the scheduler's initial state; the first step's opens now
        self.initial = self.coverage.close_window()
        self._phase("warmup", t)

    async def _warmup(self, seconds: float) -> None:
        """Let the fresh cluster settle for at most ``seconds``.

        Why not always the full time: the warmup is there so that the first fault
        meets a cluster in its steady state (for a leader-based target: once a
        leader is elected, which the role probe tells). With a role probe, the
        warmup ends as soon as it names a leader; without one it lasts ``seconds``.
        """
        probe = self.backend.role_probe if self.backend is not None else None
        if probe is None:
            await self._sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            t = time.monotonic()
            try:
                async with asyncio.timeout(left):
                    roles = await probe()
            except Exception:  # no answer yet (or a probe bug): keep warming up
                roles = {}
            if "leader" in roles.values():
                return
            await self._sleep(min(WARMUP_POLL - (time.monotonic() - t),
                                  deadline - time.monotonic()))

    def _node_exited(self, node: str, code: int | None) -> None:
        """An EXIT event closes the previous incarnation on the node's timeline when the
        node starts again (a SIGKILLed node reports none itself; invariants such as
        ``monotonic`` with ``reset_on_exit`` forget its volatile state there)."""
        if self.timeline is not None:
            self.timeline.add(exit_event(self.timeline, node, code))

    def _start_log_state(self, backend: TcpBackend) -> None:
        from fuzzer.tracker.logstate import LogStateWatcher, rules_from_config

        rows = [r.to_dict() for r in self.config.roles.rules]
        rules = rules_from_config(rows, self.config.source, "roles.rules")
        assert backend.med is not None and self.timeline is not None
        watcher = LogStateWatcher(backend.log_paths(), rules, sink=self.timeline.add,
                                  book=backend.med.book)
        self._watcher = watcher
        self._spawn(watcher.run(0.1), "log state")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but fail fast if the workload task died."""
        if self._load_task is not None and not self._load_task.done():
            await asyncio.wait({self._load_task}, timeout=seconds)
        else:
            await asyncio.sleep(seconds)

    async def step(self, step: F.Step) -> WindowSummary:
        """Apply ``step.fault`` through the nemesis, run ``step.duration`` s, close the window."""
        if not self._started or self._finished or self._closed:
            raise UsageError("Execution.step() needs a started, unfinished execution")
        assert self.nemesis is not None
        t = time.monotonic()
        key: Hashable = len(self._steps)
        self._requested.append(step)
        try:
            concrete = await self.nemesis.apply(step.fault, key)
        except HbfuzzError as exc:
            self._fault_errors += 1
            self._notes.append(f"step {key} '{step.fault.to_text()}': {exc}")
            log.warning("execution %s: step %s failed: %s", self.execution_id, key, exc)
            concrete = step.fault
        self._steps.append(F.Step(concrete, step.duration))
        # the step lasts its duration from the moment its fault was asked for: the time
        # the fault takes (a restart's boot, a role probe) is part of the window, but
        # the cluster always spends at least half of it with the fault in place
        applied = time.monotonic() - t
        await self._sleep(max(step.duration * MIN_STEP_SHARE, step.duration - applied))
        summary = self.coverage.close_window()
        self._windows.append(summary)
        self._phase("steps", t)
        return summary

    def violations(self) -> list[Verdict]:
        """Online invariant violations so far (the env may end an episode on one)."""
        return list(self.invariants.violations) if self.invariants is not None else []

    async def run(self, schedule: F.Schedule) -> ExecutionResult:
        """start (if needed), every step of ``schedule``, finish; close in any case."""
        try:
            if not self._started:
                await self.start()
            for s in schedule.steps:
                await self.step(s)
            return await self.finish()
        finally:
            await self.close()

    async def finish(self) -> ExecutionResult:
        """Final heal, quiescence, liveness probe, final reads, oracles, teardown."""
        if self._result is not None:
            return self._result
        if not self._started or self._closed:
            raise UsageError("Execution.finish() needs a started, open execution")
        self._finished = True
        cfg = self.config
        assert self.nemesis is not None and self.load is not None
        t = time.monotonic()
        try:
            await self.nemesis.heal_all()
        except HbfuzzError as exc:
            self._fault_errors += 1
            self._notes.append(f"final heal: {exc}")
        self._phase("heal", t)
        verdicts: list[Verdict] = []
        t = time.monotonic()
        if cfg.oracles.liveness_probe != "none":
            verdicts.append(await self._quiesce_and_probe())
        else:
            if cfg.schedule.quiescence > 0:
                await self._sleep(cfg.schedule.quiescence)
            await self._stop_load()
            self._phase("quiescence", t)
        t = time.monotonic()
        try:
            await self.load.final()
        except HbfuzzError as exc:
            self._notes.append(f"final phase: {exc}")
        await asyncio.sleep(DRAIN)
        self._phase("final", t)
        # nodes are no longer needed: free the machine before the (CPU-bound) checkers
        t = time.monotonic()
        exits = self.backend.unexpected_exits() if self.backend is not None else []
        messages, delivered = self.backend.message_counts() if self.backend else (0, 0)
        await self._teardown()
        self._phase("teardown", t)
        t = time.monotonic()
        tail = self.coverage.close_window()  # heal and probe: counted, not a step window
        verdicts.extend(await self.load.check())
        verdicts.extend(self.invariants.verdicts())
        verdicts.extend(exit_verdicts(exits))
        events = self.timeline.events() if self.timeline is not None else []
        verdicts.extend(assertion_verdicts(events))
        self._phase("oracles", t)
        self._result = self._build(verdicts, events, tail, messages, delivered, len(exits))
        return self._result

    async def _quiesce_and_probe(self) -> Verdict:
        """Quiescence and the liveness probe, overlapped.

        Why: a fixed quiescence followed by the probe spent seconds of every execution
        waiting for a cluster that had long recovered. The probe starts right after
        the final heal while the workload still runs; quiescence ends as soon as it
        succeeds (or after ``schedule.quiescence`` at the latest), then the workload
        stops. A cluster that has not recovered by then keeps being probed, so it gets
        the same total time as before (``quiescence + liveness.bound`` after the heal)
        before a ``hang`` verdict.
        """
        cfg = self.config
        policy = cfg.oracles.liveness
        policy = dataclasses.replace(policy, bound=policy.bound + cfg.schedule.quiescence)
        t = time.monotonic()
        probe = asyncio.get_running_loop().create_task(
            check_liveness(self._probe(), policy, probe_name=cfg.oracles.liveness_probe),
            name=f"{self.execution_id} liveness")
        try:
            waits = {probe} | ({self._load_task} if self._load_task is not None else set())
            if cfg.schedule.quiescence > 0:
                # ends on the probe's verdict (or the workload task dying)
                await asyncio.wait(waits, timeout=cfg.schedule.quiescence,
                                   return_when=asyncio.FIRST_COMPLETED)
            await self._stop_load()
            self._phase("quiescence", t)
            t = time.monotonic()
            return await probe
        finally:
            if not probe.done():
                probe.cancel()
                await asyncio.wait({probe})
            self._phase("liveness", t)

    def _probe(self) -> Any:
        load = self.load
        assert load is not None
        probe = self.config.oracles.liveness_probe
        if probe == "workload":
            return load.probe
        fn = self.config.resolve(probe, "oracles.liveness.probe")

        async def custom() -> Any:
            return await fn(self)

        return custom

    async def _stop_load(self) -> None:
        task, self._load_task = self._load_task, None
        if task is None or self.load is None:
            return
        self.load.stop()
        if not self.load.cancel_to_stop:
            await asyncio.wait({task}, timeout=self.config.workload.timeout + 5.0)
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()

    def _build(self, verdicts: list[Verdict], events: list, tail: WindowSummary, messages: int,
               delivered: int, n_exits: int) -> ExecutionResult:
        assert self.load is not None and self.model is not None and self.nemesis is not None
        history = self.load.history()
        summary = self.load.summary()
        windows = tuple(self._windows)
        timeline = self.timeline
        stats = ExecutionStats(
            events=timeline.count if timeline is not None else 0,
            messages=messages,
            delivered=delivered,
            ops=summary.get("invoked", 0),
            ops_ok=summary.get("ok", 0),
            ops_fail=summary.get("fail", 0),
            ops_info=summary.get("info", 0),
            hb_edges=len(timeline.edges()) if timeline is not None else 0,
            fault_errors=self._fault_errors,
            unexpected_exits=n_exits,
            duration=time.monotonic() - self._t0,
            phases=dict(self._phases),
        )
        choices = RecordedChoices(self.nemesis.choices(), self.model.choices(),
                                  self.load.choices(), self.order.log())
        findings = tuple(Finding.of(v) for v in verdicts if v.violated)
        extra = (tail,) if self.initial is None else (self.initial, tail)
        trace_path = None
        if self.save_trace:
            trace_path = save_trace(events, self.workdir / "trace.msgpack.lz4",
                                    self.execution_id)
        return ExecutionResult(
            execution_id=self.execution_id,
            seed=self.seed,
            schedule=F.Schedule(tuple(self._steps), self.seed % 2**64),
            requested=F.Schedule(tuple(self._requested), self.seed % 2**64),
            choices=choices,
            windows=windows,
            verdicts=tuple(verdicts),
            findings=findings,
            history=history,
            stats=stats,
            novelty=sum(reward(w) for w in windows),
            new_hb=sum(w.new_hb for w in (*extra, *windows)),
            new_edges=sum(w.new_edges for w in (*extra, *windows)),
            trace=tuple(events) if self.keep_trace else (),
            trace_path=trace_path,
            workdir=self.workdir,
            notes=tuple(self._notes),
        )

    # -- teardown -----------------------------------------------------------------------

    async def _teardown(self) -> None:
        """Stop the workload and watchers, kill every node (idempotent)."""
        task = self._load_task
        if task is not None:
            self._load_task = None
            if self.load is not None:
                self.load.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.poll()
            watcher.close()
            self._watcher = None
        backend, self.backend = self.backend, None
        if backend is not None:
            await backend.close()

    async def close(self) -> None:
        """Tear everything down (always safe to call; nothing is left running)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._teardown()
        finally:
            if self._own_server and self._server is not None:
                await asyncio.to_thread(self._server.stop, 0.5)
            if self.drop_timeline:
                self.tracker.drop(self.execution_id)

    # -- introspection ------------------------------------------------------------------

    @property
    def steps(self) -> list[F.Step]:
        """The concrete steps applied so far."""
        return list(self._steps)

    @property
    def windows(self) -> list[WindowSummary]:
        return list(self._windows)

    @property
    def result(self) -> ExecutionResult | None:
        return self._result
