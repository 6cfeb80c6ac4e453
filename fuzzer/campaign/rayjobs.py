"""``--ray auto|ADDRESS --jobs N``: whole executions as Ray tasks, the campaign on the driver.

Why Ray and whole executions: a cluster under test never spans machines (fault
injection, ports and process groups stay local), so the unit of distribution
is one execution, run by :func:`fuzzer.campaign.rayworker.run_remote` on
some worker; the driver (this process) owns the campaign directory, the
coverage maps, the findings and the scheduler. Each of the N lanes of
:class:`RayPool` keeps one task in flight: it submits, awaits the compact
msgpack result, merges it and records it, exactly like a ``--jobs`` lane.

The scheduler's step-by-step interaction is remote, so (docs/scaling.md):

- Q-learning: the worker gets a *policy snapshot* (the Q-table as saved,
  refreshed at most every ``refresh`` seconds through Ray's object store)
  and chooses each step itself from the state signatures it observes; it
  returns its transitions and the driver applies the tabular updates with
  rewards recomputed against the global coverage map as results arrive.
  The cost: a worker's policy is up to one refresh plus one execution stale
  (Q-learning is off-policy, so the driver's updates stay valid).
- random and power: the state does not matter, so the driver's scheduler
  draws the whole schedule up front (``begin_execution`` + ``next_step``)
  and the worker runs it as given; power learns at ``end_execution`` as usual.

Losing a worker (process or machine) fails only the task it ran: the lane
counts an error and submits the next execution; a task past its time limit
is cancelled (``ray.cancel(force=True)``). Tasks are not retried
(``max_retries=0``): the next execution number is as good as a retry.
Ray moves only bytes we packed with msgpack (its own function shipping
uses cloudpickle of module references; our data never is pickled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.campaign.jobs import Lane, LocalPool, _Dispatch
from fuzzer.campaign.setup import derive_seed
from fuzzer.campaign.shared import CoverageDelta, merge_delta, unpack
from fuzzer.campaign.sync import file_bundle
from fuzzer.errors import HbfuzzError, UsageError
from fuzzer.faults import Schedule
from fuzzer.scheduler import reward

__all__ = ["RayPool", "RemoteResult", "RemoteExecutionError", "connect", "ray_available",
           "LOCAL_ENV"]

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # a local Ray binds 127.0.0.1 only
WORKER_ENV = {"GRPC_ENABLE_FORK_SUPPORT": "false", "GRPC_VERBOSITY": "ERROR"}


class RemoteExecutionError(HbfuzzError):
    """An execution on a Ray worker failed (its reason, host and pid are in the message)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'hbfuzz[ray]' (or: pip install ray)") \
            from None
    return ray


