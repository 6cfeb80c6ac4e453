"""A small TOML writer for hbfuzz's own files (the campaign's ``campaign.toml`` snapshot).

Why hand-written: the standard library reads TOML (tomllib) but does not
write it, and our snapshots only hold tables, strings, numbers, booleans,
arrays and inline tables, which take a few dozen lines to write correctly
(``tomllib.loads(dumps(d)) == d``, property-tested). ``None`` values are left
out (TOML has no null).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _str(v: str) -> str:
    # JSON escapes are TOML escapes, except that TOML also forbids a raw DEL
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _str(k)  # not match: "$" accepts a trailing \n


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_scalar(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text for a dict of tables, scalars, lists and inline tables
    (``tomllib.loads(dumps(d)) == d`` for such dicts; None values are left out)."""
    lines: list[str] = []
    _table(data, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(data: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    subs = []
    body = []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, Mapping) and (v or not path):
            subs.append((k, v))
        else:
            body.append(f"{_key(str(k))} = {_scalar(v)}")
    if path and (body or not subs):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    lines.extend(body)
    for k, v in subs:
        _table(v, (*path, str(k)), lines)
