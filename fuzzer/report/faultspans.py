"""Fault apply/undo events paired into the regions a report shades.

Why its own module: the nemesis records each applied or undone fault as a
FAULT event with the fault's text form; a report wants spans ("n2 was down
from here to there"). The pairing follows the nemesis' own bookkeeping of
what is still broken (``Nemesis._track``): a partition is undone by heal, a
kill or stop by start or restart, a pause by resume, a link fault by
link-clear, a clock skew by a zero skew; a new fault in the same slot ends
the previous one. Pure: text in, spans out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["fault_regions"]


def _fault_slots(text: str, names: Sequence[str]) -> tuple[str, list[tuple], list[tuple], list[str]]:
    """(category, slots opened, slots closed, affected lanes) of a fault's text form.

    The same bookkeeping as the nemesis' ``_track``: a partition is undone by
    heal, a kill/stop by start/restart, a pause by resume, a link fault by
    link-clear, a clock skew by a zero skew."""
    from fuzzer import faults as F

    try:
        f = F.parse_fault(text)
    except Exception:  # an unknown or newer fault: show it, do not pair it
        return "other", [], [], []

    def idx(ref: Any) -> list[int]:
        if ref is None:
            return []
        if ref.role == "all":
            return list(range(len(names)))
        return [i for i in ref.indices if i < len(names)]

    def lanes(ix: Iterable[int]) -> list[str]:
        return [names[i] for i in ix]

    match f:
        case F.Partition():
            if f.shape == "isolate":
                hit = idx(f.node)
            elif f.groups:
                groups = sorted(f.groups, key=len)
                hit = [i for g in groups[:-1] for i in g if i < len(names)]
            else:
                hit = []
            return "partition", [("net",)], [], lanes(hit)
        case F.Heal():
            return "heal", [], [("net",)], []
        case F.LinkClear():
            ix = sorted(set(idx(f.src)) | set(idx(f.dst)))
            return "link", [], [("link", i) for i in ix], []
        case F.LinkFault():
            ix = sorted(set(idx(f.src)) | set(idx(f.dst)))
            return "link", [("link", i) for i in ix], [], lanes(ix)
        case F.ClockSkew():
            ix = idx(f.node)
            if f.offset == 0.0 and f.rate == 1.0:
                return "clock", [], [("clock", i) for i in ix], []
            return "clock", [("clock", i) for i in ix], [], lanes(ix)
        case F.Kill() | F.Stop():
            ix = idx(f.node)
            return "down", [("down", i) for i in ix], [], lanes(ix)
        case F.Pause():
            ix = idx(f.node)
            return "pause", [("pause", i) for i in ix], [], lanes(ix)
        case F.Resume():
            return "pause", [], [("pause", i) for i in idx(f.node)], []
        case F.Start() | F.Restart():
            ix = idx(f.node)
            return "restart", [], [(s, i) for i in ix for s in ("down", "pause")], lanes(ix)
        case F.KillAll():
            ix = list(range(len(names)))
            return "down", [("down", i) for i in ix], [], lanes(ix)
        case F.RestartAll():
            ix = list(range(len(names)))
            return "restart", [], [(s, i) for i in ix for s in ("down", "pause")], lanes(ix)
        case F.NodeFault():  # wipe and anything instantaneous
            return "restart", [], [], lanes(idx(f.node))
    return "other", [], [], []


def fault_regions(
    faults: Sequence[tuple[float, float, str, str, Mapping[str, Any]]], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Pair FAULT events into shaded regions.

    ``faults``: ``(x, t, action, text, attrs)`` in time order; ``names``: the
    cluster's node names in index order (``n1`` in a fault is index 0). Returns
    dicts ``{text, cat, lanes, x0, x1, t0, t1, open, undo, error}``; a fault
    still in force at the end has ``open`` set (the page draws it to the end);
    an instantaneous one (restart, wipe, an undo with nothing open) has
    ``x0 == x1``.
    """
    regions: list[dict[str, Any]] = []
    holder: dict[tuple, int] = {}  # open slot -> region index
    held: dict[int, set[tuple]] = {}  # region index -> its open slots

    def release(slot: tuple, x: float, t: float, text: str) -> bool:
        k = holder.pop(slot, None)
        if k is None:
            return False
        held[k].discard(slot)
        if not held[k]:
            regions[k].update(x1=x, t1=t, open=False, undo=text)
        return True

    for x, t, action, text, attrs in faults:
        cat, opens, closes, lanes = _fault_slots(text, names)
        error = str(attrs.get("error", "")) if isinstance(attrs, Mapping) else ""
        closed = [release(slot, x, t, text) for slot in closes]
        region = {"text": text, "cat": cat, "lanes": lanes, "x0": x, "x1": x, "t0": t,
                  "t1": t, "open": False, "undo": "", "error": error, "action": action}
        if opens and not error:
            for slot in opens:  # a new fault in the same slot supersedes the old one
                release(slot, x, t, text)
            k = len(regions)
            region["open"] = True
            regions.append(region)
            held[k] = set(opens)
            for slot in opens:
                holder[slot] = k
        elif error or not any(closed):
            regions.append(region)  # instantaneous (restart, wipe, failed or unpaired)
    return regions