def ray_available() -> None:
    """Raise a :class:`UsageError` naming the extra if Ray cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError("--ray needs Ray: pip install 'hbfuzz[ray]' (or: pip install ray)")


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address``; ``auto``: the one ``RAY_ADDRESS`` names,
    else a new local instance bound to 127.0.0.1 only (no dashboard). Returns whether
    this call initialised Ray (and so shuts it down). Already initialised (a test, a
    notebook): used as it is."""
    if address == "auto" and not os.environ.get("RAY_ADDRESS") or _loopback(address):
        os.environ.update(LOCAL_ENV)  # read when ray is imported: before _ray()
    ray = _ray()
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address == "auto" and not os.environ.get("RAY_ADDRESS"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    return True


def _loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class RemoteResult:
    """A worker's result in the shape the campaign records (``CampaignStore._record``
    reads these attribute names; findings were filed already from their bundles)."""

    seed: int
    schedule: Schedule
    novelty: float
    new_hb: int
    new_edges: int
    finding: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    findings: tuple = ()
    verdicts: tuple = ()
    history: tuple = ()
    trace: tuple = ()
    trace_path: None = None
    choices: bytes = b""


@dataclass
class DriverCost:
    """What results cost the driver: for docs/scaling.md's projection."""

    results: int = 0
    windows: int = 0
    seconds: float = 0.0
    result_bytes: int = 0
    context_bytes: int = 0  # the last policy + coverage snapshot
    contexts: int = 0  # snapshots put into the object store

    def values(self) -> dict[str, Any]:
        return {
            "ray_results": self.results,
            "ray_result_bytes_mean": self.result_bytes / self.results if self.results else 0.0,
            "ray_driver_us_per_window": 1e6 * self.seconds / self.windows if self.windows else 0.0,
            "ray_driver_us_per_result": 1e6 * self.seconds / self.results if self.results else 0.0,
            "ray_context_bytes": self.context_bytes,
            "ray_contexts": self.contexts,
        }


class RayLane(Lane):
    """A lane whose executions run as Ray tasks (see module docstring)."""

    def __init__(self, campaign: Any, index: int, dispatch: _Dispatch, timeout: float,
                 pool: RayPool) -> None:
        super().__init__(campaign, index, dispatch, timeout)
        self.pool = pool
        self.stats.where = "ray"

    async def execute(self, n: int, plan: list | None = None) -> Any:
        c, st = self.c, self.stats
        seed = derive_seed(c.meta.seed, n)
        st.current_exec, st.current_step, st.schedule = n, 0, []
        policy = plan is None and c.meta.scheduler == "qlearning"
        texts: list[str] | None = None
        if plan is not None:
            texts = [s.to_text() for s in plan]
        elif not policy:
            with self.slot.active() as s:
                s.begin_execution(random.Random(seed))
                texts = [s.next_step(0).to_text() for _ in range(c.cfg.schedule.length)]
        st.schedule = list(texts or ["(chosen on the worker)"])
        ref = self.pool.submit(c, n, seed, texts, policy, self.timeout - 15.0)
        try:
            data = await ref
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # already finished or its worker gone
                self.pool.ray.cancel(ref, force=True)
            raise
        except self.pool.ray.exceptions.RayError as exc:
            raise RemoteExecutionError(f"execution {n}: Ray worker lost "
                                       f"({type(exc).__name__})") from None
        return self.pool.merge(c, self, data)

    def record(self, n: int, result: Any) -> None:
        t0 = time.perf_counter()
        super().record(n, result)
        self.pool.cost.seconds += time.perf_counter() - t0


class RayPool(LocalPool):
    """``--ray``: N lanes, each keeping one execution in flight on the Ray cluster."""

    where = "ray"

    def __init__(self, jobs: int, address: str = "auto", timeout: float | None = None,
                 refresh: float = 2.0, num_cpus: int | None = None) -> None:
        super().__init__(jobs, timeout)
        self.address = address
        self.refresh = refresh
        self.num_cpus = num_cpus
        self.ray: Any = None
        self.cost = DriverCost()
        self._owns = False
        self._remote: Any = None
        self._ctx: Any = None
        self._ctx_time = -1e9
        self._ctx_version = -1
        self._version = 0
        self.prepare_seconds = 0.0

    async def prepare(self, campaign: Any) -> None:
        """Connect, then warm ``jobs`` workers (imports, tracker server): bounded, and
        a failure here only costs the first executions their warm start."""
        t0 = time.monotonic()
        self._owns = await asyncio.to_thread(connect, self.address, self.num_cpus)
        self.ray = _ray()
        from fuzzer.campaign.rayworker import run_remote, warm

        self._remote = self.ray.remote(num_cpus=1, max_retries=0)(run_remote)
        refs = [self.ray.remote(num_cpus=1, max_retries=0)(warm).remote()
                for _ in range(self.jobs)]
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*refs)
        except (TimeoutError, self.ray.exceptions.RayError) as exc:
            campaign._note(f"ray: warm-up incomplete ({type(exc).__name__})")
        self.prepare_seconds = time.monotonic() - t0

    async def shutdown(self) -> None:
        if self._owns and self.ray is not None:
            await asyncio.to_thread(self.ray.shutdown)

    def stats_values(self) -> dict[str, Any]:
        return {"jobs_where": f"ray {self.address}", "ray_prepare_s": self.prepare_seconds,
                **self.cost.values()}

    def make_lane(self, campaign: Any, i: int, dispatch: _Dispatch, timeout: float) -> Lane:
        return RayLane(campaign, i, dispatch, timeout, self)

    def submit(self, c: Any, n: int, seed: int, plan: list[str] | None, policy: bool,
               timeout: float) -> Any:
        from fuzzer.campaign.rayworker import make_context

        now = time.monotonic()
        if self._ctx is None or (self._ctx_version != self._version
                                 and now - self._ctx_time >= self.refresh):
            data = make_context(c, c.meta.scheduler == "qlearning")
            self.cost.context_bytes = len(data)
            self.cost.contexts += 1
            self._ctx = self.ray.put(data)
            self._ctx_time, self._ctx_version = now, self._version
        return self._remote.remote(self._ctx, n, seed, plan, max(10.0, timeout))

    def merge(self, c: Any, lane: RayLane, data: bytes) -> RemoteResult:
        """Global novelty per window, Q updates, findings filed: the driver's work."""
        t0 = time.perf_counter()
        res = unpack(data, "worker result")
        if res.get("error"):
            raise RemoteExecutionError(
                f"execution {res.get('n')} on {res.get('host')}:{res.get('pid')}: "
                f"{res['error']}")
        deltas = [CoverageDelta.from_list(x) for x in res["deltas"]]
        used: set[int] = set()
        new_hb = new_edges = 0
        novelty = 0.0
        for s, a, s2, done, found, di in res["transitions"]:
            nov = merge_delta(c.coverage, deltas[di], s2) if 0 <= di < len(deltas) else None
            used.add(di)
            if nov is None:
                continue
            r = reward(nov, c.weights, bool(found))
            novelty += r - (c.weights.finding if found else 0.0)
            new_hb += nov.new_hb
            new_edges += nov.new_edges
            if a >= 0:
                with lane.slot.active() as sch:
                    sch.observe(int(s), int(a), r, int(s2), bool(done))
        for i, d in enumerate(deltas):  # warmup and tail windows: coverage, no reward
            if i not in used:
                nov = merge_delta(c.coverage, d)
                new_hb += nov.new_hb
                new_edges += nov.new_edges
        sched = Schedule.parse_text(res["schedule"], "<worker schedule>")
        lane.stats.schedule = [s.to_text() for s in sched.steps]
        for sig, kind, line, bundle in res["findings"]:
            file_bundle(c, int(res["n"]), sig, kind, line, bundle)
        self._version += 1
        self.cost.results += 1
        self.cost.windows += len(deltas)
        self.cost.result_bytes += len(data)
        self.cost.seconds += time.perf_counter() - t0
        return RemoteResult(seed=int(res["seed"]), schedule=sched, novelty=novelty,
                            new_hb=new_hb, new_edges=new_edges, finding=res.get("finding"),
                            stats=dict(res.get("stats") or {}))

