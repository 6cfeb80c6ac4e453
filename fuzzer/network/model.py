"""The network model: decides the fate of every message the mediator carries.

Why a pure core: the transports (``tcp.py``, ``stdio.py``) only move bytes;
*which* message is dropped, delayed, duplicated or held back is decided here,
from link rules and a seed, with no I/O, so it can be unit-tested and replayed.

Why fates are keyed by ``(src, dst, per-link seq)`` and drawn from a
counter-based generator: on a real cluster messages of different links arrive
in a different interleaving on every run. The randomness for message ``k`` on
link ``a->b`` is ``mix(link_key(seed, a, b), k)`` (splitmix64), so its fate
depends only on the seed, the link, ``k`` and the rule in force, never on
traffic elsewhere or on how many draws earlier messages needed. Every
decision is recorded (:meth:`NetworkModel.choices`); a model built with a
recorded choice map replays those fates by key, whatever the seed, and falls
back to the generator for keys the map lacks (DESIGN.md, "Choices, not only
seeds").

Rules are per *directed* link, so one-way partitions are first class. The
partition-shape helpers at the bottom turn a shape (isolate, majority/minority,
halves, ring, bridge, one-way) into a :class:`Partition`: groups plus the set
of blocked directed links.

Raw (non-framed) traffic uses the link rule directly: ``blocked`` means a
blackhole (the transport keeps the connection open, reads and discards bytes),
``reset`` means connections on the link are closed and new ones refused,
``delay`` is added to every chunk. Transports that must react at once when a
rule changes (close sockets on reset, drop held bytes) register a listener.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer.errors import InputError, NetworkError

__all__ = [
    "DELIVER",
    "DELAY",
    "DROP",
    "DUPLICATE",
    "HOLD",
    "FATE_KINDS",
    "Fate",
    "DELIVER_NOW",
    "DROPPED",
    "LinkRule",
    "CLEAN",
    "Partition",
    "NetworkModel",
    "split",
    "isolate",
    "majority_minority",
    "halves",
    "ring",
    "bridge",
    "bridge_of",
    "one_way",
    "encode_choices",
    "decode_choices",
]

DELIVER = "deliver"
DELAY = "delay"
DROP = "drop"
DUPLICATE = "duplicate"
HOLD = "hold"
FATE_KINDS = (DELIVER, DELAY, DROP, DUPLICATE, HOLD)

ChoiceKey = tuple[str, str, int]
Link = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one message.

    ``deliver``: now. ``delay``: after ``delay`` seconds. ``drop``: never.
    ``duplicate``: ``copies`` copies, the first after ``delay`` seconds, the
    others right after it. ``hold``: held back for reordering until a later
    message on the same link has been delivered, but at most ``delay`` seconds.
    """

    kind: str
    delay: float = 0.0
    copies: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FATE_KINDS:
            raise NetworkError(f"unknown message fate {self.kind!r} (expected one of {FATE_KINDS})")
        if not (self.delay >= 0.0 and math.isfinite(self.delay)):
            raise NetworkError(f"fate delay must be a finite number >= 0, not {self.delay!r}")
        if self.copies < 1:
            raise NetworkError(f"fate copies must be >= 1, not {self.copies}")


DELIVER_NOW = Fate(DELIVER)
DROPPED = Fate(DROP)


def _probability(name: str, p: float) -> None:
    if not (0.0 <= p <= 1.0):
        raise NetworkError(f"link rule {name}={p!r} is not a probability in [0, 1]")


