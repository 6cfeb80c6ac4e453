"""The fault vocabulary (docs/faults.md); Steps and Schedules are in schedule.py.

Why a closed vocabulary of small frozen dataclasses: the scheduler picks
faults, the nemesis applies them, replay feeds them back, the minimiser
weakens or drops them and reports print them. All of that needs values that
compare, hash, serialise and print the same way everywhere. Each fault has
one readable text form (one step per line in corpus files) that parses back
to an equal value, and a msgpack form for bundles.

Nodes are named by 0-based index (written ``n1`` for index 0, the cluster's
node names) or by a role resolved at run time by the nemesis through the
target's role probe (``leader``, ``follower``, ``minority``, ``random``, ``*``
for all): a :class:`NodeRef`. A fault whose refs are all explicit is
*concrete*; the nemesis returns the concrete fault it applied, so a replay
can feed that back instead of re-resolving roles.

Each fault knows the fault that reverses it (:meth:`Fault.undo`), used for
the final heal of an execution.

Layout: durations and probabilities are parsed and printed by durations.py;
:class:`Step`, :class:`Schedule`, :func:`parse_step` and
:data:`SCHEDULE_VERSION` live in schedule.py and are re-exported here (lazily,
since schedule.py builds on this module), so ``from fuzzer.faults import
Schedule`` keeps working.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fuzzer.durations import TokenError as _Bad
from fuzzer.durations import check_duration as _check_duration
from fuzzer.durations import check_prob as _check_prob
from fuzzer.durations import format_duration, parse_duration
from fuzzer.durations import format_prob as _fmt_prob
from fuzzer.durations import num_text as _num_text
from fuzzer.durations import parse_prob as _parse_prob
from fuzzer.errors import InputError

if TYPE_CHECKING:  # re-exported lazily at run time, see __getattr__ below
    from fuzzer.schedule import SCHEDULE_VERSION, Schedule, Step, parse_step

__all__ = [
    "ROLES",
    "SHAPES",
    "NodeRef",
    "Fault",
    "NodeFault",
    "LinkFault",
    "Partition",
    "Heal",
    "Kill",
    "Restart",
    "Pause",
    "Resume",
    "Stop",
    "Start",
    "Wipe",
    "KillAll",
    "RestartAll",
    "LinkDelay",
    "LinkDrop",
    "LinkDuplicate",
    "LinkReorder",
    "LinkReset",
    "LinkClear",
    "ClockSkew",
    "Wait",
    "FAULT_TYPES",
    "Step",
    "Schedule",
    "parse_fault",
    "parse_step",
    "format_duration",
    "parse_duration",
    "SCHEDULE_VERSION",
]

ROLES = ("leader", "follower", "minority", "random", "all")
SHAPES = ("isolate", "majority-minority", "halves", "ring", "bridge", "one-way", "groups")


# --------------------------------------------------------------------------- node refs

_NODE_RE = re.compile(r"^n([1-9]\d*)$")


@dataclass(frozen=True, slots=True)
class NodeRef:
    """One or more nodes: explicit 0-based ``indices``, or a ``role`` resolved at run time."""

    indices: tuple[int, ...] = ()
    role: str | None = None

    def __post_init__(self) -> None:
        if (self.role is None) == (not self.indices):
            if self.role is None:
                raise ValueError("a node ref needs indices or a role")
            raise ValueError("a node ref has either indices or a role, not both")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r} (expected one of {ROLES})")
        if any(type(i) is not int or i < 0 for i in self.indices):
            raise ValueError(f"node indices must be ints >= 0, not {self.indices!r}")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError(f"node {self.indices!r} names a node twice")

    @classmethod
    def of(cls, ref: NodeRef | int | str | tuple[int, ...] | list[int]) -> NodeRef:
        """Coerce: an index (0-based), a tuple of indices, or the text form."""
        if isinstance(ref, NodeRef):
            return ref
        if isinstance(ref, int):
            return cls((ref,))
        if isinstance(ref, tuple | list):
            return cls(tuple(ref))
        if isinstance(ref, str):
            return cls.parse(ref)
        raise ValueError(f"cannot make a node ref from {ref!r}")

    @classmethod
    def parse(cls, tok: str) -> NodeRef:
        if tok == "*":
            return cls(role="all")
        if tok in ROLES:
            return cls(role=tok)
        try:
            return cls(_parse_indices(tok))
        except _Bad:
            raise _Bad(
                f"expected a node (n1, n1,n3) or a role ({', '.join(ROLES[:-1])}, *), got {tok!r}"
            ) from None

    @property
    def concrete(self) -> bool:
        return self.role is None

    def to_text(self) -> str:
        if self.role is not None:
            return "*" if self.role == "all" else self.role
        return _fmt_indices(self.indices)

    def __str__(self) -> str:
        return self.to_text()


def _parse_indices(tok: str) -> tuple[int, ...]:
    out = []
    for part in tok.split(","):
        m = _NODE_RE.match(part)
        if m is None:
            raise _Bad(f"expected node names like n1,n2, got {tok!r}")
        out.append(int(m.group(1)) - 1)
    if len(set(out)) != len(out):
        raise _Bad(f"{tok!r} names a node twice")
    return tuple(out)


def _fmt_indices(indices: tuple[int, ...]) -> str:
    return ",".join(f"n{i + 1}" for i in indices)


def _link_text(src: NodeRef, dst: NodeRef) -> str:
    return f"{src.to_text()}->{dst.to_text()}"


def _parse_link(tok: str) -> tuple[NodeRef, NodeRef]:
    parts = tok.split("->")
    if len(parts) != 2:
        raise _Bad(f"expected a link like n1->n2, leader->* or *->*, got {tok!r}")
    return NodeRef.parse(parts[0]), NodeRef.parse(parts[1])


def _coerce(obj: Any, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, NodeRef.of(getattr(obj, name)))


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class Fault:
    """Base of every fault: a verb, a text form, an undo."""

    verb: ClassVar[str] = ""

    def to_text(self) -> str:
        return self.verb

    def undo(self) -> Fault | None:
        """The fault that reverses this one (for the final heal), or None."""
        return None

    def refs(self) -> tuple[NodeRef, ...]:
        """The node refs this fault names (resolved by the nemesis)."""
        return ()

    @property
    def concrete(self) -> bool:
        """True when no node is named by a role still to be resolved."""
        return all(r.concrete for r in self.refs())

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        _nargs(cls.verb, args, 0, "")
        return cls()


def _nargs(verb: str, args: list[str], n: int, usage: str) -> None:
    if len(args) != n:
        raise _Bad(f"{verb} takes {n} argument(s) before the duration: '{verb} {usage}<duration>'")


@dataclass(frozen=True, slots=True)
class Partition(Fault):
    """Cut the network into a shape. Without groups the nemesis draws them
    (isolate needs ``node``); concrete partitions carry explicit groups of
    0-based indices (ring: one group in ring order; bridge: left, bridge
    node, right; one-way: from-group, to-group)."""

    verb: ClassVar[str] = "partition"
    shape: str = "majority-minority"
    groups: tuple[tuple[int, ...], ...] = ()
    node: NodeRef | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown partition shape {self.shape!r} (expected one of {SHAPES})")
        groups = tuple(tuple(g) for g in self.groups)
        object.__setattr__(self, "groups", groups)
        if self.shape == "isolate":
            if self.node is None or groups:
                raise ValueError("partition isolate takes a node and no groups")
            _coerce(self, "node")
            return
        if self.node is not None:
            raise ValueError(f"partition {self.shape} takes groups, not a node")
        flat = [i for g in groups for i in g]
        if any(not g for g in groups) or len(set(flat)) != len(flat):
            raise ValueError("partition groups must be non-empty and disjoint")
        if any(type(i) is not int or i < 0 for i in flat):
            raise ValueError("partition groups hold node indices >= 0")
        want = {"ring": (1,), "bridge": (3,), "groups": None}.get(self.shape, (2,))
        if self.shape == "groups" and len(groups) < 2:
            raise ValueError("partition groups needs at least two groups")
        if groups and want is not None and len(groups) not in want:
            raise ValueError(f"partition {self.shape} takes {want[0]} group(s), got {len(groups)}")
        if self.shape == "ring" and groups and len(groups[0]) < 3:
            raise ValueError("partition ring needs at least 3 nodes")
        if self.shape == "bridge" and groups and len(groups[1]) != 1:
            raise ValueError("partition bridge's middle group is the one bridge node")

    def refs(self) -> tuple[NodeRef, ...]:
        return (self.node,) if self.node is not None else ()

    @property
    def concrete(self) -> bool:
        if self.shape == "isolate":
            return self.node.concrete
        return bool(self.groups)

    def to_text(self) -> str:
        if self.shape == "isolate":
            return f"partition isolate {self.node.to_text()}"
        if not self.groups:
            return f"partition {self.shape}"
        sep = "->" if self.shape == "one-way" else "|"
        return f"partition {self.shape} " + sep.join(_fmt_indices(g) for g in self.groups)

    def undo(self) -> Fault:
        return Heal()

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        if not args or args[0] not in SHAPES:
            raise _Bad(f"partition expects a shape ({', '.join(SHAPES)})")
        shape, rest = args[0], args[1:]
        if len(rest) > 1:
            raise _Bad(f"partition {shape} takes at most one argument before the duration")
        if shape == "isolate":
            if not rest:
                raise _Bad(
                    "partition isolate expects a node or role, e.g. 'partition isolate leader 2s'"
                )
            return cls(shape, node=NodeRef.parse(rest[0]))
        if not rest:
            return cls(shape)
        sep = "->" if shape == "one-way" else "|"
        try:
            return cls(shape, tuple(_parse_indices(g) for g in rest[0].split(sep)))
        except _Bad as exc:
            raise _Bad(f"partition {shape}: {exc} (groups look like n1,n2{sep}n3)") from None


@dataclass(frozen=True, slots=True)
class Heal(Fault):
    """End any partition (and link resets)."""

    verb: ClassVar[str] = "heal"


@dataclass(frozen=True, slots=True)
class NodeFault(Fault):
    """Base of the faults aimed at nodes (kill, pause, ...).

    ``undone_by``: the node fault that reverses this one on the same node
    (kill and stop: start; pause: resume), or None when nothing does.
    """

    undone_by: ClassVar[type[NodeFault] | None] = None
    node: NodeRef = NodeRef(role="random")

    def __post_init__(self) -> None:
        _coerce(self, "node")

    def refs(self) -> tuple[NodeRef, ...]:
        return (self.node,)

    def undo(self) -> Fault | None:
        return None if self.undone_by is None else self.undone_by(self.node)

    def to_text(self) -> str:
        return f"{self.verb} {self.node.to_text()}"

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        _nargs(cls.verb, args, 1, "<node> ")
        return cls(NodeRef.parse(args[0]))


@dataclass(frozen=True, slots=True)
class Start(NodeFault):
    """Start a stopped or killed node."""

    verb: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class Kill(NodeFault):
    """SIGKILL the node (crash, no shutdown)."""

    verb: ClassVar[str] = "kill"
    undone_by: ClassVar[type[NodeFault] | None] = Start


@dataclass(frozen=True, slots=True)
class Stop(NodeFault):
    """Graceful stop: SIGTERM, then SIGKILL after a grace period."""

    verb: ClassVar[str] = "stop"
    undone_by: ClassVar[type[NodeFault] | None] = Start


@dataclass(frozen=True, slots=True)
class Restart(NodeFault):
    """Stop and start again with the same data directory."""

    verb: ClassVar[str] = "restart"


@dataclass(frozen=True, slots=True)
class Resume(NodeFault):
    """SIGCONT a paused node."""

    verb: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class Pause(NodeFault):
    """SIGSTOP the node (a long GC pause)."""

    verb: ClassVar[str] = "pause"
    undone_by: ClassVar[type[NodeFault] | None] = Resume


@dataclass(frozen=True, slots=True)
class Wipe(NodeFault):
    """Restart the node with a fresh, empty data directory (data loss)."""

    verb: ClassVar[str] = "wipe"


@dataclass(frozen=True, slots=True)
class RestartAll(Fault):
    """Restart every node (whole-cluster crash recovery when after kill-all)."""

    verb: ClassVar[str] = "restart-all"


@dataclass(frozen=True, slots=True)
class KillAll(Fault):
    """SIGKILL every node at once (power loss)."""

    verb: ClassVar[str] = "kill-all"

    def undo(self) -> Fault:
        return RestartAll()


@dataclass(frozen=True, slots=True)
class LinkFault(Fault):
    """Base of the faults on directed links ``src -> dst`` (each side a NodeRef)."""

    src: NodeRef = NodeRef(role="all")
    dst: NodeRef = NodeRef(role="all")

    def __post_init__(self) -> None:
        _coerce(self, "src", "dst")

    def refs(self) -> tuple[NodeRef, ...]:
        return (self.src, self.dst)

    def undo(self) -> Fault:
        return LinkClear(self.src, self.dst)


@dataclass(frozen=True, slots=True)
class LinkDelay(LinkFault):
    """Delay every message on the links by ``delay`` +- ``jitter`` seconds."""

    verb: ClassVar[str] = "link-delay"
    delay: float = 0.05
    jitter: float = 0.0

    def __post_init__(self) -> None:
        LinkFault.__post_init__(self)
        _check_duration("delay", self.delay)
        _check_duration("jitter", self.jitter)

    def to_text(self) -> str:
        d = format_duration(self.delay)
        if self.jitter:
            d += "+-" + format_duration(self.jitter)
        return f"{self.verb} {_link_text(self.src, self.dst)} {d}"

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        _nargs(cls.verb, args, 2, "<src>-><dst> <delay>[+-<jitter>] ")
        src, dst = _parse_link(args[0])
        d, _, j = args[1].replace("±", "+-").partition("+-")
        return cls(src, dst, parse_duration(d), parse_duration(j) if j else 0.0)


@dataclass(frozen=True, slots=True)
class _LinkProbFault(LinkFault):
    p: float = 0.1

    def __post_init__(self) -> None:
        LinkFault.__post_init__(self)
        _check_prob("p", self.p)

    def to_text(self) -> str:
        return f"{self.verb} {_link_text(self.src, self.dst)} {_fmt_prob(self.p)}"

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        _nargs(cls.verb, args, 2, "<src>-><dst> <probability> ")
        src, dst = _parse_link(args[0])
        return cls(src, dst, _parse_prob(args[1]))


@dataclass(frozen=True, slots=True)
class LinkDrop(_LinkProbFault):
    """Drop each message on the links with probability ``p``."""

    verb: ClassVar[str] = "link-drop"


@dataclass(frozen=True, slots=True)
class LinkDuplicate(_LinkProbFault):
    """Deliver each message twice with probability ``p``."""

    verb: ClassVar[str] = "link-duplicate"


@dataclass(frozen=True, slots=True)
class LinkReorder(_LinkProbFault):
    """Hold each message back (overtaken by the next) with probability ``p``."""

    verb: ClassVar[str] = "link-reorder"


@dataclass(frozen=True, slots=True)
class _LinkOnly(LinkFault):
    def to_text(self) -> str:
        return f"{self.verb} {_link_text(self.src, self.dst)}"

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        _nargs(cls.verb, args, 1, "<src>-><dst> ")
        return cls(*_parse_link(args[0]))


@dataclass(frozen=True, slots=True)
class LinkReset(_LinkOnly):
    """Close the links' TCP connections and refuse new ones until cleared or healed."""

    verb: ClassVar[str] = "link-reset"


