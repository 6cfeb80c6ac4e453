"""Workload clients for the Maelstrom workloads: generate ops, send them, record a history.

Why one small class per workload on a shared base: every Maelstrom workload
has the same shape (``../shared/maelstrom-protocol.md``) — concurrent
clients, each bound to one node, send requests through the stdio mediator's
``client_request`` and record each op as ``invoke`` then ``ok`` / ``fail``
(definite error codes) / ``info`` (timeout, indefinite codes) into a
:class:`~fuzzer.workload.history.HistoryRecorder`; after the network heals, a
*final phase* reads every node so the checkers in
:mod:`fuzzer.checkers.workloads` can judge convergence. Only three things
differ per workload, so a subclass gives only those: which ops it draws
(:meth:`MaelstromWorkload.draw`), the request body of an op
(:meth:`MaelstromWorkload.body`) and what an ``*_ok`` reply means
(:meth:`MaelstromWorkload.output`).

Choices, not only seeds (DESIGN.md): op ``seq`` of client ``i`` is drawn
from its own generator seeded by ``(seed, workload, i, seq)``, so it does not
depend on how the clients' ops interleave on a real cluster. Every op a client
actually invoked is kept in :attr:`MaelstromWorkload.generated` as a
:class:`GeneratedOp` keyed ``(client, seq)``; passing that map back as
``choices=`` replays exactly those ops (keys it lacks are drawn as usual).

Jepsen conventions: client loop ``i`` starts as process ``i`` (client id
``c{process+1}``; ``c0`` is the mediator's harness) talking to node
``nodes[i % len(nodes)]``; after an ``info`` it continues as a fresh process
(its old op may still be in flight). :meth:`MaelstromWorkload.node_of` maps
an operation back to the node it went to.

Usage::

    wl = make_workload("broadcast", net.client_request, nodes, rng, WorkloadConfig(duration=3))
    await wl.setup()           # broadcast: topology (run() does it if needed)
    await wl.run()             # client loops for config.duration seconds
    ...heal...
    await wl.final()           # final reads on every node, until they agree or final_timeout
    verdict = wl.check()       # check_workload(name, history, nodes=, node_of=, healed_at=)
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fuzzer.checkers.verdict import Verdict
from fuzzer.errors import ConfigError, UsageError
from fuzzer.workload.history import History, HistoryRecorder, Operation, freeze

__all__ = [
    "DEFINITE_ERRORS",
    "RequestFn",
    "WorkloadConfig",
    "GeneratedOp",
    "MaelstromWorkload",
    "EchoWorkload",
    "UniqueIdsWorkload",
    "BroadcastWorkload",
    "GCounterWorkload",
    "PNCounterWorkload",
    "GSetWorkload",
    "LinKVWorkload",
    "WORKLOADS",
    "make_workload",
    "make_topology",
]

RequestFn = Callable[[str, str, Mapping[str, Any], float], Awaitable[Mapping[str, Any] | None]]
"""``client_request(client, dest, body, timeout)``: the reply body, or None on timeout."""

DEFINITE_ERRORS = frozenset({1, 10, 11, 12, 14, 20, 21, 22, 30})
"""Error codes that mean the op certainly did not happen; all others are indefinite."""

TOPOLOGIES = ("total", "line", "ring", "tree")


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """How hard and how long the clients drive the cluster.

    ``rate`` is in ops/s per client (0: each client sends its next op as soon
    as the previous one completes); the pauses are exponential (Poisson arrivals). ``mix`` maps op names to weights
    (empty: the workload's default). ``keys``/``values``: lin-kv key and value
    space. ``max_delta``: counters add deltas in [1, max_delta] (pn-counter
    also negative). ``final_timeout``: how long the final phase may poll
    before it settles for the last reads.
    """

    clients: int = 3
    rate: float = 10.0
    duration: float = 3.0
    timeout: float = 1.0
    max_ops: int | None = None
    mix: Mapping[str, float] = field(default_factory=dict)
    keys: int = 3
    values: int = 5
    max_delta: int = 5
    topology: str = "total"
    final_timeout: float = 10.0
    final_interval: float = 0.2

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"workload.{key} {why}, got {getattr(self, key)!r}")

        for key in ("clients", "keys", "values", "max_delta"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "must be an integer >= 1")
        for key in ("rate", "duration", "final_timeout", "final_interval"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (
                math.isfinite(v) and v >= 0
            ):
                raise bad(key, "must be a finite number >= 0")
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout < math.inf):
            raise bad("timeout", "must be a number of seconds > 0")
        if self.max_ops is not None and (not isinstance(self.max_ops, int) or self.max_ops < 0):
            raise bad("max_ops", "must be an integer >= 0 or absent")
        if self.topology not in TOPOLOGIES:
            raise bad("topology", f"must be one of {', '.join(TOPOLOGIES)}")
        for f, w in self.mix.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not (
                math.isfinite(w) and w >= 0
            ):
                raise ConfigError(f"workload.mix.{f} must be a weight >= 0, got {w!r}")


@dataclass(frozen=True, slots=True)
class GeneratedOp:
    """One op as drawn for client loop ``client``, its ``seq``-th: a recorded choice.

    ``think`` is the pause the client took before sending it (seconds).
    """

    client: int
    seq: int
    f: str
    key: Any = None
    value: Any = None
    think: float = 0.0

    @property
    def choice_key(self) -> tuple[int, int]:
        return (self.client, self.seq)

    def as_row(self) -> list[Any]:
        """A msgpack-friendly row: ``[client, seq, f, key, value, think]``."""
        return [self.client, self.seq, self.f, self.key, self.value, self.think]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> GeneratedOp:
        """Inverse of :meth:`as_row` (lists come back as tuples); ConfigError if malformed."""
        try:
            client, seq, f, key, value, think = row
            return cls(int(client), int(seq), str(f), freeze(key), freeze(value), float(think))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed workload choice row {row!r}: {exc}") from None


def make_topology(nodes: Sequence[str], shape: str) -> dict[str, list[str]]:
    """Neighbours of each node for the broadcast workload's ``topology`` message.

    ``total``: everyone; ``line``/``ring``: the node order; ``tree``: a binary
    tree in node order (node i's children are 2i+1 and 2i+2).
    """
    n = len(nodes)
    out: dict[str, set[str]] = {x: set() for x in nodes}

    def link(a: int, b: int) -> None:
        if a != b:
            out[nodes[a]].add(nodes[b])
            out[nodes[b]].add(nodes[a])

    for i in range(n):
        if shape == "total":
            for j in range(n):
                link(i, j)
        elif shape in ("line", "ring"):
            if i + 1 < n:
                link(i, i + 1)
            elif shape == "ring" and n > 2:
                link(i, 0)
        elif shape == "tree":
            for j in (2 * i + 1, 2 * i + 2):
                if j < n:
                    link(i, j)
        else:
            raise ConfigError(f"workload.topology must be one of {', '.join(TOPOLOGIES)}, "
                              f"got {shape!r}")
    return {x: sorted(v) for x, v in out.items()}


class MaelstromWorkload:
    """Concurrent clients of one Maelstrom workload, recording into a history.

    ``request``: the mediator's ``client_request``. ``nodes``: the server node
    names. ``rng``: only its first draw is used (the workload's seed), so the
    caller's generator advances by exactly one draw. ``recorder``: where ops go
    (a new one by default). ``choices``: recorded :class:`GeneratedOp` by
    ``(client, seq)`` to replay.
    """

    name: ClassVar[str] = ""
    default_mix: ClassVar[Mapping[str, float]] = {}
    read_f: ClassVar[str | None] = None  # the read the final phase issues (None: no final phase)

    def __init__(
        self,
        request: RequestFn,
        nodes: Sequence[str],
        rng: random.Random,
        config: WorkloadConfig | None = None,
        *,
        recorder: HistoryRecorder | None = None,
        choices: Mapping[tuple[int, int], GeneratedOp] | None = None,
    ) -> None:
        if not nodes:
            raise UsageError(f"workload {self.name}: needs at least one node")
        self.request = request
        self.nodes: tuple[str, ...] = tuple(nodes)
        self.config = config if config is not None else WorkloadConfig()
        self.seed: int = rng.getrandbits(64)
        self.recorder = recorder if recorder is not None else HistoryRecorder()
        self.mix: dict[str, float] = dict(self.config.mix or self.default_mix)
        unknown = sorted(set(self.mix) - set(self.default_mix))
        if unknown:
            raise ConfigError(
                f"workload.mix.{unknown[0]}: workload {self.name} has no op {unknown[0]!r} "
                f"(ops: {', '.join(self.default_mix)})"
            )
        if not any(self.mix.values()):
            raise ConfigError(f"workload.mix: every weight is 0 for workload {self.name}")
        self._fs = list(self.mix)
        self._weights = [self.mix[f] for f in self._fs]
        self._replay: Mapping[tuple[int, int], GeneratedOp] = choices or {}
        self.generated: list[GeneratedOp] = []  # every op invoked, in invocation order
        self.process_node: dict[int, str] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (f, ok/fail/info) -> n
        self.healed_at: int | None = None
        self.final_rounds = 0
        self._seq = [0] * self.config.clients
        self._process = list(range(self.config.clients))
        for i in range(self.config.clients):
            self.process_node[i] = self.nodes[i % len(self.nodes)]
        self._next_process = self.config.clients
        self._invoked = 0
        self._setup_done = False

    # -- per-workload parts ---------------------------------------------------------

    def draw(self, rng: random.Random, client: int, seq: int) -> GeneratedOp:
        """Draw op ``seq`` of ``client`` (subclasses add keys and values)."""
        f = rng.choices(self._fs, self._weights)[0]
        return GeneratedOp(client, seq, f, think=self._think(rng))

    def body(self, op: GeneratedOp) -> dict[str, Any]:
        """The request body for ``op``."""
        return {"type": op.f}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        """The history value of an ``ok`` reply (KeyError/TypeError: malformed -> info)."""
        return None

    def on_error(self, op: GeneratedOp, code: int) -> tuple[str, Any] | None:
        """A workload-specific reading of an error reply, or None for the default."""
        return None

    async def setup(self) -> None:
        """Anything the nodes need before the clients start (broadcast: topology)."""
        self._setup_done = True

    def converged(self, reads: Mapping[str, Any]) -> bool:
        """Final phase: do these final read values (one per node) agree?"""
        return len({freeze_set(v) for v in reads.values()}) <= 1

    # -- shared machinery ---------------------------------------------------------

    def _think(self, rng: random.Random) -> float:
        rate = self.config.rate
        return rng.expovariate(rate) if rate > 0 else 0.0

    def _rng(self, client: int, seq: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.name}:{client}:{seq}")

    def next_op(self, client: int, seq: int) -> GeneratedOp:
        """The op for ``(client, seq)``: the replayed choice if any, else a fresh draw."""
        op = self._replay.get((client, seq))
        return op if op is not None else self.draw(self._rng(client, seq), client, seq)

    def choices(self) -> dict[tuple[int, int], GeneratedOp]:
        """Every invoked op by ``(client, seq)``: pass as ``choices=`` to replay them."""
        return {op.choice_key: op for op in self.generated}

    def client_id(self, process: int) -> str:
        return f"c{process + 1}"

    def node_of(self, op: Operation) -> str:
        """The node an operation was sent to (``node_of`` for the checkers)."""
        return self.process_node[op.process]

    def _new_process(self, node: str) -> int:
        p = self._next_process
        self._next_process += 1
        self.process_node[p] = node
        return p

    def classify(self, op: GeneratedOp, reply: Mapping[str, Any] | None) -> tuple[str, Any]:
        """``(ok|fail|info, history value)`` of a reply (None: timed out)."""
        if reply is None:
            return "info", None
        kind = reply.get("type")
        if kind == "error":
            code = reply.get("code")
            special = self.on_error(op, code) if isinstance(code, int) else None
            if special is not None:
                return special
            status = "fail" if code in DEFINITE_ERRORS else "info"
            return status, ("error", code, str(reply.get("text", "")))
        if kind != f"{op.f}_ok":
            return "info", ("unexpected-reply", str(kind))
        try:
            return "ok", self.output(op, reply)
        except (KeyError, TypeError, ValueError):
            return "info", ("malformed-reply", str(kind))

    async def perform(self, process: int, op: GeneratedOp, *, record: bool = True) -> tuple[str, Any]:
        """Send ``op`` as ``process`` to that process's node; record the invocation
        (value ``op.value``, key ``op.key``) and its completion. ``record``: also
        keep ``op`` in :attr:`generated` (the final phase's reads are not choices)."""
        node = self.process_node[process]
        handle = self.recorder.invoke(process, op.f, value=op.value, key=op.key)
        if record:
            self.generated.append(op)
        reply = await self.request(self.client_id(process), node, self.body(op), self.config.timeout)
        status, out = self.classify(op, reply)
        getattr(self.recorder, status)(handle, out)
        self.counts[(op.f, status)] += 1
        return status, out

    async def _client(self, i: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        max_ops = self.config.max_ops
        while loop.time() < deadline and (max_ops is None or self._invoked < max_ops):
            op = self.next_op(i, self._seq[i])
            if op.think:
                await asyncio.sleep(min(op.think, max(0.0, deadline - loop.time())))
                if loop.time() >= deadline:
                    return  # not invoked: not recorded, the same seq is drawn next run
            if max_ops is not None and self._invoked >= max_ops:
                return
            self._invoked += 1
            self._seq[i] += 1
            status, _ = await self.perform(self._process[i], op)
            if status == "info":
                self._process[i] = self._new_process(self.process_node[self._process[i]])

    async def run(self, duration: float | None = None) -> None:
        """Run every client loop for ``duration`` s (default ``config.duration``).

        May be called several times (e.g. before, during and after faults):
        clients continue their op sequences. Runs :meth:`setup` first if needed.
        """
        if not self._setup_done:
            await self.setup()
        duration = self.config.duration if duration is None else duration
        deadline = asyncio.get_running_loop().time() + duration
        async with asyncio.TaskGroup() as tg:
            for i in range(self.config.clients):
                tg.create_task(self._client(i, deadline), name=f"{self.name} client {i}")

    async def final(self, timeout: float | None = None) -> dict[str, Any]:
        """After the network healed: read every node until all reads agree, or
        until ``timeout`` (default ``config.final_timeout``) has passed.

        Each read is recorded (invoked after :attr:`healed_at`, so the checkers
        take the last ok one per node as that node's final read). Returns the
        last ok value per node. A no-op for workloads without a final read.
        """
        if self.read_f is None:
            return {}
        loop = asyncio.get_running_loop()
        self.healed_at = self.recorder.clock()
        deadline = loop.time() + (self.config.final_timeout if timeout is None else timeout)
        procs = {node: self._new_process(node) for node in self.nodes}
        last: dict[str, Any] = {}
        read = GeneratedOp(-1, 0, self.read_f)

        async def read_node(node: str, into: dict[str, Any]) -> None:
            status, value = await self.perform(procs[node], read, record=False)
            if status == "ok":
                into[node] = value
            elif status == "info":
                procs[node] = self._new_process(node)

        while True:
            self.final_rounds += 1
            this_round: dict[str, Any] = {}
            async with asyncio.TaskGroup() as tg:
                for node in self.nodes:
                    tg.create_task(read_node(node, this_round))
            last.update(this_round)
            if len(this_round) == len(self.nodes) and self.converged(this_round):
                break
            if loop.time() + self.config.final_interval >= deadline:
                break
            await asyncio.sleep(self.config.final_interval)
        return last

    def history(self) -> History:
        return self.recorder.history()

    def summary(self) -> dict[str, int]:
        """Completed ops by outcome (``ok``/``fail``/``info``) plus ``invoked`` by the clients."""
        out = {"invoked": len(self.generated), "ok": 0, "fail": 0, "info": 0}
        for (_f, status), n in self.counts.items():
            out[status] += n
        return out

    def check_params(self) -> dict[str, Any]:
        """Keyword arguments for :func:`fuzzer.checkers.workloads.check_workload`."""
        if self.read_f is None:
            return {}
        return {"nodes": list(self.nodes), "node_of": self.node_of, "healed_at": self.healed_at}

    def check(self, **params: Any) -> Verdict:
        """Check the history so far with this workload's checker (blocking)."""
        from fuzzer.checkers.workloads import check_workload

        return check_workload(self.name, self.history(), **{**self.check_params(), **params})

    async def check_async(self, **params: Any) -> Verdict:
        """:meth:`check` in a worker thread, so the event loop keeps running."""
        from fuzzer.checkers.workloads import check_workload_async

        return await check_workload_async(
            self.name, self.history(), **{**self.check_params(), **params}
        )


def freeze_set(v: Any) -> Any:
    """Reads of a set compare as sets (order does not matter), others as values."""
    if isinstance(v, list | tuple):
        return frozenset(freeze(v))
    return freeze(v)


# --- the workloads ------------------------------------------------------------------------


class EchoWorkload(MaelstromWorkload):
    """``echo{echo}`` -> ``echo_ok{echo}``; the history value is the payload."""

    name = "echo"
    default_mix = {"echo": 1.0}

    def draw(self, rng: random.Random, client: int, seq: int) -> GeneratedOp:
        payload = f"c{client}-{seq}-{rng.getrandbits(32):08x}"
        return GeneratedOp(client, seq, "echo", value=payload, think=self._think(rng))

    def body(self, op: GeneratedOp) -> dict[str, Any]:
        return {"type": "echo", "echo": op.value}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        return reply["echo"]


class UniqueIdsWorkload(MaelstromWorkload):
    """``generate`` -> ``generate_ok{id}``; the history value is the id."""

    name = "unique-ids"
    default_mix = {"generate": 1.0}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        return reply["id"]


class _UniqueAdds(MaelstromWorkload):
    """Adds of distinct elements (``seq * clients + client``) and reads."""

    add_f: ClassVar[str] = "add"
    add_field: ClassVar[str] = "element"
    read_field: ClassVar[str] = "value"

    def draw(self, rng: random.Random, client: int, seq: int) -> GeneratedOp:
        f = rng.choices(self._fs, self._weights)[0]
        value = seq * self.config.clients + client if f == self.add_f else None
        return GeneratedOp(client, seq, f, value=value, think=self._think(rng))

    def body(self, op: GeneratedOp) -> dict[str, Any]:
        if op.f == self.add_f:
            return {"type": op.f, self.add_field: op.value}
        return {"type": op.f}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        if op.f == self.add_f:
            return None
        value = reply[self.read_field]
        if not isinstance(value, list):
            raise TypeError(f"{self.read_field} is not a list")
        return value


class BroadcastWorkload(_UniqueAdds):
    """``topology`` first (shape ``config.topology``), then ``broadcast{message}`` and
    ``read`` -> ``read_ok{messages}``; final reads on every node."""

    name = "broadcast"
    default_mix = {"broadcast": 0.6, "read": 0.4}
    read_f = "read"
    add_f = "broadcast"
    add_field = "message"
    read_field = "messages"
    topology: dict[str, list[str]] | None = None  # what setup() sent

    async def setup(self) -> None:
        """Send every node the topology (retried while it times out)."""
        self.topology = make_topology(self.nodes, self.config.topology)
        body = {"type": "topology", "topology": self.topology}
        for node in self.nodes:
            proc = self._new_process(node)
            for _ in range(5):
                reply = await self.request(self.client_id(proc), node, body, self.config.timeout)
                if reply is not None:
                    break
        self._setup_done = True


class GSetWorkload(_UniqueAdds):
    """``add{element}`` and ``read`` -> ``read_ok{value: [...]}``; final reads."""

    name = "g-set"
    default_mix = {"add": 0.6, "read": 0.4}
    read_f = "read"


class GCounterWorkload(MaelstromWorkload):
    """``add{delta}`` (1..max_delta) and ``read`` -> ``read_ok{value}``; final reads."""

    name = "g-counter"
    default_mix = {"add": 0.7, "read": 0.3}
    read_f = "read"
    negative: ClassVar[bool] = False

    def draw(self, rng: random.Random, client: int, seq: int) -> GeneratedOp:
        f = rng.choices(self._fs, self._weights)[0]
        value = None
        if f == "add":
            value = rng.randint(1, self.config.max_delta)
            if self.negative and rng.random() < 0.5:
                value = -value
        return GeneratedOp(client, seq, f, value=value, think=self._think(rng))

    def body(self, op: GeneratedOp) -> dict[str, Any]:
        return {"type": "add", "delta": op.value} if op.f == "add" else {"type": "read"}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        if op.f == "add":
            return None
        value = reply["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("value is not a number")
        return value


class PNCounterWorkload(GCounterWorkload):
    """Like g-counter, with negative deltas half of the time."""

    name = "pn-counter"
    negative = True


class LinKVWorkload(MaelstromWorkload):
    """``read{key}``, ``write{key, value}``, ``cas{key, from, to}`` on ``config.keys`` keys.

    Recorded for the ``kv`` model: read -> value (``None`` for error 20: the
    key does not exist, a definite observation), write -> value, cas ->
    ``(from, to)``; cas errors 20/22 are ``fail``. No final phase.
    """

    name = "lin-kv"
    default_mix = {"read": 0.5, "write": 0.3, "cas": 0.2}

    def draw(self, rng: random.Random, client: int, seq: int) -> GeneratedOp:
        f = rng.choices(self._fs, self._weights)[0]
        key = rng.randrange(self.config.keys)
        n = self.config.values
        value: Any = None
        if f == "write":
            value = rng.randrange(n)
        elif f == "cas":
            value = (rng.randrange(n), rng.randrange(n))
        return GeneratedOp(client, seq, f, key=key, value=value, think=self._think(rng))

    def body(self, op: GeneratedOp) -> dict[str, Any]:
        if op.f == "write":
            return {"type": "write", "key": op.key, "value": op.value}
        if op.f == "cas":
            return {"type": "cas", "key": op.key, "from": op.value[0], "to": op.value[1]}
        return {"type": "read", "key": op.key}

    def output(self, op: GeneratedOp, reply: Mapping[str, Any]) -> Any:
        return reply["value"] if op.f == "read" else None

    def on_error(self, op: GeneratedOp, code: int) -> tuple[str, Any] | None:
        if op.f == "read" and code == 20:
            return "ok", None  # the key has no value yet
        return None


WORKLOADS: dict[str, type[MaelstromWorkload]] = {
    cls.name: cls
    for cls in (
        EchoWorkload,
        UniqueIdsWorkload,
        BroadcastWorkload,
        GCounterWorkload,
        PNCounterWorkload,
        GSetWorkload,
        LinKVWorkload,
    )
}


def make_workload(
    name: str,
    request: RequestFn,
    nodes: Sequence[str],
    rng: random.Random,
    config: WorkloadConfig | None = None,
    **kw: Any,
) -> MaelstromWorkload:
    """The workload called ``name``; ConfigError listing the valid names otherwise."""
    cls = WORKLOADS.get(name)
    if cls is None:
        raise ConfigError(
            f"workload.name: unknown Maelstrom workload {name!r}; "
            f"valid: {', '.join(sorted(WORKLOADS))}"
        )
    return cls(request, nodes, rng, config, **kw)