@dataclass(frozen=True, slots=True)
class LinkRule:
    """The behaviour of one directed link ``src -> dst``.

    ``blocked``: partition / blackhole (every message dropped, raw bytes
    discarded, connections kept open). ``reset``: connections closed and
    refused. ``delay`` +- ``jitter`` seconds on every delivered message.
    ``drop``, ``duplicate``, ``reorder``: per-message probabilities.
    ``hold_max``: how long a message held for reordering waits at most.
    """

    blocked: bool = False
    reset: bool = False
    delay: float = 0.0
    jitter: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    hold_max: float = 0.1

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "hold_max"):
            v = getattr(self, name)
            if not (v >= 0.0 and math.isfinite(v)):
                raise NetworkError(f"link rule {name}={v!r} must be a finite number >= 0")
        _probability("drop", self.drop)
        _probability("duplicate", self.duplicate)
        _probability("reorder", self.reorder)

    @property
    def clean(self) -> bool:
        """True when every message is delivered at once (no draw needed)."""
        return not (
            self.blocked
            or self.reset
            or self.delay
            or self.jitter
            or self.drop
            or self.duplicate
            or self.reorder
        )

    def cleared(self) -> LinkRule:
        """This rule with message faults removed but blocked/reset kept (``link-clear``)."""
        return LinkRule(blocked=self.blocked, reset=self.reset, hold_max=self.hold_max)


CLEAN = LinkRule()


@dataclass(frozen=True, slots=True)
class Partition:
    """A partition shape made concrete: the groups (for display and reports)
    and the exact set of directed links it blocks."""

    shape: str
    groups: tuple[frozenset[str], ...]
    links: frozenset[Link] = field(default_factory=frozenset)

    def blocks(self, src: str, dst: str) -> bool:
        return (src, dst) in self.links


# --------------------------------------------------------------------------- rng

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_INV16 = 1.0 / (1 << 16)


def _link_key(seed: int, src: str, dst: str) -> int:
    h = hashlib.blake2b(f"{seed}\x00{src}\x00{dst}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big")


def _mix(key: int, counter: int) -> int:
    """splitmix64 of (key + (counter + 1) * gamma): 64 random bits for one message.

    One mix per message (big-int arithmetic is the cost in Python) gives four
    16-bit uniforms: drop, duplicate, reorder, jitter. A resolution of 2**-16
    is ample for fault probabilities and jitter.
    """
    z = (key + (counter + 1) * _GAMMA) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class _LinkState:
    """Mutable per-link bookkeeping: rule, next sequence number, recorded fates."""

    __slots__ = ("key", "rule", "clean", "fates")

    def __init__(self, key: int, rule: LinkRule) -> None:
        self.key = key
        self.rule = rule
        self.clean = rule.clean
        self.fates: list[Fate] = []  # index = per-link seq


# --------------------------------------------------------------------------- model

RuleListener = Callable[[str, str, LinkRule], None]


