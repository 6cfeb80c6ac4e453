"""The per-destination front ports (PeerDemux), now generic in :mod:`fuzzer.network.demux`.

Re-exported here so existing imports (``from targets.etcd.demux import
PeerDemux``) keep working; etcd needs it because its members dial one
advertised peer address per member (peers.py).
"""

from __future__ import annotations

from fuzzer.network.demux import (
    HOST,
    READ_SIZE,
    PeerDemux,
    Route,
    _hex_addr,  # noqa: F401  (old private names)
    _pump,  # noqa: F401
    connection_owner,
    pid_holding,
    socket_inode,
)

__all__ = [
    "HOST",
    "READ_SIZE",
    "PeerDemux",
    "Route",
    "connection_owner",
    "pid_holding",
    "socket_inode",
]
