"""``hbfuzz show BUNDLE|OUT [-o FILE]``: the shell around the report renderers.

Why a module of its own: the CLI stays a parser; this decides what a path is
(a bundle file: one finding's report; a campaign directory: the summary with
a report per finding), where the output goes and which exports go with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fuzzer.errors import InputError

__all__ = ["show", "show_command", "add_show_arguments"]


def add_show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="BUNDLE|OUT", help="a finding bundle or a campaign directory")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="the HTML file to write (default: BUNDLE with .html, or "
                        "OUT/report/index.html)")
    p.add_argument("--no-exports", action="store_true",
                   help="do not write the ShiViz log and the EDN history next to a bundle's report")
    p.add_argument("--history", metavar="FILE",
                   help="with a saved trace (OUT/traces/exec:*.msgpack.lz4) instead of a bundle: "
                        "the client history to show with it (hbfuzz history file)")


def show(path: str | Path, output: str | Path | None = None, *, exports: bool = True,
         history: str | Path | None = None) -> Path:
    """Render ``path`` (a bundle, a campaign directory, or a saved execution trace with an
    optional ``history`` file); returns the page written."""
    from fuzzer.report.exports import write_exports
    from fuzzer.report.html import render_bundle, render_report, write_report
    from fuzzer.report.summary import summarize_campaign
    from fuzzer.repro.bundle import MAGIC, load_bundle

    p = Path(path)
    if p.is_dir():
        return summarize_campaign(p, output)
    if not p.exists():
        raise InputError("no such bundle, trace or campaign directory", path=str(p))
    out = Path(output) if output is not None else p.with_name(p.name.split(".")[0] + ".html")
    if out.resolve() == p.resolve():
        raise InputError("the report would overwrite its input; pass -o FILE.html", path=str(p))
    with open(p, "rb") as fh:
        is_bundle = fh.read(len(MAGIC)) == MAGIC
    trace = None if is_bundle else _read_trace(p)
    if trace is None:
        bundle = load_bundle(p)  # names the file and what is wrong with it
        trace, hist = list(bundle.trace), bundle.history or None
        page = None
    else:  # a saved execution trace (no verdict): the diagram alone
        from fuzzer.workload.history import load

        hist = load(history) if history is not None else None
        page = render_report(trace, hist, [], title=f"hbfuzz execution: {p.name}",
                             replay_command="(a saved trace, not a finding: nothing to replay)")
    links = {}
    if exports:
        written = write_exports(out.parent, out.stem, trace, hist)
        links = {name: f.name for name, f in written.items()}
    if page is None:
        page = render_bundle(bundle, p, exports=links)
    return write_report(out, page)


def _read_trace(p: Path) -> list | None:
    """The events of a saved execution trace, or None if ``p`` is not one. Two forms:
    :func:`fuzzer.execution.trace.save_trace` files, and a campaign's
    ``traces/exec:*.msgpack.lz4`` (an lz4 frame of a msgpack list of events)."""
    import lz4.frame
    import msgpack

    from fuzzer.execution.trace import load_trace
    from fuzzer.report.inputs import events_of

    try:
        return load_trace(p)
    except InputError:
        pass
    try:
        obj = msgpack.unpackb(lz4.frame.decompress(p.read_bytes()), raw=False,
                              strict_map_key=False)
    except Exception:  # not lz4, not msgpack: not a trace
        return None
    if not isinstance(obj, list):
        return None
    return events_of(obj, source=str(p))


def show_command(args: argparse.Namespace) -> int:
    page = show(args.path, args.output, exports=not args.no_exports, history=args.history)
    print(page)
    return 0
