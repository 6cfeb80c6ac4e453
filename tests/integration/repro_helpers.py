"""Shared steps of the reproducer tests on real targets (test_repro_*.py): run a
schedule until it gives a finding, save it as a bundle the way a campaign does,
then drive ``hbfuzz replay``, ``hbfuzz minimize`` and ``hbfuzz show`` in-process
and read back what they wrote (JSON lines, bundles, the report's embedded data)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fuzzer import cli
from fuzzer.campaign.record import outcome_of, versions_of
from fuzzer.execution import Execution
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.faults import Schedule, Step, parse_fault
from fuzzer.repro.bundle import Bundle, bundle_fields, load_bundle, save_bundle, to_plain


def schedule_of(steps: list[tuple[str, float]], seed: int) -> Schedule:
    return Schedule(tuple(Step(parse_fault(f), d) for f, d in steps), seed)


def finding_bundle(cfg: Any, steps: list[tuple[str, float]], workdir: Path, seed: int,
                   tries: int = 3, want: str | None = None) -> tuple[Path, Bundle]:
    """Run ``steps`` (at most ``tries`` executions, seeds ``seed``, ``seed+1``, ...)
    until a safety finding (whose key starts with ``want``, if given); its bundle,
    written as a campaign writes one (trace, history, verdicts, choices, versions)."""
    seen = []
    for attempt in range(tries):
        res = asyncio.run(Execution(cfg, workdir / f"find{attempt}", seed + attempt)
                          .run(schedule_of(steps, seed + attempt)))
        assert not leftover_processes(res.execution_id)
        seen.append([f.key for f in res.findings])
        hits = [f for f in res.safety if want is None or f.key.startswith(want)]
        if not hits:
            continue
        f = hits[0]
        out = outcome_of(res)
        others = [v for v in res.verdicts if v.violated and v is not f.verdict]
        bundle = Bundle(
            config=cfg.to_dict(), seed=res.seed, schedule=res.schedule.to_text(),
            signature=f.key, kind=f.kind, verdicts=bundle_fields([f.verdict, *others]),
            choices=res.choices.to_msgpack(), workload=cfg.workload.to_dict(),
            trace=tuple(to_plain(list(res.trace))), history=out.history,
            versions=versions_of(cfg),
        )
        path = workdir / "finding.bundle"
        save_bundle(path, bundle)
        return path, bundle
    pytest.fail(f"{tries} executions of {steps} gave no finding{' ' + want if want else ''}: "
                f"{seen}")


def hbfuzz_json(*argv: str) -> tuple[int, dict[str, Any]]:
    """``hbfuzz ARGV --json`` in-process: its exit code and the JSON object it printed
    last (stdout captured here, so module-scoped fixtures can call it too)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main([*argv, "--json"])
    return rc, json.loads(buf.getvalue().strip().splitlines()[-1])


def show(path: Path, html: Path) -> dict[str, Any]:
    """``hbfuzz show BUNDLE -o HTML``; the diagram the page embeds (lanes, counts...)."""
    assert cli.main(["show", str(path), "-o", str(html)]) == 0
    page = html.read_text(encoding="utf-8")
    m = re.search(r'id="hb-data">(.*?)</script>', page, re.S)
    assert m is not None, page[:500]
    diagram = json.loads(m.group(1))["diagram"]
    diagram["page"] = page
    return diagram


def assert_kept_evidence(res: dict[str, Any]) -> None:
    """``hbfuzz minimize --json`` says the minimal bundle got a verifying run's trace."""
    from fuzzer.repro import replay

    assert hasattr(replay.BundleRunner, "reproduce_evidence"), (
        "fuzzer/repro/replay.py lacks the evidence change (BundleRunner.reproduce_evidence, "
        "minimal_bundle writing result.evidence): minimal bundles get no trace")
    ev = res.get("evidence")
    assert ev is not None and ev["events"] > 0 and ev["ops"] > 0, res


def assert_shows_the_violation(bundle_path: Path, html: Path, signature: str,
                               faults: bool = True) -> dict[str, Any]:
    """The bundle carries a run's trace and history, and its report draws them: a lane
    per node, messages, client ops, the injected faults (``faults``: the schedule
    has steps other than ``wait``) and the violating events (or unlinearisable ops)
    highlighted in red."""
    b = load_bundle(bundle_path)
    assert b.trace, f"{bundle_path} has no event trace: hbfuzz show would draw nothing"
    assert b.history, f"{bundle_path} has no client history"
    assert b.verdicts and b.verdicts[0]["status"] == "violated"
    d = show(bundle_path, html)
    c = d["counts"]
    nodes = {str(n) for n in b.config_obj().nodes}
    assert nodes <= set(d["lanes"]), (nodes, d["lanes"])
    assert c["events"] > 0 and c["ops"] > 0
    assert c["arrows"] > 0  # messages between the nodes
    assert c["faults"] >= (1 if faults else 0), c
    assert c["offending"] + c["offending_ops"] >= 1 and c["highlighted"] >= 1, c
    oracle, name = signature.split("[", 1)[0].split("/", 1)
    assert f"{oracle}/{name}: violated" in d["page"]
    return d
