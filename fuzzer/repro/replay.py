"""Replay with stability: re-run a bundle N times, feeding back its recorded choices.

Why a rate and a similarity, not a yes/no: a real cluster is not
deterministic, even with the same seed and the same choices fed back by key
(threads, timers and the OS still interleave differently). The honest
measure is how many of N runs give the same finding signature
(:func:`reproduction_rate`), and how close each run's behaviour was to the
original: the Jaccard similarity of the sets of HB-coverage map cells they
hit (:func:`jaccard`, :func:`coverage_cells`), so "reproduced 3/10, and the
7 others took a different path (similarity 0.4)" reads differently from "7
others behaved the same but the race went the other way (0.95)". The rate
also sets K for minimisation (:func:`~fuzzer.repro.ddmin.choose_k`).

The pure parts (rates, similarity, K, the report, bundle <-> candidate) are
separate from :class:`BundleRunner`, the thin shell that runs candidates as
real :class:`~fuzzer.execution.Execution` runs (one shared tracker server,
a fresh HB coverage per run so its cells are that run's alone) and is the
:class:`~fuzzer.repro.minimize.Reproducer` that ``hbfuzz minimize`` uses.

Delivery order: a bundle's choices hold the original run's delivery order
(``RecordedChoices.order``, fuzzer/network/ordering.py). ``hbfuzz replay``
enforces it by default (stdio targets, tcp targets with a codec): each run
gets a fresh :class:`~fuzzer.network.ordering.DeliveryOrder`, and the report
gives, next to the rate, how often enforcement had to give up
(``--no-order`` replays without it, for comparison). Minimisation does not
enforce it: a shrunk candidate no longer sends the original's messages.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fuzzer.errors import UsageError
from fuzzer.network.ordering import DEFAULT_TIMEOUT, DeliveryOrder, OrderKey, OrderStats
from fuzzer.repro.bundle import Bundle
from fuzzer.repro.candidate import Candidate, Plan
from fuzzer.repro.ddmin import choose_k
from fuzzer.repro.minimize import MinimizeResult
from fuzzer.repro.simplify import WORKLOAD_KEYS

__all__ = [
    "RunOutcome",
    "ReplayReport",
    "BundleRunner",
    "reproduction_rate",
    "jaccard",
    "coverage_cells",
    "trace_events",
    "plan_from_bundle",
    "replay_report",
    "replay_bundle",
    "minimal_bundle",
    "minimal_path",
    "workload_values",
    "config_nodes",
    "choose_k",
]


# --------------------------------------------------------------------------- pure


def reproduction_rate(signatures: Sequence[Any], target: Any) -> float:
    """Share of runs whose signature (or collection of signatures) matches ``target``."""
    if not signatures:
        return 0.0
    hits = 0
    for s in signatures:
        if s == target or (isinstance(s, tuple | list | set | frozenset) and target in s):
            hits += 1
    return hits / len(signatures)


def jaccard(a: Iterable[int], b: Iterable[int]) -> float:
    """|a & b| / |a | b| (1.0 when both are empty)."""
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return 1.0 if union == 0 else len(sa & sb) / union


def trace_events(trace: Iterable[Any], path: str = "<bundle>") -> list[Any]:
    """Bundle trace rows (``[node, seq, lamport, wall_ns, mono_ns, kind, [fields]]``, or
    tables) as Events: :func:`fuzzer.execution.trace.events_from_rows`, the one parser
    of trace rows (campaign trace files use it too)."""
    from fuzzer.execution.trace import events_from_rows

    return events_from_rows(trace, path, where="trace[{}]")


def coverage_cells(events: Iterable[Any]) -> frozenset[int]:
    """The HB-coverage map cells a sequence of events hits (a fresh map)."""
    import numpy as np

    from fuzzer.tracker.coverage import HBCoverage

    cov = HBCoverage()
    cov.observe_many(events)
    cov.close_window()
    return frozenset(int(i) for i in np.flatnonzero(cov.seen_map()))


@dataclass(frozen=True)
class RunOutcome:
    """One replay run: the finding signatures it produced, the HB cells it hit."""

    signatures: tuple[str, ...]
    cells: frozenset[int]
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    order: OrderStats | None = None  # delivery-order enforcement (None: not enforced)

    def signature_for(self, target: str) -> str | None:
        """``target`` if this run reproduced it, else its first finding (or None)."""
        if target in self.signatures:
            return target
        return self.signatures[0] if self.signatures else None


@dataclass(frozen=True)
class ReplayReport:
    """N runs of a bundle: how many reproduced its signature, how similar they were.

    ``similarity[i]``: Jaccard of run i's HB cells with the original's
    (None when the bundle has no trace). ``k``: runs per candidate a
    minimisation would use at this rate (5 % miss). ``order``: per run, what
    delivery-order enforcement did (None: not enforced)."""

    target: str
    runs: int
    hits: int
    similarity: tuple[float | None, ...]
    signatures: tuple[tuple[str, ...], ...]
    seconds: float
    order: tuple[OrderStats | None, ...] = ()

    def order_total(self) -> OrderStats | None:
        """Enforcement counters summed over the runs (None: never enforced)."""
        runs = [s for s in self.order if s is not None]
        if not runs:
            return None
        total = OrderStats()
        for s in runs:
            total = total + s
        return total

    def order_facts(self) -> dict[str, Any]:
        """``active`` (bool: was an order enforced), the summed counters
        (:class:`~fuzzer.network.ordering.OrderStats`), ``give_up_rate`` (share of the
        recorded messages delivered for which enforcement gave up or that came
        late) and ``runs_gave_up`` (runs with at least one give-up)."""
        total = self.order_total()
        if total is None:
            return {"active": False}
        runs = [s for s in self.order if s is not None]
        return {"active": True, **total.as_dict(),
                "runs_gave_up": sum(1 for s in runs if s.gave_up or s.late)}

    @property
    def rate(self) -> float:
        return self.hits / self.runs if self.runs else 0.0

    @property
    def k(self) -> int:
        return choose_k(self.rate)

    def mean_similarity(self) -> float | None:
        vals = [s for s in self.similarity if s is not None]
        return sum(vals) / len(vals) if vals else None

    def facts(self) -> dict[str, Any]:
        """What is stored back in the bundle (``Bundle.replay``)."""
        return {
            "runs": self.runs,
            "hits": self.hits,
            "rate": self.rate,
            "similarity": [s for s in self.similarity if s is not None],
            "others": sorted({s for sig in self.signatures for s in sig if s != self.target}),
            "seconds": round(self.seconds, 3),
            "when": time.time(),
            "order": self.order_facts(),
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.facts()
        d.update(target=self.target, k=self.k, mean_similarity=self.mean_similarity(),
                 per_run=[list(s) for s in self.signatures])
        return d

    def lines(self) -> list[str]:
        out = [f"finding: {self.target}",
               f"reproduced: {self.hits}/{self.runs} runs ({self.rate:.0%})"]
        for i, (sig, sim) in enumerate(zip(self.signatures, self.similarity, strict=True)):
            mark = "reproduced" if self.target in sig else (", ".join(sig) or "no finding")
            simt = "" if sim is None else f"  HB similarity {sim:.2f}"
            out.append(f"  run {i + 1}: {mark}{simt}")
        m = self.mean_similarity()
        if m is not None:
            out.append(f"mean HB similarity to the original: {m:.2f}")
        out.append(f"runs per candidate for minimisation at this rate: {self.k}")
        o = self.order_facts()
        if o["active"]:
            out.append(f"delivery order enforced: {o['known']} recorded messages delivered, "
                       f"{o['held']} held, gave up {o['gave_up']} times "
                       f"(+{o['late']} late; give-up rate {o['give_up_rate']:.1%}), "
                       f"{o['unknown']} not in the recording")
        else:
            out.append("delivery order: not enforced")
        return out


def replay_report(target: str, outcomes: Sequence[RunOutcome],
                  original: frozenset[int] | None, seconds: float = 0.0) -> ReplayReport:
    """The report of ``outcomes`` against the original's HB cells (None: no trace)."""
    sims = tuple(None if original is None else jaccard(o.cells, original) for o in outcomes)
    hits = sum(1 for o in outcomes if target in o.signatures)
    return ReplayReport(target, len(outcomes), hits, sims,
                        tuple(o.signatures for o in outcomes), seconds,
                        tuple(o.order for o in outcomes))


