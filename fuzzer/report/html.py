"""One self-contained HTML report of one execution (``hbfuzz show``).

Why one file with the data inside: a finding's report is mailed, attached
to issues and opened offline; it must need no server and no network (no
CDN: the stylesheet and script are inline, see :mod:`fuzzer.report.assets`).
The diagram's data is embedded as a JSON block that the script draws lazily
into a canvas, so tens of thousands of events stay responsive.

Inputs are plain (events, history, verdicts, schedule text, config dict,
replay command), so the renderer does not depend on the bundle format;
:func:`render_bundle` is the thin adapter for a
:class:`~fuzzer.repro.bundle.Bundle`.
"""

from __future__ import annotations

import html as _html
import json
import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fuzzer.report.assets import CSS, JS
from fuzzer.report.inputs import op_text, verdict_dicts
from fuzzer.report.layout import build_diagram

__all__ = ["render_report", "render_bundle", "write_report", "embed_json", "esc"]

_PREFIX_SHOWN = 25


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [_json_safe(v) for v in x]
    if isinstance(x, bytes):
        return x.hex()
    if x is None or isinstance(x, bool | int | float | str):
        return x
    return repr(x)


def _json_default(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.hex()
    if isinstance(x, set | frozenset | tuple):
        return [_json_safe(v) for v in x]
    return repr(x)


def embed_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so no string in the
    data (a message type, a log line holding ``</script>`` or ``<!--``) can end
    the script element or open a comment; U+2028/2029 are escaped too.
    """
    try:  # fast path: the diagram data is plain already
        text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False,
                          default=_json_default)
    except (ValueError, TypeError):  # NaN, odd keys: convert the whole value first
        text = json.dumps(_json_safe(obj), ensure_ascii=True, separators=(",", ":"),
                          allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _is_op(d: Any) -> bool:
    return isinstance(d, Mapping) and "invoke_index" in d and "process" in d


def _is_event(d: Any) -> bool:
    return isinstance(d, Mapping) and "node" in d and "kind" in d or (
        hasattr(d, "_asdict") and hasattr(d, "kind"))


def _event_line(d: Any) -> str:
    from fuzzer.report.inputs import to_event
    from fuzzer.report.layout import event_detail

    try:
        return event_detail(to_event(d))
    except Exception:  # an odd stored form: show it raw
        return repr(d)[:200]


def _verdict_html(v: Mapping[str, Any]) -> str:
    status = str(v.get("status", "unknown"))
    details = dict(v.get("details") or {})
    out = [f'<div class="verdict {esc(status)}">',
           f'<div><span class="badge {esc(status)}">{esc(status)}</span>'
           f'<b>{esc(v.get("oracle", "?"))}</b> / {esc(v.get("name", "?"))}'
           f' <span class="muted">({esc(v.get("kind", "safety"))})</span></div>']
    if v.get("explanation"):
        out.append(f'<pre class="expl">{esc(v["explanation"])}</pre>')
    offending = list(v.get("offending") or ())
    ops = [d for d in offending if _is_op(d)]
    evs = [d for d in offending if not _is_op(d) and _is_event(d)]
    is_lin = "prefix_length" in details or "prefix" in details or v.get("oracle") == "linearizability"
    if is_lin and "key" in details:
        out.append(f'<div>key: <code>{esc(repr(details["key"]))}</code>'
                   + (f' &middot; model <code>{esc(details["model"])}</code>'
                      if details.get("model") else "") + "</div>")
    if ops:
        what = "could not be linearised (none fits after the prefix)" if is_lin else "operations"
        out.append(f"<div>{len(ops)} operation(s) {what}:</div><ul class='ops'>")
        out += [f'<li class="bad">{esc(op_text(d))}</li>' for d in ops]
        out.append("</ul>")
    prefix = details.get("prefix") or details.get("prefix_tail")
    if is_lin and (prefix or details.get("prefix_length") is not None):
        n = details.get("prefix_length", len(prefix or ()))
        shown = list(prefix or ())[-_PREFIX_SHOWN:]
        note = f" (last {len(shown)} shown)" if len(shown) < n else ""
        out.append(f"<div>longest linearisable prefix: {esc(n)} op(s){note}, in "
                   "linearisation order:</div>")
        if not n:
            out.append('<div class="muted">(empty: no operation could be placed first)</div>')
        if shown:
            start = n - len(shown) + 1
            out.append(f'<ol class="ops" start="{start}">'
                       + "".join(f"<li>{esc(s)}</li>" for s in shown) + "</ol>")
    if evs:
        out.append(f"<div>{len(evs)} offending event(s):</div><ul class='ops'>")
        out += [f'<li class="bad">{esc(_event_line(d))}</li>' for d in evs[:50]]
        out.append("</ul>")
    ctx = v.get("context") or ()
    if ctx:
        out.append(f'<div class="muted">causal past: {len(ctx)} event(s), highlighted in '
                   "orange in the diagram</div>")
    rest = {k: x for k, x in details.items()
            if k not in ("prefix", "prefix_tail", "unplaced", "key", "model", "prefix_length")}
    if rest:
        out.append('<table class="kv">' + "".join(
            f"<tr><td>{esc(k)}</td><td><code>{esc(_short_json(x))}</code></td></tr>"
            for k, x in rest.items()) + "</table>")
    out.append("</div>")
    return "\n".join(out)


def _short_json(x: Any, limit: int = 300) -> str:
    s = json.dumps(_json_safe(x), ensure_ascii=False)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def render_report(
    events: Iterable[Any] = (),
    history: Any = None,
    verdicts: Iterable[Any] = (),
    *,
    schedule: str = "",
    config: Mapping[str, Any] | None = None,
    replay_command: str = "hbfuzz replay BUNDLE",
    title: str = "hbfuzz report",
    signature: str = "",
    facts: Mapping[str, Any] | None = None,
    node_names: Sequence[str] | None = None,
    exports: Mapping[str, str] | None = None,
) -> str:
    """The report page as a string.

    ``events``: the execution's trace (Events or stored forms); ``history``:
    the client history; ``verdicts``: the oracles' verdicts (Verdict values,
    linearizability results or dicts); ``schedule``: the schedule's text form;
    ``config``: the config snapshot (shown folded); ``replay_command``: how to
    replay; ``facts``: a few lines for the header table (seed, versions,
    reproduction rate); ``exports``: name -> relative link of exported files.
    """
    vdicts = verdict_dicts(verdicts)
    diagram = build_diagram(events, history, vdicts, node_names=node_names)
    counts = diagram["counts"]
    worst = next((s for s in ("violated", "unknown", "ok")
                  if any(v.get("status") == s for v in vdicts)), "")
    badges = "".join(
        f'<span class="badge {esc(v.get("status"))}">{esc(v.get("oracle"))}/'
        f'{esc(v.get("name"))}: {esc(v.get("status"))}</span>' for v in vdicts[:6])
    sub = (f"{badges} {counts['events']} events on {len(diagram['lanes'])} lanes &middot; "
           f"{counts['arrows']} messages ({counts['drops']} lost) &middot; "
           f"{counts['faults']} faults &middot; {counts['ops']} client ops")
    if signature:
        sub += f" &middot; signature <code>{esc(signature)}</code>"
    verdict_html = "\n".join(_verdict_html(v) for v in vdicts) or (
        '<p class="muted">No verdicts recorded.</p>')
    fact_rows = "".join(
        f"<tr><td>{esc(k)}</td><td><code>{esc(_short_json(x) if not isinstance(x, str) else x)}"
        f"</code></td></tr>" for k, x in (facts or {}).items())
    export_links = " &middot; ".join(
        f'<a href="{esc(href)}">{esc(name)}</a>' for name, href in (exports or {}).items())
    warnings = "".join(f'<div class="warn">{esc(w)}</div>' for w in diagram["warnings"][:10])
    config_html = ""
    if config:
        config_html = (
            '<details class="card"><summary><b>Config snapshot</b></summary><pre>'
            + esc(json.dumps(_json_safe(config), indent=2, ensure_ascii=False)) + "</pre></details>")
    hl_note = (f"{counts['offending']} violating event(s) in red, {counts['highlighted'] - counts['offending']}"
               " event(s) of their causal past in orange" if counts["highlighted"] else
               "no event-level violation")
    if counts["offending_ops"]:
        hl_note += f"; {counts['offending_ops']} operation(s) that could not be linearised outlined in red"
    data = embed_json({"diagram": diagram})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{esc(title)}{' &mdash; ' + esc(worst) if worst else ''}</h1>
<div class="sub">{sub}</div></header>
<main>
<section class="card" id="diagram">
<div class="toolbar">
 <label>axis <select id="hb-axis"><option value="x">HB order (Lamport)</option>
 <option value="t">real time</option></select></label>
 <label>from <input id="hb-from" type="number" step="any"></label>
 <label>to <input id="hb-to" type="number" step="any"></label>
 <button id="hb-apply" type="button">zoom</button>
 <button id="hb-fit" type="button">fit all</button>
 <button id="hb-zoomv" type="button">zoom to violation</button>
 <span class="sep"></span>
 <label><input id="hb-arrows" type="checkbox" checked> messages</label>
 <label><input id="hb-dim" type="checkbox"> dim unrelated</label>
 <span class="sep"></span><span class="kinds" id="hb-kinds"></span>
</div>
<div id="hb-wrap"><canvas id="hb-canvas" height="300"></canvas><div id="hb-tip"></div></div>
<div class="legend"><span class="k"><i style="background:#e53e3e"></i>violation</span>
<span class="k"><i style="background:#dd6b20"></i>causal past</span>
<span class="k"><i style="background:rgba(128,90,213,.35)"></i>partition</span>
<span class="k"><i style="background:rgba(197,48,48,.35)"></i>node down</span>
<span class="k"><i style="background:rgba(43,108,176,.35)"></i>paused</span>
<span class="k"><i style="background:rgba(221,107,32,.35)"></i>link fault</span>
<span class="k"><i style="background:#48bb78"></i>op ok</span>
<span class="k"><i style="background:#ecc94b"></i>op info</span>
<span class="k"><i style="background:#a0aec0"></i>op fail</span>
<span class="k">- - &times; lost message</span>
&middot; {hl_note}. Wheel: zoom &middot; drag: pan &middot; shift-drag: zoom to a range &middot;
double-click: fit &middot; click a lane name: collapse it &middot; click an event: details.</div>
<div id="hb-info">Click an event or an operation for its details.</div>
<div id="hb-status" class="muted" data-ready="0">the diagram needs JavaScript</div>
{warnings}
</section>
<div class="grid">
<section class="card" id="explanation"><h2>What the oracles found</h2>
{verdict_html}
</section>
<div>
<section class="card" id="replay"><h2>Reproduce</h2>
<pre>{esc(replay_command)}</pre>
{('<table class="kv">' + fact_rows + '</table>') if fact_rows else ''}
{('<div>exports: ' + export_links + '</div>') if export_links else ''}
</section>
<section class="card" id="schedule"><h2>Schedule</h2>
<pre>{esc(schedule.strip()) if schedule.strip() else '(no schedule recorded)'}</pre>
</section>
</div>
</div>
{config_html}
</main>
<script type="application/json" id="hb-data">{data}</script>
<script>{JS}</script>
</body></html>
"""


