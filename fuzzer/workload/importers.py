"""Read histories written by other tools: Jepsen log lines and EDN op maps.

Public API::

    load_history(path, fmt) -> History        # fmt in FORMATS
    parse_jepsen_log(text, source=None) -> History
    parse_edn_history(text, source=None) -> History
    read_edn(text) -> value                   # a small EDN reader (no eval)

Jepsen log lines look like ``INFO  jepsen.util - 3<TAB>:ok<TAB>:cas<TAB>[1 2]``
(tabs or spaces). Lines without a ``jepsen.util - PROCESS :TYPE`` shape (setup,
nemesis) are ignored; a line with that shape that cannot be read is an
:class:`~fuzzer.errors.InputError` naming file and line. A completion value
``:timed-out`` (or any keyword on an ``info``) carries no information and is
stored as None.

EDN histories hold one map per line (or a vector of maps), with keys
``:process :type :f :value`` and optionally ``:key :time :index``. Keywords
become plain strings for ``:type``/``:f``; vectors become tuples.

Pairing problems (a completion without invocation, ...) are reported by
:meth:`History.operations`, with the line number kept on each op.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fuzzer.errors import InputError, UsageError
from fuzzer.workload.history import OP_TYPES, History, Op, input_error, load

__all__ = [
    "FORMATS",
    "Keyword",
    "EdnError",
    "read_edn",
    "parse_jepsen_log",
    "parse_edn_history",
    "load_history",
]

FORMATS: tuple[str, ...] = ("jepsen-log", "edn", "hbfuzz")


class Keyword(str):
    """An EDN keyword (``:foo`` -> ``Keyword("foo")``); a str, so it compares by name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return ":" + str(self)


class EdnError(ValueError):
    """Text that is not the EDN subset we read."""


_WS = " \t\r\n,"
_DELIM = _WS + '()[]{}";'
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/"}
MAX_DEPTH = 200  # nested collections accepted by the EDN reader (deeper is an error)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?")