# --------------------------------------------------------------------------- bundles <-> plans


def _nodes_of(bundle: Bundle, path: str) -> tuple[str, ...]:
    """The cluster's node names, from the validated config snapshot (no code loaded)."""
    return tuple(bundle.config_obj(path).nodes)


def config_nodes(config: Mapping[str, Any], path: str = "<bundle>") -> tuple[str, ...]:
    """The node names of a config dict to run, validated without loading any code."""
    from fuzzer.config import config_from_dict

    return tuple(config_from_dict(_drop_none(config), f"{path}: config", Path("."),
                                  load_module=False).nodes)


def workload_values(bundle: Bundle) -> dict[str, float]:
    """The bundle's ``workload.clients/keys/rate`` (what phase 3 shrinks)."""
    w = bundle.workload or bundle.config.get("workload", {})
    out: dict[str, float] = {}
    for key in WORKLOAD_KEYS:
        v = w.get(key.split(".", 1)[1])
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
    return out


def plan_from_bundle(bundle: Bundle, path: str = "<bundle>",
                     nodes: Sequence[str] | None = None) -> Plan:
    """The bundle's failing run as a :class:`Plan` (concrete steps, its choices)."""
    schedule = bundle.schedule_obj(path)
    choices = bundle.choices_obj(path)
    return Plan.build(
        schedule.steps, bundle.seed, nodes=tuple(nodes) if nodes else _nodes_of(bundle, path),
        fault_choices=choices.faults, fates=choices.fates, ops=choices.ops,
    )


