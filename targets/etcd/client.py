"""An asyncio etcd v3 client through etcd's JSON gateway, with Jepsen-style outcomes.

Why our own client: a linearizability checker is only as right as the
client's claims. Every operation ends as a :class:`Result` whose ``type`` is
exactly what the history must say:

- ``ok``: etcd answered; ``value`` is what it returned;
- ``fail``: the operation surely had no effect (the connection could not be
  opened, etcd refused the request before proposing it, a compare-and-set
  whose compare was false, or any failed read: reads have no effect);
- ``info``: unknown (timeout, connection lost after the request was sent,
  an etcd error raised after the proposal such as "request timed out" or
  "leader changed"): the write may take effect later or never.

Gateway (etcd 3.4, checked on 3.4.23): ``POST /v3/kv/put``, ``/v3/kv/range``,
``/v3/kv/txn``, ``/v3/maintenance/status``, ``/v3/cluster/member/list``
(``/v3beta/`` answers too; ``/v3alpha/`` is gone). Keys and values are
base64 in JSON; 64-bit numbers are decimal strings; proto3 JSON omits
default fields (a failed txn has no ``succeeded`` key, an absent key no
``kvs``). Reads are linearizable (the gateway's default, not serializable).

Member ids are rendered as 16 hex digits, as etcd's logs print them.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from fuzzer.errors import NetworkError
from targets.etcd.http11 import HttpConnection, HttpError

__all__ = [
    "Result",
    "Status",
    "Member",
    "EtcdClient",
    "EtcdError",
    "status",
    "members",
    "role_probe",
    "leader_of",
]

ResultType = Literal["ok", "fail", "info"]
DEFINITE_CODES = frozenset({3, 7, 8, 16})  # InvalidArgument, PermissionDenied,
# ResourceExhausted ("too many requests", checked before proposing), Unauthenticated


class EtcdError(NetworkError):
    """A status or member-list request failed (the role probe maps it to ``unknown``)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one client operation, ready to be recorded in a history."""

    type: ResultType
    value: Any = None
    error: str = ""
    revision: int | None = None

    @property
    def ok(self) -> bool:
        return self.type == "ok"

    def record(self, recorder: Any, handle: int) -> None:
        """Complete ``handle`` in a :class:`fuzzer.workload.history.HistoryRecorder`."""
        if self.type == "ok":
            recorder.ok(handle, self.value)
        elif self.type == "fail":
            recorder.fail(handle, self.error or None)
        else:
            recorder.info(handle, self.error or None)


@dataclass(frozen=True, slots=True)
class Status:
    """What ``/v3/maintenance/status`` says about one member."""

    member_id: str
    leader: str  # "" when the member knows no leader
    raft_term: int
    raft_index: int
    applied_index: int
    version: str

    @property
    def is_leader(self) -> bool:
        return bool(self.leader) and self.leader == self.member_id


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str) -> str:
    return base64.b64decode(s).decode(errors="replace")


def _hex_id(v: Any) -> str:
    n = int(v or 0)
    return f"{n:016x}" if n else ""


def _revision(doc: Mapping) -> int | None:
    rev = doc.get("header", {}).get("revision")
    return int(rev) if rev is not None else None


class EtcdClient:
    """One client process talking to one etcd member's client URL.

    ``url`` like ``http://127.0.0.1:2379``; ``timeout`` bounds each whole
    request (connect, send, answer). One operation at a time: it owns one
    keep-alive connection. Use ``async with`` or call :meth:`close`.
    """

    def __init__(self, url: str, timeout: float = 2.0, prefix: str = "/v3"):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise NetworkError(f"etcd client url must look like http://HOST:PORT, got {url!r}")
        self.url = url
        self.timeout = timeout
        self.prefix = prefix
        self._conn = HttpConnection(parts.hostname, parts.port)

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    async def _call(self, path: str, payload: Any, write: bool) -> tuple[Result | None, dict]:
        """POST to the gateway; return (error Result, {}) or (None, answer)."""
        try:
            resp = await self._conn.post_json(self.prefix + path, payload, self.timeout)
            doc = resp.json()
        except HttpError as exc:
            kind: ResultType = "info" if (write and exc.sent) else "fail"
            return Result(kind, error=str(exc)), {}
        if resp.status != 200 or "error" in doc or "code" in doc:
            code = doc.get("code") if isinstance(doc, dict) else None
            msg = (doc.get("message") or doc.get("error")) if isinstance(doc, dict) else None
            text = f"HTTP {resp.status}: {msg or resp.body[:200]!r} (code {code})"
            definite = not write or code in DEFINITE_CODES
            return Result("fail" if definite else "info", error=text), {}
        return None, doc

    async def get(self, key: str) -> Result:
        """Linearizable read: ok with the value (a str) or None when the key is absent."""
        err, doc = await self._call("/kv/range", {"key": _b64(key)}, write=False)
        if err is not None:
            return err
        kvs = doc.get("kvs") or []
        value = _unb64(kvs[0].get("value", "")) if kvs else None
        return Result("ok", value, revision=_revision(doc))

    async def put(self, key: str, value: str) -> Result:
        """Write ``value``; ok with the value written."""
        payload = {"key": _b64(key), "value": _b64(value)}
        err, doc = await self._call("/kv/put", payload, write=True)
        if err is not None:
            return err
        return Result("ok", value, revision=_revision(doc))

    async def cas(self, key: str, expected: str | None, new: str) -> Result:
        """Set ``key`` to ``new`` iff its value is ``expected`` (None: iff absent).

        ok with ``[expected, new]`` when it happened; ``fail`` when the compare
        was false (then ``error`` names the current value); info when unknown.
        """
        if expected is None:
            compare = {"key": _b64(key), "target": "CREATE", "result": "EQUAL",
                       "create_revision": "0"}
        else:
            compare = {"key": _b64(key), "target": "VALUE", "result": "EQUAL",
                       "value": _b64(expected)}
        payload = {
            "compare": [compare],
            "success": [{"requestPut": {"key": _b64(key), "value": _b64(new)}}],
            "failure": [{"requestRange": {"key": _b64(key)}}],
        }
        err, doc = await self._call("/kv/txn", payload, write=True)
        if err is not None:
            return err
        if doc.get("succeeded"):
            return Result("ok", [expected, new], revision=_revision(doc))
        current = None
        for r in doc.get("responses") or []:
            kvs = (r.get("response_range") or {}).get("kvs") or []
            if kvs:
                current = _unb64(kvs[0].get("value", ""))
        return Result("fail", error=f"compare failed: current value {current!r}",
                      revision=_revision(doc))

    async def status(self) -> Status:
        """This member's status; raises :class:`EtcdError` if it cannot be had."""
        doc = await self._admin("/maintenance/status")
        return Status(
            member_id=_hex_id(doc.get("header", {}).get("member_id")),
            leader=_hex_id(doc.get("leader")),
            raft_term=int(doc.get("raftTerm") or 0),
            raft_index=int(doc.get("raftIndex") or 0),
            applied_index=int(doc.get("raftAppliedIndex") or 0),
            version=str(doc.get("version", "")),
        )

    async def members(self) -> list[Member]:
        """The member list as this member knows it (a linearizable read in 3.4)."""
        doc = await self._admin("/cluster/member/list")
        return [
            Member(
                id=_hex_id(m.get("ID")),
                name=m.get("name", ""),
                peer_urls=tuple(m.get("peerURLs") or ()),
                client_urls=tuple(m.get("clientURLs") or ()),
            )
            for m in doc.get("members") or []
        ]

    async def _admin(self, path: str) -> dict:
        err, doc = await self._call(path, {}, write=False)
        if err is not None:
            raise EtcdError(f"{self.url}{self.prefix}{path}: {err.error}")
        return doc