class NetworkModel:
    """Per-directed-link rules plus the seeded, replayable fate of each message.

    ``nodes`` are the cluster's node names (partitions are expressed over
    them); clients and services may use links too, created on first use.
    ``choices`` is a recorded choice map to replay (any seed); keys it lacks
    are drawn from the generator. A replayed choice wins over the rule in
    force, so a message keeps its recorded fate even if a partition started a
    little earlier or later in the replay; :meth:`blocked_keys` tells which
    recorded drops came from a blocked link rather than from chance (a
    minimiser that removes a partition step should drop those keys).
    """

    def __init__(
        self,
        nodes: Sequence[str],
        seed: int,
        choices: Mapping[ChoiceKey, Fate] | None = None,
    ) -> None:
        self.nodes: tuple[str, ...] = tuple(nodes)
        if len(set(self.nodes)) != len(self.nodes):
            raise NetworkError(f"duplicate node names in {list(self.nodes)}")
        self.seed = seed
        self._replay: Mapping[ChoiceKey, Fate] = choices if choices else {}
        self._links: dict[Link, _LinkState] = {}
        self._blocked_keys: set[ChoiceKey] = set()
        self._listeners: list[RuleListener] = []
        self._partition: Partition | None = None
        self.replayed = 0  # decisions taken from the choice map

    # -- links and rules ----------------------------------------------------

    def _link(self, src: str, dst: str) -> _LinkState:
        st = self._links.get((src, dst))
        if st is None:
            st = self._links[(src, dst)] = _LinkState(_link_key(self.seed, src, dst), CLEAN)
        return st

    def rule(self, src: str, dst: str) -> LinkRule:
        st = self._links.get((src, dst))
        return CLEAN if st is None else st.rule

    def set_rule(self, src: str, dst: str, rule: LinkRule) -> None:
        if src == dst:
            raise NetworkError(f"a link needs two different endpoints, got {src}->{dst}")
        st = self._link(src, dst)
        if st.rule == rule:
            return
        st.rule = rule
        st.clean = rule.clean
        for fn in self._listeners:
            fn(src, dst, rule)

    def update_rule(self, src: str, dst: str, **changes: Any) -> LinkRule:
        """Replace some fields of a link's rule; returns the new rule."""
        rule = replace(self.rule(src, dst), **changes)
        self.set_rule(src, dst, rule)
        return rule

    def links(self) -> list[Link]:
        """All directed links between cluster nodes (n*(n-1) of them)."""
        return [(a, b) for a in self.nodes for b in self.nodes if a != b]

    def rules(self) -> dict[Link, LinkRule]:
        """Every link whose rule is not the clean default."""
        return {k: st.rule for k, st in self._links.items() if not st.clean}

    def add_listener(self, fn: RuleListener) -> None:
        """``fn(src, dst, new_rule)`` is called whenever a link's rule changes."""
        self._listeners.append(fn)

    def partition(self, groups: Partition | Iterable[Iterable[str]]) -> Partition:
        """Cut the network: block every link the partition blocks.

        Replaces the previous partition (links it blocked are unblocked first;
        other rule fields are kept). ``groups`` is a :class:`Partition` from
        the shape helpers, or plain groups of nodes (links between different
        groups are blocked in both directions; nodes in no group keep their
        links). Returns the partition in force.
        """
        p = groups if isinstance(groups, Partition) else split(groups)
        for (a, b), st in list(self._links.items()):
            if st.rule.blocked and (a, b) not in p.links:
                self.set_rule(a, b, replace(st.rule, blocked=False))
        for a, b in sorted(p.links):
            r = self.rule(a, b)
            if not r.blocked:
                self.set_rule(a, b, replace(r, blocked=True))
        self._partition = p
        return p

    def heal(self) -> None:
        """Unblock and un-reset every link (message faults such as delay stay)."""
        for (a, b), st in list(self._links.items()):
            if st.rule.blocked or st.rule.reset:
                self.set_rule(a, b, replace(st.rule, blocked=False, reset=False))
        self._partition = None

    def clear(self) -> None:
        """Every link back to the clean default."""
        self.heal()
        for (a, b), st in list(self._links.items()):
            if not st.clean:
                self.set_rule(a, b, CLEAN)

    @property
    def current_partition(self) -> Partition | None:
        return self._partition

    # -- decisions ----------------------------------------------------------

    def decide(self, src: str, dst: str) -> tuple[int, Fate]:
        """Assign the next sequence number on ``src->dst`` and decide its fate."""
        st = self._links.get((src, dst))
        if st is None:
            st = self._link(src, dst)
        seq = len(st.fates)
        if self._replay:
            fate = self._replay.get((src, dst, seq))
            if fate is not None:
                self.replayed += 1
                st.fates.append(fate)
                return seq, fate
        if st.clean:
            fate = DELIVER_NOW
        else:
            fate = self._draw(st, seq)
            if fate is DROPPED and (st.rule.blocked or st.rule.reset):
                self._blocked_keys.add((src, dst, seq))
        st.fates.append(fate)
        return seq, fate

    @staticmethod
    def _draw(st: _LinkState, seq: int) -> Fate:
        r = st.rule
        if r.blocked or r.reset:
            return DROPPED
        z = _mix(st.key, seq)
        if r.drop and (z & 0xFFFF) * _INV16 < r.drop:
            return DROPPED
        delay = r.delay
        if r.jitter:
            u = ((z >> 48) + 0.5) * _INV16  # centred: jitter is symmetric
            delay = max(0.0, delay + r.jitter * (2.0 * u - 1.0))
        if r.duplicate and ((z >> 16) & 0xFFFF) * _INV16 < r.duplicate:
            return Fate(DUPLICATE, delay, 2)
        if r.reorder and ((z >> 32) & 0xFFFF) * _INV16 < r.reorder:
            return Fate(HOLD, max(delay, r.hold_max))
        if delay > 0.0:
            return Fate(DELAY, delay)
        return DELIVER_NOW

    def fate(self, src: str, dst: str, seq: int) -> Fate | None:
        """The recorded fate of message ``seq`` on ``src->dst`` (None if not decided yet)."""
        st = self._links.get((src, dst))
        if st is None or seq >= len(st.fates):
            return None
        return st.fates[seq]

    def decided(self, src: str, dst: str) -> int:
        """How many messages have been decided on ``src->dst``."""
        st = self._links.get((src, dst))
        return 0 if st is None else len(st.fates)

    def choices(self) -> dict[ChoiceKey, Fate]:
        """Every decision so far, keyed by ``(src, dst, per-link seq)``."""
        out: dict[ChoiceKey, Fate] = {}
        for (a, b), st in self._links.items():
            for i, f in enumerate(st.fates):
                out[(a, b, i)] = f
        return out

    def blocked_keys(self) -> frozenset[ChoiceKey]:
        """Keys dropped because their link was blocked or reset (not by chance)."""
        return frozenset(self._blocked_keys)