def minimal_path(original: Path) -> Path:
    """Where the minimal bundle goes: next to ``original``, never over it
    (``X.min.hbfz``, then ``X.min-2.hbfz``, ... when taken)."""
    stem, suffix = original.name, ""
    if "." in stem:
        stem, suffix = stem.rsplit(".", 1)
        suffix = "." + suffix
    for i in range(1, 10_000):
        name = f"{stem}.min{'' if i == 1 else f'-{i}'}{suffix}"
        p = original.with_name(name)
        if not p.exists():
            return p
    raise UsageError(f"too many minimal bundles next to {original}")


def _override_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return float(text)


def minimal_bundle(bundle: Bundle, result: MinimizeResult) -> Bundle:
    """A copy of ``bundle`` whose schedule, choices and workload are the minimal
    candidate's (workload overrides applied to the config snapshot and the
    ``workload`` table); the original's trace and history are dropped (they
    describe the original run) and replaced by those of a run of the minimal
    candidate that reproduced the finding, when the minimiser kept one
    (``result.evidence``, :class:`~fuzzer.repro.minimize.Evidence`); the
    minimisation summary goes under ``replay``."""
    from fuzzer.execution.result import RecordedChoices

    m = result.minimal
    choices = RecordedChoices(m.faults, dict(m.fates), dict(m.ops))
    config = copy.deepcopy(bundle.config)
    workload = dict(bundle.workload)
    for o in m.overrides:
        key, _, text = o.partition("=")
        section, _, name = key.partition(".")
        config.setdefault(section, {})[name] = _override_value(text)
        if section == "workload":
            workload[name] = _override_value(text)
    out = replace(
        bundle,
        config=config,
        schedule=m.schedule.to_text(),
        choices=choices.to_msgpack(),
        workload=workload,
        trace=(),
        history=(),
        created=time.time(),
        replay={
            "rate": result.rate,
            "minimized_from": {"steps": result.original.size,
                               "duration": result.original.schedule.duration},
            "minimize": result.to_dict(),
        },
    )
    evidence = getattr(result, "evidence", None)
    return evidence.into(out) if evidence is not None else out


# --------------------------------------------------------------------------- the runner (I/O)


def _drop_none(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x]
    return x


