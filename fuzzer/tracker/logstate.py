"""STATE events for black-box nodes, recovered from their logs by a table of regexes.

Why: a Go binary cannot call our instrumentation, but it logs its role and
term changes. A table of (regex -> STATE keys) rows, which a target.toml can
hold, turns those lines into the same STATE events an instrumented node
would send, so invariants (election safety) and HB coverage see roles and
terms of black-box targets too. Nothing here knows a target: the tables
live with the targets (e.g. ``targets.etcd.logstate.ETCD_RULES``).

Three layers, each testable alone:

- :class:`StateRule`: one row; ``regex`` with named groups, ``set`` maps a
  STATE key to a value template (``"{term}"`` substitutes group ``term``;
  plain text is a literal), ``ints`` names the keys whose value is an int.
- :class:`LogStateExtractor`: pure; ``feed(bytes)`` -> list of
  :class:`StateChange` for complete lines (a partial line waits for its end);
  member ids are translated to node names through ``aliases``; with
  ``dedupe`` only changes of a key's value are reported.
- :class:`LogTail`: incremental reader of a growing log file that survives
  the supervisor's rotation (``NAME.log`` -> ``NAME.log.1``) and truncation.

:class:`StateStamper` turns changes into ``instrumentation.protocol.Event``
STATE events. Given the mediator's :class:`fuzzer.network.events.LamportBook`,
it stamps them through :meth:`~fuzzer.network.events.LamportBook.local`: a
log-derived STATE ticks the node's Lamport clock and takes the node's next
sequence number, shared with the mediator's SEND/RECV events of that node.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzzer.errors import ConfigError
from instrumentation.protocol import STATE, Event

if TYPE_CHECKING:
    from fuzzer.network.events import LamportBook

__all__ = [
    "StateRule",
    "StateChange",
    "LogStateExtractor",
    "LogTail",
    "StateStamper",
    "LogStateWatcher",
    "alias_table",
    "rules_from_config",
]

_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_LINE = 64 * 1024  # a longer "line" is cut (a node printing binary garbage)


@dataclass(frozen=True)
class StateRule:
    """One table row: lines matching ``regex`` set the STATE keys in ``set``."""

    regex: str
    set: tuple[tuple[str, str], ...]
    ints: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.set, Mapping):
            object.__setattr__(self, "set", tuple((str(k), str(v)) for k, v in self.set.items()))
        object.__setattr__(self, "ints", tuple(self.ints))

    def compile(self, source: str = "<rules>", where: str = "logstate") -> re.Pattern:
        """The compiled regex; ConfigError naming ``where`` if a template is unusable."""
        try:
            pattern = re.compile(self.regex)
        except re.error as exc:
            raise ConfigError(
                f"bad regex {self.regex!r}: {exc}", path=source, where=where
            ) from None
        if not self.set:
            raise ConfigError("a rule must set at least one key", path=source, where=where)
        keys = {k for k, _ in self.set}
        for key, template in self.set:
            for group in _TEMPLATE.findall(template):
                if group not in pattern.groupindex:
                    raise ConfigError(
                        f"set.{key} uses {{{group}}}, which is not a named group of the regex",
                        path=source,
                        where=where,
                    )
        for key in self.ints:
            if key not in keys:
                raise ConfigError(
                    f"ints names {key!r}, which the rule does not set", path=source, where=where
                )
        return pattern


def rules_from_config(
    rows: Iterable[Mapping[str, Any]], source: str = "<config>", key: str = "logstate.rules"
) -> tuple[StateRule, ...]:
    """Build rules from config rows ``{regex, set = {k = v}, ints = [..], name}``;
    every error is a ConfigError naming ``key[i]``."""
    rules = []
    for i, row in enumerate(rows):
        where = f"{key}[{i}]"
        unknown = set(row) - {"regex", "set", "ints", "name"}
        if unknown:
            raise ConfigError(
                f"unknown field(s) {', '.join(sorted(unknown))}", path=source, where=where
            )
        if not isinstance(row.get("regex"), str) or not isinstance(row.get("set"), Mapping):
            raise ConfigError(
                "needs regex (a string) and set (a table of key = value)", path=source, where=where
            )
        rule = StateRule(
            row["regex"], row["set"], tuple(row.get("ints", ())), str(row.get("name", ""))
        )
        rule.compile(source, where)
        rules.append(rule)
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One STATE key change recovered from line ``line`` of ``node``'s log."""

    node: str
    key: str
    value: Any
    line: int
    rule: str = ""


