"""ClusterSpec from a parsed TOML table (the ``[cluster]`` table of target.toml).

Why separate from spec.py: type checking of untrusted config values is its
own job; spec.py checks meaning (placeholders, ranges), this checks shape
(unknown keys, wrong types), and both name the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuzzer.cluster.spec import ClusterSpec, Readiness
from fuzzer.errors import ConfigError

_SCALARS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "nodes": (int, "an integer"),
    "ports_per_node": (int, "an integer"),
    "peer_port_index": (int, "an integer"),
    "cwd": (str, "a string"),
    "stop_grace": ((int, float), "a number"),
    "log_cap": (int, "an integer"),
    "clock": (str, "a string"),
    "pipe_stdio": (bool, "true or false"),
    "name_prefix": (str, "a string"),
}
_READINESS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "kind": (str, "a string"),
    "port_index": (int, "an integer"),
    "pattern": (str, "a string"),
    "timeout": ((int, float), "a number"),
    "interval": ((int, float), "a number"),
}


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and types is not bool:
        return False  # TOML true is not an integer here
    return isinstance(value, types)


def _str_list(value: Any, err) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise err("must be a list of strings")
    return tuple(value)


def _str_table(value: Any, err) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise err("must be a table of strings")
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise err(f"value of {k!r} must be a string")
        out[str(k)] = str(v)
    return out


def spec_from_dict(data: Mapping[str, Any], source: str, prefix: str = "cluster.") -> ClusterSpec:
    """Build a ClusterSpec from a parsed TOML table (e.g. ``[cluster]`` of
    target.toml). Unknown keys and wrong types are ConfigErrors naming
    ``source`` and ``prefix + key``."""

    def err_for(key: str):
        return lambda msg: ConfigError(msg, path=source, where=prefix + key)

    if not isinstance(data, Mapping):
        raise ConfigError("must be a table", path=source, where=prefix.rstrip("."))
    kw: dict[str, Any] = {"source": source, "prefix": prefix}
    for key, value in data.items():
        err = err_for(key)
        if key in _SCALARS:
            types, what = _SCALARS[key]
            if not _is(value, types):
                raise err(f"must be {what}, got {value!r}")
            kw[key] = value
        elif key == "command":
            kw[key] = _str_list(value, err)
        elif key in ("env", "files", "vars"):
            kw[key] = _str_table(value, err)
        elif key == "readiness":
            if not isinstance(value, Mapping):
                raise err("must be a table")
            rkw: dict[str, Any] = {}
            for rk, rv in value.items():
                rerr = err_for(f"readiness.{rk}")
                if rk in _READINESS:
                    types, what = _READINESS[rk]
                    if not _is(rv, types):
                        raise rerr(f"must be {what}, got {rv!r}")
                    rkw[rk] = rv
                elif rk == "command":
                    rkw[rk] = _str_list(rv, rerr)
                else:
                    raise rerr(f"unknown key (known: {', '.join([*_READINESS, 'command'])})")
            kw[key] = Readiness(**rkw)
        else:
            known = ", ".join([*_SCALARS, "command", "env", "files", "vars", "readiness"])
            raise err(f"unknown key (known: {known})")
    for required in ("nodes", "command"):
        if required not in kw:
            raise err_for(required)("is required")
    return ClusterSpec(**kw)
