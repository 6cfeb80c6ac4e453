"""One shape for every target's client and role probe.

Why: targets ship what suits them. etcd's client is ``EtcdClient(url,
timeout)`` with string values and its probe ``role_probe(urls: {node: url},
timeout) -> {node: role}``; PySyncObj's is ``NodeClient(port, host,
timeout)`` with JSON values and ``find_leader(ports, timeout) -> name |
None``. The execution needs one :class:`KvClient` (read/write/cas returning
``(type, value)`` in history terms) and one :data:`RoleProbe` (``{node:
role}``), so this module adapts by the *name of the first parameter*, which
is how the two conventions differ:

- a client factory whose first parameter is ``url`` gets
  ``http://127.0.0.1:<client port>``; otherwise (``port``...) the client port;
- a probe whose first parameter is ``urls`` gets ``{node: url}``, otherwise
  the list of client ports in node order; a mapping answer is taken as
  ``{node: role}``, a string as the leader's name (every other node is then a
  ``follower``), None as "no leader known".

The client port is the node's port at ``readiness.port_index`` when that
differs from the peer port, else its first port that is not the peer port.
Values go over the wire as the target likes them (etcd: strings) and come
back as ints, so histories compare as the cas-register model expects.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from fuzzer.cluster.spec import ClusterSpec
from fuzzer.errors import ConfigError

__all__ = [
    "RoleProbe",
    "KvClient",
    "KvClientAdapter",
    "client_port_index",
    "make_client_factory",
    "make_role_probe",
]

RoleProbe = Callable[[], Awaitable[Mapping[str, str]]]
"""``await probe()`` -> ``{node name: role}`` (``leader``, ``follower``, ``unknown``...)."""

HOST = "127.0.0.1"


class KvClient(Protocol):
    """One client process bound to one node: one operation at a time.

    Each call returns ``(type, value)``: type ``ok``/``fail``/``info``;
    for ``ok`` the history value (read: the value or None, write: the value
    written, cas: ``[expected, new]``)."""

    async def read(self, key: str) -> tuple[str, Any]: ...
    async def write(self, key: str, value: int) -> tuple[str, Any]: ...
    async def cas(self, key: str, expected: int, new: int) -> tuple[str, Any]: ...
    async def close(self) -> None: ...


def client_port_index(spec: ClusterSpec) -> int:
    """Which of a node's ports serves clients (see module docstring)."""
    ready = spec.readiness.port_index
    if spec.readiness.kind == "port" and ready != spec.peer_port_index:
        return ready
    for i in range(spec.ports_per_node):
        if i != spec.peer_port_index:
            return i
    return 0


def _first_param(fn: Callable[..., Any]) -> str:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ""
    return params[0].name if params else ""


def _to_int(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return v
    return v


class KvClientAdapter:
    """A target client object (``get``/``put``/``cas`` returning a result with
    ``.type`` and ``.value``) seen as a :class:`KvClient`. ``strings``: send
    values as strings (etcd)."""

    def __init__(self, client: Any, *, strings: bool = False) -> None:
        self.client = client
        self.strings = strings

    def _v(self, v: int) -> Any:
        return str(v) if self.strings else v

    async def read(self, key: str) -> tuple[str, Any]:
        r = await self.client.get(key)
        return r.type, (_to_int(r.value) if r.type == "ok" else r.error or None)

    async def write(self, key: str, value: int) -> tuple[str, Any]:
        r = await self.client.put(key, self._v(value))
        return r.type, (value if r.type == "ok" else r.error or None)

    async def cas(self, key: str, expected: int, new: int) -> tuple[str, Any]:
        r = await self.client.cas(key, self._v(expected), self._v(new))
        return r.type, ([expected, new] if r.type == "ok" else r.error or None)

    async def close(self) -> None:
        res = self.client.close()
        if inspect.isawaitable(res):
            await res


def make_client_factory(
    factory: Callable[..., Any], ports: Mapping[str, int], timeout: float, params: Mapping[str, Any]
) -> Callable[[str], KvClient]:
    """``node -> KvClient`` from a target's client class (``workload.client``)."""
    by_url = _first_param(factory) == "url"

    def make(node: str) -> KvClient:
        port = ports[node]
        try:
            client = factory(f"http://{HOST}:{port}" if by_url else port, timeout=timeout)
        except TypeError as exc:
            raise ConfigError(f"workload.client: cannot build a client for {node}: {exc}") from None
        if hasattr(client, "read") and hasattr(client, "write"):
            return client  # already a KvClient
        return KvClientAdapter(client, strings=bool(params.get("strings", by_url)))

    return make


def make_role_probe(
    fn: Callable[..., Any], nodes: Sequence[str], ports: Mapping[str, int], timeout: float
) -> RoleProbe:
    """A :data:`RoleProbe` from a target's ``roles.function`` (see module docstring)."""
    by_urls = _first_param(fn) == "urls"

    async def probe() -> Mapping[str, str]:
        if by_urls:
            answer = await fn({n: f"http://{HOST}:{ports[n]}" for n in nodes}, timeout=timeout)
        else:
            answer = await fn([ports[n] for n in nodes], timeout=timeout)
        if isinstance(answer, Mapping):
            return {str(k): str(v) for k, v in answer.items()}
        if answer is None:
            return {}
        leader = str(answer)
        return {n: ("leader" if n == leader else "follower") for n in nodes}

    return probe
