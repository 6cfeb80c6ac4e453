"""The HTML report in a real headless Chromium, from a real finding.

The finding comes from a real run: the Maelstrom primary-backup lin-kv nodes
under the stdio mediator, a real nemesis isolating a backup (FAULT events),
the mediator's SEND/RECV events in a real Timeline, the real linearizability
checker's verdict, saved as a real bundle and rendered by ``hbfuzz show``.
Chromium (Debian's ``chromium``) is installed when missing; the test is
skipped, with the reason, only if that fails.

The page writes what it drew into ``#hb-status`` (lanes, highlighted events,
unlinearisable ops, caught script errors); ``--dump-dom`` returns the DOM
after the scripts ran. Set ``HBFUZZ_UPDATE_SCREENSHOT=1`` to refresh
``docs/report-screenshot.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer import faults as F
from fuzzer.checkers.workloads import check_workload
from fuzzer.cli import main
from fuzzer.nemesis import Nemesis
from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator
from fuzzer.report.html import render_report, write_report
from fuzzer.report.synthetic import synthetic_run
from fuzzer.repro.bundle import bundle_fields, save_bundle, to_plain
from fuzzer.tracker.timeline import Timeline
from fuzzer.workload.maelstrom import WorkloadConfig, make_workload
from instrumentation import protocol as P

REPO = Path(__file__).resolve().parents[2]
NODES = REPO / "targets" / "maelstrom" / "nodes"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def _find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _find()
    reason = "chromium is not installed"
    if exe is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"{reason} and cannot be installed here (not root or no apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:  # stale package lists: update once and retry
                subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            reason = f"apt-get install chromium failed: {r.stderr.strip()[-300:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"apt-get install chromium failed: {exc}"
        exe = _find()
    if exe is None:
        pytest.skip(reason)
    return exe


def run_chromium(procs, exe: str, profile: Path, url: str, *args: str,
                 timeout: float = 180) -> tuple[str, str]:
    """Run Chromium in its own process group (the ``procs`` fixture kills it and its
    helpers whatever happens); returns (stdout, stderr)."""
    p = procs([exe, *FLAGS, f"--user-data-dir={profile}", *args, url],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    return out, err


def page_status(procs, exe: str, tmp: Path, url: str) -> dict[str, str]:
    out, err = run_chromium(procs, exe, tmp / "profile", url,
                            "--virtual-time-budget=5000", "--dump-dom")
    m = re.search(r'<div id="hb-status"([^>]*)>([^<]*)', out)
    assert m is not None, out[:2000]
    status = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1)))
    status["text"] = m.group(2)
    # script errors reach the console log even when nothing catches them
    assert not re.search(r"Uncaught|SyntaxError|TypeError|ReferenceError", err), err[-3000:]
    return status


# ---------------------------------------------------------------------- a real finding


async def _execute(workdir: Path, python: str, seed: int, isolate: int):
    nodes = {f"n{i}": [python, str(NODES / "pb_kv.py")] for i in range(1, 4)}
    tl = Timeline("report-test")
    model = NetworkModel(list(nodes), seed)
    net = StdioMediator(nodes, model, workdir, env={**os.environ, "PB_KV_TIMEOUT": "0.25"},
                        sink=tl.add)
    nemesis = Nemesis(list(nodes), links=model, sink=tl.add, seed=seed)
    await net.start()
    try:
        wl = make_workload("lin-kv", net.client_request, list(nodes), random.Random(seed),
                           WorkloadConfig(clients=4, rate=10, duration=2.0, keys=2, values=50))
        await wl.setup()

        async def faults() -> None:
            await asyncio.sleep(0.3)
            await nemesis.apply(F.Partition("isolate", node=F.NodeRef((isolate,))))
            await asyncio.sleep(1.4)
            await nemesis.heal_all()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(wl.run())
            tg.create_task(faults())
        await wl.final()
    finally:
        await net.close()
    return tl, wl


def real_finding(tmp_path: Path, python: str, rng: random.Random):
    """A linearizability violation of pb_kv under a partition (eight tries at most).

    Whether a try finds one depends mostly on its seed (which ops the workload
    draws and which backup is cut off): measured 8 of 10 tries, but a fresh-clone
    CI run once drew four missing seeds in a row (HBFUZZ_TEST_SEED=1509916195), so
    eight tries: all miss about once in 10^5 runs, each try is ~3 s."""
    for attempt in range(8):
        seed = rng.getrandbits(32)
        isolate = rng.choice((1, 2))  # a backup: it serves stale reads
        tl, wl = asyncio.run(asyncio.wait_for(
            _execute(tmp_path / f"run{attempt}", python, seed, isolate), 60))
        verdict = check_workload("lin-kv", wl.history(), timeout=20.0)
        print(f"try {attempt}: seed {seed}, isolated n{isolate + 1}: {verdict.line()}")
        if verdict.violated:
            return tl, wl.history(), verdict, seed, isolate
    pytest.fail("no linearizability violation in eight real runs of pb_kv under a partition")


def test_report_of_a_real_finding_renders_in_chromium(tmp_path, python, rng, procs, chromium,
                                                      monkeypatch):
    tl, history, verdict, seed, isolate = real_finding(tmp_path, python, rng)
    schedule = f"seed {seed}\npartition isolate n{isolate + 1} 1.4s\n"
    bundle = save_bundle(
        tmp_path / "finding.bundle",
        config={"target": {"name": "maelstrom-pb-kv"}, "cluster": {"nodes": 3}},
        seed=seed, schedule=schedule, signature="workload:lin-kv/not-linearizable",
        verdicts=bundle_fields([verdict]),
        trace=tuple(to_plain(e) for e in tl.events()),
        history=tuple([o.process, o.type, o.f, o.value, o.key, o.time] for o in history.ops),
    )
    html = tmp_path / "report.html"
    monkeypatch.chdir(tmp_path)  # the page then says "hbfuzz replay finding.bundle"
    assert main(["show", bundle.name, "-o", html.name]) == 0
    assert "hbfuzz replay finding.bundle --times 10" in html.read_text()

    nodes = [n for n in tl.nodes() if n != "nemesis"]
    assert {"n1", "n2", "n3"} <= set(nodes) and any(n.startswith("c") for n in nodes)
    assert any(e.kind == P.FAULT for e in tl.events("nemesis"))
    status = page_status(procs, chromium, tmp_path, html.as_uri())
    print("page status:", status)
    assert status["ready"] == "1" and status["errors"] == ""
    assert int(status["lanes"]) == len(nodes)  # one lane per node and client endpoint
    assert int(status["rows"]) == len(nodes)  # ... and the script drew each of them
    assert int(status["oplanes"]) == len({op.process for op in history.ops})
    # the violation: the unlinearisable ops outlined, the reply that returned the stale
    # value in red, and its causal past in orange, all drawn
    assert int(status["offending-ops"]) == len(verdict.offending) >= 1
    assert int(status["offending"]) >= 1
    assert int(status["highlighted"]) > int(status["offending"])
    assert status["drawn-highlighted"] == status["highlighted"]

    # clicking an event rings its causal past: the script's own walk over the arrows
    # must find exactly the past the real Timeline gave (the orange context events)
    g = json.loads(re.search(r'id="hb-data">(.*?)</script>', html.read_text(), re.S).group(1))
    hl = g["diagram"]["ev"]["hl"]
    bad = hl.index(2)
    picked = page_status(procs, chromium, tmp_path, html.as_uri() + f"#select={bad}")
    if hl.count(2) == 1:
        assert int(picked["selected-past"]) == hl.count(1) > 0

    # the time axis and "zoom to violation" from the URL
    zoomed = page_status(procs, chromium, tmp_path, html.as_uri() + "#axis=t&violation=1")
    assert zoomed["axis"] == "t" and zoomed["errors"] == ""
    lo, hi = (float(x) for x in zoomed["view"].split(".."))
    data = re.search(r'id="hb-data">(.*?)</script>', html.read_text(), re.S).group(1)
    extent = json.loads(data)["diagram"]["extent"]["t"]
    assert 0 < hi - lo < extent  # zoomed in on the violation

    update = os.environ.get("HBFUZZ_UPDATE_SCREENSHOT") == "1"
    shot = REPO / "docs" / "report-screenshot.png" if update else tmp_path / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(procs, chromium, tmp_path / "profile", html.as_uri(),
                 "--window-size=1400,900", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    print(f"screenshot: {shot} ({len(data)} bytes)")


def test_a_20k_event_report_renders_in_bounded_time(tmp_path, rng, procs, chromium):
    run = synthetic_run(rng, events=20_000, nodes=6)
    page = render_report(run.events, run.history, run.verdicts, schedule=run.schedule)
    html = write_report(tmp_path / "big.html", page)
    seen = []
    for url in (html.as_uri(), html.as_uri() + "#axis=t&dim=1&collapse=n1,n2&hide=STATE"):
        status = page_status(procs, chromium, tmp_path, url)  # bounded by its timeout
        print(f"{len(run.events)} events, {len(page) / 1e6:.1f} MB: {status}")
        assert status["ready"] == "1" and status["errors"] == ""
        assert int(status["events"]) == 20_000 and int(status["lanes"]) == 6
        assert status["offending"] == "1" and int(status["drawn-highlighted"]) > 1
        seen.append(status)
    full, folded = seen
    assert full["collapsed"] == "0" and folded["collapsed"] == "2"
    assert int(folded["height"]) < int(full["height"])  # two lanes folded away
    assert int(folded["drawn-events"]) < int(full["drawn-events"])  # STATE events hidden



def test_empty_and_history_only_reports_render(tmp_path, procs, chromium):
    from fuzzer.checkers import linearizability
    from fuzzer.workload.history import HistoryRecorder

    clock = iter(range(1_000, 100_000, 700))
    rec = HistoryRecorder(clock=lambda: next(clock))
    h = rec.invoke(0, "write", 1)
    rec.ok(h)
    h = rec.invoke(1, "read")
    rec.ok(h, 5)
    history = rec.history()
    result = linearizability.check(history, "register")
    pages = {"empty": render_report(), "history": render_report([], history, [result])}
    for name, page in pages.items():
        html = write_report(tmp_path / f"{name}.html", page)
        status = page_status(procs, chromium, tmp_path, html.as_uri())
        assert status["ready"] == "1" and status["errors"] == "", (name, status)
        assert status["lanes"] == "0"
    assert status["oplanes"] == "2" and status["offending-ops"] == "1"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "-s"]))
