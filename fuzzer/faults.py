"""The fault vocabulary and the Schedule (docs/faults.md).

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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fuzzer.errors import InputError

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

SCHEDULE_VERSION = 1
ROLES = ("leader", "follower", "minority", "random", "all")
SHAPES = ("isolate", "majority-minority", "halves", "ring", "bridge", "one-way", "groups")


class _Bad(ValueError):
    """A malformed token; turned into InputError with file and line by the parser."""


# --------------------------------------------------------------------------- numbers

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DUR_RE = re.compile(rf"^([+-]?)({_NUM})(s|ms|us)$")
_UNITS = {"s": 1.0, "ms": 1000.0, "us": 1_000_000.0}


def _num_text(x: float) -> str:
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def parse_duration(tok: str, signed: bool = False) -> float:
    """``2.5s``, ``50ms``, ``200us`` (with ``signed``, also ``+1s``/``-1s``) -> seconds."""
    m = _DUR_RE.match(tok)
    if m is None or (m.group(1) and not signed):
        want = "a signed duration like +1.5s or -200ms" if signed else "a duration like 2.5s"
        raise _Bad(f"expected {want}, got {tok!r}")
    v = float(m.group(2)) / _UNITS[m.group(3)]
    if not math.isfinite(v):
        raise _Bad(f"duration {tok!r} is not finite")
    return -v if m.group(1) == "-" else v


def format_duration(v: float, signed: bool = False) -> str:
    """The shortest of s/ms/us text forms that parses back to exactly ``v``."""
    neg = math.copysign(1.0, v) < 0
    a = abs(v)
    best = _num_text(a) + "s"
    for unit in ("ms", "us"):
        x = a * _UNITS[unit]
        if math.isfinite(x):
            cand = _num_text(x) + unit
            if len(cand) < len(best) and parse_duration(cand) == a:
                best = cand
    if signed:
        return ("-" if neg else "+") + best
    return best


def _parse_prob(tok: str) -> float:
    try:
        p = float(tok[:-1]) / 100.0 if tok.endswith("%") else float(tok)
    except ValueError:
        raise _Bad(f"expected a probability like 30% or 0.3, got {tok!r}") from None
    if not 0.0 <= p <= 1.0:
        raise _Bad(f"probability {tok!r} is outside 0%..100%")
    return p


def _fmt_prob(p: float) -> str:
    cand = _num_text(p * 100.0) + "%"
    if _parse_prob(cand) == p:
        return cand
    return repr(p)


def _check_duration(name: str, v: float, signed: bool = False) -> None:
    if not isinstance(v, int | float) or not math.isfinite(v) or (v < 0 and not signed):
        raise ValueError(f"{name} must be a finite number{'' if signed else ' >= 0'}, not {v!r}")


def _check_prob(name: str, p: float) -> None:
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], not {p!r}")


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
    """Base of the faults aimed at nodes (kill, pause, ...)."""

    node: NodeRef = NodeRef(role="random")

    def __post_init__(self) -> None:
        _coerce(self, "node")

    def refs(self) -> tuple[NodeRef, ...]:
        return (self.node,)

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

    def undo(self) -> Fault:
        return Start(self.node)


@dataclass(frozen=True, slots=True)
class Stop(NodeFault):
    """Graceful stop: SIGTERM, then SIGKILL after a grace period."""

    verb: ClassVar[str] = "stop"

    def undo(self) -> Fault:
        return Start(self.node)


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

    def undo(self) -> Fault:
        return Resume(self.node)


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


def _parse_tokens(tokens: list[str]) -> Fault:
    cls = FAULT_TYPES.get(tokens[0])
    if cls is None:
        raise _Bad(f"unknown fault {tokens[0]!r} (expected one of: {', '.join(FAULT_TYPES)})")
    try:
        return cls._parse(tokens[1:])
    except ValueError as exc:  # _Bad is a ValueError too; validation errors of the values
        raise _Bad(str(exc)) from None


def parse_fault(text: str, path: str = "<fault>") -> Fault:
    """One fault from its text form (no duration), e.g. ``kill leader``."""
    tokens = text.split()
    if not tokens:
        raise InputError("expected a fault, got an empty string", path=path)
    try:
        return _parse_tokens(tokens)
    except _Bad as exc:
        raise InputError(str(exc), path=path) from None


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Step:
    """A fault applied at the start of the step, then ``duration`` seconds of running."""

    fault: Fault
    duration: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.fault, Fault):
            raise ValueError(f"a step needs a Fault, not {self.fault!r}")
        _check_duration("step duration", self.duration)

    def to_text(self) -> str:
        return f"{self.fault.to_text()} {format_duration(self.duration)}"

    def __str__(self) -> str:
        return self.to_text()


def _parse_step_tokens(tokens: list[str]) -> Step:
    if len(tokens) < 2:
        raise _Bad(
            f"expected '<fault> [args] <duration>', e.g. 'kill leader 1s', got {' '.join(tokens)!r}"
        )
    try:
        duration = parse_duration(tokens[-1])
    except _Bad:
        raise _Bad(f"expected the step duration (like 2.5s) last, got {tokens[-1]!r}") from None
    return Step(_parse_tokens(tokens[:-1]), duration)


def parse_step(text: str, path: str = "<step>") -> Step:
    """One step from its text form, e.g. ``partition majority-minority 2.5s``."""
    try:
        return _parse_step_tokens(text.split("#", 1)[0].split())
    except _Bad as exc:
        raise InputError(str(exc), path=path) from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Steps in order plus the seed that drew everything not in the steps."""

    steps: tuple[Step, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if type(self.seed) is not int or not 0 <= self.seed < 2**64:
            raise ValueError(f"schedule seed must be an int in [0, 2**64), not {self.seed!r}")
        for s in self.steps:
            if not isinstance(s, Step):
                raise ValueError(f"schedule steps must be Steps, not {s!r}")

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.steps)

    # -- text -------------------------------------------------------------

    def to_text(self) -> str:
        lines = [f"# hbfuzz schedule v{SCHEDULE_VERSION}", f"seed {self.seed}"]
        lines += [s.to_text() for s in self.steps]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_text(cls, text: str, path: str = "<schedule>") -> Schedule:
        """Parse the text form; :class:`InputError` names ``path`` and the line."""
        steps: list[Step] = []
        seed: int | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            tokens = raw.split("#", 1)[0].split()
            if not tokens:
                continue
            try:
                if tokens[0] == "seed":
                    if len(tokens) != 2 or not tokens[1].isdigit():
                        raise _Bad("expected 'seed <non-negative integer>'")
                    if seed is not None:
                        raise _Bad("the seed is given twice")
                    seed = int(tokens[1])
                    if seed >= 2**64:
                        raise _Bad("the seed must be below 2**64")
                    continue
                steps.append(_parse_step_tokens(tokens))
            except _Bad as exc:
                raise InputError(str(exc), path=path, where=f"line {lineno}") from None
        return cls(tuple(steps), seed or 0)

    # -- msgpack ----------------------------------------------------------

    def to_msgpack(self) -> bytes:
        import msgpack

        return msgpack.packb(
            {
                "format": "hbfuzz-schedule",
                "v": SCHEDULE_VERSION,
                "seed": self.seed,
                "steps": [[s.fault.to_text(), float(s.duration)] for s in self.steps],
            },
            use_bin_type=True,
        )

    @classmethod
    def from_msgpack(cls, data: bytes, path: str = "<schedule>") -> Schedule:
        import msgpack

        try:
            obj = msgpack.unpackb(data, raw=False)
        except Exception as exc:
            raise InputError(f"not a msgpack schedule ({exc})", path=path) from None
        if not isinstance(obj, dict) or obj.get("format") != "hbfuzz-schedule":
            raise InputError("not an hbfuzz schedule (missing format marker)", path=path)
        if obj.get("v") != SCHEDULE_VERSION:
            raise InputError(
                f"schedule format version {obj.get('v')!r} is not supported "
                f"(expected {SCHEDULE_VERSION})",
                path=path,
            )
        steps = []
        for i, item in enumerate(obj.get("steps", [])):
            try:
                text, duration = item
                if not isinstance(text, str) or not isinstance(duration, int | float):
                    raise _Bad("a step is [fault text, duration seconds]")
                steps.append(Step(_parse_tokens(text.split()), float(duration)))
            except (_Bad, ValueError, TypeError) as exc:
                raise InputError(str(exc), path=path, where=f"step {i}") from None
        try:
            return cls(tuple(steps), obj.get("seed", 0))
        except ValueError as exc:
            raise InputError(str(exc), path=path, where="seed") from None

    # -- files ------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        """Read a schedule file: msgpack if it ends in .msgpack, else the text form."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read schedule ({exc.strerror})", path=str(p)) from None
        if p.suffix == ".msgpack":
            return cls.from_msgpack(data, str(p))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", path=str(p)) from None
        return cls.parse_text(text, str(p))

    def save(self, path: str | Path) -> None:
        p = Path(path)
        if p.suffix == ".msgpack":
            p.write_bytes(self.to_msgpack())
        else:
            p.write_text(self.to_text(), encoding="utf-8")