class _Reader:
    """Recursive-descent reader for nil/true/false, numbers, strings, keywords,
    symbols (as strings), vectors, lists, maps and sets. No tags beyond ``#{``."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.depth = 0  # nesting of read() calls, bounded by MAX_DEPTH

    def skip(self) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in _WS:
                self.i += 1
            elif c == ";":
                while self.i < n and s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def at_end(self) -> bool:
        self.skip()
        return self.i >= len(self.s)

    def read(self) -> Any:
        """One form; nesting past :data:`MAX_DEPTH` is an EdnError, not a RecursionError."""
        if self.depth >= MAX_DEPTH:
            raise EdnError(f"forms nested deeper than {MAX_DEPTH} at offset {self.i}")
        self.depth += 1
        try:
            return self._read()
        finally:
            self.depth -= 1

    def _read(self) -> Any:
        self.skip()
        s = self.s
        if self.i >= len(s):
            raise EdnError("unexpected end of input")
        c = s[self.i]
        if c == "[" or c == "(":
            self.i += 1
            return tuple(self._seq("]" if c == "[" else ")"))
        if c == "{":
            self.i += 1
            items = self._seq("}")
            if len(items) % 2:
                raise EdnError("map with an odd number of forms")
            try:
                return {items[k]: items[k + 1] for k in range(0, len(items), 2)}
            except TypeError:
                raise EdnError("unhashable map key") from None
        if c == "#":
            if s.startswith("#{", self.i):
                self.i += 2
                try:
                    return frozenset(self._seq("}"))
                except TypeError:
                    raise EdnError("unhashable set element") from None
            if s.startswith("#_", self.i):
                self.i += 2
                self.read()
                return self.read()
            raise EdnError(f"unsupported tag at offset {self.i}")
        if c == '"':
            return self._string()
        if c in ")]}":
            raise EdnError(f"unexpected {c!r} at offset {self.i}")
        start = self.i
        while self.i < len(s) and s[self.i] not in _DELIM:
            self.i += 1
        return self._atom(s[start : self.i])

    def _seq(self, close: str) -> list[Any]:
        items = []
        while True:
            self.skip()
            if self.i >= len(self.s):
                raise EdnError(f"missing {close!r}")
            if self.s[self.i] == close:
                self.i += 1
                return items
            items.append(self.read())

    def _string(self) -> str:
        s = self.s
        self.i += 1
        out = []
        while True:
            j = self.i
            while j < len(s) and s[j] != '"' and s[j] != "\\":
                j += 1
            out.append(s[self.i : j])
            if j >= len(s):
                raise EdnError("unterminated string")
            if s[j] == '"':
                self.i = j + 1
                return "".join(out)
            if j + 1 >= len(s):
                raise EdnError("unterminated string")
            esc = s[j + 1]
            if esc == "u":
                code = s[j + 2 : j + 6]
                if not re.fullmatch(r"[0-9a-fA-F]{4}", code):
                    raise EdnError("bad \\u escape")
                out.append(chr(int(code, 16)))
                self.i = j + 6
            elif esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                self.i = j + 2
            else:
                raise EdnError(f"bad escape \\{esc}")

    @staticmethod
    def _atom(tok: str) -> Any:
        if tok == "nil":
            return None
        if tok == "true":
            return True
        if tok == "false":
            return False
        if tok.startswith(":"):
            if len(tok) == 1:
                raise EdnError("empty keyword")
            return Keyword(tok[1:])
        if _INT.fullmatch(tok):
            try:
                return int(tok.rstrip("N"))
            except ValueError:  # past Python's int digit limit (4300)
                raise EdnError(f"integer of {len(tok)} digits is too long") from None
        if _FLOAT.fullmatch(tok):
            return float(tok.rstrip("M"))
        if tok.startswith("\\"):
            return tok[1:]  # a character
        if tok[0].isdigit():
            raise EdnError(f"bad number {tok!r}")
        return tok  # a symbol, kept as its name


def read_edn(text: str) -> Any:
    """Read exactly one EDN form from ``text``."""
    r = _Reader(text)
    value = r.read()
    if not r.at_end():
        raise EdnError(f"trailing text at offset {r.i}")
    return value


def read_edn_all(text: str) -> list[Any]:
    """Read every EDN form in ``text``."""
    r = _Reader(text)
    forms = []
    while not r.at_end():
        forms.append(r.read())
    return forms


# --- Jepsen log lines ---------------------------------------------------------

_LOG_LINE = re.compile(
    r"jepsen\.util\s+-\s+(?P<process>\S+)\s+:(?P<type>invoke|ok|fail|info)(?=\s|$)(?P<rest>.*)$"
)
_F_AND_VALUE = re.compile(r"\s+:(?P<f>[^\s\[\]{}()\"]+)(?P<value>.*)$")


def _process_id(token: str) -> int | str | None:
    """An int process, or None for the nemesis (its lines are not client ops)."""
    if token in (":nemesis", "nemesis"):
        return None
    try:
        return int(token)
    except ValueError:
        raise EdnError(f"bad process {token!r}") from None


def _plain(value: Any) -> Any:
    """Keywords as values carry no information for the checkers (``:timed-out``)."""
    return None if isinstance(value, Keyword) else value


def parse_jepsen_log(text: str, source: str | None = None) -> History:
    """A History from Jepsen ``jepsen.util`` log lines; other lines are ignored."""
    ops: list[Op] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _LOG_LINE.search(line)
        if m is None:
            continue
        try:
            process = _process_id(m.group("process"))
            if process is None:
                continue
            fv = _F_AND_VALUE.match(m.group("rest"))
            if fv is None:
                raise EdnError("missing :f")
            raw = fv.group("value").strip()
            value = _plain(read_edn(raw)) if raw else None
        except EdnError as exc:
            raise input_error(
                f"malformed Jepsen log line: {exc}", source, f"line {lineno}"
            ) from None
        ops.append(
            Op(
                process=process,
                type=m.group("type"),
                f=fv.group("f"),
                value=value,
                time=lineno,
                line=lineno,
            )
        )
    if not ops and text.strip():
        raise InputError(
            "no Jepsen history lines (jepsen.util - PROCESS :TYPE :F VALUE) found", path=source
        )
    return History(tuple(ops), source=source)


# --- EDN op maps ---------------------------------------------------------------


def _op_from_map(form: Any, lineno: int, source: str | None) -> Op | None:
    def bad(msg: str) -> InputError:
        return input_error(f"malformed EDN op: {msg}", source, f"line {lineno}")

    if not isinstance(form, dict):
        raise bad(f"expected a map, got {type(form).__name__}")
    for k in ("process", "type", "f"):
        if Keyword(k) not in form:
            raise bad(f"missing :{k}")
    process = form[Keyword("process")]
    if isinstance(process, Keyword) and process == "nemesis":
        return None
    if not isinstance(process, int) or isinstance(process, bool):
        raise bad(f":process must be an integer, got {process!r}")
    type_ = form[Keyword("type")]
    if not isinstance(type_, str) or str(type_) not in OP_TYPES:
        raise bad(f":type must be one of {', '.join(':' + t for t in OP_TYPES)}, got {type_!r}")
    f = form[Keyword("f")]
    if not isinstance(f, str):
        raise bad(f":f must be a keyword, got {f!r}")
    value = form.get(Keyword("value"))
    if type_ != "ok":
        value = _plain(value)
    t = form.get(Keyword("time"), lineno)
    if not isinstance(t, int):
        raise bad(f":time must be an integer, got {t!r}")
    return Op(
        process=process,
        type=str(type_),
        f=str(f),
        value=value,
        key=form.get(Keyword("key")),
        time=t,
        line=lineno,
    )


def parse_edn_history(text: str, source: str | None = None) -> History:
    """A History from EDN op maps, one per line (a file-wide vector also works)."""
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("("):
        # One form holding every op: line numbers are those of each map's start.
        try:
            forms = read_edn(text)
        except EdnError as exc:
            raise InputError(f"malformed EDN: {exc}", path=source) from None
        ops = [_op_from_map(f, n + 1, source) for n, f in enumerate(forms)]
        return History(tuple(op for op in ops if op is not None), source=source)
    out: list[Op] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        try:
            form = read_edn(line)
        except EdnError as exc:
            raise input_error(f"malformed EDN: {exc}", source, f"line {lineno}") from None
        op = _op_from_map(form, lineno, source)
        if op is not None:
            out.append(op)
    return History(tuple(out), source=source)


def load_history(path: str | Path, fmt: str) -> History:
    """Read a history file in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown history format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    p = Path(path)
    if fmt == "hbfuzz":
        return load(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(p)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", path=str(p)) from None
    if fmt == "jepsen-log":
        return parse_jepsen_log(text, source=str(p))
    return parse_edn_history(text, source=str(p))
