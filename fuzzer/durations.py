"""Durations and probabilities in the text forms of faults, schedules and configs.

Why a module of its own: the fault vocabulary (faults.py), the schedule
(schedule.py) and the config loader all read and write ``2.5s`` / ``50ms`` /
``30%``, and must agree exactly: :func:`format_duration` gives the shortest
text that parses back to the same float, so text forms round-trip.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "TokenError",
    "check_duration",
    "check_prob",
    "format_duration",
    "format_prob",
    "num_text",
    "parse_duration",
    "parse_prob",
]


class TokenError(ValueError):
    """A malformed token; turned into InputError with file and line by the parsers."""


_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DUR_RE = re.compile(rf"^([+-]?)({_NUM})(s|ms|us)$")
_UNITS = {"s": 1.0, "ms": 1000.0, "us": 1_000_000.0}


def num_text(x: float) -> str:
    """``3`` for 3.0, else the repr: the shortest exact text of a number."""
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def parse_duration(tok: str, signed: bool = False) -> float:
    """``2.5s``, ``50ms``, ``200us`` (with ``signed``, also ``+1s``/``-1s``) -> seconds."""
    m = _DUR_RE.match(tok)
    if m is None or (m.group(1) and not signed):
        want = "a signed duration like +1.5s or -200ms" if signed else "a duration like 2.5s"
        raise TokenError(f"expected {want}, got {tok!r}")
    v = float(m.group(2)) / _UNITS[m.group(3)]
    if not math.isfinite(v):
        raise TokenError(f"duration {tok!r} is not finite")
    return -v if m.group(1) == "-" else v


def format_duration(v: float, signed: bool = False) -> str:
    """The shortest of s/ms/us text forms that parses back to exactly ``v``."""
    neg = math.copysign(1.0, v) < 0
    a = abs(v)
    best = num_text(a) + "s"
    for unit in ("ms", "us"):
        x = a * _UNITS[unit]
        if math.isfinite(x):
            cand = num_text(x) + unit
            if len(cand) < len(best) and parse_duration(cand) == a:
                best = cand
    if signed:
        return ("-" if neg else "+") + best
    return best


def parse_prob(tok: str) -> float:
    try:
        p = float(tok[:-1]) / 100.0 if tok.endswith("%") else float(tok)
    except ValueError:
        raise TokenError(f"expected a probability like 30% or 0.3, got {tok!r}") from None
    if not 0.0 <= p <= 1.0:
        raise TokenError(f"probability {tok!r} is outside 0%..100%")
    return p


def format_prob(p: float) -> str:
    cand = num_text(p * 100.0) + "%"
    if parse_prob(cand) == p:
        return cand
    return repr(p)


def check_duration(name: str, v: float, signed: bool = False) -> None:
    if not isinstance(v, int | float) or not math.isfinite(v) or (v < 0 and not signed):
        raise ValueError(f"{name} must be a finite number{'' if signed else ' >= 0'}, not {v!r}")


def check_prob(name: str, p: float) -> None:
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], not {p!r}")
