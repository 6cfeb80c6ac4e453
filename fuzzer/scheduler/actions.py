"""The target's enumerated action space: concrete, parameterised faults.

Why enumerate: a tabular learner needs a fixed, finite set of actions, and a
learned table is only worth saving if column ``i`` means the same fault next
time. So the space is built from an "allowed faults + ranges" description (a
plain dict, later the ``[faults]`` table of the target config) into a tuple
of :mod:`fuzzer.faults` values in a deterministic order: verbs in the
canonical order of :data:`fuzzer.faults.FAULT_TYPES` (whatever the order of
``allowed``), and within a verb the order of the description's lists. Actions are *faults*, not
fault types: ``kill leader`` and ``kill n2`` are different actions, and so are
``link-delay *->* 20ms`` and ``link-delay *->* 200ms``.

Description keys (all optional except ``nodes``)::

    allowed     fault verbs to enumerate (default: partition, kill, restart, pause,
                link-delay, link-drop, heal, wait)
    nodes       cluster size (int >= 1)
    targets     node refs for node faults and ``partition isolate``
                (default: n1..nN, leader, follower)
    shapes      partition shapes drawn at run time (default: every shape the
                cluster size allows except isolate/groups, which come from
                ``targets`` / ``partitions``)
    partitions  extra concrete partitions in text form ("groups n1|n2,n3")
    links       link refs for link faults (default: *->*, leader->*, *->leader)
    delays      link-delay values (default: 20ms, 200ms); ``jitter`` one value (default 0)
    drops / duplicates / reorders   probabilities (default: 10%, 50%)
    skews       clock-skew offsets (default: +1s, -1s); ``skew_rate`` (default 1)
    extra       any further faults in text form, appended after the enumeration

Durations are text (``20ms``) or seconds; probabilities ``30%`` or ``0.3``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from fuzzer import faults as F
from fuzzer.errors import ConfigError, InputError

__all__ = ["ActionSpace", "DEFAULT_ALLOWED", "build_faults"]

DEFAULT_ALLOWED = (
    "partition",
    "kill",
    "restart",
    "pause",
    "link-delay",
    "link-drop",
    "heal",
    "wait",
)
_KEYS = {
    "allowed",
    "nodes",
    "targets",
    "shapes",
    "partitions",
    "links",
    "delays",
    "jitter",
    "drops",
    "duplicates",
    "reorders",
    "skews",
    "skew_rate",
    "extra",
}
_NODE_VERBS = ("kill", "restart", "pause", "resume", "stop", "start", "wipe")
_PROB_KEYS = {"link-drop": "drops", "link-duplicate": "duplicates", "link-reorder": "reorders"}
_PROB_TYPES = {
    "link-drop": F.LinkDrop,
    "link-duplicate": F.LinkDuplicate,
    "link-reorder": F.LinkReorder,
}


class _Desc:
    """Reads one description dict; every error names the source and the key."""

    def __init__(self, desc: Mapping[str, Any], path: str) -> None:
        if not isinstance(desc, Mapping):
            raise ConfigError("the fault description must be a table/dict", path=path)
        unknown = sorted(set(desc) - _KEYS)
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(_KEYS))})",
                path=path,
                where=f"faults.{unknown[0]}",
            )
        self.d, self.path = desc, path

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(msg, path=self.path, where=f"faults.{key}")

    def list(self, key: str, default: Sequence[Any]) -> list[Any]:
        v = self.d.get(key, default)
        if isinstance(v, str | bytes) or not isinstance(v, Sequence):
            raise self.err(key, f"expected a list, got {v!r}")
        return list(v)

    def nodes(self) -> int:
        n = self.d.get("nodes")
        if type(n) is not int or n < 1:
            raise self.err("nodes", f"expected the cluster size as an int >= 1, got {n!r}")
        return n

    def parse(self, key: str, fn: Any, item: Any) -> Any:
        try:
            return fn(item)
        except (ValueError, TypeError, InputError) as exc:
            msg = str(exc).removeprefix("<fault>: ")
            raise self.err(key, f"bad item {item!r}: {msg}") from None


def _duration(v: Any, signed: bool = False) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a duration")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return F.parse_duration(v, signed=signed)
    raise ValueError("expected a duration like 20ms or a number of seconds")


def _prob(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a probability")
    if isinstance(v, int | float):
        p = float(v)
    elif isinstance(v, str):
        p = float(v[:-1]) / 100.0 if v.endswith("%") else float(v)
    else:
        raise ValueError("expected a probability like 30% or 0.3")
    if not 0.0 <= p <= 1.0:
        raise ValueError("probability outside 0%..100%")
    return p


def _rate(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise ValueError("expected a clock rate > 0 like 1.01")
    return float(v)


def _ref(v: Any) -> F.NodeRef:
    if not isinstance(v, str):
        raise ValueError("expected a node ref like n1 or leader")
    return F.NodeRef.parse(v)


def _link(v: Any) -> tuple[F.NodeRef, F.NodeRef]:
    if not isinstance(v, str) or v.count("->") != 1:
        raise ValueError("expected a link like n1->n2, leader->* or *->*")
    a, b = v.split("->")
    return F.NodeRef.parse(a), F.NodeRef.parse(b)


def _fault(v: Any) -> F.Fault:
    if not isinstance(v, str):
        raise ValueError("expected a fault in text form like 'kill n1'")
    return F.parse_fault(v)


def _default_shapes(n: int) -> list[str]:
    shapes = []
    if n >= 2:
        shapes += ["majority-minority", "halves", "one-way"]
    if n >= 3:
        shapes += ["ring", "bridge"]
    return shapes


def _check_ref(d: _Desc, key: str, ref: F.NodeRef, n: int) -> None:
    if any(i >= n for i in ref.indices):
        raise d.err(key, f"{ref.to_text()!r} names a node beyond the {n}-node cluster")


def build_faults(desc: Mapping[str, Any], path: str = "<faults>") -> tuple[F.Fault, ...]:
    """Enumerate the description's faults in canonical order, without duplicates."""
    d = _Desc(desc, path)
    n = d.nodes()
    allowed = d.list("allowed", DEFAULT_ALLOWED)
    for verb in allowed:
        if verb not in F.FAULT_TYPES:
            raise d.err(
                "allowed", f"unknown fault {verb!r} (expected one of {', '.join(F.FAULT_TYPES)})"
            )
    allowed_set = set(allowed)
    targets = [
        d.parse("targets", _ref, t)
        for t in d.list("targets", [f"n{i + 1}" for i in range(n)] + ["leader", "follower"])
    ]
    for t in targets:
        _check_ref(d, "targets", t, n)
    links = [
        d.parse("links", _link, x) for x in d.list("links", ["*->*", "leader->*", "*->leader"])
    ]
    for src, dst in links:
        _check_ref(d, "links", src, n)
        _check_ref(d, "links", dst, n)
    shapes = d.list("shapes", _default_shapes(n))
    for s in shapes:
        if s not in F.SHAPES or s in ("isolate", "groups"):
            raise d.err(
                "shapes",
                f"bad shape {s!r}: expected one of {', '.join(x for x in F.SHAPES if x not in ('isolate', 'groups'))} "
                "(isolate comes from 'targets', explicit groups from 'partitions')",
            )
        if n < (3 if s in ("ring", "bridge") else 2):
            raise d.err("shapes", f"shape {s!r} needs more nodes than the {n}-node cluster has")
    partitions = [
        d.parse("partitions", lambda t: _fault("partition " + str(t)), p)
        for p in d.list("partitions", [])
    ]
    for p in partitions:
        for g in p.groups:
            if any(i >= n for i in g):
                raise d.err(
                    "partitions", f"{p.to_text()!r} names a node beyond the {n}-node cluster"
                )
    delays = [d.parse("delays", _duration, x) for x in d.list("delays", ["20ms", "200ms"])]
    jitter = d.parse("jitter", _duration, d.d.get("jitter", 0.0))
    skews = [
        d.parse("skews", lambda v: _duration(v, signed=True), x)
        for x in d.list("skews", ["+1s", "-1s"])
    ]
    skew_rate = d.parse("skew_rate", _rate, d.d.get("skew_rate", 1.0))
    extra = [d.parse("extra", _fault, x) for x in d.list("extra", [])]

    out: list[F.Fault] = []
    for verb in F.FAULT_TYPES:  # canonical order
        if verb not in allowed_set:
            continue
        cls = F.FAULT_TYPES[verb]
        if verb == "partition":
            if n >= 2:
                out += [F.Partition("isolate", node=t) for t in targets]
            out += [F.Partition(s) for s in shapes]
            out += partitions
        elif verb in _NODE_VERBS:
            out += [cls(t) for t in targets]
        elif verb == "link-delay":
            out += [F.LinkDelay(s, t, v, jitter) for s, t in links for v in delays]
        elif verb in _PROB_TYPES:
            probs = [
                d.parse(_PROB_KEYS[verb], _prob, x) for x in d.list(_PROB_KEYS[verb], [0.1, 0.5])
            ]
            out += [_PROB_TYPES[verb](s, t, p) for s, t in links for p in probs]
        elif verb in ("link-reset", "link-clear"):
            out += [cls(s, t) for s, t in links]
        elif verb == "clock-skew":
            try:
                out += [F.ClockSkew(t, o, skew_rate) for t in targets for o in skews]
            except ValueError as exc:
                raise d.err("skew_rate", str(exc)) from None
        else:  # heal, kill-all, restart-all, wait
            out.append(cls())
    out += extra
    seen: set[F.Fault] = set()
    uniq = [f for f in out if not (f in seen or seen.add(f))]
    if not uniq:
        raise d.err("allowed", "the description allows no fault at all")
    return tuple(uniq)


