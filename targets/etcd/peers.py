"""How etcd members find each other, as values: URLs, member ids, argv.

Why this matters for the mediator: an etcd member does not choose whom it
dials per destination. It dials the *advertised* peer URL of each member,
and that URL is global: every member's ``--initial-cluster`` must list the
same URLs (the member ids and the cluster id are hashes of them; a member
whose list differs is refused with "cluster ID mismatch"), and after
bootstrap the URLs live in the replicated membership, not in flags. So
"node i reaches node j on port P(i, j)" cannot be written in etcd's flags.

The scheme (see README.md): each member ``j`` listens for peers on its own
port ``peer_port`` but advertises a *front* port ``advertised_peer_port``
owned by the fuzzer (:class:`targets.etcd.demux.PeerDemux`): one front port
per destination, shared by all senders; the front tells the sender apart by
which process owns the connecting socket and hands the connection to the
mediator's per-link proxy ``(sender, j)``. Without a mediator the advertised
port is the peer port itself.

Member id (etcd 3.4, ``membership.NewMember``): the first 8 bytes, big
endian, of sha1(sorted peer URLs joined + cluster token), printed as 16 hex
digits in logs. :func:`member_id` computes it, so log lines ("b8a1... became
leader") map to node names before the cluster even starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fuzzer.errors import ConfigError

HOST = "127.0.0.1"
DEFAULT_TOKEN = "hbfuzz"


def member_id(peer_urls: Sequence[str], token: str) -> str:
    """etcd's id of a bootstrap member with these advertised peer URLs (16 hex digits)."""
    joined = "".join(sorted(peer_urls)) + token
    return hashlib.sha1(joined.encode()).digest()[:8].hex()


@dataclass(frozen=True)
class EtcdNode:
    """One member's ports: clients, peer listening, and the advertised peer port."""

    name: str
    client_port: int
    peer_port: int
    advertised_peer_port: int | None = None  # None: peers dial peer_port directly

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def listen_peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def advertise_peer_url(self) -> str:
        port = self.advertised_peer_port or self.peer_port
        return f"http://{HOST}:{port}"


@dataclass(frozen=True)
class EtcdLayout:
    """A cluster's members and the flags each one is started with."""

    nodes: tuple[EtcdNode, ...]
    token: str = DEFAULT_TOKEN
    heartbeat_ms: int = 100
    election_ms: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate node names in {names}", path="<etcd layout>")
        ports = [p for n in self.nodes for p in (n.client_port, n.peer_port)]
        if len(set(ports)) != len(ports):
            raise ConfigError(f"node ports overlap: {ports}", path="<etcd layout>")

    @classmethod
    def on_ports(cls, names: Sequence[str], ports: Sequence[int],
                 fronts: Sequence[int] | None = None, **kw) -> EtcdLayout:
        """Layout from a flat port list: node k gets ``ports[2k]`` (client) and
        ``ports[2k+1]`` (peer); ``fronts[k]`` is its advertised peer port."""
        if len(ports) < 2 * len(names):
            raise ConfigError(f"need {2 * len(names)} ports, got {len(ports)}",
                              path="<etcd layout>")
        if fronts is not None and len(fronts) != len(names):
            raise ConfigError("need one front port per node", path="<etcd layout>")
        return cls(tuple(
            EtcdNode(n, ports[2 * k], ports[2 * k + 1], fronts[k] if fronts else None)
            for k, n in enumerate(names)
        ), **kw)

    def node(self, name: str) -> EtcdNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"no etcd node named {name!r}", path="<etcd layout>")

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def initial_cluster(self) -> str:
        """``n1=http://127.0.0.1:P1,...``: identical for every member (it must be)."""
        return ",".join(f"{n.name}={n.advertise_peer_url}" for n in self.nodes)

    def member_ids(self) -> dict[str, str]:
        """{member id (hex): node name}, as etcd will compute them."""
        return {member_id([n.advertise_peer_url], self.token): n.name for n in self.nodes}

    def client_urls(self) -> dict[str, str]:
        return {n.name: n.client_url for n in self.nodes}

    def peer_listen(self) -> dict[str, tuple[str, int]]:
        """{node: (host, port)} where each member really accepts peer connections
        (what the TCP mediator's ``nodes`` argument wants)."""
        return {n.name: (HOST, n.peer_port) for n in self.nodes}

    def argv(self, name: str, data_dir: Path | str, binary: str = "etcd",
             extra: Sequence[str] = ()) -> list[str]:
        """The command line of member ``name`` (loopback only, zap JSON logs on stderr)."""
        n = self.node(name)
        return [
            binary,
            "--name", n.name,
            "--data-dir", str(data_dir),
            "--listen-client-urls", n.client_url,
            "--advertise-client-urls", n.client_url,
            "--listen-peer-urls", n.listen_peer_url,
            "--initial-advertise-peer-urls", n.advertise_peer_url,
            "--initial-cluster", self.initial_cluster(),
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
            *extra,
        ]