async def status(url: str, timeout: float = 1.0) -> Status:
    """The status of the member serving ``url``; raises :class:`EtcdError`."""
    async with EtcdClient(url, timeout) as c:
        return await c.status()


async def members(url: str, timeout: float = 1.0) -> list[Member]:
    """The member list as the member serving ``url`` knows it; raises :class:`EtcdError`."""
    async with EtcdClient(url, timeout) as c:
        return await c.members()


async def _maybe_status(url: str, timeout: float) -> Status | None:
    try:
        return await status(url, timeout)
    except EtcdError:
        return None


async def role_probe(
    urls: Mapping[str, str], timeout: float = 1.0
) -> dict[str, Literal["leader", "follower", "unknown"]]:
    """Ask every member (``{node name: client url}``) for its own view, concurrently.

    ``leader``: the member says it is the leader; ``follower``: it knows
    another leader; ``unknown``: no answer within ``timeout`` or no leader
    known. Two ``leader`` answers are possible (a deposed leader that has not
    noticed yet) and are reported as they are.
    """
    async with asyncio.TaskGroup() as tg:
        tasks = {name: tg.create_task(_maybe_status(url, timeout)) for name, url in urls.items()}
    roles: dict[str, Literal["leader", "follower", "unknown"]] = {}
    for name, task in tasks.items():
        st = task.result()
        if st is None or not st.leader:
            roles[name] = "unknown"
        else:
            roles[name] = "leader" if st.is_leader else "follower"
    return roles


async def leader_of(urls: Mapping[str, str], timeout: float = 1.0) -> str | None:
    """The one node that says it leads, or None (none or several claim it)."""
    leaders = [n for n, r in (await role_probe(urls, timeout)).items() if r == "leader"]
    return leaders[0] if len(leaders) == 1 else None
