"""etcd's table of log regexes for log-derived STATE events (ETCD_RULES).

The machinery is generic and lives in :mod:`fuzzer.tracker.logstate`
(StateRule, StateChange, LogStateExtractor, LogTail, StateStamper,
LogStateWatcher, rules_from_config); it is re-exported here so existing
imports keep working. :class:`LogStateWatcher` here is the generic one with
:data:`ETCD_RULES` as its default table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzzer.tracker import logstate as _generic
from fuzzer.tracker.logstate import (
    _MISSING,  # noqa: F401  (old private names)
    _TEMPLATE,  # noqa: F401
    MAX_LINE,
    LogStateExtractor,
    LogTail,
    StateChange,
    StateRule,
    StateStamper,
    rules_from_config,
)

if TYPE_CHECKING:
    from fuzzer.network.events import LamportBook

__all__ = [
    "StateRule",
    "StateChange",
    "LogStateExtractor",
    "LogTail",
    "StateStamper",
    "LogStateWatcher",
    "ETCD_RULES",
    "MAX_LINE",
    "rules_from_config",
]

# etcd 3.4 (raft package; the same text in capnslog and zap JSON output). The term
# is set before the role (the invariants' convention: a new leader's role event
# sees its new term). E.g.
#   raft2026/11/29 11:39:45 INFO: b8a14a5b8669518e became leader at term 2
#   {"level":"info",...,"msg":"raft.node: 5a32... elected leader b8a1... at term 2"}
_ID = r"[0-9a-f]{1,16}"
ETCD_RULES: tuple[StateRule, ...] = (
    StateRule(rf"\b{_ID} became leader at term (?P<term>\d+)",
              (("term", "{term}"), ("role", "leader"), ("leader", "self")), ("term",),
              "became-leader"),
    StateRule(rf"\b{_ID} became follower at term (?P<term>\d+)",
              (("term", "{term}"), ("role", "follower")), ("term",), "became-follower"),
    StateRule(rf"\b{_ID} became candidate at term (?P<term>\d+)",
              (("term", "{term}"), ("role", "candidate")), ("term",), "became-candidate"),
    StateRule(rf"\b{_ID} became pre-candidate at term (?P<term>\d+)",
              (("term", "{term}"), ("role", "pre-candidate")), ("term",), "became-pre-candidate"),
    StateRule(rf"\b{_ID} elected leader (?P<leader>{_ID}) at term (?P<term>\d+)",
              (("term", "{term}"), ("leader", "{leader}")), ("term",), "elected-leader"),
    StateRule(rf"\b{_ID} lost leader (?P<leader>{_ID}) at term (?P<term>\d+)",
              (("term", "{term}"), ("leader", "none")), ("term",), "lost-leader"),
)


class LogStateWatcher(_generic.LogStateWatcher):
    """:class:`fuzzer.tracker.logstate.LogStateWatcher` with etcd's rules by default."""

    def __init__(self, logs: Mapping[str, Path | str], rules: tuple[StateRule, ...] = ETCD_RULES,
                 *, aliases: Mapping[str, str] | None = None, sink: Any = None,
                 book: LamportBook | None = None, dedupe: bool = True):
        super().__init__(logs, rules, aliases=aliases, sink=sink, book=book, dedupe=dedupe)
