"""A read/write/cas register workload against etcd, recorded as a history.

Why here: it is the workload the etcd target is checked with (``cas-register``
per key, Jepsen's etcd test in miniature) and the smallest driver that uses
:mod:`targets.etcd.client` as a workload must: one client process per
coroutine, one operation at a time, every outcome recorded as ok/fail/info,
a fresh process number after an ``info`` (the old process may still be
"running" its indeterminate op), ints in the history and strings in etcd.
Every choice comes from per-client RNGs seeded from the caller's ``rng``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fuzzer.workload.history import HistoryRecorder
from targets.etcd.client import EtcdClient, Result


@dataclass(frozen=True)
class RegisterWorkload:
    """Op mix and value space of the register workload."""

    keys: tuple[str, ...] = ("r0", "r1", "r2")
    read: float = 0.5
    write: float = 0.3
    cas: float = 0.2
    values: int = 5  # values written are drawn from range(values)
    timeout: float = 1.0  # per-operation client timeout
    think: float = 0.0  # pause between a client's operations (s)


@dataclass
class WorkloadStats:
    ops: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    elapsed: float = 0.0

    def count(self, r: Result) -> None:
        self.ops += 1
        setattr(self, r.type, getattr(self, r.type) + 1)


def _to_int(v: str | None) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None


async def _one_op(client: EtcdClient, recorder: HistoryRecorder, process: int,
                  rng: random.Random, w: RegisterWorkload) -> Result:
    key = rng.choice(w.keys)
    x = rng.random() * (w.read + w.write + w.cas)
    if x < w.read:
        h = recorder.invoke(process, "read", None, key)
        r = await client.get(key)
        if r.ok:
            r = Result("ok", _to_int(r.value), revision=r.revision)
    elif x < w.read + w.write:
        v = rng.randrange(w.values)
        h = recorder.invoke(process, "write", v, key)
        r = await client.put(key, str(v))
        if r.ok:
            r = Result("ok", v, revision=r.revision)
    else:
        a, b = rng.randrange(w.values), rng.randrange(w.values)
        h = recorder.invoke(process, "cas", [a, b], key)
        r = await client.cas(key, str(a), str(b))
        if r.ok:
            r = Result("ok", [a, b], revision=r.revision)
    r.record(recorder, h)
    return r


async def run_register_clients(
    urls: Sequence[str],
    recorder: HistoryRecorder,
    rng: random.Random,
    *,
    clients: int = 3,
    duration: float = 5.0,
    max_ops: int = 100_000,
    workload: RegisterWorkload | None = None,
) -> WorkloadStats:
    """Run ``clients`` closed-loop clients for ``duration`` s (or ``max_ops`` ops in
    all); client c starts on ``urls[c % len(urls)]`` and moves to the next URL
    after an error. Returns counts; the history is in ``recorder``."""
    w = workload or RegisterWorkload()
    stats = WorkloadStats()
    seeds = [rng.randrange(2**32) for _ in range(clients)]
    deadline = time.monotonic() + duration
    start = time.monotonic()

    async def client_loop(c: int) -> None:
        crng = random.Random(seeds[c])
        process = c
        url_i = c % len(urls)
        client = EtcdClient(urls[url_i], w.timeout)
        try:
            while time.monotonic() < deadline and stats.ops < max_ops:
                r = await _one_op(client, recorder, process, crng, w)
                stats.count(r)
                if r.type == "info":
                    process += clients  # the old process may still be running its op
                if r.type != "ok" and not r.error.startswith("compare failed"):
                    client.close()
                    url_i = (url_i + 1) % len(urls)
                    client = EtcdClient(urls[url_i], w.timeout)
                if w.think:
                    await asyncio.sleep(w.think)
        finally:
            client.close()

    async with asyncio.TaskGroup() as tg:
        for c in range(clients):
            tg.create_task(client_loop(c))
    stats.elapsed = time.monotonic() - start
    return stats
