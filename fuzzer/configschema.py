"""Reading untrusted TOML tables into typed values, and ``--set`` overrides.

Why a module of its own: every key of a target config is read the same way
(type check, range check, "unknown key, did you mean ...?", an error that
names the file and the dotted key in one line), and overrides from the
command line must be reported as ``--set KEY`` rather than as the file's
fault. :mod:`fuzzer.config` says *what* the keys are; this module says *how*
a key is read. Pure code: no I/O but :func:`parse_override`'s TOML parse.

Errors are :class:`~fuzzer.errors.ConfigError` lines such as::

    targets/x/target.toml: workload.clients: expected a positive integer, got "three"
    targets/x/target.toml: --set schedule.step: expected a duration like 2.5s, got "fast"
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuzzer.errors import ConfigError
from fuzzer.faults import parse_duration

__all__ = [
    "MISSING",
    "Context",
    "Table",
    "show",
    "parse_override",
    "apply_overrides",
    "suggest",
    "raw_message",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")


def show(value: Any) -> str:
    """A value as a config error message shows it (TOML-like: ``"three"``, ``true``)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)


def suggest(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known word, else the list of known words."""
    known = sorted(set(known))
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (known: {', '.join(known)})" if known else ""


# --------------------------------------------------------------------------- context


class Context:
    """Where values come from: the config file's name and the ``--set`` overrides.

    ``err(key, msg)`` builds the one-line error for a dotted key; a key that
    an override set (or lies under one) is reported as ``--set KEY``.
    """

    def __init__(self, source: str, overrides: Mapping[str, str] | None = None):
        self.source = source
        self.overrides: dict[str, str] = dict(overrides or {})

    def override_for(self, key: str) -> str | None:
        """The overridden key that covers ``key`` (itself or a parent), if any."""
        parts = re.sub(r"\[\d+\]", "", key).split(".")  # cluster.command[2] -> cluster.command
        for i in range(len(parts), 0, -1):
            cand = ".".join(parts[:i])
            if cand in self.overrides:
                return cand
        for cand in self.overrides:  # `--set schedul.step=1s` is at fault for key `schedul`
            if cand.startswith(key + "."):
                return cand
        return None

    def where(self, key: str) -> str:
        ov = self.override_for(key)
        return f"--set {ov}" if ov is not None else key

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.source, where=self.where(key))

    def retarget(self, exc: ConfigError) -> ConfigError:
        """An error raised by another module (naming ``exc.where``), pointed at ``--set``."""
        if exc.where is None or exc.where.startswith("--set "):
            return exc
        ov = self.override_for(exc.where)
        if ov is None:
            return exc
        return ConfigError(raw_message(exc), path=exc.path, where=f"--set {ov}")

    def rebase(self, exc: ConfigError, prefix: str) -> ConfigError:
        """An error from a helper that names keys relative to a table: add ``prefix``."""
        where = exc.where or ""
        if where.startswith(prefix) or where.startswith("--set "):
            return self.retarget(exc)
        return self.retarget(
            ConfigError(raw_message(exc), path=self.source, where=prefix + where if where
                        else prefix.rstrip("."))
        )


def raw_message(exc: ConfigError) -> str:
    """The message of a ConfigError without its ``path: where: `` prefix."""
    text = str(exc)
    head = ""
    if exc.path is not None:
        head = f"{exc.path}: "
        if exc.where is not None:
            head += f"{exc.where}: "
    return text[len(head):] if text.startswith(head) else text


# --------------------------------------------------------------------------- tables


class Table:
    """One TOML table at a dotted ``prefix``, read key by key.

    Every getter marks its key as known; :meth:`done` then rejects any other
    key with a did-you-mean suggestion. Getters return Python values already
    checked (types, ranges, durations in seconds).
    """

    def __init__(self, ctx: Context, data: Any, prefix: str):
        self.ctx = ctx
        self.prefix = prefix
        if data is MISSING or data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ctx.err(prefix, f"expected a table, got {show(data)}")
        self.data: Mapping[str, Any] = data
        self.known: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def err(self, name: str, message: str) -> ConfigError:
        return self.ctx.err(self.key(name), message)

    def has(self, name: str) -> bool:
        self.known.add(name)
        return name in self.data

    def raw(self, name: str, default: Any = MISSING) -> Any:
        self.known.add(name)
        value = self.data.get(name, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise self.err(name, "is required")
            return default
        return value

    def done(self, extra_known: Iterable[str] = ()) -> None:
        """Reject keys nobody read (typos): one error for the first, with a suggestion."""
        known = self.known | set(extra_known)
        for name in self.data:
            if name not in known:
                raise self.err(name, "unknown key" + suggest(name, known))

    # --- scalars ---------------------------------------------------------------------

    def str(self, name: str, default: Any = MISSING, *, choices: Sequence[str] | None = None,
            empty: bool = False) -> Any:
        value = self.raw(name, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, str):
            ov = self.ctx.overrides.get(self.key(name))
            if ov is not None and not isinstance(value, Mapping | list):
                value = ov  # `--set target.version=3` means the text "3"
            else:
                raise self.err(name, f"expected a string, got {show(value)}")
        if not value and not empty:
            raise self.err(name, "must not be empty")
        if choices is not None and value not in choices:
            raise self.err(
                name, f"expected one of {', '.join(choices)}, got {show(value)}"
                + _maybe(value, choices)
            )
        return value

    def int(self, name: str, default: Any = MISSING, *, min: int | None = 1,
            max: int | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not MISSING:
            return value
        what = {1: "a positive integer", 0: "an integer >= 0", None: "an integer"}.get(
            min, f"an integer >= {min}"
        )
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.err(name, f"expected {what}, got {show(value)}")
        if min is not None and value < min:
            raise self.err(name, f"expected {what}, got {show(value)}")
        if max is not None and value > max:
            raise self.err(name, f"expected at most {max}, got {show(value)}")
        return value

    def number(self, name: str, default: Any = MISSING, *, min: float | None = None,
               max: float | None = None, positive: bool = False) -> Any:
        value = self.raw(name, default)
        if value is default and default is not MISSING:
            return value
        return self.check_number(name, value, min=min, max=max, positive=positive)

    def check_number(self, name: str, value: Any, *, min: float | None = None,
                     max: float | None = None, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise self.err(name, f"expected a number, got {show(value)}")
        if positive and not value > 0:
            raise self.err(name, f"expected a number > 0, got {show(value)}")
        if min is not None and value < min:
            raise self.err(name, f"expected a number >= {min}, got {show(value)}")
        if max is not None and value > max:
            raise self.err(name, f"expected a number <= {max}, got {show(value)}")
        return float(value)

    def bool(self, name: str, default: Any = MISSING) -> Any:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.err(name, f"expected true or false, got {show(value)}")
        return value

    def duration(self, name: str, default: Any = MISSING, *, signed: bool = False,
                 positive: bool = False) -> Any:
        value = self.raw(name, default)
        if value is default and default is not MISSING:
            return value
        return self.to_duration(name, value, signed=signed, positive=positive)

    def to_duration(self, name: str, value: Any, *, signed: bool = False,
                    positive: bool = False) -> float:
        """A duration: a number of seconds or text like ``2.5s``, ``50ms``, ``200us``."""
        like = "+1.5s or -200ms" if signed else "2.5s or 50ms"
        if isinstance(value, str):
            try:
                secs = parse_duration(value.strip(), signed=signed)
            except ValueError:
                raise self.err(
                    name, f"expected a duration like {like}, got {show(value)}"
                ) from None
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
            value
        ):
            secs = float(value)
            if secs < 0 and not signed:
                raise self.err(name, f"expected a duration >= 0, got {show(value)}")
        else:
            raise self.err(name, f"expected a duration like {like}, got {show(value)}")
        if positive and not secs > 0:
            raise self.err(name, f"expected a duration > 0, got {show(value)}")
        return secs

    def str_list(self, name: str, default: Any = MISSING, *,
                 choices: Sequence[str] | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, str):  # `--set coverage.modules=pkg` means ["pkg"]
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.err(name, f"expected a list of strings, got {show(value)}")
        if choices is not None:
            for i, v in enumerate(value):
                if v not in choices:
                    raise self.err(
                        f"{name}[{i}]",
                        f"expected one of {', '.join(choices)}, got {show(v)}"
                        + _maybe(v, choices),
                    )
        return tuple(value)

    def table(self, name: str) -> Table:
        return Table(self.ctx, self.raw(name, {}), self.key(name))

    def range(self, name: str, default: Any, *, kind: str) -> Any:
        """A ``[low, high]`` pair: ``kind`` is ``duration``, ``signed``, ``prob`` or ``number``."""
        value = self.raw(name, default)
        if value is default:
            return value
        if not isinstance(value, list) or len(value) != 2:
            raise self.err(name, f"expected a [low, high] pair, got {show(value)}")
        out = []
        for i, v in enumerate(value):
            sub = f"{name}[{i}]"
            if kind == "prob":
                out.append(self.to_prob(sub, v))
            elif kind == "number":
                out.append(self.check_number(sub, v, positive=True))
            else:
                out.append(self.to_duration(sub, v, signed=kind == "signed"))
        if out[0] > out[1]:
            raise self.err(name, f"low {show(value[0])} is above high {show(value[1])}")
        return (out[0], out[1])

    def to_prob(self, name: str, value: Any) -> float:
        """A probability: a number in [0, 1] or text like ``30%``."""
        p: Any = value
        if isinstance(value, str):
            try:
                p = float(value[:-1]) / 100.0 if value.endswith("%") else float(value)
            except ValueError:
                p = None
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise self.err(name, f"expected a probability like 0.3 or \"30%\", got {show(value)}")
        return float(p)


def _maybe(value: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- overrides


def parse_override(text: str, source: str) -> tuple[str, Any]:
    """``key=value`` -> (dotted key, value). The value is a TOML value if it parses
    (``3``, ``1.5``, ``true``, ``[1, 2]``, ``"text"``), else the bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"expected KEY=VALUE, got {show(text)}", path=source, where=f"--set {key or text}"
        )
    if not _KEY_RE.match(key):
        raise ConfigError(
            "a key is dotted names of letters, digits, - and _ (like schedule.step)",
            path=source, where=f"--set {key}",
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``data`` with every override set; also key -> raw text of each override."""
    out = _deepcopy(data)
    texts: dict[str, str] = {}
    for text in overrides:
        key, value = parse_override(text, source)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"{'.'.join(parts[: i + 1])} is {show(child)}, not a table",
                    path=source, where=f"--set {key}",
                )
            node = child
        node[parts[-1]] = value
        texts[key] = text.partition("=")[2].strip()
    return out, texts


def _deepcopy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value