class ActionSpace:
    """A fixed, ordered set of faults; action ``i`` is :meth:`fault` ``(i)``."""

    def __init__(self, faults: Iterable[F.Fault], description: Mapping[str, Any] | None = None):
        self._faults = tuple(faults)
        if not self._faults:
            raise ConfigError("an action space needs at least one fault")
        for f in self._faults:
            if not isinstance(f, F.Fault):
                raise ConfigError(f"an action must be a Fault, not {f!r}")
        self._index = {f: i for i, f in enumerate(self._faults)}
        if len(self._index) != len(self._faults):
            raise ConfigError("an action space lists a fault twice")
        self.description = dict(description) if description is not None else None

    @classmethod
    def from_dict(cls, desc: Mapping[str, Any], path: str = "<faults>") -> ActionSpace:
        """Build from an "allowed faults + ranges" description (see module docstring)."""
        return cls(build_faults(desc, path), desc)

    @classmethod
    def from_texts(cls, texts: Iterable[str], path: str = "<actions>") -> ActionSpace:
        """Rebuild from the faults' text forms (as saved in a scheduler state)."""
        out = []
        for i, t in enumerate(texts):
            try:
                out.append(F.parse_fault(t, path))
            except InputError as exc:
                raise InputError(
                    str(exc).removeprefix(f"{path}: "), path=path, where=f"action {i}"
                ) from None
        return cls(out)

    def __len__(self) -> int:
        return len(self._faults)

    def __iter__(self) -> Iterator[F.Fault]:
        return iter(self._faults)

    def __contains__(self, fault: object) -> bool:
        return fault in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionSpace) and self._faults == other._faults

    def __hash__(self) -> int:
        return hash(self._faults)

    def __repr__(self) -> str:
        return f"ActionSpace({len(self)} actions, digest {self.digest()})"

    @property
    def faults(self) -> tuple[F.Fault, ...]:
        return self._faults

    def fault(self, i: int) -> F.Fault:
        """The fault of action ``i`` (numpy ints accepted)."""
        try:
            j = int(i)
        except (TypeError, ValueError):
            raise InputError(f"action {i!r} is not an integer") from None
        if not 0 <= j < len(self._faults):
            raise InputError(f"action {j} is outside the action space 0..{len(self._faults) - 1}")
        return self._faults[j]

    def find(self, fault: F.Fault) -> int | None:
        """The action index of ``fault``, or None when the space does not hold it."""
        return self._index.get(fault)

    def index(self, fault: F.Fault) -> int:
        """The action index of ``fault``; :class:`InputError` when it is not in the space."""
        i = self._index.get(fault)
        if i is None:
            text = fault.to_text() if isinstance(fault, F.Fault) else repr(fault)
            raise InputError(f"fault {text!r} is not in the action space")
        return i

    def texts(self) -> list[str]:
        """The faults' text forms, in action order (what a saved Q-table's columns mean)."""
        return [f.to_text() for f in self._faults]

    def verbs(self) -> list[str]:
        return [f.verb for f in self._faults]

    def digest(self) -> str:
        """A short stable hash of the ordered action texts."""
        return hashlib.blake2b("\n".join(self.texts()).encode(), digest_size=8).hexdigest()
