"""Maelstrom's built-in services: lin-kv, seq-kv, lww-kv and lin-tso.

Why in the mediator: many public Maelstrom nodes keep their state in these
services, so a stdio target cannot run without them. Each service is a pure
object: ``handle(src, body) -> reply body`` (no I/O; the stdio mediator routes
requests and replies through the network model like any other message).

API (Maelstrom's): ``read{key}`` -> ``read_ok{value}`` or error 20;
``write{key, value}`` -> ``write_ok``; ``cas{key, from, to,
create_if_not_exists?}`` -> ``cas_ok`` or error 20 (missing key) / 22 (value
differs). lin-tso: ``ts`` -> ``ts_ok{ts}``. Unknown types get error 10,
requests missing a field get error 12.

Consistency of each store:

- ``lin-kv``: linearizable (one map, every op applied atomically on arrival).
- ``seq-kv``: sequentially consistent, and really exploits it: a read may
  return an older value of the key (with probability ``stale``, seeded), but
  never older than what that same requester already observed or wrote, and
  writes/cas always act on the latest value. Placing each read at the version
  it observed gives one total order that respects every requester's own order,
  which is exactly sequential consistency (stale reads are the classic trap
  for nodes that assume seq-kv is linearizable).
- ``lww-kv``: last-write-wins register per key, reads may return any of the
  last few values (probability ``stale``) with no per-requester monotonicity,
  as an eventually consistent store behaves; cas acts on the latest value.
- ``lin-tso``: strictly increasing integer timestamps.
"""

from __future__ import annotations

import random
from typing import Any

SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")

NOT_SUPPORTED = 10
MALFORMED = 12
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22

_MISSING = object()
_HISTORY = 16  # versions kept per key for stale reads


def error(code: int, text: str) -> dict:
    return {"type": "error", "code": code, "text": text}


def _key(key: Any) -> Any:
    """JSON keys can be lists (unhashable); store them as tuples."""
    if isinstance(key, list):
        return tuple(_key(k) for k in key)
    return key


class LinKV:
    """A linearizable key/value store (every op atomic on arrival)."""

    name = "lin-kv"

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def handle(self, src: str, body: dict) -> dict:
        try:
            return self._handle(src, body)
        except TypeError as exc:  # e.g. a key that is a JSON object (unhashable)
            return error(MALFORMED, f"malformed request: {exc}")

    def _handle(self, src: str, body: dict) -> dict:
        kind = body.get("type")
        if kind not in ("read", "write", "cas"):
            return error(NOT_SUPPORTED, f"{self.name} does not support {kind!r}")
        if "key" not in body:
            return error(MALFORMED, f"{kind} needs a key")
        key = _key(body["key"])
        if kind == "read":
            value = self._read(src, key)
            if value is _MISSING:
                return error(KEY_DOES_NOT_EXIST, "key does not exist")
            return {"type": "read_ok", "value": value}
        if kind == "write":
            if "value" not in body:
                return error(MALFORMED, "write needs a value")
            self._write(src, key, body["value"])
            return {"type": "write_ok"}
        if "from" not in body or "to" not in body:
            return error(MALFORMED, "cas needs from and to")
        current = self._latest(key)
        if current is _MISSING:
            if body.get("create_if_not_exists"):
                self._write(src, key, body["to"])
                return {"type": "cas_ok"}
            return error(KEY_DOES_NOT_EXIST, "key does not exist")
        if current != body["from"]:
            return error(PRECONDITION_FAILED, f"expected {body['from']!r}, but had {current!r}")
        self._write(src, key, body["to"])
        return {"type": "cas_ok"}

    def _latest(self, key: Any) -> Any:
        return self.data.get(key, _MISSING)

    def _read(self, src: str, key: Any) -> Any:
        return self.data.get(key, _MISSING)

    def _write(self, src: str, key: Any, value: Any) -> None:
        self.data[key] = value


class SeqKV(LinKV):
    """Sequentially consistent KV: stale reads, monotonic per requester (seeded)."""

    name = "seq-kv"

    def __init__(self, seed: int = 0, stale: float = 0.25) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.stale = stale
        self.version = 0  # global write counter
        self.history: dict[Any, list[tuple[int, Any]]] = {}  # key -> [(version, value)]
        self.view: dict[str, int] = {}  # requester -> global version it has observed

    def _handle(self, src: str, body: dict) -> dict:
        reply = super()._handle(src, body)
        if body.get("type") == "cas":
            # a cas (even a failed one) observed the latest state: no going back for src
            self.view[src] = self.version
        return reply

    def _write(self, src: str, key: Any, value: Any) -> None:
        self.version += 1
        versions = self.history.setdefault(key, [])
        versions.append((self.version, value))
        if len(versions) > _HISTORY:
            del versions[0]
        self.data[key] = value
        self.view[src] = self.version

    def _read(self, src: str, key: Any) -> Any:
        versions = self.history.get(key)
        if not versions:
            return _MISSING  # a key never written reads as missing at every version
        view = self.view.get(src, 0)
        # candidates: the version current at `view` (or the oldest kept), and every later one
        first = 0
        for i, (v, _value) in enumerate(versions):
            if v <= view:
                first = i
        if self.stale > 0 and self.rng.random() < self.stale:
            i = self.rng.randrange(first, len(versions))
        else:
            i = len(versions) - 1
        v, value = versions[i]
        self.view[src] = max(view, v)
        return value


class LwwKV(LinKV):
    """Last-write-wins KV: reads may return any recent value (seeded), no monotonicity."""

    name = "lww-kv"

    def __init__(self, seed: int = 0, stale: float = 0.25) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.stale = stale
        self.history: dict[Any, list[Any]] = {}

    def _write(self, src: str, key: Any, value: Any) -> None:
        values = self.history.setdefault(key, [])
        values.append(value)
        if len(values) > _HISTORY:
            del values[0]
        self.data[key] = value

    def _read(self, src: str, key: Any) -> Any:
        values = self.history.get(key)
        if not values:
            return _MISSING
        if self.rng.random() < self.stale:
            return values[self.rng.randrange(len(values))]
        return values[-1]


class LinTSO:
    """A timestamp oracle: ``ts`` -> strictly increasing integers."""

    name = "lin-tso"

    def __init__(self) -> None:
        self.last = 0

    def handle(self, src: str, body: dict) -> dict:
        if body.get("type") != "ts":
            return error(NOT_SUPPORTED, f"lin-tso does not support {body.get('type')!r}")
        self.last += 1
        return {"type": "ts_ok", "ts": self.last}


def make_services(names: tuple[str, ...] | list[str] = SERVICES, seed: int = 0,
                  stale: float = 0.25) -> dict[str, Any]:
    """Build the named services; seq-kv and lww-kv draw stale reads from ``seed``."""
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name == "lin-kv":
            out[name] = LinKV()
        elif name == "seq-kv":
            out[name] = SeqKV(seed=seed * 31 + i, stale=stale)
        elif name == "lww-kv":
            out[name] = LwwKV(seed=seed * 31 + i, stale=stale)
        elif name == "lin-tso":
            out[name] = LinTSO()
        else:
            from fuzzer.errors import NetworkError

            raise NetworkError(f"unknown Maelstrom service {name!r} (known: {', '.join(SERVICES)})")
    return out
