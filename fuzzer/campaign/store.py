"""What a campaign keeps: its directory, counters, findings, queue, coverage and learning.

Why separate from the loop (:mod:`fuzzer.campaign.loop`): this is the part that
must never lose a finding. :class:`CampaignStore` opens a campaign directory
(fresh, or restoring everything on resume and adopting files written after
the last commit), files one execution's result (bundles, queue entry, trace)
and commits in a fixed order: bundles -> queue entry -> trace -> coverage
maps -> scheduler state -> ``state.msgpack``. A SIGKILL between any two of
these leaves files that :meth:`CampaignStore.open` adopts on resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lz4.frame
import msgpack

from fuzzer import __version__
from fuzzer.campaign.findings import FindingIndex, FindingRecord
from fuzzer.campaign.outdir import CampaignDir, QueueName, atomic_write, now_ms
from fuzzer.campaign.record import file_findings, outcome_of
from fuzzer.campaign.setup import CampaignMeta, campaign_toml, corpus_seeds
from fuzzer.campaign.stats import Progress, plot_header, plot_row, stats_lines
from fuzzer.config import TargetConfig
from fuzzer.errors import InputError
from fuzzer.faults import Schedule
from fuzzer.repro.bundle import load_bundle, to_plain
from fuzzer.scheduler import ActionSpace, Scheduler, load_state, save_state
from fuzzer.tracker.coverage import HBCoverage

__all__ = ["CampaignStore"]

log = logging.getLogger("hbfuzz.campaign")


class CampaignStore:
    """The persistent state of one campaign and its crash-safe commits."""

    def __init__(
        self,
        cfg: TargetConfig,
        out: CampaignDir,
        meta: CampaignMeta,
        scheduler: Scheduler,
        actions: ActionSpace,
        *,
        command_line: str = "",
        keep_traces: int = 5,
        stats_interval: float = 5.0,
    ) -> None:
        self.cfg = cfg
        self.dir = out
        self.meta = meta
        self.scheduler = scheduler
        self.actions = actions
        self.command_line = command_line
        self.keep_traces = keep_traces
        self.stats_interval = stats_interval
        self.coverage = HBCoverage()
        self.findings = FindingIndex()
        self.progress = Progress()
        self.queue_ids: list[int] = []
        self.sched_map: dict[int, int] = {}  # power scheduler entry id -> queue/ id
        self.session_execs = 0
        self.recent: list[str] = []  # recent events for the status screen
        self._last_plot = 0.0
        # what the nodes report, so a flooding or failing reporter shows in fuzzer_stats:
        # a ``() -> ServerStats`` of the shared tracker server (set by the CLI shell)
        self.tracker_stats: Any = None
        self.events_last = 0  # events of the last execution (this session)
        self.events_max = 0  # most events of one execution (this session)

    # -- opening ------------------------------------------------------------------------

    def open(self, resume: bool) -> None:
        """Create the directory (fresh) or restore everything from it (resume)."""
        d = self.dir
        now = time.time()
        if not resume:
            d.create()
            self.meta = replace(self.meta, started=now)
            atomic_write(d.config_path, campaign_toml(self.cfg, self.meta))
            self.progress.start_time = now
            atomic_write(d.plot_path, plot_header() + "\n")
            add_seed = getattr(self.scheduler, "add_seed", None)
            if callable(add_seed):
                for s in corpus_seeds(self.cfg, self.actions):
                    add_seed(s)
            self._commit()
        else:
            d.open()
            state = d.load_state() or {}
            try:
                self.progress = Progress.from_dict(state.get("progress", {}))
                self.findings = FindingIndex.from_list(state.get("findings", []))
                self.queue_ids = [int(x) for x in state.get("queue", [])]
                self.sched_map = {int(k): int(v)
                                  for k, v in state.get("sched_map", {}).items()}
            except (InputError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                raise InputError(f"campaign state is damaged ({exc})",
                                 path=str(d.state_path)) from None
            if not self.progress.start_time:
                self.progress.start_time = self.meta.started or now
            if d.coverage_path.exists():
                self.coverage = HBCoverage.from_bytes(d.coverage_path.read_bytes(),
                                                      str(d.coverage_path))
            if d.scheduler_path.exists():
                load_state(self.scheduler, d.scheduler_path)
            d.repair_lines(d.plot_path)
            atomic_write(d.config_path, campaign_toml(self.cfg, self.meta))  # new --set
            self._adopt_orphans()
            self.progress.hb_coverage = self.coverage.hb_coverage()
            self.progress.code_edges = self.coverage.code_edges()
            self.progress.corpus_count = len(self.queue_ids)
            self._commit()
        self.progress.session_start = now

    def _adopt_orphans(self) -> None:
        """Queue entries and bundles written after the last commit (a SIGKILL between
        the writes of one execution) are adopted, never lost."""
        new_q, new_f = self.dir.reconcile(self.queue_ids, self.findings.files())
        for i, _ in new_q:
            self.queue_ids.append(i)
        for p in new_f:
            try:
                b = load_bundle(p)
            except InputError as exc:
                log.warning("ignoring unreadable bundle %s: %s", p, exc)
                continue
            rec = self.findings.get(b.signature)
            if rec is None:
                self.findings.add_new(FindingRecord(
                    self.findings.next_id(), b.signature, b.kind, p.name, 1,
                    self.progress.execs_done, self.progress.execs_done, b.created, b.created,
                    (b.verdicts[0].get("explanation", "") if b.verdicts else "")))
                self.progress.last_find = max(self.progress.last_find, b.created)

    # -- persistence --------------------------------------------------------------------

    def _commit(self) -> None:
        atomic_write(self.dir.coverage_path, self.coverage.to_bytes())
        save_state(self.scheduler, self.dir.scheduler_path)
        self.dir.save_state({
            "progress": self.progress.to_dict(),
            "findings": self.findings.to_list(),
            "queue": list(self.queue_ids),
            "sched_map": dict(self.sched_map),
            "seed": self.meta.seed,
            "scheduler": self.meta.scheduler,
        })

    def stats_values(self) -> dict[str, Any]:
        p = self.progress
        now = time.time()
        s = self.scheduler.stats()
        return {
            "start_time": int(p.start_time),
            "last_update": int(now),
            "run_time": int(p.run_time(now)),
            "fuzzer_pid": os.getpid(),
            "execs_done": p.execs_done,
            "execs_per_hour": p.execs_per_hour(now),
            "execs_per_sec": p.execs_per_hour(now) / 3600.0,
            "hb_coverage": max(p.hb_coverage, self.coverage.hb_coverage()),  # live
            "code_edges": max(p.code_edges, self.coverage.code_edges()),
            "corpus_count": len(self.queue_ids),
            "saved_crashes": self.findings.count("safety"),
            "saved_hangs": self.findings.count("liveness"),
            "unique_findings": len(self.findings),
            "total_findings": self.findings.total(),
            "last_find": int(p.last_find),
            "last_new_cov": int(p.last_new_cov),
            "stability": f"{p.stability():.2f}%",
            "exec_errors": p.exec_errors,
            **self._event_values(),
            "policy_entropy": float(s.get("policy_entropy", 1.0)),
            "exploration": float(s.get("exploration", 0.0)),
            "states_seen": int(s.get("states_seen", 0)),
            "scheduler": self.meta.scheduler,
            "seed": self.meta.seed,
            "target": self.cfg.target.name,
            "target_version": self.cfg.target.version or "",
            "hbfuzz_version": __version__,
            "command_line": self.command_line,
        }

    def _event_values(self) -> dict[str, Any]:
        """Event counts for fuzzer_stats: per execution, and what the tracker saw (events
        nodes' reporters dropped because they produced faster than we ingest, batches
        refused as malformed)."""
        v: dict[str, Any] = {"events_last_exec": self.events_last,
                             "events_max_exec": self.events_max}
        if self.tracker_stats is not None:
            try:
                t = self.tracker_stats()
                v.update(events_received=t.events, events_dropped=t.dropped,
                         batches_rejected=t.rejected)
            except Exception:  # a statistic must never stop the campaign
                log.debug("tracker stats unavailable", exc_info=True)
        return v

    def write_stats(self, force_plot: bool = False) -> None:
        """Rewrite fuzzer_stats atomically; append a plot_data row."""
        v = self.stats_values()
        atomic_write(self.dir.stats_path, stats_lines(v))
        now = time.time()
        if force_plot or now - self._last_plot >= self.stats_interval:
            self._last_plot = now
            self.dir.append_line(self.dir.plot_path, plot_row(
                self.progress.run_time(now), v["execs_done"], v["hb_coverage"],
                v["code_edges"], v["corpus_count"], v["saved_crashes"], v["saved_hangs"]))

    def _note(self, text: str) -> None:
        self.recent.append(f"{time.strftime('%H:%M:%S')} {text}")
        del self.recent[:-20]

    def _record(self, n: int, result: Any) -> None:
        out = outcome_of(result)
        p = self.progress
        now = time.time()
        before = self._last_sched_entry()
        self.scheduler.end_execution(result)
        entry = self._last_sched_entry()
        entry = entry if entry is not None and entry is not before else None
        filed = file_findings(out, self.findings, self.dir, self.cfg, n, p.start_time)
        for f, new, path in filed:
            if new:
                p.last_find = now
                self._note(f"exec {n}: NEW {f.kind} finding {f.signature} -> {path.name}")
            else:
                self._note(f"exec {n}: repeat of {f.signature}")
        if out.new_hb > 0 or (not self.queue_ids and out.new_edges > 0):
            qid = (max(self.queue_ids) + 1) if self.queue_ids else 0
            # the power scheduler says which of its entries this one mutates and how
            src = self.sched_map.get(entry.src) if entry is not None else None
            op = entry.op if entry is not None else self.meta.scheduler
            name = QueueName(qid, src, now_ms(p.start_time), n + 1, str(op))
            self.dir.write_queue_entry(name, out.schedule_text or Schedule().to_text())
            self.queue_ids.append(qid)
            if entry is not None:
                self.sched_map[entry.id] = qid
            p.last_new_cov = now
        self._save_trace(n, out)
        ev = out.stats.get("events", 0) if isinstance(out.stats, dict) else 0
        self.events_last = int(ev) if isinstance(ev, int) else 0
        self.events_max = max(self.events_max, self.events_last)
        p.execs_done += 1
        self.session_execs += 1
        p.hb_coverage = self.coverage.hb_coverage()
        p.code_edges = self.coverage.code_edges()
        p.corpus_count = len(self.queue_ids)
        self._commit()

    def _last_sched_entry(self) -> Any:
        """The newest entry of a scheduler with a queue (power), else None."""
        q = getattr(self.scheduler, "queue", None)
        return q[-1] if isinstance(q, list) and q else None

    def _save_trace(self, n: int, out: Any) -> None:
        """Keep the full trace of the last few executions only (bounded disk)."""
        if self.keep_traces <= 0:
            return
        data: bytes | None = None
        if out.trace_path is not None and Path(out.trace_path).is_file():
            with contextlib.suppress(OSError):
                data = Path(out.trace_path).read_bytes()
        elif out.trace:
            data = lz4.frame.compress(msgpack.packb(to_plain(list(out.trace)),
                                                    use_bin_type=True))
        if data is not None:
            self.dir.write_trace(n, data, self.keep_traces)