class BundleRunner:
    """Runs candidates of one bundle as real executions, one after another.

    Why sequential: runs of one target compete for the same 2 cores and the
    same timing behaviour; running them in parallel would change the very
    interleavings being reproduced. One :class:`TrackerServer` serves every
    run; each run gets a fresh :class:`HBCoverage` and its own directory.
    Implements the :class:`~fuzzer.repro.minimize.Reproducer` protocol.

    ``config``: the config dict to run, normally
    :func:`fuzzer.repro.trust.resolve_config`'s (the bundle's data with the
    local target's commands and code); None runs the bundle's own snapshot,
    commands included: only for bundles you trust (``--trust``).
    """

    def __init__(self, bundle: Bundle, path: str, workdir: Path, *,
                 on_run: Callable[[int, RunOutcome], None] | None = None,
                 order: Sequence[OrderKey] | None = None,
                 order_timeout: float = DEFAULT_TIMEOUT,
                 config: Mapping[str, Any] | None = None) -> None:
        self.bundle = bundle
        self.config_data = dict(config) if config is not None else bundle.config
        self.order = tuple(order) if order else None  # recorded delivery order to enforce
        self.order_timeout = order_timeout
        self.path = path
        self.workdir = Path(workdir)
        self.on_run = on_run
        self.count = 0
        self._configs: dict[tuple[str, ...], Any] = {}
        self._server: Any = None

    def config(self, overrides: Sequence[str] = ()) -> Any:
        """The config to run (``config_data``), validated, target module loaded,
        ``overrides`` applied."""
        key = tuple(overrides)
        cfg = self._configs.get(key)
        if cfg is None:
            from fuzzer.config import config_from_dict

            target = self.config_data.get("target", {})
            tdir = Path(str(target.get("dir") or "."))
            if not tdir.is_dir():
                raise UsageError(
                    f"{self.path}: the bundle's target directory {tdir} does not exist here; "
                    "install the target (scripts/setup) or run from its checkout")
            data = _drop_none(self.config_data)  # as TOML has no null (campaign.toml)
            cfg = config_from_dict(data, f"{self.path}: config", tdir, list(key))
            self._configs[key] = cfg
        return cfg

    async def __aenter__(self) -> BundleRunner:
        from fuzzer.campaign.commands import _run_setup
        from fuzzer.tracker.server import TrackerServer
        from fuzzer.tracker.timeline import Tracker

        # the bundle's target version may not be installed here: its setup commands
        # build it (idempotent), or fail with a ConfigError saying why
        await asyncio.to_thread(_run_setup, self.config())
        self._server = TrackerServer(Tracker())
        await asyncio.to_thread(self._server.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.stop)

    async def run(self, candidate: Candidate) -> RunOutcome:
        """One execution of ``candidate`` with its choices fed back by key."""
        return (await self._execute(candidate, keep_trace=False))[0]

    async def _execute(self, candidate: Candidate, *, keep_trace: bool
                       ) -> tuple[RunOutcome, Any]:
        """One execution: its outcome and its ``ExecutionResult`` (trace kept if asked)."""
        import numpy as np

        from fuzzer.execution import Execution, RecordedChoices
        from fuzzer.tracker.coverage import HBCoverage

        if self._server is None:
            raise UsageError("BundleRunner.run() outside 'async with'")
        cfg = self.config(candidate.overrides)
        self.count += 1
        workdir = self.workdir / f"run-{self.count:04d}"
        cov = HBCoverage()
        choices = RecordedChoices(candidate.faults, dict(candidate.fates), dict(candidate.ops))
        t = time.monotonic()
        delivery = (DeliveryOrder(self.order, self.order_timeout) if self.order is not None
                    else None)
        ex = Execution(cfg, workdir, candidate.seed, tracker=self._server, coverage=cov,
                       choices=choices, keep_trace=keep_trace, order=delivery)
        result = await ex.run(candidate.schedule)
        cells = frozenset(int(i) for i in np.flatnonzero(cov.seen_map()))
        out = RunOutcome(tuple(f.key for f in result.findings), cells, time.monotonic() - t,
                         tuple(result.notes),
                         delivery.stats() if delivery is not None else None)
        if self.on_run is not None:
            self.on_run(self.count, out)
        return out, result

    async def run_many(self, candidate: Candidate, times: int) -> list[RunOutcome]:
        return [await self.run(candidate) for _ in range(times)]

    async def reproduce(self, candidate: Candidate, times: int) -> list[str | None]:
        """The Reproducer protocol: per run, the bundle's signature if reproduced."""
        outs = await self.run_many(candidate, times)
        return [o.signature_for(self.bundle.signature) for o in outs]

    async def reproduce_evidence(self, candidate: Candidate, times: int
                                 ) -> list[tuple[str | None, Any]]:
        """The EvidenceReproducer protocol (fuzzer/repro/minimize.py): per run, the
        signature as :meth:`reproduce` gives it and, when the run reproduced the
        bundle's finding, its :class:`~fuzzer.repro.minimize.Evidence` (trace kept)."""
        from fuzzer.repro.minimize import Evidence

        target = self.bundle.signature
        pairs: list[tuple[str | None, Any]] = []
        for _ in range(times):
            out, result = await self._execute(candidate, keep_trace=True)
            sig = out.signature_for(target)
            pairs.append((sig, Evidence.of_result(result, target) if sig == target else None))
        return pairs


async def replay_bundle(bundle: Bundle, path: str, times: int, workdir: Path, *,
                        on_run: Callable[[int, RunOutcome], None] | None = None,
                        order: bool = True, order_timeout: float = DEFAULT_TIMEOUT,
                        config: Mapping[str, Any] | None = None) -> ReplayReport:
    """Run ``bundle`` ``times`` times as recorded; the report (not yet stored).
    ``order``: enforce the bundle's recorded delivery order (if it has one),
    a held message waiting at most ``order_timeout`` seconds. ``config``: the
    config dict to run (:class:`BundleRunner`; None: the bundle's own)."""
    if times < 1:
        raise UsageError(f"--times must be >= 1, not {times}")
    t = time.monotonic()
    plan = plan_from_bundle(bundle, path,
                            nodes=config_nodes(config, path) if config is not None else None)
    original = coverage_cells(trace_events(bundle.trace, path)) if bundle.trace else None
    recorded = bundle.choices_obj(path).order if order else ()
    async with BundleRunner(bundle, path, workdir, on_run=on_run, order=recorded or None,
                            order_timeout=order_timeout, config=config) as runner:
        outcomes = await runner.run_many(plan.candidate(), times)
    return replay_report(bundle.signature, outcomes, original, time.monotonic() - t)
