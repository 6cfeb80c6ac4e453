"""Turning one execution's result into campaign files: bundles, queue entries, traces.

Why separate from the loop: this is the part that must never lose a finding
and never write a half file, so it is small, ordered and testable without a
cluster. It reads only documented attributes of
``fuzzer.execution.result.ExecutionResult`` (``findings``, ``schedule``,
``choices``, ``verdicts``, ``history``, ``trace``/``trace_path``,
``stats``, ``seed``) through :func:`outcome_of`, so the toy executions of the
unit tests and the real one go through the same code.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzer import __version__
from fuzzer.campaign.findings import FindingIndex, FindingRecord, signature_hash
from fuzzer.campaign.outdir import CampaignDir, FindingName, now_ms
from fuzzer.config import TargetConfig
from fuzzer.repro.bundle import Bundle, bundle_fields, save_bundle, to_plain

__all__ = ["FoundBug", "Outcome", "outcome_of", "file_findings", "versions_of"]


@dataclass(frozen=True)
class FoundBug:
    """One finding of an execution: its dedup key, kind and verdict(s)."""

    signature: str
    kind: str
    verdicts: tuple[Any, ...]
    line: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the campaign needs from an execution result (read by :func:`outcome_of`)."""

    seed: int
    schedule_text: str
    findings: tuple[FoundBug, ...]
    choices: bytes
    history: tuple[Any, ...]
    trace: tuple[Any, ...]
    trace_path: Path | None
    verdicts: tuple[Any, ...]
    stats: dict[str, Any]
    new_hb: int
    new_edges: int
    novelty: float


def _finding(f: Any) -> FoundBug:
    v = getattr(f, "verdict", None)
    key = getattr(f, "key", None)
    if not isinstance(key, str):
        sig = getattr(f, "signature", None)
        if isinstance(sig, tuple):
            o, n, *ctx = sig
            ctx = ctx[0] if ctx else ()
            key = f"{o}/{n}[{','.join(map(str, ctx))}]"
        else:
            key = str(sig) if sig is not None else f"{v.oracle}/{v.name}"
    kind = getattr(f, "kind", None) or getattr(v, "kind", "safety")
    line = v.line() if v is not None and hasattr(v, "line") else ""
    return FoundBug(key, "liveness" if kind == "liveness" else "safety",
                    (v,) if v is not None else (), line)


def _history_rows(h: Any) -> tuple[Any, ...]:
    ops = getattr(h, "ops", None)
    if ops is None:
        return tuple(h or ())
    return tuple([op.process, op.type, op.f, to_plain(op.value), to_plain(op.key), op.time]
                 for op in ops)


def _stats(s: Any) -> dict[str, Any]:
    if s is None:
        return {}
    if isinstance(s, dict):
        return to_plain(s)
    return to_plain(s)


def outcome_of(result: Any) -> Outcome:
    """Read an ExecutionResult (or anything with the same attribute names)."""
    g = getattr
    sched = g(result, "schedule", None)
    text = sched.to_text() if hasattr(sched, "to_text") else str(sched or "")
    choices = g(result, "choices", None)
    if hasattr(choices, "to_msgpack"):
        cb = choices.to_msgpack() if len(choices) else b""
    else:
        cb = bytes(choices or b"")
    return Outcome(
        seed=int(g(result, "seed", 0) or 0),
        schedule_text=text,
        findings=tuple(_finding(f) for f in g(result, "findings", ()) or ()),
        choices=cb,
        history=_history_rows(g(result, "history", None)),
        trace=tuple(g(result, "trace", ()) or ()),
        trace_path=g(result, "trace_path", None),
        verdicts=tuple(g(result, "verdicts", ()) or ()),
        stats=_stats(g(result, "stats", None)),
        new_hb=int(g(result, "new_hb", 0) or 0),
        new_edges=int(g(result, "new_edges", 0) or 0),
        novelty=float(g(result, "novelty", 0.0) or 0.0),
    )


def versions_of(cfg: TargetConfig) -> dict[str, str]:
    return {
        "hbfuzz": __version__,
        "python": platform.python_version(),
        "target": cfg.target.name,
        "target_version": str(cfg.target.version or ""),
    }


def _trace_events(out: Outcome) -> tuple[Any, ...]:
    if out.trace:
        return out.trace
    if out.trace_path is not None:
        try:
            from fuzzer.execution.trace import load_trace  # written by the execution part

            return tuple(load_trace(out.trace_path))
        except Exception:  # a missing/unreadable trace must not lose the finding
            return ()
    return ()


def file_findings(out: Outcome, index: FindingIndex, d: CampaignDir, cfg: TargetConfig,
                  exec_no: int, start: float, extra_versions: dict[str, str] | None = None
                  ) -> list[tuple[FoundBug, bool, Path | None]]:
    """Dedup ``out``'s findings against ``index``: a bundle (written atomically,
    before the index changes) for each new signature, a count for repeats.
    Returns ``(finding, is_new, bundle path or None)`` per finding."""
    done: list[tuple[FoundBug, bool, Path | None]] = []
    seen_here: set[str] = set()
    now = time.time()
    for f in out.findings:
        if f.signature in seen_here:
            continue
        seen_here.add(f.signature)
        if f.signature in index:
            index.repeat(f.signature, exec_no, now)
            done.append((f, False, None))
            continue
        fid = index.next_id()
        name = FindingName(fid, signature_hash(f.signature), now_ms(start), exec_no + 1, f.kind)
        path = d.finding_path(f.kind, name)
        verdicts = bundle_fields(f.verdicts) + tuple(
            x for x in bundle_fields([v for v in out.verdicts if v not in f.verdicts])
            if x.get("status") == "violated")
        bundle = Bundle(
            config=cfg.to_dict(),
            seed=out.seed,
            schedule=out.schedule_text,
            signature=f.signature,
            kind=f.kind,
            verdicts=verdicts,
            choices=out.choices,
            workload=cfg.workload.to_dict(),
            trace=tuple(to_plain(list(_trace_events(out)))),
            history=out.history,
            versions={**versions_of(cfg), **(extra_versions or {})},
            stats=out.stats,
            created=now,
        )
        save_bundle(path, bundle)
        index.add_new(FindingRecord(fid, f.signature, f.kind, path.name, 1, exec_no, exec_no,
                                    now, now, f.line))
        done.append((f, True, path))
    return done


def schedule_texts(steps: Sequence[Any]) -> list[str]:
    return [s.to_text() if hasattr(s, "to_text") else str(s) for s in steps]
