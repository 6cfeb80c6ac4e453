"""The nemesis: applies and undoes faults on a running cluster through one interface.

Why a separate object with small protocols: the scheduler, replay and the
minimiser all speak :mod:`fuzzer.faults`; something has to turn ``kill
leader`` into "SIGKILL node 2 now", remember what is still broken, and heal
it all at the end. The nemesis depends only on :class:`ProcessControl` (the
Supervisor), :class:`LinkControl` (the :class:`~fuzzer.network.model.NetworkModel`)
and a :data:`RoleProbe`, so its logic is unit-tested with a real model and a
recording process control, and the real-process behaviour is the
Supervisor's own tests.

Roles are resolved with the nemesis' seeded RNG and the probe's answer; the
concrete fault actually applied (``kill n2``) is returned, recorded as a
choice under the caller's key (``choices()``), and fed back on replay
(``Nemesis(..., choices=...)``) so a replay hits the same nodes even if
another node is leader by then. Every applied or undone fault becomes a
``FAULT`` event (action, text form, attrs) on the ``nemesis`` timeline so
reports can shade it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from fuzzer import faults as F
from fuzzer.errors import ClusterError, HbfuzzError, InputError, NetworkError
from fuzzer.network import model as net
from instrumentation.protocol import FAULT, Event

__all__ = [
    "ProcessControl",
    "LinkControl",
    "RoleProbe",
    "EventSink",
    "Nemesis",
    "resolve_ref",
    "resolve_partition",
]


class ProcessControl(Protocol):
    """What the nemesis needs from the Supervisor (0-based node indices)."""

    async def kill(self, n: int) -> None: ...
    async def stop(self, n: int) -> None: ...
    async def start(self, n: int) -> None: ...
    async def pause(self, n: int) -> None: ...
    async def resume(self, n: int) -> None: ...
    async def restart(self, n: int) -> None: ...
    async def wipe(self, n: int) -> None: ...
    async def kill_all(self) -> None: ...
    async def restart_all(self) -> None: ...
    async def set_clock(self, n: int, offset: float, rate: float = 1.0) -> None: ...


class LinkControl(Protocol):
    """What the nemesis needs from the network (the NetworkModel)."""

    def rule(self, src: str, dst: str) -> net.LinkRule: ...
    def set_rule(self, src: str, dst: str, rule: net.LinkRule) -> None: ...
    def partition(self, groups: net.Partition) -> net.Partition: ...
    def heal(self) -> None: ...


RoleProbe = Callable[[], Awaitable[Mapping[str, str]]]  # node name -> role ("leader", ...)
EventSink = Callable[[Event], None]

NEMESIS_NODE = "nemesis"


# --------------------------------------------------------------------------- resolution (pure)


def resolve_ref(
    ref: F.NodeRef, roles: Mapping[int, str], n: int, rng: random.Random
) -> tuple[tuple[int, ...], str | None]:
    """Indices a node ref stands for now, and a note when a role had no holder.

    ``roles`` maps node index -> role as the probe reported it. ``leader``:
    the leader (one at random if several claim it); ``follower``: one random
    node that is not a leader; ``minority``: a random (n-1)//2 nodes (at
    least one); ``random``: one random node; ``all``: every node. When the
    probe knows no leader (election in progress) a random node stands in and
    the note says so.
    """
    if ref.concrete:
        bad = [i for i in ref.indices if i >= n]
        if bad:
            raise InputError(
                f"fault names {F.NodeRef(tuple(bad)).to_text()} but the cluster has {n} nodes"
            )
        return ref.indices, None
    everyone = list(range(n))
    role = ref.role
    if role == "all":
        return tuple(everyone), None
    if role == "minority":
        k = max(1, (n - 1) // 2)
        return tuple(sorted(rng.sample(everyone, k))), None
    if role == "random":
        return (rng.choice(everyone),), None
    leaders = [i for i in everyone if roles.get(i) == "leader"]
    if role == "leader":
        if leaders:
            return (rng.choice(leaders),), None
        return (rng.choice(everyone),), "no leader known; random node"
    followers = [i for i in everyone if roles.get(i) == "follower"]
    if not followers:
        followers = [i for i in everyone if i not in leaders]
    if followers:
        return (rng.choice(followers),), None
    return (rng.choice(everyone),), "no follower known; random node"


def resolve_partition(p: F.Partition, n: int, rng: random.Random) -> F.Partition:
    """Draw concrete groups for a shape given without them (isolate is resolved by refs)."""
    if p.shape == "isolate" or p.groups:
        for g in p.groups:
            if any(i >= n for i in g):
                raise InputError(f"'{p.to_text()}' names a node beyond the {n}-node cluster")
        return p
    perm = rng.sample(range(n), n)
    if p.shape == "ring":
        return F.Partition("ring", (tuple(perm),))
    if p.shape == "bridge":
        m = n // 2
        return F.Partition(
            "bridge", (tuple(sorted(perm[:m])), (perm[m],), tuple(sorted(perm[m + 1 :])))
        )
    if p.shape == "one-way":
        k = max(1, (n - 1) // 2)
        return F.Partition("one-way", (tuple(sorted(perm[:k])), tuple(sorted(perm[k:]))))
    k = n // 2 + 1 if p.shape == "majority-minority" else (n + 1) // 2
    return F.Partition(p.shape, (tuple(sorted(perm[:k])), tuple(sorted(perm[k:]))))


def _net_partition(p: F.Partition, names: Sequence[str]) -> net.Partition:
    """A concrete Partition fault -> the network model's blocked-link description."""
    g = [[names[i] for i in grp] for grp in p.groups]
    if p.shape == "isolate":
        return net.isolate(names, [names[i] for i in p.node.indices])
    if p.shape == "ring":
        return net.ring(g[0])
    if p.shape == "bridge":
        return net.bridge_of(g[0], g[1][0], g[2])
    if p.shape == "one-way":
        return net.one_way(g[0], g[1])
    return net.split(g, p.shape)


