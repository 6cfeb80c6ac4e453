"""The ``kv`` workload: read/write/cas clients through a target's :class:`KvClient`.

Why here and not per target: every key-value target (PySyncObj, etcd, a
user's own) is driven the same way — Jepsen's register workload — and only
the client differs (adapters.py). Client loop ``i`` is process ``i`` on node
``nodes[i % n]``; after an ``info`` it continues as a fresh process (its old
op may still take effect) and, like after a ``fail`` that is not a cas
mismatch, moves to the next node. Op ``seq`` of client ``i`` is drawn from
its own generator seeded by ``(seed, i, seq)`` and recorded as a
:class:`~fuzzer.workload.maelstrom.GeneratedOp` keyed ``(i, seq)``, so a
replay (``choices=``) issues the same ops whatever the interleaving.

Unlike a fixed-duration run, the clients run until :meth:`KvWorkload.stop`
(the execution does not know in advance how many steps a scheduler will
take); stopping lets every in-flight operation finish (bounded by the op
timeout), so the history has no dangling invocations.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fuzzer.execution.adapters import KvClient
from fuzzer.workload.history import History, HistoryRecorder
from fuzzer.workload.maelstrom import GeneratedOp

__all__ = ["KvWorkload", "DEFAULT_MIX"]

DEFAULT_MIX = {"read": 0.5, "write": 0.3, "cas": 0.2}


class KvWorkload:
    """Closed-loop register clients (see module docstring)."""

    def __init__(
        self,
        client_for: Callable[[str], KvClient],
        nodes: Sequence[str],
        seed: int,
        *,
        clients: int = 3,
        rate: float = 10.0,
        keys: int = 3,
        values: int = 5,
        mix: Mapping[str, float] | None = None,
        choices: Mapping[tuple[int, int], GeneratedOp] | None = None,
    ) -> None:
        self.client_for = client_for
        self.nodes = tuple(nodes)
        self.seed = seed
        self.clients = clients
        self.rate = rate
        self.keys = [f"k{i}" for i in range(keys)]
        self.values = values
        mix = {f: w for f, w in (mix or DEFAULT_MIX).items() if f in DEFAULT_MIX and w > 0}
        self._fs = list(mix) or list(DEFAULT_MIX)
        self._weights = [mix.get(f, 1.0) for f in self._fs]
        self._replay = dict(choices or {})
        self.recorder = HistoryRecorder()
        self.generated: list[GeneratedOp] = []
        self.counts: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._next_process = clients
        self._probe_process: int | None = None
        self._probe_node = 0

    # -- ops ------------------------------------------------------------------------

    def draw(self, client: int, seq: int) -> GeneratedOp:
        op = self._replay.get((client, seq))
        if op is not None:
            return op
        rng = random.Random(f"{self.seed}:kv:{client}:{seq}")
        f = rng.choices(self._fs, self._weights)[0]
        key = rng.choice(self.keys)
        value: Any = None
        if f == "write":
            value = rng.randrange(self.values)
        elif f == "cas":
            value = (rng.randrange(self.values), rng.randrange(self.values))
        think = rng.expovariate(self.rate) if self.rate > 0 else 0.0
        return GeneratedOp(client, seq, f, key, value, think)

    async def perform(self, client: KvClient, process: int, op: GeneratedOp) -> str:
        """Invoke ``op`` as ``process``, record invoke and completion; the outcome type."""
        value = list(op.value) if op.f == "cas" else op.value
        handle = self.recorder.invoke(process, op.f, value=value, key=op.key)
        try:
            if op.f == "read":
                kind, out = await client.read(op.key)
            elif op.f == "write":
                kind, out = await client.write(op.key, op.value)
            else:
                kind, out = await client.cas(op.key, op.value[0], op.value[1])
        except asyncio.CancelledError:
            self.recorder.info(handle, "cancelled")
            raise
        except Exception as exc:  # a client bug is an indeterminate op, not a crash
            kind, out = "info", f"{type(exc).__name__}: {exc}"
        if kind not in ("ok", "fail", "info"):
            kind, out = "info", f"bad outcome {kind!r}"
        getattr(self.recorder, kind)(handle, out)
        self.counts[kind] += 1
        return kind

    # -- running --------------------------------------------------------------------

    async def _client(self, i: int) -> None:
        node_i = i % len(self.nodes)
        process = i
        client = self.client_for(self.nodes[node_i])
        seq = 0
        try:
            while not self._stop.is_set():
                op = self.draw(i, seq)
                if op.think:
                    try:
                        await asyncio.wait_for(self._stop.wait(), op.think)
                        return  # stopped while thinking: not invoked, not recorded
                    except TimeoutError:
                        pass
                seq += 1
                self.generated.append(op)
                kind = await self.perform(client, process, op)
                if kind == "info":
                    process = self._next_process
                    self._next_process += 1
                if kind == "info" or (kind == "fail" and op.f != "cas"):
                    await client.close()
                    node_i = (node_i + 1) % len(self.nodes)
                    client = self.client_for(self.nodes[node_i])
        finally:
            await client.close()

    async def run(self) -> None:
        """Run every client until :meth:`stop`."""
        async with asyncio.TaskGroup() as tg:
            for i in range(self.clients):
                tg.create_task(self._client(i), name=f"kv client {i}")

    def stop(self) -> None:
        self._stop.set()

    async def probe(self) -> bool:
        """Liveness: one read through a fresh client on the next node; True if ok."""
        node = self.nodes[self._probe_node % len(self.nodes)]
        self._probe_node += 1
        process = self._next_process
        self._next_process += 1
        client = self.client_for(node)
        try:
            kind = await self.perform(client, process, GeneratedOp(-1, 0, "read", self.keys[0]))
        finally:
            await client.close()
        return kind == "ok"

    # -- results --------------------------------------------------------------------

    def history(self) -> History:
        return self.recorder.history()

    def choices(self) -> dict[tuple[int, int], GeneratedOp]:
        return {op.choice_key: op for op in self.generated}

    def summary(self) -> dict[str, int]:
        return {"invoked": len(self.generated), "ok": self.counts["ok"],
                "fail": self.counts["fail"], "info": self.counts["info"]}
