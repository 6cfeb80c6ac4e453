"""Benchmark: rendering the HTML report of a large execution.

Measures, for a seeded synthetic execution of N events (fuzzer.report.synthetic):
the Python side (diagram layout with the real Timeline + HTML) as the median of
``--repeat`` runs, the page size, and, when Chromium is installed, the page's
own first-draw time as it reports it (``data-draw-ms``) and the wall time of a
headless ``--dump-dom`` load.

    .venv/bin/python scripts/bench/report.py [--events 20000] [--repeat 3] [--json]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzzer.report.html import render_report, write_report  # noqa: E402
from fuzzer.report.synthetic import synthetic_run  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_load(page: Path) -> tuple[float, float] | None:
    """(page's draw ms, wall seconds of the headless load) or None without Chromium."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as prof:
        t = time.perf_counter()
        out = subprocess.run([exe, *FLAGS, f"--user-data-dir={prof}", "--dump-dom",
                              page.as_uri()], capture_output=True, text=True, timeout=300,
                             start_new_session=True).stdout
        wall = time.perf_counter() - t
    m = re.search(r'data-draw-ms="(\d+)"', out)
    return (float(m.group(1)) if m else float("nan"), wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--nodes", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run = synthetic_run(random.Random(args.seed), events=args.events, nodes=args.nodes)
    times = []
    page = ""
    for _ in range(args.repeat):
        t = time.perf_counter()
        page = render_report(run.events, run.history, run.verdicts, schedule=run.schedule)
        times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        path = write_report(Path(d) / "bench.html", page)
        loads = [chromium_load(path) for _ in range(args.repeat)]
    result = {
        "events": len(run.events),
        "render_s_median": round(statistics.median(times), 3),
        "html_mb": round(len(page.encode()) / 1e6, 2),
        "chromium_draw_ms_median": None,
        "chromium_load_s_median": None,
        "unit": "s",
    }
    if all(x is not None for x in loads):
        result["chromium_draw_ms_median"] = statistics.median(x[0] for x in loads)
        result["chromium_load_s_median"] = round(statistics.median(x[1] for x in loads), 2)
    if not args.json:
        print(f"{result['events']} events: render {result['render_s_median']} s (median of "
              f"{args.repeat}), page {result['html_mb']} MB, Chromium first draw "
              f"{result['chromium_draw_ms_median']} ms, headless load "
              f"{result['chromium_load_s_median']} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