# --------------------------------------------------------------------------- choice files

CHOICES_VERSION = 1
MAX_CHOICES = 1_000_000  # message fates one choice map may expand to (run-length bomb guard)


def encode_choices(choices: Mapping[ChoiceKey, Fate]) -> bytes:
    """Choices as msgpack, run-length encoded per link (most fates repeat)."""
    import msgpack

    per_link: dict[Link, list[tuple[int, Fate]]] = {}
    for (a, b, seq), f in choices.items():
        per_link.setdefault((a, b), []).append((seq, f))
    links = []
    for (a, b), items in sorted(per_link.items()):
        items.sort(key=lambda t: t[0])
        runs: list[list] = []
        for seq, f in items:
            last = runs[-1] if runs else None
            if (
                last is not None
                and last[0] + last[1] == seq
                and (last[2], last[3], last[4]) == (f.kind, f.delay, f.copies)
            ):
                last[1] += 1
            else:
                runs.append([seq, 1, f.kind, f.delay, f.copies])
        links.append([a, b, runs])
    return msgpack.packb({"v": CHOICES_VERSION, "links": links}, use_bin_type=True)


def decode_choices(data: bytes, path: str = "<choices>") -> dict[ChoiceKey, Fate]:
    """Inverse of :func:`encode_choices`; :class:`InputError` naming ``path`` if malformed."""
    import msgpack

    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise InputError(f"not a msgpack choice map ({exc})", path=path) from None
    if not isinstance(obj, dict) or obj.get("v") != CHOICES_VERSION:
        raise InputError(f"expected a choice map of version {CHOICES_VERSION}", path=path)
    out: dict[ChoiceKey, Fate] = {}
    where, total = "links", 0
    try:
        for i, (a, b, runs) in enumerate(obj["links"]):
            where = f"link {i}"
            if not (isinstance(a, str) and isinstance(b, str)):
                raise ValueError("link endpoints must be strings")
            for start, count, kind, delay, copies in runs:
                total += count if type(count) is int else 0
                if count < 1 or start < 0 or total > MAX_CHOICES:
                    raise ValueError(f"bad run {start}+{count} (at most {MAX_CHOICES} choices)")
                f = Fate(kind, float(delay), int(copies))
                for s in range(start, start + count):
                    out[(a, b, s)] = f
    except (KeyError, TypeError, ValueError, OverflowError, NetworkError) as exc:
        raise InputError(f"malformed choice map ({exc})", path=path, where=where) from None
    return out


# --------------------------------------------------------------------------- shapes


def _shuffled(nodes: Iterable[str], rng: random.Random | None) -> list[str]:
    out = list(nodes)
    if rng is not None:
        rng.shuffle(out)
    return out