def render_bundle(bundle: Any, path: str | Path | None = None,
                  exports: Mapping[str, str] | None = None) -> str:
    """The report of a :class:`~fuzzer.repro.bundle.Bundle` (``path``: its file, for the
    replay command)."""
    where = shlex.quote(str(path)) if path is not None else "BUNDLE"
    cfg = bundle.config if isinstance(bundle.config, Mapping) else {}
    nodes = _config_node_names(cfg)
    facts: dict[str, Any] = {"seed": bundle.seed}
    if bundle.versions:
        facts["versions"] = dict(bundle.versions)
    rate = (bundle.replay or {}).get("rate")
    if rate is not None:
        facts["reproduction rate"] = rate
    if bundle.replay:
        facts["replay"] = dict(bundle.replay)
    facts["hbfuzz"] = bundle.hbfuzz_version
    replay = (f"# re-run it 10 times: how often does it come back?\n"
              f"hbfuzz replay {where} --times 10\n"
              f"# the smallest schedule that still fails\n"
              f"hbfuzz minimize {where}\n"
              f"# this report\n"
              f"hbfuzz show {where} -o report.html")
    info = cfg.get("target")
    target = info.get("name") if isinstance(info, Mapping) else None
    title = f"hbfuzz finding{': ' + str(target) if target else ''}"
    return render_report(
        bundle.trace, bundle.history, bundle.verdicts,
        schedule=bundle.schedule, config=cfg, replay_command=replay, title=title,
        signature=bundle.signature, facts=facts, node_names=nodes, exports=exports)


def _config_node_names(cfg: Mapping[str, Any]) -> list[str] | None:
    """The cluster's node names in index order, if the config snapshot says."""
    cluster = cfg.get("cluster")
    if isinstance(cluster, Mapping):
        for key in ("node_names", "names"):
            v = cluster.get(key)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return list(v)
        n = cluster.get("nodes")
        prefix = cluster.get("name_prefix") or "n"
        if isinstance(n, int) and 0 < n < 10_000 and isinstance(prefix, str):
            return [f"{prefix}{i}" for i in range(1, n + 1)]
    return None


def write_report(path: str | Path, page: str) -> Path:
    """Write a rendered page (UTF-8) and return its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page, encoding="utf-8")
    return p