# --------------------------------------------------------------------------- nemesis


class Nemesis:
    """Applies faults to a cluster, remembers what to undo, records FAULT events.

    ``nodes``: node names in index order. ``process``/``links`` may be None
    when a cluster has no such control (applying a fault that needs it then
    raises). ``rng`` (or ``seed``) draws role and shape resolutions.
    ``choices``: concrete faults recorded by an earlier run, by key, to replay.
    """

    def __init__(
        self,
        nodes: Sequence[str],
        process: ProcessControl | None = None,
        links: LinkControl | None = None,
        *,
        probe: RoleProbe | None = None,
        sink: EventSink | None = None,
        rng: random.Random | None = None,
        seed: int = 0,
        choices: Mapping[Hashable, F.Fault] | None = None,
        probe_timeout: float = 2.0,
    ) -> None:
        self.nodes = tuple(nodes)
        if not self.nodes:
            raise ClusterError("a nemesis needs at least one node")
        self.process = process
        self.links = links
        self.probe = probe
        self.sink = sink
        self.rng = rng if rng is not None else random.Random(seed)
        self.probe_timeout = probe_timeout
        self._replay = dict(choices or {})
        self._choices: dict[Hashable, F.Fault] = {}
        self._outstanding: dict[tuple, F.Fault] = {}
        self._count = 0
        self._seq = 0

    # -- public -----------------------------------------------------------

    async def apply(self, fault: F.Fault, key: Hashable | None = None) -> F.Fault:
        """Resolve ``fault``'s roles, apply it, record it; return the concrete fault.

        ``key`` names this decision for replay (default: the count of faults
        applied so far). A recorded choice of the same fault type under that
        key is applied instead of resolving again.
        """
        if key is None:
            key = self._count
        self._count += 1
        recorded = self._replay.get(key)
        notes: list[str] = []
        if recorded is not None and type(recorded) is type(fault) and recorded.concrete:
            concrete = recorded
            notes.append("replayed")
        else:
            concrete = await self.resolve(fault, notes)
        self._choices[key] = concrete
        await self._apply(concrete, "apply", requested=fault, notes=notes)
        return concrete

    async def heal_all(self) -> list[F.Fault]:
        """Undo everything still outstanding (network, links, clocks, pauses, down nodes).

        Keeps going when one undo fails; raises the first failure at the end.
        """
        pending = list(self._outstanding.items())
        order = {"net": 0, "link": 1, "clock": 2, "pause": 3, "down": 4}
        pending.sort(key=lambda kv: order[kv[0][0]])
        undos: list[F.Fault] = []
        for slot, u in pending:
            if slot[0] == "link":
                u = F.LinkClear("*", "*")
            if u not in undos:
                undos.append(u)
        first_error: HbfuzzError | None = None
        for u in undos:
            try:
                await self._apply(u, "undo", requested=u, notes=[])
            except HbfuzzError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return undos

    def outstanding(self) -> list[F.Fault]:
        """The undo faults that :meth:`heal_all` would apply."""
        return list(self._outstanding.values())

    def choices(self) -> dict[Hashable, F.Fault]:
        """The concrete fault applied under each key (feed back as ``choices``)."""
        return dict(self._choices)

    async def roles(self) -> dict[int, str]:
        """Ask the role probe (index -> role); empty when there is none or it fails."""
        if self.probe is None:
            return {}
        try:
            async with asyncio.timeout(self.probe_timeout):
                answer = await self.probe()
        except (TimeoutError, HbfuzzError, OSError):
            return {}
        index = {name: i for i, name in enumerate(self.nodes)}
        return {index[k]: str(v) for k, v in answer.items() if k in index}

    async def resolve(self, fault: F.Fault, notes: list[str] | None = None) -> F.Fault:
        """The concrete form of ``fault`` for the cluster as it is now."""
        notes = [] if notes is None else notes
        n = len(self.nodes)
        if isinstance(fault, F.Partition) and fault.shape != "isolate":
            return resolve_partition(fault, n, self.rng)
        refs = fault.refs()
        if all(r.concrete for r in refs):
            for r in refs:
                resolve_ref(r, {}, n, self.rng)  # bounds check
            return fault
        needs_probe = any(r.role in ("leader", "follower") for r in refs)
        roles = await self.roles() if needs_probe else {}
        out = []
        for r in refs:
            idx, note = resolve_ref(r, roles, n, self.rng)
            if note:
                notes.append(note)
            out.append(F.NodeRef(idx))
        if isinstance(fault, F.Partition):
            return replace(fault, node=out[0])
        if isinstance(fault, F.LinkFault):
            return replace(fault, src=out[0], dst=out[1])
        return replace(fault, node=out[0])

    # -- applying ---------------------------------------------------------

    def _proc(self) -> ProcessControl:
        if self.process is None:
            raise ClusterError("this cluster has no process control for node faults")
        return self.process

    def _net(self) -> LinkControl:
        if self.links is None:
            raise NetworkError("this cluster has no network mediator for network faults")
        return self.links

    def _idx(self, ref: F.NodeRef) -> tuple[int, ...]:
        return resolve_ref(ref, {}, len(self.nodes), self.rng)[0]

    def _pairs(self, f: F.LinkFault) -> list[tuple[str, str]]:
        return [
            (self.nodes[a], self.nodes[b])
            for a in self._idx(f.src)
            for b in self._idx(f.dst)
            if a != b
        ]

    async def _each(self, op: Callable[[int], Awaitable[None]], indices: tuple[int, ...]) -> None:
        if len(indices) == 1:
            await op(indices[0])
            return
        # All nodes at once; one node's failure must not cancel the others'
        # operations half-way, so failures are collected and the first raised.
        errors: list[HbfuzzError] = []

        async def one(i: int) -> None:
            try:
                await op(i)
            except HbfuzzError as exc:
                errors.append(exc)

        async with asyncio.TaskGroup() as tg:
            for i in indices:
                tg.create_task(one(i))
        if errors:
            raise errors[0]

    async def _apply(
        self, f: F.Fault, action: str, *, requested: F.Fault, notes: list[str]
    ) -> None:
        attrs: dict[str, object] = {}
        if requested != f:
            attrs["requested"] = requested.to_text()
        if notes:
            attrs["note"] = "; ".join(notes)
        try:
            await self._do(f)
        except BaseException as exc:
            attrs["error"] = f"{type(exc).__name__}: {exc}"
            if not isinstance(f, F.Wait):
                self._emit(action, f, attrs)
            raise
        self._track(f)
        if not isinstance(f, F.Wait):
            self._emit(action, f, attrs)

    async def _do(self, f: F.Fault) -> None:
        match f:
            case F.Wait():
                return
            case F.Partition():
                self._net().partition(_net_partition(f, self.nodes))
            case F.Heal():
                self._net().heal()
            case F.LinkDelay():
                self._set_links(f, delay=f.delay, jitter=f.jitter)
            case F.LinkDrop():
                self._set_links(f, drop=f.p)
            case F.LinkDuplicate():
                self._set_links(f, duplicate=f.p)
            case F.LinkReorder():
                self._set_links(f, reorder=f.p)
            case F.LinkReset():
                self._set_links(f, reset=True)
            case F.LinkClear():
                links = self._net()
                for a, b in self._pairs(f):
                    old = links.rule(a, b)
                    links.set_rule(a, b, net.LinkRule(blocked=old.blocked, hold_max=old.hold_max))
            case F.KillAll():
                await self._proc().kill_all()
            case F.RestartAll():
                await self._proc().restart_all()
            case F.ClockSkew():
                proc = self._proc()
                await self._each(lambda i: proc.set_clock(i, f.offset, f.rate), self._idx(f.node))
            case F.NodeFault():
                op = getattr(self._proc(), f.verb)
                await self._each(op, self._idx(f.node))
            case _:
                raise ClusterError(f"the nemesis cannot apply {f.to_text()!r}")

    def _set_links(self, f: F.LinkFault, **changes: object) -> None:
        links = self._net()
        for a, b in self._pairs(f):
            links.set_rule(a, b, replace(links.rule(a, b), **changes))

    def _track(self, f: F.Fault) -> None:
        """Update what is still broken after ``f`` was applied."""
        out = self._outstanding
        match f:
            case F.Partition():
                out[("net",)] = F.Heal()
            case F.Heal():
                out.pop(("net",), None)
            case F.LinkClear():
                for a, b in self._pairs(f):
                    out.pop(("link", a, b), None)
            case F.LinkFault():
                for a, b in self._pairs(f):
                    out[("link", a, b)] = F.LinkClear(self._ref(a), self._ref(b))
            case F.ClockSkew():
                for i in self._idx(f.node):
                    if f.offset == 0.0 and f.rate == 1.0:
                        out.pop(("clock", i), None)
                    else:
                        out[("clock", i)] = F.ClockSkew(i, 0.0, 1.0)
            case F.Kill() | F.Stop():
                for i in self._idx(f.node):
                    out.pop(("pause", i), None)
                    out[("down", i)] = F.Start(i)
            case F.Start():  # a no-op on a paused node: it stays paused
                for i in self._idx(f.node):
                    out.pop(("down", i), None)
            case F.Restart():  # a fresh process: neither down nor paused
                for i in self._idx(f.node):
                    out.pop(("pause", i), None)
                    out.pop(("down", i), None)
            case F.Wipe():  # a fresh process if it was up; a down node stays down
                for i in self._idx(f.node):
                    out.pop(("pause", i), None)
            case F.Pause():
                for i in self._idx(f.node):
                    if ("down", i) not in out:
                        out[("pause", i)] = F.Resume(i)
            case F.Resume():
                for i in self._idx(f.node):
                    out.pop(("pause", i), None)
            case F.KillAll():
                for i in range(len(self.nodes)):
                    out.pop(("pause", i), None)
                    out[("down", i)] = F.Start(i)
            case F.RestartAll():
                for key in [k for k in out if k[0] in ("pause", "down")]:
                    del out[key]

    def _ref(self, name: str) -> F.NodeRef:
        return F.NodeRef((self.nodes.index(name),))

    def _emit(self, action: str, f: F.Fault, attrs: dict[str, object]) -> None:
        if self.sink is None:
            return
        self._seq += 1
        ev = Event(
            NEMESIS_NODE,
            self._seq,
            self._seq,
            time.time_ns(),
            time.monotonic_ns(),
            FAULT,
            (action, f.to_text(), attrs),
        )
        self.sink(ev)
