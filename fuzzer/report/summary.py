"""The campaign summary page: findings table, coverage and findings over time.

Why inline SVG drawn here rather than a plotting library: the page must open
offline as one file, the plot is two simple panels of lines and steps, and
drawing it needs no optional dependency (``hbfuzz plot`` makes the
matplotlib PNG for those who want one).

:func:`render_summary` is pure (plain inputs in, HTML out);
:func:`summarize_campaign` reads a campaign directory (``fuzzer_stats``,
``plot_data``, the findings index in ``state.msgpack``, the bundles in
``crashes/`` and ``hangs/``), writes one report per finding next to the
summary and links them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fuzzer.errors import InputError
from fuzzer.report.assets import CSS
from fuzzer.report.html import esc, render_bundle, write_report

__all__ = ["render_summary", "summarize_campaign", "svg_chart", "load_findings"]

log = logging.getLogger(__name__)

_COLORS = {"hb_coverage": "#2b6cb0", "code_edges": "#dd6b20", "corpus_count": "#2f855a",
           "saved_crashes": "#c53030", "saved_hangs": "#805ad5", "execs_done": "#4a5568"}
_NAMES = {"hb_coverage": "HB coverage", "code_edges": "code edges", "corpus_count": "queue",
          "saved_crashes": "safety findings", "saved_hangs": "liveness findings",
          "execs_done": "executions"}


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    import math

    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def svg_chart(rows: Sequence[Mapping[str, float]], series: Sequence[str], *, title: str,
              step: Sequence[str] = (), width: int = 820, height: int = 230) -> str:
    """A small line chart over ``relative_time`` (seconds) as inline SVG.

    Each series gets its own scale (normalised to its maximum, printed in the
    legend), so coverage in the thousands and findings in the units share a
    panel; ``step`` series are drawn as steps (counts that jump).
    """
    left, right, top, bottom = 46, 16, 44, 30
    w, h = width - left - right, height - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="#1a202c">'
           f'{esc(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#d9dee6"/>']
    if not rows:
        out.append(f'<text x="{left + 10}" y="{top + 24}" font-size="12" fill="#5a6473">'
                   "no plot_data rows yet</text></svg>")
        return "".join(out)
    ts = [float(r.get("relative_time", 0)) for r in rows]
    t0, t1 = min(ts), max(ts)
    span = max(t1 - t0, 1.0)
    minutes = span > 180
    unit = 60.0 if minutes else 1.0
    for k in range(6):  # x ticks
        tv = t0 + span * k / 5
        x = left + w * k / 5
        out.append(f'<line x1="{x:.1f}" y1="{top + h}" x2="{x:.1f}" y2="{top + h + 4}" '
                   'stroke="#a0aec0"/>')
        out.append(f'<text x="{x:.1f}" y="{top + h + 16}" font-size="11" fill="#4a5568" '
                   f'text-anchor="middle">{tv / unit:.1f}{"m" if minutes else "s"}</text>')
    for k in (1, 2, 3):
        y = top + h * k / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" '
                   'stroke="#edf2f7"/>')
    legend_x = left
    for name in series:
        vals = [float(r.get(name, 0)) for r in rows]
        top_v = _nice_max(max(vals, default=0))
        color = _COLORS.get(name, "#4a5568")
        pts = []
        prev_y = None
        for t, v in zip(ts, vals, strict=True):
            x = left + (t - t0) / span * w
            y = top + h - v / top_v * h
            if name in step and prev_y is not None:
                pts.append(f"{x:.1f},{prev_y:.1f}")
            pts.append(f"{x:.1f},{y:.1f}")
            prev_y = y
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                   f'points="{" ".join(pts)}"/>')
        label = f"{_NAMES.get(name, name)} (max {int(max(vals, default=0))}, scale {top_v:g})"
        out.append(f'<rect x="{legend_x}" y="{top - 17}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{legend_x + 14}" y="{top - 8}" font-size="11" fill="#1a202c">'
                   f"{esc(label)}</text>")
        legend_x += 22 + 6.2 * len(label)
    out.append("</svg>")
    return "".join(out)


def _when(t: float, start: float) -> str:
    if not t:
        return "-"
    rel = t - start if start and t > 1e9 else t
    if rel < 0:
        rel = 0
    if rel < 120:
        return f"{rel:.0f}s"
    if rel < 7200:
        return f"{rel / 60:.1f}m"
    return f"{rel / 3600:.1f}h"


def render_summary(findings: Sequence[Mapping[str, Any]], plot_rows: Sequence[Mapping[str, float]],
                   stats: Mapping[str, Any] | None = None, *, title: str = "hbfuzz campaign") -> str:
    """The summary page. ``findings``: dicts with ``id, signature, kind, count,
    first_exec, first_time, line`` and ``report`` (a link, may be empty) and
    ``bundle`` (its file name); ``plot_rows``: plot_data rows as dicts;
    ``stats``: fuzzer_stats as a dict."""
    st = dict(stats or {})
    try:
        start = float(st.get("start_time", 0) or 0)
    except ValueError:
        start = 0.0
    rows_html = []
    for f in findings:
        link = (f'<a href="{esc(f["report"])}">report</a>' if f.get("report")
                else '<span class="muted">no report</span>')
        err = f' <span class="warn">{esc(f["error"])}</span>' if f.get("error") else ""
        rows_html.append(
            f"<tr><td>{esc(f.get('id', ''))}</td>"
            f"<td><span class='badge {'violated' if f.get('kind') == 'safety' else 'unknown'}'>"
            f"{esc(f.get('kind', ''))}</span></td>"
            f"<td><code>{esc(f.get('signature', ''))}</code><div class='muted'>"
            f"{esc(f.get('line', ''))}</div></td>"
            f"<td class='num'>{esc(f.get('count', 1))}</td>"
            f"<td>exec {esc(f.get('first_exec', '-'))}, {_when(float(f.get('first_time') or 0), start)}"
            f"</td><td>{link}{err}<div class='muted'>{esc(f.get('bundle', ''))}</div></td></tr>")
    table = ("<table class='findings'><thead><tr><th>#</th><th>kind</th><th>signature</th>"
             "<th>count</th><th>first seen</th><th>reproducer</th></tr></thead><tbody>"
             + "".join(rows_html) + "</tbody></table>") if rows_html else (
        "<p class='muted'>No findings yet.</p>")
    keys = ("target", "target_version", "scheduler", "seed", "run_time", "execs_done",
            "execs_per_sec", "hb_coverage", "code_edges", "corpus_count", "saved_crashes",
            "saved_hangs", "total_findings", "stability", "hbfuzz_version")
    stat_rows = "".join(f"<tr><td>{esc(k)}</td><td><code>{esc(st[k])}</code></td></tr>"
                        for k in keys if k in st)
    cov = svg_chart(plot_rows, ("hb_coverage", "code_edges"), title="coverage over time")
    found = svg_chart(plot_rows, ("saved_crashes", "saved_hangs", "corpus_count"),
                      title="findings and queue over time",
                      step=("saved_crashes", "saved_hangs"))
    n_safety = sum(1 for f in findings if f.get("kind") == "safety")
    sub = (f"{len(findings)} distinct finding(s) ({n_safety} safety, {len(findings) - n_safety} "
           f"liveness) &middot; {esc(st.get('execs_done', '?'))} executions")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}
table.findings {{ border-collapse:collapse; width:100%; font-size:13px; }}
table.findings th {{ text-align:left; color:#5a6473; font-weight:600; border-bottom:2px solid #d9dee6;
  padding:4px 8px; }}
table.findings td {{ border-bottom:1px solid #edf2f7; padding:6px 8px; vertical-align:top; }}
table.findings td.num {{ text-align:right; }}
svg.chart {{ max-width:100%; height:auto; display:block; margin-bottom:8px; }}
</style></head>
<body>
<header><h1>{esc(title)}</h1><div class="sub">{sub}</div></header>
<main>
<section class="card" id="findings"><h2>Findings</h2>{table}</section>
<div class="grid">
<section class="card" id="plots"><h2>Over time</h2>{cov}{found}</section>
<section class="card" id="stats"><h2>Campaign</h2>
{('<table class="kv">' + stat_rows + '</table>') if stat_rows else '<p class="muted">no fuzzer_stats</p>'}
<p class="muted">Generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))} by <code>hbfuzz show</code>.
Each finding's report has the space-time diagram, the oracle's explanation, the schedule
and the replay command.</p></section>
</div>
</main></body></html>
"""


