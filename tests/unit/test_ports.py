"""fuzzer.cluster.ports: leases never collide across processes; released on close."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap

import pytest

from fuzzer.cluster.ports import PortAllocator, lease_ports
from fuzzer.errors import ClusterError

HOLDER = textwrap.dedent(
    """
    import random, sys
    from fuzzer.cluster.ports import PortAllocator
    lo, hi, n, lock_dir, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    lease = PortAllocator((lo, hi), lock_dir, random.Random(seed)).lease(n)
    print(" ".join(map(str, lease.ports)), flush=True)
    sys.stdin.readline()
    """
)


def _range(rng) -> tuple[int, int]:
    lo = rng.randrange(20000, 31000)
    return lo, lo + 200


def test_two_processes_never_share_a_port(tmp_path, rng, procs) -> None:
    lo, hi = _range(rng)
    lock_dir = str(tmp_path / "locks")
    os.makedirs(lock_dir)
    holder = procs(
        [sys.executable, "-c", HOLDER, str(lo), str(hi), "30", lock_dir, str(rng.randrange(2**32))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    theirs = set(map(int, holder.stdout.readline().split()))
    assert len(theirs) == 30
    ours = PortAllocator((lo, hi), lock_dir, rng).lease(30)
    assert len(set(ours.ports)) == 30
    assert not theirs & set(ours.ports)
    assert all(lo <= p < hi for p in ours.ports)
    ours.release()
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=10)


def test_released_on_close_and_on_process_exit(tmp_path, rng) -> None:
    lo, hi = _range(rng)
    lock_dir = str(tmp_path / "locks")
    alloc = PortAllocator((lo, hi), lock_dir, rng)
    with alloc.lease(5) as lease:
        held = list(lease.ports)
        for p in held:  # locked while held
            fd = os.open(os.path.join(lock_dir, str(p)), os.O_RDWR)
            with pytest.raises(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(fd)
    assert lease.ports == []
    for p in held:  # free after release
        fd = os.open(os.path.join(lock_dir, str(p)), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    # A process that dies with leases gives them back (the kernel drops flocks).
    out = subprocess.run(
        [sys.executable, "-c", HOLDER, str(lo), str(hi), "5", lock_dir, "7"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for p in map(int, out.stdout.split()):
        fd = os.open(os.path.join(lock_dir, str(p)), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


def test_exhausted_range_is_a_cluster_error(tmp_path, rng) -> None:
    lo, _ = _range(rng)
    alloc = PortAllocator((lo, lo + 3), str(tmp_path / "locks"), rng)
    with pytest.raises(ClusterError, match="could not lease"):
        alloc.lease(4)


def test_default_allocator_ports_are_distinct_and_bindable() -> None:
    import socket

    with lease_ports(4) as lease:
        assert len(set(lease.ports)) == 4
        for p in lease.ports:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
