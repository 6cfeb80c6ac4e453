"""Asyncio client for a PySyncObj node's client port (protocol in ``wire.py``).

Why one request at a time per client: a workload "process" in the Jepsen
sense issues one operation, waits for its outcome, then the next; keeping
that shape makes every outcome unambiguous. After a timeout or a broken
connection the connection is dropped (a late reply must never be read as
the answer to the next request) and the next request reconnects.

Outcomes (:class:`Result.type`): ``ok`` / ``fail`` / ``info`` as the node
says; a request that could not be sent (connection refused) is ``fail``
(it certainly did not happen); a request sent but not answered in time, or
whose connection broke after sending, is ``info`` (indeterminate).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Result", "NodeClient", "find_leader", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 5.0
GRACE = 1.0  # extra seconds the client waits beyond the node-side request timeout
MAX_LINE = 1 << 20
OK, FAIL, INFO = "ok", "fail", "info"


@dataclass(frozen=True)
class Result:
    """One request's outcome: ``type`` ok/fail/info, the value, and what the node knows."""

    type: str
    value: Any = None
    error: str | None = None
    leader: str | None = None
    node: str | None = None

    @property
    def ok(self) -> bool:
        return self.type == OK


class NodeClient:
    """A connection to one node (``host:port``), reconnecting as needed."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _drop(self) -> None:
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.transport.abort()

    async def request(self, op: str, timeout: float | None = None, **fields: Any) -> Result:
        """Send one request and wait for its reply (never raises for network trouble)."""
        timeout = self.timeout if timeout is None else timeout
        rid = next(self._ids)
        line = json.dumps({"id": rid, "op": op, "timeout": timeout, **fields}).encode() + b"\n"
        async with self._lock:
            if self._writer is None:
                try:
                    self._reader, self._writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port, limit=MAX_LINE), timeout
                    )
                except (OSError, TimeoutError) as exc:
                    return Result(FAIL, error=f"connect: {exc!r}")
            try:
                self._writer.write(line)
                async with asyncio.timeout(timeout + GRACE):
                    await self._writer.drain()
                    while True:
                        raw = await self._reader.readline()
                        if not raw:
                            raise ConnectionError("connection closed by the node")
                        reply = json.loads(raw)
                        if isinstance(reply, dict) and reply.get("id") == rid:
                            break
            except TimeoutError:
                self._drop()
                return Result(INFO, error="timeout")
            except (OSError, ValueError) as exc:  # ConnectionError, bad JSON, line too long
                self._drop()
                return Result(INFO, error=f"connection: {exc!r}")
        type_ = reply.get("type")
        if type_ not in (OK, FAIL, INFO):
            return Result(INFO, error=f"bad reply type {type_!r}")
        return Result(type_, reply.get("value"), reply.get("error"), reply.get("leader"),
                      reply.get("node"))

    async def get(self, key: str | int, *, local: bool = False,
                  timeout: float | None = None) -> Result:
        """Read ``key`` through the Raft log (linearizable), or locally if ``local``."""
        extra = {"local": True} if local else {}
        return await self.request("get", timeout, key=key, **extra)

    async def put(self, key: str | int, value: Any, timeout: float | None = None) -> Result:
        return await self.request("put", timeout, key=key, value=value)

    async def cas(self, key: str | int, expected: Any, new: Any,
                  timeout: float | None = None) -> Result:
        """Compare-and-set: ``ok`` (value = new) or ``fail`` with error "mismatch"
        (value = the current value)."""
        return await self.request("cas", timeout, key=key, expected=expected, new=new)

    async def delete(self, key: str | int, timeout: float | None = None) -> Result:
        return await self.request("delete", timeout, key=key)

    async def status(self, timeout: float | None = None) -> Result:
        """``value``: node, version, role, term, leader, commit_index, last_applied,
        last_log_index, ready, has_quorum."""
        return await self.request("status", timeout)

    async def ping(self, timeout: float | None = None) -> Result:
        return await self.request("ping", timeout)


async def find_leader(ports: Iterable[int], timeout: float = 2.0,
                      host: str = "127.0.0.1") -> str | None:
    """The role probe: the name of the node that says it is leader in the highest
    term among the answers, or None. Asks every node's status concurrently.

    Why a deadline and an early answer: a paused or partitioned-from-us node never
    answers, and waiting for it cost every leader/follower-targeted fault the whole
    timeout (and lost the answers of the others). So the answers that arrived within
    ``timeout`` decide, and the probe returns as soon as a majority has answered and
    one of them is leader in the highest term it reported: a node that did not
    answer cannot be leader in a higher term, since its election would have raised
    the term of at least one node of that majority.
    """
    ports = list(ports)
    majority = len(ports) // 2 + 1

    async def one(port: int) -> Result:
        async with NodeClient(port, host, timeout) as c:
            return await c.status(timeout)

    def leader(answers: list[Result], complete: bool) -> str | None:
        best: tuple[int, str] | None = None
        top = -1
        for r in answers:
            if not (r.ok and isinstance(r.value, dict)):
                continue
            term = int(r.value.get("term", -1))
            top = max(top, term)
            if r.value.get("role") == "leader":
                cand = (term, str(r.value.get("node")))
                if best is None or cand > best:
                    best = cand
        if best is None or (not complete and best[0] < top):
            return None
        return best[1]

    tasks = [asyncio.ensure_future(one(p)) for p in ports]
    answers: list[Result] = []
    try:
        pending = set(tasks)
        async with asyncio.timeout(timeout):
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                answers += [t.result() for t in done]
                valid = sum(1 for r in answers if r.ok)
                if pending and valid >= majority and leader(answers, False) is not None:
                    break
    except TimeoutError:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return leader(answers, True)