def load_findings(out: Path) -> list[dict[str, Any]]:
    """The findings of a campaign: the committed index in ``state.msgpack`` plus any
    bundle in ``crashes/``/``hangs/`` it does not list yet."""
    from fuzzer.campaign.findings import FindingIndex
    from fuzzer.campaign.outdir import CampaignDir

    records: list[dict[str, Any]] = []
    known: set[str] = set()
    try:
        state = CampaignDir(out).load_state()
    except InputError as exc:
        log.warning("%s", exc)
        state = None
    if state:
        for r in FindingIndex.from_list(state.get("findings", [])).records():
            sub = "crashes" if r.kind == "safety" else "hangs"
            records.append({"id": r.id, "signature": r.signature, "kind": r.kind,
                            "count": r.count, "first_exec": r.first_exec,
                            "first_time": r.first_time, "line": r.line, "bundle": r.file,
                            "path": out / sub / r.file})
            known.add(r.file)
    for sub in ("crashes", "hangs"):
        d = out / sub
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.bundle")):
            if p.name not in known:
                records.append({"id": len(records) + 1, "signature": "", "kind":
                                "safety" if sub == "crashes" else "liveness", "count": 1,
                                "first_exec": "-", "first_time": 0, "line": "", "bundle": p.name,
                                "path": p})
    return records