def split(groups: Iterable[Iterable[str]], shape: str = "groups") -> Partition:
    """Groups that cannot reach each other: every link between two different
    groups is blocked in both directions; links inside a group stay open."""
    gs = tuple(frozenset(g) for g in groups)
    seen: set[str] = set()
    for g in gs:
        if not g:
            raise NetworkError("a partition group is empty")
        if seen & g:
            raise NetworkError(f"node(s) {sorted(seen & g)} are in two partition groups")
        seen |= g
    links = frozenset(
        (a, b) for i, g in enumerate(gs) for j, h in enumerate(gs) if i != j for a in g for b in h
    )
    return Partition(shape, gs, links)


def isolate(nodes: Sequence[str], n: str | Iterable[str]) -> Partition:
    """Cut node ``n`` (or a set of nodes) off from all others, both ways."""
    alone = {n} if isinstance(n, str) else set(n)
    missing = alone - set(nodes)
    if missing:
        raise NetworkError(f"cannot isolate unknown node(s) {sorted(missing)}")
    rest = [x for x in nodes if x not in alone]
    return split([alone, rest] if rest else [alone], "isolate")


def majority_minority(nodes: Sequence[str], rng: random.Random | None = None) -> Partition:
    """A majority (n//2 + 1 nodes) and the minority; random members with ``rng``,
    else the first nodes form the majority."""
    order = _shuffled(nodes, rng)
    k = len(order) // 2 + 1
    if k >= len(order):
        raise NetworkError(f"majority/minority needs at least 2 nodes, got {len(order)}")
    return split([order[:k], order[k:]], "majority-minority")


def halves(nodes: Sequence[str], rng: random.Random | None = None) -> Partition:
    """Two halves (the first has the extra node when n is odd)."""
    order = _shuffled(nodes, rng)
    if len(order) < 2:
        raise NetworkError(f"halves needs at least 2 nodes, got {len(order)}")
    k = (len(order) + 1) // 2
    return split([order[:k], order[k:]], "halves")


def ring(nodes: Sequence[str], rng: random.Random | None = None) -> Partition:
    """Each node reaches only its two neighbours in the ring order (given, or
    shuffled with ``rng``); every other link is blocked."""
    order = _shuffled(nodes, rng)
    n = len(order)
    if n < 3:
        raise NetworkError(f"ring needs at least 3 nodes, got {n}")
    pos = {x: i for i, x in enumerate(order)}
    links = frozenset(
        (a, b) for a in order for b in order if a != b and (pos[a] - pos[b]) % n not in (1, n - 1)
    )
    return Partition("ring", (frozenset(order),), links)


def bridge_of(left: Iterable[str], node: str, right: Iterable[str]) -> Partition:
    """``left`` and ``right`` cannot reach each other; ``node`` reaches both."""
    lg, rg = frozenset(left), frozenset(right)
    if not lg or not rg or node in lg or node in rg or (lg & rg):
        raise NetworkError("bridge needs two disjoint non-empty sides and a bridge node in neither")
    links = frozenset((a, b) for a in lg for b in rg) | frozenset((b, a) for a in lg for b in rg)
    return Partition("bridge", (lg, frozenset([node]), rg), links)


def bridge(nodes: Sequence[str], rng: random.Random | None = None) -> Partition:
    """Two halves connected only through one node (the middle one of the order)."""
    order = _shuffled(nodes, rng)
    if len(order) < 3:
        raise NetworkError(f"bridge needs at least 3 nodes, got {len(order)}")
    m = len(order) // 2
    return bridge_of(order[:m], order[m], order[m + 1 :])


def one_way(src_group: Iterable[str], dst_group: Iterable[str]) -> Partition:
    """Messages from ``src_group`` to ``dst_group`` are lost; the other way works."""
    sg, dg = frozenset(src_group), frozenset(dst_group)
    if not sg or not dg or (sg & dg):
        raise NetworkError("one-way needs two disjoint non-empty groups")
    return Partition("one-way", (sg, dg), frozenset((a, b) for a in sg for b in dg))