@dataclass
class LogStateExtractor:
    """Pure core: bytes of one node's log in, STATE changes out.

    ``aliases`` maps raw values (e.g. etcd member ids in hex) to node names; the
    literal value ``self`` renders as this node's name.
    """

    rules: tuple[StateRule, ...]
    node: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    dedupe: bool = True
    source: str = "<rules>"
    _compiled: list = field(default_factory=list, init=False, repr=False)
    _buf: bytes = field(default=b"", init=False, repr=False)
    _lines: int = field(default=0, init=False, repr=False)
    _last: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = [
            (r, r.compile(self.source, f"logstate.rules[{i}]"), frozenset(r.ints))
            for i, r in enumerate(self.rules)
        ]

    @property
    def state(self) -> dict[str, Any]:
        """The latest value of every key seen so far."""
        return dict(self._last)

    def feed(self, data: bytes) -> list[StateChange]:
        """Consume log bytes; return the changes of every line completed by them."""
        buf = self._buf + data
        *lines, rest = buf.split(b"\n")
        if len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = b""
        self._buf = rest
        out: list[StateChange] = []
        for raw in lines:
            self._lines += 1
            out += self.feed_line(raw.decode("utf-8", errors="replace"), self._lines)
        return out

    def feed_line(self, text: str, line: int = 0) -> list[StateChange]:
        """The changes one line of text makes (first matching rule wins)."""
        for rule, pattern, ints in self._compiled:
            m = pattern.search(text)
            if m is None:
                continue
            groups = m.groupdict()
            out = []
            for key, template in rule.set:
                value: Any = _TEMPLATE.sub(lambda g, gs=groups: gs.get(g.group(1)) or "", template)
                value = self.node if value == "self" else self.aliases.get(value, value)
                if key in ints:
                    try:
                        value = int(value)
                    except ValueError:
                        continue
                if self.dedupe and self._last.get(key, _MISSING) == value:
                    continue
                self._last[key] = value
                out.append(StateChange(self.node, key, value, line, rule.name))
            return out
        return []


_MISSING = object()


class LogTail:
    """Reads what was appended to a log file since the last call.

    Follows the supervisor's rotation (the file renamed to ``NAME.1`` and a
    new one created): the rest of the old file is read first, then the new
    file from its start. A truncated file is read again from the start.
    """

    def __init__(self, path: Path | str, chunk: int = 1 << 20):
        self.path = Path(path)
        self.chunk = chunk
        self._f = None
        self._ino: int | None = None

    def _open(self) -> bool:
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        self._ino = os.fstat(self._f.fileno()).st_ino
        return True

    def read(self) -> bytes:
        """New bytes (possibly b""); never raises for a missing file."""
        if self._f is None and not self._open():
            return b""
        out = self._f.read()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out
        if st.st_ino != self._ino:  # rotated: finish the old file, then the new one
            self._f.close()
            if self._open():
                out += self._f.read()
        elif st.st_size < self._f.tell():  # truncated
            self._f.seek(0)
            out += self._f.read()
        return out

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class StateStamper:
    """Turns :class:`StateChange` values into STATE :class:`Event` values.

    With ``book`` (the mediator's LamportBook) each event is made by
    ``book.local``: it ticks the node's Lamport clock and takes the node's
    next sequence number, the counter the mediator's SEND/RECV events of that
    node use, so (node, seq) stays unique on the timeline and the STATE sits
    after the node's latest message event. Without a book, sequence numbers
    and Lamport times count per node from 1. Times are taken when stamped
    (log lines are read a little after they were written).
    """

    def __init__(self, book: LamportBook | None = None):
        self.book = book
        self._seq: dict[str, int] = {}

    def event(self, change: StateChange) -> Event:
        if self.book is not None:
            return self.book.local(change.node, STATE, (change.key, change.value))
        seq = self._seq[change.node] = self._seq.get(change.node, 0) + 1
        return Event(
            change.node,
            seq,
            seq,
            time.time_ns(),
            time.monotonic_ns(),
            STATE,
            (change.key, change.value),
        )

    def events(self, changes: Iterable[StateChange]) -> list[Event]:
        return [self.event(c) for c in changes]


def alias_table(aliases: Mapping[str, str]) -> dict[str, str]:
    """``aliases`` plus, for every hex id, the same id without leading zeros: logs
    print ids with ``%x`` (etcd's raft: ``8214b4874ca994c``) where a member list
    gives all 16 digits (``08214b4874ca994c``), so one member in 16 has an id whose
    log form differs from its listed form."""
    out = dict(aliases)
    for raw, name in aliases.items():
        short = raw.lower().lstrip("0") or "0"
        if short != raw and all(c in "0123456789abcdef" for c in short):
            out.setdefault(short, name)
    return out


class LogStateWatcher:
    """The thin shell: tails every node's log, returns new STATE events on ``poll()``.

    ``logs`` maps node name -> log path; ``rules`` is the target's table.
    ``book``: see :class:`StateStamper`. ``sink`` (e.g. ``Timeline.add``), when
    given, receives every event too. :meth:`run` polls every ``interval``
    seconds until cancelled (run it in the execution's TaskGroup).
    """

    def __init__(
        self,
        logs: Mapping[str, Path | str],
        rules: tuple[StateRule, ...],
        *,
        aliases: Mapping[str, str] | None = None,
        sink: Any = None,
        book: LamportBook | None = None,
        dedupe: bool = True,
    ):
        self.sink = sink
        self.stamper = StateStamper(book)
        self._tails = {n: LogTail(p) for n, p in logs.items()}
        table = alias_table(aliases or {})
        self._extractors = {n: LogStateExtractor(rules, n, table, dedupe) for n in logs}

    def set_aliases(self, aliases: Mapping[str, str]) -> None:
        """Member id -> node name, once known (e.g. from the member list)."""
        table = alias_table(aliases)
        for ex in self._extractors.values():
            ex.aliases = table

    def state(self, node: str) -> dict[str, Any]:
        return self._extractors[node].state

    def poll(self) -> list[Event]:
        out: list[Event] = []
        for node, tail in self._tails.items():
            data = tail.read()
            if data:
                out += self.stamper.events(self._extractors[node].feed(data))
        if self.sink is not None:
            for ev in out:
                self.sink(ev)
        return out

    async def run(self, interval: float = 0.1) -> None:
        while True:
            self.poll()
            await asyncio.sleep(interval)

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()
