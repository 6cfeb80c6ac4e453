"""Loopback port allocation that never collides, even across processes.

Why not just bind to port 0: the kernel hands out a free port, but once the
probe socket is closed nothing stops another execution (or another test
worker) from being handed the same number before our node binds it. Here a
port is *leased*: an exclusive ``flock`` on a per-port file in a shared
directory marks it taken for as long as the lease is held (the lock dies with
the process, so a crashed fuzzer never leaks leases), and the port must also
be bindable on 127.0.0.1 right now. Ports come from a range below the
kernel's ephemeral range so outgoing connections do not steal them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
from dataclasses import dataclass, field

from fuzzer.errors import ClusterError

DEFAULT_RANGE = (20000, 32000)
LOCK_DIR = os.path.join(tempfile.gettempdir(), "hbfuzz-ports")


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class PortLease:
    """A set of leased ports; release() (or process exit) gives them back."""

    ports: list[int] = field(default_factory=list)
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        self.ports.clear()

    def __enter__(self) -> PortLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class PortAllocator:
    """Leases free loopback ports; pure policy (which port to try) is seeded."""

    def __init__(
        self,
        port_range: tuple[int, int] = DEFAULT_RANGE,
        lock_dir: str = LOCK_DIR,
        rng: random.Random | None = None,
    ):
        self.lo, self.hi = port_range
        self.lock_dir = lock_dir
        self.rng = rng or random.Random()
        os.makedirs(lock_dir, exist_ok=True)

    def lease(self, n: int, lease: PortLease | None = None) -> PortLease:
        """Lease ``n`` ports (added to ``lease`` if given)."""
        lease = lease if lease is not None else PortLease()
        tries = 0
        got = 0
        while got < n:
            tries += 1
            if tries > 50 * n + 1000:
                raise ClusterError(
                    f"could not lease {n} free loopback ports in {self.lo}-{self.hi} "
                    f"after {tries} tries (ports exhausted?)"
                )
            port = self.rng.randrange(self.lo, self.hi)
            if port in lease.ports:
                continue
            fd = os.open(os.path.join(self.lock_dir, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            if not _bindable(port):
                os.close(fd)
                continue
            lease.ports.append(port)
            lease._fds.append(fd)
            got += 1
        return lease


_default: PortAllocator | None = None


def lease_ports(n: int) -> PortLease:
    """Lease ``n`` ports from the process-wide allocator."""
    global _default
    if _default is None:
        _default = PortAllocator()
    return _default.lease(n)