@dataclass(frozen=True, slots=True)
class LinkClear(_LinkOnly):
    """Remove delay/drop/duplicate/reorder/reset from the links (partitions stay)."""

    verb: ClassVar[str] = "link-clear"

    def undo(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ClockSkew(Fault):
    """Shift the node's clock by ``offset`` seconds and run it at ``rate``x speed."""

    verb: ClassVar[str] = "clock-skew"
    node: NodeRef = NodeRef(role="random")
    offset: float = 0.0
    rate: float = 1.0

    def __post_init__(self) -> None:
        _coerce(self, "node")
        _check_duration("offset", self.offset, signed=True)
        if not (isinstance(self.rate, int | float) and math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"clock rate must be a finite number > 0, not {self.rate!r}")

    def refs(self) -> tuple[NodeRef, ...]:
        return (self.node,)

    def to_text(self) -> str:
        text = f"{self.verb} {self.node.to_text()} {format_duration(self.offset, signed=True)}"
        if self.rate != 1.0:
            text += f" x{_num_text(self.rate)}"
        return text

    def undo(self) -> Fault | None:
        if self.offset == 0.0 and self.rate == 1.0:
            return None
        return ClockSkew(self.node, 0.0, 1.0)

    @classmethod
    def _parse(cls, args: list[str]) -> Fault:
        if len(args) not in (2, 3):
            raise _Bad("expected 'clock-skew <node> <+-offset> [x<rate>] <duration>'")
        rate = 1.0
        if len(args) == 3:
            if not args[2].startswith("x"):
                raise _Bad(f"expected a clock rate like x1.01, got {args[2]!r}")
            try:
                rate = float(args[2][1:])
            except ValueError:
                raise _Bad(f"expected a clock rate like x1.01, got {args[2]!r}") from None
            if not (math.isfinite(rate) and rate > 0):
                raise _Bad(f"clock rate {args[2]!r} must be > 0")
        return cls(NodeRef.parse(args[0]), parse_duration(args[1], signed=True), rate)


@dataclass(frozen=True, slots=True)
class Wait(Fault):
    """Do nothing for the step's duration (let the system run)."""

    verb: ClassVar[str] = "wait"


FAULT_TYPES: dict[str, type[Fault]] = {
    t.verb: t
    for t in (
        Partition,
        Heal,
        Kill,
        Restart,
        Pause,
        Resume,
        Stop,
        Start,
        Wipe,
        KillAll,
        RestartAll,
        LinkDelay,
        LinkDrop,
        LinkDuplicate,
        LinkReorder,
        LinkReset,
        LinkClear,
        ClockSkew,
        Wait,
    )
}


def parse_tokens(tokens: list[str]) -> Fault:
    """A fault from its whitespace-split text form (no duration); a
    :class:`~fuzzer.durations.TokenError` if malformed."""
    if not tokens:
        raise _Bad(f"expected a fault (one of: {', '.join(FAULT_TYPES)}), got nothing")
    cls = FAULT_TYPES.get(tokens[0])
    if cls is None:
        raise _Bad(f"unknown fault {tokens[0]!r} (expected one of: {', '.join(FAULT_TYPES)})")
    try:
        return cls._parse(tokens[1:])
    except ValueError as exc:  # _Bad is a ValueError too; validation errors of the values
        raise _Bad(str(exc)) from None


def parse_fault(text: str, path: str = "<fault>") -> Fault:
    """One fault from its text form (no duration), e.g. ``kill leader``."""
    if not isinstance(text, str):  # from msgpack records: untrusted
        raise InputError(f"expected a fault as text, got {type(text).__name__}", path=path)
    tokens = text.split()
    if not tokens:
        raise InputError("expected a fault, got an empty string", path=path)
    try:
        return parse_tokens(tokens)
    except _Bad as exc:
        raise InputError(str(exc), path=path) from None


_parse_tokens = parse_tokens  # the old private name

_FROM_SCHEDULE = frozenset({"SCHEDULE_VERSION", "Schedule", "Step", "parse_step"})


def __getattr__(name: str) -> Any:
    """Re-export of schedule.py's names (PEP 562: schedule.py imports this
    module, so an eager import here would be circular)."""
    if name in _FROM_SCHEDULE:
        from fuzzer import schedule

        return getattr(schedule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _FROM_SCHEDULE)