def summarize_campaign(out: str | Path, dest: str | Path | None = None) -> Path:
    """Write the summary of campaign directory ``out`` to ``dest`` (default
    ``OUT/report/index.html``) and one report per finding next to it
    (``finding-000001.html`` plus its ShiViz and EDN exports); returns ``dest``."""
    from fuzzer.campaign.stats import read_plot, read_stats
    from fuzzer.report.exports import write_exports
    from fuzzer.repro.bundle import load_bundle

    root = Path(out)
    if not root.is_dir():
        raise InputError("not a directory", path=str(root))
    if not (root / "fuzzer_stats").exists() and not (root / "crashes").is_dir():
        raise InputError("not a campaign directory (no fuzzer_stats, no crashes/)",
                         path=str(root))
    target = Path(dest) if dest is not None else root / "report" / "index.html"
    stats = read_stats(root / "fuzzer_stats") if (root / "fuzzer_stats").exists() else {}
    rows = read_plot(root / "plot_data") if (root / "plot_data").exists() else []
    findings = load_findings(root)
    for f in findings:
        path: Path = f.pop("path")
        stem = f"finding-{int(f['id']):06d}" if str(f["id"]).isdigit() else path.stem
        try:
            bundle = load_bundle(path)
        except InputError as exc:
            f["error"] = str(exc)
            continue
        if not f["signature"]:
            f["signature"] = bundle.signature
        links = write_exports(target.parent, stem, bundle.trace, bundle.history or None)
        page = render_bundle(bundle, path, exports={k: p.name for k, p in links.items()})
        write_report(target.parent / f"{stem}.html", page)
        f["report"] = f"{stem}.html"
    title = f"hbfuzz campaign: {stats.get('target', root.name)}"
    write_report(target, render_summary(findings, rows, stats, title=title))
    return target
